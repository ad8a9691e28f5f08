// hardening.test.mjs — regression tests for what an attacker or an unlucky
// operator found: inputs that crashed the proxy, leaked a credential into the
// log, or made it keep a wrong answer. Each test failed before its fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { setup, request, chat, chatBody, startMock, mockFor, startProxy, closedPort, assertProxyError } from './lib/setup.mjs';
import { RawClient, rawRequest, chunkedPieces } from './lib/raw.mjs';
import { cliOk } from './lib/cli.mjs';
import { flood } from './lib/load.mjs';
import { echoText, openAIStreamEvents } from './lib/mock.mjs';

test('a long request target with a credential in its query is logged masked and never crashes the proxy', async (t) => {
  for (const format of ['text', 'json']) {
    const { mock, proxy } = await setup(t, { args: ['--log-format', format] });
    const junk = 'a'.repeat(6000);
    for (const q of [`x=${junk}&key=SECRET1`, `key=SECRET2&x=${junk}`, `${junk}=1&api_key=SECRET3&KEY=SECRET4&k%65y=SECRET5`]) {
      const r = await request(proxy, { path: `/v1/models?${q}` });
      assert.equal(r.status, 200, `format ${format}: ${r.text.slice(0, 200)}`);
    }
    assert.equal(mock.count(), 3);
    await proxy.waitFor((p) => p.logLines().filter((l) => l.includes('/v1/models')).length === 3, 3000, 'three access-log lines');
    const lines = proxy.logLines().filter((l) => l.includes('/v1/models'));
    for (const l of lines) {
      assert.doesNotMatch(l, /SECRET/, `a credential reached the log: ${l.slice(0, 300)}`);
      if (format === 'json') JSON.parse(l);
    }
    assert.match(lines[2], /api_key=\*\*\*&KEY=\*\*\*&k%65y=\*\*\*/);
  }
});

test('raw non-UTF-8 bytes in the target still make valid JSON log lines', async (t) => {
  const { proxy } = await setup(t, { args: ['--log-format', 'json'] });
  const c = await RawClient.connect(proxy.port);
  t.after(() => c.destroy());
  const head = Buffer.concat([Buffer.from('GET /v1/models?q='), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n')]);
  await c.write(head);
  await c.readResponses(1); // forwarded (the mock itself may refuse such a target)
  const line = await proxy.waitFor((p) => p.logLines().find((l) => l.includes('/v1/models')), 3000, 'the access-log line');
  const j = JSON.parse(line);
  assert.equal(j.path, '/v1/models?q=\ufffd\ufffd\ufffd');
});

test('a text log line stays one line whatever bytes the target holds', async (t) => {
  const { proxy } = await setup(t);
  const c = await RawClient.connect(proxy.port);
  t.after(() => c.destroy());
  await c.write(Buffer.concat([Buffer.from('GET /v1/models?q=a'), Buffer.from([0x09]), Buffer.from('b HTTP/1.1\r\nHost: x\r\n\r\n')]));
  await c.readResponses(1);
  const line = await proxy.waitFor((p) => p.logLines().find((l) => l.includes('/v1/models')), 3000, 'the access-log line');
  assert.match(line, /q=a\\x09b /);
});

test('repeated query parameters in another order are another request', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await chat(proxy, 'q', { path: '/v1/chat/completions?a=1&a=2' });
  const b = await chat(proxy, 'q', { path: '/v1/chat/completions?a=2&a=1' });
  assert.equal(a.cache, 'MISS');
  assert.equal(b.cache, 'MISS');
  assert.notEqual(a.key, b.key);
  const c = await chat(proxy, 'q', { path: '/v1/chat/completions?a=1&a=2' });
  assert.equal(c.cache, 'HIT');
  assert.equal(mock.count(), 2);
});

test('credential query parameters in any spelling never enter the stored key path', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--key-scope', 'shared'] });
  const a = await chat(proxy, 'q', { path: '/v1/chat/completions?API_KEY=SECRET1' });
  const b = await chat(proxy, 'q', { path: '/v1/chat/completions?k%65y=SECRET2' });
  assert.equal(a.cache, 'MISS');
  assert.equal(b.cache, 'HIT', 'in the shared key scope a credential is not part of the key');
  assert.equal(mock.count(), 1);
  const ex = await cliOk(['export', '--db', proxy.dbDir]);
  assert.doesNotMatch(ex.text, /SECRET/);
});

// ---- issue 9: hardening of the serving core --------------------------------

async function connect(t, proxy) {
  const c = await RawClient.connect(proxy.port);
  t.after(() => c.destroy());
  return c;
}

/** Split what a connection received into its head (latin1 text) and the raw bytes after it. */
function splitHead(buf) {
  const end = buf.indexOf('\r\n\r\n');
  assert.ok(end >= 0, `a response head arrived: ${JSON.stringify(buf.toString('latin1').slice(0, 300))}`);
  return { head: buf.subarray(0, end).toString('latin1'), rest: buf.subarray(end + 4) };
}

const headerOf = (head, name) => {
  const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(head);
  return m ? m[1].trim() : undefined;
};

async function getStats(proxy) {
  const r = await request(proxy, { path: '/_promptcache/stats' });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  return r.json;
}

test('chunked request trailers are read and dropped: never forwarded, never part of the key', async (t) => {
  const { mock, proxy } = await setup(t);
  const c = await connect(t, proxy);
  const pieces = chunkedPieces(JSON.stringify(chatBody('trailers')), 3);
  // the last-chunk line, then trailer fields, then the empty line
  pieces[pieces.length - 1] = Buffer.from('0\r\nX-PromptCache-Namespace: other\r\nAuthorization: Bearer sneaky\r\n\r\n');
  await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n'
    + 'Trailer: X-PromptCache-Namespace, Authorization\r\n\r\n');
  for (const p of pieces) await c.write(p);
  const { finals } = await c.readResponses(1);
  assert.equal(finals[0].status, 200, finals[0].text);
  assert.equal(finals[0].headers['x-promptcache-status'], 'MISS');
  assert.equal(mock.count(), 1);
  const up = mock.requests[0].headers;
  assert.equal(up.authorization, undefined, `a trailer reached upstream as a header: authorization: ${up.authorization}`);
  assert.equal(up['x-promptcache-namespace'], undefined);
  // the same request without trailers has the same key, and it is stored
  const plain = await chat(proxy, 'trailers');
  assert.equal(plain.key, finals[0].headers['x-promptcache-key'], 'trailer fields changed the cache key');
  assert.equal(plain.cache, 'HIT');
  assert.equal(mock.count(), 1);
});

test('HTTP/1.0 clients get bodies unchunked, passed through and stored streams alike, then the connection closes', async (t) => {
  const { mock, proxy } = await setup(t);
  // upstream answers /v1/models chunked: the proxy must take the framing off for HTTP/1.0
  const models = ['{"object":"list","data":[', '{"id":"gpt-4o-mini","object":"model"}', ']}'];
  mock.handler = async (req, res, rec) => {
    if (rec.path !== '/v1/models') return false;
    res.writeHead(200, { 'content-type': 'application/json' });
    for (const piece of models) res.write(piece);
    res.end();
    return true;
  };
  let c = await connect(t, proxy);
  await c.write('GET /v1/models HTTP/1.0\r\nHost: x\r\n\r\n');
  assert.ok(await c.waitClose(5000), 'the connection closes after the answer to HTTP/1.0');
  let { head, rest } = splitHead(c.buf);
  assert.match(head, /^HTTP\/1\.[01] 200 /);
  assert.equal(headerOf(head, 'transfer-encoding'), undefined, `HTTP/1.0 cannot read chunked framing:\n${head}`);
  assert.equal(rest.toString('latin1'), models.join(''), 'the body is exactly the upstream body bytes');

  // a streamed MISS: the raw SSE bytes, no chunk-size lines, then close
  const prompt = 'http/1.0 stream';
  const body = JSON.stringify(chatBody(prompt, { stream: true }));
  const post = `POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  c = await connect(t, proxy);
  await c.write(post);
  assert.ok(await c.waitClose(5000), 'the connection closes after the streamed answer');
  ({ head, rest } = splitHead(c.buf));
  assert.match(head, /^HTTP\/1\.[01] 200 /);
  assert.equal(headerOf(head, 'x-promptcache-status'), 'MISS');
  assert.equal(headerOf(head, 'transfer-encoding'), undefined, head);
  const rec = mock.requests.find((r) => r.path === '/v1/chat/completions');
  const events = openAIStreamEvents(rec.seq, 'gpt-4o-mini', echoText(prompt), 5).join('');
  assert.equal(rest.toString('utf8'), events, 'the SSE bytes arrive exactly, without chunk framing');

  // the stored stream, as a HIT to an HTTP/1.0 client: Content-Length and the exact bytes
  c = await connect(t, proxy);
  await c.write(post);
  assert.ok(await c.waitClose(5000), 'the connection closes after the HIT');
  ({ head, rest } = splitHead(c.buf));
  assert.equal(headerOf(head, 'x-promptcache-status'), 'HIT');
  assert.equal(headerOf(head, 'transfer-encoding'), undefined, head);
  assert.equal(headerOf(head, 'content-length'), String(Buffer.byteLength(events)), head);
  assert.equal(rest.toString('utf8'), events);
  assert.equal(mock.count('/v1/chat/completions'), 1);
});

test('bare CRLFs between requests do not keep an idle connection open past --idle-timeout', async (t) => {
  const { proxy } = await setup(t, { args: ['--idle-timeout', '1s'] });
  const c = await connect(t, proxy);
  const t0 = performance.now();
  // a CRLF every 300 ms (the pace of the sender, not a synchronisation), for at most 4 s
  while (!c.closed && performance.now() - t0 < 4000) {
    await c.write('\r\n').catch(() => {});
    await c.waitUntil(() => false, 300); // returns early when the proxy closes
  }
  assert.ok(c.closed, 'the connection was kept open for 4 s by bare CRLFs');
  const after = c.closedAt - t0;
  assert.ok(after >= 800 && after <= 2500, `closed ${after} ms after it opened (idle timeout 1 s)`);
  const h = await request(proxy, { path: '/_promptcache/health' });
  assert.equal(h.status, 200);
});

test('an Upgrade request does not break the connection: the next request on it is answered', async (t) => {
  const { mock, proxy } = await setup(t);
  const upgrade = rawRequest('GET', '/v1/models', { Connection: 'Upgrade', Upgrade: 'websocket' });
  // pipelined in one write
  let c = await connect(t, proxy);
  await c.write(Buffer.concat([upgrade, rawRequest('GET', '/v1/models')]));
  let { finals } = await c.readResponses(2);
  assert.deepEqual(finals.map((r) => r.status), [200, 200], finals.map((r) => r.text).join('\n'));
  // and after the first answer
  c = await connect(t, proxy);
  await c.write(upgrade);
  ({ finals } = await c.readResponses(1));
  assert.equal(finals[0].status, 200);
  await c.write(rawRequest('GET', '/v1/models'));
  ({ finals } = await c.readResponses(2));
  assert.deepEqual(finals.map((r) => r.status), [200, 200], finals.map((r) => r.text).join('\n'));
  for (const r of finals) assert.equal(JSON.parse(r.text).object, 'list');
  assert.equal(mock.count(), 4);
});

test('namespaces up to 1024 bytes are kept whole; longer ones or ones that are not UTF-8 get 400', async (t) => {
  const { mock, proxy } = await setup(t);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const long = Array.from({ length: 1024 }, (_, i) => alphabet[i % alphabet.length]).join('');
  const ns = (name) => ({ headers: { 'x-promptcache-namespace': name } });
  const a = await chat(proxy, 'namespaced', ns(long));
  assert.equal(a.cache, 'MISS');
  const b = await chat(proxy, 'namespaced', ns(long));
  assert.equal(b.cache, 'HIT');
  const shorter = await chat(proxy, 'namespaced', ns(long.slice(0, -1)));
  assert.equal(shorter.cache, 'MISS', 'a namespace one byte shorter is another namespace');
  const purge = async (namespace) => {
    const r = await request(proxy, { method: 'POST', path: '/_promptcache/purge', body: { namespace } });
    assert.equal(r.status, 200, r.text);
    return r.json.purged;
  };
  assert.equal(await purge(long.slice(0, 255)), 0, 'the stored namespace is not cut to 255 bytes');
  assert.equal(await purge(long), 1, 'purging the 1024-byte namespace removes exactly its entry');
  assert.equal((await chat(proxy, 'namespaced', ns(long.slice(0, -1)))).cache, 'HIT', 'the other namespace stays');

  assertProxyError(assert, await chat(proxy, 'namespaced', ns(`${long}x`)), 400, 'bad_request');
  const c = await connect(t, proxy);
  const payload = JSON.stringify(chatBody('namespaced'));
  await c.write(Buffer.concat([
    Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-PromptCache-Namespace: a'),
    Buffer.from([0xff]),
    Buffer.from(`b\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\n\r\n${payload}`),
  ]));
  const { finals } = await c.readResponses(1);
  assert.equal(finals[0].status, 400, finals[0].text);
  assert.equal(JSON.parse(finals[0].text).error.code, 'bad_request');
  assert.equal(mock.count(), 2, 'refused requests never reach upstream');
});

test('a key header that is not UTF-8 is forwarded uncached, and export still works', async (t) => {
  const { mock, proxy } = await setup(t);
  const payload = JSON.stringify(chatBody('organization'));
  const raw = Buffer.concat([
    Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOpenAI-Organization: org-'),
    Buffer.from([0xff, 0xfe]),
    Buffer.from(`\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\n\r\n${payload}`),
  ]);
  for (let i = 1; i <= 2; i++) {
    const c = await connect(t, proxy);
    await c.write(raw);
    const { finals } = await c.readResponses(1);
    assert.equal(finals[0].status, 200, finals[0].text);
    assert.equal(finals[0].headers['x-promptcache-status'], 'BYPASS', `request ${i}`);
    assert.equal(mock.count(), i, 'each one goes upstream');
  }
  assert.equal((await getStats(proxy)).cache.entries, 0, 'nothing is stored');
  const ex = await cliOk(['export', '--db', proxy.dbDir]);
  assert.equal(ex.text, '');
});

test('Cache-Control max-age beyond what the proxy counts in means any age', async (t) => {
  const { mock, proxy } = await setup(t);
  assert.equal((await chat(proxy, 'max-age')).cache, 'MISS');
  for (const v of ['9223372036854775807', '18446744073709551616']) {
    const r = await chat(proxy, 'max-age', { headers: { 'cache-control': `max-age=${v}` } });
    assert.equal(r.status, 200);
    assert.equal(r.cache, 'HIT', `max-age=${v}`);
  }
  assert.equal(mock.count(), 1);
});

test('pipelined hits to a client that never reads do not grow memory without bound', async (t) => {
  const { mock, proxy } = await setup(t);
  const filler = 'b'.repeat(200 * 1024);
  mock.handler = async (req, res, rec) => {
    if (rec.path !== '/v1/chat/completions') return false;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: `big-${rec.seq}`, object: 'chat.completion', filler }));
    return true;
  };
  const stored = await chat(proxy, 'big answer');
  assert.equal(stored.cache, 'MISS');
  assert.ok(stored.body.length > 200 * 1024);
  assert.equal((await chat(proxy, 'big answer')).cache, 'HIT');
  const rss = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${proxy.proc.pid}/status`, 'utf8'))[1]) * 1024;
  const LIMIT = 64 * 1024 * 1024;

  const sock = net.connect({ host: '127.0.0.1', port: proxy.port });
  t.after(() => sock.destroy());
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  sock.pause(); // never read
  const one = rawRequest('POST', '/v1/chat/completions', {}, chatBody('big answer'));
  let timer;
  const written = await Promise.race([
    new Promise((r) => sock.write(Buffer.concat(Array(2000).fill(one)), () => r(true))),
    new Promise((r) => { timer = setTimeout(() => r(false), 5000); }),
  ]);
  clearTimeout(timer);
  assert.ok(written, 'the 2000 requests were handed to the kernel');
  // 2000 hits of 200 KB would be 400 MB queued: watch the proxy for a second
  // (nothing is expected to happen, so there is no event to wait for)
  let max = 0;
  for (const end = performance.now() + 1000; performance.now() < end && max <= LIMIT;) {
    max = Math.max(max, rss());
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.ok(max <= LIMIT, `proxy RSS reached ${(max / 1048576).toFixed(1)} MiB with a client that never reads`);
  const other = await chat(proxy, 'big answer');
  assert.equal(other.status, 200, 'another client is still served');
  assert.equal(other.cache, 'HIT');
  assert.equal(other.text, stored.text);
  sock.destroy();
  assert.equal((await request(proxy, { path: '/_promptcache/health' })).status, 200);
  assert.equal(mock.count(), 1);
});

test('request bodies buffered across connections stay within --max-buffered: 503 overloaded past it', async (t) => {
  const { proxy } = await setup(t, { args: ['--max-body', '1MiB', '--max-buffered', '2MiB'] });
  const clients = [];
  for (let i = 0; i < 4; i++) {
    const c = await connect(t, proxy);
    clients.push(c);
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n');
    c.write(Buffer.alloc(900 * 1000, 'a')).catch(() => {}); // never finished
  }
  const answered = () => clients.filter((c) => { try { return c.parsed().responses.length > 0; } catch { return false; } });
  const end = performance.now() + 5000;
  while (answered().length === 0 && performance.now() < end) await Promise.race(clients.map((c) => c.waitUntil(() => c.buf.length > 0, 200)));
  const got = answered().map((c) => c.parsed().responses[0]);
  assert.ok(got.length >= 1, 'one of the connections was refused');
  for (const r of got) {
    assert.equal(r.status, 503, r.text);
    assert.ok(r.headers['retry-after'], 'a Retry-After header');
    assert.equal(JSON.parse(r.text).error.code, 'overloaded');
  }
  for (const c of clients) c.destroy();
  // once they are gone, a small request is served (the proxy may take a moment to see the closes)
  let r;
  for (const until = performance.now() + 3000; ;) {
    r = await chat(proxy, 'small');
    if (r.status !== 503 || performance.now() > until) break;
  }
  assert.equal(r.status, 200, r.text);
});

test('a flight stays joinable until its entry is committed: continuous identical requests go upstream once', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--sync', 'batch'] });
  for (const prompt of ['one flight', 'another flight']) {
    mock.reset();
    // a new request every 2 ms, ~50 waiting on the 100 ms exchange, more arriving while it is committed
    const counts = await flood(proxy, {
      n: 300, concurrency: 64, spacingMs: 2,
      request: () => ({ headers: { 'x-mock-behavior': 'delay=100' }, body: chatBody(prompt) }),
    });
    assert.equal(mock.count(), 1, `${prompt}: upstream calls ${mock.count()}; outcomes ${JSON.stringify(counts)}`);
    for (const k of Object.keys(counts)) assert.ok(['200 MISS', '200 COALESCED', '200 HIT'].includes(k), `outcome ${k}: ${JSON.stringify(counts)}`);
    assert.equal(counts['200 MISS'], 1);
    assert.equal(Object.values(counts).reduce((x, y) => x + y, 0), 300);
  }
});

test('a 200 whose end was only the connection close, or JSON that does not parse, is passed on but not stored', async (t) => {
  const { mock, proxy } = await setup(t);
  const cut = '{"id":"chatcmpl-cut","object":"chat.completion","choices":[{"index":0,"message":{"role":"assis';
  mock.handler = async (req, res, rec) => {
    switch (rec.json?.messages?.[0]?.content) {
      case 'close-delimited': // HTTP/1.1 without Content-Length or chunking: the body ends at the close
        res.socket.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${cut}`);
        return true;
      case 'http/1.0':
        res.socket.end(`HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n${cut}`);
        return true;
      case 'not json': // properly delimited, but labelled JSON that does not parse
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(cut.length) });
        res.end(cut);
        return true;
      default:
        return false;
    }
  };
  for (const prompt of ['close-delimited', 'http/1.0', 'not json']) {
    for (let i = 1; i <= 2; i++) {
      const c = await connect(t, proxy);
      await c.write(rawRequest('POST', '/v1/chat/completions', {}, chatBody(prompt)));
      const { finals } = await c.readResponses(1);
      assert.equal(finals[0].status, 200, `${prompt} #${i}`);
      assert.equal(finals[0].text, cut, `${prompt} #${i}: the client gets the bytes`);
      assert.equal(finals[0].headers['x-promptcache-status'], 'MISS', `${prompt} #${i}`);
    }
    assert.equal(mock.requests.filter((r) => r.json?.messages?.[0]?.content === prompt).length, 2, `${prompt} went upstream twice`);
  }
  // a whole answer is stored as before
  assert.equal((await chat(proxy, 'whole')).cache, 'MISS');
  assert.equal((await chat(proxy, 'whole')).cache, 'HIT');
  assert.equal((await getStats(proxy)).cache.entries, 1);
});

test('a replay miss explains itself only with recordings of the same namespace and credential', async (t) => {
  const mock = await mockFor(t, startMock);
  const A = 'Bearer sk-credential-A-000000000000';
  const B = 'Bearer sk-credential-B-111111111111';
  const secret = 'what only A may see';
  const rec = await startProxy(t, { upstream: mock, args: ['--mode', 'record', '--key-scope', 'credential'] });
  const recorded = await chat(rec, secret, { headers: { authorization: A, 'x-promptcache-namespace': 'N' } });
  assert.equal(recorded.status, 200);
  await rec.stop();
  const dead = await closedPort();
  const replay = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, dbDir: rec.dbDir, args: ['--mode', 'replay', '--key-scope', 'credential'] });
  const ask = (headers) => chat(replay, `${secret}!`, { headers });
  for (const [who, headers] of [
    ['credential B', { authorization: B, 'x-promptcache-namespace': 'N' }],
    ['namespace M', { authorization: A, 'x-promptcache-namespace': 'M' }],
    ['no credential', { 'x-promptcache-namespace': 'N' }],
  ]) {
    const r = await ask(headers);
    assert.equal(r.status, 424, `${who}: ${r.text}`);
    const err = r.json.error;
    assert.equal(err.nearest, null, `${who}: another caller's recording is named: ${r.text}`);
    assert.ok(!r.text.includes(secret), `${who}: the 424 shows A's prompt: ${r.text}`);
    const lines = await replay.waitFor((p) => {
      const l = p.logLines().filter((x) => x.includes(err.key));
      return l.length >= 2 && l;
    }, 3000, `the log lines of ${err.key}`);
    for (const l of lines) assert.ok(!l.includes(secret), `${who}: the log shows A's prompt: ${l}`);
  }
  const own = await ask({ authorization: A, 'x-promptcache-namespace': 'N' });
  assert.equal(own.status, 424);
  const { nearest } = own.json.error;
  assert.ok(nearest, own.text);
  assert.equal(nearest.key, recorded.key);
  assert.deepEqual(nearest.differences.map((d) => d.path), ['/messages/0/content']);
  assert.equal(nearest.differences[0].recorded, secret);
  assert.equal(mock.count(), 1);
});

test('junk model names cannot push the stats table past its size: the rest is counted as (other)', async (t) => {
  const { proxy } = await setup(t);
  const counts = await flood(proxy, { n: 600, request: (i) => ({ body: { model: `junk-model-${i}`, messages: [{ role: 'user', content: 'm' }] } }) });
  assert.deepEqual(counts, { '200 MISS': 600 });
  let s = await getStats(proxy);
  const rows = s.by_route_model;
  const other = rows.find((r) => r.model === '(other)');
  assert.ok(other, `a "(other)" row: ${rows.length} rows, the last ${JSON.stringify(rows[rows.length - 1])}`);
  const sum = (list) => list.reduce((n, r) => n + r.requests, 0);
  assert.equal(sum(rows), 600, 'every request is counted in some row');
  // a real model sent now is counted (in its own row or in (other))
  assert.equal((await chat(proxy, 'a real model')).status, 200);
  s = await getStats(proxy);
  const real = s.by_route_model.filter((r) => r.model === 'gpt-4o-mini' || r.model === '(other)');
  assert.equal(sum(real), other.requests + 1, JSON.stringify(real));
  assert.equal(sum(s.by_route_model), 601);
});
