// tls.test.mjs — HTTPS upstreams: certificates are verified; --upstream-ca
// adds a private CA (on top of the system CAs) so a private upstream works.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { startProxy, chat, makeTmpDir, assertProxyError } from './lib/setup.mjs';

/** A throwaway CA and a server certificate for 127.0.0.1 signed by it. */
function makePki(dir) {
  const o = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  o('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=promptcache test CA');
  o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  o('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '2', '-extfile', 'ext.cnf');
  return { ca: path.join(dir, 'ca.pem'), key: fs.readFileSync(path.join(dir, 'srv.key')), cert: fs.readFileSync(path.join(dir, 'srv.pem')) };
}

async function httpsUpstream(t, pki) {
  let count = 0;
  const server = https.createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
    req.resume();
    req.on('end', () => {
      count++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: `tls-${count}`, object: 'chat.completion', choices: [{ message: { role: 'assistant', content: 'over tls' } }] }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => { server.closeAllConnections(); server.close(r); }));
  return { url: `https://127.0.0.1:${server.address().port}`, count: () => count };
}

test('an HTTPS upstream signed by a private CA works with --upstream-ca, and is cached', async (t) => {
  const pki = makePki(makeTmpDir(t));
  const up = await httpsUpstream(t, pki);
  const proxy = await startProxy(t, { upstream: up.url, args: ['--upstream-ca', pki.ca] });
  const a = await chat(proxy, 'secure hello');
  assert.equal(a.status, 200, a.text);
  assert.equal(a.cache, 'MISS');
  assert.equal(JSON.parse(a.text).choices[0].message.content, 'over tls');
  const b = await chat(proxy, 'secure hello');
  assert.equal(b.cache, 'HIT');
  assert.equal(up.count(), 1);
});

test('without --upstream-ca the same upstream fails verification: 502, nothing cached', async (t) => {
  const pki = makePki(makeTmpDir(t));
  const up = await httpsUpstream(t, pki);
  const proxy = await startProxy(t, { upstream: up.url });
  const a = await chat(proxy, 'insecure hello');
  assertProxyError(assert, a, 502, 'upstream_unreachable');
  assert.equal(up.count(), 0, 'no request was sent over an unverified connection');
});
