// familytest.mjs — helpers for families.test.mjs: a proxy in front of one
// family's fake upstream (`--route /FAMILY=URL,api=FAMILY`), a request that
// reports a cut body instead of throwing, the stats' tokens_saved, a SigV4
// verifier for what the proxy sends to Bedrock, and, per family, the requests
// the tests send (plain and streamed), where their prompt text sits (the JSON
// pointer a replay miss names), their credential header and their usage.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// the AWS SDK's own signer (installed with @aws-sdk/client-bedrock-runtime), the reference for verifySigV4()
import { SignatureV4 } from '@smithy/signature-v4';
import { startFamilyMock, usageOf, decodeEventStream } from './families.mjs';
import { echoText } from './mock.mjs';
import { startProxy, mockFor, closedPort, sleep } from './proxy.mjs';

/** The proxy's own AWS credentials (the client's are always different). */
export const PROXY_AWS = { accessKeyId: 'AKIDPROXYE2E0000001', secretAccessKey: 'proxy-e2e-secret/0123456789abcdefABCDEF', region: 'us-east-1' };
/** Environment that gives the proxy PROXY_AWS and nothing else of AWS's. */
export function awsEnv(extra = {}) {
  return {
    AWS_ACCESS_KEY_ID: PROXY_AWS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: PROXY_AWS.secretAccessKey,
    AWS_REGION: PROXY_AWS.region,
    AWS_SESSION_TOKEN: undefined,
    AWS_DEFAULT_REGION: undefined,
    AWS_PROFILE: undefined,
    AWS_DEFAULT_PROFILE: undefined,
    ...extra,
  };
}

/**
 * Start family's fake upstream and a proxy routing `/FAMILY` to it with `api=FAMILY`.
 * The default upstream is a closed port: anything misrouted answers 502.
 * opts: args (extra), env, dbDir, routeSuffix (e.g. ',region=eu-west-3'), mock (reuse one).
 */
export async function familyProxy(t, family, opts = {}) {
  const mock = opts.mock || (await mockFor(t, (o) => startFamilyMock(family, o)));
  const dead = await closedPort();
  const base = `/${family}`;
  const env = family === 'bedrock' ? awsEnv(opts.env) : opts.env || {};
  const proxy = await startProxy(t, {
    upstream: `http://127.0.0.1:${dead}`,
    args: ['--route', `${base}=${mock.url},api=${family}${opts.routeSuffix || ''}`, ...(opts.args || [])],
    env,
    dbDir: opts.dbDir,
  });
  return { mock, proxy, base };
}

/**
 * One HTTP request on a fresh connection that never rejects on a cut body:
 * {status, headers, body, text, json, cache, key, complete, error}. `body`: string, Buffer or object (JSON).
 */
export function send(port, { method = 'POST', path: p = '/', headers = {}, body, timeoutMs = 15000 } = {}) {
  let payload;
  const hdrs = { ...headers };
  if (body !== undefined && body !== null) {
    payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    if (!Object.keys(hdrs).some((k) => k.toLowerCase() === 'content-type')) hdrs['content-type'] = 'application/json';
    hdrs['content-length'] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const out = { status: 0, headers: {}, body: Buffer.alloc(0), text: '', cache: undefined, key: undefined, complete: false, error: null };
    Object.defineProperty(out, 'json', {
      get() {
        try { return JSON.parse(out.text); } catch { throw new Error(`response body is not JSON (status ${out.status}): ${out.text.slice(0, 500)}`); }
      },
    });
    let settled = false;
    const chunks = [];
    const finish = (err) => {
      if (settled) return;
      settled = true;
      out.body = Buffer.concat(chunks);
      out.text = out.body.toString('utf8');
      if (err) out.error = err;
      resolve(out);
    };
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: hdrs, agent: false }, (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      out.cache = res.headers['x-promptcache-status'];
      out.key = res.headers['x-promptcache-key'];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => { out.complete = res.complete; finish(); });
      res.on('error', (e) => finish(e));
      res.on('close', () => { out.complete = out.complete || res.complete; finish(); });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${p} timed out after ${timeoutMs} ms`)));
    req.on('error', (e) => {
      if (out.status) finish(e);
      else reject(e);
    });
    if (payload) req.write(payload);
    req.end();
  });
}

/** GET /_promptcache/stats. */
export async function stats(proxy) {
  const r = await send(proxy.port, { method: 'GET', path: '/_promptcache/stats' });
  if (r.status !== 200) throw new Error(`stats: ${r.status} ${r.text}`);
  return r.json;
}

/** Poll the stats until totals.tokens_saved has `want`'s input and output (2 s), then return them. */
export async function tokensSaved(proxy, want, timeoutMs = 2000) {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const s = (await stats(proxy)).totals.tokens_saved;
    if ((s.input === want.input && s.output === want.output) || performance.now() > end) return s;
    await sleep(25);
  }
}

/** SHA-256 as @smithy/signature-v4 wants it (a Checksum constructor). */
class Sha256 {
  constructor(secret) { this.h = secret ? crypto.createHmac('sha256', secret) : crypto.createHash('sha256'); }
  update(d) { this.h.update(d); }
  async digest() { return new Uint8Array(this.h.digest()); }
}

const AUTH_RE = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;

/** The AWS SDK signer's Authorization for `rec` with these signed headers (values as given). */
async function resign(rec, creds, region, service, headers, signed, when, uriEscapePath) {
  const signer = new SignatureV4({ credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey, sessionToken: creds.sessionToken }, region, service, sha256: Sha256, uriEscapePath, applyChecksum: false });
  const query = {};
  for (const [k, v] of new URLSearchParams(rec.query || '')) query[k] = v;
  const out = await signer.sign(
    { method: rec.method, protocol: 'http:', hostname: '127.0.0.1', path: rec.path, query, headers, body: rec.body },
    { signingDate: when, signableHeaders: new Set(signed) },
  );
  return out.headers.authorization;
}

/**
 * Check a request the fake Bedrock received (a mock `rec`) is SigV4-signed with `creds` for
 * `region`: the access key id, the credential scope, one X-Amz-Date that is now, the session
 * token, the payload hash. With `signature` (default true), also as AWS would verify it: every
 * signed header was sent, and the signature recomputed by the AWS SDK's own signer (which
 * encodes each path segment again, as every service but S3 requires) equals the one sent; on a
 * mismatch the error says which variant the proxy's signature matches instead.
 * Returns the parsed Authorization; throws an Error saying what is wrong.
 */
export async function verifySigV4(rec, creds, region, { service = 'bedrock', signature: checkSignature = true } = {}) {
  const auth = String(rec.headers.authorization || '');
  const m = AUTH_RE.exec(auth);
  if (!m) throw new Error(`upstream Authorization is not SigV4: ${JSON.stringify(auth)}`);
  const [, akid, day, reg, svc, signedList, signature] = m;
  if (akid !== creds.accessKeyId) throw new Error(`signed with access key ${akid}, expected ${creds.accessKeyId}`);
  if (reg !== region) throw new Error(`credential scope region ${reg}, expected ${region}`);
  if (svc !== service) throw new Error(`credential scope service ${svc}, expected ${service}`);
  const dateValues = [];
  for (let i = 0; i < rec.rawHeaders.length; i += 2) if (rec.rawHeaders[i].toLowerCase() === 'x-amz-date') dateValues.push(rec.rawHeaders[i + 1]);
  if (dateValues.length !== 1) throw new Error(`expected one X-Amz-Date header upstream, got ${JSON.stringify(dateValues)}`);
  const d = dateValues[0];
  if (!/^\d{8}T\d{6}Z$/.test(d)) throw new Error(`X-Amz-Date ${d} is not YYYYMMDDTHHMMSSZ`);
  if (d.slice(0, 8) !== day) throw new Error(`X-Amz-Date ${d} and credential scope date ${day} differ`);
  const when = new Date(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T${d.slice(9, 11)}:${d.slice(11, 13)}:${d.slice(13, 15)}Z`);
  if (Math.abs(when.getTime() - Date.now()) > 5 * 60 * 1000) throw new Error(`X-Amz-Date ${d} is not now (${new Date().toISOString()})`);
  const signed = signedList.split(';');
  for (const must of ['host', 'x-amz-date']) if (!signed.includes(must)) throw new Error(`SignedHeaders ${signedList} lacks ${must}`);
  if ([...signed].sort().join(';') !== signedList) throw new Error(`SignedHeaders ${signedList} are not sorted`);
  const bodyHash = crypto.createHash('sha256').update(rec.body).digest('hex');
  const sent = rec.headers['x-amz-content-sha256'];
  if (sent !== undefined && sent !== bodyHash) throw new Error(`x-amz-content-sha256 ${sent} is not the body's ${bodyHash}`);
  if (creds.sessionToken !== undefined && rec.headers['x-amz-security-token'] !== creds.sessionToken) {
    throw new Error(`x-amz-security-token ${rec.headers['x-amz-security-token']}, expected the proxy's session token`);
  }
  if (creds.sessionToken === undefined && rec.headers['x-amz-security-token'] !== undefined) {
    throw new Error(`x-amz-security-token ${rec.headers['x-amz-security-token']} sent with long-term credentials`);
  }
  const parsed = { akid, day, region: reg, signed, date: d };
  if (!checkSignature) return parsed;

  const missing = signed.filter((h) => rec.headers[h] === undefined);
  const headers = {};
  for (const h of signed) headers[h] = rec.headers[h] === undefined ? '' : rec.headers[h];
  const want = await resign(rec, creds, region, service, headers, signed, when, true);
  const problems = [];
  if (missing.length) problems.push(`SignedHeaders names ${missing.join(', ')}, which the request does not carry (AWS answers IncompleteSignatureException)`);
  if (AUTH_RE.exec(want)[6] !== signature) {
    const single = await resign(rec, creds, region, service, headers, signed, when, false);
    const hint = AUTH_RE.exec(single)[6] === signature
      ? `it matches a canonical URI that is the path as sent (${rec.path}), not encoded again as AWS requires for every service but S3`
      : 'it matches no variant tried (path encoded once or twice, absent signed headers taken as empty)';
    problems.push(`the signature does not verify: sent ${signature}, the AWS SDK's signer computes ${AUTH_RE.exec(want)[6]}; ${hint}`);
  }
  if (problems.length) throw new Error(`${rec.method} ${rec.url}: ${problems.join('; ')}`);
  return parsed;
}

/** A SigV4-shaped client Authorization (not a valid signature: the proxy re-signs). */
export function clientSigV4(akid, day = '20260101', region = 'us-east-1') {
  return `AWS4-HMAC-SHA256 Credential=${akid}/${day}/${region}/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=${crypto.randomBytes(32).toString('hex')}`;
}

/** A fresh tmp dir removed by a t.after hook registered now. */
export function tmpDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'promptcache-fam-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------- per-family requests

export const CLAUDE = 'anthropic.claude-3-haiku-20240307-v1:0';
export const TITAN = 'amazon.titan-text-express-v1';
const enc = encodeURIComponent;

const sseData = (text) => text.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
const ndjson = (text) => text.trim().split('\n').map((l) => JSON.parse(l));
const frames = (buf) => {
  const { messages, rest } = decodeEventStream(buf);
  if (rest) throw new Error(`${rest} bytes after the last whole frame`);
  return messages;
};
const chunkJson = (m) => JSON.parse(Buffer.from(JSON.parse(m.payload).bytes, 'base64').toString());

/**
 * Per family:
 *   cred(v)    request headers carrying the credential v
 *   credName   the header the upstream receives it in (bedrock: none, the proxy re-signs)
 *   pointer    JSON pointer of the prompt text in `plain`'s body
 *   plain[]    non-streamed requests: {name, req(text) -> {path, body, headers?}, usage(text, res) | null, check(res, text)}
 *   streams[]  streamed requests:     {name, req(text), ct (content-type RegExp), usage(text) | null, check(res, text)}
 */
export const SPECS = {
  openai: {
    cred: (v) => ({ authorization: `Bearer ${v}` }),
    credName: 'authorization',
    pointer: '/messages/0/content',
    plain: [
      {
        name: 'chat/completions',
        req: (text) => ({ path: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }] } }),
        usage: (text, res) => ({ input: res.json.usage.prompt_tokens, output: res.json.usage.completion_tokens }),
        check: (res, text) => res.json.choices[0].message.content === echoText(text),
      },
    ],
    streams: [
      {
        name: 'chat/completions SSE',
        req: (text) => ({ path: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }], stream: true, stream_options: { include_usage: true } } }),
        ct: /^text\/event-stream/,
        usage: (text) => ({ input: 3, output: echoText(text).length }),
        check: (res) => res.text.endsWith('data: [DONE]\n\n'),
      },
    ],
  },
  anthropic: {
    cred: (v) => ({ 'x-api-key': v, 'anthropic-version': '2023-06-01' }),
    credName: 'x-api-key',
    pointer: '/messages/0/content',
    plain: [
      {
        name: 'messages',
        req: (text) => ({ path: '/v1/messages', headers: { 'anthropic-version': '2023-06-01' }, body: { model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: text }] } }),
        usage: (text, res) => ({ input: res.json.usage.input_tokens, output: res.json.usage.output_tokens }),
        check: (res, text) => res.json.content[0].text === echoText(text),
      },
    ],
    streams: [
      {
        name: 'messages SSE',
        req: (text) => ({ path: '/v1/messages', headers: { 'anthropic-version': '2023-06-01' }, body: { model: 'claude-3-5-haiku-latest', max_tokens: 64, stream: true, messages: [{ role: 'user', content: text }] } }),
        ct: /^text\/event-stream/,
        usage: (text) => ({ input: 10, output: echoText(text).length }),
        check: (res) => /event: message_stop\n/.test(res.text),
      },
    ],
  },
  gemini: {
    cred: (v) => ({ 'x-goog-api-key': v }),
    credName: 'x-goog-api-key',
    pointer: '/contents/0/parts/0/text',
    plain: [
      {
        name: ':generateContent',
        req: (text) => ({ path: '/v1beta/models/gemini-2.5-flash:generateContent', body: { contents: [{ role: 'user', parts: [{ text }] }], generationConfig: { temperature: 0 } } }),
        usage: (text) => usageOf(text),
        check: (res, text) => res.json.candidates[0].content.parts[0].text === echoText(text),
      },
      {
        name: ':embedContent',
        req: (text) => ({ path: '/v1beta/models/text-embedding-004:embedContent', body: { content: { parts: [{ text }] } } }),
        usage: null,
        check: (res) => res.json.embedding.values.length === 8,
      },
    ],
    streams: [
      {
        name: ':streamGenerateContent?alt=sse',
        req: (text) => ({ path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', body: { contents: [{ role: 'user', parts: [{ text }] }] } }),
        ct: /^text\/event-stream/,
        usage: (text) => usageOf(text),
        check: (res, text) => {
          const ev = sseData(res.text).map((d) => JSON.parse(d));
          return ev.map((e) => e.candidates[0].content.parts[0].text).join('') === echoText(text) && ev.at(-1).candidates[0].finishReason === 'STOP';
        },
      },
      {
        name: ':streamGenerateContent (JSON array)',
        req: (text) => ({ path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent', body: { contents: [{ role: 'user', parts: [{ text }] }] } }),
        ct: /^application\/json/,
        usage: (text) => usageOf(text),
        check: (res, text) => res.json.map((c) => c.candidates[0].content.parts[0].text).join('') === echoText(text),
      },
    ],
  },
  azure: {
    cred: (v) => ({ 'api-key': v }),
    credName: 'api-key',
    pointer: '/messages/0/content',
    plain: [
      {
        name: 'deployments/chat/completions',
        req: (text) => ({ path: '/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21', headers: { 'api-key': 'az-default' }, body: { messages: [{ role: 'user', content: text }] } }),
        usage: (text) => usageOf(text),
        check: (res, text) => res.json.choices[0].message.content === echoText(text) && Array.isArray(res.json.prompt_filter_results),
      },
      {
        name: 'v1/chat/completions',
        req: (text) => ({ path: '/openai/v1/chat/completions', headers: { 'api-key': 'az-default' }, body: { model: 'gpt-4o', messages: [{ role: 'user', content: text }] } }),
        usage: (text) => usageOf(text),
        check: (res, text) => res.json.choices[0].message.content === echoText(text),
      },
      {
        name: 'deployments/embeddings',
        req: (text) => ({ path: '/openai/deployments/ada/embeddings?api-version=2024-10-21', headers: { 'api-key': 'az-default' }, body: { input: text } }),
        usage: null,
        check: (res) => res.json.data[0].embedding.length === 8,
      },
    ],
    streams: [
      {
        name: 'deployments/chat/completions SSE',
        req: (text) => ({ path: '/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21', headers: { 'api-key': 'az-default' }, body: { messages: [{ role: 'user', content: text }], stream: true, stream_options: { include_usage: true } } }),
        ct: /^text\/event-stream/,
        usage: (text) => usageOf(text),
        check: (res) => res.text.endsWith('data: [DONE]\n\n'),
      },
    ],
  },
  ollama: {
    cred: (v) => ({ authorization: `Bearer ${v}` }),
    credName: 'authorization',
    pointer: '/messages/0/content',
    plain: [
      {
        name: '/api/chat "stream": false',
        req: (text) => ({ path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: text }], stream: false } }),
        usage: (text) => usageOf(text),
        check: (res, text) => res.json.message.content === echoText(text) && res.json.done === true,
      },
      {
        name: '/api/generate "stream": false',
        req: (text) => ({ path: '/api/generate', body: { model: 'llama3.2', prompt: text, stream: false } }),
        usage: (text) => usageOf(text),
        check: (res, text) => res.json.response === echoText(text),
      },
      {
        name: '/api/embed',
        req: (text) => ({ path: '/api/embed', body: { model: 'all-minilm', input: [text] } }),
        usage: null,
        check: (res) => res.json.embeddings.length === 1,
      },
    ],
    streams: [
      {
        name: '/api/chat (streams by default)',
        req: (text) => ({ path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: text }] } }),
        ct: /^application\/x-ndjson/,
        usage: (text) => usageOf(text),
        check: (res, text) => {
          const lines = ndjson(res.text);
          return lines.map((l) => l.message.content).join('') === echoText(text) && lines.at(-1).done === true;
        },
      },
      {
        name: '/api/generate "stream": true',
        req: (text) => ({ path: '/api/generate', body: { model: 'llama3.2', prompt: text, stream: true } }),
        ct: /^application\/x-ndjson/,
        usage: (text) => usageOf(text),
        check: (res, text) => {
          const lines = ndjson(res.text);
          return lines.map((l) => l.response).join('') === echoText(text) && lines.at(-1).done === true;
        },
      },
    ],
  },
  tgi: {
    cred: (v) => ({ authorization: `Bearer ${v}` }),
    credName: 'authorization',
    pointer: '/inputs',
    plain: [
      {
        name: '/generate',
        req: (text) => ({ path: '/generate', body: { inputs: text, parameters: { max_new_tokens: 20 } } }),
        usage: (text) => usageOf(text), // from x-prompt-tokens / x-generated-tokens
        check: (res, text) => res.json.generated_text === echoText(text) && res.headers['x-prompt-tokens'] === String(usageOf(text).input),
      },
      {
        name: 'POST / (JSON array)',
        req: (text) => ({ path: '/', body: { inputs: text, parameters: { details: true } } }),
        usage: null,
        check: (res, text) => res.json[0].generated_text === echoText(text),
      },
    ],
    streams: [
      {
        name: '/generate_stream',
        req: (text) => ({ path: '/generate_stream', body: { inputs: text, parameters: { max_new_tokens: 20 } } }),
        ct: /^text\/event-stream/,
        usage: (text) => usageOf(text),
        check: (res, text) => JSON.parse(sseData(res.text).at(-1)).generated_text === echoText(text),
      },
      {
        name: 'POST / "stream": true',
        req: (text) => ({ path: '/', body: { inputs: text, stream: true } }),
        ct: /^text\/event-stream/,
        usage: (text) => usageOf(text),
        check: (res, text) => JSON.parse(sseData(res.text).at(-1)).generated_text === echoText(text),
      },
    ],
  },
  llamacpp: {
    cred: (v) => ({ authorization: `Bearer ${v}` }),
    credName: 'authorization',
    pointer: '/prompt',
    plain: [
      {
        name: '/completion',
        req: (text) => ({ path: '/completion', body: { prompt: text, n_predict: 16 } }),
        usage: (text) => usageOf(text),
        check: (res, text) => res.json.content === echoText(text) && res.json.stop === true,
      },
      {
        name: '/v1/chat/completions',
        req: (text) => ({ path: '/v1/chat/completions', body: { model: 'any', messages: [{ role: 'user', content: text }] } }),
        usage: (text) => usageOf(text),
        check: (res, text) => res.json.choices[0].message.content === echoText(text),
      },
      {
        name: '/embedding',
        req: (text) => ({ path: '/embedding', body: { content: text } }),
        usage: null,
        check: (res) => res.json[0].embedding[0].length === 8,
      },
    ],
    streams: [
      {
        name: '/completion "stream": true',
        req: (text) => ({ path: '/completion', body: { prompt: text, n_predict: 16, stream: true } }),
        ct: /^text\/event-stream/,
        usage: (text) => usageOf(text),
        check: (res, text) => {
          const ev = sseData(res.text).map((d) => JSON.parse(d));
          return ev.at(-1).stop === true && ev.slice(0, -1).map((e) => e.content).join('') === echoText(text);
        },
      },
    ],
  },
  bedrock: {
    cred: (v) => ({ authorization: clientSigV4(v) }),
    credName: null,
    pointer: '/messages/0/content/0/text',
    plain: [
      {
        name: 'converse',
        req: (text) => ({ path: `/model/${enc(CLAUDE)}/converse`, headers: { authorization: clientSigV4('AKIDCLIENTE2E00001') }, body: { messages: [{ role: 'user', content: [{ text }] }], inferenceConfig: { maxTokens: 64 } } }),
        usage: (text) => usageOf(text),
        check: (res, text) => res.json.output.message.content[0].text === echoText(text),
      },
      {
        name: 'invoke (Anthropic body)',
        req: (text) => ({ path: `/model/${enc(CLAUDE)}/invoke`, headers: { authorization: clientSigV4('AKIDCLIENTE2E00001'), accept: 'application/json' }, body: { anthropic_version: 'bedrock-2023-05-31', max_tokens: 64, messages: [{ role: 'user', content: text }] } }),
        usage: (text) => usageOf(text), // X-Amzn-Bedrock-*-Token-Count
        check: (res, text) => res.json.content[0].text === echoText(text) && res.headers['x-amzn-bedrock-output-token-count'] === String(usageOf(text).output),
      },
      {
        name: 'invoke (Titan body)',
        req: (text) => ({ path: `/model/${enc(TITAN)}/invoke`, headers: { authorization: clientSigV4('AKIDCLIENTE2E00001'), accept: 'application/json' }, body: { inputText: text, textGenerationConfig: { maxTokenCount: 64 } } }),
        usage: (text) => usageOf(text),
        check: (res, text) => res.json.results[0].outputText === echoText(text),
      },
    ],
    streams: [
      {
        name: 'converse-stream',
        req: (text) => ({ path: `/model/${enc(CLAUDE)}/converse-stream`, headers: { authorization: clientSigV4('AKIDCLIENTE2E00001') }, body: { messages: [{ role: 'user', content: [{ text }] }], inferenceConfig: { maxTokens: 64 } } }),
        ct: /^application\/vnd\.amazon\.eventstream/,
        usage: (text) => usageOf(text), // the metadata event
        check: (res, text) => {
          const ms = frames(res.body);
          const types = ms.map((m) => m.headers[':event-type']);
          const deltas = ms.filter((m) => m.headers[':event-type'] === 'contentBlockDelta').map((m) => JSON.parse(m.payload).delta.text).join('');
          return types[0] === 'messageStart' && types.slice(-2).join() === 'messageStop,metadata' && deltas === echoText(text);
        },
      },
      {
        name: 'invoke-with-response-stream (Anthropic body)',
        req: (text) => ({ path: `/model/${enc(CLAUDE)}/invoke-with-response-stream`, headers: { authorization: clientSigV4('AKIDCLIENTE2E00001') }, body: { anthropic_version: 'bedrock-2023-05-31', max_tokens: 64, messages: [{ role: 'user', content: text }] } }),
        ct: /^application\/vnd\.amazon\.eventstream/,
        usage: (text) => usageOf(text), // amazon-bedrock-invocationMetrics
        check: (res, text) => {
          const ev = frames(res.body).map(chunkJson);
          return ev.at(-1).type === 'message_stop' && ev.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join('') === echoText(text);
        },
      },
    ],
  },
};

/** Merge a request's headers with extra ones (later wins, case-insensitively). */
export function withHeaders(req, extra) {
  const headers = {};
  const put = (h) => {
    for (const [k, v] of Object.entries(h || {})) {
      for (const old of Object.keys(headers)) if (old.toLowerCase() === k.toLowerCase()) delete headers[old];
      headers[k] = v;
    }
  };
  put(req.headers);
  put(extra);
  return { ...req, headers };
}
