/* fuzz_canon.c — libFuzzer target for src/canon.c (pc_canon_json), the
 * parser every cacheable request body goes through.
 * Input: JSON text, optionally followed by a 0xff byte and '\n'-separated
 * ignore pointers (at most MAX_PTRS). Checked on every input:
 *  - canonical output is a fixed point: canonicalizing it again gives the same
 *    bytes and the same pc_canon_info;
 *  - what canon accepts, the JSON DOM (json.c) accepts too, and canon's output
 *    is valid JSON for it;
 *  - ignore pointers never change whether a document is accepted, and match
 *    the same members whatever the spelling: canon(x, P) == canon(canon(x), P). */
#include "fuzz.h"

#include "buf.h"
#include "canon.h"
#include "json.h"

#define OUT_MAX ((size_t)16 << 20)
#define MAX_PTRS 8

/* Pointers every input is also canonicalized with: members and array
 * elements that real --ignore-field settings name, plus escapes. */
static const char *const fixed_ptrs[] = {
    "/user", "/metadata/trace_id", "/messages/0/name", "/messages/1", "/stream", "/a~1b", "/~0", "/0", "/", "/model"};
#define N_FIXED (sizeof fixed_ptrs / sizeof *fixed_ptrs)

static int info_eq(const struct pc_canon_info *a, const struct pc_canon_info *b) {
  return a->is_object == b->is_object && a->stream == b->stream && !strcmp(a->model, b->model);
}

/* canon(out) == out, with the same info as the original document. */
static void check_fixed_point(const pc_buf *out, const struct pc_canon_info *want) {
  pc_buf again;
  struct pc_canon_info info;
  pc_buf_init(&again, OUT_MAX);
  char *copy = fuzz_copy(out->data, out->len);
  int rc = pc_canon_json(copy, out->len, NULL, 0, &again, &info);
  FUZZ_CHECK(rc == 0, "canonical output rejected (rc %d): %.*s", rc, (int)out->len, out->data);
  FUZZ_CHECK(again.len == out->len && !memcmp(again.data, out->data, out->len), "not idempotent: %.*s -> %.*s",
             (int)out->len, out->data, (int)again.len, again.data);
  if (want)
    FUZZ_CHECK(info_eq(&info, want), "info differs after re-canonicalizing (model '%s' vs '%s')", info.model,
               want->model);
  free(copy);
  pc_buf_free(&again);
}

static void check_dom_accepts(const char *p, size_t n, const char *what) {
  struct pc_json_doc *doc = NULL;
  int rc = pc_json_parse(p, n, &doc, NULL);
  FUZZ_CHECK(rc == 0, "canon accepted %s that pc_json_parse rejects (rc %d)", what, rc);
  pc_json_free(doc);
}

/* With ignore pointers: accepted exactly when the plain run was, and the same
 * bytes whether applied to the input or to its canonical form. */
static void check_ignore(const char *in, size_t n, int rc0, const pc_buf *canon0, const char *const *ptrs,
                         size_t n_ptrs) {
  pc_buf out, out2;
  pc_buf_init(&out, OUT_MAX);
  pc_buf_init(&out2, OUT_MAX);
  int rc = pc_canon_json(in, n, ptrs, n_ptrs, &out, NULL);
  FUZZ_CHECK(rc == rc0, "ignore pointers changed the result: %d vs %d", rc, rc0);
  if (rc == 0) {
    check_fixed_point(&out, NULL);
    char *copy = fuzz_copy(canon0->data, canon0->len);
    rc = pc_canon_json(copy, canon0->len, ptrs, n_ptrs, &out2, NULL);
    FUZZ_CHECK(rc == 0 && out2.len == out.len && !memcmp(out2.data, out.data, out.len),
               "ignore pointers depend on spelling: %.*s vs %.*s", (int)out.len, out.data, (int)out2.len, out2.data);
    free(copy);
  }
  pc_buf_free(&out);
  pc_buf_free(&out2);
}

/* Up to MAX_PTRS NUL-terminated pointers from '\n'-separated text. */
static size_t split_ptrs(struct fuzz_part t, char **ptrs) {
  size_t n = 0;
  while (n < MAX_PTRS && t.n) {
    struct fuzz_part line, rest;
    fuzz_split((const uint8_t *)t.p, t.n, '\n', &line, &rest);
    ptrs[n++] = fuzz_cstr(line.p, line.n);
    t = rest;
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fuzz_part json, tail;
  int has_ptrs = fuzz_split(data, size, 0xff, &json, &tail);
  char *in = fuzz_copy(json.p, json.n);
  pc_buf out;
  struct pc_canon_info info;
  pc_buf_init(&out, OUT_MAX);

  int rc = pc_canon_json(in, json.n, NULL, 0, &out, &info);
  if (rc == 0) {
    check_fixed_point(&out, &info);
    check_dom_accepts(in, json.n, "input");
    check_dom_accepts(out.data, out.len, "its own output");
  }
  check_ignore(in, json.n, rc, &out, fixed_ptrs, N_FIXED);
  if (has_ptrs) {
    char *ptrs[MAX_PTRS];
    size_t n = split_ptrs(tail, ptrs);
    check_ignore(in, json.n, rc, &out, (const char *const *)ptrs, n);
    for (size_t i = 0; i < n; i++) free(ptrs[i]);
  }
  pc_buf_free(&out);
  free(in);
  return 0;
}
