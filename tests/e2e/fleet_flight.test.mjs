// fleet_flight.test.mjs — single flight across a fleet (SPEC §10): a node that
// misses both tiers takes a lease in Redis and only the lease holder goes
// upstream; requests on other nodes follow its live response through a Redis
// stream (COALESCED, byte-identical), requests on the leader's own node
// coalesce in-process. A dead leader's lease (lifetime max(2 s, 8 x
// --redis-timeout) = 2 s here) expires and one follower takes over when the
// followers had received nothing; followers that had received part of a
// stream are cut (never given a spliced body). With Redis down each node still
// coalesces on its own. Real redis-server (lib/redis.mjs), 3 nodes, one mock.
// Every scenario runs twice, concurrently: on one standalone redis-server and
// on a 3-master Redis Cluster (each run with its own Redis or Cluster).
import test from 'node:test';
import assert from 'node:assert/strict';
import { openAIStreamEvents, echoText } from './lib/mock.mjs';
import { startRedis, startRedisCluster } from './lib/redis.mjs';
import {
  startFleet, stats, waitStats, ask, open, kill9, waitUntil, waitShared, statusOf, tally, redisCmd, entryKey,
} from './lib/fleet.mjs';

const MODEL = 'gpt-4o-mini';
const sumOf = async (nodes, f) => (await Promise.all(nodes.map(stats))).reduce((a, s) => a + f(s), 0);

/**
 * Wait until each node has the request in flight (in_flight.exchanges, a live
 * gauge; the shared.* counters reach /stats only about once a second).
 */
async function waitInFlight(nodes, timeoutMs = 4000) {
  await Promise.all(nodes.map((n) => waitStats(n, (s) => s.in_flight.exchanges >= 1, {
    timeoutMs, what: `node :${n.port} to have the request in flight`,
  })));
}

/** Poll until the sum over nodes of f(stats) satisfies pred; resolves to the sum. */
async function waitSum(nodes, f, pred, what, timeoutMs = 3000) {
  let last;
  try {
    return await waitUntil(async () => {
      last = (await Promise.all(nodes.map(stats))).reduce((a, s) => a + f(s), 0);
      return pred(last) ? { sum: last } : null;
    }, { timeoutMs, intervalMs: 50, what });
  } catch (err) {
    err.message += ` (last sum: ${last})`;
    throw err;
  }
}

/**
 * The Redis deployments each scenario runs on. start(t) resolves to
 *   urls:   the --redis URLs of the nodes (the server's, or every master's)
 *   target: what redisCmd() takes (follows MOVED/ASK on the Cluster)
 *   stop(): kill every redis-server of it by pid (no restart)
 */
const BACKENDS = [
  {
    name: 'standalone Redis',
    async start(t) {
      const r = await startRedis(t);
      return { urls: [r.url], target: r, stop: () => r.stop() };
    },
  },
  {
    name: 'Redis Cluster (3 masters)',
    async start(t) {
      const c = await startRedisCluster(t, { masters: 3 });
      return { urls: c.urls, target: c, stop: () => c.stop() };
    },
  },
];

/**
 * One test per scenario with a subtest per backend; the two run concurrently
 * (independent: their own Redis, nodes and mock), the scenarios one after the
 * other so that at most two fleets share the machine's timing.
 */
function scenario(name, body) {
  test(name, { concurrency: true }, async (t) => {
    await Promise.all(BACKENDS.map((b) => t.test(b.name, async (bt) => body(bt, await b.start(bt)))));
  });
}

scenario('60 concurrent identical requests over 3 nodes: one upstream request, 1 MISS + 59 COALESCED, identical bodies', async (t, redis) => {
  const { mock, nodes } = await startFleet(t, { urls: redis.urls });
  const content = 'sixty over three';
  const hs = [];
  for (let i = 0; i < 60; i++) hs.push(open(nodes[i % 3], content, { headers: { 'x-mock-behavior': 'delay=400' } }));
  const rs = await Promise.all(hs.map((h) => h.done));
  assert.equal(mock.count(), 1, `upstream saw ${mock.count()} requests`);
  const tl = tally(rs);
  assert.equal(tl.MISS, 1, `statuses ${JSON.stringify(tl)}`);
  assert.equal((tl.COALESCED || 0) + (tl.HIT || 0), 59, `statuses ${JSON.stringify(tl)}`);
  const leader = rs.find((x) => statusOf(x) === 'MISS');
  assert.equal(JSON.parse(leader.text).choices[0].message.content, echoText(content));
  for (const x of rs) {
    assert.equal(x.status, 200, `${x.status} ${x.error || ''} ${x.text.slice(0, 200)}`);
    assert.equal(x.complete, true);
    assert.equal(x.text, leader.text, 'every answer is the leader\'s body byte for byte');
    assert.equal(x.headers['x-promptcache-key'], leader.headers['x-promptcache-key']);
    assert.equal(x.headers['content-type'], leader.headers['content-type']);
    assert.equal(x.headers['x-mock-seq'], leader.headers['x-mock-seq'], 'and its upstream headers');
    if (statusOf(x) !== 'HIT') assert.equal(x.headers['x-promptcache-tier'], undefined, 'no Tier header on MISS and COALESCED');
  }
  // (once every node's counters show its lease attempt, they show its outcome)
  await Promise.all(nodes.map((n) => waitStats(n, (s) => s.shared.ops.lease >= 1, { what: `node :${n.port} shared.ops.lease` })));
  assert.equal(await sumOf(nodes, (s) => s.shared.leases_won), 1, 'one lease won in the fleet');
  assert.ok(await sumOf(nodes, (s) => s.shared.leases_held) >= 2, 'the two other nodes found the lease held');
  const fc = await sumOf(nodes, (s) => s.totals.fleet_coalesced);
  assert.ok(fc >= 2 && fc <= 59, `totals.fleet_coalesced over the fleet: ${fc}`);
  // stored once, a hit everywhere now
  for (const n of nodes) {
    const x = await ask(n, content);
    assert.equal(statusOf(x), 'HIT');
    assert.equal(x.text, leader.text);
  }
  assert.equal(mock.count(), 1);
});

scenario('a follower on another node receives a slow stream live: its first chunk before the leader\'s stream ends', async (t, redis) => {
  const { mock, nodes: [A, B, C] } = await startFleet(t, { urls: redis.urls });
  const content = 'slow fleet stream';
  const leader = open(A, content, { headers: { 'x-mock-behavior': 'chunk-delay=100,chunks=10' }, extra: { stream: true } });
  await leader.waitEvents(1);
  const fb = open(B, content, { extra: { stream: true } });
  const fc = open(C, content, { extra: { stream: true } });
  const [l, b, c] = await Promise.all([leader.done, fb.done, fc.done]);
  assert.equal(mock.count(), 1);
  const expected = openAIStreamEvents(mock.last().seq, MODEL, echoText(content), 10).join('');
  assert.equal(statusOf(l), 'MISS');
  assert.equal(l.text, expected);
  for (const [f, name] of [[b, 'B'], [c, 'C']]) {
    assert.equal(f.status, 200);
    assert.equal(statusOf(f), 'COALESCED', `${name}`);
    assert.match(f.headers['content-type'] || '', /^text\/event-stream/);
    assert.equal(f.complete, true, `${name}: cut: ${f.error}`);
    assert.equal(f.text, expected, `${name}: the leader's bytes`);
    assert.equal(f.headers['x-mock-seq'], l.headers['x-mock-seq'], `${name}: the leader's upstream headers`);
    assert.equal(f.headers['x-promptcache-key'], l.headers['x-promptcache-key']);
    const first = f.events[0].at;
    assert.ok(first < l.endAt - 300, `${name}: first chunk ${first - l.endAt} ms relative to the end of the leader's stream (must be well before)`);
    const span = f.events[f.events.length - 1].at - first;
    assert.ok(span >= 500, `${name}: the rest arrived live over ${span} ms (the upstream sent it over ~1 s)`);
  }
});

scenario('kill -9 of the leader node before its answer: one follower takes over the lease, 2 upstream requests in all, every follower answered', async (t, redis) => {
  const { mock, nodes: [A, B, C] } = await startFleet(t, { urls: redis.urls });
  const content = 'takeover before head';
  const leader = open(A, content, { headers: { 'x-mock-behavior': 'delay=1500' } });
  await mock.waitForRequests(1);
  // followers send no delay: the takeover's upstream answer comes at once
  const fs = [B, B, C, C].map((n) => open(n, content));
  await waitInFlight([B, C]);
  const killedAt = performance.now();
  await kill9(A);
  const l = await leader.done;
  assert.ok(l.error || !l.complete, 'the leader\'s own client was cut by the kill');
  const rs = await Promise.all(fs.map((f) => f.done));
  assert.equal(mock.count(), 2, `upstream saw ${mock.count()} requests (one takeover expected)`);
  const seq = mock.last().seq;
  for (const x of rs) {
    assert.equal(x.status, 200, `${x.status} ${x.error || ''} ${x.text.slice(0, 200)}`);
    assert.equal(x.complete, true);
    assert.equal(x.text, rs[0].text, 'all followers get the same answer');
    const j = JSON.parse(x.text);
    assert.equal(j.choices[0].message.content, echoText(content));
    assert.equal(j.mock_seq, seq, 'the takeover\'s answer');
    assert.ok(['MISS', 'COALESCED'].includes(statusOf(x)), statusOf(x));
  }
  assert.ok((tally(rs).MISS || 0) <= 1, JSON.stringify(tally(rs)));
  const took = Math.max(...rs.map((x) => x.endAt)) - killedAt;
  assert.ok(took < 4000, `followers were answered ${took} ms after the kill (lease 2 s + checks every 500 ms)`);
  const tk = await waitSum([B, C], (s) => s.shared.takeovers, (n) => n >= 1, 'shared.takeovers to count the takeover');
  assert.equal(tk.sum, 1, 'exactly one takeover');
  // the takeover stored the answer: a hit on both surviving nodes
  for (const n of [B, C]) {
    const x = await ask(n, content);
    assert.equal(statusOf(x), 'HIT');
    assert.equal(x.text, rs[0].text);
  }
  assert.equal(mock.count(), 2);
});

scenario('kill -9 of the leader node mid-stream: followers on other nodes are cut (never a spliced body); a retry is answered whole', async (t, redis) => {
  const { mock, nodes: [A, B, C] } = await startFleet(t, { urls: redis.urls });
  const content = 'cut mid stream';
  const leader = open(A, content, { headers: { 'x-mock-behavior': 'chunk-delay=150,chunks=12' }, extra: { stream: true } });
  await leader.waitEvents(1);
  const fol = [B, C].map((n) => open(n, content, { extra: { stream: true } }));
  await Promise.all(fol.map((f) => f.waitEvents(2)));
  const full = openAIStreamEvents(1, MODEL, echoText(content), 12).join('');
  const killedAt = performance.now();
  await kill9(A);
  const rs = await Promise.all(fol.map((f) => f.done));
  for (const [f, name] of [[rs[0], 'B'], [rs[1], 'C']]) {
    assert.equal(f.status, 200);
    assert.equal(statusOf(f), 'COALESCED');
    assert.ok(f.events.length >= 2, `${name} had received ${f.events.length} events`);
    assert.ok(full.startsWith(f.text), `${name}: the bytes received are not a prefix of the leader's stream (spliced?):\n${f.text.slice(-400)}`);
    assert.ok(f.text.length < full.length, `${name} received the whole stream although the leader died`);
    assert.ok(!f.complete || !f.text.includes('data: [DONE]'), `${name}: a cut transfer must not look complete`);
    assert.ok(f.endAt - killedAt < 4000, `${name} was cut ${f.endAt - killedAt} ms after the kill`);
  }
  assert.equal(mock.count(), 1);
  await waitSum([B, C], (s) => s.shared.follows_cut, (n) => n >= 2, 'shared.follows_cut to count both cut follows');
  // a retry goes upstream once and is answered whole; the other node then hits it
  const retry = await open(B, content, { headers: { 'x-mock-behavior': 'chunks=12' }, extra: { stream: true } }).done;
  assert.equal(retry.status, 200);
  assert.equal(statusOf(retry), 'MISS');
  assert.equal(retry.complete, true);
  assert.equal(mock.count(), 2);
  assert.equal(retry.text, openAIStreamEvents(mock.last().seq, MODEL, echoText(content), 12).join(''));
  const key = retry.headers['x-promptcache-key'];
  await waitUntil(async () => (await redisCmd(redis.target, 'EXISTS', entryKey(key))) === 1, { timeoutMs: 3000, what: 'the retry to be stored in Redis' });
  const other = await open(C, content, { extra: { stream: true } }).done;
  assert.equal(statusOf(other), 'HIT');
  assert.equal(other.text, retry.text);
  assert.equal(mock.count(), 2);
});

scenario('Redis stopped (on a Cluster: every master): each node still coalesces on its own (one node: 1 upstream request; three nodes: at most 3)', async (t, redis) => {
  const { mock, nodes } = await startFleet(t, { urls: redis.urls });
  await redis.stop();
  await Promise.all(nodes.map((n) => waitShared(n, 'down')));

  const one = await Promise.all(Array.from({ length: 12 }, () => open(nodes[0], 'no redis one node', { headers: { 'x-mock-behavior': 'delay=300' } }).done));
  assert.equal(mock.count(), 1, `upstream saw ${mock.count()} requests`);
  assert.deepEqual(tally(one), { MISS: 1, COALESCED: 11 });
  for (const x of one) {
    assert.equal(x.status, 200);
    assert.equal(x.text, one[0].text);
    assert.ok(x.endAt - x.t0 < 1300, `${x.endAt - x.t0} ms with a 300 ms upstream and Redis down`);
  }

  const hs = nodes.flatMap((n, i) => Array.from({ length: 6 }, () => ({ i, h: open(n, 'no redis three nodes', { headers: { 'x-mock-behavior': 'delay=300' } }) })));
  const rs = await Promise.all(hs.map(async ({ i, h }) => ({ i, x: await h.done })));
  const up = mock.count() - 1;
  assert.ok(up >= 1 && up <= 3, `three nodes without Redis sent ${up} upstream requests`);
  for (let i = 0; i < 3; i++) {
    const mine = rs.filter((e) => e.i === i).map((e) => e.x);
    for (const x of mine) {
      assert.equal(x.status, 200);
      assert.equal(x.text, mine[0].text, `node ${i}: its requests share one answer`);
    }
    const tl = tally(mine);
    assert.ok((tl.MISS || 0) <= 1 && (tl.MISS || 0) + (tl.COALESCED || 0) === 6, `node ${i}: ${JSON.stringify(tl)}`);
  }
  assert.equal(rs.filter((e) => statusOf(e.x) === 'MISS').length, up, 'one MISS per upstream request');
});

scenario('an upstream error fans out: followers on other nodes get the leader\'s 500, and it is not stored', async (t, redis) => {
  const { mock, nodes: [A, B, C] } = await startFleet(t, { urls: redis.urls });
  const content = 'fleet upstream error';
  const leader = open(A, content, { headers: { 'x-mock-behavior': 'delay=800,status=500' } });
  await mock.waitForRequests(1);
  const fol = [B, B, C].map((n) => open(n, content));
  await waitInFlight([B, C]);
  const [l, ...rs] = await Promise.all([leader.done, ...fol.map((f) => f.done)]);
  assert.equal(l.status, 500);
  assert.equal(statusOf(l), 'MISS');
  assert.equal(mock.count(), 1, `upstream saw ${mock.count()} requests`);
  for (const x of rs) {
    assert.equal(x.status, 500, `a follower got ${x.status} ${x.error || ''}: ${x.text.slice(0, 200)}`);
    assert.equal(statusOf(x), 'COALESCED');
    assert.equal(x.text, l.text, 'the leader\'s error body');
    assert.equal(x.headers['x-mock-seq'], l.headers['x-mock-seq']);
  }
  // errors are not stored: the next request goes upstream and succeeds
  const again = await ask(B, content);
  assert.equal(again.status, 200);
  assert.equal(statusOf(again), 'MISS');
  assert.equal(mock.count(), 2);
});
