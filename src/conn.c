/* conn.c — one client connection (see conn.h). Bytes are accumulated in
 * `in` and fed to the request parser; on a complete request the parser
 * pauses (pipelined bytes wait in `in`) and the user's ops->request takes
 * over; pc_conn_finish() resumes parsing for the next request.
 * What must stay true:
 *  - the state changes only in conn_set_state(), and each state has one
 *    meaning (see enum conn_state);
 *  - ops->end runs exactly once per request (or reject), before the
 *    connection is reused or closed, and ops->closed once per connection;
 *  - the conn is freed only after both of its handles are closed. */
#include "conn.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define PC_READ_MAX (256 * 1024) /* unparsed input kept beyond one request */
#define PC_LINGER_MS 2000        /* after an error response, discard input this long */
#define PC_TRIM_MS 1000          /* idle this long: give request buffers back */

/* The states, listed once; conn_set_state() is the only writer. */
enum conn_state {
  CONN_READING,  /* waiting for, or receiving, a request */
  CONN_WORKING,  /* a request was handed to the user; its response is being produced */
  CONN_BLOCKED,  /* between requests, waiting for queued output to drain before parsing the next */
  CONN_DRAINING, /* final response queued; write side shut, discarding input until close */
  CONN_CLOSED    /* uv_close called; freed in the close callbacks */
};

struct pc_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  struct pc_conn_pool *pool;
  struct pc_http http;
  struct pc_req req;
  enum conn_state state;
  pc_buf in; /* received, not yet parsed */
  /* flags (bits: 10k idle connections are 10k of these) */
  unsigned request_open : 1; /* ops->request or ->reject ran and ops->end has not */
  unsigned close_after : 1;  /* close once the current response is written */
  unsigned read_stopped : 1;
  unsigned peer_eof : 1;    /* the client half-closed: answer, then close */
  unsigned trimmed : 1;     /* idle and its request buffers already given back */
  unsigned in_dispatch : 1; /* inside conn_parse's dispatch: finish must not re-enter the parser */
  unsigned hold : 1;        /* keep the cork until the response ends (pc_conn_hold) */
  int handles_open;         /* tcp + timer still to be closed */
  size_t writes_pending;
  struct wreq *cork;                     /* written this loop iteration, not yet handed to libuv */
  struct pc_conn *cork_prev, *cork_next; /* on pool->corked while cork is set */
  size_t accounted;                      /* bytes of this conn counted in the process-wide body budget */
  void *user;
  struct pc_conn *next, *prev;
  uv_shutdown_t shutdown_req;
};

/* One uv_write: the blocks it frees when done, the pieces it sends, and room
 * for small copies (chunk terminators). While it collects a response's pieces
 * it is the connection's cork (c->cork). */
#define WREQ_BUFS 8
#define WREQ_INLINE 64
struct wreq {
  uv_write_t w;
  unsigned n_blocks, n_bufs, inline_used;
  size_t bytes;
  char *block[WREQ_BUFS];
  uv_buf_t buf[WREQ_BUFS];
  char inl[WREQ_INLINE];
};

static atomic_size_t buffered;  /* request bytes held by all connections (the body budget) */
static atomic_int trimmed_flag; /* connections gave memory back: the server may trim the heap */

static void conn_close(struct pc_conn *c);
static void conn_arm_timer(struct pc_conn *c);
static void conn_parse(struct pc_conn *c);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void conn_set_state(struct pc_conn *c, enum conn_state s) { c->state = s; }

int pc_conn_take_trimmed(void) { return atomic_exchange_explicit(&trimmed_flag, 0, memory_order_relaxed); }

struct pc_req *pc_conn_req(struct pc_conn *c) {
  return &c->req;
}
struct pc_conn_pool *pc_conn_pool(struct pc_conn *c) {
  return c->pool;
}
void *pc_conn_user(const struct pc_conn *c) { return c->user; }
void pc_conn_set_user(struct pc_conn *c, void *user) { c->user = user; }
int pc_conn_will_close(const struct pc_conn *c) { return c->close_after; }
void pc_conn_close_after(struct pc_conn *c) { c->close_after = 1; }
size_t pc_conn_queued(const struct pc_conn *c) { return c->tcp.write_queue_size + (c->cork ? c->cork->bytes : 0); }

/* ---- the body budget ---- */

/* Re-count this connection's buffers in the process-wide total; returns
 * whether the total is over the budget while this connection grew. */
static int account(struct pc_conn *c) {
  size_t now = c->in.cap + c->req.body.cap;
  size_t before = c->accounted;
  if (now == before) return 0; /* the usual case (a hit): no shared atomic touched */
  c->accounted = now;
  if (now > before) {
    size_t total = atomic_fetch_add_explicit(&buffered, now - before, memory_order_relaxed) + (now - before);
    return total > c->pool->body_budget;
  }
  atomic_fetch_sub_explicit(&buffered, before - now, memory_order_relaxed);
  return 0;
}

/* ---- timers ---- */

/* An idle connection first waits trim_ms (then gives its request buffers
 * back: a busy keep-alive connection keeps reusing them, thousands of idle
 * ones cost little), then the rest of the idle timeout. */
static uint64_t trim_ms(const struct pc_conn_pool *p) {
  return p->idle_timeout_ms / 2 < PC_TRIM_MS ? p->idle_timeout_ms / 2 : PC_TRIM_MS;
}

static void timer_cb(uv_timer_t *t);

/* The client timeout runs from a request's first byte, the idle timeout
 * from the end of the last response: neither is extended by trickling bytes
 * (bare CRLFs between requests begin no request and re-arm nothing). */
static void conn_arm_timer(struct pc_conn *c) {
  const struct pc_conn_pool *p = c->pool;
  if (c->state == CONN_READING && c->http.in_message)
    uv_timer_start(&c->timer, timer_cb, p->client_timeout_ms, 0);
  else if (c->state == CONN_READING && !c->trimmed)
    uv_timer_start(&c->timer, timer_cb, trim_ms(p), 0);
  else if (c->state == CONN_READING)
    uv_timer_start(&c->timer, timer_cb, p->idle_timeout_ms - trim_ms(p), 0);
  else if (c->state == CONN_DRAINING)
    uv_timer_start(&c->timer, timer_cb, PC_LINGER_MS, 0);
  else if (c->state == CONN_BLOCKED)
    uv_timer_start(&c->timer, timer_cb, p->idle_timeout_ms, 0); /* it never reads */
  else
    uv_timer_stop(&c->timer);
}

/* Nothing is pending: give the request buffers back, so that thousands of
 * idle keep-alive connections cost little more than their struct. */
static void release_idle(struct pc_conn *c) {
  int any = c->in.cap != 0;
  if (c->pool->ops->idle) c->pool->ops->idle(c);
  pc_buf_free(&c->in);
  if (pc_req_release(&c->req) || any) atomic_store_explicit(&trimmed_flag, 1, memory_order_relaxed);
  account(c);
}

static void reject(struct pc_conn *c, int status, const char *code, const char *msg) {
  c->close_after = 1;
  c->in.len = 0;
  conn_set_state(c, CONN_WORKING);
  conn_arm_timer(c);
  if (!c->req.method[0]) snprintf(c->req.method, sizeof c->req.method, "-");
  c->request_open = 1;
  c->pool->ops->reject(c, status, code, msg);
}

static void timer_cb(uv_timer_t *t) {
  struct pc_conn *c = t->data;
  if (c->state == CONN_READING && c->http.in_message) {
    reject(c, 408, "request_timeout", "the request did not arrive within --client-timeout");
    return;
  }
  if (c->state == CONN_READING && !c->trimmed && c->in.len == 0) {
    release_idle(c);
    c->trimmed = 1;
    conn_arm_timer(c);
    return;
  }
  conn_close(c);
}

/* ---- reading and parsing ---- */

static void dispatch(struct pc_conn *c) {
  c->trimmed = 0; /* in use again: keep its buffers while it stays busy */
  conn_set_state(c, CONN_WORKING);
  conn_arm_timer(c);
  if (c->pool->shutting_down || !c->req.keep_alive) c->close_after = 1;
  c->request_open = 1;
  c->pool->ops->request(c);
}

static void parse_failed(struct pc_conn *c) {
  int status = c->http.error_status;
  switch (status) {
  case 413:
    reject(c, 413, "payload_too_large", "request body exceeds --max-body");
    break;
  case 431:
    reject(c, 431, "request_header_fields_too_large", "request headers exceed 64 KiB or 256 fields");
    break;
  case 405:
    reject(c, 405, "method_not_allowed", "CONNECT is not supported");
    break;
  default: {
    char msg[256];
    snprintf(msg, sizeof msg, "malformed HTTP request: %s", pc_http_error_name(&c->http));
    reject(c, 400, "bad_request", msg);
  }
  }
}

static void write_continue(struct pc_conn *c) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  c->http.continue_wanted = 0;
  pc_conn_write_copy(c, cont, sizeof cont - 1);
}

/* Feed input to the parser until it runs out or a request is dispatched
 * that does not finish at once. Requests answered synchronously (hits) loop
 * here instead of recursing through pc_conn_finish, so a long pipeline
 * cannot grow the stack. Returns how many bytes of p[0..n) were consumed. */
static size_t feed(struct pc_conn *c, const char *p, size_t n) {
  size_t off = 0;
  while (c->state == CONN_READING && off < n) {
    int was_in_message = c->http.in_message;
    size_t used = 0;
    enum pc_http_result r = pc_http_feed(&c->http, p + off, n - off, &used);
    off += used;
    if (!was_in_message && c->http.in_message) conn_arm_timer(c); /* once per request: trickling cannot extend it */
    if (c->http.continue_wanted) write_continue(c);
    if (r == PC_HTTP_ERROR) {
      parse_failed(c);
      return n;
    }
    if (r == PC_HTTP_REQUEST) {
      c->in_dispatch = 1;
      dispatch(c);
      c->in_dispatch = 0;
    }
  }
  /* A body may point into p (pc_req's borrowed body) only while p is being
   * fed: a request still being answered, or still arriving, makes it owned
   * before the bytes it points at are reused. */
  if (c->state != CONN_CLOSED && pc_req_own_body(&c->req)) {
    conn_close(c);
    return n;
  }
  return off;
}

/* Parse what is buffered in `in`. */
static void conn_parse(struct pc_conn *c) {
  size_t off = feed(c, c->in.data, c->in.len);
  if (c->state == CONN_CLOSED) return;
  if (off && c->in.len) {
    memmove(c->in.data, c->in.data + off, c->in.len - off);
    c->in.len -= off;
  }
}

/* Reads land in a per-thread slab (idle connections hold no buffer), or,
 * while a large body with a Content-Length arrives, straight at the end of
 * the request's body (no copy). The first read of a request takes at most
 * FIRST_READ bytes: enough for headers and a small body (or many pipelined
 * requests), while the body of a large one is mostly read in place instead
 * of being copied out of the slab. */
#define SLAB (64 * 1024)
#define FIRST_READ (32 * 1024)
#define IN_PLACE_MIN (16 * 1024)
#define IN_PLACE_MOST ((size_t)4 << 20)

static __thread char slab[SLAB];

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct pc_conn *c = h->data;
  char *p;
  size_t n;
  if (c->state == CONN_READING && c->in.len == 0 && pc_http_body_room(&c->http, IN_PLACE_MIN, IN_PLACE_MOST, &p, &n)) {
    buf->base = p;
    buf->len = n;
    return;
  }
  buf->base = slab;
  buf->len = c->state == CONN_READING && c->in.len == 0 && !c->http.in_message ? FIRST_READ : sizeof slab;
}

static void stop_reading(struct pc_conn *c) {
  if (c->read_stopped) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->read_stopped = 1;
}

static void start_reading(struct pc_conn *c) {
  if (!c->read_stopped || c->peer_eof) return;
  c->read_stopped = 0;
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct pc_conn *c = s->data;
  if (n == UV_EOF && (c->state == CONN_WORKING || c->state == CONN_BLOCKED)) {
    /* half-close after a request: answer what was asked, then close */
    c->peer_eof = 1;
    c->close_after = 1;
    stop_reading(c);
    return;
  }
  if (n < 0) {
    conn_close(c);
    return;
  }
  if (n == 0 || c->state == CONN_DRAINING) return;
  if (c->state == CONN_READING && c->in.len == 0) { /* the common case: parse where the bytes are */
    if (account(c)) {
      reject(c, 503, "overloaded", "too many request bytes buffered across connections; retry later");
      return;
    }
    size_t used = feed(c, buf->base, (size_t)n);
    if (c->state == CONN_CLOSED || used >= (size_t)n) return;
    if (buf->base != slab) { /* an in-place read holds only body bytes: all are used */
      conn_close(c);
      return;
    }
    n -= (ssize_t)used; /* pipelined bytes after a request being answered: keep them */
    memmove(slab, slab + used, (size_t)n);
  }
  if (pc_buf_append(&c->in, buf->base, (size_t)n)) {
    /* pipelined input beyond our buffer while a request is being answered */
    stop_reading(c);
    c->close_after = 1;
    return;
  }
  if (account(c) && c->state == CONN_READING) {
    reject(c, 503, "overloaded", "too many request bytes buffered across connections; retry later");
    return;
  }
  if (c->state == CONN_READING)
    conn_parse(c);
  else if (c->in.len > PC_READ_MAX)
    stop_reading(c); /* resume after this response */
}

/* ---- writing ----
 * Writes are corked: the pieces a response gets during one loop iteration
 * (head, body, chunk terminator) go out in one writev when the response
 * finishes, when the iteration ends (pc_conn_pool_flush, from the server's
 * prepare and check handles) or when the cork is full; nothing waits longer
 * than the iteration that wrote it, except a held response (pc_conn_hold).
 * A hit served from the map does not cork: pc_conn_try_write sends it at
 * once when nothing is queued. */

static void unblock(struct pc_conn *c);

static void wreq_free(struct wreq *wr) {
  for (unsigned i = 0; i < wr->n_blocks; i++) free(wr->block[i]);
  free(wr);
}

static void write_cb(uv_write_t *w, int status) {
  struct wreq *wr = (struct wreq *)w;
  struct pc_conn *c = w->data;
  wreq_free(wr);
  c->writes_pending--;
  if (status < 0)
    conn_close(c);
  else if (c->state == CONN_BLOCKED && c->tcp.write_queue_size < PC_CONN_OUT_LOW)
    unblock(c);
}

static void cork_unlink(struct pc_conn *c) {
  if (c->cork_prev)
    c->cork_prev->cork_next = c->cork_next;
  else
    c->pool->corked = c->cork_next;
  if (c->cork_next) c->cork_next->cork_prev = c->cork_prev;
  c->cork_prev = c->cork_next = NULL;
}

/* Send the corked pieces: at once with one writev when nothing is queued
 * (the usual case: no write request, no callback, no change of the epoll
 * set), the rest through a uv_write. */
static void cork_flush(struct pc_conn *c) {
  struct wreq *wr = c->cork;
  if (!wr) return;
  cork_unlink(c);
  c->cork = NULL;
  uv_buf_t *b = wr->buf;
  unsigned nb = wr->n_bufs;
  if (!c->writes_pending && c->tcp.write_queue_size == 0) {
    int n = uv_try_write((uv_stream_t *)&c->tcp, b, nb);
    size_t done = n > 0 ? (size_t)n : 0;
    for (; nb && done >= b->len; nb--, b++) done -= b->len;
    if (nb == 0) {
      wreq_free(wr);
      return;
    }
    b->base += done; /* the part of b that was written */
    b->len -= done;
  }
  if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, b, nb, write_cb)) {
    wreq_free(wr);
    conn_close(c);
    return;
  }
  c->writes_pending++;
}

void pc_conn_pool_flush(struct pc_conn_pool *p) {
  for (struct pc_conn *c = p->corked, *next; c; c = next) {
    next = c->cork_next; /* (a flush never closes another connection) */
    if (!c->hold) cork_flush(c);
  }
}

void pc_conn_hold(struct pc_conn *c) {
  if (c->state == CONN_WORKING) c->hold = 1;
}

/* The cork, with room for `bufs` more pieces and `blocks` more blocks. */
static struct wreq *cork_room(struct pc_conn *c, unsigned bufs, unsigned blocks) {
  if (c->cork && (c->cork->n_bufs + bufs > WREQ_BUFS || c->cork->n_blocks + blocks > WREQ_BUFS)) cork_flush(c);
  if (c->state == CONN_CLOSED) return NULL;
  if (!c->cork) {
    struct wreq *wr = malloc(sizeof *wr);
    if (!wr) return NULL;
    wr->n_blocks = wr->n_bufs = wr->inline_used = 0;
    wr->bytes = 0;
    wr->w.data = c;
    c->cork = wr;
    c->cork_prev = NULL;
    c->cork_next = c->pool->corked;
    if (c->cork_next) c->cork_next->cork_prev = c;
    c->pool->corked = c;
  }
  return c->cork;
}

static void cork_piece(struct wreq *wr, const char *p, size_t n) {
  wr->buf[wr->n_bufs++] = uv_buf_init((char *)p, (unsigned)n);
  wr->bytes += n;
}

void pc_conn_write2(struct pc_conn *c, char *b1, const char *p1, size_t n1, char *b2, const char *p2, size_t n2) {
  struct wreq *wr = c->state == CONN_CLOSED ? NULL : cork_room(c, 2, 2);
  if (!wr) {
    free(b1);
    free(b2);
    if (c->state != CONN_CLOSED) conn_close(c);
    return;
  }
  if (b1) wr->block[wr->n_blocks++] = b1;
  if (b2) wr->block[wr->n_blocks++] = b2;
  if (n1) cork_piece(wr, p1, n1);
  if (n2) cork_piece(wr, p2, n2);
}

size_t pc_conn_try_write(struct pc_conn *c, const char *p1, size_t n1, const char *p2, size_t n2) {
  if (c->state == CONN_CLOSED || c->writes_pending || c->cork) return 0;
  uv_buf_t b[2] = {uv_buf_init((char *)p1, (unsigned)n1), uv_buf_init((char *)p2, (unsigned)n2)};
  int w = uv_try_write((uv_stream_t *)&c->tcp, b, n2 ? 2 : 1);
  return w > 0 ? (size_t)w : 0;
}

void pc_conn_write_own(struct pc_conn *c, char *block, const char *p, size_t n) {
  pc_conn_write2(c, block, p, n, NULL, NULL, 0);
}

void pc_conn_write_copy(struct pc_conn *c, const void *p, size_t n) {
  if (n == 0 || c->state == CONN_CLOSED) return;
  if (n <= WREQ_INLINE) { /* small: into the cork itself */
    struct wreq *wr = cork_room(c, 1, 0);
    if (wr && wr->inline_used + n > WREQ_INLINE) {
      cork_flush(c);
      wr = cork_room(c, 1, 0);
    }
    if (!wr) {
      if (c->state != CONN_CLOSED) conn_close(c);
      return;
    }
    char *dst = wr->inl + wr->inline_used;
    memcpy(dst, p, n);
    wr->inline_used += (unsigned)n;
    uv_buf_t *last = wr->n_bufs ? &wr->buf[wr->n_bufs - 1] : NULL;
    if (last && last->base + last->len == dst) { /* follows the previous copy: one piece */
      last->len += n;
      wr->bytes += n;
    } else {
      cork_piece(wr, dst, n);
    }
    return;
  }
  char *block = malloc(n);
  if (!block) {
    conn_close(c);
    return;
  }
  memcpy(block, p, n);
  pc_conn_write_own(c, block, block, n);
}

/* ---- ending a request ---- */

static void end_request(struct pc_conn *c) {
  if (!c->request_open) return;
  c->request_open = 0;
  c->pool->ops->end(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  struct pc_conn *c = req->data;
  if (status < 0 || c->peer_eof) conn_close(c);
}

/* Ready for the next request: parse what is buffered, unless the client
 * has not read what it was sent (then wait for the output to drain). */
static void next_request(struct pc_conn *c) {
  if (c->tcp.write_queue_size > PC_CONN_OUT_HIGH) {
    conn_set_state(c, CONN_BLOCKED);
    conn_arm_timer(c);
    stop_reading(c);
    return;
  }
  conn_set_state(c, CONN_READING);
  conn_arm_timer(c);
  start_reading(c);
  if (!c->in_dispatch) conn_parse(c); /* else the running parse loop goes on */
}

static void unblock(struct pc_conn *c) { next_request(c); }

/* The last response is queued: shut the write side once it is written,
 * and discard what the client still sends until it closes or the linger
 * ends (so it reads our answer instead of a reset). */
static void drain(struct pc_conn *c) {
  cork_flush(c); /* before the shutdown, which must follow every write */
  if (c->state == CONN_CLOSED) return;
  conn_set_state(c, CONN_DRAINING);
  conn_arm_timer(c);
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_cb))
    conn_close(c);
  else
    start_reading(c);
}

void pc_conn_finish(struct pc_conn *c) {
  if (c->state != CONN_WORKING) return;
  c->hold = 0;
  cork_flush(c); /* the whole response in one write; queued bytes counted below */
  if (c->state == CONN_CLOSED) return;
  end_request(c);
  if (c->close_after) {
    drain(c);
    return;
  }
  pc_req_reset(&c->req);
  if (c->in.len == 0 && c->in.cap > (64u << 10)) pc_buf_free(&c->in);
  account(c);
  next_request(c);
}

void pc_conn_abort(struct pc_conn *c) { conn_close(c); }

/* ---- closing ---- */

static void close_cb(uv_handle_t *h) {
  struct pc_conn *c = h->data;
  if (--c->handles_open > 0) return;
  struct pc_conn_pool *p = c->pool;
  c->pool->ops->closed(c);
  pc_buf_free(&c->in);
  pc_req_release(&c->req);
  account(c);
  free(c);
  if (p->shutting_down && p->n_conns == 0 && p->drained) p->drained(p);
}

static void conn_close(struct pc_conn *c) {
  if (c->state == CONN_CLOSED) return;
  c->hold = 0;
  cork_flush(c); /* what was written goes out (a cut response shows its cut) */
  if (c->state == CONN_CLOSED) return;
  conn_set_state(c, CONN_CLOSED);
  end_request(c);
  struct pc_conn_pool *p = c->pool;
  if (c->prev)
    c->prev->next = c->next;
  else
    p->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  p->n_conns--;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, close_cb);
  uv_close((uv_handle_t *)&c->tcp, close_cb);
}

int pc_conn_accept(struct pc_conn_pool *p, uv_stream_t *server) {
  assert(p->ops && p->ops->magic == PC_CONN_OPS_MAGIC);
  struct pc_conn *c = calloc(1, sizeof *c);
  if (!c) return PC_ENOMEM;
  c->pool = p;
  uv_tcp_init(p->loop, &c->tcp);
  uv_timer_init(p->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  c->next = p->conns;
  if (c->next) c->next->prev = c;
  p->conns = c;
  p->n_conns++;
  pc_buf_init(&c->in, p->max_body + PC_READ_MAX);
  pc_req_init(&c->req, p->max_body);
  pc_http_init(&c->http, &c->req, p->max_body);
  conn_set_state(c, CONN_READING);
  if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
    conn_close(c);
    return PC_EIO;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  conn_arm_timer(c);
  return 0;
}

void pc_conn_shutdown_all(struct pc_conn_pool *p) {
  p->shutting_down = 1;
  struct pc_conn *c = p->conns;
  while (c) {
    struct pc_conn *next = c->next;
    if (c->state == CONN_READING && !c->http.in_message)
      conn_close(c);
    else if (c->state == CONN_BLOCKED)
      drain(c); /* its answers are queued: let them go out */
    else
      c->close_after = 1;
    c = next;
  }
  if (p->n_conns == 0 && p->drained) p->drained(p);
}
