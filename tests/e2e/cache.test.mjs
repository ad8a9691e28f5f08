// cache.test.mjs — what is cached, under which key, and what is never stored.
import test from 'node:test';
import assert from 'node:assert/strict';
import { setup, request, chat, chatBody, sleep, HEX32 } from './lib/setup.mjs';
import { echoText } from './lib/mock.mjs';

const post = (proxy, path, body, headers = {}) => request(proxy, { method: 'POST', path, body, headers });

test('the second identical call reaches upstream zero times and returns the same body with HIT', async (t) => {
  const { mock, proxy } = await setup(t);
  const r1 = await chat(proxy, 'What is 2+2?');
  assert.equal(r1.status, 200);
  assert.equal(r1.cache, 'MISS');
  assert.match(r1.key || '', HEX32, `X-PromptCache-Key on a cacheable request: ${r1.key}`);
  assert.equal(r1.json.choices[0].message.content, echoText('What is 2+2?'));
  assert.equal(r1.headers.age, undefined, 'no Age header on a MISS');
  assert.equal(mock.count(), 1);

  const r2 = await chat(proxy, 'What is 2+2?');
  assert.equal(r2.status, 200);
  assert.equal(r2.cache, 'HIT');
  assert.equal(r2.key, r1.key, 'same request, same key');
  assert.equal(r2.text, r1.text, 'HIT returns the exact body bytes of the first answer');
  assert.match(String(r2.headers.age), /^\d+$/, `Age header on a HIT: ${r2.headers.age}`);
  assert.ok(Number(r2.headers.age) <= 2, `Age of a fresh entry: ${r2.headers.age}`);
  assert.match(String(r2.headers['content-type']), /^application\/json/);
  assert.equal(mock.count(), 1, 'upstream was not contacted for the HIT');

  const r3 = await chat(proxy, 'What is 2+2?');
  assert.equal(r3.cache, 'HIT');
  assert.equal(r3.text, r1.text);
  assert.equal(mock.count(), 1);
});

test('a HIT replays stored response headers, but not Set-Cookie nor rate-limit headers', async (t) => {
  const { mock, proxy } = await setup(t);
  const r1 = await chat(proxy, 'headers please');
  assert.equal(r1.cache, 'MISS');
  assert.equal(r1.headers['x-mock-custom'], 'upstream-header', 'upstream response headers reach the client');
  assert.ok(r1.headers['set-cookie'], 'Set-Cookie of a fresh answer is forwarded');
  assert.ok(r1.headers['x-ratelimit-remaining-requests'], 'rate-limit headers of a fresh answer are forwarded');
  const r2 = await chat(proxy, 'headers please');
  assert.equal(r2.cache, 'HIT');
  assert.equal(r2.headers['x-mock-custom'], 'upstream-header');
  assert.equal(r2.headers['x-mock-seq'], r1.headers['x-mock-seq'], 'stored headers replayed');
  assert.equal(r2.headers['set-cookie'], undefined, 'Set-Cookie is never stored');
  assert.equal(r2.headers['x-ratelimit-remaining-requests'], undefined, 'x-ratelimit-* is never stored');
  assert.equal(mock.count(), 1);
});

test('Age counts the seconds since the entry was stored', async (t) => {
  const { mock, proxy } = await setup(t);
  await chat(proxy, 'aging');
  await sleep(2100);
  const r = await chat(proxy, 'aging');
  assert.equal(r.cache, 'HIT');
  assert.ok(Number(r.headers.age) >= 2 && Number(r.headers.age) <= 4, `Age after ~2.1 s: ${r.headers.age}`);
  assert.equal(mock.count(), 1);
});

test('reordered / re-spaced JSON and other spellings of the same values hit the same entry', async (t) => {
  const { mock, proxy } = await setup(t);
  const base = '{"model":"gpt-4o-mini","temperature":1,"max_tokens":16,"messages":[{"role":"user","content":"café au lait/ok"}],"n":1}';
  const variants = [
    '{\n  "messages" : [ { "content" : "café au lait/ok", "role" : "user" } ],\n\t"n":1, "max_tokens": 16,\r\n "temperature": 1.0, "model": "gpt-4o-mini" }\n',
    String.raw`{"n":1.0,"temperature":1e0,"model":"gpt-4o-mini","max_tokens":1.6e1,"messages":[{"role":"user","content":"caf\u00e9 au lait\/ok"}]}`,
    String.raw`{"max_tokens":16,"n":10e-1,"messages":[{"role":"\u0075ser","content":"caf\u00E9 au lait/ok"}],"model":"gpt-4o-mini","temperature":100e-2}`,
    String.raw`{"max_tokens":0.16E+2,"n":1,"messages":[{"content":"\u0063af\u00e9\u0020au\u0020lait\u002fok","role":"user"}],"model":"gpt-4o-mini","temperature":1}`,
  ];
  const r1 = await post(proxy, '/v1/chat/completions', base);
  assert.equal(r1.cache, 'MISS');
  assert.equal(r1.json.choices[0].message.content, echoText('café au lait/ok'));
  for (const v of variants) {
    JSON.parse(v); // the variant itself is valid JSON
    const r = await post(proxy, '/v1/chat/completions', v);
    assert.equal(r.status, 200);
    assert.equal(r.cache, 'HIT', `variant should hit: ${v}`);
    assert.equal(r.key, r1.key, `variant has the same key: ${v}`);
    assert.equal(r.text, r1.text);
  }
  assert.equal(mock.count(), 1);
});

test('a changed prompt, parameter, type or array order misses with another key', async (t) => {
  const { mock, proxy } = await setup(t);
  const two = (a, b) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: a }, { role: 'user', content: b }] });
  const bodies = [
    chatBody('Tell me a joke'),
    chatBody('Tell me a joke!'),
    chatBody('Tell me a joke', { model: 'gpt-4o' }),
    chatBody('Tell me a joke', { temperature: 1 }),
    chatBody('Tell me a joke', { temperature: 1.5 }),
    chatBody('Tell me a joke', { temperature: '1' }),
    two('a', 'b'),
    two('b', 'a'),
  ];
  const keys = new Set();
  for (const [i, b] of bodies.entries()) {
    const r = await post(proxy, '/v1/chat/completions', b);
    assert.equal(r.status, 200);
    assert.equal(r.cache, 'MISS', `body #${i} must miss: ${JSON.stringify(b)}`);
    assert.match(r.key || '', HEX32);
    keys.add(r.key);
    assert.equal(mock.count(), i + 1);
  }
  assert.equal(keys.size, bodies.length, 'every distinct request has its own key');
  // and each of them is now cached under its own key
  const again = await post(proxy, '/v1/chat/completions', bodies[4]);
  assert.equal(again.cache, 'HIT');
  assert.equal(again.json.choices[0].message.content, echoText('Tell me a joke'));
  assert.equal(mock.count(), bodies.length);
});

test('another API key misses under the default --key-scope credential', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await chat(proxy, 'scoped', { headers: { authorization: 'Bearer sk-test-aaaa' } });
  const a2 = await chat(proxy, 'scoped', { headers: { authorization: 'Bearer sk-test-aaaa' } });
  const b = await chat(proxy, 'scoped', { headers: { authorization: 'Bearer sk-test-bbbb' } });
  assert.deepEqual([a.cache, a2.cache, b.cache], ['MISS', 'HIT', 'MISS']);
  assert.equal(a2.key, a.key);
  assert.notEqual(b.key, a.key, 'another credential gives another key');
  assert.equal(mock.count(), 2);
  assert.equal(mock.requests[1].headers.authorization, 'Bearer sk-test-bbbb', 'the credential is forwarded');

  const x = await post(proxy, '/v1/messages', { model: 'claude', max_tokens: 8, messages: [{ role: 'user', content: 'k' }] }, { 'x-api-key': 'sk-ant-1111' });
  const x2 = await post(proxy, '/v1/messages', { model: 'claude', max_tokens: 8, messages: [{ role: 'user', content: 'k' }] }, { 'x-api-key': 'sk-ant-1111' });
  const y = await post(proxy, '/v1/messages', { model: 'claude', max_tokens: 8, messages: [{ role: 'user', content: 'k' }] }, { 'x-api-key': 'sk-ant-2222' });
  assert.deepEqual([x.cache, x2.cache, y.cache], ['MISS', 'HIT', 'MISS']);
  assert.notEqual(y.key, x.key);

  const none = await chat(proxy, 'scoped');
  assert.equal(none.cache, 'MISS', 'no credential is not the same as some credential');
  assert.equal(mock.count(), 5);

  const azure1 = await chat(proxy, 'scoped', { headers: { 'api-key': 'azure-key-1' } });
  const azure1b = await chat(proxy, 'scoped', { headers: { 'api-key': 'azure-key-1' } });
  const azure2 = await chat(proxy, 'scoped', { headers: { 'api-key': 'azure-key-2' } });
  assert.deepEqual([azure1.cache, azure1b.cache, azure2.cache], ['MISS', 'HIT', 'MISS'], 'api-key is a credential too');
  assert.equal(mock.count(), 7);
});

test('equal strings with different escapes hit; different control characters do not', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await post(proxy, '/v1/chat/completions', String.raw`{"model":"m","messages":[{"role":"user","content":"line1\nline2\t\"q\" \\ end"}]}`);
  const b = await post(proxy, '/v1/chat/completions', String.raw`{"model":"m","messages":[{"role":"user","content":"line1\u000aline2\u0009\u0022q\u0022 \u005c end"}]}`);
  const c = await post(proxy, '/v1/chat/completions', String.raw`{"model":"m","messages":[{"role":"user","content":"line1\rline2\t\"q\" \\ end"}]}`);
  assert.deepEqual([a.cache, b.cache, c.cache], ['MISS', 'HIT', 'MISS']);
  assert.equal(mock.count(), 2);
});

test('numbers that do not fit a double are never confused with each other', async (t) => {
  const { mock, proxy } = await setup(t);
  const mk = (n) => `{"model":"m","x":${n},"messages":[{"role":"user","content":"huge"}]}`;
  const a = await post(proxy, '/v1/chat/completions', mk('1e400'));
  const b = await post(proxy, '/v1/chat/completions', mk('1e401'));
  const c = await post(proxy, '/v1/chat/completions', mk('-1e400'));
  for (const r of [a, b, c]) assert.equal(r.status, 200);
  assert.notEqual(b.cache, 'HIT', `1e401 must not be served the answer of 1e400 (key ${b.key} vs ${a.key})`);
  assert.notEqual(c.cache, 'HIT', '-1e400 must not be served the answer of 1e400');
  assert.equal(mock.count(), 3);
  assert.equal(mock.requests[1].text, mk('1e401'), 'forwarded unchanged');
});

test('bodies that differ only in invalid UTF-8 bytes are never served each other\'s answer', async (t) => {
  const { mock, proxy } = await setup(t);
  const mk = (byte) => Buffer.concat([Buffer.from('{"model":"m","messages":[{"role":"user","content":"bad '), Buffer.from([byte]), Buffer.from('"}]}')]);
  const a = await post(proxy, '/v1/chat/completions', mk(0xff));
  const b = await post(proxy, '/v1/chat/completions', mk(0xfe));
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  assert.notEqual(b.cache, 'HIT', `0xfe served the 0xff answer: ${a.cache}/${a.key} then ${b.cache}/${b.key}`);
  assert.equal(mock.count(), 2);
  assert.ok(mock.requests[0].body.equals(mk(0xff)), 'forwarded byte for byte');
});

test('deeply nested JSON does not crash the proxy', async (t) => {
  const { mock, proxy } = await setup(t);
  for (const depth of [1000, 100000]) {
    const body = `{"model":"m","deep":${'['.repeat(depth)}${']'.repeat(depth)},"messages":[]}`;
    const r = await post(proxy, '/v1/chat/completions', body);
    assert.equal(r.status, 200, `depth ${depth}`);
    assert.ok(['MISS', 'BYPASS'].includes(r.cache), `depth ${depth}: ${r.cache}`);
    assert.equal(mock.last().text, body, 'forwarded unchanged');
  }
  const unbalanced = '['.repeat(200000);
  const u = await post(proxy, '/v1/chat/completions', unbalanced);
  assert.equal(u.cache, 'BYPASS');
  const ok = await chat(proxy, 'after deep json');
  assert.equal(ok.status, 200);
  assert.equal(mock.count(), 4);
});

test('integers beyond 2^53 keep their digits in the key', async (t) => {
  const { mock, proxy } = await setup(t);
  const mk = (n) => `{"model":"gpt-4o-mini","seed":${n},"messages":[{"role":"user","content":"big"}]}`;
  const a = await post(proxy, '/v1/chat/completions', mk('9007199254740993'));
  const b = await post(proxy, '/v1/chat/completions', mk('9007199254740992'));
  const a2 = await post(proxy, '/v1/chat/completions', mk('9007199254740993'));
  assert.deepEqual([a.cache, b.cache, a2.cache], ['MISS', 'MISS', 'HIT']);
  assert.notEqual(a.key, b.key, '2^53+1 and 2^53 are different numbers');
  assert.equal(mock.count(), 2);
  assert.equal(mock.requests[0].text, mk('9007199254740993'), 'forwarded with all its digits');
});

test('another API key hits under --key-scope shared', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--key-scope', 'shared'] });
  const a = await chat(proxy, 'shared', { headers: { authorization: 'Bearer sk-test-aaaa' } });
  const b = await chat(proxy, 'shared', { headers: { authorization: 'Bearer sk-test-bbbb' } });
  assert.deepEqual([a.cache, b.cache], ['MISS', 'HIT']);
  assert.equal(b.key, a.key);
  assert.equal(b.text, a.text);
  const x = await post(proxy, '/v1/messages', { model: 'claude', max_tokens: 8, messages: [{ role: 'user', content: 'k' }] }, { 'x-api-key': 'sk-ant-1111' });
  const y = await post(proxy, '/v1/messages', { model: 'claude', max_tokens: 8, messages: [{ role: 'user', content: 'k' }] }, { 'x-api-key': 'sk-ant-2222' });
  assert.deepEqual([x.cache, y.cache], ['MISS', 'HIT']);
  assert.equal(mock.count(), 2);
});

test('X-PromptCache-Namespace gives a separate key space and is not forwarded', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await chat(proxy, 'ns', { headers: { 'x-promptcache-namespace': 'tenant-a' } });
  const b = await chat(proxy, 'ns', { headers: { 'x-promptcache-namespace': 'tenant-b' } });
  const a2 = await chat(proxy, 'ns', { headers: { 'x-promptcache-namespace': 'tenant-a' } });
  const none = await chat(proxy, 'ns');
  assert.deepEqual([a.cache, b.cache, a2.cache, none.cache], ['MISS', 'MISS', 'HIT', 'MISS']);
  assert.notEqual(a.key, b.key);
  assert.equal(a2.key, a.key);
  assert.equal(mock.count(), 3);
  for (const r of mock.requests) {
    assert.equal(r.headers['x-promptcache-namespace'], undefined, 'X-PromptCache-Namespace is not forwarded upstream');
  }
});

test('anthropic-version, anthropic-beta, openai-beta, openai-organization, openai-project are part of the key; other headers are not', async (t) => {
  const { mock, proxy } = await setup(t);
  const base = await chat(proxy, 'versioned', { headers: { 'x-trace-id': 'one' } });
  assert.equal(base.cache, 'MISS');
  const other = await chat(proxy, 'versioned', { headers: { 'x-trace-id': 'two', 'user-agent': 'something-else/1.0' } });
  assert.equal(other.cache, 'HIT', 'a header outside the key list does not change the key');
  let upstream = 1;
  const keys = new Set([base.key]);
  const titleCase = (h) => h.replace(/(^|-)([a-z])/g, (m, d, c) => d + c.toUpperCase());
  for (const h of ['anthropic-version', 'anthropic-beta', 'openai-beta', 'openai-organization', 'openai-project']) {
    const v1 = await chat(proxy, 'versioned', { headers: { [h]: 'value-1' } });
    assert.equal(v1.cache, 'MISS', `${h}: value-1 must miss`);
    const v1b = await chat(proxy, 'versioned', { headers: { [titleCase(h)]: 'value-1' } });
    assert.equal(v1b.cache, 'HIT', `${titleCase(h)}: value-1 again must hit (header names are case-insensitive)`);
    const v2 = await chat(proxy, 'versioned', { headers: { [h]: 'value-2' } });
    assert.equal(v2.cache, 'MISS', `${h}: value-2 must miss`);
    upstream += 2;
    assert.equal(mock.count(), upstream);
    assert.equal(mock.last().headers[h], 'value-2', `${h} is forwarded upstream`);
    keys.add(v1.key).add(v2.key);
  }
  assert.equal(keys.size, 11, 'eleven distinct keys');
});

test('query parameters are part of the key in sorted order; the path is too', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('query');
  const r1 = await post(proxy, '/v1/chat/completions?b=2&a=1', body);
  assert.equal(r1.cache, 'MISS');
  assert.equal(mock.last().url, '/v1/chat/completions?b=2&a=1', 'query forwarded as sent');
  const r2 = await post(proxy, '/v1/chat/completions?a=1&b=2', body);
  assert.equal(r2.cache, 'HIT', 'parameter order does not matter');
  assert.equal(r2.key, r1.key);
  const r3 = await post(proxy, '/v1/chat/completions?a=1&b=3', body);
  assert.equal(r3.cache, 'MISS', 'a different value misses');
  const r4 = await post(proxy, '/v1/chat/completions', body);
  assert.equal(r4.cache, 'MISS', 'no query misses');
  const r5 = await post(proxy, '/v2/chat/completions', body);
  assert.equal(r5.cache, 'MISS', 'another path misses');
  assert.equal(new Set([r1.key, r3.key, r4.key, r5.key]).size, 4);
  assert.equal(mock.count(), 4);
});

test('4xx and 5xx answers (and any other non-200) are forwarded but not stored', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('errors are not cached');
  let n = 0;
  for (const s of [201, 302, 400, 401, 404, 429, 500, 503]) {
    for (let i = 0; i < 2; i++) {
      const r = await post(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': `status=${s}` });
      n++;
      assert.equal(r.status, s, `upstream ${s} reaches the client`);
      assert.equal(r.cache, 'MISS', `a forwarded ${s} is a MISS`);
      assert.equal(r.json.error.message, `mock ${s}`, 'the upstream error body reaches the client');
      assert.equal(mock.count(), n, `the ${s} was not stored: every call reaches upstream`);
    }
  }
  // x-mock-behavior is not part of the key: the same request now succeeds, and only then is stored
  const ok = await post(proxy, '/v1/chat/completions', body);
  assert.equal(ok.status, 200);
  assert.equal(ok.cache, 'MISS', 'no error answer was stored under this key');
  const hit = await post(proxy, '/v1/chat/completions', body);
  assert.equal(hit.cache, 'HIT');
  assert.equal(hit.status, 200);
  assert.equal(mock.count(), n + 1);
});

test('GET /v1/models is forwarded as BYPASS, every time', async (t) => {
  const { mock, proxy } = await setup(t);
  const r1 = await request(proxy, { path: '/v1/models', headers: { authorization: 'Bearer sk-test-models' } });
  const r2 = await request(proxy, { path: '/v1/models', headers: { authorization: 'Bearer sk-test-models' } });
  for (const r of [r1, r2]) {
    assert.equal(r.status, 200);
    assert.equal(r.cache, 'BYPASS');
    assert.equal(r.key, undefined, 'no X-PromptCache-Key on a non-cacheable request');
    assert.equal(r.headers.age, undefined);
    assert.ok(r.json.data.some((m) => m.id === 'gpt-4o-mini'));
  }
  assert.notEqual(r1.json.mock_seq, r2.json.mock_seq, 'both answers are fresh from upstream');
  assert.equal(mock.count('/v1/models'), 2);
  assert.equal(mock.requests[0].method, 'GET');
  assert.equal(mock.requests[0].headers.authorization, 'Bearer sk-test-models');
});

test('other methods and non-cacheable paths are BYPASS', async (t) => {
  const { mock, proxy } = await setup(t);
  const cases = [
    { method: 'POST', path: '/v1/files', body: { purpose: 'batch' } },
    { method: 'POST', path: '/v1/messages/count_tokens', body: { model: 'claude', messages: [] } },
    { method: 'POST', path: '/v1/chat/completions/extra', body: chatBody('x') },
    { method: 'GET', path: '/v1/chat/completions' },
    { method: 'PUT', path: '/v1/chat/completions', body: chatBody('x') },
    { method: 'DELETE', path: '/v1/files/file-123' },
    { method: 'PATCH', path: '/v1/embeddings', body: { model: 'e', input: 'x' } },
  ];
  let n = 0;
  for (const c of cases) {
    for (let i = 0; i < 2; i++) {
      const r = await request(proxy, c);
      n++;
      assert.equal(r.status, 200, `${c.method} ${c.path}`);
      assert.equal(r.cache, 'BYPASS', `${c.method} ${c.path} is BYPASS`);
      assert.equal(mock.count(), n, `${c.method} ${c.path} reaches upstream every time`);
      assert.equal(mock.last().method, c.method);
      assert.equal(mock.last().url, c.path);
    }
  }
});

test('a body that is not valid JSON, or has duplicate keys, is forwarded unchanged as BYPASS', async (t) => {
  const { mock, proxy } = await setup(t);
  const bodies = [
    '{"model": "gpt-4o-mini", "messages": [',
    'model=gpt-4o-mini&prompt=hi',
    '{"model":"gpt-4o-mini","model":"gpt-4o","messages":[{"role":"user","content":"dup"}]}',
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"dup","role":"system"}]}',
    '{"model":"gpt-4o-mini"} trailing',
  ];
  let n = 0;
  for (const b of bodies) {
    for (let i = 0; i < 2; i++) {
      const r = await post(proxy, '/v1/chat/completions', b);
      n++;
      assert.equal(r.cache, 'BYPASS', `not cacheable: ${b}`);
      assert.equal(mock.count(), n, `forwarded every time: ${b}`);
      assert.equal(mock.last().text, b, 'body forwarded byte for byte');
    }
  }
});

test('every default cacheable path suffix is cached, near misses are not', async (t) => {
  const { mock, proxy } = await setup(t);
  const cacheable = [
    ['/v1/chat/completions', chatBody('s')],
    ['/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 's' }],
    ['/v1/embeddings', { model: 'text-embedding-3-small', input: 's' }],
    ['/v1/messages', { model: 'claude', max_tokens: 8, messages: [{ role: 'user', content: 's' }] }],
    ['/v1/responses', { model: 'gpt-4o-mini', input: 's' }],
    ['/v1/moderations', { input: 's' }],
    ['/v1/rerank', { model: 'rerank', query: 's', documents: ['a', 'b'] }],
    ['/v1beta/models/gemini-1.5-flash:generateContent', { contents: [{ parts: [{ text: 's' }] }] }],
    ['/v1beta/models/gemini-1.5-flash:streamGenerateContent', { contents: [{ parts: [{ text: 's' }] }] }],
    ['/openai/deployments/x/chat/completions', chatBody('s')],
  ];
  let n = 0;
  for (const [p, b] of cacheable) {
    const r1 = await post(proxy, p, b);
    n++;
    assert.equal(r1.status, 200, p);
    assert.equal(r1.cache, 'MISS', `${p} first call`);
    assert.match(r1.key || '', HEX32, p);
    const r2 = await post(proxy, p, b);
    assert.equal(r2.cache, 'HIT', `${p} second call`);
    assert.equal(r2.text, r1.text, p);
    assert.equal(mock.count(), n, `${p} reached upstream once`);
  }
  for (const [p, b] of [['/v1/chat/completions2', chatBody('s')], ['/v1/embeddingsx', { input: 's' }], ['/v1beta/models/g:countTokens', { contents: [] }]]) {
    const r = await post(proxy, p, b);
    n++;
    assert.equal(r.cache, 'BYPASS', `${p} is not cacheable`);
    assert.equal(mock.count(), n);
  }
});

test('entries survive a restart on the same database', async (t) => {
  const { mock, proxy } = await setup(t);
  const headers = { authorization: 'Bearer sk-test-restart' };
  const r1 = await chat(proxy, 'persist me', { headers });
  const emb1 = await post(proxy, '/v1/embeddings', { model: 'text-embedding-3-small', input: 'persist' }, headers);
  assert.deepEqual([r1.cache, emb1.cache], ['MISS', 'MISS']);
  const oldPort = proxy.port;
  const st = await proxy.restart();
  assert.equal(st.code, 0, `clean exit on SIGTERM, got ${JSON.stringify(st)}`);
  assert.ok(proxy.port > 0);
  const r2 = await chat(proxy, 'persist me', { headers });
  assert.equal(r2.cache, 'HIT', `after restart (port ${oldPort} -> ${proxy.port})`);
  assert.equal(r2.key, r1.key, 'the key (including the credential fingerprint) is stable across restarts');
  assert.equal(r2.text, r1.text);
  const emb2 = await post(proxy, '/v1/embeddings', { model: 'text-embedding-3-small', input: 'persist' }, headers);
  assert.equal(emb2.cache, 'HIT');
  assert.equal(emb2.text, emb1.text);
  assert.equal(mock.count(), 2, 'upstream count unchanged by the restart');
  const fresh = await chat(proxy, 'new after restart', { headers });
  assert.equal(fresh.cache, 'MISS');
  assert.equal(mock.count(), 3);
});

test('--ignore-field drops JSON pointers from the key but not from the forwarded body', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--ignore-field', '/user', '--ignore-field', '/metadata/trace'] });
  const a = await post(proxy, '/v1/chat/completions', chatBody('ignore', { user: 'alice', metadata: { trace: 't1', tenant: 'x' } }));
  const b = await post(proxy, '/v1/chat/completions', chatBody('ignore', { user: 'bob', metadata: { trace: 't2', tenant: 'x' } }));
  const c = await post(proxy, '/v1/chat/completions', chatBody('ignore', { metadata: { tenant: 'x' } }));
  const d = await post(proxy, '/v1/chat/completions', chatBody('ignore', { user: 'bob', metadata: { trace: 't2', tenant: 'y' } }));
  assert.deepEqual([a.cache, b.cache, c.cache, d.cache], ['MISS', 'HIT', 'HIT', 'MISS']);
  assert.equal(b.key, a.key);
  assert.equal(c.key, a.key);
  assert.equal(mock.count(), 2);
  assert.equal(mock.requests[0].json.user, 'alice', 'the ignored field is still forwarded');
  assert.equal(mock.requests[0].json.metadata.trace, 't1');

  // without the option, the same two requests are different
  const { mock: mock2, proxy: plain } = await setup(t);
  const p1 = await post(plain, '/v1/chat/completions', chatBody('ignore', { user: 'alice' }));
  const p2 = await post(plain, '/v1/chat/completions', chatBody('ignore', { user: 'bob' }));
  assert.deepEqual([p1.cache, p2.cache], ['MISS', 'MISS']);
  assert.equal(mock2.count(), 2);
});

test('--cache-path replaces the default cacheable list (glob on the path)', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--cache-path', '*/custom', '--cache-path', '/other/*'] });
  const c1 = await post(proxy, '/v1/custom', { q: 1 });
  const c2 = await post(proxy, '/v1/custom', { q: 1 });
  assert.deepEqual([c1.cache, c2.cache], ['MISS', 'HIT']);
  assert.equal(c2.text, c1.text);
  const o1 = await post(proxy, '/other/thing', { q: 2 });
  const o2 = await post(proxy, '/other/thing', { q: 2 });
  assert.deepEqual([o1.cache, o2.cache], ['MISS', 'HIT']);
  const d1 = await chat(proxy, 'default path no longer cached');
  const d2 = await chat(proxy, 'default path no longer cached');
  assert.deepEqual([d1.cache, d2.cache], ['BYPASS', 'BYPASS'], '/v1/chat/completions is not in the replaced list');
  const n1 = await post(proxy, '/v1/customer', { q: 3 });
  assert.equal(n1.cache, 'BYPASS', '/v1/customer does not match */custom');
  assert.equal(mock.count(), 5);
});

test('entries survive kill -9 once they were served as HIT', async (t) => {
  const { mock, proxy } = await setup(t);
  const r1 = await chat(proxy, 'crash-proof');
  const r2 = await chat(proxy, 'crash-proof');
  assert.deepEqual([r1.cache, r2.cache], ['MISS', 'HIT']);
  const st = await proxy.restart({ signal: 'SIGKILL' });
  assert.equal(st.signal, 'SIGKILL');
  const r3 = await chat(proxy, 'crash-proof');
  assert.equal(r3.cache, 'HIT', 'the entry survived kill -9');
  assert.equal(r3.text, r1.text);
  assert.equal(mock.count(), 1);
});

test('kill -9 right after a MISS: the answer the client saw complete is a HIT after restart', async (t) => {
  const { mock, proxy } = await setup(t);
  for (let i = 0; i < 5; i++) {
    const r = await chat(proxy, `durable ${i}`);
    assert.equal(r.cache, 'MISS');
  }
  await proxy.restart({ signal: 'SIGKILL' }); // no pause: the kill follows the last response at once
  for (let i = 0; i < 5; i++) {
    const r = await chat(proxy, `durable ${i}`);
    assert.equal(r.cache, 'HIT', `durable ${i} was lost by kill -9`);
  }
  assert.equal(mock.count(), 5);
});

test('connections to upstream are reused across misses', async (t) => {
  // one loop: each event loop has its own pool of upstream connections
  const { mock, proxy } = await setup(t, { args: ['--workers', '1'] });
  for (let i = 0; i < 6; i++) assert.equal((await chat(proxy, `reuse ${i}`)).cache, 'MISS');
  assert.equal(mock.count(), 6);
  assert.equal(mock.connections, 1, `upstream saw ${mock.connections} connections for 6 sequential misses`);
});

test('an upstream answer cut off mid-body is not stored', async (t) => {
  const { mock, proxy } = await setup(t);
  let cut = true;
  mock.handler = async (req, res) => {
    if (!cut) return false;
    cut = false;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
    res.write('{"id":"partial","choices":[');
    await new Promise((r) => setTimeout(r, 50));
    res.socket.destroy();
    return true;
  };
  let first;
  try {
    first = await chat(proxy, 'truncated');
  } catch (err) {
    first = { error: err };
  }
  if (!first.error) {
    // the proxy may answer 502 if it noticed before sending anything; it must not claim success
    assert.notEqual(first.text, '{"id":"partial","choices":[', 'a truncated body must not be presented as complete');
    assert.ok(first.status >= 500, `truncated upstream answer reached the client as ${first.status}: ${first.text}`);
  }
  const second = await chat(proxy, 'truncated');
  assert.equal(second.status, 200);
  assert.equal(second.cache, 'MISS', 'the truncated answer was not stored');
  assert.equal(second.json.choices[0].message.content, echoText('truncated'));
  const third = await chat(proxy, 'truncated');
  assert.equal(third.cache, 'HIT');
  assert.equal(mock.count(), 2);
});

test('a chunked (no Content-Length) upstream JSON answer is stored whole', async (t) => {
  const { mock, proxy } = await setup(t);
  mock.handler = async (req, res, rec) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const body = JSON.stringify({ id: `chunked-${rec.seq}`, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'x'.repeat(5000) } }] });
    res.write(body.slice(0, 100));
    await new Promise((r) => setTimeout(r, 50));
    res.write(body.slice(100, 3000));
    await new Promise((r) => setTimeout(r, 50));
    res.end(body.slice(3000));
    return true;
  };
  const r1 = await chat(proxy, 'chunked answer');
  assert.equal(r1.status, 200);
  assert.equal(r1.cache, 'MISS');
  assert.equal(r1.json.id, 'chunked-1');
  const r2 = await chat(proxy, 'chunked answer');
  assert.equal(r2.cache, 'HIT');
  assert.equal(r2.text, r1.text);
  assert.equal(mock.count(), 1);
});

test('exact repeats are answered from the raw-request memo without ever crossing keys', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--ignore-field', '/user'] });
  const base = { authorization: 'Bearer sk-memo-one' };
  const variants = [
    { name: 'base', headers: base },
    { name: 'credential', headers: { authorization: 'Bearer sk-memo-two' } },
    { name: 'namespace', headers: { ...base, 'x-promptcache-namespace': 'other' } },
    { name: 'org header', headers: { ...base, 'openai-organization': 'org-x' } },
    { name: 'anthropic-version', headers: { ...base, 'anthropic-version': '2023-06-01' } },
    { name: 'query', headers: base, path: '/v1/chat/completions?api-version=2' },
    { name: 'body', headers: base, content: 'memo other prompt' },
  ];
  const first = new Map();
  for (const v of variants) {
    const r = await chat(proxy, v.content || 'memo prompt', { headers: v.headers, path: v.path });
    assert.equal(r.cache, 'MISS', `${v.name}: the first request misses`);
    first.set(v.name, r);
  }
  assert.equal(mock.count(), variants.length);
  for (let round = 0; round < 3; round++) {
    for (const v of variants) {
      const r = await chat(proxy, v.content || 'memo prompt', { headers: v.headers, path: v.path });
      assert.equal(r.cache, 'HIT', `${v.name} round ${round}`);
      assert.equal(r.headers['x-promptcache-key'], first.get(v.name).headers['x-promptcache-key'], `${v.name}: same key`);
      assert.equal(r.text, first.get(v.name).text, `${v.name}: its own answer`);
    }
  }
  // a different spelling of the same request, and an ignored field, still hit
  const respelled = await request(proxy, { method: 'POST', path: '/v1/chat/completions', headers: base,
    body: { messages: [{ content: 'memo prompt', role: 'user' }], model: 'gpt-4o-mini', user: 'ignored-user' } });
  assert.equal(respelled.cache, 'HIT');
  assert.equal(respelled.text, first.get('base').text);
  assert.equal(mock.count(), variants.length);
});

