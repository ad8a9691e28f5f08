// load.mjs — bounded load for fault tests: `n` requests, `concurrency` at a
// time over keep-alive connections; resolves to the count of each
// "<status> <X-PromptCache-Status>" outcome (or the error code).
// `spacingMs` (default 0: each worker sends its next request as soon as the
// previous one is answered) paces the starts instead: request i is sent no
// earlier than i * spacingMs after the first, so arrivals keep coming while
// earlier requests wait (still at most `concurrency` at a time).
import http from 'node:http';

export async function flood(proxy, { n, concurrency = 16, request, spacingMs = 0 }) {
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
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const wait = t0 + i * spacingMs - performance.now();
      if (spacingMs && wait > 0) await new Promise((r) => setTimeout(r, wait));
      await one(i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return counts;
}
