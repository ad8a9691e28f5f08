// fleet.test.mjs — the shared tier on Redis (SPEC §10) with real redis-server
// processes (lib/redis.mjs; no mocks of Redis): several nodes, each with its
// own LMDB, in front of one mock upstream.
//   - a miss on node A is a shared HIT on node B (X-PromptCache-Tier: shared),
//     copied into B's LMDB (then Tier: local); stored in Redis under
//     <prefix>e:<key> with the entry's TTL as expiry; /stats, /metrics, /health
//   - no Tier header and null "shared"/"fleet" without --redis
//   - credential scoping agreed across the fleet (one fleet secret)
//   - a corrupt value in Redis is never served (MISS, shared.corrupt counted)
//   - purge by key, namespace, age and all, from the admin endpoint of any node
//     and from `promptcache purge --redis`, reaches every node's local copy
//   - `promptcache stats --redis` (and /stats "fleet") sums the nodes
//   - Redis down: nodes keep serving with bounded latency, health says down,
//     purge answers 503 shared_unavailable; Redis back: sharing resumes
//   - Redis slow (DEBUG SLEEP): bounded latency, timeouts counted, then resumes
//   - --redis-max-value keeps larger entries node-local; --redis-prefix
//     separates deployments on one Redis; a password is never shown
//   - the same core checks on a 3-master Redis Cluster, including after the
//     slot of a stored key was moved to another master (MOVED followed)
// The fleet single-flight tests are in fleet_flight.test.mjs.
import test from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { setup, request, HEX32, assertProxyError, mockFor, startMock } from './lib/setup.mjs';
import { echoText } from './lib/mock.mjs';
import { startRedis, startRedisCluster } from './lib/redis.mjs';
import {
  startFleet, stats, waitStats, health, metrics, ask, probe, waitGone, waitLocal, waitShared, waitUntil, purgeVia,
  statusOf, tierOf, tally, open, redisCmd, redisPipeline, entryKey, keySlot, runCli, runCliOk,
} from './lib/fleet.mjs';

const ns = (name) => ({ 'x-promptcache-namespace': name });
/** Poll until Redis holds the entry (the store to Redis follows the answer). */
const waitStored = (target, hex, what = hex) => waitUntil(async () => (await redisCmd(target, 'EXISTS', entryKey(hex))) === 1, { timeoutMs: 3000, what: `${what} to be stored in Redis as ${entryKey(hex)}` });

function metric(text, name) {
  const re = new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
}

test('a miss on node A is a shared HIT on node B, then a local HIT there; Redis holds it with the TTL as expiry; stats, metrics and health show the tiers', async (t) => {
  const r = await startRedis(t);
  const { mock, nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2 });

  const a = await ask(A, 'shared one', { 'x-promptcache-ttl': '1h' });
  assert.equal(a.status, 200);
  assert.equal(statusOf(a), 'MISS');
  assert.equal(tierOf(a), undefined, 'no Tier header on a MISS');
  assert.match(a.key || '', HEX32);
  await waitStored(r, a.key, 'the MISS on A');
  const pttl = await redisCmd(r, 'PTTL', entryKey(a.key));
  assert.ok(pttl > 3_500_000 && pttl <= 3_600_000, `PTTL of an entry stored with X-PromptCache-TTL: 1h: ${pttl}`);

  const b = await ask(B, 'shared one');
  assert.equal(statusOf(b), 'HIT', `B: ${statusOf(b)} ${b.text.slice(0, 200)}`);
  assert.equal(tierOf(b), 'shared');
  assert.equal(b.key, a.key, 'both nodes compute the same key');
  assert.equal(b.text, a.text, 'the shared hit is the stored body byte for byte');
  assert.equal(b.headers['x-mock-seq'], a.headers['x-mock-seq'], 'and its upstream headers');
  assert.match(String(b.headers.age), /^\d+$/, 'Age on a shared HIT');
  assert.equal(mock.count(), 1);

  // the shared hit was copied into B's LMDB
  await waitLocal(B, 'shared one');
  const b2 = await ask(B, 'shared one');
  assert.equal(statusOf(b2), 'HIT');
  assert.equal(tierOf(b2), 'local');
  assert.equal(b2.text, a.text);
  const a2 = await ask(A, 'shared one');
  assert.equal(statusOf(a2), 'HIT');
  assert.equal(tierOf(a2), 'local', 'the storing node hits its own LMDB');
  assert.equal(mock.count(), 1);

  // an entry without a TTL never expires in Redis either
  const f = await ask(A, 'shared forever');
  assert.equal(statusOf(f), 'MISS');
  await waitStored(r, f.key, 'the entry without TTL');
  assert.equal(await redisCmd(r, 'PTTL', entryKey(f.key)), -1, 'no TTL: no Redis expiry');

  // (the shared tier's counters reach /stats about once a second: poll)
  const sb = await waitStats(B, (s) => s.shared && s.shared.up === true && s.shared.ops.get >= 1 && s.shared.hits >= 1, { what: 'B\'s shared counters' });
  const sa = await waitStats(A, (s) => s.shared && s.shared.ops.put >= 2, { what: 'A\'s two puts' });
  // (B's only-if-cached probes above may have been shared hits too, until the copy committed)
  assert.ok(sb.totals.hits_shared >= 1, `B totals: ${JSON.stringify(sb.totals)}`);
  assert.ok(sb.totals.hits_local >= 1, `B totals.hits_local: ${JSON.stringify(sb.totals)}`);
  assert.equal(sb.totals.hit, sb.totals.hits_local + sb.totals.hits_shared, 'hit = hits_local + hits_shared');
  for (const k of ['get', 'put', 'del', 'purge', 'lease', 'publish', 'follow']) assert.equal(typeof sb.shared.ops[k], 'number', `shared.ops.${k}`);
  for (const k of ['hits', 'misses', 'errors', 'timeouts', 'corrupt', 'reconnects', 'leases_won', 'leases_held', 'takeovers', 'follows_cut', 'purges_applied']) {
    assert.equal(typeof sb.shared[k], 'number', `shared.${k} in ${JSON.stringify(sb.shared)}`);
  }
  assert.equal(sb.shared.corrupt, 0);
  assert.equal(sb.shared.errors, 0, `no Redis errors in normal operation: ${JSON.stringify(sb.shared)}`);
  assert.equal(sa.totals.hits_shared, 0);
  assert.equal(typeof sa.totals.fleet_coalesced, 'number');
  assert.ok('fleet' in sa, '/stats has a "fleet" member');

  const m = await metrics(B);
  assert.equal(metric(m, 'promptcache_hits_total{tier="shared"}'), sb.totals.hits_shared, 'promptcache_hits_total{tier="shared"}');
  assert.equal(metric(m, 'promptcache_hits_total{tier="local"}'), sb.totals.hits_local, 'promptcache_hits_total{tier="local"}');
  assert.equal(metric(m, 'promptcache_redis_up'), 1, 'promptcache_redis_up');
  assert.ok(metric(m, 'promptcache_redis_ops_total{op="get"}') >= 1, 'promptcache_redis_ops_total{op="get"}');
  assert.equal(metric(m, 'promptcache_redis_errors_total'), 0, 'promptcache_redis_errors_total');
  assert.equal(typeof metric(m, 'promptcache_fleet_coalesced_total'), 'number', 'promptcache_fleet_coalesced_total');
  assert.match(m, /^promptcache_redis_latency_seconds_bucket\{le="\+Inf"\} [1-9]\d*$/m, 'the Redis latency histogram');
  assert.match(m, /^promptcache_redis_latency_seconds_count [1-9]\d*$/m);

  const h = await request(A, { path: '/_promptcache/health' });
  assert.equal(h.status, 200);
  assert.equal(h.json.shared, 'up');
});

test('without --redis: no X-PromptCache-Tier header, "shared" and "fleet" are null in /stats, health has no "shared"', async (t) => {
  const { proxy } = await setup(t);
  assert.equal(statusOf(await ask(proxy, 'local only')), 'MISS');
  const hit = await ask(proxy, 'local only');
  assert.equal(statusOf(hit), 'HIT');
  assert.equal(tierOf(hit), undefined, 'the Tier header is only sent with --redis');
  const s = await stats(proxy);
  assert.equal(s.shared, null);
  assert.equal(s.fleet, null);
  assert.equal((await health(proxy)).shared, undefined);
});

test('credential scoping across the fleet: one fleet secret in Redis; the same Authorization hits on another node, another one misses', async (t) => {
  const r = await startRedis(t);
  const { mock, nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2 });
  const alice = { authorization: 'Bearer sk-test-alice-0000000000000000' };
  const bob = { authorization: 'Bearer sk-test-bob-11111111111111111111' };

  const secret = await redisCmd(r, 'GET', 'pc:secret');
  assert.ok(Buffer.isBuffer(secret), 'the fleet secret is stored at pc:secret');
  assert.equal(secret.length, 32, 'a 32-byte fleet secret');

  const a = await ask(A, 'scoped prompt', alice);
  assert.equal(statusOf(a), 'MISS');
  await waitStored(r, a.key);
  const b = await ask(B, 'scoped prompt', alice);
  assert.equal(statusOf(b), 'HIT', 'the same credential on another node hits what A stored');
  assert.equal(tierOf(b), 'shared');
  assert.equal(b.key, a.key);
  assert.equal(b.text, a.text);

  const c = await ask(B, 'scoped prompt', bob);
  assert.equal(statusOf(c), 'MISS', 'another credential never sees it');
  assert.notEqual(c.key, a.key);
  assert.equal(mock.count(), 2);
  assert.notEqual(c.json.mock_seq, a.json.mock_seq);

  // a node that joins later adopts the same secret
  const { nodes: [C] } = await startFleet(t, { urls: [r.url], n: 1, mock });
  const d = await ask(C, 'scoped prompt', alice);
  assert.equal(statusOf(d), 'HIT', 'a node started later hits with the same credential');
  assert.equal(d.text, a.text);
  const e = await ask(C, 'scoped prompt', bob);
  assert.equal(statusOf(e), 'HIT');
  assert.equal(e.text, c.text);
  assert.equal(mock.count(), 2);
  assert.deepEqual(await redisCmd(r, 'GET', 'pc:secret'), secret, 'the fleet secret did not change');
});

test('a corrupt value in Redis (garbage, one flipped byte, truncated) is never served: MISS, upstream, shared.corrupt counted', async (t) => {
  const r = await startRedis(t);
  const { mock, nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2 });
  const names = ['corrupt garbage', 'corrupt flipped', 'corrupt truncated'];
  const stored = [];
  for (const n of names) {
    const a = await ask(A, n);
    assert.equal(statusOf(a), 'MISS');
    await waitStored(r, a.key, n);
    stored.push(a);
  }
  const k = stored.map((a) => entryKey(a.key));
  await redisCmd(r, 'SET', k[0], 'garbage');
  const len = await redisCmd(r, 'STRLEN', k[1]);
  const mid = Math.floor(len / 2);
  const byte = await redisCmd(r, 'GETRANGE', k[1], mid, mid);
  await redisCmd(r, 'SETRANGE', k[1], mid, Buffer.from([byte[0] ^ 0x20]));
  assert.notDeepEqual(await redisCmd(r, 'GETRANGE', k[1], mid, mid), byte, 'the byte was flipped');
  const whole = await redisCmd(r, 'GET', k[2]);
  await redisCmd(r, 'SET', k[2], whole.subarray(0, Math.floor(whole.length / 2)), 'KEEPTTL');

  for (let i = 0; i < names.length; i++) {
    const before = mock.count();
    const b = await ask(B, names[i]);
    assert.equal(b.status, 200, `${names[i]}: ${b.status} ${b.text.slice(0, 200)}`);
    assert.equal(statusOf(b), 'MISS', `${names[i]}: a corrupt shared value was served (${statusOf(b)}, tier ${tierOf(b)})`);
    assert.equal(mock.count(), before + 1, `${names[i]}: went upstream`);
    assert.notEqual(b.json.mock_seq, stored[i].json.mock_seq, 'a fresh answer');
    assert.equal(b.json.choices[0].message.content, echoText(names[i]));
  }
  await waitStats(B, (s) => s.shared.corrupt >= 3, { what: 'B shared.corrupt >= 3' });
  // A's own copies were never touched
  for (let i = 0; i < names.length; i++) {
    const a = await ask(A, names[i]);
    assert.equal(statusOf(a), 'HIT');
    assert.equal(tierOf(a), 'local');
    assert.equal(a.text, stored[i].text);
  }
  // B's fresh answer replaced the damaged value in Redis
  await waitUntil(async () => {
    const v = await redisCmd(r, 'GET', k[0]);
    return v && v.toString('latin1') !== 'garbage';
  }, { what: 'the fresh answer to overwrite the garbage in Redis' });
});

test('POST /_promptcache/purge on any node (key, namespace, older_than, all) removes the entries in Redis and every node\'s local copy', async (t) => {
  const r = await startRedis(t);
  const { mock, nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2 });

  const p1 = await ask(A, 'purge p1');
  const p2 = await ask(A, 'purge p2');
  const p2At = performance.now();
  const n1 = await ask(A, 'purge n1', ns('team'));
  const n2 = await ask(A, 'purge n2', ns('team'));
  for (const x of [p1, p2, n1, n2]) {
    assert.equal(statusOf(x), 'MISS');
    await waitStored(r, x.key);
  }
  // B takes local copies of p1 and n1
  for (const [c, h] of [['purge p1', {}], ['purge n1', ns('team')]]) {
    const x = await ask(B, c, h);
    assert.equal(tierOf(x), 'shared', `${c} on B`);
    await waitLocal(B, c, { headers: h });
  }

  // by key, on A (which holds it): one local deletion, one in Redis
  let res = await purgeVia(A, { key: p1.key });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { purged: 1, shared: 1 });
  assert.equal(await redisCmd(r, 'EXISTS', entryKey(p1.key)), 0, 'gone from Redis');
  assert.equal((await probe(A, 'purge p1')).status, 504, 'gone from A');
  await waitGone(B, 'purge p1');
  assert.equal((await probe(B, 'purge n1', ns('team'))).status, 200, 'other entries stay on B');
  assert.equal((await probe(A, 'purge p2')).status, 200, 'other entries stay on A');

  // by namespace, on B: its copy of n1, and n1 and n2 in Redis
  res = await purgeVia(B, { namespace: 'team' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { purged: 1, shared: 2 });
  await waitGone(A, 'purge n1', { headers: ns('team') });
  await waitGone(A, 'purge n2', { headers: ns('team') });
  assert.equal((await probe(A, 'purge p2')).status, 200, 'the default namespace stays');

  // older than an hour: nothing
  res = await purgeVia(A, { older_than: '1h' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { purged: 0, shared: 0 });
  assert.equal((await probe(A, 'purge p2')).status, 200);

  // older than 20 ms, on B (which holds nothing): p2, stored long before
  await waitUntil(() => performance.now() - p2At > 40, { what: 'p2 to be older than 20 ms' });
  res = await purgeVia(B, { older_than: '20ms' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { purged: 0, shared: 1 });
  await waitGone(A, 'purge p2');

  // all, on A: a1 (A stored it, B copied it) and a2 (B stored it)
  const a1 = await ask(A, 'purge a1');
  const a2 = await ask(B, 'purge a2');
  await waitStored(r, a1.key);
  await waitStored(r, a2.key);
  assert.equal(tierOf(await ask(B, 'purge a1')), 'shared');
  await waitLocal(B, 'purge a1');
  res = await purgeVia(A, { all: true });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { purged: 1, shared: 2 });
  await waitGone(B, 'purge a1');
  await waitGone(B, 'purge a2');
  assert.equal((await probe(A, 'purge a2')).status, 504);
  assert.deepEqual(await redisCmd(r, 'KEYS', 'pc:e:*'), [], 'no entry left in Redis');

  // and a real request goes upstream again on both nodes
  const before = mock.count();
  assert.equal(statusOf(await ask(A, 'purge a1')), 'MISS');
  assert.equal(statusOf(await ask(B, 'purge p1')), 'MISS');
  assert.equal(mock.count(), before + 2);
  await waitStats(A, (s) => s.shared.purges_applied >= 1 && s.shared.ops.purge >= 1, { what: 'A to count its purges (shared.purges_applied, ops.purge)' });
  await waitStats(B, (s) => s.shared.purges_applied >= 1, { what: 'B to count the purges it applied' });
});

test('`promptcache purge --redis URL` (--key, --namespace, --older-than, --all) purges Redis and the running nodes drop their copies', async (t) => {
  const r = await startRedis(t);
  const { nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2 });
  const k1 = await ask(A, 'cli purge k1');
  const k2 = await ask(A, 'cli purge k2', ns('cli'));
  const k3 = await ask(A, 'cli purge k3');
  for (const x of [k1, k2, k3]) await waitStored(r, x.key);
  for (const [c, h] of [['cli purge k1', {}], ['cli purge k2', ns('cli')], ['cli purge k3', {}]]) {
    assert.equal(tierOf(await ask(B, c, h)), 'shared');
    await waitLocal(B, c, { headers: h });
  }
  const oneLine = (out, what) => {
    const lines = out.stdout.split('\n').filter((l) => l.trim());
    assert.equal(lines.length, 1, `${what}: a one-line summary, got ${JSON.stringify(out.stdout)}`);
    return lines[0];
  };

  let out = await runCliOk(t, ['purge', '--redis', r.url, '--key', k1.key]);
  assert.match(oneLine(out, '--key'), /\b1\b/, 'the summary counts the entry deleted');
  assert.equal(await redisCmd(r, 'EXISTS', entryKey(k1.key)), 0);
  await waitGone(A, 'cli purge k1');
  await waitGone(B, 'cli purge k1');
  assert.equal((await probe(A, 'cli purge k3')).status, 200, 'other entries stay');

  out = await runCliOk(t, ['purge', '--redis', r.url, '--namespace', 'cli']);
  oneLine(out, '--namespace');
  await waitGone(A, 'cli purge k2', { headers: ns('cli') });
  await waitGone(B, 'cli purge k2', { headers: ns('cli') });

  out = await runCliOk(t, ['purge', '--redis', r.url, '--older-than', '1h']);
  assert.match(oneLine(out, '--older-than'), /\b0\b/);
  assert.equal((await probe(A, 'cli purge k3')).status, 200);
  assert.equal((await probe(B, 'cli purge k3')).status, 200);

  out = await runCliOk(t, ['purge', '--redis', r.url, '--redis-prefix', 'pc:', '--all']);
  oneLine(out, '--all');
  await waitGone(A, 'cli purge k3');
  await waitGone(B, 'cli purge k3');
  assert.deepEqual(await redisCmd(r, 'KEYS', 'pc:e:*'), []);

  // another prefix is another deployment: nothing of ours is touched
  const k4 = await ask(A, 'cli purge k4');
  await waitStored(r, k4.key);
  await runCliOk(t, ['purge', '--redis', r.url, '--redis-prefix', 'other:', '--all']);
  assert.equal(await redisCmd(r, 'EXISTS', entryKey(k4.key)), 1, 'a purge under another prefix left our entry');
  assert.equal((await probe(A, 'cli purge k4')).status, 200);
});

test('`promptcache stats --redis URL` and /stats "fleet" sum every node\'s published totals', async (t) => {
  const r = await startRedis(t);
  const { nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2 });
  // traffic right away, so that the next periodic publication (10 s) carries it
  const a = await ask(A, 'fleet stats');
  assert.equal(statusOf(a), 'MISS');
  await waitStored(r, a.key);
  assert.equal(tierOf(await ask(B, 'fleet stats')), 'shared');
  assert.equal(statusOf(await ask(B, 'fleet stats 2')), 'MISS');
  // (admin requests count in "requests" too: compare the cache outcomes exactly)
  const sa = (await stats(A)).totals;
  const sb = (await stats(B)).totals;
  assert.deepEqual([sa.hit, sa.hits_shared, sa.miss, sb.hit, sb.hits_shared, sb.miss], [0, 0, 1, 1, 1, 1], 'the traffic as each node counts it');
  const want = { hits: 1, hits_shared: 1, misses: 2 };
  const ids = [`${os.hostname()}:${A.port}`, `${os.hostname()}:${B.port}`].sort();

  let j;
  let last = '';
  await waitUntil(async () => {
    const out = await runCliOk(t, ['stats', '--redis', r.url, '--json']);
    last = out.stdout;
    j = JSON.parse(out.stdout);
    return j.nodes.length === 2 && j.totals.hits === want.hits && j.totals.misses === want.misses;
  }, { timeoutMs: 16000, intervalMs: 500, what: 'stats --redis --json to show 2 nodes, 1 hit and 2 misses' }).catch((err) => {
    err.message += `; last output: ${last}`;
    throw err;
  });
  assert.deepEqual(j.nodes.map((n) => n.node).sort(), ids, 'node ids are <hostname>:<first listen port>');
  for (const f of Object.keys(want)) assert.equal(j.totals[f], want[f], `totals.${f}: ${JSON.stringify(j.totals)}`);
  assert.ok(j.totals.requests >= 3, `totals.requests: ${JSON.stringify(j.totals)}`);
  for (const f of ['coalesced', 'fleet_coalesced', 'hit_ratio', 'tokens_saved', 'money_saved']) assert.ok(f in j.totals, `totals.${f}`);
  const rowA = j.nodes.find((n) => n.node === `${os.hostname()}:${A.port}`);
  const rowB = j.nodes.find((n) => n.node === `${os.hostname()}:${B.port}`);
  assert.deepEqual([rowA.hits, rowA.hits_shared, rowA.misses], [0, 0, 1], `A's row: ${JSON.stringify(rowA)}`);
  assert.deepEqual([rowB.hits, rowB.hits_shared, rowB.misses], [1, 1, 1], `B's row: ${JSON.stringify(rowB)}`);
  assert.equal(j.totals.requests, rowA.requests + rowB.requests, 'totals are the sum of the rows');
  assert.ok(rowA.updated_ms > Date.now() - 60000 && rowA.updated_ms <= Date.now() + 5000, `updated_ms: ${rowA.updated_ms}`);
  assert.ok(Math.abs(j.totals.hit_ratio - 1 / 3) < 1e-3, `hit_ratio 1 of 3: ${j.totals.hit_ratio}`);

  const text = await runCliOk(t, ['stats', '--redis', r.url]);
  for (const id of ids) assert.ok(text.stdout.includes(id), `stats --redis lists ${id}:\n${text.stdout}`);

  // a node's own /stats learns the fleet numbers too (read when it publishes:
  // in the same round the other node's record may still be the previous one)
  const fleet = await waitUntil(async () => {
    const f = (await stats(A)).fleet;
    return f && f.nodes === 2 && f.totals && f.totals.misses >= 1 ? f : null;
  }, { timeoutMs: 12000, intervalMs: 250, what: '/stats "fleet" on A to show both nodes' });
  assert.ok(fleet.totals.misses <= want.misses && fleet.totals.hits <= want.hits, JSON.stringify(fleet));
  assert.ok(fleet.totals.requests >= 1, JSON.stringify(fleet));
});

test('Redis down: every node keeps answering (local hits, misses upstream) within bounded time, health says down, purge is 503; Redis back: sharing resumes', async (t) => {
  const r = await startRedis(t);
  const { mock, nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2 });
  const x = await ask(A, 'down x');
  await waitStored(r, x.key);
  assert.equal(tierOf(await ask(B, 'down x')), 'shared');
  await waitLocal(B, 'down x');
  const before = await waitStats(A, (s) => s.shared.up === true, { what: 'A /stats shared.up' });
  const errsOf = (s) => s.shared.errors + s.shared.reconnects + s.shared.timeouts;

  await r.stop();
  await waitShared(A, 'down');
  await waitShared(B, 'down');

  for (const [node, name] of [[A, 'A'], [B, 'B']]) {
    const h = await ask(node, 'down x');
    assert.equal(h.status, 200);
    assert.equal(statusOf(h), 'HIT', `${name}: local hit with Redis down`);
    assert.equal(tierOf(h), 'local');
    assert.equal(h.text, x.text);
    assert.ok(h.ms < 1000, `${name}: a local hit took ${h.ms} ms with Redis down`);
  }
  const up0 = mock.count();
  for (const [node, name] of [[A, 'A'], [B, 'B']]) {
    const m = await ask(node, 'down y');
    assert.equal(m.status, 200, `${name}: ${m.status} ${m.text.slice(0, 200)}`);
    assert.equal(statusOf(m), 'MISS');
    assert.ok(m.ms < 1000, `${name}: a miss took ${m.ms} ms with Redis down (--redis-timeout 250ms)`);
    assert.equal(m.json.choices[0].message.content, echoText('down y'));
  }
  assert.equal(mock.count(), up0 + 2, 'each node went upstream on its own');
  const y = await waitLocal(A, 'down y');
  assert.equal(y.status, 200, 'stored locally while Redis was down');

  await waitStats(A, (s) => s.shared.up === false && errsOf(s) > errsOf(before), { what: 'A /stats: shared.up false and errors/reconnects/timeouts grown' });
  assert.equal(metric(await metrics(A), 'promptcache_redis_up'), 0);

  // purge: the local part is done, the shared part is not: 503 shared_unavailable
  const res = await purgeVia(A, { key: y.key });
  assertProxyError(assert, res, 503, 'shared_unavailable');
  assert.equal((await probe(A, 'down y')).status, 504, 'the local part of the purge was done');

  await r.restart();
  await waitShared(A, 'up', 10000);
  await waitShared(B, 'up', 10000);
  // a new miss on A becomes a shared hit on B (retry with fresh prompts for a few seconds)
  let attempts = 0;
  const shared = await waitUntil(async () => {
    attempts++;
    const content = `down resume ${attempts}`;
    const a = await ask(A, content);
    if (statusOf(a) !== 'MISS') return null;
    try { await waitStored(r, a.key); } catch { return null; }
    const b = await ask(B, content);
    return tierOf(b) === 'shared' && b.text === a.text ? b : null;
  }, { timeoutMs: 8000, intervalMs: 100, what: 'a miss on A to be a shared hit on B after Redis came back' });
  assert.equal(statusOf(shared), 'HIT');
});

test('Redis slow (DEBUG SLEEP): requests finish within bounded time without the shared tier, timeouts are counted; then sharing resumes', async (t) => {
  const r = await startRedis(t);
  const { nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2 });
  const x = await ask(A, 'slow x');
  await waitStored(r, x.key);
  const sleeping = r.cli('DEBUG', 'SLEEP', '2.5');
  await waitUntil(async () => {
    try {
      await redisPipeline(r.port, [['PING']], { timeoutMs: 100 });
      return false;
    } catch {
      return true;
    }
  }, { what: 'Redis to be asleep (DEBUG SLEEP)' });
  const asleepAt = performance.now();
  const hit = await ask(A, 'slow x');
  assert.equal(statusOf(hit), 'HIT');
  assert.equal(tierOf(hit), 'local');
  assert.ok(hit.ms < 1000, `a local hit took ${hit.ms} ms while Redis was slow`);
  const miss = await ask(A, 'slow y');
  assert.equal(miss.status, 200);
  assert.equal(statusOf(miss), 'MISS');
  assert.ok(miss.ms < 1000, `a miss took ${miss.ms} ms while Redis was slow (--redis-timeout 250ms)`);
  const bx = await ask(B, 'slow x');
  assert.equal(bx.status, 200);
  assert.equal(statusOf(bx), 'MISS', 'B could not read the shared tier in time: it went upstream');
  assert.ok(bx.ms < 1000, `B's miss took ${bx.ms} ms while Redis was slow`);
  assert.ok(performance.now() - asleepAt < 2300, 'the requests above ran while Redis was asleep');
  await sleeping;
  await waitStats(B, (s) => s.shared.timeouts >= 1, { what: 'B to count Redis timeouts' });
  await waitShared(A, 'up', 10000);
  await waitShared(B, 'up', 10000);
  const shared = await waitUntil(async () => {
    const content = `slow resume ${Date.now()}`;
    const a = await ask(A, content);
    if (statusOf(a) !== 'MISS') return null;
    try { await waitStored(r, a.key); } catch { return null; }
    const b = await ask(B, content);
    return tierOf(b) === 'shared' && b.text === a.text ? b : null;
  }, { timeoutMs: 8000, intervalMs: 100, what: 'sharing to resume after Redis woke up' });
  assert.equal(statusOf(shared), 'HIT');
});

test('--redis-max-value: a larger entry stays node-local (never in Redis, a miss on another node); smaller ones are shared', async (t) => {
  const r = await startRedis(t);
  const { mock, nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2, args: ['--redis-max-value', '4KiB'] });
  const bigPrompt = `big ${'x'.repeat(6000)}`;
  const big = await ask(A, bigPrompt);
  assert.equal(statusOf(big), 'MISS');
  assert.ok(big.body.length > 6000);
  const small = await ask(A, 'small one');
  await waitStored(r, small.key, 'the small entry');
  await waitStats(A, (s) => s.shared.too_big >= 1, { what: 'A to count the entry too big for Redis (shared.too_big)' });
  assert.equal(await redisCmd(r, 'EXISTS', entryKey(big.key)), 0, 'the big entry is not in Redis');
  const hitA = await ask(A, bigPrompt);
  assert.equal(statusOf(hitA), 'HIT', 'it is stored locally');
  assert.equal(tierOf(hitA), 'local');
  const before = mock.count();
  const b = await ask(B, bigPrompt);
  assert.equal(statusOf(b), 'MISS', 'another node does not find it');
  assert.equal(mock.count(), before + 1);
  const s2 = await ask(B, 'small one');
  assert.equal(tierOf(s2), 'shared');
  assert.equal(s2.text, small.text);
});

test('--redis-prefix: deployments with different prefixes share one Redis without seeing each other\'s entries', async (t) => {
  const r = await startRedis(t);
  const mock = await mockFor(t, startMock);
  const { nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2, mock, args: ['--redis-prefix', 'teamA:'] });
  const { nodes: [C] } = await startFleet(t, { urls: [r.url], n: 1, mock });
  const a = await ask(A, 'prefixed');
  assert.equal(statusOf(a), 'MISS');
  await waitUntil(async () => (await redisCmd(r, 'EXISTS', entryKey(a.key, 'teamA:'))) === 1, { what: 'teamA:e:<key> in Redis' });
  assert.equal(await redisCmd(r, 'EXISTS', entryKey(a.key)), 0, 'nothing under the default prefix');
  assert.equal((await redisCmd(r, 'GET', 'teamA:secret')).length, 32, 'the fleet secret under the prefix');
  const b = await ask(B, 'prefixed');
  assert.equal(tierOf(b), 'shared', 'same prefix: shared');
  const c = await ask(C, 'prefixed');
  assert.equal(statusOf(c), 'MISS', 'another prefix: another cache');
  assert.equal(mock.count(), 2);
  const keys = (await redisCmd(r, 'KEYS', '*')).map(String);
  assert.ok(keys.every((k) => k.startsWith('teamA:') || k.startsWith('pc:')), `every key under a prefix: ${keys.join(' ')}`);
});

test('a Redis with a password: the fleet shares through AUTH; the password (right or wrong) is never logged or shown', async (t) => {
  const pw = 'pw-Zq8s3cr3t-4417';
  const wrong = 'pw-WRONG-9921';
  const r = await startRedis(t, { password: pw });
  const { mock, nodes: [A, B] } = await startFleet(t, { urls: [r.url], n: 2 });
  const a = await ask(A, 'with auth');
  assert.equal(statusOf(a), 'MISS');
  const b = await waitUntil(async () => {
    const x = await ask(B, 'with auth', { 'cache-control': 'only-if-cached' });
    return x.status === 200 ? x : null;
  }, { what: 'the entry to reach B through Redis' });
  assert.equal(tierOf(b), 'shared');
  assert.equal(b.text, a.text);
  // the CLI and a node with the wrong password (the CLI takes a while to give up: run it meanwhile)
  const badUrl = r.url.replace(encodeURIComponent(pw), encodeURIComponent(wrong));
  assert.notEqual(badUrl, r.url);
  const cliRun = runCli(t, ['stats', '--redis', badUrl]);
  const { nodes: [C] } = await startFleet(t, { urls: [badUrl], n: 1, mock, waitUp: false });
  await waitShared(C, 'down');
  const c = await ask(C, 'with auth');
  assert.equal(c.status, 200);
  assert.equal(statusOf(c), 'MISS', 'no shared tier with a wrong password');
  // Redis goes away: the nodes log about it
  await r.stop();
  await waitShared(A, 'down');
  const outputs = [];
  for (const n of [A, B, C]) {
    outputs.push(n.stderr, JSON.stringify(await stats(n)), await metrics(n), JSON.stringify(await health(n)));
  }
  const cli = await cliRun;
  assert.notEqual(cli.code, 0, 'stats --redis with a wrong password fails');
  assert.ok(cli.stderr.trim().length > 0, 'and says why');
  outputs.push(cli.stdout, cli.stderr);
  const all = outputs.join('\n');
  assert.ok(!all.includes(pw), 'the Redis password appeared in a log line, an admin answer or the CLI output');
  assert.ok(!all.includes(wrong), 'the wrong Redis password appeared in a log line, an admin answer or the CLI output');
});

test('Redis Cluster (3 masters): shared hit, corrupt value, purge, single flight, and a shared hit after the key\'s slot moved', async (t) => {
  const c = await startRedisCluster(t, { masters: 3 });
  const { mock, nodes: [A, B, C] } = await startFleet(t, { urls: c.urls, n: 3 });

  await t.test('shared hit', async () => {
    const a = await ask(A, 'cluster one');
    assert.equal(statusOf(a), 'MISS');
    await waitStored(c, a.key);
    const b = await ask(B, 'cluster one');
    assert.equal(statusOf(b), 'HIT');
    assert.equal(tierOf(b), 'shared');
    assert.equal(b.text, a.text);
  });

  await t.test('corrupt value', async () => {
    const a = await ask(A, 'cluster corrupt');
    await waitStored(c, a.key);
    await redisCmd(c, 'SET', entryKey(a.key), 'garbage');
    const before = mock.count();
    const x = await ask(C, 'cluster corrupt');
    assert.equal(statusOf(x), 'MISS', 'a corrupt value was served');
    assert.equal(mock.count(), before + 1);
    await waitStats(C, (s) => s.shared.corrupt >= 1, { what: 'C shared.corrupt' });
  });

  await t.test('purge by key, namespace and all', async () => {
    const a = await ask(A, 'cluster purge');
    await waitStored(c, a.key);
    assert.equal(tierOf(await ask(B, 'cluster purge')), 'shared');
    await waitLocal(B, 'cluster purge');
    let res = await purgeVia(C, { key: a.key });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { purged: 0, shared: 1 });
    await waitGone(A, 'cluster purge');
    await waitGone(B, 'cluster purge');

    const n1 = await ask(A, 'cluster ns 1', ns('cl'));
    const n2 = await ask(B, 'cluster ns 2', ns('cl'));
    await waitStored(c, n1.key);
    await waitStored(c, n2.key);
    res = await purgeVia(C, { namespace: 'cl' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { purged: 0, shared: 2 });
    await waitGone(A, 'cluster ns 1', { headers: ns('cl') });
    await waitGone(B, 'cluster ns 2', { headers: ns('cl') });

    // all: the entries live on several masters
    const many = [];
    for (let i = 0; i < 8; i++) many.push(await ask(A, `cluster all ${i}`));
    for (const x of many) await waitStored(c, x.key);
    const owners = new Set();
    for (const x of many) owners.add(await c.owner(keySlot(entryKey(x.key))));
    assert.ok(owners.size >= 2, `8 entries on ${owners.size} master(s)`);
    let total = 0;
    for (let i = 0; i < 3; i++) {
      const keys = await c.cli(i, 'KEYS', 'pc:e:*');
      total += keys ? keys.split('\n').length : 0;
    }
    res = await purgeVia(B, { all: true });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.shared, total, `every entry on every master: ${res.text}`);
    for (let i = 0; i < 3; i++) assert.equal(await c.cli(i, 'KEYS', 'pc:e:*'), '', `master ${i} still holds entries`);
    for (const i of [0, 7]) await waitGone(A, `cluster all ${i}`);
  });

  await t.test('single flight: 30 concurrent identical requests over 3 nodes, one upstream request', async () => {
    const before = mock.count();
    const hs = [A, B, C].flatMap((n) => Array.from({ length: 10 }, () => open(n, 'cluster flight', { headers: { 'x-mock-behavior': 'delay=400' } })));
    const rs = await Promise.all(hs.map((h) => h.done));
    assert.equal(mock.count() - before, 1, `upstream saw ${mock.count() - before} requests`);
    const tl = tally(rs);
    assert.equal(tl.MISS, 1, JSON.stringify(tl));
    assert.equal((tl.COALESCED || 0) + (tl.HIT || 0), 29, JSON.stringify(tl));
    for (const x of rs) {
      assert.equal(x.status, 200, String(x.error));
      assert.equal(x.text, rs[0].text);
    }
  });

  await t.test('resharding: the slot of a stored key moves to another master; other nodes still hit it (MOVED followed)', async () => {
    const a = await ask(A, 'cluster reshard');
    await waitStored(c, a.key);
    const key = entryKey(a.key);
    const slot = keySlot(key);
    assert.equal(Number(await c.cli(0, 'CLUSTER', 'KEYSLOT', key)), slot, 'CRC16 slot');
    const from = await c.owner(slot);
    const to = (from + 1) % 3;
    await c.moveSlot(slot, to);
    assert.equal(await c.owner(slot), to);
    assert.equal(await c.cli(to, 'EXISTS', key), '1', 'the key moved with its slot');
    const before = mock.count();
    for (const n of [B, C]) {
      const x = await ask(n, 'cluster reshard');
      assert.equal(statusOf(x), 'HIT', `after the reshard: ${statusOf(x)}`);
      assert.equal(tierOf(x), 'shared');
      assert.equal(x.text, a.text);
    }
    assert.equal(mock.count(), before);
    // stores into the moved slot work too: purge the key, then A stores it again, B hits it
    const res = await purgeVia(A, { key: a.key });
    assert.deepEqual(res.json, { purged: 1, shared: 1 });
    await waitGone(B, 'cluster reshard');
    await waitGone(C, 'cluster reshard');
    const a2 = await ask(A, 'cluster reshard');
    assert.equal(statusOf(a2), 'MISS');
    await waitStored(c, a2.key);
    assert.equal(await c.cli(to, 'EXISTS', key), '1', 'stored on the new owner');
    const b2 = await ask(B, 'cluster reshard');
    assert.equal(tierOf(b2), 'shared');
    assert.equal(b2.text, a2.text);
  });
});
