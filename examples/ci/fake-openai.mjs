#!/usr/bin/env node
// fake-openai.mjs — a tiny local stand-in for api.openai.com, so this example
// can be recorded without an API key or network access.
//
//   node fake-openai.mjs [--port 4010]      # prints "fake-openai: listening on http://127.0.0.1:PORT"
//
// It answers the way OpenAI does, with deterministic content (no model, no
// randomness, fixed timestamps), so a re-recording gives a quiet diff:
//   POST   /v1/chat/completions     a `chat.completion` JSON object, or with "stream": true a
//                                   text/event-stream of `chat.completion.chunk` events ending in
//                                   `data: [DONE]`. A system prompt mentioning "haiku" gets three
//                                   lines about the user's topic; anything else gets a "summary":
//                                   the first words of the user's text.
//   POST   /v1/files                a multipart upload (purpose, file) → a file object, a new id
//                                   each time (the same bytes uploaded twice are two files)
//   GET    /v1/files/{id}/content   the uploaded bytes
//   DELETE /v1/files/{id}           {id, object: "file", deleted: true}
//   POST   /v1/threads              a thread (with its first messages)
//   POST   /v1/threads/{t}/runs     a run, status "queued"
//   GET    /v1/threads/{t}/runs/{r} the run: "in_progress" for the first two polls, then "completed"
//   POST   /v1/audio/speech         MP3 bytes (audio/mpeg) derived from the input text
// Ids come from the request's content and how many times it was seen, not
// from a global counter, so concurrent test files get the same ids in every
// recording. Every request is logged on stdout. It listens on 127.0.0.1 only.
import http from 'node:http';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';

const HAIKU_LINES = [
  ['quiet morning light', 'a question asked once before', 'the answer still warm'],
  ['rain on the server', 'the same words return again', 'nothing leaves the room'],
  ['an old recording', 'plays back every careful word', 'no one pays twice now'],
];

function lastContent(messages, role) {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m && m.role === role) return typeof m.content === 'string' ? m.content : JSON.stringify(m.content);
  }
  return '';
}

/** The deterministic "model": the answer text for a chat request body. */
export function answerFor(body) {
  const system = lastContent(body.messages, 'system');
  const user = lastContent(body.messages, 'user');
  const digest = crypto.createHash('sha256').update(JSON.stringify(body.messages)).digest();
  if (/haiku/i.test(system)) {
    const lines = HAIKU_LINES[digest[0] % HAIKU_LINES.length];
    const topic = user.trim().toLowerCase() || 'silence';
    return [`${topic}: ${lines[0]}`, lines[1], lines[2]].join('\n');
  }
  const words = user.replace(/[^\p{L}\p{N}\s'-]/gu, ' ').split(/\s+/).filter(Boolean).slice(0, 9);
  if (words.length === 0) return 'There is nothing to summarize.';
  const s = words.join(' ');
  return `${s[0].toUpperCase()}${s.slice(1)}.`;
}

const tokens = (s) => Math.max(1, Math.ceil(s.length / 4));

function sendJson(res, status, obj, headers = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function error(res, status, message, type, code) {
  sendJson(res, status, { error: { message, type, param: null, code } });
}

async function chatCompletions(req, res, body) {
  if (!/^Bearer \S+/.test(req.headers.authorization || '')) {
    return error(res, 401, 'You didn\'t provide an API key.', 'invalid_request_error', 'invalid_api_key');
  }
  if (typeof body.model !== 'string' || !Array.isArray(body.messages) || body.messages.length === 0) {
    return error(res, 400, 'model and a non-empty messages array are required', 'invalid_request_error', null);
  }
  const text = answerFor(body);
  const hash = crypto.createHash('sha256').update(JSON.stringify(body)).digest('hex');
  const id = `chatcmpl-fake${hash.slice(0, 20)}`;
  const created = 1735689600; // fixed, so re-recording gives a quiet diff
  const model = `${body.model}-2024-07-18`;
  const promptTokens = tokens(body.messages.map((m) => String(m.content)).join(' '));
  const usage = { prompt_tokens: promptTokens, completion_tokens: tokens(text), total_tokens: promptTokens + tokens(text) };
  const headers = { 'x-request-id': `req_${hash.slice(20, 44)}`, 'openai-processing-ms': '42' };

  if (!body.stream) {
    return sendJson(res, 200, {
      id, object: 'chat.completion', created, model,
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage, system_fingerprint: 'fp_fake',
    }, headers);
  }

  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...headers });
  const base = { id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake' };
  const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
  const pieces = text.match(/\S+\s*|\s+/g) || [''];
  send({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }] });
  for (const piece of pieces) {
    await new Promise((r) => setTimeout(r, 5)); // tokens trickle in, like the real thing
    send({ ...base, choices: [{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }] });
  }
  send({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] });
  if (body.stream_options && body.stream_options.include_usage) send({ ...base, choices: [], usage });
  res.end('data: [DONE]\n\n');
}

const CREATED = 1735689600; // fixed, so re-recording gives a quiet diff
const POLLS_IN_PROGRESS = 2; // a run answers "in_progress" this many times, then "completed"
const sha = (...parts) => crypto.createHash('sha256').update(parts.join('\0')).digest();

/** The in-memory state of the stand-in: files, threads, runs, and how often each request was seen. */
function newState() {
  const seen = new Map();
  return {
    files: new Map(), threads: new Set(), runs: new Map(),
    /** An id for the n-th time `what` was created: the same in every recording of the same suite. */
    id(prefix, ...what) {
      const k = what.join('\0');
      const n = (seen.get(k) || 0) + 1;
      seen.set(k, n);
      return `${prefix}${sha(k, n).toString('hex').slice(0, 24)}`;
    },
  };
}

/** Deterministic MP3-shaped bytes for a text: an ID3 tag, then frames of noise derived from it. */
export function speechFor(text, voice) {
  const parts = [Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00', 'latin1')];
  const frames = 3 + Math.ceil(text.length / 12);
  for (let f = 0; f < frames; f++) {
    parts.push(Buffer.from([0xff, 0xfb, 0x90, 0x64])); // MPEG-1 layer III frame header
    for (let i = 0; i < 12; i++) parts.push(sha(voice, text, f, i));
  }
  return Buffer.concat(parts);
}

const fileObject = (f) => ({
  id: f.id, object: 'file', bytes: f.bytes.length, created_at: CREATED, filename: f.filename,
  purpose: f.purpose, status: 'processed', expires_at: null, status_details: null,
});

function runObject(r) {
  const status = r.polls === 0 ? 'queued' : r.polls <= POLLS_IN_PROGRESS ? 'in_progress' : 'completed';
  return {
    id: r.id, object: 'thread.run', created_at: CREATED, thread_id: r.thread_id, assistant_id: r.assistant_id,
    status, started_at: status === 'queued' ? null : CREATED + 1, completed_at: status === 'completed' ? CREATED + 5 : null,
    cancelled_at: null, failed_at: null, expires_at: null, last_error: null, incomplete_details: null, required_action: null,
    model: 'gpt-4o-mini', instructions: '', tools: [{ type: 'file_search' }], metadata: {},
    usage: status === 'completed' ? { prompt_tokens: 310, completion_tokens: 42, total_tokens: 352 } : null,
    temperature: 1, top_p: 1, response_format: 'auto', tool_choice: 'auto', parallel_tool_calls: true,
  };
}

/** Files, threads, runs and speech: everything except chat completions. */
async function other(state, req, res, raw, body) {
  const p = req.url.split('?')[0];
  const ctype = String(req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  let m;
  if (req.method === 'POST' && p === '/v1/files') {
    if (ctype !== 'multipart/form-data') return error(res, 400, 'Expected a multipart/form-data upload.', 'invalid_request_error', null);
    const form = await new Response(raw, { headers: { 'content-type': req.headers['content-type'] } }).formData();
    const file = form.get('file');
    const purpose = form.get('purpose');
    if (!file || typeof file === 'string' || typeof purpose !== 'string') return error(res, 400, 'file and purpose are required', 'invalid_request_error', null);
    const bytes = Buffer.from(await file.arrayBuffer());
    const f = { id: state.id('file-', 'file', purpose, file.name, bytes.toString('base64')), filename: file.name, purpose, bytes };
    state.files.set(f.id, f);
    return sendJson(res, 200, fileObject(f));
  }
  if ((m = /^\/v1\/files\/([^/]+)(\/content)?$/.exec(p))) {
    const f = state.files.get(m[1]);
    if (!f) return error(res, 404, `No such File object: ${m[1]}`, 'invalid_request_error', null);
    if (req.method === 'GET' && m[2]) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': f.bytes.length });
      return res.end(f.bytes);
    }
    if (req.method === 'GET') return sendJson(res, 200, fileObject(f));
    if (req.method === 'DELETE') {
      state.files.delete(f.id);
      return sendJson(res, 200, { id: f.id, object: 'file', deleted: true });
    }
  }
  if (req.method === 'POST' && p === '/v1/threads') {
    const id = state.id('thread_', 'thread', raw.toString('utf8'));
    state.threads.add(id);
    return sendJson(res, 200, { id, object: 'thread', created_at: CREATED, metadata: {}, tool_resources: {} });
  }
  if (req.method === 'POST' && (m = /^\/v1\/threads\/([^/]+)\/runs$/.exec(p))) {
    if (!state.threads.has(m[1])) return error(res, 404, `No thread found with id '${m[1]}'.`, 'invalid_request_error', null);
    if (!body || typeof body.assistant_id !== 'string') return error(res, 400, 'assistant_id is required', 'invalid_request_error', null);
    const r = { id: state.id('run_', 'run', m[1], body.assistant_id), thread_id: m[1], assistant_id: body.assistant_id, polls: 0 };
    state.runs.set(r.id, r);
    return sendJson(res, 200, runObject(r));
  }
  if (req.method === 'GET' && (m = /^\/v1\/threads\/([^/]+)\/runs\/([^/]+)$/.exec(p))) {
    const r = state.runs.get(m[2]);
    if (!r || r.thread_id !== m[1]) return error(res, 404, `No run found with id '${m[2]}'.`, 'invalid_request_error', null);
    r.polls++;
    return sendJson(res, 200, runObject(r));
  }
  if (req.method === 'POST' && p === '/v1/audio/speech') {
    if (!body || typeof body.input !== 'string') return error(res, 400, 'input is required', 'invalid_request_error', null);
    const mp3 = speechFor(body.input, String(body.voice));
    res.writeHead(200, { 'content-type': 'audio/mpeg', 'content-length': mp3.length });
    return res.end(mp3);
  }
  return error(res, 404, `Invalid URL (${req.method} ${req.url})`, 'invalid_request_error', null);
}

export function createServer() {
  const state = newState();
  return http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let body = null;
      try { body = raw.length ? JSON.parse(raw.toString('utf8')) : null; } catch { /* not JSON: handled below */ }
      console.log(`fake-openai: ${req.method} ${req.url}${body && body.stream ? ' (stream)' : ''}`);
      if (!/^Bearer \S+/.test(req.headers.authorization || '')) {
        return error(res, 401, 'You didn\'t provide an API key.', 'invalid_request_error', 'invalid_api_key');
      }
      if (req.method === 'POST' && req.url.split('?')[0] === '/v1/chat/completions') {
        if (!body || typeof body !== 'object') return error(res, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error', null);
        chatCompletions(req, res, body).catch((err) => { console.error(err); res.destroy(); });
        return;
      }
      other(state, req, res, raw, body).catch((err) => { console.error(err); if (!res.headersSent) error(res, 500, 'fake-openai failed', 'server_error', null); else res.destroy(); });
    });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--port');
  const port = i > 0 ? Number(process.argv[i + 1]) : 0;
  const server = createServer();
  server.listen(port, '127.0.0.1', () => {
    console.log(`fake-openai: listening on http://127.0.0.1:${server.address().port}`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
