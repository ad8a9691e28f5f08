// proxy.mjs — start/stop the promptcache binary under test, and talk to it.
//
// startProxy(t, opts) runs
//   $PROMPTCACHE_BIN serve --listen 127.0.0.1:0 --upstream <url> --db <fresh tmp dir>/db [args...]
// waits for one "promptcache: listening on 127.0.0.1:<port>" stderr line per
// listener, and registers a t.after hook that stops the process (SIGTERM, then
// SIGKILL after 5 s) and removes the temporary directory. The hook fails the test
// when the proxy crashed on its own, ignored SIGTERM, or a sanitizer reported an
// error on stderr: no input may crash the proxy.
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import net from 'node:net';

export const BIN = process.env.PROMPTCACHE_BIN;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const HEX32 = /^[0-9a-f]{32}$/;
const LISTEN_RE = /^promptcache: listening on (127\.0\.0\.1|\[::1\]):(\d+)/;
const SANITIZER_RE = /(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error:)/;

export function requireBin() {
  if (!BIN) throw new Error('PROMPTCACHE_BIN is not set: run via `make e2e` or set it to the absolute path of build/promptcache');
  if (!path.isAbsolute(BIN)) throw new Error(`PROMPTCACHE_BIN must be an absolute path, got ${BIN}`);
  if (!fs.existsSync(BIN)) throw new Error(`PROMPTCACHE_BIN=${BIN} does not exist (build it with make)`);
  return BIN;
}

/** Environment for the child: ours minus every PROMPTCACHE_* option variable, plus `extra`. */
export function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('PROMPTCACHE_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export function makeTmpDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'promptcache-e2e-'));
  if (t) t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Start the proxy. opts:
 *   upstream: URL (or a mock object with .url)      default upstream
 *   args: extra argv after the defaults
 *   env: extra environment variables
 *   listen: number of `--listen 127.0.0.1:0` flags (default 1), or an array of addresses
 *   dbDir: reuse this db directory (default: <tmp>/db)
 *   bare: argv is exactly [ ...args ] (no serve/--listen/--upstream/--db added)
 *   wrap: argv prefix that runs the binary, e.g. ['prlimit', '--fsize=300000'];
 *         it must exec the binary (prlimit, setpriv, env do), so that
 *         proxy.proc.pid and the signals sent to it are the proxy's own
 */
export async function startProxy(t, opts = {}) {
  requireBin();
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'promptcache-e2e-'));
  const proxy = {
    tmpDir,
    dbDir: opts.dbDir || path.join(tmpDir, 'db'),
    opts,
    proc: null,
    port: 0,
    ports: [],
    url: '',
    stderr: '',
    stdout: '',
    exited: null, // promise of {code, signal}
    exitStatus: null,
    expectExit: false,
    problems: [],
    history: [], // stderr of previous runs (restart)
  };

  proxy.argv = () => {
    if (opts.bare) return [...(opts.args || [])];
    const upstream = typeof opts.upstream === 'string' ? opts.upstream : opts.upstream && opts.upstream.url;
    const argv = ['serve'];
    const addrs = Array.isArray(opts.listen) ? opts.listen : Array(opts.listen || 1).fill('127.0.0.1:0');
    for (const a of addrs) argv.push('--listen', a);
    if (upstream) argv.push('--upstream', upstream);
    argv.push('--db', proxy.dbDir, ...(opts.args || []));
    // make tsan runs every proxy with several event loops (PC_TEST_WORKERS=4)
    const workers = process.env.PC_TEST_WORKERS;
    if (workers && !argv.some((a) => a === '--workers' || a.startsWith('--workers='))) argv.push('--workers', workers);
    return argv;
  };

  proxy.start = async () => {
    const argv = proxy.argv();
    const cmd = [...(opts.wrap || []), BIN, ...argv];
    const proc = spawn(cmd[0], cmd.slice(1), { env: childEnv(opts.env || {}), stdio: ['ignore', 'pipe', 'pipe'] });
    proxy.proc = proc;
    proxy.stderr = '';
    proxy.stdout = '';
    proxy.exitStatus = null;
    proxy.expectExit = false;
    proxy.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        proxy.exitStatus = { code, signal };
        if (!proxy.expectExit) {
          proxy.problems.push(`proxy exited unexpectedly (code ${code}, signal ${signal})`);
        }
        resolve(proxy.exitStatus);
      });
      proc.on('error', (err) => {
        proxy.exitStatus = { code: -1, signal: null, error: err };
        proxy.problems.push(`spawn failed: ${err.message}`);
        resolve(proxy.exitStatus);
      });
    });
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => { proxy.stdout += d; });
    proc.stderr.setEncoding('utf8');
    const want = opts.bare ? 1 : Array.isArray(opts.listen) ? opts.listen.length : opts.listen || 1;
    const ports = [];
    const listeners = [];
    const ready = new Promise((resolve, reject) => {
      let partial = '';
      const timer = setTimeout(() => reject(new Error(`proxy did not print its listening line within 10 s; argv=${JSON.stringify(argv)}\nstderr:\n${proxy.stderr}`)), 10000);
      proc.stderr.on('data', (d) => {
        proxy.stderr += d;
        partial += d;
        let nl;
        while ((nl = partial.indexOf('\n')) >= 0) {
          const line = partial.slice(0, nl);
          partial = partial.slice(nl + 1);
          const m = LISTEN_RE.exec(line);
          if (m && ports.length < want) {
            ports.push(Number(m[2]));
            listeners.push({ host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) });
            if (ports.length === want) { clearTimeout(timer); resolve(); }
          }
        }
      });
      proxy.exited.then((st) => {
        clearTimeout(timer);
        reject(new Error(`proxy exited before listening (code ${st.code}, signal ${st.signal}${st.error ? `, ${st.error.message}` : ''}); argv=${JSON.stringify(argv)}\nstderr:\n${proxy.stderr}`));
      });
    });
    try {
      await ready;
    } catch (err) {
      proxy.expectExit = true;
      if (proxy.exitStatus === null) { proc.kill('SIGKILL'); await proxy.exited; }
      proxy.problems.length = 0;
      throw err;
    }
    proxy.ports = ports;
    proxy.listeners = listeners;
    proxy.port = ports[0];
    proxy.url = `http://127.0.0.1:${proxy.port}`;
    return proxy;
  };

  /** Send a signal the test expects the proxy to exit from. */
  proxy.kill = (signal = 'SIGTERM') => {
    proxy.expectExit = true;
    if (proxy.exitStatus === null) proxy.proc.kill(signal);
  };

  /** SIGTERM, wait up to 5 s, then SIGKILL. Resolves to {code, signal, killed}. */
  proxy.stop = async (graceMs = 5000) => {
    if (!proxy.proc) return null;
    proxy.expectExit = true;
    if (proxy.exitStatus !== null) return { ...proxy.exitStatus, killed: false };
    proxy.proc.kill('SIGTERM');
    let timer;
    const timedOut = await Promise.race([
      proxy.exited.then(() => false),
      new Promise((r) => { timer = setTimeout(() => r(true), graceMs); }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      proxy.problems.push(`proxy did not exit within ${graceMs} ms of SIGTERM`);
      proxy.proc.kill('SIGKILL');
      await proxy.exited;
      return { ...proxy.exitStatus, killed: true };
    }
    return { ...proxy.exitStatus, killed: false };
  };

  /** Stop (SIGTERM, or `signal` e.g. SIGKILL) and start again on the same db directory (new port). */
  proxy.restart = async ({ signal = 'SIGTERM' } = {}) => {
    let st;
    if (signal === 'SIGTERM') {
      st = await proxy.stop();
    } else {
      proxy.kill(signal);
      st = await proxy.exited;
    }
    proxy.history.push(proxy.stderr);
    await proxy.start();
    return st;
  };

  /** Every stderr byte of this proxy, across restarts. */
  proxy.allStderr = () => proxy.history.join('') + proxy.stderr;

  /** Access-log lines (stderr lines other than the listening lines). */
  proxy.logLines = () => proxy.stderr.split('\n').filter((l) => l.trim() && !LISTEN_RE.test(l));

  /** Poll until `pred(proxy)` is truthy. */
  proxy.waitFor = async (pred, timeoutMs = 3000, what = 'condition') => {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const v = pred(proxy);
      if (v) return v;
      if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr:\n${proxy.stderr}`);
      await sleep(20);
    }
  };

  if (t) {
    t.after(async () => {
      try {
        await proxy.stop();
        const all = proxy.allStderr();
        const san = SANITIZER_RE.exec(all);
        if (san) proxy.problems.push(`sanitizer report on stderr:\n${all.slice(Math.max(0, san.index - 200), san.index + 3000)}`);
        if (proxy.problems.length) {
          throw new Error(`${proxy.problems.join('\n')}\n--- stderr tail ---\n${all.slice(-3000)}`);
        }
      } finally {
        fs.rmSync(tmpDir, { recursive: true, force: true });
      }
    });
  }
  try {
    await proxy.start();
  } catch (err) {
    if (!t) fs.rmSync(tmpDir, { recursive: true, force: true });
    throw err;
  }
  return proxy;
}

/**
 * One HTTP request on a fresh connection. `body` may be a string, a Buffer or an
 * object (sent as JSON). Resolves to {status, headers, body, text, json, cache, key}.
 */
export function request(proxy, { method = 'GET', path: p = '/', headers = {}, body, port, host = '127.0.0.1', timeoutMs = 15000 } = {}) {
  let payload;
  const hdrs = { ...headers };
  if (body !== undefined && body !== null) {
    if (Buffer.isBuffer(body)) payload = body;
    else if (typeof body === 'string') payload = Buffer.from(body);
    else payload = Buffer.from(JSON.stringify(body));
    const hasCT = Object.keys(hdrs).some((k) => k.toLowerCase() === 'content-type');
    if (!hasCT) hdrs['content-type'] = 'application/json';
    const hasCL = Object.keys(hdrs).some((k) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding');
    if (!hasCL) hdrs['content-length'] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request({
      host,
      port: port || proxy.port,
      method,
      path: p,
      headers: hdrs,
      agent: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        const out = {
          status: res.statusCode,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: buf,
          text: buf.toString('utf8'),
          cache: res.headers['x-promptcache-status'],
          key: res.headers['x-promptcache-key'],
          ms: performance.now() - started,
        };
        Object.defineProperty(out, 'json', {
          get() {
            try { return JSON.parse(out.text); } catch (e) { throw new Error(`response body is not JSON (status ${out.status}): ${out.text.slice(0, 500)}`); }
          },
        });
        resolve(out);
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`request ${method} ${p} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** An OpenAI chat-completions body. */
export function chatBody(content, extra = {}) {
  return { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra };
}

/** POST /v1/chat/completions through the proxy. */
export function chat(proxy, content, { headers = {}, extra = {}, path: p = '/v1/chat/completions', port, host } = {}) {
  return request(proxy, { method: 'POST', path: p, headers, body: chatBody(content, extra), port, host });
}

/** Run curl; resolves to {code, stdout (Buffer), stderr (string)}. */
export function curl(args, { timeoutMs = 20000 } = {}) {
  return new Promise((resolve) => {
    execFile('curl', ['--silent', '--show-error', '--noproxy', '*', ...args], { encoding: 'buffer', maxBuffer: 256 << 20, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr: stderr.toString('utf8') });
    });
  });
}

/**
 * Split `curl -i` output into the final response: {status, headers, body, interim: [status...]}.
 * Interim 1xx blocks are collected in `interim`.
 */
export function parseCurlInclude(buf) {
  let rest = buf;
  const interim = [];
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`curl output without a header block: ${rest.toString('utf8').slice(0, 300)}`);
    const head = rest.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(head[0].split(' ')[1]);
    rest = rest.subarray(end + 4);
    if (status >= 100 && status < 200) { interim.push(status); continue; }
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i < 0) continue;
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    return { status, headers, body: rest, text: rest.toString('utf8'), interim };
  }
}

/** A port on 127.0.0.1 that nothing listens on (bound then closed). */
export async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** Try to connect; resolves 'connected' or the error code (e.g. 'ECONNREFUSED'). */
export function tryConnect(port, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => { s.destroy(); resolve('timeout'); }, timeoutMs);
    s.on('connect', () => { clearTimeout(timer); s.destroy(); resolve('connected'); });
    s.on('error', (e) => { clearTimeout(timer); resolve(e.code || 'error'); });
  });
}

/** Assert the proxy's own JSON error shape; returns the parsed body. */
export function assertProxyError(assert, res, status, code) {
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${res.text}`);
  assert.match(String(res.headers['content-type'] || ''), /^application\/json/i, `content-type of a proxy error: ${res.headers['content-type']}`);
  const j = res.json;
  assert.ok(j && typeof j.error === 'object', `error body has an "error" object: ${res.text}`);
  assert.equal(j.error.type, 'promptcache_error', `error.type: ${res.text}`);
  assert.equal(j.error.code, code, `error.code: ${res.text}`);
  assert.equal(typeof j.error.message, 'string');
  assert.ok(j.error.message.length > 0, 'error.message is not empty');
  return j;
}

/** Start a mock and register its shutdown. */
export async function mockFor(t, startMock, opts) {
  const m = await startMock(opts);
  t.after(() => m.close());
  return m;
}
