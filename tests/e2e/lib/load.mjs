// load.mjs — bounded load for fault tests: `n` requests, `concurrency` at a
// time over keep-alive connections; resolves to the count of each
// "<status> <X-PromptCache-Status>" outcome (or the error code).
import http from 'node:http';

export async function flood(proxy, { n, concurrency = 16, request }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const counts = {};
  const add = (k) => { counts[k] = (counts[k] || 0) + 1; };
  let next = 0;
  const one = (i) => new Promise((resolve) => {
    const { method = 'POST', path = '/v1/chat/completions', headers = {}, body } = request(i);
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const h = { ...headers };
    if (payload) { h['content-type'] = h['content-type'] || 'application/json'; h['content-length'] = payload.length; }
    const req = http.request({ host: '127.0.0.1', port: proxy.port, method, path, agent, headers: h }, (res) => {
      res.resume();
      res.on('end', () => { add(`${res.statusCode} ${res.headers['x-promptcache-status']}`); resolve(); });
      res.on('error', (e) => { add(e.code || 'error'); resolve(); });
    });
    req.setTimeout(15000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { add(e.code || e.message); resolve(); });
    req.end(payload);
  });
  const worker = async () => { while (next < n) await one(next++); };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return counts;
}
