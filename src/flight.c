/* flight.c — one upstream exchange and its subscribers (single flight).
 * The flight owns the request it sends, so subscribers can come and go; it
 * records the response (bytes plus chunk arrival times) so that a follower
 * joining late first receives everything already received, then each chunk
 * live; and it stores the recording when it is a complete 200 of a storable
 * request (for a stream: one that reached its terminal event). It stays
 * joinable until that entry is committed, so a request arriving between
 * the end of the exchange and the commit does not go upstream again. The
 * recording is bounded: past a quarter of --max-size the response is still
 * passed on, but the flight stops accepting followers and is not stored.
 *
 * Across loops (--workers N): every coalescable flight is in a registry of
 * SHARDS shards, chosen by key, each with its own mutex, so loops missing on
 * different keys never wait on one lock. A follower on another loop gets a
 * remote subscription (pc_rsub) that *pulls*: the leader's loop only wakes
 * the follower's loop (uv_async), which then copies, under the shard's
 * mutex, whatever of the head and recording it has not delivered yet. The
 * leader writes the fields remote followers read (status, head, record,
 * finished, ...) under that mutex too. A remote follower whose copy cannot
 * be made is cut off (never given a body with a piece missing). A flight's
 * memory lives until the leader and every remote follower have let go
 * (refs).
 *
 * Across nodes (--redis, shared.h): a new coalescable flight first takes
 * the key's lease in Redis (LEASING; identical requests of this node join
 * it meanwhile). Won: it looks the shared tier up once more (an entry
 * stored between the request's lookup and the lease is served, not fetched
 * again), then fetches, publishing head, chunks (with their times) and end
 * to the key's stream, and releases the lease once the entry is in Redis.
 * Held by another node: the flight follows that node's stream instead of
 * fetching (its subscribers are then followers: COALESCED), stores the
 * answer locally, and takes over if that leader dies before sending
 * anything. Redis unusable: the flight fetches as on a single node. */
#include "flight.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "awscred.h"
#include "clock.h"
#include "entry.h"
#include "error.h"
#include "family.h"
#include "json.h"
#include "log.h"
#include "policy.h"
#include "sequence.h"
#include "shared.h"
#include "upstream.h"
#include "writer.h"

#define SHARDS 64

struct shard {
  pthread_mutex_t mu;
  struct pc_flight *head; /* joinable flights of this shard */
};

struct pc_flights {
  uv_loop_t *loop;
  const struct pc_config *cfg;
  struct pc_upstream *up;
  struct pc_wport *port;
  pc_cache *cache;          /* read only: a recorded sequence's old entries */
  struct pc_shared *shared; /* the fleet's tier, or NULL */
  struct pc_flight *led;    /* flights this loop leads (or follows from another node) */
  struct pc_rsub *rsubs;    /* this loop's followers of other loops' flights */
  uv_async_t xnotify;       /* other loops wake us for rsubs */
  void (*idle)(void *ud);
  void *ud;
};

struct pc_flight {
  struct pc_flights *fl; /* the leader's loop */
  struct shard *shard;
  struct pc_flight_req req;
  struct pc_fetch *fetch;
  struct pc_sub *subs;
  pc_buf store_head; /* header lines kept in the entry (leader only) */
  int storing;       /* waiting for the writer to commit the entry */
  /* where the answer is stored: the request's key and material, or (record
   * mode, an answer after the first to the same request) its sequence entry's */
  struct pc_key skey;
  pc_buf smaterial;
  int seq; /* skey/smaterial hold a sequence entry's */
  /* the fleet (leader's loop only) */
  int leasing;                     /* waiting for the lease (or the lookup after it) */
  int aborted;                     /* shutdown came while leasing */
  struct pc_shared_lease *lease;   /* we lead the fetch fleet-wide */
  struct pc_shared_follow *follow; /* another node leads: we follow its stream */
  struct pc_sub *first;            /* the subscriber that started the flight */
  int64_t start_ms;                /* wall clock at start */
  uint64_t start_ns;
  struct pc_flight *next, *prev; /* fl->led */
  /* shared with other loops, under shard->mu: */
  int status;
  int head_seen;
  pc_buf client_head; /* header lines passed to subscribers */
  pc_buf record;      /* body bytes */
  pc_buf chunks;      /* struct pc_chunk array */
  int over_limit;     /* recording gave up: do not store, accept no followers */
  int joinable;       /* in the registry and still accepting followers */
  int finished;       /* the end (rc, usage) is known and may be delivered */
  int rc;
  int fleet;       /* following another node: every subscriber is a (fleet) follower */
  char method[24]; /* f->req.method points here: the request's buffer goes with its connection */
  int64_t upstream_us;
  size_t n_followers;
  struct pc_usage usage;
  uint64_t first_ns;
  int refs; /* leader + remote followers */
  struct pc_rsub *remote;
  struct pc_flight *rnext, *rprev; /* shard->head */
};

/* A follower on another loop. */
struct pc_rsub {
  struct pc_flight *f;
  struct pc_sub *sub;
  struct pc_flights *fl; /* the follower's loop */
  size_t sent;           /* body bytes delivered */
  int head_done;
  struct pc_rsub *fnext;         /* in f->remote (under f->shard->mu) */
  struct pc_rsub *wnext, *wprev; /* in fl->rsubs (follower's thread only) */
};

static struct shard shards[SHARDS];
static pthread_once_t shards_once = PTHREAD_ONCE_INIT;

static void shards_init(void) {
  for (int i = 0; i < SHARDS; i++) pthread_mutex_init(&shards[i].mu, NULL);
}

static struct shard *shard_of(const struct pc_key *k) { return &shards[k->b[0] % SHARDS]; }

static void lock(struct pc_flight *f) { pthread_mutex_lock(&f->shard->mu); }
static void unlock(struct pc_flight *f) { pthread_mutex_unlock(&f->shard->mu); }

void pc_flight_req_free(struct pc_flight_req *req) {
  pc_buf_free(&req->url);
  pc_buf_free(&req->body);
  pc_buf_free(&req->material);
  pc_upstream_headers_free(req->headers);
  req->headers = NULL;
  free(req->ns);
  free(req->route);
  free(req->path);
  free(req->model);
  req->ns = req->route = req->path = req->model = NULL;
}

/* ---- response header filters (policy.h) ---- */

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
      if (pc_policy_pass_response_header(h, n)) {
        pc_buf_append(&f->client_head, h, vlen);
        pc_buf_puts(&f->client_head, "\r\n");
      }
      if (pc_policy_store_response_header(h, n)) {
        pc_buf_append(&f->store_head, h, vlen);
        pc_buf_puts(&f->store_head, "\r\n");
      }
    }
    h += linelen;
  }
}

/* ---- lifetime ---- */

static void flight_mem_free(struct pc_flight *f) {
  pc_flight_req_free(&f->req);
  pc_buf_free(&f->smaterial);
  pc_buf_free(&f->client_head);
  pc_buf_free(&f->store_head);
  pc_buf_free(&f->record);
  pc_buf_free(&f->chunks);
  free(f);
}

/* Under the shard's mutex: no new followers from here on. */
static void unregister_locked(struct pc_flight *f) {
  if (!f->joinable) return;
  if (f->rprev)
    f->rprev->rnext = f->rnext;
  else
    f->shard->head = f->rnext;
  if (f->rnext) f->rnext->rprev = f->rprev;
  f->rnext = f->rprev = NULL;
  f->joinable = 0;
}

static void maybe_idle(struct pc_flights *fl) {
  if (!pc_flights_busy(fl) && fl->idle) fl->idle(fl->ud);
}

/* The leader is done with the flight. */
static void flight_free(struct pc_flight *f) {
  struct pc_flights *fl = f->fl;
  pc_stats_inflight(0, -1);
  if (f->prev)
    f->prev->next = f->next;
  else
    fl->led = f->next;
  if (f->next) f->next->prev = f->prev;
  lock(f);
  unregister_locked(f);
  int last = --f->refs == 0;
  unlock(f);
  if (last) flight_mem_free(f);
  maybe_idle(fl);
}

/* Under the shard's mutex: wake every remote follower's loop (they pull). */
static void notify_remote_locked(struct pc_flight *f) {
  for (struct pc_rsub *r = f->remote; r; r = r->fnext) uv_async_send(&r->fl->xnotify);
}

/* ---- the exchange's callbacks (leader's loop) ---- */

/* The response head, from upstream or from the fleet's leader: filtered,
 * then passed to every subscriber. */
static void deliver_head(struct pc_flight *f, int status, const char *headers, size_t len) {
  lock(f);
  f->status = status;
  f->head_seen = 1;
  filter_head(f, headers, len);
  notify_remote_locked(f);
  unlock(f);
  /* a callback may make its own subscriber leave, so step with a saved next */
  for (struct pc_sub *s = f->subs, *next; s; s = next) {
    next = s->next;
    s->ops->on_head(s, status, f->client_head.data ? f->client_head.data : "", f->client_head.len);
  }
}

static void on_head(void *ud, int status, const char *headers, size_t len) {
  struct pc_flight *f = ud;
  if (f->lease) pc_shared_pub_head(f->lease, status, headers, len);
  deliver_head(f, status, headers, len);
}

/* Milliseconds since the first chunk. */
static uint32_t chunk_time(struct pc_flight *f) {
  uint64_t now = uv_hrtime();
  if (!f->first_ns) f->first_ns = now;
  return (uint32_t)((now - f->first_ns) / 1000000);
}

/* Record a chunk (for storing and for followers that join later) and wake
 * remote followers, in one critical section. */
static void record(struct pc_flight *f, const char *p, size_t n, uint32_t t_ms) {
  if (!(f->req.store || f->req.coalesce)) return;
  lock(f);
  if (!f->over_limit) {
    struct pc_chunk c;
    int rc = pc_buf_append(&f->record, p, n);
    c.end = (uint32_t)f->record.len;
    c.t_ms = t_ms;
    if (!rc) rc = pc_buf_append(&f->chunks, &c, sizeof c);
    if (rc) {
      f->over_limit = 1;
      unregister_locked(f);
    }
  }
  notify_remote_locked(f);
  unlock(f);
}

static void deliver_body(struct pc_flight *f, const char *p, size_t n, uint32_t t_ms) {
  record(f, p, n, t_ms);
  for (struct pc_sub *s = f->subs, *next; s; s = next) {
    next = s->next;
    s->ops->on_body(s, p, n);
  }
}

static void on_body(void *ud, const char *p, size_t n) {
  struct pc_flight *f = ud;
  uint32_t t = chunk_time(f);
  if (f->lease) pc_shared_pub_chunk(f->lease, t, p, n);
  deliver_body(f, p, n, t);
}

/* The value of a head's Content-Type line (blanks before it skipped, up to
 * the line's end), found by line starts only: a header whose value merely
 * mentions content-type never counts. NULL when there is none. */
static const char *content_type(const pc_buf *head, size_t *n) {
  static const char name[] = "content-type:";
  const size_t nn = sizeof name - 1;
  for (const char *p = head->data, *end = p ? p + head->len : NULL; p && p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *eol = nl ? nl : end;
    if ((size_t)(eol - p) >= nn && !strncasecmp(p, name, nn)) {
      const char *v = p + nn;
      while (v < eol && (*v == ' ' || *v == '\t')) v++;
      *n = (size_t)(eol - v);
      while (*n && (v[*n - 1] == '\r' || v[*n - 1] == ' ' || v[*n - 1] == '\t')) (*n)--;
      return v;
    }
    p = nl ? nl + 1 : end;
  }
  *n = 0;
  return NULL;
}

static int is_event_stream(const pc_buf *head) {
  static const char type[] = "text/event-stream";
  size_t n;
  const char *v = content_type(head, &n);
  return v && n >= sizeof type - 1 && !strncasecmp(v, type, sizeof type - 1);
}

static void finish(struct pc_flight *f) {
  pc_shared_lease_release(f->lease); /* not handed to a shared store: nothing more to wait for */
  f->lease = NULL;
  lock(f);
  f->finished = 1;
  unregister_locked(f);
  notify_remote_locked(f);
  unlock(f);
  while (f->subs) {
    struct pc_sub *s = f->subs;
    f->subs = s->next;
    s->flight = NULL;
    s->next = NULL;
    s->usage = f->usage;
    if (s->follower) pc_stats_inflight(1, -1);
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
    pc_key_hex(f->seq ? &f->skey : &f->req.key, hex);
    pc_log_warn("store failed for key %s: %s", hex, pc_strerror(rc));
    pc_stats_store_failed();
  }
  f->storing = 0;
  finish(f);
}

static struct pc_slice slice_of(const char *s) { return (struct pc_slice){s ? s : "", s ? strlen(s) : 0}; }

static int encode(struct pc_flight *f, pc_buf *enc) {
  struct pc_entry e;
  pc_buf usage;
  memset(&e, 0, sizeof e);
  pc_buf_init(&usage, 512);
  pc_usage_write(&f->usage, &usage);
  e.status = f->status;
  e.created_ms = pc_now_ms();
  e.expires_ms = f->req.ttl_ms > 0 ? e.created_ms + f->req.ttl_ms : 0;
  const pc_buf *m = f->seq ? &f->smaterial : &f->req.material;
  e.request = (struct pc_slice){m->data, m->len};
  e.ns = slice_of(f->req.ns);
  e.route = slice_of(f->req.route);
  e.path = slice_of(f->req.path);
  e.model = slice_of(f->req.model);
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

/* The media type of the stored head is JSON (application/json, or a
 * +json suffix). */
static int labelled_json(const pc_buf *head) {
  size_t n;
  const char *ct = content_type(head, &n);
  if (!ct) return 0;
  const char *semi = memchr(ct, ';', n);
  if (semi) n = (size_t)(semi - ct);
  while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
  return (n == 16 && !strncasecmp(ct, "application/json", 16)) || (n > 5 && !strncasecmp(ct + n - 5, "+json", 5));
}

/* Only a whole answer is stored: a 200 of a storable request whose end is
 * certain. A stream is whole when it reached its terminal event, or, for
 * APIs without one, when its body ended where the protocol said (a body
 * delimited by the connection's close looks the same cut or whole). An
 * answer labelled JSON must parse (json_ok: the usage pass parsed it). */
/* The answer as family.h sees it. */
static void family_response(const struct pc_flight *f, int delimited, struct pc_family_response *r) {
  size_t ctlen;
  const char *ct = content_type(&f->store_head, &ctlen);
  *r = (struct pc_family_response){.path = f->req.path ? f->req.path : "",
                                   .path_len = f->req.path ? strlen(f->req.path) : 0,
                                   .streamed = f->req.stream,
                                   .content_type = ct,
                                   .ctlen = ctlen,
                                   .headers = f->client_head.data,
                                   .hlen = f->client_head.len,
                                   .body = f->record.data,
                                   .n = f->record.len,
                                   .clean_end = delimited};
}

static int family_of(const struct pc_flight *f) { return f->req.api ? f->req.api->family : PC_FAMILY_DEFAULT; }

static int storable(const struct pc_flight *f, int delimited, int json_ok) {
  if (!f->req.store || f->over_limit) return 0;
  if (f->status != 200) { /* record mode keeps every answer that arrived whole */
    struct pc_usage u;
    if (!f->req.any_status || !delimited) return 0;
    return !labelled_json(&f->store_head) ||
           pc_usage_from_body(f->record.data ? f->record.data : "", f->record.len, 0, &u) == 0;
  }
  if (family_of(f) != PC_FAMILY_DEFAULT) { /* the family says when its answers are whole */
    struct pc_family_response r;
    family_response(f, delimited, &r);
    return pc_family_complete((enum pc_family_id)family_of(f), &r);
  }
  if (f->req.stream && f->req.terminal != PC_SSE_NONE)
    return pc_sse_complete(f->req.terminal, f->record.data ? f->record.data : "", f->record.len);
  if (!delimited) return 0;
  return f->req.stream || json_ok || !labelled_json(&f->store_head);
}

static void shared_stored(void *ud, int rc) {
  (void)rc; /* counted by the shared tier; the local tier has the entry anyway */
  pc_shared_lease_release(ud);
}

/* Store the encoded entry in the shared tier too (this node fetched it).
 * The lease is released once Redis has it: a node that misses after that
 * finds the entry instead of leading a second fetch. */
static void share(struct pc_flight *f, const char *p, size_t n) {
  struct pc_shared *sh = f->fl->shared;
  if (!sh) return;
  struct pc_shared_lease *l = f->lease;
  const char *ns = f->req.ns ? f->req.ns : "";
  int64_t created = pc_now_ms();
  struct pc_entry e;
  if (!pc_entry_decode(p, n, 0, &e)) created = e.created_ms;
  f->lease = NULL;
  if (pc_shared_put(sh, (f->seq ? &f->skey : &f->req.key)->b, p, n, f->req.ttl_ms > 0 ? f->req.ttl_ms : 0, ns,
                    strlen(ns), created, shared_stored, l))
    pc_shared_lease_release(l);
}

#define SEQ_TAIL_MAX 100000 /* entries of an older recording's sequence dropped, at most */

/* Record mode: which entry of the request's sequence this answer is. The
 * first answer of this run replaces entry 0 and drops the later entries an
 * earlier recording left; each next one is the next entry. */
static int sequence_entry(struct pc_flight *f) {
  uint32_t n = pc_seq_record_next(&f->req.key);
  if (n) {
    pc_buf_init(&f->smaterial, f->req.material.len + 64);
    int rc = pc_key_material_seq(f->req.material.data, f->req.material.len, n, &f->smaterial);
    if (rc) return rc;
    pc_key_hash(f->smaterial.data, f->smaterial.len, &f->skey);
    f->seq = 1;
    return 0;
  }
  pc_buf m;
  pc_buf_init(&m, f->req.material.len + 64);
  for (uint32_t i = 1; i < SEQ_TAIL_MAX; i++) {
    struct pc_key k;
    const void *p;
    size_t len;
    if (pc_key_material_seq(f->req.material.data, f->req.material.len, i, &m)) break;
    pc_key_hash(m.data, m.len, &k);
    if (pc_cache_get_ref(f->fl->cache, k.b, &p, &len)) break;
    pc_cache_release(f->fl->cache);
    pc_writer_del(pc_wport_writer(f->fl->port), k.b);
  }
  pc_buf_free(&m);
  return 0;
}

/* Hand a complete answer to the writer; returns whether it was queued (the
 * flight then finishes when the commit reports back). */
static int store(struct pc_flight *f) {
  if (f->req.sequence && sequence_entry(f)) return 0;
  pc_buf enc;
  pc_buf_init(&enc, f->fl->cfg->max_size);
  if (encode(f, &enc)) {
    pc_buf_free(&enc);
    return 0;
  }
  size_t n;
  char *p = pc_buf_steal(&enc, &n);
  if (!f->fleet) share(f, p, n);
  f->storing = 1;
  pc_writer_put(f->fl->port, (f->seq ? &f->skey : &f->req.key)->b, p, n, stored, f);
  return 1;
}

/* Tokens of a 200 that will be stored or that followers wait on, read in
 * one parse that also says whether a JSON body is whole. */
static int read_usage(struct pc_flight *f, int rc, int followers) {
  if (rc || f->status != 200 || f->over_limit || !(f->req.store || followers)) return 1;
  struct pc_usage u;
  if (family_of(f) != PC_FAMILY_DEFAULT) { /* completeness is the family's to judge (storable) */
    struct pc_family_response r;
    family_response(f, 1, &r);
    pc_family_usage((enum pc_family_id)family_of(f), &r, &u);
    lock(f);
    f->usage = u;
    unlock(f);
    return 1;
  }
  int sse = f->req.stream || is_event_stream(&f->client_head);
  int json_ok = pc_usage_from_body(f->record.data ? f->record.data : "", f->record.len, sse, &u) == 0;
  lock(f);
  f->usage = u;
  unlock(f);
  return json_ok;
}

/* The exchange is over (rc 0: complete; `delimited`: its end was certain):
 * store it if it is whole, then let the subscribers see the end. */
static void complete(struct pc_flight *f, int rc, int delimited, int64_t upstream_us) {
  lock(f);
  int followers = f->n_followers != 0;
  unlock(f);
  int json_ok = read_usage(f, rc, followers);
  int will_store = !rc && storable(f, delimited, json_ok);
  if (f->lease) pc_shared_pub_end(f->lease, rc, delimited ? "D" : "U", 1);
  lock(f);
  f->upstream_us = upstream_us;
  f->rc = rc;
  if (!will_store) unregister_locked(f); /* nothing will be stored: the next identical request goes upstream */
  unlock(f);
  if (will_store) { /* before store(): a full writer queue finishes (frees) f inside it */
    for (struct pc_sub *s = f->subs; s; s = s->next)
      if (s->ops->on_storing) s->ops->on_storing(s);
    if (store(f)) return;
  }
  finish(f);
}

static void on_done(void *ud, int rc) {
  struct pc_flight *f = ud;
  int delimited = pc_fetch_delimited(f->fetch);
  int64_t us = pc_fetch_elapsed_us(f->fetch);
  f->fetch = NULL;
  complete(f, rc, delimited, us);
}

static const struct pc_fetch_ops fetch_ops = {on_head, on_body, on_done};

/* ---- joining ---- */

static struct pc_flight *registry_find_locked(struct shard *sh, const struct pc_key *key) {
  for (struct pc_flight *f = sh->head; f; f = f->rnext)
    if (f->joinable && !memcmp(f->req.key.b, key->b, sizeof key->b)) return f;
  return NULL;
}

/* Under the shard's mutex: count a follower of `f` and, for another loop's
 * flight, create its remote subscription. */
static int join_locked(struct pc_flights *fl, struct pc_flight *f, struct pc_rsub **r) {
  *r = NULL;
  if (f->n_followers >= fl->cfg->max_followers) return PC_ETOOBIG;
  if (f->fl != fl) {
    *r = calloc(1, sizeof **r);
    if (!*r) return PC_ENOMEM;
    **r = (struct pc_rsub){.f = f, .fl = fl, .fnext = f->remote};
    f->remote = *r;
    f->refs++;
  }
  f->n_followers++;
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

static void pull(struct pc_rsub *r);

/* After join_locked, outside the lock: start delivering to `sub`. */
static void join_finish(struct pc_flights *fl, struct pc_flight *f, struct pc_rsub *r, struct pc_sub *sub) {
  sub->follower = 1;
  sub->fleet = 0; /* a remote follower learns it when it pulls */
  if (!r) sub->fleet = f->fleet;
  pc_stats_inflight(1, 1);
  if (!r) {
    join_local(f, sub); /* our own loop's flight: it cannot end under us */
    return;
  }
  r->sub = sub;
  sub->flight = NULL;
  sub->remote = r;
  r->wnext = fl->rsubs;
  if (fl->rsubs) fl->rsubs->wprev = r;
  fl->rsubs = r;
  pull(r);
}

/* Register a new coalescable flight, unless an identical one got there
 * first (another loop may have missed at the same moment): then join it.
 * Returns the new flight, or NULL with *joined set (or an error in *rc). */
static struct pc_flight *claim(struct pc_flights *fl, struct pc_flight_req *req, struct pc_sub *sub, int *joined,
                               int *rc) {
  struct pc_rsub *r = NULL;
  struct pc_flight *f = NULL, *other = NULL;
  struct shard *sh = shard_of(&req->key);
  *joined = 0;
  pthread_mutex_lock(&sh->mu);
  if (req->coalesce && (other = registry_find_locked(sh, &req->key)) && join_locked(fl, other, &r) == 0) {
    *joined = 1;
  } else if ((f = calloc(1, sizeof *f))) {
    size_t limit = fl->cfg->max_size / 4;
    f->fl = fl;
    f->shard = sh;
    pc_buf_init(&f->client_head, 256 * 1024);
    pc_buf_init(&f->store_head, 256 * 1024);
    pc_buf_init(&f->record, limit);
    pc_buf_init(&f->chunks, limit);
    f->req = *req; /* before the flight is visible: other loops read its key under the lock */
    snprintf(f->method, sizeof f->method, "%s", req->method ? req->method : "GET");
    f->req.method = f->method;
    f->refs = 1;
    if (req->coalesce) {
      f->joinable = 1;
      f->rnext = sh->head;
      if (sh->head) sh->head->rprev = f;
      sh->head = f;
    }
  }
  pthread_mutex_unlock(&sh->mu);
  if (*joined) join_finish(fl, other, r, sub);
  *rc = (*joined || f) ? 0 : PC_ENOMEM;
  return f;
}

/* A route that signs (Bedrock): SigV4 headers with its credentials, made
 * now (a signature is valid for minutes; a takeover signs again). The
 * client's own signature headers were left out by the request flow. */
static int sign(struct pc_flight *f) {
  const struct pc_api *a = f->req.api;
  struct pc_sigv4_out s;
  int rc = pc_awscred_sign(a->aws, a->region, "bedrock", f->req.method, f->req.url.data, f->req.body.data,
                           f->req.body.len, (long long)time(NULL), &s);
  if (!rc) rc = pc_upstream_header(&f->req.headers, "X-Amz-Date", 10, s.amz_date, strlen(s.amz_date));
  if (!rc && a->aws->session_token)
    rc = pc_upstream_header(&f->req.headers, "X-Amz-Security-Token", 20, a->aws->session_token,
                            strlen(a->aws->session_token));
  if (!rc) rc = pc_upstream_header(&f->req.headers, "Authorization", 13, s.authorization, strlen(s.authorization));
  explicit_bzero(&s, sizeof s);
  return rc;
}

/* Go upstream (this node leads, with or without a lease). */
static void fetch_start(struct pc_flight *f) {
  if (f->req.api && f->req.api->aws && sign(f)) {
    f->rc = PC_EUPCONNECT;
    finish(f);
    return;
  }
  struct pc_fetch_req fr = {.method = f->req.method,
                            .url = f->req.url.data,
                            .headers = f->req.headers,
                            .body = f->req.body.data,
                            .body_len = f->req.body.len,
                            .has_body = f->req.body.len > 0};
  f->fetch = pc_upstream_fetch(f->fl->up, &fr, &fetch_ops, f);
  f->req.headers = fr.headers; /* NULL: the fetch owns them now */
  if (!f->fetch) {
    /* followers may have joined already: everyone gets the error */
    f->rc = PC_EUPCONNECT;
    finish(f);
  }
}

/* ---- the fleet: lease, lookup, follow ---- */

/* Every subscriber becomes (on = 1) a follower of another node's exchange,
 * or stops being one (on = 0: this node leads after all). */
static void set_fleet(struct pc_flight *f, int on) {
  lock(f);
  f->fleet = on;
  unlock(f);
  for (struct pc_sub *s = f->subs; s; s = s->next) {
    s->fleet = on;
    if (s != f->first) continue;
    if (s->follower != on) pc_stats_inflight(1, on ? 1 : -1);
    s->follower = on;
  }
}

static void follow_head(void *ud, int status, const char *headers, size_t n) { deliver_head(ud, status, headers, n); }

static void follow_body(void *ud, const char *p, size_t n, uint32_t t_ms) { deliver_body(ud, p, n, t_ms); }

static void follow_done(void *ud, int rc, const char *usage, size_t un) {
  struct pc_flight *f = ud;
  f->follow = NULL;
  if (rc == PC_EUNAVAIL && !f->head_seen) { /* Redis went away before anything came: fetch it ourselves */
    set_fleet(f, 0);
    fetch_start(f);
    return;
  }
  int delimited = !rc && un >= 1 && usage[0] == 'D';
  complete(f, rc, delimited, (int64_t)((uv_hrtime() - f->start_ns) / 1000));
}

static void follow_takeover(void *ud, struct pc_shared_lease *l) {
  struct pc_flight *f = ud;
  f->follow = NULL;
  f->lease = l;
  set_fleet(f, 0);
  fetch_start(f);
}

static const struct pc_shared_follow_ops follow_ops = {follow_head, follow_body, follow_done, follow_takeover};

/* An entry found in the shared tier after the lease was won: the previous
 * leader stored it between this request's lookup and its lease. Valid when
 * whole, for exactly this request, and stored after this flight began
 * (an older one was already refused by the request's own lookup). */
static int recheck_valid(struct pc_flight *f, const char *val, size_t n, struct pc_entry *e) {
  if (pc_entry_decode(val, n, 1, e)) {
    pc_stats_shared_corrupt();
    return 0;
  }
  if (e->request.n != f->req.material.len || memcmp(e->request.p, f->req.material.data, e->request.n)) {
    pc_stats_shared_corrupt();
    return 0;
  }
  int64_t now = pc_now_ms();
  return e->created_ms >= f->start_ms - 1000 && (!e->expires_ms || e->expires_ms > now);
}

static void rechecked(void *ud, int rc, const char *val, size_t n) {
  struct pc_flight *f = ud;
  struct pc_entry e;
  f->leasing = 0;
  if (f->aborted) {
    f->rc = PC_ECANCELED;
    finish(f);
    return;
  }
  if (rc || !recheck_valid(f, val, n, &e)) {
    fetch_start(f);
    return;
  }
  /* served from that entry: as a follower of the leader that stored it */
  set_fleet(f, 1);
  pc_shared_lease_release(f->lease);
  f->lease = NULL;
  deliver_head(f, e.status, e.headers.p, e.headers.n);
  if (e.n_chunks && (e.flags & PC_ENTRY_F_SSE))
    for (uint32_t i = 0; i < e.n_chunks; i++) {
      uint32_t start = i ? pc_entry_chunk(&e, i - 1).end : 0, end = pc_entry_chunk(&e, i).end;
      if (end > start) deliver_body(f, e.body.p + start, end - start, pc_entry_chunk(&e, i).t_ms);
    }
  else if (e.body.n)
    deliver_body(f, e.body.p, e.body.n, 0);
  complete(f, 0, 1, 0);
}

static void leased(void *ud, int rc, struct pc_shared_lease *l) {
  struct pc_flight *f = ud;
  if (f->aborted || rc == PC_ECANCELED) {
    f->leasing = 0;
    pc_shared_lease_release(l);
    f->rc = PC_ECANCELED;
    finish(f);
    return;
  }
  if (!rc) {
    f->lease = l;
    if (!pc_shared_get(f->fl->shared, f->req.key.b, rechecked, f)) return;
  } else if (rc == PC_EEXISTS) {
    set_fleet(f, 1);
    f->follow = pc_shared_follow(f->fl->shared, f->req.key.b, &follow_ops, f);
    if (f->follow) {
      f->leasing = 0;
      return;
    }
    set_fleet(f, 0);
  }
  f->leasing = 0;
  fetch_start(f); /* won (the lookup could not be sent), or Redis is unusable: lead as a single node does */
}

int pc_flight_start(struct pc_flights *fl, struct pc_flight_req *req, struct pc_sub *sub) {
  int joined, rc;
  pthread_once(&shards_once, shards_init);
  struct pc_flight *f = claim(fl, req, sub, &joined, &rc);
  if (!f) return joined ? PC_EEXISTS : rc;
  /* Hand-over: claim copied the request; the flight owns its buffers from
   * here on. (Other loops read only its key and the head/record fields,
   * under the shard's mutex.) */
  memset(req, 0, sizeof *req);
  sub->flight = f;
  sub->remote = NULL;
  sub->next = NULL;
  sub->follower = 0;
  sub->fleet = 0;
  f->subs = f->first = sub;
  f->start_ms = pc_now_ms();
  f->start_ns = uv_hrtime();
  pc_stats_inflight(0, 1);
  f->next = fl->led;
  if (f->next) f->next->prev = f;
  fl->led = f;
  if (fl->shared && f->req.coalesce) {
    f->leasing = 1;
    if (!pc_shared_lease(fl->shared, f->req.key.b, leased, f)) return 0;
    f->leasing = 0;
  }
  fetch_start(f);
  return 0;
}

int pc_flight_joinable(const struct pc_key *key) {
  pthread_once(&shards_once, shards_init);
  struct shard *sh = shard_of(key);
  pthread_mutex_lock(&sh->mu);
  int found = registry_find_locked(sh, key) != NULL;
  pthread_mutex_unlock(&sh->mu);
  return found;
}

/* ---- remote followers (the follower's loop) ---- */

static void rsub_unlink_loop(struct pc_rsub *r) {
  if (r->wprev)
    r->wprev->wnext = r->wnext;
  else
    r->fl->rsubs = r->wnext;
  if (r->wnext) r->wnext->wprev = r->wprev;
}

/* Detach a remote follower (on its own loop); frees the flight if it was
 * the last reference. */
static void rsub_drop(struct pc_rsub *r) {
  struct pc_flight *f = r->f;
  struct pc_flights *fl = r->fl;
  rsub_unlink_loop(r);
  r->sub->remote = NULL;
  r->sub->flight = NULL;
  pc_stats_inflight(1, -1);
  lock(f);
  for (struct pc_rsub **pp = &f->remote; *pp; pp = &(*pp)->fnext)
    if (*pp == r) {
      *pp = r->fnext;
      break;
    }
  int last = --f->refs == 0;
  unlock(f);
  if (last) flight_mem_free(f);
  free(r);
  maybe_idle(fl);
}

/* What a remote follower has not seen yet, copied under the mutex. */
struct pull {
  int head, status, finished, rc, fleet;
  pc_buf headers, body;
  int64_t upstream_us;
  struct pc_usage usage;
};

/* The cursor moves only past bytes that were copied: a failed copy (no
 * memory) ends the follower with PC_ENOMEM instead of skipping a piece. */
static void pull_copy(struct pc_rsub *r, struct pull *p) {
  struct pc_flight *f = r->f;
  lock(f);
  p->fleet = f->fleet;
  if (f->head_seen && !r->head_done) {
    if (pc_buf_append(&p->headers, f->client_head.data ? f->client_head.data : "", f->client_head.len)) {
      p->finished = 1;
      p->rc = PC_ENOMEM;
    } else {
      p->head = r->head_done = 1;
      p->status = f->status;
    }
  }
  if (!p->finished && r->head_done && f->record.len > r->sent) {
    if (pc_buf_append(&p->body, f->record.data + r->sent, f->record.len - r->sent)) {
      p->finished = 1;
      p->rc = PC_ENOMEM;
    } else {
      r->sent = f->record.len;
    }
  }
  if (!p->finished && f->finished) {
    p->finished = 1;
    /* a recording that gave up cannot give a remote follower the whole body */
    p->rc = f->over_limit && !f->rc ? PC_EUPPROTO : f->rc;
    p->upstream_us = f->upstream_us;
    p->usage = f->usage;
  }
  unlock(f);
}

/* Deliver to a remote follower; runs on the follower's loop. The sub lives
 * in its exchange, which outlives this call even if the connection closes
 * in it. */
static void pull(struct pc_rsub *r) {
  struct pc_sub *sub = r->sub;
  struct pull p = {0};
  pc_buf_init(&p.headers, 256 * 1024);
  pc_buf_init(&p.body, SIZE_MAX / 2);
  pull_copy(r, &p);
  sub->fleet = p.fleet;
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

static void on_xnotify(uv_async_t *a) {
  struct pc_flights *fl = a->data;
  for (struct pc_rsub *r = fl->rsubs, *next; r; r = next) {
    next = r->wnext;
    pull(r);
  }
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
  if (sub->follower) pc_stats_inflight(1, -1);
  if (f->first == sub) f->first = NULL;
  sub->flight = NULL;
  sub->next = NULL;
}

/* ---- one loop's side ---- */

int pc_flights_create(uv_loop_t *loop, const struct pc_config *cfg, struct pc_upstream *up, struct pc_wport *port,
                      pc_cache *cache, struct pc_shared *shared, void (*idle)(void *ud), void *ud,
                      struct pc_flights **out) {
  pthread_once(&shards_once, shards_init);
  struct pc_flights *fl = calloc(1, sizeof *fl);
  if (!fl) return PC_ENOMEM;
  *fl = (struct pc_flights){
      .loop = loop, .cfg = cfg, .up = up, .port = port, .cache = cache, .shared = shared, .idle = idle, .ud = ud};
  if (uv_async_init(loop, &fl->xnotify, on_xnotify)) {
    free(fl);
    return PC_EIO;
  }
  fl->xnotify.data = fl;
  *out = fl;
  return 0;
}

static void flights_closed(uv_handle_t *h) { free(h->data); }

void pc_flights_close(struct pc_flights *fl) {
  if (!fl) return;
  uv_close((uv_handle_t *)&fl->xnotify, flights_closed);
}

int pc_flights_busy(const struct pc_flights *fl) { return fl->led || fl->rsubs; }

void pc_flights_abort_all(struct pc_flights *fl) {
  for (struct pc_flight *f = fl->led, *next; f; f = next) {
    next = f->next;
    if (f->storing) continue; /* the commit is about to report back */
    if (f->leasing) {         /* the lease's answer comes within the Redis timeout */
      f->aborted = 1;
      continue;
    }
    if (f->fetch) pc_upstream_abort(f->fetch);
    f->fetch = NULL;
    pc_shared_unfollow(f->follow);
    f->follow = NULL;
    f->rc = PC_ECANCELED;
    finish(f);
  }
}
