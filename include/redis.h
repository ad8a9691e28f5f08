/* redis.h — the asynchronous Redis client under the shared (fleet) tier:
 * hiredis 0.14 on the caller's libuv loop, standalone or Redis Cluster. This
 * module owns every hiredis call in the program.
 *
 * One struct pc_redis per event loop, used only on that loop's thread (no
 * locks). What stays true:
 *  - nothing waits longer than its timeout: a command that is not answered in
 *    time completes with PC_ETIMEDOUT and its connection is dropped and
 *    reconnected (the others pending on it complete with PC_EUNAVAIL);
 *  - while a connection is down, commands for it fail at once (no queueing),
 *    except behind the very first connect of a connection, which is bounded by
 *    the command's own timeout;
 *  - in a cluster, MOVED and ASK are followed (at most PC_REDIS_MAX_REDIRECTS
 *    times per command) and never reach the caller;
 *  - the password is never part of a message, an error string or a log line.
 * The process must ignore SIGPIPE: hiredis 0.14 writes with write(2). */
#ifndef PC_REDIS_H
#define PC_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#define PC_REDIS_SLOTS 16384
#define PC_REDIS_DEFAULT_PORT 6379
#define PC_REDIS_DEFAULT_TIMEOUT_MS 250
/* MOVED/ASK redirects followed per command before it fails with PC_EPROTO. */
#define PC_REDIS_MAX_REDIRECTS 5

/* ---- URLs ---------------------------------------------------------------- */

/* redis://[user:password@]host[:port][/db], redis://:password@host, and (as
 * redis-cli reads it) redis://password@host. IPv6 hosts in brackets:
 * redis://[::1]:6379. User and password may be percent-encoded. */
struct pc_redis_url {
  char host[256];     /* without brackets */
  int port;           /* default 6379 */
  char user[128];     /* "": the default user */
  char password[256]; /* "": no AUTH */
  int db;             /* default 0; SELECT is sent only when not 0 (never in a cluster) */
};

/* Parse url into *out. Returns 0, or PC_EINVAL with a one-line message in err
 * (which never contains the password; err may be NULL). */
int pc_redis_parse_url(const char *url, struct pc_redis_url *out, char *err, size_t errlen);
/* Copy url into out (always NUL-terminated, truncated to n) with the password
 * replaced by "***". Works on malformed URLs too (best effort, never leaks a
 * userinfo part). */
void pc_redis_redact(const char *url, char *out, size_t n);

/* Redis Cluster hash slot of a key (CRC16/XMODEM mod 16384, {hashtag} rules):
 * "123456789" → 12739; "{user1000}.following" and "{user1000}.followers" share a slot. */
uint16_t pc_redis_key_slot(const char *key, size_t len);

/* ---- Client -------------------------------------------------------------- */

struct pc_redis_config {
  const char *const *urls;    /* one: a standalone server or a cluster seed; several: seeds of one cluster */
  size_t n_urls;              /* 1..64 */
  int64_t timeout_ms;         /* per command; 0: PC_REDIS_DEFAULT_TIMEOUT_MS */
  int64_t connect_timeout_ms; /* TCP connect + AUTH/SELECT/PING handshake; 0: max(1000, timeout_ms) */
};

struct redisReply;
/* Completion of one command. reply is borrowed for the call (copy what you
 * keep). rc is 0 (reply non-NULL), PC_ETIMEDOUT, PC_EUNAVAIL (connection lost or
 * node unreachable), PC_ECANCELED (pc_redis_destroy) or PC_EPROTO (more than
 * PC_REDIS_MAX_REDIRECTS redirects, as mid-reconfiguration, or an unreadable
 * one). An error reply other than MOVED/ASK (which are followed) arrives with
 * rc 0 and reply->type == REDIS_REPLY_ERROR. */
typedef void (*pc_redis_cb)(void *ud, int rc, const struct redisReply *reply);

struct pc_redis_cmd {
  int argc;
  const char *const *argv;
  const size_t *argvlen; /* NULL: every argument is a C string */
  int key_index;         /* argv index of the key that routes it in a cluster; -1: any master */
  int node;              /* >= 0: this master (0..pc_redis_masters()-1), overrides key_index; -1: none */
  int dedicated;         /* blocking command (XREAD BLOCK...): on a connection of its own, delaying nothing */
  int64_t timeout_ms;    /* 0: the configured timeout; blocking commands pass their block time + the timeout */
};

struct pc_redis;

/* Create a client on loop and start connecting to the seeds (non-blocking;
 * the rest happens as the loop runs). The mode (standalone or cluster) is
 * learnt with CLUSTER SLOTS on the first connection ready; credentials come
 * from the first URL that has a password, the db from the first URL (a db
 * other than 0 in a cluster fails every handshake). Returns 0, PC_EINVAL (a bad
 * URL or config: pc_redis_parse_url says why) or PC_ENOMEM. hiredis 0.14
 * resolves hostnames synchronously at each connect: prefer IP addresses. */
int pc_redis_create(uv_loop_t *loop, const struct pc_redis_config *cfg, struct pc_redis **out);
/* Every command still pending completes with PC_ECANCELED before this returns;
 * later calls on r fail with PC_ECANCELED (pc_redis_destroy again: nothing).
 * Memory is released in close callbacks: run the loop afterwards (uv_run)
 * before closing it. Safe inside any callback of this client. */
void pc_redis_destroy(struct pc_redis *r);

/* Send one command, pipelined with the others on its connection. Returns 0 and
 * then cb runs exactly once, never inside this call; or an error, and cb never
 * runs: PC_EINVAL (bad cmd, node out of range, (P|S)(UN)SUBSCRIBE or MONITOR:
 * see pc_redis_subscribe), PC_EUNAVAIL (its connection is
 * down, or the mode is not known yet for cmd->node), PC_EBUSY (32 dedicated
 * connections to that node busy), PC_ECANCELED (destroyed), PC_ENOMEM.
 * Arguments are copied: cmd and its buffers may go when this returns. */
int pc_redis_command(struct pc_redis *r, const struct pc_redis_cmd *cmd, pc_redis_cb cb, void *ud);

/* Masters in the current slot map (standalone: 1; 0 until the mode is known).
 * Indexes for pc_redis_cmd.node refer to the map at the time of the call. */
size_t pc_redis_masters(const struct pc_redis *r);
/* "host:port" ("[v6]:port") of master i into out. Returns 0 or PC_EINVAL. */
int pc_redis_master_name(const struct pc_redis *r, size_t i, char *out, size_t n);
/* 1 when the mode is known and every master's connection is ready (standalone: the one). */
int pc_redis_is_up(const struct pc_redis *r);
/* For command-line tools and tests: run r's loop (UV_RUN_ONCE) until
 * pc_redis_is_up() or timeout_ms passed. Returns 0, PC_ETIMEDOUT
 * (pc_redis_last_error() says why) or PC_ECANCELED. Never call it from a
 * callback running on that loop. */
int pc_redis_wait_ready(struct pc_redis *r, int64_t timeout_ms);
/* The last connection-level problem ("127.0.0.1:6379: WRONGPASS ..."), "" if
 * none; never contains a password. Valid until the next call into r. */
const char *pc_redis_last_error(const struct pc_redis *r);

/* Pub/sub on a connection of its own (to any master), subscribed again after
 * every reconnect. on_up(ud) runs after each (re)subscription to channel is
 * confirmed, so the caller can catch up on what it missed while down;
 * on_message(ud, p, n) for each message (p borrowed for the call). Either may
 * be NULL. Returns 0, PC_EINVAL, PC_ENOMEM or PC_ECANCELED. The channels share
 * the connection; a channel subscribed twice keeps only the last callbacks. */
int pc_redis_subscribe(struct pc_redis *r, const char *channel, void (*on_message)(void *ud, const char *p, size_t n),
                       void (*on_up)(void *ud), void *ud);

/* ---- Counters ------------------------------------------------------------ */

/* Latency histogram of completed commands (rc 0; not blocking ones): bucket i counts latencies in
 * (bound[i-1], bound[i]] µs, the last bucket everything above the last bound.
 * Buckets are not cumulative: a Prometheus exporter sums them. */
#define PC_REDIS_LATENCY_BUCKETS 14
extern const uint64_t pc_redis_latency_bounds_us[PC_REDIS_LATENCY_BUCKETS - 1];

struct pc_redis_counters {
  uint64_t commands;   /* pc_redis_command calls with a valid cmd */
  uint64_t errors;     /* of those, failed at once or with rc other than 0 and PC_ECANCELED */
  uint64_t timeouts;   /* completed with PC_ETIMEDOUT */
  uint64_t reconnects; /* connections ready again after being lost */
  uint64_t moved, ask; /* redirects followed */
  uint64_t latency_us_buckets[PC_REDIS_LATENCY_BUCKETS];
  uint64_t latency_us_sum;
  uint64_t latency_count;
};

/* Copy r's counters (on r's loop thread). */
void pc_redis_get_counters(const struct pc_redis *r, struct pc_redis_counters *out);

#endif
