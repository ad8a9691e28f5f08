/* fuzz.h — small helpers shared by the libFuzzer targets in tests/fuzz/:
 * the entry point's prototype, a check that aborts (so libFuzzer saves the
 * input as a crash) and ways to cut one fuzz input into several values.
 * Header-only so each target stays one translation unit. */
#ifndef PC_FUZZ_H
#define PC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Where FUZZ_CHECK reports: stderr, unless a target uses fd 2 itself. */
static inline int *fuzz_report_fd(void) {
  static int fd = 2;
  return &fd;
}

/* An invariant of the code under test is broken: report and abort, which
 * libFuzzer records as a crash (with the input saved as crash-<sha1>). */
#define FUZZ_CHECK(cond, ...)                                                                                          \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      dprintf(*fuzz_report_fd(), "fuzz invariant failed: %s (%s:%d): ", #cond, __FILE__, __LINE__);                    \
      dprintf(*fuzz_report_fd(), __VA_ARGS__);                                                                         \
      dprintf(*fuzz_report_fd(), "\n");                                                                                \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

/* A part of the input: bytes and length (not NUL-terminated). */
struct fuzz_part {
  const char *p;
  size_t n;
};

/* Cut [p, p+n) at the first `sep` byte: `head` before it, `tail` after it.
 * Returns 0 (tail empty, head whole) when there is no separator. */
static inline int fuzz_split(const uint8_t *p, size_t n, uint8_t sep, struct fuzz_part *head, struct fuzz_part *tail) {
  const uint8_t *s = n ? memchr(p, sep, n) : NULL;
  head->p = (const char *)p;
  head->n = s ? (size_t)(s - p) : n;
  tail->p = s ? (const char *)s + 1 : (const char *)p + n;
  tail->n = s ? n - head->n - 1 : 0;
  return s != NULL;
}

/* An exact-size heap copy (no NUL): ASan then catches a read one byte past
 * the end, which a copy inside the fuzzer's buffer would hide. */
static inline char *fuzz_copy(const char *p, size_t n) {
  char *c = malloc(n ? n : 1);
  if (!c) abort();
  if (n) memcpy(c, p, n);
  return c;
}

/* A NUL-terminated heap copy (embedded NULs then end the C string early). */
static inline char *fuzz_cstr(const char *p, size_t n) {
  char *c = malloc(n + 1);
  if (!c) abort();
  if (n) memcpy(c, p, n);
  c[n] = '\0';
  return c;
}

#endif
