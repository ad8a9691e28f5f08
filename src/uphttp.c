/* uphttp.c — the lean HTTP/1.1 client for http:// upstreams (see uphttp.h):
 * requests written with one uv_try_write, responses parsed by llhttp in
 * response mode, bodies decoded (chunked by llhttp; gzip/deflate by zlib as
 * they stream), connections kept per origin and reused.
 *
 * What must stay true:
 *  - No callback runs inside pc_uphttp_fetch: a failure found while starting
 *    (a connect refused at once) is reported from the timer, on the next
 *    loop iteration, because the caller has not seen the fetch yet.
 *  - User callbacks other than on_done run only inside feed() (the fetch is
 *    `busy`): an abort from one of them marks the fetch and closes its
 *    connection, and feed() frees the fetch once llhttp has returned.
 *  - on_done is the last thing done for a fetch: its connection is already
 *    back in the pool or closing, and the fetch is out of every list, so
 *    the callback may start new fetches or destroy the whole client.
 *  - A connection is freed only in its close callback; callbacks that libuv
 *    still delivers to a closing one (connect, write) look at its state and
 *    return. */
#include "uphttp.h"

#include <curl/curl.h> /* struct curl_slist only: the forwarded header list's type; no libcurl call here */
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "error.h"

#define HEAD_MAX (256 * 1024)    /* response header block, all interim responses included */
#define TRAILER_MAX (256 * 1024) /* trailer fields and chunk extensions, read and dropped */
#define REQ_MAX (512 * 1024)     /* request head: target and headers are bounded by the client side's limits */
#define KEEP_BUF (8 * 1024)      /* pooled fetches keep buffers up to this size */
#define FETCH_POOL 256           /* fetch objects kept per loop: no allocation per exchange up to this many at once */
#define IDLE_PER_ORIGIN 256      /* enough for 256 exchanges at once without reconnecting (libcurl's cache: 256) */
#define IDLE_MS 30000            /* an idle connection is closed after this */
#define DNS_TTL_MS 60000         /* resolved addresses are kept this long (libcurl's default too) */
#define MAX_ORIGINS 64           /* more distinct upstreams than this go through libcurl */
#define MAX_ADDRS 8

/* Circular intrusive lists: a node unlinks itself without knowing its list,
 * and an unlinked node points at itself. */
struct link {
  struct link *prev, *next;
};
#define OWNER(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

static void link_init(struct link *l) { l->prev = l->next = l; }
static int link_empty(const struct link *l) { return l->next == l; }
static void link_remove(struct link *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  link_init(l);
}
static void link_append(struct link *head, struct link *l) {
  l->prev = head->prev;
  l->next = head;
  head->prev->next = l;
  head->prev = l;
}
static void link_push(struct link *head, struct link *l) {
  l->prev = head;
  l->next = head->next;
  head->next->prev = l;
  head->next = l;
}

struct resolve;

/* One upstream host and port: its addresses and its idle connections. */
struct origin {
  char *key; /* the URL's authority bytes, as written */
  size_t key_len;
  char host[256];
  char hosthdr[264];
  uint16_t port;
  int literal; /* an IP address: addr[0] never expires */
  struct sockaddr_storage addr[MAX_ADDRS];
  int n_addr;
  int preferred; /* the address that connected last: tried first */
  uint64_t expires_ms;
  struct resolve *resolving;
  struct link waiters; /* fetches waiting for the name */
  struct link idle;    /* idle connections, most recently used first */
  int n_idle;
};

struct resolve {
  uv_getaddrinfo_t req;
  struct origin *o; /* NULL once the client is gone: the callback only frees */
};

enum conn_state { C_CONNECTING, C_ACTIVE, C_IDLE, C_CLOSING };

struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  llhttp_t parser;
  struct pc_uphttp *h;
  struct origin *o;
  struct pc_uphttp_fetch *f; /* the exchange it serves (C_CONNECTING, C_ACTIVE) */
  enum conn_state state;
  int addr_i;  /* which of the origin's addresses */
  int attempt; /* how many of them this fetch tried before */
  int reused;  /* it served an exchange before the current one */
  int writing; /* a uv_write is pending */
  int broken;  /* never to be reused */
  uint64_t idle_since;
  struct link olink; /* origin->idle */
  struct link ilink; /* h->idle */
};

enum fetch_state { F_FREE, F_RESOLVE, F_CONNECT, F_EXCHANGE, F_DONE };

struct pc_uphttp_fetch {
  struct pc_fetch_tag tag; /* first: upstream.c reads it through struct pc_fetch */
  enum fetch_state state;
  struct pc_uphttp *h;
  struct origin *o;
  struct conn *c;
  const struct pc_fetch_ops *ops;
  void *ud;
  const char *body; /* the caller's, valid until on_done or abort */
  size_t body_len;
  pc_buf req;  /* request head, kept for the retry */
  pc_buf head; /* header lines of the response being received */
  z_stream *z;
  enum pc_uphttp_coding coding;
  int status;
  int rc;        /* the error a parser callback found */
  int busy;      /* inside feed(): an abort leaves the freeing to it */
  size_t hbytes; /* status lines and header bytes read, interim responses too */
  size_t tbytes; /* trailer and chunk-extension bytes */
  size_t line;   /* offset in head of the header line being received */
  size_t value;  /* offset in head of its value */
  size_t name_len;
  uint64_t start_ns, end_ns;
  uint64_t deadline_ms, connect_deadline_ms;
  int addr_first; /* the address its first connect attempt went to */
  unsigned char method_head, connected, got_bytes, retried, in_field, in_body, interim, framed, complete, keep_alive,
      aborted, zraw, zdone, zfed;
  struct link all;  /* h->fetches: the whole-exchange deadline */
  struct link ct;   /* h->connecting: the connect deadline (F_RESOLVE, F_CONNECT) */
  struct link wait; /* origin->waiters (F_RESOLVE) */
  struct pc_uphttp_fetch *next_free;
};

struct pc_uphttp {
  uv_loop_t *loop;
  const struct pc_config *cfg;
  uv_timer_t timer;
  uint64_t due;           /* loop time the timer fires at; 0: stopped */
  struct link fetches;    /* by start: whole-exchange deadlines grow along it */
  struct link connecting; /* by connect start: so do connect deadlines */
  struct link idle;       /* by idle time */
  struct origin *origins[MAX_ORIGINS];
  int n_origins;
  struct pc_uphttp_fetch *free;
  int n_free;
  int closing;
  char rbuf[64 * 1024];          /* every read lands here: reads are handled one at a time */
  unsigned char zout[16 * 1024]; /* decoded bytes, handed on before the next inflate */
};

/* ---- pure parts ---- */

static int host_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
         ch == '_';
}

/* The authority and the target of an http:// URL, without copying. */
static int split_url(const char *url, const char **auth, size_t *alen, const char **target, size_t *tlen) {
  if (strncmp(url, "http://", 7)) return PC_EINVAL;
  const char *a = url + 7, *p = a;
  while (*p && *p != '/' && *p != '?' && *p != '#') p++;
  if (p == a) return PC_EINVAL;
  *auth = a;
  *alen = (size_t)(p - a);
  *target = p;
  *tlen = strcspn(p, "#");
  return 0;
}

static int parse_port(const char *p, size_t n, uint16_t *port) {
  unsigned v = 0;
  if (n == 0 || n > 5) return PC_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return PC_EINVAL;
    v = v * 10 + (unsigned)(p[i] - '0');
  }
  if (v == 0 || v > 65535) return PC_EINVAL;
  *port = (uint16_t)v;
  return 0;
}

/* host[:port] or [v6][:port] into out->host and out->port. */
static int parse_authority(const char *a, size_t n, struct pc_uphttp_url *out, int *bracketed) {
  const char *host = a, *end = a + n, *colon;
  size_t hl;
  *bracketed = a[0] == '[';
  if (*bracketed) {
    const char *rb = memchr(a, ']', n);
    if (!rb) return PC_EINVAL;
    host = a + 1;
    hl = (size_t)(rb - host);
    colon = rb + 1 < end ? rb + 1 : NULL;
    if (colon && *colon != ':') return PC_EINVAL;
    for (size_t i = 0; i < hl; i++)
      if (!((host[i] >= '0' && host[i] <= '9') || (host[i] >= 'a' && host[i] <= 'f') ||
            (host[i] >= 'A' && host[i] <= 'F') || host[i] == ':' || host[i] == '.'))
        return PC_EINVAL; /* zone ids and the like: libcurl's business */
  } else {
    colon = memchr(a, ':', n);
    hl = colon ? (size_t)(colon - a) : n;
    for (size_t i = 0; i < hl; i++)
      if (!host_char(host[i])) return PC_EINVAL; /* user info, odd names: libcurl's business */
  }
  if (hl == 0 || hl >= sizeof out->host) return PC_EINVAL;
  memcpy(out->host, host, hl);
  out->host[hl] = '\0';
  out->port = 80;
  return colon ? parse_port(colon + 1, (size_t)(end - colon - 1), &out->port) : 0;
}

int pc_uphttp_parse_url(const char *url, struct pc_uphttp_url *out) {
  int bracketed;
  int rc = split_url(url, &out->authority, &out->authority_len, &out->target, &out->target_len);
  if (!rc) rc = parse_authority(out->authority, out->authority_len, out, &bracketed);
  if (rc) return rc;
  /* Host: as libcurl sends it, the default port left out */
  pc_buf hh;
  pc_buf_init(&hh, sizeof out->hosthdr - 1);
  if (bracketed) rc = pc_buf_putc(&hh, '[');
  if (!rc) rc = pc_buf_puts(&hh, out->host);
  if (!rc && bracketed) rc = pc_buf_putc(&hh, ']');
  if (!rc && out->port != 80) rc = pc_buf_putc(&hh, ':');
  if (!rc && out->port != 80) rc = pc_buf_put_u64(&hh, out->port);
  if (!rc) memcpy(out->hosthdr, hh.data, hh.len + 1);
  pc_buf_free(&hh);
  return rc ? PC_EINVAL : 0;
}

int pc_uphttp_parse_coding(const char *v, size_t n, enum pc_uphttp_coding *coding) {
  size_t i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t s = i;
    while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t') i++;
    size_t l = i - s;
    const char *t = v + s;
    enum pc_uphttp_coding c;
    if (l == 0 || (l == 8 && !strncasecmp(t, "identity", 8))) continue;
    if ((l == 4 && !strncasecmp(t, "gzip", 4)) || (l == 6 && !strncasecmp(t, "x-gzip", 6)))
      c = PC_CODING_GZIP;
    else if (l == 7 && !strncasecmp(t, "deflate", 7))
      c = PC_CODING_DEFLATE;
    else
      return PC_EPROTO;
    if (*coding != PC_CODING_IDENTITY) return PC_EPROTO; /* stacked codings: not worth a second decoder */
    *coding = c;
  }
  return 0;
}

/* One forwarded header: "Name: value" as is, "Name;" with an empty value,
 * "Name:" (libcurl's "no default") not at all. */
static int put_header(pc_buf *b, const char *s) {
  size_t n = strlen(s);
  const char *colon = memchr(s, ':', n);
  int rc;
  if (!colon) {
    if (!n || s[n - 1] != ';') return 0;
    rc = pc_buf_append(b, s, n - 1);
    return rc ? rc : pc_buf_append(b, ":\r\n", 3);
  }
  const char *v = colon + 1;
  while (*v == ' ' || *v == '\t') v++;
  if (!*v) return 0;
  rc = pc_buf_append(b, s, n);
  return rc ? rc : pc_buf_append(b, "\r\n", 2);
}

int pc_uphttp_request_head(pc_buf *out, const char *method, const char *target, size_t target_len, const char *hosthdr,
                           const struct curl_slist *headers, long long clen) {
  pc_buf_reset(out);
  int rc = pc_buf_puts(out, method);
  if (!rc) rc = pc_buf_putc(out, ' ');
  if (!rc && (!target_len || target[0] != '/')) rc = pc_buf_putc(out, '/');
  if (!rc) rc = pc_buf_append(out, target, target_len);
  if (!rc) rc = pc_buf_append(out, " HTTP/1.1\r\nHost: ", 17);
  if (!rc) rc = pc_buf_puts(out, hosthdr);
  if (!rc) rc = pc_buf_append(out, "\r\n", 2);
  for (const struct curl_slist *l = headers; l && !rc; l = l->next) rc = put_header(out, l->data);
  if (!rc && clen >= 0) rc = pc_buf_append(out, "Content-Length: ", 16);
  if (!rc && clen >= 0) rc = pc_buf_put_u64(out, (unsigned long long)clen);
  if (!rc && clen >= 0) rc = pc_buf_append(out, "\r\n", 2);
  if (!rc) rc = pc_buf_append(out, "\r\n", 2);
  return rc;
}

/* ---- the timer: connect deadlines, whole-exchange deadlines, idle connections ---- */

static void on_timer(uv_timer_t *t);

/* Make the timer fire by `at` (loop time, ms). Deadlines are appended in
 * growing order, so the timer only ever moves earlier here; on_timer
 * re-arms it from the lists' heads. */
static void arm(struct pc_uphttp *h, uint64_t at) {
  if (h->closing || (h->due && h->due <= at)) return;
  uint64_t now = uv_now(h->loop);
  uv_timer_start(&h->timer, on_timer, at > now ? at - now : 0, 0);
  h->due = at;
}

static void rearm(struct pc_uphttp *h) {
  uint64_t at = 0;
  if (!link_empty(&h->idle)) at = OWNER(h->idle.next, struct conn, ilink)->idle_since + IDLE_MS;
  if (!link_empty(&h->connecting)) {
    uint64_t d = OWNER(h->connecting.next, struct pc_uphttp_fetch, ct)->connect_deadline_ms;
    if (!at || d < at) at = d;
  }
  if (!link_empty(&h->fetches)) {
    uint64_t d = OWNER(h->fetches.next, struct pc_uphttp_fetch, all)->deadline_ms;
    if (!at || d < at) at = d;
  }
  if (at) arm(h, at);
}

/* ---- connections ---- */

/* The one place a connection changes state. An idle one is in two lists:
 * its origin's (reused last in, first out) and the loop's (closed first in,
 * first out, when it has been idle too long). */
static void conn_state(struct conn *c, enum conn_state s) {
  struct pc_uphttp *h = c->h;
  if (c->state == C_IDLE && s != C_IDLE) {
    link_remove(&c->olink);
    link_remove(&c->ilink);
    c->o->n_idle--;
  }
  if (s == C_IDLE && c->state != C_IDLE) {
    c->idle_since = uv_now(h->loop);
    link_push(&c->o->idle, &c->olink);
    link_append(&h->idle, &c->ilink);
    c->o->n_idle++;
    arm(h, c->idle_since + IDLE_MS);
  }
  c->state = s;
}

static void conn_closed(uv_handle_t *hd) { free(hd->data); }

static void conn_close(struct conn *c) {
  if (c->state == C_CLOSING) return;
  conn_state(c, C_CLOSING);
  c->f = NULL;
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* After a complete response with keep-alive: back to the origin's pool,
 * still read, so that the peer closing it is noticed at once. */
static void conn_idle(struct conn *c) {
  if (c->h->closing || c->o->n_idle >= IDLE_PER_ORIGIN) {
    conn_close(c);
    return;
  }
  c->f = NULL;
  c->reused = 1;
  conn_state(c, C_IDLE);
}

static struct conn *conn_take_idle(struct origin *o) {
  if (link_empty(&o->idle)) return NULL;
  struct conn *c = OWNER(o->idle.next, struct conn, olink);
  conn_state(c, C_ACTIVE);
  return c;
}

static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *b) {
  struct conn *c = hd->data;
  b->base = c->h->rbuf;
  b->len = sizeof c->h->rbuf;
}

/* ---- fetch lifetime ---- */

static void fetch_state(struct pc_uphttp_fetch *f, enum fetch_state s) {
  int was = f->state == F_RESOLVE || f->state == F_CONNECT;
  int now = s == F_RESOLVE || s == F_CONNECT;
  if (now && !was) {
    f->connect_deadline_ms = uv_now(f->h->loop) + (uint64_t)f->h->cfg->connect_timeout_ms;
    link_append(&f->h->connecting, &f->ct);
    arm(f->h, f->connect_deadline_ms);
  }
  if (!now) link_remove(&f->ct);
  if (s != F_RESOLVE) link_remove(&f->wait);
  if (s == F_DONE || s == F_FREE) link_remove(&f->all);
  f->state = s;
}

static struct pc_uphttp_fetch *fetch_get(struct pc_uphttp *h) {
  struct pc_uphttp_fetch *f = h->free;
  pc_buf req, head;
  if (f) {
    h->free = f->next_free;
    h->n_free--;
    req = f->req;
    head = f->head;
  } else {
    f = malloc(sizeof *f);
    if (!f) return NULL;
    pc_buf_init(&req, REQ_MAX);
    pc_buf_init(&head, HEAD_MAX);
  }
  memset(f, 0, sizeof *f);
  f->tag.via = PC_VIA_UPHTTP;
  f->h = h;
  f->req = req;
  f->head = head;
  pc_buf_reset(&f->head);
  link_init(&f->all);
  link_init(&f->ct);
  link_init(&f->wait);
  return f;
}

static void decoder_end(struct pc_uphttp_fetch *f) {
  if (!f->z) return;
  inflateEnd(f->z);
  free(f->z);
  f->z = NULL;
}

static void fetch_release(struct pc_uphttp_fetch *f) {
  struct pc_uphttp *h = f->h;
  decoder_end(f);
  fetch_state(f, F_FREE);
  if (h->closing || h->n_free >= FETCH_POOL) {
    pc_buf_free(&f->req);
    pc_buf_free(&f->head);
    free(f);
    return;
  }
  if (f->req.cap > KEEP_BUF) pc_buf_free(&f->req);
  if (f->head.cap > KEEP_BUF) pc_buf_free(&f->head);
  f->next_free = h->free;
  h->free = f;
  h->n_free++;
}

static void fetch_drop_conn(struct pc_uphttp_fetch *f) {
  if (!f->c) return;
  conn_close(f->c);
  f->c = NULL;
}

/* The end: on_done last (see the top of the file). */
static void fetch_end(struct pc_uphttp_fetch *f, int rc) {
  fetch_state(f, F_DONE);
  f->end_ns = uv_hrtime();
  f->ops->on_done(f->ud, rc);
  fetch_release(f);
}

static void fail(struct pc_uphttp_fetch *f, int rc) {
  fetch_drop_conn(f);
  fetch_end(f, rc);
}

/* A connect that cannot even start: reported from the timer (next loop
 * iteration), since this may run inside pc_uphttp_fetch. Moved to the head
 * of the connect list with an expired deadline, which keeps the list in
 * deadline order. */
static void give_up_soon(struct pc_uphttp_fetch *f) {
  fetch_drop_conn(f);
  fetch_state(f, F_CONNECT);
  link_remove(&f->ct);
  f->connect_deadline_ms = uv_now(f->h->loop);
  link_push(&f->h->connecting, &f->ct);
  arm(f->h, f->connect_deadline_ms);
}

/* ---- sending ---- */

static void exchange_start(struct pc_uphttp_fetch *f, struct conn *c);
static void fetch_connect(struct pc_uphttp_fetch *f);

/* A reused connection that fails before any byte of the response came was
 * most likely closed by the server while idle: once, on a fresh one. */
static int can_retry(const struct pc_uphttp_fetch *f) { return f->c && f->c->reused && !f->got_bytes && !f->retried; }

static void retry(struct pc_uphttp_fetch *f) {
  fetch_drop_conn(f);
  f->retried = 1;
  f->hbytes = 0;
  pc_buf_reset(&f->head);
  fetch_connect(f);
}

static void send_failed(struct pc_uphttp_fetch *f) {
  f->c->broken = 1;
  if (f->got_bytes) return; /* an answer is arriving anyway: the read side ends it */
  if (can_retry(f))
    retry(f);
  else
    fail(f, PC_EUPPROTO);
}

static void write_cb(uv_write_t *w, int status) {
  struct conn *c = w->data;
  c->writing = 0;
  if (c->state != C_ACTIVE || !c->f) return;
  if (status) send_failed(c->f);
}

/* Head and body in one try_write (one writev); whatever the socket did not
 * take goes to a uv_write. */
static void send_request(struct pc_uphttp_fetch *f) {
  struct conn *c = f->c;
  uv_buf_t b[2];
  unsigned nb = f->body_len ? 2 : 1, i = 0;
  b[0].base = f->req.data;
  b[0].len = f->req.len;
  b[1].base = (char *)(uintptr_t)f->body;
  b[1].len = f->body_len;
  int n = uv_try_write((uv_stream_t *)&c->tcp, b, nb);
  if (n < 0 && n != UV_EAGAIN) {
    send_failed(f);
    return;
  }
  size_t done = n > 0 ? (size_t)n : 0;
  while (i < nb && done >= b[i].len) done -= b[i++].len;
  if (i == nb) return;
  b[i].base += done;
  b[i].len -= done;
  c->wreq.data = c;
  c->writing = 1;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, b + i, nb - i, write_cb)) {
    c->writing = 0;
    send_failed(f);
  }
}

/* ---- receiving ---- */

static void exchange_end(struct pc_uphttp_fetch *f, int reusable) {
  struct conn *c = f->c;
  int rc = f->zfed && !f->zdone ? PC_EUPPROTO : 0; /* a compressed body must reach its end */
  f->c = NULL;
  c->f = NULL;
  if (!rc && reusable && f->keep_alive && !c->writing && !c->broken)
    conn_idle(c);
  else
    conn_close(c);
  fetch_end(f, rc);
}

static void feed(struct pc_uphttp_fetch *f, struct conn *c, const char *p, size_t n) {
  f->got_bytes = 1;
  f->busy++;
  llhttp_errno_t err = llhttp_execute(&c->parser, p, n);
  f->busy--;
  if (f->aborted) {
    fetch_release(f);
    return;
  }
  if (err == HPE_OK) return;
  if (err == HPE_PAUSED && f->complete) {
    exchange_end(f, llhttp_get_error_pos(&c->parser) == p + n); /* bytes after the answer: not reusable */
    return;
  }
  fail(f, f->rc ? f->rc : PC_EUPPROTO);
}

/* The server closed: the end of a body read until close, or a cut. */
static void eof(struct pc_uphttp_fetch *f, struct conn *c) {
  if (!f->got_bytes) {
    if (can_retry(f))
      retry(f);
    else
      fail(f, PC_EUPPROTO);
    return;
  }
  f->busy++;
  llhttp_errno_t err = llhttp_finish(&c->parser);
  f->busy--;
  if (f->aborted) {
    fetch_release(f);
    return;
  }
  c->broken = 1;
  if ((err == HPE_OK || err == HPE_PAUSED) && f->complete)
    exchange_end(f, 0);
  else
    fail(f, f->rc ? f->rc : PC_EUPPROTO);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct conn *c = s->data;
  if (n == 0) return;
  if (c->state != C_ACTIVE || !c->f) { /* idle: a byte or EOF means the server is done with it */
    conn_close(c);
    return;
  }
  struct pc_uphttp_fetch *f = c->f;
  if (n > 0)
    feed(f, c, b->base, (size_t)n);
  else if (n == UV_EOF)
    eof(f, c);
  else if (can_retry(f))
    retry(f);
  else
    fail(f, PC_EUPPROTO);
}

/* ---- llhttp callbacks (response mode) ---- */

static struct pc_uphttp_fetch *of(llhttp_t *p) { return p->data; }

static int bad(struct pc_uphttp_fetch *f) {
  if (!f->rc) f->rc = PC_EUPPROTO;
  return -1;
}

static int count_head(struct pc_uphttp_fetch *f, size_t n) {
  f->hbytes += n;
  return f->hbytes > HEAD_MAX ? bad(f) : 0;
}

static int count_trailer(struct pc_uphttp_fetch *f, size_t n) {
  f->tbytes += n;
  return f->tbytes > TRAILER_MAX ? bad(f) : 0;
}

static int cb_status(llhttp_t *p, const char *at, size_t n) { return count_head(of(p), n); }

static int cb_header_field(llhttp_t *p, const char *at, size_t n) {
  struct pc_uphttp_fetch *f = of(p);
  if (f->in_body) return count_trailer(f, n);
  if (count_head(f, n)) return -1;
  if (!f->in_field) {
    f->in_field = 1;
    f->line = f->head.len;
  }
  return pc_buf_append(&f->head, at, n) ? bad(f) : 0;
}

static int cb_header_field_complete(llhttp_t *p) {
  struct pc_uphttp_fetch *f = of(p);
  if (f->in_body) return 0;
  f->in_field = 0;
  f->name_len = f->head.len - f->line;
  if (pc_buf_append(&f->head, ": ", 2)) return bad(f);
  f->value = f->head.len;
  return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t n) {
  struct pc_uphttp_fetch *f = of(p);
  if (f->in_body) return count_trailer(f, n);
  if (count_head(f, n)) return -1;
  return pc_buf_append(&f->head, at, n) ? bad(f) : 0;
}

static int cb_header_value_complete(llhttp_t *p) {
  struct pc_uphttp_fetch *f = of(p);
  pc_buf *b = &f->head;
  if (f->in_body) return 0;
  while (b->len > f->value && (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\t')) b->len--;
  if (f->name_len == 16 && !strncasecmp(b->data + f->line, "content-encoding", 16) &&
      pc_uphttp_parse_coding(b->data + f->value, b->len - f->value, &f->coding))
    return bad(f);
  return pc_buf_append(b, "\r\n", 2) ? bad(f) : 0;
}

static int cb_chunk_ext(llhttp_t *p, const char *at, size_t n) { return count_trailer(of(p), n); }

/* The body is decoded here, so what was said about its encoding and length
 * goes: header lines other than Content-Encoding and Content-Length stay,
 * in order. */
static void drop_coding_lines(pc_buf *b) {
  size_t r = 0, w = 0;
  while (r < b->len) {
    const char *s = b->data + r;
    const char *nl = memchr(s, '\n', b->len - r);
    size_t n = nl ? (size_t)(nl - s) + 1 : b->len - r;
    int drop =
        (n > 17 && !strncasecmp(s, "content-encoding:", 17)) || (n > 15 && !strncasecmp(s, "content-length:", 15));
    if (!drop) memmove(b->data + w, s, n);
    if (!drop) w += n;
    r += n;
  }
  b->len = w;
  if (b->data) b->data[w] = '\0';
}

static int decoder_start(struct pc_uphttp_fetch *f) {
  drop_coding_lines(&f->head);
  f->z = calloc(1, sizeof *f->z);
  if (!f->z) return PC_ENOMEM;
  /* gzip: the gzip wrapper; deflate: the zlib wrapper (raw deflate is tried when that fails, see inflate_body) */
  if (inflateInit2(f->z, f->coding == PC_CODING_GZIP ? 15 + 16 : 15) != Z_OK) {
    free(f->z);
    f->z = NULL;
    return PC_ENOMEM;
  }
  return 0;
}

/* 1xx: interim (100 Continue, 103 Early Hints): its lines are forgotten and
 * the final response follows. HEAD, 204 and 304 have no body whatever their
 * headers say (returning 1 tells llhttp so). */
static int cb_headers_complete(llhttp_t *p) {
  struct pc_uphttp_fetch *f = of(p);
  int status = p->status_code;
  if (f->in_body) return 0;
  if (status < 200) {
    if (status == 101) return bad(f); /* nothing asked to switch protocols */
    pc_buf_reset(&f->head);
    f->coding = PC_CODING_IDENTITY;
    f->interim = 1;
    return 1;
  }
  /* a transfer coding other than chunked last: nothing here would undo it */
  if ((p->flags & F_TRANSFER_ENCODING) && !(p->flags & F_CHUNKED)) return bad(f);
  int nobody = f->method_head || status == 204 || status == 304;
  f->status = status;
  f->in_body = 1;
  f->framed = nobody || (p->flags & (F_CHUNKED | F_CONTENT_LENGTH));
  if (f->coding != PC_CODING_IDENTITY && !nobody && decoder_start(f)) return bad(f);
  f->ops->on_head(f->ud, status, f->head.data ? f->head.data : "", f->head.len);
  if (f->aborted) return -1;
  return nobody ? 1 : 0;
}

static int inflate_body(struct pc_uphttp_fetch *f, const char *at, size_t n) {
  z_stream *z = f->z;
  unsigned char *out = f->h->zout;
  if (f->zdone) return 0; /* after the end of the compressed data (junk, a second member): not body */
  int first = !f->zfed;
  f->zfed = 1;
  z->next_in = (Bytef *)(uintptr_t)at;
  z->avail_in = (uInt)n;
  while (z->avail_in || !z->avail_out) {
    z->next_out = out;
    z->avail_out = sizeof f->h->zout;
    int zrc = inflate(z, Z_NO_FLUSH);
    if (zrc == Z_DATA_ERROR && first && f->coding == PC_CODING_DEFLATE && !f->zraw && !z->total_out) {
      /* "deflate" without the zlib wrapper, as some servers send it */
      f->zraw = 1;
      if (inflateReset2(z, -15) != Z_OK) return bad(f);
      z->next_in = (Bytef *)(uintptr_t)at;
      z->avail_in = (uInt)n;
      continue;
    }
    if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR) return bad(f);
    size_t got = sizeof f->h->zout - z->avail_out;
    if (got) f->ops->on_body(f->ud, (const char *)out, got);
    if (f->aborted) return -1;
    if (zrc == Z_STREAM_END) {
      f->zdone = 1;
      return 0;
    }
    if (zrc == Z_BUF_ERROR) return 0; /* everything taken; more input needed */
  }
  return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t n) {
  struct pc_uphttp_fetch *f = of(p);
  if (f->z) return inflate_body(f, at, n);
  f->ops->on_body(f->ud, at, n);
  return f->aborted ? -1 : 0;
}

/* The final response is complete: pause, so that feed() sees where it ended
 * (bytes after it mean the connection cannot be reused). */
static int cb_message_complete(llhttp_t *p) {
  struct pc_uphttp_fetch *f = of(p);
  if (f->interim) {
    f->interim = 0;
    return 0;
  }
  f->complete = 1;
  f->keep_alive = llhttp_should_keep_alive(p) != 0;
  return HPE_PAUSED;
}

/* Shared by every loop and never written. */
static const llhttp_settings_t settings = {
    .on_status = cb_status,
    .on_header_field = cb_header_field,
    .on_header_field_complete = cb_header_field_complete,
    .on_header_value = cb_header_value,
    .on_header_value_complete = cb_header_value_complete,
    .on_chunk_extension_name = cb_chunk_ext,
    .on_chunk_extension_value = cb_chunk_ext,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

/* ---- connecting ---- */

static void exchange_start(struct pc_uphttp_fetch *f, struct conn *c) {
  fetch_state(f, F_EXCHANGE);
  f->c = c;
  f->connected = 1;
  c->f = f;
  conn_state(c, C_ACTIVE);
  llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
  c->parser.data = f;
  send_request(f);
}

static void conn_open(struct pc_uphttp_fetch *f, int attempt);

/* Refused, unreachable, reset: the next address, or give up. */
static void connect_failed(struct pc_uphttp_fetch *f, int attempt) {
  fetch_drop_conn(f);
  conn_open(f, attempt + 1);
}

static void connect_cb(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  if (c->state != C_CONNECTING) return; /* closed meanwhile (abort, timeout) */
  struct pc_uphttp_fetch *f = c->f;
  if (!status) status = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  if (status) {
    connect_failed(f, c->attempt);
    return;
  }
  c->o->preferred = c->addr_i;
  exchange_start(f, c);
}

/* Attempt `attempt` goes to the origin's addresses in turn, from the one
 * that worked last. */
static void conn_open(struct pc_uphttp_fetch *f, int attempt) {
  struct pc_uphttp *h = f->h;
  struct origin *o = f->o;
  struct conn *c = attempt < o->n_addr ? calloc(1, sizeof *c) : NULL;
  if (!c || uv_tcp_init(h->loop, &c->tcp)) {
    free(c);
    give_up_soon(f);
    return;
  }
  fetch_state(f, F_CONNECT);
  if (attempt == 0) f->addr_first = o->preferred < o->n_addr ? o->preferred : 0;
  c->tcp.data = c;
  c->creq.data = c;
  c->h = h;
  c->o = o;
  c->f = f;
  c->attempt = attempt;
  c->addr_i = (f->addr_first + attempt) % o->n_addr;
  c->state = C_CONNECTING;
  link_init(&c->olink);
  link_init(&c->ilink);
  f->c = c;
  uv_tcp_nodelay(&c->tcp, 1); /* applied when the socket is created */
  if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&o->addr[c->addr_i], connect_cb))
    connect_failed(f, attempt);
}

static void resolve_start(struct pc_uphttp *h, struct origin *o);

static void fetch_connect(struct pc_uphttp_fetch *f) {
  struct origin *o = f->o;
  if (o->n_addr && (o->literal || uv_now(f->h->loop) < o->expires_ms)) {
    conn_open(f, 0);
    return;
  }
  fetch_state(f, F_RESOLVE);
  link_append(&o->waiters, &f->wait);
  if (!o->resolving) resolve_start(f->h, o);
}

/* ---- names ---- */

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct resolve *r = OWNER(req, struct resolve, req);
  struct origin *o = r->o;
  uv_loop_t *loop = req->loop;
  free(r);
  if (!o) { /* the client is gone */
    uv_freeaddrinfo(res);
    return;
  }
  o->resolving = NULL;
  o->n_addr = 0;
  for (struct addrinfo *ai = status ? NULL : res; ai && o->n_addr < MAX_ADDRS; ai = ai->ai_next)
    if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) && ai->ai_addrlen <= sizeof o->addr[0])
      memcpy(&o->addr[o->n_addr++], ai->ai_addr, ai->ai_addrlen);
  uv_freeaddrinfo(res);
  if (o->n_addr) o->expires_ms = uv_now(loop) + DNS_TTL_MS;
  /* Take the waiters out first: a callback below may add new ones (to a
   * new lookup) or abort some (they unlink themselves from `pending`). */
  struct link pending;
  link_init(&pending);
  if (!link_empty(&o->waiters)) {
    pending.next = o->waiters.next;
    pending.prev = o->waiters.prev;
    pending.next->prev = &pending;
    pending.prev->next = &pending;
    link_init(&o->waiters);
  }
  while (!link_empty(&pending)) {
    struct pc_uphttp_fetch *f = OWNER(pending.next, struct pc_uphttp_fetch, wait);
    link_remove(&f->wait);
    if (o->n_addr)
      conn_open(f, 0);
    else
      fail(f, PC_EUPCONNECT);
  }
}

static void resolve_start(struct pc_uphttp *h, struct origin *o) {
  struct resolve *r = calloc(1, sizeof *r);
  struct addrinfo hints;
  char port[8];
  size_t k = sizeof port;
  port[--k] = '\0';
  for (unsigned v = o->port; v; v /= 10) port[--k] = (char)('0' + v % 10);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (r && !uv_getaddrinfo(h->loop, &r->req, resolved, o->host, port + k, &hints)) {
    r->o = o;
    o->resolving = r;
    return;
  }
  free(r);
  while (!link_empty(&o->waiters)) { /* reported from the timer: we may be inside pc_uphttp_fetch */
    struct pc_uphttp_fetch *f = OWNER(o->waiters.next, struct pc_uphttp_fetch, wait);
    give_up_soon(f);
  }
}

static struct origin *origin_new(struct pc_uphttp *h, const char *url) {
  struct pc_uphttp_url u;
  if (h->n_origins >= MAX_ORIGINS || pc_uphttp_parse_url(url, &u)) return NULL;
  struct origin *o = calloc(1, sizeof *o);
  if (!o || !(o->key = malloc(u.authority_len))) {
    free(o);
    return NULL;
  }
  memcpy(o->key, u.authority, u.authority_len);
  o->key_len = u.authority_len;
  memcpy(o->host, u.host, sizeof o->host);
  memcpy(o->hosthdr, u.hosthdr, sizeof o->hosthdr);
  o->port = u.port;
  link_init(&o->waiters);
  link_init(&o->idle);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&o->addr[0];
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&o->addr[0];
  if (!uv_ip4_addr(o->host, o->port, v4) || (strchr(o->host, ':') && !uv_ip6_addr(o->host, o->port, v6))) {
    o->literal = 1;
    o->n_addr = 1;
  }
  h->origins[h->n_origins++] = o;
  return o;
}

/* Configured upstreams are few: their authorities are compared as bytes,
 * and only a new one is parsed. */
static struct origin *origin_of(struct pc_uphttp *h, const char *url, const char **target, size_t *tlen) {
  const char *a;
  size_t alen;
  if (split_url(url, &a, &alen, target, tlen)) return NULL;
  for (int i = 0; i < h->n_origins; i++) {
    struct origin *o = h->origins[i];
    if (o->key_len == alen && !memcmp(o->key, a, alen)) return o;
  }
  return origin_new(h, url);
}

/* ---- the timer ---- */

static void on_timer(uv_timer_t *t) {
  struct pc_uphttp *h = t->data;
  uint64_t now = uv_now(h->loop);
  h->due = 0;
  while (!h->closing && !link_empty(&h->idle)) {
    struct conn *c = OWNER(h->idle.next, struct conn, ilink);
    if (c->idle_since + IDLE_MS > now) break;
    conn_close(c);
  }
  while (!h->closing && !link_empty(&h->connecting)) {
    struct pc_uphttp_fetch *f = OWNER(h->connecting.next, struct pc_uphttp_fetch, ct);
    if (f->connect_deadline_ms > now) break;
    fail(f, PC_EUPCONNECT);
  }
  while (!h->closing && !link_empty(&h->fetches)) {
    struct pc_uphttp_fetch *f = OWNER(h->fetches.next, struct pc_uphttp_fetch, all);
    if (f->deadline_ms > now) break;
    fail(f, f->connected ? PC_EUPTIMEOUT : PC_EUPCONNECT);
  }
  rearm(h);
}

/* ---- the interface ---- */

int pc_uphttp_create(uv_loop_t *loop, const struct pc_config *cfg, struct pc_uphttp **out) {
  struct pc_uphttp *h = calloc(1, sizeof *h);
  if (!h) return PC_ENOMEM;
  h->loop = loop;
  h->cfg = cfg;
  link_init(&h->fetches);
  link_init(&h->connecting);
  link_init(&h->idle);
  if (uv_timer_init(loop, &h->timer)) {
    free(h);
    return PC_EIO;
  }
  h->timer.data = h;
  *out = h;
  return 0;
}

static void timer_closed(uv_handle_t *hd) {
  struct pc_uphttp *h = hd->data;
  for (int i = 0; i < h->n_origins; i++) {
    free(h->origins[i]->key);
    free(h->origins[i]);
  }
  free(h);
}

void pc_uphttp_destroy(struct pc_uphttp *h) {
  h->closing = 1;
  while (!link_empty(&h->fetches)) pc_uphttp_abort(OWNER(h->fetches.next, struct pc_uphttp_fetch, all));
  while (!link_empty(&h->idle)) conn_close(OWNER(h->idle.next, struct conn, ilink));
  for (int i = 0; i < h->n_origins; i++) {
    struct origin *o = h->origins[i];
    if (!o->resolving) continue;
    o->resolving->o = NULL; /* its callback will only free it */
    uv_cancel((uv_req_t *)&o->resolving->req);
    o->resolving = NULL;
  }
  while (h->free) {
    struct pc_uphttp_fetch *f = h->free;
    h->free = f->next_free;
    pc_buf_free(&f->req);
    pc_buf_free(&f->head);
    free(f);
  }
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, timer_closed);
}

int pc_uphttp_fetch(struct pc_uphttp *h, struct pc_fetch_req *req, const struct pc_fetch_ops *ops, void *ud,
                    struct pc_uphttp_fetch **out) {
  const char *target;
  size_t tlen;
  if (h->closing) return PC_ECANCELED;
  struct origin *o = origin_of(h, req->url, &target, &tlen);
  if (!o) return PC_EINVAL;
  struct pc_uphttp_fetch *f = fetch_get(h);
  if (!f) return PC_ENOMEM;
  /* A body (and its length) as libcurl sends one: never for HEAD; always
   * for POST, PUT and PATCH, even when empty. */
  const char *m = req->method;
  int head = !strcmp(m, "HEAD");
  int with_body = !head && (req->has_body || !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH"));
  int rc = pc_uphttp_request_head(&f->req, m, target, tlen, o->hosthdr, req->headers,
                                  with_body ? (long long)req->body_len : -1);
  if (rc) {
    fetch_release(f);
    return rc;
  }
  f->o = o;
  f->ops = ops;
  f->ud = ud;
  f->method_head = (unsigned char)head;
  f->body = with_body ? req->body : NULL;
  f->body_len = with_body ? req->body_len : 0;
  f->start_ns = uv_hrtime();
  f->deadline_ms = uv_now(h->loop) + (uint64_t)h->cfg->upstream_timeout_ms;
  fetch_state(f, F_EXCHANGE); /* not connecting yet: fetch_connect or exchange_start says which */
  link_append(&h->fetches, &f->all);
  arm(h, f->deadline_ms);
  struct conn *c = conn_take_idle(o);
  if (c)
    exchange_start(f, c);
  else
    fetch_connect(f);
  *out = f;
  return 0;
}

void pc_uphttp_abort(struct pc_uphttp_fetch *f) {
  if (f->aborted || f->state == F_DONE || f->state == F_FREE) return;
  f->aborted = 1;
  fetch_drop_conn(f);
  fetch_state(f, F_DONE);
  if (!f->busy) fetch_release(f);
}

int pc_uphttp_delimited(const struct pc_uphttp_fetch *f) { return f->framed; }

int64_t pc_uphttp_elapsed_us(const struct pc_uphttp_fetch *f) {
  uint64_t end = f->end_ns ? f->end_ns : uv_hrtime();
  return (int64_t)((end - f->start_ns) / 1000);
}
