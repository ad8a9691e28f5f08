// record_all.test.mjs — `record` and `replay` take a whole test suite's
// traffic, not only completions (issue 14). The official SDKs (openai@6,
// @anthropic-ai/sdk@1) drive a stateful fake upstream (lib/statemock.mjs)
// through the proxy in record mode: models list, multipart file uploads (the
// same upload twice, and 1 MiB of binary), file retrieval and byte download, a
// file list with a query, an assistant run polled until completed, MP3 speech, a batch polled
// until completed and its output downloaded, Anthropic token counting, a
// delete (and the 404 of the same retrieval after it), chat (the same request
// twice), OpenAI and Anthropic streams. The recording is exported, then the
// same suite runs against replay proxies (`--replay FILE`, and `import` into a
// fresh database): every answer's raw bytes, status and content type are the
// recorded ones, sequences come back in order and then repeat their last
// answer, and upstream is never contacted. A changed upload is a 424 whose
// explainer points at @part/file; changed query parameters, form fields, raw
// bodies, content types and key headers point at @query/..., @field/...,
// @body, @content-type, @openai-beta. Also: the export's "payload" and "seq",
// re-recording restarts a sequence, a sequence is in the order answers
// completed, a cut stream is not recorded, concurrent identical replays on
// several event loops each get their own entry, and readwrite/readonly still
// cache only completion paths.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import OpenAI, { toFile } from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startProxy, request, closedPort, mockFor, BIN, HEX32 } from './lib/proxy.mjs';
import { startStateMock, speechBytes, ndjsonLines, prng } from './lib/statemock.mjs';
import { echoText } from './lib/mock.mjs';

const run = (args) => new Promise((resolve) => {
  execFile(BIN, args, { encoding: 'buffer', maxBuffer: 64 << 20, timeout: 20000 }, (err, stdout, stderr) =>
    resolve({ code: err ? err.code : 0, stdout, stderr: stderr.toString() }));
});

const RECORD_KEY = 'sk-recording-laptop-key-000000000000';
const RECORD_ANT_KEY = 'sk-ant-recording-laptop-key-0000000000';
const NOTES = Buffer.from('meeting notes\nship v2 on friday\nno more flaky tests\n');
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
// a binary upload of 1 MiB and a bit: a PNG signature, noise, every byte value
const IMAGE = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), prng('image', 1 << 20), ALL_BYTES]);
const SPEECH = { model: 'tts-1', voice: 'alloy', input: 'the notes, read aloud' };
const BATCH_INPUT = `${[0, 1].map((i) => JSON.stringify({ custom_id: `req-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `batch ${i}` }] } })).join('\n')}\n`;
const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'what is in the notes?' }] };
const RUN_POLLS = 2; // the fake answers in_progress twice, then completed

/** A fetch that records every exchange's method, target, status, content type and raw body bytes. */
function capturingFetch(log) {
  return async (url, init = {}) => {
    const res = await fetch(url, init);
    const u = new URL(url instanceof Request ? url.url : String(url));
    if (u.protocol !== 'http:') return res; // the SDK probes FormData support with fetch('data:,')
    const entry = {
      method: init.method || 'GET',
      target: u.pathname + u.search,
      status: res.status,
      type: res.headers.get('content-type'),
      cache: res.headers.get('x-promptcache-status'),
      body: null,
    };
    // a clone reads the same bytes as the SDK, streams included, without delaying it
    entry.done = res.clone().arrayBuffer().then((b) => { entry.body = Buffer.from(b); });
    log.push(entry);
    return res;
  };
}

async function settled(log) {
  await Promise.all(log.map((e) => e.done));
  return log;
}

function clientsFor(proxy, log, { key = RECORD_KEY, antKey = RECORD_ANT_KEY } = {}) {
  const fetchFn = capturingFetch(log);
  return {
    openai: new OpenAI({ apiKey: key, baseURL: `${proxy.url}/v1`, maxRetries: 0, timeout: 15000, fetch: fetchFn }),
    anthropic: new Anthropic({ apiKey: antKey, baseURL: proxy.url, maxRetries: 0, timeout: 15000, fetch: fetchFn }),
  };
}

const notesFile = (bytes = NOTES, name = 'notes.txt') => toFile(bytes, name, { type: 'text/plain' });
const asBytes = async (response) => Buffer.from(await response.arrayBuffer());
const apiError = (e) => {
  if (!(e instanceof OpenAI.APIError) && !(e instanceof Anthropic.APIError)) throw e;
  return { status: e.status, error: e.error };
};

/**
 * The "test suite": what an app's tests would do through the SDKs, in a fixed
 * order. Returns what the SDKs handed back (parsed objects, byte buffers).
 */
async function suite({ openai, anthropic }) {
  const out = {};
  out.models = (await openai.models.list()).data.map((m) => m.id);
  out.file = await openai.files.create({ file: await notesFile(), purpose: 'assistants' });
  out.file2 = await openai.files.create({ file: await notesFile(), purpose: 'assistants' }); // the same create twice
  out.info = await openai.files.retrieve(out.file.id);
  out.content = await asBytes(await openai.files.content(out.file.id));
  out.listed = (await openai.files.list({ purpose: 'assistants', limit: 5 })).data.map((f) => f.id);
  out.image = await openai.files.create({ file: await toFile(IMAGE, 'chart.png', { type: 'image/png' }), purpose: 'vision' });
  out.imageBytes = await asBytes(await openai.files.content(out.image.id));

  out.thread = await openai.beta.threads.create({
    messages: [{ role: 'user', content: 'summarize the notes', attachments: [{ file_id: out.file.id, tools: [{ type: 'file_search' }] }] }],
  });
  out.run = await openai.beta.threads.runs.createAndPoll(out.thread.id, { assistant_id: 'asst_notes' }, { pollIntervalMs: 5 });

  out.speech = await asBytes(await openai.audio.speech.create(SPEECH));

  const input = await openai.files.create({ file: await toFile(Buffer.from(BATCH_INPUT), 'batch.jsonl'), purpose: 'batch' });
  out.batch = await openai.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  out.batchPolls = [];
  let batch = out.batch;
  for (let i = 0; i < 10 && batch.status !== 'completed'; i++) {
    batch = await openai.batches.retrieve(out.batch.id);
    out.batchPolls.push(batch.status);
  }
  out.batchOutput = (await asBytes(await openai.files.content(batch.output_file_id))).toString('utf8');

  out.tokens = await anthropic.messages.countTokens({ model: 'claude-3-5-haiku-latest', messages: [{ role: 'user', content: 'count these words' }] });

  out.before = await openai.files.retrieve(out.file2.id);
  out.deleted = await openai.files.delete(out.file2.id);
  out.after = await openai.files.retrieve(out.file2.id).then(() => 'still there', apiError); // the same request, now a 404

  out.chat = await openai.chat.completions.create(CHAT);
  out.chatAgain = await openai.chat.completions.create(CHAT); // the same request twice: two answers
  let streamed = '';
  for await (const c of await openai.chat.completions.create({ ...CHAT, stream: true })) streamed += c.choices[0]?.delta?.content || '';
  out.streamed = streamed;
  let claude = '';
  const cs = await anthropic.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: 'stream the notes' }], stream: true });
  for await (const ev of cs) if (ev.type === 'content_block_delta') claude += ev.delta.text;
  out.claude = claude;
  return out;
}

/** What the suite must see against the fake, recorded or replayed. */
function assertSuiteResults(out) {
  assert.deepEqual(out.models, ['gpt-4o-mini', 'tts-1', 'whisper-1']);
  assert.match(out.file.id, /^file-/);
  assert.notEqual(out.file2.id, out.file.id, 'two creates, two files');
  assert.equal(out.info.filename, 'notes.txt');
  assert.equal(out.info.bytes, NOTES.length);
  assert.ok(out.content.equals(NOTES), 'the downloaded content is the uploaded bytes');
  assert.deepEqual(out.listed, [out.file2.id, out.file.id]);
  assert.equal(out.image.bytes, IMAGE.length);
  assert.ok(out.imageBytes.equals(IMAGE), 'a binary upload downloads byte for byte');
  assert.equal(out.run.status, 'completed');
  assert.equal(out.run.poll, RUN_POLLS + 1, 'the run was polled until completed');
  assert.ok(out.speech.equals(speechBytes(SPEECH.model, SPEECH.voice, SPEECH.input, 1)), 'speech bytes');
  assert.deepEqual(out.batchPolls, ['in_progress', 'completed']);
  assert.match(out.batchOutput, /"custom_id":"req-0"[\s\S]*"custom_id":"req-1"/);
  assert.equal(typeof out.tokens.input_tokens, 'number');
  assert.ok(out.tokens.input_tokens > 0);
  assert.equal(out.before.id, out.file2.id);
  assert.deepEqual(out.deleted, { id: out.file2.id, object: 'file', deleted: true });
  assert.equal(out.after.status, 404);
  assert.notEqual(out.chat.id, out.chatAgain.id, 'the second identical chat got the second answer');
  assert.equal(out.chat.choices[0].message.content, echoText('what is in the notes?'));
  assert.equal(out.streamed, echoText('what is in the notes?'));
  assert.equal(out.claude, echoText('stream the notes'));
}

const pollTarget = (out) => `/v1/threads/${out.thread.id}/runs/${out.run.id}`;
const runStatuses = (log, target) => log.filter((e) => e.method === 'GET' && e.target === target).map((e) => JSON.parse(e.body).status);

/** Record the suite through a record-mode proxy; export it. */
async function recordSuite(t) {
  const mock = await mockFor(t, startStateMock, { runPolls: RUN_POLLS });
  const proxy = await startProxy(t, { upstream: mock, args: ['--mode', 'record'] });
  const log = [];
  const out = await suite(clientsFor(proxy, log));
  await settled(log);
  assertSuiteResults(out);
  for (const e of log) assert.notEqual(e.cache, 'HIT', `record mode never answers from the cache: ${e.method} ${e.target}`);
  assert.equal(mock.total, log.length, 'every request reached upstream once');
  assert.deepEqual(runStatuses(log, pollTarget(out)), ['in_progress', 'in_progress', 'completed']);
  const file = path.join(proxy.tmpDir, 'suite.jsonl');
  const ex = await run(['export', '--db', proxy.dbDir, '--out', file]);
  assert.equal(ex.code, 0, `export: ${ex.stderr}`);
  return { mock, proxy, log, out, file };
}

/** Run the suite against a replay proxy; every exchange must be the recorded one, byte for byte. */
async function replaySuite(proxy, recorded) {
  const log = [];
  const out = await suite(clientsFor(proxy, log, { key: 'sk-ci-machine-other-key-1111111111', antKey: 'sk-ant-ci-other-key-1111111111' }));
  await settled(log);
  assert.equal(log.length, recorded.log.length, 'the replayed suite made the same requests');
  for (let i = 0; i < log.length; i++) {
    const a = recorded.log[i];
    const b = log[i];
    const what = `exchange ${i}: ${a.method} ${a.target}`;
    assert.equal(`${b.method} ${b.target}`, `${a.method} ${a.target}`, what);
    assert.equal(b.cache, 'HIT', `${what} is answered from the recording`);
    assert.equal(b.status, a.status, `${what}: status`);
    assert.equal(b.type, a.type, `${what}: content type`);
    assert.ok(b.body.equals(a.body), `${what}: replayed body differs from the recorded one\nrecorded: ${a.body.toString('latin1').slice(0, 300)}\nreplayed: ${b.body.toString('latin1').slice(0, 300)}`);
  }
  assertSuiteResults(out);
  assert.deepEqual(out, recorded.out, 'the SDKs see the recorded results');
  return { log, out };
}

const lines = (file) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const entriesFor = (es, method, p) => es.filter((e) => e.request.method === method && e.request.path === p);
const seqOf = (e) => e.request.seq ?? 0;
const responseBytes = (e) => (e.response.body_base64 !== undefined ? Buffer.from(e.response.body_base64, 'base64')
  : e.response.body_raw !== undefined ? Buffer.from(e.response.body_raw) : null);

test('the fake upstream: the SDK suite passes against it directly (no proxy)', { timeout: 20000 }, async (t) => {
  const mock = await mockFor(t, startStateMock, { runPolls: RUN_POLLS });
  const log = [];
  const out = await suite(clientsFor({ url: mock.url }, log));
  await settled(log);
  assertSuiteResults(out);
  assert.deepEqual(mock.requests.map((r) => `${r.method} ${r.url}`), log.map((e) => `${e.method} ${e.target}`));
  assert.equal(mock.count('GET', pollTarget(out)), RUN_POLLS + 1);
  assert.equal(mock.counts()['POST /v1/files'], 4);
  const mp = mock.requests.find((r) => r.method === 'POST' && r.path === '/v1/files');
  assert.match(mp.headers['content-type'], /^multipart\/form-data; boundary=/, 'the SDK uploads multipart');
});

test('SDK suite: record → export → replay (--replay FILE, and import into a fresh db): every answer byte-identical, upstream never contacted', { timeout: 60000 }, async (t) => {
  const rec = await recordSuite(t);

  // --- the export: one line per exchange, sequences by "seq", non-JSON bodies in "payload"
  const raw = fs.readFileSync(rec.file, 'utf8');
  assert.ok(raw.endsWith('\n'));
  const es = lines(rec.file);
  assert.equal(es.length, rec.log.length, 'one line per recorded exchange');
  assert.equal(raw.split('\n').length - 1, es.length, 'every exchange on one line');
  for (const e of es) {
    assert.match(e.key, HEX32);
    assert.ok(!JSON.stringify(e).includes('recording-laptop-key'), 'credentials are never exported');
  }
  const models = entriesFor(es, 'GET', '/v1/models');
  assert.equal(models.length, 1);
  assert.deepEqual(models[0].request.payload, { empty: true }, 'a bodiless request is exported as an empty payload');
  assert.equal(models[0].request.seq, undefined);

  const uploads = entriesFor(es, 'POST', '/v1/files');
  assert.equal(uploads.length, 4, 'the notes twice, the image and the batch input');
  const image = uploads.find((e) => e.request.payload.multipart.some((p) => p.filename === 'chart.png'));
  const imagePart = image.request.payload.multipart.find((p) => p.name === 'file');
  assert.equal(imagePart.content_type, 'image/png');
  assert.equal(imagePart.value, undefined, 'binary part bytes are not text');
  assert.ok(Buffer.from(imagePart.base64, 'base64').equals(IMAGE), 'the binary part is exported exactly (base64)');
  const notes = uploads.filter((e) => e.request.payload.multipart.some((p) => p.filename === 'notes.txt'));
  assert.deepEqual(notes.map(seqOf).sort(), [0, 1], 'the same upload twice is a sequence of two');
  for (const e of notes) {
    const pl = e.request.payload;
    assert.equal(pl.content_type, 'multipart/form-data', 'no boundary in the payload');
    assert.ok(!JSON.stringify(pl).includes('boundary'), 'no boundary in the payload');
    const byName = Object.fromEntries(pl.multipart.map((p) => [p.name, p]));
    assert.equal(byName.purpose.value, 'assistants');
    assert.equal(byName.file.filename, 'notes.txt');
    assert.equal(byName.file.value, NOTES.toString('utf8'));
    assert.equal(e.request.body, undefined, 'a multipart body is not exported as "body"');
  }
  const bySeq = (arr) => [...arr].sort((a, b) => seqOf(a) - seqOf(b));
  assert.deepEqual(bySeq(notes).map((e) => e.response.body.id), [rec.out.file.id, rec.out.file2.id], 'sequence order is answer order');

  const polls = bySeq(entriesFor(es, 'GET', pollTarget(rec.out)));
  assert.deepEqual(polls.map(seqOf), [0, 1, 2]);
  assert.deepEqual(polls.map((e) => e.response.body.status), ['in_progress', 'in_progress', 'completed']);
  assert.equal(new Set(polls.map((e) => e.key)).size, 3, 'each answer of a sequence is its own entry');

  const gone = bySeq(entriesFor(es, 'GET', `/v1/files/${rec.out.file2.id}`));
  assert.deepEqual(gone.map((e) => e.response.status), [200, 404], 'answers of any status are recorded, in order');
  const del = entriesFor(es, 'DELETE', `/v1/files/${rec.out.file2.id}`);
  assert.equal(del.length, 1);
  assert.deepEqual(del[0].response.body, { id: rec.out.file2.id, object: 'file', deleted: true });

  const speech = entriesFor(es, 'POST', '/v1/audio/speech');
  assert.equal(speech.length, 1);
  assert.deepEqual(speech[0].request.body, SPEECH, 'a JSON request body stays JSON');
  assert.equal(speech[0].response.headers['content-type'], 'audio/mpeg');
  assert.ok(responseBytes(speech[0]) && responseBytes(speech[0]).equals(rec.out.speech), 'binary audio is exported exactly (body_base64)');

  assert.equal(entriesFor(es, 'POST', '/v1/messages/count_tokens').length, 1);
  const chats = entriesFor(es, 'POST', '/v1/chat/completions');
  assert.equal(chats.length, 3, 'chat twice (a sequence) and the stream');

  // exports are deterministic
  const again = await run(['export', '--db', rec.proxy.dbDir]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.toString(), raw, 'two exports of one recording are byte-identical');

  // --- replay 1: --replay FILE, the upstream still the (live) fake: it must see nothing
  const before = rec.mock.total;
  const ci = await startProxy(t, { upstream: rec.mock, args: ['--mode', 'replay', '--replay', rec.file, '--fail-on-miss'] });
  const rep = await replaySuite(ci, rec);
  assert.deepEqual(runStatuses(rep.log, pollTarget(rec.out)), ['in_progress', 'in_progress', 'completed'], 'the poll replays its sequence in order');
  // past the end of a sequence, its last answer again
  const extra = clientsFor(ci, []);
  for (let i = 0; i < 2; i++) {
    const r = await extra.openai.beta.threads.runs.retrieve(rec.out.run.id, { thread_id: rec.out.thread.id });
    assert.equal(r.status, 'completed', `poll ${RUN_POLLS + 2 + i}: the last recorded answer repeats`);
  }
  const third = await extra.openai.files.create({ file: await notesFile(), purpose: 'assistants' });
  assert.equal(third.id, rec.out.file2.id, 'a third identical upload gets the last recorded answer');
  const chat3 = await extra.openai.chat.completions.create(CHAT);
  assert.equal(chat3.id, rec.out.chatAgain.id);
  const gone3 = await extra.openai.files.retrieve(rec.out.file2.id).then(() => 'still there', apiError);
  assert.equal(gone3.status, 404);
  assert.equal(rec.mock.total, before, 'replay never contacted upstream');
  const st = await ci.stop();
  assert.equal(st.code, 0, `--fail-on-miss: no miss, exit 0\n${ci.stderr}`);

  // --- replay 2: import into a fresh database; the upstream a closed port
  const fresh = path.join(rec.proxy.tmpDir, 'ci-db');
  const imp = await run(['import', '--db', fresh, rec.file]);
  assert.equal(imp.code, 0, `import: ${imp.stderr}`);
  const reexport = await run(['export', '--db', fresh]);
  assert.equal(reexport.code, 0, reexport.stderr);
  assert.equal(reexport.stdout.toString(), raw, 'export → import → export is lossless, order and sequences included');
  const dead = await closedPort();
  const ci2 = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--mode', 'replay'], dbDir: fresh });
  const rep2 = await replaySuite(ci2, rec);
  assert.deepEqual(runStatuses(rep2.log, pollTarget(rec.out)), ['in_progress', 'in_progress', 'completed']);
  assert.equal(rec.mock.total, before);
});

test('a changed upload is a 424 whose explainer points at @part/file; other parts and the query are named likewise', { timeout: 30000 }, async (t) => {
  const rec = await recordSuite(t);
  const ci = await startProxy(t, { upstream: rec.mock, args: ['--mode', 'replay', '--replay', rec.file] });
  const before = rec.mock.total;
  const log = [];
  const { openai } = clientsFor(ci, log);
  const miss = async (promise, what) => {
    const e = await promise.then(() => null, (err) => err);
    assert.ok(e instanceof OpenAI.APIError, `${what}: the SDK raises`);
    assert.equal(e.status, 424, `${what}: status ${e.status}`);
    await settled(log);
    const body = JSON.parse(log.at(-1).body);
    assert.equal(log.at(-1).status, 424);
    assert.equal(body.error.type, 'promptcache_replay_miss');
    assert.equal(body.error.code, 'replay_miss');
    assert.match(body.error.key, HEX32);
    assert.ok(body.error.nearest, `${what}: the nearest recording is named: ${JSON.stringify(body)}`);
    assert.match(body.error.nearest.key, HEX32);
    return body.error;
  };

  const changed = Buffer.from(NOTES.toString('utf8').replace('friday', 'monday'));
  let err = await miss(openai.files.create({ file: await notesFile(changed), purpose: 'assistants' }), 'changed file bytes');
  assert.deepEqual(err.nearest.differences.map((d) => d.path), ['@part/file'], JSON.stringify(err));
  assert.equal(err.nearest.total_differences, 1);
  const d = err.nearest.differences[0];
  assert.notDeepEqual(d.recorded, d.requested);
  assert.match(err.message, /@part\/file/);
  assert.ok(!err.message.includes('boundary') && !JSON.stringify(err).includes('formdata-undici'), 'the random boundary is not a difference');
  await ci.waitFor((p) => /replay miss POST \/v1\/files .*@part\/file/.test(p.stderr), 3000, 'the explanation in the log');

  err = await miss(openai.files.create({ file: await notesFile(NOTES, 'notes-v2.txt'), purpose: 'assistants' }), 'changed filename');
  assert.deepEqual(err.nearest.differences.map((x) => x.path), ['@part/file']);

  err = await miss(openai.files.create({ file: await notesFile(), purpose: 'fine-tune' }), 'changed purpose');
  assert.deepEqual(err.nearest.differences.map((x) => x.path), ['@part/purpose']);
  assert.equal(err.nearest.differences[0].recorded, 'assistants');
  assert.equal(err.nearest.differences[0].requested, 'fine-tune');

  err = await miss(openai.files.list({ purpose: 'assistants', limit: 6 }), 'changed query parameter');
  assert.deepEqual(err.nearest.differences.map((x) => x.path), ['@query/limit']);
  assert.deepEqual([err.nearest.differences[0].recorded, err.nearest.differences[0].requested], ['5', '6']);
  err = await miss(openai.files.list({ purpose: 'assistants', limit: 5, order: 'asc' }), 'added query parameter');
  // an absent side is left out (as for JSON members)
  assert.deepEqual(err.nearest.differences, [{ path: '@query/order', requested: 'asc' }]);
  assert.match(err.message, /@query\/order \(recorded absent, requested "asc"\)/);

  // a key header: the poll with another OpenAI-Beta
  const beta = await request(ci, { path: pollTarget(rec.out), headers: { 'openai-beta': 'assistants=v1' } });
  assert.equal(beta.status, 424, beta.text);
  assert.deepEqual(beta.json.error.nearest.differences.map((x) => x.path), ['@openai-beta']);

  // nothing recorded with this method and path: no nearest
  for (const [method, p] of [['DELETE', '/v1/files/file-never-uploaded'], ['POST', '/v1/models'], ['GET', '/v1/nothing/here']]) {
    const res = await request(ci, { method, path: p });
    assert.equal(res.status, 424, `${method} ${p}: ${res.text}`);
    assert.equal(res.json.error.type, 'promptcache_replay_miss');
    assert.equal(res.json.error.nearest, null, `${method} ${p}: ${res.text}`);
  }

  // the unchanged upload still replays, with another random boundary
  const ok = await openai.files.create({ file: await notesFile(), purpose: 'assistants' });
  assert.equal(ok.id, rec.out.file.id);
  assert.equal(rec.mock.total, before, 'misses never reach upstream');
});

test('re-recording on the same database starts each sequence afresh', { timeout: 30000 }, async (t) => {
  const first = await mockFor(t, startStateMock, { runPolls: 2 });
  const proxy = await startProxy(t, { upstream: first, args: ['--mode', 'record'] });
  const poll = async (p) => {
    const th = await request(p, { method: 'POST', path: '/v1/threads', body: {} });
    assert.equal(th.status, 200, th.text);
    const r = await request(p, { method: 'POST', path: `/v1/threads/${th.json.id}/runs`, body: { assistant_id: 'asst_x' } });
    assert.equal(r.status, 200, r.text);
    const target = `/v1/threads/${th.json.id}/runs/${r.json.id}`;
    const seen = [];
    for (let i = 0; i < 10; i++) {
      const g = await request(p, { path: target });
      assert.equal(g.status, 200, g.text);
      seen.push(g.json.status);
      if (g.json.status === 'completed') break;
    }
    return { target, seen };
  };
  const one = await poll(proxy);
  assert.deepEqual(one.seen, ['in_progress', 'in_progress', 'completed']);
  const ex1 = await run(['export', '--db', proxy.dbDir]);
  assert.equal(ex1.code, 0, ex1.stderr);
  const es1 = ex1.stdout.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.equal(entriesFor(es1, 'GET', one.target).length, 3);
  await proxy.stop();

  // the same requests again, recorded on the same database; upstream now completes at once
  const second = await mockFor(t, startStateMock, { runPolls: 0 });
  const again = await startProxy(t, { upstream: second, args: ['--mode', 'record'], dbDir: proxy.dbDir });
  const two = await poll(again);
  assert.equal(two.target, one.target, 'the fake hands out the same ids');
  assert.deepEqual(two.seen, ['completed']);
  await again.stop();
  const ex2 = await run(['export', '--db', proxy.dbDir]);
  assert.equal(ex2.code, 0, ex2.stderr);
  const es2 = ex2.stdout.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const polls = entriesFor(es2, 'GET', two.target);
  assert.deepEqual(polls.map((e) => [seqOf(e), e.response.body.status]), [[0, 'completed']], 'the older sequence entries are dropped');
  assert.equal(es2.length, 3, 'thread, run, one poll');

  const dead = await closedPort();
  const ci = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--mode', 'replay'], dbDir: proxy.dbDir });
  for (let i = 0; i < 2; i++) {
    const g = await request(ci, { path: two.target });
    assert.equal(g.status, 200, g.text);
    assert.equal(g.cache, 'HIT');
    assert.equal(g.json.status, 'completed');
  }
  await ci.stop();

  // and a longer sequence again: it grows back
  const third = await mockFor(t, startStateMock, { runPolls: 1 });
  const rec3 = await startProxy(t, { upstream: third, args: ['--mode', 'record'], dbDir: proxy.dbDir });
  const three = await poll(rec3);
  assert.deepEqual(three.seen, ['in_progress', 'completed']);
  await rec3.stop();
  const ex3 = await run(['export', '--db', proxy.dbDir]);
  assert.equal(ex3.code, 0, ex3.stderr);
  const es3 = ex3.stdout.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.deepEqual(entriesFor(es3, 'GET', three.target).map((e) => [seqOf(e), e.response.body.status]).sort(), [[0, 'in_progress'], [1, 'completed']]);
  const ci3 = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--mode', 'replay'], dbDir: proxy.dbDir });
  const seen3 = [];
  for (let i = 0; i < 3; i++) seen3.push((await request(ci3, { path: three.target })).json.status);
  assert.deepEqual(seen3, ['in_progress', 'completed', 'completed']);
});

test('a sequence keeps the order in which answers completed, not the order requests were sent', { timeout: 30000 }, async (t) => {
  const mock = await mockFor(t, startStateMock);
  const proxy = await startProxy(t, { upstream: mock, args: ['--mode', 'record'] });
  const echo = (delay) => request(proxy, { method: 'POST', path: '/v1/echo', headers: { 'content-type': 'text/plain', 'x-statemock-delay': String(delay) }, body: 'same body' });
  // the first request sent is answered last
  const slow = echo(400);
  const deadline = performance.now() + 5000;
  while (mock.count('POST', '/v1/echo') < 1 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(mock.count('POST', '/v1/echo'), 1, 'the slow request reached upstream first');
  const fast = await echo(0);
  const slowRes = await slow;
  assert.equal(fast.status, 200);
  assert.equal(slowRes.status, 200);
  assert.equal(fast.json.n, 2);
  assert.equal(slowRes.json.n, 1);
  assert.equal(mock.count('POST', '/v1/echo'), 2, 'identical concurrent requests both reach upstream in record mode');
  await proxy.stop();
  const ex = await run(['export', '--db', proxy.dbDir]);
  assert.equal(ex.code, 0, ex.stderr);
  const es = entriesFor(ex.stdout.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l)), 'POST', '/v1/echo');
  assert.deepEqual(es.map((e) => [seqOf(e), e.response.body.n]).sort(), [[0, 2], [1, 1]], 'seq 0 is the answer that completed first');
  const dead = await closedPort();
  const ci = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--mode', 'replay'], dbDir: proxy.dbDir });
  const replayed = [];
  for (let i = 0; i < 3; i++) {
    const r = await request(ci, { method: 'POST', path: '/v1/echo', headers: { 'content-type': 'text/plain' }, body: 'same body' });
    assert.equal(r.status, 200, r.text);
    replayed.push(r);
  }
  assert.deepEqual(replayed.map((r) => r.json.n), [2, 1, 1]);
  assert.ok(replayed[0].body.equals(fast.body) && replayed[1].body.equals(slowRes.body), 'byte-identical, in completion order');
});

test('replay with several event loops: concurrent identical requests each get their own sequence entry', { timeout: 30000 }, async (t) => {
  const mock = await mockFor(t, startStateMock);
  const rec = await startProxy(t, { upstream: mock, args: ['--mode', 'record'] });
  const same = { method: 'POST', path: '/v1/echo', headers: { 'content-type': 'text/plain' }, body: 'same body' };
  for (let i = 0; i < 4; i++) assert.equal((await request(rec, same)).json.n, i + 1);
  await rec.stop();
  const dead = await closedPort();
  const bad = [];
  for (let trial = 0; trial < 16; trial++) {
    const ci = await startProxy(t, { upstream: `http://127.0.0.1:${dead}`, args: ['--mode', 'replay', '--workers', '4'], dbDir: rec.dbDir });
    const got = await Promise.all([0, 1, 2, 3].map(() => request(ci, same)));
    for (const r of got) assert.equal(r.status, 200, r.text);
    const ns = got.map((r) => r.json.n).sort();
    if (ns.join() !== '1,2,3,4') bad.push(`trial ${trial}: answers n=${ns.join()}`);
    else assert.equal((await request(ci, same)).json.n, 4, 'then, in turn: the last entry again');
    await ci.stop();
  }
  assert.deepEqual(bad, [], 'each of 4 concurrent identical requests must get a different entry (0..3); got duplicates');
});

test('raw exchanges: form posts by sorted fields, queries sorted, raw bodies by bytes, multipart without its boundary, NDJSON streams byte-exact', { timeout: 30000 }, async (t) => {
  const mock = await mockFor(t, startStateMock);
  const proxy = await startProxy(t, { upstream: mock, args: ['--mode', 'record'] });
  const BIN_BODY = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f, 0x0d, 0x0a, 0xc3, 0x28]);
  const form = (body, ct = 'application/x-www-form-urlencoded; charset=UTF-8') => ({ method: 'POST', path: '/v1/echo', headers: { 'content-type': ct }, body });
  const rawPost = (body, ct = 'application/octet-stream', p = '/v1/echo?x=1&y=2') => ({ method: 'POST', path: p, headers: { 'content-type': ct }, body });
  const multipart = async (bytes, name = 'upload.bin') => {
    const fd = new FormData();
    fd.append('purpose', 'raw');
    fd.append('file', new File([bytes], name, { type: 'application/octet-stream' }));
    const req = new Request('http://x/', { method: 'POST', body: fd });
    return { method: 'POST', path: '/v1/echo?kind=multipart', headers: { 'content-type': req.headers.get('content-type') }, body: Buffer.from(await req.arrayBuffer()) };
  };
  const gen = { method: 'POST', path: '/api/generate', body: { model: 'llama3', prompt: 'stream me as ndjson' } };

  const recorded = {};
  const recordOne = async (name, r) => {
    const res = await request(proxy, r);
    assert.equal(res.status, 200, `${name}: ${res.text}`);
    recorded[name] = res;
    return res;
  };
  await recordOne('form', form('b=2&a=1&a=0&c=%41'));
  await recordOne('raw', rawPost(BIN_BODY));
  await recordOne('get', { path: '/v1/echo?y=2&x=1' });
  await recordOne('mp', await multipart(BIN_BODY));
  await recordOne('ndjson', gen);
  await recordOne('delete', { method: 'DELETE', path: '/v1/echo?id=7' });
  assert.equal(recorded.ndjson.headers['content-type'], 'application/x-ndjson');
  assert.equal(recorded.ndjson.text, ndjsonLines('llama3', 'stream me as ndjson').join(''));
  // a stream cut by upstream is not an answer: it is not recorded
  const cutReq = { method: 'POST', path: '/api/generate', headers: { 'x-statemock-cut': '2' }, body: { model: 'llama3', prompt: 'cut me' } };
  await request(proxy, cutReq).then(() => {}, () => {}); // the client sees the cut too (or an incomplete body)
  assert.equal(mock.total, 7);
  await proxy.stop();

  // the export: bodies that are not JSON in "payload", in their canonical form
  const file = path.join(proxy.tmpDir, 'raw.jsonl');
  const ex = await run(['export', '--db', proxy.dbDir, '--out', file]);
  assert.equal(ex.code, 0, ex.stderr);
  const es = lines(file);
  assert.equal(es.length, 6, 'the cut stream is not in the recording');
  const find = (method, p) => es.find((e) => e.request.method === method && e.request.path === p);
  assert.deepEqual(find('POST', '/v1/echo').request.payload,
    { content_type: 'application/x-www-form-urlencoded', form: [['a', '1'], ['a', '0'], ['b', '2'], ['c', 'A']] }, 'form fields decoded, sorted stably');
  const rawPayload = find('POST', '/v1/echo?x=1&y=2').request.payload;
  assert.equal(rawPayload.content_type, 'application/octet-stream');
  assert.ok(Buffer.from(rawPayload.base64, 'base64').equals(BIN_BODY), 'raw binary body as base64');
  assert.deepEqual(find('GET', '/v1/echo?x=1&y=2').request.payload, { empty: true }, 'the query is stored sorted');
  const mpPayload = find('POST', '/v1/echo?kind=multipart').request.payload;
  assert.deepEqual(mpPayload.multipart.map((x) => x.name), ['purpose', 'file']);
  assert.ok(Buffer.from(mpPayload.multipart[1].base64, 'base64').equals(BIN_BODY));
  assert.deepEqual(find('POST', '/api/generate').request.body, gen.body, 'a JSON body stays "body"');

  const before = mock.total;
  const ci = await startProxy(t, { upstream: mock, args: ['--mode', 'replay', '--replay', file] });
  const hit = async (name, r) => {
    const res = await request(ci, r);
    assert.equal(res.status, 200, `${name}: ${res.status} ${res.text}`);
    assert.equal(res.cache, 'HIT', name);
    assert.ok(res.body.equals(recorded[name].body), `${name}: replayed bytes differ`);
    assert.equal(res.headers['content-type'], recorded[name].headers['content-type'], `${name}: content type`);
    return res;
  };
  const miss = async (name, r) => {
    const res = await request(ci, r);
    assert.equal(res.status, 424, `${name}: ${res.status} ${res.text}`);
    const err = res.json.error;
    assert.equal(err.type, 'promptcache_replay_miss');
    assert.ok(err.nearest, `${name}: a nearest recording: ${res.text}`);
    return err.nearest.differences.map((d) => d.path);
  };
  // equal under the canonical forms
  await hit('form', form('c=A&a=1&b=2&a=0', 'application/x-www-form-urlencoded'));
  await hit('raw', rawPost(BIN_BODY, 'application/octet-stream', '/v1/echo?y=2&x=1'));
  await hit('get', { path: '/v1/echo?x=1&y=2' });
  await hit('mp', await multipart(BIN_BODY)); // another random boundary
  await hit('ndjson', gen);
  await hit('delete', { method: 'DELETE', path: '/v1/echo?id=7' });
  // and what differs, named
  assert.deepEqual(await miss('form field', form('b=3&a=1&a=0&c=A')), ['@field/b']);
  const reordered = await miss('form order of repeated names', form('b=2&a=0&a=1&c=A'));
  assert.ok(reordered.length > 0 && reordered.every((x) => x.startsWith('@field/a')), `repeated names keep their order: ${JSON.stringify(reordered)}`);
  assert.deepEqual(await miss('raw bytes', rawPost(Buffer.concat([BIN_BODY, Buffer.from([1])]))), ['@body']);
  assert.deepEqual(await miss('content type', rawPost(BIN_BODY, 'image/png')), ['@content-type']);
  assert.deepEqual(await miss('query value', { path: '/v1/echo?x=1&y=3' }), ['@query/y']);
  assert.deepEqual(await miss('multipart part', await multipart(Buffer.from('other bytes'))), ['@part/file']);
  assert.deepEqual(await miss('delete query', { method: 'DELETE', path: '/v1/echo?id=8' }), ['@query/id']);
  assert.deepEqual(await miss('the cut stream', { ...cutReq, headers: {} }), ['/prompt']);
  assert.equal(mock.total, before, 'replay never contacted upstream');
});

test('readwrite and readonly still cache only completion paths: state-changing and listing calls always reach upstream', { timeout: 30000 }, async (t) => {
  const mock = await mockFor(t, startStateMock, { runPolls: 1 });
  const proxy = await startProxy(t, { upstream: mock, args: ['--key-scope', 'shared'] }); // readwrite, the default
  const log = [];
  const { openai, anthropic } = clientsFor(proxy, log);
  const twice = async (fn) => [await fn(), await fn()];

  const thread = await openai.beta.threads.create({});
  const msgs = await twice(() => openai.beta.threads.messages.create(thread.id, { role: 'user', content: 'same message' }));
  assert.notEqual(msgs[0].id, msgs[1].id, 'two messages created');
  assert.equal(mock.count('POST', `/v1/threads/${thread.id}/messages`), 2);

  const models = await twice(() => openai.models.list().withResponse());
  assert.deepEqual(models.map((m) => m.response.headers.get('x-promptcache-status')), ['BYPASS', 'BYPASS']);
  assert.equal(mock.count('GET', '/v1/models'), 2);

  const files = await twice(async () => openai.files.create({ file: await notesFile(), purpose: 'assistants' }));
  assert.notEqual(files[0].id, files[1].id);
  assert.equal(mock.count('POST', '/v1/files'), 2);
  await twice(async () => asBytes(await openai.files.content(files[0].id)));
  assert.equal(mock.count('GET', `/v1/files/${files[0].id}/content`), 2);

  const speech = await twice(async () => asBytes(await openai.audio.speech.create(SPEECH)));
  assert.ok(!speech[0].equals(speech[1]), 'the second speech call got a fresh answer');
  assert.equal(mock.count('POST', '/v1/audio/speech'), 2);

  await twice(() => anthropic.messages.countTokens({ model: 'claude-3-5-haiku-latest', messages: [{ role: 'user', content: 'count' }] }));
  assert.equal(mock.count('POST', '/v1/messages/count_tokens'), 2);

  const r = await openai.beta.threads.runs.create(thread.id, { assistant_id: 'asst_x' });
  const polls = await twice(() => openai.beta.threads.runs.retrieve(r.id, { thread_id: thread.id }));
  assert.deepEqual(polls.map((p) => p.status), ['in_progress', 'completed'], 'polls are never cached');

  await twice(() => openai.files.delete(files[1].id).then(() => 'deleted', apiError));
  assert.equal(mock.count('DELETE', `/v1/files/${files[1].id}`), 2);

  // completions still cache
  const chats = await twice(() => openai.chat.completions.create(CHAT).withResponse());
  assert.deepEqual(chats.map((c) => c.response.headers.get('x-promptcache-status')), ['MISS', 'HIT']);
  assert.equal(mock.count('POST', '/v1/chat/completions'), 1);
  await proxy.stop();

  // a database recorded in record mode holds every exchange; readonly serves only its completions
  const recMock = await mockFor(t, startStateMock);
  const recorder = await startProxy(t, { upstream: recMock, args: ['--mode', 'record'] });
  const recLog = [];
  const rc = clientsFor(recorder, recLog);
  await rc.openai.models.list();
  const recChat = await rc.openai.chat.completions.create(CHAT);
  const recChat2 = await rc.openai.chat.completions.create(CHAT);
  assert.notEqual(recChat.id, recChat2.id);
  await recorder.stop();
  const live = await mockFor(t, startStateMock);
  const ro = await startProxy(t, { upstream: live, args: ['--mode', 'readonly', '--key-scope', 'shared'], dbDir: recorder.dbDir });
  const roc = clientsFor(ro, []);
  const m = await roc.openai.models.list().withResponse();
  assert.equal(m.response.headers.get('x-promptcache-status'), 'BYPASS');
  assert.equal(live.count('GET', '/v1/models'), 1, 'a recorded GET is not served outside replay');
  for (let i = 0; i < 2; i++) {
    const c = await roc.openai.chat.completions.create(CHAT).withResponse();
    assert.equal(c.response.headers.get('x-promptcache-status'), 'HIT');
    assert.equal(c.data.id, recChat.id, 'outside replay, a recorded completion is its first answer');
  }
  assert.equal(live.count('POST', '/v1/chat/completions'), 0);
});
