// Tests of src/notes.mjs: a file upload and its download, an assistant run
// polled until it completes, and speech. Recorded and replayed like the chat
// tests: in replay every one of these calls is answered from
// fixtures/llm.jsonl, byte for byte, and the run's polls come back in the
// order they were recorded (in_progress, in_progress, completed).
import test from 'node:test';
import assert from 'node:assert/strict';
import { uploadNotes, downloadNotes, deleteNotes, askAboutNotes, readAloud } from '../src/notes.mjs';

// NOTES_DAY exists only so that tests/e2e/example_ci.test.mjs can change the
// uploaded file without editing files (a changed upload misses in replay).
const NOTES = `Team notes, ${process.env.NOTES_DAY || 'Friday'}:\n- ship v2\n- fix the flaky upload test\n`;

test('notes upload as a file and download byte for byte', async () => {
  const file = await uploadNotes(NOTES);
  assert.match(file.id, /^file-/);
  assert.equal(file.bytes, Buffer.byteLength(NOTES));
  assert.equal(await downloadNotes(file.id), NOTES);
  assert.equal(await deleteNotes(file.id), true);
});

test('an assistant run about the notes is polled until it completes', async () => {
  // The same upload as above: promptcache records both answers in order.
  const file = await uploadNotes(NOTES);
  const run = await askAboutNotes(file.id, 'What ships this week?', { pollIntervalMs: 50 });
  assert.equal(run.status, 'completed');
  assert.ok(run.completed_at, 'the run finished');
  assert.equal(await deleteNotes(file.id), true);
});

test('readAloud() returns MP3 audio', async () => {
  const mp3 = await readAloud('Ship v2 on Friday.');
  assert.ok(mp3.length > 1000, `${mp3.length} bytes`);
  const id3 = mp3.subarray(0, 3).toString('latin1') === 'ID3';
  const frame = mp3[0] === 0xff && (mp3[1] & 0xe0) === 0xe0;
  assert.ok(id3 || frame, 'starts with an ID3 tag or an MPEG frame');
});
