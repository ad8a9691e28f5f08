// upstream_http.test.mjs — the proxy's own HTTP/1.1 client for http://
// upstreams (src/uphttp.c): keep-alive reuse and the retry of a connection
// the server closed, the request it sends, response framings (close-delimited
// HTTP/1.0, chunked with trailers, interim 1xx, HEAD/304 without a body),
// decoding of gzip and deflate, its limits, and its errors (refused, timed
// out, bad encodings), names (localhost) and IPv6 literals.
import test from 'node:test';
import assert from 'node:assert/strict';
import { setup, startMock, mockFor, startProxy, request, chat, chatBody, closedPort, assertProxyError, sleep, stillServing } from './lib/setup.mjs';
import { echoText } from './lib/mock.mjs';

/** The content of the last user message of a recorded chat request. */
const contentOf = (rec) => rec && rec.json && rec.json.messages && rec.json.messages[0] && rec.json.messages[0].content;

/** A handler that answers chat requests whose content is `content` with `answer(req, res, rec)`. */
function answerFor(mock, content, answer) {
  const prev = mock.handler;
  mock.handler = async (req, res, rec) => {
    if (contentOf(rec) === content) {
      await answer(req, res, rec);
      return true;
    }
    return prev ? prev(req, res, rec) : false;
  };
}

test('one keep-alive connection carries sequential misses, bypasses and streams', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--workers', '1'] });
  for (let i = 0; i < 4; i++) assert.equal((await chat(proxy, `ka ${i}`)).cache, 'MISS');
  const models = await request(proxy, { path: '/v1/models' });
  assert.equal(models.status, 200);
  const s = await chat(proxy, 'ka stream', { extra: { stream: true } });
  assert.equal(s.status, 200);
  assert.match(s.text, /data: \[DONE\]/);
  assert.equal((await chat(proxy, 'ka 0')).cache, 'HIT');
  assert.equal(mock.count(), 6);
  assert.equal(mock.connections, 1, `upstream saw ${mock.connections} connections`);
});

test('the request: Host, Content-Length as libcurl sends it, no Expect, no Accept-Encoding, no Transfer-Encoding', async (t) => {
  const { mock, proxy } = await setup(t);
  const big = JSON.stringify(chatBody('x'.repeat(6 << 20))); // more than a socket takes at once
  const r = await request(proxy, { method: 'POST', path: '/v1/models-echo', body: big, headers: { 'accept-encoding': 'gzip, br', expect: '100-continue' } });
  assert.equal(r.status, 200);
  const seen = mock.last();
  assert.equal(seen.httpVersion, '1.1');
  assert.equal(seen.headers.host, `127.0.0.1:${mock.port}`);
  assert.equal(seen.headers['content-length'], String(Buffer.byteLength(big)));
  assert.equal(seen.text, big, 'a body larger than one write arrives whole');
  assert.equal(seen.headers.expect, undefined);
  assert.equal(seen.headers['accept-encoding'], undefined, 'identity: the cache stores identity bytes');
  assert.equal(seen.headers['transfer-encoding'], undefined);
  // an empty POST still says Content-Length: 0; a GET says nothing about a body
  const e = await request(proxy, { method: 'POST', path: '/v1/echo-empty', headers: { 'content-length': '0' } });
  assert.equal(e.status, 200);
  assert.equal(mock.last().headers['content-length'], '0');
  const g = await request(proxy, { path: '/v1/models' });
  assert.equal(g.status, 200);
  assert.equal(mock.last().headers['content-length'], undefined);
  assert.equal(mock.last().headers['transfer-encoding'], undefined);
  // an empty header value is forwarded as such
  await request(proxy, { path: '/v1/models', headers: { 'x-empty': '' } });
  assert.equal(mock.last().headers['x-empty'], '');
});

test('a connection the upstream closed while idle is not used again', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--workers', '1'] });
  assert.equal((await chat(proxy, 'idle close 1')).status, 200);
  assert.equal(await mock.closeIdle(), 1);
  await sleep(50); // the proxy sees the close on its idle connection
  const r = await chat(proxy, 'idle close 2');
  assert.equal(r.status, 200);
  assert.equal(r.cache, 'MISS');
  assert.equal(mock.count(), 2, 'one upstream request per client request');
  assert.equal(mock.connections, 2);
  assert.equal(mock.dropped, 0);
});

test('a reused connection closed under a request is retried once on a fresh one: one upstream request', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--workers', '1'] });
  assert.equal((await chat(proxy, 'stale 1')).status, 200);
  mock.dropReused = 1;
  const r = await chat(proxy, 'stale 2');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.cache, 'MISS');
  assert.equal(r.json.choices[0].message.content, echoText('stale 2'));
  assert.equal(mock.dropped, 1, 'the request on the stale connection was dropped');
  assert.equal(mock.count(), 2, 'and went upstream once more, on a fresh connection');
  assert.equal(contentOf(mock.last()), 'stale 2', 'with its body');
  assert.equal(mock.connections, 2);
  assert.equal((await chat(proxy, 'stale 2')).cache, 'HIT');
  // a fresh connection that fails is not retried: the answer is the error
  mock.handler = async (req) => { req.socket.destroy(); return true; };
  const p2 = await startProxy(t, { upstream: mock });
  const before = mock.count();
  const bad = await chat(p2, 'hung up');
  assertProxyError(assert, bad, 502, 'upstream_error');
  assert.equal(mock.count(), before + 1, 'no retry on a fresh connection');
});

test('an HTTP/1.0 answer delimited by the close is passed on and not stored', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'by close' } }] });
  answerFor(mock, 'close-delimited', (req) => {
    req.socket.end(`HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nX-Up: close\r\n\r\n${body}`);
  });
  const r1 = await chat(proxy, 'close-delimited');
  assert.equal(r1.status, 200);
  assert.equal(r1.cache, 'MISS');
  assert.equal(r1.text, body);
  assert.equal(r1.headers['x-up'], 'close');
  const r2 = await chat(proxy, 'close-delimited');
  assert.equal(r2.cache, 'MISS', 'a body ended by the close could have been cut: not stored');
  assert.equal(r2.text, body);
  assert.equal(mock.count(), 2);
  await stillServing(proxy, mock, 'a close-delimited answer');
});

test('a chunked answer with trailers: the body is stored, the trailers are not headers', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = JSON.stringify({ id: 'c', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'chunked '.repeat(100) } }] });
  answerFor(mock, 'chunked trailers', async (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', trailer: 'x-checksum' });
    res.write(body.slice(0, 100));
    await sleep(20);
    res.write(body.slice(100));
    res.addTrailers({ 'x-checksum': 'abc123' });
    res.end();
  });
  const r1 = await chat(proxy, 'chunked trailers');
  assert.equal(r1.status, 200);
  assert.equal(r1.cache, 'MISS');
  assert.equal(r1.text, body);
  assert.equal(r1.headers['x-checksum'], undefined);
  const r2 = await chat(proxy, 'chunked trailers');
  assert.equal(r2.cache, 'HIT');
  assert.equal(r2.text, body);
  assert.equal(mock.count(), 1);
});

test('interim 100 Continue and 103 Early Hints before the final answer are skipped', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--workers', '1'] });
  answerFor(mock, 'interim', (req, res, rec) => {
    res.writeContinue();
    res.writeEarlyHints({ link: '</hint.css>; rel=preload' });
    const body = JSON.stringify({ id: 'i', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: echoText('interim') } }], mock_seq: rec.seq });
    res.writeHead(200, { 'content-type': 'application/json', 'x-final': 'yes' });
    res.end(body);
  });
  const r1 = await chat(proxy, 'interim');
  assert.equal(r1.status, 200);
  assert.equal(r1.cache, 'MISS');
  assert.equal(r1.headers['x-final'], 'yes');
  assert.equal(r1.headers.link, undefined, 'header lines of an interim answer are not the answer\'s');
  assert.equal(r1.json.choices[0].message.content, echoText('interim'));
  assert.equal((await chat(proxy, 'interim')).cache, 'HIT');
  await stillServing(proxy, mock, 'interim answers');
  assert.equal(mock.connections, 1, 'the connection stays usable');
});

test('HEAD and a 304 with a Content-Length have no body: nothing waits for one', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--workers', '1'] });
  const h = await request(proxy, { method: 'HEAD', path: '/v1/models', timeoutMs: 3000 });
  assert.equal(h.status, 200);
  assert.equal(h.body.length, 0);
  assert.equal(mock.last().method, 'HEAD');
  mock.handler = async (req, res, rec) => {
    if (rec.path !== '/v1/not-modified') return false;
    res.writeHead(304, { etag: '"v1"', 'content-length': '1234' }); // the length of what is not sent
    res.end();
    return true;
  };
  const nm = await request(proxy, { path: '/v1/not-modified', timeoutMs: 3000 });
  assert.equal(nm.status, 304);
  assert.equal(nm.headers.etag, '"v1"');
  await stillServing(proxy, mock, 'HEAD and 304');
  assert.equal(mock.connections, 1, 'one connection did it all');
});

test('a folded header line (obs-fold) reaches the client as one line', async (t) => {
  // llhttp drops the line break and keeps the continuation's blanks
  const { mock, proxy } = await setup(t);
  answerFor(mock, 'folded', (req) => {
    req.socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Fold: one\r\n  two\r\nX-After: yes\r\nContent-Length: 2\r\n\r\n{}');
  });
  const r = await chat(proxy, 'folded');
  assert.equal(r.status, 200);
  assert.match(r.headers['x-fold'], /^one\s+two$/);
  assert.equal(r.headers['x-after'], 'yes');
  assert.equal(r.text, '{}');
});

test('an event stream is told by its Content-Type line (any spacing), never by text in another header', async (t) => {
  const { mock, proxy } = await setup(t);
  const sse = 'data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n' +
    'data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
  answerFor(mock, 'tight sse', (req) => {
    req.socket.end(`HTTP/1.1 200 OK\r\nContent-Type:text/event-stream\r\nContent-Length: ${Buffer.byteLength(sse)}\r\n\r\n${sse}`);
  });
  const a = await chat(proxy, 'tight sse');
  assert.equal(a.status, 200);
  assert.equal(a.text, sse);
  const b = await chat(proxy, 'tight sse');
  assert.equal(b.cache, 'HIT', 'a whole event stream is stored although its head says Content-Type:text/event-stream without a space');
  assert.equal(b.text, sse);
  assert.equal(b.headers['transfer-encoding'], 'chunked', 'and replayed as a stream, chunk by chunk');

  const json = '{"id":"j","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}';
  answerFor(mock, 'note header', (req) => {
    req.socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Note: content-type: text/event-stream\r\n' +
      `Content-Length: ${json.length}\r\n\r\n${json}`);
  });
  const c = await chat(proxy, 'note header');
  assert.equal(c.text, json);
  const d = await chat(proxy, 'note header');
  assert.equal(d.cache, 'HIT', 'a JSON answer is stored as JSON whatever another header says');
  assert.equal(d.text, json);
  assert.equal(d.headers['content-length'], String(json.length));
  assert.equal(mock.count(), 2);
});

test('a response header block over 256 KiB is refused with 502', async (t) => {
  const { mock, proxy } = await setup(t);
  answerFor(mock, 'huge head', (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-big': 'h'.repeat(300 * 1024) });
    res.end('{}');
  });
  const r = await chat(proxy, 'huge head');
  assertProxyError(assert, r, 502, 'upstream_error');
  await stillServing(proxy, mock, 'a huge header block');
});

test('gzip and deflate bodies are decoded (asked for or not); the cache holds identity bytes', async (t) => {
  const { mock, proxy } = await setup(t);
  for (const enc of ['gzip', 'deflate', 'deflate-raw']) {
    const headers = { 'x-mock-behavior': `encoding=${enc}` };
    const r1 = await chat(proxy, `coded ${enc}`, { headers });
    assert.equal(r1.status, 200, `${enc}: ${r1.text}`);
    assert.equal(r1.cache, 'MISS');
    assert.equal(r1.headers['content-encoding'], undefined, enc);
    assert.equal(r1.json.choices[0].message.content, echoText(`coded ${enc}`), enc);
    const r2 = await chat(proxy, `coded ${enc}`, { headers });
    assert.equal(r2.cache, 'HIT', enc);
    assert.equal(r2.text, r1.text, enc);
  }
  assert.equal(mock.count(), 3);
  // a large body: many reads in, many decoded pieces out per read
  const long = 'z'.repeat(600 * 1024);
  const big = await chat(proxy, long, { headers: { 'x-mock-behavior': 'encoding=gzip' } });
  assert.equal(big.status, 200);
  assert.equal(big.json.choices[0].message.content, echoText(long));
});

test('malformed and cut answers give 502 upstream_error and are not stored', async (t) => {
  const { mock, proxy } = await setup(t);
  const answers = {
    'not http': 'NOT HTTP AT ALL\r\n\r\n',
    'head cut': 'HTTP/1.1 200 OK\r\nContent-Type: application/js',
    'body cut': 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id":',
    'bad chunk': 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
    'chunks cut': 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n',
    'gzip cut': Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\n'),
      (await import('node:zlib')).gzipSync(Buffer.from('{"id":"x","long":"' + 'y'.repeat(1000) + '"}')).subarray(0, 20)]),
    'gzip garbage': 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!',
    'switching': 'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n',
  };
  for (const [label, bytes] of Object.entries(answers)) answerFor(mock, label, (req) => { req.socket.end(bytes); });
  // before the head went out: 502; after (a cut body): the client sees its answer cut
  const headFirst = new Set(['body cut', 'bad chunk', 'chunks cut', 'gzip cut', 'gzip garbage']);
  for (const label of Object.keys(answers)) {
    const r = await chat(proxy, label).catch((error) => ({ error }));
    if (headFirst.has(label)) assert.ok(r.error, `${label}: the client sees the cut, got ${r.status} ${r.text}`);
    else assert.equal(r.status, 502, `${label}: ${r.error || r.text}`);
    const again = await chat(proxy, label).catch((error) => ({ error }));
    assert.ok(again.error || again.cache !== 'HIT', `${label} was not stored`);
  }
  await stillServing(proxy, mock, 'malformed answers');
});

test('an encoding the client cannot decode gives 502 upstream_error', async (t) => {
  const { mock, proxy } = await setup(t);
  for (const enc of ['x-unknown', 'br']) {
    const r = await chat(proxy, `undecodable ${enc}`, { headers: { 'x-mock-behavior': `encoding=${enc}` } });
    assertProxyError(assert, r, 502, 'upstream_error');
    assert.notEqual((await chat(proxy, `undecodable ${enc}`, { headers: { 'x-mock-behavior': `encoding=${enc}` } })).cache, 'HIT');
  }
  await stillServing(proxy, mock, 'undecodable bodies');
});

test('connect refused gives 502 upstream_unreachable at once', async (t) => {
  const dead = await closedPort();
  const proxy = await startProxy(t, { upstream: `http://127.0.0.1:${dead}` });
  const t0 = performance.now();
  const r = await chat(proxy, 'refused');
  assertProxyError(assert, r, 502, 'upstream_unreachable');
  assert.ok(performance.now() - t0 < 2000, `answered after ${performance.now() - t0} ms`);
});

test('an upstream slower than --upstream-timeout gives 504; its connection is not reused', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--upstream-timeout', '1s', '--workers', '1'] });
  assert.equal((await chat(proxy, 'warm up')).status, 200);
  const t0 = performance.now();
  const r = await chat(proxy, 'slow', { headers: { 'x-mock-behavior': 'delay=2500' } });
  assertProxyError(assert, r, 504, 'upstream_timeout');
  assert.ok(performance.now() - t0 >= 800 && performance.now() - t0 < 2400, `504 after ${performance.now() - t0} ms`);
  await stillServing(proxy, mock, 'a timeout');
  assert.equal(mock.connections, 2, 'the timed-out connection was closed, a new one opened');
});

test('a hostname upstream (localhost) is resolved; Host keeps the name', async (t) => {
  const mock = await mockFor(t, startMock);
  const proxy = await startProxy(t, { upstream: `http://localhost:${mock.port}`, args: ['--workers', '1'] });
  for (let i = 0; i < 3; i++) assert.equal((await chat(proxy, `by name ${i}`)).status, 200);
  assert.equal(mock.last().headers.host, `localhost:${mock.port}`);
  assert.equal(mock.count(), 3);
  assert.equal(mock.connections, 1);
  // a name that does not resolve is unreachable
  const nx = await startProxy(t, { upstream: 'http://no-such-host.invalid:80' });
  assertProxyError(assert, await chat(nx, 'nxdomain'), 502, 'upstream_unreachable');
});

test('an IPv6 literal upstream (http://[::1]:port)', async (t) => {
  let mock;
  try {
    mock = await startMock({ host: '::1' });
  } catch (e) {
    t.skip(`no IPv6 loopback here: ${e.code || e.message}`);
    return;
  }
  t.after(() => mock.close());
  const proxy = await startProxy(t, { upstream: mock.url });
  const r = await chat(proxy, 'over v6');
  assert.equal(r.status, 200);
  assert.equal(r.json.choices[0].message.content, echoText('over v6'));
  assert.equal(mock.last().headers.host, `[::1]:${mock.port}`);
  assert.equal((await chat(proxy, 'over v6')).cache, 'HIT');
});

test('a second SIGTERM cancels upstream exchanges in flight; the proxy exits cleanly', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--workers', '1'] });
  assert.equal((await chat(proxy, 'pooled')).status, 200); // and an idle connection in the pool
  const slow = chat(proxy, 'cancel me', { headers: { 'x-mock-behavior': 'delay=5000' } });
  const stream = chat(proxy, 'cancel my stream', { extra: { stream: true }, headers: { 'x-mock-behavior': 'chunks=40,chunk-delay=200' } })
    .catch((error) => ({ error }));
  await mock.waitForRequests(3);
  await sleep(300); // the stream's head and first events are out
  proxy.kill('SIGTERM');
  await sleep(200);
  proxy.kill('SIGTERM');
  const st = await Promise.race([proxy.exited, sleep(5000).then(() => null)]);
  assert.ok(st, 'the proxy exits');
  assert.deepEqual({ code: st.code, signal: st.signal }, { code: 0, signal: null });
  assertProxyError(assert, await slow, 503, 'shutting_down');
  const s = await stream;
  assert.ok(s.error || !/\[DONE\]/.test(s.text), 'the stream was cut, not completed');
});
