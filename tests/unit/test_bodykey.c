/* test_bodykey.c — canonical keys for non-JSON bodies (bodykey.h): multipart
 * uploads as the OpenAI Node SDK (undici's FormData) sends them keyed
 * without their random boundary, form fields sorted stably with their
 * encodings normalized, raw and empty bodies, malformed multipart falling
 * back to raw bytes, injectivity, the differences the 424 explainer shows,
 * the JSON form export writes and import reads back byte for byte, and
 * bounded behaviour on hostile inputs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bodykey.h"
#include "buf.h"
#include "error.h"
#include "json.h"

#define OUT_MAX (64u << 20)
#define UNDICI_A "----formdata-undici-032141218245"
#define UNDICI_B "----formdata-undici-098765432101"
#define MP_TYPE(b) "multipart/form-data; boundary=" b
#define FORM_CT "application/x-www-form-urlencoded"
#define JSONL "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n"

struct part {
  const char *name, *filename, *type; /* filename, type: NULL when absent */
  const char *data;
  size_t len;
};

/* A body as undici's FormData serializes it (the OpenAI Node SDK's uploads). */
static char *undici_body(const char *boundary, const struct part *p, size_t n, size_t *len) {
  pc_buf b;
  pc_buf_init(&b, OUT_MAX);
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(pc_buf_printf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"", boundary, p[i].name), 0);
    if (p[i].filename) cr_assert_eq(pc_buf_printf(&b, "; filename=\"%s\"", p[i].filename), 0);
    if (p[i].type) cr_assert_eq(pc_buf_printf(&b, "\r\nContent-Type: %s", p[i].type), 0);
    cr_assert_eq(pc_buf_puts(&b, "\r\n\r\n"), 0);
    cr_assert_eq(pc_buf_append(&b, p[i].data, p[i].len), 0);
    cr_assert_eq(pc_buf_puts(&b, "\r\n"), 0);
  }
  cr_assert_eq(pc_buf_printf(&b, "--%s--\r\n", boundary), 0);
  return pc_buf_steal(&b, len);
}

static const struct part upload[] = {
    {"purpose", NULL, NULL, "assistants", 10},
    {"file", "a.jsonl", "application/jsonl", JSONL, sizeof JSONL - 1},
};

/* Canonical form of a body (malloc'd, NUL-terminated; *n its length). */
static char *canon_n(const char *ct, const char *body, size_t len, size_t *n, struct pc_bodykey_info *info) {
  pc_buf b;
  pc_buf_init(&b, OUT_MAX);
  struct pc_bodykey_info dummy;
  int rc = pc_bodykey_canon(ct, ct ? strlen(ct) : 0, body, len, &b, info ? info : &dummy);
  cr_assert_eq(rc, 0, "canon: %s", pc_errname(rc));
  if (!b.data) cr_assert_eq(pc_buf_append(&b, "", 0), 0);
  return pc_buf_steal(&b, n);
}

static char *canon_s(const char *ct, const char *body, size_t *n) { return canon_n(ct, body, strlen(body), n, NULL); }

static int same_canon(const char *ct1, const char *b1, size_t n1, const char *ct2, const char *b2, size_t n2) {
  size_t x, y;
  char *c1 = canon_n(ct1, b1, n1, &x, NULL), *c2 = canon_n(ct2, b2, n2, &y, NULL);
  int eq = x == y && !memcmp(c1, c2, x);
  free(c1);
  free(c2);
  return eq;
}

static int same_form(const char *a, const char *b) { return same_canon(FORM_CT, a, strlen(a), FORM_CT, b, strlen(b)); }

/* ---------- differences ---------- */

struct diffs {
  struct pc_json_diff *d;
  size_t n, total;
};

static struct diffs diff_canon(const char *a, size_t an, const char *b, size_t bn, size_t max) {
  struct diffs r = {0};
  int rc = pc_bodykey_diff(a, an, b, bn, max, 200, &r.d, &r.n, &r.total);
  cr_assert_eq(rc, 0, "diff: %s", pc_errname(rc));
  return r;
}

static struct diffs diff_bodies(const char *cta, const char *a, size_t an, const char *ctb, const char *b, size_t bn) {
  size_t x, y;
  char *ca = canon_n(cta, a, an, &x, NULL), *cb = canon_n(ctb, b, bn, &y, NULL);
  struct diffs r = diff_canon(ca, x, cb, y, 20);
  free(ca);
  free(cb);
  return r;
}

/* The diff at `ptr` must exist with these JSON texts (NULL: absent side). */
static void expect_diff(const struct diffs *r, const char *ptr, const char *rec, const char *req) {
  for (size_t i = 0; i < r->n; i++) {
    const struct pc_json_diff *d = &r->d[i];
    if (strcmp(d->pointer, ptr)) continue;
    if (rec)
      cr_assert_str_eq(d->recorded ? d->recorded : "(absent)", rec, "%s recorded: %s", ptr, d->recorded);
    else
      cr_assert_null(d->recorded, "%s recorded: %s", ptr, d->recorded);
    if (req)
      cr_assert_str_eq(d->requested ? d->requested : "(absent)", req, "%s requested: %s", ptr, d->requested);
    else
      cr_assert_null(d->requested, "%s requested: %s", ptr, d->requested);
    return;
  }
  cr_assert_fail("no difference at %s (%zu found, first %s)", ptr, r->n, r->n ? r->d[0].pointer : "-");
}

/* ---------- multipart ---------- */

Test(bodykey, openai_upload_golden) {
  size_t len, n;
  struct pc_bodykey_info info;
  char *body = undici_body(UNDICI_A, upload, 2, &len);
  char *c = canon_n(MP_TYPE(UNDICI_A), body, len, &n, &info);
  const char want[] = "pc-body-v1\nkind=9:multipart\ntype=19:multipart/form-data\n"
                      "part=7:purpose\ntype=10:text/plain\ndata=10:assistants\n"
                      "part=4:file\nfilename=7:a.jsonl\ntype=17:application/jsonl\ndata=46:" JSONL "\n";
  cr_assert_eq(n, sizeof want - 1, "got %s", c);
  cr_assert_eq(memcmp(c, want, n), 0, "got %s", c);
  cr_assert_eq(info.kind, PC_BODYKEY_MULTIPART);
  cr_assert_str_eq(info.content_type, "multipart/form-data");
  cr_assert_eq(info.n_items, 2);
  cr_assert(pc_bodykey_is_canon(c, n));
  free(body);
  free(c);
}

Test(bodykey, boundary_preamble_epilogue_are_not_keyed) {
  size_t la, lb;
  char *a = undici_body(UNDICI_A, upload, 2, &la), *b = undici_body(UNDICI_B, upload, 2, &lb);
  cr_assert(same_canon(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_B), b, lb));
  /* Go's mime/multipart: quoted boundary, other header order and case, a
   * preamble, transport padding and an epilogue. */
  const char go[] = "This is the preamble.\r\n"
                    "--9051914041544843365972754266  \r\n"
                    "content-disposition: form-data; name=purpose\r\n\r\nassistants\r\n"
                    "--9051914041544843365972754266\r\n"
                    "Content-Type: Application/JSONL; charset=utf-8\r\n"
                    "X-Ignored: yes\r\n"
                    "Content-Disposition: form-data; filename=\"a.jsonl\"; name=\"file\"\r\n\r\n" JSONL "\r\n"
                    "--9051914041544843365972754266--\r\nepilogue bytes";
  cr_assert(same_canon(MP_TYPE(UNDICI_A), a, la, "Multipart/Form-Data ; boundary=\"9051914041544843365972754266\"", go,
                       sizeof go - 1));
  free(a);
  free(b);
}

Test(bodykey, one_byte_changes_the_key_and_the_diff_names_the_part) {
  struct part changed[2];
  memcpy(changed, upload, sizeof changed);
  char data[sizeof JSONL];
  memcpy(data, JSONL, sizeof JSONL);
  data[39] = 'H'; /* "hi" → "Hi" */
  changed[1].data = data;
  size_t la, lb;
  char *a = undici_body(UNDICI_A, upload, 2, &la), *b = undici_body(UNDICI_B, changed, 2, &lb);
  cr_assert_not(same_canon(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_B), b, lb));
  struct diffs r = diff_bodies(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_B), b, lb);
  cr_assert_eq(r.n, 1);
  cr_assert_eq(r.total, 1);
  cr_assert_str_eq(r.d[0].pointer, "@part/file");
  cr_assert(!strncmp(r.d[0].recorded, "\"a.jsonl, application/jsonl, 46 bytes, xxh3 ", 44), "%s", r.d[0].recorded);
  cr_assert(!strncmp(r.d[0].requested, "\"a.jsonl, application/jsonl, 46 bytes, xxh3 ", 44), "%s", r.d[0].requested);
  cr_assert_str_neq(r.d[0].recorded, r.d[0].requested);
  pc_json_diff_free(r.d, r.n);
  free(a);
  free(b);
}

Test(bodykey, text_fields_filenames_types_and_order) {
  struct part p[2];
  memcpy(p, upload, sizeof p);
  p[0].data = "fine-tune";
  p[0].len = 9;
  size_t la, lb;
  char *a = undici_body(UNDICI_A, upload, 2, &la), *b = undici_body(UNDICI_A, p, 2, &lb);
  struct diffs r = diff_bodies(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_A), b, lb);
  expect_diff(&r, "@part/purpose", "\"assistants\"", "\"fine-tune\"");
  cr_assert_eq(r.n, 1);
  pc_json_diff_free(r.d, r.n);
  free(b);

  /* The order of parts is kept: the same parts swapped are another request. */
  const struct part swapped[2] = {upload[1], upload[0]};
  b = undici_body(UNDICI_A, swapped, 2, &lb);
  cr_assert_not(same_canon(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_A), b, lb));
  r = diff_bodies(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_A), b, lb);
  cr_assert_eq(r.n, 1);
  expect_diff(&r, "@parts", "\"2 parts: purpose, file\"", "\"2 parts: file, purpose\"");
  pc_json_diff_free(r.d, r.n);
  free(b);

  /* Another filename or type is a difference; no Content-Type is text/plain. */
  p[0] = upload[0];
  p[1].filename = "b.jsonl";
  b = undici_body(UNDICI_A, p, 2, &lb);
  r = diff_bodies(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_A), b, lb);
  cr_assert_eq(r.n, 1);
  cr_assert(strstr(r.d[0].requested, "b.jsonl, application/jsonl, 46 bytes"), "%s", r.d[0].requested);
  pc_json_diff_free(r.d, r.n);
  free(b);
  p[1] = upload[1];
  p[0].type = "TEXT/plain; charset=utf-8";
  b = undici_body(UNDICI_A, p, 2, &lb);
  cr_assert(same_canon(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_A), b, lb));
  free(b);

  /* A part with an empty filename is a file part: not the text field. */
  p[0].type = NULL;
  p[0].filename = "";
  b = undici_body(UNDICI_A, p, 2, &lb);
  cr_assert_not(same_canon(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_A), b, lb));
  free(b);
  free(a);
}

Test(bodykey, repeated_part_names_are_indexed) {
  const struct part two[3] = {upload[0], upload[1], {"file", "b.bin", "application/octet-stream", "\x00\x01\xff", 3}};
  size_t la, lb;
  char *a = undici_body(UNDICI_A, upload, 2, &la), *b = undici_body(UNDICI_B, two, 3, &lb);
  struct diffs r = diff_bodies(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_B), b, lb);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.d[0].pointer, "@part/file/1");
  cr_assert_null(r.d[0].recorded);
  cr_assert(!strncmp(r.d[0].requested, "\"b.bin, application/octet-stream, 3 bytes, xxh3 ", 48), "%s",
            r.d[0].requested);
  pc_json_diff_free(r.d, r.n);
  /* And the other way round: removed. */
  r = diff_bodies(MP_TYPE(UNDICI_B), b, lb, MP_TYPE(UNDICI_A), a, la);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.d[0].pointer, "@part/file/1");
  cr_assert_null(r.d[0].requested);
  pc_json_diff_free(r.d, r.n);
  free(a);
  free(b);
}

Test(bodykey, part_names_in_pointers_are_escaped) {
  const struct part odd[1] = {{"a/b~c%\x01", NULL, NULL, "v", 1}};
  const struct part odd2[1] = {{"a/b~c%\x01", NULL, NULL, "w", 1}};
  size_t la, lb;
  char *a = undici_body(UNDICI_A, odd, 1, &la), *b = undici_body(UNDICI_A, odd2, 1, &lb);
  struct diffs r = diff_bodies(MP_TYPE(UNDICI_A), a, la, MP_TYPE(UNDICI_A), b, lb);
  expect_diff(&r, "@part/a~1b~0c%25%01", "\"v\"", "\"w\"");
  pc_json_diff_free(r.d, r.n);
  free(a);
  free(b);
}

Test(bodykey, names_are_keyed_as_written_between_quotes) {
  /* Go escapes a quote as \" and undici as %22: both stay distinct keys, and
   * a backslash pair never ends the quoted string. */
  const char go[] = "--B\r\nContent-Disposition: form-data; name=\"a\\\"b\"\r\n\r\nv\r\n--B--";
  const char go2[] = "--B\r\nContent-Disposition: form-data; name=\"a\\\"c\"\r\n\r\nv\r\n--B--";
  const char undici[] = "--B\r\nContent-Disposition: form-data; name=\"a%22b\"\r\n\r\nv\r\n--B--";
  cr_assert_not(same_canon(MP_TYPE("B"), go, sizeof go - 1, MP_TYPE("B"), go2, sizeof go2 - 1));
  cr_assert_not(same_canon(MP_TYPE("B"), go, sizeof go - 1, MP_TYPE("B"), undici, sizeof undici - 1));
  size_t n;
  char *c = canon_n(MP_TYPE("B"), go, sizeof go - 1, &n, NULL);
  cr_assert(strstr(c, "part=4:a\\\"b\n"), "%s", c);
  free(c);
}

/* ---------- malformed multipart: raw bytes ---------- */

static void expect_raw(const char *ct, const char *body, size_t len) {
  size_t n;
  struct pc_bodykey_info info;
  char *c = canon_n(ct, body, len, &n, &info);
  cr_assert_eq(info.kind, PC_BODYKEY_RAW, "%s", ct);
  cr_assert_str_eq(info.content_type, "multipart/form-data");
  pc_buf want;
  pc_buf_init(&want, OUT_MAX);
  cr_assert_eq(pc_buf_printf(&want, "pc-body-v1\nkind=3:raw\ntype=19:multipart/form-data\ndata=%zu:", len), 0);
  cr_assert_eq(pc_buf_append(&want, body, len), 0);
  cr_assert_eq(pc_buf_putc(&want, '\n'), 0);
  cr_assert_eq(n, want.len);
  cr_assert_eq(memcmp(c, want.data, n), 0);
  pc_buf_free(&want);
  free(c);
}

Test(bodykey, malformed_multipart_falls_back_to_raw) {
  size_t len;
  char *body = undici_body(UNDICI_A, upload, 2, &len);
  expect_raw("multipart/form-data", body, len);                         /* no boundary */
  expect_raw("multipart/form-data; boundary=", body, len);              /* empty boundary */
  expect_raw("multipart/form-data; boundary=" UNDICI_B, body, len);     /* another boundary */
  expect_raw("multipart/form-data; boundary=" UNDICI_A, body, len - 4); /* no closing delimiter */
  const char junk[] = "--B\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n--Bxyz\r\n--B--";
  expect_raw(MP_TYPE("B"), junk, sizeof junk - 1); /* a delimiter line not ending in CRLF or "--" */
  const char nohdrend[] = "--B\r\nContent-Disposition: form-data; name=x\r\n--B--";
  expect_raw(MP_TYPE("B"), nohdrend, sizeof nohdrend - 1); /* headers run into the delimiter */
  const char lf[] = "--B\nContent-Disposition: form-data; name=x\n\nv\n--B--\n";
  expect_raw(MP_TYPE("B"), lf, sizeof lf - 1); /* bare LF line ends */
  free(body);
}

Test(bodykey, hostile_multipart_is_bounded) {
  /* More parts than the limit: raw (and quickly). */
  pc_buf b;
  pc_buf_init(&b, OUT_MAX);
  for (int i = 0; i < 200000; i++) cr_assert_eq(pc_buf_puts(&b, "--B\r\n\r\n\r\n"), 0);
  cr_assert_eq(pc_buf_puts(&b, "--B--"), 0);
  expect_raw(MP_TYPE("B"), b.data, b.len);
  /* Exactly the limit is fine. */
  pc_buf_reset(&b);
  for (int i = 0; i < PC_BODYKEY_MAX_PARTS; i++) cr_assert_eq(pc_buf_puts(&b, "--B\r\n\r\nx\r\n"), 0);
  cr_assert_eq(pc_buf_puts(&b, "--B--"), 0);
  struct pc_bodykey_info info;
  size_t n;
  free(canon_n(MP_TYPE("B"), b.data, b.len, &n, &info));
  cr_assert_eq(info.kind, PC_BODYKEY_MULTIPART);
  cr_assert_eq(info.n_items, PC_BODYKEY_MAX_PARTS);
  /* Headers that never end, and headers over the limit that do end. */
  pc_buf_reset(&b);
  cr_assert_eq(pc_buf_puts(&b, "--B\r\n"), 0);
  for (int i = 0; i < 100000; i++) cr_assert_eq(pc_buf_puts(&b, "X-Pad: 0123456789\r\n"), 0);
  size_t mark = b.len;
  cr_assert_eq(pc_buf_puts(&b, "--B--"), 0);
  expect_raw(MP_TYPE("B"), b.data, b.len);
  b.len = mark;
  cr_assert_eq(pc_buf_puts(&b, "\r\nv\r\n--B--"), 0);
  expect_raw(MP_TYPE("B"), b.data, b.len);
  /* A boundary longer than the limit. */
  char ct[400] = "multipart/form-data; boundary=";
  memset(ct + strlen(ct), 'b', PC_BODYKEY_MAX_BOUNDARY + 1);
  expect_raw(ct, b.data, b.len);
  /* A delimiter found over and over without a CRLF after it. */
  pc_buf_reset(&b);
  for (int i = 0; i < 100000; i++) cr_assert_eq(pc_buf_puts(&b, "\r\n--B"), 0);
  expect_raw(MP_TYPE("B"), b.data, b.len);
  pc_buf_free(&b);
}

Test(bodykey, mutated_multipart_never_fails) {
  size_t len;
  char *body = undici_body(UNDICI_A, upload, 2, &len);
  unsigned seed = 12345;
  pc_buf out;
  pc_buf_init(&out, OUT_MAX);
  for (int round = 0; round < 20000; round++) {
    char *m = malloc(len);
    memcpy(m, body, len);
    size_t cut = len;
    for (int k = 0; k < 3; k++) {
      seed = seed * 1103515245u + 12345u;
      m[(seed >> 8) % len] = (char)(seed >> 16);
    }
    seed = seed * 1103515245u + 12345u;
    if (round % 3 == 0) cut = (seed >> 8) % (len + 1);
    pc_buf_reset(&out);
    struct pc_bodykey_info info;
    cr_assert_eq(pc_bodykey_canon(MP_TYPE(UNDICI_A), strlen(MP_TYPE(UNDICI_A)), m, cut, &out, &info), 0);
    /* Whatever came out parses back and round-trips through JSON. */
    pc_buf js, back;
    pc_buf_init(&js, OUT_MAX);
    pc_buf_init(&back, OUT_MAX);
    cr_assert_eq(pc_bodykey_to_json(out.data ? out.data : "", out.len, &js), 0);
    cr_assert_eq(pc_bodykey_from_json_text(js.data, js.len, &back), 0, "%s", js.data);
    cr_assert_eq(back.len, out.len);
    cr_assert(!out.len || !memcmp(back.data, out.data, out.len));
    pc_buf_free(&js);
    pc_buf_free(&back);
    free(m);
  }
  pc_buf_free(&out);
  free(body);
}

/* ---------- forms ---------- */

Test(bodykey, form_sorted_stably_and_decoded) {
  cr_assert(same_form("b=2&a=1", "a=1&b=2"));
  cr_assert_not(same_form("a=1&a=2", "a=2&a=1"));     /* repeated names keep their order */
  cr_assert(same_form("b=1&a=1&b=2", "a=1&b=1&b=2")); /* ... after a stable sort */
  cr_assert(same_form("%41=%62", "A=b"));
  cr_assert(same_form("%2f=%2F", "/=/"));
  cr_assert(same_form("q=a+b", "q=a%20b"));
  cr_assert_not(same_form("q=a+b", "q=a%2Bb"));
  cr_assert(same_form("flag", "flag="));
  cr_assert(same_form("a=1&&b=2&", "a=1&b=2"));
  cr_assert(same_form("x=%zz%4", "x=%zz%4"));     /* stray '%' kept as it is */
  cr_assert(same_form("x=%zz", "x=%25zz"));       /* %25 is a '%' too */
  cr_assert_not(same_form("a=b%3Dc", "a%3Db=c")); /* '=' inside a name or a value */
  cr_assert_not(same_form("a=1%262=3", "a=1&2=3"));
  cr_assert(same_canon(FORM_CT, "b=2&a=1", 7, "Application/X-WWW-Form-Urlencoded; charset=UTF-8", "a=1&b=2", 7));

  size_t n;
  struct pc_bodykey_info info;
  char *c = canon_n(FORM_CT, "b=2&a=1&a=0", 11, &n, &info);
  cr_assert_str_eq(c, "pc-body-v1\nkind=4:form\ntype=33:application/x-www-form-urlencoded\n"
                      "field=1:a\nvalue=1:1\nfield=1:a\nvalue=1:0\nfield=1:b\nvalue=1:2\n");
  cr_assert_eq(info.kind, PC_BODYKEY_FORM);
  cr_assert_eq(info.n_items, 3);
  free(c);
}

Test(bodykey, form_diff_by_field) {
  struct diffs r = diff_bodies(FORM_CT, "model=m1&a=1&a=2", 16, FORM_CT, "a=1&a=3&model=m1&extra", 22);
  expect_diff(&r, "@field/a/1", "\"2\"", "\"3\"");
  expect_diff(&r, "@field/extra", NULL, "\"\"");
  cr_assert_eq(r.n, 2);
  pc_json_diff_free(r.d, r.n);
}

Test(bodykey, form_over_the_field_limit_is_raw) {
  pc_buf b;
  pc_buf_init(&b, OUT_MAX);
  for (int i = 0; i <= PC_BODYKEY_MAX_FIELDS; i++) cr_assert_eq(pc_buf_puts(&b, "a=1&"), 0);
  struct pc_bodykey_info info;
  size_t n;
  free(canon_n(FORM_CT, b.data, b.len, &n, &info));
  cr_assert_eq(info.kind, PC_BODYKEY_RAW);
  pc_buf_free(&b);
}

/* ---------- raw, empty ---------- */

Test(bodykey, raw_bytes_as_they_are) {
  const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
  size_t n;
  struct pc_bodykey_info info;
  char *c = canon_n(" Image/PNG ; q=1", png, sizeof png - 1, &n, &info);
  const char want[] = "pc-body-v1\nkind=3:raw\ntype=9:image/png\ndata=16:\x89PNG\r\n\x1a\n\0\0\0\rIHDR\n";
  cr_assert_eq(n, sizeof want - 1);
  cr_assert_eq(memcmp(c, want, n), 0);
  cr_assert_eq(info.kind, PC_BODYKEY_RAW);
  cr_assert_str_eq(info.content_type, "image/png");
  free(c);
  /* No content type at all; JSON that did not parse stays raw. */
  c = canon_n(NULL, "hello", 5, &n, &info);
  cr_assert_str_eq(c, "pc-body-v1\nkind=3:raw\ntype=0:\ndata=5:hello\n");
  cr_assert_str_eq(info.content_type, "");
  free(c);
  c = canon_s("application/json", "{\"a\":", &n);
  cr_assert_str_eq(c, "pc-body-v1\nkind=3:raw\ntype=16:application/json\ndata=5:{\"a\":\n");
  free(c);
}

Test(bodykey, raw_diffs) {
  const char bin1[] = "\xff\x00\x01", bin2[] = "\xff\x00\x02";
  struct diffs r = diff_bodies("application/octet-stream", bin1, 3, "application/octet-stream", bin2, 3);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.d[0].pointer, "@body");
  cr_assert(!strncmp(r.d[0].recorded, "\"3 bytes, xxh3 ", 14), "%s", r.d[0].recorded);
  pc_json_diff_free(r.d, r.n);
  /* Same bytes, another type: only the type. */
  r = diff_bodies("text/plain", "same", 4, "text/csv", "same", 4);
  cr_assert_eq(r.n, 1);
  expect_diff(&r, "@content-type", "\"text/plain\"", "\"text/csv\"");
  pc_json_diff_free(r.d, r.n);
  /* Long text is abbreviated as pc_json_diff does. */
  char long_a[600], long_b[600];
  memset(long_a, 'x', sizeof long_a);
  memcpy(long_b, long_a, sizeof long_b);
  long_b[599] = 'y';
  r = diff_bodies("text/plain", long_a, 600, "text/plain", long_b, 600);
  cr_assert_eq(r.n, 1);
  cr_assert_eq(strlen(r.d[0].recorded), 200 + 2 + 3);
  cr_assert(strstr(r.d[0].recorded, "x\xE2\x80\xA6\""));
  pc_json_diff_free(r.d, r.n);
}

Test(bodykey, empty_body) {
  size_t n;
  struct pc_bodykey_info info;
  char *c = canon_n("application/json", "", 0, &n, &info);
  cr_assert_eq(n, 0);
  cr_assert_eq(info.kind, PC_BODYKEY_EMPTY);
  cr_assert_str_eq(info.content_type, "application/json");
  cr_assert(pc_bodykey_is_canon(c, 0));
  free(c);
  cr_assert(same_canon(NULL, NULL, 0, MP_TYPE("B"), "", 0));
  /* Empty against a form: the whole body, absent on one side. */
  struct diffs r = diff_bodies(NULL, "", 0, FORM_CT, "a=1&b=2", 7);
  cr_assert_eq(r.n, 1);
  expect_diff(&r, "@body", NULL, "\"2 fields: a, b\"");
  pc_json_diff_free(r.d, r.n);
}

/* ---------- injectivity ---------- */

Test(bodykey, length_prefixes_keep_fields_apart) {
  /* A part's bytes that look like the next record, against a real next part. */
  const struct part one[1] = {{"a", NULL, NULL, "x\npart=1:b\ntype=10:text/plain\ndata=1:y", 38}};
  const struct part two[2] = {{"a", NULL, NULL, "x", 1}, {"b", NULL, NULL, "y", 1}};
  size_t la, lb;
  char *a = undici_body("B", one, 1, &la), *b = undici_body("B", two, 2, &lb);
  cr_assert_not(same_canon(MP_TYPE("B"), a, la, MP_TYPE("B"), b, lb));
  free(a);
  free(b);
  /* Kinds never meet: a form, a raw body with the same type-less bytes, a multipart fallback. */
  cr_assert_not(same_canon(FORM_CT, "a=1", 3, "text/plain", "a=1", 3));
  cr_assert_not(same_canon(FORM_CT, "a=1", 3, NULL, "a=1", 3));
  /* A field value holding a whole field record. */
  cr_assert_not(same_form("a=1%0Afield%3D1%3Ab%0Avalue%3D1%3A2", "a=1&b=2"));
  /* Canonical JSON and this form never share a first byte. */
  cr_assert_not(pc_bodykey_is_canon("{\"a\":1}", 7));
  cr_assert_not(pc_bodykey_is_canon("null", 4));
}

/* Random small forms: equal canonical bytes exactly when the sorted decoded
 * field lists are equal. */
Test(bodykey, form_keys_equal_iff_fields_equal) {
  static const char *const toks[] = {"a", "b", "%61", "+", "%20", "%2B", "", "a%3Db", "%26"};
  static const char *const dec[] = {"a", "b", "a", " ", " ", "+", "", "a=b", "&"};
  unsigned seed = 7;
  for (int round = 0; round < 4000; round++) {
    char body[2][128], norm[2][128];
    for (int s = 0; s < 2; s++) {
      seed = seed * 1103515245u + 12345u;
      int nf = 1 + (int)((seed >> 8) % 3);
      /* Fields are built in sorted order of decoded name, so the normalized
       * text below is the canonical list. */
      const char *pairs[3][2];
      int idx[3][2];
      for (int f = 0; f < nf; f++)
        for (int k = 0; k < 2; k++) {
          seed = seed * 1103515245u + 12345u;
          idx[f][k] = (int)((seed >> 8) % 9);
          pairs[f][k] = toks[idx[f][k]];
        }
      body[s][0] = norm[s][0] = '\0';
      for (int f = 0; f < nf; f++) {
        size_t bl = strlen(body[s]);
        snprintf(body[s] + bl, sizeof body[s] - bl, "%s%s=%s", f ? "&" : "", pairs[f][0], pairs[f][1]);
      }
      /* Reference: stable insertion sort of the decoded pairs. */
      int order[3] = {0, 1, 2};
      for (int i = 1; i < nf; i++)
        for (int j = i; j > 0 && strcmp(dec[idx[order[j - 1]][0]], dec[idx[order[j]][0]]) > 0; j--) {
          int t = order[j];
          order[j] = order[j - 1];
          order[j - 1] = t;
        }
      for (int f = 0; f < nf; f++) {
        size_t nl = strlen(norm[s]);
        snprintf(norm[s] + nl, sizeof norm[s] - nl, "[%s|%s]", dec[idx[order[f]][0]], dec[idx[order[f]][1]]);
      }
    }
    int want = !strcmp(norm[0], norm[1]);
    cr_assert_eq(same_form(body[0], body[1]), want, "%s vs %s", body[0], body[1]);
  }
}

/* ---------- JSON form ---------- */

static char *to_json(const char *c, size_t n) {
  pc_buf b;
  pc_buf_init(&b, OUT_MAX);
  int rc = pc_bodykey_to_json(c, n, &b);
  cr_assert_eq(rc, 0, "to_json: %s", pc_errname(rc));
  return pc_buf_steal(&b, NULL);
}

static void expect_roundtrip(const char *ct, const char *body, size_t len, const char *want_json) {
  size_t n;
  char *c = canon_n(ct, body, len, &n, NULL);
  char *js = to_json(c, n);
  if (want_json) cr_assert_str_eq(js, want_json);
  struct pc_json_doc *doc = NULL;
  cr_assert_eq(pc_json_parse(js, strlen(js), &doc, NULL), 0, "not JSON: %s", js);
  pc_json_free(doc);
  pc_buf back;
  pc_buf_init(&back, OUT_MAX);
  int rc = pc_bodykey_from_json_text(js, strlen(js), &back);
  cr_assert_eq(rc, 0, "from_json %s: %s", js, pc_errname(rc));
  cr_assert_eq(back.len, n, "%s", js);
  cr_assert(!n || !memcmp(back.data, c, n), "%s", js);
  pc_buf_free(&back);
  free(js);
  free(c);
}

Test(bodykey, json_roundtrip) {
  size_t len;
  char *body = undici_body(UNDICI_A, upload, 2, &len);
  expect_roundtrip(
      MP_TYPE(UNDICI_A), body, len,
      "{\"content_type\":\"multipart/form-data\",\"multipart\":[{\"name\":\"purpose\",\"value\":\"assistants\"},"
      "{\"name\":\"file\",\"filename\":\"a.jsonl\",\"content_type\":\"application/jsonl\",\"value\":"
      "\"{\\\"messages\\\":[{\\\"role\\\":\\\"user\\\",\\\"content\\\":\\\"hi\\\"}]}\\n\"}]}");
  free(body);
  const struct part bin[2] = {{"\xff\xfe", "\xc3(", "Image/PNG", "\x89PNG\0", 5}, {"", NULL, NULL, "", 0}};
  body = undici_body("B", bin, 2, &len);
  expect_roundtrip(MP_TYPE("B"), body, len,
                   "{\"content_type\":\"multipart/form-data\",\"multipart\":[{\"name\":{\"base64\":\"//4=\"},"
                   "\"filename\":{\"base64\":\"wyg=\"},\"content_type\":\"image/png\",\"base64\":\"iVBORwA=\"},"
                   "{\"name\":\"\",\"value\":\"\"}]}");
  free(body);
  expect_roundtrip(MP_TYPE("B"), "--B--", 5, "{\"content_type\":\"multipart/form-data\",\"multipart\":[]}");
  expect_roundtrip(FORM_CT, "b=%FF&a=1", 9,
                   "{\"content_type\":\"application/"
                   "x-www-form-urlencoded\",\"form\":[[\"a\",\"1\"],[\"b\",{\"base64\":\"/w==\"}]]}");
  expect_roundtrip(FORM_CT, "&&", 2, "{\"content_type\":\"application/x-www-form-urlencoded\",\"form\":[]}");
  expect_roundtrip("application/octet-stream", "\x00\x01\x02\xff", 4,
                   "{\"content_type\":\"application/octet-stream\",\"base64\":\"AAEC/w==\"}");
  expect_roundtrip("text/plain", "line\n", 5, "{\"content_type\":\"text/plain\",\"text\":\"line\\n\"}");
  expect_roundtrip(NULL, "x", 1, "{\"content_type\":\"\",\"text\":\"x\"}");
  expect_roundtrip("multipart/form-data", "not multipart", 13,
                   "{\"content_type\":\"multipart/form-data\",\"text\":\"not multipart\"}");
  expect_roundtrip(NULL, "", 0, "{\"empty\":true}");
  for (int n = 1; n <= 6; n++)
    expect_roundtrip("application/octet-stream", "\xff\xfe\xfd\xfc\xfb\xfa", (size_t)n, NULL);
}

static int from_json_rc(const char *js, pc_buf *out) {
  pc_buf_reset(out);
  return pc_bodykey_from_json_text(js, strlen(js), out);
}

Test(bodykey, from_json_normalizes_and_rejects) {
  pc_buf out;
  pc_buf_init(&out, OUT_MAX);
  /* An edited file: unsorted fields and upper-case types key as canon would. */
  cr_assert_eq(from_json_rc("{\"content_type\":\"Application/"
                            "X-WWW-Form-Urlencoded\",\"form\":[[\"b\",\"2\"],[\"a\",\"1\"],[\"a\",\"0\"]]}",
                            &out),
               0);
  size_t n;
  char *c = canon_s(FORM_CT, "a=1&b=2&a=0", &n);
  cr_assert_eq(out.len, n);
  cr_assert_eq(memcmp(out.data, c, n), 0);
  free(c);
  cr_assert_eq(from_json_rc("{\"content_type\":\"text/plain\",\"text\":\"\"}", &out), 0);
  cr_assert_eq(out.len, 0); /* an empty body is the empty key body */
  static const char *const bad[] = {
      "[]",
      "{\"content_type\":\"text/plain\"}",
      "{\"content_type\":\"text/plain\",\"multipart\":[]}",
      "{\"content_type\":\"multipart/form-data\",\"form\":[]}",
      "{\"content_type\":\"text/plain\",\"text\":\"a\",\"base64\":\"YQ==\"}",
      "{\"content_type\":\"text/plain\",\"base64\":\"YQ=\"}",
      "{\"content_type\":\"text/plain\",\"base64\":\"YR==\"}",
      "{\"content_type\":\"text/plain\",\"base64\":\"Y=Q=\"}",
      "{\"content_type\":\"text/plain\",\"text\":1}",
      "{\"content_type\":\"multipart/mixed\",\"multipart\":[{\"name\":\"a\"}]}",
      "{\"content_type\":\"multipart/mixed\",\"multipart\":[{\"value\":\"a\"}]}",
      "{\"content_type\":\"" FORM_CT "\",\"form\":[[\"a\"]]}",
      "{\"content_type\":{\"base64\":\"!!!!\"},\"text\":\"x\"}",
      "{\"empty\":false}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cr_assert_eq(from_json_rc(bad[i], &out), PC_EINVAL, "%s", bad[i]);
    cr_assert_eq(out.len, 0, "%s", bad[i]);
  }
  cr_assert_eq(from_json_rc("{", &out), PC_EJSON);
  pc_buf_free(&out);
  /* to_json refuses canonical JSON and corrupt forms. */
  pc_buf b;
  pc_buf_init(&b, OUT_MAX);
  cr_assert_eq(pc_bodykey_to_json("{\"a\":1}", 7, &b), PC_ECORRUPT);
  cr_assert_eq(pc_bodykey_to_json("pc-body-v1\nkind=3:raw\ntype=0:\ndata=9:x\n", 38, &b), PC_ECORRUPT);
  cr_assert_eq(pc_bodykey_to_json("pc-body-v1\nkind=3:raw\ntype=00:\ndata=1:x\n", 39, &b), PC_ECORRUPT);
  cr_assert_eq(pc_bodykey_to_json("pc-body-v1\nkind=5:other\ntype=0:\n", 32, &b), PC_ECORRUPT);
  cr_assert_eq(b.len, 0);
  pc_buf_free(&b);
}

/* ---------- diff plumbing ---------- */

Test(bodykey, diff_json_kinds_limits_and_appending) {
  /* Two JSON bodies: JSON pointers from pc_json_diff. */
  const char ja[] = "{\"model\":\"a\",\"n\":1}", jb[] = "{\"model\":\"b\",\"n\":2}";
  struct diffs r = diff_canon(ja, sizeof ja - 1, jb, sizeof jb - 1, 20);
  expect_diff(&r, "/model", "\"a\"", "\"b\"");
  expect_diff(&r, "/n", "1", "2");
  cr_assert_eq(r.n, 2);
  /* Appending a non-JSON comparison to the same list, with the cap at 3. */
  size_t n;
  char *form = canon_s(FORM_CT, "a=1", &n);
  int rc = pc_bodykey_diff(ja, sizeof ja - 1, form, n, 3, 200, &r.d, &r.n, &r.total);
  cr_assert_eq(rc, 0);
  cr_assert_eq(r.n, 3);
  cr_assert_eq(r.total, 3);
  expect_diff(&r, "@body", "\"{\\\"model\\\":\\\"a\\\",\\\"n\\\":1}\"", "\"1 field: a\"");
  /* Over the cap: counted, not kept; JSON ones too. */
  cr_assert_eq(pc_bodykey_diff(ja, sizeof ja - 1, jb, sizeof jb - 1, 3, 200, &r.d, &r.n, &r.total), 0);
  cr_assert_eq(r.n, 3);
  cr_assert_eq(r.total, 5);
  pc_json_diff_free(r.d, r.n);
  free(form);
  /* Corrupt canonical form. */
  struct diffs e = {0};
  cr_assert_eq(pc_bodykey_diff("pc-body-v1\nkind=", 16, "", 0, 20, 200, &e.d, &e.n, &e.total), PC_ECORRUPT);
  pc_json_diff_free(e.d, e.n);
}

Test(bodykey, query_diff) {
  struct diffs r = {0};
  const char a[] = "after=x&limit=10&order=asc", b[] = "after=x&include&limit=20";
  cr_assert_eq(pc_bodykey_query_diff(a, strlen(a), b, strlen(b), 20, 200, &r.d, &r.n, &r.total), 0);
  expect_diff(&r, "@query/limit", "\"10\"", "\"20\"");
  expect_diff(&r, "@query/order", "\"asc\"", NULL);
  expect_diff(&r, "@query/include", NULL, "true");
  cr_assert_eq(r.n, 3);
  pc_json_diff_free(r.d, r.n);
  r = (struct diffs){0};
  cr_assert_eq(pc_bodykey_query_diff("id=1&id=2", 9, "id=1&id=3", 9, 20, 200, &r.d, &r.n, &r.total), 0);
  expect_diff(&r, "@query/id/1", "\"2\"", "\"3\"");
  cr_assert_eq(r.n, 1);
  pc_json_diff_free(r.d, r.n);
}

Test(bodykey, out_limit_leaves_out_unchanged) {
  size_t len;
  char *body = undici_body(UNDICI_A, upload, 2, &len);
  pc_buf out;
  pc_buf_init(&out, 64);
  cr_assert_eq(pc_buf_puts(&out, "prefix"), 0);
  cr_assert_eq(pc_bodykey_canon(MP_TYPE(UNDICI_A), strlen(MP_TYPE(UNDICI_A)), body, len, &out, NULL), PC_ETOOBIG);
  cr_assert_eq(out.len, 6);
  cr_assert_str_eq(out.data, "prefix");
  cr_assert_eq(pc_bodykey_to_json("", 0, &out), 0);
  cr_assert_str_eq(out.data, "prefix{\"empty\":true}");
  pc_buf_free(&out);
  free(body);
}
