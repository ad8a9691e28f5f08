/* fuzz_sse.c — libFuzzer target for src/sse.c: which terminal event a path's
 * stream must end with, and whether a recorded stream (upstream bytes) reached
 * it. Input: a request path, a 0xff byte, then the stream (no 0xff: the whole
 * input is both). pc_sse_complete is compared, for every terminal kind, with
 * a plain forward line scan written from the contract in sse.h. */
#include "fuzz.h"

#include "sse.h"

static int is(const char *l, size_t n, const char *lit) { return n == strlen(lit) && !memcmp(l, lit, n); }

/* sse.h's contract for one line (without "\n"; trailing "\r"s dropped). */
static int terminal_line(enum pc_sse_terminal t, const char *l, size_t n) {
  while (n && l[n - 1] == '\r') n--;
  switch (t) {
  case PC_SSE_DONE:
    return is(l, n, "data: [DONE]") || is(l, n, "data:[DONE]");
  case PC_SSE_MESSAGE_STOP:
    return is(l, n, "event: message_stop") || is(l, n, "event:message_stop");
  case PC_SSE_RESPONSE_COMPLETED:
    return is(l, n, "event: response.completed") || is(l, n, "event:response.completed") ||
           (n > 5 && !memcmp(l, "data:", 5) && memmem(l, n, "\"type\":\"response.completed\"", 27));
  default:
    return 1;
  }
}

static int reference_complete(enum pc_sse_terminal t, const char *p, size_t n) {
  if (t == PC_SSE_NONE) return 1;
  while (1) {
    const char *nl = memchr(p, '\n', n);
    size_t len = nl ? (size_t)(nl - p) : n;
    if (len && terminal_line(t, p, len)) return 1;
    if (!nl) return 0;
    n -= len + 1;
    p = nl + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fuzz_part path, body;
  if (!fuzz_split(data, size, 0xff, &path, &body)) body = path;
  char *pp = fuzz_copy(path.p, path.n), *bp = fuzz_copy(body.p, body.n);
  enum pc_sse_terminal t = pc_sse_terminal_for(pp, path.n);
  FUZZ_CHECK(t >= PC_SSE_NONE && t <= PC_SSE_RESPONSE_COMPLETED, "terminal kind %d", (int)t);
  static const enum pc_sse_terminal all[] = {PC_SSE_NONE, PC_SSE_DONE, PC_SSE_MESSAGE_STOP, PC_SSE_RESPONSE_COMPLETED};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
    int got = pc_sse_complete(all[i], bp, body.n), want = reference_complete(all[i], bp, body.n);
    FUZZ_CHECK(!got == !want, "pc_sse_complete(%d) says %d, the contract %d", (int)all[i], got, want);
  }
  free(pp);
  free(bp);
  return 0;
}
