// report.mjs — turns the raw figures of bench/run.sh into the Markdown report.
//   node report.mjs OUTDIR RUNTIME_SECONDS VERSIONS DURATIONS
import { readFileSync } from 'node:fs';
import { reader, ratio } from './lib.mjs';

const [out, runtime, versions, durations] = process.argv.slice(2);
const { read, json } = reader(out);
const PEERS = ['pc', 'nginx-cache', 'nginx-static'];
const NAME = { pc: 'promptcache', 'nginx-cache': 'nginx-cache', 'nginx-static': 'nginx-static' };
const human = (n) => (n >= 1048576 ? `${n / 1048576} MB` : n >= 1024 ? `${n / 1024} KB` : `${n} B`);
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const lines = [];
const p = (s = '') => lines.push(s);

// ---- rows ------------------------------------------------------------------
const rows = read('rows.tsv').trim().split('\n').slice(1).filter(Boolean).map((l) => {
  const c = l.split('\t');
  return {
    size: +c[0], nb: +c[1], conns: +c[2], peer: c[3], rep: +c[4], rps: +c[5], p50: +c[6], p99: +c[7],
    cpu: +c[8], hwm: +c[9], anon: +c[10], reqs: +c[11], non2xx: +c[12], errors: +c[13], up: +c[14],
  };
});
const cells = new Map(); // "size|nb|conns|peer" -> aggregated
for (const r of rows) {
  const k = `${r.size}|${r.nb}|${r.conns}|${r.peer}`;
  if (!cells.has(k)) cells.set(k, { size: r.size, nb: r.nb, conns: r.conns, peer: r.peer, reps: [] });
  cells.get(k).reps.push(r);
}
const checks = {};
for (const c of cells.values()) {
  const m = (key) => median(c.reps.map((r) => r[key]));
  Object.assign(c, { rps: m('rps'), p50: m('p50'), p99: m('p99'), cpu: m('cpu'), hwm: Math.max(...c.reps.map((r) => r.hwm)),
    anon: Math.max(...c.reps.map((r) => r.anon)), up: c.reps.reduce((a, r) => a + r.up, 0),
    non2xx: c.reps.reduce((a, r) => a + r.non2xx, 0), errors: c.reps.reduce((a, r) => a + r.errors, 0) });
  const flags = [];
  if (c.peer === 'nginx-static') flags.push('static');
  else {
    const ck = (checks[`${c.peer}|${c.size}`] ??= json(`check-${c.peer}-${c.size}.json`));
    if (!ck) flags.push('UNCHECKED');
    else if (c.nb === 1 ? ck.first !== 'right' : ck.wrong + ck.noid > 0)
      flags.push(c.nb === 1 ? `WRONG (body 0: ${ck.first})` : `WRONG (${ck.wrong + ck.noid}/${ck.sent})`);
    if (c.up > 0) flags.push(`UNCACHED (+${c.up} upstream)`);
  }
  if (c.non2xx > 0) flags.push(`${c.non2xx} non-2xx`);
  if (c.errors > 0) flags.push(`${c.errors} socket errors`);
  if (!(c.rps > 0)) flags.push('NO RESULT');
  c.flags = flags;
  c.ok = c.peer === 'nginx-static' ? c.rps > 0 : flags.length === 0;
}
const get = (size, nb, conns, peer) => cells.get(`${size}|${nb}|${conns}|${peer}`);
const sizes = [...new Set(rows.map((r) => r.size))].sort((a, b) => a - b);
const nbs = [...new Set(rows.map((r) => r.nb))].sort((a, b) => a - b);
const connsL = [...new Set(rows.map((r) => r.conns))].sort((a, b) => a - b);

const env = Object.fromEntries(read('env.txt').trim().split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
p('# promptcache benchmark');
p();
p(`Cache hits over loopback, wrk -t2 (${versions}); ${durations} per cell; peers run one after another, ` +
  `interleaved per cell. Machine: ${readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length} ` +
  `CPUs, shared with wrk (not pinned). CPU/req = server utime+stime from /proc (nginx: master + its children) ÷ wrk's request count; ` +
  'peak RSS = VmHWM of the serving process (nginx: its largest child, the worker), reset before each cell; ' +
  'promptcache\'s RSS includes the LMDB map pages it touched. Total runtime: ' + runtime + ' s. ' +
  `Load average at start ${env.loadavg_start ?? '?'}, at end ${env.loadavg_end ?? '?'}: on a shared machine other work inflates ` +
  'latencies and skews single cells; compare ratios, and re-run before trusting one outlier.');
p();
if (rows.length) {
  p('## Throughput, latency, CPU, memory');
  p();
  p('| prompt | bodies | conns | peer | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | anon MiB | status |');
  p('|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|');
  for (const s of sizes) for (const nb of nbs) for (const cn of connsL) for (const peer of PEERS) {
    const c = get(s, nb, cn, peer);
    if (!c) continue;
    p(`| ${human(s)} | ${nb} | ${cn} | ${NAME[peer]} | ${f(c.rps, 0)} | ${f(c.p50, 2)} | ${f(c.p99, 2)} | ${f(c.cpu, 1)} | ` +
      `${f(c.hwm / 1024, 1)} | ${f(c.anon / 1024, 1)} | ${c.flags.join(', ') || 'ok'} |`);
  }
  p();
  p('## Ratios (promptcache ÷ peer; † = nginx-cache did not serve correct cached answers in that cell)');
  p();
  p('| prompt | bodies | conns | req/s ÷ nginx-cache | req/s ÷ nginx-static | CPU/req ÷ nginx-cache | p99 ÷ nginx-cache |');
  p('|---|---:|---:|---:|---:|---:|---:|');
  for (const s of sizes) for (const nb of nbs) for (const cn of connsL) {
    const a = get(s, nb, cn, 'pc'), b = get(s, nb, cn, 'nginx-cache'), st = get(s, nb, cn, 'nginx-static');
    if (!a) continue;
    const d = b && !b.ok ? ' †' : '';
    p(`| ${human(s)} | ${nb} | ${cn} | ${b ? ratio(a.rps / b.rps) + d : '–'} | ${st ? ratio(a.rps / st.rps) : '–'} | ` +
      `${b ? ratio(a.cpu / b.cpu) + d : '–'} | ${b ? ratio(a.p99 / b.p99) + d : '–'} |`);
  }
  p();
  p('## Correctness (per prompt size, over pre-warm + all runs + the final check)');
  p();
  p('| prompt | peer | pre-warm | upstream requests | distinct bodies upstream | final check: own answer / wrong / no id / errors | hits by header |');
  p('|---|---|---|---:|---:|---|---:|');
  for (const s of sizes) {
    const g = read(`group-${s}.txt`).trim().split('\n').map((l) => l.split(' '));
    for (const peer of ['pc', 'nginx-cache']) {
      const gl = g.find((x) => x[0] === peer);
      const ck = checks[`${peer}|${s}`] ?? json(`check-${peer}-${s}.json`);
      const pw = json(`prewarm-${peer}-${s}.json`);
      const up = gl && gl.length === 5 ? +gl[3] - +gl[1] : NaN;
      const dist = gl && gl.length === 5 ? +gl[4] - +gl[2] : NaN;
      p(`| ${human(s)} | ${NAME[peer]} | ${pw ? `${pw.ok}/${pw.sent} ok` : '–'} | ${f(up, 0)} | ${f(dist, 0)} | ` +
        `${ck ? `${ck.right} / ${ck.wrong} / ${ck.noid} / ${ck.errors + ck.non200}` : '–'} | ${ck ? ck.hits : '–'} |`);
    }
  }
  p();
  p('Expected for a correct cache: upstream requests = distinct bodies = number of bodies (each fetched once, at pre-warm), ' +
    'every final-check answer its own body\'s. WRONG = a peer answered with another body\'s response; UNCACHED = the ' +
    'upstream saw requests during a timed run (cache misses).');
  p();
}

// ---- micro --------------------------------------------------------------------
const micro = read('micro.txt');
const mres = micro.split('\n').filter((l) => l.startsWith('RESULT ')).map((l) => {
  const o = { kind: l.split(' ')[1] };
  for (const kv of l.split(' ').slice(2)) {
    const [k, v] = kv.split('=');
    o[k] = isNaN(+v) ? v : +v;
  }
  return o;
});
const canon = mres.filter((r) => r.kind === 'canon');
const look = mres.filter((r) => r.kind === 'lookup');
if (mres.length) {
  p('## Microbenchmark (bench/micro.c)');
  p();
  p('| chat body | canonicalize + key + XXH3-128 MB/s (best of 5 slices) | canonicalize alone MB/s | XXH3-128 alone MB/s |');
  p('|---:|---:|---:|---:|');
  for (const r of canon) p(`| ${r.bytes} B | ${f(r.mbps)} | ${f(r.canon_mbps)} | ${f(r.hash_mbps)} |`);
  p();
  p('| LMDB entries | value B | pc_cache_get p50 ns | p99 ns | mean ns | canon+hash+get+decode (1 KB) p50 ns | p99 ns |');
  p('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of look)
    p(`| ${r.entries} | ${r.value_len ?? '–'} | ${f(r.p50_ns, 0)} | ${f(r.p99_ns, 0)} | ${f(r.mean_ns, 0)} | ${f(r.hit_p50_ns, 0)} | ${f(r.hit_p99_ns, 0)} |`);
  p();
}

// ---- idle --------------------------------------------------------------------
const idle = Object.fromEntries(read('idle.txt').trim().split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
if (idle.conns) {
  p('## Idle keep-alive connections');
  p();
  p(`${idle.conns} connections opened, one cache hit each, then left idle: client ${idle.client}; ` +
    `${idle.established} established at the server's port; server fds ${idle.fds}. ` +
    `promptcache RssAnon ${f(idle.base_anon_kb / 1024)} MiB before → ${f(idle.anon_kb / 1024)} MiB with them ` +
    `(VmRSS ${f(idle.rss_kb / 1024)} MiB, VmHWM ${f(idle.hwm_kb / 1024)} MiB); ` +
    `${f(((idle.anon_kb - idle.base_anon_kb) * 1024) / Math.max(1, +idle.established), 0)} bytes of anonymous memory per connection.`);
  p();
}

// ---- targets -------------------------------------------------------------------
p('## Targets');
p();
p('| target | measured | result |');
p('|---|---|---|');
const verdict = (ok) => (ok === null ? 'n/a' : ok ? 'met' : 'MISSED');
const list = (xs) => xs.map((x) => `${x.label} ${ratio(x.v)}`).join(', ');
function target(label, xs, pick, good, extra = '') {
  if (!xs.length) return p(`| ${label} | not measured${extra} | n/a |`);
  const w = xs.reduce((a, b) => (pick(a.v, b.v) ? a : b));
  p(`| ${label} | worst ${ratio(w.v)} (${w.label}); ${list(xs)}${extra} | ${verdict(good(w.v))} |`);
}
const pairs = [];
for (const s of sizes) for (const nb of nbs) for (const cn of connsL) {
  const a = get(s, nb, cn, 'pc'), b = get(s, nb, cn, 'nginx-cache'), st = get(s, nb, cn, 'nginx-static');
  if (a) pairs.push({ s, nb, cn, a, b, st, label: `${human(s)}/${nb}/c${cn}` });
}
const valid = (x) => x.a.ok && x.b && x.b.ok;
const skippedNote = (xs) => {
  const bad = xs.filter((x) => x.b && !x.b.ok).map((x) => x.label);
  return bad.length ? `; left out where nginx-cache was wrong/uncached: ${bad.join(', ')}` : '';
};
const oneK = pairs.filter((x) => x.s === 1024);
target('cache-hit req/s ≥ 2× nginx-cache at 1 KB', oneK.filter(valid).map((x) => ({ label: x.label, v: x.a.rps / x.b.rps })),
  (a, b) => a < b, (v) => v >= 2, skippedNote(oneK));
target('cache-hit req/s ≥ 0.9× nginx-static at 1 KB', oneK.filter((x) => x.a.ok && x.st).map((x) => ({ label: x.label, v: x.a.rps / x.st.rps })),
  (a, b) => a < b, (v) => v >= 0.9);
target('server CPU per hit ≤ 0.5× nginx-cache\'s', pairs.filter(valid).map((x) => ({ label: x.label, v: x.a.cpu / x.b.cpu })),
  (a, b) => a > b, (v) => v <= 0.5, skippedNote(pairs));
const c256 = pairs.filter((x) => x.cn === 256);
target('p99 ≤ nginx-cache\'s at 256 connections', c256.filter(valid).map((x) => ({ label: x.label, v: x.a.p99 / x.b.p99 })),
  (a, b) => a > b, (v) => v <= 1, skippedNote(c256));
{
  const mb = pairs.filter((x) => x.s === 1048576);
  const ck = checks[`pc|1048576`] ?? json('check-pc-1048576.json');
  if (!mb.length) p('| correct hits at 1 MB prompts | not measured | n/a |');
  else {
    const allOk = mb.every((x) => x.a.ok) && ck && ck.right === ck.sent && ck.sent > 0;
    p(`| correct hits at 1 MB prompts | ${mb.filter((x) => x.a.ok).length}/${mb.length} promptcache cells clean; final check ` +
      `${ck ? `${ck.right}/${ck.sent} own answers, ${ck.hits} HIT` : 'missing'}; ` +
      `${mb.map((x) => `${x.label} ${x.a.flags.join(' ') || 'ok'}`).join(', ')} | ${verdict(allOk)} |`);
  }
}
{
  const real = canon.filter((r) => r.size <= 102400 && Number.isFinite(r.mbps));
  if (!real.length) p('| canonicalize + hash ≥ 500 MB/s | not measured | n/a |');
  else {
    const w = real.reduce((a, b) => (a.mbps < b.mbps ? a : b));
    p(`| canonicalize + hash ≥ 500 MB/s (1 KB, 16 KB, 100 KB chat bodies) | worst ${f(w.mbps)} MB/s (${w.bytes} B); ` +
      `${canon.map((r) => `${r.bytes} B ${f(r.mbps)}`).join(', ')} MB/s | ${verdict(w.mbps >= 500)} |`);
  }
}
{
  const a = look.find((r) => r.entries === 1000), b = look.find((r) => r.entries === 1000000);
  if (!a || !b || !Number.isFinite(a.p50_ns) || !Number.isFinite(b.p50_ns)) p('| hit latency at 1M entries ≤ 1.3× 1k entries | not measured | n/a |');
  else {
    const g = b.p50_ns / a.p50_ns, h = b.hit_p50_ns / a.hit_p50_ns;
    p(`| hit latency at 1M entries ≤ 1.3× 1k entries: pc_cache_get p50 | ${f(b.p50_ns, 0)} ns vs ${f(a.p50_ns, 0)} ns = ${ratio(g)} ` +
      `(p99 ${ratio(b.p99_ns / a.p99_ns)}) | ${verdict(g <= 1.3)} |`);
    p(`| … same, whole in-process hit path (canonicalize + hash 1 KB, get, decode with checksum, compare) p50 | ` +
      `${f(b.hit_p50_ns, 0)} ns vs ${f(a.hit_p50_ns, 0)} ns = ${ratio(h)} (p99 ${ratio(b.hit_p99_ns / a.hit_p99_ns)}) | ${verdict(h <= 1.3)} |`);
  }
}
if (idle.conns) {
  const mib = idle.anon_kb / 1024;
  const held = +idle.established >= +idle.conns;
  p(`| anonymous RSS ≤ 32 MiB with ${idle.conns} idle keep-alive connections | RssAnon ${f(mib)} MiB with ${idle.established} ` +
    `established${held ? '' : ' (fewer than asked: not a valid measurement)'} | ${verdict(held ? mib <= 32 : false)} |`);
} else p('| anonymous RSS ≤ 32 MiB with 10k idle keep-alive connections | not measured | n/a |');
p();
const notes = read('notes.txt').trim();
if (notes) {
  p('## Notes from this run');
  p();
  for (const n of notes.split('\n')) p(`- ${n}`);
  p();
}
process.stdout.write(lines.join('\n') + '\n');
