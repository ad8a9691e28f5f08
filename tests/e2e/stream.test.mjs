// stream.test.mjs — streamed (SSE) answers reach the client as they arrive, with
// their original spacing in time, byte for byte; a stream that reached its
// terminal event with status 200 is stored with its chunk timing and replayed
// byte for byte (at once, or with the recorded gaps); an errored, truncated or
// unterminated stream is never stored.
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { setup, chat, chatBody, curl, parseCurlInclude, HEX32, sleep } from './lib/setup.mjs';
import { openAIStreamEvents, anthropicStreamEvents, responsesStreamEvents, geminiStreamEvents, echoText } from './lib/mock.mjs';
import { RawClient, rawRequest } from './lib/raw.mjs';

/**
 * POST a JSON body and record when each SSE event (terminated by a blank line)
 * arrives at the client. Resolves {status, headers, text, headersAt, events: [{t, text}], chunks,
 * complete (the body ended cleanly), error, ms}; a cut body resolves with complete=false.
 */
function timedStream(proxy, path, body, headers = {}, { abortAfterEvents = 0 } = {}) {
  return new Promise((resolve) => {
    const payload = Buffer.from(JSON.stringify(body));
    const t0 = performance.now();
    const out = { status: 0, headers: {}, headersAt: -1, events: [], chunks: 0, text: '', complete: false, error: null, ms: 0 };
    let settled = false;
    const finish = (err) => {
      if (settled) return;
      settled = true;
      if (err) out.error = err;
      out.ms = performance.now() - t0;
      resolve(out);
    };
    const req = http.request({
      host: '127.0.0.1', port: proxy.port, method: 'POST', path, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': payload.length, accept: 'text/event-stream', ...headers },
    }, (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      out.headersAt = performance.now() - t0;
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        const now = performance.now() - t0;
        out.chunks++;
        out.text += d;
        pending += d;
        let m;
        while ((m = /\r?\n\r?\n/.exec(pending))) {
          out.events.push({ t: now, text: pending.slice(0, m.index + m[0].length) });
          pending = pending.slice(m.index + m[0].length);
        }
        if (abortAfterEvents && out.events.length >= abortAfterEvents) {
          req.destroy();
          finish();
        }
      });
      res.on('end', () => { out.complete = res.complete; finish(); });
      res.on('error', (e) => finish(e));
      res.on('close', () => { out.complete = out.complete || res.complete; finish(); });
    });
    req.setTimeout(15000, () => req.destroy(new Error(`stream ${path} timed out`)));
    req.on('error', (e) => finish(e));
    req.end(payload);
  });
}

function assertSpacing(events, gapMs, label) {
  const gaps = [];
  for (let i = 1; i < events.length; i++) gaps.push(events[i].t - events[i - 1].t);
  const span = events[events.length - 1].t - events[0].t;
  const expected = gapMs * (events.length - 1);
  assert.ok(span >= expected * 0.75, `${label}: events arrived over ${span} ms, expected ~${expected} ms (gaps ${JSON.stringify(gaps)})`);
  const spaced = gaps.filter((g) => g >= gapMs * 0.5).length;
  assert.ok(spaced >= events.length - 2, `${label}: events should arrive ~${gapMs} ms apart, gaps were ${JSON.stringify(gaps)}`);
  for (const g of gaps) assert.ok(g <= gapMs * 3 + 200, `${label}: a gap of ${g} ms: chunks were held back (gaps ${JSON.stringify(gaps)})`);
}

test('an OpenAI SSE answer reaches the client in several chunks with its original spacing', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('stream to me slowly', { stream: true });
  const r = await timedStream(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'chunk-delay=200,chunks=5' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-promptcache-status'], 'MISS');
  assert.match(r.headers['x-promptcache-key'] || '', HEX32);
  assert.match(r.headers['content-type'] || '', /^text\/event-stream/);
  const expected = openAIStreamEvents(mock.last().seq, 'gpt-4o-mini', echoText('stream to me slowly'), 5);
  assert.equal(r.text, expected.join(''), 'the stream arrives byte for byte');
  assert.equal(r.events.length, expected.length);
  assert.ok(r.chunks >= 5, `arrived in ${r.chunks} network chunks, expected several`);
  assert.ok(r.headersAt < r.events[r.events.length - 1].t - 800, `headers at ${r.headersAt} ms must come well before the last event at ${r.events[r.events.length - 1].t} ms`);
  assertSpacing(r.events, 200, 'openai');
});

test('an Anthropic SSE answer reaches the client with its original spacing', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = { model: 'claude-3-5-haiku-latest', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'anthropic stream' }] };
  const r = await timedStream(proxy, '/v1/messages', body, { 'x-mock-behavior': 'chunk-delay=120,chunks=4', 'anthropic-version': '2023-06-01' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-promptcache-status'], 'MISS');
  const expected = anthropicStreamEvents(mock.last().seq, 'claude-3-5-haiku-latest', echoText('anthropic stream'), 4);
  assert.equal(r.text, expected.join(''));
  assert.match(r.events[0].text, /^event: message_start\n/);
  assert.match(r.events[r.events.length - 1].text, /^event: message_stop\n/);
  assertSpacing(r.events, 120, 'anthropic');
});

/**
 * Parse an HTTP/1.1 response with a chunked body, keeping the chunk framing:
 * {status, headers, chunks: [string], text, complete} (complete: the 0-size
 * terminator arrived). Returns null while the head is incomplete.
 */
function parseChunkedResponse(buf) {
  const he = buf.indexOf('\r\n\r\n');
  if (he < 0) return null;
  const lines = buf.subarray(0, he).toString('latin1').split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    headers[k] = headers[k] === undefined ? l.slice(i + 1).trim() : `${headers[k]}, ${l.slice(i + 1).trim()}`;
  }
  const chunks = [];
  let complete = false;
  let p = he + 4;
  if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    for (;;) {
      const le = buf.indexOf('\r\n', p);
      if (le < 0) break;
      const size = parseInt(buf.subarray(p, le).toString('latin1'), 16);
      if (Number.isNaN(size)) throw new Error(`bad chunk size at ${p}: ${JSON.stringify(buf.subarray(p, le + 10).toString('latin1'))}`);
      if (size === 0) { complete = buf.length >= le + 4; break; }
      if (buf.length < le + 2 + size + 2) break;
      chunks.push(buf.subarray(le + 2, le + 2 + size).toString('utf8'));
      p = le + 2 + size + 2;
    }
  } else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (buf.length >= p + n) { chunks.push(buf.subarray(p, p + n).toString('utf8')); complete = true; }
  }
  return { status, headers, chunks, text: chunks.join(''), complete };
}

/** POST over a raw socket and return the response with its HTTP chunk boundaries. */
async function rawStream(proxy, path, body, headers = {}) {
  const c = await RawClient.connect(proxy.port);
  const t0 = performance.now();
  try {
    await c.write(rawRequest('POST', path, { Accept: 'text/event-stream', ...headers }, body));
    const parsed = () => parseChunkedResponse(c.buf);
    await c.waitUntil(() => { const r = parsed(); return r && r.complete; }, 10000);
    const r = parsed();
    assert.ok(r, `no response head: ${c.buf.toString('utf8').slice(0, 500)}`);
    r.ms = performance.now() - t0;
    return r;
  } finally {
    c.destroy();
  }
}

const openaiFor = (proxy) => new OpenAI({ apiKey: 'sk-test-stream', baseURL: `${proxy.url}/v1`, maxRetries: 0, timeout: 15000 });
const anthropicFor = (proxy) => new Anthropic({ apiKey: 'sk-ant-test-stream', baseURL: proxy.url, maxRetries: 0, timeout: 15000 });

test('a streamed chat completion is stored at data: [DONE]; the repeat is a HIT with the same bytes and chunk boundaries', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('store my stream', { stream: true });
  const headers = { 'x-mock-behavior': 'chunk-delay=40,chunks=4' };
  const a = await rawStream(proxy, '/v1/chat/completions', body, headers);
  assert.equal(a.status, 200);
  assert.equal(a.headers['x-promptcache-status'], 'MISS');
  assert.match(a.headers['x-promptcache-key'] || '', HEX32);
  const expected = openAIStreamEvents(mock.last().seq, 'gpt-4o-mini', echoText('store my stream'), 4).join('');
  assert.equal(a.text, expected);
  assert.ok(a.chunks.length >= 4, `the live stream came in ${a.chunks.length} HTTP chunks`);

  const b = await rawStream(proxy, '/v1/chat/completions', body, headers);
  assert.equal(b.status, 200);
  assert.equal(b.headers['x-promptcache-status'], 'HIT', `second request: ${JSON.stringify(b.headers)}`);
  assert.equal(b.headers['x-promptcache-key'], a.headers['x-promptcache-key']);
  assert.match(b.headers['content-type'] || '', /^text\/event-stream/);
  assert.match(b.headers.age || '', /^\d+$/, 'a HIT carries Age');
  assert.equal(b.text, a.text, 'the replay is byte for byte the recorded stream');
  assert.deepEqual(b.chunks, a.chunks, 'the replay keeps the recorded chunk boundaries');
  assert.ok(b.ms < 200, `an unpaced replay is fast: ${b.ms} ms`);
  assert.equal(mock.count(), 1, 'one upstream request');

  // a plain node:http client reads the same stream
  const c = await timedStream(proxy, '/v1/chat/completions', body);
  assert.equal(c.headers['x-promptcache-status'], 'HIT');
  assert.equal(c.text, expected);
  // "stream" stays in the key: the non-streamed request is another entry
  const plain = await chat(proxy, 'store my stream');
  assert.equal(plain.cache, 'MISS');
  assert.notEqual(plain.key, a.headers['x-promptcache-key']);
  assert.equal(mock.count(), 2);
});

test('OpenAI SDK: a replayed chat stream yields exactly the live event sequence', async (t) => {
  const { mock, proxy } = await setup(t);
  const client = openaiFor(proxy);
  const params = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'sdk replay' }], stream: true, stream_options: { include_usage: true } };
  const run = async () => {
    const { data, response } = await client.chat.completions.create(params).withResponse();
    const chunks = [];
    for await (const chunk of data) chunks.push(chunk);
    return { status: response.headers.get('x-promptcache-status'), ctype: response.headers.get('content-type'), chunks };
  };
  const live = await run();
  const replay = await run();
  assert.equal(live.status, 'MISS');
  assert.equal(replay.status, 'HIT');
  assert.match(replay.ctype || '', /^text\/event-stream/);
  assert.ok(live.chunks.length >= 6, `live chunks: ${live.chunks.length}`);
  assert.deepEqual(replay.chunks, live.chunks);
  assert.equal(live.chunks.map((c) => c.choices[0]?.delta?.content || '').join(''), echoText('sdk replay'));
  assert.ok(live.chunks[live.chunks.length - 1].usage, 'the usage chunk is part of the stream');
  assert.equal(mock.count(), 1);
});

test('Anthropic SDK: a replayed messages stream yields exactly the live event sequence', async (t) => {
  const { mock, proxy } = await setup(t);
  const client = anthropicFor(proxy);
  const params = { model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: 'claude replay' }], stream: true };
  const run = async () => {
    const { data, response } = await client.messages.create(params).withResponse();
    const events = [];
    for await (const ev of data) events.push(ev);
    return { status: response.headers.get('x-promptcache-status'), events };
  };
  const live = await run();
  const replay = await run();
  assert.equal(live.status, 'MISS');
  assert.equal(replay.status, 'HIT');
  assert.deepEqual(live.events.map((e) => e.type).slice(0, 2), ['message_start', 'content_block_start']);
  assert.equal(live.events[live.events.length - 1].type, 'message_stop');
  assert.deepEqual(replay.events, live.events);
  // the high-level helper builds the same final message from the replay
  const { stream: _s, ...helperParams } = params;
  const final = await client.messages.stream(helperParams).finalMessage();
  assert.equal(final.content[0].text, echoText('claude replay'));
  assert.equal(final.id, live.events[0].message.id, 'the helper read the stored stream');
  assert.equal(mock.count(), 1);
});

test('Responses API: a stream is stored at response.completed and replayed as the same SDK events; without it, not stored', async (t) => {
  const { mock, proxy } = await setup(t);
  const client = openaiFor(proxy);
  const run = async (input, opts) => {
    const { data, response } = await client.responses.create({ model: 'gpt-4o-mini', input, stream: true }, opts).withResponse();
    const events = [];
    for await (const ev of data) events.push(ev);
    return { status: response.headers.get('x-promptcache-status'), events };
  };
  const live = await run('responses stream');
  const replay = await run('responses stream');
  assert.equal(live.status, 'MISS');
  assert.equal(replay.status, 'HIT');
  assert.equal(live.events[live.events.length - 1].type, 'response.completed');
  assert.deepEqual(replay.events, live.events);
  assert.equal(mock.count(), 1);
  // the same stream without its response.completed event is never stored
  const cut = { headers: { 'x-mock-behavior': 'no-terminal' } };
  const u1 = await run('responses unfinished', cut);
  const u2 = await run('responses unfinished', cut);
  assert.equal(u1.status, 'MISS');
  assert.ok(!u1.events.some((e) => e.type === 'response.completed'));
  assert.equal(u2.status, 'MISS', 'a stream without response.completed was stored');
  assert.equal(mock.count(), 3);
});

test('Gemini :streamGenerateContent?alt=sse is stored at the clean end of the body and replayed byte for byte', async (t) => {
  const { mock, proxy } = await setup(t);
  const path = '/v1beta/models/gemini-1.5-flash:streamGenerateContent?alt=sse';
  const body = { contents: [{ role: 'user', parts: [{ text: 'gemini stream' }] }] };
  const a = await rawStream(proxy, path, body, { 'x-mock-behavior': 'chunk-delay=30,chunks=3' });
  assert.equal(a.status, 200);
  assert.equal(a.headers['x-promptcache-status'], 'MISS');
  assert.equal(a.text, geminiStreamEvents(mock.last().seq, 'gemini-1.5-flash', echoText('gemini stream'), 3).join(''));
  const b = await rawStream(proxy, path, body);
  assert.equal(b.headers['x-promptcache-status'], 'HIT');
  assert.match(b.headers['content-type'] || '', /^text\/event-stream/);
  assert.equal(b.text, a.text);
  assert.deepEqual(b.chunks, a.chunks);
  assert.equal(mock.count(), 1);
  // a Gemini stream whose connection drops mid-way did not end cleanly: not stored
  const cutBody = { contents: [{ role: 'user', parts: [{ text: 'gemini cut' }] }] };
  const c1 = await timedStream(proxy, path, cutBody, { 'x-mock-behavior': 'chunk-delay=30,chunks=4,cut=2' });
  assert.equal(c1.complete, false, 'the client sees the stream cut');
  const c2 = await timedStream(proxy, path, cutBody, { 'x-mock-behavior': 'chunk-delay=10,chunks=4' });
  assert.equal(c2.headers['x-promptcache-status'], 'MISS', 'a cut Gemini stream was stored');
  assert.equal(c2.complete, true);
  assert.equal(mock.count(), 3);
});

test('replay pacing: fast by default, the recorded gaps with X-PromptCache-Pacing: original or --replay-pacing original', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('pace me', { stream: true });
  // 2 content pieces + finish + [DONE]: 4 events 250 ms apart (750 ms)
  const rec = await timedStream(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'chunk-delay=250,chunks=2' });
  assert.equal(rec.headers['x-promptcache-status'], 'MISS');
  assert.equal(rec.events.length, 4);
  const span = (r) => r.events[r.events.length - 1].t - r.events[0].t;
  assert.ok(span(rec) >= 650, `recording spanned ${span(rec)} ms`);

  const fast = await timedStream(proxy, '/v1/chat/completions', body);
  assert.equal(fast.headers['x-promptcache-status'], 'HIT');
  assert.equal(fast.text, rec.text);
  assert.ok(fast.ms < 200, `unpaced replay took ${fast.ms} ms`);

  const paced = await timedStream(proxy, '/v1/chat/completions', body, { 'x-promptcache-pacing': 'original' });
  assert.equal(paced.headers['x-promptcache-status'], 'HIT');
  assert.equal(paced.text, rec.text, 'paced replay: same bytes');
  assert.ok(paced.ms >= 650, `X-PromptCache-Pacing: original replay took ${paced.ms} ms, the recording ${span(rec)} ms`);
  assert.ok(paced.ms < 2500, `paced replay took ${paced.ms} ms`);
  assertSpacing(paced.events, 250, 'paced replay');
  assert.equal(mock.count(), 1);

  // the same entry, after a restart with --replay-pacing original, no header
  proxy.opts.args = ['--replay-pacing', 'original'];
  await proxy.restart();
  const paced2 = await timedStream(proxy, '/v1/chat/completions', body);
  assert.equal(paced2.headers['x-promptcache-status'], 'HIT');
  assert.equal(paced2.text, rec.text);
  assert.ok(paced2.ms >= 650, `--replay-pacing original replay took ${paced2.ms} ms`);
  assertSpacing(paced2.events, 250, '--replay-pacing original');
  assert.equal(mock.count(), 1);
});

test('an Anthropic stream that ends with event: error (no message_stop) is passed on but not stored', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = { model: 'claude-3-5-haiku-latest', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'overloaded mid-stream' }] };
  const headers = { 'anthropic-version': '2023-06-01', 'x-mock-behavior': 'sse-error,chunks=3' };
  const a = await timedStream(proxy, '/v1/messages', body, headers);
  assert.equal(a.status, 200);
  assert.equal(a.headers['x-promptcache-status'], 'MISS');
  assert.equal(a.complete, true);
  assert.match(a.text, /event: error\ndata: \{"type":"error"/);
  assert.doesNotMatch(a.text, /message_stop/);
  const full = anthropicStreamEvents(mock.last().seq, 'claude-3-5-haiku-latest', echoText('overloaded mid-stream'), 3);
  assert.ok(a.text.startsWith(full.slice(0, 6).join('')), 'the events before the error arrive unchanged');
  const b = await timedStream(proxy, '/v1/messages', body, { 'anthropic-version': '2023-06-01' });
  assert.equal(b.headers['x-promptcache-status'], 'MISS', 'an errored stream was stored and replayed');
  assert.match(b.text, /event: message_stop\n/);
  const c = await timedStream(proxy, '/v1/messages', body, { 'anthropic-version': '2023-06-01' });
  assert.equal(c.headers['x-promptcache-status'], 'HIT', 'the complete stream is stored');
  assert.equal(c.text, b.text);
  assert.equal(mock.count(), 2);
});

test('an OpenAI stream that ends cleanly without data: [DONE] is passed on but not stored', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('no done marker', { stream: true });
  const a = await timedStream(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'no-terminal' });
  assert.equal(a.status, 200);
  assert.equal(a.complete, true);
  assert.equal(a.text, openAIStreamEvents(mock.last().seq, 'gpt-4o-mini', echoText('no done marker'), 5).slice(0, -1).join(''));
  const b = await timedStream(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'no-terminal' });
  assert.equal(b.headers['x-promptcache-status'], 'MISS', 'a stream without [DONE] was stored');
  assert.notEqual(b.text, a.text);
  // an OpenAI error event in place of [DONE]: not stored either
  const e1 = await timedStream(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'sse-error' });
  assert.match(e1.text, /"error":\{"message":"mock stream error"/);
  const e2 = await timedStream(proxy, '/v1/chat/completions', body);
  assert.equal(e2.headers['x-promptcache-status'], 'MISS');
  assert.equal(mock.count(), 4);
});

test('a stream cut mid-way reaches the client cut and is not stored', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('cut me off', { stream: true });
  const a = await timedStream(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'chunk-delay=40,chunks=5,cut=3' });
  assert.equal(a.status, 200);
  assert.equal(a.headers['x-promptcache-status'], 'MISS');
  assert.equal(a.complete, false, 'the client must see an incomplete chunked body, not a clean end');
  const expected = openAIStreamEvents(mock.last().seq, 'gpt-4o-mini', echoText('cut me off'), 5);
  assert.equal(a.text, expected.slice(0, 3).join(''), 'what arrived before the cut is passed on');
  // curl reports the incomplete transfer too
  const body2 = JSON.stringify(chatBody('cut me off, curl', { stream: true }));
  const cr = await curl(['-N', '-H', 'content-type: application/json', '-H', 'x-mock-behavior: chunk-delay=30,cut=2', '--data-binary', body2, `${proxy.url}/v1/chat/completions`]);
  assert.notEqual(cr.code, 0, `curl should fail on a cut stream; stdout ${cr.stdout.toString('utf8').slice(-200)}`);
  assert.equal(mock.count(), 2);
  // neither was stored
  const b = await timedStream(proxy, '/v1/chat/completions', body);
  assert.equal(b.headers['x-promptcache-status'], 'MISS', 'a cut stream was stored');
  assert.equal(b.complete, true);
  assert.match(b.text, /data: \[DONE\]\n\n$/);
  assert.equal(mock.count(), 3);
  const c = await timedStream(proxy, '/v1/chat/completions', body);
  assert.equal(c.headers['x-promptcache-status'], 'HIT');
  assert.equal(c.text, b.text);
  assert.equal(mock.count(), 3);
});

test('curl -N receives the stream intact', async (t) => {
  const { mock, proxy } = await setup(t);
  const res = await curl(['-N', '-i', '-H', 'content-type: application/json', '-H', 'x-mock-behavior: chunk-delay=30',
    '--data-binary', JSON.stringify(chatBody('curl stream', { stream: true, stream_options: { include_usage: true } })), `${proxy.url}/v1/chat/completions`]);
  assert.equal(res.code, 0, res.stderr);
  const r = parseCurlInclude(res.stdout);
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-promptcache-status'], 'MISS');
  assert.equal(r.text, openAIStreamEvents(mock.last().seq, 'gpt-4o-mini', echoText('curl stream'), 5, true).join(''));
});

test('a client that disconnects mid-stream does not disturb the proxy', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('hang up on me', { stream: true });
  const r = await timedStream(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'chunk-delay=150,chunks=8' }, { abortAfterEvents: 2 });
  assert.ok(r.events.length >= 2);
  // the proxy logs the cut request once it notices the hang-up (upstream is still streaming)
  await proxy.waitFor((p) => p.logLines().some((l) => l.includes('POST /v1/chat/completions')), 5000, 'the cut request in the log');
  const again = await timedStream(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'chunk-delay=10,chunks=8' });
  assert.equal(again.status, 200);
  assert.match(again.text, /data: \[DONE\]\n\n$/);
  const before = mock.count();
  const ok = await chat(proxy, 'after hang-up');
  assert.equal(ok.status, 200);
  assert.equal(ok.json.choices[0].message.content, echoText('after hang-up'));
  assert.equal(mock.count(), before + 1);
});
