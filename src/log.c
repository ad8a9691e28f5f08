/* log.c — writes the access log and event messages to stderr, one line each,
 * with a single write() per line so concurrent lines never interleave. The
 * request target is logged with credential-bearing query values masked. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static int log_json;

void pc_log_init(int json) { log_json = json; }

static void timestamp(char *out, size_t n) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  size_t l = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + l, n - l, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static void emit(pc_buf *b) {
  if (!b->data) return;
  pc_buf_putc(b, '\n');
  ssize_t off = 0;
  while ((size_t)off < b->len) {
    ssize_t w = write(STDERR_FILENO, b->data + off, b->len - (size_t)off);
    if (w <= 0) break;
    off += w;
  }
}

/* JSON string body (without quotes) with the escapes JSON requires. */
static void json_str(pc_buf *b, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') pc_buf_printf(b, "\\%c", c);
    else if (c < 0x20) pc_buf_printf(b, "\\u%04x", c);
    else pc_buf_putc(b, (char)c);
  }
}

/* Copy the target, masking the value of a `key=` query parameter. */
static void masked_target(pc_buf *b, const char *t, int json) {
  const char *q = strchr(t, '?');
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", t);
  if (q) {
    for (char *p = tmp + (q - t) + 1; p && *p;) {
      char *amp = strchr(p, '&');
      if (!strncmp(p, "key=", 4)) {
        char *v = p + 4, *e = amp ? amp : v + strlen(v);
        memset(v, '*', (size_t)(e - v) > 3 ? 3 : (size_t)(e - v));
        if (e - v > 3) memmove(v + 3, e, strlen(e) + 1);
        amp = strchr(v, '&');
      }
      p = amp ? amp + 1 : NULL;
    }
  }
  if (json) json_str(b, tmp);
  else pc_buf_puts(b, tmp);
}

void pc_log_access(const struct pc_access *a) {
  char ts[40];
  pc_buf b;
  pc_buf_init(&b, 16384);
  timestamp(ts, sizeof ts);
  double up = a->upstream_us >= 0 ? (double)a->upstream_us / 1000.0 : -1;
  double total = (double)a->total_us / 1000.0;
  if (log_json) {
    pc_buf_printf(&b, "{\"time\":\"%s\",\"method\":\"", ts);
    json_str(&b, a->method);
    pc_buf_puts(&b, "\",\"path\":\"");
    masked_target(&b, a->path, 1);
    pc_buf_printf(&b, "\",\"status\":%d,\"cache\":\"%s\",\"key\":", a->status, a->cache);
    if (a->key && *a->key) pc_buf_printf(&b, "\"%s\"", a->key);
    else pc_buf_puts(&b, "null");
    pc_buf_printf(&b, ",\"bytes\":%llu,\"upstream_ms\":", (unsigned long long)a->bytes);
    if (up >= 0) pc_buf_printf(&b, "%.3f", up);
    else pc_buf_puts(&b, "null");
    pc_buf_printf(&b, ",\"total_ms\":%.3f}", total);
  } else {
    pc_buf_printf(&b, "%s %s ", ts, a->method);
    masked_target(&b, a->path, 0);
    pc_buf_printf(&b, " %d %s %s %lluB", a->status, a->cache, a->key && *a->key ? a->key : "-",
                  (unsigned long long)a->bytes);
    if (up >= 0) pc_buf_printf(&b, " upstream=%.3fms", up);
    else pc_buf_puts(&b, " upstream=-");
    pc_buf_printf(&b, " total=%.3fms", total);
  }
  emit(&b);
  pc_buf_free(&b);
}

static void vmsg(const char *level, const char *fmt, va_list ap) {
  char ts[40], msg[2048];
  pc_buf b;
  pc_buf_init(&b, 8192);
  timestamp(ts, sizeof ts);
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (log_json) {
    pc_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, level);
    json_str(&b, msg);
    pc_buf_puts(&b, "\"}");
  } else {
    pc_buf_printf(&b, "%s %s %s", ts, level, msg);
  }
  emit(&b);
  pc_buf_free(&b);
}

void pc_log_info(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg("info", fmt, ap);
  va_end(ap);
}

void pc_log_warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg("warn", fmt, ap);
  va_end(ap);
}
