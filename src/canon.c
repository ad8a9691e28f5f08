/* canon.c — strict RFC 8259 JSON → canonical bytes for the cache key (SPEC §4).
 *
 * Canonical form (two spellings of one document must give the same bytes):
 *  - Object members sorted by the memcmp order of their unescaped UTF-8 keys
 *    (a shorter prefix sorts first); duplicate keys (after unescaping) are an
 *    error. Array order is kept. No whitespace at all.
 *  - Strings: raw UTF-8 except `"` → \", `\` → \\, and bytes < 0x20 → \b \f
 *    \n \r \t or \u00xx (lowercase hex). `/`, DEL, U+2028 and all non-ASCII
 *    stay raw. Input UTF-8 is validated strictly; lone surrogates are errors.
 *  - Numbers:
 *      * an integer literal (no fraction, no exponent) keeps its digits
 *        exactly, so integers beyond 2^53 survive; `-0` becomes `0`;
 *      * anything with a fraction or exponent is read as a double (overflow to
 *        infinity is an error); a finite integral double with |v| <= 2^53 is
 *        written as an integer (`1.0`, `1e0`, `10E-1` → `1`; `-0.0` → `0`);
 *      * other doubles use the first `%.{p}g`, p = 1..17, that reads back as
 *        the same double, with the exponent written as `e`, an optional `-`,
 *        and no leading zeros (`1.5e+300` → `1.5e300`, `1e-07` → `1e-7`).
 *    Reading and writing never depend on LC_NUMERIC: the decimal point is
 *    removed before strtod (the exponent is adjusted instead) and whatever
 *    decimal point snprintf prints is replaced by `.`.
 *  - --ignore-field pointers (RFC 6901) are matched on the parsed tree, so they
 *    work whatever the input's member order or escapes; array indexes refer to
 *    the original document even when several pointers remove elements.
 *
 * How (the key is computed on every cacheable request, so this is hot):
 *  one pass builds a flat node array (pre-order, siblings linked by index);
 *  strings stay as pointers into the input unless they hold an escape that is
 *  not already canonical (then values are re-escaped canonically, and keys
 *  with any escape unescaped, into one scratch area sized so that it never
 *  moves), so most text is validated once and copied once; object members
 *  are sorted by index when the
 *  object closes (already-sorted objects cost one comparison per member); then
 *  an iterative walk writes the output with bulk copies. Parsing and writing
 *  use explicit stacks bounded by PC_CANON_MAX_DEPTH: no recursion. There is no
 *  global state; all temporary memory is freed before returning. */
#include "canon.h"
#include "utf8.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"

enum node_type { T_NULL, T_FALSE, T_TRUE, T_NUM, T_STR, T_ARR, T_OBJ };

enum node_flag {
  F_SCRATCH = 1, /* string content lives in the scratch area, not in the input */
  F_ESCAPED = 2, /* string content is canonical escaped text (written verbatim);
                    otherwise it is unescaped bytes */
  F_INTLIT = 4,  /* number is an integer literal: u.s is its text */
  F_IGNORED = 8, /* removed by an ignore pointer (set on the member's key node) */
};

/* One JSON value. An object's children are its key nodes; the value of the key
 * at index k is node k + 1 (it is parsed right after the key). */
struct node {
  uint8_t type;
  uint8_t flags;
  uint32_t next; /* next sibling (array element or member key); 0 = none */
  union {
    struct {
      uint32_t off, len;
    } s;            /* string content or integer literal text */
    uint32_t first; /* container: first child; 0 = empty (the root is never a child) */
    double d;       /* number with a fraction or exponent */
  } u;
};

struct member {
  const char *key; /* unescaped key bytes: stable, input or never-moving scratch */
  uint32_t klen;
  uint32_t node; /* key node index */
};

struct frame {
  uint32_t node; /* the open container */
  uint32_t last; /* arrays: last element linked so far */
  size_t mbase;  /* objects: first member of this object on the member stack */
  uint8_t obj;
  uint8_t has_items;
};

struct parser {
  const char *in, *p, *end;
  struct node *nodes;
  uint32_t n_nodes, cap_nodes;
  char *scratch;      /* rewritten strings; sized to the rest of the input when first needed */
  size_t scratch_len; /* bytes written into it */
  size_t scratch_cap;
  int scratch_used;   /* claimed by this document (it must not move once used) */
  struct member *mem; /* members of every open object, innermost last */
  size_t n_mem, cap_mem;
  struct member *tmp; /* merge-sort buffer */
  size_t cap_tmp;
  int depth;
  struct frame stack[PC_CANON_MAX_DEPTH];
};

#define MAX_SAFE_INT 9007199254740992.0 /* 2^53 */

/* ---------- small helpers ---------- */

static void skip_ws(struct parser *ps) {
  const char *p = ps->p, *e = ps->end;
  while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  ps->p = p;
}

/* Past one strictly valid UTF-8 sequence starting at a non-ASCII lead byte, or NULL. */
static const unsigned char *utf8_next(const unsigned char *p, const unsigned char *e) {
  size_t k = pc_utf8_seq(p, (size_t)(e - p));
  return k ? p + k : NULL;
}

/* Is the \uXXXX at p exactly what the writer would produce (a control byte
 * without a short form, lowercase hex)? Then the raw text can be kept. */
static int canonical_u(const unsigned char *p, const unsigned char *e) {
  if (e - p < 6 || p[2] != '0' || p[3] != '0' || (p[4] != '0' && p[4] != '1')) return 0;
  int lo = pc_hexval(p[5]);
  if (lo < 0 || (p[5] >= 'A' && p[5] <= 'F')) return 0;
  unsigned char c = (unsigned char)((p[4] - '0') * 16 + lo);
  return pc_json_short_escape(c) == 0;
}

/* ---------- strings ---------- */

/* Length of the escape at p (a backslash, 2 bytes in bounds) if the writer
 * would spell that character the same way, else 0. */
static int escape_keeps(const unsigned char *p, const unsigned char *e) {
  switch (p[1]) {
  case '"':
  case '\\':
  case 'b':
  case 'f':
  case 'n':
  case 'r':
  case 't':
    return 2;
  case 'u':
    return canonical_u(p, e) ? 6 : 0;
  default:
    return 0;
  }
}

enum { ESC_NONE, ESC_CANONICAL, ESC_DECODE };

/* Validate a string body starting after its opening quote. On ESC_NONE or
 * ESC_CANONICAL, *q is the closing quote; on ESC_DECODE it is the first escape
 * that is not canonical (everything before it is valid and canonical). */
static int scan_str(const unsigned char *p, const unsigned char *e, const unsigned char **q, int *esc) {
  *esc = ESC_NONE;
  for (;;) {
    p = pc_json_plain_end(p, e);
    if (p == e) return PC_EJSON;
    unsigned char c = *p;
    if (c == '"') {
      *q = p;
      return 0;
    }
    if (c >= 0x80) {
      p = utf8_next(p, e);
      if (!p) return PC_EUTF8;
      continue;
    }
    if (c < 0x20) return PC_EJSON;
    if (e - p < 2) return PC_EJSON;
    int step = escape_keeps(p, e);
    if (!step) {
      *esc = ESC_DECODE; /* `\/`, another \u, or invalid: the decoder decides */
      *q = p;
      return 0;
    }
    *esc = ESC_CANONICAL;
    p += step;
  }
}

/* \uXXXX at *pp (bounds: 6 bytes checked by caller), combining a surrogate pair. */
static int decode_u(const unsigned char **pp, const unsigned char *e, char **dp) {
  const unsigned char *p = *pp;
  long cp = pc_hex4(p + 2);
  if (cp < 0) return PC_EJSON;
  p += 6;
  if (cp >= 0xDC00 && cp <= 0xDFFF) return PC_EUTF8; /* lone low surrogate */
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (e - p < 6 || p[0] != '\\' || p[1] != 'u') return PC_EUTF8;
    long lo = pc_hex4(p + 2);
    if (lo < 0) return PC_EJSON;
    if (lo < 0xDC00 || lo > 0xDFFF) return PC_EUTF8;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    p += 6;
  }
  *dp = pc_utf8_put(*dp, (unsigned long)cp);
  *pp = p;
  return 0;
}

/* One escape at *pp (the backslash), unescaped into *dp. */
static int decode_escape(const unsigned char **pp, const unsigned char *e, char **dp) {
  const unsigned char *p = *pp;
  if (e - p < 2) return PC_EJSON;
  if (p[1] == 'u') return e - p < 6 ? PC_EJSON : decode_u(pp, e, dp);
  int c = pc_json_escape_byte(p[1]);
  if (c < 0) return PC_EJSON;
  *(*dp)++ = (char)c;
  *pp = p + 2;
  return 0;
}

/* The canonical escape of a byte that needs one, at d; returns the new end. */
static char *put_escape(char *d, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  *d++ = '\\';
  if (c >= 0x20) {
    *d++ = (char)c; /* `"` or `\` */
  } else if (pc_json_short_escape(c)) {
    *d++ = pc_json_short_escape(c);
  } else {
    memcpy(d, "u00", 3);
    d[3] = hex[c >> 4];
    d[4] = hex[c & 15];
    d += 5;
  }
  return d;
}

static int needs_escape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

/* Copy the plain run at *pp to *dp, stopping at the next special byte (see
 * pc_json_plain_end) or e. Whole 16-byte vectors are stored: callers guarantee the
 * destination never gets ahead of the source and has room for the rest of the
 * source, so the stores stay in bounds. */
static void copy_plain(const unsigned char **pp, const unsigned char *e, char **dp) {
  const unsigned char *p = *pp;
  char *d = *dp;
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(0x20);
  while (e - p >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)), _mm_cmplt_epi8(v, space));
    _mm_storeu_si128((__m128i *)(void *)d, v);
    int mask = _mm_movemask_epi8(m);
    if (mask) {
      int k = __builtin_ctz((unsigned)mask);
      *pp = p + k;
      *dp = d + k;
      return;
    }
    p += 16;
    d += 16;
  }
#endif
  while (p < e && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80) *d++ = (char)*p++;
  *pp = p;
  *dp = d;
}

/* Validate a string body from p up to its closing quote (*q) and write it to
 * dst either unescaped (to compare keys) or re-escaped canonically (values:
 * then the writer only copies it). Neither form is longer than the input text,
 * so dst needs room for the rest of the input from p (see copy_plain). */
static int decode_str(const unsigned char *p, const unsigned char *e, char *dst, int canonical, size_t *dlen,
                      const unsigned char **q) {
  char *d = dst;
  for (;;) {
    copy_plain(&p, e, &d);
    if (p == e) return PC_EJSON;
    unsigned char c = *p;
    if (c >= 0x80) {
      const unsigned char *n = utf8_next(p, e);
      if (!n) return PC_EUTF8;
      while (p < n) *d++ = (char)*p++;
      continue;
    }
    if (c == '"') break;
    if (c < 0x20) return PC_EJSON;
    char *at = d;
    int rc = decode_escape(&p, e, &d);
    if (rc) return rc;
    if (canonical && d - at == 1 && needs_escape((unsigned char)*at)) d = put_escape(at, (unsigned char)*at);
  }
  *dlen = (size_t)(d - dst);
  *q = p;
  return 0;
}

/* ---------- numbers ---------- */

/* Exponents are accumulated up to here and no further: any larger one already
 * means infinity or zero for every mantissa an input of < 4 GiB can hold, and
 * the sum with the fraction-digit count cannot overflow. */
#define EXP_CLAMP 1000000000000000LL

/* The double for number text s[0..n) (JSON grammar; a `+` exponent sign is
 * accepted too, for snprintf output). strtod's decimal point depends on
 * LC_NUMERIC, so strtod only ever sees "[-]DIGITSeEXP". */
static int num_value(const char *s, size_t n, double *out) {
  const char *p = s, *e = s + n;
  int neg = p < e && *p == '-';
  char small[128];
  char *buf = n + 32 <= sizeof small ? small : malloc(n + 32);
  if (!buf) return PC_ENOMEM;
  size_t k = 0;
  long long shift = 0; /* fraction digits seen: each divides by ten */
  int in_frac = 0;
  if (neg) buf[k++] = *p++;
  size_t lead = k;
  for (; p < e && ((*p >= '0' && *p <= '9') || *p == '.'); p++) {
    if (*p == '.') {
      in_frac = 1;
      continue;
    }
    shift += in_frac;
    if (k == lead && *p == '0') continue; /* leading zeros carry no value */
    buf[k++] = *p;
  }
  long long exp = 0;
  if (p < e && (*p == 'e' || *p == 'E')) {
    int eneg = ++p < e && *p == '-';
    if (p < e && (*p == '+' || *p == '-')) p++;
    for (; p < e; p++)
      if (exp < EXP_CLAMP) exp = exp * 10 + (*p - '0');
    if (eneg) exp = -exp;
  }
  if (k == lead) {
    *out = neg ? -0.0 : 0.0;
  } else {
    snprintf(buf + k, n + 32 - k, "e%lld", exp - shift);
    *out = strtod(buf, NULL);
  }
  if (buf != small) free(buf);
  return 0;
}

/* Strict JSON number grammar from p; *q is the first byte after it. */
static int scan_number(const char *p, const char *e, const char **q, int *intlit) {
  if (p < e && *p == '-') p++;
  if (p == e) return PC_EJSON;
  if (*p == '0') {
    p++;
  } else if (*p >= '1' && *p <= '9') {
    while (p < e && *p >= '0' && *p <= '9') p++;
  } else {
    return PC_EJSON;
  }
  *intlit = 1;
  if (p < e && *p == '.') {
    if (++p == e || *p < '0' || *p > '9') return PC_EJSON;
    while (p < e && *p >= '0' && *p <= '9') p++;
    *intlit = 0;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    if (++p < e && (*p == '+' || *p == '-')) p++;
    if (p == e || *p < '0' || *p > '9') return PC_EJSON;
    while (p < e && *p >= '0' && *p <= '9') p++;
    *intlit = 0;
  }
  *q = p;
  return 0;
}

/* snprintf "%g" text → canonical spelling: the locale's decimal point becomes
 * `.`, the exponent loses its `+` and leading zeros. Returns the length. */
static size_t normalize_g(const char *s, char *d) {
  size_t n = 0;
  int dot = 0;
  while (*s) {
    char c = *s++;
    if (c == 'e') {
      d[n++] = 'e';
      if (*s == '+')
        s++;
      else if (*s == '-')
        d[n++] = *s++;
      while (*s == '0' && s[1]) s++;
    } else if ((c >= '0' && c <= '9') || c == '-') {
      d[n++] = c;
    } else if (!dot) { /* the decimal point, possibly several bytes long */
      d[n++] = '.';
      dot = 1;
    }
  }
  d[n] = '\0';
  return n;
}

/* Canonical spelling of a finite double (see the rule at the top). dst holds
 * at least 40 bytes. */
static int fmt_double(double v, char *dst, size_t *n) {
  if (v >= -MAX_SAFE_INT && v <= MAX_SAFE_INT && v == (double)(long long)v) {
    *n = (size_t)snprintf(dst, 40, "%lld", (long long)v); /* -0.0 gives "0" */
    return 0;
  }
  char raw[48];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(raw, sizeof raw, "%.*g", prec, v);
    *n = normalize_g(raw, dst);
    double back;
    int rc = num_value(dst, *n, &back);
    if (rc) return rc;
    if (back == v) break; /* %.17g always round-trips */
  }
  return 0;
}

/* ---------- the node array ---------- */

static int new_node(struct parser *ps, enum node_type type, uint32_t *idx) {
  if (ps->n_nodes == ps->cap_nodes) {
    if (ps->cap_nodes > UINT32_MAX / 2) return PC_ETOOBIG;
    uint32_t cap = ps->cap_nodes ? ps->cap_nodes * 2 : 64;
    struct node *nn = realloc(ps->nodes, (size_t)cap * sizeof *nn);
    if (!nn) return PC_ENOMEM;
    ps->nodes = nn;
    ps->cap_nodes = cap;
  }
  struct node *n = &ps->nodes[ps->n_nodes];
  memset(n, 0, sizeof *n);
  n->type = (uint8_t)type;
  *idx = ps->n_nodes++;
  return 0;
}

/* Array elements are linked as they come; object values need no link (value =
 * key + 1) and object keys are linked once sorted. */
static void link_child(struct parser *ps, uint32_t idx) {
  if (ps->depth == 0) return;
  struct frame *f = &ps->stack[ps->depth - 1];
  if (f->obj) return;
  if (f->last)
    ps->nodes[f->last].next = idx;
  else
    ps->nodes[f->node].u.first = idx;
  f->last = idx;
}

static const char *str_ptr(const struct parser *ps, const struct node *n) {
  return (n->flags & F_SCRATCH ? ps->scratch : ps->in) + n->u.s.off;
}

/* ---------- parsing ---------- */

/* The scratch area receives strings that must be rewritten. It is sized to
 * the rest of the input the first time: rewriting never makes text longer, so
 * every later string fits, it never moves, and member keys can point into it. */
static int ensure_scratch(struct parser *ps, const unsigned char *from) {
  if (ps->scratch_used) return 0;
  size_t need = (size_t)(ps->end - (const char *)from) + 1;
  if (need > ps->scratch_cap) {
    char *s = realloc(ps->scratch, need);
    if (!s) return PC_ENOMEM;
    ps->scratch = s;
    ps->scratch_cap = need;
  }
  ps->scratch_used = 1;
  ps->scratch_len = 0;
  return 0;
}

/* A key with escapes is unescaped from its start (s); a value keeps its
 * already-canonical prefix [s, stop) and is re-escaped from stop on. */
static int rewrite_string(struct parser *ps, const unsigned char *s, const unsigned char *stop, int is_key,
                          struct node *n) {
  int rc = ensure_scratch(ps, s);
  if (rc) return rc;
  char *d = ps->scratch + ps->scratch_len;
  size_t keep = is_key ? 0 : (size_t)(stop - s);
  memcpy(d, s, keep);
  size_t dlen;
  const unsigned char *q;
  rc = decode_str(s + keep, (const unsigned char *)ps->end, d + keep, !is_key, &dlen, &q);
  if (rc) return rc;
  n->flags = is_key ? F_SCRATCH : F_SCRATCH | F_ESCAPED;
  n->u.s.off = (uint32_t)ps->scratch_len;
  n->u.s.len = (uint32_t)(keep + dlen);
  ps->scratch_len += keep + dlen;
  ps->p = (const char *)q + 1;
  return 0;
}

/* A string at ps->p (its opening quote) into node idx. Keys are unescaped
 * (they are compared); values are kept as canonical escaped text, straight
 * from the input when it already is. */
static int parse_string(struct parser *ps, uint32_t idx, int is_key) {
  const unsigned char *s = (const unsigned char *)ps->p + 1;
  const unsigned char *q;
  int esc;
  int rc = scan_str(s, (const unsigned char *)ps->end, &q, &esc);
  if (rc) return rc;
  struct node *n = &ps->nodes[idx];
  if (esc == ESC_DECODE || (esc == ESC_CANONICAL && is_key)) return rewrite_string(ps, s, q, is_key, n);
  n->flags = esc == ESC_CANONICAL ? F_ESCAPED : 0;
  n->u.s.off = (uint32_t)((const char *)s - ps->in);
  n->u.s.len = (uint32_t)(q - s);
  ps->p = (const char *)q + 1;
  return 0;
}

static int parse_number(struct parser *ps, uint32_t idx) {
  const char *q;
  int intlit;
  int rc = scan_number(ps->p, ps->end, &q, &intlit);
  if (rc) return rc;
  struct node *n = &ps->nodes[idx];
  if (intlit) {
    n->flags = F_INTLIT;
    n->u.s.off = (uint32_t)(ps->p - ps->in);
    n->u.s.len = (uint32_t)(q - ps->p);
  } else {
    double d;
    rc = num_value(ps->p, (size_t)(q - ps->p), &d);
    if (rc) return rc;
    if (isinf(d)) return PC_EJSON;
    n->u.d = d;
  }
  ps->p = q;
  return 0;
}

static int parse_literal(struct parser *ps, const char *word, size_t n, enum node_type type) {
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return PC_EJSON;
  uint32_t idx;
  int rc = new_node(ps, type, &idx);
  if (rc) return rc;
  link_child(ps, idx);
  ps->p += n;
  return 0;
}

static int open_container(struct parser *ps, enum node_type type) {
  if (ps->depth == PC_CANON_MAX_DEPTH) return PC_EDEPTH;
  uint32_t idx;
  int rc = new_node(ps, type, &idx);
  if (rc) return rc;
  link_child(ps, idx);
  struct frame *f = &ps->stack[ps->depth++];
  f->node = idx;
  f->last = 0;
  f->mbase = ps->n_mem;
  f->obj = type == T_OBJ;
  f->has_items = 0;
  ps->p++;
  return 0;
}

/* One value at ps->p. A container is only opened here; parse_step() reads
 * its contents, so nesting never recurses. */
static int parse_value(struct parser *ps) {
  skip_ws(ps);
  if (ps->p == ps->end) return PC_EJSON;
  switch (*ps->p) {
  case '{':
    return open_container(ps, T_OBJ);
  case '[':
    return open_container(ps, T_ARR);
  case 't':
    return parse_literal(ps, "true", 4, T_TRUE);
  case 'f':
    return parse_literal(ps, "false", 5, T_FALSE);
  case 'n':
    return parse_literal(ps, "null", 4, T_NULL);
  default:
    break;
  }
  int is_str = *ps->p == '"';
  uint32_t idx;
  int rc = new_node(ps, is_str ? T_STR : T_NUM, &idx);
  if (rc) return rc;
  link_child(ps, idx);
  return is_str ? parse_string(ps, idx, 0) : parse_number(ps, idx);
}

static int push_member(struct parser *ps, uint32_t idx) {
  if (ps->n_mem == ps->cap_mem) {
    size_t cap = ps->cap_mem ? ps->cap_mem * 2 : 32;
    struct member *m = realloc(ps->mem, cap * sizeof *m);
    if (!m) return PC_ENOMEM;
    ps->mem = m;
    ps->cap_mem = cap;
  }
  const struct node *n = &ps->nodes[idx];
  struct member *m = &ps->mem[ps->n_mem++];
  m->key = str_ptr(ps, n);
  m->klen = n->u.s.len;
  m->node = idx;
  return 0;
}

/* `"key": value` of the innermost open object. */
static int parse_member(struct parser *ps) {
  skip_ws(ps);
  if (ps->p == ps->end || *ps->p != '"') return PC_EJSON;
  uint32_t idx;
  int rc = new_node(ps, T_STR, &idx);
  if (!rc) rc = parse_string(ps, idx, 1);
  if (!rc) rc = push_member(ps, idx);
  if (rc) return rc;
  skip_ws(ps);
  if (ps->p == ps->end || *ps->p != ':') return PC_EJSON;
  ps->p++;
  return parse_value(ps);
}

/* ---------- object members: sort, duplicates, links ---------- */

/* memcmp order; a proper prefix sorts first. */
static int key_cmp(const struct member *a, const struct member *b) {
  uint32_t n = a->klen < b->klen ? a->klen : b->klen;
  int c = n ? memcmp(a->key, b->key, n) : 0;
  if (c) return c;
  return (a->klen > b->klen) - (a->klen < b->klen);
}

static void insertion_sort(struct member *m, size_t n) {
  for (size_t i = 1; i < n; i++) {
    struct member x = m[i];
    size_t j = i;
    for (; j > 0 && key_cmp(&m[j - 1], &x) > 0; j--) m[j] = m[j - 1];
    m[j] = x;
  }
}

static void merge(const struct member *a, size_t na, const struct member *b, size_t nb, struct member *d) {
  size_t i = 0, j = 0;
  while (i < na && j < nb) *d++ = key_cmp(&b[j], &a[i]) < 0 ? b[j++] : a[i++];
  while (i < na) *d++ = a[i++];
  while (j < nb) *d++ = b[j++];
}

#define SORT_RUN 16 /* below this, insertion sort beats merging */

/* Bottom-up merge sort of large objects (qsort has no context argument in
 * C11, and this keeps the worst case O(n log n) without recursion). */
static int merge_sort(struct parser *ps, struct member *m, size_t n) {
  if (ps->cap_tmp < n) {
    struct member *t = realloc(ps->tmp, n * sizeof *t);
    if (!t) return PC_ENOMEM;
    ps->tmp = t;
    ps->cap_tmp = n;
  }
  for (size_t i = 0; i < n; i += SORT_RUN) insertion_sort(m + i, n - i < SORT_RUN ? n - i : SORT_RUN);
  struct member *src = m, *dst = ps->tmp;
  for (size_t w = SORT_RUN; w < n; w *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      merge(src + lo, mid - lo, src + mid, hi - mid, dst + lo);
    }
    struct member *t = src;
    src = dst;
    dst = t;
  }
  if (src != m) memcpy(m, src, n * sizeof *m);
  return 0;
}

/* The object's members are the top of the member stack: sort them (unless
 * already strictly sorted, the common case), reject duplicates, link them. */
static int close_object(struct parser *ps, const struct frame *f) {
  size_t n = ps->n_mem - f->mbase;
  if (n == 0) return 0; /* u.first is already 0; the member stack may not exist yet */
  struct member *m = ps->mem + f->mbase;
  size_t i = 1;
  while (i < n && key_cmp(&m[i - 1], &m[i]) < 0) i++;
  if (i < n) {
    if (n <= SORT_RUN)
      insertion_sort(m, n);
    else if (merge_sort(ps, m, n))
      return PC_ENOMEM;
    for (i = 1; i < n; i++)
      if (key_cmp(&m[i - 1], &m[i]) == 0) return PC_EDUPKEY;
  }
  struct node *nodes = ps->nodes;
  nodes[f->node].u.first = m[0].node;
  for (i = 0; i + 1 < n; i++) nodes[m[i].node].next = m[i + 1].node;
  nodes[m[n - 1].node].next = 0;
  ps->n_mem = f->mbase;
  return 0;
}

/* Inside the innermost open container: its closing bracket, or the next
 * element / member (after a comma unless it is the first). */
static int parse_step(struct parser *ps) {
  struct frame *f = &ps->stack[ps->depth - 1];
  skip_ws(ps);
  if (ps->p == ps->end) return PC_EJSON;
  char c = *ps->p;
  if (c == (f->obj ? '}' : ']')) {
    ps->p++;
    int rc = f->obj ? close_object(ps, f) : 0;
    ps->depth--;
    return rc;
  }
  if (f->has_items) {
    if (c != ',') return PC_EJSON;
    ps->p++;
  }
  f->has_items = 1;
  return f->obj ? parse_member(ps) : parse_value(ps);
}

static int parse_doc(struct parser *ps) {
  int rc = parse_value(ps);
  while (!rc && ps->depth > 0) rc = parse_step(ps);
  if (rc) return rc;
  skip_ws(ps);
  return ps->p == ps->end ? 0 : PC_EJSON;
}

/* ---------- ignore pointers (RFC 6901) ---------- */

/* A pointer is usable if it starts with `/` and every `~` is `~0` or `~1`.
 * The empty pointer (the whole document) is treated as invalid: removing the
 * whole body is never what --ignore-field means. */
static int pointer_valid(const char *p) {
  if (!p || p[0] != '/') return 0;
  for (; *p; p++)
    if (*p == '~' && p[1] != '0' && p[1] != '1') return 0;
  return 1;
}

/* Does the unescaped key equal reference token tok[0..n) (~1 → /, ~0 → ~)? */
static int token_eq(const char *key, size_t klen, const char *tok, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++, k++) {
    char c = tok[i];
    if (c == '~') c = tok[++i] == '1' ? '/' : '~';
    if (k >= klen || key[k] != c) return 0;
  }
  return k == klen;
}

/* Array index token: "0" or digits without a leading zero ("-" matches nothing). */
static int token_index(const char *tok, size_t n, uint64_t *idx) {
  if (n == 0 || (n > 1 && tok[0] == '0')) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (tok[i] < '0' || tok[i] > '9' || v > (UINT64_MAX - 9) / 10) return 0;
    v = v * 10 + (uint64_t)(tok[i] - '0');
  }
  *idx = v;
  return 1;
}

/* The child of container `cur` a token names (the key node for an object
 * member), or 0. Ignored siblings still count, so indexes always refer to the
 * original document whatever order the pointers are applied in. */
static uint32_t find_child(const struct parser *ps, uint32_t cur, const char *tok, size_t n) {
  const struct node *c = &ps->nodes[cur];
  if (c->type == T_OBJ) {
    for (uint32_t k = c->u.first; k; k = ps->nodes[k].next) {
      const struct node *kn = &ps->nodes[k];
      if (token_eq(str_ptr(ps, kn), kn->u.s.len, tok, n)) return k;
    }
  } else if (c->type == T_ARR) {
    uint64_t want;
    if (!token_index(tok, n, &want)) return 0;
    for (uint32_t k = c->u.first; k; k = ps->nodes[k].next)
      if (want-- == 0) return k;
  }
  return 0;
}

static void apply_pointer(struct parser *ps, const char *ptr) {
  if (!pointer_valid(ptr)) return;
  uint32_t cur = 0;
  const char *tok = ptr + 1;
  for (;;) {
    const char *end = strchr(tok, '/');
    size_t n = end ? (size_t)(end - tok) : strlen(tok);
    uint32_t child = find_child(ps, cur, tok, n);
    if (!child) return;
    if (!end) {
      ps->nodes[child].flags |= F_IGNORED;
      return;
    }
    cur = ps->nodes[cur].type == T_OBJ ? child + 1 : child;
    tok = end + 1;
  }
}

/* ---------- info ---------- */

static int key_is(const struct parser *ps, const struct node *k, const char *name, size_t n) {
  return k->u.s.len == n && memcmp(str_ptr(ps, k), name, n) == 0;
}

/* The model name, unescaped, truncated on a UTF-8 boundary to fit. */
static int copy_model(const struct parser *ps, const struct node *v, char *dst, size_t cap) {
  const char *s = str_ptr(ps, v);
  size_t n = v->u.s.len;
  char *tmp = NULL;
  if (v->flags & F_ESCAPED) { /* kept escaped for the writer: unescape a copy */
    const unsigned char *q;
    tmp = malloc(2 * n + 2); /* the text and its closing quote, then room to decode */
    if (!tmp) return PC_ENOMEM;
    memcpy(tmp, s, n);
    tmp[n] = '"'; /* the decoder stops at the closing quote */
    const unsigned char *u = (const unsigned char *)tmp;
    s = tmp + n + 1;
    if (decode_str(u, u + n + 1, tmp + n + 1, 0, &n, &q)) n = 0; /* cannot fail: validated */
  }
  size_t k = n < cap - 1 ? n : cap - 1;
  while (k > 0 && k < n && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
  memcpy(dst, s, k);
  dst[k] = '\0';
  free(tmp);
  return 0;
}

/* From the parsed document before ignore pointers are applied. */
static int fill_info(const struct parser *ps, struct pc_canon_info *info) {
  const struct node *root = &ps->nodes[0];
  info->is_object = root->type == T_OBJ;
  if (!info->is_object) return 0;
  for (uint32_t k = root->u.first; k; k = ps->nodes[k].next) {
    const struct node *key = &ps->nodes[k], *val = &ps->nodes[k + 1];
    if (key_is(ps, key, "stream", 6)) {
      info->stream = val->type == T_TRUE;
      info->stream_field = val->type == T_TRUE ? 1 : val->type == T_FALSE ? 0 : -1;
    } else if (key_is(ps, key, "model", 5) && val->type == T_STR) {
      int rc = copy_model(ps, val, info->model, sizeof info->model);
      if (rc) return rc;
    }
  }
  return 0;
}

/* ---------- writing ---------- */

/* Room for n more bytes. The output is written straight into the buffer's
 * storage (pc_buf_append per token would cost a call and a NUL per token);
 * the terminating NUL is added once at the end. */
static int room(pc_buf *b, size_t n) {
  if (b->cap - b->len > n) return 0;
  return pc_buf_reserve(b, n);
}

static int out_mem(pc_buf *b, const void *p, size_t n) {
  int rc = room(b, n);
  if (rc) return rc;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static int out_byte(pc_buf *b, char c) {
  int rc = room(b, 1);
  if (rc) return rc;
  b->data[b->len++] = c;
  return 0;
}

static size_t escaped_len(const unsigned char *s, size_t n) {
  size_t len = n;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (needs_escape(c)) len += c >= 0x20 || pc_json_short_escape(c) ? 1 : 5;
  }
  return len;
}

/* Unescaped bytes → minimal escapes (only keys take this path; they are short). */
static char *put_escaped(char *d, const unsigned char *s, size_t n) {
  const unsigned char *run = s, *e = s + n;
  for (const unsigned char *p = s; p < e; p++) {
    if (!needs_escape(*p)) continue;
    memcpy(d, run, (size_t)(p - run));
    d = put_escape(d + (p - run), *p);
    run = p + 1;
  }
  memcpy(d, run, (size_t)(e - run));
  return d + (e - run);
}

/* Escaped text and raw input without escapes are copied verbatim; unescaped
 * scratch text (keys) is escaped again. */
static int write_string(const struct parser *ps, const struct node *n, pc_buf *b) {
  const unsigned char *s = (const unsigned char *)str_ptr(ps, n);
  size_t len = n->u.s.len;
  int unescaped = (n->flags & (F_SCRATCH | F_ESCAPED)) == F_SCRATCH;
  size_t need = (unescaped ? escaped_len(s, len) : len) + 2;
  int rc = room(b, need);
  if (rc) return rc;
  char *d = b->data + b->len;
  *d++ = '"';
  if (unescaped) {
    d = put_escaped(d, s, len);
  } else {
    memcpy(d, s, len);
    d += len;
  }
  *d++ = '"';
  b->len += need;
  return 0;
}

static int write_number(const struct parser *ps, const struct node *n, pc_buf *b) {
  if (n->flags & F_INTLIT) {
    const char *s = ps->in + n->u.s.off;
    size_t len = n->u.s.len;
    if (len == 2 && s[0] == '-' && s[1] == '0') return out_byte(b, '0');
    return out_mem(b, s, len);
  }
  char text[40];
  size_t len;
  int rc = fmt_double(n->u.d, text, &len);
  return rc ? rc : out_mem(b, text, len);
}

struct wframe {
  uint32_t child; /* next child to write (member key for objects) */
  uint8_t obj;
  uint8_t first;
};

/* A scalar, or the opening bracket of a container (pushed on the stack). */
static int write_value(const struct parser *ps, uint32_t idx, pc_buf *b, struct wframe *st, int *depth) {
  const struct node *n = &ps->nodes[idx];
  switch (n->type) {
  case T_NULL:
    return out_mem(b, "null", 4);
  case T_FALSE:
    return out_mem(b, "false", 5);
  case T_TRUE:
    return out_mem(b, "true", 4);
  case T_NUM:
    return write_number(ps, n, b);
  case T_STR:
    return write_string(ps, n, b);
  default:
    break;
  }
  struct wframe *f = &st[(*depth)++];
  f->child = n->u.first;
  f->obj = n->type == T_OBJ;
  f->first = 1;
  return out_byte(b, f->obj ? '{' : '[');
}

static int write_doc(const struct parser *ps, pc_buf *b) {
  struct wframe st[PC_CANON_MAX_DEPTH]; /* the parser bounded the depth */
  int depth = 0;
  int rc = write_value(ps, 0, b, st, &depth);
  while (!rc && depth > 0) {
    struct wframe *f = &st[depth - 1];
    uint32_t c = f->child;
    while (c && (ps->nodes[c].flags & F_IGNORED)) c = ps->nodes[c].next;
    if (!c) {
      rc = out_byte(b, f->obj ? '}' : ']');
      depth--;
      continue;
    }
    f->child = ps->nodes[c].next;
    if (!f->first) rc = out_byte(b, ',');
    f->first = 0;
    if (!rc && f->obj) {
      rc = write_string(ps, &ps->nodes[c], b);
      if (!rc) rc = out_byte(b, ':');
      c++; /* the member's value */
    }
    if (!rc) rc = write_value(ps, c, b, st, &depth);
  }
  return rc;
}

/* ---------- entry point ---------- */

/* The arrays a parse needs are kept per thread between calls (a 1 KB body
 * is parsed in about a microsecond: four mallocs and frees would be a good
 * part of it); anything grown past KEEP_BYTES is released instead. */
#define KEEP_BYTES ((size_t)1 << 20)
void pc_canon_thread_done(void);

static __thread struct {
  struct node *nodes;
  uint32_t cap_nodes;
  char *scratch;
  size_t scratch_cap;
  struct member *mem, *tmp;
  size_t cap_mem, cap_tmp;
} kept;

static void parser_free(struct parser *ps) {
  if ((size_t)ps->cap_nodes * sizeof *ps->nodes > KEEP_BYTES) {
    free(ps->nodes);
    ps->nodes = NULL;
    ps->cap_nodes = 0;
  }
  if (ps->scratch_cap > KEEP_BYTES) {
    free(ps->scratch);
    ps->scratch = NULL;
    ps->scratch_cap = 0;
  }
  if (ps->cap_mem * sizeof *ps->mem > KEEP_BYTES) {
    free(ps->mem);
    ps->mem = NULL;
    ps->cap_mem = 0;
  }
  if (ps->cap_tmp * sizeof *ps->tmp > KEEP_BYTES) {
    free(ps->tmp);
    ps->tmp = NULL;
    ps->cap_tmp = 0;
  }
  pc_canon_thread_done(); /* normally empty: only a nested parse could have refilled it */
  kept.nodes = ps->nodes;
  kept.cap_nodes = ps->cap_nodes;
  kept.scratch = ps->scratch;
  kept.scratch_cap = ps->scratch_cap;
  kept.mem = ps->mem;
  kept.cap_mem = ps->cap_mem;
  kept.tmp = ps->tmp;
  kept.cap_tmp = ps->cap_tmp;
}

void pc_canon_thread_done(void) {
  free(kept.nodes);
  free(kept.scratch);
  free(kept.mem);
  free(kept.tmp);
  memset(&kept, 0, sizeof kept);
}

static int parser_init(struct parser *ps, const char *in, size_t len) {
  ps->in = ps->p = in;
  ps->end = in + len;
  ps->scratch = kept.scratch;
  ps->scratch_cap = kept.scratch_cap;
  ps->scratch_len = 0;
  ps->scratch_used = 0;
  ps->mem = kept.mem;
  ps->cap_mem = kept.cap_mem;
  ps->tmp = kept.tmp;
  ps->cap_tmp = kept.cap_tmp;
  ps->n_mem = 0;
  ps->depth = 0;
  ps->n_nodes = 0;
  ps->nodes = kept.nodes;
  ps->cap_nodes = kept.cap_nodes;
  memset(&kept, 0, sizeof kept); /* this parse owns them now */
  /* Chat bodies are mostly long strings: about one node per 64 bytes is a
   * fair first guess; the array doubles when it is not. */
  uint32_t want = (uint32_t)(len / 64 + 64);
  if (ps->cap_nodes >= want) return 0;
  struct node *nn = realloc(ps->nodes, (size_t)want * sizeof *nn);
  if (!nn) return PC_ENOMEM;
  ps->nodes = nn;
  ps->cap_nodes = want;
  return 0;
}

int pc_canon_json(const char *in, size_t len, const char *const *ignore, size_t n_ignore, pc_buf *out,
                  struct pc_canon_info *info) {
  if (info) {
    memset(info, 0, sizeof *info);
    info->stream_field = -1;
  }
  if (!out || (!in && len)) return PC_EINVAL;
  if (len >= UINT32_MAX) return PC_ETOOBIG; /* offsets in nodes are 32-bit */
  struct parser ps;
  int rc = parser_init(&ps, in ? in : "", len);
  if (!rc) rc = parse_doc(&ps);
  if (!rc && info) rc = fill_info(&ps, info);
  for (size_t i = 0; !rc && ignore && i < n_ignore; i++) apply_pointer(&ps, ignore[i]);
  if (!rc) {
    /* The output is rarely longer than the input: one allocation up front
     * (an error here resurfaces, correctly, at the first write). */
    size_t left = out->max - out->len;
    (void)pc_buf_reserve(out, len < left ? len : left);
    rc = write_doc(&ps, out);
  }
  if (out->data) out->data[out->len] = '\0';
  parser_free(&ps);
  return rc;
}
