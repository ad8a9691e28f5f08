#!/usr/bin/env node
// fake-openai.mjs — a tiny local stand-in for api.openai.com, so this example
// can be recorded without an API key or network access.
//
//   node fake-openai.mjs [--port 4010]      # prints "fake-openai: listening on http://127.0.0.1:PORT"
//
// It answers POST /v1/chat/completions the way OpenAI does: a `chat.completion`
// JSON object, or with "stream": true a text/event-stream of
// `chat.completion.chunk` events ending in `data: [DONE]`. The answer is
// derived deterministically from the prompt (no model, no randomness):
//   - a system prompt mentioning "haiku" gets three lines about the user's topic;
//   - anything else gets a "summary": the first words of the user's text.
// Every request is logged on stdout. It listens on 127.0.0.1 only.
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

export function createServer() {
  return http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try { body = raw ? JSON.parse(raw) : null; } catch { /* handled below */ }
      console.log(`fake-openai: ${req.method} ${req.url}${body && body.stream ? ' (stream)' : ''}`);
      if (req.method === 'POST' && req.url.split('?')[0] === '/v1/chat/completions') {
        if (!body || typeof body !== 'object') return error(res, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error', null);
        chatCompletions(req, res, body).catch((err) => { console.error(err); res.destroy(); });
        return;
      }
      error(res, 404, `Invalid URL (${req.method} ${req.url})`, 'invalid_request_error', null);
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
