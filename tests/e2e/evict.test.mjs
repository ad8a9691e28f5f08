// evict.test.mjs — --max-size: a cache filled far past its bound stays within
// it, keeps serving, keeps what was used recently, and counts evictions;
// an entry larger than a quarter of --max-size is served but not stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, chat, request, sleep } from './lib/setup.mjs';
import { flood } from './lib/load.mjs';

const MAX = 2 * 1024 * 1024;
const BIG = 'x'.repeat(48 * 1024); // each answer carries ~48 KiB

// The mock answers with a large body (so a few dozen entries overflow 2 MiB).
function bigAnswers(mock) {
  mock.handler = async (req, res, rec) => {
    const prompt = rec.json?.messages?.[0]?.content ?? '';
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: `big-${rec.seq}`, object: 'chat.completion', prompt, filler: BIG }));
    return true;
  };
}

async function stats(proxy) {
  const r = await request(proxy, { path: '/_promptcache/stats' });
  assert.equal(r.status, 200);
  return JSON.parse(r.text);
}

test('filling a small cache far past --max-size keeps it within bound, serving, and keeps recent entries', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--max-size', String(MAX)] });
  bigAnswers(mock);
  const keep = await chat(proxy, 'keep me');
  assert.equal(keep.cache, 'MISS');
  const N = 120; // ~6 MiB of answers: three times the bound
  for (let i = 0; i < N; i++) {
    const r = await chat(proxy, `filler ${i}`);
    assert.equal(r.status, 200, `filler ${i} got ${r.status}`);
    assert.equal(r.cache, 'MISS');
    if (i % 4 === 0) {
      const k = await chat(proxy, 'keep me'); // used often: must survive
      assert.equal(k.cache, 'HIT', `the often used entry was evicted by filler ${i}`);
    }
  }
  // the writer evicts after its batches: wait for the bound to hold (bounded)
  let s;
  for (const end = performance.now() + 5000; ; await sleep(50)) {
    s = await stats(proxy);
    if ((s.cache.bytes <= MAX && s.cache.evictions > 0) || performance.now() > end) break;
  }
  assert.ok(s.cache.bytes <= MAX, `cache uses ${s.cache.bytes} bytes > ${MAX}`);
  assert.ok(s.cache.evictions > 0, 'evictions are counted');
  assert.ok(s.cache.entries < N, `${s.cache.entries} entries kept`);
  // the oldest fillers are gone, the newest are still served
  const oldest = await chat(proxy, 'filler 0');
  assert.equal(oldest.cache, 'MISS');
  const newest = await chat(proxy, `filler ${N - 1}`);
  assert.equal(newest.cache, 'HIT');
  const kept = await chat(proxy, 'keep me');
  assert.equal(kept.cache, 'HIT');
  const m = await request(proxy, { path: '/_promptcache/metrics' });
  assert.match(m.text, /^promptcache_evictions_total [1-9]\d*$/m);
});

test('an answer larger than a quarter of --max-size is passed on but not stored', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--max-size', '1MiB'] });
  mock.handler = async (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ huge: 'y'.repeat(300 * 1024) }));
    return true;
  };
  const a = await chat(proxy, 'too big');
  assert.equal(a.status, 200);
  assert.equal(JSON.parse(a.text).huge.length, 300 * 1024);
  const b = await chat(proxy, 'too big');
  assert.equal(b.cache, 'MISS');
  assert.equal(mock.count(), 2);
});

// A full map used to stop storing for good: one eviction txn deleting ~15 %
// of scattered entries needed more free pages than a nearly full map has.
test('sustained distinct small misses at the smallest --max-size keep being stored, within the bound', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--max-size', '1MiB'] });
  const N = 4000;
  const counts = await flood(proxy, { n: N, request: (i) => ({ body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `fill ${i} ${'x'.repeat(100)}` }] } }) });
  assert.deepEqual(counts, { '200 MISS': N });
  assert.equal(mock.count(), N);
  const s = await stats(proxy);
  assert.equal(s.cache.store_failures, 0, 'every answer was stored');
  assert.ok(s.cache.evictions > N / 2, `evictions counted: ${s.cache.evictions}`);
  assert.ok(s.cache.bytes <= 1024 * 1024, `cache uses ${s.cache.bytes} bytes`);
  // the newest answers are served from the cache
  for (let i = N - 20; i < N; i++) {
    const r = await chat(proxy, `fill ${i} ${'x'.repeat(100)}`);
    assert.equal(r.cache, 'HIT', `fill ${i}`);
  }
});
