/* flight.c — one upstream exchange and its subscribers (single-flight).
 * The flight owns the request it sends, so subscribers can come and go; it
 * records the response (bytes plus chunk arrival times) so that a follower
 * joining late first receives everything already received, then each chunk
 * live; and it stores the recording when it is a complete 200 of a storable
 * request (for a stream: one that reached its terminal event). The recording
 * is bounded: past a quarter of --max-size the response is still passed on,
 * but the flight stops accepting followers and will not be stored.
 *
 * Across workers (--workers N): every coalescable flight is in one registry
 * guarded by `xmu`. A follower on another event loop gets a remote
 * subscription (pc_rsub) that *pulls*: the leader's loop only wakes the
 * follower's loop (uv_async), which then copies, under xmu, whatever of the
 * head and recording it has not delivered yet. The leader writes the fields
 * remote followers read (status, head, record, finished) under xmu too. A
 * flight's memory lives until the leader and every remote follower have let
 * go (refs). */
#include "flight.h"
#include "clock.h"

#include <pthread.h>
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
  struct pc_flight *next, *prev; /* the leader worker's list */
  /* shared with other workers, under xmu: */
  int joinable;                  /* in the registry and still accepting followers */
  int finished;                  /* the end (rc, usage) is known and may be delivered */
  int refs;                      /* leader + remote followers */
  struct pc_rsub *remote;
  struct pc_flight *rnext, *rprev; /* registry */
};

/* A follower on another worker's loop. */
struct pc_rsub {
  struct pc_flight *f;
  struct pc_sub *sub;
  struct pc_worker *w; /* the follower's worker */
  size_t sent;         /* body bytes delivered */
  int head_done;
  struct pc_rsub *fnext;       /* in f->remote (under xmu) */
  struct pc_rsub *wnext, *wprev; /* in w->rsubs (follower's thread only) */
};

static pthread_mutex_t xmu = PTHREAD_MUTEX_INITIALIZER;
static struct pc_flight *registry;

static struct pc_flight *registry_find(const struct pc_key *key);
static int join_locked(struct pc_worker *w, struct pc_flight *f, struct pc_rsub **r);
static void join_finish(struct pc_worker *w, struct pc_flight *f, struct pc_rsub *r, struct pc_sub *sub);

static int name_is(const char *name, size_t n, const char *lit) {
  size_t l = strlen(lit);
  return n == l && !strncasecmp(name, lit, l);
}

/* Response headers never passed on: hop-by-hop ones, and the framing libcurl
 * undid (it decodes the body, so length and encoding no longer apply). */
static int hop_header(const char *name, size_t n) {
  static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                                    "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
                                    "content-length", "content-encoding"};
  for (size_t i = 0; i < sizeof hop / sizeof *hop; i++)
    if (name_is(name, n, hop[i])) return 1;
  return 0;
}

/* ... and those never stored: per-response cookies, dates, rate limits. */
static int unstored_header(const char *name, size_t n) {
  if (hop_header(name, n) || name_is(name, n, "set-cookie") || name_is(name, n, "date")) return 1;
  if (n >= 12 && !strncasecmp(name, "x-ratelimit-", 12)) return 1;
  if (n >= 20 && !strncasecmp(name, "anthropic-ratelimit-", 20)) return 1;
  return 0;
}

static void link_flight(struct pc_flight *f) {
  f->next = f->w->flights;
  if (f->next) f->next->prev = f;
  f->w->flights = f;
}

static void flight_mem_free(struct pc_flight *f) {
  pc_buf_free(&f->req.url);
  pc_buf_free(&f->req.body);
  pc_buf_free(&f->req.material);
  pc_upstream_headers_free(f->req.headers);
  pc_buf_free(&f->client_head);
  pc_buf_free(&f->store_head);
  pc_buf_free(&f->record);
  pc_buf_free(&f->chunks);
  free(f);
}

static void unregister(struct pc_flight *f) {
  if (!f->joinable && !f->rprev && registry != f) return;
  if (f->rprev) f->rprev->rnext = f->rnext;
  else if (registry == f) registry = f->rnext;
  if (f->rnext) f->rnext->rprev = f->rprev;
  f->rnext = f->rprev = NULL;
  f->joinable = 0;
}

/* Drop one reference (under xmu); returns whether the memory may be freed. */
static int unref_locked(struct pc_flight *f) { return --f->refs == 0; }

/* The leader is done with the flight. */
static void flight_free(struct pc_flight *f) {
  struct pc_worker *w = f->w;
  if (f->prev) f->prev->next = f->next;
  else w->flights = f->next;
  if (f->next) f->next->prev = f->prev;
  pthread_mutex_lock(&xmu);
  unregister(f);
  int last = unref_locked(f);
  pthread_mutex_unlock(&xmu);
  if (last) flight_mem_free(f);
  pc_server_maybe_done(w);
}

/* Wake every remote follower's loop (they pull what is new). */
static void notify_remote(struct pc_flight *f) {
  pthread_mutex_lock(&xmu);
  for (struct pc_rsub *r = f->remote; r; r = r->fnext) uv_async_send(&r->w->xnotify);
  pthread_mutex_unlock(&xmu);
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
      if (!hop_header(h, n)) {
        pc_buf_append(&f->client_head, h, vlen);
        pc_buf_puts(&f->client_head, "\r\n");
      }
      if (!unstored_header(h, n)) {
        pc_buf_append(&f->store_head, h, vlen);
        pc_buf_puts(&f->store_head, "\r\n");
      }
    }
    h += linelen;
  }
}

static void on_head(void *ud, int status, const char *headers, size_t len) {
  struct pc_flight *f = ud;
  pthread_mutex_lock(&xmu);
  f->status = status;
  f->head_seen = 1;
  filter_head(f, headers, len);
  pthread_mutex_unlock(&xmu);
  notify_remote(f);
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
  pthread_mutex_lock(&xmu);
  int rc = pc_buf_append(&f->record, p, n);
  c.end = (uint32_t)f->record.len;
  c.t_ms = (uint32_t)((now - f->first_ns) / 1000000);
  if (!rc) rc = pc_buf_append(&f->chunks, &c, sizeof c);
  if (rc) {
    f->over_limit = 1;
    unregister(f);
  }
  pthread_mutex_unlock(&xmu);
}

static void on_body(void *ud, const char *p, size_t n) {
  struct pc_flight *f = ud;
  record(f, p, n);
  if (f->remote) notify_remote(f); /* racy read is fine: a new follower pulls on join */
  for (struct pc_sub *s = f->subs, *next; s; s = next) {
    next = s->next;
    s->ops->on_body(s, p, n);
  }
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
  pthread_mutex_lock(&xmu);
  f->finished = 1;
  unregister(f);
  pthread_mutex_unlock(&xmu);
  notify_remote(f);
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
    pc_stats_store_failed();
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
  e.created_ms = pc_now_ms();
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
  pthread_mutex_lock(&xmu);
  unregister(f); /* no new followers once the exchange is over */
  pthread_mutex_unlock(&xmu);
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

/* Register a new coalescable flight, unless an identical one got there
 * first (another worker may have missed at the same moment): then join it.
 * Returns the new flight, or NULL with *joined set (or an error in *rc). */
static struct pc_flight *claim(struct pc_worker *w, const struct pc_flight_req *req, struct pc_sub *sub, int *joined,
                               int *rc) {
  struct pc_rsub *r = NULL;
  struct pc_flight *f = NULL, *other = NULL;
  *joined = 0;
  pthread_mutex_lock(&xmu);
  if (req->coalesce && (other = registry_find(&req->key)) && join_locked(w, other, &r) == 0) {
    *joined = 1;
  } else if ((f = calloc(1, sizeof *f))) {
    size_t limit = w->cfg->max_size / 4;
    f->w = w;
    pc_buf_init(&f->client_head, 256 * 1024);
    pc_buf_init(&f->store_head, 256 * 1024);
    pc_buf_init(&f->record, limit);
    pc_buf_init(&f->chunks, limit);
    f->req.key = req->key;
    f->refs = 1;
    if (req->coalesce) {
      f->joinable = 1;
      f->rnext = registry;
      if (registry) registry->rprev = f;
      registry = f;
    }
  }
  pthread_mutex_unlock(&xmu);
  if (*joined) join_finish(w, other, r, sub);
  *rc = (*joined || f) ? 0 : PC_ENOMEM;
  return f;
}

int pc_flight_start(struct pc_worker *w, struct pc_flight_req *req, struct pc_sub *sub) {
  int joined, rc;
  struct pc_flight *f = claim(w, req, sub, &joined, &rc);
  if (!f) return joined ? PC_EEXISTS : rc;
  /* Hand-over: the flight owns the request's buffers from here on. (Other
   * loops read only the head/record fields, under xmu.) */
  f->req = *req;
  req->headers = NULL;
  pc_buf_init(&req->url, 0);
  pc_buf_init(&req->body, 0);
  pc_buf_init(&req->material, 0);
  sub->flight = f;
  sub->remote = NULL;
  sub->next = NULL;
  sub->follower = 0;
  f->subs = sub;
  link_flight(f);
  struct pc_fetch_req fr = {.method = f->req.method,
                            .url = f->req.url.data,
                            .headers = f->req.headers,
                            .body = f->req.body.data,
                            .body_len = f->req.body.len,
                            .has_body = f->req.body.len > 0};
  f->fetch = pc_upstream_fetch(w->up, &fr, &fetch_ops, f);
  f->req.headers = fr.headers; /* NULL: the fetch owns them now */
  if (!f->fetch) {
    /* followers may have joined already: everyone gets the error */
    f->rc = PC_EUPCONNECT;
    finish(f);
  }
  return 0;
}

static void join_local(struct pc_flight *f, struct pc_sub *sub) {
  sub->flight = f;
  sub->remote = NULL;
  sub->next = f->subs;
  f->subs = sub;
  if (f->head_seen) {
    sub->ops->on_head(sub, f->status, f->client_head.data ? f->client_head.data : "", f->client_head.len);
    if (sub->flight && f->record.len) sub->ops->on_body(sub, f->record.data, f->record.len);
  }
}

static void rsub_unlink_worker(struct pc_rsub *r) {
  if (r->wprev) r->wprev->wnext = r->wnext;
  else r->w->rsubs = r->wnext;
  if (r->wnext) r->wnext->wprev = r->wprev;
}

/* Detach a remote follower (on its own loop); frees the flight if it was
 * the last reference. */
static void rsub_drop(struct pc_rsub *r) {
  struct pc_flight *f = r->f;
  rsub_unlink_worker(r);
  r->sub->remote = NULL;
  r->sub->flight = NULL;
  pthread_mutex_lock(&xmu);
  for (struct pc_rsub **pp = &f->remote; *pp; pp = &(*pp)->fnext)
    if (*pp == r) {
      *pp = r->fnext;
      break;
    }
  int last = unref_locked(f);
  pthread_mutex_unlock(&xmu);
  if (last) flight_mem_free(f);
  free(r);
}

/* What a remote follower has not seen yet, copied under xmu. */
struct pull {
  int head, status, finished, rc;
  pc_buf headers, body;
  int64_t upstream_us;
  struct pc_usage usage;
};

static void pull_copy(struct pc_rsub *r, struct pull *p) {
  struct pc_flight *f = r->f;
  pthread_mutex_lock(&xmu);
  if (f->head_seen && !r->head_done) {
    p->head = r->head_done = 1;
    p->status = f->status;
    pc_buf_append(&p->headers, f->client_head.data ? f->client_head.data : "", f->client_head.len);
  }
  if (r->head_done && f->record.len > r->sent) {
    pc_buf_append(&p->body, f->record.data + r->sent, f->record.len - r->sent);
    r->sent = f->record.len;
  }
  if (f->finished) {
    p->finished = 1;
    /* a recording that gave up cannot give a remote follower the whole body */
    p->rc = f->over_limit && !f->rc ? PC_EUPPROTO : f->rc;
    p->upstream_us = f->upstream_us;
    p->usage = f->usage;
  }
  pthread_mutex_unlock(&xmu);
}

/* Deliver to a remote follower; runs on the follower's loop. The sub lives
 * in its conn, which outlives this call even if the conn closes in it. */
static void pull(struct pc_rsub *r) {
  struct pc_sub *sub = r->sub;
  struct pull p = {0};
  pc_buf_init(&p.headers, 256 * 1024);
  pc_buf_init(&p.body, SIZE_MAX / 2);
  pull_copy(r, &p);
  if (p.head) sub->ops->on_head(sub, p.status, p.headers.data ? p.headers.data : "", p.headers.len);
  if (sub->remote == r && p.body.len) sub->ops->on_body(sub, p.body.data, p.body.len);
  if (sub->remote == r && p.finished) {
    rsub_drop(r);
    sub->usage = p.usage;
    sub->ops->on_end(sub, p.rc, p.upstream_us);
  }
  pc_buf_free(&p.headers);
  pc_buf_free(&p.body);
}

void pc_flight_pull_remote(struct pc_worker *w) {
  for (struct pc_rsub *r = w->rsubs, *next; r; r = next) {
    next = r->wnext;
    pull(r);
  }
}

static struct pc_flight *registry_find(const struct pc_key *key) {
  for (struct pc_flight *f = registry; f; f = f->rnext)
    if (f->joinable && !memcmp(f->req.key.b, key->b, sizeof key->b)) return f;
  return NULL;
}

/* Under xmu: count a follower of `f` and, for another loop's flight, create
 * its remote subscription. */
static int join_locked(struct pc_worker *w, struct pc_flight *f, struct pc_rsub **r) {
  *r = NULL;
  if (f->n_followers >= w->cfg->max_followers) return PC_ETOOBIG;
  if (f->w != w) {
    *r = calloc(1, sizeof **r);
    if (!*r) return PC_ENOMEM;
    **r = (struct pc_rsub){.f = f, .w = w, .fnext = f->remote};
    f->remote = *r;
    f->refs++;
  }
  f->n_followers++;
  return 0;
}

/* After join_locked, outside the lock: start delivering to `sub`. */
static void join_finish(struct pc_worker *w, struct pc_flight *f, struct pc_rsub *r, struct pc_sub *sub) {
  sub->follower = 1;
  if (!r) {
    join_local(f, sub); /* our own loop's flight: it cannot end under us */
    return;
  }
  r->sub = sub;
  sub->flight = NULL;
  sub->remote = r;
  r->wnext = w->rsubs;
  if (w->rsubs) w->rsubs->wprev = r;
  w->rsubs = r;
  pull(r);
}

void pc_flight_leave(struct pc_sub *sub) {
  if (sub->remote) {
    rsub_drop(sub->remote);
    return;
  }
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
    f->rc = PC_ECANCELED;
    finish(f);
  }
}
