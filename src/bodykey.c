/* bodykey.c — canonical form of request bodies that are not JSON (multipart,
 * url-encoded forms, raw bytes), its parser, the differences between two
 * canonical bodies, and their JSON form for export. bodykey.h states the
 * format and exactly what is normalized.
 *
 * Everything here reads bytes a client (or an imported file) sent: every
 * loop is bounded by its input's end and every count by a PC_BODYKEY_MAX_*
 * limit; malformed multipart or too many fields fall back to raw bytes,
 * never to an error. Two things must stay true: write_canon is the only
 * writer of the canonical form (canon and from_json both end in it, which is
 * why export → import gives the same key), and parse_canon reads back every
 * field write_canon wrote (the form is injective because it parses). */
#include "bodykey.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "error.h"
#include "utf8.h"

#define MAGIC "pc-body-v1\n"
#define MAGIC_LEN (sizeof MAGIC - 1)
#define FORM_TYPE "application/x-www-form-urlencoded"
#define ELLIPSIS "\xE2\x80\xA6" /* U+2026 */
#define MALFORMED 1             /* internal: fall back to raw bytes */
#define NAME_SHOWN 64           /* bytes of a filename or type shown in a summary */

static const char *const kind_names[] = {"empty", "raw", "form", "multipart"};

struct span {
  const char *p;
  size_t n;
};

/* A multipart part, a form field or a query parameter. For fields and
 * parameters `data` is the value; `flag` says a part has a filename, or a
 * parameter an '='. */
struct item {
  struct span name, filename, type, data;
  int flag;
  size_t order; /* position as sent: the stable sort's tie-break */
};

struct items {
  struct item *v;
  size_t n, cap;
};

/* ---------- small helpers ---------- */

static struct span span_of(const char *p, size_t n) {
  struct span s = {p, n};
  return s;
}

static int span_eq(struct span a, struct span b) { return a.n == b.n && (!a.n || !memcmp(a.p, b.p, a.n)); }

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Case-insensitive (ASCII) comparison with a lower-case literal; prefix: only its start. */
static int span_ieq(struct span a, const char *lit, int prefix) {
  size_t n = strlen(lit);
  if (a.n < n || (!prefix && a.n != n)) return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)a.p[i]) != lit[i]) return 0;
  return 1;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static struct span trim(struct span s) {
  while (s.n && is_ows(s.p[0])) s.p++, s.n--;
  while (s.n && is_ows(s.p[s.n - 1])) s.n--;
  return s;
}

static int is_utf8(struct span s) { return pc_utf8_valid(s.p, s.n); }

/* Count `it` as one more item; 1 (MALFORMED) past `max`. */
static int items_push(struct items *it, const struct item *x, size_t max) {
  if (it->n >= max) return MALFORMED;
  if (it->n == it->cap) {
    size_t cap = it->cap ? it->cap * 2 : 16;
    if (cap > max) cap = max;
    struct item *v = realloc(it->v, cap * sizeof *v);
    if (!v) return PC_ENOMEM;
    it->v = v;
    it->cap = cap;
  }
  it->v[it->n] = *x;
  it->v[it->n].order = it->n;
  it->n++;
  return 0;
}

/* ---------- header values ---------- */

/* The media type of a Content-Type value: before any ';', trimmed (not yet lower-cased). */
static struct span media_type(const char *ct, size_t n) {
  if (!ct || !n) return span_of("", 0);
  const char *semi = memchr(ct, ';', n);
  return trim(span_of(ct, semi ? (size_t)(semi - ct) : n));
}

/* A quoted-string at p (just past its opening quote): up to the next quote
 * not escaped by a backslash, or e. Backslash pairs are kept as written, so
 * distinct wire bytes stay distinct keys whichever escaping a client uses. */
static const char *quoted_end(const char *p, const char *e) {
  while (p < e && *p != '"') p += (*p == '\\' && e - p >= 2) ? 2 : 1;
  return p;
}

/* The next `; name=value` parameter of a header value, from *pp up to e.
 * Returns 0 when none is left; every call that returns 1 has consumed a ';'. */
static int next_param(const char **pp, const char *e, struct span *name, struct span *val) {
  const char *p = *pp;
  while (p < e && *p != ';') p++;
  if (p == e) {
    *pp = e;
    return 0;
  }
  for (p++; p < e && is_ows(*p);) p++;
  const char *s = p;
  while (p < e && *p != '=' && *p != ';' && !is_ows(*p)) p++;
  *name = span_of(s, (size_t)(p - s));
  while (p < e && is_ows(*p)) p++;
  *val = span_of(p, 0);
  if (p < e && *p == '=') {
    for (p++; p < e && is_ows(*p);) p++;
    if (p < e && *p == '"') {
      s = ++p;
      p = quoted_end(p, e);
      *val = span_of(s, (size_t)(p - s));
      if (p < e) p++;
    } else {
      for (s = p; p < e && *p != ';' && !is_ows(*p);) p++;
      *val = span_of(s, (size_t)(p - s));
    }
  }
  *pp = p;
  return 1;
}

/* First parameter called `name` (case-insensitive). */
static int find_param(struct span v, const char *name, struct span *out) {
  const char *p = v.p, *e = v.p + v.n;
  struct span k, val;
  while (next_param(&p, e, &k, &val))
    if (span_ieq(k, name, 0)) {
      *out = val;
      return 1;
    }
  return 0;
}

/* ---------- multipart (RFC 2046, RFC 7578) ---------- */

static void disposition(struct span v, struct item *it) {
  const char *p = v.p, *e = v.p + v.n;
  struct span k, val, star = {"", 0};
  int has_name = 0, has_star = 0;
  while (next_param(&p, e, &k, &val)) {
    if (!has_name && span_ieq(k, "name", 0)) {
      it->name = val;
      has_name = 1;
    } else if (!it->flag && span_ieq(k, "filename", 0)) {
      it->filename = val;
      it->flag = 1;
    } else if (!has_star && span_ieq(k, "filename*", 0)) {
      star = val;
      has_star = 1;
    }
  }
  if (!it->flag && has_star) {
    it->filename = star;
    it->flag = 1;
  }
}

/* The header block [p, e) of one part (CRLF-separated lines); the first
 * Content-Disposition and Content-Type count, everything else is ignored. */
static void part_headers(const char *p, const char *e, struct item *it) {
  int seen_cd = 0, seen_ct = 0;
  while (p < e) {
    const char *eol = memmem(p, (size_t)(e - p), "\r\n", 2), *le = eol ? eol : e;
    const char *colon = memchr(p, ':', (size_t)(le - p));
    if (colon) {
      struct span name = trim(span_of(p, (size_t)(colon - p)));
      struct span val = trim(span_of(colon + 1, (size_t)(le - colon - 1)));
      if (!seen_cd && span_ieq(name, "content-disposition", 0)) {
        seen_cd = 1;
        disposition(val, it);
      } else if (!seen_ct && span_ieq(name, "content-type", 0)) {
        struct span m = media_type(val.p, val.n);
        seen_ct = 1;
        if (m.n) it->type = m;
      }
    }
    p = eol ? eol + 2 : e;
  }
}

/* One part starting at *pp (just past its delimiter line's CRLF), up to and
 * including the next delimiter. The delimiter is looked for first, so the
 * headers can never run past it. */
static int parse_part(const char **pp, const char *e, const char *delim, size_t dl, struct item *it) {
  const char *p = *pp, *hend, *data;
  const char *d = memmem(p, (size_t)(e - p), delim, dl);
  if (!d) return MALFORMED;
  memset(it, 0, sizeof *it);
  it->type = span_of("text/plain", 10);
  if (d - p >= 2 && p[0] == '\r' && p[1] == '\n') { /* no headers at all */
    hend = p;
    data = p + 2;
  } else {
    size_t win = (size_t)(d - p) < PC_BODYKEY_MAX_PART_HEADERS + 4 ? (size_t)(d - p) : PC_BODYKEY_MAX_PART_HEADERS + 4;
    const char *h = memmem(p, win, "\r\n\r\n", 4);
    if (!h) return MALFORMED;
    hend = h + 2;
    data = h + 4;
  }
  part_headers(p, hend, it);
  it->data = span_of(data, (size_t)(d - data));
  *pp = d + dl;
  return 0;
}

/* 0 and the parts, MALFORMED, or PC_ENOMEM. The boundary, preamble,
 * transport padding and epilogue are read past, never kept. */
static int parse_multipart(struct span ct, const char *body, size_t n, struct items *parts) {
  struct span b;
  if (!find_param(ct, "boundary", &b) || !b.n || b.n > PC_BODYKEY_MAX_BOUNDARY || memchr(b.p, '\\', b.n) ||
      memchr(b.p, '\r', b.n) || memchr(b.p, '\n', b.n))
    return MALFORMED;
  char delim[4 + PC_BODYKEY_MAX_BOUNDARY];
  size_t dl = 4 + b.n;
  memcpy(delim, "\r\n--", 4);
  memcpy(delim + 4, b.p, b.n);
  const char *p, *e = body + n;
  if (n >= dl - 2 && !memcmp(body, delim + 2, dl - 2)) { /* no preamble */
    p = body + dl - 2;
  } else {
    const char *d = memmem(body, n, delim, dl);
    if (!d) return MALFORMED;
    p = d + dl;
  }
  for (;;) { /* p is just past a delimiter; each turn consumes one more */
    if (e - p >= 2 && p[0] == '-' && p[1] == '-') return 0;
    while (p < e && is_ows(*p)) p++;
    if (e - p < 2 || p[0] != '\r' || p[1] != '\n') return MALFORMED;
    p += 2;
    struct item it;
    int rc = parse_part(&p, e, delim, dl, &it);
    if (!rc) rc = items_push(parts, &it, PC_BODYKEY_MAX_PARTS);
    if (rc) return rc;
  }
}

/* ---------- application/x-www-form-urlencoded ---------- */

/* WHATWG decoding of one name or value into dst (never longer than s). */
static size_t form_decode(const char *s, size_t n, char *dst) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '+') {
      dst[o++] = ' ';
    } else if (s[i] == '%' && i + 2 < n && (hi = pc_hexval((unsigned char)s[i + 1])) >= 0 &&
               (lo = pc_hexval((unsigned char)s[i + 2])) >= 0) {
      dst[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      dst[o++] = s[i];
    }
  }
  return o;
}

/* By name in byte order, then as sent: a stable sort from qsort. */
static int cmp_field(const void *x, const void *y) {
  const struct item *a = x, *b = y;
  size_t n = a->name.n < b->name.n ? a->name.n : b->name.n;
  int c = n ? memcmp(a->name.p, b->name.p, n) : 0;
  if (!c) c = (a->name.n > b->name.n) - (a->name.n < b->name.n);
  return c ? c : (a->order > b->order) - (a->order < b->order);
}

static void sort_fields(struct items *f) {
  if (f->n > 1) qsort(f->v, f->n, sizeof *f->v, cmp_field);
}

/* Fields decoded into `scratch` (n bytes: decoding never grows), sorted. */
static int parse_form(const char *body, size_t n, char *scratch, struct items *fields) {
  const char *p = body, *e = body + n;
  size_t o = 0;
  while (p < e) {
    const char *amp = memchr(p, '&', (size_t)(e - p)), *fe = amp ? amp : e;
    if (fe > p) {
      const char *eq = memchr(p, '=', (size_t)(fe - p)), *ne = eq ? eq : fe, *vs = eq ? eq + 1 : fe;
      struct item it = {0};
      it.name = span_of(scratch + o, form_decode(p, (size_t)(ne - p), scratch + o));
      o += it.name.n;
      it.data = span_of(scratch + o, form_decode(vs, (size_t)(fe - vs), scratch + o));
      o += it.data.n;
      int rc = items_push(fields, &it, PC_BODYKEY_MAX_FIELDS);
      if (rc) return rc;
    }
    p = amp ? amp + 1 : e;
  }
  sort_fields(fields);
  return 0;
}

/* ---------- writing the canonical form ---------- */

/* "<tag>=<len>:<bytes>\n", as key.h's fields; lower: ASCII-lower-case the bytes. */
static int put_rec(pc_buf *out, const char *tag, struct span v, int lower_case) {
  int rc = pc_buf_puts(out, tag);
  if (!rc) rc = pc_buf_putc(out, '=');
  if (!rc) rc = pc_buf_put_u64(out, v.n);
  if (!rc) rc = pc_buf_putc(out, ':');
  size_t at = out->len;
  if (!rc) rc = pc_buf_append(out, v.p, v.n);
  for (size_t i = 0; !rc && lower_case && i < v.n; i++)
    out->data[at + i] = (char)lower((unsigned char)out->data[at + i]);
  if (!rc) rc = pc_buf_putc(out, '\n');
  return rc;
}

static int put_item(pc_buf *out, enum pc_bodykey_kind k, const struct item *it) {
  if (k == PC_BODYKEY_FORM) {
    int rc = put_rec(out, "field", it->name, 0);
    return rc ? rc : put_rec(out, "value", it->data, 0);
  }
  int rc = put_rec(out, "part", it->name, 0);
  if (!rc && it->flag) rc = put_rec(out, "filename", it->filename, 0);
  if (!rc) rc = put_rec(out, "type", it->type, 1);
  if (!rc) rc = put_rec(out, "data", it->data, 0);
  return rc;
}

/* The one writer of the canonical form. On failure `out` is as it was. */
static int write_canon(pc_buf *out, enum pc_bodykey_kind k, struct span type, const struct items *it, struct span raw) {
  if (k == PC_BODYKEY_EMPTY) return 0;
  size_t mark = out->len;
  const char *kn = kind_names[k];
  int rc = pc_buf_append(out, MAGIC, MAGIC_LEN);
  if (!rc) rc = put_rec(out, "kind", span_of(kn, strlen(kn)), 0);
  if (!rc) rc = put_rec(out, "type", type, 1);
  if (!rc && k == PC_BODYKEY_RAW) rc = put_rec(out, "data", raw, 0);
  for (size_t i = 0; !rc && k != PC_BODYKEY_RAW && i < it->n; i++) rc = put_item(out, k, &it->v[i]);
  if (rc) {
    out->len = mark;
    if (out->data) out->data[mark] = '\0';
  }
  return rc;
}

static void fill_info(struct pc_bodykey_info *info, enum pc_bodykey_kind k, struct span type, size_t n_items) {
  if (!info) return;
  size_t n = type.n < sizeof info->content_type - 1 ? type.n : sizeof info->content_type - 1;
  info->kind = k;
  for (size_t i = 0; i < n; i++) info->content_type[i] = (char)lower((unsigned char)type.p[i]);
  info->content_type[n] = '\0';
  info->n_items = k == PC_BODYKEY_FORM || k == PC_BODYKEY_MULTIPART ? n_items : 0;
}

static enum pc_bodykey_kind classify(struct span type) {
  if (span_ieq(type, "multipart/", 1)) return PC_BODYKEY_MULTIPART;
  if (span_ieq(type, FORM_TYPE, 0)) return PC_BODYKEY_FORM;
  return PC_BODYKEY_RAW;
}

int pc_bodykey_canon(const char *content_type, size_t ctlen, const char *body, size_t n, pc_buf *out,
                     struct pc_bodykey_info *info) {
  struct span type = media_type(content_type, ctlen);
  enum pc_bodykey_kind k = n ? classify(type) : PC_BODYKEY_EMPTY;
  struct items it = {0};
  char *scratch = NULL;
  int rc = 0;
  if (k == PC_BODYKEY_MULTIPART) {
    rc = parse_multipart(span_of(content_type, ctlen), body, n, &it);
  } else if (k == PC_BODYKEY_FORM) {
    scratch = malloc(n);
    rc = scratch ? parse_form(body, n, scratch, &it) : PC_ENOMEM;
  }
  if (rc == MALFORMED) {
    k = PC_BODYKEY_RAW;
    it.n = 0;
    rc = 0;
  }
  if (!rc) rc = write_canon(out, k, type, &it, span_of(body, n));
  if (!rc) fill_info(info, k, type, it.n);
  free(it.v);
  free(scratch);
  return rc;
}

int pc_bodykey_is_canon(const char *canon, size_t n) {
  return n == 0 || (n >= MAGIC_LEN && !memcmp(canon, MAGIC, MAGIC_LEN));
}

/* ---------- reading the canonical form back ---------- */

struct view {
  enum pc_bodykey_kind kind;
  int json; /* canonical JSON, not this module's form: only `all` is set */
  struct span type, data, all;
  struct items items;
};

static int at_tag(const char *p, const char *e, const char *tag) {
  size_t tl = strlen(tag);
  return (size_t)(e - p) > tl && !memcmp(p, tag, tl) && p[tl] == '=';
}

/* One record "<tag>=<len>:<bytes>\n" at *pp; lengths as write_canon writes them. */
static int read_rec(const char **pp, const char *e, const char *tag, struct span *v) {
  if (!at_tag(*pp, e, tag)) return PC_ECORRUPT;
  const char *p = *pp + strlen(tag) + 1, *digits = p;
  size_t len = 0;
  for (; p < e && *p >= '0' && *p <= '9'; p++) {
    if (p - digits >= 19) return PC_ECORRUPT; /* cannot overflow below 10^19 */
    len = len * 10 + (size_t)(*p - '0');
  }
  if (p == digits || (p - digits > 1 && *digits == '0') || p == e || *p != ':') return PC_ECORRUPT;
  p++;
  if ((size_t)(e - p) <= len || p[len] != '\n') return PC_ECORRUPT;
  *v = span_of(p, len);
  *pp = p + len + 1;
  return 0;
}

static int read_item(const char **pp, const char *e, enum pc_bodykey_kind k, struct item *it) {
  memset(it, 0, sizeof *it);
  if (k == PC_BODYKEY_FORM) {
    int rc = read_rec(pp, e, "field", &it->name);
    return rc ? rc : read_rec(pp, e, "value", &it->data);
  }
  int rc = read_rec(pp, e, "part", &it->name);
  if (!rc && at_tag(*pp, e, "filename")) {
    it->flag = 1;
    rc = read_rec(pp, e, "filename", &it->filename);
  }
  if (!rc) rc = read_rec(pp, e, "type", &it->type);
  if (!rc) rc = read_rec(pp, e, "data", &it->data);
  return rc;
}

static int read_kind(struct span s, enum pc_bodykey_kind *k) {
  for (int i = PC_BODYKEY_RAW; i <= PC_BODYKEY_MULTIPART; i++)
    if (s.n == strlen(kind_names[i]) && !memcmp(s.p, kind_names[i], s.n)) {
      *k = (enum pc_bodykey_kind)i;
      return 0;
    }
  return PC_ECORRUPT;
}

/* Spans point into c; v->items is the caller's to free (view_free). */
static int parse_canon(const char *c, size_t n, struct view *v) {
  memset(v, 0, sizeof *v);
  v->all = span_of(c, n);
  if (!n) return 0;
  if (!pc_bodykey_is_canon(c, n)) {
    v->json = 1;
    return 0;
  }
  const char *p = c + MAGIC_LEN, *e = c + n;
  struct span kind;
  int rc = read_rec(&p, e, "kind", &kind);
  if (!rc) rc = read_kind(kind, &v->kind);
  if (!rc) rc = read_rec(&p, e, "type", &v->type);
  if (!rc && v->kind == PC_BODYKEY_RAW) rc = read_rec(&p, e, "data", &v->data);
  size_t max = v->kind == PC_BODYKEY_FORM ? PC_BODYKEY_MAX_FIELDS : PC_BODYKEY_MAX_PARTS;
  while (!rc && p < e) {
    struct item it;
    rc = v->kind == PC_BODYKEY_RAW ? PC_ECORRUPT : read_item(&p, e, v->kind, &it);
    if (!rc) rc = items_push(&v->items, &it, max);
    if (rc == MALFORMED) rc = PC_ECORRUPT;
  }
  return rc;
}

static void view_free(struct view *v) {
  free(v->items.v);
  v->items.v = NULL;
}

/* ---------- values shown in differences ---------- */

/* Largest cut <= n that does not split a UTF-8 character (s[n] readable). */
static size_t utf8_cut(const char *s, size_t n) {
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  return n;
}

/* UTF-8 text as a JSON string, cut to `abbrev` bytes with "…" (as pc_json_diff). */
static int put_text(pc_buf *b, struct span s, size_t abbrev) {
  if (!abbrev || s.n <= abbrev) return pc_json_write_string(b, s.p, s.n);
  int rc = pc_json_write_string(b, s.p, utf8_cut(s.p, abbrev));
  if (!rc) b->len--; /* reopen the string */
  return rc ? rc : pc_buf_puts(b, ELLIPSIS "\"");
}

/* Bytes made readable: valid UTF-8 as it is, other bytes as %XX; in a
 * pointer also '~' '/' (RFC 6901), '%' and control bytes. At most `limit`
 * input bytes, then "…". */
static int put_readable(pc_buf *b, struct span s, size_t limit, int pointer) {
  const unsigned char *p = (const unsigned char *)s.p;
  int rc = 0;
  for (size_t i = 0, k; i < s.n && !rc; i += k) {
    if (i >= limit) return pc_buf_puts(b, ELLIPSIS);
    k = pc_utf8_seq(p + i, s.n - i);
    if (pointer && p[i] == '~')
      rc = pc_buf_puts(b, "~0");
    else if (pointer && p[i] == '/')
      rc = pc_buf_puts(b, "~1");
    else if (!k || (pointer && (p[i] == '%' || p[i] < 0x20 || p[i] == 0x7f)))
      rc = pc_buf_printf(b, "%%%02X", p[i]);
    else
      rc = pc_buf_append(b, p + i, k);
    if (!k) k = 1;
  }
  return rc;
}

static int put_hash(pc_buf *b, struct span s) {
  return pc_buf_printf(b, "%zu bytes, xxh3 %016llx", s.n, (unsigned long long)XXH3_64bits(s.p, s.n));
}

/* A summary built in a scratch buffer, then shown as a JSON string. */
static int put_summary_of(pc_buf *b, const struct item *it, struct span data) {
  pc_buf t;
  pc_buf_init(&t, SIZE_MAX / 4);
  int rc = 0;
  if (it && it->flag) {
    rc = put_readable(&t, it->filename, NAME_SHOWN, 0);
    if (!rc) rc = pc_buf_puts(&t, ", ");
  }
  if (!rc && it) rc = put_readable(&t, it->type, NAME_SHOWN, 0);
  if (!rc && it) rc = pc_buf_puts(&t, ", ");
  if (!rc) rc = put_hash(&t, data);
  if (!rc) rc = pc_json_write_string(b, t.data, t.len);
  pc_buf_free(&t);
  return rc;
}

/* Text when it is UTF-8, else size and hash. */
static int put_bytes_shown(pc_buf *b, struct span s, size_t abbrev) {
  return is_utf8(s) ? put_text(b, s, abbrev) : put_summary_of(b, NULL, s);
}

/* A form field's value as text; a part's too when it is a plain text field,
 * otherwise "[filename, ]type, N bytes, xxh3 H". */
static int put_part_shown(pc_buf *b, const struct item *it, size_t abbrev) {
  if (!it->flag && it->type.n == 10 && !memcmp(it->type.p, "text/plain", 10) && is_utf8(it->data))
    return put_text(b, it->data, abbrev);
  return put_summary_of(b, it, it->data);
}

/* "N parts: a, b" / "N fields: a, b" (names in order, the list abbreviated). */
static int put_names_shown(pc_buf *b, const struct view *v, size_t abbrev) {
  pc_buf t;
  pc_buf_init(&t, SIZE_MAX / 4);
  int parts = v->kind == PC_BODYKEY_MULTIPART;
  int rc = pc_buf_printf(&t, "%zu %s%s", v->items.n, parts ? "part" : "field", v->items.n == 1 ? "" : "s");
  for (size_t i = 0; !rc && i < v->items.n && (!abbrev || t.len <= abbrev); i++) {
    rc = pc_buf_puts(&t, i ? ", " : ": ");
    if (!rc) rc = put_readable(&t, v->items.v[i].name, NAME_SHOWN, 0);
  }
  if (!rc) rc = put_text(b, span_of(t.data, t.len), abbrev);
  pc_buf_free(&t);
  return rc;
}

/* What one side of a difference shows. */
enum shown_how { SHOW_ABSENT, SHOW_BYTES, SHOW_ITEM, SHOW_TRUE, SHOW_READABLE, SHOW_BODY, SHOW_NAMES };

struct shown {
  enum shown_how how;
  struct span s;         /* BYTES, READABLE */
  const struct item *it; /* ITEM */
  const struct view *v;  /* BODY, NAMES */
};

static struct shown show(enum shown_how how, struct span s, const struct item *it, const struct view *v) {
  struct shown x = {how, s, it, v};
  return x;
}

static int put_body_shown(pc_buf *b, const struct view *v, size_t abbrev) {
  if (v->json) return put_bytes_shown(b, v->all, abbrev);
  if (v->kind == PC_BODYKEY_RAW) return put_bytes_shown(b, v->data, abbrev);
  return put_names_shown(b, v, abbrev);
}

/* Readable bytes (a content type) as a JSON string. */
static int put_readable_shown(pc_buf *b, struct span s, size_t abbrev) {
  pc_buf t;
  pc_buf_init(&t, SIZE_MAX / 4);
  int rc = put_readable(&t, s, abbrev ? abbrev : SIZE_MAX, 0);
  if (!rc) rc = pc_json_write_string(b, t.data ? t.data : "", t.len);
  pc_buf_free(&t);
  return rc;
}

/* A malloc'd JSON text, or NULL for an absent side. */
static int render(struct shown x, size_t abbrev, char **out) {
  *out = NULL;
  if (x.how == SHOW_ABSENT || (x.how == SHOW_BODY && !x.v->json && x.v->kind == PC_BODYKEY_EMPTY)) return 0;
  pc_buf b;
  pc_buf_init(&b, SIZE_MAX / 4);
  int rc;
  switch (x.how) {
  case SHOW_BYTES:
    rc = put_bytes_shown(&b, x.s, abbrev);
    break;
  case SHOW_ITEM:
    rc = put_part_shown(&b, x.it, abbrev);
    break;
  case SHOW_TRUE:
    rc = pc_buf_puts(&b, "true");
    break;
  case SHOW_BODY:
    rc = put_body_shown(&b, x.v, abbrev);
    break;
  case SHOW_NAMES:
    rc = put_names_shown(&b, x.v, abbrev);
    break;
  default:
    rc = put_readable_shown(&b, x.s, abbrev);
    break;
  }
  if (!rc) *out = pc_buf_steal(&b, NULL);
  pc_buf_free(&b);
  return rc == PC_ETOOBIG ? PC_ENOMEM : rc;
}

/* ---------- the difference list ---------- */

struct dlist {
  struct pc_json_diff **d;
  size_t *n, *total, max, abbrev;
};

static int dl_append(struct dlist *dl, struct pc_json_diff e) {
  struct pc_json_diff *d = realloc(*dl->d, (*dl->n + 1) * sizeof *d);
  if (!d) return PC_ENOMEM;
  *dl->d = d;
  d[(*dl->n)++] = e;
  return 0;
}

/* Count one difference at `ptr`; keep it while under max. */
static int emit(struct dlist *dl, const pc_buf *ptr, struct shown a, struct shown b) {
  if (dl->total) (*dl->total)++;
  if (*dl->n >= dl->max) return 0;
  struct pc_json_diff e = {strndup(ptr->data ? ptr->data : "", ptr->len), NULL, NULL};
  int rc = e.pointer ? 0 : PC_ENOMEM;
  if (!rc) rc = render(a, dl->abbrev, &e.recorded);
  if (!rc) rc = render(b, dl->abbrev, &e.requested);
  if (!rc) rc = dl_append(dl, e);
  if (rc) {
    free(e.pointer);
    free(e.recorded);
    free(e.requested);
  }
  return rc;
}

static int emit_at(struct dlist *dl, const char *ptr, struct shown a, struct shown b) {
  pc_buf p;
  pc_buf_init(&p, 256);
  int rc = pc_buf_puts(&p, ptr);
  if (!rc) rc = emit(dl, &p, a, b);
  pc_buf_free(&p);
  return rc;
}

/* ---------- diffing items by (name, occurrence) ---------- */

enum items_of { ITEMS_PARTS, ITEMS_FIELDS, ITEMS_QUERY };

static size_t count_named(const struct items *it, struct span name) {
  size_t c = 0;
  for (size_t i = 0; i < it->n; i++) c += span_eq(it->v[i].name, name);
  return c;
}

/* Index in `it` of the k-th (0-based) item called `name`, or it->n. */
static size_t nth_named(const struct items *it, struct span name, size_t k) {
  for (size_t i = 0; i < it->n; i++)
    if (span_eq(it->v[i].name, name) && k-- == 0) return i;
  return it->n;
}

/* Occurrence index of item i among the items before it with its name. */
static size_t occurrence(const struct items *it, size_t i) {
  size_t k = 0;
  for (size_t j = 0; j < i; j++) k += span_eq(it->v[j].name, it->v[i].name);
  return k;
}

static int item_eq(const struct item *a, const struct item *b) {
  return a->flag == b->flag && span_eq(a->name, b->name) && span_eq(a->filename, b->filename) &&
         span_eq(a->type, b->type) && span_eq(a->data, b->data);
}

static int item_pointer(pc_buf *p, const char *prefix, const struct items *a, const struct items *b, struct span name,
                        size_t k) {
  pc_buf_reset(p);
  int rc = pc_buf_puts(p, prefix);
  if (!rc) rc = put_readable(p, name, SIZE_MAX, 1);
  if (!rc && (count_named(a, name) > 1 || count_named(b, name) > 1)) rc = pc_buf_printf(p, "/%zu", k);
  return rc;
}

/* What an item shows: a part as text or summary, a field's value, a query
 * parameter's value or `true` when it has no '='. */
static struct shown show_item(const struct item *it, enum items_of k) {
  if (k == ITEMS_PARTS) return show(SHOW_ITEM, it->data, it, NULL);
  if (k == ITEMS_QUERY && !it->flag) return show(SHOW_TRUE, it->data, NULL, NULL);
  return show(SHOW_BYTES, it->data, NULL, NULL);
}

/* Parts, fields or parameters matched by (name, occurrence): changed and
 * removed ones in a's order, then added ones in b's. */
static int diff_items(struct dlist *dl, const char *prefix, const struct items *a, const struct items *b,
                      enum items_of k_items) {
  pc_buf p;
  pc_buf_init(&p, SIZE_MAX / 4);
  int rc = 0;
  for (size_t pass = 0; pass < 2 && !rc; pass++) {
    const struct items *x = pass ? b : a, *y = pass ? a : b;
    for (size_t i = 0; i < x->n && !rc; i++) {
      const struct item *xi = &x->v[i];
      size_t k = occurrence(x, i), j = nth_named(y, xi->name, k);
      const struct item *yj = j < y->n ? &y->v[j] : NULL;
      if ((pass && yj) || (yj && item_eq(xi, yj))) continue;
      const struct item *ra = pass ? NULL : xi, *rb = pass ? xi : yj;
      struct shown sa = show(SHOW_ABSENT, span_of("", 0), NULL, NULL), sb = sa;
      if (ra) sa = show_item(ra, k_items);
      if (rb) sb = show_item(rb, k_items);
      rc = item_pointer(&p, prefix, a, b, xi->name, k);
      if (!rc) rc = emit(dl, &p, sa, sb);
    }
  }
  pc_buf_free(&p);
  return rc;
}

/* Parts matched on both sides but not in the same relative order. */
static int reordered(const struct items *a, const struct items *b) {
  size_t last = 0;
  int any = 0;
  for (size_t i = 0; i < a->n; i++) {
    size_t j = nth_named(b, a->v[i].name, occurrence(a, i));
    if (j == b->n) continue;
    if (any && j < last) return 1;
    last = j;
    any = 1;
  }
  return 0;
}

static int diff_bodies(struct dlist *dl, const struct view *a, const struct view *b) {
  int rc = 0;
  int ka = a->json ? -1 : (int)a->kind, kb = b->json ? -1 : (int)b->kind;
  if (ka > PC_BODYKEY_EMPTY && kb > PC_BODYKEY_EMPTY && !span_eq(a->type, b->type))
    rc = emit_at(dl, "@content-type", show(SHOW_READABLE, a->type, NULL, NULL),
                 show(SHOW_READABLE, b->type, NULL, NULL));
  if (rc) return rc;
  if (ka != kb || ka == -1) /* another kind, or JSON that did not parse */
    return span_eq(a->all, b->all)
               ? 0
               : emit_at(dl, "@body", show(SHOW_BODY, a->all, NULL, a), show(SHOW_BODY, b->all, NULL, b));
  switch (a->kind) {
  case PC_BODYKEY_RAW:
    if (span_eq(a->data, b->data)) return 0;
    return emit_at(dl, "@body", show(SHOW_BYTES, a->data, NULL, NULL), show(SHOW_BYTES, b->data, NULL, NULL));
  case PC_BODYKEY_FORM:
    return diff_items(dl, "@field/", &a->items, &b->items, ITEMS_FIELDS);
  case PC_BODYKEY_MULTIPART:
    rc = diff_items(dl, "@part/", &a->items, &b->items, ITEMS_PARTS);
    if (!rc && reordered(&a->items, &b->items))
      rc = emit_at(dl, "@parts", show(SHOW_NAMES, a->all, NULL, a), show(SHOW_NAMES, b->all, NULL, b));
    return rc;
  default:
    return 0;
  }
}

/* Both canonical JSON: pc_json_diff, its entries moved onto the list. */
static int diff_json(struct dlist *dl, const struct view *a, const struct view *b, int *parsed) {
  struct pc_json_doc *da = NULL, *db = NULL;
  struct pc_json_diff *d = NULL;
  size_t n = 0, total = 0;
  int rc = 0;
  *parsed = !pc_json_parse(a->all.p, a->all.n, &da, NULL) && !pc_json_parse(b->all.p, b->all.n, &db, NULL);
  if (*parsed)
    rc = pc_json_diff(pc_json_root(da), pc_json_root(db), *dl->n < dl->max ? dl->max - *dl->n : 0, dl->abbrev, &d, &n,
                      &total);
  if (dl->total) *dl->total += total;
  size_t i = 0;
  while (i < n && !rc && !(rc = dl_append(dl, d[i]))) i++;
  for (size_t j = i; j < n; j++) { /* the entries not moved (after a failure) */
    free(d[j].pointer);
    free(d[j].recorded);
    free(d[j].requested);
  }
  free(d);
  pc_json_free(da);
  pc_json_free(db);
  return rc;
}

int pc_bodykey_diff(const char *a, size_t an, const char *b, size_t bn, size_t max_diffs, size_t abbrev,
                    struct pc_json_diff **diffs, size_t *n, size_t *total) {
  struct dlist dl = {diffs, n, total, max_diffs, abbrev};
  struct view va, vb;
  int rc = parse_canon(a, an, &va);
  if (!rc)
    rc = parse_canon(b, bn, &vb);
  else
    memset(&vb, 0, sizeof vb);
  int parsed = 0;
  if (!rc && va.json && vb.json) rc = diff_json(&dl, &va, &vb, &parsed);
  if (!rc && !parsed) rc = diff_bodies(&dl, &va, &vb);
  view_free(&va);
  view_free(&vb);
  return rc;
}

/* Parameters as sent: name before the first '=', value after it. */
static int parse_query(const char *q, size_t n, struct items *out) {
  const char *p = q, *e = q + n;
  while (p < e) {
    const char *amp = memchr(p, '&', (size_t)(e - p)), *fe = amp ? amp : e;
    if (fe > p) {
      const char *eq = memchr(p, '=', (size_t)(fe - p));
      struct item it = {0};
      it.name = span_of(p, (size_t)((eq ? eq : fe) - p));
      it.flag = eq != NULL;
      if (eq) it.data = span_of(eq + 1, (size_t)(fe - eq - 1));
      int rc = items_push(out, &it, PC_BODYKEY_MAX_FIELDS);
      if (rc) return rc;
    }
    p = amp ? amp + 1 : e;
  }
  return 0;
}

int pc_bodykey_query_diff(const char *a, size_t an, const char *b, size_t bn, size_t max_diffs, size_t abbrev,
                          struct pc_json_diff **diffs, size_t *n, size_t *total) {
  struct dlist dl = {diffs, n, total, max_diffs, abbrev};
  struct items ia = {0}, ib = {0};
  int rc = parse_query(a, an, &ia);
  if (!rc) rc = parse_query(b, bn, &ib);
  if (rc == MALFORMED) /* too many to match one by one */
    rc = emit_at(&dl, "@query", show(SHOW_BYTES, span_of(a, an), NULL, NULL),
                 show(SHOW_BYTES, span_of(b, bn), NULL, NULL));
  else if (!rc)
    rc = diff_items(&dl, "@query/", &ia, &ib, ITEMS_QUERY);
  free(ia.v);
  free(ib.v);
  return rc;
}

/* ---------- JSON form (export / import) ---------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard alphabet, padded, as a quoted JSON string. */
static int put_base64(pc_buf *out, struct span s) {
  const unsigned char *p = (const unsigned char *)s.p;
  int rc = pc_buf_putc(out, '"');
  for (size_t i = 0; i < s.n && !rc; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < s.n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < s.n) v |= p[i + 2];
    char q[4] = {B64[v >> 18 & 63], B64[v >> 12 & 63], i + 1 < s.n ? B64[v >> 6 & 63] : '=',
                 i + 2 < s.n ? B64[v & 63] : '='};
    rc = pc_buf_append(out, q, 4);
  }
  return rc ? rc : pc_buf_putc(out, '"');
}

static int b64_val(unsigned char c) {
  const char *q = c ? strchr(B64, c) : NULL;
  return q ? (int)(q - B64) : -1;
}

/* Strict: length a multiple of 4, padding only at the very end, unused bits
 * zero (one spelling per byte string). dst holds n / 4 * 3 bytes. */
static int base64_decode(const char *s, size_t n, char *dst, size_t *len) {
  size_t o = 0;
  if (n % 4) return PC_EINVAL;
  for (size_t i = 0; i < n; i += 4) {
    int pad = i + 4 == n ? (s[i + 3] == '=') + (s[i + 3] == '=' && s[i + 2] == '=') : 0;
    uint32_t w = 0;
    for (int j = 0; j < 4; j++) {
      int v = j >= 4 - pad ? 0 : b64_val((unsigned char)s[i + (size_t)j]);
      if (v < 0) return PC_EINVAL; /* '=' anywhere but the padding lands here too */
      w = w << 6 | (uint32_t)v;
    }
    if ((pad == 1 && (w & 0xFF)) || (pad == 2 && (w & 0xFFFF))) return PC_EINVAL;
    unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
    memcpy(dst + o, b, (size_t)(3 - pad));
    o += (size_t)(3 - pad);
  }
  *len = o;
  return 0;
}

/* A byte string: a JSON string when UTF-8, else {"base64":"..."}. */
static int put_bstr(pc_buf *out, struct span s) {
  if (is_utf8(s)) return pc_json_write_string(out, s.p, s.n);
  int rc = pc_buf_puts(out, "{\"base64\":");
  if (!rc) rc = put_base64(out, s);
  return rc ? rc : pc_buf_putc(out, '}');
}

/* Item bytes: ,"<text_member>":"..." when UTF-8, else ,"base64":"...". */
static int put_data(pc_buf *out, const char *text_member, struct span s) {
  int rc = pc_buf_printf(out, ",\"%s\":", is_utf8(s) ? text_member : "base64");
  if (rc) return rc;
  return is_utf8(s) ? pc_json_write_string(out, s.p, s.n) : put_base64(out, s);
}

static int put_item_json(pc_buf *out, enum pc_bodykey_kind k, const struct item *it) {
  int rc;
  if (k == PC_BODYKEY_FORM) {
    rc = pc_buf_putc(out, '[');
    if (!rc) rc = put_bstr(out, it->name);
    if (!rc) rc = pc_buf_putc(out, ',');
    if (!rc) rc = put_bstr(out, it->data);
    return rc ? rc : pc_buf_putc(out, ']');
  }
  rc = pc_buf_puts(out, "{\"name\":");
  if (!rc) rc = put_bstr(out, it->name);
  if (!rc && it->flag) rc = pc_buf_puts(out, ",\"filename\":");
  if (!rc && it->flag) rc = put_bstr(out, it->filename);
  if (!rc && !(it->type.n == 10 && !memcmp(it->type.p, "text/plain", 10))) {
    rc = pc_buf_puts(out, ",\"content_type\":");
    if (!rc) rc = put_bstr(out, it->type);
  }
  if (!rc) rc = put_data(out, "value", it->data);
  return rc ? rc : pc_buf_putc(out, '}');
}

static int put_view_json(pc_buf *out, const struct view *v) {
  if (v->kind == PC_BODYKEY_EMPTY) return pc_buf_puts(out, "{\"empty\":true}");
  int rc = pc_buf_puts(out, "{\"content_type\":");
  if (!rc) rc = put_bstr(out, v->type);
  if (!rc && v->kind == PC_BODYKEY_RAW) rc = put_data(out, "text", v->data);
  if (!rc && v->kind != PC_BODYKEY_RAW)
    rc = pc_buf_puts(out, v->kind == PC_BODYKEY_FORM ? ",\"form\":[" : ",\"multipart\":[");
  for (size_t i = 0; !rc && v->kind != PC_BODYKEY_RAW && i < v->items.n; i++) {
    if (i) rc = pc_buf_putc(out, ',');
    if (!rc) rc = put_item_json(out, v->kind, &v->items.v[i]);
  }
  if (!rc && v->kind != PC_BODYKEY_RAW) rc = pc_buf_putc(out, ']');
  return rc ? rc : pc_buf_putc(out, '}');
}

int pc_bodykey_to_json(const char *canon, size_t n, pc_buf *out) {
  struct view v;
  size_t mark = out->len;
  int rc = parse_canon(canon, n, &v);
  if (!rc && v.json) rc = PC_ECORRUPT;
  if (!rc) rc = put_view_json(out, &v);
  if (rc) {
    out->len = mark;
    if (out->data) out->data[mark] = '\0';
  }
  view_free(&v);
  return rc;
}

/* Bytes decoded from base64 while importing: owned here, freed at once. */
struct blobs {
  char **v;
  size_t n;
};

static void blobs_free(struct blobs *b) {
  for (size_t i = 0; i < b->n; i++) free(b->v[i]);
  free(b->v);
}

static int decode_into(struct blobs *bl, const struct pc_json *s, struct span *out) {
  if (!s || s->type != PC_JSON_STRING) return PC_EINVAL;
  char **v = realloc(bl->v, (bl->n + 1) * sizeof *v);
  if (!v) return PC_ENOMEM;
  bl->v = v;
  char *dst = malloc(s->len / 4 * 3 + 1);
  if (!dst) return PC_ENOMEM;
  bl->v[bl->n++] = dst;
  size_t len = 0;
  int rc = base64_decode(s->str, s->len, dst, &len);
  *out = span_of(dst, len);
  return rc;
}

/* A byte string as put_bstr wrote it. */
static int get_bstr(struct blobs *bl, const struct pc_json *v, struct span *out) {
  if (v && v->type == PC_JSON_STRING) {
    *out = span_of(v->str, v->len);
    return 0;
  }
  if (!v || v->type != PC_JSON_OBJECT || v->len != 1) return PC_EINVAL;
  return decode_into(bl, pc_json_get(v, "base64"), out);
}

/* Item bytes as put_data wrote them: exactly one of text_member / "base64". */
static int get_data(struct blobs *bl, const struct pc_json *obj, const char *text_member, struct span *out) {
  const struct pc_json *t = pc_json_get(obj, text_member), *b = pc_json_get(obj, "base64");
  if (!t == !b) return PC_EINVAL;
  if (b) return decode_into(bl, b, out);
  if (t->type != PC_JSON_STRING) return PC_EINVAL;
  *out = span_of(t->str, t->len);
  return 0;
}

static int get_item(struct blobs *bl, enum pc_bodykey_kind k, const struct pc_json *e, struct item *it) {
  memset(it, 0, sizeof *it);
  if (k == PC_BODYKEY_FORM) {
    if (e->type != PC_JSON_ARRAY || e->len != 2) return PC_EINVAL;
    int rc = get_bstr(bl, &e->kids[0], &it->name);
    return rc ? rc : get_bstr(bl, &e->kids[1], &it->data);
  }
  if (e->type != PC_JSON_OBJECT) return PC_EINVAL;
  const struct pc_json *fn = pc_json_get(e, "filename"), *ct = pc_json_get(e, "content_type");
  int rc = get_bstr(bl, pc_json_get(e, "name"), &it->name);
  it->flag = fn != NULL;
  if (!rc && fn) rc = get_bstr(bl, fn, &it->filename);
  it->type = span_of("text/plain", 10);
  if (!rc && ct) rc = get_bstr(bl, ct, &it->type);
  if (!rc) rc = get_data(bl, e, "value", &it->data);
  return rc;
}

static int get_items(struct blobs *bl, enum pc_bodykey_kind k, const struct pc_json *arr, struct items *out) {
  if (arr->type != PC_JSON_ARRAY) return PC_EINVAL;
  size_t max = k == PC_BODYKEY_FORM ? PC_BODYKEY_MAX_FIELDS : PC_BODYKEY_MAX_PARTS;
  int rc = 0;
  for (size_t i = 0; i < arr->len && !rc; i++) {
    struct item it;
    rc = get_item(bl, k, &arr->kids[i], &it);
    if (!rc) rc = items_push(out, &it, max);
    if (rc == MALFORMED) rc = PC_EINVAL;
  }
  if (!rc && k == PC_BODYKEY_FORM) sort_fields(out);
  return rc;
}

/* The kind a JSON value describes: exactly one of its kind members. */
static int json_kind(const struct pc_json *v, enum pc_bodykey_kind *k, const struct pc_json **m) {
  static const struct {
    const char *name;
    enum pc_bodykey_kind kind;
  } members[] = {{"multipart", PC_BODYKEY_MULTIPART},
                 {"form", PC_BODYKEY_FORM},
                 {"text", PC_BODYKEY_RAW},
                 {"base64", PC_BODYKEY_RAW}};
  int found = 0;
  for (size_t i = 0; i < sizeof members / sizeof *members; i++) {
    const struct pc_json *x = pc_json_get(v, members[i].name);
    if (!x) continue;
    found++;
    *k = members[i].kind;
    *m = x;
  }
  return found == 1 ? 0 : PC_EINVAL;
}

/* The kind must be one pc_bodykey_canon could have given this type. */
static int type_fits(enum pc_bodykey_kind k, struct span type) {
  if (k == PC_BODYKEY_MULTIPART) return span_ieq(type, "multipart/", 1);
  if (k == PC_BODYKEY_FORM) return span_ieq(type, FORM_TYPE, 0);
  return 1;
}

int pc_bodykey_from_json(const struct pc_json *v, pc_buf *out) {
  if (!v || v->type != PC_JSON_OBJECT) return PC_EINVAL;
  const struct pc_json *empty = pc_json_get(v, "empty"), *m = NULL;
  if (empty) return empty->type == PC_JSON_TRUE && v->len == 1 ? 0 : PC_EINVAL;
  struct blobs bl = {0};
  struct items it = {0};
  struct span type, raw = {"", 0};
  enum pc_bodykey_kind k = PC_BODYKEY_RAW;
  int rc = get_bstr(&bl, pc_json_get(v, "content_type"), &type);
  if (!rc) rc = json_kind(v, &k, &m);
  if (!rc && !type_fits(k, type)) rc = PC_EINVAL;
  if (!rc && k == PC_BODYKEY_RAW) rc = get_data(&bl, v, "text", &raw);
  if (!rc && k != PC_BODYKEY_RAW) rc = get_items(&bl, k, m, &it);
  if (!rc && k == PC_BODYKEY_RAW && !raw.n) k = PC_BODYKEY_EMPTY; /* as canon keys an empty body */
  if (!rc) rc = write_canon(out, k, type, &it, raw);
  free(it.v);
  blobs_free(&bl);
  return rc;
}

int pc_bodykey_from_json_text(const char *json, size_t len, pc_buf *out) {
  struct pc_json_doc *doc = NULL;
  int rc = pc_json_parse(json, len, &doc, NULL);
  if (!rc) rc = pc_bodykey_from_json(pc_json_root(doc), out);
  pc_json_free(doc);
  return rc;
}
