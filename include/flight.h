/* flight.h — one upstream exchange in progress and the clients waiting on
 * it. A flight owns everything the exchange needs (URL, headers, body), so a
 * client that disconnects does not cut the exchange short: it only leaves.
 * While the response arrives, the flight passes every byte to its
 * subscriber(s) and records it; on a complete 200 of a storable request it
 * writes the entry to the cache. */
#ifndef PC_FLIGHT_H
#define PC_FLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "key.h"

struct pc_worker;
struct pc_flight;
struct curl_slist;

struct pc_sub;
struct pc_sub_ops {
  /* Response head for the client: status and header lines already filtered
   * (no hop-by-hop, Content-Length or Content-Encoding). */
  void (*on_head)(struct pc_sub *s, int status, const char *headers, size_t len);
  void (*on_body)(struct pc_sub *s, const char *p, size_t n);
  /* 0: the response is complete; else a PC_EUP* code. The subscription is
   * over when this returns. */
  void (*on_end)(struct pc_sub *s, int rc, int64_t upstream_us);
};

#include "stats.h"

struct pc_rsub;

struct pc_sub {
  const struct pc_sub_ops *ops;
  struct pc_flight *flight;  /* a flight on our own loop */
  struct pc_rsub *remote;    /* or a remote subscription to another loop's flight */
  struct pc_sub *next;
  int follower;          /* joined an exchange another request started */
  struct pc_usage usage; /* set before on_end: tokens of the response */
};

/* Where a stored stream must end (see sse.h); PC_SSE_NONE for plain JSON. */
#include "sse.h"

struct pc_flight_req {
  const char *method;
  pc_buf url;                 /* taken over */
  struct curl_slist *headers; /* taken over */
  pc_buf body;                /* taken over */
  int store;                  /* store a complete 200 in the cache */
  int coalesce;               /* identical requests may join this exchange */
  int stream;                 /* the request asked for a stream */
  enum pc_sse_terminal terminal; /* a stored stream must contain this event */
  struct pc_key key;
  pc_buf material;            /* key material (canonical request), taken over when store */
  char ns[256];
  char route[256];
  char path[1024];
  char model[128];
  int64_t ttl_ms;
};

/* Start the exchange with `sub` as its first subscriber. If an identical
 * coalescable exchange is in flight (on any worker), `sub`
 * joins it instead and PC_EEXISTS is returned: the request's buffers are
 * still the caller's, as on any other error. On 0 the flight owns them, and
 * even a failure to start is reported through the sub's on_end. */
int pc_flight_start(struct pc_worker *w, struct pc_flight_req *req, struct pc_sub *sub);
/* The worker's loop was woken for its remote subscriptions: deliver. */
void pc_flight_pull_remote(struct pc_worker *w);

/* The subscriber's client went away: no more callbacks to it. The exchange
 * goes on (its answer may still be stored). */
void pc_flight_leave(struct pc_sub *sub);
/* Abort every flight (shutdown). */
void pc_flight_abort_all(struct pc_worker *w);

#endif
