// slowclient.test.mjs — a client that stops reading while upstream keeps
// sending cannot make the proxy buffer without bound: past 32 MiB queued it
// is cut off, and the proxy goes on serving.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setup, request } from './lib/setup.mjs';

test('a client that stops reading is cut off once 32 MiB are queued for it', async (t) => {
  const { mock, proxy } = await setup(t);
  const piece = Buffer.alloc(256 * 1024, 'z');
  mock.handler = async (req, res) => {
    if (req.url !== '/v1/big') return false;
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    let sent = 0;
    const more = () => {
      while (sent < 64 * 1024 * 1024) { // 64 MiB, far past the bound
        sent += piece.length;
        if (!res.write(piece)) return res.once('drain', more);
      }
      res.end();
    };
    more();
    return true;
  };
  const sock = net.connect({ host: '127.0.0.1', port: proxy.port });
  t.after(() => sock.destroy());
  await new Promise((r) => sock.once('connect', r));
  sock.pause(); // never read
  sock.write('GET /v1/big HTTP/1.1\r\nHost: x\r\n\r\n');
  await proxy.waitFor((p) => /client too slow/.test(p.stderr), 20000, 'the slow client to be cut off');
  const h = await request(proxy, { path: '/_promptcache/health' });
  assert.equal(h.status, 200, 'the proxy keeps serving');
  assert.equal(mock.count('/v1/big'), 1);
});
