// mock.test.mjs — self-check of the mock upstream, without the proxy: the SDKs
// accept its answers, its streams and errors look like the real APIs. When a proxy
// test fails, this file tells whether the mock or the proxy is to blame.
import test from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startMock, echoText } from './lib/mock.mjs';
import { request, mockFor, chatBody } from './lib/proxy.mjs';

const direct = (mock) => ({ port: mock.port });

test('mock: chat completion echoes the last user message, counts and records requests', async (t) => {
  const mock = await mockFor(t, startMock);
  const r = await request(direct(mock), { method: 'POST', path: '/v1/chat/completions?x=1', headers: { 'x-test': 'a' }, body: chatBody('hello') });
  assert.equal(r.status, 200);
  assert.equal(r.json.choices[0].message.content, echoText('hello'));
  assert.ok(r.json.usage.total_tokens > 0);
  assert.equal(mock.count(), 1);
  assert.equal(mock.count('/v1/chat/completions'), 1);
  assert.equal(mock.last().url, '/v1/chat/completions?x=1');
  assert.equal(mock.last().headers['x-test'], 'a');
  assert.deepEqual(mock.last().json, chatBody('hello'));
  const r2 = await request(direct(mock), { method: 'POST', path: '/v1/chat/completions', body: chatBody('hello') });
  assert.notEqual(r2.json.id, r.json.id, 'two upstream answers differ');
});

test('mock: behaviours status, delay, gzip', async (t) => {
  const mock = await mockFor(t, startMock);
  for (const s of [400, 429, 500]) {
    const r = await request(direct(mock), { method: 'POST', path: '/v1/chat/completions', headers: { 'x-mock-behavior': `status=${s}` }, body: chatBody('x') });
    assert.equal(r.status, s);
    assert.equal(r.json.error.message, `mock ${s}`);
  }
  const t0 = performance.now();
  const slow = await request(direct(mock), { path: '/v1/models', headers: { 'x-mock-behavior': 'delay=300' } });
  assert.equal(slow.status, 200);
  assert.ok(performance.now() - t0 >= 280);
  const gz = await request(direct(mock), { method: 'POST', path: '/v1/embeddings', headers: { 'x-mock-behavior': 'gzip', 'accept-encoding': 'gzip' }, body: { model: 'e', input: 'hi' } });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.equal(JSON.parse(zlib.gunzipSync(gz.body)).object, 'list');
  const plain = await request(direct(mock), { method: 'POST', path: '/v1/embeddings', headers: { 'x-mock-behavior': 'gzip' }, body: { model: 'e', input: 'hi' } });
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.equal(plain.json.object, 'list');
});

test('mock: both SDKs accept its JSON answers, streams and errors', async (t) => {
  const mock = await mockFor(t, startMock);
  const openai = new OpenAI({ apiKey: 'sk-mock', baseURL: `${mock.url}/v1`, maxRetries: 0 });
  const c = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'sdk' }] });
  assert.equal(c.choices[0].message.content, echoText('sdk'));
  const emb = await openai.embeddings.create({ model: 'text-embedding-3-small', input: 'abc' });
  assert.equal(emb.data[0].embedding.length, 8);
  const models = await openai.models.list();
  assert.ok(models.data.some((m) => m.id === 'gpt-4o-mini'));
  let text = '';
  const stream = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'streamed' }], stream: true });
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content || '';
  assert.equal(text, echoText('streamed'));

  const anthropic = new Anthropic({ apiKey: 'sk-ant-mock', baseURL: mock.url, maxRetries: 0 });
  const msg = await anthropic.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: 'hi claude' }] });
  assert.equal(msg.content[0].text, echoText('hi claude'));
  let atext = '';
  const astream = await anthropic.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: 'stream claude' }], stream: true });
  for await (const ev of astream) if (ev.type === 'content_block_delta') atext += ev.delta.text;
  assert.equal(atext, echoText('stream claude'));

  await assert.rejects(
    openai.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-behavior': 'status=429' } }),
    (err) => err.status === 429,
  );
  await assert.rejects(
    anthropic.messages.create({ model: 'm', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-behavior': 'status=500' } }),
    (err) => err.status === 500,
  );
});
