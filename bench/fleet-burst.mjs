// fleet-burst.mjs — fleet single flight under a burst (bench/fleet.sh): for
// each of KEYS new prompts in turn, N identical requests spread round-robin
// over the nodes are sent at once (request i to node i mod nodes, each on its
// own keep-alive connection opened beforehand), against bench/fleet-upstream.mjs
// (slow: every answer after a delay). Counts the upstream requests each prompt
// caused (the target is 1), the X-PromptCache-Status values, and the time to
// first body byte (and to last) of the leader (the MISS) and its followers,
// on the leader's node (coalesced in-process) and on the other nodes
// (following the leader's response through Redis). "lag" = a follower's first
// byte minus the leader's, in wall time (the requests leave within a few ms of
// each other; TTFB is each request's own send -> first body byte). Then asks
// every node once more for each prompt (expected: HIT, the answer stored on
// every node).
//   node bench/fleet-burst.mjs --nodes URL,URL,URL --upstream URL [--n 60] [--keys 5]
//        [--stream 0|1] [--tag STR] [--gap-ms 300]
// URLs are the nodes' base URLs (http://127.0.0.1:PORT) and the upstream's.
// Prints one JSON line.
import http from 'node:http';
import { createHash } from 'node:crypto';

const opt = {};
for (let i = 2; i < process.argv.length; i += 2) opt[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const nodes = (opt.nodes || '').split(',').filter(Boolean).map((u) => new URL(u));
const upstream = new URL(opt.upstream);
const N = Number(opt.n ?? 60);
const KEYS = Number(opt.keys ?? 5);
const stream = opt.stream === '1';
const tag = opt.tag || `${process.pid}-${Date.now()}`;
const gapMs = Number(opt['gap-ms'] ?? 300);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Number(process.hrtime.bigint()) / 1e6;
const md5 = (b) => createHash('md5').update(b).digest('hex');

const agents = nodes.map(() => new http.Agent({ keepAlive: true, maxSockets: N, maxFreeSockets: N }));
const upAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function getJson(url, agent) {
  return new Promise((resolve) => {
    const r = http.get(url, { agent, timeout: 10000 }, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (t += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(t));
        } catch {
          resolve(null);
        }
      });
    });
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', () => resolve(null));
  });
}

function post(node, body) {
  return new Promise((resolve) => {
    const u = nodes[node];
    const out = { node, status: 0, cache: null, tier: null, ttfb: NaN, ttlb: NaN, firstAt: NaN, bytes: 0, digest: null, error: null, complete: false };
    const parts = [];
    let t0 = 0;
    const r = http.request(
      {
        host: u.hostname, port: u.port, path: '/v1/chat/completions', method: 'POST', agent: agents[node], timeout: 30000,
        headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: 'Bearer sk-bench' },
      },
      (res) => {
        out.status = res.statusCode;
        out.cache = res.headers['x-promptcache-status'] ?? null;
        out.tier = res.headers['x-promptcache-tier'] ?? null;
        res.on('data', (d) => {
          if (Number.isNaN(out.ttfb)) {
            out.firstAt = now();
            out.ttfb = out.firstAt - t0;
          }
          parts.push(d);
        });
        res.on('end', () => {
          out.ttlb = now() - t0;
          const b = Buffer.concat(parts);
          out.bytes = b.length;
          out.digest = md5(b);
          out.complete = res.complete && (!stream || b.toString().includes('data: [DONE]'));
          resolve(out);
        });
        res.on('error', (e) => { out.error = String(e.message || e); resolve(out); });
      },
    );
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', (e) => { out.error = String(e.message || e); resolve(out); });
    t0 = now();
    r.end(body);
  });
}

// open N/nodes keep-alive connections per node (health requests, all at once)
async function warm() {
  const per = Math.ceil(N / nodes.length);
  await Promise.all(nodes.flatMap((u, k) => Array.from({ length: per }, () => getJson(new URL('/_promptcache/health', u), agents[k]))));
}

const q = (a, p) => {
  const s = a.filter(Number.isFinite).sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null;
};
const r3 = (x) => (x === null || !Number.isFinite(x) ? null : Math.round(x * 1000) / 1000);
const dist = (a) => ({ n: a.filter(Number.isFinite).length, p50: r3(q(a, 0.5)), p99: r3(q(a, 0.99)), max: r3(q(a, 1)) });

const keys = [];
for (let k = 0; k < KEYS; k++) {
  const body = Buffer.from(JSON.stringify({
    model: 'gpt-4o-mini', stream,
    messages: [{ role: 'user', content: `fleet burst ${tag} ${stream ? 'stream' : 'json'} prompt ${k}: what changed since yesterday?` }],
  }));
  const h = md5(body);
  await warm();
  const c0 = await getJson(new URL('/count', upstream), upAgent);
  const rs = await Promise.all(Array.from({ length: N }, (_, i) => post(i % nodes.length, body)));
  await sleep(gapMs); // a leader that answers late still reaches the count
  const c1 = await getJson(new URL(`/count?md5=${h}`, upstream), upAgent);
  const statuses = {};
  for (const x of rs) {
    const s = x.error ? `error` : x.status !== 200 ? `${x.status}` : x.cache || '-';
    statuses[s] = (statuses[s] || 0) + 1;
  }
  const misses = rs.filter((x) => x.cache === 'MISS' && x.status === 200);
  const leader = misses.length ? misses.reduce((a, b) => (a.ttfb <= b.ttfb ? a : b)) : null;
  const followers = rs.filter((x) => x !== leader && x.status === 200 && !x.error);
  const same = leader ? followers.filter((x) => x.node === leader.node) : [];
  const other = leader ? followers.filter((x) => x.node !== leader.node) : followers;
  const refDigest = leader ? leader.digest : null;
  keys.push({
    key: k, md5: h,
    upstream: c0 && c1 ? c1.requests - c0.requests : null,
    upstream_this_body: c1 ? c1.key : null,
    statuses,
    leader_node: leader ? leader.node : null,
    leader_ttfb: leader ? r3(leader.ttfb) : null,
    leader_ttlb: leader ? r3(leader.ttlb) : null,
    follower_ttfb_same: same.map((x) => r3(x.ttfb)),
    follower_ttfb_other: other.map((x) => r3(x.ttfb)),
    follower_ttlb: followers.map((x) => r3(x.ttlb)),
    follower_lag: leader ? followers.map((x) => r3(x.firstAt - leader.firstAt)) : [],
    follower_lag_other: leader ? other.map((x) => r3(x.firstAt - leader.firstAt)) : [],
    follower_status: Object.fromEntries(['same', 'other'].map((w) => [w, (w === 'same' ? same : other).reduce((o, x) => ((o[x.cache || '-'] = (o[x.cache || '-'] || 0) + 1), o), {})])),
    differing: refDigest ? rs.filter((x) => x.status === 200 && x.digest !== refDigest).length : null,
    incomplete: rs.filter((x) => !x.complete).length,
    errors: rs.filter((x) => x.error || x.status !== 200).map((x) => x.error || `status ${x.status}`).slice(0, 3),
  });
}

// every node once more per prompt: the answer is stored fleet-wide
const after = {};
for (const kk of keys) {
  const body = Buffer.from(JSON.stringify({
    model: 'gpt-4o-mini', stream,
    messages: [{ role: 'user', content: `fleet burst ${tag} ${stream ? 'stream' : 'json'} prompt ${kk.key}: what changed since yesterday?` }],
  }));
  for (let n = 0; n < nodes.length; n++) {
    const x = await post(n, body);
    const s = x.status !== 200 ? `${x.status}` : `${x.cache || '-'}${x.tier ? ` ${x.tier}` : ''}`;
    after[s] = (after[s] || 0) + 1;
  }
}
const c2 = await getJson(new URL('/count', upstream), upAgent);

const all = (f) => keys.flatMap(f);
const statuses = {};
for (const kk of keys) for (const [s, n] of Object.entries(kk.statuses)) statuses[s] = (statuses[s] || 0) + n;
const result = {
  n: N, keys: KEYS, nodes: nodes.length, stream, tag,
  upstream_per_key: keys.map((x) => x.upstream),
  statuses,
  leader_ttfb: dist(keys.map((x) => x.leader_ttfb ?? NaN)),
  leader_ttlb: dist(keys.map((x) => x.leader_ttlb ?? NaN)),
  follower_ttfb_same: dist(all((x) => x.follower_ttfb_same)),
  follower_ttfb_other: dist(all((x) => x.follower_ttfb_other)),
  follower_ttlb: dist(all((x) => x.follower_ttlb)),
  follower_lag: dist(all((x) => x.follower_lag)),
  follower_lag_other: dist(all((x) => x.follower_lag_other)),
  differing: keys.reduce((a, x) => a + (x.differing ?? 0), 0),
  incomplete: keys.reduce((a, x) => a + x.incomplete, 0),
  after, upstream_total: c2 ? c2.requests : null,
  per_key: keys,
};
for (const a of agents) a.destroy();
upAgent.destroy();
console.log(JSON.stringify(result));
