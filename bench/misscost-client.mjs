// misscost-client.mjs — sends N 1 KB chat requests, each with its own prompt
// (a counter in it), one after another over one keep-alive connection, and
// prints how many got each status and X-PromptCache-Status ("200 MISS=N ...").
//   node bench/misscost-client.mjs PORT N [no-store]
import http from 'node:http';

const [port, n] = [Number(process.argv[2]), Number(process.argv[3])];
const noStore = process.argv[4] === 'no-store';
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const filler = 'hello world '.repeat(80);
const one = (i) =>
  new Promise((resolve, reject) => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `request ${i}: ${filler}` }] });
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    if (noStore) headers['cache-control'] = 'no-store';
    const r = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(`${res.statusCode} ${res.headers['x-promptcache-status'] ?? '-'}`));
    });
    r.on('error', reject);
    r.end(body);
  });
const counts = {};
for (let i = 0; i < n; i++) {
  const k = await one(i);
  counts[k] = (counts[k] || 0) + 1;
}
console.log(Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(' '));
agent.destroy();
