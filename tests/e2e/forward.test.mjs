// forward.test.mjs — what reaches upstream (method, path, query, body, headers,
// Host), routing with --route, and content-encoding between upstream and client.
import test from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { setup, startMock, mockFor, startProxy, request, chat, chatBody, curl, parseCurlInclude, HEX32 } from './lib/setup.mjs';
import { RawClient, rawRequest } from './lib/raw.mjs';
import { echoText } from './lib/mock.mjs';

test('method, path, query, body and end-to-end headers reach upstream unchanged; Host is the upstream', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = '{ "model" : "gpt-4o-mini",\n  "messages": [{"role":"user","content":"forward me"}],  "temperature": 1.0 }';
  const r = await request(proxy, {
    method: 'POST',
    path: '/v1/chat/completions?z=1&a=2&q=a%20b%2Fc&e=',
    body,
    headers: {
      authorization: 'Bearer sk-test-forward',
      'content-type': 'application/json',
      'openai-organization': 'org-forward',
      'x-custom-header': 'custom value',
      'user-agent': 'e2e-client/1.0',
      accept: 'application/json',
    },
  });
  assert.equal(r.status, 200);
  assert.equal(r.cache, 'MISS');
  assert.equal(mock.count(), 1);
  const seen = mock.last();
  assert.equal(seen.method, 'POST');
  assert.equal(seen.url, '/v1/chat/completions?z=1&a=2&q=a%20b%2Fc&e=', 'path and query forwarded as sent');
  assert.equal(seen.text, body, 'the body is forwarded byte for byte, not re-encoded');
  assert.equal(seen.headers.authorization, 'Bearer sk-test-forward');
  assert.match(seen.headers['content-type'], /^application\/json/);
  assert.equal(seen.headers['openai-organization'], 'org-forward');
  assert.equal(seen.headers['x-custom-header'], 'custom value');
  assert.equal(seen.headers['user-agent'], 'e2e-client/1.0');
  assert.equal(seen.headers.host, `127.0.0.1:${mock.port}`, 'Host is the upstream host:port, not the client\'s');
  assert.equal(r.json.choices[0].message.content, echoText('forward me'));
});

test('hop-by-hop headers and X-PromptCache-* control headers are not forwarded', async (t) => {
  const { mock, proxy } = await setup(t);
  const c = await RawClient.connect(proxy.port);
  t.after(() => c.destroy());
  await c.write(rawRequest('POST', '/v1/chat/completions', {
    Host: 'client.example',
    Connection: 'keep-alive',
    'Keep-Alive': 'timeout=99, max=7',
    'Proxy-Authorization': 'Basic cHJveHk6c2VjcmV0',
    'Proxy-Connection': 'keep-alive',
    TE: 'trailers',
    Trailer: 'X-Checksum',
    Upgrade: 'h2c-nope',
    'X-PromptCache-Namespace': 'ns-hop',
    'X-PromptCache-TTL': '10m',
    'X-Kept': 'kept-value',
  }, chatBody('hop')));
  const { finals } = await c.readResponses(1);
  assert.equal(finals[0].status, 200);
  const h = mock.last().headers;
  assert.equal(h['keep-alive'], undefined, 'Keep-Alive not forwarded');
  assert.equal(h['proxy-authorization'], undefined, 'Proxy-Authorization not forwarded');
  assert.equal(h['proxy-connection'], undefined, 'Proxy-Connection not forwarded');
  assert.equal(h.te, undefined, 'TE not forwarded');
  assert.equal(h.trailer, undefined, 'Trailer not forwarded');
  assert.equal(h.upgrade, undefined, 'Upgrade not forwarded');
  assert.equal(h['x-promptcache-namespace'], undefined, 'X-PromptCache-Namespace not forwarded');
  assert.equal(h['x-promptcache-ttl'], undefined, 'X-PromptCache-TTL not forwarded');
  assert.equal(h['x-kept'], 'kept-value', 'end-to-end headers are forwarded');
  assert.equal(h.host, `127.0.0.1:${mock.port}`);
  assert.ok(!mock.last().rawHeaders.some((v) => /cHJveHk6c2VjcmV0|h2c-nope|X-Checksum|timeout=99/.test(v)), `no hop-by-hop value reached upstream: ${JSON.stringify(mock.last().rawHeaders)}`);
});

test('--route sends a prefix to another upstream and strips it; the longest prefix wins', async (t) => {
  const main = await mockFor(t, startMock);
  const anth = await mockFor(t, startMock);
  const beta = await mockFor(t, startMock);
  const proxy = await startProxy(t, {
    upstream: main,
    args: ['--route', `/anthropic=${anth.url}`, '--route', `/anthropic/beta=${beta.url}`],
  });
  const msg = { model: 'claude-3-5-haiku-latest', max_tokens: 16, messages: [{ role: 'user', content: 'routed' }] };
  const r1 = await request(proxy, { method: 'POST', path: '/anthropic/v1/messages?x=1', body: msg, headers: { 'x-api-key': 'sk-ant-route', 'anthropic-version': '2023-06-01' } });
  assert.equal(r1.status, 200);
  assert.equal(r1.cache, 'MISS', 'the stripped path /v1/messages is cacheable');
  assert.match(r1.key || '', HEX32);
  assert.equal(r1.json.content[0].text, echoText('routed'));
  assert.equal(anth.count(), 1);
  assert.equal(anth.last().url, '/v1/messages?x=1', 'prefix stripped, query kept');
  assert.equal(anth.last().headers.host, `127.0.0.1:${anth.port}`);
  assert.equal(anth.last().headers['x-api-key'], 'sk-ant-route');
  const r2 = await request(proxy, { method: 'POST', path: '/anthropic/v1/messages?x=1', body: msg, headers: { 'x-api-key': 'sk-ant-route', 'anthropic-version': '2023-06-01' } });
  assert.equal(r2.cache, 'HIT');
  assert.equal(r2.text, r1.text);
  assert.equal(anth.count(), 1);

  const b = await request(proxy, { method: 'POST', path: '/anthropic/beta/v1/messages', body: msg });
  assert.equal(b.status, 200);
  assert.equal(beta.count(), 1, 'the longer prefix /anthropic/beta wins');
  assert.equal(beta.last().url, '/v1/messages');
  assert.equal(anth.count(), 1);

  const o = await chat(proxy, 'default route');
  assert.equal(o.status, 200);
  assert.equal(main.count(), 1, 'unrouted paths go to --upstream');
  assert.equal(main.last().url, '/v1/chat/completions');

  const models = await request(proxy, { path: '/anthropic/v1/models' });
  assert.equal(models.cache, 'BYPASS');
  assert.equal(anth.last().url, '/v1/models');
  assert.equal(main.count(), 1);
  assert.equal(beta.count(), 1);
});

test('the same request on two routes has two keys', async (t) => {
  const a = await mockFor(t, startMock);
  const b = await mockFor(t, startMock);
  const proxy = await startProxy(t, { upstream: a, args: ['--route', `/b=${b.url}`] });
  const r1 = await chat(proxy, 'two routes');
  const r2 = await chat(proxy, 'two routes', { path: '/b/v1/chat/completions' });
  assert.deepEqual([r1.cache, r2.cache], ['MISS', 'MISS']);
  assert.notEqual(r1.key, r2.key);
  assert.equal(a.count(), 1);
  assert.equal(b.count(), 1);
});

test('a gzip-encoded upstream answer reaches clients decoded (or correctly labelled) and is cached', async (t) => {
  const { mock, proxy } = await setup(t);
  const headers = { 'x-mock-behavior': 'gzip-force' };
  const r1 = await chat(proxy, 'zipped', { headers });
  assert.equal(r1.status, 200);
  assert.equal(r1.cache, 'MISS');
  assert.ok(!/gzip/i.test(r1.headers['content-encoding'] || ''), `client sent no Accept-Encoding, got Content-Encoding ${r1.headers['content-encoding']}`);
  assert.equal(r1.json.choices[0].message.content, echoText('zipped'));
  const r2 = await chat(proxy, 'zipped', { headers });
  assert.equal(r2.cache, 'HIT');
  assert.ok(!/gzip/i.test(r2.headers['content-encoding'] || ''));
  assert.equal(r2.text, r1.text, 'the cache stores identity bytes');
  // a client that accepts gzip may get either; the body must decode per its label
  const r3 = await chat(proxy, 'zipped', { headers: { ...headers, 'accept-encoding': 'gzip' } });
  assert.equal(r3.cache, 'HIT');
  const decoded = /gzip/i.test(r3.headers['content-encoding'] || '') ? zlib.gunzipSync(r3.body).toString('utf8') : r3.text;
  assert.equal(decoded, r1.text);
  assert.equal(mock.count(), 1);
});

test('curl --compressed against a gzip-negotiating upstream gets the JSON', async (t) => {
  const { mock, proxy } = await setup(t);
  const args = ['-i', '--compressed', '-H', 'content-type: application/json', '-H', 'x-mock-behavior: gzip',
    '--data-binary', JSON.stringify(chatBody('curl gzip')), `${proxy.url}/v1/chat/completions`];
  const a = await curl(args);
  assert.equal(a.code, 0, a.stderr);
  const ra = parseCurlInclude(a.stdout);
  assert.equal(ra.status, 200);
  assert.equal(ra.headers['x-promptcache-status'], 'MISS');
  assert.equal(JSON.parse(ra.text).choices[0].message.content, echoText('curl gzip'));
  const b = await curl(args);
  const rb = parseCurlInclude(b.stdout);
  assert.equal(rb.headers['x-promptcache-status'], 'HIT');
  assert.equal(rb.text, ra.text);
  assert.equal(mock.count(), 1);
});
