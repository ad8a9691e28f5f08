/* respond.c — produces the bytes of every response. Heads are built into one
 * small malloc'd block; a hit's head and body go out in a single write. */
#include "respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "conn.h"
#include "server.h"
#include "json.h"

const char *pc_respond_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 424: return "Failed Dependency";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 529: return "Site Overloaded";
  default: return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "Status";
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
static int head_start(pc_buf *b, struct pc_conn *c, int status, const char *headers, size_t len) {
  int rc = pc_buf_puts(b, "HTTP/1.1 ");
  if (!rc) rc = pc_buf_put_u64(b, (unsigned)status);
  if (!rc) rc = pc_buf_putc(b, ' ');
  if (!rc) rc = pc_buf_puts(b, pc_respond_reason(status));
  if (!rc) rc = pc_buf_puts(b, "\r\n");
  if (!rc && len) rc = pc_buf_append(b, headers, len);
  if (!rc && c->resp.cache) {
    rc = pc_buf_puts(b, "X-PromptCache-Status: ");
    if (!rc) rc = pc_buf_puts(b, c->resp.cache);
    if (!rc) rc = pc_buf_puts(b, "\r\n");
  }
  if (!rc && c->resp.key[0]) {
    rc = pc_buf_puts(b, "X-PromptCache-Key: ");
    if (!rc) rc = pc_buf_append(b, c->resp.key, PC_KEY_HEX_LEN);
    if (!rc) rc = pc_buf_puts(b, "\r\n");
  }
  if (!rc && c->resp.extra_headers) rc = pc_buf_puts(b, c->resp.extra_headers);
  if (!rc && c->close_after) rc = pc_buf_puts(b, "Connection: close\r\n");
  else if (!rc && c->req.http_minor == 0) rc = pc_buf_puts(b, "Connection: keep-alive\r\n");
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

static void send_fixed(struct pc_conn *c, int status, const char *ctype, const char *body, size_t blen) {
  pc_buf b;
  pc_buf_init(&b, 64 * 1024 + blen);
  c->resp.status = status;
  int rc = head_start(&b, c, status, NULL, 0);
  if (!rc) rc = pc_buf_printf(&b, "Date: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", http_date(), ctype, blen);
  if (!rc && strcmp(c->req.method, "HEAD")) {
    rc = pc_buf_append(&b, body, blen);
    c->resp.bytes = blen;
  }
  c->resp.head_sent = 1;
  if (!rc) {
    size_t n;
    char *p = pc_buf_steal(&b, &n);
    pc_conn_write_own(c, p, p, n);
  }
  pc_buf_free(&b);
  pc_conn_finish(c);
}

void pc_respond_error(struct pc_conn *c, int status, const char *code, const char *msg) {
  pc_buf b;
  pc_buf_init(&b, 16384);
  pc_buf_puts(&b, "{\"error\":{\"message\":");
  pc_json_write_string(&b, msg, strlen(msg));
  pc_buf_printf(&b, ",\"type\":\"promptcache_error\",\"code\":\"%s\"}}\n", code);
  send_fixed(c, status, "application/json", b.data, b.len);
  pc_buf_free(&b);
}

void pc_respond_content(struct pc_conn *c, int status, const char *ctype, const char *body, size_t len) {
  send_fixed(c, status, ctype, body, len);
}

void pc_respond_head(struct pc_conn *c, int status, const char *headers, size_t len) {
  pc_buf b;
  pc_buf_init(&b, 512 * 1024);
  c->resp.status = status;
  c->resp.no_body = !strcmp(c->req.method, "HEAD") || status == 204 || status == 304 || status < 200;
  c->resp.chunked = !c->resp.no_body;
  int rc = head_start(&b, c, status, headers, len);
  if (!rc && !has_header(headers, len, "date")) rc = pc_buf_printf(&b, "Date: %s\r\n", http_date());
  if (!rc && c->resp.chunked) rc = pc_buf_puts(&b, "Transfer-Encoding: chunked\r\n");
  if (!rc) rc = pc_buf_puts(&b, "\r\n");
  c->resp.head_sent = 1;
  if (!rc) {
    size_t n;
    char *p = pc_buf_steal(&b, &n);
    pc_conn_write_own(c, p, p, n);
  }
  pc_buf_free(&b);
}

void pc_respond_body(struct pc_conn *c, const char *p, size_t n) {
  if (c->resp.no_body || n == 0) return;
  char *block = malloc(n + 32);
  if (!block) return;
  int h = snprintf(block, 32, "%zx\r\n", n);
  memcpy(block + h, p, n);
  memcpy(block + h + n, "\r\n", 2);
  c->resp.bytes += n;
  pc_conn_write_own(c, block, block, (size_t)h + n + 2);
}

void pc_respond_end(struct pc_conn *c) {
  if (c->resp.chunked) pc_conn_write_copy(c, "0\r\n\r\n", 5);
  pc_conn_finish(c);
}

static int hit_head(struct pc_conn *c, const struct pc_entry *e, int64_t age_s, int chunked, pc_buf *b) {
  int rc = head_start(b, c, e->status, e->headers.p, e->headers.n);
  if (!rc) rc = pc_buf_puts(b, "Date: ");
  if (!rc) rc = pc_buf_puts(b, http_date());
  if (!rc) rc = pc_buf_puts(b, "\r\nAge: ");
  if (!rc) rc = pc_buf_put_u64(b, (unsigned long long)(age_s > 0 ? age_s : 0));
  if (!rc && chunked) rc = pc_buf_puts(b, "\r\nTransfer-Encoding: chunked\r\n\r\n");
  else if (!rc) {
    rc = pc_buf_puts(b, "\r\nContent-Length: ");
    if (!rc) rc = pc_buf_put_u64(b, e->body.n);
    if (!rc) rc = pc_buf_puts(b, "\r\n\r\n");
  }
  return rc;
}

/* Append chunk i of an entry's body in HTTP chunked framing. */
static int frame_chunk(pc_buf *b, const struct pc_entry *e, uint32_t i) {
  uint32_t start = i ? pc_entry_chunk(e, i - 1).end : 0, end = pc_entry_chunk(e, i).end;
  if (end <= start) return 0;
  int rc = pc_buf_printf(b, "%x\r\n", end - start);
  if (!rc) rc = pc_buf_append(b, e->body.p + start, end - start);
  if (!rc) rc = pc_buf_puts(b, "\r\n");
  return rc;
}

static void write_buf(struct pc_conn *c, pc_buf *b) {
  size_t n;
  char *p = pc_buf_steal(b, &n);
  if (p) pc_conn_write_own(c, p, p, n);
}

void pc_respond_replay_step(struct pc_conn *c) {
  struct pc_held *h = &c->replay;
  const struct pc_entry *e = &h->e;
  uint64_t elapsed_ms = (uv_hrtime() - h->start_ns) / 1000000;
  pc_buf b;
  pc_buf_init(&b, e->body.n + 64 * (size_t)e->n_chunks + 64);
  while (h->next_chunk < e->n_chunks && pc_entry_chunk(e, h->next_chunk).t_ms <= elapsed_ms) {
    frame_chunk(&b, e, h->next_chunk);
    c->resp.bytes += pc_entry_chunk(e, h->next_chunk).end - (h->next_chunk ? pc_entry_chunk(e, h->next_chunk - 1).end : 0);
    h->next_chunk++;
  }
  if (h->next_chunk < e->n_chunks) {
    write_buf(c, &b);
    pc_buf_free(&b);
    pc_conn_wait(c, pc_entry_chunk(e, h->next_chunk).t_ms - elapsed_ms);
    return;
  }
  pc_buf_puts(&b, "0\r\n\r\n");
  write_buf(c, &b);
  pc_buf_free(&b);
  pc_held_release(h);
  pc_conn_finish(c);
}

/* An event stream goes out as HTTP chunks matching the recorded ones. */
static void respond_stream(struct pc_conn *c, char *block, const struct pc_entry *e, pc_buf *b, int paced) {
  if (paced) {
    write_buf(c, b);
    c->replay.block = block;
    c->replay.e = *e;
    c->replay.next_chunk = 0;
    c->replay.start_ns = uv_hrtime();
    pc_respond_replay_step(c);
    return;
  }
  for (uint32_t i = 0; i < e->n_chunks; i++) frame_chunk(b, e, i);
  pc_buf_puts(b, "0\r\n\r\n");
  c->resp.bytes = e->body.n;
  free(block);
  write_buf(c, b);
  pc_conn_finish(c);
}

/* Head and body straight from the map when the socket takes them (the common
 * case: one writev, no copy); only a remainder is copied. */
static void send_borrowed(struct pc_conn *c, const char *head, size_t hn, const char *body, size_t bn) {
  size_t done = pc_conn_try_write(c, head, hn, body, bn);
  if (done >= hn + bn) return;
  size_t rest = hn + bn - done;
  char *block = malloc(rest);
  if (!block) {
    pc_conn_abort(c);
    return;
  }
  size_t hoff = done < hn ? done : hn, boff = done > hn ? done - hn : 0;
  memcpy(block, head + hoff, hn - hoff);
  memcpy(block + (hn - hoff), body + boff, bn - boff);
  pc_conn_write_own(c, block, block, rest);
}

void pc_respond_hit_borrowed(struct pc_conn *c, const struct pc_entry *e, int64_t age_s) {
  pc_buf *b = &c->w->out; /* per loop: send_borrowed copies whatever is not written at once */
  int head_only = !strcmp(c->req.method, "HEAD");
  int stream = (e->flags & PC_ENTRY_F_SSE) && e->n_chunks > 0 && !head_only;
  pc_buf_reset(b);
  c->resp.status = e->status;
  c->resp.head_sent = 1;
  if (hit_head(c, e, age_s, stream, b)) {
    pc_conn_abort(c);
    return;
  }
  if (stream) { /* chunk framing interleaves with the body: one copy */
    for (uint32_t i = 0; i < e->n_chunks; i++) frame_chunk(b, e, i);
    pc_buf_puts(b, "0\r\n\r\n");
    c->resp.bytes = e->body.n;
    send_borrowed(c, b->data, b->len, "", 0);
  } else {
    c->resp.bytes = head_only ? 0 : e->body.n;
    send_borrowed(c, b->data, b->len, e->body.p, head_only ? 0 : e->body.n);
  }
  if (b->cap > (1u << 20)) pc_buf_free(b); /* a big stream's copy is not kept */
}

void pc_respond_hit(struct pc_conn *c, char *block, const struct pc_entry *e, int64_t age_s, int paced) {
  pc_buf b;
  int head_only = !strcmp(c->req.method, "HEAD");
  int stream = (e->flags & PC_ENTRY_F_SSE) && e->n_chunks > 0 && !head_only;
  pc_buf_init(&b, 512 * 1024 + (stream ? e->body.n + 16 * (size_t)e->n_chunks : 0));
  c->resp.status = e->status;
  c->resp.head_sent = 1;
  if (hit_head(c, e, age_s, stream, &b)) {
    free(block);
    pc_buf_free(&b);
    pc_conn_abort(c);
    return;
  }
  if (stream) {
    respond_stream(c, block, e, &b, paced);
    pc_buf_free(&b);
    return;
  }
  size_t hn;
  char *head = pc_buf_steal(&b, &hn);
  if (head_only) {
    free(block);
    pc_conn_write_own(c, head, head, hn);
  } else {
    c->resp.bytes = e->body.n;
    pc_conn_write2(c, head, head, hn, block, e->body.p, e->body.n);
  }
  pc_conn_finish(c);
}
