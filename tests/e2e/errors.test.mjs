// errors.test.mjs — the proxy's own error answers: status, JSON body
// {"error":{"message","type":"promptcache_error","code"}}, and the proxy keeps
// serving afterwards.
import test from 'node:test';
import assert from 'node:assert/strict';
import { setup, startMock, mockFor, startProxy, request, chat, chatBody, closedPort, assertProxyError, stillServing } from './lib/setup.mjs';
import { RawClient, rawRequest, chunkedPieces } from './lib/raw.mjs';

async function connect(t, proxy) {
  const c = await RawClient.connect(proxy.port);
  t.after(() => c.destroy());
  return c;
}

/** The single final response on a raw connection, as {status, headers, text, json}. */
async function rawAnswer(c, timeoutMs = 5000) {
  const { finals } = await c.readResponses(1, timeoutMs);
  const r = finals[0];
  return { ...r, get json() { return JSON.parse(r.text); } };
}

test('malformed HTTP gets 400 bad_request, the connection is closed, the proxy keeps serving', async (t) => {
  const { mock, proxy } = await setup(t);
  const cases = {
    'garbage request line': 'THIS IS NOT HTTP\r\n\r\n',
    'header line without colon': 'GET /v1/models HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n',
    'bad Content-Length': 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n{}',
    'conflicting Content-Length': 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x',
    'bad chunk size': 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
    'NUL in header': 'GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n',
  };
  for (const [label, bytes] of Object.entries(cases)) {
    const c = await connect(t, proxy);
    await c.write(Buffer.from(bytes, 'latin1'));
    const r = await rawAnswer(c);
    assertProxyError(assert, r, 400, 'bad_request');
    assert.ok(await c.waitClose(3000), `${label}: connection closed after 400`);
  }
  assert.equal(mock.count(), 0, 'nothing malformed reached upstream');
  // a good request followed by garbage on one connection: the good one is answered first
  const c = await connect(t, proxy);
  await c.write(Buffer.concat([rawRequest('GET', '/v1/models'), Buffer.from('NONSENSE\r\n\r\n')]));
  const { finals } = await c.readResponses(2);
  assert.equal(finals[0].status, 200);
  assertProxyError(assert, { ...finals[1], get json() { return JSON.parse(finals[1].text); } }, 400, 'bad_request');
  assert.ok(await c.waitClose(3000));
  await stillServing(proxy, mock, '400');
});

test('request headers over 64 KiB get 431 request_header_fields_too_large; smaller ones pass', async (t) => {
  const { mock, proxy } = await setup(t);
  const one = await connect(t, proxy);
  await one.write(rawRequest('GET', '/v1/models', { 'X-Big': 'a'.repeat(70 * 1024) }));
  assertProxyError(assert, await rawAnswer(one), 431, 'request_header_fields_too_large');

  const many = await connect(t, proxy);
  const headers = {};
  for (let i = 0; i < 80; i++) headers[`X-Many-${i}`] = 'b'.repeat(1000);
  await many.write(rawRequest('POST', '/v1/chat/completions', headers, chatBody('too many headers')));
  assertProxyError(assert, await rawAnswer(many), 431, 'request_header_fields_too_large');
  assert.equal(mock.count(), 0);

  const fits = await request(proxy, { path: '/v1/models', headers: { 'x-fits': 'c'.repeat(48 * 1024) } });
  assert.equal(fits.status, 200, 'a 48 KiB header is within the limit');
  assert.equal(mock.count(), 1);
  assert.equal(mock.last().headers['x-fits'].length, 48 * 1024, 'and is forwarded whole');
  await stillServing(proxy, mock, '431');
});

test('bodies over --max-body get 413 payload_too_large; bodies within it pass', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--max-body', '1k'] });
  const bigBody = JSON.stringify(chatBody('y'.repeat(2000)));

  const cl = await connect(t, proxy);
  await cl.write(rawRequest('POST', '/v1/chat/completions', {}, bigBody));
  assertProxyError(assert, await rawAnswer(cl), 413, 'payload_too_large');

  const chunked = await connect(t, proxy);
  await chunked.write(Buffer.concat([rawRequest('POST', '/v1/chat/completions', { 'Transfer-Encoding': 'chunked' }), ...chunkedPieces(bigBody, 4)]));
  assertProxyError(assert, await rawAnswer(chunked), 413, 'payload_too_large');

  // with Expect: 100-continue the proxy can refuse before the body is sent
  const expect = await connect(t, proxy);
  await expect.write(rawRequest('POST', '/v1/chat/completions', { 'Content-Length': '5000', Expect: '100-continue' }));
  const refused = await rawAnswer(expect);
  assertProxyError(assert, refused, 413, 'payload_too_large');
  assert.ok(!expect.parsed().responses.some((r) => r.status === 100), 'no 100 Continue for a body that will be refused');
  assert.equal(mock.count(), 0, 'nothing too large reached upstream');

  const small = JSON.stringify(chatBody('z'.repeat(700)));
  assert.ok(small.length < 1000);
  const ok = await request(proxy, { method: 'POST', path: '/v1/chat/completions', body: small });
  assert.equal(ok.status, 200, `a ${small.length}-byte body is within --max-body 1k`);
  assert.equal(mock.count(), 1);
  await stillServing(proxy, mock, '413');
});

test('an unreachable upstream gives 502 upstream_unreachable; other routes keep working', async (t) => {
  const mock = await mockFor(t, startMock);
  const dead = await closedPort();
  const proxy = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--route', `/ok=${mock.url}`] });
  for (let i = 0; i < 2; i++) {
    const r = await chat(proxy, 'nobody home');
    assertProxyError(assert, r, 502, 'upstream_unreachable');
  }
  const bypass = await request(proxy, { path: '/v1/models' });
  assertProxyError(assert, bypass, 502, 'upstream_unreachable');
  const ok = await chat(proxy, 'routed ok', { path: '/ok/v1/chat/completions' });
  assert.equal(ok.status, 200);
  assert.equal(ok.cache, 'MISS');
  assert.equal(mock.count(), 1);
  const again = await chat(proxy, 'nobody home');
  assertProxyError(assert, again, 502, 'upstream_unreachable');
  const hit = await chat(proxy, 'routed ok', { path: '/ok/v1/chat/completions' });
  assert.equal(hit.cache, 'HIT');
});

test('a slow upstream gives 504 upstream_timeout after --upstream-timeout; nothing is stored', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--upstream-timeout', '1s'] });
  const t0 = performance.now();
  const r = await chat(proxy, 'too slow', { headers: { 'x-mock-behavior': 'delay=3000' } });
  const elapsed = performance.now() - t0;
  assertProxyError(assert, r, 504, 'upstream_timeout');
  assert.ok(elapsed >= 800 && elapsed < 2800, `504 after ${elapsed} ms, expected ~1 s`);
  assert.equal(mock.count(), 1);
  // a fast request is fine, and the timed-out one was not stored
  const fast = await chat(proxy, 'too slow');
  assert.equal(fast.status, 200);
  assert.equal(fast.cache, 'MISS', 'the timed-out request left nothing in the cache');
  assert.equal(mock.count(), 2);
  const hit = await chat(proxy, 'too slow');
  assert.equal(hit.cache, 'HIT');
  assert.equal(hit.text, fast.text);
  await stillServing(proxy, mock, '504');
});
