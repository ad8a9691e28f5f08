/* stats.h — process-wide counters (lock-free on the hot path: relaxed
 * atomics), latency histograms, per route×model rows, tokens and money
 * saved, and lifetime totals persisted in the cache's meta database.
 * Rendered as JSON (/_promptcache/stats, `promptcache stats`) and as
 * Prometheus text (/_promptcache/metrics). */
#ifndef PC_STATS_H
#define PC_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct pc_cache;
struct pc_config;

enum pc_outcome {
  PC_OUT_HIT,
  PC_OUT_MISS,
  PC_OUT_COALESCED,
  PC_OUT_BYPASS,
  PC_OUT_REFRESH,
  PC_OUT_STALE,
  PC_OUT_REPLAY_MISS,
  PC_OUT_ADMIN, /* admin endpoints and proxy-generated errors before routing */
  PC_OUT_N
};

enum pc_err_class {
  PC_ERRC_UPSTREAM_CONNECT,
  PC_ERRC_UPSTREAM_TIMEOUT,
  PC_ERRC_UPSTREAM_PROTOCOL,
  PC_ERRC_UPSTREAM_5XX,
  PC_ERRC_UPSTREAM_429,
  PC_ERRC_UPSTREAM_4XX,
  PC_ERRC_CLIENT, /* 4xx the proxy itself answered: malformed, too large, timeouts */
  PC_ERRC_N
};

/* Token usage as stored with an entry (normalized across providers). */
struct pc_usage {
  uint64_t input, output, cached_input, cache_write;
  int present;
};

/* One finished request, as the hot path reports it. */
struct pc_stats_req {
  enum pc_outcome outcome;
  const char *route; /* route prefix, "" for the default upstream */
  const char *model; /* "" when unknown */
  int status;
  int64_t upstream_us; /* -1 when upstream was not contacted */
  int64_t total_us;
  uint64_t bytes;
  struct pc_usage usage; /* of the served entry (HIT/STALE/COALESCED) */
  int err_class;         /* -1 or enum pc_err_class */
  int shared;            /* HIT: served from the shared tier (Redis); COALESCED: followed another node */
};

int pc_stats_init(const struct pc_config *cfg);
void pc_stats_record(const struct pc_stats_req *r);
void pc_stats_eviction(uint64_t n);
/* A complete, storable answer could not be stored (full disk, LMDB error). */
void pc_stats_store_failed(void);
/* Gauges: an upstream exchange (followers 0) or a request waiting on one
 * (followers 1) began (+1) or ended (-1). */
void pc_stats_inflight(int followers, int delta);
/* Gauge deltas of the raw-request memo (rawkey.h). */
void pc_stats_memo(int64_t entries, int64_t bytes);
/* The shared tier (fleet.h): each loop's client counters, copied in by its
 * own loop (slot = loop index, < 64) every second; a shared value that
 * failed verification (checksum, format, stored request) was not served. */
struct pc_shared_counters;
void pc_stats_shared(int slot, const struct pc_shared_counters *c, int up);
void pc_stats_shared_corrupt(void);
/* The fleet's totals as last read from Redis ({"nodes":N,"totals":{..}},
 * NULL: unknown), shown in /stats and the dashboard. */
void pc_stats_fleet(const char *json, size_t n);
/* This node's lifetime totals as published to the fleet (fleet.c). */
int pc_stats_node_json(pc_buf *out);
/* Replay misses in this run (for --fail-on-miss). */
uint64_t pc_stats_replay_misses(void);

/* Lifetime totals: loaded at start, written back in batches (from the sync
 * timer and at shutdown), never per request. */
int pc_stats_load_lifetime(struct pc_cache *c);
int pc_stats_save_lifetime(struct pc_cache *c);
/* The same record, as JSON text, for a caller that writes it itself (the
 * serving process hands it to its writer thread). */
int pc_stats_lifetime_json(pc_buf *out);

/* JSON object for /_promptcache/stats (cache figures from `c`). */
int pc_stats_json(struct pc_cache *c, pc_buf *out);
/* Prometheus text exposition format 0.0.4. */
int pc_stats_prometheus(struct pc_cache *c, pc_buf *out);

/* Parse a usage block out of a response body (JSON or an SSE stream).
 * Returns 0, or PC_EJSON when a body read as JSON does not parse (the one
 * parse tells the flight both the tokens and whether a JSON answer is
 * whole). */
int pc_usage_from_body(const char *body, size_t n, int sse, struct pc_usage *u);
/* Normalized usage ⇄ the compact JSON text kept in an entry. */
int pc_usage_write(const struct pc_usage *u, pc_buf *out);
void pc_usage_read(const char *p, size_t n, struct pc_usage *u);

#endif
