/* utf8.h — the strict UTF-8 and \u-escape helpers shared by every module that
 * reads or writes JSON text (canon, json, export, cli): no overlong forms, no
 * UTF-16 surrogates, nothing above U+10FFFF. Inline: canon's hot loop uses them. */
#ifndef PC_UTF8_H
#define PC_UTF8_H

#include <stddef.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Length of the valid UTF-8 sequence at p (1 for ASCII), or 0 if there is
 * none within n bytes. */
static inline size_t pc_utf8_seq(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (len == 0 || c > 0xF4 || len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xF0 && p[1] < 0x90)) return 0; /* overlong */
  if (c == 0xED && p[1] > 0x9F) return 0;                                 /* surrogate */
  if (c == 0xF4 && p[1] > 0x8F) return 0;                                 /* > U+10FFFF */
  return len;
}

/* First byte in [p, e) that ends a plain run of a JSON string: `"`, `\`, a
 * control byte or a non-ASCII byte (which needs UTF-8 validation); e if
 * none. Sixteen bytes at a time where SSE2 is there. */
static inline const unsigned char *pc_json_plain_end(const unsigned char *p, const unsigned char *e) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(0x20);
  while (e - p >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    /* signed compare: bytes >= 0x80 are negative, so one test catches both
     * control bytes and non-ASCII */
    __m128i m =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)), _mm_cmplt_epi8(v, space));
    int mask = _mm_movemask_epi8(m);
    if (mask) return p + __builtin_ctz((unsigned)mask);
    p += 16;
  }
#endif
  while (p < e && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80) p++;
  return p;
}

static inline int pc_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0, k; i < n; i += k)
    if (!(k = pc_utf8_seq(p + i, n - i))) return 0;
  return 1;
}

/* Encode code point cp (≤ U+10FFFF, not a surrogate) at d; returns the end. */
static inline char *pc_utf8_put(char *d, unsigned long cp) {
  if (cp < 0x80) {
    *d++ = (char)cp;
  } else if (cp < 0x800) {
    *d++ = (char)(0xC0 | (cp >> 6));
    *d++ = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *d++ = (char)(0xE0 | (cp >> 12));
    *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *d++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *d++ = (char)(0xF0 | (cp >> 18));
    *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
    *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *d++ = (char)(0x80 | (cp & 0x3F));
  }
  return d;
}

/* The byte a one-letter JSON escape stands for (`n` → '\n'), or -1 (`u`
 * and anything else: the caller handles \uXXXX itself). */
static inline int pc_json_escape_byte(unsigned char c) {
  switch (c) {
  case '"':
    return '"';
  case '\\':
    return '\\';
  case '/':
    return '/';
  case 'b':
    return '\b';
  case 'f':
    return '\f';
  case 'n':
    return '\n';
  case 'r':
    return '\r';
  case 't':
    return '\t';
  default:
    return -1;
  }
}

/* The one-letter escape of a control byte (`\n` → 'n'), or 0 when it needs \u00xx. */
static inline char pc_json_short_escape(unsigned char c) {
  switch (c) {
  case '\b':
    return 'b';
  case '\f':
    return 'f';
  case '\n':
    return 'n';
  case '\r':
    return 'r';
  case '\t':
    return 't';
  default:
    return 0;
  }
}

/* Value of a hex digit, or -1. */
static inline int pc_hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20; /* A-F → a-f */
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Four hex digits at p (the caller checked they are in bounds), or -1. */
static inline long pc_hex4(const unsigned char *p) {
  int a = pc_hexval(p[0]), b = pc_hexval(p[1]), c = pc_hexval(p[2]), d = pc_hexval(p[3]);
  if ((a | b | c | d) < 0) return -1;
  return ((long)a << 12) | (b << 8) | (c << 4) | d;
}

/* Percent-decode ('+' is a space) and lower-case a query parameter's name
 * into out (cap bytes); returns the decoded length, or cap + 1 when it does
 * not fit. An invalid %-sequence stands for itself, as a server reads it. */
static inline size_t pc_param_name_decode(const char *p, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '%' && i + 2 < n && pc_hexval((unsigned char)p[i + 1]) >= 0 && pc_hexval((unsigned char)p[i + 2]) >= 0) {
      c = (unsigned char)(pc_hexval((unsigned char)p[i + 1]) << 4 | pc_hexval((unsigned char)p[i + 2]));
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    if (o == cap) return cap + 1;
    out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  return o;
}

#endif
