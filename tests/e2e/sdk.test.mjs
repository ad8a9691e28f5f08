// sdk.test.mjs — the official OpenAI (openai@6) and Anthropic (@anthropic-ai/sdk@1)
// SDKs with baseURL pointing at the proxy.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { setup, startMock, mockFor, startProxy, closedPort, HEX32 } from './lib/setup.mjs';
import { echoText } from './lib/mock.mjs';

const openaiFor = (proxy, apiKey = 'sk-test-openai-sdk') => new OpenAI({ apiKey, baseURL: `${proxy.url}/v1`, maxRetries: 0, timeout: 15000 });
const anthropicFor = (proxy, apiKey = 'sk-ant-test-sdk', baseURL = proxy.url) => new Anthropic({ apiKey, baseURL, maxRetries: 0, timeout: 15000 });

test('OpenAI SDK: chat.completions.create twice, the second is a HIT with the same completion', async (t) => {
  const { mock, proxy } = await setup(t);
  const client = openaiFor(proxy);
  const params = { model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'Hello SDK' }], temperature: 0 };
  const first = await client.chat.completions.create(params).withResponse();
  assert.equal(first.response.status, 200);
  assert.equal(first.response.headers.get('x-promptcache-status'), 'MISS');
  assert.match(first.response.headers.get('x-promptcache-key') || '', HEX32);
  assert.equal(first.data.choices[0].message.content, echoText('Hello SDK'));
  const second = await client.chat.completions.create(params).withResponse();
  assert.equal(second.response.headers.get('x-promptcache-status'), 'HIT');
  assert.equal(second.response.headers.get('x-promptcache-key'), first.response.headers.get('x-promptcache-key'));
  assert.match(second.response.headers.get('age') || '', /^\d+$/);
  assert.deepEqual(second.data, first.data, 'the SDK sees the same completion');
  assert.equal(mock.count(), 1);
  const seen = mock.last();
  assert.equal(seen.url, '/v1/chat/completions');
  assert.equal(seen.headers.authorization, 'Bearer sk-test-openai-sdk');
  // asResponse gives the raw Response too
  const raw = await client.chat.completions.create(params).asResponse();
  assert.equal(raw.headers.get('x-promptcache-status'), 'HIT');
  assert.equal((await raw.json()).id, first.data.id);
  assert.equal(mock.count(), 1);
});

test('Anthropic SDK: messages.create twice, the second is a HIT with the same message', async (t) => {
  const { mock, proxy } = await setup(t);
  const client = anthropicFor(proxy);
  const params = { model: 'claude-3-5-haiku-latest', max_tokens: 128, system: 'be brief', messages: [{ role: 'user', content: 'Hello Claude' }] };
  const first = await client.messages.create(params).withResponse();
  assert.equal(first.response.status, 200);
  assert.equal(first.response.headers.get('x-promptcache-status'), 'MISS');
  assert.equal(first.data.content[0].text, echoText('Hello Claude'));
  const second = await client.messages.create(params).withResponse();
  assert.equal(second.response.headers.get('x-promptcache-status'), 'HIT');
  assert.deepEqual(second.data, first.data);
  assert.equal(mock.count(), 1);
  const seen = mock.last();
  assert.equal(seen.url, '/v1/messages');
  // @anthropic-ai/sdk@1 sends the key as a bearer token; older versions used x-api-key
  assert.ok(seen.headers['x-api-key'] === 'sk-ant-test-sdk' || seen.headers.authorization === 'Bearer sk-ant-test-sdk', `the SDK's credential reaches upstream: ${JSON.stringify(seen.headers)}`);
  assert.ok(seen.headers['anthropic-version'], 'the SDK\'s anthropic-version reaches upstream');
});

test('Anthropic SDK through --route /anthropic', async (t) => {
  const openaiMock = await mockFor(t, startMock);
  const anthropicMock = await mockFor(t, startMock);
  const proxy = await startProxy(t, { upstream: openaiMock, args: ['--route', `/anthropic=${anthropicMock.url}`] });
  const client = anthropicFor(proxy, 'sk-ant-routed', `${proxy.url}/anthropic`);
  const params = { model: 'claude-3-5-haiku-latest', max_tokens: 32, messages: [{ role: 'user', content: 'via route' }] };
  const a = await client.messages.create(params).withResponse();
  const b = await client.messages.create(params).withResponse();
  assert.deepEqual([a.response.headers.get('x-promptcache-status'), b.response.headers.get('x-promptcache-status')], ['MISS', 'HIT']);
  assert.equal(b.data.content[0].text, echoText('via route'));
  assert.equal(anthropicMock.count(), 1);
  assert.equal(anthropicMock.last().url, '/v1/messages');
  assert.equal(openaiMock.count(), 0);
});

test('OpenAI SDK: another API key misses (credential scope), embeddings cache, models.list is BYPASS', async (t) => {
  const { mock, proxy } = await setup(t);
  const params = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'whose key?' }] };
  const a = await openaiFor(proxy, 'sk-test-key-a').chat.completions.create(params).withResponse();
  const b = await openaiFor(proxy, 'sk-test-key-b').chat.completions.create(params).withResponse();
  assert.equal(a.response.headers.get('x-promptcache-status'), 'MISS');
  assert.equal(b.response.headers.get('x-promptcache-status'), 'MISS');
  assert.notEqual(a.data.id, b.data.id);
  assert.equal(mock.count(), 2);

  const client = openaiFor(proxy);
  const e1 = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'] }).withResponse();
  const e2 = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'] }).withResponse();
  assert.deepEqual([e1.response.headers.get('x-promptcache-status'), e2.response.headers.get('x-promptcache-status')], ['MISS', 'HIT']);
  assert.equal(e2.data.data.length, 2);
  assert.deepEqual(e2.data.data[1].embedding, e1.data.data[1].embedding);
  assert.equal(mock.count(), 3);

  const m1 = await client.models.list().withResponse();
  const m2 = await client.models.list().withResponse();
  assert.equal(m1.response.headers.get('x-promptcache-status'), 'BYPASS');
  assert.equal(m2.response.headers.get('x-promptcache-status'), 'BYPASS');
  assert.ok(m1.data.data.some((m) => m.id === 'gpt-4o-mini'));
  assert.equal(mock.count('/v1/models'), 2);
});

test('SDKs: upstream errors surface as SDK errors and are not cached', async (t) => {
  const { mock, proxy } = await setup(t);
  const openai = openaiFor(proxy);
  const params = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'rate limited' }] };
  for (let i = 0; i < 2; i++) {
    await assert.rejects(
      openai.chat.completions.create(params, { headers: { 'x-mock-behavior': 'status=429' } }),
      (err) => err instanceof OpenAI.RateLimitError && err.status === 429 && err.headers.get('x-promptcache-status') === 'MISS',
    );
  }
  assert.equal(mock.count(), 2, 'the 429 was not stored');
  const ok = await openai.chat.completions.create(params).withResponse();
  assert.equal(ok.response.headers.get('x-promptcache-status'), 'MISS');
  assert.equal(ok.data.choices[0].message.content, echoText('rate limited'));

  const anthropic = anthropicFor(proxy);
  const aparams = { model: 'claude-3-5-haiku-latest', max_tokens: 16, messages: [{ role: 'user', content: 'overloaded' }] };
  await assert.rejects(
    anthropic.messages.create(aparams, { headers: { 'x-mock-behavior': 'status=500' } }),
    (err) => err instanceof Anthropic.InternalServerError && err.status === 500,
  );
  const aok = await anthropic.messages.create(aparams).withResponse();
  assert.equal(aok.response.headers.get('x-promptcache-status'), 'MISS');
  assert.equal(mock.count(), 5);
});

test('SDKs: a proxy error reaches the SDK as an API error with the promptcache code', async (t) => {
  const dead = await closedPort();
  const proxy = await startProxy(t, { upstream: `http://127.0.0.1:${dead}` });
  const openai = openaiFor(proxy);
  await assert.rejects(
    openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
    (err) => {
      assert.equal(err.status, 502);
      assert.equal(err.code, 'upstream_unreachable');
      assert.equal(err.type, 'promptcache_error');
      return true;
    },
  );
});

test('SDK streaming: OpenAI and Anthropic streams arrive complete through the proxy', async (t) => {
  const { mock, proxy } = await setup(t);
  const openai = openaiFor(proxy);
  const { data: stream, response } = await openai.chat.completions
    .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stream via sdk' }], stream: true, stream_options: { include_usage: true } })
    .withResponse();
  assert.equal(response.headers.get('x-promptcache-status'), 'MISS');
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content || '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, echoText('stream via sdk'));
  assert.ok(usage && usage.total_tokens > 0);

  const anthropic = anthropicFor(proxy);
  const astream = anthropic.messages.stream({ model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: 'claude stream via sdk' }] });
  const final = await astream.finalMessage();
  assert.equal(final.content[0].text, echoText('claude stream via sdk'));
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(mock.count(), 2);
});
