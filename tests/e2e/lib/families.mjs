// families.mjs — fake upstreams that speak each API family's own wire format,
// for the end-to-end tests of `--route PREFIX=URL,api=FAMILY`.
//
// startFamilyMock(family, opts) starts one node:http server on 127.0.0.1, port 0,
// with the same interface as mock.mjs's startMock (requests, count(path), last(),
// reset(), waitForRequests(n), handler, url, port, close()). `openai` and
// `anthropic` (and `default`) are mock.mjs itself. The others answer:
//   gemini   POST /v1beta/models/{m}:generateContent            JSON
//            POST /v1beta/models/{m}:streamGenerateContent?alt=sse  SSE ("data: {...}\r\n\r\n", no
//                 terminal event: the last chunk has finishReason), without alt=sse a JSON array
//            POST ...:embedContent, :batchEmbedContents, :countTokens
//   azure    POST /openai/deployments/{d}/chat/completions|completions|embeddings?api-version=...
//            POST /openai/v1/chat/completions|completions|embeddings: OpenAI shapes with Azure's
//                 content-filter annotations; `api-key` (or Authorization) required
//   ollama   POST /api/chat, /api/generate (NDJSON, application/x-ndjson, streaming unless
//                 "stream": false, ending with a "done": true object), /api/embed, /api/embeddings,
//            GET /api/tags, /api/version; /v1/* OpenAI-compatible
//   tgi      POST /generate (JSON, x-prompt-tokens / x-generated-tokens headers),
//            /generate_stream (SSE "data:{...}", the last event has generated_text and details),
//            POST / (either, by "stream"; JSON answers are an array), /v1/* OpenAI-compatible
//   llamacpp POST /completion, /completions (JSON, or SSE whose last event has "stop": true and
//                 no [DONE]), /embedding; /v1/* and /chat/completions OpenAI-compatible
//   bedrock  POST /model/{id}/converse (JSON), /model/{id}/converse-stream (binary
//                 application/vnd.amazon.eventstream: messageStart, contentBlockDelta..., contentBlockStop,
//                 messageStop, metadata; every frame with correct CRCs), /model/{id}/invoke (the
//                 model's own JSON: Anthropic Messages for anthropic.*, else Titan-shaped; token
//                 counts in X-Amzn-Bedrock-*-Token-Count headers), /model/{id}/invoke-with-response-stream
//                 (chunk events carrying the model's events in base64; the last chunk has
//                 amazon-bedrock-invocationMetrics); SigV4 Authorization required, not verified
// Every answer carries the request's sequence number: the `x-mock-seq` header, and in
// the body where the format has room for it (ids, `mock_seq`, Bedrock's x-amzn-requestid),
// so that a test can tell a replay from a fresh answer. The answer text is
// echoText(last user text) from mock.mjs; usage is predictable: see usageOf().
//
// Per-request behaviour, with the request header `x-mock-behavior` (as mock.mjs):
//   status=NNN      answer NNN with the family's error shape (Bedrock: x-amzn-errortype)
//   delay=MS        wait before the status line      chunk-delay=MS  gap between stream parts (20)
//   chunks=N        content pieces of a stream (5)   hangup=MS       drop the connection unanswered
//   cut=N           destroy the socket after the N-th event / line / frame (truncated body)
//   no-terminal     leave out the stream's end (finishReason, done line, final TGI or llama.cpp
//                   event, Bedrock messageStop + metadata or the metrics chunk) and end cleanly
//   sse-error       after the content, the family's in-stream error (Ollama {"error"}, TGI
//   (stream-error)  data:{"error"}, llama.cpp `error:` event, Gemini data:{"error"}, Bedrock an
//                   exception frame) and end cleanly
//   bad-crc         Bedrock streams: the second frame's message CRC is wrong
import http from 'node:http';
import { parseBehavior, echoText, streamPieces, startMock, serveMock } from './mock.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const FAMILIES = ['openai', 'anthropic', 'gemini', 'azure', 'ollama', 'tgi', 'llamacpp', 'bedrock'];

/** The token counts the fakes report for a prompt text and their answer text. */
export function usageOf(userText) {
  return { input: 3 + String(userText).length, output: echoText(userText).length };
}

// ---------------------------------------------------------------- event stream

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32/IEEE, as zlib and AWS's event stream compute it. */
export function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * One application/vnd.amazon.eventstream message. `headers`: { name: string } (type 7)
 * or { name: { type: 'bool'|'int32'|'bytes'|'string', value } }.
 */
export function encodeEventStream(headers, payload) {
  const parts = [];
  for (const [name, v] of Object.entries(headers)) {
    const n = Buffer.from(name);
    const { type, value } = typeof v === 'string' ? { type: 'string', value: v } : v;
    if (type === 'bool') parts.push(Buffer.from([n.length]), n, Buffer.from([value ? 0 : 1]));
    else if (type === 'int32') {
      const b = Buffer.alloc(4);
      b.writeInt32BE(value);
      parts.push(Buffer.from([n.length]), n, Buffer.from([4]), b);
    } else {
      const val = Buffer.isBuffer(value) ? value : Buffer.from(String(value));
      const len = Buffer.alloc(2);
      len.writeUInt16BE(val.length);
      parts.push(Buffer.from([n.length]), n, Buffer.from([type === 'bytes' ? 6 : 7]), len, val);
    }
  }
  const hdr = Buffer.concat(parts);
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload || '');
  const total = 16 + hdr.length + body.length;
  const msg = Buffer.alloc(total);
  msg.writeUInt32BE(total, 0);
  msg.writeUInt32BE(hdr.length, 4);
  msg.writeUInt32BE(crc32(msg.subarray(0, 8)), 8);
  hdr.copy(msg, 12);
  body.copy(msg, 12 + hdr.length);
  msg.writeUInt32BE(crc32(msg.subarray(0, total - 4)), total - 4);
  return msg;
}

/** Decode whole messages ({ headers: {name: value}, payload: Buffer }); throws on a bad CRC or length. */
export function decodeEventStream(buf) {
  const messages = [];
  let off = 0;
  while (buf.length - off >= 12) {
    const total = buf.readUInt32BE(off);
    const hlen = buf.readUInt32BE(off + 4);
    if (crc32(buf.subarray(off, off + 8)) !== buf.readUInt32BE(off + 8)) throw new Error(`prelude CRC at ${off}`);
    if (total < 16 || hlen > total - 16) throw new Error(`bad lengths at ${off}`);
    if (buf.length - off < total) break;
    if (crc32(buf.subarray(off, off + total - 4)) !== buf.readUInt32BE(off + total - 4)) throw new Error(`message CRC at ${off}`);
    const headers = {};
    let p = off + 12;
    const hend = p + hlen;
    while (p < hend) {
      const nl = buf[p];
      const name = buf.subarray(p + 1, p + 1 + nl).toString();
      const type = buf[p + 1 + nl];
      p += 2 + nl;
      if (type === 0 || type === 1) headers[name] = type === 0;
      else if (type === 2) headers[name] = buf.readInt8(p++);
      else if (type === 3) { headers[name] = buf.readInt16BE(p); p += 2; }
      else if (type === 4) { headers[name] = buf.readInt32BE(p); p += 4; }
      else if (type === 5 || type === 8) { headers[name] = buf.readBigInt64BE(p); p += 8; }
      else if (type === 6 || type === 7) {
        const l = buf.readUInt16BE(p);
        const v = buf.subarray(p + 2, p + 2 + l);
        headers[name] = type === 7 ? v.toString() : Buffer.from(v);
        p += 2 + l;
      } else if (type === 9) { headers[name] = buf.subarray(p, p + 16).toString('hex'); p += 16; }
      else throw new Error(`header type ${type}`);
    }
    messages.push({ headers, payload: Buffer.from(buf.subarray(hend, off + total - 4)) });
    off += total;
  }
  return { messages, rest: buf.length - off };
}

// ---------------------------------------------------------------- server

function familyBehavior(value) {
  const b = parseBehavior(value);
  for (const tok of String(value || '').split(',').map((s) => s.trim())) {
    if (tok === 'bad-crc') b.badCrc = true;
    if (tok === 'stream-error') b.sseError = true;
  }
  return b;
}

function alive(res) {
  return !res.destroyed && !res.writableEnded && res.socket && !res.socket.destroyed;
}

function sendJson(res, status, obj, headers = {}) {
  const body = Buffer.from(JSON.stringify(obj));
  if (!alive(res)) return;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(body.length), ...headers });
  res.end(body);
}

/** Write stream parts (strings or Buffers) with the behaviours' gaps and cut. */
async function writeParts(res, beh, parts) {
  for (let i = 0; i < parts.length; i++) {
    if (i > 0 && beh.chunkDelay) await sleep(beh.chunkDelay);
    if (!alive(res)) return;
    res.write(parts[i]);
    if (beh.cut && i + 1 >= beh.cut) {
      await sleep(30); // let the part leave, then drop the connection without the chunked terminator
      if (res.socket) res.socket.destroy();
      return;
    }
  }
  if (alive(res)) res.end();
}

function startStream(res, contentType, headers) {
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache', ...headers });
  res.flushHeaders();
}

/** Replace the stream's end: nothing (no-terminal) or the family's error (sse-error). */
function alter(parts, contentEnd, beh, errorPart) {
  if (beh.sseError) return [...parts.slice(0, contentEnd), errorPart];
  if (beh.noTerminal) return parts.slice(0, contentEnd);
  return parts;
}

const textOfContent = (c) => (typeof c === 'string' ? c : Array.isArray(c) ? c.map((p) => (p && typeof p.text === 'string' ? p.text : '')).join('') : '');

function lastUser(messages) {
  const msgs = Array.isArray(messages) ? messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) if (msgs[i] && msgs[i].role === 'user') return textOfContent(msgs[i].content);
  return '';
}

// ---------------------------------------------------------------- OpenAI shapes (/v1 of several families)

function openaiError(status) {
  const type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error';
  return { error: { message: `mock ${status}`, type, param: null, code: String(status) } };
}

/** chat/completions, completions, embeddings in OpenAI's shapes; `azure` adds content-filter results. */
async function openaiCompatible(ctx, kind, model, { azure = false } = {}) {
  const { res, rec, beh, common } = ctx;
  const body = rec.json || {};
  const seq = rec.seq;
  const filters = { hate: { filtered: false, severity: 'safe' }, self_harm: { filtered: false, severity: 'safe' }, sexual: { filtered: false, severity: 'safe' }, violence: { filtered: false, severity: 'safe' } };
  if (kind === 'embeddings') {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    return sendJson(res, 200, {
      object: 'list',
      data: inputs.map((inp, i) => ({
        object: 'embedding',
        index: i,
        embedding: body.encoding_format === 'base64' ? Buffer.from(new Float32Array(embed(inp)).buffer).toString('base64') : embed(inp),
      })),
      model,
      usage: { prompt_tokens: inputs.length * 3, total_tokens: inputs.length * 3 },
      mock_seq: seq,
    }, common);
  }
  const userText = kind === 'chat' ? lastUser(body.messages) : String(body.prompt || '');
  const text = echoText(userText);
  const u = usageOf(userText);
  const usage = { prompt_tokens: u.input, completion_tokens: u.output, total_tokens: u.input + u.output };
  if (kind === 'completions') {
    return sendJson(res, 200, {
      id: `cmpl-mock-${seq}`, object: 'text_completion', created: 1700000000 + seq, model,
      choices: [{ text, index: 0, logprobs: null, finish_reason: 'stop' }], usage, mock_seq: seq,
    }, common);
  }
  if (body.stream === true) {
    const base = { id: `chatcmpl-mock-${seq}`, object: 'chat.completion.chunk', created: 1700000000 + seq, model, system_fingerprint: 'fp_mock' };
    const ev = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
    const events = [];
    if (azure) events.push(ev({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: [{ prompt_index: 0, content_filter_results: filters }] }));
    streamPieces(text, beh.chunks).forEach((piece, i) => {
      const delta = i === 0 ? { role: 'assistant', content: piece } : { content: piece };
      events.push(ev({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: null }] }));
    });
    const contentEnd = events.length;
    events.push(ev({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] }));
    if (body.stream_options && body.stream_options.include_usage) events.push(ev({ ...base, choices: [], usage }));
    events.push('data: [DONE]\n\n');
    let out = beh.sseError ? [...events.slice(0, contentEnd), ev(openaiError(500))] : events;
    if (beh.noTerminal && !beh.sseError) out = events.slice(0, -1);
    startStream(res, 'text/event-stream; charset=utf-8', common);
    return writeParts(res, beh, out);
  }
  const out = {
    id: `chatcmpl-mock-${seq}`, object: 'chat.completion', created: 1700000000 + seq, model,
    choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage, system_fingerprint: 'fp_mock', mock_seq: seq,
  };
  if (azure) {
    out.prompt_filter_results = [{ prompt_index: 0, content_filter_results: filters }];
    out.choices[0].content_filter_results = filters;
  }
  return sendJson(res, 200, out, common);
}

function embed(text, dims = 8) {
  const v = [];
  let h = 2166136261;
  for (const ch of String(text)) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
  for (let i = 0; i < dims; i++) {
    h = Math.imul(h ^ (i + 1), 2654435761) >>> 0;
    v.push(Math.round(((h % 20000) / 10000 - 1) * 1e6) / 1e6);
  }
  return v;
}

/** `/v1/chat/completions`-style paths: which OpenAI shape, or null. */
function openaiKind(p) {
  if (p.endsWith('/chat/completions')) return 'chat';
  if (p.endsWith('/completions')) return 'completions';
  if (p.endsWith('/embeddings')) return 'embeddings';
  return null;
}

// ---------------------------------------------------------------- gemini

const geminiStatus = (s) => ({ 400: 'INVALID_ARGUMENT', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 503: 'UNAVAILABLE' })[s] || (s >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION');

function geminiError(status) {
  return { error: { code: status, message: `mock ${status}`, status: geminiStatus(status) } };
}

function geminiText(body) {
  const contents = body && Array.isArray(body.contents) ? body.contents : [];
  const last = contents[contents.length - 1];
  return last && Array.isArray(last.parts) ? last.parts.map((p) => (p && typeof p.text === 'string' ? p.text : '')).join('') : '';
}

function geminiChunk(seq, model, piece, final, u, candidates) {
  const cand = { content: { parts: [{ text: piece }], role: 'model' }, index: 0 };
  if (final) cand.finishReason = 'STOP';
  const usageMetadata = { promptTokenCount: u.input, totalTokenCount: u.input + candidates };
  if (candidates) usageMetadata.candidatesTokenCount = candidates;
  return { candidates: [cand], usageMetadata, modelVersion: model, responseId: `gemini-mock-${seq}` };
}

async function gemini(ctx) {
  const { res, rec, beh, common } = ctx;
  const m = /\/models\/([^/:]+):(\w+)$/.exec(rec.path);
  if (rec.method !== 'POST' || !m) return sendJson(res, 404, geminiError(404), common);
  const [, model, method] = m;
  const body = rec.json || {};
  const seq = rec.seq;
  if (method === 'embedContent' || method === 'batchEmbedContents') {
    const reqs = method === 'embedContent' ? [body] : body.requests || [];
    const vals = reqs.map((r) => ({ values: embed(geminiText({ contents: [r.content] })) }));
    return sendJson(res, 200, method === 'embedContent' ? { embedding: vals[0] } : { embeddings: vals }, common);
  }
  const userText = geminiText(body);
  const u = usageOf(userText);
  if (method === 'countTokens') return sendJson(res, 200, { totalTokens: u.input }, common);
  const text = echoText(userText);
  if (method === 'generateContent') {
    const out = geminiChunk(seq, model, text, true, u, u.output);
    return sendJson(res, 200, out, common);
  }
  if (method !== 'streamGenerateContent') return sendJson(res, 404, geminiError(404), common);
  const pieces = streamPieces(text, beh.chunks);
  let done = 0;
  const chunks = pieces.map((piece, i) => {
    done += piece.length;
    return geminiChunk(seq, model, piece, i === pieces.length - 1 && !beh.noTerminal, u, done);
  });
  const error = geminiError(500);
  if (/(^|&)alt=sse(&|$)/.test(rec.query.slice(1))) {
    let events = chunks.map((c) => `data: ${JSON.stringify(c)}\r\n\r\n`);
    if (beh.sseError) events = [...events.slice(0, -1), `data: ${JSON.stringify(error)}\r\n\r\n`];
    startStream(res, 'text/event-stream', common);
    return writeParts(res, beh, events);
  }
  // Without alt=sse: one JSON array, sent element by element as it is generated.
  let parts = chunks.map((c, i) => `${i ? ',' : '['}${JSON.stringify(c)}\r\n`);
  if (beh.sseError) parts = [...parts.slice(0, -1), `,${JSON.stringify(error)}\r\n`];
  parts.push(']');
  startStream(res, 'application/json; charset=UTF-8', common);
  return writeParts(res, beh, parts);
}

// ---------------------------------------------------------------- azure

async function azure(ctx) {
  const { res, rec, common } = ctx;
  const dep = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|completions|embeddings)$/.exec(rec.path);
  const v1 = /^\/openai\/v1\/(chat\/completions|completions|embeddings)$/.exec(rec.path);
  if (!rec.headers['api-key'] && !rec.headers.authorization) {
    return sendJson(res, 401, { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint.' } }, common);
  }
  if (rec.method !== 'POST' || !(dep || v1) || (dep && !/[?&]api-version=/.test(rec.query))) {
    return sendJson(res, 404, { error: { code: '404', message: 'Resource not found' } }, common);
  }
  const model = dep ? decodeURIComponent(dep[1]) : String((rec.json && rec.json.model) || 'gpt-4o-mini');
  return openaiCompatible(ctx, openaiKind(rec.path), model, { azure: true });
}

// ---------------------------------------------------------------- ollama

const created = (seq) => new Date(Date.UTC(2024, 0, 1, 0, 0, 0, seq)).toISOString();

function ollamaFinal(rec, u, native) {
  return {
    done_reason: 'stop', done: true, ...native,
    total_duration: 4883583458, load_duration: 1334875, prompt_eval_count: u.input,
    prompt_eval_duration: 342546000, eval_count: u.output, eval_duration: 4535599000, mock_seq: rec.seq,
  };
}

async function ollama(ctx) {
  const { res, rec, beh, common } = ctx;
  const body = rec.json || {};
  const p = rec.path;
  if (rec.method === 'GET' && p === '/api/version') return sendJson(res, 200, { version: '0.6.4' }, common);
  if (rec.method === 'GET' && p === '/api/tags') {
    return sendJson(res, 200, { models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest', modified_at: created(0), size: 2019393189, digest: 'a80c4f17acd5', details: { format: 'gguf', family: 'llama', parameter_size: '3.2B', quantization_level: 'Q4_K_M' } }] }, common);
  }
  if (rec.method === 'POST' && p.startsWith('/v1/') && openaiKind(p)) return openaiCompatible(ctx, openaiKind(p), String(body.model || 'llama3.2'));
  const model = String(body.model || 'llama3.2');
  if (rec.method === 'POST' && p === '/api/embed') {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    return sendJson(res, 200, { model, embeddings: inputs.map((i) => embed(i)), total_duration: 14143917, load_duration: 1019500, prompt_eval_count: inputs.join('').length + 3 }, common);
  }
  if (rec.method === 'POST' && p === '/api/embeddings') return sendJson(res, 200, { embedding: embed(body.prompt) }, common);
  if (rec.method !== 'POST' || (p !== '/api/chat' && p !== '/api/generate')) return sendJson(res, 404, { error: `path "${p}" not found` }, common);
  const chat = p === '/api/chat';
  const userText = chat ? lastUser(body.messages) : String(body.prompt || '');
  const text = echoText(userText);
  const u = usageOf(userText);
  const part = (piece) => (chat ? { message: { role: 'assistant', content: piece } } : { response: piece });
  const native = chat ? {} : { context: [1, 2, 3] };
  if (body.stream === false) {
    return sendJson(res, 200, { model, created_at: created(rec.seq), ...part(text), ...ollamaFinal(rec, u, native) }, { ...common, 'content-type': 'application/json; charset=utf-8' });
  }
  const pieces = streamPieces(text, beh.chunks);
  let lines = pieces.map((piece) => `${JSON.stringify({ model, created_at: created(rec.seq), ...part(piece), done: false })}\n`);
  lines.push(`${JSON.stringify({ model, created_at: created(rec.seq), ...part(''), ...ollamaFinal(rec, u, native) })}\n`);
  lines = alter(lines, pieces.length, beh, `${JSON.stringify({ error: 'mock stream error' })}\n`);
  startStream(res, 'application/x-ndjson', common);
  return writeParts(res, beh, lines);
}

// ---------------------------------------------------------------- tgi

const tgiErrorType = (s) => (s === 429 ? 'overloaded' : s === 422 ? 'validation' : s === 424 ? 'generation' : 'incomplete_generation');

async function tgi(ctx) {
  const { res, rec, beh, common } = ctx;
  const body = rec.json || {};
  const p = rec.path;
  if (rec.method === 'GET' && p === '/info') return sendJson(res, 200, { model_id: 'mock/tgi-model', model_dtype: 'torch.float16', max_input_tokens: 4095, max_total_tokens: 4096, version: '3.0.0' }, common);
  if (rec.method === 'POST' && p.startsWith('/v1/') && openaiKind(p)) return openaiCompatible(ctx, openaiKind(p), 'tgi');
  const stream = p === '/generate_stream' || (p === '/' && body.stream === true);
  if (rec.method !== 'POST' || !['/generate', '/generate_stream', '/'].includes(p)) return sendJson(res, 404, { error: 'not found', error_type: 'not_found' }, common);
  if (typeof body.inputs !== 'string') return sendJson(res, 422, { error: 'Input validation error: `inputs` must be a string', error_type: 'validation' }, common);
  const params = body.parameters || {};
  const text = echoText(body.inputs);
  const u = usageOf(body.inputs);
  const timing = { 'x-compute-type': 'gpu+optimized', 'x-compute-time': '0.25', 'x-total-time': '250', 'x-validation-time': '1', 'x-queue-time': '0', 'x-inference-time': '249', 'x-time-per-token': '10' };
  if (!stream) {
    const out = { generated_text: text };
    if (params.details) {
      out.details = { finish_reason: 'eos_token', generated_tokens: u.output, seed: null, prefill: [], tokens: [] };
      if (params.decoder_input_details) out.details.prefill = Array.from({ length: u.input }, (_, i) => ({ id: i + 1, text: 't', logprob: i ? -1 : null }));
    }
    const headers = { ...common, ...timing, 'x-prompt-tokens': String(u.input), 'x-generated-tokens': String(u.output) };
    out.mock_seq = rec.seq;
    return sendJson(res, 200, p === '/' ? [out] : out, headers);
  }
  const pieces = streamPieces(text, beh.chunks);
  const ev = (i, piece, final) => `data:${JSON.stringify({
    index: i + 1,
    token: { id: 1000 + i, text: piece, logprob: -0.5, special: false },
    generated_text: final ? text : null,
    details: final ? { finish_reason: 'eos_token', generated_tokens: u.output, seed: null, input_length: u.input } : null,
  })}\n\n`;
  let events = pieces.map((piece, i) => ev(i, piece, false));
  events.push(ev(pieces.length, '', true));
  events = alter(events, pieces.length, beh, `data:${JSON.stringify({ error: 'mock stream error', error_type: 'generation' })}\n\n`);
  startStream(res, 'text/event-stream', { ...common, ...timing });
  return writeParts(res, beh, events);
}

// ---------------------------------------------------------------- llama.cpp

function llamaTimings(u) {
  return { cache_n: 0, prompt_n: u.input, prompt_ms: 12.5, prompt_per_token_ms: 12.5 / u.input, prompt_per_second: u.input / 0.0125, predicted_n: u.output, predicted_ms: 100, predicted_per_token_ms: 100 / u.output, predicted_per_second: u.output * 10 };
}

async function llamacpp(ctx) {
  const { res, rec, beh, common } = ctx;
  const body = rec.json || {};
  const p = rec.path;
  if (rec.method === 'GET' && p === '/health') return sendJson(res, 200, { status: 'ok' }, common);
  const kind = p === '/completion' || p === '/completions' ? 'native' : p === '/chat/completions' || p.startsWith('/v1/') ? openaiKind(p) : null;
  if (rec.method === 'POST' && kind && kind !== 'native') return openaiCompatible(ctx, kind, 'gpt-3.5-turbo');
  if (rec.method === 'POST' && p === '/embedding') return sendJson(res, 200, [{ index: 0, embedding: [embed(body.content)] }], common);
  if (rec.method !== 'POST' || kind !== 'native') return sendJson(res, 404, { error: { code: 404, message: 'File Not Found', type: 'not_found_error' } }, common);
  const prompt = String(body.prompt || '');
  const text = echoText(prompt);
  const u = usageOf(prompt);
  const final = {
    index: 0, content: body.stream === true ? '' : text, tokens: [], id_slot: 0, stop: true, model: 'gpt-3.5-turbo',
    tokens_predicted: u.output, tokens_evaluated: u.input, generation_settings: { n_predict: body.n_predict ?? -1, temperature: 0.8 },
    prompt, has_new_line: false, truncated: false, stop_type: 'eos', stopping_word: '', tokens_cached: u.input + u.output,
    timings: llamaTimings(u), mock_seq: rec.seq,
  };
  if (body.stream !== true) return sendJson(res, 200, final, { ...common, 'content-type': 'application/json; charset=utf-8' });
  const pieces = streamPieces(text, beh.chunks);
  let events = pieces.map((piece, i) => `data: ${JSON.stringify({ index: 0, content: piece, tokens: [], stop: false, id_slot: -1, tokens_predicted: i + 1, tokens_evaluated: u.input })}\n\n`);
  events.push(`data: ${JSON.stringify(final)}\n\n`);
  events = alter(events, pieces.length, beh, `error: ${JSON.stringify({ code: 500, message: 'mock stream error', type: 'server_error' })}\n\n`);
  startStream(res, 'text/event-stream', common);
  return writeParts(res, beh, events);
}

// ---------------------------------------------------------------- bedrock

const bedrockErrors = { 400: 'ValidationException', 403: 'AccessDeniedException', 404: 'ResourceNotFoundException', 408: 'ModelTimeoutException', 424: 'ModelErrorException', 429: 'ThrottlingException', 500: 'InternalServerException', 503: 'ServiceUnavailableException' };

function bedrockError(res, status, common, name = bedrockErrors[status] || 'InternalServerException') {
  sendJson(res, status, { message: `mock ${status}` }, { ...common, 'x-amzn-errortype': `${name}:http://internal.amazon.com/coral/com.amazon.bedrock/` });
}

/** Bedrock pads event payloads with a "p" member of varying length (to hide token lengths). */
const pad = (i) => 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0'.slice(0, 4 + ((i * 7) % 20));

function event(type, obj, i) {
  return encodeEventStream({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify({ ...obj, p: pad(i) }));
}

function exceptionFrame(type, message) {
  return encodeEventStream({ ':exception-type': type, ':content-type': 'application/json', ':message-type': 'exception' }, JSON.stringify({ message }));
}

function corrupt(frames, beh) {
  if (beh.badCrc && frames.length > 1) {
    const f = Buffer.from(frames[1]);
    f[f.length - 1] ^= 0xff;
    frames[1] = f;
  }
  return frames;
}

function converseText(body) {
  return lastUser((body.messages || []).map((m) => ({ role: m.role, content: (m.content || []).map((c) => ({ text: c.text })) })));
}

/** The Anthropic Messages events Claude streams, as InvokeModelWithResponseStream carries them. */
function claudeEvents(seq, model, text, u, n) {
  const events = [
    { type: 'message_start', message: { id: `msg_bdrk_mock_${seq}`, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: u.input, output_tokens: 1 } } },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
  ];
  for (const piece of streamPieces(text, n)) events.push({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } });
  events.push({ type: 'content_block_stop', index: 0 });
  events.push({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: u.output } });
  events.push({ type: 'message_stop', 'amazon-bedrock-invocationMetrics': { inputTokenCount: u.input, outputTokenCount: u.output, invocationLatency: 412, firstByteLatency: 100 } });
  return events;
}

async function bedrock(ctx) {
  const { res, rec, beh } = ctx;
  const common = { ...ctx.common, 'x-amzn-requestid': `mock-${rec.seq}` };
  const m = /^\/model\/(.+)\/(converse|converse-stream|invoke|invoke-with-response-stream)$/.exec(rec.path);
  if (rec.method !== 'POST' || !m) return bedrockError(res, 404, common, 'UnknownOperationException');
  if (!/^(AWS4-HMAC-SHA256 Credential=|Bearer )/.test(String(rec.headers.authorization || ''))) return bedrockError(res, 403, common, 'UnrecognizedClientException');
  const modelId = decodeURIComponent(m[1]);
  const op = m[2];
  const body = rec.json || {};
  const seq = rec.seq;
  if (op === 'converse' || op === 'converse-stream') {
    const userText = converseText(body);
    const text = echoText(userText);
    const u = usageOf(userText);
    const usage = { inputTokens: u.input, outputTokens: u.output, totalTokens: u.input + u.output };
    if (op === 'converse') {
      return sendJson(res, 200, { output: { message: { role: 'assistant', content: [{ text }] } }, stopReason: 'end_turn', usage, metrics: { latencyMs: 120 }, mock_seq: seq }, common);
    }
    const pieces = streamPieces(text, beh.chunks);
    let frames = [event('messageStart', { role: 'assistant' }, 0)];
    pieces.forEach((piece, i) => frames.push(event('contentBlockDelta', { contentBlockIndex: 0, delta: { text: piece } }, i + 1)));
    frames.push(event('contentBlockStop', { contentBlockIndex: 0 }, 1));
    const contentEnd = frames.length;
    frames.push(event('messageStop', { stopReason: 'end_turn' }, 2));
    frames.push(event('metadata', { usage, metrics: { latencyMs: 120 } }, 3));
    frames = corrupt(alter(frames, contentEnd, beh, exceptionFrame('modelStreamErrorException', 'mock stream error')), beh);
    startStream(res, 'application/vnd.amazon.eventstream', common);
    return writeParts(res, beh, frames);
  }
  const claude = /anthropic\./.test(modelId);
  const userText = claude ? lastUser(body.messages) : String(body.inputText || '');
  const text = echoText(userText);
  const u = usageOf(userText);
  if (op === 'invoke') {
    const counts = { 'x-amzn-bedrock-input-token-count': String(u.input), 'x-amzn-bedrock-output-token-count': String(u.output), 'x-amzn-bedrock-invocation-latency': '412' };
    const out = claude
      ? { id: `msg_bdrk_mock_${seq}`, type: 'message', role: 'assistant', model: modelId, content: [{ type: 'text', text }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: u.input, output_tokens: u.output } }
      : { inputTextTokenCount: u.input, results: [{ tokenCount: u.output, outputText: text, completionReason: 'FINISH' }] };
    return sendJson(res, 200, out, { ...common, ...counts });
  }
  const events = claude
    ? claudeEvents(seq, modelId, text, u, beh.chunks)
    : [...streamPieces(text, beh.chunks).map((outputText, i) => ({ outputText, index: 0, totalOutputTextTokenCount: i + 1, completionReason: null, inputTextTokenCount: u.input })),
      { outputText: '', index: 0, completionReason: 'FINISH', 'amazon-bedrock-invocationMetrics': { inputTokenCount: u.input, outputTokenCount: u.output, invocationLatency: 412, firstByteLatency: 100 } }];
  let frames = events.map((e, i) => event('chunk', { bytes: Buffer.from(JSON.stringify(e)).toString('base64') }, i));
  frames = corrupt(alter(frames, frames.length - 1, beh, exceptionFrame('modelStreamErrorException', 'mock stream error')), beh);
  startStream(res, 'application/vnd.amazon.eventstream', { ...common, 'x-amzn-bedrock-content-type': 'application/json' });
  return writeParts(res, beh, frames);
}

// ---------------------------------------------------------------- errors and dispatch

function familyError(family, res, status, common) {
  if (family === 'bedrock') return bedrockError(res, status, { ...common, 'x-amzn-requestid': `mock-${common['x-mock-seq']}` });
  const extra = status === 429 ? { 'retry-after': '0' } : {};
  const body = {
    gemini: () => geminiError(status),
    azure: () => ({ error: { code: String(status), message: `mock ${status}` } }),
    ollama: () => ({ error: `mock ${status}` }),
    tgi: () => ({ error: `mock ${status}`, error_type: tgiErrorType(status) }),
    llamacpp: () => ({ error: { code: status, message: `mock ${status}`, type: status === 503 ? 'unavailable_error' : status >= 500 ? 'server_error' : 'invalid_request_error' } }),
  }[family]();
  return sendJson(res, status, body, { ...common, ...extra });
}

const HANDLERS = { gemini, azure, ollama, tgi, llamacpp, bedrock };

async function handle(mock, req, res, rec) {
  if (mock.handler && (await mock.handler(req, res, rec))) return;
  const beh = familyBehavior(req.headers['x-mock-behavior']);
  const common = { 'x-mock-seq': String(rec.seq) };
  if (beh.hangup >= 0) {
    if (beh.hangup) await sleep(beh.hangup);
    if (res.socket) res.socket.destroy();
    return;
  }
  if (beh.delay) await sleep(beh.delay);
  if (!alive(res)) return;
  if (beh.status) return familyError(mock.family, res, beh.status, common);
  return HANDLERS[mock.family]({ res, rec, beh, common });
}

/**
 * Start a fake upstream for `family` (one of FAMILIES, or 'default'). `opts.port` picks the port.
 * Resolves to the mock; `await mock.close()` stops it.
 */
export async function startFamilyMock(family, opts = {}) {
  if (family === 'openai' || family === 'anthropic' || family === 'default') {
    const m = await startMock(opts);
    m.family = family;
    return m;
  }
  if (!HANDLERS[family]) throw new Error(`startFamilyMock: unknown family ${family}`);
  const mock = {
    family,
    requests: [],
    seq: 0,
    handler: null,
    port: 0,
    url: '',
    sockets: new Set(),
    count(p) {
      return p ? this.requests.filter((r) => r.path === p).length : this.requests.length;
    },
    last() {
      return this.requests[this.requests.length - 1];
    },
    reset() {
      this.requests.length = 0;
    },
    async waitForRequests(n, timeoutMs = 5000) {
      const end = performance.now() + timeoutMs;
      while (this.requests.length < n) {
        if (performance.now() > end) throw new Error(`${family} mock: waited ${timeoutMs} ms for ${n} requests, got ${this.requests.length}`);
        await sleep(10);
      }
    },
    close: null,
  };
  const server = http.createServer({ maxHeaderSize: 1 << 20, keepAliveTimeout: 5000 }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url, 'http://mock');
      const rec = {
        method: req.method, url: req.url, path: url.pathname, query: url.search, headers: req.headers,
        rawHeaders: req.rawHeaders, httpVersion: req.httpVersion, body, text: body.toString('utf8'),
        json: undefined, time: Date.now(), seq: ++mock.seq,
      };
      try { rec.json = body.length ? JSON.parse(rec.text) : undefined; } catch { rec.json = undefined; }
      mock.requests.push(rec);
      handle(mock, req, res, rec).catch((err) => {
        if (!res.headersSent) {
          res.writeHead(599, { 'content-type': 'text/plain' });
          res.end(`mock error: ${err && err.stack}`);
        } else {
          res.destroy();
        }
      });
    });
  });
  server.on('connection', (s) => {
    s.setNoDelay(true);
    mock.sockets.add(s);
    s.on('close', () => mock.sockets.delete(s));
  });
  return serveMock(mock, server, { port: opts.port || 0 });
}
