// sse-upstream.mjs — a streaming chat-completions upstream for bench/forward.sh:
// every POST is answered with CHUNKS server-sent events GAP ms apart (the
// first at once), then `data: [DONE]` GAP ms after the last. Each chunk
// carries "t": the sender's CLOCK_MONOTONIC in ns (process.hrtime), the same
// clock every process on the machine reads, so bench/stream-client.mjs can
// tell how long each chunk spent on its way.
//   node bench/sse-upstream.mjs PORT [CHUNKS=16] [GAP_MS=20] [--max-seconds=600]
import http from 'node:http';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const port = Number(args[0]);
const chunks = Number(args[1] ?? 16);
const gap = Number(args[2] ?? 20);
const maxArg = process.argv.find((a) => a.startsWith('--max-seconds='));
const maxSeconds = maxArg ? Number(maxArg.split('=')[1]) : 600;

const word = 'token ';
const event = (i) =>
  `data: {"id":"chatcmpl-sse","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",` +
  `"choices":[{"index":0,"delta":{"content":"${word}${i}"},"finish_reason":null}],` +
  `"i":${i},"t":${process.hrtime.bigint()}}\n\n`;

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const start = performance.now();
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (i < chunks) {
        res.write(event(i));
        i++;
        setTimeout(next, Math.max(0, start + i * gap - performance.now()));
      } else {
        res.end('data: [DONE]\n\n');
      }
    };
    next();
  });
});
server.keepAliveTimeout = 120000;
server.listen(port, '127.0.0.1');
setTimeout(() => process.exit(0), maxSeconds * 1000).unref();
