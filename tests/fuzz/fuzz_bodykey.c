/* fuzz_bodykey.c — libFuzzer target for src/bodykey.c: the keys of request
 * bodies that are not JSON (record and replay modes key every exchange, so
 * any client's multipart upload or form reaches it). Input: a content type,
 * '\n', then the body (no '\n' at all: the whole input is a multipart body
 * with boundary B). Checks: keying never fails; the canonical form goes to
 * JSON and back to the same bytes (export -> import keeps keys); a body has
 * no difference with itself, and differs from another key exactly when the
 * bytes differ; hostile stored forms and exported JSON never crash. */
#include "fuzz.h"

#include "bodykey.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data, *nl = memchr(in, '\n', size);
  const char *ct = nl ? in : "multipart/form-data; boundary=B";
  size_t ctlen = nl ? (size_t)(nl - in) : strlen(ct);
  const char *body = nl ? nl + 1 : in;
  size_t n = nl ? size - ctlen - 1 : size;
  char *copy = malloc(n + 1); /* exactly n bytes readable: ASan sees any overread */
  if (!copy) return 0;
  memcpy(copy, body, n);
  pc_buf out, js, back;
  pc_buf_init(&out, 1 << 26);
  pc_buf_init(&js, 1 << 28);
  pc_buf_init(&back, 1 << 26);
  struct pc_bodykey_info info;
  int rc = pc_bodykey_canon(ct, ctlen, copy, n, &out, &info);
  FUZZ_CHECK(rc == 0, "canon: %d", rc);
  FUZZ_CHECK(pc_bodykey_is_canon(out.data ? out.data : "", out.len), "not a canonical form");
  FUZZ_CHECK((info.kind == PC_BODYKEY_EMPTY) == (n == 0), "empty kind for %zu bytes", n);
  rc = pc_bodykey_to_json(out.data ? out.data : "", out.len, &js);
  FUZZ_CHECK(rc == 0, "to_json: %d", rc);
  rc = pc_bodykey_from_json_text(js.data ? js.data : "", js.len, &back);
  FUZZ_CHECK(rc == 0, "from_json: %d", rc);
  FUZZ_CHECK(back.len == out.len && (!out.len || !memcmp(back.data, out.data, out.len)), "JSON round trip changed it");
  struct pc_json_diff *d = NULL;
  size_t nd = 0, total = 0;
  rc = pc_bodykey_diff(out.data ? out.data : "", out.len, out.data ? out.data : "", out.len, 20, 200, &d, &nd, &total);
  FUZZ_CHECK(rc == 0 && total == 0, "a body differs from itself: rc %d, %zu differences", rc, total);
  pc_json_diff_free(d, nd);
  d = NULL;
  nd = total = 0;
  pc_buf_reset(&back);
  rc = pc_bodykey_canon("application/x-www-form-urlencoded", 33, copy, n, &back, NULL);
  FUZZ_CHECK(rc == 0, "form canon: %d", rc);
  rc = pc_bodykey_diff(out.data ? out.data : "", out.len, back.data ? back.data : "", back.len, 20, 200, &d, &nd,
                       &total);
  FUZZ_CHECK(rc == 0, "diff: %d", rc);
  int same = out.len == back.len && (!out.len || !memcmp(out.data, back.data, out.len));
  FUZZ_CHECK((total == 0) == same, "%zu differences between %s forms", total, same ? "equal" : "unequal");
  pc_json_diff_free(d, nd);
  d = NULL;
  nd = 0;
  (void)pc_bodykey_diff(copy, n, out.data ? out.data : "", out.len, 20, 200, &d, &nd, &total);
  pc_json_diff_free(d, nd);
  d = NULL;
  nd = 0;
  (void)pc_bodykey_query_diff(copy, n, ct, ctlen, 20, 200, &d, &nd, &total);
  pc_json_diff_free(d, nd);
  pc_buf_reset(&js);
  (void)pc_bodykey_to_json(copy, n, &js);
  pc_buf_reset(&back);
  (void)pc_bodykey_from_json_text(copy, n, &back);
  pc_buf_free(&out);
  pc_buf_free(&js);
  pc_buf_free(&back);
  free(copy);
  return 0;
}
