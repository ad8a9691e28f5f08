// The app's tests. They talk to whatever OPENAI_BASE_URL points at: the real
// API, promptcache recording it (record.sh), or promptcache replaying
// fixtures/llm.jsonl offline (replay.sh, and CI).
import test from 'node:test';
import assert from 'node:assert/strict';
import { summarize, streamHaiku } from '../src/summarize.mjs';

const words = (s) => s.split(/\s+/).filter(Boolean).length;

test('summarize() answers with one short sentence about the text', async () => {
  const summary = await summarize(
    'Promptcache sits between your tests and the LLM API. The first run records every answer; ' +
      'later runs replay them offline, so CI is fast, free and deterministic.',
  );
  assert.ok(words(summary) <= 12, `too long: ${summary}`);
  assert.match(summary, /[.!]$/, 'one sentence');
  assert.match(summary, /promptcache/i, 'mentions the subject');
});

test('summarize() handles another text', async () => {
  const summary = await summarize('The quarterly report shows revenue up four percent and costs flat.');
  assert.ok(words(summary) <= 12, `too long: ${summary}`);
  assert.match(summary, /report|revenue/i);
});

test('streamHaiku() streams three lines about the topic', async () => {
  const { text, chunks } = await streamHaiku('Caching');
  const lines = text.split('\n');
  assert.equal(lines.length, 3, `a haiku has three lines:\n${text}`);
  assert.match(text, /cach/i, 'about the topic');
  assert.ok(chunks > 1, `arrived as a stream (${chunks} chunks)`);
});
