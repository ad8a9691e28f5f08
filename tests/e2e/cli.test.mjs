// cli.test.mjs — command line, environment variables, access log, secrets,
// listeners and graceful shutdown.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import path from 'node:path';
import net from 'node:net';
import {
  setup, startMock, mockFor, startProxy, request, chat, closedPort, tryConnect,
  makeTmpDir, requireBin, childEnv, sleep, assertProxyError,
} from './lib/setup.mjs';
import { RawClient, rawRequest } from './lib/raw.mjs';
import { echoText } from './lib/mock.mjs';

/** Run the binary to completion (killed after timeoutMs). */
function runBin(args, { env = {}, timeoutMs = 5000 } = {}) {
  const bin = requireBin();
  return new Promise((resolve) => {
    const p = spawn(bin, args, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    p.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; p.kill('SIGKILL'); }, timeoutMs);
    p.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr, timedOut }); });
  });
}

test('--help prints usage and exits 0; --version prints "promptcache X.Y.Z"', async () => {
  const help = await runBin(['--help']);
  assert.equal(help.code, 0, `--help exit status; stderr: ${help.stderr}`);
  assert.match(help.stdout, /serve/, 'usage names the serve subcommand');
  assert.match(help.stdout, /--upstream/, 'usage lists options');
  const version = await runBin(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout.trim(), /^promptcache \d+\.\d+\.\d+$/);
});

test('bad options and unparsable values exit 2 with a one-line message', async (t) => {
  const dir = makeTmpDir(t);
  const db = path.join(dir, 'db');
  const safe = ['--listen', '127.0.0.1:0', '--db', db];
  const cases = [
    { args: ['serve', ...safe, '--no-such-option'], names: /no-such-option/ },
    { args: ['serve', ...safe, '--key-scope', 'everyone'], names: /key-scope|everyone/ },
    { args: ['serve', ...safe, '--max-body', '12parsecs'], names: /max-body|12parsecs/ },
    { args: ['serve', ...safe, '--upstream-timeout', 'soon'], names: /upstream-timeout|soon/ },
    { args: ['serve', ...safe, '--client-timeout', '1fortnight'], names: /client-timeout|1fortnight/ },
    { args: ['serve', ...safe, '--idle-timeout', 'abc'], names: /idle-timeout|abc/ },
    { args: ['serve', ...safe, '--log-format', 'xml'], names: /log-format|xml/ },
    { args: ['serve', '--db', db, '--listen', 'not-an-address'], names: /listen|not-an-address/ },
    { args: ['serve', ...safe, '--route', 'no-equals-sign'], names: /route|no-equals-sign/ },
    { args: ['serve', ...safe, '--max-body'], names: /max-body/ },
    { args: ['frobnicate'], names: /frobnicate/ },
    { args: ['serve', ...safe], env: { PROMPTCACHE_KEY_SCOPE: 'bogus' }, names: /KEY_SCOPE|key-scope|bogus/i },
    { args: ['serve', ...safe], env: { PROMPTCACHE_MAX_BODY: 'lots' }, names: /MAX_BODY|max-body|lots/i },
  ];
  for (const c of cases) {
    const r = await runBin(c.args, { env: c.env });
    const what = `${JSON.stringify(c.args)} ${c.env ? JSON.stringify(c.env) : ''}`;
    assert.equal(r.timedOut, false, `${what}: did not exit (it should refuse to start); stderr: ${r.stderr}`);
    assert.equal(r.code, 2, `${what}: exit status ${r.code}; stderr: ${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l.trim());
    assert.equal(lines.length, 1, `${what}: a single-line message, got ${JSON.stringify(r.stderr)}`);
    assert.match(lines[0], c.names, `${what}: the message names the problem: ${lines[0]}`);
    assert.doesNotMatch(r.stderr, /listening on/);
  }
});

test('serve is the default subcommand', async (t) => {
  const mock = await mockFor(t, startMock);
  const dir = makeTmpDir(t);
  const proxy = await startProxy(t, { bare: true, args: ['--listen', '127.0.0.1:0', '--upstream', mock.url, '--db', path.join(dir, 'db')] });
  const r = await chat(proxy, 'default subcommand');
  assert.equal(r.status, 200);
  assert.equal(r.cache, 'MISS');
  assert.equal(mock.count(), 1);
});

test('options are read from PROMPTCACHE_* environment variables; flags win', async (t) => {
  const mock = await mockFor(t, startMock);
  // PROMPTCACHE_KEY_SCOPE=shared: another credential hits
  const shared = await startProxy(t, { upstream: mock, env: { PROMPTCACHE_KEY_SCOPE: 'shared' } });
  const a = await chat(shared, 'env scope', { headers: { authorization: 'Bearer sk-test-env-a' } });
  const b = await chat(shared, 'env scope', { headers: { authorization: 'Bearer sk-test-env-b' } });
  assert.deepEqual([a.cache, b.cache], ['MISS', 'HIT'], 'PROMPTCACHE_KEY_SCOPE=shared applies');
  // the flag wins over the environment
  const flag = await startProxy(t, { upstream: mock, env: { PROMPTCACHE_KEY_SCOPE: 'shared' }, args: ['--key-scope', 'credential'] });
  const c = await chat(flag, 'env scope', { headers: { authorization: 'Bearer sk-test-env-a' } });
  const d = await chat(flag, 'env scope', { headers: { authorization: 'Bearer sk-test-env-b' } });
  assert.deepEqual([c.cache, d.cache], ['MISS', 'MISS'], '--key-scope credential beats PROMPTCACHE_KEY_SCOPE=shared');
  // a size and an URL from the environment
  const fromEnv = await startProxy(t, { bare: true, args: ['serve', '--listen', '127.0.0.1:0', '--db', path.join(makeTmpDir(t), 'db')], env: { PROMPTCACHE_UPSTREAM: mock.url, PROMPTCACHE_MAX_BODY: '1k' } });
  const before = mock.count();
  const small = await chat(fromEnv, 'env upstream');
  assert.equal(small.status, 200, 'PROMPTCACHE_UPSTREAM points at the mock');
  assert.equal(mock.count(), before + 1);
  const big = await chat(fromEnv, 'q'.repeat(3000));
  assertProxyError(assert, big, 413, 'payload_too_large');
  // --max-body flag beats PROMPTCACHE_MAX_BODY
  const bigOk = await startProxy(t, { upstream: mock, env: { PROMPTCACHE_MAX_BODY: '1k' }, args: ['--max-body', '1M'] });
  const r = await chat(bigOk, 'q'.repeat(3000));
  assert.equal(r.status, 200);
});

function jsonLogLines(proxy) {
  return proxy.logLines().filter((l) => l.trim().startsWith('{')).map((l) => JSON.parse(l));
}

test('--log-format json: one JSON object per request with time, method, path, status, cache, key, bytes, upstream_ms, total_ms', async (t) => {
  const { proxy } = await setup(t, { args: ['--log-format', 'json'] });
  const miss = await chat(proxy, 'log me');
  const hit = await chat(proxy, 'log me');
  const bypass = await request(proxy, { path: '/v1/models' });
  const err = await chat(proxy, 'log an error', { headers: { 'x-mock-behavior': 'status=500' } });
  assert.deepEqual([miss.cache, hit.cache, bypass.cache, err.status], ['MISS', 'HIT', 'BYPASS', 500]);
  await proxy.waitFor((p) => jsonLogLines(p).length >= 4, 3000, 'four JSON access-log lines');
  for (const l of proxy.logLines()) {
    if (l.includes('/v1/')) assert.doesNotThrow(() => JSON.parse(l), `every access-log line is JSON: ${l}`);
  }
  const lines = jsonLogLines(proxy);
  assert.equal(lines.length, 4, `one line per request: ${JSON.stringify(lines)}`);
  const expected = [
    { method: 'POST', path: '/v1/chat/completions', status: 200, cache: 'MISS', key: miss.key },
    { method: 'POST', path: '/v1/chat/completions', status: 200, cache: 'HIT', key: hit.key },
    { method: 'GET', path: '/v1/models', status: 200, cache: 'BYPASS' },
    { method: 'POST', path: '/v1/chat/completions', status: 500, cache: 'MISS', key: err.key },
  ];
  for (const [i, e] of expected.entries()) {
    const l = lines[i];
    for (const f of ['time', 'method', 'path', 'status', 'cache', 'key', 'bytes', 'upstream_ms', 'total_ms']) {
      assert.ok(f in l, `line ${i} has field ${f}: ${JSON.stringify(l)}`);
    }
    assert.ok(!Number.isNaN(Date.parse(l.time)), `time is a timestamp: ${l.time}`);
    assert.ok(Math.abs(Date.now() - Date.parse(l.time)) < 60000, `time is now: ${l.time}`);
    assert.equal(l.method, e.method);
    assert.equal(l.path, e.path);
    assert.equal(Number(l.status), e.status);
    assert.equal(l.cache, e.cache);
    if (e.key) assert.equal(l.key, e.key, `line ${i} key`);
    assert.equal(typeof l.bytes, 'number');
    assert.equal(typeof l.total_ms, 'number');
    assert.ok(l.total_ms >= 0);
  }
  assert.ok(lines[0].bytes >= miss.body.length, `bytes of the MISS (${lines[0].bytes}) cover its body (${miss.body.length})`);
  assert.equal(typeof lines[0].upstream_ms, 'number', 'a MISS has an upstream latency');
});

test('--log-format text (default): one line per request with method, path, status, cache status and key', async (t) => {
  const { proxy } = await setup(t);
  const miss = await chat(proxy, 'text log');
  const hit = await chat(proxy, 'text log');
  await request(proxy, { path: '/v1/models?limit=2' });
  const access = () => proxy.logLines().filter((l) => l.includes('/v1/'));
  await proxy.waitFor(() => access().length >= 3, 3000, 'three access-log lines');
  const lines = access();
  assert.equal(lines.length, 3, `one line per request: ${JSON.stringify(lines)}`);
  assert.match(lines[0], /POST/);
  assert.match(lines[0], /\/v1\/chat\/completions/);
  assert.match(lines[0], /\b200\b/);
  assert.match(lines[0], /\bMISS\b/);
  assert.ok(lines[0].includes(miss.key), `the key appears in the line: ${lines[0]}`);
  assert.match(lines[1], /\bHIT\b/);
  assert.ok(lines[1].includes(hit.key));
  assert.match(lines[2], /GET/);
  assert.match(lines[2], /\/v1\/models/);
  assert.match(lines[2], /\bBYPASS\b/);
});

/** Files under dir containing needle (binary-safe, via grep). */
function grepFiles(dir, needle) {
  return new Promise((resolve) => {
    execFile('grep', ['-rlaF', '--', needle, dir], (err, stdout) => resolve(err ? [] : stdout.split('\n').filter(Boolean)));
  });
}

test('credentials never appear in the log nor in the database files', async (t) => {
  const secrets = {
    authorization: 'sk-e2e-SECRET-authz-0123456789',
    'x-api-key': 'sk-ant-e2e-SECRET-xapikey-9876',
    'api-key': 'azure-e2e-SECRET-apikey-5555',
    cookie: 'e2e-SECRET-cookie-4242',
  };
  const headers = { authorization: `Bearer ${secrets.authorization}`, 'x-api-key': secrets['x-api-key'], 'api-key': secrets['api-key'], cookie: `session=${secrets.cookie}` };
  const mock = await mockFor(t, startMock);
  const dead = await closedPort();
  for (const format of ['text', 'json']) {
    const proxy = await startProxy(t, { upstream: mock, args: ['--log-format', format, '--route', `/dead=http://127.0.0.1:${dead}`] });
    const miss = await chat(proxy, `secret ${format}`, { headers });
    const hit = await chat(proxy, `secret ${format}`, { headers });
    const msg = await request(proxy, { method: 'POST', path: '/v1/messages', headers, body: { model: 'claude', max_tokens: 8, messages: [{ role: 'user', content: 's' }] } });
    const err = await chat(proxy, `secret error ${format}`, { headers: { ...headers, 'x-mock-behavior': 'status=401' } });
    const bypass = await request(proxy, { path: '/v1/models', headers });
    const bad = await chat(proxy, `secret dead ${format}`, { headers, path: '/dead/v1/chat/completions' });
    assert.deepEqual([miss.cache, hit.cache, msg.status, err.status, bypass.cache, bad.status], ['MISS', 'HIT', 200, 401, 'BYPASS', 502]);
    for (const s of Object.values(secrets)) assert.ok(!bad.text.includes(s), 'the 502 body does not echo the credential');
    assert.equal(mock.last().headers.authorization, headers.authorization, 'the credential itself is forwarded upstream');
    const st = await proxy.stop();
    assert.equal(st.code, 0);
    const stderr = proxy.allStderr();
    assert.ok(stderr.length > 0, 'there is an access log');
    for (const [name, s] of Object.entries(secrets)) {
      assert.ok(!stderr.includes(s), `${format} log contains the ${name} value`);
      const files = await grepFiles(proxy.tmpDir, s);
      assert.deepEqual(files, [], `the ${name} value was written to ${files.join(', ')}`);
    }
  }
});

test('one "listening on" line per --listen; every listener serves the same cache', async (t) => {
  const { mock, proxy } = await setup(t, { listen: 2 });
  assert.equal(proxy.ports.length, 2);
  assert.notEqual(proxy.ports[0], proxy.ports[1]);
  const a = await chat(proxy, 'two listeners', { port: proxy.ports[0] });
  const b = await chat(proxy, 'two listeners', { port: proxy.ports[1] });
  assert.deepEqual([a.cache, b.cache], ['MISS', 'HIT']);
  assert.equal(mock.count(), 1);
});

test('an IPv6 listener ([::1]:PORT) serves next to an IPv4 one', async (t) => {
  const probe = net.createServer();
  const v6 = await new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
  if (!v6) { t.skip('no IPv6 loopback on this machine'); return; }
  const { mock, proxy } = await setup(t, { listen: ['127.0.0.1:0', '[::1]:0'] });
  assert.deepEqual(proxy.listeners.map((l) => l.host), ['127.0.0.1', '::1']);
  const a = await chat(proxy, 'over ipv4', { port: proxy.listeners[0].port });
  const b = await chat(proxy, 'over ipv4', { host: '::1', port: proxy.listeners[1].port });
  assert.deepEqual([a.status, b.status], [200, 200]);
  assert.deepEqual([a.cache, b.cache], ['MISS', 'HIT']);
  assert.equal(mock.count(), 1);
});

test('SIGTERM: an in-flight slow request still completes, new connections are refused, exit status 0', async (t) => {
  const { mock, proxy } = await setup(t);
  // an idle keep-alive connection must not hold the shutdown up
  const idle = await RawClient.connect(proxy.port);
  t.after(() => idle.destroy());
  await idle.write(rawRequest('GET', '/v1/models'));
  await idle.readResponses(1);

  const inflight = chat(proxy, 'finish me first', { headers: { 'x-mock-behavior': 'delay=1500' } });
  await mock.waitForRequests(2);
  const sigAt = performance.now();
  proxy.kill('SIGTERM');
  await sleep(300);
  assert.equal(proxy.exitStatus, null, 'the proxy waits for the in-flight request');
  assert.equal(await tryConnect(proxy.port), 'ECONNREFUSED', 'no new connections once shutting down');
  const r = await inflight;
  const doneAt = performance.now();
  assert.equal(r.status, 200);
  assert.equal(r.json.choices[0].message.content, echoText('finish me first'));
  assert.ok(doneAt - sigAt >= 1000, 'the response really was in flight during the SIGTERM');
  const st = await Promise.race([proxy.exited, sleep(4000).then(() => null)]);
  assert.ok(st, 'the proxy exits after the last response');
  assert.deepEqual({ code: st.code, signal: st.signal }, { code: 0, signal: null });
  assert.ok(performance.now() - doneAt < 3000, `exited ${performance.now() - doneAt} ms after the last response`);
  assert.equal(await tryConnect(proxy.port), 'ECONNREFUSED');
});
