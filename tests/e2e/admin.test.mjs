// admin.test.mjs — the admin endpoints under /_promptcache/ (SPEC §7): stats JSON,
// Prometheus metrics (checked with `promtool check metrics`), tokens and money
// saved, the --admin-token rules, POST /_promptcache/purge, lifetime totals
// across restarts, and the live dashboard loaded in headless Chromium.
//
// Tools: promtool (Debian package `prometheus`) and chromium (Debian package
// `chromium`). The before hook installs a missing one with apt-get when we are
// root; a test that needs a tool that could not be installed FAILS, it does
// not skip.
//
// Not covered here: "listening on a non-loopback address without a token serves
// health only" — these tests only ever listen on loopback addresses; that rule
// is unit-tested in C (see the skipped test below).
import test, { before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import crypto from 'node:crypto';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setup, request, chat, sleep, HEX32, BIN, childEnv } from './lib/setup.mjs';
import { startRedis } from './lib/redis.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const DASHBOARD_FILE = path.join(ROOT, 'assets/dashboard.html');
const SCREENSHOT = path.join(ROOT, 'build/dashboard.png');
const ONE_GIB = 1024 * 1024 * 1024;
const OUTCOMES = ['hit', 'miss', 'coalesced', 'bypass', 'refresh', 'stale', 'replay_miss'];
const ERROR_CLASSES = ['upstream_connect', 'upstream_timeout', 'upstream_protocol', 'upstream_5xx', 'upstream_429', 'upstream_4xx', 'client'];

// ---------------------------------------------------------------------------
// Tools: promtool and chromium, installed by apt-get when missing (root only).

const tools = {};

function which(cmd) {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

function aptInstall(pkg) {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args) => spawnSync('apt-get', args, { env, encoding: 'utf8', timeout: 20 * 60 * 1000, maxBuffer: 64 << 20 });
  let r = run(['install', '-y', '-q', pkg]);
  if (r.status !== 0) {
    run(['update', '-q']);
    r = run(['install', '-y', '-q', pkg]);
  }
  return r.status === 0 ? null : `apt-get install -y ${pkg} failed (status ${r.status}${r.error ? `, ${r.error.message}` : ''}):\n${String(r.stderr || '').slice(-2000)}`;
}

/** {path} when the tool is there (installing it if needed and possible), else {error}. */
function ensureTool(name, find, pkg) {
  let p = find();
  if (p) return { path: p };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { error: `${name} is missing and we are not root: run \`sudo apt-get install -y ${pkg}\`` };
  }
  const err = aptInstall(pkg);
  p = find();
  if (p) return { path: p };
  return { error: err || `${name} still missing after apt-get install -y ${pkg}` };
}

before(() => {
  tools.promtool = ensureTool('promtool', () => which('promtool'), 'prometheus');
  tools.chromium = ensureTool('chromium', () => (fs.existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : null), 'chromium');
});

function needTool(name) {
  const t = tools[name];
  assert.ok(t && t.path, `${name} is required for this test: ${t ? t.error : 'before hook did not run'}`);
  return t.path;
}

// ---------------------------------------------------------------------------
// Prices: a test table with large prices (so that the six decimals the proxy
// prints are plenty) and a currency that is not the default.

const TEST_PRICES = {
  as_of: '2026-11-01',
  currency: 'EUR',
  note: 'test prices per million tokens',
  models: [
    { match: 'gpt-4o-mini*', input: 150, output: 600, cached_input: 75 },
    { match: 'gpt-4o*', input: 2500, output: 10000, cached_input: 1250 },
    { match: '*-nocached', input: 1000, output: 3000 },
  ],
};

function writePrices(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'promptcache-prices-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'prices.json');
  fs.writeFileSync(file, JSON.stringify(TEST_PRICES, null, 2));
  return file;
}

/** A glob with `*` only (all the price tables here use) as a RegExp. */
const globRe = (glob) => new RegExp(`^${glob.split('*').map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);

/** First matching glob wins. */
function priceFor(model, table = TEST_PRICES) {
  return table.models.find((m) => globRe(m.match).test(model)) || null;
}

/** Money for token counts, per million tokens; cached input is part of input. */
function cost(model, { input, output, cached_input: cached }, table = TEST_PRICES) {
  const p = priceFor(model, table);
  if (!p) return 0;
  const cachedPrice = p.cached_input === undefined ? p.input : p.cached_input;
  return ((input - cached) * p.input + cached * cachedPrice + output * p.output) / 1e6;
}

function assertMoney(got, want, what) {
  assert.equal(typeof got, 'number', `${what}: a number, got ${JSON.stringify(got)}`);
  assert.ok(Math.abs(got - want) <= 1e-6 + want * 1e-9, `${what}: got ${got}, want ${want}`);
}

// ---------------------------------------------------------------------------
// Helpers.

const auth = (token) => (token ? { authorization: `Bearer ${token}` } : {});

async function getStats(proxy, token) {
  const r = await request(proxy, { path: '/_promptcache/stats', headers: auth(token) });
  assert.equal(r.status, 200, `GET /_promptcache/stats: ${r.status} ${r.text.slice(0, 300)}`);
  assert.match(String(r.headers['content-type']), /^application\/json/i);
  return r.json;
}

async function getMetrics(proxy, token) {
  const r = await request(proxy, { path: '/_promptcache/metrics', headers: auth(token) });
  assert.equal(r.status, 200, `GET /_promptcache/metrics: ${r.status} ${r.text.slice(0, 300)}`);
  assert.match(String(r.headers['content-type']), /^text\/plain/i, `content-type of /metrics: ${r.headers['content-type']}`);
  assert.match(String(r.headers['content-type']), /version=0\.0\.4/, `Prometheus text format version in ${r.headers['content-type']}`);
  return r.text;
}

function purge(proxy, body, token) {
  return request(proxy, { method: 'POST', path: '/_promptcache/purge', body, headers: auth(token) });
}

async function purged(proxy, body, n, token) {
  const r = await purge(proxy, body, token);
  assert.equal(r.status, 200, `purge ${JSON.stringify(body)}: ${r.status} ${r.text}`);
  assert.match(String(r.headers['content-type']), /^application\/json/i);
  assert.deepEqual(r.json, { purged: n }, `purge ${JSON.stringify(body)}`);
}

/** Parse Prometheus text into Map("name{k="v",...}" -> number), labels sorted. */
function parseProm(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    assert.ok(m, `unparsable metrics line: ${line}`);
    const labels = [];
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[2]))) labels.push([l[1], l[2]]);
    }
    const key = promKey(m[1], Object.fromEntries(labels));
    assert.ok(!out.has(key), `duplicate series ${key}`);
    out.set(key, Number(m[3]));
  }
  return out;
}

function promKey(name, labels = {}) {
  const ls = Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`).join(',');
  return ls ? `${name}{${ls}}` : name;
}

function promGet(map, name, labels) {
  const key = promKey(name, labels);
  assert.ok(map.has(key), `metric ${key} is exported`);
  return map.get(key);
}

function promtoolCheck(text) {
  const bin = needTool('promtool');
  const r = spawnSync(bin, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `promtool check metrics failed (status ${r.status}):\n${r.stdout}${r.stderr}\n--- metrics ---\n${text}`);
}

function tally(rs) {
  const t = {};
  for (const r of rs) t[r.cache] = (t[r.cache] || 0) + 1;
  return t;
}

function rowOf(stats, model, route = '/') {
  const rows = stats.by_route_model.filter((r) => r.model === model && r.route === route);
  assert.equal(rows.length, 1, `one by_route_model row for ${route} ${model}: ${JSON.stringify(stats.by_route_model)}`);
  return rows[0];
}

/**
 * Run a scripted mix of traffic. Every response is kept with the model it was
 * for, so expectations can be computed from what actually came back: tokens
 * saved = the usage block (as the mock produced it) of every response that
 * did not cost an upstream call of its own (HIT and COALESCED).
 */
async function scriptedMix(proxy, mock) {
  const all = [];
  const send = async (content, model, { headers = {} } = {}) => {
    const r = await chat(proxy, content, { extra: { model }, headers });
    assert.equal(r.status, 200, `chat ${content}: ${r.status} ${r.text.slice(0, 300)}`);
    r.model = model;
    all.push(r);
    return r;
  };
  // Five distinct requests: MISS each. Two report cached prompt tokens.
  const first = {};
  first.a = await send('alpha', 'gpt-4o-mini', { headers: { 'x-mock-behavior': 'cached=5' } });
  first.b = await send('bravo', 'gpt-4o-mini');
  first.c = await send('charlie', 'gpt-4o-2024-08-06');
  first.d = await send('delta', 'priced-nocached', { headers: { 'x-mock-behavior': 'cached=4' } });
  first.e = await send('echo', 'unpriced-model');
  for (const r of Object.values(first)) assert.equal(r.cache, 'MISS');
  assert.equal(first.a.json.usage.prompt_tokens_details.cached_tokens, 5, 'the mock reports cached prompt tokens');
  // Eight HITs.
  const hits = [];
  for (const [c, m] of [['alpha', 'gpt-4o-mini'], ['alpha', 'gpt-4o-mini'], ['alpha', 'gpt-4o-mini'], ['bravo', 'gpt-4o-mini'],
    ['charlie', 'gpt-4o-2024-08-06'], ['charlie', 'gpt-4o-2024-08-06'], ['delta', 'priced-nocached'], ['echo', 'unpriced-model']]) {
    hits.push(await send(c, m));
  }
  for (const r of hits) assert.equal(r.cache, 'HIT', `HIT for ${r.model}`);
  // One leader (slow upstream) and two followers: MISS + 2 COALESCED.
  const before = mock.count();
  const leader = send('foxtrot', 'gpt-4o-mini', { headers: { 'x-mock-behavior': 'delay=700' } });
  await mock.waitForRequests(before + 1);
  const followers = [send('foxtrot', 'gpt-4o-mini'), send('foxtrot', 'gpt-4o-mini')];
  const lf = await Promise.all([leader, ...followers]);
  assert.deepEqual(tally(lf), { MISS: 1, COALESCED: 2 }, 'leader and followers');
  // Three BYPASS: two non-cacheable GETs, one Cache-Control: no-store.
  for (let i = 0; i < 2; i++) {
    const r = await request(proxy, { path: '/v1/models' });
    assert.equal(r.status, 200);
    assert.equal(r.cache, 'BYPASS');
    r.model = '';
    all.push(r);
  }
  const ns = await send('golf', 'gpt-4o-mini', { headers: { 'cache-control': 'no-store' } });
  assert.equal(ns.cache, 'BYPASS');
  assert.deepEqual(tally(all), { MISS: 6, HIT: 8, COALESCED: 2, BYPASS: 3 }, 'the scripted mix');
  assert.equal(mock.count(), 9, 'upstream saw the 6 misses and the 3 bypassed requests');
  return all;
}

/** What the stats must say about a scripted mix. */
function expectations(all) {
  const count = (o) => all.filter((r) => r.cache === o).length;
  const zero = () => ({ input: 0, output: 0, cached_input: 0 });
  const tokens = zero();
  const byModel = {};
  let bytes = 0;
  for (const r of all) {
    const row = (byModel[r.model] ||= { requests: 0, hit: 0, miss: 0, coalesced: 0, bypass: 0, tokens: zero() });
    row.requests++;
    row[r.cache.toLowerCase()]++;
    if (r.cache === 'HIT') bytes += r.body.length;
    if (r.cache === 'HIT' || r.cache === 'COALESCED') {
      const u = r.json.usage;
      const add = { input: u.prompt_tokens, output: u.completion_tokens, cached_input: (u.prompt_tokens_details || {}).cached_tokens || 0 };
      for (const k of Object.keys(add)) { tokens[k] += add[k]; row.tokens[k] += add[k]; }
    }
  }
  let money = 0;
  for (const [model, row] of Object.entries(byModel)) {
    row.money = cost(model, row.tokens);
    money += row.money;
  }
  const hit = count('HIT'), miss = count('MISS'), coalesced = count('COALESCED');
  return {
    hit, miss, coalesced, bypass: count('BYPASS'),
    requests: all.length,
    hitRatio: (hit + coalesced) / (hit + coalesced + miss),
    tokens, bytes, money, byModel,
  };
}

// ---------------------------------------------------------------------------

test('a scripted mix of hits, misses, coalesced and bypassed requests: /stats and /metrics show exactly those counts, tokens and money saved', async (t) => {
  const prices = writePrices(t);
  const { mock, proxy } = await setup(t, { args: ['--prices', prices] });
  const all = await scriptedMix(proxy, mock);
  const want = expectations(all);
  assert.ok(want.tokens.input > 0 && want.tokens.output > 0 && want.tokens.cached_input > 0, 'the mix saves all three kinds of tokens');

  const s = await getStats(proxy);
  assert.equal(typeof s.version, 'string');
  assert.ok(Number.isInteger(s.time) && Math.abs(s.time - Date.now() / 1000) < 60, `time is the Unix time in seconds: ${s.time}`);
  assert.ok(Number.isInteger(s.uptime_s) && s.uptime_s >= 0 && s.uptime_s < 120, `uptime_s: ${s.uptime_s}`);

  const tot = s.totals;
  assert.equal(tot.hit, want.hit, 'totals.hit');
  assert.equal(tot.miss, want.miss, 'totals.miss');
  assert.equal(tot.coalesced, want.coalesced, 'totals.coalesced');
  assert.equal(tot.bypass, want.bypass, 'totals.bypass');
  for (const o of ['refresh', 'stale', 'replay_miss']) assert.equal(tot[o], 0, `totals.${o}`);
  assert.equal(tot.errors, 0, 'totals.errors');
  assert.ok(Number.isInteger(tot.admin) && tot.admin >= 0, `totals.admin: ${tot.admin}`);
  assert.equal(tot.requests, OUTCOMES.reduce((n, o) => n + tot[o], 0) + tot.admin, 'totals.requests is the sum of the outcomes');
  assert.equal(tot.requests - tot.admin, want.requests, 'proxied requests');
  assert.ok(Math.abs(tot.hit_ratio - want.hitRatio) < 1e-4, `totals.hit_ratio ${tot.hit_ratio}, want ${want.hitRatio}`);
  assert.equal(tot.bytes_from_cache, want.bytes, 'totals.bytes_from_cache = body bytes of the HIT answers');
  assert.deepEqual(tot.tokens_saved, { ...want.tokens, total: want.tokens.input + want.tokens.output }, 'totals.tokens_saved = the mock\'s usage times the answers served without an upstream call');
  assertMoney(tot.money_saved, want.money, 'totals.money_saved');
  assert.deepEqual(s.prices, { currency: 'EUR', as_of: '2026-11-01' }, 'prices block from the price file');

  assert.deepEqual(Object.keys(s.errors).sort(), [...ERROR_CLASSES].sort(), 'error classes');
  for (const k of ERROR_CLASSES) assert.equal(s.errors[k], 0, `errors.${k}`);

  assert.equal(s.cache.entries, 6, 'cache.entries: alpha..foxtrot (no-store stored nothing)');
  assert.equal(s.cache.max_bytes, ONE_GIB, 'cache.max_bytes: the default --max-size');
  assert.ok(s.cache.bytes > 0 && s.cache.bytes <= s.cache.max_bytes, `cache.bytes: ${s.cache.bytes}`);
  assert.equal(s.cache.evictions, 0);

  for (const [name, count] of [['upstream_ms', 9], ['hit_ms', want.hit]]) {
    const h = s.latency[name];
    assert.equal(h.count, count, `latency.${name}.count`);
    assert.ok(h.sum_ms > 0, `latency.${name}.sum_ms: ${h.sum_ms}`);
    assert.ok(h.p50 > 0 && h.p50 <= h.p90 && h.p90 <= h.p99, `latency.${name} percentiles ordered: ${h.p50} ${h.p90} ${h.p99}`);
    assert.deepEqual(h.buckets[h.buckets.length - 1], ['+Inf', count], `latency.${name} +Inf bucket`);
    for (let i = 1; i < h.buckets.length; i++) {
      assert.ok(h.buckets[i][1] >= h.buckets[i - 1][1], `latency.${name} buckets are cumulative`);
      if (i < h.buckets.length - 1) assert.ok(h.buckets[i][0] > h.buckets[i - 1][0], `latency.${name} bounds increase`);
    }
  }
  assert.ok(s.latency.upstream_ms.p99 >= 700 * 0.5, `the 700 ms upstream exchange shows in upstream p99: ${s.latency.upstream_ms.p99}`);

  // Per model (all on the default route "/").
  for (const [model, w] of Object.entries(want.byModel)) {
    const row = rowOf(s, model);
    for (const o of ['hit', 'miss', 'coalesced', 'bypass']) assert.equal(row[o], w[o], `${model}: ${o}`);
    for (const o of ['refresh', 'stale', 'replay_miss']) assert.equal(row[o], 0, `${model}: ${o}`);
    assert.equal(row.requests, w.requests, `${model}: requests`);
    const lookups = w.hit + w.coalesced + w.miss;
    assert.ok(Math.abs(row.hit_ratio - (lookups ? (w.hit + w.coalesced) / lookups : 0)) < 1e-4, `${model}: hit_ratio ${row.hit_ratio}`);
    assert.deepEqual(row.tokens_saved, w.tokens, `${model}: tokens_saved`);
    assertMoney(row.money_saved, w.money, `${model}: money_saved`);
  }
  assert.equal(s.by_route_model.length, Object.keys(want.byModel).length, `rows: ${JSON.stringify(s.by_route_model.map((r) => r.model))}`);
  assert.equal(rowOf(s, 'unpriced-model').money_saved, 0, 'a model without a price saves tokens but no money');
  assert.ok(rowOf(s, 'unpriced-model').tokens_saved.input > 0);
  // first matching glob wins: gpt-4o-mini is priced as gpt-4o-mini*, not gpt-4o*
  assertMoney(rowOf(s, 'gpt-4o-mini').money_saved, cost('gpt-4o-mini', want.byModel['gpt-4o-mini'].tokens), 'gpt-4o-mini priced by the first glob');

  // Lifetime: a fresh database, so lifetime = this run.
  const life = s.lifetime;
  for (const o of OUTCOMES) assert.equal(life[o], tot[o], `lifetime.${o} on a fresh db`);
  for (const k of ERROR_CLASSES) assert.equal(life[`err_${k}`], 0, `lifetime.err_${k}`);
  assert.equal(life.bytes_from_cache, want.bytes);
  assert.equal(life.tokens_saved_input, want.tokens.input);
  assert.equal(life.tokens_saved_output, want.tokens.output);
  assert.equal(life.tokens_saved_cached_input, want.tokens.cached_input);
  assert.equal(life.evictions, 0);
  assertMoney(life.money_saved, want.money, 'lifetime.money_saved');

  // Prometheus: the same numbers, and a clean `promtool check metrics`.
  const text = await getMetrics(proxy);
  promtoolCheck(text);
  const m = parseProm(text);
  for (const o of OUTCOMES) {
    const v = { hit: want.hit, miss: want.miss, coalesced: want.coalesced, bypass: want.bypass }[o] || 0;
    assert.equal(promGet(m, 'promptcache_requests_total', { outcome: o }), v, `promptcache_requests_total{outcome="${o}"}`);
  }
  assert.ok(promGet(m, 'promptcache_requests_total', { outcome: 'admin' }) >= 1, 'admin requests are counted');
  for (const k of ERROR_CLASSES) assert.equal(promGet(m, 'promptcache_errors_total', { class: k }), 0);
  assert.equal(promGet(m, 'promptcache_cache_bytes_served_total'), want.bytes);
  assert.equal(promGet(m, 'promptcache_cache_entries'), 6);
  assert.equal(promGet(m, 'promptcache_cache_max_bytes'), ONE_GIB);
  assert.ok(promGet(m, 'promptcache_cache_size_bytes') > 0);
  assert.equal(promGet(m, 'promptcache_evictions_total'), 0);
  assert.ok(Math.abs(promGet(m, 'promptcache_hit_ratio') - want.hitRatio) < 1e-4, 'promptcache_hit_ratio');
  assert.equal(promGet(m, 'promptcache_upstream_latency_seconds_count'), 9);
  assert.equal(promGet(m, 'promptcache_upstream_latency_seconds_bucket', { le: '+Inf' }), 9);
  assert.equal(promGet(m, 'promptcache_hit_latency_seconds_count'), want.hit);
  assert.ok(Math.abs(promGet(m, 'promptcache_upstream_latency_seconds_sum') * 1000 - s.latency.upstream_ms.sum_ms) < 1, 'histogram sum in seconds');
  for (const [model, w] of Object.entries(want.byModel)) {
    for (const o of ['hit', 'miss', 'coalesced', 'bypass']) {
      assert.equal(promGet(m, 'promptcache_model_requests_total', { route: '/', model, outcome: o }), w[o], `model_requests ${model} ${o}`);
    }
    for (const k of ['input', 'output', 'cached_input']) {
      assert.equal(promGet(m, 'promptcache_tokens_saved_total', { route: '/', model, kind: k }), w.tokens[k], `tokens_saved ${model} ${k}`);
    }
    assertMoney(promGet(m, 'promptcache_money_saved_total', { route: '/', model, currency: 'EUR' }), w.money, `money_saved_total ${model}`);
  }
  assert.equal(mock.count(), 9, 'admin endpoints are never forwarded');
});

test('without a price table money_saved is null and no money metric is exported; the metrics still pass promtool', async (t) => {
  const { mock, proxy } = await setup(t);
  const r1 = await chat(proxy, 'no prices');
  const r2 = await chat(proxy, 'no prices');
  assert.deepEqual([r1.cache, r2.cache], ['MISS', 'HIT']);
  const s = await getStats(proxy);
  assert.equal(s.totals.money_saved, null, 'totals.money_saved is null without --prices');
  assert.equal(s.prices, undefined, 'no prices block without --prices');
  assert.equal(rowOf(s, 'gpt-4o-mini').money_saved, null, 'row money_saved is null without --prices');
  const u = r1.json.usage;
  assert.deepEqual(s.totals.tokens_saved, { input: u.prompt_tokens, output: u.completion_tokens, cached_input: 0, total: u.prompt_tokens + u.completion_tokens });
  const text = await getMetrics(proxy);
  promtoolCheck(text);
  assert.doesNotMatch(text, /^promptcache_money_saved_total/m);
  assert.equal(mock.count(), 1);
});

test('assets/prices.example.json is a dated price table the proxy loads; its specific globs come before general ones', async (t) => {
  const file = path.join(ROOT, 'assets/prices.example.json');
  const table = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.match(table.as_of, /^\d{4}-\d{2}-\d{2}$/, 'as_of is a date');
  assert.equal(table.currency, 'USD');
  assert.match(table.note, /check your provider's current price list/i);
  assert.ok(Array.isArray(table.models) && table.models.length >= 6);
  for (const vendor of [/^gpt-|^o\d/, /^claude-/, /^gemini-/]) assert.ok(table.models.some((m) => vendor.test(m.match)), `a ${vendor} model`);
  table.models.forEach((m, i) => {
    assert.equal(typeof m.match, 'string');
    for (const k of ['input', 'output']) assert.ok(typeof m[k] === 'number' && m[k] >= 0, `${m.match}.${k}`);
    if (m.cached_input !== undefined) assert.ok(m.cached_input >= 0 && m.cached_input <= m.input, `${m.match}.cached_input`);
    // an entry that an earlier glob already covers could never match
    const sample = m.match.replace(/\*/g, 'x');
    const earlier = table.models.slice(0, i).find((e) => globRe(e.match).test(sample));
    assert.equal(earlier, undefined, `${m.match} is shadowed by the earlier ${earlier && earlier.match}`);
  });

  const { mock, proxy } = await setup(t, { args: ['--prices', file] });
  const models = ['gpt-4o-mini-2024-07-18', 'gpt-4o-2024-11-20', 'claude-sonnet-4-5-20250929', 'gemini-2.5-flash-lite', 'no-such-model'];
  const usage = {};
  for (const model of models) {
    const r1 = await chat(proxy, 'example prices', { extra: { model } });
    const r2 = await chat(proxy, 'example prices', { extra: { model } });
    assert.deepEqual([r1.cache, r2.cache], ['MISS', 'HIT'], model);
    const u = r1.json.usage;
    usage[model] = { input: u.prompt_tokens, output: u.completion_tokens, cached_input: 0 };
  }
  const s = await getStats(proxy);
  assert.deepEqual(s.prices, { currency: 'USD', as_of: table.as_of });
  let total = 0;
  for (const model of models) {
    const want = cost(model, usage[model], table);
    total += want;
    assertMoney(rowOf(s, model).money_saved, want, `${model} priced by ${(priceFor(model, table) || {}).match}`);
  }
  assert.equal(priceFor('gpt-4o-mini-2024-07-18', table).match, 'gpt-4o-mini*');
  assert.ok(rowOf(s, 'gpt-4o-2024-11-20').money_saved > 10 * rowOf(s, 'gpt-4o-mini-2024-07-18').money_saved, 'gpt-4o is not priced as gpt-4o-mini');
  assertMoney(s.totals.money_saved, total, 'totals.money_saved');
  assert.equal(mock.count(), models.length);
});

test('--admin-token: stats, metrics and purge need "Authorization: Bearer <token>"; health and the dashboard page never do', async (t) => {
  const token = `T-${crypto.randomBytes(12).toString('hex')}`;
  const { mock, proxy } = await setup(t, { args: ['--admin-token', token] });

  // Proxied traffic does not need the admin token.
  const r1 = await chat(proxy, 'guarded');
  assert.equal(r1.cache, 'MISS');

  for (const headers of [{}, auth('wrong'), { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` }, { authorization: token }, { authorization: `Bearer ${token}x` }]) {
    const h = await request(proxy, { path: '/_promptcache/health', headers });
    assert.equal(h.status, 200, `health needs no token (${JSON.stringify(headers)})`);
    assert.deepEqual(h.json, { status: 'ok' });
  }

  // The dashboard page holds no data and a browser cannot send a Bearer
  // header when opening it: it is served without the token (its data is not).
  const page = await request(proxy, { path: '/_promptcache/' });
  assert.equal(page.status, 200, 'the dashboard page needs no token');
  assert.ok(page.body.equals(fs.readFileSync(DASHBOARD_FILE)));

  const endpoints = [
    { method: 'GET', path: '/_promptcache/stats' },
    { method: 'GET', path: '/_promptcache/metrics' },
    { method: 'POST', path: '/_promptcache/purge', body: { all: true } },
  ];
  const refusals = [
    ['no Authorization', {}],
    ['a wrong token', auth('wrong')],
    ['the token with a suffix', auth(`${token}x`)],
    ['a prefix of the token', auth(token.slice(0, -1))],
    ['the token without the Bearer scheme', { authorization: token }],
    ['Basic credentials', { authorization: `Basic ${Buffer.from(`admin:${token}`).toString('base64')}` }],
  ];
  for (const ep of endpoints) {
    for (const [why, headers] of refusals) {
      const r = await request(proxy, { ...ep, headers });
      assert.equal(r.status, 401, `${ep.method} ${ep.path} with ${why}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.match(String(r.headers['content-type']), /^application\/json/i, `401 is JSON (${ep.path})`);
      const j = r.json;
      assert.equal(j.error.type, 'promptcache_error', r.text);
      assert.equal(typeof j.error.code, 'string');
      assert.ok(j.error.message.length > 0);
      assert.ok(!r.text.includes(token), 'the 401 never echoes the token');
    }
    // The token in the query string is not a credential.
    const q = await request(proxy, { ...ep, path: `${ep.path}?token=${token}` });
    assert.equal(q.status, 401, `${ep.path}?token=... is refused`);
  }
  // The refused purge purged nothing.
  assert.equal((await chat(proxy, 'guarded')).cache, 'HIT', 'unauthorized purge left the entry');

  // With the token.
  const s = await request(proxy, { path: '/_promptcache/stats', headers: auth(token) });
  assert.equal(s.status, 200);
  assert.equal(s.json.totals.hit, 1);
  assert.equal(s.json.totals.miss, 1);
  const m = await request(proxy, { path: '/_promptcache/metrics', headers: auth(token) });
  assert.equal(m.status, 200);
  assert.match(m.text, /^promptcache_requests_total\{outcome="hit"\} 1$/m);
  const d = await request(proxy, { path: '/_promptcache/', headers: { authorization: `bearer ${token}` } });
  assert.equal(d.status, 200, 'the auth scheme is case-insensitive');
  assert.match(String(d.headers['content-type']), /^text\/html/i);
  assert.ok(d.body.equals(fs.readFileSync(DASHBOARD_FILE)), 'the dashboard is assets/dashboard.html, served as is');
  await purged(proxy, { all: true }, 1, token);
  assert.equal((await chat(proxy, 'guarded')).cache, 'MISS', 'the authorized purge removed the entry');

  const nf = await request(proxy, { path: '/_promptcache/nope', headers: auth(token) });
  assert.equal(nf.status, 404, 'unknown admin endpoint');
  assert.equal(mock.count(), 2, 'no admin request reached upstream');
});

test('a 401 from an admin endpoint carries WWW-Authenticate: Bearer (RFC 9110 §11.6.1, §15.5.2)', async (t) => {
  const { proxy } = await setup(t, { args: ['--admin-token', 'sekrit'] });
  for (const p of ['/_promptcache/stats', '/_promptcache/metrics']) {
    const r = await request(proxy, { path: p });
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate'] || ''), /^Bearer(\s|$)/i, `WWW-Authenticate on ${p}: ${r.headers['www-authenticate']}`);
  }
});


test('POST /_promptcache/purge by key, namespace, age and all answers {"purged":N} and the entries are gone', async (t) => {
  const { mock, proxy } = await setup(t);
  const ns = (name) => ({ headers: { 'x-promptcache-namespace': name } });
  const entries = async () => (await getStats(proxy)).cache.entries;

  const a = await chat(proxy, 'purge-a');
  const b = await chat(proxy, 'purge-b');
  const x1 = await chat(proxy, 'purge-x1', ns('x'));
  const x2 = await chat(proxy, 'purge-x2', ns('x'));
  for (const r of [a, b, x1, x2]) assert.equal(r.cache, 'MISS');
  assert.match(a.key, HEX32);
  assert.equal(await entries(), 4);

  // by key
  await purged(proxy, { key: a.key }, 1);
  assert.equal(await entries(), 3);
  await purged(proxy, { key: a.key }, 0);
  await purged(proxy, { key: '0123456789abcdef0123456789abcdef' }, 0);
  assert.equal((await chat(proxy, 'purge-b')).cache, 'HIT', 'other keys stay');
  assert.equal((await chat(proxy, 'purge-x1', ns('x'))).cache, 'HIT');
  assert.equal((await chat(proxy, 'purge-a')).cache, 'MISS', 'the purged key is gone');

  // by namespace
  await purged(proxy, { namespace: 'nobody' }, 0);
  await purged(proxy, { namespace: 'x' }, 2);
  assert.equal(await entries(), 2);
  assert.equal((await chat(proxy, 'purge-b')).cache, 'HIT', 'the default namespace stays');
  assert.equal((await chat(proxy, 'purge-a')).cache, 'HIT');
  assert.equal((await chat(proxy, 'purge-x1', ns('x'))).cache, 'MISS', 'namespace x is gone');
  assert.equal((await chat(proxy, 'purge-x2', ns('x'))).cache, 'MISS');

  // by age: everything stored so far is > 1 s old once a fresh entry exists
  await sleep(2100);
  const fresh = await chat(proxy, 'purge-fresh');
  assert.equal(fresh.cache, 'MISS');
  assert.equal(await entries(), 5);
  await purged(proxy, { older_than: '1s' }, 4);
  assert.equal(await entries(), 1);
  assert.equal((await chat(proxy, 'purge-fresh')).cache, 'HIT', 'a young entry stays');
  assert.equal((await chat(proxy, 'purge-b')).cache, 'MISS', 'old entries are gone');

  // all
  assert.equal(await entries(), 2);
  await purged(proxy, { all: true }, 2);
  assert.equal(await entries(), 0);
  assert.equal((await chat(proxy, 'purge-fresh')).cache, 'MISS');
  assert.equal((await chat(proxy, 'purge-b')).cache, 'MISS');
  await purged(proxy, { all: true }, 2);
  await purged(proxy, { all: true }, 0);

  // refused selectors: 400 JSON, nothing purged
  await chat(proxy, 'purge-keep');
  for (const body of [{}, { key: 'xyz' }, { key: 'A'.repeat(32) + '0' }, { all: false }, { all: true, namespace: 'x' },
    { key: a.key, all: true }, { older_than: 'soon' }, [], 'not json']) {
    const r = await purge(proxy, body);
    assert.equal(r.status, 400, `purge ${JSON.stringify(body)} is refused: ${r.status} ${r.text}`);
    assert.match(String(r.headers['content-type']), /^application\/json/i);
    assert.equal(r.json.error.type, 'promptcache_error');
  }
  const g = await request(proxy, { path: '/_promptcache/purge' });
  assert.equal(g.status, 405, `GET /_promptcache/purge: ${g.status}`);
  assert.equal((await chat(proxy, 'purge-keep')).cache, 'HIT', 'refused purges purged nothing');
  assert.equal(await entries(), 1);
  assert.ok(mock.requests.every((r) => !r.path.startsWith('/_promptcache')), 'purge never reaches upstream');
});

test('lifetime totals survive a restart while this run\'s totals start again; `promptcache stats --db DIR --json` prints them offline', async (t) => {
  const prices = writePrices(t);
  const { mock, proxy } = await setup(t, { args: ['--prices', prices] });
  const a1 = await chat(proxy, 'lifetime');
  const a2 = await chat(proxy, 'lifetime');
  const a3 = await chat(proxy, 'lifetime');
  const b1 = await chat(proxy, 'lifetime-b');
  const by = await request(proxy, { path: '/v1/models' });
  assert.deepEqual([a1, a2, a3, b1, by].map((r) => r.cache), ['MISS', 'HIT', 'HIT', 'MISS', 'BYPASS']);
  const u = a1.json.usage;
  const one = { input: u.prompt_tokens, output: u.completion_tokens, cached_input: 0 };
  const times = (n) => ({ input: one.input * n, output: one.output * n, cached_input: 0 });

  const s1 = await getStats(proxy);
  assert.equal(s1.totals.hit, 2);
  assert.equal(s1.lifetime.hit, 2);

  await proxy.restart();
  const s2 = await getStats(proxy);
  assert.equal(s2.totals.hit, 0, 'this run\'s hits start at 0');
  assert.equal(s2.totals.miss, 0);
  assert.equal(s2.totals.bypass, 0);
  assert.deepEqual(s2.totals.tokens_saved, { input: 0, output: 0, cached_input: 0, total: 0 });
  assertMoney(s2.totals.money_saved, 0, 'totals.money_saved after restart');
  assert.equal(s2.lifetime.hit, 2, 'lifetime.hit keeps the earlier hits');
  assert.equal(s2.lifetime.miss, 2);
  assert.equal(s2.lifetime.bypass, 1);
  assert.equal(s2.lifetime.coalesced, 0);
  assert.ok(s2.lifetime.admin >= 1, `lifetime.admin counts the earlier stats request: ${s2.lifetime.admin}`);
  assert.equal(s2.lifetime.bytes_from_cache, a2.body.length + a3.body.length);
  assert.equal(s2.lifetime.tokens_saved_input, times(2).input);
  assert.equal(s2.lifetime.tokens_saved_output, times(2).output);
  assertMoney(s2.lifetime.money_saved, cost('gpt-4o-mini', times(2)), 'lifetime.money_saved after restart');
  assert.equal(s2.cache.entries, 2, 'entries persist');

  const a4 = await chat(proxy, 'lifetime');
  assert.equal(a4.cache, 'HIT');
  const s3 = await getStats(proxy);
  assert.equal(s3.totals.hit, 1);
  assert.equal(s3.lifetime.hit, 3, 'lifetime = earlier runs + this run');
  assert.equal(s3.lifetime.tokens_saved_input, times(3).input);
  assertMoney(s3.lifetime.money_saved, cost('gpt-4o-mini', times(3)), 'lifetime.money_saved');
  assert.equal(mock.count(), 3);

  await proxy.stop();
  const off = spawnSync(BIN, ['stats', '--db', proxy.dbDir, '--json'], { env: childEnv(), encoding: 'utf8', timeout: 20000 });
  assert.equal(off.status, 0, `promptcache stats --db DIR --json: status ${off.status}\nstdout: ${off.stdout}\nstderr: ${off.stderr}`);
  let j;
  assert.doesNotThrow(() => { j = JSON.parse(off.stdout); }, `offline stats prints JSON: ${off.stdout.slice(0, 500)}`);
  assert.equal(typeof j.lifetime, 'object', `offline stats has a lifetime member: ${off.stdout.slice(0, 500)}`);
  assert.equal(j.lifetime.hit, 3);
  assert.equal(j.lifetime.miss, 2);
  assert.equal(j.lifetime.bypass, 1);
  assert.equal(j.lifetime.tokens_saved_input, times(3).input);
  assert.equal(j.lifetime.tokens_saved_output, times(3).output);
  assert.equal(j.lifetime.bytes_from_cache, a2.body.length + a3.body.length + a4.body.length);
});

// ---------------------------------------------------------------------------
// The dashboard in headless Chromium.

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function runChromium(t, args) {
  const bin = needTool('chromium');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'promptcache-chromium-'));
  return new Promise((resolve) => {
    execFile(bin, [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, ...args],
      { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120000, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        fs.rmSync(profile, { recursive: true, force: true });
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, err, stdout, stderr });
      });
  });
}

async function dumpDom(t, url) {
  const r = await runChromium(t, ['--dump-dom', '--virtual-time-budget=5000', url]);
  assert.equal(r.code, 0, `chromium --dump-dom ${url}: ${r.err && r.err.message}\n${r.stderr.slice(-2000)}`);
  assert.match(r.stdout, /<html/i, 'chromium printed the DOM');
  return r.stdout;
}

/** Elements with an id: Map(id -> {text, attrs}). Text is the element's first text run. */
function domIds(html) {
  const out = new Map();
  const re = /<([a-zA-Z][a-zA-Z0-9]*)((?:\s+[^\s=>]+(?:="[^"]*")?)*)\s*\/?>([^<]*)/g;
  let m;
  while ((m = re.exec(html))) {
    const attrs = {};
    const are = /([^\s=>]+)(?:="([^"]*)")?/g;
    let a;
    while ((a = are.exec(m[2]))) attrs[a[1]] = a[2] === undefined ? '' : a[2];
    if (attrs.id) out.set(attrs.id, { text: decodeEntities(m[3]).trim(), attrs });
  }
  return out;
}

function decodeEntities(s) {
  return s.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&nbsp;/g, '\u00a0');
}

function bodyAttrs(html) {
  const m = /<body((?:\s+[^\s=>]+(?:="[^"]*")?)*)\s*>/i.exec(html);
  assert.ok(m, 'the DOM has a body');
  const attrs = {};
  const re = /([^\s=>]+)(?:="([^"]*)")?/g;
  let a;
  while ((a = re.exec(m[1]))) attrs[a[1]] = a[2] === undefined ? '' : a[2];
  return attrs;
}

function statOf(ids, id) {
  const e = ids.get(id);
  assert.ok(e, `the dashboard has an element #${id}`);
  assert.ok('data-value' in e.attrs, `#${id} has a data-value`);
  return e;
}

function assertIntStat(ids, id, want) {
  const e = statOf(ids, id);
  assert.equal(Number(e.attrs['data-value']), want, `#${id} data-value`);
  assert.equal(e.text.replace(/,/g, ''), String(want), `#${id} text "${e.text}"`);
}

test('the dashboard, loaded in headless Chromium, shows the numbers of /_promptcache/stats; a screenshot goes to build/dashboard.png', async (t) => {
  needTool('chromium');
  const prices = writePrices(t);
  const { mock, proxy } = await setup(t, { args: ['--prices', prices] });
  const all = await scriptedMix(proxy, mock);
  const want = expectations(all);

  const page = await request(proxy, { path: '/_promptcache/' });
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/i);
  assert.ok(page.body.equals(fs.readFileSync(DASHBOARD_FILE)), 'GET /_promptcache/ serves assets/dashboard.html as is');
  assert.ok(page.body.length < 40 * 1024, `dashboard is < 40 KB: ${page.body.length}`);
  assert.doesNotMatch(page.text, /(src|href)\s*=\s*["']?(https?:)?\/\//i, 'no external assets');

  const upstreamBefore = mock.count();
  const html = await dumpDom(t, `${proxy.url}/_promptcache/`);
  assert.equal(mock.count(), upstreamBefore, `loading the dashboard sent nothing upstream (e.g. /favicon.ico): ${mock.requests.slice(upstreamBefore).map((r) => r.url)}`);
  // The screenshot (taken before the DOM assertions, so that a failing run leaves one to look at).
  fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  const started = performance.now();
  const shot = await runChromium(t, [`--screenshot=${SCREENSHOT}`, '--window-size=1280,1600', '--virtual-time-budget=5000', `${proxy.url}/_promptcache/`]);
  assert.equal(shot.code, 0, `chromium --screenshot: ${shot.err && shot.err.message}\n${shot.stderr.slice(-2000)}`);
  const st = fs.statSync(SCREENSHOT);
  assert.ok(st.mtimeMs >= started - 1000, 'the screenshot was written by this run');
  const png = fs.readFileSync(SCREENSHOT);
  assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG');
  assert.equal(png.readUInt32BE(16), 1280, 'PNG width');
  assert.equal(png.readUInt32BE(20), 1600, 'PNG height');
  assert.ok(png.length > 30000, `a screenshot with content (${png.length} bytes)`);
  assert.equal(mock.count(), upstreamBefore, 'the screenshot run sent nothing upstream either');
  assert.equal(bodyAttrs(html)['data-loaded'], '1', `the page rendered stats (body data-loaded="1"); DOM:\n${html.slice(0, 3000)}`);
  const ids = domIds(html);
  const s = await getStats(proxy);
  const tot = s.totals;
  assert.equal(tot.hit, want.hit);

  assertIntStat(ids, 'stat-hits', tot.hit);
  assertIntStat(ids, 'stat-misses', tot.miss);
  assertIntStat(ids, 'stat-coalesced', tot.coalesced);
  assertIntStat(ids, 'stat-bypass', tot.bypass);
  assertIntStat(ids, 'stat-refresh', tot.refresh);
  assertIntStat(ids, 'stat-stale', tot.stale);
  assertIntStat(ids, 'stat-replay-miss', tot.replay_miss);
  assertIntStat(ids, 'stat-errors', tot.errors);
  assertIntStat(ids, 'stat-entries', s.cache.entries);
  assertIntStat(ids, 'stat-evictions', s.cache.evictions);
  assertIntStat(ids, 'stat-tokens-saved', tot.tokens_saved.total);
  assertIntStat(ids, 'stat-tokens-input', tot.tokens_saved.input);
  assertIntStat(ids, 'stat-tokens-output', tot.tokens_saved.output);
  assertIntStat(ids, 'stat-tokens-cached', tot.tokens_saved.cached_input);
  // requests include the admin requests (the page's own polls), which change between polls
  const req = Number(statOf(ids, 'stat-requests').attrs['data-value']);
  const adm = Number(statOf(ids, 'stat-admin').attrs['data-value']);
  assert.equal(req - adm, tot.requests - tot.admin, 'proxied requests shown');
  assert.equal(statOf(ids, 'stat-requests').text.replace(/,/g, ''), String(req));
  const hr = statOf(ids, 'stat-hit-ratio');
  assert.equal(Number(hr.attrs['data-value']), tot.hit_ratio);
  assert.equal(hr.text, `${(tot.hit_ratio * 100).toFixed(1)}%`);
  const money = statOf(ids, 'stat-money-saved');
  assert.equal(Number(money.attrs['data-value']), tot.money_saved);
  assert.match(money.text, /€/, `money shown in the price file's currency: ${money.text}`);
  assert.ok(tot.money_saved > 0);
  assert.equal(Number(statOf(ids, 'stat-bytes-from-cache').attrs['data-value']), tot.bytes_from_cache);
  assert.equal(Number(statOf(ids, 'stat-cache-max').attrs['data-value']), s.cache.max_bytes);
  const cb = Number(statOf(ids, 'stat-cache-bytes').attrs['data-value']); // LMDB pages in use: may move with the lifetime writes
  assert.ok(cb > 0 && cb <= s.cache.max_bytes, `stat-cache-bytes ${cb}`);
  assert.ok(Number(statOf(ids, 'stat-uptime').attrs['data-value']) >= 0);
  // latency
  for (const name of ['upstream', 'hit']) {
    const h = s.latency[`${name}_ms`];
    assertIntStat(ids, `lat-${name}-count`, h.count);
    for (const p of ['p50', 'p90', 'p99']) assert.equal(Number(statOf(ids, `lat-${name}-${p}`).attrs['data-value']), h[p], `lat-${name}-${p}`);
  }
  // lifetime
  assertIntStat(ids, 'life-hits', s.lifetime.hit);
  assertIntStat(ids, 'life-misses', s.lifetime.miss);
  assertIntStat(ids, 'life-coalesced', s.lifetime.coalesced);
  assertIntStat(ids, 'life-bypass', s.lifetime.bypass);
  assertIntStat(ids, 'life-tokens-saved', s.lifetime.tokens_saved_input + s.lifetime.tokens_saved_output);
  assert.equal(Number(statOf(ids, 'life-money-saved').attrs['data-value']), s.lifetime.money_saved);
  // the per-model table: one row per route×model, sorted by money then tokens
  const rows = [...html.matchAll(/<tr[^>]*\bdata-model="([^"]*)"/g)].map((x) => decodeEntities(x[1]));
  const cmp = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
  const tok = (r) => r.tokens_saved.input + r.tokens_saved.output;
  const expectOrder = [...s.by_route_model].sort((x, y) => (y.money_saved - x.money_saved) || (tok(y) - tok(x))
    || (y.requests - x.requests) || cmp(x.model, y.model) || cmp(x.route, y.route)).map((r) => r.model);
  assert.deepEqual(rows, expectOrder, 'model rows sorted by money, then tokens');
  assert.equal(rows[0], 'gpt-4o-2024-08-06', 'the most expensive model first');
  // the outcome bar chart
  for (const o of ['hit', 'miss', 'coalesced', 'bypass']) assertIntStat(ids, `bar-${o}`, tot[o]);
  // the hit-ratio chart drew a line
  assert.match(html, /<svg[^>]*id="ratio-chart"[\s\S]*?<path[^>]* d="M/, 'the hit-ratio chart has a line');
  // without --redis: no tiers, no fleet panels
  assert.ok('hidden' in ids.get('fleet-panels').attrs, 'the fleet panels are hidden without --redis');
  assert.ok('hidden' in ids.get('hits-tiers').attrs, 'hits by tier are hidden without --redis');

});

test('with --redis the dashboard shows hits by tier, the shared tier and the fleet totals', async (t) => {
  needTool('chromium');
  const r = await startRedis(t);
  const { proxy } = await setup(t, { args: ['--redis', r.url] });
  assert.equal((await chat(proxy, 'dashboard tiers')).status, 200);
  const hit = await chat(proxy, 'dashboard tiers');
  assert.equal(hit.headers['x-promptcache-status'], 'HIT');
  assert.equal(hit.headers['x-promptcache-tier'], 'local');
  let s;
  for (const deadline = performance.now() + 10000; performance.now() < deadline; await sleep(200)) {
    s = await getStats(proxy);
    if (s.shared && s.shared.up && s.fleet && s.shared.ops.put >= 1) break;
  }
  assert.ok(s.shared && s.shared.up && s.fleet, `shared tier up and fleet totals read: ${JSON.stringify(s.shared)} ${JSON.stringify(s.fleet)}`);
  const ids = domIds(await dumpDom(t, `${proxy.url}/_promptcache/`));
  assert.ok(!('hidden' in ids.get('fleet-panels').attrs), 'the fleet panels are shown');
  assert.ok(!('hidden' in ids.get('hits-tiers').attrs), 'hits by tier are shown');
  assertIntStat(ids, 'stat-hits-local', s.totals.hits_local);
  assertIntStat(ids, 'stat-hits-shared', s.totals.hits_shared);
  assert.equal(ids.get('shared-state').text, 'up');
  assertIntStat(ids, 'sh-puts', s.shared.ops.put);
  assertIntStat(ids, 'sh-corrupt', 0);
  assertIntStat(ids, 'fl-nodes', 1);
});

test('the dashboard asks for the admin token on 401 and sends it as Bearer once given', async (t) => {
  needTool('chromium');
  const token = `T-${crypto.randomBytes(12).toString('hex')}`;
  const { proxy } = await setup(t, { args: ['--admin-token', token] });
  assert.equal((await chat(proxy, 'dash-auth')).cache, 'MISS');
  assert.equal((await chat(proxy, 'dash-auth')).cache, 'HIT');

  // A browser cannot add an Authorization header to a page navigation, so a
  // same-origin front serves the page (fetched from the proxy with the token)
  // and passes /_promptcache/stats through with whatever Authorization the
  // page itself sent.
  const seen = [];
  const front = http.createServer(async (req, res) => {
    try {
      if (req.url === '/_promptcache/' || req.url === '/_promptcache/?') {
        const r = await request(proxy, { path: '/_promptcache/', headers: auth(token) });
        res.writeHead(r.status, { 'content-type': r.headers['content-type'] });
        res.end(r.body);
        return;
      }
      if (req.url.startsWith('/_promptcache/stats')) {
        seen.push(req.headers.authorization || null);
        const headers = req.headers.authorization ? { authorization: req.headers.authorization } : {};
        const r = await request(proxy, { path: req.url, headers });
        res.writeHead(r.status, { 'content-type': r.headers['content-type'] || 'application/octet-stream' });
        res.end(r.body);
        return;
      }
      res.writeHead(404);
      res.end();
    } catch (e) {
      res.writeHead(502);
      res.end(String(e));
    }
  });
  await new Promise((r) => front.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => { front.closeAllConnections(); front.close(r); }));
  const base = `http://127.0.0.1:${front.address().port}/_promptcache/`;

  // No token: a clear message and a token field, no data.
  let html = await dumpDom(t, base);
  let body = bodyAttrs(html);
  assert.equal(body['data-loaded'], undefined, 'nothing rendered without the token');
  assert.equal(body['data-auth'], 'required');
  let ids = domIds(html);
  assert.ok(!('hidden' in ids.get('auth').attrs), 'the token panel is visible');
  assert.match(ids.get('auth-message').text, /admin token/i);
  assert.match(ids.get('auth-message').text, /401/);
  assert.ok(ids.get('token-input'), 'a token field');
  assert.ok(seen.length >= 1 && seen.every((h) => h === null), 'no Authorization sent without a token');

  // A wrong token (given in the URL fragment): rejected, said so.
  seen.length = 0;
  html = await dumpDom(t, `${base}#token=wrong`);
  body = bodyAttrs(html);
  assert.equal(body['data-auth'], 'rejected');
  assert.match(domIds(html).get('auth-message').text, /rejected/i);
  assert.deepEqual([...new Set(seen)], ['Bearer wrong']);

  // The right token: the page renders the stats.
  seen.length = 0;
  html = await dumpDom(t, `${base}#token=${encodeURIComponent(token)}`);
  body = bodyAttrs(html);
  assert.equal(body['data-loaded'], '1', `rendered with the token; DOM:\n${html.slice(0, 2000)}`);
  assert.equal(body['data-auth'], undefined);
  ids = domIds(html);
  assert.ok('hidden' in ids.get('auth').attrs, 'the token panel is hidden once the token works');
  assertIntStat(ids, 'stat-hits', 1);
  assertIntStat(ids, 'stat-misses', 1);
  assert.ok(seen.length >= 2, `the page keeps polling (${seen.length} polls)`);
  assert.deepEqual([...new Set(seen)], [`Bearer ${token}`], 'every poll carries the token');
  assert.ok(!html.includes(token), 'the token does not end up in the DOM');
});
