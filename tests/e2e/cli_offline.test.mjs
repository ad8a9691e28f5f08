// cli_offline.test.mjs — the offline subcommands (stats, export, import,
// purge, inspect, verify) run against the database of a proxy that is still
// serving: record a few exchanges through the proxy (OpenAI and Anthropic
// shapes, plain and streamed), then drive the CLI on its db directory.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  startMock, mockFor, startProxy, request, chat, makeTmpDir, requireBin, childEnv, sleep, HEX32,
} from './lib/setup.mjs';
import { echoText } from './lib/mock.mjs';
import { cli, cliOk as ok } from './lib/cli.mjs';

const RFC3339_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
async function statsJson(db) {
  const r = await ok(['stats', '--db', db, '--json']);
  return JSON.parse(r.text);
}

async function waitForEntries(db, n) {
  const end = performance.now() + 5000;
  for (;;) {
    const s = await statsJson(db);
    if (s.entries === n) return s;
    if (performance.now() > end) throw new Error(`expected ${n} entries, stats says ${JSON.stringify(s)}`);
    await sleep(25);
  }
}

function lines(buf) {
  const text = buf.toString('utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'the export ends with a newline');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

const ANTHROPIC_HEADERS = {
  'anthropic-version': '2023-06-01',
  'x-api-key': 'test-anthropic-key',
  'x-promptcache-namespace': 'team-a',
  'x-promptcache-ttl': '1h',
};

function anthropic(proxy, content, extra = {}) {
  return request(proxy, {
    method: 'POST',
    path: '/anthropic/v1/messages',
    headers: ANTHROPIC_HEADERS,
    body: { model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content }], ...extra },
  });
}

/**
 * A proxy (with an /anthropic route) that recorded four exchanges:
 * OpenAI plain + streamed (with an Authorization header, so their stored keys
 * are credential-scoped), Anthropic plain + streamed (namespace team-a, TTL 1h).
 */
async function recorded(t) {
  const mock = await mockFor(t, startMock);
  const proxy = await startProxy(t, { upstream: mock, args: ['--route', `/anthropic=${mock.url}`] });
  const auth = { authorization: 'Bearer test-openai-token' };
  const res = {
    plain: await chat(proxy, 'offline plain question', { headers: auth }),
    stream: await chat(proxy, 'offline streamed question', { headers: auth, extra: { stream: true } }),
    aplain: await anthropic(proxy, 'offline anthropic question'),
    astream: await anthropic(proxy, 'offline anthropic stream', { stream: true }),
  };
  for (const [name, r] of Object.entries(res)) {
    assert.equal(r.status, 200, `${name}: ${r.text}`);
    assert.equal(r.cache, 'MISS', name);
    assert.match(r.key, HEX32, name);
  }
  await waitForEntries(proxy.dbDir, 4);
  return { mock, proxy, db: proxy.dbDir, res };
}

test('stats --json counts entries by route, path and model while the proxy runs', async (t) => {
  const { db } = await recorded(t);
  const s = await statsJson(db);
  assert.equal(s.entries, 4);
  assert.ok(s.bytes > 0, 'bytes in use');
  assert.equal(s.expired, 0);
  assert.match(s.oldest, RFC3339_MS);
  assert.match(s.newest, RFC3339_MS);
  assert.ok(s.oldest <= s.newest);
  assert.equal(s.by_route[''].entries, 2);
  assert.equal(s.by_route['/anthropic'].entries, 2);
  assert.equal(s.by_path['/v1/chat/completions'].entries, 2);
  assert.equal(s.by_path['/v1/messages'].entries, 2);
  assert.equal(s.by_model['gpt-4o-mini'].entries, 2);
  assert.equal(s.by_model['claude-3-5-haiku-latest'].entries, 2);
  assert.ok(s.by_model['gpt-4o-mini'].body_bytes > 0);

  const text = await ok(['stats', '--db', db]);
  assert.match(text.text, /entries\s+4/);
  assert.match(text.text, /\/anthropic/);
  assert.match(text.text, /claude-3-5-haiku-latest/);

  const viaEnv = await ok(['stats', '--json'], { env: { PROMPTCACHE_DB: db } });
  assert.equal(JSON.parse(viaEnv.text).entries, 4, 'PROMPTCACHE_DB selects the database');
});

test('export is stable, valid JSONL with the documented fields, and never holds credentials', async (t) => {
  const { db, res } = await recorded(t);
  const a = await ok(['export', '--db', db]);
  const b = await ok(['export', '--db', db]);
  assert.ok(a.stdout.equals(b.stdout), 'two exports are byte-identical');
  const dir = makeTmpDir(t);
  const file = path.join(dir, 'rec.jsonl');
  await ok(['export', '--db', db, '--out', file]);
  assert.ok(fs.readFileSync(file).equals(a.stdout), '--out FILE writes the same bytes');
  assert.deepEqual(fs.readdirSync(dir), ['rec.jsonl'], 'no FILE.tmp left behind');

  const text = a.text;
  assert.doesNotMatch(text, /test-openai-token|test-anthropic-key|authorization|x-api-key/i);
  const entries = lines(a.stdout);
  assert.equal(entries.length, 4);
  const keys = entries.map((e) => e.key);
  assert.deepEqual([...keys].sort(), keys, 'lines are in key order');
  for (const line of text.trim().split('\n')) {
    assert.equal(line, JSON.stringify(JSON.parse(line)), 'no insignificant whitespace');
  }
  for (const e of entries) {
    assert.deepEqual(Object.keys(e), ['key', 'namespace', 'created', 'expires', 'request', 'response', 'usage', 'model']);
    assert.match(e.key, HEX32);
    assert.match(e.created, RFC3339_MS);
    assert.deepEqual(Object.keys(e.request), ['method', 'route', 'path', 'headers', 'body']);
    assert.equal(e.request.method, 'POST');
    assert.equal(e.response.status, 200);
    assert.equal(typeof e.response.headers, 'object');
    for (const name of Object.keys(e.response.headers)) assert.equal(name, name.toLowerCase());
    assert.equal(e.response.headers['set-cookie'], undefined);
    assert.equal(e.response.headers.date, undefined);
    assert.ok(e.usage === null || typeof e.usage === 'object');
  }

  const byPrompt = (p) => entries.find((e) => JSON.stringify(e.request.body).includes(p));
  const plain = byPrompt('offline plain question');
  assert.equal(plain.namespace, '');
  assert.equal(plain.expires, null);
  assert.equal(plain.request.route, '');
  assert.equal(plain.request.path, '/v1/chat/completions');
  assert.deepEqual(plain.request.headers, {});
  assert.deepEqual(plain.request.body, { messages: [{ content: 'offline plain question', role: 'user' }], model: 'gpt-4o-mini' });
  assert.deepEqual(plain.response.body, JSON.parse(res.plain.text), 'a JSON body is embedded as a value');
  assert.equal(plain.model, 'gpt-4o-mini');
  assert.notEqual(plain.key, res.plain.key, 'the credential-scoped key is replaced by the shared one');

  const stream = byPrompt('offline streamed question');
  assert.equal(stream.response.body, undefined);
  assert.ok(Array.isArray(stream.response.events) && stream.response.events.length > 1);
  let t0 = -1;
  for (const ev of stream.response.events) {
    assert.deepEqual(Object.keys(ev), ['t_ms', 'data']);
    assert.ok(Number.isInteger(ev.t_ms) && ev.t_ms >= t0, 't_ms never decreases');
    t0 = ev.t_ms;
  }
  assert.equal(stream.response.events.map((ev) => ev.data).join(''), res.stream.text, 'events concatenate to the stream');

  const aplain = byPrompt('offline anthropic question');
  assert.equal(aplain.namespace, 'team-a');
  assert.equal(aplain.request.route, '/anthropic');
  assert.equal(aplain.request.path, '/v1/messages');
  assert.deepEqual(aplain.request.headers, { 'anthropic-version': '2023-06-01' });
  const ttl = Date.parse(aplain.expires) - Date.parse(aplain.created);
  assert.equal(ttl, 3600 * 1000, 'expires = created + the 1h TTL');
  assert.notEqual(aplain.key, res.aplain.key, 'x-api-key scoped the stored key; the export is shared');
  const astream = byPrompt('offline anthropic stream');
  assert.match(astream.response.events.map((ev) => ev.data).join(''), /event: message_stop/);
});

test('export refuses a secret-shaped prompt (exit 3, names key and pointer) unless --allow-secrets', async (t) => {
  const { proxy, db } = await recorded(t);
  const secret = `sk-proj-${'A1b2C3d4E5'.repeat(3)}`;
  const r = await chat(proxy, `please remember ${secret}`, { headers: { authorization: 'Bearer test-openai-token' } });
  assert.equal(r.status, 200);
  await waitForEntries(db, 5);

  const refused = await cli(['export', '--db', db]);
  assert.equal(refused.code, 3, `exit status; stderr: ${refused.stderr}`);
  assert.equal(refused.stdout.length, 0, 'nothing on stdout');
  const msg = refused.stderr.trim();
  assert.equal(msg.split('\n').length, 1, `one line: ${msg}`);
  assert.ok(msg.includes(r.key), `names the entry key ${r.key}: ${msg}`);
  assert.ok(msg.includes('/request/body/messages/0/content'), `names the JSON pointer: ${msg}`);
  assert.ok(!msg.includes(secret), 'does not repeat the secret');

  const dir = makeTmpDir(t);
  const file = path.join(dir, 'out.jsonl');
  const toFile = await cli(['export', '--db', db, '--out', file]);
  assert.equal(toFile.code, 3);
  assert.deepEqual(fs.readdirSync(dir), [], 'a refused export leaves no file and no FILE.tmp');

  const allowed = await ok(['export', '--db', db, '--allow-secrets']);
  const entries = lines(allowed.stdout);
  assert.equal(entries.length, 5);
  assert.ok(allowed.text.includes(secret));

  const team = await ok(['export', '--db', db, '--namespace', 'team-a']);
  const teamEntries = lines(team.stdout);
  assert.equal(teamEntries.length, 2, '--namespace exports only that namespace (and skips the secret)');
  for (const e of teamEntries) assert.equal(e.namespace, 'team-a');
});

test('import into a new db: verify OK, export identical, and replay serves it', async (t) => {
  const { mock, db, res } = await recorded(t);
  const first = await ok(['export', '--db', db]);
  const dir = makeTmpDir(t);
  const file = path.join(dir, 'rec.jsonl');
  fs.writeFileSync(file, first.stdout);
  const db2 = path.join(dir, 'imported-db');

  const imp = await ok(['import', '--db', db2, file]);
  assert.match(imp.text, /imported 4 entries/);
  const v = await ok(['verify', '--db', db2]);
  assert.match(v.text, /^4 entries OK$/m);
  const second = await ok(['export', '--db', db2]);
  assert.ok(second.stdout.equals(first.stdout), 'export → import → export is byte-identical');
  const again = await ok(['import', '--db', db2, file, file]);
  assert.match(again.text, /imported 8 entries/, 'counts every stored line');
  assert.equal((await statsJson(db2)).entries, 4, 're-importing overwrites, never duplicates');

  // A replay proxy on the imported database answers from it without upstream.
  const before = mock.count();
  const replay = await startProxy(t, { upstream: mock, dbDir: db2, args: ['--mode', 'replay', '--route', `/anthropic=${mock.url}`] });
  const hit = await chat(replay, 'offline plain question', { headers: { authorization: 'Bearer another-token' } });
  assert.equal(hit.status, 200, hit.text);
  assert.equal(hit.cache, 'HIT');
  assert.equal(hit.text, res.plain.text, 'the recorded body, byte for byte');
  const ahit = await anthropic(replay, 'offline anthropic stream', { stream: true });
  assert.equal(ahit.cache, 'HIT');
  assert.equal(ahit.text, res.astream.text);
  assert.equal(mock.count(), before, 'upstream was not contacted');
});

test('import rejects an edited line naming file:line and stores nothing', async (t) => {
  const { db } = await recorded(t);
  const exp = await ok(['export', '--db', db]);
  const text = exp.text.replace('offline plain question', 'offline edited question');
  const lineNo = text.split('\n').findIndex((l) => l.includes('offline edited question')) + 1;
  const dir = makeTmpDir(t);
  const file = path.join(dir, 'edited.jsonl');
  fs.writeFileSync(file, text);
  const db2 = path.join(dir, 'db2');
  const r = await cli(['import', '--db', db2, file]);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.includes(`${file}:${lineNo}:`), `names ${file}:${lineNo}: ${r.stderr}`);
  assert.match(r.stderr, /does not match/);
  assert.equal((await statsJson(db2)).entries, 0);

  fs.writeFileSync(file, '{"key": oops}\n');
  const bad = await cli(['import', '--db', db2, file]);
  assert.equal(bad.code, 1);
  assert.ok(bad.stderr.includes(`${file}:1:`), bad.stderr);
});

test('inspect shows the canonical request and the response, never a fingerprint', async (t) => {
  const { db, res } = await recorded(t);
  const r = await ok(['inspect', '--db', db, res.plain.key]);
  const out = r.text;
  assert.match(out, /POST/);
  assert.match(out, /\/v1\/chat\/completions/);
  assert.match(out, /"content": "offline plain question"/, 'body pretty-printed');
  assert.match(out, /status\s+200/);
  assert.match(out, /content-type: application\/json/);
  assert.ok(out.includes(`"content": "${echoText('offline plain question')}"`), 'response body pretty-printed');
  assert.match(out, /credential\s+\(scoped\)/);
  assert.match(out, /created\s+\d{4}-\d\d-\d\dT/);
  assert.match(out, /expires\s+never/);
  for (const hex of out.match(/[0-9a-f]{32}/g) || []) assert.equal(hex, res.plain.key, 'the only 32-hex value is the key');

  const s = await ok(['inspect', '--db', db, res.astream.key]);
  assert.match(s.text, /events \(\d+\)/);
  assert.match(s.text, /\+\s*\d+ ms\s+"event: message_start/);
  assert.match(s.text, /namespace\s+team-a/);
  assert.match(s.text, /anthropic-version: 2023-06-01/);
  assert.match(s.text, /expires\s+\S+Z \(in /);

  const missing = await cli(['inspect', '--db', db, '0'.repeat(32)]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no entry/);
});

test('purge by key, namespace, older-than and all while the proxy runs', async (t) => {
  const { proxy, db, res } = await recorded(t);
  let r = await ok(['purge', '--db', db, '--key', res.plain.key]);
  assert.match(r.text, /deleted 1 entries/);
  assert.equal((await statsJson(db)).entries, 3);
  const again = await cli(['purge', '--db', db, '--key', res.plain.key]);
  assert.equal(again.code, 1, 'purging a missing key fails');
  assert.match(again.stderr, new RegExp(res.plain.key));
  const refetch = await chat(proxy, 'offline plain question', { headers: { authorization: 'Bearer test-openai-token' } });
  assert.equal(refetch.cache, 'MISS', 'the purged entry is gone for the running proxy');
  await waitForEntries(db, 4);

  r = await ok(['purge', '--db', db, '--namespace', 'team-a']);
  assert.match(r.text, /deleted 2 entries/);
  assert.equal((await statsJson(db)).entries, 2);

  r = await ok(['purge', '--db', db, '--older-than', '1h']);
  assert.match(r.text, /deleted 0 entries/);
  await sleep(30);
  r = await ok(['purge', '--db', db, '--older-than', '10ms']);
  assert.match(r.text, /deleted 2 entries/);
  assert.equal((await statsJson(db)).entries, 0);

  await chat(proxy, 'one more', {});
  await waitForEntries(db, 1);
  r = await ok(['purge', '--db', db, '--all']);
  assert.match(r.text, /deleted 1 entries/);
  assert.equal((await statsJson(db)).entries, 0);
  const hitCheck = await chat(proxy, 'one more', {});
  assert.equal(hitCheck.cache, 'MISS');
});

test('verify passes on a live database and detects an entry whose bytes were altered', async (t) => {
  const { proxy, db, res } = await recorded(t);
  const marker = 'verify-marker-7f3a';
  const target = await chat(proxy, marker, {});
  assert.equal(target.status, 200);
  await waitForEntries(db, 5);
  const good = await ok(['verify', '--db', db]);
  assert.match(good.text, /^5 entries OK$/m);

  await proxy.stop();
  // The response body holds "echo: <marker>" (the request only the marker).
  const file = path.join(db, 'data.mdb');
  const bytes = fs.readFileSync(file);
  const needle = Buffer.from(echoText(marker));
  let at = bytes.indexOf(needle);
  assert.ok(at >= 0, 'the response body is in data.mdb');
  for (; at >= 0; at = bytes.indexOf(needle, at + 1)) bytes[at] = 'E'.charCodeAt(0);
  fs.writeFileSync(file, bytes);

  const bad = await cli(['verify', '--db', db]);
  assert.equal(bad.code, 1, bad.text);
  assert.match(bad.text, new RegExp(`BAD ${target.key}: .*checksum`));
  assert.equal(bad.text.split('\n').filter((l) => l.startsWith('BAD')).length, 1, 'only the altered entry');
  assert.match(bad.text, /1 of 5 entries bad/);
  const exp = await cli(['export', '--db', db]);
  assert.equal(exp.code, 1, 'export does not write a corrupt entry');
  assert.ok(exp.stderr.includes(target.key));
  const ins = await cli(['inspect', '--db', db, res.plain.key]);
  assert.equal(ins.code, 0, 'other entries are still readable');
});

test('bad arguments exit 2 with one line; read-only commands never create a database', async (t) => {
  const dir = makeTmpDir(t);
  const db = path.join(dir, 'db');
  await ok(['import', '--db', db, '/dev/null']); // an empty but existing database
  const missing = path.join(dir, 'no-such-db');
  const cases = [
    ['stats', '--db', db, '--bogus'],
    ['stats', '--db', db, 'extra'],
    ['export', '--db', db, '--out'],
    ['export', '--db', db, '--frobnicate'],
    ['purge', '--db', db],
    ['purge', '--db', db, '--all', '--namespace', 'x'],
    ['purge', '--db', db, '--older-than', 'soon'],
    ['purge', '--db', db, '--key', 'not-hex'],
    ['inspect', '--db', db],
    ['inspect', '--db', db, 'xyz'],
    ['verify', '--db', db, 'extra'],
    ['import', '--db', db],
    ['import', '--db', db, path.join(dir, 'missing.jsonl')],
    ['stats', '--db', missing],
    ['export', '--db', missing],
    ['inspect', '--db', missing, '0'.repeat(32)],
    ['verify', '--db', missing],
    ['purge', '--db', missing, '--all'],
  ];
  for (const args of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}; stderr: ${r.stderr}`);
    const msg = r.stderr.trim();
    assert.ok(msg.length > 0 && !msg.includes('\n'), `${args.join(' ')}: one line, got: ${JSON.stringify(r.stderr)}`);
    assert.match(msg, /^promptcache \w+: /);
    assert.equal(r.stdout.length, 0);
  }
  assert.equal(fs.existsSync(missing), false, 'no database was created');

  for (const sub of ['stats', 'export', 'import', 'purge', 'inspect', 'verify']) {
    const h = await ok([sub, '--help']);
    assert.match(h.text, new RegExp(`usage: promptcache ${sub}`));
  }
  const empty = await ok(['verify', '--db', db]);
  assert.match(empty.text, /^0 entries OK$/m);
  const emptyExport = await ok(['export', '--db', db]);
  assert.equal(emptyExport.stdout.length, 0);
});
