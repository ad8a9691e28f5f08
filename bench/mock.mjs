// mock.mjs — the benchmark's upstream: a chat-completions endpoint that answers
// every POST with a fixed-size chat.completion whose id is the MD5 of the
// request body, and counts requests per body, separately for each port it
// listens on (one port per caching peer).
//   node mock.mjs PORT [PORT...]
//   GET /count -> {"requests": N, "distinct": D, "max": M}   (for that port)
// Stops by itself after --max-seconds (default 1200) as a safety net.
import http from 'node:http';
import { md5, response } from './lib.mjs';

const ports = process.argv.slice(2).filter((a) => /^\d+$/.test(a)).map(Number);
const maxArg = process.argv.find((a) => a.startsWith('--max-seconds='));
const maxSeconds = maxArg ? Number(maxArg.split('=')[1]) : 1200;

for (const port of ports) {
  const counts = new Map();
  let requests = 0;
  let max = 0;
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url.startsWith('/count')) {
      const out = JSON.stringify({ requests, distinct: counts.size, max });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const h = md5(Buffer.concat(chunks));
      const n = (counts.get(h) || 0) + 1;
      counts.set(h, n);
      if (n > max) max = n;
      requests++;
      const out = response(h);
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(out),
      });
      res.end(out);
    });
  });
  server.keepAliveTimeout = 120000;
  server.listen(port, '127.0.0.1');
}
setTimeout(() => process.exit(0), maxSeconds * 1000).unref();
// Keep the loop alive even if the timer is unref'd: servers do that.
