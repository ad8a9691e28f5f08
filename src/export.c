/* export.c — writing a database as JSON Lines (SPEC §9, see export.h).
 *
 * One line per entry, members in a fixed order:
 *   {"key","namespace","created","expires",
 *    "request":{"method","route","path"[,"seq"],"headers","body" | "payload"},
 *    "response":{"status","headers", "body"[,"body_raw"] | "body_base64" | "events"},
 *    "usage","model"}
 * What must stay true here:
 *  - export → import → export is byte-identical. The exported "key" is the key
 *    the entry gets after import: the key material rebuilt with an empty
 *    credential (fingerprints are never exported), by the same function
 *    (pc_rec_material_build) on both sides.
 *  - Bodies round-trip exactly. A JSON response body is embedded as a value;
 *    when writing it back compactly does not give the stored bytes, the exact
 *    text follows as "body_raw" (import prefers it). A body whose top-level
 *    JSON value is a string, or that is not JSON, is exported as a string of
 *    its bytes (so "body" as a JSON string always means "these bytes").
 *    Bytes that are not valid UTF-8 go out as "body_base64" (and, per SSE
 *    event, "data_base64": a network chunk may split a UTF-8 sequence).
 *  - A request body that is not JSON (record mode keys every exchange:
 *    multipart uploads, forms, bytes, no body) goes in "payload", as
 *    bodykey.h writes it; an entry after the first of a recorded sequence
 *    carries its index as "seq".
 *  - Lines are ordered by their exported key (not the stored one, which may
 *    be credential-scoped); stored entries that share one exported key
 *    (same request, different credentials) are exported once, the newest.
 *  - Nothing reaches `out` before every entry was scanned for secret-shaped
 *    strings (secrets.h): lines are staged in an anonymous temporary file
 *    and copied to `out`, sorted, only when the whole walk succeeded. The
 *    walk is one read txn, so the export is one consistent snapshot even
 *    while a server writes.
 *  - pc_export returns PC_EINVAL only for a refused secret (the CLI maps it
 *    to exit status 3); any other failure uses another code. */
#include "export.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "bodykey.h"
#include "entry.h"
#include "error.h"
#include "json.h"
#include "key.h"
#include "recording.h"
#include "secrets.h"
#include "utf8.h"

#define LINE_MAX_BYTES ((size_t)1 << 30) /* one exported line */
#define POINTER_MAX ((size_t)64 * 1024)

/* ====================================================================== */
/* One entry prepared for export                                           */
/* ====================================================================== */

enum body_kind { BODY_JSON, BODY_JSON_RAW, BODY_TEXT, BODY_BASE64, BODY_EVENTS };

struct view {
  struct pc_entry e;
  struct pc_rec_fields req;
  struct pc_key key;            /* the shared-space key (what import will store under) */
  struct pc_json_doc *req_body; /* the canonical request body, parsed (JSON bodies) */
  pc_buf payload;               /* or the JSON form of a bodykey.h body */
  struct pc_json_doc *payload_doc;
  struct pc_json_doc *resp_body; /* BODY_JSON / BODY_JSON_RAW */
  struct pc_json_doc *usage;     /* NULL: exported as null */
  enum body_kind kind;
};

static void view_close(struct view *v) {
  pc_rec_fields_free(&v->req);
  pc_json_free(v->req_body);
  pc_buf_free(&v->payload);
  pc_json_free(v->payload_doc);
  pc_json_free(v->resp_body);
  pc_json_free(v->usage);
  memset(v, 0, sizeof *v);
}

/* How the response body is exported (see the file comment). */
static int classify_body(struct view *v) {
  const struct pc_slice *b = &v->e.body;
  pc_buf compact;
  int rc = 0;
  if (v->e.flags & PC_ENTRY_F_SSE)
    v->kind = BODY_EVENTS;
  else if (!pc_utf8_valid(b->p, b->n))
    v->kind = BODY_BASE64;
  else if (pc_json_parse(b->p, b->n, &v->resp_body, NULL) || pc_json_root(v->resp_body)->type == PC_JSON_STRING)
    v->kind = BODY_TEXT;
  else
    v->kind = BODY_JSON;
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
  if (!rc) rc = pc_rec_fields_from_material(&v->e.request, &v->req);
  if (!rc) rc = pc_rec_material_build(&v->req, &m);
  if (!rc) pc_key_hash(m.data, m.len, &v->key);
  if (!rc && pc_bodykey_is_canon(v->req.body, v->req.body_len)) {
    pc_buf_init(&v->payload, LINE_MAX_BYTES);
    rc = pc_bodykey_to_json(v->req.body, v->req.body_len, &v->payload);
    if (!rc && pc_json_parse(v->payload.data, v->payload.len, &v->payload_doc, NULL)) rc = PC_ECORRUPT;
  } else if (!rc && pc_json_parse(v->req.body, v->req.body_len, &v->req_body, NULL)) {
    rc = PC_ECORRUPT;
  }
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
  struct pc_secret_hit *h;
  pc_buf ptr;
};

static int scan_header(void *ud, const char *name, size_t nlen, const char *val, size_t vlen) {
  struct hdr_scan *s = ud;
  char lname[256];
  const char *kind = pc_secrets_in(val, vlen);
  if (!kind) return 0;
  lower_name(name, nlen, lname, sizeof lname);
  pc_buf_reset(&s->ptr);
  int rc = pc_buf_puts(&s->ptr, "/response/headers");
  if (!rc) rc = pc_secrets_ptr_push(&s->ptr, lname, strlen(lname));
  return rc ? rc : pc_secrets_hit_at(s->h, kind, &s->ptr);
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

static int scan_events(const struct pc_entry *e, struct pc_secret_hit *h) {
  for (uint32_t i = 0; i < n_events(e); i++) {
    size_t s, end;
    uint32_t t;
    char at[64];
    event_at(e, i, &s, &end, &t);
    snprintf(at, sizeof at, "/response/events/%u/%s", i,
             pc_utf8_valid(e->body.p + s, end - s) ? "data" : "data_base64");
    if (pc_secrets_scan_bytes(e->body.p + s, end - s, at, h)) return 1;
  }
  return 0;
}

static int scan_response_body(const struct view *v, pc_buf *ptr, struct pc_secret_hit *h) {
  const struct pc_slice *b = &v->e.body;
  switch (v->kind) {
  case BODY_EVENTS:
    return scan_events(&v->e, h);
  case BODY_BASE64:
    return pc_secrets_scan_bytes(b->p, b->n, "/response/body_base64", h);
  case BODY_TEXT:
    return pc_secrets_scan_bytes(b->p, b->n, "/response/body", h);
  default:
    break;
  }
  pc_buf_reset(ptr);
  int rc = pc_buf_puts(ptr, "/response/body");
  return rc ? rc : pc_secrets_scan_json(pc_json_root(v->resp_body), ptr, h);
}

/* 1 (and *h filled) when the entry holds something secret-shaped. */
static int scan_view(const struct view *v, struct pc_secret_hit *h) {
  struct hdr_scan hs = {h, {0}};
  pc_buf_init(&hs.ptr, POINTER_MAX);
  int rc = pc_secrets_scan_bytes(v->req.f[PC_REC_F_PATH], strlen(v->req.f[PC_REC_F_PATH]), "/request/path", h);
  if (!rc) rc = pc_buf_puts(&hs.ptr, v->req_body ? "/request/body" : "/request/payload");
  if (!rc) rc = pc_secrets_scan_json(pc_json_root(v->req_body ? v->req_body : v->payload_doc), &hs.ptr, h);
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
  char t[PC_REC_TIME_LEN];
  int rc = put_member(out, name);
  if (rc) return rc;
  if (null_if_zero && ms == 0) return pc_buf_puts(out, "null");
  pc_rec_format_time(ms, t);
  return pc_json_write_string(out, t, strlen(t));
}

static int put_request(pc_buf *out, const struct view *v) {
  int rc = pc_buf_puts(out, "\"request\":{");
  if (!rc) rc = put_str_member(out, "method", v->req.f[PC_REC_F_METHOD], strlen(v->req.f[PC_REC_F_METHOD]));
  if (!rc) rc = pc_buf_putc(out, ',');
  if (!rc) rc = put_str_member(out, "route", v->req.f[PC_REC_F_ROUTE], strlen(v->req.f[PC_REC_F_ROUTE]));
  if (!rc) rc = pc_buf_putc(out, ',');
  if (!rc) rc = put_str_member(out, "path", v->req.f[PC_REC_F_PATH], strlen(v->req.f[PC_REC_F_PATH]));
  if (!rc && v->req.seq) rc = pc_buf_printf(out, ",\"seq\":%u", (unsigned)v->req.seq);
  if (!rc) rc = pc_buf_puts(out, ",\"headers\":{");
  int first = 1;
  for (int i = 0; i < PC_KEY_N_ALL && !rc; i++) {
    const char *val = v->req.f[PC_REC_F_HDR0 + i];
    if (!*val) continue;
    if (!first) rc = pc_buf_putc(out, ',');
    if (!rc) rc = put_str_member(out, pc_key_headers[i], val, strlen(val));
    first = 0;
  }
  if (!rc && v->req_body) {
    rc = pc_buf_puts(out, "},\"body\":");
    if (!rc) rc = pc_json_write(pc_json_root(v->req_body), out);
  } else if (!rc) {
    rc = pc_buf_puts(out, "},\"payload\":");
    if (!rc) rc = pc_buf_append(out, v->payload.data, v->payload.len);
  }
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
  if (!rc) rc = pc_rec_put_string_lossy(w->out, lname, strlen(lname));
  if (!rc) rc = pc_buf_putc(w->out, ':');
  if (!rc) rc = pc_rec_put_string_lossy(w->out, val, vlen);
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
      if (!rc) rc = pc_rec_put_base64(out, e->body.p + s, end - s);
    }
    if (!rc) rc = pc_buf_putc(out, '}');
  }
  return rc ? rc : pc_buf_putc(out, ']');
}

static int put_response_body(pc_buf *out, const struct view *v) {
  const struct pc_slice *b = &v->e.body;
  int rc = 0;
  switch (v->kind) {
  case BODY_EVENTS:
    return put_events(out, &v->e);
  case BODY_BASE64:
    rc = put_member(out, "body_base64");
    return rc ? rc : pc_rec_put_base64(out, b->p, b->n);
  case BODY_TEXT:
    return put_str_member(out, "body", b->p, b->n);
  case BODY_JSON:
  case BODY_JSON_RAW:
    break;
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
  if (!rc) rc = put_str_member(out, "namespace", v->req.f[PC_REC_F_NS], strlen(v->req.f[PC_REC_F_NS]));
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
  struct pc_secret_hit hit;
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
      snprintf(w->err, w->errlen, "refused: entry %s holds %s at %s (use --allow-secrets to export anyway)", hex,
               hit.kind, hit.pointer);
    rc = rc == 1 ? PC_EINVAL : rc == PC_EINVAL ? PC_EIO : rc;
    goto out;
  }
  pc_buf_reset(&w->line);
  rc = write_line(&w->line, &v);
  if (rc == PC_EINVAL) rc = PC_ECORRUPT;
  if (rc)
    snprintf(w->err, w->errlen, "entry %s cannot be exported: %s", hex, pc_strerror(rc));
  else
    rc = stage_line(w, &v, key);
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
