// families.test.mjs — `--route PREFIX=URL,api=FAMILY` end to end (issue 15),
// against the fake upstreams of lib/families.mjs, each speaking its family's
// real wire format. Per family (openai, anthropic, gemini, azure, ollama, tgi,
// llamacpp, bedrock): miss → hit with identical bytes and one upstream call;
// streams replayed byte for byte (NDJSON, SSE, Gemini's JSON array, Bedrock's
// binary event stream); cut, unterminated and errored streams passed through
// and never stored; usage counted in tokens saved; the key scoped by the
// family's credential (for Bedrock by the SigV4 access key id, the proxy
// re-signing upstream with its own credentials); the 424 explainer of a
// replay miss after a recording. The official clients (ollama,
// @google/genai, @aws-sdk/client-bedrock-runtime, openai's AzureOpenAI)
// through the proxy: miss, then hit with identical results. Bedrock: what
// reaches upstream carries the proxy's credentials (environment, or the
// shared credentials file with a session token; region= on the route), never
// the client's, and its signature is recomputed with the AWS SDK's own
// signer, as AWS would check it. And: the default family (no api=) works as
// before, state-changing endpoints are never cached, a Gemini ?key= scopes
// the key and is never logged or exported, concurrent identical NDJSON and
// event streams coalesce, `--upstream URL,api=FAMILY`, `--cache-path`
// overrides the family's list, an unknown family and Bedrock without
// credentials exit 2.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import OpenAI, { AzureOpenAI } from 'openai';
import Anthropic from '@anthropic-ai/sdk';
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
import { startFamilyMock, usageOf, FAMILIES } from './lib/families.mjs';
import { startProxy, mockFor, closedPort, HEX32, BIN, childEnv, requireBin } from './lib/proxy.mjs';
import {
  SPECS, PROXY_AWS, CLAUDE, TITAN, familyProxy, send, stats, tokensSaved, verifySigV4, clientSigV4, tmpDir, withHeaders,
} from './lib/familytest.mjs';

const at = (base, req) => ({ ...req, path: base + req.path });
const short = (r) => `${r.status} ${r.cache} ${r.text.slice(0, 400)}`;
const FAST = 'chunk-delay=5';

/**
 * Every request the fake Bedrock got carries the proxy's SigV4 credential (its access key id,
 * scope, date and session token; the signature itself is checked by its own test below), and
 * nothing of the client's.
 */
async function assertProxySigned(mock, creds = PROXY_AWS, region = PROXY_AWS.region) {
  assert.ok(mock.requests.length > 0, 'the fake Bedrock got requests');
  for (const rec of mock.requests) {
    await verifySigV4(rec, creds, region, { signature: false });
    const raw = rec.rawHeaders.join('\n');
    assert.doesNotMatch(raw, /AKIDCLIENT/, `a client's access key id reached upstream in ${rec.path}`);
  }
}

describe('API families', { concurrency: 6 }, () => {
  for (const family of FAMILIES) {
    const spec = SPECS[family];

    test(`${family}: miss → hit, the same bytes and headers, one upstream call per request`, async (t) => {
      const { mock, proxy, base } = await familyProxy(t, family);
      const keys = new Set();
      for (const [i, v] of spec.plain.entries()) {
        const text = `${family} plain ${i}`;
        const req = v.req(text);
        const a = await send(proxy.port, at(base, req));
        assert.equal(a.status, 200, `${v.name}: ${short(a)}`);
        assert.equal(a.cache, 'MISS', `${v.name}: ${short(a)}`);
        assert.match(a.key || '', HEX32, `${v.name}: X-PromptCache-Key`);
        assert.ok(v.check(a, text), `${v.name}: the answer is the family's: ${a.text.slice(0, 400)}`);
        assert.equal(mock.count(), i + 1, `${v.name}: one upstream call`);
        assert.equal(mock.last().url, req.path, `${v.name}: the route prefix is stripped, the query kept`);
        const b = await send(proxy.port, at(base, req));
        assert.equal(b.status, 200, `${v.name}: ${short(b)}`);
        assert.equal(b.cache, 'HIT', `${v.name}: the repeat is a hit: ${short(b)}`);
        assert.equal(b.key, a.key, `${v.name}: same key`);
        assert.equal(Buffer.compare(b.body, a.body), 0, `${v.name}: the hit replays the stored bytes`);
        assert.equal(b.headers['content-type'], a.headers['content-type'], `${v.name}: content-type`);
        assert.equal(b.headers['x-mock-seq'], a.headers['x-mock-seq'], `${v.name}: the stored answer's headers`);
        assert.equal(mock.count(), i + 1, `${v.name}: the hit did not reach upstream`);
        keys.add(a.key);
      }
      assert.equal(keys.size, spec.plain.length, 'every endpoint has its own key');
      if (family === 'bedrock') await assertProxySigned(mock);
    });

    test(`${family}: streams are passed through and replayed byte for byte`, async (t) => {
      const { mock, proxy, base } = await familyProxy(t, family);
      for (const [i, v] of spec.streams.entries()) {
        const text = `${family} stream ${i}`;
        const req = v.req(text);
        const a = await send(proxy.port, withHeaders(at(base, req), { 'x-mock-behavior': FAST }));
        assert.equal(a.status, 200, `${v.name}: ${short(a)}`);
        assert.equal(a.cache, 'MISS', `${v.name}: ${short(a)}`);
        assert.equal(a.complete, true, `${v.name}: the stream arrives whole`);
        assert.match(String(a.headers['content-type']), v.ct, `${v.name}: content-type`);
        assert.ok(v.check(a, text), `${v.name}: the stream is the family's: ${a.text.slice(0, 400)}`);
        assert.equal(mock.count(), i + 1);
        const b = await send(proxy.port, at(base, req));
        assert.equal(b.status, 200, `${v.name}: ${short(b)}`);
        assert.equal(b.cache, 'HIT', `${v.name}: a whole stream is stored: ${short(b)}`);
        assert.equal(b.complete, true);
        assert.equal(b.key, a.key);
        assert.equal(b.body.length, a.body.length, `${v.name}: replayed length`);
        assert.equal(Buffer.compare(b.body, a.body), 0, `${v.name}: the replay is byte-exact`);
        assert.equal(b.headers['content-type'], a.headers['content-type'], `${v.name}: content-type`);
        assert.ok(v.check(b, text), `${v.name}: the replay parses as the family's stream`);
        assert.equal(mock.count(), i + 1, `${v.name}: the hit did not reach upstream`);
      }
      if (family === 'bedrock') await assertProxySigned(mock);
    });

    test(`${family}: a cut, unterminated or errored stream reaches the client as it is and is not stored`, async (t) => {
      const { mock, proxy, base } = await familyProxy(t, family);
      const behaviours = ['cut=2', 'no-terminal', 'sse-error', ...(family === 'bedrock' ? ['bad-crc'] : [])];
      let n = 0;
      for (const [i, v] of spec.streams.entries()) {
        const text = `${family} broken ${i}`;
        const req = at(base, v.req(text));
        for (const beh of behaviours) {
          const r = await send(proxy.port, withHeaders(req, { 'x-mock-behavior': `${beh},${FAST}` }));
          n++;
          assert.equal(r.status, 200, `${v.name} ${beh}: ${short(r)}`);
          assert.equal(r.cache, 'MISS', `${v.name} ${beh}: the previous broken stream was stored? ${short(r)}`);
          if (beh.startsWith('cut')) {
            assert.equal(r.complete, false, `${v.name} ${beh}: the client must see the body cut, not a clean end`);
            assert.ok(r.body.length > 0, `${v.name} ${beh}: what arrived before the cut is passed on`);
          } else if (beh !== 'bad-crc') {
            assert.equal(r.complete, true, `${v.name} ${beh}: a stream that ends cleanly is passed on whole`);
          }
          assert.equal(mock.count(), n, `${v.name} ${beh}: reached upstream`);
        }
        const clean = await send(proxy.port, withHeaders(req, { 'x-mock-behavior': FAST }));
        n++;
        assert.equal(clean.cache, 'MISS', `${v.name}: after ${behaviours.join(', ')}, the clean request is still a miss: ${short(clean)}`);
        assert.ok(v.check(clean, text), `${v.name}: the clean stream`);
        const hit = await send(proxy.port, req);
        assert.equal(hit.cache, 'HIT', `${v.name}: the clean stream is stored`);
        assert.equal(Buffer.compare(hit.body, clean.body), 0, `${v.name}: and replayed byte for byte`);
        assert.equal(mock.count(), n);
      }
      // a failed non-streamed answer is not stored either
      const p = at(base, spec.plain[0].req(`${family} failing`));
      const e1 = await send(proxy.port, withHeaders(p, { 'x-mock-behavior': 'status=503' }));
      assert.equal(e1.status, 503, short(e1));
      const e2 = await send(proxy.port, p);
      assert.equal(e2.status, 200, short(e2));
      assert.equal(e2.cache, 'MISS', 'a 503 was stored');
      if (family === 'bedrock') await assertProxySigned(mock);
    });

    test(`${family}: the usage of answers served from the cache is counted in tokens saved`, async (t) => {
      const { mock, proxy, base } = await familyProxy(t, family);
      const want = { input: 0, output: 0 };
      const variants = [...spec.plain.map((v) => ({ ...v, stream: false })), ...spec.streams.map((v) => ({ ...v, stream: true }))].filter((v) => v.usage);
      assert.ok(variants.length >= 2);
      for (const [i, v] of variants.entries()) {
        const text = `${family} usage ${i} ${'x'.repeat(i * 7)}`;
        const req = at(base, v.req(text));
        const miss = await send(proxy.port, v.stream ? withHeaders(req, { 'x-mock-behavior': FAST }) : req);
        assert.equal(miss.cache, 'MISS', `${v.name}: ${short(miss)}`);
        const u = v.usage(text, miss);
        const before = await tokensSaved(proxy, want, 0);
        assert.deepEqual({ input: before.input, output: before.output }, want, `${v.name}: a miss saves nothing`);
        const hit = await send(proxy.port, req);
        assert.equal(hit.cache, 'HIT', `${v.name}: ${short(hit)}`);
        want.input += u.input;
        want.output += u.output;
        const s = await tokensSaved(proxy, want);
        assert.equal(s.input, want.input, `${v.name}: tokens_saved.input after its hit (answer usage ${JSON.stringify(u)})`);
        assert.equal(s.output, want.output, `${v.name}: tokens_saved.output after its hit (answer usage ${JSON.stringify(u)})`);
        assert.equal(s.total, want.input + want.output, `${v.name}: tokens_saved.total`);
      }
      assert.equal(mock.count(), variants.length);
    });

    test(`${family}: the key is scoped by the family's credential`, async (t) => {
      const { mock, proxy, base } = await familyProxy(t, family);
      const v = spec.plain[0];
      const req = at(base, v.req(`${family} scoped`));
      const A = family === 'bedrock' ? 'AKIDCLIENTSCOPEAAAA' : `${family}-credential-AAAA-0000`;
      const B = family === 'bedrock' ? 'AKIDCLIENTSCOPEBBBB' : `${family}-credential-BBBB-1111`;
      const a1 = await send(proxy.port, withHeaders(req, spec.cred(A)));
      assert.equal(a1.cache, 'MISS', short(a1));
      if (spec.credName) assert.equal(mock.last().headers[spec.credName], spec.cred(A)[spec.credName], 'the credential reaches upstream');
      // the same credential (for Bedrock: the same access key id, signed another day with another signature)
      const again = family === 'bedrock' ? { authorization: clientSigV4(A, '20260315', 'us-east-1') } : spec.cred(A);
      const a2 = await send(proxy.port, withHeaders(req, again));
      assert.equal(a2.cache, 'HIT', `the same credential hits: ${short(a2)}`);
      assert.equal(a2.key, a1.key);
      assert.equal(Buffer.compare(a2.body, a1.body), 0);
      const b1 = await send(proxy.port, withHeaders(req, spec.cred(B)));
      assert.equal(b1.cache, 'MISS', `another credential misses: ${short(b1)}`);
      assert.notEqual(b1.key, a1.key, 'another credential has another key');
      assert.notEqual(b1.headers['x-mock-seq'], a1.headers['x-mock-seq'], 'and another upstream answer');
      const b2 = await send(proxy.port, withHeaders(req, spec.cred(B)));
      assert.equal(b2.cache, 'HIT', short(b2));
      assert.equal(b2.key, b1.key);
      assert.equal(mock.count(), 2);
      if (family === 'bedrock') await assertProxySigned(mock);
    });

    test(`${family}: record, then replay: recorded requests hit byte for byte, another gets the 424 explainer`, async (t) => {
      const db = path.join(tmpDir(t), 'db');
      const { mock, proxy: rec } = await familyProxy(t, family, { args: ['--mode', 'record'], dbDir: db });
      const p = spec.plain[0];
      const s = spec.streams[0];
      const base = `/${family}`;
      const recPlain = await send(rec.port, at(base, p.req('recorded prompt')));
      assert.equal(recPlain.status, 200, short(recPlain));
      assert.equal(recPlain.cache, 'MISS');
      const recStream = await send(rec.port, withHeaders(at(base, s.req('recorded stream prompt')), { 'x-mock-behavior': FAST }));
      assert.equal(recStream.status, 200, short(recStream));
      assert.equal(recStream.complete, true);
      assert.equal(mock.count(), 2);
      await rec.stop();

      const { proxy: rep } = await familyProxy(t, family, { mock, args: ['--mode', 'replay'], dbDir: db });
      const h1 = await send(rep.port, at(base, p.req('recorded prompt')));
      assert.equal(h1.status, 200, short(h1));
      assert.equal(h1.cache, 'HIT');
      assert.equal(Buffer.compare(h1.body, recPlain.body), 0, 'replayed bytes = recorded bytes');
      const h2 = await send(rep.port, at(base, s.req('recorded stream prompt')));
      assert.equal(h2.status, 200, short(h2));
      assert.equal(h2.cache, 'HIT');
      assert.equal(Buffer.compare(h2.body, recStream.body), 0, 'the replayed stream = the recorded stream, byte for byte');

      const miss = await send(rep.port, at(base, p.req('requested prompt')));
      assert.equal(miss.status, 424, short(miss));
      assert.equal(miss.headers['x-should-retry'], 'false');
      assert.match(String(miss.headers['content-type']), /^application\/json/);
      const err = miss.json.error;
      assert.equal(err.type, 'promptcache_replay_miss');
      assert.match(err.key, HEX32);
      assert.ok(err.message.includes(spec.pointer), `the message names ${spec.pointer}: ${err.message}`);
      assert.ok(err.nearest, `the nearest recording is named: ${miss.text}`);
      assert.equal(err.nearest.key, recPlain.key, 'the nearest recording is the recorded plain request');
      assert.deepEqual(err.nearest.differences, [{ path: spec.pointer, recorded: 'recorded prompt', requested: 'requested prompt' }]);
      await rep.waitFor((x) => x.stderr.includes('replay miss') && x.stderr.includes(spec.pointer), 3000, 'the explanation in the log');
      assert.equal(mock.count(), 2, 'replay never contacts upstream');
    });
  }

  // ------------------------------------------------------------ official clients

  test('ollama client through the proxy: streamed and plain chat, generate, embed — miss, then the same results from the cache', async (t) => {
    const { mock, proxy, base } = await familyProxy(t, 'ollama');
    const statuses = [];
    const spy = async (url, init) => {
      const r = await fetch(url, init);
      statuses.push(r.headers.get('x-promptcache-status'));
      return r;
    };
    const ol = new Ollama({ host: `${proxy.url}${base}`, fetch: spy });
    const chatStream = async () => {
      const parts = [];
      for await (const part of await ol.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'ollama client stream' }], stream: true })) parts.push(part);
      return parts;
    };
    const s1 = await chatStream();
    const s2 = await chatStream();
    assert.equal(s1.map((p) => p.message.content).join(''), echoText('ollama client stream'));
    assert.equal(s1.at(-1).done, true);
    assert.ok(s1.length > 2, 'several parts');
    assert.deepEqual(s2, s1, 'the same sequence of parts');
    assert.deepEqual(statuses.splice(0), ['MISS', 'HIT']);
    assert.equal(mock.count('/api/chat'), 1);

    const c1 = await ol.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'ollama once' }], stream: false });
    const c2 = await ol.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'ollama once' }], stream: false });
    assert.equal(c1.message.content, echoText('ollama once'));
    assert.deepEqual(c2, c1);
    const g1 = await ol.generate({ model: 'llama3.2', prompt: 'ollama gen', stream: false });
    const g2 = await ol.generate({ model: 'llama3.2', prompt: 'ollama gen', stream: false });
    assert.equal(g1.response, echoText('ollama gen'));
    assert.deepEqual(g2, g1);
    const e1 = await ol.embed({ model: 'all-minilm', input: ['a', 'b'] });
    const e2 = await ol.embed({ model: 'all-minilm', input: ['a', 'b'] });
    assert.equal(e1.embeddings.length, 2);
    assert.deepEqual(e2, e1);
    assert.deepEqual(statuses.splice(0), ['MISS', 'HIT', 'MISS', 'HIT', 'MISS', 'HIT']);
    assert.equal(mock.count(), 4);
    // not an inference endpoint: forwarded every time
    const l1 = await ol.list();
    await ol.list();
    assert.equal(l1.models[0].name, 'llama3.2:latest');
    assert.deepEqual(statuses.splice(0), ['BYPASS', 'BYPASS']);
    assert.equal(mock.count('/api/tags'), 2);
  });

  test('@google/genai through the proxy: generateContent and generateContentStream — miss, then the same results; another API key misses', async (t) => {
    const { mock, proxy, base } = await familyProxy(t, 'gemini');
    const ai = new GoogleGenAI({ apiKey: 'gm-key-A', httpOptions: { baseUrl: `${proxy.url}${base}` } });
    const status = (r) => r.sdkHttpResponse && r.sdkHttpResponse.headers && r.sdkHttpResponse.headers['x-promptcache-status'];
    const r1 = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'genai through the proxy' });
    const r2 = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'genai through the proxy' });
    assert.equal(r1.text, echoText('genai through the proxy'));
    assert.equal(r2.text, r1.text);
    assert.equal(r2.responseId, r1.responseId, 'the answer of the first request, from the cache');
    assert.deepEqual(r2.usageMetadata, r1.usageMetadata);
    assert.deepEqual([status(r1), status(r2)], ['MISS', 'HIT']);
    assert.equal(mock.count(), 1);
    assert.equal(mock.last().headers['x-goog-api-key'], 'gm-key-A');

    const streamed = async (client) => {
      const chunks = [];
      for await (const c of await client.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'genai stream' })) {
        chunks.push({ candidates: c.candidates, usageMetadata: c.usageMetadata, responseId: c.responseId, modelVersion: c.modelVersion });
      }
      return chunks;
    };
    const c1 = await streamed(ai);
    const c2 = await streamed(ai);
    assert.equal(c1.map((c) => c.candidates[0].content.parts[0].text).join(''), echoText('genai stream'));
    assert.equal(c1.at(-1).candidates[0].finishReason, 'STOP');
    assert.deepEqual(c2, c1, 'the same chunk sequence');
    assert.equal(mock.count(), 2);
    assert.match(mock.last().query, /alt=sse/);

    const other = new GoogleGenAI({ apiKey: 'gm-key-B', httpOptions: { baseUrl: `${proxy.url}${base}` } });
    const r3 = await other.models.generateContent({ model: 'gemini-2.5-flash', contents: 'genai through the proxy' });
    assert.equal(status(r3), 'MISS', 'another API key misses');
    assert.notEqual(r3.responseId, r1.responseId);
    assert.equal(mock.count(), 3);
  });

  test('@aws-sdk/client-bedrock-runtime through the proxy: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream — miss, then the same results; re-signed upstream', async (t) => {
    const { mock, proxy, base } = await familyProxy(t, 'bedrock');
    const statuses = [];
    const client = (accessKeyId, extra = {}) => {
      const c = new BedrockRuntimeClient({
        region: 'us-east-1',
        endpoint: `${proxy.url}${base}`,
        credentials: { accessKeyId, secretAccessKey: 'client-secret-not-the-proxys', sessionToken: 'CLIENT-SESSION-TOKEN' },
        maxAttempts: 1,
        requestHandler: new NodeHttpHandler(),
        ...extra,
      });
      c.middlewareStack.add((next) => async (args) => {
        const out = await next(args);
        statuses.push(out.response && out.response.headers['x-promptcache-status']);
        return out;
      }, { step: 'deserialize', name: 'promptcacheStatus' });
      return c;
    };
    const br = client('AKIDCLIENTSDK000001');
    const input = (text) => ({ modelId: CLAUDE, messages: [{ role: 'user', content: [{ text }] }], inferenceConfig: { maxTokens: 64 } });

    const a = await br.send(new ConverseCommand(input('sdk converse')));
    const b = await br.send(new ConverseCommand(input('sdk converse')));
    assert.equal(a.output.message.content[0].text, echoText('sdk converse'));
    assert.deepEqual(b.output, a.output);
    assert.deepEqual(b.usage, a.usage);
    assert.equal(b.stopReason, a.stopReason);
    assert.equal(b.$metadata.requestId, a.$metadata.requestId, 'the first answer, from the cache');
    assert.deepEqual(statuses.splice(0), ['MISS', 'HIT']);
    assert.equal(mock.count(), 1);
    assert.equal(mock.last().path, `/model/${encodeURIComponent(CLAUDE)}/converse`);

    const events = async (text) => {
      const out = [];
      const s = await br.send(new ConverseStreamCommand(input(text)));
      for await (const ev of s.stream) out.push(ev);
      return out;
    };
    const s1 = await events('sdk converse stream');
    const s2 = await events('sdk converse stream');
    const kinds = s1.map((ev) => Object.keys(ev).find((k) => ev[k] !== undefined));
    assert.equal(kinds[0], 'messageStart');
    assert.deepEqual(kinds.slice(-3), ['contentBlockStop', 'messageStop', 'metadata']);
    assert.equal(s1.filter((e) => e.contentBlockDelta).map((e) => e.contentBlockDelta.delta.text).join(''), echoText('sdk converse stream'));
    assert.deepEqual(s2, s1, 'the same event sequence');
    assert.deepEqual(statuses.splice(0), ['MISS', 'HIT']);
    assert.equal(mock.count(), 2);

    const body = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 64, messages: [{ role: 'user', content: 'sdk invoke' }] });
    const i1 = await br.send(new InvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', accept: 'application/json', body }));
    const i2 = await br.send(new InvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', accept: 'application/json', body }));
    assert.equal(JSON.parse(Buffer.from(i1.body).toString()).content[0].text, echoText('sdk invoke'));
    assert.equal(Buffer.compare(Buffer.from(i2.body), Buffer.from(i1.body)), 0);
    assert.deepEqual(statuses.splice(0), ['MISS', 'HIT']);
    const t1 = await br.send(new InvokeModelCommand({ modelId: TITAN, contentType: 'application/json', accept: 'application/json', body: JSON.stringify({ inputText: 'sdk titan' }) }));
    assert.equal(JSON.parse(Buffer.from(t1.body).toString()).results[0].outputText, echoText('sdk titan'));
    assert.deepEqual(statuses.splice(0), ['MISS']);

    const chunks = async () => {
      const out = [];
      const s = await br.send(new InvokeModelWithResponseStreamCommand({ modelId: CLAUDE, contentType: 'application/json', body }));
      for await (const ev of s.body) out.push(JSON.parse(Buffer.from(ev.chunk.bytes).toString()));
      return out;
    };
    const w1 = await chunks();
    const w2 = await chunks();
    assert.equal(w1.at(-1).type, 'message_stop');
    assert.equal(w1.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join(''), echoText('sdk invoke'));
    assert.deepEqual(w2, w1, 'the same chunk sequence');
    assert.deepEqual(statuses.splice(0), ['MISS', 'HIT']);
    assert.equal(mock.count(), 5);

    // the same access key id signing an hour earlier hits; another access key id misses
    const later = client('AKIDCLIENTSDK000001', { systemClockOffset: -3600 * 1000 });
    const c = await later.send(new ConverseCommand(input('sdk converse')));
    assert.equal(c.$metadata.requestId, a.$metadata.requestId);
    const otherKey = client('AKIDCLIENTSDK000002');
    const d = await otherKey.send(new ConverseCommand(input('sdk converse')));
    assert.notEqual(d.$metadata.requestId, a.$metadata.requestId);
    assert.deepEqual(statuses.splice(0), ['HIT', 'MISS']);
    assert.equal(mock.count(), 6);

    // upstream: the proxy's own SigV4 signature (verified with the AWS signer), never the client's key or session token
    await assertProxySigned(mock);
    for (const rec of mock.requests) {
      assert.notEqual(rec.headers['x-amz-security-token'], 'CLIENT-SESSION-TOKEN', "the client's session token is not forwarded with the proxy's signature");
    }
  });

  test('AzureOpenAI through the proxy (endpoint = the route): chat and a streamed chat — miss, then the same results; another api-key misses', async (t) => {
    const { mock, proxy, base } = await familyProxy(t, 'azure');
    const az = new AzureOpenAI({ apiKey: 'az-key-A', endpoint: `${proxy.url}${base}`, apiVersion: '2024-10-21', maxRetries: 0 });
    const ask = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'azure through the proxy' }] };
    const { data: c1, response: h1 } = await az.chat.completions.create(ask).withResponse();
    const { data: c2, response: h2 } = await az.chat.completions.create(ask).withResponse();
    assert.equal(c1.choices[0].message.content, echoText('azure through the proxy'));
    assert.deepEqual(c2, c1);
    assert.deepEqual([h1.headers.get('x-promptcache-status'), h2.headers.get('x-promptcache-status')], ['MISS', 'HIT']);
    assert.equal(mock.count(), 1);
    assert.equal(mock.last().url, '/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21');
    assert.equal(mock.last().headers['api-key'], 'az-key-A');

    const streamed = async () => {
      const { data, response } = await az.chat.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } }).withResponse();
      const chunks = [];
      for await (const ch of data) chunks.push(ch);
      return { chunks, status: response.headers.get('x-promptcache-status') };
    };
    const s1 = await streamed();
    const s2 = await streamed();
    assert.equal(s1.chunks.map((c) => c.choices[0]?.delta?.content || '').join(''), echoText('azure through the proxy'));
    assert.equal(s1.chunks.at(-1).usage.completion_tokens, usageOf('azure through the proxy').output);
    assert.deepEqual(s2.chunks, s1.chunks, 'the same chunk sequence');
    assert.deepEqual([s1.status, s2.status], ['MISS', 'HIT']);
    assert.equal(mock.count(), 2);

    const other = new AzureOpenAI({ apiKey: 'az-key-B', endpoint: `${proxy.url}${base}`, apiVersion: '2024-10-21', maxRetries: 0 });
    const { response: h3 } = await other.chat.completions.create(ask).withResponse();
    assert.equal(h3.headers.get('x-promptcache-status'), 'MISS');
    assert.equal(mock.count(), 3);
    // another api-version is another request
    const v2 = new AzureOpenAI({ apiKey: 'az-key-A', endpoint: `${proxy.url}${base}`, apiVersion: '2025-01-01-preview', maxRetries: 0 });
    const { response: h4 } = await v2.chat.completions.create(ask).withResponse();
    assert.equal(h4.headers.get('x-promptcache-status'), 'MISS');
    assert.equal(mock.count(), 4);
  });

  test('the OpenAI and Anthropic SDKs through api=openai and api=anthropic routes: miss, then the same result', async (t) => {
    const oaMock = await mockFor(t, (o) => startFamilyMock('openai', o));
    const anMock = await mockFor(t, (o) => startFamilyMock('anthropic', o));
    const dead = await closedPort();
    const proxy = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--route', `/oa=${oaMock.url},api=openai`, '--route', `/an=${anMock.url},api=anthropic`] });
    const oa = new OpenAI({ apiKey: 'sk-fam', baseURL: `${proxy.url}/oa/v1`, maxRetries: 0 });
    const ask = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'sdk openai family' }] };
    const { data: o1, response: r1 } = await oa.chat.completions.create(ask).withResponse();
    const { data: o2, response: r2 } = await oa.chat.completions.create(ask).withResponse();
    assert.deepEqual(o2, o1);
    assert.deepEqual([r1.headers.get('x-promptcache-status'), r2.headers.get('x-promptcache-status')], ['MISS', 'HIT']);
    const an = new Anthropic({ apiKey: 'sk-ant-fam', baseURL: `${proxy.url}/an`, maxRetries: 0 });
    const msg = { model: 'claude-3-5-haiku-latest', max_tokens: 32, messages: [{ role: 'user', content: 'sdk anthropic family' }] };
    const { data: a1, response: q1 } = await an.messages.create(msg).withResponse();
    const { data: a2, response: q2 } = await an.messages.create(msg).withResponse();
    assert.deepEqual(a2, a1);
    assert.deepEqual([q1.headers.get('x-promptcache-status'), q2.headers.get('x-promptcache-status')], ['MISS', 'HIT']);
    assert.equal(oaMock.count(), 1);
    assert.equal(anMock.count(), 1);
  });

  test('gemini: an API key in the query (?key=) scopes the cache key like the header, and is neither logged nor exported', async (t) => {
    const { mock, proxy, base } = await familyProxy(t, 'gemini');
    const body = { contents: [{ role: 'user', parts: [{ text: 'query key' }] }] };
    const at_ = (k) => ({ path: `${base}/v1beta/models/gemini-2.5-flash:generateContent?key=${k}`, body });
    const a1 = await send(proxy.port, at_('AIzaQUERYSECRETAAAA'));
    const a2 = await send(proxy.port, at_('AIzaQUERYSECRETAAAA'));
    const b1 = await send(proxy.port, at_('AIzaQUERYSECRETBBBB'));
    assert.deepEqual([a1.cache, a2.cache, b1.cache], ['MISS', 'HIT', 'MISS']);
    assert.notEqual(a1.key, b1.key);
    assert.equal(mock.last().url, '/v1beta/models/gemini-2.5-flash:generateContent?key=AIzaQUERYSECRETBBBB', 'the key reaches upstream');
    assert.equal(mock.count(), 2);
    const out = await new Promise((resolve) => execFile(BIN, ['export', '--db', proxy.dbDir, '--allow-secrets'], { encoding: 'utf8' }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr })));
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout.trim().split('\n').length, 1, 'the same request under two credentials is exported once (fingerprints are not exported)');
    assert.equal(JSON.parse(out.stdout).request.path, '/v1beta/models/gemini-2.5-flash:generateContent');
    assert.doesNotMatch(out.stdout, /QUERYSECRET/, 'the query key is not exported');
    await proxy.waitFor((p) => p.logLines().length >= 3, 3000, 'three access-log lines');
    assert.doesNotMatch(proxy.stderr, /QUERYSECRET/, 'the query key is not logged');
  });

  test('concurrent identical streams of ollama (NDJSON) and bedrock (event stream) make one upstream call; every client gets the same bytes', async (t) => {
    for (const family of ['ollama', 'bedrock']) {
      const { mock, proxy, base } = await familyProxy(t, family);
      const v = SPECS[family].streams[0];
      const req = withHeaders(at(base, v.req(`${family} together`)), { 'x-mock-behavior': 'chunk-delay=40' });
      const all = await Promise.all([0, 1, 2].map(() => send(proxy.port, req)));
      assert.equal(mock.count(), 1, `${family}: one upstream call`);
      assert.deepEqual(all.map((r) => r.cache).sort(), ['COALESCED', 'COALESCED', 'MISS'], `${family}: ${all.map((r) => r.cache)}`);
      for (const r of all) {
        assert.equal(r.complete, true);
        assert.equal(Buffer.compare(r.body, all[0].body), 0, `${family}: identical bytes`);
        assert.ok(v.check(r, `${family} together`), `${family}: a whole stream`);
      }
      const hit = await send(proxy.port, req);
      assert.equal(hit.cache, 'HIT');
      assert.equal(Buffer.compare(hit.body, all[0].body), 0);
    }
  });

  // ------------------------------------------------------------ defaults, paths, options

  test('a route without api= keeps the default family: OpenAI and Anthropic shapes cached; /v1/threads/{id}/messages is never cached', async (t) => {
    const main = await mockFor(t, (o) => startFamilyMock('default', o));
    const routed = await mockFor(t, (o) => startFamilyMock('default', o));
    const fam = await mockFor(t, (o) => startFamilyMock('openai', o));
    const proxy = await startProxy(t, { upstream: main, args: ['--route', `/plain=${routed.url}`, '--route', `/oa=${fam.url},api=openai`] });
    for (const [prefix, mock] of [['', main], ['/plain', routed]]) {
      const chat = { method: 'POST', path: `${prefix}/v1/chat/completions`, headers: { authorization: 'Bearer sk-default' }, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `default ${prefix}` }] } };
      const c1 = await send(proxy.port, chat);
      const c2 = await send(proxy.port, chat);
      assert.deepEqual([c1.cache, c2.cache], ['MISS', 'HIT'], `${prefix || '(upstream)'} chat`);
      assert.equal(Buffer.compare(c1.body, c2.body), 0);
      const msg = { method: 'POST', path: `${prefix}/v1/messages`, headers: { 'x-api-key': 'sk-ant-default', 'anthropic-version': '2023-06-01' }, body: { model: 'claude-3-5-haiku-latest', max_tokens: 16, messages: [{ role: 'user', content: `default ${prefix}` }] } };
      const m1 = await send(proxy.port, msg);
      const m2 = await send(proxy.port, msg);
      assert.deepEqual([m1.cache, m2.cache], ['MISS', 'HIT'], `${prefix || '(upstream)'} messages`);
      // anthropic-version stays in the key of the default family
      const m3 = await send(proxy.port, withHeaders(msg, { 'anthropic-version': '2024-01-01' }));
      assert.equal(m3.cache, 'MISS', 'anthropic-version is part of the default key');
      const sse = { ...chat, body: { ...chat.body, stream: true } };
      const s1 = await send(proxy.port, sse);
      const s2 = await send(proxy.port, sse);
      assert.deepEqual([s1.cache, s2.cache], ['MISS', 'HIT']);
      assert.equal(s1.text, s2.text);
      assert.equal(mock.count(), 4);
    }
    for (const [prefix, mock] of [['', main], ['/plain', routed], ['/oa', fam]]) {
      const before = mock.count();
      const thread = { method: 'POST', path: `${prefix}/v1/threads/thread_abc123/messages`, headers: { authorization: 'Bearer sk-default', 'openai-beta': 'assistants=v2' }, body: { role: 'user', content: 'create a message' } };
      const t1 = await send(proxy.port, thread);
      const t2 = await send(proxy.port, thread);
      assert.deepEqual([t1.cache, t2.cache], ['BYPASS', 'BYPASS'], `${prefix || '(upstream)'}: POST /v1/threads/{id}/messages is state-changing`);
      assert.equal(t1.status, 200);
      assert.equal(mock.count() - before, 2, `${prefix || '(upstream)'}: both reached upstream`);
    }
  });

  test('state-changing and non-inference endpoints of each family are forwarded every time (BYPASS)', async (t) => {
    const cases = {
      ollama: [['POST', '/api/pull', { model: 'llama3.2' }], ['POST', '/api/create', { model: 'mine', from: 'llama3.2' }], ['POST', '/api/copy', { source: 'a', destination: 'b' }], ['GET', '/api/tags']],
      gemini: [['POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', { batch: { input_config: {} } }], ['POST', '/v1beta/models/gemini-2.5-flash:countTokens', { contents: [{ parts: [{ text: 'x' }] }] }]],
      bedrock: [['POST', '/async-invoke', { modelId: CLAUDE, modelInput: {} }], ['POST', `/model/${encodeURIComponent(CLAUDE)}/async-invoke`, {}]],
      azure: [['POST', '/openai/threads?api-version=2024-10-21', {}], ['POST', '/openai/files?api-version=2024-10-21', {}]],
      tgi: [['GET', '/info'], ['POST', '/tokenize', { inputs: 'x' }]],
      llamacpp: [['GET', '/health'], ['POST', '/tokenize', { content: 'x' }], ['POST', '/slots/0?action=save', { filename: 'x' }]],
    };
    for (const [family, reqs] of Object.entries(cases)) {
      const { mock, proxy, base } = await familyProxy(t, family);
      for (const [method, p, body] of reqs) {
        const before = mock.count();
        const headers = family === 'bedrock' ? { authorization: clientSigV4('AKIDCLIENTBYPASS001') } : { 'api-key': 'k' };
        const r1 = await send(proxy.port, { method, path: base + p, body, headers });
        const r2 = await send(proxy.port, { method, path: base + p, body, headers });
        assert.deepEqual([r1.cache, r2.cache], ['BYPASS', 'BYPASS'], `${family} ${method} ${p}`);
        assert.equal(r1.key, undefined, `${family} ${method} ${p}: no key on an uncacheable request`);
        assert.equal(mock.count() - before, 2, `${family} ${method} ${p}: both reached upstream`);
      }
    }
  });

  test('--upstream URL,api=FAMILY gives the default upstream a family; without api= the family\'s endpoints are not cached', async (t) => {
    const ol = await mockFor(t, (o) => startFamilyMock('ollama', o));
    const proxy = await startProxy(t, { upstream: `${ol.url},api=ollama` });
    const req = { path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'default upstream family' }] } };
    const a = await send(proxy.port, withHeaders(req, { 'x-mock-behavior': FAST }));
    const b = await send(proxy.port, req);
    assert.deepEqual([a.cache, b.cache], ['MISS', 'HIT']);
    assert.match(String(b.headers['content-type']), /^application\/x-ndjson/);
    assert.equal(Buffer.compare(a.body, b.body), 0);
    assert.equal(ol.count(), 1);

    const plain = await startProxy(t, { upstream: ol });
    const c = await send(plain.port, req);
    const d = await send(plain.port, req);
    assert.deepEqual([c.cache, d.cache], ['BYPASS', 'BYPASS'], 'the default family does not know /api/chat');
    assert.equal(ol.count(), 3);
  });

  test('--cache-path replaces the family\'s list on every route', async (t) => {
    const { mock, proxy, base } = await familyProxy(t, 'ollama', { args: ['--cache-path', '*/api/embed'] });
    const chat = { path: `${base}/api/chat`, body: { model: 'llama3.2', messages: [{ role: 'user', content: 'not listed' }], stream: false } };
    const c1 = await send(proxy.port, chat);
    const c2 = await send(proxy.port, chat);
    assert.deepEqual([c1.cache, c2.cache], ['BYPASS', 'BYPASS']);
    const emb = { path: `${base}/api/embed`, body: { model: 'all-minilm', input: ['listed'] } };
    const e1 = await send(proxy.port, emb);
    const e2 = await send(proxy.port, emb);
    assert.deepEqual([e1.cache, e2.cache], ['MISS', 'HIT']);
    assert.equal(mock.count(), 3);
  });

  test('an unknown api= family, and a Bedrock route without AWS credentials, exit 2 with a one-line message', async (t) => {
    requireBin();
    const home = tmpDir(t);
    const env = childEnv({ HOME: home, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined, AWS_DEFAULT_PROFILE: undefined, AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'none'), AWS_CONFIG_FILE: path.join(home, 'none'), AWS_REGION: 'us-east-1' });
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    const run = (args) => new Promise((resolve) => {
      execFile(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', path.join(home, 'db'), ...args], { env, timeout: 5000, encoding: 'utf8' }, (err, stdout, stderr) => {
        resolve({ code: err ? err.code : 0, signal: err && err.signal, stderr });
      });
    });
    const unknown = await run(['--route', '/v=http://127.0.0.1:9,api=vertex']);
    assert.equal(unknown.code, 2, `api=vertex: ${JSON.stringify(unknown)}`);
    assert.match(unknown.stderr, /vertex/);
    assert.equal(unknown.stderr.trim().split('\n').length, 1, unknown.stderr);

    const noCreds = await run(['--route', '/bedrock-east=http://127.0.0.1:9,api=bedrock']);
    assert.equal(noCreds.code, 2, `no AWS credentials: ${JSON.stringify(noCreds)}`);
    assert.match(noCreds.stderr, /\/bedrock-east/, 'the message names the route');
    assert.equal(noCreds.stderr.trim().split('\n').length, 1, noCreds.stderr);
    // an access key id without its secret is no credential either
    const half = await new Promise((resolve) => {
      execFile(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', path.join(home, 'db'), '--route', '/br=http://127.0.0.1:9,api=bedrock'], { env: { ...env, AWS_ACCESS_KEY_ID: 'AKIDHALF' }, timeout: 5000, encoding: 'utf8' }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stderr }));
    });
    assert.equal(half.code, 2, JSON.stringify(half));
    assert.doesNotMatch(half.stderr, /AKIDHALF/, 'no credential in the message');
  });

  test('bedrock: credentials from the shared credentials file (with its session token) and region= on the route are what upstream sees', async (t) => {
    const home = tmpDir(t);
    fs.mkdirSync(path.join(home, '.aws'));
    const file = { accessKeyId: 'AKIDPROXYFROMFILE01', secretAccessKey: 'file-secret/abcdefghijklmnopqrstuvwxyz0123', sessionToken: 'FILE-SESSION-TOKEN-xyz' };
    fs.writeFileSync(path.join(home, '.aws', 'credentials'), `[default]\naws_access_key_id = ${file.accessKeyId}\naws_secret_access_key = ${file.secretAccessKey}\naws_session_token = ${file.sessionToken}\n`);
    const { mock, proxy, base } = await familyProxy(t, 'bedrock', {
      routeSuffix: ',region=eu-west-3',
      env: { HOME: home, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SHARED_CREDENTIALS_FILE: undefined, AWS_CONFIG_FILE: undefined },
    });
    const v = SPECS.bedrock.plain[0];
    const a = await send(proxy.port, at(base, v.req('from the file')));
    assert.equal(a.status, 200, short(a));
    assert.equal(a.cache, 'MISS');
    const s = SPECS.bedrock.streams[0];
    const b = await send(proxy.port, at(base, s.req('from the file')));
    assert.equal(b.status, 200, short(b));
    assert.equal(mock.count(), 2);
    for (const rec of mock.requests) {
      await verifySigV4(rec, file, 'eu-west-3', { signature: false });
      assert.equal(rec.headers['x-amz-security-token'], file.sessionToken, "the file's session token is sent");
    }
    assert.doesNotMatch(proxy.stderr, /file-secret|FILE-SESSION-TOKEN/, 'no secret in the log');
  });

  test('bedrock: a client session token is never forwarded; the proxy\'s AWS_SESSION_TOKEN is', async (t) => {
    const creds = { ...PROXY_AWS, sessionToken: 'PROXY-SESSION-TOKEN-0001' };
    const { mock, proxy, base } = await familyProxy(t, 'bedrock', { env: { AWS_SESSION_TOKEN: creds.sessionToken } });
    const v = SPECS.bedrock.plain[0];
    const req = withHeaders(at(base, v.req('session tokens')), { 'x-amz-security-token': 'CLIENT-SESSION-TOKEN-9999', 'x-amz-date': '20260101T000000Z' });
    const a = await send(proxy.port, req);
    assert.equal(a.status, 200, short(a));
    assert.equal(a.cache, 'MISS');
    const rec = mock.last();
    assert.equal(rec.headers['x-amz-security-token'], creds.sessionToken);
    assert.doesNotMatch(rec.rawHeaders.join('\n'), /CLIENT-SESSION-TOKEN|20260101T000000Z/, "the client's token and date do not reach upstream");
    await verifySigV4(rec, creds, 'us-east-1', { signature: false });
    // the same client credential (access key id and session token) signed again hits
    const b = await send(proxy.port, withHeaders(req, { authorization: clientSigV4('AKIDCLIENTE2E00001', '20260102') }));
    assert.equal(b.cache, 'HIT', short(b));
    assert.equal(mock.count(), 1);
    assert.doesNotMatch(proxy.stderr, /PROXY-SESSION-TOKEN|CLIENT-SESSION-TOKEN|proxy-e2e-secret/, 'no secret in the log');
  });

  test('bedrock: every upstream request carries a SigV4 signature AWS would accept (recomputed with the AWS SDK signer)', async (t) => {
    const failures = [];
    const check = async (mock, creds, region) => {
      for (const rec of mock.requests) {
        try {
          await verifySigV4(rec, creds, region);
        } catch (e) {
          failures.push(e.message);
        }
      }
    };
    // environment credentials; every operation; model ids with ':' (Claude) and without (Titan); with and without a client Accept
    const env = await familyProxy(t, 'bedrock');
    for (const v of [...SPECS.bedrock.plain, ...SPECS.bedrock.streams]) {
      const r = await send(env.proxy.port, at(env.base, v.req('signed by the proxy')));
      assert.equal(r.status, 200, `${v.name}: ${short(r)}`);
    }
    assert.equal(env.mock.count(), 5);
    await check(env.mock, PROXY_AWS, PROXY_AWS.region);
    // the shared credentials file with a session token, region= on the route
    const home = tmpDir(t);
    fs.mkdirSync(path.join(home, '.aws'));
    const file = { accessKeyId: 'AKIDPROXYFROMFILE02', secretAccessKey: 'file-secret-2/abcdefghijklmnopqrstuvwxyz01', sessionToken: 'FILE-SESSION-TOKEN-2' };
    fs.writeFileSync(path.join(home, '.aws', 'credentials'), `[default]\naws_access_key_id=${file.accessKeyId}\naws_secret_access_key=${file.secretAccessKey}\naws_session_token=${file.sessionToken}\n`);
    const fromFile = await familyProxy(t, 'bedrock', { routeSuffix: ',region=ap-northeast-1', env: { HOME: home, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined } });
    const v = SPECS.bedrock.plain[2];
    assert.equal((await send(fromFile.proxy.port, at(fromFile.base, v.req('signed from the file')))).status, 200);
    await check(fromFile.mock, file, 'ap-northeast-1');
    assert.equal(failures.length, 0, `signatures AWS would reject:\n${failures.join('\n')}`);
  });

  test('bedrock: InvokeModel usage from the X-Amzn-Bedrock-*-Token-Count headers alone (a model whose body has none)', async (t) => {
    const { mock, proxy, base } = await familyProxy(t, 'bedrock');
    const MISTRAL = 'mistral.mistral-7b-instruct-v0:2';
    mock.handler = async (req, res, rec) => {
      if (!rec.path.startsWith('/model/mistral.')) return false;
      const body = Buffer.from(JSON.stringify({ outputs: [{ text: `mistral says ${rec.seq}`, stop_reason: 'stop' }] }));
      res.writeHead(200, {
        'content-type': 'application/json', 'content-length': String(body.length), 'x-amzn-requestid': `mock-${rec.seq}`,
        'x-amzn-bedrock-input-token-count': '17', 'x-amzn-bedrock-output-token-count': '29', 'x-amzn-bedrock-invocation-latency': '80',
      });
      res.end(body);
      return true;
    };
    const req = { path: `${base}/model/${encodeURIComponent(MISTRAL)}/invoke`, headers: { authorization: clientSigV4('AKIDCLIENTMISTRAL01'), accept: 'application/json' }, body: { prompt: '<s>[INST] hi [/INST]', max_tokens: 32 } };
    const a = await send(proxy.port, req);
    assert.equal(a.cache, 'MISS', short(a));
    const s0 = await stats(proxy);
    assert.deepEqual([s0.totals.tokens_saved.input, s0.totals.tokens_saved.output], [0, 0]);
    const b = await send(proxy.port, req);
    assert.equal(b.cache, 'HIT', short(b));
    assert.equal(b.headers['x-amzn-bedrock-input-token-count'], '17', 'the token-count headers are stored and replayed');
    assert.equal(Buffer.compare(a.body, b.body), 0);
    const s = await tokensSaved(proxy, { input: 17, output: 29 });
    assert.deepEqual([s.input, s.output], [17, 29], 'tokens_saved from the headers');
    assert.equal(mock.count(), 1);
  });
});

