// garbage.test.mjs — no input can crash the proxy: a bounded batch of random
// and half-valid byte streams, after which it still answers, and the cache
// still hits.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { setup, chat, request } from './lib/setup.mjs';

const PREFIXES = [
  '', 'GET / HTTP/1.1\r\n', 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n',
  'POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
  'POST /v1/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{"a":',
  'GET /_promptcache/stats?x=\u0000 HTTP/1.1\r\n\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n',
  'POST /v1/messages HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}',
];

/** Send bytes, wait for the server to answer or close (bounded), then destroy. */
function blast(port, bytes) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = () => { s.destroy(); resolve(); };
    s.setTimeout(300, done);
    s.on('error', done);
    s.on('close', done);
    s.on('data', () => {});
    s.on('connect', () => s.write(bytes));
  });
}

test('random and half-valid byte streams never crash the proxy', async (t) => {
  const { proxy } = await setup(t, { args: ['--client-timeout', '1s'] });
  const first = await chat(proxy, 'before the garbage');
  assert.equal(first.cache, 'MISS');
  let seed = 1;
  for (let i = 0; i < 300; i++) {
    const prefix = Buffer.from(PREFIXES[i % PREFIXES.length], 'latin1');
    const junk = crypto.createHash('sha512').update(String(seed++)).digest();
    const bytes = Buffer.concat([prefix, junk.subarray(0, i % 64)]);
    await blast(proxy.port, bytes);
  }
  const h = await request(proxy, { path: '/_promptcache/health' });
  assert.equal(h.status, 200);
  const again = await chat(proxy, 'before the garbage');
  assert.equal(again.cache, 'HIT', 'the cache is intact');
  assert.equal(again.text, first.text);
  assert.equal(proxy.exitStatus, null, 'still running');
});
