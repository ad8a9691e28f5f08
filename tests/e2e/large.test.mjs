// large.test.mjs — hits on large prompts: an exact repeat of a large request
// is served without canonicalizing it again, but never on the strength of a
// hash: a request that differs in one byte anywhere in a 1 MB body misses.
// The memory that remembers raw requests has a budget, shown in /stats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, request, chatBody } from './lib/setup.mjs';

const MB = 1024 * 1024;

function bigBody(size, fill = 'a') {
  const base = JSON.stringify(chatBody(''));
  return JSON.stringify(chatBody(fill.repeat(size - base.length)));
}

/** The same JSON text with the byte at `at` (inside the prompt) changed. */
function flipAt(text, at) {
  const c = text[at] === 'a' ? 'b' : 'a';
  return text.slice(0, at) + c + text.slice(at + 1);
}

async function post(proxy, body, headers = {}) {
  return request(proxy, { method: 'POST', path: '/v1/chat/completions', headers, body, timeoutMs: 30000 });
}

async function stats(proxy) {
  return JSON.parse((await request(proxy, { path: '/_promptcache/stats' })).text);
}

test('a 1 MB prompt: repeats hit; one byte changed at the start, the middle or the end misses', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--max-body', '4MiB'] });
  const body = bigBody(MB);
  const first = await post(proxy, body);
  assert.equal(first.cache, 'MISS');
  for (let i = 0; i < 3; i++) {
    const r = await post(proxy, body);
    assert.equal(r.cache, 'HIT', `repeat ${i}`);
    assert.equal(r.text, first.text);
  }
  const content = body.indexOf('"content":"') + 11;
  const end = body.lastIndexOf('"}]');
  for (const [where, at] of [['start', content], ['middle', (content + end) >> 1], ['end', end - 1]]) {
    const changed = flipAt(body, at);
    assert.equal(changed.length, body.length);
    const r = await post(proxy, changed);
    assert.equal(r.cache, 'MISS', `a byte changed at the ${where} of the body`);
    assert.notEqual(r.key, first.key);
    assert.equal((await post(proxy, body)).cache, 'HIT', `the original still hits after the ${where} change`);
  }
  assert.equal(mock.count(), 4);
});

test('large repeats stay scoped: another credential or namespace misses', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--max-body', '4MiB'] });
  const body = bigBody(256 * 1024);
  const a = { authorization: 'Bearer sk-one' };
  assert.equal((await post(proxy, body, a)).cache, 'MISS');
  assert.equal((await post(proxy, body, a)).cache, 'HIT');
  assert.equal((await post(proxy, body, a)).cache, 'HIT');
  assert.equal((await post(proxy, body, { authorization: 'Bearer sk-two' })).cache, 'MISS');
  assert.equal((await post(proxy, body, { ...a, 'x-promptcache-namespace': 'other' })).cache, 'MISS');
  assert.equal(mock.count(), 3);
});

test('the memory that remembers raw requests stays within --memo-size, shown in /stats', async (t) => {
  const budget = 1 * MB;
  const { proxy } = await setup(t, { args: ['--max-body', '4MiB', '--memo-size', String(budget), '--workers', '1'] });
  const bodies = Array.from({ length: 8 }, (_, i) => bigBody(300 * 1024, String.fromCharCode(97 + i)));
  for (const b of bodies) {
    assert.equal((await post(proxy, b)).cache, 'MISS');
    assert.equal((await post(proxy, b)).cache, 'HIT'); // verified: now remembered
  }
  const s = await stats(proxy);
  assert.equal(s.memo.budget, budget);
  assert.ok(s.memo.bytes > 0 && s.memo.bytes <= budget, `memo holds ${s.memo.bytes} bytes`);
  assert.ok(s.memo.entries >= 1 && s.memo.entries < 8, `${s.memo.entries} entries`);
  // what the memo dropped is still served, the long way
  for (const b of bodies) assert.equal((await post(proxy, b)).cache, 'HIT');
});
