// hitcost-client.mjs — sends N identical chat requests of about SIZE bytes
// over one keep-alive connection and prints how many were cache hits.
//   node bench/hitcost-client.mjs PORT N [SIZE]     (SIZE: bytes of the request body, default ~1 KB)
import http from 'node:http';

const [port, n] = [Number(process.argv[2]), Number(process.argv[3])];
const size = Number(process.argv[4] || 0);
const unit = 'hello world ';
// the default is the historic 1 KB body (80 repeats); a SIZE fills the prompt to about SIZE bytes
const repeats = size > 0 ? Math.max(1, Math.round((size - 80) / unit.length)) : 80;
const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: unit.repeat(repeats) }] });
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const one = () =>
  new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const r = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.headers['x-promptcache-status']));
    });
    r.on('error', reject);
    r.end(body);
  });
let hits = 0;
for (let i = 0; i < n; i++) if ((await one()) === 'HIT') hits++;
console.log(hits);
agent.destroy();
