/* http.c — HTTP/1.1 request parsing with limits (see http.h), on llhttp.
 * The parser pauses at the end of each request (on_message_complete returns
 * HPE_PAUSED), so pipelined bytes are left for the next call. The settings
 * table is a constant: every worker thread shares it, nobody writes it. */
#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "error.h"

static struct pc_http *from_parser(llhttp_t *p) { return p->data; }

static int count_header_bytes(struct pc_http *h, size_t n) {
  h->req->header_bytes += n;
  if (h->req->header_bytes > PC_MAX_HEADER_BYTES) {
    h->error_status = 431;
    return -1;
  }
  return 0;
}

static int cb_message_begin(llhttp_t *p) {
  struct pc_http *h = from_parser(p);
  h->in_message = 1;
  h->headers_done = 0;
  h->req->start_ns = uv_hrtime();
  return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t n) {
  struct pc_http *h = from_parser(p);
  if (count_header_bytes(h, n)) return -1;
  return pc_buf_append(&h->req->target, at, n) ? -1 : 0;
}

/* Make slot nh exist (zeroed); the array starts small so that idle
 * connections stay cheap. */
static int header_slot(struct pc_req *r) {
  if (r->nh < r->h_cap) return 0;
  size_t cap = r->h_cap ? r->h_cap * 2 : 16;
  if (cap > PC_MAX_HEADERS) cap = PC_MAX_HEADERS;
  struct pc_header *hd = realloc(r->h, cap * sizeof *hd);
  if (!hd) return PC_ENOMEM;
  memset(hd + r->h_cap, 0, (cap - r->h_cap) * sizeof *hd);
  r->h = hd;
  r->h_cap = cap;
  return 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t n) {
  struct pc_http *h = from_parser(p);
  struct pc_req *r = h->req;
  if (count_header_bytes(h, n)) return -1;
  if (h->headers_done) return 0; /* a trailer field: counted, never kept */
  if (r->nh >= PC_MAX_HEADERS) {
    h->error_status = 431;
    return -1;
  }
  if (header_slot(r)) return -1;
  struct pc_header *hd = &r->h[r->nh];
  if (hd->nlen == 0 && hd->name == 0) hd->name = (uint32_t)r->hbuf.len;
  hd->nlen += (uint32_t)n;
  return pc_buf_append(&r->hbuf, at, n) ? -1 : 0;
}

static int cb_header_field_complete(llhttp_t *p) {
  struct pc_http *h = from_parser(p);
  if (h->headers_done) return 0;
  if (h->req->nh >= PC_MAX_HEADERS) {
    h->error_status = 431;
    return -1;
  }
  if (header_slot(h->req)) return -1;
  struct pc_header *hd = &h->req->h[h->req->nh];
  if (hd->nlen == 0) { /* ": value" (llhttp lets it through): no field has an empty name */
    h->error_status = 400;
    return -1;
  }
  if (pc_buf_putc(&h->req->hbuf, '\0')) return -1;
  hd->value = (uint32_t)h->req->hbuf.len;
  hd->vlen = 0;
  return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t n) {
  struct pc_http *h = from_parser(p);
  if (count_header_bytes(h, n)) return -1;
  if (h->headers_done) return 0;
  h->req->h[h->req->nh].vlen += (uint32_t)n;
  return pc_buf_append(&h->req->hbuf, at, n) ? -1 : 0;
}

static int cb_header_value_complete(llhttp_t *p) {
  struct pc_http *h = from_parser(p);
  struct pc_req *r = h->req;
  if (h->headers_done) return 0;
  if (pc_buf_putc(&r->hbuf, '\0')) return -1;
  /* trim trailing whitespace of the value (llhttp strips the leading part) */
  struct pc_header *hd = &r->h[r->nh];
  while (hd->vlen && (r->hbuf.data[hd->value + hd->vlen - 1] == ' ' || r->hbuf.data[hd->value + hd->vlen - 1] == '\t'))
    r->hbuf.data[hd->value + --hd->vlen] = '\0';
  r->nh++;
  if (r->nh < r->h_cap) memset(&r->h[r->nh], 0, sizeof r->h[0]);
  return 0;
}

static int cb_headers_complete(llhttp_t *p) {
  struct pc_http *h = from_parser(p);
  struct pc_req *r = h->req;
  h->headers_done = 1;
  const char *mname = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
  size_t ml = strlen(mname);
  if (ml >= sizeof r->method) ml = sizeof r->method - 1;
  memcpy(r->method, mname, ml);
  r->method[ml] = '\0';
  r->http_minor = llhttp_get_http_minor(p);
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > h->max_body) {
    h->error_status = 413;
    return -1;
  }
  if (llhttp_get_method(p) == HTTP_CONNECT) {
    h->error_status = 405;
    return -1;
  }
  size_t n;
  const char *exp = pc_req_header(r, "expect", &n);
  if (exp && n == 12 && !strncasecmp(exp, "100-continue", 12) && r->http_minor >= 1) {
    r->expect_continue = 1;
    h->continue_wanted = 1;
  }
  return 0;
}

/* The first piece of a body is only pointed at (a whole small request
 * arrives in one read, and a hit never needs a copy of it); a second piece,
 * or a request that outlives its read, makes it owned. */
static int cb_body(llhttp_t *p, const char *at, size_t n) {
  struct pc_http *h = from_parser(p);
  struct pc_req *r = h->req;
  pc_buf *b = &r->body;
  if (b->data && at == b->data + b->len && b->cap - b->len > n) { /* read in place (pc_http_body_room) */
    b->len += n;
    b->data[b->len] = '\0';
    r->body_at = b->data;
    r->body_len = b->len;
    return 0;
  }
  if (!r->body_len && !b->len) {
    if (n > b->max) {
      h->error_status = 413;
      return -1;
    }
    r->body_at = at;
    r->body_len = n;
    r->body_borrowed = 1;
    return 0;
  }
  if (pc_req_own_body(r) || pc_buf_append(b, at, n)) {
    h->error_status = 413;
    return -1;
  }
  r->body_at = b->data;
  r->body_len = b->len;
  return 0;
}

static int cb_message_complete(llhttp_t *p) {
  struct pc_http *h = from_parser(p);
  h->req->keep_alive = llhttp_should_keep_alive(p);
  h->in_message = 0;
  h->upgrade = p->upgrade;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_header_field = cb_header_field,
    .on_header_field_complete = cb_header_field_complete,
    .on_header_value = cb_header_value,
    .on_header_value_complete = cb_header_value_complete,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

void pc_http_init(struct pc_http *h, struct pc_req *req, size_t max_body) {
  memset(h, 0, sizeof *h);
  h->req = req;
  h->max_body = max_body;
  llhttp_init(&h->parser, HTTP_REQUEST, &settings);
  h->parser.data = h;
}

enum pc_http_result pc_http_feed(struct pc_http *h, const char *p, size_t n, size_t *used) {
  llhttp_errno_t err = llhttp_execute(&h->parser, p, n);
  if (err == HPE_OK) {
    *used = n;
    return PC_HTTP_MORE;
  }
  if (err == HPE_PAUSED) {
    *used = (size_t)(llhttp_get_error_pos(&h->parser) - p);
    /* An Upgrade request is answered as plain HTTP (the Upgrade header is
     * never forwarded), so the connection goes on speaking HTTP/1.1: the
     * parser starts afresh rather than treating what follows as another
     * protocol (resumed, llhttp would stop at once with
     * HPE_PAUSED_UPGRADE). */
    if (h->upgrade)
      llhttp_init(&h->parser, HTTP_REQUEST, &settings);
    else
      llhttp_resume(&h->parser);
    h->upgrade = 0;
    h->parser.data = h;
    return PC_HTTP_REQUEST;
  }
  *used = 0;
  if (!h->error_status) h->error_status = 400;
  return PC_HTTP_ERROR;
}

const char *pc_http_error_name(const struct pc_http *h) { return llhttp_errno_name(llhttp_get_errno(&h->parser)); }

int pc_http_body_room(struct pc_http *h, size_t min, size_t most, char **p, size_t *n) {
  const llhttp_t *ps = &h->parser;
  if (!h->in_message || !h->headers_done || !(ps->flags & F_CONTENT_LENGTH) || (ps->flags & F_CHUNKED)) return 0;
  uint64_t left = ps->content_length;
  if (left < min) return 0;
  size_t want = left < most ? (size_t)left : most;
  pc_buf *b = &h->req->body;
  if (pc_buf_reserve(b, want)) return 0;
  *p = b->data + b->len;
  *n = want;
  return 1;
}

/* ---- the request ---- */

void pc_req_init(struct pc_req *r, size_t max_body) {
  memset(r, 0, sizeof *r);
  pc_buf_init(&r->target, PC_MAX_HEADER_BYTES);
  pc_buf_init(&r->hbuf, PC_MAX_HEADER_BYTES + 2 * PC_MAX_HEADERS);
  pc_buf_init(&r->body, max_body);
}

int pc_req_own_body(struct pc_req *r) {
  if (!r->body_borrowed) return 0;
  int rc = pc_buf_append(&r->body, r->body_at, r->body_len);
  if (rc) return rc;
  r->body_borrowed = 0;
  r->body_at = r->body.data;
  return 0;
}

void pc_req_reset(struct pc_req *r) {
  pc_buf_reset(&r->target);
  pc_buf_reset(&r->hbuf);
  pc_buf_reset(&r->body);
  /* keep small buffers for the next request, not big ones' memory */
  if (r->body.cap > (64u << 10)) pc_buf_free(&r->body);
  if (r->hbuf.cap > (8u << 10)) pc_buf_free(&r->hbuf);
  if (r->target.cap > (8u << 10)) pc_buf_free(&r->target);
  r->nh = 0;
  if (r->h_cap > 32) { /* an unusual request: do not keep its header array */
    free(r->h);
    r->h = NULL;
    r->h_cap = 0;
  }
  if (r->h) memset(&r->h[0], 0, sizeof r->h[0]);
  r->header_bytes = 0;
  r->body_at = NULL;
  r->body_len = 0;
  r->body_borrowed = 0;
  r->keep_alive = 0;
  r->expect_continue = 0;
  r->method[0] = '\0';
}

int pc_req_release(struct pc_req *r) {
  int any = r->target.cap || r->hbuf.cap || r->body.cap || r->h;
  pc_buf_free(&r->target);
  pc_buf_free(&r->hbuf);
  pc_buf_free(&r->body);
  free(r->h);
  r->h = NULL;
  r->h_cap = 0;
  r->nh = 0;
  r->body_at = NULL;
  r->body_len = 0;
  r->body_borrowed = 0;
  return any;
}

const char *pc_req_header(const struct pc_req *r, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < r->nh; i++) {
    const struct pc_header *hd = &r->h[i];
    if (hd->nlen == nl && !strncasecmp(r->hbuf.data + hd->name, name, nl)) {
      if (len) *len = hd->vlen;
      return r->hbuf.data + hd->value;
    }
  }
  return NULL;
}
