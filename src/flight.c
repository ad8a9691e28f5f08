/* flight.c — one upstream exchange and its subscribers (single-flight).
 * The flight owns the request it sends, so subscribers can come and go; it
 * records the response (bytes plus chunk arrival times) so that a follower
 * joining late first receives everything already received, then each chunk
 * live; and it stores the recording when it is a complete 200 of a storable
 * request (for a stream: one that reached its terminal event). The recording
 * is bounded: past a quarter of --max-size the response is still passed on,
 * but the flight stops accepting followers and will not be stored. */
#include "flight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "cache.h"
#include "entry.h"
#include "error.h"
#include "log.h"
#include "server.h"
#include "upstream.h"
#include "writer.h"

struct pc_flight {
  struct pc_worker *w;
  struct pc_flight_req req;
  struct pc_fetch *fetch;
  struct pc_sub *subs;
  int status;
  pc_buf client_head; /* header lines passed to subscribers */
  pc_buf store_head;  /* header lines kept in the entry */
  pc_buf record;      /* body bytes, for storing */
  pc_buf chunks;      /* struct pc_chunk array */
  int over_limit;     /* recording gave up: do not store, accept no followers */
  int head_seen;
  int storing; /* waiting for the writer to commit the entry */
  int rc;
  int64_t upstream_us;
  size_t n_followers;
  struct pc_usage usage;
  uint64_t first_ns;
  struct pc_flight *next, *prev;
};

static int name_is(const char *name, size_t n, const char *lit) {
  size_t l = strlen(lit);
  return n == l && !strncasecmp(name, lit, l);
}

int pc_flight_hop_header(const char *name, size_t n) {
  static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                                    "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
                                    "content-length", "content-encoding"};
  for (size_t i = 0; i < sizeof hop / sizeof *hop; i++)
    if (name_is(name, n, hop[i])) return 1;
  return 0;
}

int pc_flight_unstored_header(const char *name, size_t n) {
  if (pc_flight_hop_header(name, n) || name_is(name, n, "set-cookie") || name_is(name, n, "date")) return 1;
  if (n >= 12 && !strncasecmp(name, "x-ratelimit-", 12)) return 1;
  if (n >= 20 && !strncasecmp(name, "anthropic-ratelimit-", 20)) return 1;
  return 0;
}

static void link_flight(struct pc_flight *f) {
  f->next = f->w->flights;
  if (f->next) f->next->prev = f;
  f->w->flights = f;
}

static void flight_free(struct pc_flight *f) {
  if (f->prev) f->prev->next = f->next;
  else f->w->flights = f->next;
  if (f->next) f->next->prev = f->prev;
  pc_buf_free(&f->req.url);
  pc_buf_free(&f->req.body);
  pc_buf_free(&f->req.material);
  pc_upstream_headers_free(f->req.headers);
  pc_buf_free(&f->client_head);
  pc_buf_free(&f->store_head);
  pc_buf_free(&f->record);
  pc_buf_free(&f->chunks);
  struct pc_worker *w = f->w;
  free(f);
  pc_server_maybe_done(w);
}

/* Split upstream header lines into what clients see and what is stored. */
static void filter_head(struct pc_flight *f, const char *h, size_t len) {
  const char *end = h + len;
  while (h < end) {
    const char *nl = memchr(h, '\n', (size_t)(end - h));
    size_t linelen = nl ? (size_t)(nl - h + 1) : (size_t)(end - h);
    const char *colon = memchr(h, ':', linelen);
    if (colon && colon > h) {
      size_t n = (size_t)(colon - h);
      size_t vlen = linelen;
      while (vlen > 0 && (h[vlen - 1] == '\n' || h[vlen - 1] == '\r')) vlen--;
      if (!pc_flight_hop_header(h, n)) {
        pc_buf_append(&f->client_head, h, vlen);
        pc_buf_puts(&f->client_head, "\r\n");
      }
      if (!pc_flight_unstored_header(h, n)) {
        pc_buf_append(&f->store_head, h, vlen);
        pc_buf_puts(&f->store_head, "\r\n");
      }
    }
    h += linelen;
  }
}

static void on_head(void *ud, int status, const char *headers, size_t len) {
  struct pc_flight *f = ud;
  f->status = status;
  f->head_seen = 1;
  filter_head(f, headers, len);
  /* a callback may make its own subscriber leave, so step with a saved next */
  for (struct pc_sub *s = f->subs, *next; s; s = next) {
    next = s->next;
    s->ops->on_head(s, status, f->client_head.data ? f->client_head.data : "", f->client_head.len);
  }
}

static void record(struct pc_flight *f, const char *p, size_t n) {
  if (!(f->req.store || f->req.coalesce) || f->over_limit) return;
  uint64_t now = uv_hrtime();
  if (!f->first_ns) f->first_ns = now;
  struct pc_chunk c;
  int rc = pc_buf_append(&f->record, p, n);
  c.end = (uint32_t)f->record.len;
  c.t_ms = (uint32_t)((now - f->first_ns) / 1000000);
  if (!rc) rc = pc_buf_append(&f->chunks, &c, sizeof c);
  if (rc) f->over_limit = 1;
}

static void on_body(void *ud, const char *p, size_t n) {
  struct pc_flight *f = ud;
  record(f, p, n);
  for (struct pc_sub *s = f->subs, *next; s; s = next) {
    next = s->next;
    s->ops->on_body(s, p, n);
  }
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int storable(const struct pc_flight *f) {
  if (f->status != 200 || !f->req.store || f->over_limit) return 0;
  if (!f->req.stream) return 1;
  return pc_sse_complete(f->req.terminal, f->record.data ? f->record.data : "", f->record.len);
}

static int is_event_stream(const pc_buf *head) {
  return head->data && strcasestr(head->data, "content-type: text/event-stream") != NULL;
}

static void finish(struct pc_flight *f) {
  while (f->subs) {
    struct pc_sub *s = f->subs;
    f->subs = s->next;
    s->flight = NULL;
    s->next = NULL;
    s->usage = f->usage;
    s->ops->on_end(s, f->rc, f->upstream_us);
  }
  flight_free(f);
}

/* The entry is committed (or could not be): now the clients may see the end
 * of the response, so that whatever a client saw complete is HIT-able. */
static void stored(void *ud, int rc) {
  struct pc_flight *f = ud;
  if (rc) {
    char hex[PC_KEY_HEX_LEN + 1];
    pc_key_hex(&f->req.key, hex);
    pc_log_warn("store failed for key %s: %s", hex, pc_strerror(rc));
  }
  f->storing = 0;
  finish(f);
}

static int encode(struct pc_flight *f, pc_buf *enc) {
  struct pc_entry e;
  pc_buf usage;
  memset(&e, 0, sizeof e);
  pc_buf_init(&usage, 512);
  pc_usage_write(&f->usage, &usage);
  e.status = f->status;
  e.created_ms = wall_ms();
  e.expires_ms = f->req.ttl_ms > 0 ? e.created_ms + f->req.ttl_ms : 0;
  e.request = (struct pc_slice){f->req.material.data, f->req.material.len};
  e.ns = (struct pc_slice){f->req.ns, strlen(f->req.ns)};
  e.route = (struct pc_slice){f->req.route, strlen(f->req.route)};
  e.path = (struct pc_slice){f->req.path, strlen(f->req.path)};
  e.model = (struct pc_slice){f->req.model, strlen(f->req.model)};
  e.headers = (struct pc_slice){f->store_head.data ? f->store_head.data : "", f->store_head.len};
  e.body = (struct pc_slice){f->record.data ? f->record.data : "", f->record.len};
  e.usage = (struct pc_slice){usage.data ? usage.data : "", usage.len};
  if (f->req.stream || is_event_stream(&f->store_head)) {
    e.flags |= PC_ENTRY_F_SSE;
    e.chunks = (const struct pc_chunk *)f->chunks.data;
    e.n_chunks = (uint32_t)(f->chunks.len / sizeof(struct pc_chunk));
  }
  int rc = pc_entry_encode(&e, enc);
  pc_buf_free(&usage);
  return rc;
}

static void on_done(void *ud, int rc) {
  struct pc_flight *f = ud;
  f->upstream_us = pc_fetch_elapsed_us(f->fetch);
  f->rc = rc;
  f->fetch = NULL;
  if (!rc && f->status == 200 && !f->over_limit && (f->req.store || f->n_followers))
    pc_usage_from_body(f->record.data ? f->record.data : "", f->record.len,
                       f->req.stream || is_event_stream(&f->client_head), &f->usage);
  if (!rc && storable(f)) {
    pc_buf enc;
    pc_buf_init(&enc, f->w->cfg->max_size);
    if (!encode(f, &enc)) {
      size_t n;
      char *p = pc_buf_steal(&enc, &n);
      f->storing = 1;
      pc_writer_put(f->w->port, f->req.key.b, p, n, stored, f);
      return;
    }
    pc_buf_free(&enc);
  }
  finish(f);
}

static const struct pc_fetch_ops fetch_ops = {on_head, on_body, on_done};

int pc_flight_start(struct pc_worker *w, struct pc_flight_req *req, struct pc_sub *sub) {
  struct pc_flight *f = calloc(1, sizeof *f);
  if (!f) return PC_ENOMEM;
  f->w = w;
  size_t limit = w->cfg->max_size / 4;
  pc_buf_init(&f->client_head, 256 * 1024);
  pc_buf_init(&f->store_head, 256 * 1024);
  pc_buf_init(&f->record, limit);
  pc_buf_init(&f->chunks, limit);
  struct pc_fetch_req fr = {.method = req->method,
                            .url = req->url.data,
                            .headers = req->headers,
                            .body = req->body.data,
                            .body_len = req->body.len,
                            .has_body = req->body.len > 0};
  f->fetch = pc_upstream_fetch(w->up, &fr, &fetch_ops, f);
  if (!f->fetch) {
    free(f);
    return PC_ENOMEM;
  }
  /* Hand-over: the flight owns the request's buffers from here on. */
  f->req = *req;
  f->req.headers = NULL; /* the fetch owns them now */
  req->headers = NULL;
  pc_buf_init(&req->url, 0);
  pc_buf_init(&req->body, 0);
  pc_buf_init(&req->material, 0);
  sub->flight = f;
  sub->next = NULL;
  f->subs = sub;
  link_flight(f);
  return 0;
}

struct pc_flight *pc_flight_find(struct pc_worker *w, const struct pc_key *key) {
  for (struct pc_flight *f = w->flights; f; f = f->next)
    if (f->req.coalesce && f->fetch && !f->over_limit && !memcmp(f->req.key.b, key->b, sizeof key->b)) return f;
  return NULL;
}

int pc_flight_join(struct pc_flight *f, struct pc_sub *sub) {
  if (f->n_followers >= f->w->cfg->max_followers) return PC_ETOOBIG;
  f->n_followers++;
  sub->flight = f;
  sub->next = f->subs;
  f->subs = sub;
  if (f->head_seen) {
    sub->ops->on_head(sub, f->status, f->client_head.data ? f->client_head.data : "", f->client_head.len);
    if (sub->flight && f->record.len) sub->ops->on_body(sub, f->record.data, f->record.len);
  }
  return 0;
}

void pc_flight_leave(struct pc_sub *sub) {
  struct pc_flight *f = sub->flight;
  if (!f) return;
  for (struct pc_sub **pp = &f->subs; *pp; pp = &(*pp)->next)
    if (*pp == sub) {
      *pp = sub->next;
      break;
    }
  sub->flight = NULL;
  sub->next = NULL;
}

void pc_flight_abort_all(struct pc_worker *w) {
  struct pc_flight *f = w->flights, *next;
  for (; f; f = next) {
    next = f->next;
    if (f->storing) continue; /* the commit is about to report back */
    if (f->fetch) pc_upstream_abort(f->fetch);
    f->fetch = NULL;
    while (f->subs) {
      struct pc_sub *s = f->subs;
      f->subs = s->next;
      s->flight = NULL;
      s->ops->on_end(s, PC_ECANCELED, 0);
    }
    flight_free(f);
  }
}
