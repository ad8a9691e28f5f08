// fleet-report.mjs — the "Fleet" section of the bench report from
// bench/fleet.sh's raw figures (OUTDIR/fleet-*), as Markdown on stdout.
//   node bench/fleet-report.mjs OUTDIR
import { reader, median, fmt as f, ratio, mark } from './lib.mjs';

const { read, kv, tsv, json } = reader(process.argv[2]);
const pct = (a, b) => (b > 0 ? `${((100 * a) / b).toFixed(a === b ? 0 : 2)}%` : '–');
const lines = [];
const p = (s = '') => lines.push(s);

const env = kv('fleet-env.txt');
const NAME = {
  shared: 'promptcache shared-tier hit (readonly node, Redis)',
  local: 'promptcache local hit (readwrite node with --redis, LMDB)',
  nored: 'promptcache local hit, no --redis',
  nginx: 'nginx-cache',
};
const WANT = { shared: 'hits_shared', local: 'hits_local', nored: 'hits_local' };
const PEERS = Object.keys(NAME);
const verdicts = []; // {target, label, text, ok}

p('## Fleet (shared tier on Redis)');
p();
p(`Produced by \`${env.cmdline ?? 'bash bench/fleet.sh'}\`. ` +
  `Everything on 127.0.0.1, ${env.cpus ?? '?'} CPUs shared by all processes (not pinned): one redis-server ` +
  `${env.redis ?? ''} (\`--save '' --appendonly no\`), promptcache nodes with \`--workers 1 --key-scope shared\`, LMDB on tmpfs, ` +
  `nginx ${env.nginx ?? '–'} with 1 worker, wrk ${env.wrk ?? ''}, Node ${env.node ?? ''}. ` +
  `Load average ${env.loadavg_start ?? '?'} at start, ${env.loadavg_end ?? '?'} at end; section runtime ${env.runtime_s ?? '?'} s. ` +
  'On a shared machine single cells are noisy: compare the ratios, measured in the same run.');
p();

// ---- 1. hits by tier ---------------------------------------------------------------------------
const NUM = (r) => {
  const o = { ...r };
  for (const k of Object.keys(r)) if (k !== 'peer') o[k] = r[k] === '-' ? NaN : +r[k];
  return o;
};
const rows = tsv('fleet-rows.tsv').map(NUM);
const checks = tsv('fleet-checks.tsv');
const finals = Object.fromEntries(PEERS.map((x) => [x, json(`fleet-final-${x}.json`)]));
const finalStats = Object.fromEntries(read('fleet-final-stats.tsv').trim().split('\n').filter(Boolean).map((l) => {
  const c = l.split('\t');
  return [c[0], c.slice(1).map(Number)];
}));
const fills = Object.fromEntries(PEERS.map((x) => [x, json(`fleet-fill-${x}.json`)]));
const cells = new Map();
for (const r of rows) {
  const k = `${r.conns}|${r.peer}`;
  if (!cells.has(k)) cells.set(k, { conns: r.conns, peer: r.peer, reps: [] });
  cells.get(k).reps.push(r);
}
for (const c of cells.values()) {
  const m = (key) => median(c.reps.map((r) => r[key]));
  const sum = (key) => c.reps.reduce((a, r) => a + (Number.isFinite(r[key]) ? r[key] : 0), 0);
  Object.assign(c, {
    rps: m('rps'), p50: m('p50_ms'), p99: m('p99_ms'), cpu: m('cpu_us'), rcpu: m('redis_cpu_us'),
    cmds: median(c.reps.map((r) => r.commands / r.requests)),
    gets: median(c.reps.map((r) => r.gets / r.requests)),
    rtrip: c.reps.map((r) => r.commands / r.requests).filter(Number.isFinite),
    reqs: sum('requests'), wreqs: sum('wrk_requests'), non2xx: sum('non2xx'), errors: sum('errors'), up: sum('up_delta'),
    tier: sum(WANT[c.peer] || 'requests'), other: sum('other'), miss: sum('miss'),
    serr: sum('shared_errors') + sum('shared_timeouts') + sum('corrupt'),
  });
  const flags = [];
  const bad = checks.filter((x) => +x.conns === c.conns && x.peer === c.peer && x.check !== 'ok');
  if (bad.length) flags.push(`check failed ${bad.length}/${c.reps.length}: ${bad[0].check}`);
  if (c.non2xx > 0) flags.push(`${c.non2xx} non-2xx`);
  if (c.errors > 0) flags.push(`${c.errors} socket errors`);
  if (c.up > 0) flags.push(`UNCACHED (+${c.up} upstream)`);
  if (WANT[c.peer] && c.reqs > 0 && c.tier < c.reqs) flags.push(`WRONG TIER: ${c.reqs - c.tier} of ${c.reqs} not ${WANT[c.peer].replace('hits_', '')} hits`);
  if (c.serr > 0) flags.push(`${c.serr} shared-tier errors/timeouts/corrupt`);
  const fc = finals[c.peer];
  if (!fc) flags.push('UNCHECKED');
  else if (fc.wrong + fc.noid + fc.errors + fc.non200 > 0) flags.push(`WRONG (final check ${fc.right}/${fc.sent} own answers)`);
  if (!(c.rps > 0)) flags.push('NO RESULT');
  c.flags = flags;
  c.ok = flags.length === 0;
}
const get = (conns, peer) => cells.get(`${conns}|${peer}`);
const connsL = [...new Set(rows.map((r) => r.conns))].sort((a, b) => a - b);

if (rows.length) {
  p(`### Hits by tier: shared (Redis) vs local (LMDB) vs nginx-cache`);
  p();
  p(`1 KB prompts, ${env.distinct ?? '?'} distinct bodies round-robin (bench/wrk.lua), \`wrk -t2\`, ${env.dur ?? '?'} s per run, ` +
    `median of ${env.reps ?? '?'} runs, peers taking turns. The shared row is a \`--mode readonly --redis\` node: readonly never ` +
    'writes LMDB, so every request is a Redis lookup and a shared-tier hit (a readwrite node would copy the entry into LMDB and ' +
    'serve the next one locally); the local row is the readwrite node that filled Redis, hitting its LMDB. ' +
    'Redis round trips/req = Δ`shared.commands` ÷ Δrequests from the node\'s `/_promptcache/stats` around the run ' +
    `(its background traffic included: ${env.idle_commands_5s ?? '?'} commands in 5 s idle); GETs/req from \`shared.ops.get\`. ` +
    'CPU µs/req = utime+stime from /proc ÷ requests (node; redis-server separately). "served as" = the node\'s own hit counters ' +
    'by tier over the runs.');
  p();
  for (const cn of connsL) {
    const ng = get(cn, 'nginx');
    p(`#### ${cn} connections`);
    p();
    p('| peer | req/s | ÷ nginx-cache | p50 ms | p99 ms | p99 ÷ nginx-cache | CPU µs/req | + redis-server µs/req | Redis round trips/req | GETs/req | served as | status |');
    p('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|');
    for (const peer of PEERS) {
      const c = get(cn, peer);
      if (!c) continue;
      const isNg = peer === 'nginx';
      const served = isNg ? '' : `${pct(c.tier, c.reqs)} ${WANT[peer].replace('hits_', '')} (${f(c.reqs, 0)})`;
      p(`| ${NAME[peer]} | ${f(c.rps, 0)} | ${isNg ? '1' : ng ? ratio(c.rps / ng.rps) : '–'} | ${f(c.p50, 3)} | ${f(c.p99, 2)} | ` +
        `${isNg ? '1' : ng ? ratio(c.p99 / ng.p99) : '–'} | ${f(c.cpu, 1)} | ${f(c.rcpu, 1)} | ` +
        `${isNg ? '' : peer === 'nored' ? 'no Redis' : f(c.cmds, 3)} | ${isNg || peer === 'nored' ? '' : f(c.gets, 3)} | ${served} | ${c.flags.join('; ') || 'ok'} |`);
    }
    p();
  }
  p('Shared-tier hit ÷ local hit (same run, medians): ' + connsL.map((cn) => {
    const s = get(cn, 'shared'), l = get(cn, 'local'), n = get(cn, 'nored');
    if (!s || !l) return `c${cn} –`;
    return `c${cn}: req/s ${ratio(s.rps / l.rps)}, p50 ${ratio(s.p50 / l.p50)}, p99 ${ratio(s.p99 / l.p99)}, CPU/req ${ratio(s.cpu / l.cpu)} ` +
      `(+ redis-server ${f(s.rcpu, 1)} µs/req)${n ? `; local hit with --redis ÷ without: req/s ${ratio(l.rps / n.rps)}` : ''}`;
  }).join('. ') + '.');
  p();
  const fillTxt = PEERS.filter((x) => fills[x]).map((x) => `${x} ${fills[x].ok}/${fills[x].sent} ok, ${fills[x].hits} hits`).join('; ');
  const finTxt = PEERS.filter((x) => finals[x]).map((x) => {
    const fc = finals[x], st = finalStats[x];
    const tierTxt = st && WANT[x] ? `, ${pct(x === 'shared' ? st[2] : st[1], st[0])} ${WANT[x].replace('hits_', '')} hits` : '';
    return `${x} ${fc.right}/${fc.sent} own answers${fc.wrong ? `, ${fc.wrong} WRONG` : ''}${tierTxt}`;
  }).join('; ');
  p(`Fill (each body once; the shared node already answers from Redis, filled by the local node): ${fillTxt || '–'}. ` +
    `Final check (every body once more per peer, bench/client.mjs): ${finTxt || '–'}. ` +
    `Redis after the fill: ${env.redis_keys_after_fill ?? '?'} keys, ${env.redis_memory_after_fill ?? '?'} used.`);
  p();
  for (const cn of connsL) {
    const s = get(cn, 'shared'), l = get(cn, 'local');
    if (s && Number.isFinite(s.cmds))
      verdicts.push({ target: 'rt-shared', text: `c${cn} ${f(s.cmds, 3)} (runs ${s.rtrip.map((x) => f(x, 3)).join(', ')})`,
        ok: s.ok && Math.abs(s.cmds - 1) <= 0.05 });
    if (l && Number.isFinite(l.cmds))
      verdicts.push({ target: 'rt-local', text: `c${cn} ${f(l.cmds, 4)}`, ok: l.ok && l.cmds <= 0.01 });
    for (const peer of ['shared', 'local']) {
      const c = get(cn, peer);
      if (c) verdicts.push({ target: 'tier', text: `${peer} c${cn} ${pct(c.tier, c.reqs)}`, ok: c.reqs > 0 && c.tier === c.reqs && c.ok });
    }
  }
} else {
  p('### Hits by tier');
  p();
  p('not measured (see the notes).');
  p();
}

// ---- 2. burst --------------------------------------------------------------------------------------
const bursts = ['json', 'stream'].map((v) => [v, json(`fleet-burst-${v}.json`)]).filter(([, b]) => b);
const bnodes = tsv('fleet-burst-nodes.tsv');
const bstats = read('fleet-burst-nodes.tsv').trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
if (bursts.length) {
  const b0 = bursts[0][1];
  p(`### Fleet single flight: ${b0.n} identical new requests at once over ${b0.nodes} nodes`);
  p();
  p(`bench/fleet-burst.mjs: for each of ${b0.keys} new prompts in turn, ${b0.n} identical requests sent at once (request i to node ` +
    `i mod ${b0.nodes}, each on its own keep-alive connection opened beforehand) to ${b0.nodes} readwrite nodes on one Redis. ` +
    `Upstream (bench/fleet-upstream.mjs): every answer after ${env.delay_ms ?? '?'} ms; streamed: the head at once, the first ` +
    `event after ${env.delay_ms ?? '?'} ms, ${env.chunks ?? '?'} events ${env.gap_ms ?? '?'} ms apart. Leader = the request answered ` +
    'MISS; followers = the others, on the leader\'s node (coalesced in-process) or on another node (following the leader\'s ' +
    'response through Redis). TTFB = request sent → first body byte; "behind the leader" = a follower\'s first byte minus the ' +
    'leader\'s, in wall time (all requests leave within a few ms); TTLB = request sent → end of the answer. ' +
    'Afterwards every node is asked once more for each prompt.');
  p();
  p('| answer | upstream requests per prompt | statuses | leader TTFB ms (median) | followers TTFB ms, leader\'s node p50 / p99 | other nodes p50 / p99 | followers behind the leader ms p50 / p99 / max | TTLB ms leader / followers p50 / p99 | answers ≠ leader\'s, incomplete | repeat afterwards | Redis commands per prompt (all nodes) |');
  p('|---|---|---|---:|---|---|---|---|---|---|---:|');
  for (const [v, b] of bursts) {
    const st = Object.entries(b.statuses).map(([k, n]) => `${k} ×${n}`).join(', ');
    const after = Object.entries(b.after || {}).map(([k, n]) => `${k} ×${n}`).join(', ');
    const cmds = bstats.filter((x) => x[0] === v).reduce((a, x) => a + (+x[2 + 7] || 0), 0);
    p(`| ${v === 'stream' ? 'streamed (SSE)' : 'JSON'} | ${b.upstream_per_key.join(', ')} | ${st} | ${f(b.leader_ttfb.p50, 1)} | ` +
      `${f(b.follower_ttfb_same.p50, 1)} / ${f(b.follower_ttfb_same.p99, 1)} | ${f(b.follower_ttfb_other.p50, 1)} / ${f(b.follower_ttfb_other.p99, 1)} | ` +
      `${f(b.follower_lag.p50, 2)} / ${f(b.follower_lag.p99, 2)} / ${f(b.follower_lag.max, 2)} | ` +
      `${f(b.leader_ttlb.p50, 1)} / ${f(b.follower_ttlb.p50, 1)} / ${f(b.follower_ttlb.p99, 1)} | ${b.differing}, ${b.incomplete} | ${after || '–'} | ` +
      `${f(cmds / b.keys, 1)} |`);
    const one = b.upstream_per_key.every((x) => x === 1);
    verdicts.push({ target: 'burst-up', text: `${v}: ${b.upstream_per_key.join(', ')}`, ok: one });
    verdicts.push({ target: 'burst-ok', text: `${v}: ${st}; ${b.differing} differing, ${b.incomplete} incomplete`,
      ok: b.differing === 0 && b.incomplete === 0 && Object.keys(b.statuses).every((k) => ['MISS', 'COALESCED', 'HIT'].includes(k)) && (b.statuses.MISS || 0) === b.keys });
  }
  p();
  if (bnodes.length || bstats.length) {
    p('Per node over each burst run (its /stats, admin requests left out): ' + bursts.map(([v]) => `${v}: ` + bstats.filter((x) => x[0] === v).map((x) => {
      const c = x.slice(2).map(Number);
      return `node ${x[1]} ${c[0]} requests (MISS ${c[3]}, COALESCED ${c[4]} of which from another node ${c[5]}, HIT ${c[1] + c[2]}), ` +
        `leases won ${c[13]} / found held ${c[14]}, takeovers ${c[15]}, follows cut ${c[16]}, Redis errors ${c[9]} timeouts ${c[10]}`;
    }).join('; ')).join('. ') + '.');
    p();
  }
} else {
  p('### Fleet single flight');
  p();
  p('not measured (see the notes).');
  p();
}

// ---- shared-tier health over the whole section -------------------------------------------------------
const snaps = ['shared', 'local', 'burst1', 'burst2', 'burst3'].map((n) => [n, json(`fleet-stats-${n}.json`)]).filter(([, s]) => s && s.shared);
if (snaps.length) {
  p('Shared-tier counters at the end of each node\'s life (`/_promptcache/stats` → `shared`): ' + snaps.map(([n, s]) => {
    const h = s.shared;
    return `${n}: ${h.commands} commands, errors ${h.errors}, timeouts ${h.timeouts}, corrupt ${h.corrupt}, command errors ${h.command_errors}, ` +
      `reconnects ${h.reconnects}, busy ${h.busy}, Redis latency p50 ${h.latency_ms?.p50} ms / p99 ${h.latency_ms?.p99} ms`;
  }).join('; ') + '.');
  p();
  const bad = snaps.reduce((a, [, s]) => a + s.shared.errors + s.shared.timeouts + s.shared.corrupt, 0);
  verdicts.push({ target: 'health', text: `${bad} over ${snaps.length} nodes`, ok: bad === 0 });
}
const cs = read('fleet-redis-commandstats.txt').trim().split('\n').filter(Boolean).map((l) => {
  const m = /^cmdstat_([^:]+):calls=(\d+).*failed_calls=(\d+)/.exec(l);
  return m ? [m[1], +m[2], +m[3]] : null;
}).filter(Boolean).sort((a, b) => b[1] - a[1]);
if (cs.length) {
  const failed = cs.filter((x) => x[2] > 0);
  const cmdErr = snaps.reduce((a, [, s]) => a + s.shared.command_errors, 0);
  const xread = cs.find((x) => x[0] === 'xread');
  p(`redis-server commands over the section (INFO commandstats): ${cs.slice(0, 10).map(([k, n]) => `${k} ${n.toLocaleString('en-US')}`).join(', ')}; ` +
    `failed calls: ${failed.length ? failed.map(([k, , n]) => `${k} ${n}`).join(', ') : 'none'}` +
    (snaps.length ? `. The nodes' \`shared.command_errors\` add up to ${cmdErr}` +
      (xread ? `; XREAD (followers' blocking reads) was called ${xread[1]} times, ${xread[2]} failed` : '') : '') + '.');
  p();
}

// ---- targets --------------------------------------------------------------------------------------------
p('#### Targets (fleet)');
p();
p('| target | measured | result |');
p('|---|---|---|');
const T = [
  ['rt-local', 'Redis round trips per local hit = 0 (≤ 0.01, background included)'],
  ['rt-shared', 'Redis round trips per shared-tier hit = 1 (± 0.05)'],
  ['tier', 'every timed request served from the expected tier, checks passed'],
  ['burst-up', 'burst: 1 upstream request per prompt'],
  ['burst-ok', 'burst: one MISS per prompt, the rest COALESCED/HIT, every answer the leader\'s, complete'],
  ['health', 'no shared-tier errors, timeouts or corrupt values'],
];
for (const [id, label] of T) {
  const vs = verdicts.filter((v) => v.target === id);
  if (!vs.length || vs.every((v) => v.ok === null)) {
    p(`| ${label} | not measured | n/a |`);
    continue;
  }
  const all = vs.every((v) => v.ok === true);
  p(`| ${label} | ${vs.map((v) => `${v.text} ${mark(v.ok)}`).join('; ')} | ${all ? 'met ✓' : 'MISSED ✗'} |`);
}
p();
const events = read('fleet-pc-events.log').trim().split('\n').filter((l) => l && !/ info |listening on/.test(l));
if (events.length) {
  p(`Node log lines other than 200s and info (${events.length}, first 5; all in build/bench/fleet-pc-events.log):`);
  p();
  for (const e of events.slice(0, 5)) p(`- \`${e.slice(0, 240).replace(/`/g, "'")}\``);
  p();
}
const notes = read('fleet-notes.txt').trim();
if (notes) {
  p('Notes from this section:');
  p();
  for (const n of notes.split('\n')) p(`- ${n}`);
  p();
}
process.stdout.write(lines.join('\n') + '\n');
