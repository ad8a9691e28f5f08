/* flight.h — one upstream exchange in progress and the clients waiting on
 * it (single flight). A flight owns everything the exchange needs (URL,
 * headers, body), so a client that disconnects does not cut the exchange
 * short: it only leaves. While the response arrives, the flight passes
 * every byte to its subscriber(s) and records it; on a complete 200 of a
 * storable request it writes the entry to the cache and keeps accepting
 * identical requests until the entry is committed (after that they hit).
 * Each event loop has its side of single flight (struct pc_flights);
 * identical requests on other loops join through a registry shared by the
 * process. */
#ifndef PC_FLIGHT_H
#define PC_FLIGHT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "cache.h"
#include "config.h"
#include "key.h"
#include "sse.h"
#include "stats.h"

struct pc_flight;
struct pc_flights;
struct pc_upstream;
struct pc_wport;
struct curl_slist;
struct pc_rsub;
struct pc_sub;
struct pc_shared;

struct pc_sub_ops {
  /* Response head for the client: status and header lines already filtered
   * (no hop-by-hop, Content-Length or Content-Encoding). */
  void (*on_head)(struct pc_sub *s, int status, const char *headers, size_t len);
  void (*on_body)(struct pc_sub *s, const char *p, size_t n);
  /* 0: the response is complete; else a PC_EUP* code. The subscription is
   * over when this returns. */
  void (*on_end)(struct pc_sub *s, int rc, int64_t upstream_us);
  /* Optional: the whole body was delivered and on_end waits for the entry's
   * commit (a subscriber may keep its output back to send it with the end). */
  void (*on_storing)(struct pc_sub *s);
};

/* A subscriber's handle, embedded in whoever subscribes. */
struct pc_sub {
  const struct pc_sub_ops *ops;
  struct pc_flight *flight; /* a flight on our own loop */
  struct pc_rsub *remote;   /* or a remote subscription to another loop's flight */
  struct pc_sub *next;
  int follower;          /* joined an exchange another request started */
  int fleet;             /* ... on another node (fleet single flight) */
  struct pc_usage usage; /* set before on_end: tokens of the response */
};

/* What a flight needs; pc_flight_start takes over the buffers and strings. */
struct pc_flight_req {
  const char *method;
  pc_buf url;
  struct curl_slist *headers;
  pc_buf body;
  int store;                     /* store a complete 200 in the cache */
  int any_status;                /* record mode: store a complete answer whatever its status */
  int sequence;                  /* record mode: answers to the same request form a sequence (sequence.h) */
  int coalesce;                  /* identical requests may join this exchange */
  int stream;                    /* the request asked for a stream */
  enum pc_sse_terminal terminal; /* a stored stream must contain this event (the default family) */
  const struct pc_api *api;      /* the route's API (family.h): completeness, usage, Bedrock signing */
  struct pc_key key;
  pc_buf material;                 /* key material (canonical request), kept in the entry */
  char *ns, *route, *path, *model; /* malloc'd (NULL = ""), for the entry */
  int64_t ttl_ms;
};

/* Free whatever of `req` was not taken over (safe on a zeroed req). */
void pc_flight_req_free(struct pc_flight_req *req);

/* One loop's side of single flight. `idle` runs on the loop whenever the
 * last of its flights and remote subscriptions has ended (shutdown waits
 * for it). */
int pc_flights_create(uv_loop_t *loop, const struct pc_config *cfg, struct pc_upstream *up, struct pc_wport *port,
                      pc_cache *cache, struct pc_shared *shared, void (*idle)(void *ud), void *ud,
                      struct pc_flights **out);
/* Close the loop's handles (frees in their close callbacks); no flight may
 * be alive. */
void pc_flights_close(struct pc_flights *fl);
/* Flights led by this loop or followed from it are still alive. */
int pc_flights_busy(const struct pc_flights *fl);
/* Abort every flight this loop leads (shutdown). */
void pc_flights_abort_all(struct pc_flights *fl);

/* Start the exchange with `sub` as its first subscriber. If an identical
 * coalescable exchange is in flight (on any loop), `sub` joins it instead
 * and PC_EEXISTS is returned: the request's buffers are still the caller's,
 * as on any other error. On 0 the flight owns them, and even a failure to
 * start is reported through the sub's on_end. */
int pc_flight_start(struct pc_flights *fl, struct pc_flight_req *req, struct pc_sub *sub);
/* An identical coalescable exchange is in flight on some loop of this
 * process (a lookup elsewhere would be wasted: joining it is the answer). */
int pc_flight_joinable(const struct pc_key *key);
/* The subscriber's client went away: no more callbacks to it. The exchange
 * goes on (its answer may still be stored). */
void pc_flight_leave(struct pc_sub *sub);

#endif
