// coalesce.test.mjs — single-flight: while a cacheable miss is in flight,
// identical requests (same key) attach to it instead of going upstream. They get
// the leader's status, headers and body, marked COALESCED; followers of a stream
// receive what already arrived, then each new chunk live. Client hang-ups do not
// cancel an exchange others wait on; a failed exchange fails every follower the
// same way; past --max-followers a request goes upstream on its own (MISS).
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { setup, startProxy, closedPort, chat, chatBody, request, HEX32, sleep } from './lib/setup.mjs';
import { openAIStreamEvents, anthropicStreamEvents, echoText } from './lib/mock.mjs';

/**
 * Start a POST whose response is read as it arrives. Returns a handle:
 *   out: {status, headers, text, events: [{t, text}], complete, error, ms, headersAt}
 *   head: promise resolved when the response head arrived (or the request failed)
 *   done: promise resolved when the response ended, was cut, or was aborted
 *   abort(): hang up
 *   waitEvents(n): resolve once n SSE events arrived
 */
function open(proxy, path, body, headers = {}) {
  const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const t0 = performance.now();
  const out = { status: 0, headers: {}, headersAt: -1, text: '', events: [], complete: false, error: null, ms: 0, aborted: false };
  let req;
  let headDone;
  const head = new Promise((r) => { headDone = r; });
  const done = new Promise((resolve) => {
    let settled = false;
    const finish = (err) => {
      if (settled) return;
      settled = true;
      if (err && !out.error) out.error = err;
      out.ms = performance.now() - t0;
      headDone(out);
      resolve(out);
    };
    req = http.request({
      host: '127.0.0.1', port: proxy.port, method: 'POST', path, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': payload.length, ...headers },
    }, (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      out.headersAt = performance.now() - t0;
      headDone(out);
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        out.text += d;
        pending += d;
        let m;
        while ((m = /\r?\n\r?\n/.exec(pending))) {
          out.events.push({ t: performance.now() - t0, text: pending.slice(0, m.index + m[0].length) });
          pending = pending.slice(m.index + m[0].length);
        }
      });
      res.on('end', () => { out.complete = res.complete; finish(); });
      res.on('error', (e) => finish(e));
      res.on('close', () => { out.complete = out.complete || res.complete; finish(); });
    });
    req.setTimeout(15000, () => req.destroy(new Error(`${path} timed out`)));
    req.on('error', (e) => finish(e));
    req.end(payload);
  });
  const waitEvents = async (n, timeoutMs = 5000) => {
    const end = performance.now() + timeoutMs;
    while (out.events.length < n) {
      if (performance.now() > end) throw new Error(`waited ${timeoutMs} ms for ${n} events, got ${out.events.length}: ${out.text.slice(0, 300)}`);
      if (out.error || (out.ms && !out.aborted)) throw new Error(`response ended after ${out.events.length} events (wanted ${n}): ${out.error || out.text.slice(-300)}`);
      await sleep(5);
    }
  };
  return { out, head, done, abort: () => { out.aborted = true; req.destroy(); }, waitEvents };
}

const statusOf = (r) => r.headers['x-promptcache-status'];
const tally = (rs) => rs.reduce((m, r) => ({ ...m, [statusOf(r)]: (m[statusOf(r)] || 0) + 1 }), {});

/** Poll /_promptcache/stats until `n` requests wait on an exchange in flight. */
async function waitForFollowers(proxy, n, timeoutMs = 5000) {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const s = JSON.parse((await request(proxy, { path: '/_promptcache/stats' })).text);
    if (s.in_flight.followers === n) return;
    if (performance.now() > end) throw new Error(`timed out waiting for ${n} followers (stats: ${JSON.stringify(s.in_flight)})`);
    await sleep(20);
  }
}

test('50 concurrent identical requests to a slow upstream: one upstream request, 49 COALESCED, identical answers', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('fifty at once');
  const headers = { 'x-mock-behavior': 'delay=600' };
  const rs = await Promise.all(Array.from({ length: 50 }, () => request(proxy, { method: 'POST', path: '/v1/chat/completions', headers, body })));
  assert.equal(mock.count(), 1, `upstream saw ${mock.count()} requests`);
  assert.deepEqual(tally(rs.map((r) => ({ headers: r.headers }))), { MISS: 1, COALESCED: 49 });
  const leader = rs.find((r) => r.cache === 'MISS');
  assert.match(leader.key || '', HEX32);
  for (const r of rs) {
    assert.equal(r.status, 200);
    assert.equal(r.text, leader.text, 'every follower gets the leader\'s body');
    assert.equal(r.key, leader.key);
    assert.equal(r.headers['content-type'], leader.headers['content-type']);
    assert.equal(r.headers['x-mock-seq'], leader.headers['x-mock-seq'], 'and its upstream headers');
    assert.equal(r.headers['x-mock-custom'], 'upstream-header');
  }
  assert.equal(leader.json.choices[0].message.content, echoText('fifty at once'));
  // the exchange was stored once
  const later = await chat(proxy, 'fifty at once');
  assert.equal(later.cache, 'HIT');
  assert.equal(later.text, leader.text);
  assert.equal(mock.count(), 1);
});

test('50 concurrent identical streamed requests: one upstream request, 49 COALESCED, byte-identical streams', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('fifty streams', { stream: true });
  const headers = { 'x-mock-behavior': 'delay=300,chunk-delay=60,chunks=5' };
  const hs = Array.from({ length: 50 }, () => open(proxy, '/v1/chat/completions', body, headers));
  const rs = await Promise.all(hs.map((h) => h.done));
  assert.equal(mock.count(), 1, `upstream saw ${mock.count()} requests`);
  assert.deepEqual(tally(rs), { MISS: 1, COALESCED: 49 });
  const expected = openAIStreamEvents(mock.last().seq, 'gpt-4o-mini', echoText('fifty streams'), 5).join('');
  for (const r of rs) {
    assert.equal(r.status, 200);
    assert.equal(r.complete, true, `a stream ended early: ${r.error}`);
    assert.match(r.headers['content-type'] || '', /^text\/event-stream/);
    assert.equal(r.text, expected);
  }
  const later = open(proxy, '/v1/chat/completions', body);
  const l = await later.done;
  assert.equal(statusOf(l), 'HIT');
  assert.equal(l.text, expected);
  assert.equal(mock.count(), 1);
});

test('a follower that joins half-way through a stream receives the whole stream, then the rest live', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('join me late', { stream: true });
  const leader = open(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'chunk-delay=150,chunks=6' });
  await leader.waitEvents(3);
  const joinedAt = performance.now();
  const follower = open(proxy, '/v1/chat/completions', body);
  const [l, f] = await Promise.all([leader.done, follower.done]);
  assert.equal(statusOf(l), 'MISS');
  assert.equal(statusOf(f), 'COALESCED');
  assert.equal(mock.count(), 1);
  const expected = openAIStreamEvents(mock.last().seq, 'gpt-4o-mini', echoText('join me late'), 6).join('');
  assert.equal(l.text, expected);
  assert.equal(f.complete, true);
  assert.equal(f.text, l.text, 'the late follower gets the leader\'s bytes from the first one');
  // the backlog came at once, the rest live as upstream sent it
  assert.ok(f.events[2].t < 150, `the first 3 events reached the follower ${f.events[2].t} ms after it joined`);
  assert.ok(f.ms >= 400, `the follower's stream ended ${f.ms} ms after it joined: the rest should come live (~${150 * 5} ms)`);
  assert.ok(performance.now() - joinedAt >= 400);
});

test('the leader hanging up mid-stream does not break its followers; the stream is still stored', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('leader leaves', { stream: true });
  const leader = open(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'chunk-delay=120,chunks=6' });
  await leader.waitEvents(1);
  const followers = Array.from({ length: 3 }, () => open(proxy, '/v1/chat/completions', body));
  await Promise.all(followers.map((f) => f.waitEvents(1)));
  leader.abort();
  const rs = await Promise.all(followers.map((f) => f.done));
  assert.equal(mock.count(), 1);
  const expected = openAIStreamEvents(mock.last().seq, 'gpt-4o-mini', echoText('leader leaves'), 6).join('');
  assert.ok(leader.out.text.length < expected.length, 'the leader left before the end');
  for (const r of rs) {
    assert.equal(statusOf(r), 'COALESCED');
    assert.equal(r.complete, true, `a follower's stream was cut when the leader left: ${r.error} ${r.text.slice(-100)}`);
    assert.equal(r.text, expected);
  }
  const later = open(proxy, '/v1/chat/completions', body);
  const l = await later.done;
  assert.equal(statusOf(l), 'HIT', 'the exchange the leader left was still stored');
  assert.equal(l.text, expected);
  assert.equal(mock.count(), 1);
});

test('the leader hanging up before the answer does not cancel the exchange its followers wait on', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('leader gone early');
  const leader = open(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'delay=600' });
  await mock.waitForRequests(1);
  const followers = Array.from({ length: 3 }, () => open(proxy, '/v1/chat/completions', body));
  await waitForFollowers(proxy, 3);
  leader.abort();
  const rs = await Promise.all(followers.map((f) => f.done));
  assert.equal(mock.count(), 1);
  for (const r of rs) {
    assert.equal(r.status, 200, `a follower got ${r.status} ${r.error || ''}: ${r.text.slice(0, 200)}`);
    assert.equal(statusOf(r), 'COALESCED');
    assert.equal(JSON.parse(r.text).choices[0].message.content, echoText('leader gone early'));
  }
  const later = await chat(proxy, 'leader gone early');
  assert.equal(later.cache, 'HIT');
  assert.equal(later.text, rs[0].text);
  assert.equal(mock.count(), 1);
});

test('a follower hanging up does not disturb the leader or the other followers', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = { model: 'claude-3-5-haiku-latest', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'follower leaves' }] };
  const h = { 'anthropic-version': '2023-06-01' };
  const leader = open(proxy, '/v1/messages', body, { ...h, 'x-mock-behavior': 'chunk-delay=80,chunks=4' });
  await leader.waitEvents(1);
  const quitter = open(proxy, '/v1/messages', body, h);
  const stayer = open(proxy, '/v1/messages', body, h);
  await quitter.waitEvents(2);
  quitter.abort();
  const [l, s] = await Promise.all([leader.done, stayer.done]);
  assert.equal(mock.count(), 1);
  const expected = anthropicStreamEvents(mock.last().seq, 'claude-3-5-haiku-latest', echoText('follower leaves'), 4).join('');
  assert.equal(statusOf(l), 'MISS');
  assert.equal(l.text, expected);
  assert.equal(statusOf(s), 'COALESCED');
  assert.equal(s.text, expected);
  const later = await open(proxy, '/v1/messages', body, h).done;
  assert.equal(statusOf(later), 'HIT');
  assert.equal(mock.count(), 1);
});

test('the leader\'s upstream 500 reaches every follower (one upstream request, nothing stored)', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('shared failure');
  const headers = { 'x-mock-behavior': 'delay=400,status=500' };
  const rs = await Promise.all(Array.from({ length: 10 }, () => request(proxy, { method: 'POST', path: '/v1/chat/completions', headers, body })));
  assert.equal(mock.count(), 1, `a failed exchange must not become a retry storm: upstream saw ${mock.count()} requests`);
  assert.deepEqual(tally(rs.map((r) => ({ headers: r.headers }))), { MISS: 1, COALESCED: 9 });
  for (const r of rs) {
    assert.equal(r.status, 500);
    assert.equal(r.text, rs[0].text);
    assert.equal(r.json.error.message, 'mock 500');
  }
  const again = await chat(proxy, 'shared failure');
  assert.equal(again.cache, 'MISS', 'the 500 was not stored');
  assert.equal(again.status, 200);
  assert.equal(mock.count(), 2);
});

test('the leader\'s failed exchange (upstream hangs up) gives every follower the same 502', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('upstream hangs up');
  const headers = { 'x-mock-behavior': 'hangup=400' };
  const rs = await Promise.all(Array.from({ length: 10 }, () => request(proxy, { method: 'POST', path: '/v1/chat/completions', headers, body })));
  assert.equal(mock.count(), 1, `upstream saw ${mock.count()} requests`);
  const statuses = rs.map((r) => r.status);
  assert.deepEqual(statuses, Array(10).fill(502), `statuses: ${statuses}`);
  for (const r of rs) assert.equal(r.json.error.code, rs[0].json.error.code);
  assert.deepEqual(tally(rs.map((r) => ({ headers: r.headers }))), { MISS: 1, COALESCED: 9 });
});

test('concurrent identical requests to an unreachable upstream all get 502 upstream_unreachable', async (t) => {
  const dead = await closedPort();
  const proxy = await startProxy(t, { upstream: `http://127.0.0.1:${dead}` });
  const rs = await Promise.all(Array.from({ length: 10 }, () => chat(proxy, 'nobody home')));
  for (const r of rs) {
    assert.equal(r.status, 502);
    assert.equal(r.json.error.code, 'upstream_unreachable');
  }
});

test('a leader\'s stream cut mid-way is cut for every follower, and not stored', async (t) => {
  const { mock, proxy } = await setup(t);
  const body = chatBody('cut for everyone', { stream: true });
  const headers = { 'x-mock-behavior': 'delay=200,chunk-delay=60,chunks=5,cut=3' };
  const hs = Array.from({ length: 5 }, () => open(proxy, '/v1/chat/completions', body, headers));
  const rs = await Promise.all(hs.map((h) => h.done));
  assert.equal(mock.count(), 1);
  const partial = openAIStreamEvents(mock.last().seq, 'gpt-4o-mini', echoText('cut for everyone'), 5).slice(0, 3).join('');
  for (const r of rs) {
    assert.equal(r.status, 200);
    assert.equal(r.complete, false, `a ${statusOf(r)} client saw a clean end of a cut stream`);
    assert.equal(r.text, partial);
  }
  assert.deepEqual(tally(rs), { MISS: 1, COALESCED: 4 });
  const again = await open(proxy, '/v1/chat/completions', body).done;
  assert.equal(statusOf(again), 'MISS', 'the cut stream was stored');
  assert.equal(mock.count(), 2);
});

test('--max-followers 2: five concurrent identical slow requests need more than one upstream request', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--max-followers', '2'] });
  const body = chatBody('crowded');
  const headers = { 'x-mock-behavior': 'delay=500' };
  const rs = await Promise.all(Array.from({ length: 5 }, () => request(proxy, { method: 'POST', path: '/v1/chat/completions', headers, body })));
  const n = mock.count();
  assert.ok(n > 1, `with --max-followers 2, 5 identical requests went upstream ${n} time(s)`);
  assert.ok(n <= 3, `upstream saw ${n} requests: followers within the limit should have attached`);
  const counts = tally(rs.map((r) => ({ headers: r.headers })));
  assert.equal(counts.MISS, n, `one MISS per upstream request: ${JSON.stringify(counts)}`);
  assert.equal(counts.COALESCED, 5 - n, JSON.stringify(counts));
  for (const r of rs) assert.equal(r.status, 200);
});

test('requests that differ in credential, and uncacheable requests, are not coalesced', async (t) => {
  const { mock, proxy } = await setup(t);
  const headers = { 'x-mock-behavior': 'delay=300' };
  const body = chatBody('whose flight?');
  const [a, b] = await Promise.all([
    request(proxy, { method: 'POST', path: '/v1/chat/completions', headers: { ...headers, authorization: 'Bearer sk-key-a' }, body }),
    request(proxy, { method: 'POST', path: '/v1/chat/completions', headers: { ...headers, authorization: 'Bearer sk-key-b' }, body }),
  ]);
  assert.deepEqual([a.cache, b.cache], ['MISS', 'MISS']);
  assert.notEqual(a.text, b.text);
  assert.equal(mock.count(), 2);
  const gets = await Promise.all(Array.from({ length: 3 }, () => request(proxy, { path: '/v1/models', headers })));
  assert.deepEqual(gets.map((r) => r.cache), ['BYPASS', 'BYPASS', 'BYPASS']);
  assert.equal(mock.count('/v1/models'), 3);
});

test('a large stream (~1 MB): a follower joining half-way and a later HIT are byte-identical to the leader', async (t) => {
  const { mock, proxy } = await setup(t);
  const content = 'large stream '.repeat(60000); // ~780 kB of text in 400 events
  const body = chatBody(content, { stream: true });
  const leader = open(proxy, '/v1/chat/completions', body, { 'x-mock-behavior': 'chunk-delay=2,chunks=400' });
  await leader.waitEvents(150, 10000);
  const follower = open(proxy, '/v1/chat/completions', body);
  const [l, f] = await Promise.all([leader.done, follower.done]);
  assert.equal(mock.count(), 1);
  const expected = openAIStreamEvents(mock.last().seq, 'gpt-4o-mini', echoText(content), 400).join('');
  assert.equal(l.text.length, expected.length);
  assert.ok(l.text === expected, 'the leader got the stream byte for byte');
  assert.equal(statusOf(f), 'COALESCED');
  assert.equal(f.complete, true);
  assert.ok(f.text === expected, `the follower's ${f.text.length} bytes differ from the leader's ${expected.length}`);
  const h = await open(proxy, '/v1/chat/completions', body).done;
  assert.equal(statusOf(h), 'HIT');
  assert.ok(h.text === expected, 'the HIT replays the large stream byte for byte');
  assert.equal(mock.count(), 1);
});

test('followers of a failing exchange with an expired entry all get it as STALE', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--ttl', '1s'] });
  const first = await chat(proxy, 'stale together');
  const storedAt = performance.now();
  assert.equal(first.cache, 'MISS');
  await sleep(Math.max(0, storedAt + 1100 - performance.now()));
  const headers = { 'x-mock-behavior': 'delay=300,status=503' };
  const rs = await Promise.all(Array.from({ length: 5 }, () => chat(proxy, 'stale together', { headers })));
  assert.equal(mock.count(), 2, `upstream saw ${mock.count()} requests`);
  for (const r of rs) {
    assert.equal(r.status, 200, `got ${r.status} ${r.cache}`);
    assert.equal(r.cache, 'STALE');
    assert.equal(r.text, first.text);
    assert.match(r.headers.age || '', /^\d+$/);
  }
});

test('--workers 4: concurrent identical requests still make one upstream request', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--workers', '4'] });
  const headers = { 'x-mock-behavior': 'delay=500' };
  const rs = await Promise.all(Array.from({ length: 20 }, () => chat(proxy, 'many workers', { headers })));
  assert.equal(mock.count(), 1, `upstream saw ${mock.count()} requests`);
  assert.deepEqual(tally(rs.map((r) => ({ headers: r.headers }))), { MISS: 1, COALESCED: 19 });
  for (const r of rs) assert.equal(r.text, rs[0].text);
});
