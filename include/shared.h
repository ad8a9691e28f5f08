/* shared.h — the shared (fleet) tier on Redis (SPEC §10): several nodes share
 * one cache, each node's LMDB staying its local tier. Built on redis.h (which
 * owns every hiredis call); one struct pc_shared per event loop, used only on
 * that loop's thread (no locks).
 *
 * What stays true:
 *  - every Redis key this module touches starts with the configured prefix;
 *  - nothing waits longer than the per-command timeout (a blocking stream read
 *    waits its block time plus the timeout), and while Redis is down every
 *    operation fails at once or within the timeout: the caller goes on without
 *    the shared tier;
 *  - values are moved as bytes: the caller encodes and verifies entries
 *    (entry.h checksum, canonical request compare);
 *  - asynchronous operations follow redis.h: a call returns 0 and its callback
 *    then runs exactly once, never inside the call; or it returns an error and
 *    the callback never runs. Callbacks get PC_ECANCELED when the module is
 *    destroyed with them pending.
 *
 * Redis layout (P = prefix):
 *   P e:<hex32>          entry (the encoded entry's bytes), PX = its TTL
 *   P ix:{ix}:age        ZSET hex -> created_ms           the index, for purges
 *   P ix:{ix}:exp        ZSET hex -> expiry (server ms)   by namespace and age:
 *   P ix:{ix}:ns         ZSET "<nshash16>:<hex>", score 0 one slot (hash tag {ix}),
 *   P ix:{ix}:meta       HASH hex -> "<version>:<nshash16>"; "v" -> put counter
 *                        (changed only by Lua scripts; a put drops expired members)
 *   P purges             STREAM purge log (MAXLEN ~ 10000), fields sel, node
 *   P purge              pub/sub channel: "a purge was logged" (payload: id)
 *   P stats              HASH node_id -> "<updated_ms> <json>"
 *   P secret             the fleet secret (32 bytes)
 *   P l:{<hex32>}        lease of a key being fetched (value "<node_id>:<token>")
 *   P s:{<hex32>}        the leader's live response stream (same slot as the lease)
 * The prefix may not contain '{' or '}' (the hash tags above must stay ours).
 * nshash16 is XXH3-64 of the namespace in hex. The module's one timer (lease
 * renewals, polls) keeps the loop alive until pc_shared_destroy. */
#ifndef PC_SHARED_H
#define PC_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "redis.h"

#define PC_SHARED_DEFAULT_PREFIX "pc:"
#define PC_SHARED_MAX_PREFIX 64
#define PC_SHARED_MAX_NODE_ID 128
#define PC_SHARED_DEFAULT_MAX_VALUE ((size_t)16 << 20)
#define PC_SHARED_DEFAULT_MAX_INFLIGHT ((size_t)64 << 20)
#define PC_SHARED_MIN_LEASE_MS 2000
/* Purge log length kept in Redis (approximately: MAXLEN ~). */
#define PC_SHARED_PURGE_LOG_MAXLEN 10000
/* A node's stats record is dropped when not refreshed for this long. */
#define PC_SHARED_STATS_TTL_MS (7LL * 24 * 3600 * 1000)
/* A response stream lingers this long after its lease is released, so a
 * follower that joins late still reads it whole. */
#define PC_SHARED_STREAM_LINGER_MS 60000
/* A follower's blocking read; with nothing new for this long, it checks the lease. */
#define PC_SHARED_FOLLOW_BLOCK_MS 500

struct pc_shared_config {
  const char *const *urls; /* --redis (several: seeds of one cluster) */
  size_t n_urls;
  const char *prefix;  /* --redis-prefix; NULL: "pc:"; at most 64 bytes, no '{' or '}' */
  size_t max_value;    /* --redis-max-value; 0: 16 MiB. Larger values stay node-local */
  int64_t timeout_ms;  /* --redis-timeout, per command; 0: 250 */
  const char *node_id; /* this node's name (fleet stats, lease owner), 1..128 bytes */
  size_t max_inflight; /* unanswered bytes allowed for puts, and separately for stream
                          publishing; 0: 64 MiB (hiredis' output buffer is unbounded) */
  int64_t lease_ms;    /* lease lifetime; 0: max(2 s, 8 x timeout); renewed every third of it */
};

struct pc_shared;
struct pc_purge_sel;

/* Create the module on loop and start connecting (non-blocking). Returns 0,
 * PC_EINVAL (bad URL, prefix or node id) or PC_ENOMEM. */
int pc_shared_create(uv_loop_t *loop, const struct pc_shared_config *cfg, struct pc_shared **out);
/* Every pending callback runs with PC_ECANCELED before this returns (follows
 * get on_done(PC_ECANCELED)); leases are neither renewed nor released any
 * more (as if the node died) but stay the caller's: pc_shared_lease_release
 * still frees them. Memory is released in close callbacks: run the loop
 * afterwards. Safe inside any callback of this module. NULL: nothing. */
void pc_shared_destroy(struct pc_shared *s);
/* 1 when Redis is reachable now (every master connected): /health "shared". */
int pc_shared_up(const struct pc_shared *s);
/* The underlying client (tests and tools: pc_redis_wait_ready). */
struct pc_redis *pc_shared_redis(const struct pc_shared *s);

/* ---- Entries ----------------------------------------------------------- */

/* rc 0: found, val (borrowed for the call) holds n bytes; PC_ENOTFOUND; or an
 * error (PC_ETIMEDOUT, PC_EUNAVAIL, PC_EPROTO, PC_ECANCELED): a miss to the caller. */
typedef void (*pc_shared_get_cb)(void *ud, int rc, const char *val, size_t n);
typedef void (*pc_shared_done_cb)(void *ud, int rc);

int pc_shared_get(struct pc_shared *s, const uint8_t key[16], pc_shared_get_cb cb, void *ud);
/* Store val (copied before this returns) under key, expiring after ttl_ms
 * (0: never), indexed by namespace (ns, nslen bytes) and created_ms for
 * purges. The entry is written first, then the index, so that a purge racing
 * with the put never leaves the entry unindexed. Returns PC_ETOOBIG (n over
 * max_value) or PC_EBUSY (max_inflight bytes of puts unanswered) without
 * touching Redis. cb: 0, or an error (then nothing is left half-indexed: an
 * entry whose index update failed is deleted again, best effort). */
int pc_shared_put(struct pc_shared *s, const uint8_t key[16], const char *val, size_t n, int64_t ttl_ms, const char *ns,
                  size_t nslen, int64_t created_ms, pc_shared_done_cb cb, void *ud);
/* Delete one entry (and its index records). cb: 0, PC_ENOTFOUND, or an error. */
int pc_shared_del(struct pc_shared *s, const uint8_t key[16], pc_shared_done_cb cb, void *ud);

/* ---- Fleet-wide purge ---------------------------------------------------- */

/* Delete the selected entries from Redis (exactly one selector set, as
 * pc_purge: all: SCAN of every master; key; namespace and older_than: the
 * index), then append the selector to the purge log and PUBLISH a
 * notification. done(rc, deleted): rc 0 when all of it was done; on an error
 * the log is not appended (the caller retries; what was deleted stays so).
 * older_than is logged as an absolute cutoff (now - older_than_ms on this
 * node's clock). */
int pc_shared_purge(struct pc_shared *s, const struct pc_purge_sel *sel,
                    void (*done)(void *ud, int rc, size_t deleted_in_redis), void *ud);

/* Apply the fleet's purges to the local tier. Subscribes to the channel; on
 * every (re)subscription, every notification and every 10 s (pub/sub may lose
 * messages) reads the log after the last id applied and calls apply() for
 * each entry in order, this node's own purges included (applying twice is
 * harmless). sel is valid for the call only; an older_than purge arrives with
 * older_than_ms recomputed from the logged cutoff and the local clock (at
 * least 1), so a node that applies it late deletes no more than was meant.
 * last_applied_id: the last id this node applied ("" or NULL: none; then every
 * entry still in the log is applied). If the log no longer reaches back to
 * it (trimmed, or the stream was recreated, e.g. Redis restarted empty),
 * reset(id) runs instead: the caller drops its whole local tier; id is the
 * newest entry ("" when the log is empty). The caller persists every id it
 * gets and passes the last one at the next start. Returns 0, PC_EINVAL (once
 * per module, or an id longer than 40 bytes), PC_ENOMEM, PC_ECANCELED. */
int pc_shared_watch_purges(struct pc_shared *s, const char *last_applied_id,
                           void (*apply)(void *ud, const struct pc_purge_sel *sel, const char *id),
                           void (*reset)(void *ud, const char *id), void *ud);

/* ---- Fleet stats and the fleet secret ------------------------------------ */

/* Store this node's totals (json, n bytes) in P stats, stamped with the time
 * and refreshing the record's expiry. Fire and forget: returns 0 when sent. */
int pc_shared_publish_stats(struct pc_shared *s, const char *json, size_t n);
/* Every node's record, one row() each (node and json borrowed for the call;
 * updated_ms: when that node last published), then done(rc). Records not
 * refreshed for PC_SHARED_STATS_TTL_MS are skipped (and removed). */
int pc_shared_read_stats(struct pc_shared *s,
                         void (*row)(void *ud, const char *node, const char *json, size_t n, int64_t updated_ms),
                         void (*done)(void *ud, int rc), void *ud);
/* The fleet secret: SET P secret NX with the proposed bytes, then GET it, so
 * every node ends with the first proposal that landed. cb: 0 with the 32
 * bytes (borrowed for the call), PC_ECORRUPT (the stored value is not 32
 * bytes long), or an error. */
int pc_shared_secret(struct pc_shared *s, const uint8_t proposed[32],
                     void (*cb)(void *ud, int rc, const uint8_t secret[32]), void *ud);

/* ---- Counters ------------------------------------------------------------ */

enum pc_shared_op {
  PC_SHARED_OP_GET,
  PC_SHARED_OP_PUT,
  PC_SHARED_OP_DEL,
  PC_SHARED_OP_PURGE,
  PC_SHARED_OP_LEASE,   /* lease attempts (and takeover attempts) */
  PC_SHARED_OP_PUBLISH, /* stream entries published by leaders, stats records */
  PC_SHARED_OP_FOLLOW,
  PC_SHARED_OPS
};
/* "get", "put", ... (for /metrics labels). */
extern const char *const pc_shared_op_names[PC_SHARED_OPS];

struct pc_shared_counters {
  uint64_t ops[PC_SHARED_OPS];      /* operations started (calls that returned 0) */
  uint64_t hits, misses;            /* gets found / not found */
  uint64_t errors;                  /* operations that failed (not canceled, not found, lease held elsewhere) */
  uint64_t timeouts;                /* of those, PC_ETIMEDOUT */
  uint64_t too_big;                 /* puts refused for max_value */
  uint64_t busy;                    /* puts refused and streams aborted for max_inflight */
  uint64_t leases_won, leases_held; /* PC_EEXISTS: another node leads */
  uint64_t takeovers;               /* a follower took a dead leader's lease */
  uint64_t follows_cut;             /* follows ended with PC_EUPPROTO (dead leader, trimmed, gap) */
  uint64_t purges_applied, purge_resets;
  struct pc_redis_counters redis; /* commands, reconnects, latency histogram */
};

/* Copy s's counters (on s's loop thread). */
void pc_shared_get_counters(const struct pc_shared *s, struct pc_shared_counters *out);

/* ---- Single flight across the fleet -------------------------------------- */

struct pc_shared_lease;
struct pc_shared_follow;

/* Try to lead the fetch of key: SET P l:{hex} NX PX lease_ms (a fresh lease
 * also empties the key's old stream). cb rc 0: we lead, l is ours until
 * pc_shared_lease_release, and the module renews it every lease_ms/3;
 * PC_EEXISTS: another node leads (follow it: pc_shared_follow); any other
 * rc: Redis is unusable, lead locally without a lease (l is NULL then). */
int pc_shared_lease(struct pc_shared *s, const uint8_t key[16], void (*cb)(void *ud, int rc, struct pc_shared_lease *l),
                    void *ud);

/* Leader publishing, as the response arrives; never waits. Each call appends
 * one entry to the stream, tagged with the lease's token and a sequence
 * number. If more than max_inflight bytes of publishing are unanswered, or an
 * append fails, or the lease was lost, publishing stops and an aborted end is
 * appended, so followers are cut rather than given a body with a hole. The
 * return value is informative (0 sent; else why not), the leader goes on
 * either way. headers / p / usage are copied before the call returns. */
int pc_shared_pub_head(struct pc_shared_lease *l, int status, const char *headers, size_t n);
int pc_shared_pub_chunk(struct pc_shared_lease *l, uint32_t t_ms, const char *p, size_t n);
/* rc 0: complete; else the PC_E* code every follower gets in on_done. */
int pc_shared_pub_end(struct pc_shared_lease *l, int rc, const char *usage, size_t un);
/* Compare-and-delete the lease (if still ours) and let the stream expire in
 * PC_SHARED_STREAM_LINGER_MS; l is freed (the caller must not use it again).
 * Released after a head but without an end: an aborted end is appended
 * first. Released before any head: followers find no lease and one takes
 * over. NULL: nothing. */
void pc_shared_lease_release(struct pc_shared_lease *l);
/* 1 while the lease is (believed) ours: renewed in time, not released. */
int pc_shared_lease_held(const struct pc_shared_lease *l);

struct pc_shared_follow_ops {
  void (*on_head)(void *ud, int status, const char *headers, size_t n);
  /* t_ms: the chunk's arrival time after the leader's first chunk. */
  void (*on_body)(void *ud, const char *p, size_t n, uint32_t t_ms);
  /* The follow is over when this returns (f is freed): rc 0 and the usage
   * JSON the leader published; the leader's error; PC_EUPPROTO (cut: the
   * leader died after this follower got bytes, the stream's start was
   * trimmed, or entries were missing); PC_EUNAVAIL (Redis unreachable);
   * PC_ECANCELED (pc_shared_destroy). */
  void (*on_done)(void *ud, int rc, const char *usage, size_t un);
  /* The leader died before this follower got anything and this follower won
   * its lease: the caller now leads with l (goes upstream, publishes, then
   * releases). The follow is over when this returns (f is freed). */
  void (*on_takeover)(void *ud, struct pc_shared_lease *l);
};

/* Follow the leader of key on another node: everything it already published
 * first, then each entry as it arrives (never waiting for the end). ops
 * must outlive the follow. Returns NULL when the first read cannot be sent
 * (Redis known to be down, out of memory, s destroyed): the caller then
 * leads locally. A follow started while Redis is unreachable but not yet
 * known to be ends soon with on_done(PC_EUNAVAIL). */
struct pc_shared_follow *pc_shared_follow(struct pc_shared *s, const uint8_t key[16],
                                          const struct pc_shared_follow_ops *ops, void *ud);
/* Stop following: no callback after this returns. Not after on_done or
 * on_takeover (the follow is already over). NULL: nothing. */
void pc_shared_unfollow(struct pc_shared_follow *f);

#endif
