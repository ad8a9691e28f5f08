// lib.mjs — shared by the benchmark helpers: the request bodies (realistic chat
// completions of an exact byte size, each one distinct) and the upstream's
// response (a ~1 KB chat.completion whose id carries the MD5 of the request
// body, so a client can tell whether it got its own answer).
import { createHash } from 'node:crypto';

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

let BIG = '';
function text(off, n) {
  if (BIG.length < n + 70000) BIG = corpus(n + 140000, 7);
  const o = off % (BIG.length - n);
  return BIG.slice(o, o + n);
}

// Body i of exactly `size` bytes (UTF-8), compact-but-SDK-like JSON
// (", " and ": " separators, insertion-ordered keys), one line.
export function body(i, size) {
  const sys = 'You are a helpful assistant for an online store. Answer briefly and cite the policy section you used.';
  const tail = { temperature: 0.2, max_tokens: 512, stream: false };
  const mk = (u1, a1, u2) =>
    JSON.stringify({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: sys },
        { role: 'user', content: u1 },
        { role: 'assistant', content: a1 },
        { role: 'user', content: u2 },
      ],
      ...tail,
    })
      .replace(/","/g, '", "')
      .replace(/},\{/g, '}, {')
      .replace(/":/g, '": ')
      .replace(/,"/g, ', "');
  const base = Buffer.byteLength(mk('', '', ''));
  const room = Math.max(0, size - base - 40);
  const off = i * 7919 + size;
  const u1 = text(off, Math.floor(room * 0.25));
  const a1 = text(off + 1234567, Math.floor(room * 0.25));
  let n2 = room - u1.length - a1.length;
  const head = `Question #${i}: `;
  let u2 = head + text(off + 7654321, Math.max(0, n2));
  let s = mk(u1, a1, u2);
  // Escapes and multi-byte characters make it longer than planned: trim, then pad.
  for (let k = 0; k < 20 && Buffer.byteLength(s) > size; k++) {
    const over = Buffer.byteLength(s) - size;
    u2 = u2.slice(0, Math.max(head.length, u2.length - over - 2));
    s = mk(u1, a1, u2);
  }
  const pad = size - Buffer.byteLength(s);
  if (pad > 0) s = mk(u1, a1, u2 + ' '.repeat(pad));
  return s;
}

export const md5 = (b) => createHash('md5').update(b).digest('hex');

// The upstream's answer; id = "chatcmpl-" + 32 hex digits. No '$', '\'' or
// '\\' in it, so nginx can return it verbatim from a quoted string.
export function response(idhex) {
  const content = corpus(700, 3).replace(/["\n$'\\]/g, ' ').replace(/ +/g, ' ').slice(0, 700).trim();
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
