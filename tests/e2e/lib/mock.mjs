// mock.mjs — a scripted mock LLM upstream for the end-to-end tests.
//
// One node:http server on 127.0.0.1, port 0. It records every request it gets
// (method, url, path, headers, raw body) and answers in the shape of the real
// APIs, so the official SDKs accept its answers:
//   POST /v1/chat/completions   OpenAI chat completion (JSON, or SSE with "stream": true)
//   POST /v1/completions        OpenAI legacy completion
//   POST /v1/embeddings         OpenAI embeddings
//   POST /v1/messages           Anthropic message (JSON, or SSE with "stream": true)
//   POST /v1/responses          generic JSON; SSE (Responses API events) with "stream": true
//   POST ...:streamGenerateContent?alt=sse   Gemini SSE ("data: {...}\r\n\r\n", ends cleanly)
//   POST /v1/moderations, /v1/rerank, ...:generateContent, ...:streamGenerateContent  generic JSON
//   GET  /v1/models             OpenAI model list
//   anything else               200 JSON echo of what was received
// Every generated answer carries a sequence number (`mock_seq` in JSON bodies,
// `x-mock-seq` header, and inside ids), so two answers from upstream always
// differ and a test can tell a cached replay from a fresh answer.
//
// Per-request behaviour, selected with the request header `x-mock-behavior`
// (comma-separated tokens; the proxy forwards it like any end-to-end header):
//   status=NNN       answer NNN with an error body in the API's shape
//   delay=MS         wait MS before sending the status line
//   chunk-delay=MS   gap between SSE events (default 20)
//   chunks=N         number of content pieces in an SSE answer (default 5)
//   gzip             gzip the body when the request's Accept-Encoding allows it
//   gzip-force       gzip the body regardless of Accept-Encoding
//   encoding=NAME    label the body Content-Encoding NAME regardless of Accept-Encoding, encoded
//                    when the mock knows how (gzip, deflate = zlib-wrapped, deflate-raw is sent
//                    as "deflate" without the wrapper, br); any other NAME labels the bytes as they are
//   cut=N            SSE: destroy the socket right after the N-th event (truncated chunked body)
//   no-terminal      SSE: leave out the terminal event ([DONE], message_stop, response.completed)
//                    and end the body cleanly
//   sse-error        SSE: after the content, send the API's error event instead of the rest
//                    (Anthropic `event: error`, OpenAI `data: {"error":...}`) and end cleanly
//   hangup=MS        wait MS, then destroy the socket without answering
//   cached=N         chat completion (JSON): report N of the prompt tokens as read from the
//                    provider's prompt cache (usage.prompt_tokens_details.cached_tokens, at most
//                    prompt_tokens); without it the usage block has no prompt_tokens_details
// Per test, `mock.handler = async (req, res, rec) => bool` can take over any
// request (return true when it answered).
// Connections: `mock.connections` counts the ones accepted; `mock.closeIdle()`
// closes those not serving a request (a server ending idle keep-alive
// connections); `mock.dropReused = n` makes the next n requests that arrive on
// an already used connection close it unanswered and unrecorded (the race of a
// client reusing a connection the server is closing); `mock.dropped` counts them.
// startMock({ host: '::1' }) listens on IPv6 loopback (url `http://[::1]:port`).
import http from 'node:http';
import zlib from 'node:zlib';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function parseBehavior(value) {
  const b = { status: 0, delay: 0, chunkDelay: 20, chunks: 5, gzip: false, gzipForce: false, encoding: '', cut: 0, noTerminal: false, sseError: false, hangup: -1, cached: -1 };
  if (!value) return b;
  for (const raw of String(value).split(',')) {
    const tok = raw.trim();
    if (!tok) continue;
    const [k, v] = tok.split('=');
    switch (k) {
      case 'status': b.status = Number(v); break;
      case 'delay': b.delay = Number(v); break;
      case 'chunk-delay': b.chunkDelay = Number(v); break;
      case 'chunks': b.chunks = Number(v); break;
      case 'gzip': b.gzip = true; break;
      case 'gzip-force': b.gzipForce = true; break;
      case 'encoding': b.encoding = v || ''; break;
      case 'cut': b.cut = Number(v); break;
      case 'no-terminal': b.noTerminal = true; break;
      case 'sse-error': b.sseError = true; break;
      case 'hangup': b.hangup = Number(v) || 0; break;
      case 'cached': b.cached = Math.max(0, Number(v) || 0); break;
      default: break;
    }
  }
  return b;
}

function lastUserText(body) {
  const msgs = body && Array.isArray(body.messages) ? body.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) {
    const m = msgs[i];
    if (!m || m.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.content)) {
      return m.content.map((p) => (p && typeof p.text === 'string' ? p.text : '')).join('');
    }
  }
  if (body && typeof body.prompt === 'string') return body.prompt;
  if (body && typeof body.input === 'string') return body.input;
  return '';
}

// Deterministic pseudo-embedding of a string.
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

/** The text the mock answers for a request: exported so tests can predict it. */
export const echoText = (userText) => `echo: ${userText}`;

/** The pieces an SSE answer is split into (the concatenation is echoText). */
export function streamPieces(text, n) {
  const pieces = [];
  const size = Math.max(1, Math.ceil(text.length / n));
  for (let i = 0; i < n; i++) pieces.push(text.slice(i * size, (i + 1) * size));
  return pieces;
}

export async function startMock(opts = {}) {
  const mock = {
    requests: [],
    seq: 0,
    handler: null,
    port: 0,
    url: '',
    sockets: new Set(),
    connections: 0,
    dropReused: 0,
    dropped: 0,
    /** Close every connection that is not serving a request; resolves when they are closed. */
    async closeIdle() {
      const idle = [...this.sockets].filter((s) => !s.mockBusy);
      await Promise.all(idle.map((s) => new Promise((r) => { s.once('close', r); s.destroy(); })));
      return idle.length;
    },
    /** Number of requests recorded, optionally only those whose path equals `path`. */
    count(path) {
      return path ? this.requests.filter((r) => r.path === path).length : this.requests.length;
    },
    last() {
      return this.requests[this.requests.length - 1];
    },
    reset() {
      this.requests.length = 0;
    },
    /** Resolve once `n` requests were recorded (polling, bounded). */
    async waitForRequests(n, timeoutMs = 5000) {
      const end = performance.now() + timeoutMs;
      while (this.requests.length < n) {
        if (performance.now() > end) throw new Error(`mock: waited ${timeoutMs} ms for ${n} requests, got ${this.requests.length}`);
        await sleep(10);
      }
    },
    close: null,
  };

  const server = http.createServer({ maxHeaderSize: 1 << 20, keepAliveTimeout: 5000 }, (req, res) => {
    const sock = req.socket;
    if (mock.dropReused > 0 && sock.mockServed > 0) {
      mock.dropReused--;
      mock.dropped++;
      sock.destroy();
      return;
    }
    sock.mockBusy = true;
    res.on('finish', () => { sock.mockBusy = false; sock.mockServed = (sock.mockServed || 0) + 1; });
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url, 'http://mock');
      const rec = {
        method: req.method,
        url: req.url,
        path: url.pathname,
        query: url.search,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        httpVersion: req.httpVersion,
        body,
        text: body.toString('utf8'),
        json: undefined,
        time: Date.now(),
        seq: ++mock.seq,
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
    mock.connections++;
    mock.sockets.add(s);
    s.on('close', () => mock.sockets.delete(s));
  });
  return serveMock(mock, server, opts);
}

/**
 * Listen on host:port (default 127.0.0.1, a free port) and give the mock its
 * port, url, server and close() (which destroys the sockets it tracks in
 * mock.sockets). Shared by every fake upstream in lib/.
 */
export async function serveMock(mock, server, { port = 0, host = '127.0.0.1' } = {}) {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  mock.port = server.address().port;
  mock.url = host.includes(':') ? `http://[${host}]:${mock.port}` : `http://${host}:${mock.port}`;
  mock.server = server;
  mock.close = () => new Promise((resolve) => {
    for (const s of mock.sockets) s.destroy();
    server.close(() => resolve());
    if (server.closeAllConnections) server.closeAllConnections();
  });
  return mock;
}

function alive(res) {
  return !res.destroyed && !res.writableEnded && res.socket && !res.socket.destroyed;
}

function sendJson(res, req, beh, status, obj, extraHeaders = {}) {
  let body = Buffer.from(JSON.stringify(obj));
  const headers = { 'content-type': 'application/json', ...extraHeaders };
  const ae = String(req.headers['accept-encoding'] || '');
  if (beh.gzipForce || (beh.gzip && /\bgzip\b/i.test(ae))) {
    body = zlib.gzipSync(body);
    headers['content-encoding'] = 'gzip';
    headers.vary = 'Accept-Encoding';
  } else if (beh.encoding) {
    const enc = { gzip: zlib.gzipSync, deflate: zlib.deflateSync, 'deflate-raw': zlib.deflateRawSync, br: zlib.brotliCompressSync }[beh.encoding];
    if (enc) body = enc(body);
    headers['content-encoding'] = beh.encoding === 'deflate-raw' ? 'deflate' : beh.encoding;
  }
  headers['content-length'] = String(body.length);
  if (!alive(res)) return;
  res.writeHead(status, headers);
  res.end(body);
}

/** The usage block of a JSON chat completion (`cached` < 0: no prompt_tokens_details). */
export function chatUsage(pt, ct, cached = -1) {
  const u = { prompt_tokens: pt, completion_tokens: ct, total_tokens: pt + ct };
  if (cached >= 0) u.prompt_tokens_details = { cached_tokens: Math.min(cached, pt) };
  return u;
}

function errorBody(path, status) {
  const anthropic = path.endsWith('/messages');
  const type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'api_error' : 'invalid_request_error';
  if (anthropic) return { type: 'error', error: { type, message: `mock ${status}` } };
  return { error: { message: `mock ${status}`, type, param: null, code: `mock_${status}` } };
}

async function handle(mock, req, res, rec) {
  if (mock.handler) {
    const done = await mock.handler(req, res, rec);
    if (done) return;
  }
  const beh = parseBehavior(req.headers['x-mock-behavior']);
  const seq = rec.seq;
  const common = {
    'x-mock-seq': String(seq),
    'set-cookie': `mock_session=${seq}; Path=/`,
    'x-ratelimit-remaining-requests': String(1000 - seq),
    'x-mock-custom': 'upstream-header',
  };
  if (beh.hangup >= 0) {
    if (beh.hangup) await sleep(beh.hangup);
    res.socket && res.socket.destroy();
    return;
  }
  if (beh.delay) await sleep(beh.delay);
  if (!alive(res)) return;
  if (beh.status) {
    const extra = { ...common };
    if (beh.status === 429) extra['retry-after'] = '0';
    sendJson(res, req, beh, beh.status, errorBody(rec.path, beh.status), extra);
    return;
  }
  const body = rec.json;
  const p = rec.path;
  const model = body && typeof body.model === 'string' ? body.model : 'mock-model';
  if (req.method === 'GET' && p === '/v1/models') {
    sendJson(res, req, beh, 200, {
      object: 'list',
      data: [
        { id: 'gpt-4o-mini', object: 'model', created: 1700000000, owned_by: 'mock' },
        { id: 'mock-model', object: 'model', created: 1700000000, owned_by: 'mock' },
      ],
      mock_seq: seq,
    }, common);
    return;
  }
  if (req.method === 'POST' && p.endsWith('/chat/completions') && body) {
    const text = echoText(lastUserText(body));
    if (body.stream === true) return streamOpenAI(res, beh, rec, model, text, common);
    const pt = JSON.stringify(body.messages || []).length;
    sendJson(res, req, beh, 200, {
      id: `chatcmpl-mock-${seq}`,
      object: 'chat.completion',
      created: 1700000000 + seq,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage: chatUsage(pt, text.length, beh.cached),
      system_fingerprint: 'fp_mock',
      mock_seq: seq,
    }, { ...common, 'openai-processing-ms': '1' });
    return;
  }
  if (req.method === 'POST' && p.endsWith('/messages') && body) {
    const text = echoText(lastUserText(body));
    if (body.stream === true) return streamAnthropic(res, beh, rec, model, text, common);
    sendJson(res, req, beh, 200, {
      id: `msg_mock_${seq}`,
      type: 'message',
      role: 'assistant',
      model,
      content: [{ type: 'text', text }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 10, output_tokens: text.length },
      mock_seq: seq,
    }, { ...common, 'request-id': `req_mock_${seq}` });
    return;
  }
  if (req.method === 'POST' && p.endsWith('/embeddings') && body) {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    sendJson(res, req, beh, 200, {
      object: 'list',
      data: inputs.map((inp, i) => ({
        object: 'embedding',
        index: i,
        // The OpenAI SDK asks for base64 (packed little-endian float32) by default.
        embedding: body.encoding_format === 'base64'
          ? Buffer.from(new Float32Array(embed(inp)).buffer).toString('base64')
          : embed(inp),
      })),
      model,
      usage: { prompt_tokens: inputs.length * 3, total_tokens: inputs.length * 3 },
      mock_seq: seq,
    }, common);
    return;
  }
  if (req.method === 'POST' && /\/completions$/.test(p) && body) {
    const text = echoText(typeof body.prompt === 'string' ? body.prompt : '');
    sendJson(res, req, beh, 200, {
      id: `cmpl-mock-${seq}`,
      object: 'text_completion',
      created: 1700000000 + seq,
      model,
      choices: [{ text, index: 0, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 3, completion_tokens: text.length, total_tokens: 3 + text.length },
      mock_seq: seq,
    }, common);
    return;
  }
  if (req.method === 'POST' && p.endsWith('/responses') && body && body.stream === true) {
    return streamResponses(res, beh, rec, model, echoText(lastUserText(body)), common);
  }
  if (req.method === 'POST' && p.endsWith(':streamGenerateContent') && /[?&]alt=sse(&|$)/.test(rec.query)) {
    return streamGemini(res, beh, rec, p, echoText(geminiText(body)), common);
  }
  // Generic: echo what arrived (responses, moderations, rerank, generateContent, custom paths...).
  sendJson(res, req, beh, 200, {
    id: `generic-mock-${seq}`,
    object: 'mock.echo',
    method: req.method,
    url: req.url,
    body: rec.text,
    mock_seq: seq,
  }, common);
}

async function writeEvents(res, beh, events) {
  // events: array of strings, each a complete SSE event (ending in a blank line).
  for (let i = 0; i < events.length; i++) {
    if (i > 0 && beh.chunkDelay) await sleep(beh.chunkDelay);
    if (!alive(res)) return;
    res.write(events[i]);
    if (beh.cut && i + 1 >= beh.cut) {
      // let the event leave, then drop the connection without the chunked terminator
      await sleep(30);
      res.socket && res.socket.destroy();
      return;
    }
  }
  if (alive(res)) res.end();
}

/**
 * Apply the no-terminal / sse-error behaviours to a complete event list.
 * `isTerminal(ev)` marks the events that end the stream; `errorEvent` replaces
 * everything from the first event after the content (`contentEnd`).
 */
export function alterEvents(events, beh, { isTerminal, contentEnd, errorEvent }) {
  if (beh.sseError) return [...events.slice(0, contentEnd), errorEvent];
  if (beh.noTerminal) return events.filter((ev) => !isTerminal(ev));
  return events;
}

const OPENAI_ERROR_EVENT = `data: ${JSON.stringify({ error: { message: 'mock stream error', type: 'server_error', param: null, code: null } })}\n\n`;
const ANTHROPIC_ERROR_EVENT = `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })}\n\n`;

/** The exact SSE events the mock sends for an OpenAI streamed chat completion. */
export function openAIStreamEvents(seq, model, text, n, includeUsage = false) {
  const id = `chatcmpl-mock-${seq}`;
  const base = { id, object: 'chat.completion.chunk', created: 1700000000 + seq, model, system_fingerprint: 'fp_mock' };
  const ev = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
  const events = [];
  const pieces = streamPieces(text, n);
  pieces.forEach((piece, i) => {
    const delta = i === 0 ? { role: 'assistant', content: piece } : { content: piece };
    events.push(ev({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: null }] }));
  });
  events.push(ev({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] }));
  if (includeUsage) {
    events.push(ev({ ...base, choices: [], usage: { prompt_tokens: 3, completion_tokens: text.length, total_tokens: 3 + text.length } }));
  }
  events.push('data: [DONE]\n\n');
  return events;
}

function streamOpenAI(res, beh, rec, model, text, common) {
  const includeUsage = !!(rec.json.stream_options && rec.json.stream_options.include_usage);
  const events = alterEvents(openAIStreamEvents(rec.seq, model, text, beh.chunks, includeUsage), beh, {
    isTerminal: (ev) => ev === 'data: [DONE]\n\n',
    contentEnd: beh.chunks,
    errorEvent: OPENAI_ERROR_EVENT,
  });
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...common });
  res.flushHeaders();
  return writeEvents(res, beh, events);
}

/** The exact SSE events the mock sends for an Anthropic streamed message. */
export function anthropicStreamEvents(seq, model, text, n) {
  const ev = (type, obj) => `event: ${type}\ndata: ${JSON.stringify({ type, ...obj })}\n\n`;
  const events = [
    ev('message_start', { message: { id: `msg_mock_${seq}`, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 10, output_tokens: 1 } } }),
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    ev('ping', {}),
  ];
  for (const piece of streamPieces(text, n)) {
    events.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: piece } }));
  }
  events.push(ev('content_block_stop', { index: 0 }));
  events.push(ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: text.length } }));
  events.push(ev('message_stop', {}));
  return events;
}

function streamAnthropic(res, beh, rec, model, text, common) {
  const events = alterEvents(anthropicStreamEvents(rec.seq, model, text, beh.chunks), beh, {
    isTerminal: (ev) => ev.startsWith('event: message_stop\n'),
    contentEnd: 3 + beh.chunks,
    errorEvent: ANTHROPIC_ERROR_EVENT,
  });
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...common });
  res.flushHeaders();
  return writeEvents(res, beh, events);
}

/** The exact SSE events the mock sends for a streamed OpenAI Responses API request. */
export function responsesStreamEvents(seq, model, text, n) {
  const id = `resp_mock_${seq}`;
  const itemId = `msg_mock_${seq}`;
  let sn = 0;
  const ev = (type, obj) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sn++, ...obj })}\n\n`;
  const response = (status, output, usage) => ({
    id, object: 'response', created_at: 1700000000 + seq, status, model, output,
    parallel_tool_calls: true, tool_choice: 'auto', tools: [], temperature: 1, top_p: 1,
    error: null, incomplete_details: null, instructions: null, metadata: {}, usage,
  });
  const item = (status, content) => ({ id: itemId, type: 'message', status, role: 'assistant', content });
  const part = (t) => ({ type: 'output_text', text: t, annotations: [] });
  const events = [
    ev('response.created', { response: response('in_progress', [], null) }),
    ev('response.in_progress', { response: response('in_progress', [], null) }),
    ev('response.output_item.added', { output_index: 0, item: item('in_progress', []) }),
    ev('response.content_part.added', { item_id: itemId, output_index: 0, content_index: 0, part: part('') }),
  ];
  for (const piece of streamPieces(text, n)) {
    events.push(ev('response.output_text.delta', { item_id: itemId, output_index: 0, content_index: 0, delta: piece, logprobs: [] }));
  }
  events.push(ev('response.output_text.done', { item_id: itemId, output_index: 0, content_index: 0, text, logprobs: [] }));
  events.push(ev('response.content_part.done', { item_id: itemId, output_index: 0, content_index: 0, part: part(text) }));
  events.push(ev('response.output_item.done', { output_index: 0, item: item('completed', [part(text)]) }));
  events.push(ev('response.completed', {
    response: response('completed', [item('completed', [part(text)])], { input_tokens: 3, output_tokens: text.length, total_tokens: 3 + text.length }),
  }));
  return events;
}

function streamResponses(res, beh, rec, model, text, common) {
  const events = alterEvents(responsesStreamEvents(rec.seq, model, text, beh.chunks), beh, {
    isTerminal: (ev) => ev.startsWith('event: response.completed\n'),
    contentEnd: 4 + beh.chunks,
    errorEvent: `event: error\ndata: ${JSON.stringify({ type: 'error', code: 'server_error', message: 'mock stream error', param: null, sequence_number: 99 })}\n\n`,
  });
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...common });
  res.flushHeaders();
  return writeEvents(res, beh, events);
}

function geminiText(body) {
  const contents = body && Array.isArray(body.contents) ? body.contents : [];
  const last = contents[contents.length - 1];
  const parts = last && Array.isArray(last.parts) ? last.parts : [];
  return parts.map((p) => (p && typeof p.text === 'string' ? p.text : '')).join('');
}

/** The exact SSE events the mock sends for Gemini :streamGenerateContent?alt=sse (CRLF-delimited, no terminal event). */
export function geminiStreamEvents(seq, modelVersion, text, n) {
  const pieces = streamPieces(text, n);
  return pieces.map((piece, i) => {
    const cand = { content: { parts: [{ text: piece }], role: 'model' }, index: 0 };
    if (i === pieces.length - 1) cand.finishReason = 'STOP';
    const obj = { candidates: [cand], usageMetadata: { promptTokenCount: 3, candidatesTokenCount: i + 1, totalTokenCount: 4 + i }, modelVersion, responseId: `gemini-mock-${seq}` };
    return `data: ${JSON.stringify(obj)}\r\n\r\n`;
  });
}

function streamGemini(res, beh, rec, p, text, common) {
  const m = /\/models\/([^/:]+):/.exec(p);
  const events = geminiStreamEvents(rec.seq, m ? m[1] : 'gemini-mock', text, beh.chunks);
  res.writeHead(200, { 'content-type': 'text/event-stream', ...common });
  res.flushHeaders();
  return writeEvents(res, beh, events);
}
