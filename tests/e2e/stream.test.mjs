// stream.test.mjs — streamed (SSE) answers reach the client as they arrive, with
// their original spacing in time, byte for byte; in this issue they are not stored.
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { setup, chat, chatBody, curl, parseCurlInclude, HEX32, sleep } from './lib/setup.mjs';
import { openAIStreamEvents, anthropicStreamEvents, echoText } from './lib/mock.mjs';

/**
 * POST a JSON body and record when each SSE event (terminated by a blank line)
 * arrives at the client. Resolves {status, headers, text, headersAt, events: [{t, text}], chunks}.
 */
function timedStream(proxy, path, body, headers = {}, { abortAfterEvents = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const t0 = Date.now();
    const req = http.request({
      host: '127.0.0.1', port: proxy.port, method: 'POST', path, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': payload.length, accept: 'text/event-stream', ...headers },
    }, (res) => {
      const out = { status: res.statusCode, headers: res.headers, headersAt: Date.now() - t0, events: [], chunks: 0, text: '' };
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        const now = Date.now() - t0;
        out.chunks++;
        out.text += d;
        pending += d;
        let i;
        while ((i = pending.indexOf('\n\n')) >= 0) {
          out.events.push({ t: now, text: pending.slice(0, i + 2) });
          pending = pending.slice(i + 2);
        }
        if (abortAfterEvents && out.events.length >= abortAfterEvents) {
          req.destroy();
          resolve(out);
        }
      });
      res.on('end', () => resolve(out));
      res.on('error', (e) => (abortAfterEvents ? resolve(out) : reject(e)));
    });
    req.on('error', (e) => (abortAfterEvents ? null : reject(e)));
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

test('"stream": true requests are forwarded and streamed but not stored (MISS every time)', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('not stored yet', { stream: true });
  const a = await timedStream(proxy, '/v1/chat/completions', body);
  const b = await timedStream(proxy, '/v1/chat/completions', body);
  assert.equal(a.headers['x-promptcache-status'], 'MISS');
  assert.equal(b.headers['x-promptcache-status'], 'MISS');
  assert.equal(a.headers['x-promptcache-key'], b.headers['x-promptcache-key']);
  assert.equal(mock.count(), 2);
  assert.notEqual(a.text, b.text, 'each answer came fresh from upstream');
  assert.match(b.text, /data: \[DONE\]\n\n$/);
  // "stream" stays in the key: the non-streamed request is another entry
  const plain = await chat(proxy, 'not stored yet');
  assert.equal(plain.cache, 'MISS');
  assert.notEqual(plain.key, a.headers['x-promptcache-key']);
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
  await sleep(400); // let the proxy notice the hang-up while upstream is still streaming
  const again = await timedStream(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'chunk-delay=10,chunks=8' });
  assert.equal(again.status, 200);
  assert.match(again.text, /data: \[DONE\]\n\n$/);
  const before = mock.count();
  const ok = await chat(proxy, 'after hang-up');
  assert.equal(ok.status, 200);
  assert.equal(ok.json.choices[0].message.content, echoText('after hang-up'));
  assert.equal(mock.count(), before + 1);
});
