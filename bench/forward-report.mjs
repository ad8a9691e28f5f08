// forward-report.mjs — the "Forward path" section of the bench report from
// bench/forward.sh's raw figures (OUTDIR/fwd-*), as Markdown on stdout.
//   node bench/forward-report.mjs OUTDIR
import { reader, median, fmt as f, ratio, mark } from './lib.mjs';

const { read, kv, tsv } = reader(process.argv[2]);
const sgn = (x, d = 2) => (Number.isFinite(x) ? (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(d) : '–');
const lines = [];
const p = (s = '') => lines.push(s);

const env = kv('fwd-env.txt');
const NAME = {
  direct: 'upstream direct (no proxy)',
  nginx: 'nginx proxy_pass',
  'pc-off': 'promptcache --mode off',
  'pc-miss': 'promptcache readwrite, new key (MISS, stored)',
  'pc-nostore': 'promptcache readwrite, no-store (BYPASS)',
};
const SHORT = { direct: 'direct', nginx: 'nginx', 'pc-off': 'off', 'pc-miss': 'MISS', 'pc-nostore': 'no-store' };
const WANT = { 'pc-off': '200 BYPASS', 'pc-miss': '200 MISS', 'pc-nostore': '200 BYPASS' };
const ORDER = Object.keys(NAME);

// ---- cells: medians over repetitions -----------------------------------------------------
const rows = tsv('fwd-rows.tsv').map((r) => {
  const o = { ...r };
  for (const k of Object.keys(r)) if (!['row', 'log_counts'].includes(k)) o[k] = +r[k];
  return o;
});
const checks = tsv('fwd-checks.tsv');
const cells = new Map();
for (const r of rows) {
  const k = `${r.conns}|${r.row}`;
  if (!cells.has(k)) cells.set(k, { conns: r.conns, row: r.row, reps: [] });
  cells.get(k).reps.push(r);
}
for (const c of cells.values()) {
  const m = (key) => median(c.reps.map((r) => r[key]));
  const sum = (key) => c.reps.reduce((a, r) => a + (Number.isFinite(r[key]) ? r[key] : 0), 0);
  Object.assign(c, {
    rps: m('rps'), p50: m('p50_ms'), p99: m('p99_ms'), cpu: m('cpu_us'), upcpu: m('up_cpu_us'),
    lp50: m('log_p50_ms'), lp99: m('log_p99_ms'), lmax: Math.max(...c.reps.map((r) => r.log_max_ms)), lover: sum('log_over10ms'),
    reqs: sum('requests'), non2xx: sum('non2xx'), errors: sum('errors'), upreq: sum('up_requests'), upconns: sum('up_conns'),
  });
  const flags = [];
  const bad = checks.filter((x) => +x.conns === c.conns && x.row === c.row && x.check !== 'ok');
  if (bad.length) flags.push(`check failed ${bad.length}/${c.reps.length}: ${bad[0].check}`);
  if (c.non2xx > 0) flags.push(`${c.non2xx} non-2xx`);
  if (c.errors > 0) flags.push(`${c.errors} socket errors`);
  if (!(c.rps > 0)) flags.push('NO RESULT');
  if (c.row !== 'direct') {
    // every request goes upstream exactly once: requests still in flight when wrk stops may add up to conns per run
    if (c.upreq < c.reqs) flags.push(`upstream saw ${c.reqs - c.upreq} fewer requests than wrk completed`);
    if (c.upreq > c.reqs + c.reps.length * (c.conns + 2)) flags.push(`upstream saw ${c.upreq - c.reqs} more requests than wrk completed`);
  }
  if (WANT[c.row]) {
    const other = [];
    for (const r of c.reps)
      for (const part of r.log_counts === '-' ? [] : r.log_counts.split(',')) {
        const [k, n] = part.split('=');
        if (k !== WANT[c.row]) other.push(`${k} ×${n}`);
      }
    if (other.length) flags.push(`access log: ${other.join(', ')}`);
  }
  c.flags = flags;
}
const get = (conns, row) => cells.get(`${conns}|${row}`);
const connsL = [...new Set(rows.map((r) => r.conns))].sort((a, b) => a - b);

p('## Forward path');
p();
p('What a forwarded request costs: misses, bypasses and `--mode off`, next to nginx as a plain reverse proxy. ' +
  'Fake upstream: nginx (' + (env.up_workers ?? '1') + ' worker) answering every POST at once with a fixed 1 KB chat.completion. ' +
  'nginx proxy_pass: no cache, `upstream { keepalive 64; }`, `proxy_http_version 1.1`, `proxy_set_header Connection ""`, 1 worker, ' +
  'access_log off (its pool keeps at most 64 idle connections and, by default, closes one after 1000 requests: hence the ' +
  'upstream connections it opens). promptcache: `--workers 1`, default `--key-scope` and `--sync periodic`, db on tmpfs, access log on' +
  (env.pc_extra ? `, plus \`${env.pc_extra}\`` : '') + '. ' +
  `Load: \`wrk -t1\`, ${env.dur ?? '?'} s per cell, median of ${env.reps ?? '?'} runs, rows interleaved per run; ` +
  'every request a distinct 1 KB body (a counter in the prompt, bench/wrk-fwd.lua); the no-store row adds `Cache-Control: no-store`. ' +
  'CPU µs/req = the proxy\'s utime+stime (/proc; nginx: master + worker; the direct row: the fake upstream\'s) ÷ requests. ' +
  'Added p50 = row p50 − upstream-direct p50. ' +
  `${env.nginx ? `nginx ${env.nginx}, ` : ''}${env.wrk ? `wrk ${env.wrk}, ` : ''}${env.node ? `Node ${env.node}` : ''}; ` +
  `load average ${env.loadavg_start ?? '?'} at start, ${env.loadavg_end ?? '?'} at end; section runtime ${env.runtime_s ?? '?'} s.`);
p();

const verdicts = []; // {target, label, v, ok}
for (const cn of connsL) {
  const ng = get(cn, 'nginx'), dir = get(cn, 'direct');
  p(`### ${cn} connections`);
  p();
  p('| path | req/s | ÷ nginx | p50 ms | added p50 ms | p99 ms | CPU µs/req | ÷ nginx | upstream conns opened | promptcache log: total ms p50 / p99 / max | targets | notes |');
  p('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|');
  for (const row of ORDER) {
    const c = get(cn, row);
    if (!c) continue;
    const added = dir ? c.p50 - dir.p50 : NaN;
    const ngAdded = ng && dir ? ng.p50 - dir.p50 : NaN;
    const rr = ng && row !== 'nginx' ? c.rps / ng.rps : NaN, cr = ng && row !== 'nginx' ? c.cpu / ng.cpu : NaN;
    const t = [];
    const judge = (target, v, ok, text) => {
      verdicts.push({ target, label: `c${cn}`, v, ok, text });
      t.push(`${text} ${mark(ok)}`);
    };
    if (row === 'pc-off') {
      judge('off-rps', rr, Number.isFinite(rr) ? rr >= 0.9 : null, 'req/s ≥ 0.9×');
      judge('off-cpu', cr, Number.isFinite(cr) ? cr <= 1.2 : null, 'CPU ≤ 1.2×');
    }
    if (row === 'pc-miss') judge('miss-rps', rr, Number.isFinite(rr) ? rr >= 0.75 : null, 'req/s ≥ 0.75×');
    if (row.startsWith('pc-')) {
      const d = added - ngAdded;
      verdicts.push({ target: 'p50', label: `${row.slice(3)} c${cn}`, v: d, ok: Number.isFinite(d) ? d <= 0.1 : null });
      t.push(`p50 ≤ nginx + 0.1 ms ${mark(Number.isFinite(d) ? d <= 0.1 : null)}`);
    }
    const log = row.startsWith('pc-') ? `${f(c.lp50, 2)} / ${f(c.lp99, 2)} / ${f(c.lmax, 1)}${c.lover ? ` (${c.lover} over 10 ms)` : ''}` : '';
    p(`| ${NAME[row]} | ${f(c.rps, 0)} | ${row === 'nginx' ? '1' : ratio(rr)} | ${f(c.p50, 3)} | ${row === 'direct' ? '' : sgn(added, 3)} | ` +
      `${f(c.p99, 2)} | ${f(c.cpu, 1)} | ${row === 'nginx' ? '1' : row === 'direct' ? '' : ratio(cr)} | ` +
      `${row === 'direct' ? '' : f(c.upconns, 0)} | ${log} | ${t.join(' · ')} | ${c.flags.join('; ') || 'ok'} |`);
  }
  if (dir && Number.isFinite(dir.upcpu)) {
    p();
    const all = ORDER.map((r) => get(cn, r)).filter(Boolean);
    p(`Fake upstream CPU µs per request (${all.map((c) => SHORT[c.row]).join(' / ')}): ${all.map((c) => f(c.upcpu, 1)).join(' / ')}; ` +
      `requests wrk completed over all runs: ${all.map((c) => f(c.reqs, 0)).join(' / ')}.`);
  }
  p();
}

// ---- stored entries -------------------------------------------------------------------------
const storedL = read('fwd-stored.tsv').trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
if (storedL.length) {
  p('Entries in each promptcache database after its runs (the MISS instance should hold one per MISS in its log, ' +
    'including the checks; `--mode off` and no-store only what the checks stored without no-store): ' +
    storedL.map(([n, e, m, o]) => `${n}: ${e} entries, ${m} MISS lines${+o ? `, ${o} non-200 lines` : ''}`).join('; ') + '.');
  p();
}

// ---- streaming --------------------------------------------------------------------------------
let st = null;
try {
  st = JSON.parse(read('fwd-stream.json').trim().split('\n').pop());
} catch { st = null; }
if (st && st.targets && st.targets.direct) {
  const d = st.targets.direct;
  p(`### Streaming (16 SSE chunks 20 ms apart, then \`data: [DONE]\`; ${st.n} requests per path, medians)`);
  p();
  p('TTFB = request sent → first body byte; per chunk = the upstream\'s write → the client\'s read (both read CLOCK_MONOTONIC); ' +
    'TTLB = request sent → end of the answer; added = path − direct. nginx with `proxy_buffering off`; promptcache readwrite, ' +
    'every prompt new (a MISS streamed live, then stored). Targets judged both ways: added vs direct, and vs nginx\'s own.');
  p();
  p('| path | answers ok | TTFB ms | added | per chunk ms (p50 / p90 / max) | added p50 / p90 | TTLB ms | added | X-PromptCache-Status | targets |');
  p('|---|---:|---:|---:|---|---|---:|---:|---|---|');
  const ngs = st.targets.nginx;
  for (const [name, t] of Object.entries(st.targets)) {
    const isDir = name === 'direct';
    const aT = t.ttfb - d.ttfb, aC = t.chunk - d.chunk, aC9 = t.chunk_p90 - d.chunk_p90, aL = t.ttlb - d.ttlb;
    let tg = '';
    if (name === 'promptcache') {
      const ok = (x) => (Number.isFinite(x) ? x <= 0.2 : null);
      const nT = ngs ? t.ttfb - ngs.ttfb : NaN, nC = ngs ? t.chunk - ngs.chunk : NaN;
      verdicts.push({ target: 'st-ttfb', label: 'vs direct', v: aT, ok: ok(aT) }, { target: 'st-chunk', label: 'vs direct', v: aC, ok: ok(aC) },
        { target: 'st-ttfb-ng', label: 'promptcache − nginx', v: nT, ok: ok(nT) }, { target: 'st-chunk-ng', label: 'promptcache − nginx', v: nC, ok: ok(nC) });
      tg = `TTFB +≤ 0.2 ms ${mark(ok(aT))} (vs nginx ${sgn(nT, 3)} ${mark(ok(nT))}) · chunk +≤ 0.2 ms ${mark(ok(aC))} (vs nginx ${sgn(nC, 3)} ${mark(ok(nC))})`;
    }
    const cache = Object.entries(t.cache || {}).map(([k, n]) => `${k} ×${n}`).join(', ');
    const fail = t.failed && t.failed.length ? ` (${t.failed.join('; ')})` : '';
    p(`| ${name === 'nginx' ? 'nginx proxy_pass, proxy_buffering off' : name === 'direct' ? 'upstream direct' : 'promptcache (MISS)'} | ` +
      `${t.ok}/${t.sent}${fail} | ${f(t.ttfb, 3)} | ${isDir ? '' : sgn(aT, 3)} | ${f(t.chunk, 3)} / ${f(t.chunk_p90, 3)} / ${f(t.chunk_max, 1)} | ` +
      `${isDir ? '' : `${sgn(aC, 3)} / ${sgn(aC9, 3)}`} | ${f(t.ttlb, 1)} | ${isDir ? '' : sgn(aL, 2)} | ${cache || '–'} | ${tg} |`);
  }
  const sl = read('fwd-stream-log.txt').trim();
  if (sl) p(`\npromptcache's access log for the stream instance: ${sl.split('\n').join(', ')} (warm-ups included).`);
  p();
} else {
  p('### Streaming');
  p();
  p('not measured (see the notes).');
  p();
}

// ---- targets ---------------------------------------------------------------------------------
p('### Targets (same run, 1 worker each)');
p();
p('| target | measured | result |');
p('|---|---|---|');
const T = [
  ['off-rps', '`--mode off` req/s ≥ 0.9× nginx', (x) => ratio(x)],
  ['off-cpu', '`--mode off` CPU/req ≤ 1.2× nginx', (x) => ratio(x)],
  ['miss-rps', 'readwrite misses (stored) req/s ≥ 0.75× nginx', (x) => ratio(x)],
  ['p50', 'added p50 ≤ nginx\'s + 0.1 ms (promptcache − nginx, ms)', (x) => sgn(x, 3)],
  ['st-ttfb', 'streaming adds ≤ 0.2 ms to time to first byte (vs direct)', (x) => `${sgn(x, 3)} ms`],
  ['st-ttfb-ng', '… read as: TTFB ≤ nginx\'s (proxy_buffering off) + 0.2 ms', (x) => `${sgn(x, 3)} ms`],
  ['st-chunk', 'streaming adds ≤ 0.2 ms to each chunk (median, vs direct)', (x) => `${sgn(x, 3)} ms`],
  ['st-chunk-ng', '… read as: per chunk ≤ nginx\'s + 0.2 ms', (x) => `${sgn(x, 3)} ms`],
];
for (const [id, label, fmt] of T) {
  const vs = verdicts.filter((v) => v.target === id);
  if (!vs.length || vs.every((v) => v.ok === null)) {
    p(`| ${label} | not measured | n/a |`);
    continue;
  }
  const all = vs.every((v) => v.ok === true);
  p(`| ${label} | ${vs.map((v) => `${v.label} ${fmt(v.v)} ${mark(v.ok)}`).join(', ')} | ${all ? 'met ✓' : 'MISSED ✗'} |`);
}
p();
const notes = read('fwd-notes.txt').trim();
if (notes) {
  p('Notes from this section:');
  p();
  for (const n of notes.split('\n')) p(`- ${n}`);
  p();
}
process.stdout.write(lines.join('\n') + '\n');
