// stream-client.mjs — time to first byte, per-chunk delay and time to last
// byte of streamed chat completions (bench/sse-upstream.mjs), directly and
// through proxies, one request at a time, the targets taking turns (request i
// goes to every target before request i+1, in a rotating order). Every request
// has its own prompt, so a caching proxy streams each one live as a MISS.
//   node bench/stream-client.mjs N NAME=URL [NAME=URL...]   (the first is the reference)
// Prints one JSON line: per target the medians (ms) of
//   ttfb  request sent -> first body byte
//   ttlb  request sent -> end of the response
//   chunk the upstream's write of a chunk -> its arrival here (each event
//         carries the sender's CLOCK_MONOTONIC, read here with the same clock)
// plus p90/max of the chunk delays, the X-PromptCache-Status values seen and
// how many answers were incomplete or failed. 2 warm-up requests per target
// (not counted) open the keep-alive connections.
import http from 'node:http';

const n = Number(process.argv[2] || 20);
const targets = process.argv.slice(3).map((a) => {
  const i = a.indexOf('=');
  return { name: a.slice(0, i), url: new URL(a.slice(i + 1)) };
});
const tag = `${process.pid}-${Date.now()}`;
const now = () => process.hrtime.bigint();
const ms = (ns) => Number(ns) / 1e6;

function one(t, prompt) {
  return new Promise((resolve) => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: prompt }] });
    const headers = {
      'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: 'Bearer sk-bench',
    };
    const out = { ok: false, status: 0, cache: null, ttfb: NaN, ttlb: NaN, chunks: [], done: false, error: null };
    let t0 = 0n, buf = '';
    const timer = setTimeout(() => { out.error = 'timeout'; r.destroy(); }, 10000);
    const r = http.request({ host: t.url.hostname, port: t.url.port, path: t.url.pathname, method: 'POST', agent: t.agent, headers }, (res) => {
      out.status = res.statusCode;
      out.cache = res.headers['x-promptcache-status'] ?? null;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        const at = now();
        if (Number.isNaN(out.ttfb)) out.ttfb = ms(at - t0);
        buf += d;
        let k;
        while ((k = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, k);
          buf = buf.slice(k + 2);
          if (ev.startsWith('data: [DONE]')) out.done = true;
          const m = /"t":(\d+)/.exec(ev);
          if (m) out.chunks.push(ms(at - BigInt(m[1])));
        }
      });
      res.on('end', () => {
        out.ttlb = ms(now() - t0);
        out.ok = out.status === 200 && out.done;
        clearTimeout(timer);
        resolve(out);
      });
      res.on('error', (e) => { out.error = String(e.message || e); clearTimeout(timer); resolve(out); });
    });
    r.on('error', (e) => { out.error = String(e.message || e); clearTimeout(timer); resolve(out); });
    t0 = now();
    r.end(body);
  });
}

const q = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null;
};
const r3 = (x) => (x === null || Number.isNaN(x) ? null : Math.round(x * 1000) / 1000);

for (const t of targets) {
  t.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.res = [];
  for (let w = 0; w < 2; w++) await one(t, `stream warm-up ${tag} ${t.name} ${w}`);
}
for (let i = 0; i < n; i++) {
  for (let j = 0; j < targets.length; j++) {
    const t = targets[(i + j) % targets.length];
    t.res.push(await one(t, `stream ${tag} ${t.name} ${i}`));
  }
}
const result = { n, targets: {} };
for (const t of targets) {
  const good = t.res.filter((x) => x.ok);
  const chunks = good.flatMap((x) => x.chunks);
  const cache = {};
  for (const x of t.res) if (x.cache) cache[x.cache] = (cache[x.cache] || 0) + 1;
  result.targets[t.name] = {
    url: t.url.href, sent: t.res.length, ok: good.length,
    failed: t.res.filter((x) => !x.ok).map((x) => x.error || `status ${x.status}${x.done ? '' : ', no [DONE]'}`).slice(0, 3),
    events_per_answer: q(good.map((x) => x.chunks.length), 0.5),
    ttfb: r3(q(good.map((x) => x.ttfb), 0.5)), ttlb: r3(q(good.map((x) => x.ttlb), 0.5)),
    chunk: r3(q(chunks, 0.5)), chunk_p90: r3(q(chunks, 0.9)), chunk_max: r3(q(chunks, 1)),
    ttfb_max: r3(q(good.map((x) => x.ttfb), 1)), cache,
  };
  t.agent.destroy();
}
console.log(JSON.stringify(result));
