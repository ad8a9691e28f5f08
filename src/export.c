/* export.c — the JSON Lines recording format (SPEC §9, see export.h).
 *
 * One line per entry, members in a fixed order:
 *   {"key","namespace","created","expires",
 *    "request":{"method","route","path","headers","body"},
 *    "response":{"status","headers", "body"[,"body_raw"] | "body_base64" | "events"},
 *    "usage","model"}
 * What must stay true here:
 *  - export → import → export is byte-identical. The exported "key" is the key
 *    the entry gets after import: the key material rebuilt with an empty
 *    credential (fingerprints are never exported), by the same function
 *    (material_build) on both sides.
 *  - Bodies round-trip exactly. A JSON response body is embedded as a value;
 *    when writing it back compactly does not give the stored bytes, the exact
 *    text follows as "body_raw" (import prefers it). A body whose top-level
 *    JSON value is a string, or that is not JSON, is exported as a string of
 *    its bytes (so "body" as a JSON string always means "these bytes").
 *    Bytes that are not valid UTF-8 go out as "body_base64" (and, per SSE
 *    event, "data_base64": a network chunk may split a UTF-8 sequence).
 *  - Lines are ordered by their exported key (not the stored one, which may
 *    be credential-scoped); stored entries that share one exported key
 *    (same request, different credentials) are exported once, the newest.
 *  - Nothing reaches `out` before every entry was scanned for secret-shaped
 *    strings: lines are staged in an anonymous temporary file and copied to
 *    `out`, sorted, only when the whole walk succeeded. The walk is one read txn, so
 *    the export is one consistent snapshot even while a server writes.
 *  - Import validates a whole file (staging encoded entries in a temporary
 *    file) before storing anything, so a bad line stores nothing.
 *  - pc_export returns PC_EINVAL only for a refused secret (the CLI maps it
 *    to exit status 3); any other failure uses another code. */
#include "export.h"
#include "utf8.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>

#include "canon.h"
#include "entry.h"
#include "error.h"
#include "json.h"
#include "key.h"

#define LINE_MAX_BYTES ((size_t)1 << 30) /* one exported line / one imported line */
#define FIELD_MAX ((size_t)64 * 1024)    /* route, method, path, namespace, header values */
#define POINTER_MAX ((size_t)64 * 1024)
#define HEADERS_MAX ((size_t)1 << 20)
#define TIME_LEN 80
#define N_FIELDS (4 + PC_KEY_N_HEADERS)

/* ====================================================================== */
/* Small text helpers                                                      */
/* ====================================================================== */

/* A JSON string of `n` bytes; invalid UTF-8 sequences become U+FFFD (used
 * only for response header values, which are not part of the key). */
static int put_string_lossy(pc_buf *out, const char *s, size_t n) {
  if (pc_utf8_valid(s, n)) return pc_json_write_string(out, s, n);
  pc_buf fixed;
  int rc = 0;
  pc_buf_init(&fixed, n * 3 + 1);
  for (size_t i = 0; i < n && !rc;) {
    size_t k = pc_utf8_seq((const unsigned char *)s + i, n - i);
    rc = k ? pc_buf_append(&fixed, s + i, k) : pc_buf_puts(&fixed, "\xEF\xBF\xBD");
    i += k ? k : 1;
  }
  if (!rc) rc = pc_json_write_string(out, fixed.data ? fixed.data : "", fixed.len);
  pc_buf_free(&fixed);
  return rc;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard alphabet, padded, as a quoted JSON string. */
static int put_base64(pc_buf *out, const void *data, size_t n) {
  const unsigned char *p = data;
  int rc = pc_buf_reserve(out, (n + 2) / 3 * 4 + 2);
  if (rc) return rc;
  (void)pc_buf_putc(out, '"');
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    char q[4] = {B64[v >> 18 & 63], B64[v >> 12 & 63], i + 1 < n ? B64[v >> 6 & 63] : '=',
                 i + 2 < n ? B64[v & 63] : '='};
    (void)pc_buf_append(out, q, 4);
  }
  return pc_buf_putc(out, '"');
}

static int b64_val(unsigned char c) {
  const char *q = c ? strchr(B64, c) : NULL;
  return q ? (int)(q - B64) : -1;
}

/* Strict decoding: length a multiple of 4, padding only at the end. */
static int base64_decode(const char *s, size_t n, pc_buf *out) {
  if (n % 4) return PC_EINVAL;
  for (size_t i = 0; i < n; i += 4) {
    int v[4], pad = 0;
    for (int j = 0; j < 4; j++) {
      unsigned char c = (unsigned char)s[i + (size_t)j];
      v[j] = c == '=' && i + 4 == n && j >= 2 ? 0 : b64_val(c);
      if (c == '=' && v[j] == 0) pad++;
      else if (pad) return PC_EINVAL; /* data after padding */
      if (v[j] < 0) return PC_EINVAL;
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
    int rc = pc_buf_append(out, b, (size_t)(3 - pad));
    if (rc) return rc;
  }
  return 0;
}

/* RFC 3339 in UTC with milliseconds: 2025-01-31T12:34:56.789Z */
static void format_time(int64_t ms, char out[TIME_LEN]) {
  int64_t sec = ms / 1000, rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    sec--;
  }
  time_t t = (time_t)sec;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) {
    snprintf(out, TIME_LEN, "1970-01-01T00:00:00.000Z");
    return;
  }
  snprintf(out, TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

/* Exactly `n` digits at *s (advanced); -1 when they are not there. */
static int digits(const char **s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++, (*s)++) {
    if (!isdigit((unsigned char)**s)) return -1;
    v = v * 10 + (**s - '0');
  }
  return v;
}

static int expect(const char **s, char c) {
  if (**s != c && !(c == 'T' && (**s == 't' || **s == ' '))) return -1;
  (*s)++;
  return 0;
}

/* Fraction digits (any number, milliseconds kept) and the zone: Z or ±HH:MM. */
static int parse_zone(const char *s, int *ms, int *offset_min) {
  *ms = 0;
  if (*s == '.') {
    int n = 0;
    for (s++; isdigit((unsigned char)*s); s++, n++)
      if (n < 3) *ms = *ms * 10 + (*s - '0');
    if (n == 0) return -1;
    for (; n < 3; n++) *ms *= 10;
  }
  *offset_min = 0;
  if ((*s == 'Z' || *s == 'z') && s[1] == '\0') return 0;
  if (*s != '+' && *s != '-') return -1;
  int sign = *s++ == '-' ? -1 : 1;
  int hh = digits(&s, 2);
  if (hh < 0 || expect(&s, ':')) return -1;
  int mm = digits(&s, 2);
  if (mm < 0 || hh > 23 || mm > 59 || *s) return -1;
  *offset_min = sign * (hh * 60 + mm);
  return 0;
}

static int parse_time(const char *s, int64_t *out) {
  struct tm tm;
  int ms, off;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = digits(&s, 4) - 1900;
  if (tm.tm_year < -1900 || expect(&s, '-')) return PC_EINVAL;
  tm.tm_mon = digits(&s, 2) - 1;
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || expect(&s, '-')) return PC_EINVAL;
  tm.tm_mday = digits(&s, 2);
  if (tm.tm_mday < 1 || tm.tm_mday > 31 || expect(&s, 'T')) return PC_EINVAL;
  tm.tm_hour = digits(&s, 2);
  if (tm.tm_hour < 0 || tm.tm_hour > 23 || expect(&s, ':')) return PC_EINVAL;
  tm.tm_min = digits(&s, 2);
  if (tm.tm_min < 0 || tm.tm_min > 59 || expect(&s, ':')) return PC_EINVAL;
  tm.tm_sec = digits(&s, 2);
  if (tm.tm_sec < 0 || tm.tm_sec > 60 || parse_zone(s, &ms, &off)) return PC_EINVAL;
  time_t t = timegm(&tm);
  *out = ((int64_t)t - (int64_t)off * 60) * 1000 + ms;
  return 0;
}

/* ====================================================================== */
/* The request fields and the shared-space key                             */
/* ====================================================================== */

/* The request part of the key material as NUL-terminated strings: route,
 * method, path (with its sorted query), namespace, the key headers. */
struct req_fields {
  char *f[N_FIELDS];
  const char *body; /* canonical JSON, borrowed */
  size_t body_len;
};

enum { F_ROUTE, F_METHOD, F_PATH, F_NS, F_HDR0 };

static const char *field_name(int i) {
  static const char *const names[4] = {"route", "method", "path", "namespace"};
  return i < F_HDR0 ? names[i] : pc_key_headers[i - F_HDR0];
}

static void fields_free(struct req_fields *r) {
  for (int i = 0; i < N_FIELDS; i++) {
    free(r->f[i]);
    r->f[i] = NULL;
  }
}

/* Copy one field; NUL bytes or oversize values cannot be represented. */
static int field_set(struct req_fields *r, int i, const char *p, size_t n) {
  if (n > FIELD_MAX || memchr(p, '\0', n)) return PC_EINVAL;
  r->f[i] = malloc(n + 1);
  if (!r->f[i]) return PC_ENOMEM;
  memcpy(r->f[i], p, n);
  r->f[i][n] = '\0';
  return 0;
}

/* The key material with an empty credential: the key an imported entry has.
 * Export and import both build it here, so they can never disagree. */
static int material_build(const struct req_fields *r, pc_buf *out) {
  char *q = strchr(r->f[F_PATH], '?');
  struct pc_key_input in = {.route = r->f[F_ROUTE],
                            .method = r->f[F_METHOD],
                            .path = r->f[F_PATH],
                            .path_len = q ? (size_t)(q - r->f[F_PATH]) : strlen(r->f[F_PATH]),
                            .query = q ? q + 1 : NULL,
                            .ns = r->f[F_NS],
                            .cred_fp_hex = "",
                            .body = r->body,
                            .body_len = r->body_len};
  for (int i = 0; i < PC_KEY_N_HEADERS; i++) in.headers[i] = r->f[F_HDR0 + i];
  return pc_key_material(&in, out);
}

/* Split a stored key material into fields (every field must be present). */
static int fields_from_material(const struct pc_slice *m, struct req_fields *r) {
  const char *p;
  size_t n;
  int rc = 0;
  for (int i = 0; i < N_FIELDS && !rc; i++) {
    rc = pc_key_material_field(m->p, m->n, field_name(i), &p, &n);
    if (!rc) rc = pc_utf8_valid(p, n) ? field_set(r, i, p, n) : PC_EINVAL;
  }
  if (!rc) rc = pc_key_material_field(m->p, m->n, "body", &r->body, &r->body_len);
  return rc == PC_EINVAL || rc == PC_ENOTFOUND ? PC_ECORRUPT : rc;
}

/* ====================================================================== */
/* Secret-shaped strings                                                   */
/* ====================================================================== */

static int word_char(unsigned char c) { return isalnum(c) || c == '_' || c == '-'; }
static int upper_digit(unsigned char c) { return isupper(c) || isdigit(c); }
static int token68(unsigned char c) { return isalnum(c) || strchr("-._~+/=", c) != NULL; }

static size_t run_of(const char *s, size_t n, size_t i, int (*cls)(unsigned char)) {
  size_t k = i;
  while (k < n && s[k] && cls((unsigned char)s[k])) k++;
  return k - i;
}

static int starts(const char *s, size_t n, size_t i, const char *lit) {
  size_t l = strlen(lit);
  return n - i >= l && !memcmp(s + i, lit, l);
}

static const char *private_key_at(const char *s, size_t n, size_t i) {
  if (!starts(s, n, i, "-----BEGIN ")) return NULL;
  size_t lim = i + 11 + 64 < n ? i + 11 + 64 : n;
  for (size_t k = i + 11; k < lim && s[k] != '\n'; k++)
    if (starts(s, n, k, "PRIVATE KEY-----")) return "a private key (-----BEGIN ... PRIVATE KEY-----)";
  return NULL;
}

/* What secret-shaped thing starts at s[i], or NULL. Prefixes must start a
 * word, so "task-..." or "risk-..." is not an "sk-" key. */
static const char *secret_at(const char *s, size_t n, size_t i) {
  if (i > 0 && word_char((unsigned char)s[i - 1])) return NULL;
  if (starts(s, n, i, "sk-") && run_of(s, n, i + 3, word_char) >= 16) return "an API key (sk-...)";
  if (n - i > 7 && !strncasecmp(s + i, "bearer ", 7) && run_of(s, n, i + 7, token68) >= 16)
    return "a bearer token (Bearer ...)";
  if ((starts(s, n, i, "AKIA") || starts(s, n, i, "ASIA")) && run_of(s, n, i + 4, upper_digit) == 16)
    return "an AWS access key id (AKIA.../ASIA...)";
  if (starts(s, n, i, "AIza") && run_of(s, n, i + 4, word_char) >= 35) return "a Google API key (AIza...)";
  return private_key_at(s, n, i);
}

static const char *secret_in(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c != 's' && c != 'B' && c != 'b' && c != 'A' && c != '-') continue;
    const char *kind = secret_at(s, n, i);
    if (kind) return kind;
  }
  return NULL;
}

/* Where a secret was found: a JSON pointer into the exported line. */
struct secret_hit {
  const char *kind;
  char pointer[512];
};

/* Record a hit at `ptr` (control bytes shown as '?', so the message stays one line). */
static int hit_at(struct secret_hit *h, const char *kind, const pc_buf *ptr) {
  h->kind = kind;
  snprintf(h->pointer, sizeof h->pointer, "%s", ptr->data ? ptr->data : "");
  for (char *p = h->pointer; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
  return 1;
}

/* Append "/" and an RFC 6901 reference token (~ → ~0, / → ~1). */
static int ptr_push(pc_buf *ptr, const char *tok, size_t n) {
  int rc = pc_buf_putc(ptr, '/');
  for (size_t i = 0; i < n && !rc; i++) {
    /* tok is a parsed member name of n bytes (the analyzer loses it in the JSON arena) */
    if (tok[i] == '~') rc = pc_buf_puts(ptr, "~0"); // NOLINT(clang-analyzer-core.UndefinedBinaryOperatorResult)
    else if (tok[i] == '/') rc = pc_buf_puts(ptr, "~1");
    else rc = pc_buf_putc(ptr, tok[i]);
  }
  return rc;
}

static void ptr_pop(pc_buf *ptr, size_t mark) {
  ptr->len = mark;
  if (ptr->data) ptr->data[mark] = '\0';
}

/* 1 when a string (or member name) under v holds a secret, else 0 or an error. */
static int scan_json(const struct pc_json *v, pc_buf *ptr, struct secret_hit *h) {
  int rc = 0;
  if (v->type == PC_JSON_STRING) {
    const char *kind = secret_in(v->str, v->len);
    return kind ? hit_at(h, kind, ptr) : 0;
  }
  if (v->type != PC_JSON_ARRAY && v->type != PC_JSON_OBJECT) return 0;
  for (size_t i = 0; i < v->len && !rc; i++) {
    size_t mark = ptr->len;
    char idx[24];
    if (v->type == PC_JSON_OBJECT) {
      rc = ptr_push(ptr, v->keys[i], v->key_lens[i]);
      const char *kind = rc ? NULL : secret_in(v->keys[i], v->key_lens[i]);
      if (kind) rc = hit_at(h, kind, ptr);
    } else {
      snprintf(idx, sizeof idx, "%zu", i);
      rc = ptr_push(ptr, idx, strlen(idx));
    }
    if (!rc) rc = scan_json(&v->kids[i], ptr, h);
    ptr_pop(ptr, mark);
  }
  return rc;
}

/* Raw bytes at the pointer `at`. */
static int scan_bytes(const char *s, size_t n, const char *at, struct secret_hit *h) {
  const char *kind = secret_in(s, n);
  if (!kind) return 0;
  h->kind = kind;
  snprintf(h->pointer, sizeof h->pointer, "%s", at);
  return 1;
}

/* ====================================================================== */
/* One entry prepared for export                                           */
/* ====================================================================== */

enum body_kind { BODY_JSON, BODY_JSON_RAW, BODY_TEXT, BODY_BASE64, BODY_EVENTS };

struct view {
  struct pc_entry e;
  struct req_fields req;
  struct pc_key key;            /* the shared-space key (what import will store under) */
  struct pc_json_doc *req_body; /* the canonical request body, parsed */
  struct pc_json_doc *resp_body; /* BODY_JSON / BODY_JSON_RAW */
  struct pc_json_doc *usage;     /* NULL: exported as null */
  enum body_kind kind;
};

static void view_close(struct view *v) {
  fields_free(&v->req);
  pc_json_free(v->req_body);
  pc_json_free(v->resp_body);
  pc_json_free(v->usage);
  memset(v, 0, sizeof *v);
}

/* How the response body is exported (see the file comment). */
static int classify_body(struct view *v) {
  const struct pc_slice *b = &v->e.body;
  pc_buf compact;
  int rc = 0;
  if (v->e.flags & PC_ENTRY_F_SSE) v->kind = BODY_EVENTS;
  else if (!pc_utf8_valid(b->p, b->n)) v->kind = BODY_BASE64;
  else if (pc_json_parse(b->p, b->n, &v->resp_body, NULL) ||
           pc_json_root(v->resp_body)->type == PC_JSON_STRING)
    v->kind = BODY_TEXT;
  else v->kind = BODY_JSON;
  if (v->kind == BODY_TEXT && v->resp_body) {
    pc_json_free(v->resp_body);
    v->resp_body = NULL;
  }
  if (v->kind != BODY_JSON) return 0;
  pc_buf_init(&compact, b->n + 1);
  rc = pc_json_write(pc_json_root(v->resp_body), &compact);
  if (rc == PC_ETOOBIG || (!rc && (compact.len != b->n || memcmp(compact.data, b->p, b->n)))) {
    v->kind = BODY_JSON_RAW;
    rc = 0;
  }
  pc_buf_free(&compact);
  return rc;
}

/* Decode (checksum verified), split the request, compute the shared key. */
static int view_open(struct view *v, const void *val, size_t len) {
  pc_buf m;
  pc_buf_init(&m, LINE_MAX_BYTES);
  memset(v, 0, sizeof *v);
  int rc = pc_entry_decode(val, len, 1, &v->e);
  if (!rc) rc = fields_from_material(&v->e.request, &v->req);
  if (!rc) rc = material_build(&v->req, &m);
  if (!rc) pc_key_hash(m.data, m.len, &v->key);
  if (!rc && pc_json_parse(v->req.body, v->req.body_len, &v->req_body, NULL)) rc = PC_ECORRUPT;
  if (!rc && v->e.usage.n && pc_json_parse(v->e.usage.p, v->e.usage.n, &v->usage, NULL)) v->usage = NULL;
  if (!rc) rc = classify_body(v);
  pc_buf_free(&m);
  return rc;
}

/* Call fn(name, value) for each "Name: value" line of the stored headers. */
typedef int (*header_fn)(void *ud, const char *name, size_t nlen, const char *val, size_t vlen);

static int each_header(const struct pc_slice *h, header_fn fn, void *ud) {
  const char *p = h->p, *end = h->p + h->n;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *colon = memchr(p, ':', (size_t)(le - p));
    if (colon && colon > p) {
      const char *v = colon + 1, *ve = le;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      int rc = fn(ud, p, (size_t)(colon - p), v, (size_t)(ve - v));
      if (rc) return rc;
    }
    p = nl ? nl + 1 : end;
  }
  return 0;
}

/* A header name in lower case, as a bounded NUL-terminated copy. */
static void lower_name(const char *name, size_t n, char *out, size_t cap) {
  if (n >= cap) n = cap - 1;
  for (size_t i = 0; i < n; i++) out[i] = (char)tolower((unsigned char)name[i]);
  out[n] = '\0';
}

struct hdr_scan {
  struct secret_hit *h;
  pc_buf ptr;
};

static int scan_header(void *ud, const char *name, size_t nlen, const char *val, size_t vlen) {
  struct hdr_scan *s = ud;
  char lname[256];
  const char *kind = secret_in(val, vlen);
  if (!kind) return 0;
  lower_name(name, nlen, lname, sizeof lname);
  pc_buf_reset(&s->ptr);
  int rc = pc_buf_puts(&s->ptr, "/response/headers");
  if (!rc) rc = ptr_push(&s->ptr, lname, strlen(lname));
  return rc ? rc : hit_at(s->h, kind, &s->ptr);
}

/* Chunk i of an SSE body as [start, end) and its time; a body tail past the
 * last recorded chunk end is one more event at the last time. */
static uint32_t n_events(const struct pc_entry *e) {
  uint32_t last = e->n_chunks ? pc_entry_chunk(e, e->n_chunks - 1).end : 0;
  return e->n_chunks + (last < e->body.n || e->n_chunks == 0 ? 1 : 0);
}

static void event_at(const struct pc_entry *e, uint32_t i, size_t *start, size_t *end, uint32_t *t_ms) {
  *start = i ? pc_entry_chunk(e, i - 1).end : 0;
  if (i < e->n_chunks) {
    struct pc_chunk c = pc_entry_chunk(e, i);
    *end = c.end;
    *t_ms = c.t_ms;
  } else {
    *end = e->body.n;
    *t_ms = e->n_chunks ? pc_entry_chunk(e, e->n_chunks - 1).t_ms : 0;
  }
}

static int scan_events(const struct pc_entry *e, struct secret_hit *h) {
  for (uint32_t i = 0; i < n_events(e); i++) {
    size_t s, end;
    uint32_t t;
    char at[64];
    event_at(e, i, &s, &end, &t);
    snprintf(at, sizeof at, "/response/events/%u/%s", i,
             pc_utf8_valid(e->body.p + s, end - s) ? "data" : "data_base64");
    if (scan_bytes(e->body.p + s, end - s, at, h)) return 1;
  }
  return 0;
}

static int scan_response_body(const struct view *v, pc_buf *ptr, struct secret_hit *h) {
  const struct pc_slice *b = &v->e.body;
  switch (v->kind) {
  case BODY_EVENTS: return scan_events(&v->e, h);
  case BODY_BASE64: return scan_bytes(b->p, b->n, "/response/body_base64", h);
  case BODY_TEXT: return scan_bytes(b->p, b->n, "/response/body", h);
  default: break;
  }
  pc_buf_reset(ptr);
  int rc = pc_buf_puts(ptr, "/response/body");
  return rc ? rc : scan_json(pc_json_root(v->resp_body), ptr, h);
}

/* 1 (and *h filled) when the entry holds something secret-shaped. */
static int scan_view(const struct view *v, struct secret_hit *h) {
  struct hdr_scan hs = {h, {0}};
  pc_buf_init(&hs.ptr, POINTER_MAX);
  int rc = scan_bytes(v->req.f[F_PATH], strlen(v->req.f[F_PATH]), "/request/path", h);
  if (!rc) rc = pc_buf_puts(&hs.ptr, "/request/body");
  if (!rc) rc = scan_json(pc_json_root(v->req_body), &hs.ptr, h);
  if (!rc) rc = each_header(&v->e.headers, scan_header, &hs);
  if (!rc) rc = scan_response_body(v, &hs.ptr, h);
  pc_buf_free(&hs.ptr);
  return rc;
}

/* ====================================================================== */
/* Writing one line                                                        */
/* ====================================================================== */

static int put_member(pc_buf *out, const char *name) {
  int rc = pc_json_write_string(out, name, strlen(name));
  return rc ? rc : pc_buf_putc(out, ':');
}

static int put_str_member(pc_buf *out, const char *name, const char *s, size_t n) {
  int rc = put_member(out, name);
  return rc ? rc : pc_json_write_string(out, s, n);
}

static int put_time_member(pc_buf *out, const char *name, int64_t ms, int null_if_zero) {
  char t[TIME_LEN];
  int rc = put_member(out, name);
  if (rc) return rc;
  if (null_if_zero && ms == 0) return pc_buf_puts(out, "null");
  format_time(ms, t);
  return pc_json_write_string(out, t, strlen(t));
}

static int put_request(pc_buf *out, const struct view *v) {
  int rc = pc_buf_puts(out, "\"request\":{");
  if (!rc) rc = put_str_member(out, "method", v->req.f[F_METHOD], strlen(v->req.f[F_METHOD]));
  if (!rc) rc = pc_buf_putc(out, ',');
  if (!rc) rc = put_str_member(out, "route", v->req.f[F_ROUTE], strlen(v->req.f[F_ROUTE]));
  if (!rc) rc = pc_buf_putc(out, ',');
  if (!rc) rc = put_str_member(out, "path", v->req.f[F_PATH], strlen(v->req.f[F_PATH]));
  if (!rc) rc = pc_buf_puts(out, ",\"headers\":{");
  int first = 1;
  for (int i = 0; i < PC_KEY_N_HEADERS && !rc; i++) {
    const char *val = v->req.f[F_HDR0 + i];
    if (!*val) continue;
    if (!first) rc = pc_buf_putc(out, ',');
    if (!rc) rc = put_str_member(out, pc_key_headers[i], val, strlen(val));
    first = 0;
  }
  if (!rc) rc = pc_buf_puts(out, "},\"body\":");
  if (!rc) rc = pc_json_write(pc_json_root(v->req_body), out);
  if (!rc) rc = pc_buf_putc(out, '}');
  return rc;
}

struct hdr_write {
  pc_buf *out;
  int n;
};

static int write_header(void *ud, const char *name, size_t nlen, const char *val, size_t vlen) {
  struct hdr_write *w = ud;
  char lname[256];
  lower_name(name, nlen, lname, sizeof lname);
  int rc = w->n++ ? pc_buf_putc(w->out, ',') : 0;
  if (!rc) rc = put_string_lossy(w->out, lname, strlen(lname));
  if (!rc) rc = pc_buf_putc(w->out, ':');
  if (!rc) rc = put_string_lossy(w->out, val, vlen);
  return rc;
}

static int put_events(pc_buf *out, const struct pc_entry *e) {
  int rc = pc_buf_puts(out, "\"events\":[");
  for (uint32_t i = 0; i < n_events(e) && !rc; i++) {
    size_t s, end;
    uint32_t t;
    event_at(e, i, &s, &end, &t);
    rc = pc_buf_printf(out, "%s{\"t_ms\":%u,", i ? "," : "", t);
    if (rc) break;
    if (pc_utf8_valid(e->body.p + s, end - s)) {
      rc = put_str_member(out, "data", e->body.p + s, end - s);
    } else {
      rc = put_member(out, "data_base64");
      if (!rc) rc = put_base64(out, e->body.p + s, end - s);
    }
    if (!rc) rc = pc_buf_putc(out, '}');
  }
  return rc ? rc : pc_buf_putc(out, ']');
}

static int put_response_body(pc_buf *out, const struct view *v) {
  const struct pc_slice *b = &v->e.body;
  int rc = 0;
  switch (v->kind) {
  case BODY_EVENTS: return put_events(out, &v->e);
  case BODY_BASE64:
    rc = put_member(out, "body_base64");
    return rc ? rc : put_base64(out, b->p, b->n);
  case BODY_TEXT: return put_str_member(out, "body", b->p, b->n);
  case BODY_JSON:
  case BODY_JSON_RAW: break;
  }
  rc = put_member(out, "body");
  if (!rc) rc = pc_json_write(pc_json_root(v->resp_body), out);
  if (!rc && v->kind == BODY_JSON_RAW) rc = pc_buf_putc(out, ',');
  if (!rc && v->kind == BODY_JSON_RAW) rc = put_str_member(out, "body_raw", b->p, b->n);
  return rc;
}

static int put_response(pc_buf *out, const struct view *v) {
  struct hdr_write hw = {out, 0};
  int rc = pc_buf_printf(out, "\"response\":{\"status\":%d,\"headers\":{", v->e.status);
  if (!rc) rc = each_header(&v->e.headers, write_header, &hw);
  if (!rc) rc = pc_buf_puts(out, "},");
  if (!rc) rc = put_response_body(out, v);
  if (!rc) rc = pc_buf_putc(out, '}');
  return rc;
}

static int write_line(pc_buf *out, const struct view *v) {
  char hex[PC_KEY_HEX_LEN + 1];
  pc_key_hex(&v->key, hex);
  int rc = pc_buf_puts(out, "{\"key\":\"");
  if (!rc) rc = pc_buf_puts(out, hex);
  if (!rc) rc = pc_buf_puts(out, "\",");
  if (!rc) rc = put_str_member(out, "namespace", v->req.f[F_NS], strlen(v->req.f[F_NS]));
  if (!rc) rc = pc_buf_putc(out, ',');
  if (!rc) rc = put_time_member(out, "created", v->e.created_ms, 0);
  if (!rc) rc = pc_buf_putc(out, ',');
  if (!rc) rc = put_time_member(out, "expires", v->e.expires_ms, 1);
  if (!rc) rc = pc_buf_putc(out, ',');
  if (!rc) rc = put_request(out, v);
  if (!rc) rc = pc_buf_putc(out, ',');
  if (!rc) rc = put_response(out, v);
  if (!rc) rc = pc_buf_puts(out, ",\"usage\":");
  if (!rc) rc = v->usage ? pc_json_write(pc_json_root(v->usage), out) : pc_buf_puts(out, "null");
  if (!rc) rc = pc_buf_putc(out, ',');
  if (!rc) rc = put_str_member(out, "model", v->e.model.p, v->e.model.n);
  if (!rc) rc = pc_buf_puts(out, "}\n");
  return rc;
}

/* ====================================================================== */
/* Export                                                                  */
/* ====================================================================== */

/* Where a staged line lives, and what orders it: lines go out sorted by
 * their exported key. Entries stored under different credential-scoped keys
 * can share one exported key; only the newest of them is exported (they
 * would overwrite each other on import anyway), so export → import → export
 * stays identical. */
struct staged {
  struct pc_key key; /* exported (shared-space) key */
  int64_t created_ms;
  uint8_t stored[16]; /* the key in this database: the last tie-breaker */
  off_t off;
  size_t len;
};

struct export_walk {
  const struct pc_export_opts *o;
  FILE *stage;  /* lines, copied to `out` once the walk succeeded */
  pc_buf index; /* struct staged[] */
  pc_buf line;
  char *err;
  size_t errlen;
};

/* Append one line to the stage and index it. */
static int stage_line(struct export_walk *w, const struct view *v, const uint8_t stored[16]) {
  struct staged s;
  memset(&s, 0, sizeof s);
  s.key = v->key;
  s.created_ms = v->e.created_ms;
  memcpy(s.stored, stored, 16);
  s.off = ftello(w->stage);
  s.len = w->line.len;
  if (s.off < 0 || fwrite(w->line.data, 1, w->line.len, w->stage) != w->line.len) return PC_EIO;
  return pc_buf_append(&w->index, &s, sizeof s);
}

static int export_one(void *ud, const uint8_t key[16], const void *val, size_t len) {
  struct export_walk *w = ud;
  struct view v;
  struct secret_hit hit;
  char hex[PC_KEY_HEX_LEN + 1];
  pc_key_hex((const struct pc_key *)(const void *)key, hex);
  int rc = view_open(&v, val, len);
  if (rc) {
    snprintf(w->err, w->errlen, "entry %s cannot be exported: %s", hex,
             rc == PC_EVERSION ? pc_strerror(rc) : "corrupt or not representable (run verify)");
    rc = rc == PC_EINVAL ? PC_ECORRUPT : rc;
    goto out;
  }
  if (w->o->ns && (v.e.ns.n != strlen(w->o->ns) || memcmp(v.e.ns.p, w->o->ns, v.e.ns.n))) goto out;
  if (!w->o->allow_secrets && (rc = scan_view(&v, &hit)) != 0) {
    if (rc == 1)
      snprintf(w->err, w->errlen, "refused: entry %s holds %s at %s (use --allow-secrets to export anyway)",
               hex, hit.kind, hit.pointer);
    rc = rc == 1 ? PC_EINVAL : rc == PC_EINVAL ? PC_EIO : rc;
    goto out;
  }
  pc_buf_reset(&w->line);
  rc = write_line(&w->line, &v);
  if (rc == PC_EINVAL) rc = PC_ECORRUPT;
  if (rc) snprintf(w->err, w->errlen, "entry %s cannot be exported: %s", hex, pc_strerror(rc));
  else rc = stage_line(w, &v, key);
out:
  view_close(&v);
  return rc;
}

/* By exported key; within one key the newest first, then by stored key. */
static int cmp_staged(const void *a, const void *b) {
  const struct staged *x = a, *y = b;
  int c = memcmp(x->key.b, y->key.b, 16);
  if (c) return c;
  if (x->created_ms != y->created_ms) return x->created_ms > y->created_ms ? -1 : 1;
  return memcmp(y->stored, x->stored, 16);
}

/* Copy the staged lines to `out` in order, one per exported key. */
static int write_sorted(struct export_walk *w, FILE *out) {
  struct staged *s = (struct staged *)(void *)w->index.data;
  size_t n = w->index.len / sizeof *s;
  int rc = 0;
  if (n > 1) qsort(s, n, sizeof *s, cmp_staged);
  if (fflush(w->stage)) return PC_EIO;
  for (size_t i = 0; i < n && !rc; i++) {
    if (i && !memcmp(s[i].key.b, s[i - 1].key.b, 16)) continue;
    pc_buf_reset(&w->line);
    rc = pc_buf_reserve(&w->line, s[i].len);
    if (!rc && (fseeko(w->stage, s[i].off, SEEK_SET) || fread(w->line.data, 1, s[i].len, w->stage) != s[i].len))
      rc = PC_EIO;
    if (!rc && fwrite(w->line.data, 1, s[i].len, out) != s[i].len) rc = PC_EIO;
  }
  if (!rc && fflush(out)) rc = PC_EIO;
  return rc;
}

int pc_export(pc_cache *c, const struct pc_export_opts *o, FILE *out, char *err, size_t errlen) {
  static const struct pc_export_opts defaults = {NULL, 0};
  struct export_walk w = {o ? o : &defaults, NULL, {0}, {0}, err, errlen};
  int rc = PC_EIO;
  if (errlen) err[0] = '\0';
  pc_buf_init(&w.line, LINE_MAX_BYTES);
  pc_buf_init(&w.index, LINE_MAX_BYTES);
  w.stage = tmpfile();
  if (!w.stage) {
    snprintf(err, errlen, "cannot create a temporary file");
    goto out;
  }
  rc = pc_cache_iterate(c, export_one, &w);
  if (rc == PC_EINVAL && !err[0]) rc = PC_EIO; /* PC_EINVAL means "secret" only */
  if (rc) goto out;
  rc = write_sorted(&w, out);
  if (rc) snprintf(err, errlen, "write failed: %s", pc_strerror(rc));
out:
  if (rc && errlen && !err[0]) snprintf(err, errlen, "export failed: %s", pc_strerror(rc));
  if (w.stage) fclose(w.stage);
  pc_buf_free(&w.line);
  pc_buf_free(&w.index);
  return rc;
}

/* ====================================================================== */
/* Import                                                                  */
/* ====================================================================== */

/* One parsed line on its way into an entry. Buffers own what the entry's
 * slices point at. */
struct line_in {
  const struct pc_json *root;
  struct req_fields req;
  pc_buf canon;    /* the canonical request body */
  pc_buf material; /* the key material */
  pc_buf headers;  /* "name: value\r\n" lines */
  pc_buf body;
  pc_buf chunks;   /* struct pc_chunk array */
  pc_buf usage;
  pc_buf scratch;
  struct pc_entry e;
  struct pc_key key;
  char model[128];
  char *why; /* the problem, for the error message */
  size_t whylen;
};

static void line_init(struct line_in *l, char *why, size_t whylen) {
  memset(l, 0, sizeof *l);
  pc_buf_init(&l->canon, LINE_MAX_BYTES);
  pc_buf_init(&l->material, LINE_MAX_BYTES);
  pc_buf_init(&l->headers, HEADERS_MAX);
  pc_buf_init(&l->body, LINE_MAX_BYTES);
  pc_buf_init(&l->chunks, LINE_MAX_BYTES);
  pc_buf_init(&l->usage, LINE_MAX_BYTES);
  pc_buf_init(&l->scratch, LINE_MAX_BYTES);
  l->why = why;
  l->whylen = whylen;
}

static void line_free(struct line_in *l) {
  fields_free(&l->req);
  pc_buf *bufs[] = {&l->canon, &l->material, &l->headers, &l->body, &l->chunks, &l->usage, &l->scratch};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) pc_buf_free(bufs[i]);
}

static int bad(struct line_in *l, const char *what, const char *name) {
  snprintf(l->why, l->whylen, "%s%s%s", name ? name : "", name ? ": " : "", what);
  return PC_EINVAL;
}

/* A member that must be present with type t (NULL allowed when may_null). */
static const struct pc_json *member(struct line_in *l, const struct pc_json *obj, const char *name,
                                    enum pc_json_type t, int may_null) {
  const struct pc_json *v = pc_json_get(obj, name);
  if (v && (v->type == t || (may_null && v->type == PC_JSON_NULL))) return v;
  if (t == PC_JSON_OBJECT) bad(l, v ? "must be an object" : "missing", name);
  else if (t == PC_JSON_NUMBER) bad(l, v ? "must be a number" : "missing", name);
  else bad(l, v ? "must be a string" : "missing", name);
  return NULL;
}

/* A string member without NUL bytes into req field i. */
static int str_field(struct line_in *l, const struct pc_json *obj, const char *name, int i) {
  const struct pc_json *v = member(l, obj, name, PC_JSON_STRING, 0);
  if (!v) return PC_EINVAL;
  if (strlen(v->str) != v->len) return bad(l, "holds a NUL character", name);
  int rc = field_set(&l->req, i, v->str, v->len);
  return rc == PC_EINVAL ? bad(l, "too long", name) : rc;
}

static int key_header_index(const char *name) {
  for (int i = 0; i < PC_KEY_N_HEADERS; i++)
    if (!strcmp(name, pc_key_headers[i])) return i;
  return -1;
}

static int request_headers(struct line_in *l, const struct pc_json *h) {
  int rc = 0;
  for (size_t i = 0; i < h->len && !rc; i++) {
    int k = key_header_index(h->keys[i]);
    if (k < 0) return bad(l, "not a key header (only anthropic-version, anthropic-beta, openai-beta, "
                             "openai-organization and openai-project are kept)", h->keys[i]);
    if (h->kids[i].type != PC_JSON_STRING) return bad(l, "must be a string", h->keys[i]);
    if (l->req.f[F_HDR0 + k]) return bad(l, "given twice", h->keys[i]);
    if (strlen(h->kids[i].str) != h->kids[i].len) return bad(l, "holds a NUL character", h->keys[i]);
    rc = field_set(&l->req, F_HDR0 + k, h->kids[i].str, h->kids[i].len);
  }
  for (int i = 0; i < PC_KEY_N_HEADERS && !rc; i++)
    if (!l->req.f[F_HDR0 + i]) rc = field_set(&l->req, F_HDR0 + i, "", 0);
  return rc;
}

/* The canonical body, the key material and its hash; the line's key must match. */
static int request_key(struct line_in *l, const struct pc_json *body) {
  struct pc_canon_info info;
  struct pc_key given;
  const struct pc_json *k = member(l, l->root, "key", PC_JSON_STRING, 0);
  if (!k) return PC_EINVAL;
  if (pc_key_from_hex(k->str, &given)) return bad(l, "must be 32 hex digits", "key");
  int rc = pc_json_write(body, &l->scratch);
  if (!rc) rc = pc_canon_json(l->scratch.data, l->scratch.len, NULL, 0, &l->canon, &info);
  if (rc) return rc == PC_ENOMEM || rc == PC_ETOOBIG ? rc : bad(l, pc_strerror(rc), "request.body");
  snprintf(l->model, sizeof l->model, "%s", info.model);
  l->req.body = l->canon.data ? l->canon.data : "";
  l->req.body_len = l->canon.len;
  rc = material_build(&l->req, &l->material);
  if (rc) return rc;
  pc_key_hash(l->material.data, l->material.len, &l->key);
  if (memcmp(given.b, l->key.b, 16)) {
    char hex[PC_KEY_HEX_LEN + 1];
    pc_key_hex(&l->key, hex);
    snprintf(l->why, l->whylen,
             "key %s does not match the request (its key is %s): the line was edited inconsistently", k->str, hex);
    return PC_EINVAL;
  }
  return 0;
}

static int parse_request(struct line_in *l) {
  const struct pc_json *r = member(l, l->root, "request", PC_JSON_OBJECT, 0), *h, *body;
  if (!r) return PC_EINVAL;
  int rc = str_field(l, r, "method", F_METHOD);
  if (!rc) rc = str_field(l, r, "route", F_ROUTE);
  if (!rc) rc = str_field(l, r, "path", F_PATH);
  if (!rc) rc = str_field(l, l->root, "namespace", F_NS);
  if (rc) return rc;
  if (!*l->req.f[F_METHOD]) return bad(l, "must not be empty", "method");
  if (l->req.f[F_PATH][0] != '/') return bad(l, "must start with '/'", "path");
  if (!(h = member(l, r, "headers", PC_JSON_OBJECT, 0))) return PC_EINVAL;
  rc = request_headers(l, h);
  if (rc) return rc;
  if (!(body = pc_json_get(r, "body"))) return bad(l, "missing", "request.body");
  return request_key(l, body);
}

static int header_text_ok(const char *s, size_t n, int is_name) {
  if (is_name && n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r' || c == '\n' || c == '\0') return 0;
    if (is_name && (c <= ' ' || c == ':' || c >= 0x7f)) return 0;
  }
  return 1;
}

static int response_headers(struct line_in *l, const struct pc_json *h) {
  int rc = 0;
  for (size_t i = 0; i < h->len && !rc; i++) {
    const struct pc_json *v = &h->kids[i];
    if (!header_text_ok(h->keys[i], h->key_lens[i], 1)) return bad(l, "invalid header name", "response.headers");
    if (v->type != PC_JSON_STRING || !header_text_ok(v->str, v->len, 0))
      return bad(l, "must be a string without CR, LF or NUL", h->keys[i]);
    rc = pc_buf_append(&l->headers, h->keys[i], h->key_lens[i]);
    if (!rc) rc = pc_buf_puts(&l->headers, ": ");
    if (!rc) rc = pc_buf_append(&l->headers, v->str, v->len);
    if (!rc) rc = pc_buf_puts(&l->headers, "\r\n");
  }
  return rc;
}

static int integer_in(const struct pc_json *v, double lo, double hi) {
  return v && v->type == PC_JSON_NUMBER && v->num >= lo && v->num <= hi && v->num == (double)(int64_t)v->num;
}

static int one_event(struct line_in *l, const struct pc_json *ev) {
  const struct pc_json *t = ev->type == PC_JSON_OBJECT ? pc_json_get(ev, "t_ms") : NULL;
  const struct pc_json *d = ev->type == PC_JSON_OBJECT ? pc_json_get(ev, "data") : NULL;
  const struct pc_json *d64 = ev->type == PC_JSON_OBJECT ? pc_json_get(ev, "data_base64") : NULL;
  int rc;
  if (!integer_in(t, 0, UINT32_MAX)) return bad(l, "each event needs an integer t_ms", "response.events");
  if (d && d->type == PC_JSON_STRING && !d64) rc = pc_buf_append(&l->body, d->str, d->len);
  else if (d64 && d64->type == PC_JSON_STRING && !d) rc = base64_decode(d64->str, d64->len, &l->body);
  else return bad(l, "each event needs a string data or data_base64", "response.events");
  if (rc == PC_EINVAL) return bad(l, "invalid base64", "response.events");
  if (rc) return rc;
  if (l->body.len > UINT32_MAX) return PC_ETOOBIG;
  struct pc_chunk c = {(uint32_t)l->body.len, (uint32_t)t->num};
  return pc_buf_append(&l->chunks, &c, sizeof c);
}

static int response_body(struct line_in *l, const struct pc_json *r) {
  const struct pc_json *ev = pc_json_get(r, "events"), *b = pc_json_get(r, "body");
  const struct pc_json *raw = pc_json_get(r, "body_raw"), *b64 = pc_json_get(r, "body_base64");
  int rc = 0;
  if ((ev != NULL) + (b != NULL) + (b64 != NULL) != 1)
    return bad(l, "exactly one of body, body_base64 or events is required", "response");
  if (raw && (raw->type != PC_JSON_STRING || !b)) return bad(l, "must be a string next to body", "body_raw");
  if (ev && ev->type != PC_JSON_ARRAY) return bad(l, "must be an array", "response.events");
  if (ev) l->e.flags |= PC_ENTRY_F_SSE;
  for (size_t i = 0; ev && i < ev->len && !rc; i++) rc = one_event(l, &ev->kids[i]);
  if (ev) return rc;
  if (b64 && b64->type != PC_JSON_STRING) return bad(l, "must be a string", "body_base64");
  if (b64) rc = base64_decode(b64->str, b64->len, &l->body);
  else if (raw) rc = pc_buf_append(&l->body, raw->str, raw->len);
  else if (b->type == PC_JSON_STRING) rc = pc_buf_append(&l->body, b->str, b->len);
  else rc = pc_json_write(b, &l->body);
  return rc == PC_EINVAL ? bad(l, "invalid base64", "body_base64") : rc;
}

static int parse_response(struct line_in *l) {
  const struct pc_json *r = member(l, l->root, "response", PC_JSON_OBJECT, 0), *h;
  if (!r) return PC_EINVAL;
  const struct pc_json *st = pc_json_get(r, "status");
  if (!integer_in(st, 100, 599)) return bad(l, "must be an integer from 100 to 599", "status");
  l->e.status = (int)st->num;
  if (!(h = member(l, r, "headers", PC_JSON_OBJECT, 0))) return PC_EINVAL;
  int rc = response_headers(l, h);
  return rc ? rc : response_body(l, r);
}

/* created, expires, usage, model. */
static int parse_meta(struct line_in *l) {
  const struct pc_json *cr = member(l, l->root, "created", PC_JSON_STRING, 0);
  const struct pc_json *ex = cr ? member(l, l->root, "expires", PC_JSON_STRING, 1) : NULL;
  if (!ex) return PC_EINVAL;
  if (parse_time(cr->str, &l->e.created_ms)) return bad(l, "must be an RFC 3339 time", "created");
  l->e.expires_ms = 0;
  if (ex->type == PC_JSON_STRING && parse_time(ex->str, &l->e.expires_ms))
    return bad(l, "must be an RFC 3339 time or null", "expires");
  const struct pc_json *u = pc_json_get(l->root, "usage");
  int rc = u && u->type != PC_JSON_NULL ? pc_json_write(u, &l->usage) : 0;
  if (rc) return rc;
  const struct pc_json *m = pc_json_get(l->root, "model");
  if (m && m->type != PC_JSON_STRING) return bad(l, "must be a string", "model");
  if (m) snprintf(l->model, sizeof l->model, "%s", m->str);
  return 0;
}

/* Parse and validate one line, leaving the entry in l->e. */
static int import_line(struct line_in *l, const char *text, size_t n, pc_buf *enc) {
  struct pc_json_doc *doc = NULL;
  size_t errpos = 0;
  int rc = pc_json_parse(text, n, &doc, &errpos);
  if (rc) {
    snprintf(l->why, l->whylen, "%s at byte %zu", pc_strerror(rc), errpos + 1);
    rc = PC_EJSON;
    goto out;
  }
  l->root = pc_json_root(doc);
  if (l->root->type != PC_JSON_OBJECT) {
    rc = bad(l, "a line must be a JSON object", NULL);
    goto out;
  }
  rc = parse_request(l);
  if (!rc) rc = parse_response(l);
  if (!rc) rc = parse_meta(l);
  if (rc) goto out;
  const char *path = l->req.f[F_PATH], *q = strchr(path, '?');
  l->e.request = (struct pc_slice){l->material.data, l->material.len};
  l->e.ns = (struct pc_slice){l->req.f[F_NS], strlen(l->req.f[F_NS])};
  l->e.route = (struct pc_slice){l->req.f[F_ROUTE], strlen(l->req.f[F_ROUTE])};
  l->e.path = (struct pc_slice){path, q ? (size_t)(q - path) : strlen(path)};
  l->e.model = (struct pc_slice){l->model, strlen(l->model)};
  l->e.headers = (struct pc_slice){l->headers.data, l->headers.len};
  l->e.body = (struct pc_slice){l->body.data, l->body.len};
  l->e.usage = (struct pc_slice){l->usage.data, l->usage.len};
  l->e.chunks = (const struct pc_chunk *)(const void *)l->chunks.data;
  l->e.n_chunks = (uint32_t)(l->chunks.len / sizeof(struct pc_chunk));
  rc = pc_entry_encode(&l->e, enc);
  if (rc == PC_EINVAL) bad(l, "the entry cannot be encoded", NULL);
out:
  pc_json_free(doc);
  return rc;
}

/* Read one line (without its "\n" or "\r\n") into `line`; 0 at EOF. */
static int read_line(FILE *f, pc_buf *line, int *got) {
  char chunk[64 * 1024];
  pc_buf_reset(line);
  *got = 0;
  while (fgets(chunk, sizeof chunk, f)) {
    size_t n = strlen(chunk); /* a NUL byte in the file truncates: the JSON parse then fails */
    *got = 1;
    int rc = pc_buf_append(line, chunk, n);
    if (rc) return rc;
    if (n && chunk[n - 1] == '\n') break;
  }
  if (ferror(f)) return PC_EIO;
  while (line->len && (line->data[line->len - 1] == '\n' || line->data[line->len - 1] == '\r')) line->len--;
  if (line->data) line->data[line->len] = '\0';
  return 0;
}

static int blank(const pc_buf *b) {
  for (size_t i = 0; i < b->len; i++)
    if (!isspace((unsigned char)b->data[i])) return 0;
  return 1;
}

/* Staged record: 16-byte key, u64 length (host order: same process), bytes. */
static int stage_put(FILE *stage, const struct pc_key *k, const pc_buf *enc) {
  uint64_t n = enc->len;
  if (fwrite(k->b, 1, 16, stage) != 16 || fwrite(&n, sizeof n, 1, stage) != 1 ||
      fwrite(enc->data, 1, enc->len, stage) != enc->len)
    return PC_EIO;
  return 0;
}

/* Pass 1: parse and encode every line of `in` into `stage`. */
static int stage_file(FILE *in, FILE *stage, const char *path, char *err, size_t errlen) {
  pc_buf line, enc;
  char why[512] = "";
  size_t lineno = 0;
  int got = 1, rc = 0;
  pc_buf_init(&line, LINE_MAX_BYTES);
  pc_buf_init(&enc, LINE_MAX_BYTES);
  while (!rc) {
    lineno++;
    rc = read_line(in, &line, &got);
    if (rc || !got) break;
    if (blank(&line)) continue;
    struct line_in l;
    why[0] = '\0';
    line_init(&l, why, sizeof why);
    pc_buf_reset(&enc);
    rc = import_line(&l, line.data, line.len, &enc);
    if (!rc) rc = stage_put(stage, &l.key, &enc);
    line_free(&l);
  }
  if (rc == PC_ETOOBIG && !why[0]) snprintf(why, sizeof why, "line too long");
  if (rc) snprintf(err, errlen, "%s:%zu: %s", path, lineno, why[0] ? why : pc_strerror(rc));
  pc_buf_free(&line);
  pc_buf_free(&enc);
  return rc;
}

/* Pass 2: store every staged entry. */
static int store_staged(pc_cache *c, FILE *stage, size_t *count, char *err, size_t errlen) {
  pc_buf enc;
  uint8_t key[16];
  uint64_t n;
  int rc = 0;
  pc_buf_init(&enc, LINE_MAX_BYTES);
  if (fflush(stage) || fseek(stage, 0, SEEK_SET)) rc = PC_EIO;
  while (!rc && fread(key, 1, 16, stage) == 16) {
    if (fread(&n, sizeof n, 1, stage) != 1 || n > LINE_MAX_BYTES) rc = PC_EIO;
    pc_buf_reset(&enc);
    if (!rc) rc = pc_buf_reserve(&enc, (size_t)n);
    if (!rc && fread(enc.data, 1, (size_t)n, stage) != n) rc = PC_EIO;
    if (!rc) enc.len = (size_t)n;
    if (!rc) rc = pc_cache_put(c, key, enc.data, enc.len);
    if (!rc) (*count)++;
  }
  if (rc) snprintf(err, errlen, "storing imported entries failed: %s", pc_strerror(rc));
  pc_buf_free(&enc);
  return rc;
}

int pc_import_file(pc_cache *c, const char *path, size_t *count, char *err, size_t errlen) {
  FILE *in = fopen(path, "r"), *stage = NULL;
  int rc = PC_EIO;
  *count = 0;
  if (errlen) err[0] = '\0';
  if (!in) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    goto out;
  }
  stage = tmpfile();
  if (!stage) {
    snprintf(err, errlen, "cannot create a temporary file");
    goto out;
  }
  rc = stage_file(in, stage, path, err, errlen);
  if (rc) goto out;
  rc = store_staged(c, stage, count, err, errlen);
out:
  if (in) fclose(in);
  if (stage) fclose(stage);
  return rc;
}
