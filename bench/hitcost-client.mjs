// hitcost-client.mjs — sends N identical 1 KB chat requests over one
// keep-alive connection and prints how many were cache hits.
//   node bench/hitcost-client.mjs PORT N
import http from 'node:http';

const [port, n] = [Number(process.argv[2]), Number(process.argv[3])];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello world '.repeat(80) }] });
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
