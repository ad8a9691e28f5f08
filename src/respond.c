/* respond.c — produces the bytes of every response. Heads are built into one
 * small malloc'd block; a hit's head and body go out in a single write. */
#include "respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conn.h"

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
  int rc = pc_buf_printf(b, "HTTP/1.1 %d %s\r\n", status, pc_respond_reason(status));
  if (!rc && len) rc = pc_buf_append(b, headers, len);
  if (!rc && c->resp.cache) rc = pc_buf_printf(b, "X-PromptCache-Status: %s\r\n", c->resp.cache);
  if (!rc && c->resp.key[0]) rc = pc_buf_printf(b, "X-PromptCache-Key: %s\r\n", c->resp.key);
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

static void json_escape(pc_buf *b, const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') pc_buf_printf(b, "\\%c", ch);
    else if (ch < 0x20) pc_buf_printf(b, "\\u%04x", ch);
    else pc_buf_putc(b, (char)ch);
  }
}

void pc_respond_error(struct pc_conn *c, int status, const char *code, const char *msg) {
  pc_buf b;
  pc_buf_init(&b, 16384);
  pc_buf_puts(&b, "{\"error\":{\"message\":\"");
  json_escape(&b, msg);
  pc_buf_printf(&b, "\",\"type\":\"promptcache_error\",\"code\":\"%s\"}}\n", code);
  send_fixed(c, status, "application/json", b.data, b.len);
  pc_buf_free(&b);
}

void pc_respond_json(struct pc_conn *c, int status, const char *json, size_t len) {
  send_fixed(c, status, "application/json", json, len);
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

void pc_respond_hit(struct pc_conn *c, char *block, const struct pc_entry *e, int64_t age_s) {
  pc_buf b;
  pc_buf_init(&b, 512 * 1024);
  c->resp.status = e->status;
  int head_only = !strcmp(c->req.method, "HEAD");
  int rc = head_start(&b, c, e->status, e->headers.p, e->headers.n);
  if (!rc)
    rc = pc_buf_printf(&b, "Date: %s\r\nAge: %lld\r\nContent-Length: %zu\r\n\r\n", http_date(), (long long)age_s,
                       e->body.n);
  c->resp.head_sent = 1;
  if (rc) {
    free(block);
    pc_buf_free(&b);
    pc_conn_abort(c);
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
