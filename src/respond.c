/* respond.c — produces the bytes of every response of an exchange, through
 * the connection's write calls. Heads are built into one small malloc'd
 * block; a hit's head and body go out in a single write. HTTP/1.1 clients
 * get a passed-through body in chunks; HTTP/1.0 clients, which do not know
 * chunks, get its bytes as they are and the connection closes at its end. */
#include "respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "conn.h"
#include "error.h"
#include "exchange.h"
#include "json.h"

static const struct pc_req *req_of(const struct pc_exchange *x) { return pc_conn_req(x->conn); }
static int is_head(const struct pc_exchange *x) { return !strcmp(req_of(x)->method, "HEAD"); }

const char *pc_respond_reason(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 206:
    return "Partial Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 413:
    return "Content Too Large";
  case 415:
    return "Unsupported Media Type";
  case 422:
    return "Unprocessable Content";
  case 424:
    return "Failed Dependency";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 529:
    return "Site Overloaded";
  default:
    return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "Status";
  }
}

/* RFC 9110 date, formatted once per second per thread. */
static const char *http_date(void) {
  static __thread char buf[64];
  static __thread time_t last;
  time_t now = time(NULL);
  if (now != last) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    last = now;
  }
  return buf;
}

/* Status line, upstream/stored headers, then ours. The caller appends any
 * framing header and the blank line. */
static int head_start(pc_buf *b, struct pc_exchange *x, int status, const char *headers, size_t len) {
  int rc = pc_buf_puts(b, "HTTP/1.1 ");
  if (!rc) rc = pc_buf_put_u64(b, (unsigned)status);
  if (!rc) rc = pc_buf_putc(b, ' ');
  if (!rc) rc = pc_buf_puts(b, pc_respond_reason(status));
  if (!rc) rc = pc_buf_puts(b, "\r\n");
  if (!rc && len) rc = pc_buf_append(b, headers, len);
  if (!rc && x->resp.cache) {
    rc = pc_buf_puts(b, "X-PromptCache-Status: ");
    if (!rc) rc = pc_buf_puts(b, x->resp.cache);
    if (!rc) rc = pc_buf_puts(b, "\r\n");
  }
  if (!rc && x->resp.tier) {
    rc = pc_buf_puts(b, "X-PromptCache-Tier: ");
    if (!rc) rc = pc_buf_puts(b, x->resp.tier);
    if (!rc) rc = pc_buf_puts(b, "\r\n");
  }
  if (!rc && x->resp.key[0]) {
    rc = pc_buf_puts(b, "X-PromptCache-Key: ");
    if (!rc) rc = pc_buf_append(b, x->resp.key, PC_KEY_HEX_LEN);
    if (!rc) rc = pc_buf_puts(b, "\r\n");
  }
  if (!rc && x->resp.extra_headers) rc = pc_buf_puts(b, x->resp.extra_headers);
  if (!rc && pc_conn_will_close(x->conn))
    rc = pc_buf_puts(b, "Connection: close\r\n");
  else if (!rc && req_of(x)->http_minor == 0)
    rc = pc_buf_puts(b, "Connection: keep-alive\r\n");
  return rc;
}

static int has_header(const char *headers, size_t len, const char *name) {
  size_t n = strlen(name);
  for (const char *p = headers, *end = headers + len; p < end;) {
    if ((size_t)(end - p) > n && !strncasecmp(p, name, n) && p[n] == ':') return 1;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
  }
  return 0;
}

static void write_buf(struct pc_exchange *x, pc_buf *b) {
  size_t n;
  char *p = pc_buf_steal(b, &n);
  if (p) pc_conn_write_own(x->conn, p, p, n);
}

/* The head (and what else b holds) is out, or the response cannot be made:
 * the connection is cut. Frees b; returns whether it was sent. */
static int send_head(struct pc_exchange *x, pc_buf *b, int rc) {
  x->resp.head_sent = 1;
  if (!rc) write_buf(x, b);
  pc_buf_free(b);
  if (rc) pc_conn_abort(x->conn);
  return !rc;
}

static void send_fixed(struct pc_exchange *x, int status, const char *ctype, const char *body, size_t blen) {
  pc_buf b;
  pc_buf_init(&b, 64 * 1024 + blen);
  x->resp.status = status;
  int rc = head_start(&b, x, status, NULL, 0);
  if (!rc)
    rc = pc_buf_printf(&b, "Date: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", http_date(), ctype, blen);
  if (!rc && !is_head(x)) {
    rc = pc_buf_append(&b, body, blen);
    x->resp.bytes = blen;
  }
  if (send_head(x, &b, rc)) pc_conn_finish(x->conn);
}

void pc_respond_error(struct pc_exchange *x, int status, const char *code, const char *msg) {
  pc_buf b;
  pc_buf_init(&b, 16384);
  pc_buf_puts(&b, "{\"error\":{\"message\":");
  pc_json_write_string(&b, msg, strlen(msg));
  pc_buf_printf(&b, ",\"type\":\"promptcache_error\",\"code\":\"%s\"}}\n", code);
  send_fixed(x, status, "application/json", b.data, b.len);
  pc_buf_free(&b);
}

void pc_respond_content(struct pc_exchange *x, int status, const char *ctype, const char *body, size_t len) {
  send_fixed(x, status, ctype, body, len);
}

void pc_respond_head(struct pc_exchange *x, int status, const char *headers, size_t len) {
  pc_buf b;
  pc_buf_init(&b, 512 * 1024);
  x->resp.status = status;
  x->resp.no_body = is_head(x) || status == 204 || status == 304 || status < 200;
  x->resp.chunked = !x->resp.no_body && req_of(x)->http_minor >= 1;
  x->resp.raw_body = !x->resp.no_body && !x->resp.chunked;
  if (x->resp.raw_body) pc_conn_close_after(x->conn); /* the end of the body is the end of the connection */
  int rc = head_start(&b, x, status, headers, len);
  if (!rc && !has_header(headers, len, "date")) {
    rc = pc_buf_puts(&b, "Date: ");
    if (!rc) rc = pc_buf_puts(&b, http_date());
    if (!rc) rc = pc_buf_puts(&b, "\r\n");
  }
  if (!rc && x->resp.chunked) rc = pc_buf_puts(&b, "Transfer-Encoding: chunked\r\n");
  if (!rc) rc = pc_buf_puts(&b, "\r\n");
  send_head(x, &b, rc);
}

void pc_respond_body(struct pc_exchange *x, const char *p, size_t n) {
  if (x->resp.no_body || n == 0) return;
  if (x->resp.raw_body) {
    x->resp.bytes += n;
    pc_conn_write_copy(x->conn, p, n);
    return;
  }
  char *block = malloc(n + 32);
  if (!block) { /* a chunk that cannot be sent: the client must see a cut response, not a whole one */
    pc_conn_abort(x->conn);
    return;
  }
  static const char hx[] = "0123456789abcdef";
  char digits[16];
  int nd = 0;
  for (size_t v = n; v; v >>= 4) digits[nd++] = hx[v & 15];
  int h = 0;
  while (nd) block[h++] = digits[--nd];
  block[h++] = '\r';
  block[h++] = '\n';
  memcpy(block + h, p, n);
  memcpy(block + h + n, "\r\n", 2);
  x->resp.bytes += n;
  pc_conn_write_own(x->conn, block, block, (size_t)h + n + 2);
}

void pc_respond_end(struct pc_exchange *x) {
  if (x->resp.chunked) pc_conn_write_copy(x->conn, "0\r\n\r\n", 5);
  pc_conn_finish(x->conn);
}

static int hit_head(struct pc_exchange *x, const struct pc_entry *e, int64_t age_s, int chunked, pc_buf *b) {
  int rc = head_start(b, x, e->status, e->headers.p, e->headers.n);
  if (!rc) rc = pc_buf_puts(b, "Date: ");
  if (!rc) rc = pc_buf_puts(b, http_date());
  if (!rc) rc = pc_buf_puts(b, "\r\nAge: ");
  if (!rc) rc = pc_buf_put_u64(b, (unsigned long long)(age_s > 0 ? age_s : 0));
  if (!rc && chunked)
    rc = pc_buf_puts(b, "\r\nTransfer-Encoding: chunked\r\n\r\n");
  else if (!rc) {
    rc = pc_buf_puts(b, "\r\nContent-Length: ");
    if (!rc) rc = pc_buf_put_u64(b, e->body.n);
    if (!rc) rc = pc_buf_puts(b, "\r\n\r\n");
  }
  return rc;
}

/* Append chunk i of an entry's body, in HTTP chunked framing or (HTTP/1.0,
 * framed by Content-Length) as it is. */
static int frame_chunk(pc_buf *b, const struct pc_entry *e, uint32_t i, int chunked) {
  uint32_t start = i ? pc_entry_chunk(e, i - 1).end : 0, end = pc_entry_chunk(e, i).end;
  if (end <= start) return 0;
  int rc = chunked ? pc_buf_put_hex(b, end - start) : 0;
  if (!rc && chunked) rc = pc_buf_puts(b, "\r\n");
  if (!rc) rc = pc_buf_append(b, e->body.p + start, end - start);
  if (!rc && chunked) rc = pc_buf_puts(b, "\r\n");
  return rc;
}

/* Whether a hit on `e` goes out as a stream of its recorded chunks. */
static int hit_streams(const struct pc_exchange *x, const struct pc_entry *e) {
  return (e->flags & PC_ENTRY_F_SSE) && e->n_chunks > 0 && !is_head(x);
}

static int chunked_to(const struct pc_exchange *x) { return req_of(x)->http_minor >= 1; }

static void pace_cb(uv_timer_t *t) { pc_respond_replay_step(t->data); }

/* Wait `ms` before the next step of a paced replay. */
static int pace_wait(struct pc_exchange *x, uint64_t ms) {
  if (!x->pace) {
    x->pace = malloc(sizeof *x->pace);
    if (!x->pace) return PC_ENOMEM;
    uv_timer_init(x->flow->loop, x->pace);
    x->pace->data = x;
  }
  uv_timer_start(x->pace, pace_cb, ms, 0);
  return 0;
}

void pc_respond_replay_step(struct pc_exchange *x) {
  struct pc_held *h = &x->replay;
  const struct pc_entry *e = &h->e;
  int chunked = chunked_to(x);
  uint64_t elapsed_ms = (uv_hrtime() - h->start_ns) / 1000000;
  pc_buf b;
  pc_buf_init(&b, e->body.n + 64 * (size_t)e->n_chunks + 64);
  int rc = 0;
  while (!rc && h->next_chunk < e->n_chunks && pc_entry_chunk(e, h->next_chunk).t_ms <= elapsed_ms) {
    rc = frame_chunk(&b, e, h->next_chunk, chunked);
    x->resp.bytes +=
        pc_entry_chunk(e, h->next_chunk).end - (h->next_chunk ? pc_entry_chunk(e, h->next_chunk - 1).end : 0);
    h->next_chunk++;
  }
  if (!rc && h->next_chunk < e->n_chunks) {
    write_buf(x, &b);
    pc_buf_free(&b);
    if (pace_wait(x, pc_entry_chunk(e, h->next_chunk).t_ms - elapsed_ms)) pc_conn_abort(x->conn);
    return;
  }
  if (!rc && chunked) rc = pc_buf_puts(&b, "0\r\n\r\n");
  if (rc) {
    pc_buf_free(&b);
    pc_held_release(h);
    pc_conn_abort(x->conn);
    return;
  }
  write_buf(x, &b);
  pc_buf_free(&b);
  pc_held_release(h);
  pc_conn_finish(x->conn);
}

/* Head and body straight from the map when the socket takes them (the common
 * case: one writev, no copy); only a remainder is copied. */
static void send_borrowed(struct pc_exchange *x, const char *head, size_t hn, const char *body, size_t bn) {
  size_t done = pc_conn_try_write(x->conn, head, hn, body, bn);
  if (done >= hn + bn) return;
  size_t rest = hn + bn - done;
  char *block = malloc(rest);
  if (!block) {
    pc_conn_abort(x->conn);
    return;
  }
  size_t hoff = done < hn ? done : hn, boff = done > hn ? done - hn : 0;
  memcpy(block, head + hoff, hn - hoff);
  memcpy(block + (hn - hoff), body + boff, bn - boff);
  pc_conn_write_own(x->conn, block, block, rest);
}

int pc_respond_hit_borrowed(struct pc_exchange *x, const struct pc_entry *e, int64_t age_s) {
  pc_buf *b = &x->flow->out; /* per loop: send_borrowed copies whatever is not written at once */
  int head_only = is_head(x), stream = hit_streams(x, e), chunked = stream && chunked_to(x);
  pc_buf_reset(b);
  x->resp.status = e->status;
  x->resp.head_sent = 1;
  if (hit_head(x, e, age_s, chunked, b)) return PC_ENOMEM;
  if (chunked) { /* chunk framing interleaves with the body: one copy */
    int rc = 0;
    for (uint32_t i = 0; i < e->n_chunks && !rc; i++) rc = frame_chunk(b, e, i, 1);
    if (!rc) rc = pc_buf_puts(b, "0\r\n\r\n");
    if (rc) return rc;
    x->resp.bytes = e->body.n;
    send_borrowed(x, b->data, b->len, "", 0);
  } else {
    x->resp.bytes = head_only ? 0 : e->body.n;
    send_borrowed(x, b->data, b->len, e->body.p, head_only ? 0 : e->body.n);
  }
  if (b->cap > (1u << 20)) pc_buf_free(b); /* a big stream's copy is not kept */
  return 0;
}

void pc_respond_hit(struct pc_exchange *x, char *block, const struct pc_entry *e, int64_t age_s, int paced) {
  int head_only = is_head(x), stream = hit_streams(x, e), chunked = stream && chunked_to(x);
  pc_buf b;
  pc_buf_init(&b, 512 * 1024 + (stream ? e->body.n + 16 * (size_t)e->n_chunks : 0));
  x->resp.status = e->status;
  x->resp.head_sent = 1;
  if (hit_head(x, e, age_s, chunked, &b)) {
    free(block);
    pc_buf_free(&b);
    pc_conn_abort(x->conn);
    return;
  }
  if (stream && paced) {
    write_buf(x, &b);
    pc_buf_free(&b);
    x->replay.block = block;
    x->replay.e = *e;
    x->replay.next_chunk = 0;
    x->replay.start_ns = uv_hrtime();
    x->state = PC_X_REPLAY;
    pc_respond_replay_step(x);
    return;
  }
  if (chunked) { /* at once, with the recorded chunk boundaries */
    int rc = 0;
    for (uint32_t i = 0; i < e->n_chunks && !rc; i++) rc = frame_chunk(&b, e, i, 1);
    if (!rc) rc = pc_buf_puts(&b, "0\r\n\r\n");
    free(block);
    if (rc) {
      pc_buf_free(&b);
      pc_conn_abort(x->conn);
      return;
    }
    x->resp.bytes = e->body.n;
    write_buf(x, &b);
    pc_buf_free(&b);
    pc_conn_finish(x->conn);
    return;
  }
  size_t hn;
  char *head = pc_buf_steal(&b, &hn);
  if (head_only) {
    free(block);
    pc_conn_write_own(x->conn, head, head, hn);
  } else {
    x->resp.bytes = e->body.n;
    pc_conn_write2(x->conn, head, head, hn, block, e->body.p, e->body.n);
  }
  pc_conn_finish(x->conn);
}
