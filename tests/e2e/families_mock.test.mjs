// families_mock.test.mjs — self-check of the per-family fake upstreams
// (lib/families.mjs), without the proxy: the official clients accept their
// answers (ollama, @google/genai, @aws-sdk/client-bedrock-runtime, openai's
// AzureOpenAI, and the OpenAI SDK on the /v1 endpoints of TGI and llama.cpp),
// their streams end (or fail) the way the real APIs do, and Bedrock's frames
// carry correct CRCs. When a family test of the proxy fails, this file tells
// whether the fake or the proxy is to blame.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { AzureOpenAI } from 'openai';
import { Ollama } from 'ollama';
import { GoogleGenAI } from '@google/genai';
import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { echoText } from './lib/mock.mjs';
import { request, mockFor } from './lib/proxy.mjs';
import { startFamilyMock, usageOf, decodeEventStream, encodeEventStream, crc32, FAMILIES } from './lib/families.mjs';

const direct = (mock) => ({ port: mock.port });
const start = (t, family) => mockFor(t, (o) => startFamilyMock(family, o));
const post = (mock, path, body, headers = {}) => request(direct(mock), { method: 'POST', path, body, headers });

/** Split an SSE body into its data values. */
const sseData = (text) => text.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));

test('families: the list, and openai/anthropic are mock.mjs', async (t) => {
  assert.deepEqual(FAMILIES, ['openai', 'anthropic', 'gemini', 'azure', 'ollama', 'tgi', 'llamacpp', 'bedrock']);
  const m = await start(t, 'openai');
  const r = await post(m, '/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(r.json.choices[0].message.content, echoText('x'));
  assert.equal(m.family, 'openai');
  await assert.rejects(startFamilyMock('vertex'), /unknown family/);
});

test('event stream: crc32 and frames match the IEEE check value and decode back', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  const f = encodeEventStream({ ':event-type': 'chunk', ':message-type': 'event', n: { type: 'int32', value: -7 }, b: { type: 'bool', value: true } }, '{"a":1}');
  const { messages, rest } = decodeEventStream(Buffer.concat([f, f.subarray(0, 5)]));
  assert.equal(rest, 5);
  assert.equal(messages.length, 1);
  assert.deepEqual(messages[0].headers, { ':event-type': 'chunk', ':message-type': 'event', n: -7, b: true });
  assert.equal(messages[0].payload.toString(), '{"a":1}');
  const bad = Buffer.from(f);
  bad[bad.length - 1] ^= 1;
  assert.throws(() => decodeEventStream(bad), /message CRC/);
});

test('gemini: @google/genai accepts generateContent, streams (alt=sse), embeddings, errors', async (t) => {
  const mock = await start(t, 'gemini');
  const ai = new GoogleGenAI({ apiKey: 'gm-key', httpOptions: { baseUrl: mock.url } });
  const r = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello gemini' });
  assert.equal(r.text, echoText('hello gemini'));
  assert.equal(r.usageMetadata.promptTokenCount, usageOf('hello gemini').input);
  assert.equal(r.usageMetadata.candidatesTokenCount, usageOf('hello gemini').output);
  assert.equal(r.responseId, `gemini-mock-${mock.last().seq}`);
  assert.equal(mock.last().path, '/v1beta/models/gemini-2.5-flash:generateContent');
  assert.equal(mock.last().headers['x-goog-api-key'], 'gm-key');

  let text = '';
  let last;
  for await (const chunk of await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'streamed' })) {
    text += chunk.text;
    last = chunk;
  }
  assert.equal(text, echoText('streamed'));
  assert.equal(last.candidates[0].finishReason, 'STOP');
  assert.equal(last.usageMetadata.candidatesTokenCount, echoText('streamed').length);
  assert.match(mock.last().query, /alt=sse/);

  const e = await ai.models.embedContent({ model: 'text-embedding-004', contents: 'abc' });
  assert.equal(e.embeddings[0].values.length, 8);
  const c = await ai.models.countTokens({ model: 'gemini-2.5-flash', contents: 'abcd' });
  assert.equal(c.totalTokens, usageOf('abcd').input);

  await assert.rejects(
    ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x', config: { httpOptions: { headers: { 'x-mock-behavior': 'status=429' } } } }),
    (err) => err.status === 429,
  );
});

test('gemini: raw streams — CRLF SSE without a terminal event, a JSON array without alt=sse, no-terminal', async (t) => {
  const mock = await start(t, 'gemini');
  const body = { contents: [{ role: 'user', parts: [{ text: 'raw' }] }] };
  const sse = await post(mock, '/v1beta/models/g:streamGenerateContent?alt=sse', body);
  assert.match(sse.headers['content-type'], /^text\/event-stream/);
  assert.ok(sse.text.endsWith('\r\n\r\n'));
  const events = sseData(sse.text).map((d) => JSON.parse(d));
  assert.equal(events.length, 5);
  assert.equal(events.at(-1).candidates[0].finishReason, 'STOP');
  assert.ok(events.slice(0, -1).every((e) => !e.candidates[0].finishReason));
  const arr = await post(mock, '/v1beta/models/g:streamGenerateContent', body);
  assert.match(arr.headers['content-type'], /^application\/json/);
  assert.equal(arr.json.map((c) => c.candidates[0].content.parts[0].text).join(''), echoText('raw'));
  const cut = await post(mock, '/v1beta/models/g:streamGenerateContent?alt=sse', body, { 'x-mock-behavior': 'no-terminal' });
  assert.ok(sseData(cut.text).every((d) => !JSON.parse(d).candidates[0].finishReason));
  const a = await post(mock, '/v1beta/models/g:generateContent', body);
  const b = await post(mock, '/v1beta/models/g:generateContent', body);
  assert.notEqual(a.json.responseId, b.json.responseId, 'two upstream answers differ');
  assert.notEqual(a.headers['x-mock-seq'], b.headers['x-mock-seq']);
});

test('azure: AzureOpenAI (baseURL) chat, stream, completions, embeddings, errors', async (t) => {
  const mock = await start(t, 'azure');
  const az = new AzureOpenAI({ apiKey: 'az-key', baseURL: `${mock.url}/openai`, apiVersion: '2024-10-21', maxRetries: 0 });
  const c = await az.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi azure' }] });
  assert.equal(c.choices[0].message.content, echoText('hi azure'));
  assert.equal(c.usage.prompt_tokens, usageOf('hi azure').input);
  assert.ok(c.prompt_filter_results, 'Azure annotates content filtering');
  const rec = mock.last();
  assert.equal(rec.path, '/openai/deployments/gpt-4o-mini/chat/completions');
  assert.equal(rec.query, '?api-version=2024-10-21');
  assert.equal(rec.headers['api-key'], 'az-key');
  assert.equal(rec.headers.authorization, undefined);

  let text = '';
  let usage;
  const stream = await az.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'az stream' }], stream: true, stream_options: { include_usage: true } });
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content || '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, echoText('az stream'));
  assert.equal(usage.completion_tokens, echoText('az stream').length);

  const emb = await az.embeddings.create({ model: 'ada', input: 'abc' });
  assert.equal(emb.data[0].embedding.length, 8);
  assert.equal(mock.last().path, '/openai/deployments/ada/embeddings');
  const v1 = await request(direct(mock), { method: 'POST', path: '/openai/v1/chat/completions', headers: { authorization: 'Bearer entra' }, body: { model: 'gpt-4o', messages: [{ role: 'user', content: 'v1' }] } });
  assert.equal(v1.json.choices[0].message.content, echoText('v1'));
  const noVersion = await request(direct(mock), { method: 'POST', path: '/openai/deployments/d/chat/completions', headers: { 'api-key': 'k' }, body: {} });
  assert.equal(noVersion.status, 404);
  const noKey = await request(direct(mock), { method: 'POST', path: '/openai/deployments/d/chat/completions?api-version=1', body: {} });
  assert.equal(noKey.status, 401);
  await assert.rejects(
    az.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-behavior': 'status=429' } }),
    (err) => err.status === 429,
  );
});

test('ollama: the ollama client streams NDJSON to "done", non-streamed chat, generate, embed, errors', async (t) => {
  const mock = await start(t, 'ollama');
  const ol = new Ollama({ host: mock.url });
  const parts = [];
  for await (const part of await ol.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi llama' }], stream: true })) parts.push(part);
  assert.equal(parts.map((p) => p.message.content).join(''), echoText('hi llama'));
  const fin = parts.at(-1);
  assert.equal(fin.done, true);
  assert.equal(fin.prompt_eval_count, usageOf('hi llama').input);
  assert.equal(fin.eval_count, usageOf('hi llama').output);
  assert.ok(parts.slice(0, -1).every((p) => p.done === false));
  assert.equal(mock.last().json.stream, true);

  const one = await ol.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'once' }], stream: false });
  assert.equal(one.message.content, echoText('once'));
  assert.equal(one.done, true);
  const g = await ol.generate({ model: 'llama3.2', prompt: 'gen', stream: false });
  assert.equal(g.response, echoText('gen'));
  assert.equal(g.eval_count, echoText('gen').length);
  const e = await ol.embed({ model: 'all-minilm', input: ['a', 'b'] });
  assert.equal(e.embeddings.length, 2);
  const tags = await ol.list();
  assert.equal(tags.models[0].name, 'llama3.2:latest');

  // the raw wire: NDJSON, streamed by default when the body says nothing
  const raw = await post(mock, '/api/generate', { model: 'llama3.2', prompt: 'raw' });
  assert.equal(raw.headers['content-type'], 'application/x-ndjson');
  const lines = raw.text.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.map((l) => l.response).join(''), echoText('raw'));
  assert.equal(lines.at(-1).done, true);
  assert.deepEqual(lines.at(-1).context, [1, 2, 3]);
  const cut = await post(mock, '/api/chat', { model: 'm', messages: [{ role: 'user', content: 'x' }] }, { 'x-mock-behavior': 'no-terminal' });
  assert.ok(cut.text.trim().split('\n').every((l) => JSON.parse(l).done === false));

  const failing = new Ollama({ host: mock.url, headers: { 'x-mock-behavior': 'status=500' } });
  await assert.rejects(failing.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: false }), (err) => err.status_code === 500 && err.error === 'mock 500');
  const broken = new Ollama({ host: mock.url, headers: { 'x-mock-behavior': 'sse-error' } });
  await assert.rejects(async () => {
    for await (const part of await broken.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true })) assert.ok(part);
  }, /mock stream error/);
});

test('ollama: its OpenAI-compatible endpoint through the OpenAI SDK', async (t) => {
  const mock = await start(t, 'ollama');
  const oa = new OpenAI({ apiKey: 'ollama', baseURL: `${mock.url}/v1`, maxRetries: 0 });
  const c = await oa.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'compat' }] });
  assert.equal(c.choices[0].message.content, echoText('compat'));
});

test('tgi: /generate, /generate_stream (data: without a space), POST / and /v1 through the OpenAI SDK', async (t) => {
  const mock = await start(t, 'tgi');
  const g = await post(mock, '/generate', { inputs: 'tgi', parameters: { max_new_tokens: 20, details: true, decoder_input_details: true } });
  assert.equal(g.json.generated_text, echoText('tgi'));
  assert.equal(g.json.details.generated_tokens, usageOf('tgi').output);
  assert.equal(g.json.details.prefill.length, usageOf('tgi').input);
  assert.equal(g.headers['x-prompt-tokens'], String(usageOf('tgi').input));
  assert.equal(g.headers['x-generated-tokens'], String(usageOf('tgi').output));
  const s = await post(mock, '/generate_stream', { inputs: 'tgi stream' });
  assert.match(s.headers['content-type'], /^text\/event-stream/);
  assert.ok(s.text.startsWith('data:{'), 'TGI writes data: without a space');
  const events = sseData(s.text).map((d) => JSON.parse(d));
  assert.equal(events.at(-1).generated_text, echoText('tgi stream'));
  assert.equal(events.at(-1).details.input_length, usageOf('tgi stream').input);
  assert.ok(events.slice(0, -1).every((e) => e.generated_text === null && e.details === null));
  assert.equal(events.slice(0, -1).map((e) => e.token.text).join(''), echoText('tgi stream'));
  const compat = await post(mock, '/', { inputs: 'root' });
  assert.equal(compat.json[0].generated_text, echoText('root'));
  const compatStream = await post(mock, '/', { inputs: 'root', stream: true });
  assert.equal(JSON.parse(sseData(compatStream.text).at(-1)).generated_text, echoText('root'));
  const err = await post(mock, '/generate_stream', { inputs: 'x' }, { 'x-mock-behavior': 'sse-error' });
  assert.equal(JSON.parse(sseData(err.text).at(-1)).error_type, 'generation');
  const bad = await post(mock, '/generate', { inputs: 'x' }, { 'x-mock-behavior': 'status=429' });
  assert.equal(bad.status, 429);
  assert.equal(bad.json.error_type, 'overloaded');

  const oa = new OpenAI({ apiKey: 'hf_x', baseURL: `${mock.url}/v1`, maxRetries: 0 });
  let text = '';
  for await (const chunk of await oa.chat.completions.create({ model: 'tgi', messages: [{ role: 'user', content: 'oa' }], stream: true })) text += chunk.choices[0]?.delta?.content || '';
  assert.equal(text, echoText('oa'));
});

test('llamacpp: /completion JSON and stream ending at "stop": true, /embedding, /v1 through the OpenAI SDK', async (t) => {
  const mock = await start(t, 'llamacpp');
  const c = await post(mock, '/completion', { prompt: 'llama', n_predict: 16 });
  assert.equal(c.json.content, echoText('llama'));
  assert.equal(c.json.stop, true);
  assert.equal(c.json.tokens_evaluated, usageOf('llama').input);
  assert.equal(c.json.timings.predicted_n, usageOf('llama').output);
  const s = await post(mock, '/completion', { prompt: 'llama', stream: true });
  const events = sseData(s.text).map((d) => JSON.parse(d));
  assert.ok(!s.text.includes('[DONE]'), 'the native stream has no [DONE]');
  assert.equal(events.at(-1).stop, true);
  assert.equal(events.slice(0, -1).map((e) => e.content).join(''), echoText('llama'));
  const err = await post(mock, '/completion', { prompt: 'x', stream: true }, { 'x-mock-behavior': 'sse-error' });
  assert.match(err.text, /\nerror: \{"code":500/);
  const emb = await post(mock, '/embedding', { content: 'e' });
  assert.equal(emb.json[0].embedding[0].length, 8);
  const oa = new OpenAI({ apiKey: 'sk-no-key-required', baseURL: `${mock.url}/v1`, maxRetries: 0 });
  const r = await oa.chat.completions.create({ model: 'any', messages: [{ role: 'user', content: 'oai' }] });
  assert.equal(r.choices[0].message.content, echoText('oai'));
  const cmp = await oa.completions.create({ model: 'any', prompt: 'p' });
  assert.equal(cmp.choices[0].text, echoText('p'));
});

/** The Bedrock client on HTTP/1.1 (its default handler speaks HTTP/2, which a plain
 * http:// fake, and promptcache, do not), with static credentials and no retries. */
function bedrockClient(mock, headers) {
  const client = new BedrockRuntimeClient({
    region: 'us-east-1',
    endpoint: mock.url,
    credentials: { accessKeyId: 'AKIDMOCK', secretAccessKey: 'mock-secret' },
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler(),
  });
  if (headers) {
    client.middlewareStack.add((next) => (args) => {
      Object.assign(args.request.headers, headers);
      return next(args);
    }, { step: 'build', name: 'mockBehavior' });
  }
  return client;
}

const CLAUDE = 'anthropic.claude-3-haiku-20240307-v1:0';
const converseInput = (text) => ({ modelId: CLAUDE, messages: [{ role: 'user', content: [{ text }] }], inferenceConfig: { maxTokens: 64 } });

test('bedrock: Converse and ConverseStream through the AWS SDK, SigV4 recorded', async (t) => {
  const mock = await start(t, 'bedrock');
  const br = bedrockClient(mock);
  const r = await br.send(new ConverseCommand(converseInput('hi bedrock')));
  assert.equal(r.output.message.content[0].text, echoText('hi bedrock'));
  assert.equal(r.stopReason, 'end_turn');
  assert.equal(r.usage.inputTokens, usageOf('hi bedrock').input);
  assert.equal(r.usage.outputTokens, usageOf('hi bedrock').output);
  assert.equal(r.$metadata.requestId, `mock-${mock.last().seq}`);
  const rec = mock.last();
  assert.equal(rec.path, `/model/${encodeURIComponent(CLAUDE)}/converse`);
  assert.match(rec.headers.authorization, /^AWS4-HMAC-SHA256 Credential=AKIDMOCK\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$/);

  const s = await br.send(new ConverseStreamCommand(converseInput('stream bedrock')));
  const kinds = [];
  let text = '';
  let usage;
  for await (const ev of s.stream) {
    const kind = Object.keys(ev).find((k) => ev[k] !== undefined && k !== '$unknown');
    kinds.push(kind);
    if (ev.contentBlockDelta) text += ev.contentBlockDelta.delta.text;
    if (ev.metadata) usage = ev.metadata.usage;
  }
  assert.equal(text, echoText('stream bedrock'));
  assert.deepEqual(kinds.slice(0, 1), ['messageStart']);
  assert.deepEqual(kinds.slice(-3), ['contentBlockStop', 'messageStop', 'metadata']);
  assert.equal(usage.outputTokens, usageOf('stream bedrock').output);
});

test('bedrock: InvokeModel and InvokeModelWithResponseStream with an Anthropic body', async (t) => {
  const mock = await start(t, 'bedrock');
  const br = bedrockClient(mock);
  const body = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 64, messages: [{ role: 'user', content: 'invoke me' }] });
  const r = await br.send(new InvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', accept: 'application/json', body }));
  const msg = JSON.parse(Buffer.from(r.body).toString());
  assert.equal(msg.content[0].text, echoText('invoke me'));
  assert.equal(msg.usage.input_tokens, usageOf('invoke me').input);
  const raw = await request(direct(mock), { method: 'POST', path: `/model/${encodeURIComponent(CLAUDE)}/invoke`, headers: { authorization: 'Bearer bedrock-api-key' }, body });
  assert.equal(raw.headers['x-amzn-bedrock-input-token-count'], String(usageOf('invoke me').input));
  assert.equal(raw.headers['x-amzn-bedrock-output-token-count'], String(usageOf('invoke me').output));

  const s = await br.send(new InvokeModelWithResponseStreamCommand({ modelId: CLAUDE, contentType: 'application/json', body }));
  const events = [];
  for await (const ev of s.body) events.push(JSON.parse(Buffer.from(ev.chunk.bytes).toString()));
  assert.equal(events[0].type, 'message_start');
  assert.equal(events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join(''), echoText('invoke me'));
  assert.equal(events.at(-1).type, 'message_stop');
  assert.equal(events.at(-1)['amazon-bedrock-invocationMetrics'].outputTokenCount, usageOf('invoke me').output);
});

test('bedrock: frames on the wire, errors, in-stream exceptions, bad CRCs, cuts', async (t) => {
  const mock = await start(t, 'bedrock');
  const path = `/model/${encodeURIComponent(CLAUDE)}/converse-stream`;
  const headers = { authorization: 'AWS4-HMAC-SHA256 Credential=AKIDMOCK/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00' };
  const body = converseInput('frames');
  const raw = await request(direct(mock), { method: 'POST', path, headers, body });
  assert.equal(raw.headers['content-type'], 'application/vnd.amazon.eventstream');
  const { messages, rest } = decodeEventStream(raw.body);
  assert.equal(rest, 0);
  assert.deepEqual(messages.map((m) => m.headers[':event-type']).slice(-2), ['messageStop', 'metadata']);
  assert.ok(messages.every((m) => m.headers[':message-type'] === 'event' && m.headers[':content-type'] === 'application/json'));
  assert.ok(messages.every((m) => typeof JSON.parse(m.payload).p === 'string'), 'payloads are padded like Bedrock\'s');
  const noEnd = await request(direct(mock), { method: 'POST', path, headers: { ...headers, 'x-mock-behavior': 'no-terminal' }, body });
  assert.ok(decodeEventStream(noEnd.body).messages.every((m) => !['messageStop', 'metadata'].includes(m.headers[':event-type'])));
  const unsigned = await request(direct(mock), { method: 'POST', path, body });
  assert.equal(unsigned.status, 403);

  await assert.rejects(bedrockClient(mock, { 'x-mock-behavior': 'status=429' }).send(new ConverseCommand(converseInput('x'))), (err) => err.name === 'ThrottlingException' && err.$metadata.httpStatusCode === 429);
  await assert.rejects(bedrockClient(mock, { 'x-mock-behavior': 'status=400' }).send(new ConverseCommand(converseInput('x'))), (err) => err.name === 'ValidationException');
  const consume = async (headersOverride) => {
    const s = await bedrockClient(mock, headersOverride).send(new ConverseStreamCommand(converseInput('x')));
    for await (const ev of s.stream) assert.ok(ev);
  };
  await assert.rejects(consume({ 'x-mock-behavior': 'sse-error' }), (err) => err.name === 'ModelStreamErrorException');
  await assert.rejects(consume({ 'x-mock-behavior': 'bad-crc' }), /checksum|CRC/i);
  await assert.rejects(request(direct(mock), { method: 'POST', path, headers: { ...headers, 'x-mock-behavior': 'cut=2' }, body }), /aborted|socket hang up|ECONNRESET/);
});

test('families: behaviours status, delay, chunk-delay, cut, sequence numbers', async (t) => {
  for (const family of ['gemini', 'azure', 'ollama', 'tgi', 'llamacpp', 'bedrock']) {
    const mock = await start(t, family);
    const r = await request(direct(mock), { method: 'POST', path: '/anything', headers: { 'x-mock-behavior': 'status=503' }, body: {} });
    assert.equal(r.status, 503, family);
    assert.equal(r.headers['x-mock-seq'], '1', family);
  }
  const mock = await start(t, 'ollama');
  const t0 = performance.now();
  const slow = await post(mock, '/api/chat', { model: 'm', messages: [{ role: 'user', content: 'abcdefghij' }] }, { 'x-mock-behavior': 'chunk-delay=60,chunks=4' });
  assert.ok(performance.now() - t0 >= 4 * 60 - 20, 'four gaps of 60 ms between five lines');
  assert.equal(slow.text.trim().split('\n').length, 5);
  await assert.rejects(post(mock, '/api/chat', { model: 'm', messages: [] }, { 'x-mock-behavior': 'cut=2' }), /aborted|socket hang up|ECONNRESET/);
  const t1 = performance.now();
  await post(mock, '/api/embed', { model: 'm', input: 'x' }, { 'x-mock-behavior': 'delay=200' });
  assert.ok(performance.now() - t1 >= 190);
  assert.equal(mock.count('/api/chat'), 2);
  assert.equal(mock.last().seq, 3);
});
