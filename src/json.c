/* json.c — a small strict JSON DOM (see json.h): parse into an arena-owned
 * tree, look values up by name or RFC 6901 pointer, write compact or indented
 * text, and diff two documents for replay-miss explanations.
 *
 * What must stay true:
 *  - Parsing is iterative with an explicit stack bounded by PC_JSON_MAX_DEPTH,
 *    so hostile nesting ends in PC_EDEPTH, never a stack overflow. Finished
 *    values wait on a temporary "slot" stack; when a container closes, its
 *    children are copied into one contiguous arena array (kids/keys/key_lens).
 *  - Every byte of a document (nodes, strings, number literals) lives in the
 *    document's arena: a short list of blocks that double in size, freed at
 *    once by pc_json_free. Only the slot stack is malloc'd, and it is freed
 *    before pc_json_parse returns.
 *  - Strings are validated as strict UTF-8 (no overlongs, surrogates or code
 *    points above U+10FFFF); escapes are decoded, \u surrogate pairs joined,
 *    lone surrogates refused with PC_EUTF8.
 *  - Numbers keep their literal text; `num` is strtod of it. strtod follows
 *    LC_NUMERIC, which is "C" because promptcache never calls setlocale.
 *  - Writers and the diff recurse, but only as deep as a parsed document can
 *    be (a guard returns PC_EDEPTH for deeper hand-built trees or cycles).
 *  - No mutable globals: every function is safe to call from any thread on
 *    distinct documents (and concurrently on one document for read-only use). */
#include "json.h"
#include "utf8.h"

#include <math.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---------- arena ---------- */

#define ARENA_MIN_BLOCK ((size_t)4096)
#define ARENA_MAX_STEP ((size_t)1 << 28) /* growth stops doubling here */
#define ARENA_ALIGN (alignof(max_align_t))

struct block {
  struct block *next;
  size_t cap;
  size_t used;
  max_align_t data[]; /* aligned storage, cap bytes */
};

struct pc_json_doc {
  struct pc_json root;
  struct block *blocks; /* newest first */
  size_t next_size;     /* size of the next block to allocate */
};

static void *arena_alloc(struct pc_json_doc *doc, size_t n) {
  if (n > SIZE_MAX - ARENA_ALIGN) return NULL;
  n = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  struct block *b = doc->blocks;
  if (!b || b->cap - b->used < n) {
    size_t size = doc->next_size > n ? doc->next_size : n;
    if (size > SIZE_MAX - sizeof(struct block)) return NULL;
    b = malloc(sizeof(struct block) + size);
    if (!b) return NULL;
    b->cap = size;
    b->used = 0;
    b->next = doc->blocks;
    doc->blocks = b;
    if (doc->next_size < ARENA_MAX_STEP) doc->next_size *= 2;
  }
  void *p = (char *)b->data + b->used;
  b->used += n;
  return p;
}

void pc_json_free(struct pc_json_doc *doc) {
  if (!doc) return;
  struct block *b = doc->blocks;
  while (b) {
    struct block *next = b->next;
    free(b);
    b = next;
  }
  free(doc);
}

const struct pc_json *pc_json_root(const struct pc_json_doc *doc) { return doc ? &doc->root : NULL; }

/* ---------- parser state ---------- */

/* A finished value waiting for its container to close. */
struct slot {
  struct pc_json v;
  const char *key; /* member name when the container is an object */
  size_t klen;
};

struct frame {
  enum pc_json_type type; /* PC_JSON_ARRAY or PC_JSON_OBJECT */
  size_t start;           /* first slot of this container's children */
  const char *key;        /* objects: name of the member whose value comes next */
  size_t klen;
};

struct parser {
  const unsigned char *s, *p, *e; /* start, cursor, end */
  struct pc_json_doc *doc;
  struct slot *slots;
  size_t n_slots, cap_slots;
  int depth;
  struct frame fr[PC_JSON_MAX_DEPTH];
};

static int fail(struct parser *ps, const unsigned char *at, int rc) {
  ps->p = at;
  return rc;
}

static void skip_ws(struct parser *ps) {
  const unsigned char *p = ps->p;
  while (p < ps->e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  ps->p = p;
}

/* Push a finished value; it becomes a child of the innermost open container
 * (taking that object's pending member name) or the root. */
static int push_value(struct parser *ps, const struct pc_json *v) {
  if (ps->n_slots == ps->cap_slots) {
    size_t cap = ps->cap_slots ? ps->cap_slots * 2 : 64;
    if (cap > SIZE_MAX / sizeof(struct slot)) return PC_ENOMEM;
    struct slot *s = realloc(ps->slots, cap * sizeof(struct slot));
    if (!s) return PC_ENOMEM;
    ps->slots = s;
    ps->cap_slots = cap;
  }
  struct slot *s = &ps->slots[ps->n_slots++];
  s->v = *v;
  s->key = NULL;
  s->klen = 0;
  if (ps->depth > 0) {
    struct frame *f = &ps->fr[ps->depth - 1];
    s->key = f->key;
    s->klen = f->klen;
    f->key = NULL;
  }
  return 0;
}

/* ---------- strings ---------- */

/* \uXXXX at ps->p (the backslash), possibly a surrogate pair; e is the closing quote. */
static int decode_u(struct parser *ps, const unsigned char *e, char **dp) {
  const unsigned char *p = ps->p;
  if (e - p < 6) return fail(ps, p, PC_EJSON);
  long cp = pc_hex4(p + 2);
  if (cp < 0) return fail(ps, p, PC_EJSON);
  if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(ps, p, PC_EUTF8);
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (e - p < 8 || p[6] != '\\' || p[7] != 'u') return fail(ps, p, PC_EUTF8);
    long lo = e - p < 12 ? -1 : pc_hex4(p + 8);
    if (lo < 0) return fail(ps, p + 6, PC_EJSON); /* a malformed escape is a syntax error */
    if (lo < 0xDC00 || lo > 0xDFFF) return fail(ps, p, PC_EUTF8);
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    p += 6;
  }
  *dp = pc_utf8_put(*dp, (unsigned long)cp);
  ps->p = p + 6;
  return 0;
}

static int decode_escape(struct parser *ps, const unsigned char *e, char **dp) {
  const unsigned char *p = ps->p;
  if (e - p < 2) return fail(ps, p, PC_EJSON);
  if (p[1] == 'u') return decode_u(ps, e, dp);
  int c = pc_json_escape_byte(p[1]);
  if (c < 0) return fail(ps, p, PC_EJSON);
  *(*dp)++ = (char)c;
  ps->p = p + 2;
  return 0;
}

/* Decode ps->p .. e (string body, e at the closing quote) into dst. */
static int decode_body(struct parser *ps, const unsigned char *e, char *dst, size_t *len) {
  char *d = dst;
  while (ps->p < e) {
    const unsigned char *p = ps->p;
    int rc;
    if (*p == '\\') {
      rc = decode_escape(ps, e, &d);
      if (rc) return rc;
    } else if (*p < 0x20) {
      return fail(ps, p, PC_EJSON);
    } else if (*p < 0x80) {
      *d++ = (char)*p;
      ps->p = p + 1;
    } else {
      size_t n = pc_utf8_seq(p, (size_t)(e - p));
      if (!n) return fail(ps, p, PC_EUTF8);
      memcpy(d, p, n);
      d += n;
      ps->p = p + n;
    }
  }
  *d = '\0';
  *len = (size_t)(d - dst);
  return 0;
}

/* A string without escapes (the common case): its end in one pass, UTF-8
 * checked on the way, copied at once. Returns 0 with the string, 1 when the
 * general path must decide (an escape, a control byte, bad UTF-8, no end). */
static int plain_string(struct parser *ps, const char **out, size_t *len) {
  const unsigned char *p = ps->p + 1, *q = p, *e = ps->e;
  for (;;) {
    q = pc_json_plain_end(q, e);
    if (q >= e || *q == '\\' || *q < 0x20) return 1;
    if (*q == '"') break;
    size_t k = pc_utf8_seq(q, (size_t)(e - q));
    if (!k) return 1;
    q += k;
  }
  size_t n = (size_t)(q - p);
  char *dst = arena_alloc(ps->doc, n + 1);
  if (!dst) return PC_ENOMEM;
  memcpy(dst, p, n);
  dst[n] = '\0';
  *out = dst;
  *len = n;
  ps->p = q + 1;
  return 0;
}

/* String at ps->p (the opening quote) → arena copy, unescaped. Decoding never
 * grows the text, so the raw length bounds the allocation. An unterminated
 * string is still decoded so that the first error in reading order (say,
 * invalid UTF-8 before the end) is the one reported. */
static int parse_string(struct parser *ps, const char **out, size_t *len) {
  int fast = plain_string(ps, out, len);
  if (fast <= 0) return fast;
  const unsigned char *q = ps->p + 1;
  while (q < ps->e && *q != '"') q += (*q == '\\') ? 2 : 1;
  if (q > ps->e) q = ps->e; /* a final lone backslash */
  char *dst = arena_alloc(ps->doc, (size_t)(q - ps->p));
  if (!dst) return PC_ENOMEM;
  ps->p++;
  int rc = decode_body(ps, q, dst, len);
  if (rc) return rc;
  if (q == ps->e) return fail(ps, ps->e, PC_EJSON);
  ps->p = q + 1;
  *out = dst;
  return 0;
}

/* ---------- scalars ---------- */

static const unsigned char *skip_digits(const unsigned char *p, const unsigned char *e) {
  while (p < e && *p >= '0' && *p <= '9') p++;
  return p;
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int scan_number(struct parser *ps, const unsigned char **end) {
  const unsigned char *p = ps->p, *e = ps->e, *d;
  if (p < e && *p == '-') p++;
  if (p >= e || *p < '0' || *p > '9') return fail(ps, p, PC_EJSON);
  if (*p == '0') {
    p++;
    if (p < e && *p >= '0' && *p <= '9') return fail(ps, p, PC_EJSON); /* leading zero */
  } else {
    p = skip_digits(p, e);
  }
  if (p < e && *p == '.') {
    d = skip_digits(p + 1, e);
    if (d == p + 1) return fail(ps, d, PC_EJSON);
    p = d;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < e && (*p == '+' || *p == '-')) p++;
    d = skip_digits(p, e);
    if (d == p) return fail(ps, d, PC_EJSON);
    p = d;
  }
  *end = p;
  return 0;
}

static int parse_number(struct parser *ps) {
  const unsigned char *end;
  int rc = scan_number(ps, &end);
  if (rc) return rc;
  size_t n = (size_t)(end - ps->p);
  char *lit = arena_alloc(ps->doc, n + 1);
  if (!lit) return PC_ENOMEM;
  memcpy(lit, ps->p, n);
  lit[n] = '\0';
  struct pc_json v = {.type = PC_JSON_NUMBER, .len = n, .str = lit};
  v.num = strtod(lit, NULL);
  ps->p = end;
  return push_value(ps, &v);
}

static int parse_literal(struct parser *ps, const char *word, enum pc_json_type type) {
  size_t n = strlen(word);
  if ((size_t)(ps->e - ps->p) < n || memcmp(ps->p, word, n) != 0) return fail(ps, ps->p, PC_EJSON);
  ps->p += n;
  struct pc_json v = {.type = type};
  return push_value(ps, &v);
}

/* ---------- containers ---------- */

/* `"name" :` at ps->p, stored as the pending name of the innermost object. */
static int parse_key(struct parser *ps) {
  struct frame *f = &ps->fr[ps->depth - 1];
  if (ps->p >= ps->e || *ps->p != '"') return fail(ps, ps->p, PC_EJSON);
  int rc = parse_string(ps, &f->key, &f->klen);
  if (rc) return rc;
  skip_ws(ps);
  if (ps->p >= ps->e || *ps->p != ':') return fail(ps, ps->p, PC_EJSON);
  ps->p++;
  return 0;
}

/* Move the innermost container's children from the slot stack into arena
 * arrays and push the finished container as a value of its parent. */
static int close_container(struct parser *ps) {
  struct frame *f = &ps->fr[ps->depth - 1];
  size_t n = ps->n_slots - f->start;
  struct pc_json v = {.type = f->type, .len = n};
  const struct slot *s = n ? ps->slots + f->start : NULL; /* slots may still be NULL */
  if (n) {
    struct pc_json *kids = arena_alloc(ps->doc, n * sizeof *kids);
    if (!kids) return PC_ENOMEM;
    for (size_t i = 0; i < n; i++) kids[i] = s[i].v;
    v.kids = kids;
  }
  if (n && f->type == PC_JSON_OBJECT) {
    const char **keys = arena_alloc(ps->doc, n * sizeof *keys);
    size_t *lens = arena_alloc(ps->doc, n * sizeof *lens);
    if (!keys || !lens) return PC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
      keys[i] = s[i].key;
      lens[i] = s[i].klen;
    }
    v.keys = keys;
    v.key_lens = lens;
  }
  ps->n_slots = f->start;
  ps->depth--;
  return push_value(ps, &v);
}

/* `{` or `[` at ps->p. Sets *want_value when a member value must follow. */
static int open_container(struct parser *ps, enum pc_json_type type, int *want_value) {
  if (ps->depth == PC_JSON_MAX_DEPTH) return fail(ps, ps->p, PC_EDEPTH);
  struct frame *f = &ps->fr[ps->depth++];
  f->type = type;
  f->start = ps->n_slots;
  f->key = NULL;
  f->klen = 0;
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->e && *ps->p == (type == PC_JSON_OBJECT ? '}' : ']')) {
    ps->p++;
    *want_value = 0;
    return close_container(ps);
  }
  *want_value = 1;
  return type == PC_JSON_OBJECT ? parse_key(ps) : 0;
}

/* One value starting at ps->p (whitespace skipped). */
static int begin_value(struct parser *ps, int *want_value) {
  const char *s;
  size_t n;
  int rc;
  *want_value = 0;
  if (ps->p >= ps->e) return fail(ps, ps->p, PC_EJSON);
  switch (*ps->p) {
  case '{':
    return open_container(ps, PC_JSON_OBJECT, want_value);
  case '[':
    return open_container(ps, PC_JSON_ARRAY, want_value);
  case 't':
    return parse_literal(ps, "true", PC_JSON_TRUE);
  case 'f':
    return parse_literal(ps, "false", PC_JSON_FALSE);
  case 'n':
    return parse_literal(ps, "null", PC_JSON_NULL);
  case '"': {
    rc = parse_string(ps, &s, &n);
    if (rc) return rc;
    struct pc_json v = {.type = PC_JSON_STRING, .len = n, .str = s};
    return push_value(ps, &v);
  }
  default:
    if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps);
    return fail(ps, ps->p, PC_EJSON);
  }
}

/* After a value inside a container: `,` (then a key for objects) or the close. */
static int after_value(struct parser *ps, int *want_value) {
  const struct frame *f = &ps->fr[ps->depth - 1];
  char close = f->type == PC_JSON_OBJECT ? '}' : ']';
  if (ps->p >= ps->e) return fail(ps, ps->p, PC_EJSON);
  if (*ps->p == ',') {
    ps->p++;
    *want_value = 1;
    if (f->type != PC_JSON_OBJECT) return 0;
    skip_ws(ps);
    return parse_key(ps);
  }
  if (*ps->p != close) return fail(ps, ps->p, PC_EJSON);
  ps->p++;
  *want_value = 0;
  return close_container(ps);
}

static int parse_doc(struct parser *ps) {
  int want_value = 1;
  for (;;) {
    skip_ws(ps);
    int rc;
    if (want_value)
      rc = begin_value(ps, &want_value);
    else if (ps->depth > 0)
      rc = after_value(ps, &want_value);
    else
      break;
    if (rc) return rc;
  }
  if (ps->p != ps->e) return fail(ps, ps->p, PC_EJSON); /* trailing garbage */
  return 0;
}

int pc_json_parse(const char *text, size_t len, struct pc_json_doc **out, size_t *errpos) {
  struct parser ps;
  int rc;
  *out = NULL;
  if (!text && len) return PC_EINVAL;
  ps.s = ps.p = (const unsigned char *)(text ? text : "");
  ps.e = ps.s + len;
  ps.slots = NULL;
  ps.n_slots = ps.cap_slots = 0;
  ps.depth = 0;
  ps.doc = calloc(1, sizeof *ps.doc);
  if (!ps.doc) {
    rc = PC_ENOMEM;
    goto out;
  }
  ps.doc->next_size = len / 2 > ARENA_MIN_BLOCK ? len / 2 : ARENA_MIN_BLOCK;
  if (ps.doc->next_size > ARENA_MAX_STEP) ps.doc->next_size = ARENA_MAX_STEP;
  rc = parse_doc(&ps);
  if (rc) goto out;
  ps.doc->root = ps.slots[0].v;
  *out = ps.doc;
  ps.doc = NULL;
out:
  if (rc && errpos) *errpos = (size_t)(ps.p - ps.s);
  free(ps.slots);
  pc_json_free(ps.doc);
  return rc;
}

/* ---------- lookup ---------- */

static const struct pc_json *find_member(const struct pc_json *obj, const char *name, size_t n) {
  if (!obj || obj->type != PC_JSON_OBJECT) return NULL;
  for (size_t i = 0; i < obj->len; i++)
    if (obj->key_lens[i] == n && memcmp(obj->keys[i], name, n) == 0) return &obj->kids[i];
  return NULL;
}

const struct pc_json *pc_json_get(const struct pc_json *obj, const char *name) {
  if (!name) return NULL;
  return find_member(obj, name, strlen(name));
}

const char *pc_json_get_str(const struct pc_json *obj, const char *name, const char *fallback) {
  const struct pc_json *v = pc_json_get(obj, name);
  return v && v->type == PC_JSON_STRING ? v->str : fallback;
}

double pc_json_get_num(const struct pc_json *obj, const char *name, double fallback) {
  const struct pc_json *v = pc_json_get(obj, name);
  return v && v->type == PC_JSON_NUMBER ? v->num : fallback;
}

/* Unescape one pointer token (~0 → ~, ~1 → /) into dst (room for n bytes).
 * Returns the decoded length, or (size_t)-1 for a bad `~` escape. */
static size_t unescape_token(const char *tok, size_t n, char *dst) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (tok[i] != '~') {
      dst[o++] = tok[i];
      continue;
    }
    if (i + 1 >= n || (tok[i + 1] != '0' && tok[i + 1] != '1')) return (size_t)-1;
    dst[o++] = tok[++i] == '0' ? '~' : '/';
  }
  return o;
}

/* Decimal array index without leading zeros; "-" and anything else fail. */
static int token_index(const char *tok, size_t n, size_t *idx) {
  size_t v = 0;
  if (n == 0 || (n > 1 && tok[0] == '0')) return -1;
  for (size_t i = 0; i < n; i++) {
    if (tok[i] < '0' || tok[i] > '9') return -1;
    size_t d = (size_t)(tok[i] - '0');
    if (v > (SIZE_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *idx = v;
  return 0;
}

/* One step of a pointer walk: the child of v named by the raw token. */
static const struct pc_json *step(const struct pc_json *v, const char *tok, size_t n) {
  size_t idx;
  if (v->type == PC_JSON_ARRAY) {
    if (token_index(tok, n, &idx) || idx >= v->len) return NULL;
    return &v->kids[idx];
  }
  if (v->type != PC_JSON_OBJECT) return NULL;
  if (!memchr(tok, '~', n)) return find_member(v, tok, n);
  char small[256];
  char *dst = n <= sizeof small ? small : malloc(n);
  const struct pc_json *r = NULL;
  if (!dst) return NULL;
  size_t m = unescape_token(tok, n, dst);
  if (m != (size_t)-1) r = find_member(v, dst, m);
  if (dst != small) free(dst);
  return r;
}

const struct pc_json *pc_json_at(const struct pc_json *v, const char *pointer) {
  if (!v || !pointer) return NULL;
  const char *p = pointer;
  while (*p) {
    if (*p != '/') return NULL;
    p++;
    size_t n = strcspn(p, "/");
    v = step(v, p, n);
    if (!v) return NULL;
    p += n;
  }
  return v;
}

/* ---------- writing ---------- */

/* Output with an optional byte limit (for abbreviations): when the limit is
 * reached, what fits is appended and SINK_FULL stops the writer. */
#define SINK_FULL 1

struct sink {
  pc_buf *b;
  size_t limit;
};

static int put(struct sink *s, const void *p, size_t n) {
  size_t room = s->limit > s->b->len ? s->limit - s->b->len : 0;
  if (n <= room) return pc_buf_append(s->b, p, n);
  int rc = pc_buf_append(s->b, p, room);
  return rc ? rc : SINK_FULL;
}

static int putc1(struct sink *s, char c) { return put(s, &c, 1); }

static int put_escape(struct sink *s, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  char e[6] = {'\\', 0, '0', '0', 0, 0};
  if (c == '"' || c == '\\') {
    e[1] = (char)c;
    return put(s, e, 2);
  }
  e[1] = pc_json_short_escape(c);
  if (e[1]) return put(s, e, 2);
  e[1] = 'u';
  e[4] = hex[c >> 4];
  e[5] = hex[c & 15];
  return put(s, e, 6);
}

/* String content with minimal escapes, copying unescaped runs in bulk. */
static int put_body(struct sink *s, const char *str, size_t n) {
  const unsigned char *p = (const unsigned char *)str, *e = p + n;
  while (p < e) {
    const unsigned char *r = p;
    while (r < e && *r >= 0x20 && *r != '"' && *r != '\\') r++;
    int rc = put(s, p, (size_t)(r - p));
    if (rc) return rc;
    if (r == e) break;
    rc = put_escape(s, *r);
    if (rc) return rc;
    p = r + 1;
  }
  return 0;
}

static int put_string(struct sink *s, const char *str, size_t n) {
  int rc = putc1(s, '"');
  if (!rc) rc = put_body(s, str, n);
  if (!rc) rc = putc1(s, '"');
  return rc;
}

/* A number as written; hand-built numbers without a literal use %.17g. */
static int put_number(struct sink *s, const struct pc_json *v) {
  if (v->str) return put(s, v->str, v->len);
  if (!isfinite(v->num)) return put(s, "null", 4);
  char tmp[40];
  pc_buf t;
  pc_buf_init(&t, sizeof tmp);
  int rc = pc_buf_printf(&t, "%.17g", v->num);
  if (!rc) rc = put(s, t.data, t.len);
  pc_buf_free(&t);
  return rc;
}

/* indent < 0: compact. Otherwise newline + indent spaces per level. */
static int put_newline(struct sink *s, int indent, int level) {
  static const char spaces[] = "                                "; /* 32 */
  int rc = putc1(s, '\n');
  size_t n = (size_t)indent * (size_t)level;
  while (!rc && n) {
    size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
    rc = put(s, spaces, k);
    n -= k;
  }
  return rc;
}

static int put_value(struct sink *s, const struct pc_json *v, int indent, int level);

static int put_container(struct sink *s, const struct pc_json *v, int indent, int level) {
  int obj = v->type == PC_JSON_OBJECT;
  int rc = putc1(s, obj ? '{' : '[');
  for (size_t i = 0; !rc && i < v->len; i++) {
    if (i) rc = putc1(s, ',');
    if (!rc && indent >= 0) rc = put_newline(s, indent, level + 1);
    if (!rc && obj) rc = put_string(s, v->keys[i], v->key_lens[i]);
    if (!rc && obj) rc = indent >= 0 ? put(s, ": ", 2) : putc1(s, ':');
    if (!rc) rc = put_value(s, &v->kids[i], indent, level + 1);
  }
  if (!rc && v->len && indent >= 0) rc = put_newline(s, indent, level);
  if (!rc) rc = putc1(s, obj ? '}' : ']');
  return rc;
}

static int put_value(struct sink *s, const struct pc_json *v, int indent, int level) {
  if (level > PC_JSON_MAX_DEPTH) return PC_EDEPTH; /* deeper than any parsed document */
  switch (v->type) {
  case PC_JSON_NULL:
    return put(s, "null", 4);
  case PC_JSON_FALSE:
    return put(s, "false", 5);
  case PC_JSON_TRUE:
    return put(s, "true", 4);
  case PC_JSON_NUMBER:
    return put_number(s, v);
  case PC_JSON_STRING:
    return put_string(s, v->str, v->len);
  case PC_JSON_ARRAY:
  case PC_JSON_OBJECT:
    return put_container(s, v, indent, level);
  }
  return PC_EINVAL;
}

/* Public writers leave `out` as it was when they fail. */
static int write_all(const struct pc_json *v, pc_buf *out, int indent) {
  struct sink s = {out, SIZE_MAX};
  size_t mark = out->len;
  int rc = v ? put_value(&s, v, indent, 0) : PC_EINVAL;
  if (rc) {
    out->len = mark;
    if (out->data) out->data[mark] = '\0';
  }
  return rc;
}

int pc_json_write(const struct pc_json *v, pc_buf *out) { return write_all(v, out, -1); }

int pc_json_write_pretty(const struct pc_json *v, pc_buf *out, int indent) {
  if (indent < 0) return PC_EINVAL;
  return write_all(v, out, indent);
}

int pc_json_write_string(pc_buf *out, const char *s, size_t n) {
  struct sink k = {out, SIZE_MAX};
  size_t mark = out->len;
  int rc = put_string(&k, s, n);
  if (rc) {
    out->len = mark;
    if (out->data) out->data[mark] = '\0';
  }
  return rc;
}

int pc_json_write_text(pc_buf *out, const char *s, size_t n) {
  static const char repl[] = "\xEF\xBF\xBD"; /* U+FFFD */
  const unsigned char *p = (const unsigned char *)s;
  struct sink k = {out, SIZE_MAX};
  size_t mark = out->len, i = 0;
  int rc = putc1(&k, '"');
  while (!rc && i < n) {
    size_t run = i, len;
    while (run < n && (len = pc_utf8_seq(p + run, n - run)) != 0) run += len;
    rc = put_body(&k, s + i, run - i);
    if (!rc && run < n) rc = put(&k, repl, sizeof repl - 1);
    i = run < n ? run + 1 : n;
  }
  if (!rc) rc = putc1(&k, '"');
  if (rc) {
    out->len = mark;
    if (out->data) out->data[mark] = '\0';
  }
  return rc;
}

/* ---------- diff ---------- */

#define DIFF_BUF_MAX (SIZE_MAX / 4)
#define ELLIPSIS "\xE2\x80\xA6" /* U+2026 */

struct differ {
  pc_buf path; /* RFC 6901 pointer of the current position */
  struct pc_json_diff *d;
  size_t n, cap, max;
  size_t abbrev; /* 0: no abbreviation */
  size_t total;
};

/* Largest cut <= n that does not split a UTF-8 character (s[n] readable). */
static size_t utf8_cut(const char *s, size_t n) {
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  return n;
}

/* `"` + the first `cut` bytes of s + "…" + `"`. */
static int put_abbrev(struct sink *s, const char *str, size_t cut) {
  int rc = putc1(s, '"');
  if (!rc) rc = put_body(s, str, cut);
  if (!rc) rc = put(s, ELLIPSIS "\"", sizeof ELLIPSIS);
  return rc;
}

/* A value as the JSON text a diff entry carries (abbreviated per json.h). */
static int render_into(pc_buf *b, const struct pc_json *v, size_t abbrev) {
  struct sink s = {b, SIZE_MAX};
  if (v->type == PC_JSON_STRING) {
    if (!abbrev || v->len <= abbrev) return put_string(&s, v->str, v->len);
    return put_abbrev(&s, v->str, utf8_cut(v->str, abbrev));
  }
  if (!abbrev || abbrev >= DIFF_BUF_MAX) return put_value(&s, v, -1, 0);
  /* One byte past the limit tells "longer" and where a character starts. */
  pc_buf t;
  pc_buf_init(&t, DIFF_BUF_MAX);
  struct sink ts = {&t, abbrev + 1};
  int rc = put_value(&ts, v, -1, 0);
  if (rc == SINK_FULL) rc = 0;
  if (rc) goto out;
  if (t.len <= abbrev)
    rc = put(&s, t.data, t.len);
  else
    rc = put_abbrev(&s, t.data, utf8_cut(t.data, abbrev));
out:
  pc_buf_free(&t);
  return rc;
}

static int render(const struct pc_json *v, size_t abbrev, char **out) {
  *out = NULL;
  if (!v) return 0;
  pc_buf b;
  pc_buf_init(&b, DIFF_BUF_MAX);
  int rc = render_into(&b, v, abbrev);
  if (!rc && !b.data) rc = pc_buf_append(&b, "", 0);
  if (rc)
    pc_buf_free(&b);
  else
    *out = pc_buf_steal(&b, NULL);
  return rc;
}

static char *dup_path(const pc_buf *path) {
  char *p = malloc(path->len + 1);
  if (!p) return NULL;
  if (path->len) memcpy(p, path->data, path->len);
  p[path->len] = '\0';
  return p;
}

/* Count a difference at the current pointer; keep it while under max. */
static int record(struct differ *df, const struct pc_json *a, const struct pc_json *b) {
  df->total++;
  if (df->n >= df->max) return 0;
  if (df->n == df->cap) {
    size_t cap = df->cap ? df->cap * 2 : 8;
    if (cap > df->max) cap = df->max;
    struct pc_json_diff *d = realloc(df->d, cap * sizeof *d);
    if (!d) return PC_ENOMEM;
    df->d = d;
    df->cap = cap;
  }
  struct pc_json_diff e = {dup_path(&df->path), NULL, NULL};
  int rc = e.pointer ? 0 : PC_ENOMEM;
  if (!rc) rc = render(a, df->abbrev, &e.recorded);
  if (!rc) rc = render(b, df->abbrev, &e.requested);
  if (rc) {
    free(e.pointer);
    free(e.recorded);
    free(e.requested);
    return rc == PC_ETOOBIG ? PC_ENOMEM : rc;
  }
  df->d[df->n++] = e;
  return 0;
}

static int path_push_key(pc_buf *path, const char *k, size_t n) {
  int rc = pc_buf_putc(path, '/');
  for (size_t i = 0; !rc && i < n; i++) {
    if (k[i] == '~')
      rc = pc_buf_append(path, "~0", 2);
    else if (k[i] == '/')
      rc = pc_buf_append(path, "~1", 2);
    else
      rc = pc_buf_putc(path, k[i]);
  }
  return rc;
}

static void path_pop(pc_buf *path, size_t mark) {
  path->len = mark;
  if (path->data) path->data[mark] = '\0';
}

static int num_equal(const struct pc_json *a, const struct pc_json *b) {
  if (isfinite(a->num) && isfinite(b->num)) return a->num == b->num;
  if (!a->str || !b->str) return 0;
  return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

static int diff_node(struct differ *df, const struct pc_json *a, const struct pc_json *b, int depth);

static int diff_member(struct differ *df, const char *k, size_t kn, const struct pc_json *a, const struct pc_json *b,
                       int depth) {
  size_t mark = df->path.len;
  int rc = path_push_key(&df->path, k, kn);
  if (!rc) rc = diff_node(df, a, b, depth + 1);
  path_pop(&df->path, mark);
  return rc;
}

/* Member lookup for the diff. Small objects are scanned; when both sides are
 * large, a sorted index keeps a hostile pair of 100k-member objects from
 * costing 10^10 comparisons. Either way the first member of that name wins. */
struct kref {
  const char *k;
  size_t n;
  size_t i; /* member index: ties sort by it, so lower_bound finds the first */
};

struct members {
  const struct pc_json *obj;
  struct kref *ix; /* NULL: scan */
};

#define DIFF_SCAN_MAX ((size_t)1024) /* a->len * b->len up to this: scan */

static int kref_cmp(const void *x, const void *y) {
  const struct kref *p = x, *q = y;
  int c = memcmp(p->k, q->k, p->n < q->n ? p->n : q->n);
  if (c) return c;
  if (p->n != q->n) return p->n < q->n ? -1 : 1;
  return p->i < q->i ? -1 : p->i > q->i;
}

static int members_init(struct members *m, const struct pc_json *obj, int indexed) {
  m->obj = obj;
  m->ix = NULL;
  if (!indexed || obj->len == 0) return 0;
  m->ix = malloc(obj->len * sizeof *m->ix);
  if (!m->ix) return PC_ENOMEM;
  for (size_t i = 0; i < obj->len; i++) m->ix[i] = (struct kref){obj->keys[i], obj->key_lens[i], i};
  qsort(m->ix, obj->len, sizeof *m->ix, kref_cmp);
  return 0;
}

static const struct pc_json *members_find(const struct members *m, const char *k, size_t n) {
  if (!m->ix) return find_member(m->obj, k, n);
  struct kref want = {k, n, 0};
  size_t lo = 0, hi = m->obj->len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (kref_cmp(&m->ix[mid], &want) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == m->obj->len || m->ix[lo].n != n || memcmp(m->ix[lo].k, k, n) != 0) return NULL;
  return &m->obj->kids[m->ix[lo].i];
}

static int diff_objects(struct differ *df, const struct pc_json *a, const struct pc_json *b, int depth) {
  int indexed = b->len && a->len > DIFF_SCAN_MAX / b->len;
  struct members ma, mb;
  int rc = members_init(&ma, a, indexed);
  mb.ix = NULL;
  if (!rc) rc = members_init(&mb, b, indexed);
  for (size_t i = 0; !rc && i < a->len; i++) {
    const struct pc_json *bv = members_find(&mb, a->keys[i], a->key_lens[i]);
    rc = diff_member(df, a->keys[i], a->key_lens[i], &a->kids[i], bv, depth);
  }
  for (size_t j = 0; !rc && j < b->len; j++) {
    if (members_find(&ma, b->keys[j], b->key_lens[j])) continue;
    rc = diff_member(df, b->keys[j], b->key_lens[j], NULL, &b->kids[j], depth);
  }
  free(ma.ix);
  free(mb.ix);
  return rc;
}

static int diff_arrays(struct differ *df, const struct pc_json *a, const struct pc_json *b, int depth) {
  size_t n = a->len > b->len ? a->len : b->len;
  int rc = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    size_t mark = df->path.len;
    rc = pc_buf_printf(&df->path, "/%zu", i);
    if (!rc) rc = diff_node(df, i < a->len ? &a->kids[i] : NULL, i < b->len ? &b->kids[i] : NULL, depth + 1);
    path_pop(&df->path, mark);
  }
  return rc;
}

static int diff_node(struct differ *df, const struct pc_json *a, const struct pc_json *b, int depth) {
  if (depth > PC_JSON_MAX_DEPTH + 1) return PC_EDEPTH; /* deeper than any parsed document */
  if (!a && !b) return 0;
  if (!a || !b || a->type != b->type) return record(df, a, b);
  switch (a->type) {
  case PC_JSON_NUMBER:
    return num_equal(a, b) ? 0 : record(df, a, b);
  case PC_JSON_STRING:
    if (a->len == b->len && (a->len == 0 || memcmp(a->str, b->str, a->len) == 0)) return 0;
    return record(df, a, b);
  case PC_JSON_ARRAY:
    return diff_arrays(df, a, b, depth);
  case PC_JSON_OBJECT:
    return diff_objects(df, a, b, depth);
  default:
    return 0; /* null, true, false: same type is equal */
  }
}

void pc_json_diff_free(struct pc_json_diff *d, size_t n) {
  if (!d) return;
  for (size_t i = 0; i < n; i++) {
    free(d[i].pointer);
    free(d[i].recorded);
    free(d[i].requested);
  }
  free(d);
}

/* abbrev == 0 (or anything >= DIFF_BUF_MAX) means "never abbreviate". A NULL
 * a or b is an absent document: one difference at "" unless both are NULL.
 * With no differences kept, *out is NULL (pc_json_diff_free accepts it). On
 * failure nothing is returned: *out NULL, *n and *total 0. PC_EDEPTH is only
 * possible for hand-built trees deeper than any parsed document. */
int pc_json_diff(const struct pc_json *a, const struct pc_json *b, size_t max_diffs, size_t abbrev,
                 struct pc_json_diff **out, size_t *n, size_t *total) {
  struct differ df = {.max = max_diffs, .abbrev = abbrev};
  pc_buf_init(&df.path, DIFF_BUF_MAX);
  int rc = diff_node(&df, a, b, 0);
  if (rc) {
    pc_json_diff_free(df.d, df.n);
    df.d = NULL;
    df.n = df.total = 0;
  }
  *out = df.d;
  *n = df.n;
  if (total) *total = df.total;
  pc_buf_free(&df.path);
  return rc;
}
