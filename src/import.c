/* import.c — reading JSON Lines recordings back into a database (SPEC §9,
 * see import.h). What must stay true here:
 *  - an imported entry gets the key export named: the key material rebuilt
 *    with an empty credential by pc_rec_material_build, as export did;
 *  - a whole file is validated (encoded entries staged in a temporary file)
 *    before anything is stored, so a bad line stores nothing;
 *  - everything read is checked, never asserted: a bad line is an error
 *    naming file:line and the member. */
#include "import.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "bodykey.h"
#include "canon.h"
#include "entry.h"
#include "error.h"
#include "json.h"
#include "key.h"
#include "recording.h"
#include "utf8.h"

#define LINE_MAX_BYTES ((size_t)1 << 30) /* one imported line */
#define HEADERS_MAX ((size_t)1 << 20)

/* ====================================================================== */
/* Import                                                                  */
/* ====================================================================== */

/* One parsed line on its way into an entry. Buffers own what the entry's
 * slices point at. */
struct line_in {
  const struct pc_json *root;
  struct pc_rec_fields req;
  pc_buf canon;    /* the canonical request body */
  pc_buf material; /* the key material */
  pc_buf headers;  /* "name: value\r\n" lines */
  pc_buf body;
  pc_buf chunks; /* struct pc_chunk array */
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
  pc_rec_fields_free(&l->req);
  pc_buf *bufs[] = {&l->canon, &l->material, &l->headers, &l->body, &l->chunks, &l->usage, &l->scratch};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) pc_buf_free(bufs[i]);
}

static int bad(struct line_in *l, const char *what, const char *name) {
  snprintf(l->why, l->whylen, "%s%s%s", name ? name : "", name ? ": " : "", what);
  return PC_EINVAL;
}

/* A member that must be present with type t (NULL allowed when may_null). */
static const struct pc_json *member(struct line_in *l, const struct pc_json *obj, const char *name, enum pc_json_type t,
                                    int may_null) {
  const struct pc_json *v = pc_json_get(obj, name);
  if (v && (v->type == t || (may_null && v->type == PC_JSON_NULL))) return v;
  if (t == PC_JSON_OBJECT)
    bad(l, v ? "must be an object" : "missing", name);
  else if (t == PC_JSON_NUMBER)
    bad(l, v ? "must be a number" : "missing", name);
  else
    bad(l, v ? "must be a string" : "missing", name);
  return NULL;
}

/* A string member without NUL bytes into req field i. */
static int str_field(struct line_in *l, const struct pc_json *obj, const char *name, int i) {
  const struct pc_json *v = member(l, obj, name, PC_JSON_STRING, 0);
  if (!v) return PC_EINVAL;
  if (strlen(v->str) != v->len) return bad(l, "holds a NUL character", name);
  int rc = pc_rec_field_set(&l->req, i, v->str, v->len);
  return rc == PC_EINVAL ? bad(l, "too long", name) : rc;
}

static int key_header_index(const char *name) {
  for (int i = 0; i < PC_KEY_N_ALL; i++)
    if (!strcmp(name, pc_key_headers[i])) return i;
  return -1;
}

static int request_headers(struct line_in *l, const struct pc_json *h) {
  int rc = 0;
  for (size_t i = 0; i < h->len && !rc; i++) {
    int k = key_header_index(h->keys[i]);
    if (k < 0)
      return bad(l,
                 "not a key header (see pc_key_headers: anthropic-version, anthropic-beta, "
                 "openai-beta, openai-organization, openai-project, Bedrock's x-amzn-bedrock-* "
                 "and accept)",
                 h->keys[i]);
    if (h->kids[i].type != PC_JSON_STRING) return bad(l, "must be a string", h->keys[i]);
    if (l->req.f[PC_REC_F_HDR0 + k]) return bad(l, "given twice", h->keys[i]);
    if (strlen(h->kids[i].str) != h->kids[i].len) return bad(l, "holds a NUL character", h->keys[i]);
    rc = pc_rec_field_set(&l->req, PC_REC_F_HDR0 + k, h->kids[i].str, h->kids[i].len);
  }
  for (int i = 0; i < PC_KEY_N_ALL && !rc; i++)
    if (!l->req.f[PC_REC_F_HDR0 + i]) rc = pc_rec_field_set(&l->req, PC_REC_F_HDR0 + i, "", 0);
  return rc;
}

/* The canonical body, the key material and its hash; the line's key must match. */
static int request_key(struct line_in *l, const struct pc_json *body, const struct pc_json *payload) {
  struct pc_canon_info info;
  struct pc_key given;
  const struct pc_json *k = member(l, l->root, "key", PC_JSON_STRING, 0);
  if (!k) return PC_EINVAL;
  if (pc_key_from_hex(k->str, &given)) return bad(l, "must be 32 hex digits", "key");
  int rc;
  if (payload) { /* a body that is not JSON, in bodykey.h's JSON form */
    rc = pc_bodykey_from_json(payload, &l->canon);
    if (rc) return rc == PC_ENOMEM || rc == PC_ETOOBIG ? rc : bad(l, "not a request payload", "request.payload");
    l->model[0] = '\0';
  } else {
    rc = pc_json_write(body, &l->scratch);
    if (!rc) rc = pc_canon_json(l->scratch.data, l->scratch.len, NULL, 0, &l->canon, &info);
    if (rc) return rc == PC_ENOMEM || rc == PC_ETOOBIG ? rc : bad(l, pc_strerror(rc), "request.body");
    snprintf(l->model, sizeof l->model, "%s", info.model);
  }
  l->req.body = l->canon.data ? l->canon.data : "";
  l->req.body_len = l->canon.len;
  rc = pc_rec_material_build(&l->req, &l->material);
  if (rc) return rc;
  pc_key_hash(l->material.data, l->material.len, &l->key);
  if (memcmp(given.b, l->key.b, 16)) {
    char hex[PC_KEY_HEX_LEN + 1];
    pc_key_hex(&l->key, hex);
    snprintf(l->why, l->whylen, "key %s does not match the request (its key is %s): the line was edited inconsistently",
             k->str, hex);
    return PC_EINVAL;
  }
  return 0;
}

static int parse_request(struct line_in *l) {
  const struct pc_json *r = member(l, l->root, "request", PC_JSON_OBJECT, 0), *h, *body;
  if (!r) return PC_EINVAL;
  int rc = str_field(l, r, "method", PC_REC_F_METHOD);
  if (!rc) rc = str_field(l, r, "route", PC_REC_F_ROUTE);
  if (!rc) rc = str_field(l, r, "path", PC_REC_F_PATH);
  if (!rc) rc = str_field(l, l->root, "namespace", PC_REC_F_NS);
  if (rc) return rc;
  if (!*l->req.f[PC_REC_F_METHOD]) return bad(l, "must not be empty", "method");
  if (l->req.f[PC_REC_F_PATH][0] != '/') return bad(l, "must start with '/'", "path");
  if (!(h = member(l, r, "headers", PC_JSON_OBJECT, 0))) return PC_EINVAL;
  rc = request_headers(l, h);
  if (rc) return rc;
  const struct pc_json *seq = pc_json_get(r, "seq"), *payload = pc_json_get(r, "payload");
  if (seq && (seq->type != PC_JSON_NUMBER || seq->num < 1 || seq->num > 4e9 || seq->num != (double)(uint32_t)seq->num))
    return bad(l, "must be a positive integer", "request.seq");
  l->req.seq = seq ? (uint32_t)seq->num : 0;
  body = pc_json_get(r, "body");
  if (!body == !payload) return bad(l, "give exactly one of body and payload", "request");
  return request_key(l, body, payload);
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
  if (d && d->type == PC_JSON_STRING && !d64)
    rc = pc_buf_append(&l->body, d->str, d->len);
  else if (d64 && d64->type == PC_JSON_STRING && !d)
    rc = pc_rec_base64_decode(d64->str, d64->len, &l->body);
  else
    return bad(l, "each event needs a string data or data_base64", "response.events");
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
  if (b64)
    rc = pc_rec_base64_decode(b64->str, b64->len, &l->body);
  else if (raw)
    rc = pc_buf_append(&l->body, raw->str, raw->len);
  else if (b->type == PC_JSON_STRING)
    rc = pc_buf_append(&l->body, b->str, b->len);
  else
    rc = pc_json_write(b, &l->body);
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
  if (pc_rec_parse_time(cr->str, &l->e.created_ms)) return bad(l, "must be an RFC 3339 time", "created");
  l->e.expires_ms = 0;
  if (ex->type == PC_JSON_STRING && pc_rec_parse_time(ex->str, &l->e.expires_ms))
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
  const char *path = l->req.f[PC_REC_F_PATH], *q = strchr(path, '?');
  l->e.request = (struct pc_slice){l->material.data, l->material.len};
  l->e.ns = (struct pc_slice){l->req.f[PC_REC_F_NS], strlen(l->req.f[PC_REC_F_NS])};
  l->e.route = (struct pc_slice){l->req.f[PC_REC_F_ROUTE], strlen(l->req.f[PC_REC_F_ROUTE])};
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
/* One line (without its end of line) into `line`. A NUL byte is refused
 * (PC_EJSON): C string functions would end the line there and silently
 * drop the rest. */
static int read_line(FILE *f, pc_buf *line, int *got) {
  char chunk[64 * 1024];
  size_t n = 0;
  int c, nul = 0;
  pc_buf_reset(line);
  *got = 0;
  while ((c = getc_unlocked(f)) != EOF) {
    *got = 1;
    nul |= c == 0;
    chunk[n++] = (char)c;
    if (c == '\n' || n == sizeof chunk) {
      int rc = pc_buf_append(line, chunk, n);
      n = 0;
      if (rc) return rc;
      if (c == '\n') break;
    }
  }
  if (n && pc_buf_append(line, chunk, n)) return PC_ETOOBIG;
  if (ferror(f)) return PC_EIO;
  if (nul) return PC_EJSON;
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
  if (rc == PC_EJSON && !why[0]) snprintf(why, sizeof why, "a NUL byte in the line");
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
