// example_ci.test.mjs — the worked CI example in examples/ci/ really works:
//   - replay.sh passes offline against the committed fixtures/llm.jsonl (every
//     request a HIT, the upstream a closed port): chat completions and a
//     stream, and the calls that are not completions (a multipart file upload
//     made twice, its download and delete, an assistant run polled until it
//     completes, MP3 speech);
//   - a changed prompt makes replay.sh fail with the 424 explanation naming the
//     JSON pointer that differs, and promptcache's --fail-on-miss exit status;
//   - a changed upload fails it likewise at @part/file;
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
  assert.ok(recorded.length >= 14, 'the committed fixture holds the example suite');
  const r = await runScript('replay.sh');
  assertClean(r, 'replay.sh');
  assert.equal(r.code, 0, `replay.sh failed:\n${r.out}`);
  assert.match(r.out, /# pass 6\n# fail 0/);
  assert.match(r.out, /replay\.sh: OK/);
  const hits = r.out.split('\n').filter((l) => / (GET|POST|DELETE) \/v1\/\S+ 200 HIT [0-9a-f]{32} /.test(l));
  assert.equal(hits.length, recorded.length, `one HIT per recorded exchange:\n${r.out}`);
  const count = (re) => hits.filter((l) => re.test(l)).length;
  assert.equal(count(/ POST \/v1\/chat\/completions /), 3);
  assert.equal(count(/ POST \/v1\/files /), 2, 'the same upload twice, both answered');
  assert.equal(count(/ GET \/v1\/threads\/[^/ ]+\/runs\/[^/ ]+ /), 3, 'every poll of the run, in order, until completed');
  assert.equal(count(/ POST \/v1\/audio\/speech /), 1);
  assert.equal(count(/ DELETE \/v1\/files\//), 2);
  assert.doesNotMatch(r.out, / MISS | 424 /);
  // the recording holds the sequences the suite produced
  const polls = recorded.filter((e) => e.request.method === 'GET' && /\/runs\/[^/]+$/.test(e.request.path))
    .sort((a, b) => (a.request.seq ?? 0) - (b.request.seq ?? 0));
  assert.deepEqual(polls.map((e) => [e.request.seq ?? 0, e.response.body.status]), [[0, 'in_progress'], [1, 'in_progress'], [2, 'completed']]);
  const uploads = recorded.filter((e) => e.request.method === 'POST' && e.request.path === '/v1/files');
  assert.deepEqual(uploads.map((e) => e.request.seq ?? 0).sort(), [0, 1]);
  assert.equal(uploads[0].request.payload.content_type, 'multipart/form-data');
  const speech = recorded.find((e) => e.request.path === '/v1/audio/speech');
  assert.equal(speech.response.headers['content-type'], 'audio/mpeg');
  assert.equal(typeof speech.response.body_base64, 'string', 'the MP3 bytes are in the fixture as base64');
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

test('a changed upload fails replay.sh with a 424 naming the part that differs', { timeout: 40000 }, async () => {
  const r = await runScript('replay.sh', { NOTES_DAY: 'Monday' });
  assertClean(r, 'replay.sh');
  assert.notEqual(r.code, 0, `replay.sh must fail on a replay miss:\n${r.out}`);
  assert.match(r.out, /code: 'replay_miss'/);
  // the same file name and size: only the bytes differ (their hashes are shown)
  assert.match(r.out, /differs at @part\/file \(recorded "notes\.txt, text\/plain, (\d+) bytes, xxh3 [0-9a-f]{16}", requested "notes\.txt, text\/plain, \1 bytes, xxh3 [0-9a-f]{16}"\)/);
  assert.match(r.out, /warn replay miss POST \/v1\/files key=[0-9a-f]{32}/);
  assert.doesNotMatch(r.out, /boundary/i, 'the random multipart boundary is never a difference');
  // the calls that do not depend on the upload still hit
  assert.match(r.out, / POST \/v1\/audio\/speech 200 HIT /);
  assert.match(r.out, / POST \/v1\/chat\/completions 200 HIT /);
  assert.match(r.out, /promptcache: 2 replay misses \(--fail-on-miss\)/);
  assert.match(r.out, /replay\.sh: FAILED \(npm test exit 1, promptcache exit 1\)/);
});

async function startFake(t) {
  const proc = spawn(process.execPath, [path.join(EXAMPLE, 'fake-openai.mjs'), '--port', '0'], {
    cwd: EXAMPLE, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const fake = { proc, out: '', requests: () => fake.out.split('\n').filter((l) => /^fake-openai: (GET|POST|DELETE) /.test(l)).length };
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
  const n = entries(COMMITTED).length;
  assert.match(rec.out, new RegExp(`record\\.sh: wrote ${n} recorded exchanges to `));
  assert.equal(fake.requests(), n, `every request reached the stand-in once:\n${fake.out}`);
  const text = fs.readFileSync(fixture, 'utf8');
  assert.ok(!text.includes('sk-e2e-recording-key'), 'the API key is never written to the fixture');
  assert.deepEqual(fs.readdirSync(path.dirname(fixture)), ['llm.jsonl'], 'nothing else is left next to the fixture');

  // The committed fixture was recorded the same way: same requests (keys,
  // sequences, payloads) and the same answers; only timestamps and chunk
  // timings may differ.
  const substance = (e) => ({
    key: e.key, request: e.request, status: e.response.status, headers: e.response.headers,
    body: e.response.body, body_raw: e.response.body_raw, body_base64: e.response.body_base64,
    events: e.response.events && e.response.events.map((ev) => ev.data ?? ev.data_base64),
  });
  assert.deepEqual(entries(fixture).map(substance), entries(COMMITTED).map(substance),
    'examples/ci/fixtures/llm.jsonl is out of date: re-record it with fake-openai.mjs (see examples/ci/README.md)');

  const rep = await runScript('replay.sh', { FIXTURE: fixture });
  assertClean(rep, 'replay.sh');
  assert.equal(rep.code, 0, `replay.sh of the fresh recording failed:\n${rep.out}`);
  assert.equal(fake.requests(), n, 'replay never contacts the stand-in');
});
