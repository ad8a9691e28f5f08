// faults.test.mjs — the proxy and the offline commands when the database
// itself is the problem: a full disk (a file-size limit), a directory the
// user may read but not write, a truncated data.mdb, and random bit flips in
// it. Nothing may die by a signal or print a sanitizer report; requests keep
// being answered; the commands say in one line what is wrong.
// (Eviction under sustained misses is in evict.test.mjs, a client that never
// reads in slowclient.test.mjs.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startMock, mockFor, startProxy, request, chat, chatBody } from './lib/setup.mjs';
import { cli } from './lib/cli.mjs';
import { flood } from './lib/load.mjs';

async function getStats(proxy) {
  const r = await request(proxy, { path: '/_promptcache/stats' });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  return r.json;
}

/** Every request for `prompts`, `concurrency` at a time; resolves to the responses in order
 * (a request that failed is {status: 0, text: why}). */
async function askAll(proxy, prompts, concurrency = 16) {
  const out = new Array(prompts.length);
  let next = 0;
  const worker = async () => {
    while (next < prompts.length) {
      const i = next++;
      out[i] = await chat(proxy, prompts[i]).catch((err) => ({ status: 0, text: `request failed: ${err.message}` }));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}

/** A proxy with `n` entries (prompt(i) for i < n), stopped; resolves to {proxy, keys, answers}. */
async function filledDb(t, n, prompt) {
  const mock = await mockFor(t, startMock);
  const proxy = await startProxy(t, { upstream: mock });
  // one at a time, so that every run lays out the file the same way
  const answers = await askAll(proxy, Array.from({ length: n }, (_, i) => prompt(i)), 1);
  for (const r of answers) assert.equal(r.status, 200);
  assert.equal((await getStats(proxy)).cache.entries, n);
  await proxy.stop();
  return { mock, proxy, keys: answers.map((r) => r.key), answers };
}

const oneLine = (s) => s.trim().length > 0 && !s.trim().includes('\n');

// ---- a full disk -----------------------------------------------------------

// data.mdb may grow to `fsize` bytes (ulimit -f): room for ~100 entries of the
// 800. With a limit on a page boundary, a write that starts at the limit fails
// with EFBIG (and raises SIGXFSZ, which used to kill the proxy).
async function fillPastLimit(t, fsize) {
  const mock = await mockFor(t, startMock);
  const proxy = await startProxy(t, { upstream: mock, wrap: ['prlimit', `--fsize=${fsize}`] });
  const prompt = (i) => `fill ${i} ${'x'.repeat(200)}`;
  const N = 800;
  const counts = await flood(proxy, { n: N, request: (i) => ({ body: chatBody(prompt(i)) }) });
  return { mock, proxy, prompt, N, counts };
}

test('disk full (a file-size limit): every miss is answered, store failures are counted and logged, stored entries still hit', async (t) => {
  const FSIZE = 74 * 4096;
  const { mock, proxy, prompt, N, counts } = await fillPastLimit(t, FSIZE);
  assert.deepEqual(counts, { '200 MISS': N }, 'every request answered');
  assert.equal(mock.count(), N);
  const s = await getStats(proxy);
  assert.ok(s.cache.store_failures > 0, `store failures counted: ${JSON.stringify(s.cache)}`);
  assert.ok(s.cache.entries > 0 && s.cache.entries < N, `some entries stored: ${JSON.stringify(s.cache)}`);
  assert.ok(fs.statSync(path.join(proxy.dbDir, 'data.mdb')).size <= FSIZE);
  assert.match(proxy.stderr, /store failed for key [0-9a-f]{32}: no space left/);
  // what was stored is served; what was not goes upstream and is answered
  const ex = await cli(['export', '--db', proxy.dbDir]);
  assert.equal(ex.code, 0, ex.stderr);
  const stored = new Set(ex.text.trim().split('\n').map((l) => JSON.parse(l).request.body.messages[0].content));
  assert.equal(stored.size, s.cache.entries);
  for (const p of [...stored].slice(0, 10)) assert.equal((await chat(proxy, p)).cache, 'HIT', `stored: ${p.slice(0, 12)}`);
  const missing = Array.from({ length: N }, (_, i) => prompt(i)).filter((p) => !stored.has(p)).slice(0, 10);
  for (const p of missing) {
    const r = await chat(proxy, p);
    assert.equal(r.status, 200);
    assert.equal(r.cache, 'MISS', `not stored: ${p.slice(0, 12)}`);
  }
  assert.equal((await request(proxy, { path: '/_promptcache/health' })).status, 200);
  const m = await request(proxy, { path: '/_promptcache/metrics' });
  assert.match(m.text, /^promptcache_store_failures_total [1-9]\d*$/m);
});

// LMDB reports a write cut short by the limit (a short pwrite) as EIO; the
// proxy tells a full disk from other I/O errors by looking at the file.
test('disk full at a limit inside a page: the store failures are logged as a full disk, not as I/O errors', async (t) => {
  const { proxy, counts, N } = await fillPastLimit(t, 300000);
  assert.deepEqual(counts, { '200 MISS': N });
  assert.match(proxy.stderr, /store failed for key [0-9a-f]{32}: no space left/);
  assert.doesNotMatch(proxy.stderr, /store failed for key [0-9a-f]{32}: I\/O error/);
});

// ---- a read-only database directory ----------------------------------------

test('a database the user may read but not write: read commands work, purge and serve refuse in one line', async (t) => {
  const { mock, proxy, keys } = await filledDb(t, 3, (i) => `read only ${i}`);
  let wrap = [];
  if (process.getuid && process.getuid() === 0) {
    // root may write anywhere: run the commands as nobody, on a tree nobody can read but not write
    wrap = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    fs.chmodSync(proxy.tmpDir, 0o755);
    fs.chmodSync(proxy.dbDir, 0o755);
    for (const f of fs.readdirSync(proxy.dbDir)) fs.chmodSync(path.join(proxy.dbDir, f), 0o644);
  } else {
    fs.chmodSync(proxy.dbDir, 0o555);
    for (const f of fs.readdirSync(proxy.dbDir)) fs.chmodSync(path.join(proxy.dbDir, f), 0o444);
  }
  try {
    await readOnlyChecks(proxy, mock, keys, wrap);
  } finally {
    fs.chmodSync(proxy.dbDir, 0o755); // so that the tmp dir can be removed
  }
});

async function readOnlyChecks(proxy, mock, keys, wrap) {
  const db = ['--db', proxy.dbDir];
  const run = async (args, opts = {}) => {
    const r = await cli([...args, ...db], { wrap, timeoutMs: 5000, ...opts });
    assert.equal(r.signal, null, `${args[0]}: killed by ${r.signal}; stderr: ${r.stderr}`);
    return r;
  };
  const ok = async (args) => {
    const r = await run(args);
    assert.equal(r.code, 0, `promptcache ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r;
  };

  assert.match((await ok(['stats'])).text, /^entries\s+3$/m);
  assert.equal(JSON.parse((await ok(['stats', '--json'])).text).entries, 3);
  const ex = await ok(['export']);
  assert.deepEqual(ex.text.trim().split('\n').map((l) => JSON.parse(l).key).sort(), [...keys].sort());
  assert.match((await ok(['verify'])).text, /3 entries OK/);
  const ins = await ok(['inspect', keys[0]]);
  assert.match(ins.text, new RegExp(keys[0]));
  assert.match(ins.text, /read only 0/);

  const purge = await run(['purge', '--all']);
  assert.notEqual(purge.code, 0, 'purge cannot succeed on a database it cannot write');
  assert.ok(oneLine(purge.stderr), `one line: ${JSON.stringify(purge.stderr)}`);
  assert.match(purge.stderr, /read-only|permission/i);
  const serve = await run(['serve', '--listen', '127.0.0.1:0', '--upstream', mock.url], { timeoutMs: 3000 });
  assert.notEqual(serve.code, 0, `serve on a read-only database: ${serve.stderr}`);
  assert.ok(oneLine(serve.stderr), `one line: ${JSON.stringify(serve.stderr)}`);
  assert.match(serve.stderr, /database/);
  // nothing was purged
  const again = await cli(['stats', '--json', ...db]);
  assert.equal(JSON.parse(again.text).entries, 3);
}

// ---- a truncated data.mdb --------------------------------------------------

test('a truncated data.mdb: every command and serve exit 1 with one line saying so', async (t) => {
  const { mock, proxy, keys } = await filledDb(t, 300, (i) => `entry ${i} ${'y'.repeat(300)}`);
  const file = path.join(proxy.dbDir, 'data.mdb');
  fs.truncateSync(file, Math.floor(fs.statSync(file).size / 3));
  for (const args of [['stats'], ['stats', '--json'], ['verify'], ['export'], ['inspect', keys[0]],
    ['serve', '--listen', '127.0.0.1:0', '--upstream', mock.url]]) {
    const r = await cli([...args, '--db', proxy.dbDir], { timeoutMs: 3000 });
    const what = `promptcache ${args[0]}`;
    assert.equal(r.signal, null, `${what}: killed by ${r.signal}; stderr: ${r.stderr}`);
    assert.equal(r.code, 1, `${what} exited ${r.code}: ${r.stderr}`);
    assert.ok(oneLine(r.stderr), `${what}: one line: ${JSON.stringify(r.stderr)}`);
    assert.match(r.stderr, /corrupt|truncated/, what);
    assert.equal(r.text, '', `${what} printed nothing on stdout`);
  }
});

// ---- bit flips in data.mdb -------------------------------------------------

/** mulberry32: a small seeded PRNG, so that every run flips the same bits. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Fill a database with N entries, then for each seed flip 64 random bits of a
 * copy of its data.mdb (past the two meta pages) and check the commands and a
 * proxy on it. Filling and asking one request at a time keeps every run the
 * same: the file's layout, the flipped bits, the order of the writes.
 */
async function flipAndCheck(t, seeds) {
  const N = 300;
  const prompt = (i) => `entry ${i} ${'y'.repeat(300)}`;
  const prompts = Array.from({ length: N }, (_, i) => prompt(i));
  const { proxy, answers } = await filledDb(t, N, prompt);
  const orig = fs.readFileSync(path.join(proxy.dbDir, 'data.mdb'));
  const PAGE = 4096;
  for (const seed of seeds) {
    const dir = path.join(proxy.tmpDir, `flipped-${seed}`);
    fs.mkdirSync(dir);
    const buf = Buffer.from(orig);
    const rnd = prng(seed);
    for (let i = 0; i < 64; i++) {
      const off = 2 * PAGE + Math.floor(rnd() * (buf.length - 2 * PAGE));
      buf[off] ^= 1 << Math.floor(rnd() * 8);
    }
    fs.writeFileSync(path.join(dir, 'data.mdb'), buf);

    const v = await cli(['verify', '--db', dir]);
    assert.equal(v.signal, null, `seed ${seed}: verify killed by ${v.signal}`);
    assert.ok(v.code === 0 || v.code === 1, `seed ${seed}: verify exited ${v.code}: ${v.stderr}`);
    if (v.code === 0) assert.match(v.text, new RegExp(`${N} entries OK`));
    else assert.match(v.text + v.stderr, /BAD [0-9a-f]{32}|corrupt/, `seed ${seed}: verify names the damage`);
    for (const args of [['stats'], ['stats', '--json'], ['export']]) {
      const r = await cli([...args, '--db', dir]);
      assert.equal(r.signal, null, `seed ${seed}: ${args.join(' ')} killed by ${r.signal}`);
      assert.ok(r.code === 0 || r.code === 1, `seed ${seed}: ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      if (r.code) assert.ok(oneLine(r.stderr), `seed ${seed}: ${args.join(' ')}: ${JSON.stringify(r.stderr)}`);
    }

    const mock = await mockFor(t, startMock);
    const p = await startProxy(t, { upstream: mock, dbDir: dir });
    const got = await askAll(p, prompts, 1);
    let hits = 0;
    got.forEach((r, i) => {
      const where = `seed ${seed}, prompt ${i}${p.exitStatus ? ` (the proxy died: ${JSON.stringify(p.exitStatus)}; ${p.stderr.trim().split('\n').pop()})` : ''}`;
      assert.equal(r.status, 200, `${where}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.ok(r.cache === 'HIT' || r.cache === 'MISS', `${where}: ${r.cache}`);
      if (r.cache === 'HIT') {
        hits++;
        assert.equal(r.text, answers[i].text, `${where}: a HIT served damaged bytes`);
      }
    });
    assert.equal(mock.count(), N - hits, `seed ${seed}: the misses went upstream`);
    await p.stop();
  }
}

// PC_FLIP_SEEDS=1,2,... tries other seeds (seeds 4 and 101 are the tests below).
test('bit flips in data.mdb: no command dies by a signal, verify names the damage, serve answers every request', async (t) => {
  await flipAndCheck(t, (process.env.PC_FLIP_SEEDS || '1,2,3,5,6').split(',').map(Number));
});

// LMDB checks its own invariants with assert(), which calls abort(): on a
// damaged page the writer thread's access-time batch (pc_cache_touch_batch)
// trips one. The fault guard takes LMDB's assert callback too
// (mdb_env_set_assert), so the write fails as corrupt data instead.
for (const [seed, where] of [[4, "'root > 1' failed in mdb_page_search()"], [101, "'mp->mp_pgno != pgno' failed in mdb_page_touch()"]]) {
  test(`bit flips in data.mdb that LMDB asserts on while writing (seed ${seed}: ${where}): serve still answers every request`, async (t) => {
    await flipAndCheck(t, [seed]);
  });
}
