/* exchange.h — one request's journey through the request flow, and the
 * flow's per-loop state. The exchange holds what the flow decided (outcome,
 * key, route, model), what respond.c has written, and what the request waits
 * on (an expired entry kept for stale-if-error, a paced replay, a flight
 * subscription). proxy.c owns it: one per connection, created at its first
 * request, reset for each next one, freed when the connection is gone and
 * nothing the loop may still call holds it. respond.c writes through it. */
#ifndef PC_EXCHANGE_H
#define PC_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "buf.h"
#include "cache.h"
#include "config.h"
#include "entry.h"
#include "flight.h"
#include "http.h"
#include "key.h"
#include "stats.h"

struct pc_conn;
struct pc_worker;
struct pc_rawkey;
struct pc_upstream;
struct pc_wport;
struct pc_fleet;
struct pc_shared;
struct pc_wait;

/* Entries whose checksum this loop has verified (proxy.c decode_checked). */
#define PC_VERIFIED_SLOTS 4096
struct pc_verified {
  uint8_t key[16];
  int64_t created_ms;
  size_t len; /* 0: empty */
};

/* The request flow's per-loop state: shared by every exchange of the loop
 * (exchanges are handled one at a time per loop), so an idle connection
 * costs nothing here. */
struct pc_flow {
  struct pc_worker *worker;
  uv_loop_t *loop;
  const struct pc_config *cfg;
  pc_cache *cache;
  uint8_t secret[PC_CACHE_SECRET_LEN];
  struct pc_upstream *up;
  struct pc_wport *port;
  struct pc_flights *flights; /* this loop's side of single flight */
  struct pc_fleet *fleet;     /* this loop's side of the fleet (NULL without --redis) */
  struct pc_shared *shared;   /* its shared tier (Redis), or NULL */
  size_t n_waits;             /* requests waiting on the shared tier (shutdown waits for them) */
  struct pc_rawkey *rawkey;   /* recent raw requests → key (rawkey.h) */
  pc_buf scratch;             /* the canonical body of the request being keyed */
  pc_buf material;            /* its key material (handed to a flight on a miss) */
  pc_buf rawid;               /* its raw identity (rawkey.h) */
  pc_buf out;                 /* a hit's head (and framed stream) before it is written */
  size_t n_exchanges;         /* alive: the loop may end only when none remain */
  struct pc_verified verified[PC_VERIFIED_SLOTS];
};

/* The request headers the flow reads, found in one pass over the request
 * (proxy.c index_headers): namespace and controls, Connection, then every
 * family's credential headers and key headers (proxy.c, key.h), so the
 * memo, the fingerprint and the key read the same values; the route's
 * family says which of them count. */
enum {
  PC_H_NAMESPACE,
  PC_H_CACHE_CONTROL,
  PC_H_TTL,
  PC_H_PACING,
  PC_H_CONNECTION,
  PC_H_CRED0,
  PC_H_KEY0 = PC_H_CRED0 + 5, /* every family's credential headers (proxy.c) */
  PC_H_N = PC_H_KEY0 + PC_KEY_N_ALL
};

struct pc_hdrs {
  const char *v[PC_H_N]; /* NULL when absent; the first field of that name */
  size_t n[PC_H_N];
};

/* Where the exchange is; proxy.c's x_set_state() is the only writer. */
enum pc_x_state {
  PC_X_IDLE,     /* between requests */
  PC_X_DECIDING, /* proxy.c is deciding (synchronous) */
  PC_X_SHARED,   /* waiting for the shared tier (a lookup, a fleet-wide purge) */
  PC_X_REPLAY,   /* a paced replay of a stored stream is running on its timer */
  PC_X_FLIGHT,   /* subscribed to an upstream exchange (leader or follower) */
  PC_X_DONE      /* the response is complete or aborted; waiting for the transport's end */
};

/* What the response says about the cache, and what it has written so far. */
struct pc_resp {
  int status;
  const char *route;     /* for stats: route prefix, "" default (points into the config) */
  char model[96];        /* for stats: the request's model, if known */
  struct pc_usage usage; /* tokens of the entry served (HIT/STALE/COALESCED) */
  int err_class;         /* enum pc_err_class or -1 */
  int replay_miss;
  const char *extra_headers; /* complete "Name: value\r\n" lines added to the head */
  const char *cache;         /* X-PromptCache-Status value, or NULL for none */
  const char *tier;          /* X-PromptCache-Tier value (with --redis: "local" or "shared"), or NULL */
  int shared;                /* served from the shared tier, or by following another node (stats) */
  char key[PC_KEY_HEX_LEN + 1];
  int head_sent;
  int chunked;  /* body framed as HTTP/1.1 chunks */
  int no_body;  /* HEAD request or 1xx/204/304 status */
  int raw_body; /* HTTP/1.0 client: body bytes as they are, the connection closes at its end */
  uint64_t bytes;
  int64_t upstream_us;
};

/* A cache entry the exchange holds beyond a read txn: a hit being replayed
 * with pacing, or an expired entry kept for stale-if-error. `block` owns
 * the bytes. */
struct pc_held {
  char *block;
  struct pc_entry e;
  uint32_t next_chunk;
  uint64_t start_ns;
};

struct pc_exchange {
  struct pc_conn *conn; /* NULL once the connection is gone */
  struct pc_flow *flow;
  enum pc_x_state state;
  struct pc_resp resp;
  struct pc_sub sub;     /* our subscription to a flight */
  struct pc_held replay; /* paced SSE replay in progress */
  struct pc_held stale;  /* expired entry, served if upstream fails */
  int swallow;           /* upstream failed and stale will be served: drop its bytes */
  int stale_shared;      /* the stale entry came from the shared tier */
  struct pc_wait *wait;  /* what the exchange waits on in the shared tier (proxy.c), or NULL */
  struct pc_hdrs hdr;    /* the request's headers that matter here */
  uv_timer_t *pace;      /* the paced replay's timer, created on first use */
};

/* Free a held entry and forget it. */
static inline void pc_held_release(struct pc_held *h) {
  free(h->block);
  memset(h, 0, sizeof *h);
}

#endif
