// lib.mjs — shared by the benchmark helpers: the request bodies (realistic chat
// completions of an exact byte size, each one distinct), the upstream's
// response (a ~1 KB chat.completion whose id carries the MD5 of the request
// body, so a client can tell whether it got its own answer), and what the
// report scripts (report.mjs, forward-report.mjs, fleet-report.mjs) share.
import { createHash } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const WORDS = (
  'the of and to in is that for it as with was on be by this are or at from ' +
  'have an but not they which you one all were we when there can been has more ' +
  'if will would their so about what up out them into some time could only ' +
  'other than then its also two first over after new any these way may should ' +
  'system model request response cache latency token prompt answer context ' +
  'function database server client network memory process thread buffer queue ' +
  'review summary document paragraph section example question result report ' +
  'customer order invoice account payment shipping address product support ' +
  'because however although therefore meanwhile instead perhaps usually ' +
  'quickly carefully exactly roughly nearly clearly simply fairly strongly ' +
  'café naïve résumé déjà façade coöperate Zürich München São Paulo'
).split(' ');

// Deterministic PRNG (mulberry32) so every run builds the same corpus.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Natural-looking prose of at least n characters: sentences, commas, quotes,
// paragraphs (newlines), a few non-ASCII words.
export function corpus(n, seed = 1) {
  const r = rng(seed);
  const parts = [];
  let len = 0;
  while (len < n) {
    const words = 6 + Math.floor(r() * 18);
    let s = '';
    for (let w = 0; w < words; w++) {
      let word = WORDS[Math.floor(r() * WORDS.length)];
      if (w === 0) word = word[0].toUpperCase() + word.slice(1);
      s += (w ? ' ' : '') + word;
      if (w > 2 && w < words - 2 && r() < 0.08) s += ',';
    }
    const end = r();
    s += end < 0.8 ? '. ' : end < 0.9 ? '? ' : '! ';
    if (r() < 0.05) s = '"' + s.trim() + '" ';
    if (r() < 0.07) s += '\n\n';
    parts.push(s);
    len += s.length;
  }
  return parts.join('');
}

let BIG = null; // the corpus as escaped JSON string content, in UTF-8 bytes

// A slice of about n bytes of escaped corpus text that is valid JSON string
// content on its own (no split escape, no split UTF-8 sequence).
function piece(off, n) {
  if (!BIG || BIG.length < n + 70000) BIG = Buffer.from(JSON.stringify(corpus(2 * n + 140000, 7)).slice(1, -1));
  let s = off % (BIG.length - n - 1);
  let e = s + n;
  while (s < e && (BIG[s] & 0xc0) === 0x80) s++;
  if (BIG[s] === 0x22 || (s > 0 && BIG[s - 1] === 0x5c && BIG[s] !== 0x5c && BIG[s] !== 0x22 && BIG[s] !== 0x6e)) s++;
  // a slice must not start in the middle of an escape: skip the char after a backslash
  if (s > 0 && BIG[s - 1] === 0x5c) {
    let k = s - 1, bs = 0;
    while (k >= 0 && BIG[k] === 0x5c) { bs++; k--; }
    if (bs % 2 === 1) s++;
  }
  while (e > s && (BIG[e] & 0xc0) === 0x80) e--;
  let bs = 0;
  for (let k = e - 1; k >= s && BIG[k] === 0x5c; k--) bs++;
  if (bs % 2 === 1) e--;
  return BIG.subarray(s, e);
}

// Body i of exactly `size` bytes of UTF-8, SDK-like JSON (", " and ": "
// separators, insertion-ordered keys), one line, as a Buffer.
export function body(i, size) {
  const sys = 'You are a helpful assistant for an online store. Answer briefly and cite the policy section you used.';
  const parts = [
    '{"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "' + sys + '"}, {"role": "user", "content": "',
    null,
    '"}, {"role": "assistant", "content": "',
    null,
    '"}, {"role": "user", "content": "Question #' + i + ': ',
    null,
    null,
    '"}], "temperature": 0.2, "max_tokens": 512, "stream": false}',
  ];
  const fixed = [0, 2, 4, 7].reduce((a, k) => a + Buffer.byteLength(parts[k]), 0);
  const room = Math.max(0, size - fixed);
  const off = i * 7919 + size;
  const bufs = parts.map((p) => (p === null ? null : Buffer.from(p)));
  bufs[1] = piece(off, Math.floor(room * 0.25));
  bufs[3] = piece(off + 1234567, Math.floor(room * 0.25));
  bufs[5] = piece(off + 7654321, Math.max(0, room - bufs[1].length - bufs[3].length));
  const used = bufs.reduce((a, b) => a + (b ? b.length : 0), 0);
  bufs[6] = Buffer.alloc(Math.max(0, size - used), 0x20);
  return Buffer.concat(bufs);
}

export const md5 = (b) => createHash('md5').update(b).digest('hex');

// The upstream's answer; id = "chatcmpl-" + 32 hex digits. No '$', '\'' or
// '\\' in it, so nginx can return it verbatim from a quoted string.
let CONTENT = null;
export function response(idhex) {
  const content = CONTENT || (CONTENT = corpus(700, 3).replace(/["\n$'\\]/g, ' ').replace(/ +/g, ' ').slice(0, 700).trim());
  return JSON.stringify({
    id: 'chatcmpl-' + idhex,
    object: 'chat.completion',
    created: 1700000000,
    model: 'gpt-4o-mini-2024-07-18',
    choices: [
      { index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' },
    ],
    usage: { prompt_tokens: 812, completion_tokens: 143, total_tokens: 955 },
    system_fingerprint: 'fp_bench0001',
  });
}

export const idOf = (respText) => {
  const m = /"id":"chatcmpl-([0-9a-f]{32})"/.exec(respText);
  return m ? m[1] : null;
};

// ---- report helpers ----------------------------------------------------------

/** Readers of the raw files in a bench output directory (a missing file reads as empty). */
export function reader(dir) {
  const read = (f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
  /** KEY=VALUE lines */
  const kv = (f) => Object.fromEntries(read(f).trim().split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  /** a TSV file with a header line, as objects */
  const tsv = (f) => {
    const [head, ...ls] = read(f).trim().split('\n');
    if (!head) return [];
    const keys = head.split('\t');
    return ls.filter(Boolean).map((l) => Object.fromEntries(l.split('\t').map((v, i) => [keys[i], v])));
  };
  /** the last line of a file as JSON, or null */
  const json = (f) => {
    try {
      return JSON.parse(read(f).trim().split('\n').pop());
    } catch {
      return null;
    }
  };
  return { read, kv, tsv, json };
}

/** The median of the finite values (NaN when none). */
export const median = (a) => {
  const s = a.filter(Number.isFinite).sort((x, y) => x - y);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
/** A number with thousands separators and d decimals; '–' when not finite. */
export const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '–');
export const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');
/** ✓ / ✗ for a target met or missed; '' when it was not judged. */
export const mark = (ok) => (ok === null || ok === undefined ? '' : ok ? '✓' : '✗');
