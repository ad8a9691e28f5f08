// client.mjs — sends every body of a bodies file once to a peer and checks
// that each answer is the one for that body (the upstream puts the MD5 of the
// request body in the response id).
//   node client.mjs URL BODIESFILE COUNT CONCURRENCY
// Prints one JSON line: {"first" (verdict for body 0),"sent","ok","non200","errors","right","wrong","noid","hits","wrongIdx"}
// "hits" counts X-PromptCache-Status: HIT or nginx's X-Cache-Status: HIT.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { md5, idOf } from './lib.mjs';

const [url, file, countArg, concArg] = process.argv.slice(2);
const count = Number(countArg || 1000);
const conc = Number(concArg || 8);
const u = new URL(url);
const all = readFileSync(file);
const bodies = [];
for (let s = 0; bodies.length < count && s < all.length; ) {
  let e = all.indexOf(0x0a, s);
  if (e < 0) e = all.length;
  bodies.push(all.subarray(s, e));
  s = e + 1;
}
const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
const r = { first: 'unsent', sent: 0, ok: 0, non200: 0, errors: 0, right: 0, wrong: 0, noid: 0, hits: 0, wrongIdx: [] };

function post(b) {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, timeout: 60000,
        headers: { 'content-type': 'application/json', 'content-length': b.length, authorization: 'Bearer sk-bench' },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
        res.on('error', () => resolve(null));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(null));
    req.end(b);
  });
}

let next = 0;
async function worker() {
  while (next < bodies.length) {
    const i = next++;
    const b = bodies[i];
    r.sent++;
    const res = await post(b);
    if (!res) { r.errors++; if (i === 0) r.first = 'error'; continue; }
    if (res.status !== 200) { r.non200++; if (i === 0) r.first = 'status ' + res.status; continue; }
    r.ok++;
    const st = res.headers['x-promptcache-status'] || res.headers['x-cache-status'] || '';
    if (/^HIT$/i.test(st)) r.hits++;
    const id = idOf(res.text);
    const verdict = !id ? 'noid' : id === md5(b) ? 'right' : 'wrong';
    if (i === 0) r.first = verdict;
    if (verdict === 'noid') r.noid++;
    else if (verdict === 'right') r.right++;
    else { r.wrong++; if (r.wrongIdx.length < 5) r.wrongIdx.push(i); }
  }
}
const timer = setTimeout(() => { console.log(JSON.stringify({ ...r, timedOut: true })); process.exit(0); }, 240000);
await Promise.all(Array.from({ length: Math.min(conc, bodies.length) }, worker));
clearTimeout(timer);
agent.destroy();
console.log(JSON.stringify(r));
