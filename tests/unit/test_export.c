/* test_export.c — the JSON Lines recording format (export.h): the exact line
 * shape, lossless export → import → export for every kind of body (compact
 * JSON, pretty JSON, SSE with chunks that split a UTF-8 character, plain
 * text, binary), namespaces and TTLs, credential-scoped keys landing in the
 * shared key space, secret refusal with the JSON pointer of the holder, and
 * import's refusal of inconsistent or malformed lines. Each test works in
 * its own temporary directory (export_setup / export_teardown). */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cache.h"
#include "canon.h"
#include "entry.h"
#include "error.h"
#include "export.h"
#include "import.h"
#include "key.h"

#define MIB ((size_t)1 << 20)
#define CREATED 1700000000123LL /* 2023-11-14T22:13:20.123Z */

static char g_dir[64];

static void export_setup(void) {
  char tmpl[] = "/tmp/pc-export-test-XXXXXX";
  cr_assert_not_null(mkdtemp(tmpl));
  memcpy(g_dir, tmpl, sizeof tmpl);
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f) { return remove(p); }

static void export_teardown(void) {
  if (g_dir[0]) nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(export, .init = export_setup, .fini = export_teardown);

static void in_dir(char *out, size_t n, const char *name) {
  int w = snprintf(out, n, "%s/%s", g_dir, name);
  cr_assert(w > 0 && (size_t)w < n);
}

static pc_cache *open_db(const char *name) {
  char path[256];
  pc_cache *c = NULL;
  in_dir(path, sizeof path, name);
  int rc = pc_cache_open(path, 64 * MIB, PC_SYNC_PERIODIC, &c);
  cr_assert_eq(rc, 0, "open %s: %s", path, pc_strerror(rc));
  return c;
}

/* What a test entry is made of; NULL / 0 fields take defaults. */
struct spec {
  const char *route, *path, *query, *ns, *cred, *anthropic_version;
  const char *req_body; /* any JSON spelling: canonicalized here */
  const char *headers;
  const char *body;
  size_t body_len; /* 0: strlen(body) */
  const struct pc_chunk *chunks;
  uint32_t n_chunks;
  int64_t expires_ms;
  const char *usage, *model;
};

/* Store an entry the way the proxy does; returns its key. */
static struct pc_key put_entry(pc_cache *c, const struct spec *s) {
  pc_buf canon, material, enc;
  struct pc_key k;
  struct pc_entry e;
  pc_buf_init(&canon, MIB);
  pc_buf_init(&material, MIB);
  pc_buf_init(&enc, 4 * MIB);
  cr_assert_eq(pc_canon_json(s->req_body, strlen(s->req_body), NULL, 0, &canon, NULL), 0);
  struct pc_key_input in = {.route = s->route ? s->route : "",
                            .method = "POST",
                            .path = s->path ? s->path : "/v1/chat/completions",
                            .path_len = strlen(s->path ? s->path : "/v1/chat/completions"),
                            .query = s->query,
                            .ns = s->ns ? s->ns : "",
                            .cred_fp_hex = s->cred ? s->cred : "",
                            .body = canon.data,
                            .body_len = canon.len};
  in.headers[0] = s->anthropic_version;
  cr_assert_eq(pc_key_material(&in, &material), 0);
  pc_key_hash(material.data, material.len, &k);
  memset(&e, 0, sizeof e);
  e.flags = s->chunks ? PC_ENTRY_F_SSE : 0;
  e.status = 200;
  e.created_ms = CREATED;
  e.expires_ms = s->expires_ms;
  e.request = (struct pc_slice){material.data, material.len};
  e.ns = (struct pc_slice){in.ns, strlen(in.ns)};
  e.route = (struct pc_slice){in.route, strlen(in.route)};
  e.path = (struct pc_slice){in.path, in.path_len};
  e.model = (struct pc_slice){s->model ? s->model : "gpt-4o-mini", strlen(s->model ? s->model : "gpt-4o-mini")};
  e.headers = (struct pc_slice){s->headers ? s->headers : "content-type: application/json\r\n",
                                strlen(s->headers ? s->headers : "content-type: application/json\r\n")};
  e.body = (struct pc_slice){s->body, s->body_len ? s->body_len : strlen(s->body)};
  e.usage = (struct pc_slice){s->usage ? s->usage : "", s->usage ? strlen(s->usage) : 0};
  e.chunks = s->chunks;
  e.n_chunks = s->n_chunks;
  cr_assert_eq(pc_entry_encode(&e, &enc), 0);
  cr_assert_eq(pc_cache_put(c, k.b, enc.data, enc.len), 0);
  pc_buf_free(&canon);
  pc_buf_free(&material);
  pc_buf_free(&enc);
  return k;
}

/* Export into a heap string; returns pc_export's code. */
static int export_str(pc_cache *c, const char *ns, int allow, char **text, size_t *len, char *err, size_t errlen) {
  struct pc_export_opts o = {ns, allow};
  *text = NULL;
  *len = 0;
  FILE *f = open_memstream(text, len);
  cr_assert_not_null(f);
  int rc = pc_export(c, &o, f, err, errlen);
  cr_assert_eq(fclose(f), 0);
  return rc;
}

static char *export_ok(pc_cache *c, size_t *len) {
  char *text, err[512];
  int rc = export_str(c, NULL, 0, &text, len, err, sizeof err);
  cr_assert_eq(rc, 0, "export: %s (%s)", pc_strerror(rc), err);
  return text;
}

static void write_file(const char *name, const char *text, char *path, size_t cap) {
  in_dir(path, cap, name);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
  cr_assert_eq(fclose(f), 0);
}

static size_t count_entries(pc_cache *c) {
  size_t n = 0, bytes = 0;
  cr_assert_eq(pc_cache_count(c, &n, &bytes), 0);
  return n;
}

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* ---- the fixture: one entry of each kind -------------------------------- */

static const char PRETTY[] = "{\n  \"id\": \"chatcmpl-2\",\n  \"choices\": [ {\"text\": \"pretty\"} ]\n}\n";
/* "é" is C3 A9: the first chunk ends between the two bytes. */
static const char SSE_BODY[] = "data: {\"delta\":\"caf\xC3\xA9\"}\n\ndata: [DONE]\n\n";
static const struct pc_chunk SSE_CHUNKS[3] = {{20, 0}, {25, 35}, {39, 80}};
static const char BINARY[] = {'\x89', 'P', 'N', 'G', '\0', '\xff', 'x'};

static void fill(pc_cache *c) {
  struct spec plain = {.req_body = "{ \"model\": \"gpt-4o-mini\", \"messages\": [{\"role\":\"user\",\"content\":\"hi\"}] }",
                       .body = "{\"id\":\"chatcmpl-1\",\"choices\":[{\"message\":{\"content\":\"hello\"}}]}",
                       .usage = "{\"input\":3,\"output\":5}"};
  struct spec pretty = {.req_body = "{\"model\":\"gpt-4o-mini\",\"n\":2}", .body = PRETTY};
  struct spec sse = {.req_body = "{\"model\":\"gpt-4o-mini\",\"stream\":true}",
                     .headers = "Content-Type: text/event-stream\r\nX-Request-Id: r1\r\n",
                     .body = SSE_BODY, .chunks = SSE_CHUNKS, .n_chunks = 3};
  struct spec text = {.route = "/other", .path = "/v1/rerank", .req_body = "{\"q\":1.0}", .body = "plain text, not JSON"};
  struct spec bin = {.req_body = "{\"q\":2}", .body = BINARY, .body_len = sizeof BINARY};
  struct spec scoped = {.route = "/anthropic", .path = "/v1/messages", .query = "beta=true&a=1", .ns = "team-a",
                        .cred = "0123456789abcdef0123456789abcdef", .anthropic_version = "2023-06-01",
                        .req_body = "{\"model\":\"claude\",\"max_tokens\":5}", .body = "{\"type\":\"message\"}",
                        .expires_ms = CREATED + 3600000, .model = "claude"};
  put_entry(c, &plain);
  put_entry(c, &pretty);
  put_entry(c, &sse);
  put_entry(c, &text);
  put_entry(c, &bin);
  put_entry(c, &scoped);
}

/* ---- tests -------------------------------------------------------------- */

Test(export, exact_line_format) {
  pc_cache *c = open_db("db");
  struct spec s = {.req_body = "{\"model\":\"m\",\"messages\":[]}",
                   .headers = "Content-Type: application/json\r\nx-request-id: abc\r\n",
                   .body = "{\"ok\":true}", .usage = "{\"input\":1}", .model = "m"};
  struct pc_key k = put_entry(c, &s);
  char hex[PC_KEY_HEX_LEN + 1], want[2048];
  pc_key_hex(&k, hex);
  snprintf(want, sizeof want,
           "{\"key\":\"%s\",\"namespace\":\"\",\"created\":\"2023-11-14T22:13:20.123Z\",\"expires\":null,"
           "\"request\":{\"method\":\"POST\",\"route\":\"\",\"path\":\"/v1/chat/completions\",\"headers\":{},"
           "\"body\":{\"messages\":[],\"model\":\"m\"}},"
           "\"response\":{\"status\":200,\"headers\":{\"content-type\":\"application/json\",\"x-request-id\":\"abc\"},"
           "\"body\":{\"ok\":true}},\"usage\":{\"input\":1},\"model\":\"m\"}\n",
           hex);
  size_t len;
  char *text = export_ok(c, &len);
  cr_assert_str_eq(text, want);
  free(text);
  pc_cache_close(c);
}

Test(export, round_trip_is_byte_identical) {
  pc_cache *a = open_db("a");
  fill(a);
  size_t len1, len2, n = 0;
  char *first = export_ok(a, &len1), path[256], err[512];
  cr_assert_eq(count_lines(first), 6);
  cr_assert_eq(strlen(first), len1, "no NUL bytes in the export");
  write_file("rec.jsonl", first, path, sizeof path);

  pc_cache *b = open_db("b");
  int rc = pc_import_file(b, path, &n, err, sizeof err);
  cr_assert_eq(rc, 0, "import: %s", err);
  cr_assert_eq(n, 6);
  cr_assert_eq(count_entries(b), 6);
  char *second = export_ok(b, &len2);
  cr_assert_eq(len1, len2);
  cr_assert_str_eq(first, second);
  free(first);
  free(second);
  pc_cache_close(a);
  pc_cache_close(b);
}

Test(export, kinds_of_bodies) {
  pc_cache *c = open_db("db");
  fill(c);
  size_t len;
  char *t = export_ok(c, &len);
  /* Pretty JSON: embedded compactly, exact bytes kept in body_raw. */
  cr_assert_not_null(strstr(t, "\"body\":{\"id\":\"chatcmpl-2\",\"choices\":[{\"text\":\"pretty\"}]},\"body_raw\":\"{\\n  \\\"id\\\""));
  /* Compact JSON: no body_raw. */
  cr_assert_not_null(strstr(t, "\"body\":{\"id\":\"chatcmpl-1\",\"choices\":[{\"message\":{\"content\":\"hello\"}}]}},"));
  /* Not JSON: a string. Binary: base64 of 89 50 4E 47 00 FF 78. */
  cr_assert_not_null(strstr(t, "\"body\":\"plain text, not JSON\""));
  cr_assert_not_null(strstr(t, "\"body_base64\":\"iVBORwD/eA==\""));
  /* SSE: one event per chunk; the chunks split inside "é" go out as base64. */
  cr_assert_not_null(strstr(t, "\"events\":[{\"t_ms\":0,\"data_base64\":\"ZGF0YTogeyJkZWx0YSI6ImNhZsM=\"},"
                               "{\"t_ms\":35,\"data_base64\":\"qSJ9Cgo=\"},"
                               "{\"t_ms\":80,\"data\":\"data: [DONE]\\n\\n\"}]}"));
  /* Header names lower-cased, stored order kept. */
  cr_assert_not_null(strstr(t, "\"headers\":{\"content-type\":\"text/event-stream\",\"x-request-id\":\"r1\"}"));
  /* Namespace, TTL, key headers, sorted query; no credential anywhere. */
  cr_assert_not_null(strstr(t, "\"namespace\":\"team-a\",\"created\":\"2023-11-14T22:13:20.123Z\","
                               "\"expires\":\"2023-11-14T23:13:20.123Z\""));
  cr_assert_not_null(strstr(t, "\"route\":\"/anthropic\",\"path\":\"/v1/messages?a=1&beta=true\","
                               "\"headers\":{\"anthropic-version\":\"2023-06-01\"}"));
  cr_assert_null(strstr(t, "0123456789abcdef0123456789abcdef"));
  free(t);
  pc_cache_close(c);
}

Test(export, imported_entries_are_exact) {
  pc_cache *a = open_db("a");
  struct spec sse = {.req_body = "{\"stream\":true}", .headers = "content-type: text/event-stream\r\n",
                     .body = SSE_BODY, .chunks = SSE_CHUNKS, .n_chunks = 3};
  struct spec bin = {.req_body = "{\"q\":2}", .body = BINARY, .body_len = sizeof BINARY};
  struct spec pretty = {.req_body = "{\"q\":3}", .body = PRETTY};
  struct pc_key ks = put_entry(a, &sse), kb = put_entry(a, &bin), kp = put_entry(a, &pretty);
  size_t len, n;
  char *t = export_ok(a, &len), path[256], err[512];
  write_file("rec.jsonl", t, path, sizeof path);
  pc_cache *b = open_db("b");
  cr_assert_eq(pc_import_file(b, path, &n, err, sizeof err), 0, "%s", err);
  pc_buf v;
  struct pc_entry e;
  pc_buf_init(&v, 4 * MIB);
  cr_assert_eq(pc_cache_get(b, ks.b, &v), 0, "shared-scope keys stay the same");
  cr_assert_eq(pc_entry_decode(v.data, v.len, 1, &e), 0);
  cr_assert_eq(e.flags, PC_ENTRY_F_SSE);
  cr_assert_eq(e.body.n, strlen(SSE_BODY));
  cr_assert_eq(memcmp(e.body.p, SSE_BODY, e.body.n), 0);
  cr_assert_eq(e.n_chunks, 3);
  for (uint32_t i = 0; i < 3; i++) {
    cr_assert_eq(pc_entry_chunk(&e, i).end, SSE_CHUNKS[i].end);
    cr_assert_eq(pc_entry_chunk(&e, i).t_ms, SSE_CHUNKS[i].t_ms);
  }
  cr_assert_eq(e.created_ms, CREATED);
  cr_assert_eq(pc_cache_get(b, kb.b, &v), 0);
  cr_assert_eq(pc_entry_decode(v.data, v.len, 1, &e), 0);
  cr_assert_eq(e.body.n, sizeof BINARY);
  cr_assert_eq(memcmp(e.body.p, BINARY, sizeof BINARY), 0);
  cr_assert_eq(pc_cache_get(b, kp.b, &v), 0);
  cr_assert_eq(pc_entry_decode(v.data, v.len, 1, &e), 0);
  cr_assert_eq(e.body.n, strlen(PRETTY));
  cr_assert_eq(memcmp(e.body.p, PRETTY, e.body.n), 0, "body_raw wins over body");
  pc_buf_free(&v);
  free(t);
  pc_cache_close(a);
  pc_cache_close(b);
}

Test(export, credential_scoped_entry_lands_in_shared_key_space) {
  pc_cache *a = open_db("a");
  struct spec scoped = {.req_body = "{\"q\":1}", .body = "{}", .cred = "ffffffffffffffffffffffffffffffff"};
  struct spec shared = {.req_body = "{\"q\":1}", .body = "{}"};
  struct pc_key ks = put_entry(a, &scoped);
  pc_cache *tmp = open_db("t");
  struct pc_key kh = put_entry(tmp, &shared);
  pc_cache_close(tmp);
  cr_assert_neq(memcmp(ks.b, kh.b, 16), 0);
  char hex[PC_KEY_HEX_LEN + 1], want[64];
  pc_key_hex(&kh, hex);
  snprintf(want, sizeof want, "{\"key\":\"%s\"", hex);
  size_t len, n;
  char *t = export_ok(a, &len), path[256], err[512];
  cr_assert_eq(strncmp(t, want, strlen(want)), 0, "exported key is the shared one: %s", t);
  write_file("rec.jsonl", t, path, sizeof path);
  pc_cache *b = open_db("b");
  cr_assert_eq(pc_import_file(b, path, &n, err, sizeof err), 0, "%s", err);
  pc_buf v;
  pc_buf_init(&v, MIB);
  cr_assert_eq(pc_cache_get(b, kh.b, &v), 0);
  cr_assert_eq(pc_cache_get(b, ks.b, &v), PC_ENOTFOUND);
  pc_buf_free(&v);
  free(t);
  pc_cache_close(a);
  pc_cache_close(b);
}

Test(export, namespace_filter) {
  pc_cache *c = open_db("db");
  fill(c);
  size_t len;
  char *t, err[256];
  cr_assert_eq(export_str(c, "team-a", 0, &t, &len, err, sizeof err), 0);
  cr_assert_eq(count_lines(t), 1);
  cr_assert_not_null(strstr(t, "\"namespace\":\"team-a\""));
  free(t);
  cr_assert_eq(export_str(c, "nobody", 0, &t, &len, err, sizeof err), 0);
  cr_assert_eq(len, 0);
  free(t);
  pc_cache_close(c);
}

/* Export refuses, names the key and the pointer, and writes nothing. */
static void assert_refused(pc_cache *c, struct pc_key k, const char *pointer) {
  char *t, err[512], hex[PC_KEY_HEX_LEN + 1];
  size_t len;
  pc_key_hex(&k, hex);
  int rc = export_str(c, NULL, 0, &t, &len, err, sizeof err);
  cr_assert_eq(rc, PC_EINVAL, "refused with PC_EINVAL, got %s", pc_strerror(rc));
  cr_assert_eq(len, 0, "nothing written: %s", t);
  cr_assert_not_null(strstr(err, hex), "names the key: %s", err);
  cr_assert_not_null(strstr(err, pointer), "names %s: %s", pointer, err);
  cr_assert_null(strchr(err, '\n'), "one line");
  free(t);
  cr_assert_eq(export_str(c, NULL, 1, &t, &len, err, sizeof err), 0, "--allow-secrets: %s", err);
  cr_assert_gt(len, 0);
  free(t);
}

Test(export, secret_in_request_body) {
  pc_cache *c = open_db("db");
  fill(c);
  struct spec s = {.req_body = "{\"messages\":[{\"role\":\"user\",\"content\":\"use sk-proj-abcdefghijklmnopqrstuvwx please\"}]}",
                   .body = "{}"};
  assert_refused(c, put_entry(c, &s), "/request/body/messages/0/content");
  pc_cache_close(c);
}

Test(export, secret_in_response_body) {
  pc_cache *c = open_db("db");
  struct spec s = {.req_body = "{}",
                   .body = "{\"choices\":[{\"message\":{\"content\":\"key: sk-ant-api03-ABCDEFGHIJKLMNOPQRST\"}}]}"};
  assert_refused(c, put_entry(c, &s), "/response/body/choices/0/message/content");
  pc_cache_close(c);
}

Test(export, secret_in_sse_event) {
  pc_cache *c = open_db("db");
  static const char body[] = "data: {}\n\ndata: {\"t\":\"Bearer abcdefghijklmnopqrstuvwxyz\"}\n\ndata: [DONE]\n\n";
  static const struct pc_chunk ch[3] = {{10, 0}, {60, 5}, {sizeof body - 1, 9}};
  struct spec s = {.req_body = "{\"stream\":true}", .body = body, .chunks = ch, .n_chunks = 3};
  assert_refused(c, put_entry(c, &s), "/response/events/1/data");
  pc_cache_close(c);
}

Test(export, secret_shapes) {
  static const char *const bodies[] = {
      "\"AKIAABCDEFGHIJKLMNOP\"", "\"AIzaSyA0123456789abcdefghijklmnopqrstuv\"",
      "\"-----BEGIN RSA PRIVATE KEY-----\\nMIIE\"", "\"x sk-0123456789abcdef0123\""};
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    char name[16];
    snprintf(name, sizeof name, "db%zu", i);
    pc_cache *c = open_db(name);
    char req[256];
    snprintf(req, sizeof req, "{\"p\":[1,{\"x~/y\":%s}]}", bodies[i]);
    cr_log_info("shape %zu: %s", i, bodies[i]);
    assert_refused(c, put_entry(c, &(struct spec){.req_body = req, .body = "{}"}), "/request/body/p/1/x~0~1y");
    pc_cache_close(c);
  }
}

Test(export, no_false_positives) {
  pc_cache *c = open_db("db");
  struct spec s = {.req_body = "{\"a\":\"risk-assessment-framework-overview\",\"b\":\"task-abcdefghijklmnopqrst\","
                               "\"c\":\"sk-short\",\"d\":\"Bearer short\",\"e\":\"AKIA too short\"}",
                   .body = "{\"text\":\"the ask-me-anything-session-notes\"}"};
  put_entry(c, &s);
  size_t len;
  char *t = export_ok(c, &len);
  cr_assert_eq(count_lines(t), 1);
  free(t);
  pc_cache_close(c);
}

/* Import of `text` must fail naming "file:line" and storing nothing. */
static void assert_import_fails(const char *text, const char *line_ref, const char *why) {
  char path[256], err[1024], want[300];
  size_t n = 99;
  write_file("bad.jsonl", text, path, sizeof path);
  pc_cache *b = open_db("bad");
  int rc = pc_import_file(b, path, &n, err, sizeof err);
  cr_assert(rc == PC_EINVAL || rc == PC_EJSON, "rc %s", pc_strerror(rc));
  snprintf(want, sizeof want, "%s:%s", path, line_ref);
  cr_assert_not_null(strstr(err, want), "names %s: %s", want, err);
  cr_assert_not_null(strstr(err, why), "says '%s': %s", why, err);
  cr_assert_eq(n, 0);
  cr_assert_eq(count_entries(b), 0, "a bad file stores nothing");
  pc_cache_close(b);
}

Test(export, tampered_key_is_rejected) {
  pc_cache *c = open_db("db");
  fill(c);
  size_t len;
  char *t = export_ok(c, &len);
  /* Edit the prompt of the second line but keep its key. */
  char *q = strstr(t, "\"n\":2"), ref[16];
  cr_assert_not_null(q, "%s", t);
  q[4] = '3';
  size_t line = 1;
  for (const char *p = t; p < q; p++) line += *p == '\n';
  snprintf(ref, sizeof ref, "%zu:", line);
  assert_import_fails(t, ref, "does not match");
  free(t);
  pc_cache_close(c);
}

Test(export, malformed_lines_are_rejected) {
  assert_import_fails("{\"key\":", "1:", "invalid JSON");
  assert_import_fails("\n\n[1,2]\n", "3:", "JSON object");
  assert_import_fails("{\"key\":\"00\",\"namespace\":\"\"}", "1:", "request");
}

Test(export, blank_lines_and_crlf_are_accepted) {
  pc_cache *c = open_db("db");
  fill(c);
  size_t len, n;
  char *t = export_ok(c, &len), path[256], err[512];
  pc_buf crlf;
  pc_buf_init(&crlf, 4 * MIB);
  cr_assert_eq(pc_buf_puts(&crlf, "\n  \n"), 0);
  for (const char *p = t; *p; p++) cr_assert_eq(*p == '\n' ? pc_buf_puts(&crlf, "\r\n\r\n") : pc_buf_putc(&crlf, *p), 0);
  write_file("crlf.jsonl", crlf.data, path, sizeof path);
  pc_cache *b = open_db("b");
  cr_assert_eq(pc_import_file(b, path, &n, err, sizeof err), 0, "%s", err);
  cr_assert_eq(n, 6);
  char *again = export_ok(b, &len);
  cr_assert_str_eq(again, t);
  free(again);
  free(t);
  pc_buf_free(&crlf);
  pc_cache_close(c);
  pc_cache_close(b);
}

Test(export, lines_sorted_by_exported_key_one_per_key) {
  pc_cache *c = open_db("db");
  char cred[33];
  for (int i = 0; i < 8; i++) {
    char req[64];
    snprintf(cred, sizeof cred, "%032x", i + 1);
    snprintf(req, sizeof req, "{\"q\":%d}", i % 4); /* two credentials per request */
    put_entry(c, &(struct spec){.req_body = req, .body = "{}", .cred = cred});
  }
  size_t len;
  char *t = export_ok(c, &len);
  cr_assert_eq(count_lines(t), 4, "one line per exported key: %s", t);
  const char *prev = NULL;
  for (const char *p = t; *p; p = strchr(p, '\n') + 1) {
    cr_assert_eq(strncmp(p, "{\"key\":\"", 8), 0);
    if (prev) cr_assert_lt(strncmp(prev + 8, p + 8, 32), 0, "ascending keys");
    prev = p;
  }
  free(t);
  pc_cache_close(c);
}

Test(export, a_nul_byte_in_a_line_is_refused_not_cut_off) {
  pc_cache *a = open_db("a");
  fill(a);
  size_t len, n = 0;
  char *text = export_ok(a, &len), path[256], err[512];
  char *nl = strchr(text, '\n');
  cr_assert_not_null(nl);
  /* line 1, then a NUL and garbage on the same line */
  size_t first = (size_t)(nl - text);
  char *bad = malloc(first + 16);
  memcpy(bad, text, first);
  memcpy(bad + first, "\0garbage\n", 9);
  in_dir(path, sizeof path, "nul.jsonl");
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(bad, 1, first + 9, f), first + 9);
  cr_assert_eq(fclose(f), 0);
  pc_cache *b = open_db("b");
  cr_assert_neq(pc_import_file(b, path, &n, err, sizeof err), 0, "a line with a NUL byte was imported");
  cr_expect(strstr(err, "NUL") != NULL, "%s", err);
  cr_expect_eq(count_entries(b), 0);
  free(bad);
  free(text);
  pc_cache_close(a);
  pc_cache_close(b);
}
