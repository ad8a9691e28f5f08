// fleet-upstream.mjs — the slow upstream of the fleet burst (bench/fleet.sh,
// bench/fleet-burst.mjs): every POST is answered after DELAY_MS, like a model
// thinking before its first token, and counted per request body (MD5), so
// the benchmark can tell how many times each prompt reached the upstream.
//   - a body with "stream": true gets a server-sent-events answer: the head at
//     once, the first event after DELAY_MS, then CHUNKS-1 more GAP_MS apart
//     and `data: [DONE]` GAP_MS after the last;
//   - any other body gets bench/lib.mjs's ~1 KB chat.completion (id = MD5 of
//     the body) after DELAY_MS.
//   node bench/fleet-upstream.mjs PORT [DELAY_MS=250] [CHUNKS=8] [GAP_MS=30] [--max-seconds=600]
//   GET /count[?md5=HEX] -> {"requests":N,"distinct":D,"max":M,"key":K}  (K: requests with that body)
import http from 'node:http';
import { md5, response } from './lib.mjs';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const port = Number(args[0]);
const delay = Number(args[1] ?? 250);
const chunks = Math.max(1, Number(args[2] ?? 8));
const gap = Number(args[3] ?? 30);
const maxArg = process.argv.find((a) => a.startsWith('--max-seconds='));
const maxSeconds = maxArg ? Number(maxArg.split('=')[1]) : 600;

const counts = new Map();
let requests = 0;
let max = 0;
const event = (h, i) =>
  `data: {"id":"chatcmpl-${h}","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",` +
  `"choices":[{"index":0,"delta":{"content":"token ${i} "},"finish_reason":null}],"i":${i}}\n\n`;

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/count')) {
    const q = new URL(req.url, 'http://x').searchParams.get('md5');
    const out = JSON.stringify({ requests, distinct: counts.size, max, key: q ? counts.get(q) || 0 : null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
    res.end(out);
    return;
  }
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => {
    const b = Buffer.concat(parts);
    const h = md5(b);
    const n = (counts.get(h) || 0) + 1;
    counts.set(h, n);
    if (n > max) max = n;
    requests++;
    if (/"stream"\s*:\s*true/.test(b.toString('latin1'))) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      const start = performance.now() + delay;
      let i = 0;
      const next = () => {
        if (res.destroyed) return;
        if (i < chunks) {
          res.write(event(h, i));
          i++;
          setTimeout(next, Math.max(0, start + i * gap - performance.now()));
        } else {
          res.end('data: [DONE]\n\n');
        }
      };
      setTimeout(next, delay);
    } else {
      setTimeout(() => {
        if (res.destroyed) return;
        const out = response(h);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
        res.end(out);
      }, delay);
    }
  });
});
server.keepAliveTimeout = 120000;
server.listen(port, '127.0.0.1');
setTimeout(() => process.exit(0), maxSeconds * 1000).unref();
