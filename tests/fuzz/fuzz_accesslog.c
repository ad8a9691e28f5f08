/* fuzz_accesslog.c — libFuzzer target for what is done with a client's
 * request target outside the HTTP parser: the access-log formatter in
 * src/log.c (pc_log_access, text and JSON; pc_log_mask_target) and the query
 * canonicalization of the cache key in src/key.c (pc_key_sort_query), which
 * must agree on which parameters carry credentials (policy.h).
 * Input: method, a NUL byte, request target (no NUL: method GET and the
 * whole input is the target). Checked:
 *  - masking keeps everything but credential values, which become "***", and
 *    masking twice changes nothing more;
 *  - the key's query has no credential parameter, is sorted by name (stable),
 *    and together with the removed credentials holds every parameter;
 *  - a JSON log line is valid JSON whose method and path are the method and
 *    masked target (when those are UTF-8); a text line is one printable line.
 *
 * Output capture: log.c writes to fd 2 only. This target adds
 * -close_fd_mask=2 to its own arguments (unless one is given), so libFuzzer
 * and the sanitizers report on a duplicate of stderr; fd 2 then becomes an
 * unlinked O_APPEND temporary file that is read back and emptied after
 * every line. */
#include "fuzz.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "key.h"
#include "log.h"
#include "policy.h"
#include "utf8.h"

#define TARGET_MAX ((size_t)4 << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  /* Before libFuzzer moves stderr: FUZZ_CHECK reports go to the real one. */
  *fuzz_report_fd() = dup(STDERR_FILENO);
  for (int i = 0; i < *argc; i++)
    if (!strncmp((*argv)[i], "-close_fd_mask=", 15)) return 0;
  char **v = calloc((size_t)*argc + 2, sizeof *v); /* kept for the process' life, as argv is */
  if (!v) abort();
  memcpy(v, *argv, (size_t)*argc * sizeof *v);
  v[(*argc)++] = "-close_fd_mask=2";
  *argv = v;
  return 0;
}

/* fd 2 → a private temporary file (done at the first input, after libFuzzer
 * has moved its own output away from fd 2). */
static void capture_stderr(void) {
  static int done;
  if (done) return;
  const char *tmp = getenv("TMPDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/pc-fuzz-accesslog-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  int fd = mkstemp(path);
  FUZZ_CHECK(fd >= 0, "mkstemp failed");
  unlink(path);
  FUZZ_CHECK(fcntl(fd, F_SETFL, O_APPEND) == 0 && dup2(fd, STDERR_FILENO) == STDERR_FILENO, "cannot redirect fd 2");
  close(fd);
  done = 1;
}

/* What was written to fd 2 since the last call (the caller frees it). */
static char *take_output(size_t *n) {
  struct stat st;
  FUZZ_CHECK(fstat(STDERR_FILENO, &st) == 0, "fstat failed");
  char *buf = malloc((size_t)st.st_size + 1);
  FUZZ_CHECK(buf, "out of memory");
  ssize_t got = pread(STDERR_FILENO, buf, (size_t)st.st_size, 0);
  FUZZ_CHECK(got == st.st_size, "short read of the captured log");
  FUZZ_CHECK(ftruncate(STDERR_FILENO, 0) == 0, "ftruncate failed");
  *n = (size_t)got;
  return buf;
}

/* The next '&'-separated query parameter of [*p, e); 0 at the end. */
static int next_param(const char **p, const char *e, struct fuzz_part *out) {
  if (*p > e) return 0;
  const char *amp = memchr(*p, '&', (size_t)(e - *p));
  out->p = *p;
  out->n = (size_t)((amp ? amp : e) - *p);
  *p = amp ? amp + 1 : e + 1;
  return 1;
}

static int is_cred(struct fuzz_part prm, size_t *nl) {
  *nl = pc_policy_param_name_len(prm.p, prm.n);
  return pc_policy_credential_param(prm.p, *nl);
}

/* mask(target): the path as is, then parameter by parameter: the same, or
 * name=*** for a credential with a value. */
static void check_mask(const char *target, const pc_buf *m) {
  const char *q = strchr(target, '?');
  size_t head = q ? (size_t)(q - target) + 1 : strlen(target);
  FUZZ_CHECK(m->len >= head && !memcmp(m->data, target, head), "the path was changed");
  if (!q) {
    FUZZ_CHECK(m->len == head, "a target without query was changed");
    return;
  }
  const char *a = q + 1, *ae = target + strlen(target), *b = m->data + head, *be = m->data + m->len;
  struct fuzz_part pa, pb;
  while (next_param(&a, ae, &pa)) {
    FUZZ_CHECK(next_param(&b, be, &pb), "a parameter was lost");
    size_t nl;
    if (is_cred(pa, &nl) && nl < pa.n)
      FUZZ_CHECK(pb.n == nl + 4 && !memcmp(pb.p, pa.p, nl) && !memcmp(pb.p + nl, "=***", 4),
                 "credential not masked: %.*s", (int)pb.n, pb.p);
    else
      FUZZ_CHECK(pb.n == pa.n && !memcmp(pb.p, pa.p, pa.n), "parameter changed: %.*s", (int)pb.n, pb.p);
  }
  FUZZ_CHECK(!next_param(&b, be, &pb), "a parameter was added");
}

static size_t count_params(const char *s, size_t n, int want_cred, int check_sorted) {
  if (!n) return 0;
  const char *e = s + n, *prev = NULL;
  size_t k = 0, prev_nl = 0;
  struct fuzz_part prm;
  while (next_param(&s, e, &prm)) {
    size_t nl;
    int cred = is_cred(prm, &nl);
    FUZZ_CHECK(prm.n, "an empty parameter");
    FUZZ_CHECK(cred == want_cred, "parameter %.*s on the wrong side", (int)prm.n, prm.p);
    if (check_sorted && prev) {
      int c = memcmp(prev, prm.p, prev_nl < nl ? prev_nl : nl);
      FUZZ_CHECK(c < 0 || (c == 0 && prev_nl <= nl), "query not sorted at %.*s", (int)prm.n, prm.p);
    }
    prev = prm.p;
    prev_nl = nl;
    k++;
  }
  return k;
}

/* The key's query: credentials out, the rest sorted, nothing lost. */
static void check_key_query(const char *target) {
  const char *q = strchr(target, '?');
  if (!q) return;
  pc_buf out, cred;
  pc_buf_init(&out, TARGET_MAX);
  pc_buf_init(&cred, TARGET_MAX);
  int rc = pc_key_sort_query(q + 1, 0, &out, &cred);
  FUZZ_CHECK(rc == 0 || rc == PC_ETOOBIG, "pc_key_sort_query: %d", rc);
  if (rc == 0) {
    size_t kept = count_params(out.data, out.len, 0, 1), removed = count_params(cred.data, cred.len, 1, 0);
    size_t all = 0;
    const char *p = q + 1, *e = target + strlen(target);
    struct fuzz_part prm;
    while (next_param(&p, e, &prm)) all += prm.n != 0;
    FUZZ_CHECK(kept + removed == all, "%zu + %zu parameters of %zu", kept, removed, all);
  }
  pc_buf_free(&out);
  pc_buf_free(&cred);
}

static int printable(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
  return 1;
}

static void check_text_line(const char *line, size_t n) {
  FUZZ_CHECK(n && line[n - 1] == '\n', "no line end");
  for (size_t i = 0; i + 1 < n; i++)
    FUZZ_CHECK((unsigned char)line[i] >= 0x20 && line[i] != 0x7f, "control byte 0x%02x in a text line",
               (unsigned char)line[i]);
}

static void check_json_line(const char *line, size_t n, const char *method, const pc_buf *masked) {
  FUZZ_CHECK(n && line[n - 1] == '\n' && memchr(line, '\n', n) == line + n - 1, "not one line: %.*s", (int)n, line);
  struct pc_json_doc *doc = NULL;
  int rc = pc_json_parse(line, n - 1, &doc, NULL);
  FUZZ_CHECK(rc == 0, "access log line is not JSON (%d): %.*s", rc, (int)n, line);
  const struct pc_json *root = pc_json_root(doc), *m = pc_json_get(root, "method"), *p = pc_json_get(root, "path");
  FUZZ_CHECK(m && m->type == PC_JSON_STRING && p && p->type == PC_JSON_STRING, "no method or path");
  if (pc_utf8_valid(method, strlen(method))) FUZZ_CHECK(!strcmp(m->str, method), "method not logged as given");
  if (pc_utf8_valid(masked->data, masked->len))
    FUZZ_CHECK(p->len == masked->len && !memcmp(p->str, masked->data, p->len), "path not the masked target");
  pc_json_free(doc);
}

static void check_log(const char *method, const char *target, size_t size) {
  pc_buf masked, twice;
  pc_buf_init(&masked, TARGET_MAX);
  pc_buf_init(&twice, TARGET_MAX);
  pc_log_mask_target(&masked, target);
  check_mask(target, &masked);
  pc_log_mask_target(&twice, masked.data ? masked.data : "");
  FUZZ_CHECK(twice.len == masked.len && !memcmp(twice.data, masked.data, masked.len), "masking is not stable");

  struct pc_access a = {method,
                        target,
                        200 + (int)(size % 400),
                        size % 3 ? "HIT" : "MISS",
                        size % 2 ? "" : "0123456789abcdef0123456789abcdef",
                        size * 7,
                        size % 5 ? -1 : (int64_t)size * 1000,
                        (int64_t)size * 1234};
  for (int json = 0; json <= 1; json++) {
    size_t n;
    pc_log_init(json);
    pc_log_access(&a);
    pc_log_flush();
    char *line = take_output(&n);
    if (json)
      check_json_line(line, n, method, &masked);
    else if (printable(method))
      check_text_line(line, n); /* llhttp only passes token methods */
    free(line);
  }
  pc_buf_free(&masked);
  pc_buf_free(&twice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fuzz_part m, t;
  int has_method = fuzz_split(data, size, 0, &m, &t);
  char *method = has_method ? fuzz_cstr(m.p, m.n) : fuzz_cstr("GET", 3);
  char *target = has_method ? fuzz_cstr(t.p, t.n) : fuzz_cstr((const char *)data, size);
  capture_stderr();
  check_key_query(target);
  check_log(method, target, size);
  free(method);
  free(target);
  return 0;
}
