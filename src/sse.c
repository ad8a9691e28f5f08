/* sse.c — terminal-event detection for recorded event streams. A stream is
 * stored only if it reached its terminal event: a stream cut short by the
 * provider (an `event: error`, a dropped connection that still ended the
 * chunked body cleanly) must never be replayed as if it were whole. */
#include "sse.h"

#include <string.h>

static int ends_with(const char *p, size_t n, const char *suffix) {
  size_t l = strlen(suffix);
  return n >= l && !memcmp(p + n - l, suffix, l);
}

enum pc_sse_terminal pc_sse_terminal_for(const char *path, size_t n) {
  if (ends_with(path, n, "/chat/completions") || ends_with(path, n, "/completions")) return PC_SSE_DONE;
  if (ends_with(path, n, "/messages")) return PC_SSE_MESSAGE_STOP;
  if (ends_with(path, n, "/responses")) return PC_SSE_RESPONSE_COMPLETED;
  return PC_SSE_NONE;
}

/* Does one line (without its end-of-line) mark the terminal event? */
static int terminal_line(enum pc_sse_terminal t, const char *l, size_t n) {
  while (n && l[n - 1] == '\r') n--;
  switch (t) {
  case PC_SSE_DONE:
    return (n == 12 && !memcmp(l, "data: [DONE]", 12)) || (n == 11 && !memcmp(l, "data:[DONE]", 11));
  case PC_SSE_MESSAGE_STOP:
    return (n == 19 && !memcmp(l, "event: message_stop", 19)) || (n == 18 && !memcmp(l, "event:message_stop", 18));
  case PC_SSE_RESPONSE_COMPLETED:
    return (n == 25 && !memcmp(l, "event: response.completed", 25)) ||
           (n == 24 && !memcmp(l, "event:response.completed", 24)) ||
           (n > 5 && !memcmp(l, "data:", 5) && memmem(l, n, "\"type\":\"response.completed\"", 27));
  default:
    return 1;
  }
}

int pc_sse_complete(enum pc_sse_terminal t, const char *body, size_t n) {
  if (t == PC_SSE_NONE) return 1;
  /* The terminal event is near the end: scan lines backwards. */
  const char *end = body + n;
  while (end > body) {
    const char *nl = end;
    while (nl > body && nl[-1] != '\n') nl--;
    if (end > nl && terminal_line(t, nl, (size_t)(end - nl))) return 1;
    end = nl > body ? nl - 1 : body;
  }
  return 0;
}

/* A "data" field line: "data:" then the value, one leading space dropped. */
static int data_line(const char *l, size_t n, const char **data, size_t *len) {
  while (n && l[n - 1] == '\r') n--;
  if (n < 5 || memcmp(l, "data:", 5)) return 0;
  l += 5;
  n -= 5;
  if (n && *l == ' ') l++, n--;
  *data = l;
  *len = n;
  return 1;
}

int pc_sse_next_data(const char **cur, const char *end, const char **data, size_t *len) {
  const char *p = *cur;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    int found = data_line(p, (size_t)(le - p), data, len);
    p = nl ? nl + 1 : end;
    if (found) {
      *cur = p;
      return 1;
    }
  }
  *cur = end;
  return 0;
}

int pc_sse_last_data(const char *body, size_t n, const char **data, size_t *len) {
  const char *end = body + n;
  while (end > body) {
    const char *start = end;
    while (start > body && start[-1] != '\n') start--;
    if (data_line(start, (size_t)(end - start), data, len)) return 1;
    end = start > body ? start - 1 : body;
  }
  return 0;
}
