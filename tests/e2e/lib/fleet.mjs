// fleet.mjs — helpers for the fleet (shared Redis tier) end-to-end tests:
// start N promptcache nodes on one Redis (standalone or Cluster), read their
// admin endpoints, poll with deadlines, stream responses with timing, run the
// fleet subcommands, and a small binary-safe RESP client (with MOVED/ASK
// following for a Cluster) to inspect and damage what the nodes stored.
// Everything talks to 127.0.0.1 only; every process is stopped by the
// t.after hooks of proxy.mjs / redis.mjs.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startMock } from './mock.mjs';
import { startProxy, mockFor, request, chatBody, requireBin, childEnv, sleep } from './proxy.mjs';
import { SANITIZER_RE } from './cli.mjs';

export const REDIS_TIMEOUT = '250ms';
export const PREFIX = 'pc:';

/** Poll `fn` (may be async) until it returns a truthy value; throws after timeoutMs. */
export async function waitUntil(fn, { timeoutMs = 5000, intervalMs = 25, what = 'condition' } = {}) {
  const end = performance.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (performance.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
    }
    await sleep(intervalMs); // polling interval, not a synchronization
  }
}

/** `--redis URL...` and the shared test defaults. */
export function redisArgs(urls, { timeout = REDIS_TIMEOUT, prefix } = {}) {
  const a = [];
  for (const u of urls) a.push('--redis', u);
  a.push('--redis-timeout', timeout);
  if (prefix) a.push('--redis-prefix', prefix);
  return a;
}

/**
 * Start `n` nodes (each its own LMDB, own port) on the given Redis URLs, in
 * front of one mock upstream (a fresh one unless `mock` is given), and wait
 * until each says "shared":"up" on /health.
 */
export async function startFleet(t, { urls, n = 3, mock, args = [], timeout = REDIS_TIMEOUT, waitUp = true } = {}) {
  const m = mock || (await mockFor(t, startMock));
  const nodes = await Promise.all(Array.from({ length: n }, () => startProxy(t, { upstream: m, args: [...redisArgs(urls, { timeout }), ...args] })));
  if (waitUp) await Promise.all(nodes.map((p) => waitShared(p, 'up', 10000)));
  return { mock: m, nodes };
}

export async function getJson(node, p) {
  const r = await request(node, { path: p, timeoutMs: 5000 });
  assert.equal(r.status, 200, `GET ${p}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}

export const stats = (node) => getJson(node, '/_promptcache/stats');
export const health = (node) => getJson(node, '/_promptcache/health');

/**
 * Poll /stats until pred(stats) is truthy; resolves to those stats. The shared
 * tier's counters ("shared") are copied into /stats about once a second, so a
 * test reads them with this rather than once.
 */
export async function waitStats(node, pred, { what = 'a /stats condition', timeoutMs = 3000 } = {}) {
  let last;
  try {
    return await waitUntil(async () => {
      last = await stats(node);
      return pred(last) ? last : null;
    }, { timeoutMs, intervalMs: 50, what });
  } catch (err) {
    err.message += `; last /stats of :${node.port}: totals ${JSON.stringify(last && last.totals)} shared ${JSON.stringify(last && last.shared)}`;
    throw err;
  }
}

export async function metrics(node) {
  const r = await request(node, { path: '/_promptcache/metrics', timeoutMs: 5000 });
  assert.equal(r.status, 200, `GET /_promptcache/metrics: ${r.status}`);
  return r.text;
}

/** Wait until /health says "shared":want ("up" | "down"). */
export async function waitShared(node, want, timeoutMs = 8000) {
  return waitUntil(async () => (await health(node)).shared === want, { timeoutMs, what: `node :${node.port} to report "shared":"${want}"` });
}

/** POST a chat completion; `headers` extra request headers. */
export function ask(node, content, headers = {}, extra = {}) {
  return request(node, { method: 'POST', path: '/v1/chat/completions', headers, body: chatBody(content, extra) });
}

/** Probe without going upstream and without storing: 200 (cached somewhere) or 504. */
export async function probe(node, content, headers = {}, extra = {}) {
  const r = await ask(node, content, { ...headers, 'cache-control': 'only-if-cached' }, extra);
  return r;
}

/** Wait until `content` is no longer served by `node` (only-if-cached answers 504). */
export async function waitGone(node, content, { headers = {}, extra = {}, timeoutMs = 5000 } = {}) {
  return waitUntil(async () => (await probe(node, content, headers, extra)).status === 504, { timeoutMs, what: `"${content}" to be gone from node :${node.port}` });
}

/** Wait until a request for `content` on `node` is a local HIT (the shared hit's copy was committed). */
export async function waitLocal(node, content, { headers = {}, extra = {}, timeoutMs = 3000 } = {}) {
  return waitUntil(async () => {
    const r = await probe(node, content, headers, extra);
    return r.status === 200 && r.headers['x-promptcache-tier'] === 'local' ? r : null;
  }, { timeoutMs, what: `"${content}" to be a local hit on node :${node.port}` });
}

export function purgeVia(node, body) {
  return request(node, { method: 'POST', path: '/_promptcache/purge', body });
}

export const statusOf = (r) => r.headers['x-promptcache-status'];
export const tierOf = (r) => r.headers['x-promptcache-tier'];
export function tally(rs) {
  const m = {};
  for (const r of rs) m[statusOf(r)] = (m[statusOf(r)] || 0) + 1;
  return m;
}

/** kill -9 a node and wait until it is gone (its t.after hook then has nothing to do). */
export async function kill9(node) {
  node.kill('SIGKILL');
  await node.exited;
}

/**
 * Start a POST whose response is read as it arrives (the request is sent at
 * once). Returns a handle:
 *   out: {status, headers, text, events: [{at, text}], complete, error, t0, headAt, endAt}
 *        (times are performance.now() values: monotonic, so a wall-clock step on a
 *        fresh machine cannot stretch or shrink a measured interval)
 *   head: resolves when the head arrived (or the request failed)
 *   done: resolves when the response ended, was cut, or was aborted
 *   waitEvents(n): resolve once n SSE events arrived
 */
export function open(node, content, { headers = {}, extra = {}, path: p = '/v1/chat/completions', timeoutMs = 20000 } = {}) {
  const payload = Buffer.from(JSON.stringify(chatBody(content, extra)));
  const out = { status: 0, headers: {}, text: '', events: [], complete: false, error: null, t0: performance.now(), headAt: 0, endAt: 0 };
  let req;
  let headDone;
  const head = new Promise((r) => { headDone = r; });
  const done = new Promise((resolve) => {
    let settled = false;
    const finish = (err) => {
      if (settled) return;
      settled = true;
      if (err && !out.error) out.error = err;
      out.endAt = performance.now();
      headDone(out);
      resolve(out);
    };
    req = http.request({
      host: '127.0.0.1', port: node.port, method: 'POST', path: p, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': payload.length, ...headers },
    }, (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      out.headAt = performance.now();
      headDone(out);
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        const now = performance.now();
        out.text += d;
        pending += d;
        let m;
        while ((m = /\r?\n\r?\n/.exec(pending))) {
          out.events.push({ at: now, text: pending.slice(0, m.index + m[0].length) });
          pending = pending.slice(m.index + m[0].length);
        }
      });
      res.on('end', () => { out.complete = res.complete; finish(); });
      res.on('error', (e) => finish(e));
      res.on('close', () => { out.complete = out.complete || res.complete; finish(); });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${p} timed out after ${timeoutMs} ms`)));
    req.on('error', (e) => finish(e));
    req.end(payload);
  });
  const waitEvents = async (n, ms = 5000) => {
    const end = performance.now() + ms;
    while (out.events.length < n) {
      if (performance.now() > end) throw new Error(`waited ${ms} ms for ${n} events, got ${out.events.length}: ${out.text.slice(0, 300)}`);
      if (out.endAt) throw new Error(`response ended after ${out.events.length} events (wanted ${n}): ${out.error || out.text.slice(-300)}`);
      await sleep(5);
    }
  };
  return { out, head, done, waitEvents, abort: () => req.destroy() };
}

// ---------------------------------------------------------------------------
// Fleet subcommands (stats, purge) run in a temporary working directory.

export function runCli(t, args, { timeoutMs = 15000 } = {}) {
  const bin = requireBin();
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'promptcache-cli-'));
  t.after(() => fs.rmSync(cwd, { recursive: true, force: true }));
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (SANITIZER_RE.test(stderr)) reject(new Error(`sanitizer report from promptcache ${args.join(' ')}:\n${stderr}`));
      else resolve({ code, signal, stdout, stderr, cwd });
    });
  });
}

export async function runCliOk(t, args, opts) {
  const r = await runCli(t, args, opts);
  assert.equal(r.code, 0, `promptcache ${args.join(' ')} exited ${r.code} (signal ${r.signal}); stdout: ${r.stdout}; stderr: ${r.stderr}`);
  return r;
}

// ---------------------------------------------------------------------------
// A minimal binary-safe RESP2 client (one connection per command).

function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parse one reply at buf[pos]; returns [value, nextPos] or null when incomplete. Errors are {error: 'MSG'}. */
function parseReply(buf, pos) {
  const le = buf.indexOf('\r\n', pos);
  if (le < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.subarray(pos + 1, le).toString('latin1');
  const next = le + 2;
  switch (type) {
    case '+': return [line, next];
    case '-': return [{ error: line }, next];
    case ':': return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.subarray(next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const arr = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p);
        if (!r) return null;
        arr.push(r[0]);
        p = r[1];
      }
      return [arr, p];
    }
    default: throw new Error(`RESP: unexpected reply type ${JSON.stringify(type)}`);
  }
}

/** Send commands in order on one connection to 127.0.0.1:port; resolves to their replies. */
export function redisPipeline(port, cmds, { password = '', timeoutMs = 5000 } = {}) {
  const all = password ? [['AUTH', password], ...cmds] : cmds;
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const replies = [];
    let pos = 0;
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`redis :${port} did not answer within ${timeoutMs} ms`)); }, timeoutMs);
    s.on('connect', () => s.write(Buffer.concat(all.map(encode))));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const r = parseReply(buf, pos);
        if (!r) break;
        replies.push(r[0]);
        pos = r[1];
      }
      if (replies.length === all.length) {
        clearTimeout(timer);
        s.destroy();
        resolve(password ? replies.slice(1) : replies);
      }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/**
 * One command against a standalone server ({port}) or a cluster (redis.mjs
 * cluster object: starts at node 0 and follows MOVED / ASK, at most 5 times).
 */
export async function redisCmd(target, ...args) {
  let port = target.nodes ? target.nodes[0].port : target.port;
  let asking = false;
  for (let hop = 0; hop < 6; hop++) {
    const cmds = asking ? [['ASKING'], args] : [args];
    const replies = await redisPipeline(port, cmds);
    const r = replies[replies.length - 1];
    if (r && r.error) {
      const m = /^(MOVED|ASK) \d+ [^:]+:(\d+)/.exec(r.error);
      if (m && target.nodes) {
        port = Number(m[2]);
        asking = m[1] === 'ASK';
        continue;
      }
      throw new Error(`redis ${args.map(String).join(' ')}: ${r.error}`);
    }
    return r;
  }
  throw new Error(`redis ${args.join(' ')}: too many redirections`);
}

export const entryKey = (hex, prefix = PREFIX) => `${prefix}e:${hex}`;

// Redis Cluster key slot: CRC16 (XMODEM) of the key, or of its {hash tag}, mod 16384.
const CRC16_TABLE = (() => {
  const tab = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = (c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1) & 0xffff;
    tab[i] = c;
  }
  return tab;
})();

export function crc16(buf) {
  let crc = 0;
  for (const b of buf) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xff];
  return crc;
}

export function keySlot(key) {
  let s = key;
  const o = key.indexOf('{');
  if (o >= 0) {
    const c = key.indexOf('}', o + 1);
    if (c > o + 1) s = key.slice(o + 1, c);
  }
  return crc16(Buffer.from(s)) % 16384;
}
