// example_ci.test.mjs — the worked CI example in examples/ci/ really works:
//   - replay.sh passes offline against the committed fixtures/llm.jsonl (every
//     request a HIT, the upstream a closed port);
//   - a changed prompt makes replay.sh fail with the 424 explanation naming the
//     JSON pointer that differs, and promptcache's --fail-on-miss exit status;
//   - record.sh against the local stand-in (fake-openai.mjs) writes a fixture
//     identical in substance to the committed one, which replay.sh then passes.
// The scripts run in their own process group; a test fails if anything of
// theirs (proxy, npm, node) is still alive after they exit, and everything is
// killed on timeout.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = process.env.PROMPTCACHE_BIN;
const EXAMPLE = fileURLToPath(new URL('../../examples/ci/', import.meta.url));
const COMMITTED = path.join(EXAMPLE, 'fixtures', 'llm.jsonl');
const SANITIZER_RE = /(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error:)/;

test.before(() => {
  assert.ok(BIN && path.isAbsolute(BIN) && fs.existsSync(BIN), `PROMPTCACHE_BIN must be the absolute path of the built binary (got ${BIN})`);
  if (!fs.existsSync(path.join(EXAMPLE, 'node_modules', 'openai', 'package.json'))) {
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: EXAMPLE, encoding: 'utf8', timeout: 45000 });
    assert.equal(r.status, 0, `npm ci in examples/ci failed:\n${r.stdout}\n${r.stderr}`);
  }
});

/** Our environment without anything that would change the scripts' behaviour, plus `extra`. */
function scriptEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('PROMPTCACHE_') || k.startsWith('OPENAI_') || k.startsWith('NODE_TEST')) continue;
    if (k === 'SUMMARY_STYLE' || k === 'UPSTREAM' || k === 'FIXTURE' || k === 'PORT') continue;
    env[k] = v;
  }
  return { ...env, PROMPTCACHE_BIN: BIN, ...extra };
}

function groupAlive(pgid) {
  try { process.kill(-pgid, 0); return true; } catch { return false; }
}
function killGroup(pgid) {
  try { process.kill(-pgid, 'SIGKILL'); } catch { /* already gone */ }
}

/** Run examples/ci/<script> in its own process group; resolves to {code, signal, out, leftover, timedOut}. */
function runScript(script, extra = {}, timeoutMs = 25000) {
  return new Promise((resolve) => {
    const child = spawn('bash', [path.join(EXAMPLE, script)], {
      cwd: EXAMPLE, env: scriptEnv(extra), detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let timedOut = false;
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { timedOut = true; killGroup(child.pid); }, timeoutMs);
    child.on('close', async (code, signal) => {
      clearTimeout(timer);
      // give an orphan a moment to show itself, then make sure nothing survives
      await new Promise((r) => setTimeout(r, 50));
      const leftover = groupAlive(child.pid);
      if (leftover) killGroup(child.pid);
      resolve({ code, signal, out, leftover, timedOut });
    });
  });
}

function assertClean(r, what) {
  assert.equal(r.timedOut, false, `${what} did not finish in time:\n${r.out}`);
  assert.equal(r.leftover, false, `${what} left processes running:\n${r.out}`);
  assert.doesNotMatch(r.out, SANITIZER_RE, `${what}: sanitizer report:\n${r.out}`);
}

const entries = (file) => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

test('replay.sh passes offline against the committed recording: every request a HIT', { timeout: 40000 }, async () => {
  const recorded = entries(COMMITTED);
  assert.ok(recorded.length >= 3, 'the committed fixture holds the example suite');
  const r = await runScript('replay.sh');
  assertClean(r, 'replay.sh');
  assert.equal(r.code, 0, `replay.sh failed:\n${r.out}`);
  assert.match(r.out, /# pass 3\n# fail 0/);
  assert.match(r.out, /replay\.sh: OK/);
  const hits = r.out.split('\n').filter((l) => / POST \/v1\/chat\/completions 200 HIT [0-9a-f]{32} /.test(l));
  assert.equal(hits.length, recorded.length, `one HIT per recorded exchange:\n${r.out}`);
  assert.doesNotMatch(r.out, / MISS | 424 /);
});

test('a changed prompt fails replay.sh with a 424 naming the JSON pointer that differs', { timeout: 40000 }, async () => {
  const r = await runScript('replay.sh', { SUMMARY_STYLE: 'friendly' });
  assertClean(r, 'replay.sh');
  assert.notEqual(r.code, 0, `replay.sh must fail on a replay miss:\n${r.out}`);
  // what the SDK raised in the test, and what promptcache logged
  assert.match(r.out, /424 no recorded response for this request/);
  assert.match(r.out, /code: 'replay_miss'/);
  assert.match(r.out, /differs at \/messages\/0\/content \(recorded "Summarize the user's text in one plain sentence[^"]*", requested "Summarize the user's text in one friendly sentence/);
  assert.match(r.out, /warn replay miss POST \/v1\/chat\/completions key=[0-9a-f]{32}/);
  // the streamed request did not change and still hits
  assert.match(r.out, / 200 HIT [0-9a-f]{32} /);
  // --fail-on-miss: the proxy itself exits 1 and says why
  assert.match(r.out, /promptcache: 2 replay misses \(--fail-on-miss\)/);
  assert.match(r.out, /replay\.sh: FAILED \(npm test exit 1, promptcache exit 1\)/);
});

async function startFake(t) {
  const proc = spawn(process.execPath, [path.join(EXAMPLE, 'fake-openai.mjs'), '--port', '0'], {
    cwd: EXAMPLE, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const fake = { proc, out: '', requests: () => fake.out.split('\n').filter((l) => /^fake-openai: POST /.test(l)).length };
  const exited = new Promise((r) => proc.on('exit', r));
  t.after(async () => {
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  });
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { fake.out += d; });
  fake.port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fake-openai did not start:\n${fake.out}`)), 5000);
    proc.stdout.on('data', (d) => {
      fake.out += d;
      const m = /fake-openai: listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(fake.out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    exited.then((code) => { clearTimeout(timer); reject(new Error(`fake-openai exited (${code}):\n${fake.out}`)); });
  });
  return fake;
}

test('record.sh against the local stand-in, then replay.sh of that recording', { timeout: 50000 }, async (t) => {
  const fake = await startFake(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'promptcache-example-ci-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fixture = path.join(dir, 'recorded', 'llm.jsonl');

  const rec = await runScript('record.sh', {
    UPSTREAM: `http://127.0.0.1:${fake.port}`, FIXTURE: fixture, OPENAI_API_KEY: 'sk-e2e-recording-key-0000000000',
  });
  assertClean(rec, 'record.sh');
  assert.equal(rec.code, 0, `record.sh failed:\n${rec.out}`);
  assert.match(rec.out, /record\.sh: wrote 3 recorded exchanges to /);
  assert.equal(fake.requests(), 3, `every request reached the stand-in once:\n${fake.out}`);
  const text = fs.readFileSync(fixture, 'utf8');
  assert.ok(!text.includes('sk-e2e-recording-key'), 'the API key is never written to the fixture');
  assert.deepEqual(fs.readdirSync(path.dirname(fixture)), ['llm.jsonl'], 'nothing else is left next to the fixture');

  // The committed fixture was recorded the same way: same requests (keys) and
  // the same answers; only timestamps and chunk timings may differ.
  const substance = (e) => ({
    key: e.key, request: e.request, status: e.response.status, body: e.response.body,
    events: e.response.events && e.response.events.map((ev) => ev.data),
  });
  assert.deepEqual(entries(fixture).map(substance), entries(COMMITTED).map(substance),
    'examples/ci/fixtures/llm.jsonl is out of date: re-record it with fake-openai.mjs (see examples/ci/README.md)');

  const rep = await runScript('replay.sh', { FIXTURE: fixture });
  assertClean(rep, 'replay.sh');
  assert.equal(rep.code, 0, `replay.sh of the fresh recording failed:\n${rep.out}`);
  assert.equal(fake.requests(), 3, 'replay never contacts the stand-in');
});
