/* fleet.h — this node's side of a fleet (SPEC §10), around the shared tier
 * (shared.h): the node's name; the fleet secret, agreed before any loop
 * serves, so credential fingerprints (and so keys) are the same on every
 * node; and per event loop one struct pc_fleet owning that loop's
 * pc_shared, with the node's chores on a one-second timer: the loop's
 * Redis counters copied into stats; on the first loop only, the fleet's
 * purges applied to the local tier (LMDB), this node's totals published
 * and the fleet's totals read every 10 s. Also the fleet totals summary
 * that `promptcache stats --redis` prints and /stats shows. */
#ifndef PC_FLEET_H
#define PC_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "cache.h"
#include "config.h"
#include "shared.h"

struct pc_writer;
struct pc_fleet;

/* "<hostname>:<port>": the port the first --listen is bound to (port
 * <= 0: as configured; ":pid<pid>" if that is 0 too), truncated to fit. */
void pc_fleet_node_id(const struct pc_config *cfg, int port, char out[PC_SHARED_MAX_NODE_ID + 1]);

/* The shared tier's settings from the configuration (urls and prefix
 * point into cfg). */
void pc_fleet_shared_config(const struct pc_config *cfg, const char *node_id, struct pc_shared_config *out);

/* Before the loops run, with a Redis configured: propose this database's
 * credential secret as the fleet's, and adopt the fleet's if another node
 * set it first (pc_cache_set_secret). Waits at most a few --redis-timeouts:
 * when Redis cannot be reached the node starts with its own secret (a
 * warning says what that means) and 0 is returned. Errors: PC_EINVAL (bad
 * settings), PC_ECORRUPT (the stored secret is not 32 bytes), PC_ENOMEM,
 * or the cache's error. */
int pc_fleet_agree_secret(const struct pc_config *cfg, pc_cache *cache);

struct pc_fleet_opts {
  const struct pc_config *cfg;
  pc_cache *cache;
  struct pc_writer *writer; /* persists the last purge applied (meta "fleet_purge") */
  int port;                 /* the first --listen's bound port: the node's name (pc_fleet_node_id) */
  int slot;                 /* the loop's index: its counters' slot in stats */
  int primary;              /* the first loop: purges, fleet stats */
};

/* NULL (and 0) when no Redis is configured. */
int pc_fleet_open(uv_loop_t *loop, const struct pc_fleet_opts *o, struct pc_fleet **out);
struct pc_shared *pc_fleet_shared(const struct pc_fleet *f);
/* Stop the chores and destroy the shared tier (its pending callbacks run
 * with PC_ECANCELED first); memory goes in close callbacks. NULL: nothing. */
void pc_fleet_close(struct pc_fleet *f);

/* ---- Fleet totals -------------------------------------------------------- */

/* One node's published totals (pc_stats_node_json), or their sum. */
struct pc_fleet_node {
  char node[PC_SHARED_MAX_NODE_ID + 1];
  int64_t updated_ms;
  uint64_t requests, hits, hits_shared, coalesced, fleet_coalesced, misses, lookups;
  uint64_t tokens_in, tokens_out;
  double money;
};

/* Parse one node's record; PC_EJSON when it is not a totals object. */
int pc_fleet_node_parse(const char *node, const char *json, size_t n, int64_t updated_ms, struct pc_fleet_node *out);
void pc_fleet_node_add(struct pc_fleet_node *sum, const struct pc_fleet_node *n);
/* {"nodes":[...]|N,"totals":{...}}: with list, every node's row; else the count. */
int pc_fleet_summary_json(const struct pc_fleet_node *nodes, size_t n, int list, pc_buf *out);
double pc_fleet_hit_ratio(const struct pc_fleet_node *n);

#endif
