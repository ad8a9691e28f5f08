/* fuzz_json.c — libFuzzer target for src/json.c: the strict JSON DOM parser,
 * its compact and pretty writers, pointer lookup and the structural diff
 * (replay-miss explanations compare a recorded and a requested body).
 * Input: document A, optionally a 0xff byte and document B. Checked:
 *  - write(parse(x)) parses again, and writing that gives the same bytes;
 *    the pretty form parses to the same compact form;
 *  - every difference has valid JSON values and a pointer that exists on
 *    each side where a value is given; for documents without duplicate
 *    member names (what the diff is used on: canonical requests) diff(A, A)
 *    is empty and diff(A, B) and diff(B, A) count the same differences. */
#include "fuzz.h"

#include "buf.h"
#include "error.h"
#include "json.h"

#define OUT_MAX ((size_t)64 << 20)
#define MAX_DIFFS 32

static struct pc_json_doc *parse(const char *p, size_t n) {
  struct pc_json_doc *doc = NULL;
  size_t errpos = 0;
  int rc = pc_json_parse(p, n, &doc, &errpos);
  if (rc) {
    FUZZ_CHECK(doc == NULL, "a failed parse returned a document");
    FUZZ_CHECK(errpos <= n, "error position %zu past the input (%zu bytes)", errpos, n);
    return NULL;
  }
  return doc;
}

/* Compact form of v into a fresh buffer (the caller frees it). */
static void write_compact(const struct pc_json *v, pc_buf *out) {
  pc_buf_init(out, OUT_MAX);
  int rc = pc_json_write(v, out);
  FUZZ_CHECK(rc == 0, "pc_json_write failed: %d", rc);
}

/* The written form is valid JSON and a fixed point of parse + write. */
static void check_writers(const struct pc_json *root) {
  pc_buf w1, w2, pretty, w3;
  write_compact(root, &w1);
  char *copy = fuzz_copy(w1.data, w1.len);
  struct pc_json_doc *again = parse(copy, w1.len);
  FUZZ_CHECK(again, "write(parse(x)) does not parse: %.*s", (int)w1.len, w1.data);
  write_compact(pc_json_root(again), &w2);
  FUZZ_CHECK(w1.len == w2.len && !memcmp(w1.data, w2.data, w1.len), "write is not stable: %.*s vs %.*s", (int)w1.len,
             w1.data, (int)w2.len, w2.data);
  pc_json_free(again);
  free(copy);

  pc_buf_init(&pretty, OUT_MAX);
  FUZZ_CHECK(pc_json_write_pretty(root, &pretty, 2) == 0, "pc_json_write_pretty failed");
  again = parse(pretty.data, pretty.len);
  FUZZ_CHECK(again, "pretty output does not parse: %.*s", (int)pretty.len, pretty.data);
  write_compact(pc_json_root(again), &w3);
  FUZZ_CHECK(w1.len == w3.len && !memcmp(w1.data, w3.data, w1.len), "pretty form is another document");
  pc_json_free(again);
  pc_buf_free(&w1);
  pc_buf_free(&w2);
  pc_buf_free(&w3);
  pc_buf_free(&pretty);
}

/* Duplicate member names anywhere (objects over DUP_SCAN_MAX members count
 * as having some, to keep the scan cheap). */
#define DUP_SCAN_MAX 256
static int has_dups(const struct pc_json *v) {
  if (v->type != PC_JSON_ARRAY && v->type != PC_JSON_OBJECT) return 0;
  if (v->type == PC_JSON_OBJECT && v->len > DUP_SCAN_MAX) return 1;
  for (size_t i = 0; i < v->len; i++) {
    if (has_dups(&v->kids[i])) return 1;
    for (size_t j = 0; v->type == PC_JSON_OBJECT && j < i; j++)
      if (v->key_lens[i] == v->key_lens[j] && !memcmp(v->keys[i], v->keys[j], v->key_lens[i])) return 1;
  }
  return 0;
}

static void check_text(const char *s) {
  if (!s) return;
  struct pc_json_doc *doc = parse(s, strlen(s));
  FUZZ_CHECK(doc, "diff value is not JSON: %s", s);
  pc_json_free(doc);
}

/* diff(a, b): bounded, well-formed entries. `exact` enables the pointer
 * lookups: only without duplicate names (pc_json_at finds the first) and
 * without \u0000 in a name (a C-string pointer cannot name it). */
static size_t check_diff(const struct pc_json *a, const struct pc_json *b, size_t abbrev, int exact) {
  struct pc_json_diff *d = NULL;
  size_t n = 0, total = 0;
  int rc = pc_json_diff(a, b, MAX_DIFFS, abbrev, &d, &n, &total);
  if (rc) {
    FUZZ_CHECK(rc == PC_ENOMEM, "pc_json_diff failed: %d", rc);
    return SIZE_MAX;
  }
  FUZZ_CHECK(n <= MAX_DIFFS && n <= total, "%zu diffs kept, %zu total", n, total);
  for (size_t i = 0; i < n; i++) {
    FUZZ_CHECK(d[i].pointer && (d[i].recorded || d[i].requested), "diff %zu is empty", i);
    check_text(d[i].recorded);
    check_text(d[i].requested);
    if (!exact) continue;
    FUZZ_CHECK(!d[i].recorded == !pc_json_at(a, d[i].pointer), "pointer %s vs recorded side", d[i].pointer);
    FUZZ_CHECK(!d[i].requested == !pc_json_at(b, d[i].pointer), "pointer %s vs requested side", d[i].pointer);
  }
  pc_json_diff_free(d, n);
  return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fuzz_part pa, pb;
  int two = fuzz_split(data, size, 0xff, &pa, &pb);
  char *ta = fuzz_copy(pa.p, pa.n), *tb = fuzz_copy(pb.p, pb.n);
  struct pc_json_doc *a = parse(ta, pa.n), *b = two ? parse(tb, pb.n) : NULL;
  int nul_keys = memmem(data, size, "\\u0000", 6) != NULL;
  size_t abbrev = size ? data[size - 1] % 64 : 0; /* 0: never abbreviate */

  int exact = !nul_keys && !(a && has_dups(pc_json_root(a))) && !(b && has_dups(pc_json_root(b)));

  if (a) {
    const struct pc_json *ra = pc_json_root(a);
    check_writers(ra);
    size_t self = check_diff(ra, ra, abbrev, exact);
    FUZZ_CHECK(!exact || self == 0 || self == SIZE_MAX, "a document differs from itself (%zu)", self);
    (void)pc_json_at(ra, "/messages/0/content");
    (void)pc_json_get_str(ra, "model", NULL);
  }
  if (b) check_writers(pc_json_root(b));
  if (a && b) {
    size_t ab = check_diff(pc_json_root(a), pc_json_root(b), abbrev, exact);
    size_t ba = check_diff(pc_json_root(b), pc_json_root(a), abbrev, exact);
    FUZZ_CHECK(!exact || ab == ba || ab == SIZE_MAX || ba == SIZE_MAX, "diff(a,b) finds %zu, diff(b,a) %zu", ab, ba);
  }
  pc_json_free(a);
  pc_json_free(b);
  free(ta);
  free(tb);
  return 0;
}
