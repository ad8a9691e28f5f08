/* conn.c — one client connection. Bytes are accumulated in `in` and fed to
 * llhttp; on a complete request the parser pauses (pipelined bytes wait in
 * `in`) and proxy.c takes over; pc_conn_finish() resumes parsing for the next
 * request. Limits: 64 KiB of request line + headers (431), --max-body (413),
 * malformed input (400, then close), a whole request within
 * --client-timeout (408), idle keep-alive within --idle-timeout.
 * Memory: the conn is freed only after both of its handles are closed. */
#include "conn.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "proxy.h"
#include "respond.h"
#include "server.h"

#define PC_READ_MAX (256 * 1024)    /* unparsed input kept beyond one request */
#define PC_LINGER_MS 2000           /* after an error response, discard input this long */
#define PC_TRIM_MS 1000             /* idle this long: give request buffers back */

struct wreq {
  uv_write_t w;
  char *block[2];
};

static llhttp_settings_t settings;
static void conn_close(struct pc_conn *c);
static void conn_arm_timer(struct pc_conn *c);
static void timer_cb(uv_timer_t *t);
static void conn_parse(struct pc_conn *c);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static struct pc_conn *from_parser(llhttp_t *p) { return p->data; }

static void conn_set_state(struct pc_conn *c, enum pc_conn_state s) { c->state = s; }

/* ---- request assembly (llhttp callbacks) ---- */

static int count_header_bytes(struct pc_conn *c, size_t n) {
  c->req.header_bytes += n;
  if (c->req.header_bytes > PC_MAX_HEADER_BYTES) {
    c->parse_error = 431;
    return -1;
  }
  return 0;
}

static int cb_message_begin(llhttp_t *p) {
  struct pc_conn *c = from_parser(p);
  c->in_message = 1;
  c->trimmed = 0;
  c->req.start_ns = uv_hrtime();
  conn_arm_timer(c); /* once per request: slow trickling cannot extend it */
  return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t n) {
  struct pc_conn *c = from_parser(p);
  if (count_header_bytes(c, n)) return -1;
  return pc_buf_append(&c->req.target, at, n) ? -1 : 0;
}

/* Make slot nh exist (zeroed); the array starts small so that idle
 * connections stay cheap. */
static int header_slot(struct pc_req *r) {
  if (r->nh < r->h_cap) return 0;
  size_t cap = r->h_cap ? r->h_cap * 2 : 16;
  if (cap > PC_MAX_HEADERS) cap = PC_MAX_HEADERS;
  struct pc_header *h = realloc(r->h, cap * sizeof *h);
  if (!h) return PC_ENOMEM;
  memset(h + r->h_cap, 0, (cap - r->h_cap) * sizeof *h);
  r->h = h;
  r->h_cap = cap;
  return 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t n) {
  struct pc_conn *c = from_parser(p);
  struct pc_req *r = &c->req;
  if (count_header_bytes(c, n)) return -1;
  if (r->nh >= PC_MAX_HEADERS) {
    c->parse_error = 431;
    return -1;
  }
  if (header_slot(r)) return -1;
  struct pc_header *h = &r->h[r->nh];
  if (h->nlen == 0 && h->name == 0) h->name = (uint32_t)r->hbuf.len;
  h->nlen += (uint32_t)n;
  return pc_buf_append(&r->hbuf, at, n) ? -1 : 0;
}

static int cb_header_field_complete(llhttp_t *p) {
  struct pc_conn *c = from_parser(p);
  struct pc_header *h = &c->req.h[c->req.nh];
  if (pc_buf_putc(&c->req.hbuf, '\0')) return -1;
  h->value = (uint32_t)c->req.hbuf.len;
  h->vlen = 0;
  return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t n) {
  struct pc_conn *c = from_parser(p);
  if (count_header_bytes(c, n)) return -1;
  c->req.h[c->req.nh].vlen += (uint32_t)n;
  return pc_buf_append(&c->req.hbuf, at, n) ? -1 : 0;
}

static int cb_header_value_complete(llhttp_t *p) {
  struct pc_conn *c = from_parser(p);
  struct pc_req *r = &c->req;
  if (pc_buf_putc(&r->hbuf, '\0')) return -1;
  /* trim trailing whitespace of the value (llhttp strips the leading part) */
  struct pc_header *h = &r->h[r->nh];
  while (h->vlen && (r->hbuf.data[h->value + h->vlen - 1] == ' ' || r->hbuf.data[h->value + h->vlen - 1] == '\t'))
    r->hbuf.data[h->value + --h->vlen] = '\0';
  r->nh++;
  if (r->nh < r->h_cap) memset(&r->h[r->nh], 0, sizeof r->h[0]);
  return 0;
}

static void write_continue(struct pc_conn *c) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  pc_conn_write_copy(c, cont, sizeof cont - 1);
}

static int cb_headers_complete(llhttp_t *p) {
  struct pc_conn *c = from_parser(p);
  struct pc_req *r = &c->req;
  const struct pc_config *cfg = c->w->cfg;
  const char *mname = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
  size_t ml = strlen(mname);
  if (ml >= sizeof r->method) ml = sizeof r->method - 1;
  memcpy(r->method, mname, ml);
  r->method[ml] = '\0';
  r->http_minor = llhttp_get_http_minor(p);
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > cfg->max_body) {
    c->parse_error = 413;
    return -1;
  }
  if (llhttp_get_method(p) == HTTP_CONNECT) {
    c->parse_error = 405;
    return -1;
  }
  size_t n;
  const char *exp = pc_req_header(r, "expect", &n);
  if (exp && n == 12 && !strncasecmp(exp, "100-continue", 12) && r->http_minor >= 1) {
    r->expect_continue = 1;
    write_continue(c);
  }
  return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t n) {
  struct pc_conn *c = from_parser(p);
  if (pc_buf_append(&c->req.body, at, n)) {
    c->parse_error = 413;
    return -1;
  }
  return 0;
}

static int cb_message_complete(llhttp_t *p) {
  struct pc_conn *c = from_parser(p);
  c->req.keep_alive = llhttp_should_keep_alive(p);
  return HPE_PAUSED;
}

static void init_settings(void) {
  if (settings.on_message_complete) return;
  llhttp_settings_init(&settings);
  settings.on_message_begin = cb_message_begin;
  settings.on_url = cb_url;
  settings.on_header_field = cb_header_field;
  settings.on_header_field_complete = cb_header_field_complete;
  settings.on_header_value = cb_header_value;
  settings.on_header_value_complete = cb_header_value_complete;
  settings.on_headers_complete = cb_headers_complete;
  settings.on_body = cb_body;
  settings.on_message_complete = cb_message_complete;
}

const char *pc_req_header(const struct pc_req *r, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < r->nh; i++) {
    const struct pc_header *h = &r->h[i];
    if (h->nlen == nl && !strncasecmp(r->hbuf.data + h->name, name, nl)) {
      if (len) *len = h->vlen;
      return r->hbuf.data + h->value;
    }
  }
  return NULL;
}

/* ---- request / response lifecycle ---- */

void pc_held_release(struct pc_held *h) {
  free(h->block);
  memset(h, 0, sizeof *h);
}

void pc_conn_wait(struct pc_conn *c, uint64_t ms) { uv_timer_start(&c->timer, timer_cb, ms, 0); }

static void req_reset(struct pc_conn *c) {
  struct pc_req *r = &c->req;
  pc_held_release(&c->replay);
  pc_held_release(&c->stale);
  c->swallow = 0;
  pc_buf_reset(&r->target);
  pc_buf_reset(&r->hbuf);
  pc_buf_reset(&r->body);
  /* keep small buffers for the next request, not big ones' memory */
  if (r->body.cap > (64u << 10)) pc_buf_free(&r->body);
  if (r->hbuf.cap > (8u << 10)) pc_buf_free(&r->hbuf);
  if (r->target.cap > (8u << 10)) pc_buf_free(&r->target);
  if (c->in.len == 0 && c->in.cap > (64u << 10)) pc_buf_free(&c->in);

  r->nh = 0;
  if (r->h_cap > 32) { /* an unusual request: do not keep its header array */
    free(r->h);
    r->h = NULL;
    r->h_cap = 0;
  }
  if (r->h) memset(&r->h[0], 0, sizeof r->h[0]);
  r->header_bytes = 0;
  r->keep_alive = 0;
  r->expect_continue = 0;
  r->method[0] = '\0';
  memset(&c->resp, 0, sizeof c->resp);
  c->resp.upstream_us = -1;
  c->resp.err_class = -1;
  c->resp.route = "";
  c->in_message = 0;
}

static void timer_cb(uv_timer_t *t);

/* Nothing is pending: give the request buffers back, so that thousands of
 * idle keep-alive connections cost little more than their struct. */
static void release_idle(struct pc_conn *c) {
  if (c->in.cap || c->req.target.cap || c->req.hbuf.cap || c->req.body.cap || c->req.h) pc_server_note_trim();
  pc_buf_free(&c->in);
  pc_buf_free(&c->req.target);
  pc_buf_free(&c->req.hbuf);
  pc_buf_free(&c->req.body);
  free(c->req.h);
  c->req.h = NULL;
  c->req.h_cap = 0;
}

/* Idle timeout between requests, client timeout while one arrives. */
/* An idle connection first waits trim_ms (then gives its request buffers
 * back: a busy keep-alive connection keeps reusing them, thousands of idle
 * ones cost little), then the rest of --idle-timeout. */
static uint64_t trim_ms(const struct pc_config *cfg) {
  return cfg->idle_timeout_ms / 2 < PC_TRIM_MS ? (uint64_t)cfg->idle_timeout_ms / 2 : PC_TRIM_MS;
}

static void conn_arm_timer(struct pc_conn *c) {
  const struct pc_config *cfg = c->w->cfg;
  if (c->state == PC_CONN_READING && c->in_message)
    uv_timer_start(&c->timer, timer_cb, (uint64_t)cfg->client_timeout_ms, 0);
  else if (c->state == PC_CONN_READING && !c->trimmed)
    uv_timer_start(&c->timer, timer_cb, trim_ms(cfg), 0);
  else if (c->state == PC_CONN_READING)
    uv_timer_start(&c->timer, timer_cb, (uint64_t)cfg->idle_timeout_ms - trim_ms(cfg), 0);
  else if (c->state == PC_CONN_DRAINING)
    uv_timer_start(&c->timer, timer_cb, PC_LINGER_MS, 0);
  else
    uv_timer_stop(&c->timer);
}

static void timer_cb(uv_timer_t *t) {
  struct pc_conn *c = t->data;
  if (c->state == PC_CONN_WORKING && c->replay.block) {
    pc_respond_replay_step(c);
    return;
  }
  if (c->state == PC_CONN_READING && c->in_message) {
    c->close_after = 1;
    conn_set_state(c, PC_CONN_WORKING);
    pc_respond_error(c, 408, "request_timeout", "the request did not arrive within --client-timeout");
    return;
  }
  if (c->state == PC_CONN_READING && !c->trimmed && c->in.len == 0) {
    release_idle(c);
    c->trimmed = 1;
    conn_arm_timer(c);
    return;
  }
  conn_close(c);
}

static void dispatch(struct pc_conn *c) {
  conn_set_state(c, PC_CONN_WORKING);
  conn_arm_timer(c);
  if (c->w->shutting_down || !c->req.keep_alive) c->close_after = 1;
  pc_proxy_handle(c);
}

static void parse_failed(struct pc_conn *c, llhttp_errno_t err) {
  int status = c->parse_error ? c->parse_error : 400;
  c->close_after = 1;
  conn_set_state(c, PC_CONN_WORKING);
  conn_arm_timer(c);
  c->in.len = 0;
  if (!c->req.method[0]) snprintf(c->req.method, sizeof c->req.method, "-");
  switch (status) {
  case 413: pc_respond_error(c, 413, "payload_too_large", "request body exceeds --max-body"); break;
  case 431: pc_respond_error(c, 431, "request_header_fields_too_large", "request headers exceed 64 KiB"); break;
  case 405: pc_respond_error(c, 405, "method_not_allowed", "CONNECT is not supported"); break;
  default: {
    char msg[256];
    snprintf(msg, sizeof msg, "malformed HTTP request: %s", llhttp_errno_name(err));
    pc_respond_error(c, 400, "bad_request", msg);
  }
  }
}

/* Feed buffered input to the parser until it runs out or a request is
 * dispatched that does not finish at once. Requests answered synchronously
 * (hits) loop here instead of recursing through pc_conn_finish, so a long
 * pipeline cannot grow the stack. */
static void conn_parse(struct pc_conn *c) {
  size_t off = 0;
  while (c->state == PC_CONN_READING && off < c->in.len) {
    const char *start = c->in.data + off;
    llhttp_errno_t err = llhttp_execute(&c->parser, start, c->in.len - off);
    if (err == HPE_OK) {
      off = c->in.len;
    } else if (err == HPE_PAUSED) {
      off += (size_t)(llhttp_get_error_pos(&c->parser) - start);
      llhttp_resume(&c->parser);
      c->in_dispatch = 1;
      dispatch(c);
      c->in_dispatch = 0;
    } else {
      parse_failed(c, err);
      return;
    }
  }
  if (c->state == PC_CONN_CLOSED) return;
  if (off) {
    memmove(c->in.data, c->in.data + off, c->in.len - off);
    c->in.len -= off;
  }
  if (c->state == PC_CONN_READING && !c->in_message) conn_arm_timer(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static __thread char slab[64 * 1024];
  buf->base = slab;
  buf->len = sizeof slab;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct pc_conn *c = s->data;
  if (n == UV_EOF && c->state == PC_CONN_WORKING) {
    /* half-close after a request: answer it, then close */
    c->peer_eof = 1;
    c->close_after = 1;
    uv_read_stop(s);
    c->read_stopped = 1;
    return;
  }
  if (n < 0) {
    conn_close(c);
    return;
  }
  if (n == 0 || c->state == PC_CONN_DRAINING) return;
  if (pc_buf_append(&c->in, buf->base, (size_t)n)) {
    /* pipelined input beyond our buffer while a request is being answered */
    uv_read_stop(s);
    c->read_stopped = 1;
    c->close_after = 1;
    return;
  }
  if (c->state == PC_CONN_READING) conn_parse(c);
  else if (c->in.len > PC_READ_MAX) {
    uv_read_stop(s); /* resume after this response */
    c->read_stopped = 1;
  }
}

static void write_cb(uv_write_t *w, int status) {
  struct wreq *wr = (struct wreq *)w;
  struct pc_conn *c = w->data;
  free(wr->block[0]);
  free(wr->block[1]);
  free(wr);
  c->writes_pending--;
  if (status < 0) conn_close(c);
}

void pc_conn_write2(struct pc_conn *c, char *b1, const char *p1, size_t n1, char *b2, const char *p2, size_t n2) {
  struct wreq *wr = c->state == PC_CONN_CLOSED ? NULL : malloc(sizeof *wr);
  if (!wr) {
    free(b1);
    free(b2);
    if (c->state != PC_CONN_CLOSED) conn_close(c);
    return;
  }
  wr->block[0] = b1;
  wr->block[1] = b2;
  wr->w.data = c;
  uv_buf_t b[2] = {uv_buf_init((char *)p1, (unsigned)n1), uv_buf_init((char *)p2, (unsigned)n2)};
  if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, b, n2 ? 2 : 1, write_cb)) {
    free(b1);
    free(b2);
    free(wr);
    conn_close(c);
    return;
  }
  c->writes_pending++;
}

size_t pc_conn_try_write(struct pc_conn *c, const char *p1, size_t n1, const char *p2, size_t n2) {
  if (c->state == PC_CONN_CLOSED || c->writes_pending) return 0;
  uv_buf_t b[2] = {uv_buf_init((char *)p1, (unsigned)n1), uv_buf_init((char *)p2, (unsigned)n2)};
  int w = uv_try_write((uv_stream_t *)&c->tcp, b, n2 ? 2 : 1);
  return w > 0 ? (size_t)w : 0;
}

void pc_conn_write_own(struct pc_conn *c, char *block, const char *p, size_t n) {
  pc_conn_write2(c, block, p, n, NULL, NULL, 0);
}

void pc_conn_write_copy(struct pc_conn *c, const void *p, size_t n) {
  if (n == 0) return;
  char *block = malloc(n);
  if (!block) {
    conn_close(c);
    return;
  }
  memcpy(block, p, n);
  pc_conn_write_own(c, block, block, n);
}

static enum pc_outcome outcome_of(const struct pc_resp *r) {
  static const char *const names[] = {"HIT", "MISS", "COALESCED", "BYPASS", "REFRESH", "STALE"};
  if (r->replay_miss) return PC_OUT_REPLAY_MISS;
  for (int i = 0; r->cache && i < 6; i++)
    if (!strcmp(r->cache, names[i])) return (enum pc_outcome)i;
  return PC_OUT_ADMIN;
}

static void record_stats(struct pc_conn *c, int64_t total_us) {
  struct pc_stats_req s = {.outcome = outcome_of(&c->resp), .route = c->resp.route, .model = c->resp.model,
                           .status = c->resp.status, .upstream_us = c->resp.upstream_us, .total_us = total_us,
                           .bytes = c->resp.bytes, .usage = c->resp.usage, .err_class = c->resp.err_class};
  if (s.err_class < 0 && c->resp.status >= 400 && c->resp.status < 500 && c->resp.upstream_us < 0)
    s.err_class = PC_ERRC_CLIENT;
  pc_stats_record(&s);
}

static void log_request(struct pc_conn *c) {
  record_stats(c, (int64_t)((uv_hrtime() - c->req.start_ns) / 1000));
  struct pc_access a = {
      .method = c->req.method[0] ? c->req.method : "-",
      .path = c->req.target.data ? c->req.target.data : "-",
      .status = c->resp.status,
      .cache = c->resp.cache ? c->resp.cache : "-",
      .key = c->resp.key,
      .bytes = c->resp.bytes,
      .upstream_us = c->resp.upstream_us,
      .total_us = (int64_t)((uv_hrtime() - c->req.start_ns) / 1000),
  };
  pc_log_access(&a);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  struct pc_conn *c = req->data;
  if (status < 0 || c->peer_eof) conn_close(c);
}

void pc_conn_finish(struct pc_conn *c) {
  if (c->state != PC_CONN_WORKING) return;
  log_request(c);
  pc_flight_leave(&c->sub);
  if (c->close_after) {
    conn_set_state(c, PC_CONN_DRAINING);
    conn_arm_timer(c);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_cb)) conn_close(c);
    else if (c->read_stopped && !c->peer_eof) uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
    return;
  }
  req_reset(c);
  conn_set_state(c, PC_CONN_READING);
  if (c->read_stopped) {
    c->read_stopped = 0;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  }
  if (!c->in_dispatch) conn_parse(c); /* else the running parse loop goes on */
}

void pc_conn_abort(struct pc_conn *c) {
  if (c->state == PC_CONN_WORKING) log_request(c);
  conn_close(c);
}

static void close_cb(uv_handle_t *h) {
  struct pc_conn *c = h->data;
  if (--c->handles_open > 0) return;
  struct pc_worker *w = c->w;
  pc_held_release(&c->replay);
  pc_held_release(&c->stale);
  pc_buf_free(&c->in);
  pc_buf_free(&c->req.target);
  pc_buf_free(&c->req.hbuf);
  pc_buf_free(&c->req.body);
  free(c->req.h);
  free(c);
  pc_server_maybe_done(w);
}

static void conn_close(struct pc_conn *c) {
  if (c->state == PC_CONN_CLOSED) return;
  conn_set_state(c, PC_CONN_CLOSED);
  pc_flight_leave(&c->sub);
  if (c->prev) c->prev->next = c->next;
  else c->w->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, close_cb);
  uv_close((uv_handle_t *)&c->tcp, close_cb);
}

int pc_conn_accept(struct pc_worker *w, uv_stream_t *server) {
  struct pc_conn *c = calloc(1, sizeof *c);
  if (!c) return PC_ENOMEM;
  init_settings();
  c->w = w;
  uv_tcp_init(w->loop, &c->tcp);
  uv_timer_init(w->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  c->next = w->conns;
  if (c->next) c->next->prev = c;
  w->conns = c;
  pc_buf_init(&c->in, w->cfg->max_body + PC_READ_MAX);
  pc_buf_init(&c->req.target, PC_MAX_HEADER_BYTES);
  pc_buf_init(&c->req.hbuf, PC_MAX_HEADER_BYTES + 2 * PC_MAX_HEADERS);
  pc_buf_init(&c->req.body, w->cfg->max_body);

  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  req_reset(c);
  conn_set_state(c, PC_CONN_READING);
  if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
    conn_close(c);
    return PC_EIO;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  conn_arm_timer(c);
  return 0;
}

void pc_conn_shutdown_all(struct pc_worker *w) {
  struct pc_conn *c = w->conns;
  while (c) {
    struct pc_conn *next = c->next;
    if (c->state == PC_CONN_READING && !c->in_message) conn_close(c);
    else c->close_after = 1;
    c = next;
  }
}
