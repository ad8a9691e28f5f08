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
#include "json.h"
#include "policy.h"

static int log_json;

/* Each thread collects its log lines and writes them with one write() per
 * event-loop iteration (pc_log_flush from a uv_check) or when 32 KiB are
 * pending: under load that is one syscall for many requests, and a line is
 * never split. */
#define LOG_FLUSH_AT (32 * 1024)
static __thread pc_buf tls_out;
static __thread int tls_init;

void pc_log_init(int json) { log_json = json; }

void pc_log_flush(void) {
  pc_buf *b = &tls_out;
  size_t off = 0;
  while (off < b->len) {
    ssize_t w = write(STDERR_FILENO, b->data + off, b->len - off);
    if (w <= 0) break;
    off += (size_t)w;
  }
  pc_buf_reset(b);
}

static pc_buf *out_buf(void) {
  if (!tls_init) {
    pc_buf_init(&tls_out, 16 << 20);
    tls_init = 1;
  }
  return &tls_out;
}

/* Thread exit: flush and free. */
void pc_log_thread_done(void) {
  if (!tls_init) return;
  pc_log_flush();
  pc_buf_free(&tls_out);
  tls_init = 0;
}

/* "2026-11-27T19:30:00.123Z"; the part up to the second is formatted once a second. */
static void timestamp(pc_buf *b) {
  static __thread time_t last;
  static __thread char sec[24];
  struct timeval tv;
  gettimeofday(&tv, NULL);
  if (tv.tv_sec != last) {
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
    last = tv.tv_sec;
  }
  char ms[6] = {'.',
                (char)('0' + tv.tv_usec / 100000),
                (char)('0' + tv.tv_usec / 10000 % 10),
                (char)('0' + tv.tv_usec / 1000 % 10),
                'Z',
                0};
  pc_buf_puts(b, sec);
  pc_buf_puts(b, ms);
}

/* Microseconds as milliseconds with three decimals, without printf. */
static void put_ms(pc_buf *b, int64_t us) {
  char frac[5] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10), 0};
  pc_buf_put_u64(b, (unsigned long long)(us / 1000));
  pc_buf_puts(b, frac);
}

static void end_line(pc_buf *b) {
  pc_buf_putc(b, '\n');
  if (b->len >= LOG_FLUSH_AT) pc_log_flush();
}

/* A quoted JSON string. */
static void json_str(pc_buf *b, const char *s) { pc_json_write_text(b, s, strlen(s)); }

/* Streams through the target once: no fixed-size copy, whatever its length. */
void pc_log_mask_target(pc_buf *t, const char *target) {
  const char *q = strchr(target, '?');
  if (!q) {
    pc_buf_puts(t, target);
    return;
  }
  pc_buf_append(t, target, (size_t)(q - target) + 1);
  for (const char *p = q + 1; *p;) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p), nl = pc_policy_param_name_len(p, n);
    if (nl < n && pc_policy_credential_param(p, nl)) {
      pc_buf_append(t, p, nl);
      pc_buf_puts(t, "=***");
    } else {
      pc_buf_append(t, p, n);
    }
    p += n;
    if (amp) {
      pc_buf_putc(t, '&');
      p++;
    }
  }
}

/* Text lines stay one line each and printable: control bytes are written
 * as \xNN (a target cannot forge a log line). */
static void put_printable(pc_buf *b, const char *s, size_t n) {
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0, run = 0; i <= n; i++) {
    unsigned char c = i < n ? (unsigned char)s[i] : 0;
    if (i < n && c >= 0x20 && c != 0x7f) continue;
    pc_buf_append(b, s + run, i - run);
    if (i < n) {
      char e[4] = {'\\', 'x', hx[c >> 4], hx[c & 15]};
      pc_buf_append(b, e, 4);
    }
    run = i + 1;
  }
}

/* The common target: no query, printable ASCII only. */
static int plain(const char *t) {
  for (const unsigned char *p = (const unsigned char *)t; *p; p++)
    if (*p < 0x20 || *p >= 0x7f || *p == '?' || *p == '"' || *p == '\\') return 0;
  return 1;
}

static void masked_target(pc_buf *b, const char *target, int json) {
  if (plain(target)) { /* nothing to mask or escape */
    if (json) pc_buf_putc(b, '"');
    pc_buf_puts(b, target);
    if (json) pc_buf_putc(b, '"');
    return;
  }
  static __thread pc_buf t;
  if (!t.max) pc_buf_init(&t, (size_t)1 << 20);
  pc_buf_reset(&t);
  pc_log_mask_target(&t, target);
  if (json)
    pc_json_write_text(b, t.data ? t.data : "", t.len);
  else
    put_printable(b, t.data ? t.data : "", t.len);
  if (t.cap > (64u << 10)) pc_buf_free(&t);
}

static void access_json(pc_buf *b, const struct pc_access *a) {
  pc_buf_puts(b, "{\"time\":\"");
  timestamp(b);
  pc_buf_puts(b, "\",\"method\":");
  json_str(b, a->method);
  pc_buf_puts(b, ",\"path\":");
  masked_target(b, a->path, 1);
  pc_buf_puts(b, ",\"status\":");
  pc_buf_put_u64(b, (unsigned)a->status);
  pc_buf_puts(b, ",\"cache\":\"");
  pc_buf_puts(b, a->cache);
  pc_buf_puts(b, "\",\"key\":");
  if (a->key && *a->key) {
    pc_buf_putc(b, '"');
    pc_buf_puts(b, a->key);
    pc_buf_putc(b, '"');
  } else {
    pc_buf_puts(b, "null");
  }
  pc_buf_puts(b, ",\"bytes\":");
  pc_buf_put_u64(b, (unsigned long long)a->bytes);
  pc_buf_puts(b, ",\"upstream_ms\":");
  if (a->upstream_us >= 0)
    put_ms(b, a->upstream_us);
  else
    pc_buf_puts(b, "null");
  pc_buf_puts(b, ",\"total_ms\":");
  put_ms(b, a->total_us);
  pc_buf_putc(b, '}');
}

static void access_text(pc_buf *b, const struct pc_access *a) {
  timestamp(b);
  pc_buf_putc(b, ' ');
  pc_buf_puts(b, a->method);
  pc_buf_putc(b, ' ');
  masked_target(b, a->path, 0);
  pc_buf_putc(b, ' ');
  pc_buf_put_u64(b, (unsigned)a->status);
  pc_buf_putc(b, ' ');
  pc_buf_puts(b, a->cache);
  pc_buf_putc(b, ' ');
  pc_buf_puts(b, a->key && *a->key ? a->key : "-");
  pc_buf_putc(b, ' ');
  pc_buf_put_u64(b, (unsigned long long)a->bytes);
  pc_buf_puts(b, "B upstream=");
  if (a->upstream_us >= 0) {
    put_ms(b, a->upstream_us);
    pc_buf_puts(b, "ms");
  } else {
    pc_buf_putc(b, '-');
  }
  pc_buf_puts(b, " total=");
  put_ms(b, a->total_us);
  pc_buf_puts(b, "ms");
}

void pc_log_access(const struct pc_access *a) {
  pc_buf *b = out_buf();
  if (log_json)
    access_json(b, a);
  else
    access_text(b, a);
  end_line(b);
}

/* Event messages are rare: they go out at once (with anything pending). */
static void vmsg(const char *level, const char *fmt, va_list ap) {
  char msg[4096];
  pc_buf *b = out_buf();
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (log_json) {
    pc_buf_puts(b, "{\"time\":\"");
    timestamp(b);
    pc_buf_printf(b, "\",\"level\":\"%s\",\"msg\":", level);
    json_str(b, msg);
    pc_buf_putc(b, '}');
  } else {
    timestamp(b);
    pc_buf_printf(b, " %s %s", level, msg);
  }
  pc_buf_putc(b, '\n');
  pc_log_flush();
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
