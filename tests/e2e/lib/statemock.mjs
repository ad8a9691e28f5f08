// statemock.mjs — a stateful fake OpenAI/Anthropic upstream for the
// record-everything tests (record_all.test.mjs): the endpoints an app's test
// suite touches besides completions, with state that changes between calls,
// so a recording holds sequences (a run polled until it completes, a file that
// exists and then does not) and answers that are not JSON (uploaded bytes,
// MP3 audio, NDJSON).
//
// One node:http server on 127.0.0.1, port 0. Every request is recorded
// (method, url, path, query, headers, raw body) and counted per
// "METHOD /path" (`mock.count(method, path)`, `mock.counts()`).
//
//   GET    /v1/models                         model list
//   GET    /v1/models/{id}                    one model (404 when unknown)
//   POST   /v1/files                          multipart (purpose, file) → FileObject, a fresh id per call
//   GET    /v1/files[?purpose=&limit=]        list, newest first
//   GET    /v1/files/{id}                     FileObject, 404 once deleted or unknown
//   GET    /v1/files/{id}/content             the uploaded bytes (application/octet-stream)
//   DELETE /v1/files/{id}                     {id, object:"file", deleted:true}; 404 when unknown
//   POST   /v1/threads                        thread
//   POST   /v1/threads/{t}/messages           thread.message, a fresh id per call
//   POST   /v1/threads/{t}/runs               thread.run, status "queued"
//   GET    /v1/threads/{t}/runs/{r}           "in_progress" for the first `runPolls` polls, then "completed"
//   POST   /v1/audio/speech                   audio/mpeg bytes: deterministic per (model, voice, input,
//                                             n-th call with that input), binary (every byte value)
//   POST   /v1/batches                        batch, status "validating"
//   GET    /v1/batches/{id}                   "in_progress" for the first `batchPolls` retrievals, then
//                                             "completed" with an output file (JSONL) to download
//   POST   /v1/messages/count_tokens          Anthropic {input_tokens}
//   POST   /v1/chat/completions               JSON, or SSE with "stream": true (mock.mjs's events)
//   POST   /v1/messages                       Anthropic JSON, or SSE with "stream": true
//   POST   /api/generate                      NDJSON stream (application/x-ndjson), Ollama-shaped;
//                                             `x-statemock-cut: N` drops the connection after N lines
//   ANY    /v1/echo[?...]                     200 JSON: the method, url, content type (parameters
//                                             dropped), the body (base64) and a call counter `n`
//                                             (taken on arrival); `x-statemock-delay: MS` answers
//                                             MS later (at most 5 s)
//   anything else                             404 JSON error in OpenAI's shape
//
// Ids are deterministic within one mock (a counter per kind), timestamps are
// fixed, so two mocks asked the same things in the same order answer the same
// bytes. Every answer of a counted kind differs from the previous one (ids,
// `n`), so a test can tell which recorded answer a replay served.
import http from 'node:http';
import crypto from 'node:crypto';
import { openAIStreamEvents, anthropicStreamEvents, echoText, serveMock } from './mock.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const CREATED = 1735689600;

function sendJson(res, status, obj, headers = {}) {
  const body = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(body.length), ...headers });
  res.end(body);
}

function sendBytes(res, status, type, bytes, headers = {}) {
  res.writeHead(status, { 'content-type': type, 'content-length': String(bytes.length), ...headers });
  res.end(bytes);
}

function notFound(res, what) {
  sendJson(res, 404, { error: { message: `No such ${what}`, type: 'invalid_request_error', param: null, code: null } });
}

function badRequest(res, message) {
  sendJson(res, 400, { error: { message, type: 'invalid_request_error', param: null, code: null } });
}

/** Deterministic pseudo-random bytes: SHA-256 in counter mode over `seed`. */
export function prng(seed, n) {
  const out = Buffer.alloc(n);
  let off = 0;
  for (let i = 0; off < n; i++) {
    const h = crypto.createHash('sha256').update(seed).update(String(i)).digest();
    off += h.copy(out, off, 0, Math.min(h.length, n - off));
  }
  return out;
}

/** The MP3 bytes the mock answers for a speech request (the `call`-th with this input, from 1). */
export function speechBytes(model, voice, input, call) {
  const id3 = Buffer.from([0x49, 0x44, 0x33, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]); // "ID3" v2.4, empty tag
  const frames = [];
  const nFrames = 3 + (String(input).length % 5);
  for (let f = 0; f < nFrames; f++) {
    frames.push(Buffer.from([0xff, 0xfb, 0x90, 0x64])); // MPEG-1 layer III frame header
    frames.push(prng(`${model}\0${voice}\0${input}\0${call}\0${f}`, 413));
  }
  // every byte value once, so the answer is not UTF-8 by any accident
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  return Buffer.concat([id3, ...frames, all]);
}

/** The NDJSON lines the mock streams for POST /api/generate (each ends in "\n"). */
export function ndjsonLines(model, prompt, n = 4) {
  const text = echoText(prompt);
  const size = Math.max(1, Math.ceil(text.length / n));
  const lines = [];
  for (let i = 0; i < n; i++) {
    lines.push(`${JSON.stringify({ model, created_at: '2025-01-01T00:00:00Z', response: text.slice(i * size, (i + 1) * size), done: false })}\n`);
  }
  lines.push(`${JSON.stringify({ model, created_at: '2025-01-01T00:00:00Z', response: '', done: true, done_reason: 'stop', eval_count: n })}\n`);
  return lines;
}

const contentTypeOf = (req) => String(req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();

export async function startStateMock(opts = {}) {
  const mock = {
    runPolls: opts.runPolls ?? 2, // in_progress answers before "completed"
    batchPolls: opts.batchPolls ?? 1,
    chunkDelayMs: opts.chunkDelayMs ?? 5,
    requests: [],
    port: 0,
    url: '',
    sockets: new Set(),
    state: { files: new Map(), threads: new Map(), runs: new Map(), batches: new Map() },
    seqs: new Map(), // per kind counters
    next(kind) {
      const n = (this.seqs.get(kind) || 0) + 1;
      this.seqs.set(kind, n);
      return n;
    },
    /** Requests seen, optionally only `method` (or '*') on `path` (a string: exact path; a RegExp). */
    count(method, path) {
      return this.requests.filter((r) => (!method || method === '*' || r.method === method)
        && (path === undefined || (path instanceof RegExp ? path.test(r.path) : r.path === path))).length;
    },
    /** {"METHOD /path": n} of every request seen. */
    counts() {
      const out = {};
      for (const r of this.requests) out[`${r.method} ${r.path}`] = (out[`${r.method} ${r.path}`] || 0) + 1;
      return out;
    },
    get total() { return this.requests.length; },
    close: null,
  };

  const id = (prefix, kind) => `${prefix}${String(mock.next(kind)).padStart(4, '0')}${crypto.createHash('sha256').update(`${kind}${mock.seqs.get(kind)}`).digest('hex').slice(0, 12)}`;

  const fileObject = (f) => ({
    id: f.id, object: 'file', bytes: f.bytes.length, created_at: CREATED, filename: f.filename,
    purpose: f.purpose, status: 'processed', expires_at: null, status_details: null,
  });
  const runObject = (r, status) => ({
    id: r.id, object: 'thread.run', created_at: CREATED, thread_id: r.thread_id, assistant_id: r.assistant_id,
    status, started_at: status === 'queued' ? null : CREATED + 1, completed_at: status === 'completed' ? CREATED + 2 : null,
    cancelled_at: null, failed_at: null, expires_at: null, last_error: null, model: r.model || 'gpt-4o-mini',
    instructions: r.instructions || '', tools: [], metadata: {}, incomplete_details: null, required_action: null,
    usage: status === 'completed' ? { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } : null,
    temperature: 1, top_p: 1, max_prompt_tokens: null, max_completion_tokens: null, truncation_strategy: { type: 'auto', last_messages: null },
    response_format: 'auto', tool_choice: 'auto', parallel_tool_calls: true, poll: r.polls,
  });
  const batchObject = (b, status) => ({
    id: b.id, object: 'batch', endpoint: b.endpoint, errors: null, input_file_id: b.input_file_id,
    completion_window: b.completion_window, status, output_file_id: status === 'completed' ? b.output_file_id : null,
    error_file_id: null, created_at: CREATED, in_progress_at: status === 'validating' ? null : CREATED + 1,
    expires_at: CREATED + 86400, completed_at: status === 'completed' ? CREATED + 3 : null,
    request_counts: { total: b.lines, completed: status === 'completed' ? b.lines : 0, failed: 0 }, metadata: b.metadata || null,
  });

  async function handle(req, res, rec) {
    const { method, path: p } = rec;
    const j = rec.json;
    let m;
    if (method === 'GET' && p === '/v1/models') {
      return sendJson(res, 200, {
        object: 'list',
        data: ['gpt-4o-mini', 'tts-1', 'whisper-1'].map((mid) => ({ id: mid, object: 'model', created: CREATED, owned_by: 'statemock' })),
      });
    }
    if (method === 'GET' && (m = /^\/v1\/models\/([^/]+)$/.exec(p))) {
      if (!['gpt-4o-mini', 'tts-1', 'whisper-1'].includes(m[1])) return notFound(res, 'model');
      return sendJson(res, 200, { id: m[1], object: 'model', created: CREATED, owned_by: 'statemock' });
    }
    if (p === '/v1/files' && method === 'POST') {
      if (contentTypeOf(req) !== 'multipart/form-data') return badRequest(res, 'expected multipart/form-data');
      let form;
      try {
        form = await new Response(rec.body, { headers: { 'content-type': req.headers['content-type'] } }).formData();
      } catch (e) {
        return badRequest(res, `bad multipart body: ${e.message}`);
      }
      const file = form.get('file');
      const purpose = form.get('purpose');
      if (!file || typeof file === 'string' || typeof purpose !== 'string') return badRequest(res, 'file and purpose are required');
      const f = { id: id('file-', 'file'), filename: file.name, purpose, type: file.type, bytes: Buffer.from(await file.arrayBuffer()) };
      mock.state.files.set(f.id, f);
      return sendJson(res, 200, fileObject(f));
    }
    if (p === '/v1/files' && method === 'GET') {
      const purpose = rec.searchParams.get('purpose');
      const limit = Number(rec.searchParams.get('limit') || 10000);
      const data = [...mock.state.files.values()].reverse().filter((f) => !purpose || f.purpose === purpose).slice(0, limit).map(fileObject);
      return sendJson(res, 200, { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: false });
    }
    if ((m = /^\/v1\/files\/([^/]+)(\/content)?$/.exec(p))) {
      const f = mock.state.files.get(m[1]);
      if (method === 'GET' && !m[2]) return f ? sendJson(res, 200, fileObject(f)) : notFound(res, `file: ${m[1]}`);
      if (method === 'GET' && m[2]) return f ? sendBytes(res, 200, 'application/octet-stream', f.bytes) : notFound(res, `file: ${m[1]}`);
      if (method === 'DELETE' && !m[2]) {
        if (!f) return notFound(res, `file: ${m[1]}`);
        mock.state.files.delete(m[1]);
        return sendJson(res, 200, { id: m[1], object: 'file', deleted: true });
      }
    }
    if (method === 'POST' && p === '/v1/threads') {
      const t = { id: id('thread_', 'thread'), messages: (j && j.messages) || [] };
      mock.state.threads.set(t.id, t);
      return sendJson(res, 200, { id: t.id, object: 'thread', created_at: CREATED, metadata: (j && j.metadata) || {}, tool_resources: {} });
    }
    if (method === 'POST' && (m = /^\/v1\/threads\/([^/]+)\/messages$/.exec(p))) {
      const t = mock.state.threads.get(m[1]);
      if (!t) return notFound(res, 'thread');
      t.messages.push(j);
      return sendJson(res, 200, {
        id: id('msg_', 'message'), object: 'thread.message', created_at: CREATED, thread_id: t.id, role: (j && j.role) || 'user',
        content: [{ type: 'text', text: { value: typeof j?.content === 'string' ? j.content : JSON.stringify(j?.content), annotations: [] } }],
        assistant_id: null, run_id: null, attachments: (j && j.attachments) || [], metadata: {}, status: 'completed',
      });
    }
    if (method === 'POST' && (m = /^\/v1\/threads\/([^/]+)\/runs$/.exec(p))) {
      if (!mock.state.threads.has(m[1])) return notFound(res, 'thread');
      if (!j || typeof j.assistant_id !== 'string') return badRequest(res, 'assistant_id is required');
      const r = { id: id('run_', 'run'), thread_id: m[1], assistant_id: j.assistant_id, model: j.model, instructions: j.instructions, polls: 0 };
      mock.state.runs.set(r.id, r);
      return sendJson(res, 200, runObject(r, 'queued'));
    }
    if (method === 'GET' && (m = /^\/v1\/threads\/([^/]+)\/runs\/([^/]+)$/.exec(p))) {
      const r = mock.state.runs.get(m[2]);
      if (!r || r.thread_id !== m[1]) return notFound(res, 'run');
      r.polls++;
      return sendJson(res, 200, runObject(r, r.polls <= mock.runPolls ? 'in_progress' : 'completed'));
    }
    if (method === 'POST' && p === '/v1/audio/speech') {
      if (!j || typeof j.input !== 'string') return badRequest(res, 'input is required');
      const call = mock.next(`speech\0${j.model}\0${j.voice}\0${j.input}`);
      return sendBytes(res, 200, 'audio/mpeg', speechBytes(j.model, j.voice, j.input, call));
    }
    if (method === 'POST' && p === '/v1/batches') {
      if (!j || !mock.state.files.has(j.input_file_id)) return badRequest(res, 'input_file_id must name an uploaded file');
      const input = mock.state.files.get(j.input_file_id).bytes.toString('utf8').split('\n').filter(Boolean);
      const b = { id: id('batch_', 'batch'), endpoint: j.endpoint, input_file_id: j.input_file_id, completion_window: j.completion_window, metadata: j.metadata, lines: input.length, input, polls: 0, output_file_id: null };
      mock.state.batches.set(b.id, b);
      return sendJson(res, 200, batchObject(b, 'validating'));
    }
    if (method === 'GET' && (m = /^\/v1\/batches\/([^/]+)$/.exec(p))) {
      const b = mock.state.batches.get(m[1]);
      if (!b) return notFound(res, 'batch');
      b.polls++;
      if (b.polls <= mock.batchPolls) return sendJson(res, 200, batchObject(b, 'in_progress'));
      if (!b.output_file_id) {
        const out = b.input.map((line, i) => {
          let cid = `request-${i}`;
          try { cid = JSON.parse(line).custom_id || cid; } catch { /* keep */ }
          return JSON.stringify({ id: `batch_req_${i}`, custom_id: cid, response: { status_code: 200, body: { object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: `answer ${i}` } }] } }, error: null });
        }).join('\n');
        const f = { id: id('file-', 'file'), filename: 'batch_output.jsonl', purpose: 'batch_output', bytes: Buffer.from(`${out}\n`) };
        mock.state.files.set(f.id, f);
        b.output_file_id = f.id;
      }
      return sendJson(res, 200, batchObject(b, 'completed'));
    }
    if (method === 'POST' && p === '/v1/messages/count_tokens') {
      if (!j || !Array.isArray(j.messages)) return badRequest(res, 'messages is required');
      return sendJson(res, 200, { input_tokens: Math.ceil(JSON.stringify(j.messages).length / 4) + (j.system ? 3 : 0) });
    }
    if (method === 'POST' && p === '/v1/chat/completions' && j) {
      const n = mock.next('chat');
      const text = echoText(lastUser(j));
      const model = j.model || 'gpt-4o-mini';
      if (j.stream === true) {
        const events = openAIStreamEvents(n, model, text, 4, !!(j.stream_options && j.stream_options.include_usage));
        return stream(res, 'text/event-stream; charset=utf-8', events);
      }
      return sendJson(res, 200, {
        id: `chatcmpl-state-${n}`, object: 'chat.completion', created: CREATED + n, model,
        choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage: { prompt_tokens: 9, completion_tokens: text.length, total_tokens: 9 + text.length }, system_fingerprint: 'fp_state',
      }, { 'x-request-id': `req_state_${n}` });
    }
    if (method === 'POST' && p === '/v1/messages' && j) {
      const n = mock.next('message');
      const text = echoText(lastUser(j));
      const model = j.model || 'claude-3-5-haiku-latest';
      if (j.stream === true) return stream(res, 'text/event-stream; charset=utf-8', anthropicStreamEvents(n, model, text, 4));
      return sendJson(res, 200, {
        id: `msg_state_${n}`, type: 'message', role: 'assistant', model, content: [{ type: 'text', text }],
        stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 10, output_tokens: text.length },
      }, { 'request-id': `req_state_${n}` });
    }
    if (method === 'POST' && p === '/api/generate' && j) {
      mock.next('generate');
      const lines = ndjsonLines(j.model || 'llama3', String(j.prompt || ''));
      const cut = Number(req.headers['x-statemock-cut'] || 0);
      return stream(res, 'application/x-ndjson', cut > 0 ? lines.slice(0, cut) : lines, cut > 0);
    }
    if (p === '/v1/echo') {
      const n = mock.next('echo');
      const delay = Number(req.headers['x-statemock-delay'] || 0);
      if (delay > 0) await sleep(Math.min(delay, 5000));
      return sendJson(res, 200, { n, method, url: rec.url, content_type: contentTypeOf(req), body_base64: rec.body.toString('base64') });
    }
    return notFound(res, `route: ${method} ${p}`);
  }

  async function stream(res, type, pieces, cut = false) {
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' });
    res.flushHeaders();
    for (let i = 0; i < pieces.length; i++) {
      if (i > 0 && mock.chunkDelayMs) await sleep(mock.chunkDelayMs);
      if (res.destroyed) return;
      res.write(pieces[i]);
    }
    if (!cut) return res.end();
    // let the pieces leave, then drop the connection without the chunked terminator
    await sleep(30);
    res.socket && res.socket.destroy();
  }

  const server = http.createServer({ keepAliveTimeout: 5000 }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url, 'http://statemock');
      const rec = {
        method: req.method, url: req.url, path: url.pathname, query: url.search, searchParams: url.searchParams,
        headers: req.headers, body, json: undefined, time: Date.now(),
      };
      if (contentTypeOf(req) === 'application/json' && body.length) {
        try { rec.json = JSON.parse(body.toString('utf8')); } catch { rec.json = undefined; }
      }
      mock.requests.push(rec);
      handle(req, res, rec).catch((err) => {
        if (!res.headersSent) sendJson(res, 500, { error: { message: `statemock: ${err && err.stack}`, type: 'server_error' } });
        else res.destroy();
      });
    });
  });
  server.on('connection', (s) => {
    mock.sockets.add(s);
    s.on('close', () => mock.sockets.delete(s));
  });
  return serveMock(mock, server);
}

function lastUser(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) {
    const msg = msgs[i];
    if (!msg || msg.role !== 'user') continue;
    if (typeof msg.content === 'string') return msg.content;
    if (Array.isArray(msg.content)) return msg.content.map((c) => (c && typeof c.text === 'string' ? c.text : '')).join('');
  }
  return '';
}
