// notes.mjs — the other half of the "app": it works with files, an assistant
// run and speech, the OpenAI calls that are not completions. promptcache
// records and replays these too: the multipart upload (keyed by its parts,
// not by the random boundary), the file download and the MP3 bytes (replayed
// byte for byte), the delete, and the run that is polled until it completes
// (the recording keeps every poll's answer, in order).
import OpenAI, { toFile } from 'openai';

const client = new OpenAI();

// The assistant that answers questions about the notes. When recording
// against the real API, create one (with the file_search tool) and put its id
// here: the id is part of the recorded request.
export const ASSISTANT_ID = 'asst_example_notes';

/** Upload `text` as a file for assistants; returns the file object. */
export async function uploadNotes(text, filename = 'notes.txt') {
  return client.files.create({ file: await toFile(Buffer.from(text), filename, { type: 'text/plain' }), purpose: 'assistants' });
}

/** The bytes of an uploaded file, as text. */
export async function downloadNotes(fileId) {
  const response = await client.files.content(fileId);
  return Buffer.from(await response.arrayBuffer()).toString('utf8');
}

/** Delete an uploaded file; true when the API says it is gone. */
export async function deleteNotes(fileId) {
  return (await client.files.delete(fileId)).deleted === true;
}

/**
 * Ask the assistant about an uploaded file: a thread with the question and
 * the file attached, then a run polled until it reaches a terminal state.
 * Returns the finished run.
 */
export async function askAboutNotes(fileId, question, { pollIntervalMs = 1000 } = {}) {
  const thread = await client.beta.threads.create({
    messages: [{ role: 'user', content: question, attachments: [{ file_id: fileId, tools: [{ type: 'file_search' }] }] }],
  });
  return client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: ASSISTANT_ID }, { pollIntervalMs });
}

/** `text` read aloud: MP3 bytes. */
export async function readAloud(text) {
  const response = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: text, response_format: 'mp3' });
  return Buffer.from(await response.arrayBuffer());
}
