// replay.test.mjs — CI mode end to end: record a mixed session (plain and
// streamed, OpenAI and Anthropic), export it, import it into a fresh
// database, replay it with the upstream stopped: every request hits with
// identical bytes; a changed message gets a 424 naming the pointer that
// differs; the SDKs raise at once (no retry); --fail-on-miss makes the
// process exit non-zero.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startMock, mockFor, startProxy, request, closedPort, BIN } from './lib/setup.mjs';

const run = (args) =>
  new Promise((resolve) => {
    execFile(BIN, args, { encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code : 0, stdout, stderr: stderr.toString() }));
  });

const chatReq = (content, extra = {}) => ({
  method: 'POST', path: '/v1/chat/completions', headers: { authorization: 'Bearer sk-recording-laptop-key-000000' },
  body: { model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content }], ...extra },
});
const claudeReq = (content, extra = {}) => ({
  method: 'POST', path: '/v1/messages', headers: { 'x-api-key': 'sk-ant-recording-key-0000000000', 'anthropic-version': '2023-06-01' },
  body: { model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content }], ...extra },
});
const SESSION = [
  chatReq('plain one'),
  chatReq('streamed one', { stream: true }),
  claudeReq('plain claude'),
  claudeReq('streamed claude', { stream: true }),
  { method: 'POST', path: '/v1/embeddings', headers: {}, body: { model: 'text-embedding-3-small', input: 'embed me' } },
];

async function recordSession(t) {
  const mock = await mockFor(t, startMock);
  const proxy = await startProxy(t, { upstream: mock, args: ['--mode', 'record'] });
  const live = [];
  for (const r of SESSION) {
    const res = await request(proxy, r);
    assert.equal(res.status, 200, `recording ${r.path}: ${res.status} ${res.text}`);
    assert.equal(res.cache, 'MISS');
    live.push(res);
  }
  assert.equal(mock.count(), SESSION.length);
  return { mock, proxy, live };
}

test('record → export → import → replay offline: every request hits with identical bytes', async (t) => {
  const { proxy: rec, live } = await recordSession(t);
  const out = path.join(rec.tmpDir, 'session.jsonl');
  const ex = await run(['export', '--db', rec.dbDir, '--out', out]);
  assert.equal(ex.code, 0, ex.stderr);
  const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
  assert.equal(lines.length, SESSION.length);
  for (const l of lines) {
    const e = JSON.parse(l);
    assert.match(e.key, /^[0-9a-f]{32}$/);
    assert.ok(e.request && e.response, 'request and response are exported');
    assert.ok(!l.includes('sk-recording') && !l.includes('sk-ant-recording'), 'credentials are never exported');
  }
  // a fresh database, a dead upstream, and a CI machine with another key
  const fresh = path.join(rec.tmpDir, 'ci-db');
  const imp = await run(['import', '--db', fresh, out]);
  assert.equal(imp.code, 0, imp.stderr);
  const dead = await closedPort();
  const ci = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--mode', 'replay'], dbDir: fresh });
  for (let i = 0; i < SESSION.length; i++) {
    const r = { ...SESSION[i], headers: { ...SESSION[i].headers } };
    if (r.headers.authorization) r.headers.authorization = 'Bearer sk-ci-machine-other-key-111111';
    const res = await request(ci, r);
    assert.equal(res.status, 200, `${r.path}: ${res.status} ${res.text}`);
    assert.equal(res.cache, 'HIT');
    assert.equal(Buffer.compare(res.body, live[i].body), 0, `replayed bytes of ${r.path} differ from the recording`);
  }
  // export of the imported db is byte-identical to the first export
  const again = await run(['export', '--db', fresh]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.toString(), fs.readFileSync(out, 'utf8'));
});

test('a replay miss is a 424 naming the nearest recording and the differing pointer; SDKs raise at once', async (t) => {
  const { proxy: rec } = await recordSession(t);
  const out = path.join(rec.tmpDir, 'session.jsonl');
  assert.equal((await run(['export', '--db', rec.dbDir, '--out', out])).code, 0);
  const dead = await closedPort();
  const ci = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--mode', 'replay', '--replay', out] });
  const res = await request(ci, chatReq('plain two'));
  assert.equal(res.status, 424);
  assert.equal(res.headers['x-should-retry'], 'false');
  const err = JSON.parse(res.text).error;
  assert.equal(err.type, 'promptcache_replay_miss');
  assert.match(err.key, /^[0-9a-f]{32}$/);
  assert.match(err.message, /messages\/1\/content/);
  assert.ok(err.nearest, 'the nearest recording is named');
  const diffs = err.nearest.differences;
  assert.deepEqual(diffs.map((d) => d.path), ['/messages/1/content']);
  assert.equal(diffs[0].recorded, 'plain one');
  assert.equal(diffs[0].requested, 'plain two');
  await ci.waitFor((p) => /replay miss .*messages\/1\/content/.test(p.stderr), 3000, 'the explanation in the log');

  // The SDKs raise at once even with their default retries (x-should-retry: false).
  const misses = (p) => p.stderr.split('\n').filter((l) => / 424 /.test(l)).length;
  await ci.waitFor((p) => misses(p) >= 1, 3000, 'the first miss in the access log');
  const before = misses(ci);
  const openai = new OpenAI({ apiKey: 'sk-x', baseURL: `${ci.url}/v1`, maxRetries: 2 });
  await assert.rejects(
    openai.chat.completions.create(chatReq('sdk miss').body),
    (e) => e.status === 424 && /replay/.test(e.message),
  );
  const anthropic = new Anthropic({ apiKey: 'sk-ant-x', baseURL: ci.url, maxRetries: 2 });
  await assert.rejects(anthropic.messages.create(claudeReq('sdk miss').body), (e) => e.status === 424);
  await ci.waitFor((p) => misses(p) >= before + 2, 3000, 'the SDK requests in the access log');
  await new Promise((r) => setTimeout(r, 300)); /* a retry would show up by now */
  const after = misses(ci);
  assert.equal(after - before, 2, 'each SDK sent its request exactly once');
});

test('--fail-on-miss: the process exits non-zero at shutdown after a replay miss, zero without one', async (t) => {
  const { proxy: rec } = await recordSession(t);
  const out = path.join(rec.tmpDir, 'session.jsonl');
  assert.equal((await run(['export', '--db', rec.dbDir, '--out', out])).code, 0);
  const dead = await closedPort();
  const clean = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--mode', 'replay', '--replay', out, '--fail-on-miss'] });
  assert.equal((await request(clean, SESSION[0])).cache, 'HIT');
  assert.equal((await clean.stop()).code, 0);
  const failing = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--mode', 'replay', '--replay', out, '--fail-on-miss'] });
  assert.equal((await request(failing, chatReq('never recorded'))).status, 424);
  const st = await failing.stop();
  assert.notEqual(st.code, 0);
  assert.match(failing.stderr, /replay miss/);
});

test('replay never contacts upstream, not even for paths it does not cache', async (t) => {
  const mock = await mockFor(t, startMock);
  const ci = await startProxy(t, { upstream: mock, args: ['--mode', 'replay'] });
  const models = await request(ci, { path: '/v1/models' });
  assert.equal(models.status, 424);
  const miss = await request(ci, chatReq('nothing recorded'));
  assert.equal(miss.status, 424);
  assert.equal(JSON.parse(miss.text).error.nearest, null);
  assert.equal(mock.count(), 0);
});
