// raw.mjs — a raw TCP HTTP/1.1 client for protocol edge cases (pipelining,
// chunked uploads, Expect: 100-continue, malformed requests, timeouts), with a
// small incremental response parser.
import net from 'node:net';

/**
 * Parse as many complete responses as `buf` holds. Returns {responses, rest}.
 * Each response: {status, reason, headers (lower-case keys; repeated ones joined
 * with ", "), headerList ([name, value] pairs), body (Buffer), interim (bool)}.
 * `closed` says the peer closed, so a body delimited by close is complete.
 * `noBody(i)` tells whether the i-th final response answers a HEAD request.
 */
export function parseResponses(buf, closed = false) {
  const responses = [];
  let off = 0;
  for (;;) {
    const headEnd = buf.indexOf('\r\n\r\n', off);
    if (headEnd < 0) break;
    const lines = buf.subarray(off, headEnd).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const headers = {};
    const headerList = [];
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) throw new Error(`bad header line: ${JSON.stringify(line)}`);
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      headerList.push([k, v]);
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    let p = headEnd + 4;
    if (status >= 100 && status < 200) {
      responses.push({ status, reason: m[2] || '', headers, headerList, body: Buffer.alloc(0), interim: true });
      off = p;
      continue;
    }
    let body;
    if (status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else if (/\bchunked\b/i.test(headers['transfer-encoding'] || '')) {
      const parts = [];
      let complete = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p);
        if (le < 0) break;
        const size = parseInt(buf.subarray(p, le).toString('latin1').split(';')[0].trim(), 16);
        if (Number.isNaN(size)) throw new Error(`bad chunk size line at ${p}`);
        if (size === 0) {
          // trailers until an empty line
          let q = le + 2;
          let ok = false;
          for (;;) {
            const te = buf.indexOf('\r\n', q);
            if (te < 0) break;
            if (te === q) { q = te + 2; ok = true; break; }
            q = te + 2;
          }
          if (ok) { p = q; complete = true; }
          break;
        }
        if (buf.length < le + 2 + size + 2) break;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length < p + n) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      if (!closed) break;
      body = buf.subarray(p);
      p = buf.length;
    }
    responses.push({ status, reason: m[2] || '', headers, headerList, body, text: body.toString('utf8'), interim: false });
    off = p;
  }
  return { responses, rest: buf.subarray(off) };
}

export class RawClient {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.closedAt = 0;
    this.error = null;
    this.waiters = new Set();
    this.chunks = []; // {t, data}
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.chunks.push({ t: performance.now(), data: d });
      this.wake();
    });
    socket.on('end', () => { this.markClosed(); });
    socket.on('close', () => { this.markClosed(); });
    socket.on('error', (e) => { this.error = e; this.markClosed(); });
  }

  markClosed() {
    if (!this.closed) { this.closed = true; this.closedAt = performance.now(); }
    this.wake();
  }

  wake() { for (const w of this.waiters) w(); }

  static connect(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port });
      s.setNoDelay(true);
      s.once('connect', () => { s.removeListener('error', reject); resolve(new RawClient(s)); });
      s.once('error', reject);
    });
  }

  write(data) {
    return new Promise((resolve, reject) => {
      this.socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Parse what arrived so far. */
  parsed() { return parseResponses(this.buf, this.closed); }

  /** Wait until `pred()` is true, the socket closed, or timeout; returns pred(). */
  async waitUntil(pred, timeoutMs) {
    const end = performance.now() + timeoutMs;
    while (!pred() && !this.closed && performance.now() < end) {
      await new Promise((resolve) => {
        const w = () => { this.waiters.delete(w); clearTimeout(timer); resolve(); };
        const timer = setTimeout(w, Math.max(1, end - performance.now()));
        this.waiters.add(w);
      });
    }
    return pred();
  }

  /** Wait for `n` final (non-1xx) responses; returns {responses (final + interim), finals}. */
  async readResponses(n, timeoutMs = 5000) {
    const count = () => {
      try { return this.parsed().responses.filter((r) => !r.interim).length; } catch { return 0; }
    };
    await this.waitUntil(() => count() >= n, timeoutMs);
    const { responses } = this.parsed();
    const finals = responses.filter((r) => !r.interim);
    if (finals.length < n) {
      throw new Error(`expected ${n} responses, got ${finals.length} (closed=${this.closed}); bytes so far:\n${this.buf.toString('utf8').slice(0, 2000)}`);
    }
    return { responses, finals };
  }

  /** Wait for the peer to close; resolves true if it closed within timeout. */
  async waitClose(timeoutMs = 5000) {
    await this.waitUntil(() => this.closed, timeoutMs);
    return this.closed;
  }

  destroy() { this.socket.destroy(); }
}

/** Build a request as bytes. */
export function rawRequest(method, path, headers = {}, body) {
  const b = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const h = { Host: 'promptcache.test', ...headers };
  if (b && !Object.keys(h).some((k) => /^(content-length|transfer-encoding)$/i.test(k))) h['Content-Length'] = String(b.length);
  if (b && !Object.keys(h).some((k) => /^content-type$/i.test(k))) h['Content-Type'] = 'application/json';
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(h)) head += `${k}: ${v}\r\n`;
  head += '\r\n';
  return b ? Buffer.concat([Buffer.from(head, 'latin1'), b]) : Buffer.from(head, 'latin1');
}

/** Encode `body` as a chunked request body split into `parts` pieces. */
export function chunkedPieces(body, parts = 3) {
  const b = Buffer.from(body);
  const size = Math.ceil(b.length / parts);
  const out = [];
  for (let i = 0; i < b.length; i += size) {
    const piece = b.subarray(i, i + size);
    out.push(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]));
  }
  out.push(Buffer.from('0\r\n\r\n'));
  return out;
}
