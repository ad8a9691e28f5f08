// controls.test.mjs — per-request cache controls (Cache-Control no-store,
// no-cache, max-age, only-if-cached; X-PromptCache-TTL, -Namespace), which are
// never forwarded upstream; entry lifetime (--ttl) and stale-if-error (an
// expired entry served as STALE when upstream fails with a connect error,
// timeout, 5xx or 429).
import test from 'node:test';
import assert from 'node:assert/strict';
import { setup, startMock, mockFor, startProxy, closedPort, chat, assertProxyError, HEX32, sleep } from './lib/setup.mjs';
import { echoText } from './lib/mock.mjs';

const post = (proxy, content, headers = {}, extra = {}) => chat(proxy, content, { headers, extra });
const CONTROL_HEADERS = ['cache-control', 'x-promptcache-ttl', 'x-promptcache-namespace', 'x-promptcache-pacing', 'x-promptcache-custom'];

/** Sleep until `ms` have passed since `since` (a performance.now() value). */
const sleepUntil = (since, ms) => sleep(Math.max(0, since + ms - performance.now()));

function assertNotForwarded(mock) {
  const seen = mock.last().headers;
  for (const h of CONTROL_HEADERS) assert.equal(seen[h], undefined, `${h} reached upstream: ${JSON.stringify(seen)}`);
}

test('Cache-Control: no-store neither reads nor writes the cache (BYPASS) and is not forwarded', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await post(proxy, 'do not keep', { 'cache-control': 'no-store' });
  assert.equal(a.status, 200);
  assert.equal(a.cache, 'BYPASS');
  assert.equal(mock.count(), 1);
  assertNotForwarded(mock);
  const b = await post(proxy, 'do not keep');
  assert.equal(b.cache, 'MISS', 'the no-store answer was stored');
  assert.equal(mock.count(), 2);
  const c = await post(proxy, 'do not keep', { 'Cache-Control': 'no-store' });
  assert.equal(c.cache, 'BYPASS', 'no-store must not read the cache');
  assert.notEqual(c.text, b.text);
  assert.equal(mock.count(), 3);
  const d = await post(proxy, 'do not keep');
  assert.equal(d.cache, 'HIT');
  assert.equal(d.text, b.text, 'the no-store answer did not overwrite the entry');
  assert.equal(mock.count(), 3);
  // a streamed request too
  const s1 = await post(proxy, 'stream, do not keep', { 'cache-control': 'no-store' }, { stream: true });
  assert.equal(s1.cache, 'BYPASS');
  assert.match(s1.text, /data: \[DONE\]\n\n$/);
  const s2 = await post(proxy, 'stream, do not keep', {}, { stream: true });
  assert.equal(s2.cache, 'MISS');
  assert.equal(mock.count(), 5);
});

test('Cache-Control: no-cache skips the lookup, forwards, and stores the fresh answer (REFRESH)', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await post(proxy, 'refresh me');
  assert.equal(a.cache, 'MISS');
  const b = await post(proxy, 'refresh me', { 'cache-control': 'no-cache' });
  assert.equal(b.status, 200);
  assert.equal(b.cache, 'REFRESH');
  assert.equal(b.key, a.key);
  assert.notEqual(b.text, a.text, 'the answer came fresh from upstream');
  assert.equal(mock.count(), 2);
  assertNotForwarded(mock);
  const c = await post(proxy, 'refresh me');
  assert.equal(c.cache, 'HIT');
  assert.equal(c.text, b.text, 'the refreshed answer replaced the entry');
  assert.equal(mock.count(), 2);
  // a refresh that fails upstream is passed on and leaves the entry alone
  const e = await post(proxy, 'refresh me', { 'cache-control': 'no-cache', 'x-mock-behavior': 'status=500' });
  assert.equal(e.status, 500);
  assert.equal(e.cache, 'REFRESH');
  const f = await post(proxy, 'refresh me');
  assert.equal(f.cache, 'HIT');
  assert.equal(f.text, b.text);
  assert.equal(mock.count(), 3);
  // on a key never stored, no-cache stores too
  const g = await post(proxy, 'refresh new', { 'cache-control': 'no-cache' });
  assert.equal(g.cache, 'REFRESH');
  const h = await post(proxy, 'refresh new');
  assert.equal(h.cache, 'HIT');
  assert.equal(h.text, g.text);
  assert.equal(mock.count(), 4);
});

test('Cache-Control: max-age=N accepts only entries younger than N seconds', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await post(proxy, 'how old');
  const storedAt = performance.now();
  assert.equal(a.cache, 'MISS');
  const b = await post(proxy, 'how old', { 'cache-control': 'max-age=60' });
  assert.equal(b.cache, 'HIT');
  assert.equal(b.text, a.text);
  assert.equal(mock.count(), 1);
  await sleepUntil(storedAt, 1100);
  const c = await post(proxy, 'how old', { 'cache-control': 'max-age=1' });
  assert.equal(c.cache, 'MISS', `an entry ${performance.now() - storedAt} ms old was served for max-age=1 (Age: ${c.headers.age})`);
  assert.notEqual(c.text, a.text);
  assert.equal(mock.count(), 2);
  assertNotForwarded(mock);
  const d = await post(proxy, 'how old', { 'cache-control': 'max-age=60' });
  assert.equal(d.cache, 'HIT');
  assert.equal(d.text, c.text, 'the fresh answer replaced the old entry');
  assert.equal(mock.count(), 2);
});

test('Cache-Control: max-age=0 accepts no stored entry', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await post(proxy, 'zero age');
  assert.equal(a.cache, 'MISS');
  const b = await post(proxy, 'zero age', { 'cache-control': 'max-age=0' });
  assert.equal(b.cache, 'MISS', `max-age=0 was answered from the cache (Age: ${b.headers.age})`);
  assert.equal(mock.count(), 2);
});

test('Cache-Control: only-if-cached never contacts upstream: 504 not_cached on a miss, the entry on a hit', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await post(proxy, 'cached only', { 'cache-control': 'only-if-cached' });
  assertProxyError(assert, a, 504, 'not_cached');
  assert.equal(a.cache, 'MISS');
  assert.equal(mock.count(), 0, 'only-if-cached contacted upstream');
  const b = await post(proxy, 'cached only', { 'x-promptcache-ttl': '1s' });
  const storedAt = performance.now();
  assert.equal(b.cache, 'MISS');
  const c = await post(proxy, 'cached only', { 'cache-control': 'only-if-cached' });
  assert.equal(c.status, 200);
  assert.equal(c.cache, 'HIT');
  assert.equal(c.text, b.text);
  assert.equal(mock.count(), 1);
  // an expired entry is not cached anymore: still 504, still no upstream request
  await sleepUntil(storedAt, 1100);
  const d = await post(proxy, 'cached only', { 'cache-control': 'only-if-cached' });
  assertProxyError(assert, d, 504, 'not_cached');
  assert.equal(d.cache, 'MISS');
  assert.equal(mock.count(), 1, 'only-if-cached contacted upstream for an expired entry');
  // a streamed request too
  const s = await post(proxy, 'cached only, streamed', { 'cache-control': 'only-if-cached' }, { stream: true });
  assertProxyError(assert, s, 504, 'not_cached');
  assert.equal(mock.count(), 1);
});

test('X-PromptCache-TTL sets the lifetime of the entry the request stores; an invalid value is a 400', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await post(proxy, 'short lived', { 'x-promptcache-ttl': '1s' });
  const storedAt = performance.now();
  assert.equal(a.cache, 'MISS');
  assertNotForwarded(mock);
  const b = await post(proxy, 'short lived');
  assert.equal(b.cache, 'HIT');
  const long = await post(proxy, 'long lived', { 'x-promptcache-ttl': '1h' });
  assert.equal(long.cache, 'MISS');
  assert.equal(mock.count(), 2);
  await sleepUntil(storedAt, 1100);
  const c = await post(proxy, 'short lived');
  assert.equal(c.cache, 'MISS', 'an expired entry was served');
  assert.notEqual(c.text, a.text);
  assert.equal(mock.count(), 3);
  const d = await post(proxy, 'long lived');
  assert.equal(d.cache, 'HIT');
  assert.equal(mock.count(), 3);
  for (const bad of ['abc', '-1s', '10x', 'soon']) {
    const r = await post(proxy, `bad ttl ${bad}`, { 'x-promptcache-ttl': bad });
    assert.equal(r.status, 400, `X-PromptCache-TTL: ${bad} → ${r.status} ${r.text}`);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.equal(r.json.error.type, 'promptcache_error');
  }
  assert.equal(mock.count(), 3, 'an invalid TTL must not reach upstream');
});

test('--ttl: expired entries are not served (MISS, upstream called again); X-PromptCache-TTL overrides it', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--ttl', '1s'] });
  const a = await post(proxy, 'default ttl');
  const storedAt = performance.now();
  const keep = await post(proxy, 'kept longer', { 'x-promptcache-ttl': '1h' });
  assert.deepEqual([a.cache, keep.cache], ['MISS', 'MISS']);
  const b = await post(proxy, 'default ttl');
  assert.equal(b.cache, 'HIT');
  assert.equal(mock.count(), 2);
  await sleepUntil(storedAt, 1100);
  const c = await post(proxy, 'default ttl');
  assert.equal(c.cache, 'MISS', `an entry older than --ttl 1s was served (Age: ${c.headers.age})`);
  assert.notEqual(c.text, a.text);
  assert.equal(mock.count(), 3);
  const d = await post(proxy, 'default ttl');
  assert.equal(d.cache, 'HIT');
  assert.equal(d.text, c.text);
  const e = await post(proxy, 'kept longer');
  assert.equal(e.cache, 'HIT', 'X-PromptCache-TTL: 1h outlived --ttl 1s');
  assert.equal(mock.count(), 3);
});

test('X-PromptCache-Namespace separates key spaces and is not forwarded', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await post(proxy, 'tenant', { 'x-promptcache-namespace': 'team-a' });
  assertNotForwarded(mock);
  const b = await post(proxy, 'tenant', { 'x-promptcache-namespace': 'team-b' });
  const c = await post(proxy, 'tenant');
  assert.deepEqual([a.cache, b.cache, c.cache], ['MISS', 'MISS', 'MISS']);
  assert.equal(new Set([a.key, b.key, c.key]).size, 3, 'three keys');
  assert.equal(mock.count(), 3);
  const a2 = await post(proxy, 'tenant', { 'x-promptcache-namespace': 'team-a' });
  const b2 = await post(proxy, 'tenant', { 'x-promptcache-namespace': 'team-b' });
  const c2 = await post(proxy, 'tenant');
  assert.deepEqual([a2.cache, b2.cache, c2.cache], ['HIT', 'HIT', 'HIT']);
  assert.deepEqual([a2.text, b2.text, c2.text], [a.text, b.text, c.text]);
  assert.equal(mock.count(), 3);
});

test('control headers (Cache-Control, X-PromptCache-*) are consumed, other headers are forwarded', async (t) => {
  const { mock, proxy } = await setup(t);
  const r = await post(proxy, 'all the controls', {
    'Cache-Control': 'no-cache',
    'X-PromptCache-TTL': '60s',
    'X-PromptCache-Namespace': 'ns-forward',
    'X-PromptCache-Pacing': 'original',
    'X-PromptCache-Custom': 'anything',
    'x-other': 'kept',
  });
  assert.equal(r.status, 200);
  assert.equal(r.cache, 'REFRESH');
  assert.match(r.key || '', HEX32);
  assertNotForwarded(mock);
  assert.equal(mock.last().headers['x-other'], 'kept');
});

test('stale-if-error: an expired entry is served as STALE with Age when upstream answers 5xx or 429', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--ttl', '1s'] });
  const a = await post(proxy, 'stale json');
  const s = await post(proxy, 'stale stream', {}, { stream: true });
  const storedAt = performance.now();
  assert.deepEqual([a.cache, s.cache], ['MISS', 'MISS']);
  assert.equal(mock.count(), 2);
  await sleepUntil(storedAt, 1100);
  for (const [i, st] of [500, 503, 429].entries()) {
    const r = await post(proxy, 'stale json', { 'x-mock-behavior': `status=${st}` });
    assert.equal(r.status, 200, `upstream ${st} with an expired entry: got ${r.status} ${r.cache}: ${r.text.slice(0, 200)}`);
    assert.equal(r.cache, 'STALE');
    assert.equal(r.key, a.key);
    assert.equal(r.text, a.text, 'the expired entry is served');
    assert.match(r.headers.age || '', /^\d+$/, `STALE carries Age: ${JSON.stringify(r.headers)}`);
    assert.ok(Number(r.headers.age) >= 1, `Age ${r.headers.age} of an entry older than 1 s`);
    assert.equal(mock.count(), 3 + i, 'upstream was tried first');
  }
  // a streamed entry is served stale as its recorded stream
  const ss = await post(proxy, 'stale stream', { 'x-mock-behavior': 'status=502' }, { stream: true });
  assert.equal(ss.status, 200);
  assert.equal(ss.cache, 'STALE');
  assert.match(String(ss.headers['content-type']), /^text\/event-stream/);
  assert.equal(ss.text, s.text);
  assert.equal(mock.count(), 6);
  // upstream healthy again: the expired entry is not a hit, the fresh answer replaces it
  const b = await post(proxy, 'stale json');
  assert.equal(b.cache, 'MISS');
  assert.notEqual(b.text, a.text);
  const c = await post(proxy, 'stale json');
  assert.equal(c.cache, 'HIT');
  assert.equal(c.text, b.text);
  assert.equal(mock.count(), 7);
  // without an expired entry the error is passed on
  const e = await post(proxy, 'never stored', { 'x-mock-behavior': 'status=500' });
  assert.equal(e.status, 500);
  assert.equal(e.cache, 'MISS');
});

test('stale-if-error: an upstream timeout serves the expired entry as STALE', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--ttl', '1s', '--upstream-timeout', '700ms'] });
  const a = await post(proxy, 'stale on timeout');
  const storedAt = performance.now();
  assert.equal(a.cache, 'MISS');
  await sleepUntil(storedAt, 1100);
  const r = await post(proxy, 'stale on timeout', { 'x-mock-behavior': 'delay=3000' });
  assert.equal(r.status, 200, `got ${r.status} ${r.cache}: ${r.text.slice(0, 200)}`);
  assert.equal(r.cache, 'STALE');
  assert.equal(r.text, a.text);
  assert.match(r.headers.age || '', /^\d+$/);
  assert.ok(r.ms < 2500, `STALE came after ${r.ms} ms, the upstream timeout is 700 ms`);
  assert.equal(mock.count(), 2);
  // without an entry the timeout is a 504
  const n = await post(proxy, 'nothing stored', { 'x-mock-behavior': 'delay=3000' });
  assertProxyError(assert, n, 504, 'upstream_timeout');
});

test('stale-if-error: with upstream unreachable (restart on the same db, --upstream at a closed port) the expired entry is STALE', async (t) => {
  const mock = await mockFor(t, startMock);
  const proxy = await startProxy(t, { upstream: mock, args: ['--ttl', '1s'] });
  const a = await post(proxy, 'stale offline');
  const s = await post(proxy, 'stale offline stream', {}, { stream: true });
  const storedAt = performance.now();
  assert.deepEqual([a.cache, s.cache], ['MISS', 'MISS']);
  proxy.opts.upstream = `http://127.0.0.1:${await closedPort()}`;
  await proxy.restart();
  const fresh = await post(proxy, 'stale offline');
  assert.equal(fresh.cache, 'HIT', 'the entry survived the restart');
  await sleepUntil(storedAt, 1100);
  const r = await post(proxy, 'stale offline');
  assert.equal(r.status, 200, `got ${r.status} ${r.cache}: ${r.text.slice(0, 200)}`);
  assert.equal(r.cache, 'STALE');
  assert.equal(r.key, a.key);
  assert.equal(r.text, a.text);
  assert.match(r.headers.age || '', /^\d+$/);
  const rs = await post(proxy, 'stale offline stream', {}, { stream: true });
  assert.equal(rs.cache, 'STALE');
  assert.equal(rs.text, s.text);
  const n = await post(proxy, 'never stored offline');
  assertProxyError(assert, n, 502, 'upstream_unreachable');
  assert.equal(mock.count(), 2);
});

test('a 4xx from upstream is not an upstream failure: the expired entry is not served', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--ttl', '1s'] });
  const a = await post(proxy, 'bad request later');
  const storedAt = performance.now();
  assert.equal(a.cache, 'MISS');
  await sleepUntil(storedAt, 1100);
  const r = await post(proxy, 'bad request later', { 'x-mock-behavior': 'status=400' });
  assert.equal(r.status, 400, `got ${r.status} ${r.cache}`);
  assert.equal(r.cache, 'MISS');
  assert.equal(mock.count(), 2);
});

test('no-store and no-cache requests do not coalesce with an identical request in flight', async (t) => {
  const { mock, proxy } = await setup(t);
  const slow = { 'x-mock-behavior': 'delay=300' };
  const [a, b, c] = await Promise.all([
    post(proxy, 'in flight', slow),
    post(proxy, 'in flight', { ...slow, 'cache-control': 'no-store' }),
    post(proxy, 'in flight', { ...slow, 'cache-control': 'no-cache' }),
  ]);
  assert.deepEqual([a.cache, b.cache, c.cache], ['MISS', 'BYPASS', 'REFRESH']);
  assert.equal(mock.count(), 3);
  assert.equal(new Set([a.text, b.text, c.text]).size, 3);
  assert.equal(JSON.parse(a.text).choices[0].message.content, echoText('in flight'));
});
