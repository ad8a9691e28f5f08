// http.test.mjs — HTTP/1.1 on the client side: keep-alive, pipelining, chunked
// request bodies, Expect: 100-continue, client and idle timeouts.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setup, chat, chatBody, curl, parseCurlInclude, makeTmpDir, sleep } from './lib/setup.mjs';
import { RawClient, rawRequest, chunkedPieces, parseResponses } from './lib/raw.mjs';
import { echoText } from './lib/mock.mjs';

async function connect(t, proxy) {
  const c = await RawClient.connect(proxy.port);
  t.after(() => c.destroy());
  return c;
}

test('keep-alive: several requests on one connection; Connection: close is honoured', async (t) => {
  const { mock, proxy } = await setup(t);
  const c = await connect(t, proxy);
  await c.write(rawRequest('POST', '/v1/chat/completions', {}, chatBody('ka')));
  let { finals } = await c.readResponses(1);
  assert.equal(finals[0].status, 200);
  assert.equal(finals[0].headers['x-promptcache-status'], 'MISS');
  assert.ok(!/close/i.test(finals[0].headers.connection || ''), 'HTTP/1.1 keeps the connection by default');
  await sleep(50);
  assert.equal(c.closed, false, 'connection still open after the first response');
  await c.write(rawRequest('POST', '/v1/chat/completions', {}, chatBody('ka')));
  ({ finals } = await c.readResponses(2));
  assert.equal(finals[1].status, 200);
  assert.equal(finals[1].headers['x-promptcache-status'], 'HIT');
  assert.equal(finals[1].text, finals[0].text);
  await c.write(rawRequest('GET', '/v1/models', { Connection: 'close' }));
  ({ finals } = await c.readResponses(3));
  assert.equal(finals[2].status, 200);
  assert.equal(finals[2].headers['x-promptcache-status'], 'BYPASS');
  assert.ok(await c.waitClose(3000), 'the proxy closes after a response to Connection: close');
  assert.equal(mock.count(), 2);
});

test('HTTP/1.0 request is answered and the connection closed', async (t) => {
  const { mock, proxy } = await setup(t);
  const c = await connect(t, proxy);
  await c.write('GET /v1/models HTTP/1.0\r\nHost: x\r\n\r\n');
  assert.ok(await c.waitClose(5000), 'closed after the HTTP/1.0 response');
  const { finals } = await c.readResponses(1, 100);
  assert.equal(finals[0].status, 200);
  assert.ok(JSON.parse(finals[0].text).data.length > 0);
  assert.equal(mock.count(), 1);
});

test('pipelined requests sent in one write are answered in order', async (t) => {
  const { mock, proxy } = await setup(t);
  const c = await connect(t, proxy);
  // the first answer is the slowest upstream: a proxy that answers as upstream
  // finishes would reorder them
  const batch = Buffer.concat([
    rawRequest('POST', '/v1/chat/completions', { 'x-mock-behavior': 'delay=300' }, chatBody('one')),
    rawRequest('GET', '/v1/models'),
    rawRequest('POST', '/v1/chat/completions', { 'x-mock-behavior': 'delay=100' }, chatBody('three')),
  ]);
  await c.write(batch);
  const { finals } = await c.readResponses(3, 8000);
  assert.equal(finals.length, 3);
  assert.deepEqual(finals.map((r) => r.status), [200, 200, 200]);
  assert.equal(JSON.parse(finals[0].text).choices[0].message.content, echoText('one'));
  assert.equal(JSON.parse(finals[1].text).object, 'list');
  assert.equal(JSON.parse(finals[2].text).choices[0].message.content, echoText('three'));
  assert.deepEqual(finals.map((r) => r.headers['x-promptcache-status']), ['MISS', 'BYPASS', 'MISS']);
  assert.equal(mock.count(), 3);
  // and the connection is still usable
  await c.write(rawRequest('POST', '/v1/chat/completions', {}, chatBody('one')));
  const more = await c.readResponses(4);
  assert.equal(more.finals[3].headers['x-promptcache-status'], 'HIT');
  assert.equal(more.finals[3].text, finals[0].text);
});

test('pipelining: a cache HIT queued behind a slow MISS waits its turn', async (t) => {
  const { mock, proxy } = await setup(t);
  const cached = await chat(proxy, 'already cached');
  assert.equal(cached.cache, 'MISS');
  const c = await connect(t, proxy);
  await c.write(Buffer.concat([
    rawRequest('POST', '/v1/chat/completions', { 'x-mock-behavior': 'delay=400' }, chatBody('slow first')),
    rawRequest('POST', '/v1/chat/completions', {}, chatBody('already cached')),
    rawRequest('POST', '/v1/chat/completions', { 'x-mock-behavior': 'status=429' }, chatBody('error third')),
    rawRequest('POST', '/v1/chat/completions', {}, chatBody('already cached')),
  ]));
  const { finals } = await c.readResponses(4, 8000);
  assert.deepEqual(finals.map((r) => r.headers['x-promptcache-status']), ['MISS', 'HIT', 'MISS', 'HIT']);
  assert.deepEqual(finals.map((r) => r.status), [200, 200, 429, 200]);
  assert.equal(JSON.parse(finals[0].text).choices[0].message.content, echoText('slow first'));
  assert.equal(finals[1].text, cached.text);
  assert.equal(finals[3].text, cached.text);
  assert.equal(mock.count(), 3);
});

test('HEAD and 204 answers carry no body and keep the connection usable', async (t) => {
  const { mock, proxy } = await setup(t);
  mock.handler = async (req, res, rec) => {
    if (rec.path !== '/v1/nothing') return false;
    res.writeHead(204, { 'x-mock-seq': String(rec.seq) });
    res.end();
    return true;
  };
  const c = await connect(t, proxy);
  await c.write(rawRequest('HEAD', '/v1/models'));
  // the parser cannot know a HEAD answer has no body: wait for the head, check nothing follows
  const gotHead = await c.waitUntil(() => c.buf.includes('\r\n\r\n'), 5000);
  assert.ok(gotHead, 'a HEAD answer arrived');
  const head = c.buf.toString('latin1');
  assert.match(head, /^HTTP\/1\.1 200 /);
  assert.match(head, /x-promptcache-status: BYPASS/i);
  await c.write(rawRequest('DELETE', '/v1/nothing'));
  // the 204 has no body by definition: the standard parser handles it and what follows
  const afterHead = () => parseResponses(c.buf.subarray(Buffer.byteLength(head, 'latin1')), c.closed).responses;
  await c.waitUntil(() => afterHead().length >= 1, 5000);
  await c.write(rawRequest('GET', '/v1/models'));
  await c.waitUntil(() => afterHead().length >= 2, 5000);
  const rest = afterHead();
  assert.deepEqual(rest.map((r) => r.status), [204, 200], `answers after the HEAD, in order: ${JSON.stringify(c.buf.toString('latin1').slice(0, 1500))}`);
  assert.equal(rest[0].body.length, 0);
  assert.equal(JSON.parse(rest[1].text).object, 'list', 'the HEAD and 204 answers left no stray body bytes');
  assert.deepEqual(mock.requests.map((r) => r.method), ['HEAD', 'DELETE', 'GET']);
});

test('many concurrent connections are all answered correctly, then all hit', async (t) => {
  const { mock, proxy } = await setup(t);
  const N = 60;
  const prompts = Array.from({ length: N }, (_, i) => `parallel prompt #${i}`);
  const first = await Promise.all(prompts.map((p, i) => chat(proxy, p, { headers: { 'x-mock-behavior': `delay=${(i * 7) % 50}` } })));
  first.forEach((r, i) => {
    assert.equal(r.status, 200);
    assert.equal(r.cache, 'MISS');
    assert.equal(r.json.choices[0].message.content, echoText(prompts[i]), `answer #${i} belongs to request #${i}`);
  });
  assert.equal(mock.count(), N);
  const second = await Promise.all(prompts.map((p) => chat(proxy, p)));
  second.forEach((r, i) => {
    assert.equal(r.cache, 'HIT', `#${i}`);
    assert.equal(r.text, first[i].text, `#${i}`);
  });
  assert.equal(mock.count(), N);
});

test('a chunked request body is reassembled, forwarded and keyed like a Content-Length one', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = JSON.stringify(chatBody('chunked upload', { temperature: 0.25 }));
  const c = await connect(t, proxy);
  await c.write(rawRequest('POST', '/v1/chat/completions', { 'Transfer-Encoding': 'chunked', 'Content-Type': 'application/json' }));
  for (const piece of chunkedPieces(body, 3)) {
    await sleep(30);
    await c.write(piece);
  }
  const { finals } = await c.readResponses(1);
  assert.equal(finals[0].status, 200);
  assert.equal(finals[0].headers['x-promptcache-status'], 'MISS');
  assert.equal(JSON.parse(finals[0].text).choices[0].message.content, echoText('chunked upload'));
  assert.equal(mock.count(), 1);
  assert.equal(mock.last().text, body, 'upstream got the whole body');
  const r2 = await chat(proxy, 'chunked upload', { extra: { temperature: 0.25 } });
  assert.equal(r2.cache, 'HIT', 'same body sent with Content-Length hits');
  assert.equal(r2.key, finals[0].headers['x-promptcache-key']);
  assert.equal(mock.count(), 1);
});

test('Expect: 100-continue: the proxy answers 100 Continue before the body is sent', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = Buffer.from(JSON.stringify(chatBody('expect continue')));
  const c = await connect(t, proxy);
  await c.write(rawRequest('POST', '/v1/chat/completions', {
    'Content-Type': 'application/json',
    'Content-Length': String(body.length),
    Expect: '100-continue',
  }));
  const got100 = await c.waitUntil(() => /^HTTP\/1\.1 100 /.test(c.buf.toString('latin1')), 3000);
  assert.ok(got100, `expected "HTTP/1.1 100 Continue" before sending the body; got: ${JSON.stringify(c.buf.toString('latin1'))}`);
  assert.equal(mock.count(), 0, 'nothing forwarded before the body');
  await c.write(body);
  const { responses, finals } = await c.readResponses(1);
  assert.equal(responses[0].status, 100);
  assert.equal(finals[0].status, 200);
  assert.equal(finals[0].headers['x-promptcache-status'], 'MISS');
  assert.equal(mock.count(), 1);
  assert.equal(mock.last().text, body.toString());
  assert.equal(mock.last().headers.expect, undefined, 'Expect is not forwarded: the proxy already has the body');
});

test('curl with a 2 MB body (Expect: 100-continue) goes through and is cached', async (t) => {
  const { mock, proxy } = await setup(t);
  const dir = makeTmpDir(t);
  const file = path.join(dir, 'big.json');
  const big = 'x'.repeat(2 << 20);
  fs.writeFileSync(file, JSON.stringify(chatBody(big)));
  const args = ['-v', '-i', '--expect100-timeout', '5', '-H', 'content-type: application/json', '--data-binary', `@${file}`, `${proxy.url}/v1/chat/completions`];
  const a = await curl(args);
  assert.equal(a.code, 0, a.stderr.slice(-2000));
  assert.match(a.stderr, /> Expect: 100-continue/i, 'curl asked for 100-continue');
  assert.match(a.stderr, /< HTTP\/1\.1 100 Continue/i, 'the proxy answered 100 Continue');
  const ra = parseCurlInclude(a.stdout);
  assert.equal(ra.status, 200);
  assert.equal(ra.headers['x-promptcache-status'], 'MISS');
  assert.equal(JSON.parse(ra.text).choices[0].message.content, echoText(big));
  assert.equal(mock.count(), 1);
  assert.equal(mock.last().body.length, fs.statSync(file).size, 'upstream got the whole body');
  const b = await curl(args);
  const rb = parseCurlInclude(b.stdout);
  assert.equal(rb.status, 200);
  assert.equal(rb.headers['x-promptcache-status'], 'HIT');
  assert.ok(rb.body.equals(ra.body));
  assert.equal(mock.count(), 1);
});

async function expectTimedOut(c, started, what) {
  const closed = await c.waitClose(4000);
  const elapsed = (c.closedAt || performance.now()) - started;
  assert.ok(closed, `${what}: the proxy neither answered 408 nor closed within 4 s`);
  const responses = c.parsed().responses.filter((r) => !r.interim);
  if (responses.length) {
    const r = responses[0];
    assert.equal(r.status, 408, `${what}: ${r.status} ${r.text}`);
    const j = JSON.parse(r.text);
    assert.equal(j.error.code, 'request_timeout');
    assert.equal(j.error.type, 'promptcache_error');
  }
  assert.ok(elapsed >= 800, `${what}: timed out too early (${elapsed} ms < 1 s)`);
  assert.ok(elapsed <= 3500, `${what}: timed out too late (${elapsed} ms)`);
}

test('--client-timeout 1s: a request that does not arrive completely in time gets 408 or is closed', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--client-timeout', '1s'] });
  // (a) headers never finish
  const a = await connect(t, proxy);
  let started = performance.now();
  await a.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n');
  // (b) body never finishes
  const b = await connect(t, proxy);
  await b.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":');
  await Promise.all([expectTimedOut(a, started, 'slow headers'), expectTimedOut(b, started, 'slow body')]);
  assert.equal(mock.count(), 0, 'nothing reached upstream');
  // (c) a trickling client that keeps sending, but too slowly overall
  const c = await connect(t, proxy);
  started = performance.now();
  await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n');
  const trickle = (async () => {
    for (let i = 0; i < 12 && !c.closed; i++) {
      await sleep(250);
      if (!c.closed) c.socket.write(`X-Trickle-${i}: ${i}\r\n`);
    }
  })();
  await expectTimedOut(c, started, 'trickling headers');
  await trickle;
  // the proxy keeps serving
  const ok = await chat(proxy, 'after client timeout');
  assert.equal(ok.status, 200);
  assert.equal(mock.count(), 1);
});

test('--client-timeout 1s does not limit a slow upstream answer', async (t) => {
  const { proxy } = await setup(t, { args: ['--client-timeout', '1s'] });
  const r = await chat(proxy, 'slow upstream', { headers: { 'x-mock-behavior': 'delay=1600' } });
  assert.equal(r.status, 200);
  assert.equal(r.json.choices[0].message.content, echoText('slow upstream'));
  assert.ok(r.ms >= 1500);
});

test('--idle-timeout 1s closes an idle keep-alive connection; activity keeps it open', async (t) => {
  const { proxy } = await setup(t, { args: ['--idle-timeout', '1s'] });
  // activity every 500 ms keeps the connection alive beyond 1 s
  const busy = await connect(t, proxy);
  for (let i = 1; i <= 3; i++) {
    await busy.write(rawRequest('GET', '/v1/models'));
    const { finals } = await busy.readResponses(i);
    assert.equal(finals[i - 1].status, 200);
    if (i < 3) await sleep(500);
  }
  assert.equal(busy.closed, false, 'a connection in use is not closed by the idle timeout');
  // then it goes idle
  const idleFrom = performance.now();
  assert.ok(await busy.waitClose(4000), 'the idle connection was closed');
  const elapsed = busy.closedAt - idleFrom;
  assert.ok(elapsed >= 800 && elapsed <= 3500, `closed ${elapsed} ms after going idle (expected ~1 s)`);
  const ok = await chat(proxy, 'still serving');
  assert.equal(ok.status, 200);
});
