/* shared.c — the shared (fleet) tier on Redis: entries and their index,
 * fleet-wide purges with a purge log, fleet stats, the fleet secret, and
 * single flight across nodes (leases, leaders publishing into a stream,
 * followers reading it live). Every Redis command goes through redis.h; no
 * hiredis call here (replies are only read).
 *
 * Ownership, in one place:
 *  - an operation (get, put, purge, ...) is a malloc'd struct owned by the
 *    command in flight for it: each redis callback either sends the next
 *    command or finishes (user callback, then free). redis.h calls back
 *    exactly once per accepted command, PC_ECANCELED included, so nothing
 *    is lost at destroy;
 *  - leases and follows are the caller's handles; the module keeps them on
 *    lists while it must act on them by time (renewals, polling) and frees
 *    them once the caller let go and no command of theirs is in flight;
 *  - struct pc_shared is freed in its timer's close callback, after
 *    pc_redis_destroy has run every pending callback (they all touch it).
 * Timed work (lease renewals, polling follows, purge-log polls) hangs on one
 * timer armed for the earliest due time. */
#include "shared.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <xxhash.h>

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "json.h"
#include "key.h"
#include "purge.h"

#define KEY_MAX (PC_SHARED_MAX_PREFIX + 48)
#define TOKEN_MAX (PC_SHARED_MAX_NODE_ID + 24)
#define ID_MAX 48       /* stream ids: "<ms>-<seq>", two u64 */
#define META_MAX 48     /* index meta value: "<version>:<nshash16>" */
#define PURGE_BATCH 128 /* index members read, unlinked and removed per round */
#define ARGS_MAX (8 + 2 * PURGE_BATCH)
#define SCAN_COUNT "500"
#define INDEX_GRACE_MS "60000" /* the index outlives its entry's expiry by this much */
#define INDEX_TRIM "64"        /* expired index members dropped per put */
#define STREAM_MAXLEN "20000"  /* entries of one response stream (MAXLEN ~) */
#define WATCH_PAGE 100
#define WATCH_POLL_MS 10000
#define WATCH_RETRY_MS 1000
#define FOLLOW_COUNT "100"
#define FOLLOW_POLL_MS 50 /* when no dedicated connection is free */

const char *const pc_shared_op_names[PC_SHARED_OPS] = {"get", "put", "del", "purge", "lease", "publish", "follow"};

/* ---- Lua scripts (each touches keys of one slot only) ---------------------
 * The index is written after the entry and removed only where its record is
 * still the one the remover read (the version in meta), so that whatever
 * order a put and a purge reach Redis in, an entry that exists is indexed. */

/* KEYS age exp ns meta; ARGV hex created_ms ttl_ms nshash grace_ms trim */
static const char PUT_INDEX[] =
    "local h, nsh = ARGV[1], ARGV[4]\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local function unns(g)\n"
    "  local m = redis.call('HGET', KEYS[4], g)\n"
    "  if m then redis.call('ZREM', KEYS[3], string.sub(m, string.find(m, ':', 1, true) + 1) .. ':' .. g) end\n"
    "end\n"
    "unns(h)\n"
    "local v = redis.call('HINCRBY', KEYS[4], 'v', 1)\n"
    "redis.call('HSET', KEYS[4], h, v .. ':' .. nsh)\n"
    "redis.call('ZADD', KEYS[1], ARGV[2], h)\n"
    "redis.call('ZADD', KEYS[3], 0, nsh .. ':' .. h)\n"
    "local ttl = tonumber(ARGV[3])\n"
    "if ttl > 0 then redis.call('ZADD', KEYS[2], now + ttl + tonumber(ARGV[5]), h)\n"
    "else redis.call('ZREM', KEYS[2], h) end\n"
    "for _, g in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))) do\n"
    "  unns(g)\n"
    "  redis.call('HDEL', KEYS[4], g)\n"
    "  redis.call('ZREM', KEYS[1], g)\n"
    "  redis.call('ZREM', KEYS[2], g)\n"
    "end\n"
    "return v\n";

/* KEYS age ns meta; ARGV mode ("key" | "ns" | "age") arg limit.
 * Returns hex1, meta1, hex2, meta2, ... (meta "" when unindexed). */
static const char READ_BATCH[] =
    "local hs\n"
    "if ARGV[1] == 'ns' then\n"
    "  hs = {}\n"
    "  local ms = redis.call('ZRANGEBYLEX', KEYS[2], '[' .. ARGV[2] .. ':', '[' .. ARGV[2] .. ';', 'LIMIT', 0, "
    "ARGV[3])\n"
    "  for i, m in ipairs(ms) do hs[i] = string.sub(m, #ARGV[2] + 2) end\n"
    "elseif ARGV[1] == 'age' then\n"
    "  hs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])\n"
    "else hs = {ARGV[2]} end\n"
    "local out = {}\n"
    "for _, h in ipairs(hs) do\n"
    "  out[#out + 1] = h\n"
    "  out[#out + 1] = redis.call('HGET', KEYS[3], h) or ''\n"
    "end\n"
    "return out\n";

/* KEYS age exp ns meta; ARGV hex1 meta1 hex2 meta2 ... */
static const char REMOVE[] = "local n = 0\n"
                             "for i = 1, #ARGV, 2 do\n"
                             "  local h, m = ARGV[i], ARGV[i + 1]\n"
                             "  local cur = redis.call('HGET', KEYS[4], h)\n"
                             "  if (cur or '') == m then\n"
                             "    if cur then\n"
                             "      redis.call('ZREM', KEYS[3], string.sub(cur, string.find(cur, ':', 1, true) + "
                             "1) .. ':' .. h)\n"
                             "      redis.call('HDEL', KEYS[4], h)\n"
                             "    end\n"
                             "    redis.call('ZREM', KEYS[1], h)\n"
                             "    redis.call('ZREM', KEYS[2], h)\n"
                             "    n = n + 1\n"
                             "  end\n"
                             "end\n"
                             "return n\n";

/* KEYS lease stream; ARGV token lease_ms fresh. A fresh lease (not a
 * takeover) starts the key's stream anew. */
static const char ACQUIRE[] = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
                              "  if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end\n"
                              "  return 1\n"
                              "end\n"
                              "return 0\n";

/* KEYS lease stream; ARGV token lease_ms stream_ttl_ms */
static const char RENEW[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                            "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                            "  redis.call('PEXPIRE', KEYS[2], ARGV[3])\n"
                            "  return 1\n"
                            "end\n"
                            "return 0\n";

/* KEYS lease stream; ARGV token linger_ms */
static const char RELEASE[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                              "  redis.call('DEL', KEYS[1])\n"
                              "  redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
                              "  return 1\n"
                              "end\n"
                              "return 0\n";

/* ---- State --------------------------------------------------------------- */

enum ix { IX_AGE, IX_EXP, IX_NS, IX_META, IX_N };

struct watch {
  int on, busy, again;
  char last[ID_MAX]; /* "": nothing applied yet */
  int64_t due;       /* next poll or retry (mono ms), -1: none */
  void (*apply)(void *ud, const struct pc_purge_sel *sel, const char *id);
  void (*reset)(void *ud, const char *id);
  void *ud;
};

struct pc_shared {
  struct pc_redis *r;
  uv_timer_t timer;
  char prefix[PC_SHARED_MAX_PREFIX + 1];
  char node_id[PC_SHARED_MAX_NODE_ID + 1];
  char ix[IX_N][KEY_MAX];
  char purges[KEY_MAX], channel[KEY_MAX], stats[KEY_MAX], secret[KEY_MAX];
  char entry_pat[2 * PC_SHARED_MAX_PREFIX + 2 + 8 * 32 + 1]; /* SCAN MATCH for entries only */
  size_t max_value, max_inflight, put_inflight, pub_inflight;
  int64_t timeout_ms, lease_ms;
  int closing;
  struct watch watch;
  struct pc_shared_lease *leases;   /* held, not released: renewed by the timer */
  struct pc_shared_follow *follows; /* not over */
  struct pc_shared_counters k;
};

struct pc_shared_lease {
  struct pc_shared *s; /* NULL once the module is destroyed */
  struct pc_shared_lease *prev, *next;
  char lkey[KEY_MAX], skey[KEY_MAX], tok[TOKEN_MAX];
  uint32_t seq; /* of the next entry */
  int pending;  /* commands in flight */
  int64_t renew_at, renew_sent, valid_until;
  unsigned linked : 1, head : 1, ended : 1, stopped : 1, released : 1, lost : 1, renewing : 1;
};

/* DESIGN habit 6: a follow's state, changed only by follow_set(). */
enum fstate {
  F_READ,    /* XREAD in flight */
  F_WAIT,    /* polling: the next read is due at f->due */
  F_LEASE,   /* nothing new for a while: GET lease in flight */
  F_RECHECK, /* the lease is gone: one last non-blocking read in flight */
  F_TAKE,    /* nothing delivered yet: trying to take the lease */
  F_OVER     /* ended (done, takeover, unfollowed): freed once idle */
};

struct pc_shared_follow {
  struct pc_shared *s;
  struct pc_shared_follow *prev, *next;
  const struct pc_shared_follow_ops *ops;
  void *ud;
  uint8_t key[16];
  char lkey[KEY_MAX], skey[KEY_MAX];
  char last[ID_MAX];   /* id of the last entry read */
  char tok[TOKEN_MAX]; /* the leader followed, once its head was delivered */
  int have_tok;
  uint32_t next_seq;
  enum fstate st;
  int pending, in_cb;
  int64_t due, idle_since;
  unsigned blocked : 1;
};

/* ---- Small helpers --------------------------------------------------------- */

static void ns_hash(const char *ns, size_t n, char out[17]) {
  snprintf(out, 17, "%016llx", (unsigned long long)XXH3_64bits(ns, n));
}

/* Bounded copy of a reply string into a NUL-terminated buffer: 0, or -1 when it does not fit. */
static int copy_str(char *out, size_t cap, const char *p, size_t n) {
  if (n >= cap) return -1;
  memcpy(out, p, n);
  out[n] = '\0';
  return 0;
}

/* A decimal integer reply string (as stream fields carry them). */
static int parse_i64(const char *p, size_t n, int64_t *out) {
  int64_t v = 0;
  int neg = n > 0 && p[0] == '-';
  size_t i = (size_t)neg;
  if (i == n || n - i > 18) return -1;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (p[i] - '0');
  }
  *out = neg ? -v : v;
  return 0;
}

static void entry_key(const struct pc_shared *s, const uint8_t key[16], char out[KEY_MAX]) {
  char hex[33];
  pc_key_hex((const struct pc_key *)key, hex);
  snprintf(out, KEY_MAX, "%se:%s", s->prefix, hex);
}

/* The lease and the stream of a key share the hash tag {hex}: one slot. */
static void flight_keys(const struct pc_shared *s, const uint8_t key[16], char lkey[KEY_MAX], char skey[KEY_MAX]) {
  char hex[33];
  pc_key_hex((const struct pc_key *)key, hex);
  snprintf(lkey, KEY_MAX, "%sl:{%s}", s->prefix, hex);
  snprintf(skey, KEY_MAX, "%ss:{%s}", s->prefix, hex);
}

/* "<node_id>:<16 random hex>": unique across the fleet, the epoch of one leader. */
static void new_token(const struct pc_shared *s, char out[TOKEN_MAX]) {
  uint64_t r;
  if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = uv_hrtime() ^ (uint64_t)(uintptr_t)out;
  snprintf(out, TOKEN_MAX, "%s:%016llx", s->node_id, (unsigned long long)r);
}

/* ---- Commands -------------------------------------------------------------- */

/* A command's arguments. Declared, then `.n = 0`: the arrays (4 KiB) are
 * filled from the front and never need zeroing. */
struct args {
  int n;
  const char *v[ARGS_MAX];
  size_t len[ARGS_MAX];
};

static void arg(struct args *a, const void *p, size_t n) {
  assert(a->n < ARGS_MAX);
  a->v[a->n] = p;
  a->len[a->n++] = n;
}

static void arg_s(struct args *a, const char *s) { arg(a, s, strlen(s)); }

static int send_at(struct pc_shared *s, const struct args *a, int key_index, int node, pc_redis_cb cb, void *ud) {
  struct pc_redis_cmd c = {.argc = a->n, .argv = a->v, .argvlen = a->len, .key_index = key_index, .node = node};
  return pc_redis_command(s->r, &c, cb, ud);
}

static int send_cmd(struct pc_shared *s, const struct args *a, int key_index, pc_redis_cb cb, void *ud) {
  return send_at(s, a, key_index, -1, cb, ud);
}

/* EVAL script with keys[0..nkeys) (one slot): argv is appended by the caller. */
static void eval_args(struct args *a, const char *script, char *nk, int nkeys, char keys[][KEY_MAX]) {
  arg_s(a, "EVAL");
  arg_s(a, script);
  snprintf(nk, 4, "%d", nkeys);
  arg_s(a, nk);
  for (int i = 0; i < nkeys; i++) arg_s(a, keys[i]);
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* An error reply as a PC_E* code; 0 for any other reply. */
static int reply_rc(int rc, const redisReply *rep) {
  if (rc) return rc;
  if (rep->type != REDIS_REPLY_ERROR) return 0;
  if (starts(rep->str, "OOM")) return PC_EBUSY;
  if (starts(rep->str, "READONLY")) return PC_EREADONLY;
  if (starts(rep->str, "LOADING") || starts(rep->str, "CLUSTERDOWN") || starts(rep->str, "TRYAGAIN") ||
      starts(rep->str, "MASTERDOWN") || starts(rep->str, "BUSY"))
    return PC_EUNAVAIL;
  return PC_EPROTO;
}

static void count_fail(struct pc_shared *s, int rc) {
  if (rc == 0 || rc == PC_ECANCELED || rc == PC_ENOTFOUND || rc == PC_EEXISTS) return;
  s->k.errors++;
  if (rc == PC_ETIMEDOUT) s->k.timeouts++;
}

/* An operation's first command was sent (rc 0: counted as op `kind`, unless
 * -1) or not (its state `op` freed, the failure counted); returns rc. */
static int started(struct pc_shared *s, int rc, void *op, int kind) {
  if (rc) {
    free(op);
    count_fail(s, rc);
  } else if (kind >= 0) {
    s->k.ops[kind]++;
  }
  return rc;
}

/* Fire-and-forget commands: only counted. */
static void on_ignored(void *ud, int rc, const redisReply *rep) { count_fail(ud, reply_rc(rc, rep)); }

/* PEXPIRE key ms, fire-and-forget. */
static void pexpire(struct pc_shared *s, const char *key, long long ms) {
  struct args a;
  char ttl[24];
  a.n = 0;
  snprintf(ttl, sizeof ttl, "%lld", ms);
  arg_s(&a, "PEXPIRE");
  arg_s(&a, key);
  arg_s(&a, ttl);
  count_fail(s, send_cmd(s, &a, 1, on_ignored, s));
}

static int is_str(const redisReply *r) { return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS); }

/* ---- Timer: everything due by time ------------------------------------------- */

static void follow_poll(struct pc_shared_follow *f);
static void lease_renew(struct pc_shared_lease *l);
static void watch_catch_up(struct pc_shared *s);

static int64_t next_due(const struct pc_shared *s) {
  int64_t next = INT64_MAX;
  for (const struct pc_shared_lease *l = s->leases; l; l = l->next)
    if (!l->renewing && !l->lost && l->renew_at < next) next = l->renew_at;
  for (const struct pc_shared_follow *f = s->follows; f; f = f->next)
    if (f->st == F_WAIT && f->due < next) next = f->due;
  if (s->watch.on && !s->watch.busy && s->watch.due >= 0 && s->watch.due < next) next = s->watch.due;
  return next;
}

static void on_timer(uv_timer_t *t);

static void sched(struct pc_shared *s) {
  int64_t next, now;
  if (s->closing) return;
  next = next_due(s);
  if (next == INT64_MAX) {
    uv_timer_stop(&s->timer);
    return;
  }
  now = pc_mono_ms();
  uv_timer_start(&s->timer, on_timer, (uint64_t)(next > now ? next - now : 0), 0);
}

/* One due item at a time, looking again from the start after each: what it
 * does (a failing command ends a follow, its callback may unfollow others)
 * can change the lists. Each item handled is no longer due. */
static int run_one_due(struct pc_shared *s, int64_t now) {
  for (struct pc_shared_lease *l = s->leases; l; l = l->next)
    if (!l->renewing && !l->lost && l->renew_at <= now) {
      lease_renew(l);
      return 1;
    }
  for (struct pc_shared_follow *f = s->follows; f; f = f->next)
    if (f->st == F_WAIT && f->due <= now) {
      follow_poll(f);
      return 1;
    }
  if (s->watch.on && !s->watch.busy && s->watch.due >= 0 && s->watch.due <= now) {
    watch_catch_up(s);
    return 1;
  }
  return 0;
}

static void on_timer(uv_timer_t *t) {
  struct pc_shared *s = t->data;
  int64_t now = pc_mono_ms();
  while (!s->closing && run_one_due(s, now)) {
  }
  sched(s);
}

/* ---- Create, destroy --------------------------------------------------------- */

static int prefix_ok(const char *p) { return strlen(p) <= PC_SHARED_MAX_PREFIX && !strchr(p, '{') && !strchr(p, '}'); }

/* The MATCH pattern of entry keys only: the prefix with glob characters
 * escaped, "e:", then exactly 32 hex digits (so that another prefix that
 * starts with this one, say "pc:e:", never matches). */
static void build_pattern(struct pc_shared *s) {
  size_t k = 0;
  for (const char *p = s->prefix; *p; p++) {
    if (strchr("*?[]\\", *p)) s->entry_pat[k++] = '\\';
    s->entry_pat[k++] = *p;
  }
  memcpy(s->entry_pat + k, "e:", 2);
  k += 2;
  for (int i = 0; i < 32; i++) {
    memcpy(s->entry_pat + k, "[0-9a-f]", 8);
    k += 8;
  }
  s->entry_pat[k] = '\0';
}

static void build_keys(struct pc_shared *s) {
  static const char *const ix[IX_N] = {"age", "exp", "ns", "meta"};
  for (int i = 0; i < IX_N; i++) snprintf(s->ix[i], KEY_MAX, "%six:{ix}:%s", s->prefix, ix[i]);
  snprintf(s->purges, KEY_MAX, "%spurges", s->prefix);
  snprintf(s->channel, KEY_MAX, "%spurge", s->prefix);
  snprintf(s->stats, KEY_MAX, "%sstats", s->prefix);
  snprintf(s->secret, KEY_MAX, "%ssecret", s->prefix);
  build_pattern(s);
}

static int config_ok(const struct pc_shared_config *cfg) {
  size_t idlen = cfg->node_id ? strlen(cfg->node_id) : 0;
  return cfg->urls && cfg->n_urls && idlen > 0 && idlen <= PC_SHARED_MAX_NODE_ID && cfg->timeout_ms >= 0 &&
         cfg->lease_ms >= 0 && (!cfg->prefix || prefix_ok(cfg->prefix));
}

int pc_shared_create(uv_loop_t *loop, const struct pc_shared_config *cfg, struct pc_shared **out) {
  struct pc_redis_config rc_cfg;
  struct pc_shared *s;
  int rc;
  if (!loop || !cfg || !out || !config_ok(cfg)) return PC_EINVAL;
  *out = NULL;
  s = calloc(1, sizeof *s);
  if (!s) return PC_ENOMEM;
  snprintf(s->prefix, sizeof s->prefix, "%s", cfg->prefix ? cfg->prefix : PC_SHARED_DEFAULT_PREFIX);
  snprintf(s->node_id, sizeof s->node_id, "%s", cfg->node_id);
  s->max_value = cfg->max_value ? cfg->max_value : PC_SHARED_DEFAULT_MAX_VALUE;
  s->max_inflight = cfg->max_inflight ? cfg->max_inflight : PC_SHARED_DEFAULT_MAX_INFLIGHT;
  s->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : PC_REDIS_DEFAULT_TIMEOUT_MS;
  s->lease_ms = cfg->lease_ms ? cfg->lease_ms : 8 * s->timeout_ms;
  if (!cfg->lease_ms && s->lease_ms < PC_SHARED_MIN_LEASE_MS) s->lease_ms = PC_SHARED_MIN_LEASE_MS;
  s->watch.due = -1;
  build_keys(s);
  rc_cfg = (struct pc_redis_config){.urls = cfg->urls, .n_urls = cfg->n_urls, .timeout_ms = s->timeout_ms};
  rc = pc_redis_create(loop, &rc_cfg, &s->r);
  if (rc) {
    free(s);
    return rc;
  }
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  *out = s;
  return 0;
}

static void follow_end(struct pc_shared_follow *f, int rc, const char *usage, size_t un);
static void follow_maybe_free(struct pc_shared_follow *f);
static void lease_unlink(struct pc_shared_lease *l);

static void on_close(uv_handle_t *h) { free(h->data); }

void pc_shared_destroy(struct pc_shared *s) {
  if (!s || s->closing) return;
  s->closing = 1;
  /* Every command in flight completes now (PC_ECANCELED), while all state exists. */
  pc_redis_destroy(s->r);
  while (s->follows) { /* those waiting on the timer */
    struct pc_shared_follow *f = s->follows;
    follow_end(f, PC_ECANCELED, NULL, 0);
    follow_maybe_free(f);
  }
  while (s->leases) {
    struct pc_shared_lease *l = s->leases;
    lease_unlink(l);
    l->s = NULL; /* inert until the caller releases it */
  }
  s->watch.on = 0;
  uv_close((uv_handle_t *)&s->timer, on_close);
}

int pc_shared_up(const struct pc_shared *s) { return s && !s->closing && pc_redis_is_up(s->r); }

struct pc_redis *pc_shared_redis(const struct pc_shared *s) {
  return s ? s->r : NULL;
}

void pc_shared_get_counters(const struct pc_shared *s, struct pc_shared_counters *out) {
  if (!s || !out) return;
  *out = s->k;
  if (!s->closing) pc_redis_get_counters(s->r, &out->redis);
}

/* ---- Entries: get --------------------------------------------------------------- */

struct get_op {
  struct pc_shared *s;
  pc_shared_get_cb cb;
  void *ud;
};

static void get_done(void *ud, int rc, const redisReply *rep) {
  struct get_op *g = ud;
  struct pc_shared *s = g->s;
  rc = reply_rc(rc, rep);
  if (!rc && rep->type == REDIS_REPLY_NIL)
    rc = PC_ENOTFOUND;
  else if (!rc && rep->type != REDIS_REPLY_STRING)
    rc = PC_EPROTO;
  if (!rc)
    s->k.hits++;
  else if (rc == PC_ENOTFOUND)
    s->k.misses++;
  count_fail(s, rc);
  g->cb(g->ud, rc, rc ? NULL : rep->str, rc ? 0 : rep->len);
  free(g);
}

int pc_shared_get(struct pc_shared *s, const uint8_t key[16], pc_shared_get_cb cb, void *ud) {
  struct args a;
  a.n = 0;
  char k[KEY_MAX];
  struct get_op *g;
  if (!s || !key || !cb) return PC_EINVAL;
  if (s->closing) return PC_ECANCELED;
  g = malloc(sizeof *g);
  if (!g) return PC_ENOMEM;
  *g = (struct get_op){s, cb, ud};
  entry_key(s, key, k);
  arg_s(&a, "GET");
  arg_s(&a, k);
  return started(s, send_cmd(s, &a, 1, get_done, g), g, PC_SHARED_OP_GET);
}

/* ---- Entries: put ------------------------------------------------------------------ */

struct put_op {
  struct pc_shared *s;
  pc_shared_done_cb cb;
  void *ud;
  uint8_t key[16];
  char nsh[17];
  int64_t ttl_ms, created_ms;
  size_t bytes;
};

static void put_finish(struct put_op *p, int rc) {
  count_fail(p->s, rc);
  p->cb(p->ud, rc);
  free(p);
}

/* The entry could not be indexed: a purge would never find it, so it goes. */
static void put_undo(struct put_op *p) {
  struct args a;
  a.n = 0;
  char k[KEY_MAX];
  entry_key(p->s, p->key, k);
  arg_s(&a, "UNLINK");
  arg_s(&a, k);
  send_cmd(p->s, &a, 1, on_ignored, p->s);
}

static void put_indexed(void *ud, int rc, const redisReply *rep) {
  struct put_op *p = ud;
  rc = reply_rc(rc, rep);
  if (rc && rc != PC_ECANCELED) put_undo(p);
  put_finish(p, rc);
}

static int put_index(struct put_op *p) {
  struct pc_shared *s = p->s;
  struct args a;
  a.n = 0;
  char nk[4], hex[33], created[24], ttl[24];
  pc_key_hex((const struct pc_key *)p->key, hex);
  snprintf(created, sizeof created, "%lld", (long long)p->created_ms);
  snprintf(ttl, sizeof ttl, "%lld", (long long)p->ttl_ms);
  eval_args(&a, PUT_INDEX, nk, IX_N, s->ix);
  arg_s(&a, hex);
  arg_s(&a, created);
  arg_s(&a, ttl);
  arg_s(&a, p->nsh);
  arg_s(&a, INDEX_GRACE_MS);
  arg_s(&a, INDEX_TRIM);
  return send_cmd(s, &a, 3, put_indexed, p);
}

static void put_stored(void *ud, int rc, const redisReply *rep) {
  struct put_op *p = ud;
  p->s->put_inflight -= p->bytes;
  rc = reply_rc(rc, rep);
  if (!rc && !p->s->closing) {
    rc = put_index(p);
    if (!rc) return;
    put_undo(p);
  }
  put_finish(p, rc);
}

static int put_send(struct put_op *p, const char *val, size_t n) {
  struct args a;
  a.n = 0;
  char k[KEY_MAX], ttl[24];
  entry_key(p->s, p->key, k);
  arg_s(&a, "SET");
  arg_s(&a, k);
  arg(&a, val, n);
  if (p->ttl_ms > 0) {
    snprintf(ttl, sizeof ttl, "%lld", (long long)p->ttl_ms);
    arg_s(&a, "PX");
    arg_s(&a, ttl);
  }
  return send_cmd(p->s, &a, 1, put_stored, p);
}

/* Refused without touching Redis: too big, or too much unanswered already
 * (hiredis' output buffer has no bound of its own). */
static int put_admit(struct pc_shared *s, size_t n) {
  if (n > s->max_value) {
    s->k.too_big++;
    return PC_ETOOBIG;
  }
  if (s->put_inflight > 0 && (s->put_inflight >= s->max_inflight || n > s->max_inflight - s->put_inflight)) {
    s->k.busy++;
    return PC_EBUSY;
  }
  return 0;
}

int pc_shared_put(struct pc_shared *s, const uint8_t key[16], const char *val, size_t n, int64_t ttl_ms, const char *ns,
                  size_t nslen, int64_t created_ms, pc_shared_done_cb cb, void *ud) {
  struct put_op *p;
  int rc;
  if (!s || !key || (!val && n) || (!ns && nslen) || ttl_ms < 0 || !cb) return PC_EINVAL;
  if (s->closing) return PC_ECANCELED;
  rc = put_admit(s, n);
  if (rc) return rc;
  p = calloc(1, sizeof *p);
  if (!p) return PC_ENOMEM;
  *p = (struct put_op){.s = s, .cb = cb, .ud = ud, .ttl_ms = ttl_ms, .created_ms = created_ms, .bytes = n};
  memcpy(p->key, key, 16);
  ns_hash(ns ? ns : "", nslen, p->nsh);
  rc = put_send(p, val ? val : "", n);
  if (rc) {
    free(p);
    count_fail(s, rc);
    return rc;
  }
  s->put_inflight += n;
  s->k.ops[PC_SHARED_OP_PUT]++;
  return 0;
}

/* ---- Deleting: del and purge ----------------------------------------------------------
 * One struct purge serves pc_shared_del (a key, not logged) and
 * pc_shared_purge. By key, namespace or age it goes in rounds: read a batch
 * of index members with their meta (READ_BATCH), UNLINK their entries, then
 * remove the members still carrying that meta (REMOVE). "all" empties the
 * index, then SCANs every master for entry keys and UNLINKs them. Then,
 * for a purge, the selector goes to the log and a notification out. */

enum pkind { P_ALL, P_KEY, P_NS, P_AGE };

struct scan {
  struct purge *p;
  int node;
  char cursor[24];
  int pending, finished;
};

struct purge {
  struct pc_shared *s;
  enum pkind kind;
  int log;
  char arg[40]; /* key: hex; namespace: its hash; age: the cutoff (ms) */
  pc_buf sel;   /* the selector as JSON, for the log */
  int rc, pending;
  size_t deleted;
  size_t n; /* members in this round */
  char hex[PURGE_BATCH][33];
  char meta[PURGE_BATCH][META_MAX];
  struct scan *scans;
  size_t scans_left;
  void (*done)(void *ud, int rc, size_t deleted);
  pc_shared_done_cb del_cb;
  void *ud;
};

static void purge_round(struct purge *p);
static void purge_log(struct purge *p);

static void purge_finish(struct purge *p, int rc) {
  struct pc_shared *s = p->s;
  count_fail(s, rc);
  if (p->done)
    p->done(p->ud, rc, p->deleted);
  else
    p->del_cb(p->ud, rc ? rc : p->deleted ? 0 : PC_ENOTFOUND);
  pc_buf_free(&p->sel);
  free(p->scans);
  free(p);
}

/* A step failed: finish once nothing of p is in flight any more. */
static void purge_fail(struct purge *p, int rc) {
  if (!p->rc) p->rc = rc;
  if (p->pending == 0) purge_finish(p, p->rc);
}

static void removed(void *ud, int rc, const redisReply *rep) {
  struct purge *p = ud;
  p->pending--;
  rc = reply_rc(rc, rep);
  if (rc) {
    purge_fail(p, rc);
  } else if (p->kind == P_KEY || p->n < PURGE_BATCH) {
    purge_log(p);
  } else {
    purge_round(p);
  }
}

static void round_remove(struct purge *p) {
  struct pc_shared *s = p->s;
  struct args a;
  a.n = 0;
  char nk[4];
  int rc;
  eval_args(&a, REMOVE, nk, IX_N, s->ix);
  for (size_t i = 0; i < p->n; i++) {
    arg_s(&a, p->hex[i]);
    arg_s(&a, p->meta[i]);
  }
  rc = send_cmd(s, &a, 3, removed, p);
  if (rc)
    purge_fail(p, rc);
  else
    p->pending++;
}

static void unlinked(void *ud, int rc, const redisReply *rep) {
  struct purge *p = ud;
  p->pending--;
  rc = reply_rc(rc, rep);
  if (rc && !p->rc) p->rc = rc;
  if (!rc && rep->type == REDIS_REPLY_INTEGER) p->deleted += (size_t)rep->integer;
  if (p->pending > 0) return;
  if (p->rc)
    purge_finish(p, p->rc);
  else
    round_remove(p);
}

static int unlink_key(struct purge *p, const char *key, size_t len, pc_redis_cb cb, void *ud) {
  struct args a;
  a.n = 0;
  arg_s(&a, "UNLINK");
  arg(&a, key, len);
  return send_cmd(p->s, &a, 1, cb, ud);
}

/* READ_BATCH's reply: hex, meta pairs. */
static int round_parse(struct purge *p, const redisReply *rep) {
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2 || rep->elements / 2 > PURGE_BATCH) return PC_EPROTO;
  p->n = rep->elements / 2;
  for (size_t i = 0; i < p->n; i++) {
    const redisReply *h = rep->element[2 * i], *m = rep->element[2 * i + 1];
    if (!is_str(h) || !is_str(m) || h->len != 32 || copy_str(p->hex[i], sizeof p->hex[i], h->str, h->len) ||
        copy_str(p->meta[i], sizeof p->meta[i], m->str, m->len))
      return PC_EPROTO;
  }
  return 0;
}

static void round_read(void *ud, int rc, const redisReply *rep) {
  struct purge *p = ud;
  char k[KEY_MAX];
  p->pending--;
  rc = reply_rc(rc, rep);
  if (!rc) rc = round_parse(p, rep);
  if (rc) {
    purge_fail(p, rc);
    return;
  }
  if (p->n == 0) {
    purge_log(p);
    return;
  }
  for (size_t i = 0; i < p->n && !p->rc; i++) {
    snprintf(k, sizeof k, "%se:%s", p->s->prefix, p->hex[i]);
    rc = unlink_key(p, k, strlen(k), unlinked, p);
    if (rc)
      p->rc = rc;
    else
      p->pending++;
  }
  if (p->pending == 0) purge_finish(p, p->rc);
}

static int round_send(struct purge *p) {
  static const char *const mode[] = {"all", "key", "ns", "age"};
  struct pc_shared *s = p->s;
  struct args a;
  a.n = 0;
  char nk[4], keys[3][KEY_MAX], limit[8];
  int rc;
  snprintf(limit, sizeof limit, "%d", p->kind == P_KEY ? 1 : PURGE_BATCH);
  memcpy(keys[0], s->ix[IX_AGE], KEY_MAX);
  memcpy(keys[1], s->ix[IX_NS], KEY_MAX);
  memcpy(keys[2], s->ix[IX_META], KEY_MAX);
  eval_args(&a, READ_BATCH, nk, 3, keys);
  arg_s(&a, mode[p->kind]);
  arg_s(&a, p->arg);
  arg_s(&a, limit);
  rc = s->closing ? PC_ECANCELED : send_cmd(s, &a, 3, round_read, p);
  if (!rc) p->pending++;
  return rc;
}

static void purge_round(struct purge *p) {
  int rc = round_send(p);
  if (rc) purge_fail(p, rc);
}

/* "all": SCAN each master for entry keys (MATCH on the entry prefix) and
 * UNLINK what it finds; a SCAN continues once its batch is unlinked. */

static void scan_next(struct scan *sc);

static void scan_check(struct scan *sc) {
  struct purge *p = sc->p;
  if (p->rc) {
    purge_fail(p, p->rc);
    return;
  }
  if (sc->pending > 0) return;
  if (!sc->finished) {
    scan_next(sc);
    return;
  }
  if (--p->scans_left == 0 && p->pending == 0) purge_log(p);
}

static void scan_unlinked(void *ud, int rc, const redisReply *rep) {
  struct scan *sc = ud;
  struct purge *p = sc->p;
  sc->pending--;
  p->pending--;
  rc = reply_rc(rc, rep);
  if (rc && !p->rc) p->rc = rc;
  if (!rc && rep->type == REDIS_REPLY_INTEGER) p->deleted += (size_t)rep->integer;
  scan_check(sc);
}

static int scan_parse(struct scan *sc, const redisReply *rep) {
  struct purge *p = sc->p;
  const redisReply *keys;
  int rc;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || !is_str(rep->element[0]) ||
      rep->element[1]->type != REDIS_REPLY_ARRAY ||
      copy_str(sc->cursor, sizeof sc->cursor, rep->element[0]->str, rep->element[0]->len))
    return PC_EPROTO;
  sc->finished = strcmp(sc->cursor, "0") == 0;
  keys = rep->element[1];
  for (size_t i = 0; i < keys->elements; i++) {
    if (!is_str(keys->element[i])) return PC_EPROTO;
    rc = unlink_key(p, keys->element[i]->str, keys->element[i]->len, scan_unlinked, sc);
    if (rc) return rc;
    sc->pending++;
    p->pending++;
  }
  return 0;
}

static void scanned(void *ud, int rc, const redisReply *rep) {
  struct scan *sc = ud;
  struct purge *p = sc->p;
  p->pending--;
  rc = reply_rc(rc, rep);
  if (!rc) rc = scan_parse(sc, rep);
  if (rc && !p->rc) p->rc = rc;
  scan_check(sc);
}

static int scan_send(struct scan *sc) {
  struct purge *p = sc->p;
  struct args a;
  a.n = 0;
  int rc;
  arg_s(&a, "SCAN");
  arg_s(&a, sc->cursor);
  arg_s(&a, "MATCH");
  arg_s(&a, p->s->entry_pat);
  arg_s(&a, "COUNT");
  arg_s(&a, SCAN_COUNT);
  rc = p->s->closing ? PC_ECANCELED : send_at(p->s, &a, -1, sc->node, scanned, sc);
  if (!rc) p->pending++;
  return rc;
}

static void scan_next(struct scan *sc) {
  int rc = scan_send(sc);
  if (rc) purge_fail(sc->p, rc);
}

static void ix_dropped(void *ud, int rc, const redisReply *rep) {
  struct purge *p = ud;
  size_t n = pc_redis_masters(p->s->r);
  p->pending--;
  rc = reply_rc(rc, rep);
  if (!rc && n == 0) rc = PC_EUNAVAIL;
  if (!rc && !(p->scans = calloc(n, sizeof *p->scans))) rc = PC_ENOMEM;
  if (rc) {
    purge_fail(p, rc);
    return;
  }
  p->scans_left = n;
  for (size_t i = 0; i < n && !rc; i++) {
    p->scans[i] = (struct scan){.p = p, .node = (int)i, .cursor = "0"};
    rc = scan_send(&p->scans[i]);
  }
  if (rc) purge_fail(p, rc); /* after the loop: it may free p */
}

/* The index goes first: a put racing with the purge then leaves at worst an
 * index member without its entry (harmless), never an entry without one. */
static int purge_all(struct purge *p) {
  struct pc_shared *s = p->s;
  struct args a;
  a.n = 0;
  int rc;
  arg_s(&a, "DEL");
  for (int i = 0; i < IX_N; i++) arg_s(&a, s->ix[i]);
  rc = send_cmd(s, &a, 1, ix_dropped, p);
  if (!rc) p->pending++;
  return rc;
}

/* The log: XADD the selector, then PUBLISH so that watchers read it now
 * rather than at their next poll. */

static void published(void *ud, int rc, const redisReply *rep) {
  struct purge *p = ud;
  p->pending--;
  count_fail(p->s, reply_rc(rc, rep)); /* logged already: watchers' polls find it */
  purge_finish(p, 0);
}

static void logged(void *ud, int rc, const redisReply *rep) {
  struct purge *p = ud;
  struct args a;
  a.n = 0;
  p->pending--;
  rc = reply_rc(rc, rep);
  if (!rc && !is_str(rep)) rc = PC_EPROTO;
  if (rc) {
    purge_fail(p, rc);
    return;
  }
  arg_s(&a, "PUBLISH");
  arg_s(&a, p->s->channel);
  arg(&a, rep->str, rep->len);
  if (send_cmd(p->s, &a, 1, published, p) == 0)
    p->pending++;
  else
    purge_finish(p, 0);
}

static void purge_log(struct purge *p) {
  struct pc_shared *s = p->s;
  struct args a;
  a.n = 0;
  int rc;
  char maxlen[16];
  if (!p->log) {
    purge_finish(p, 0);
    return;
  }
  snprintf(maxlen, sizeof maxlen, "%d", PC_SHARED_PURGE_LOG_MAXLEN);
  arg_s(&a, "XADD");
  arg_s(&a, s->purges);
  arg_s(&a, "MAXLEN");
  arg_s(&a, "~");
  arg_s(&a, maxlen);
  arg_s(&a, "*");
  arg_s(&a, "sel");
  arg(&a, p->sel.data, p->sel.len);
  arg_s(&a, "node");
  arg_s(&a, s->node_id);
  rc = s->closing ? PC_ECANCELED : send_cmd(s, &a, 1, logged, p);
  if (rc)
    purge_fail(p, rc);
  else
    p->pending++;
}

/* kind, arg and the JSON selector; the cutoff of an age purge is absolute. */
static int purge_describe(struct purge *p, const struct pc_purge_sel *sel) {
  int rc = 0;
  pc_buf_init(&p->sel, 4096 + (sel->ns ? 6 * strlen(sel->ns) : 0));
  if (sel->all) {
    p->kind = P_ALL;
    rc = pc_buf_puts(&p->sel, "{\"all\":true}");
  } else if (sel->has_key) {
    p->kind = P_KEY;
    pc_key_hex((const struct pc_key *)sel->key, p->arg);
    rc = pc_buf_printf(&p->sel, "{\"key\":\"%s\"}", p->arg);
  } else if (sel->ns) {
    p->kind = P_NS;
    ns_hash(sel->ns, strlen(sel->ns), p->arg);
    rc = pc_buf_puts(&p->sel, "{\"ns\":");
    if (!rc) rc = pc_json_write_string(&p->sel, sel->ns, strlen(sel->ns));
    if (!rc) rc = pc_buf_putc(&p->sel, '}');
  } else {
    int64_t cutoff = pc_now_ms() - sel->older_than_ms;
    p->kind = P_AGE;
    snprintf(p->arg, sizeof p->arg, "%lld", (long long)cutoff);
    rc = pc_buf_printf(&p->sel, "{\"older_than_ms\":%lld,\"cutoff_ms\":%lld}", (long long)sel->older_than_ms,
                       (long long)cutoff);
  }
  return rc == PC_EUTF8 ? PC_EINVAL : rc;
}

int pc_shared_purge(struct pc_shared *s, const struct pc_purge_sel *sel,
                    void (*done)(void *ud, int rc, size_t deleted_in_redis), void *ud) {
  struct purge *p;
  int rc;
  if (!s || !sel || !done || !pc_purge_sel_valid(sel)) return PC_EINVAL;
  if (s->closing) return PC_ECANCELED;
  p = calloc(1, sizeof *p);
  if (!p) return PC_ENOMEM;
  p->s = s;
  p->log = 1;
  p->done = done;
  p->ud = ud;
  rc = purge_describe(p, sel);
  if (!rc) rc = p->kind == P_ALL ? purge_all(p) : round_send(p);
  if (rc) pc_buf_free(&p->sel);
  return started(s, rc, p, PC_SHARED_OP_PURGE);
}

int pc_shared_del(struct pc_shared *s, const uint8_t key[16], pc_shared_done_cb cb, void *ud) {
  struct purge *p;
  if (!s || !key || !cb) return PC_EINVAL;
  if (s->closing) return PC_ECANCELED;
  p = calloc(1, sizeof *p);
  if (!p) return PC_ENOMEM;
  p->s = s;
  p->kind = P_KEY;
  p->del_cb = cb;
  p->ud = ud;
  pc_key_hex((const struct pc_key *)key, p->arg);
  return started(s, round_send(p), p, PC_SHARED_OP_DEL);
}

/* ---- Watching the purge log ------------------------------------------------------------
 * One read at a time, so that apply() sees the log in order: XRANGE from the
 * last id applied (inclusive: finding it first proves the log still reaches
 * back to it), a page at a time. */

static void watch_idle(struct pc_shared *s, int64_t delay) {
  struct watch *w = &s->watch;
  w->busy = 0;
  if (w->again) {
    w->again = 0;
    watch_catch_up(s);
    return;
  }
  w->due = pc_mono_ms() + delay;
  sched(s);
}

/* One logged selector → apply(). A malformed entry is skipped (its id still counts). */
static void watch_apply(struct pc_shared *s, const char *id, const char *json, size_t n) {
  struct pc_json_doc *doc = NULL;
  const struct pc_json *root, *v;
  struct pc_purge_sel sel = {0};
  int ok = 0;
  if (pc_json_parse(json, n, &doc, NULL) == 0 && (root = pc_json_root(doc))->type == PC_JSON_OBJECT) {
    if ((v = pc_json_get(root, "all")) && v->type == PC_JSON_TRUE) {
      sel.all = ok = 1;
    } else if ((v = pc_json_get(root, "key")) && v->type == PC_JSON_STRING) {
      ok = sel.has_key = pc_key_from_hex(v->str, (struct pc_key *)sel.key) == 0;
    } else if ((v = pc_json_get(root, "ns")) && v->type == PC_JSON_STRING) {
      sel.ns = v->str;
      ok = 1;
    } else if ((v = pc_json_get(root, "cutoff_ms")) && v->type == PC_JSON_NUMBER) {
      int64_t age = pc_now_ms() - (int64_t)v->num;
      sel.older_than_ms = age > 0 ? age : 1;
      ok = 1;
    }
  }
  if (ok) {
    s->k.purges_applied++;
    s->watch.apply(s->watch.ud, &sel, id);
  }
  pc_json_free(doc);
}

/* One XRANGE entry: [id, [field, value, ...]]. */
static int watch_entry(struct pc_shared *s, const redisReply *e) {
  const redisReply *f;
  char id[ID_MAX];
  if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !is_str(e->element[0]) ||
      e->element[1]->type != REDIS_REPLY_ARRAY || copy_str(id, sizeof id, e->element[0]->str, e->element[0]->len))
    return PC_EPROTO;
  f = e->element[1];
  for (size_t i = 0; i + 1 < f->elements; i += 2)
    if (is_str(f->element[i]) && strcmp(f->element[i]->str, "sel") == 0 && is_str(f->element[i + 1])) {
      watch_apply(s, id, f->element[i + 1]->str, f->element[i + 1]->len);
      break;
    }
  memcpy(s->watch.last, id, sizeof id);
  return 0;
}

static void watch_newest(void *ud, int rc, const redisReply *rep) {
  struct pc_shared *s = ud;
  char id[ID_MAX] = "";
  rc = reply_rc(rc, rep);
  if (!rc && (rep->type != REDIS_REPLY_ARRAY ||
              (rep->elements > 0 &&
               (rep->element[0]->type != REDIS_REPLY_ARRAY || rep->element[0]->elements < 1 ||
                !is_str(rep->element[0]->element[0]) ||
                copy_str(id, sizeof id, rep->element[0]->element[0]->str, rep->element[0]->element[0]->len)))))
    rc = PC_EPROTO;
  if (rc || s->closing) {
    count_fail(s, rc);
    if (!s->closing) watch_idle(s, WATCH_RETRY_MS);
    return;
  }
  memcpy(s->watch.last, id, sizeof id);
  s->k.purge_resets++;
  s->watch.reset(s->watch.ud, id);
  if (!s->closing) watch_idle(s, WATCH_POLL_MS);
}

/* The log no longer reaches back to our last id: learn its newest, then reset. */
static int watch_reset(struct pc_shared *s) {
  struct args a;
  a.n = 0;
  arg_s(&a, "XREVRANGE");
  arg_s(&a, s->purges);
  arg_s(&a, "+");
  arg_s(&a, "-");
  arg_s(&a, "COUNT");
  arg_s(&a, "1");
  return send_cmd(s, &a, 1, watch_newest, s);
}

static void watch_read(void *ud, int rc, const redisReply *rep) {
  struct pc_shared *s = ud;
  struct watch *w = &s->watch;
  size_t first = w->last[0] ? 1 : 0, i;
  rc = reply_rc(rc, rep);
  if (!rc && rep->type != REDIS_REPLY_ARRAY) rc = PC_EPROTO;
  if (!rc && first &&
      (rep->elements == 0 || rep->element[0]->type != REDIS_REPLY_ARRAY || rep->element[0]->elements < 1 ||
       !is_str(rep->element[0]->element[0]) || strcmp(rep->element[0]->element[0]->str, w->last) != 0)) {
    rc = watch_reset(s);
    if (!rc) return;
  }
  for (i = first; !rc && i < rep->elements && !s->closing; i++) rc = watch_entry(s, rep->element[i]);
  if (s->closing) return;
  count_fail(s, rc);
  if (rc)
    watch_idle(s, WATCH_RETRY_MS);
  else if (rep->elements == WATCH_PAGE + first) { /* a full page: there may be more */
    w->busy = w->again = 0;
    watch_catch_up(s);
  } else
    watch_idle(s, WATCH_POLL_MS);
}

static void watch_catch_up(struct pc_shared *s) {
  struct watch *w = &s->watch;
  struct args a;
  a.n = 0;
  char count[8];
  int rc;
  if (!w->on || s->closing) return;
  if (w->busy) {
    w->again = 1;
    return;
  }
  w->busy = 1;
  w->due = -1;
  snprintf(count, sizeof count, "%d", WATCH_PAGE + (w->last[0] ? 1 : 0));
  arg_s(&a, "XRANGE");
  arg_s(&a, s->purges);
  arg_s(&a, w->last[0] ? w->last : "-");
  arg_s(&a, "+");
  arg_s(&a, "COUNT");
  arg_s(&a, count);
  rc = send_cmd(s, &a, 1, watch_read, s);
  if (rc) {
    count_fail(s, rc);
    watch_idle(s, WATCH_RETRY_MS);
  }
}

static void watch_notified(void *ud, const char *p, size_t n) { watch_catch_up(ud); }
static void watch_up(void *ud) { watch_catch_up(ud); }

int pc_shared_watch_purges(struct pc_shared *s, const char *last_applied_id,
                           void (*apply)(void *ud, const struct pc_purge_sel *sel, const char *id),
                           void (*reset)(void *ud, const char *id), void *ud) {
  struct watch *w;
  int rc;
  if (!s || !apply || !reset) return PC_EINVAL;
  if (s->closing) return PC_ECANCELED;
  w = &s->watch;
  if (w->on || (last_applied_id && strlen(last_applied_id) >= ID_MAX)) return PC_EINVAL;
  *w = (struct watch){.on = 1, .due = -1, .apply = apply, .reset = reset, .ud = ud};
  if (last_applied_id) memcpy(w->last, last_applied_id, strlen(last_applied_id) + 1);
  rc = pc_redis_subscribe(s->r, s->channel, watch_notified, watch_up, s);
  if (rc) w->on = 0;
  return rc;
}

/* ---- Fleet stats ----------------------------------------------------------------------
 * One hash, a field per node: read back with one HGETALL (no SCAN), and the
 * stamp in each value lets a reader skip (and drop) nodes long gone. */

int pc_shared_publish_stats(struct pc_shared *s, const char *json, size_t n) {
  struct args a;
  a.n = 0;
  pc_buf v;
  int rc;
  if (!s || (!json && n)) return PC_EINVAL;
  if (s->closing) return PC_ECANCELED;
  pc_buf_init(&v, n + 32);
  rc = pc_buf_printf(&v, "%lld ", (long long)pc_now_ms());
  if (!rc) rc = pc_buf_append(&v, json ? json : "", n);
  if (rc) goto out;
  arg_s(&a, "HSET");
  arg_s(&a, s->stats);
  arg_s(&a, s->node_id);
  arg(&a, v.data, v.len);
  rc = send_cmd(s, &a, 1, on_ignored, s);
  if (rc) goto out;
  pexpire(s, s->stats, PC_SHARED_STATS_TTL_MS);
  s->k.ops[PC_SHARED_OP_PUBLISH]++;
out:
  count_fail(s, rc);
  pc_buf_free(&v);
  return rc;
}

struct stats_op {
  struct pc_shared *s;
  void (*row)(void *ud, const char *node, const char *json, size_t n, int64_t updated_ms);
  void (*done)(void *ud, int rc);
  void *ud;
};

/* "<updated_ms> <json>" → row(); stale ones are collected into an HDEL. */
static void stats_row(struct stats_op *o, const redisReply *node, const redisReply *val, struct args *stale) {
  const char *sp = memchr(val->str, ' ', val->len);
  int64_t updated;
  if (!sp || parse_i64(val->str, (size_t)(sp - val->str), &updated)) return;
  if (pc_now_ms() - updated > PC_SHARED_STATS_TTL_MS) {
    if (stale->n < ARGS_MAX) arg(stale, node->str, node->len);
    return;
  }
  o->row(o->ud, node->str, sp + 1, val->len - (size_t)(sp + 1 - val->str), updated);
}

static void stats_read(void *ud, int rc, const redisReply *rep) {
  struct stats_op *o = ud;
  struct pc_shared *s = o->s;
  struct args stale;
  stale.n = 0;
  rc = reply_rc(rc, rep);
  if (!rc && (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2)) rc = PC_EPROTO;
  arg_s(&stale, "HDEL");
  arg_s(&stale, s->stats);
  for (size_t i = 0; !rc && i < rep->elements && !s->closing; i += 2)
    if (is_str(rep->element[i]) && is_str(rep->element[i + 1]))
      stats_row(o, rep->element[i], rep->element[i + 1], &stale);
  if (!rc && s->closing) rc = PC_ECANCELED;
  if (!rc && stale.n > 2) send_cmd(s, &stale, 1, on_ignored, s);
  count_fail(s, rc);
  o->done(o->ud, rc);
  free(o);
}

int pc_shared_read_stats(struct pc_shared *s,
                         void (*row)(void *ud, const char *node, const char *json, size_t n, int64_t updated_ms),
                         void (*done)(void *ud, int rc), void *ud) {
  struct args a;
  a.n = 0;
  struct stats_op *o;
  if (!s || !row || !done) return PC_EINVAL;
  if (s->closing) return PC_ECANCELED;
  o = malloc(sizeof *o);
  if (!o) return PC_ENOMEM;
  *o = (struct stats_op){s, row, done, ud};
  arg_s(&a, "HGETALL");
  arg_s(&a, s->stats);
  return started(s, send_cmd(s, &a, 1, stats_read, o), o, -1);
}

/* ---- The fleet secret ----------------------------------------------------------------------
 * SET NX, then (once it is answered) GET: whichever proposal landed first. */

struct secret_op {
  struct pc_shared *s;
  void (*cb)(void *ud, int rc, const uint8_t secret[32]);
  void *ud;
  uint8_t val[32];
};

static void secret_finish(struct secret_op *o, int rc) {
  count_fail(o->s, rc);
  o->cb(o->ud, rc, rc ? NULL : o->val);
  free(o);
}

static void secret_got(void *ud, int rc, const redisReply *rep) {
  struct secret_op *o = ud;
  rc = reply_rc(rc, rep);
  if (!rc && rep->type == REDIS_REPLY_NIL) rc = PC_EPROTO; /* deleted between the two */
  if (!rc && (rep->type != REDIS_REPLY_STRING || rep->len != 32)) rc = PC_ECORRUPT;
  if (!rc) memcpy(o->val, rep->str, 32);
  secret_finish(o, rc);
}

static void secret_set(void *ud, int rc, const redisReply *rep) {
  struct secret_op *o = ud;
  struct args a;
  a.n = 0;
  rc = reply_rc(rc, rep);
  if (!rc) {
    arg_s(&a, "GET");
    arg_s(&a, o->s->secret);
    rc = o->s->closing ? PC_ECANCELED : send_cmd(o->s, &a, 1, secret_got, o);
    if (!rc) return;
  }
  secret_finish(o, rc);
}

int pc_shared_secret(struct pc_shared *s, const uint8_t proposed[32],
                     void (*cb)(void *ud, int rc, const uint8_t secret[32]), void *ud) {
  struct args a;
  a.n = 0;
  struct secret_op *o;
  if (!s || !proposed || !cb) return PC_EINVAL;
  if (s->closing) return PC_ECANCELED;
  o = calloc(1, sizeof *o);
  if (!o) return PC_ENOMEM;
  *o = (struct secret_op){.s = s, .cb = cb, .ud = ud};
  arg_s(&a, "SET");
  arg_s(&a, s->secret);
  arg(&a, proposed, 32);
  arg_s(&a, "NX");
  return started(s, send_cmd(s, &a, 1, secret_set, o), o, -1);
}

/* ---- Leases --------------------------------------------------------------------------------
 * A lease is on s->leases while held and not released: the timer renews it
 * (compare-and-PEXPIRE) every lease_ms/3. Its stream entries carry the
 * lease's token and a sequence number, so a follower can tell a new leader
 * from the old one, and a missing entry from none. */

static void lease_link(struct pc_shared_lease *l) {
  struct pc_shared *s = l->s;
  l->prev = NULL;
  l->next = s->leases;
  if (s->leases) s->leases->prev = l;
  s->leases = l;
  l->linked = 1;
}

static void lease_unlink(struct pc_shared_lease *l) {
  if (!l->linked || !l->s) return;
  if (l->prev)
    l->prev->next = l->next;
  else
    l->s->leases = l->next;
  if (l->next) l->next->prev = l->prev;
  l->prev = l->next = NULL;
  l->linked = 0;
}

static void lease_maybe_free(struct pc_shared_lease *l) {
  if (!l->released || l->pending > 0) return;
  lease_unlink(l);
  free(l);
}

static struct pc_shared_lease *lease_new(struct pc_shared *s, const uint8_t key[16]) {
  struct pc_shared_lease *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->s = s;
  flight_keys(s, key, l->lkey, l->skey);
  new_token(s, l->tok);
  return l;
}

/* EVAL script on the lease and stream keys, with the token and one number. */
static int lease_eval(struct pc_shared_lease *l, const char *script, int64_t ms, const char *extra, pc_redis_cb cb,
                      void *ud) {
  struct args a;
  a.n = 0;
  char nk[4], keys[2][KEY_MAX], num[24];
  memcpy(keys[0], l->lkey, KEY_MAX);
  memcpy(keys[1], l->skey, KEY_MAX);
  snprintf(num, sizeof num, "%lld", (long long)ms);
  eval_args(&a, script, nk, 2, keys);
  arg_s(&a, l->tok);
  arg_s(&a, num);
  if (extra) arg_s(&a, extra);
  return send_cmd(l->s, &a, 3, cb, ud);
}

static int pub_entry(struct pc_shared_lease *l, char kind, const struct args *fields, size_t bytes, int force);

/* Publishing stops; followers of this leader get an aborted end (if they got
 * a head) rather than a body with a hole. */
static void pub_abort(struct pc_shared_lease *l) {
  struct args f;
  f.n = 0;
  char rc[16];
  if (l->stopped) return;
  l->stopped = 1;
  if (!l->head || l->ended) return;
  snprintf(rc, sizeof rc, "%d", PC_EUPPROTO);
  arg_s(&f, "rc");
  arg_s(&f, rc);
  pub_entry(l, 'e', &f, 0, 1);
}

/* The lease expired under us (or Redis restarted empty): stop publishing.
 * Entries appended since may have made the stream anew, without expiry. */
static void lease_lost(struct pc_shared_lease *l) {
  l->lost = 1;
  pub_abort(l);
  pexpire(l->s, l->skey, PC_SHARED_STREAM_LINGER_MS);
}

static void renew_retry(struct pc_shared_lease *l) {
  int64_t now = pc_mono_ms(), step = l->s->lease_ms / 10;
  if (now >= l->valid_until)
    lease_lost(l);
  else
    l->renew_at = now + (step > 20 ? step : 20);
}

static void renewed(void *ud, int rc, const redisReply *rep) {
  struct pc_shared_lease *l = ud;
  struct pc_shared *s = l->s;
  l->pending--;
  l->renewing = 0;
  rc = reply_rc(rc, rep);
  if (!l->released && s && !s->closing) {
    if (!rc && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
      l->valid_until = l->renew_sent + s->lease_ms;
      l->renew_at = l->renew_sent + s->lease_ms / 3;
    } else if (!rc) {
      lease_lost(l); /* expired and taken, or gone with a Redis restart */
    } else {
      count_fail(s, rc);
      renew_retry(l);
    }
    sched(s);
  }
  lease_maybe_free(l);
}

static void lease_renew(struct pc_shared_lease *l) {
  struct pc_shared *s = l->s;
  char ttl[24];
  int rc;
  snprintf(ttl, sizeof ttl, "%lld", (long long)(s->lease_ms + PC_SHARED_STREAM_LINGER_MS));
  l->renew_sent = pc_mono_ms();
  rc = lease_eval(l, RENEW, s->lease_ms, ttl, renewed, l);
  if (rc) {
    count_fail(s, rc);
    renew_retry(l);
    return;
  }
  l->renewing = 1;
  l->pending++;
}

struct acquire_op {
  struct pc_shared_lease *l;
  int64_t sent;
  void (*then)(struct acquire_op *op, int rc);
  void (*cb)(void *ud, int rc, struct pc_shared_lease *l);
  void *ud;
  struct pc_shared_follow *f; /* a takeover's follower */
};

static void acquired(void *ud, int rc, const redisReply *rep) {
  struct acquire_op *op = ud;
  struct pc_shared_lease *l = op->l;
  struct pc_shared *s = l->s;
  rc = reply_rc(rc, rep);
  if (!rc && rep->type != REDIS_REPLY_INTEGER) rc = PC_EPROTO;
  if (!rc && rep->integer != 1) rc = PC_EEXISTS;
  if (!rc) {
    l->valid_until = op->sent + s->lease_ms;
    l->renew_at = op->sent + s->lease_ms / 3;
    lease_link(l);
    sched(s);
    s->k.leases_won++;
  } else {
    if (rc == PC_EEXISTS) s->k.leases_held++;
    count_fail(s, rc);
    free(l);
    op->l = NULL;
  }
  op->then(op, rc);
  free(op);
}

/* Send the acquisition; on 0, op belongs to its callback. */
static int acquire_send(struct pc_shared *s, const uint8_t key[16], int fresh, struct acquire_op *op) {
  int rc;
  op->l = lease_new(s, key);
  if (!op->l) return PC_ENOMEM;
  op->sent = pc_mono_ms();
  rc = lease_eval(op->l, ACQUIRE, s->lease_ms, fresh ? "1" : "0", acquired, op);
  if (rc) {
    free(op->l);
    count_fail(s, rc);
    return rc;
  }
  s->k.ops[PC_SHARED_OP_LEASE]++;
  return 0;
}

static void lease_got(struct acquire_op *op, int rc) { op->cb(op->ud, rc, op->l); }

int pc_shared_lease(struct pc_shared *s, const uint8_t key[16], void (*cb)(void *ud, int rc, struct pc_shared_lease *l),
                    void *ud) {
  struct acquire_op *op;
  int rc;
  if (!s || !key || !cb) return PC_EINVAL;
  if (s->closing) return PC_ECANCELED;
  op = calloc(1, sizeof *op);
  if (!op) return PC_ENOMEM;
  op->then = lease_got;
  op->cb = cb;
  op->ud = ud;
  rc = acquire_send(s, key, 1, op);
  if (rc) free(op);
  return rc;
}

int pc_shared_lease_held(const struct pc_shared_lease *l) {
  return l && l->s && !l->s->closing && !l->lost && !l->released && pc_mono_ms() < l->valid_until;
}

/* ---- Leader publishing ------------------------------------------------------------------- */

struct pub {
  struct pc_shared_lease *l;
  size_t bytes;
};

static void pub_done(void *ud, int rc, const redisReply *rep) {
  struct pub *pb = ud;
  struct pc_shared_lease *l = pb->l;
  l->pending--;
  l->s->pub_inflight -= pb->bytes;
  free(pb);
  rc = reply_rc(rc, rep);
  if (rc) {
    count_fail(l->s, rc);
    pub_abort(l); /* the entry may be missing: followers must not read past it */
  }
  lease_maybe_free(l);
}

/* XADD one entry: tok (the leader's token), n (its sequence number from 0),
 * k (kind), then the kind's fields: h: st (status), hd (header lines);
 * c: t (ms after the first chunk), d (bytes); e: rc (0 or a PC_E* code),
 * u (usage JSON). force: the aborted end, sent whatever the budget and state. */
static int pub_entry(struct pc_shared_lease *l, char kind, const struct args *fields, size_t bytes, int force) {
  struct pc_shared *s = l->s;
  struct args a;
  a.n = 0;
  char seq[16];
  struct pub *pb;
  int rc;
  if (!s || s->closing) return PC_ECANCELED;
  if (!force && (l->stopped || l->lost || l->released)) return PC_ECANCELED;
  if (!force && s->pub_inflight > 0 &&
      (s->pub_inflight >= s->max_inflight || bytes > s->max_inflight - s->pub_inflight)) {
    s->k.busy++;
    pub_abort(l);
    return PC_EBUSY;
  }
  pb = malloc(sizeof *pb);
  if (!pb) return PC_ENOMEM;
  *pb = (struct pub){l, bytes};
  snprintf(seq, sizeof seq, "%u", l->seq);
  arg_s(&a, "XADD");
  arg_s(&a, l->skey);
  arg_s(&a, "MAXLEN");
  arg_s(&a, "~");
  arg_s(&a, STREAM_MAXLEN);
  arg_s(&a, "*");
  arg_s(&a, "tok");
  arg_s(&a, l->tok);
  arg_s(&a, "n");
  arg_s(&a, seq);
  arg_s(&a, "k");
  arg(&a, &kind, 1);
  for (int i = 0; i < fields->n; i++) arg(&a, fields->v[i], fields->len[i]);
  rc = send_cmd(s, &a, 1, pub_done, pb);
  if (rc) {
    free(pb);
    count_fail(s, rc);
    if (!force) pub_abort(l);
    return rc;
  }
  l->pending++;
  l->seq++;
  s->pub_inflight += bytes;
  s->k.ops[PC_SHARED_OP_PUBLISH]++;
  return 0;
}

int pc_shared_pub_head(struct pc_shared_lease *l, int status, const char *headers, size_t n) {
  struct args f;
  f.n = 0;
  char st[16];
  int rc;
  if (!l || l->head || (!headers && n)) return PC_EINVAL;
  snprintf(st, sizeof st, "%d", status);
  arg_s(&f, "st");
  arg_s(&f, st);
  arg_s(&f, "hd");
  arg(&f, headers ? headers : "", n);
  rc = pub_entry(l, 'h', &f, n, 0);
  if (rc) return rc;
  l->head = 1;
  /* The stream must not outlive a leader that dies before its first renewal. */
  pexpire(l->s, l->skey, l->s->lease_ms + PC_SHARED_STREAM_LINGER_MS);
  return 0;
}

int pc_shared_pub_chunk(struct pc_shared_lease *l, uint32_t t_ms, const char *p, size_t n) {
  struct args f;
  f.n = 0;
  char t[16];
  if (!l || !l->head || l->ended || (!p && n)) return PC_EINVAL;
  snprintf(t, sizeof t, "%u", t_ms);
  arg_s(&f, "t");
  arg_s(&f, t);
  arg_s(&f, "d");
  arg(&f, p ? p : "", n);
  return pub_entry(l, 'c', &f, n, 0);
}

int pc_shared_pub_end(struct pc_shared_lease *l, int rc, const char *usage, size_t un) {
  struct args f;
  f.n = 0;
  char code[16];
  int sent;
  if (!l || !l->head || l->ended || (!usage && un)) return PC_EINVAL;
  snprintf(code, sizeof code, "%d", rc > 0 ? PC_EUPPROTO : rc);
  arg_s(&f, "rc");
  arg_s(&f, code);
  arg_s(&f, "u");
  arg(&f, usage ? usage : "", un);
  sent = pub_entry(l, 'e', &f, un, 0);
  l->ended = 1;
  return sent;
}

static void lease_released(void *ud, int rc, const redisReply *rep) {
  struct pc_shared_lease *l = ud;
  l->pending--;
  count_fail(l->s, reply_rc(rc, rep));
  lease_maybe_free(l);
}

void pc_shared_lease_release(struct pc_shared_lease *l) {
  struct pc_shared *s;
  if (!l || l->released) return;
  s = l->s;
  if (s && !s->closing && !l->lost) {
    pub_abort(l); /* sends an aborted end only after a head without an end */
    if (lease_eval(l, RELEASE, PC_SHARED_STREAM_LINGER_MS, NULL, lease_released, l) == 0) l->pending++;
  }
  l->released = 1;
  if (s) lease_unlink(l);
  lease_maybe_free(l);
}

/* ---- Following a leader on another node ------------------------------------------------------
 * Read the stream from its start, then live (XREAD BLOCK on a dedicated
 * connection; short polls when none is free). With nothing new for a block
 * time, look at the lease: held, read on; gone, read once more (a leader
 * that released has appended its end before), then either take over (if
 * nothing was delivered) or be cut. Redis callbacks enter with in_cb held,
 * so that a user callback's unfollow never frees f under our feet. */

static void follow_set(struct pc_shared_follow *f, enum fstate st) { f->st = st; }

static void follow_link(struct pc_shared_follow *f) {
  struct pc_shared *s = f->s;
  f->prev = NULL;
  f->next = s->follows;
  if (s->follows) s->follows->prev = f;
  s->follows = f;
}

static void follow_unlink(struct pc_shared_follow *f) {
  if (f->prev)
    f->prev->next = f->next;
  else if (f->s->follows == f)
    f->s->follows = f->next;
  if (f->next) f->next->prev = f->prev;
  f->prev = f->next = NULL;
}

static void follow_maybe_free(struct pc_shared_follow *f) {
  if (f->st == F_OVER && f->pending == 0 && f->in_cb == 0) free(f);
}

static void follow_over(struct pc_shared_follow *f) {
  follow_set(f, F_OVER);
  follow_unlink(f);
}

static void follow_end(struct pc_shared_follow *f, int rc, const char *usage, size_t un) {
  if (f->st == F_OVER) return;
  follow_over(f);
  if (rc == PC_EUPPROTO) f->s->k.follows_cut++;
  if (rc == PC_EUNAVAIL) count_fail(f->s, rc); /* the leader's own errors are not the tier's */
  f->ops->on_done(f->ud, rc, usage, un);       /* f is freed by whoever entered: never here */
}

/* Redis being unusable reads as PC_EUNAVAIL to the follower's caller. */
static int follow_rc(int rc) { return rc == PC_ECANCELED ? rc : PC_EUNAVAIL; }

static void follow_cut(struct pc_shared_follow *f) { follow_end(f, PC_EUPPROTO, NULL, 0); }

static void follow_enter(struct pc_shared_follow *f) {
  f->pending--;
  f->in_cb++;
}

static void follow_leave(struct pc_shared_follow *f) {
  f->in_cb--;
  follow_maybe_free(f);
}

static int xread_send(struct pc_shared_follow *f, int block, pc_redis_cb cb) {
  struct args a;
  a.n = 0;
  char ms[16];
  int rc;
  arg_s(&a, "XREAD");
  if (block) {
    snprintf(ms, sizeof ms, "%d", PC_SHARED_FOLLOW_BLOCK_MS);
    arg_s(&a, "BLOCK");
    arg_s(&a, ms);
  }
  arg_s(&a, "COUNT");
  arg_s(&a, FOLLOW_COUNT);
  arg_s(&a, "STREAMS");
  arg_s(&a, f->skey);
  arg_s(&a, f->last);
  struct pc_redis_cmd c = {.argc = a.n,
                           .argv = a.v,
                           .argvlen = a.len,
                           .key_index = a.n - 2,
                           .node = -1,
                           .dedicated = block,
                           .timeout_ms = block ? PC_SHARED_FOLLOW_BLOCK_MS + f->s->timeout_ms : 0};
  rc = f->s->closing ? PC_ECANCELED : pc_redis_command(f->s->r, &c, cb, f);
  if (!rc) {
    f->pending++;
    f->blocked = (unsigned)block;
  }
  return rc;
}

static void follow_got(void *ud, int rc, const redisReply *rep);
static void follow_orphaned(struct pc_shared_follow *f);

/* A blocking read; a non-blocking one when every dedicated connection is busy. */
static int follow_send_read(struct pc_shared_follow *f) {
  int rc = xread_send(f, 1, follow_got);
  if (rc == PC_EBUSY) rc = xread_send(f, 0, follow_got);
  if (!rc) follow_set(f, F_READ);
  return rc;
}

static void follow_read(struct pc_shared_follow *f) {
  int rc;
  if (f->st == F_OVER) return;
  rc = follow_send_read(f);
  if (rc) follow_end(f, follow_rc(rc), NULL, 0);
}

static void follow_poll(struct pc_shared_follow *f) {
  f->in_cb++;
  follow_read(f);
  f->in_cb--;
  follow_maybe_free(f);
}

/* XREAD's reply: nil (nothing in the block time) or [[key, entries]]. */
static int xread_entries(const redisReply *rep, const redisReply **out) {
  const redisReply *e;
  *out = NULL;
  if (rep->type == REDIS_REPLY_NIL) return 0;
  if (rep->type != REDIS_REPLY_ARRAY) return PC_EPROTO;
  if (rep->elements == 0) return 0;
  e = rep->element[0];
  if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->type != REDIS_REPLY_ARRAY) return PC_EPROTO;
  *out = e->element[1];
  return 0;
}

static const redisReply *field(const redisReply *fields, const char *name) {
  for (size_t i = 0; i + 1 < fields->elements; i += 2)
    if (is_str(fields->element[i]) && strcmp(fields->element[i]->str, name) == 0 && is_str(fields->element[i + 1]))
      return fields->element[i + 1];
  return NULL;
}

static int field_i64(const redisReply *fields, const char *name, int64_t *out) {
  const redisReply *v = field(fields, name);
  return v ? parse_i64(v->str, v->len, out) : -1;
}

/* The entry's fields, or NULL when it is not [id, [fields]]. */
static const redisReply *entry_fields(const redisReply *e) {
  if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !is_str(e->element[0]) ||
      e->element[1]->type != REDIS_REPLY_ARRAY)
    return NULL;
  return e->element[1];
}

static int is_head(const redisReply *e) {
  const redisReply *fields = entry_fields(e), *k = fields ? field(fields, "k") : NULL;
  return k && k->len == 1 && k->str[0] == 'h';
}

/* Deliver one entry of the leader followed (the token matched). */
static void follow_deliver(struct pc_shared_follow *f, char kind, const redisReply *fields) {
  const redisReply *v;
  int64_t n = 0;
  if (kind == 'h' && field_i64(fields, "st", &n) == 0 && (v = field(fields, "hd"))) {
    f->ops->on_head(f->ud, (int)n, v->str, v->len);
  } else if (kind == 'c' && field_i64(fields, "t", &n) == 0 && (v = field(fields, "d"))) {
    f->ops->on_body(f->ud, v->str, v->len, (uint32_t)n);
  } else if (kind == 'e' && field_i64(fields, "rc", &n) == 0 && n <= 0 && n > -1000) {
    v = field(fields, "u");
    follow_end(f, (int)n, v ? v->str : NULL, v ? v->len : 0);
  } else {
    follow_cut(f);
  }
}

static void follow_entry(struct pc_shared_follow *f, const redisReply *e) {
  const redisReply *fields = entry_fields(e), *tok = fields ? field(fields, "tok") : NULL,
                   *k = fields ? field(fields, "k") : NULL;
  int64_t seq;
  if (!tok || !k || k->len != 1 || field_i64(fields, "n", &seq)) {
    follow_cut(f);
    return;
  }
  if (!f->have_tok) { /* the first entry delivered must be a leader's head */
    if (k->str[0] != 'h' || copy_str(f->tok, sizeof f->tok, tok->str, tok->len)) {
      follow_cut(f);
      return;
    }
    f->have_tok = 1;
    f->next_seq = 0;
  } else if (strlen(f->tok) != tok->len || memcmp(f->tok, tok->str, tok->len) != 0) {
    if (k->str[0] == 'h') follow_cut(f); /* a new leader: what we delivered would be spliced */
    return;                              /* else a late entry of a leader already replaced */
  }
  if (seq != (int64_t)f->next_seq) {
    follow_cut(f); /* an entry is missing */
    return;
  }
  f->next_seq++;
  follow_deliver(f, k->str[0], fields);
}

/* A batch of entries. Before anything was delivered, start at the batch's
 * last head: earlier entries belong to leaders that died before it. */
static void follow_entries(struct pc_shared_follow *f, const redisReply *list) {
  size_t i = 0, n = list->elements;
  const redisReply *last = list->element[n - 1];
  if (!entry_fields(last) || copy_str(f->last, sizeof f->last, last->element[0]->str, last->element[0]->len)) {
    follow_cut(f);
    return;
  }
  if (!f->have_tok) {
    for (i = n; i > 0 && !is_head(list->element[i - 1]);) i--;
    if (i == 0) { /* no head: the stream's start was trimmed */
      follow_cut(f);
      return;
    }
    i--;
  }
  for (; i < n && f->st != F_OVER; i++) follow_entry(f, list->element[i]);
}

static void follow_check_lease(struct pc_shared_follow *f);

/* Entries were read (list may be NULL: none). */
static void follow_on_entries(struct pc_shared_follow *f, const redisReply *list) {
  if (list && list->elements > 0) {
    follow_entries(f, list);
    if (f->st == F_OVER) return;
    f->idle_since = pc_mono_ms();
    follow_read(f);
  } else if (f->blocked || pc_mono_ms() - f->idle_since >= PC_SHARED_FOLLOW_BLOCK_MS) {
    follow_check_lease(f);
  } else {
    follow_set(f, F_WAIT);
    f->due = pc_mono_ms() + FOLLOW_POLL_MS;
    sched(f->s);
  }
}

static void follow_got(void *ud, int rc, const redisReply *rep) {
  struct pc_shared_follow *f = ud;
  const redisReply *list = NULL;
  follow_enter(f);
  rc = reply_rc(rc, rep);
  if (!rc) rc = xread_entries(rep, &list);
  if (f->st == F_OVER) {
  } else if (rc) {
    follow_end(f, follow_rc(rc), NULL, 0);
  } else if (f->st == F_RECHECK && !(list && list->elements > 0)) {
    follow_orphaned(f); /* the lease is gone and the last read found nothing new */
  } else {
    follow_on_entries(f, list);
  }
  follow_leave(f);
}

static void took(struct acquire_op *op, int rc) {
  struct pc_shared_follow *f = op->f;
  follow_enter(f);
  if (f->st == F_OVER) { /* unfollowed meanwhile: nobody wants the lease */
    if (!rc) pc_shared_lease_release(op->l);
  } else if (!rc) {
    f->s->k.takeovers++;
    follow_over(f);
    f->ops->on_takeover(f->ud, op->l);
  } else if (rc == PC_EEXISTS) { /* another follower won: its entries come next */
    f->idle_since = pc_mono_ms();
    follow_read(f);
  } else {
    follow_end(f, follow_rc(rc), NULL, 0);
  }
  follow_leave(f);
}

/* The lease is gone and a last read found nothing new. */
static void follow_orphaned(struct pc_shared_follow *f) {
  struct acquire_op *op;
  int rc;
  if (f->have_tok) {
    follow_cut(f); /* bytes of a dead leader were delivered: never splice */
    return;
  }
  op = calloc(1, sizeof *op);
  rc = op ? PC_OK : PC_ENOMEM;
  if (op) {
    op->then = took;
    op->f = f;
    rc = f->s->closing ? PC_ECANCELED : acquire_send(f->s, f->key, 0, op);
  }
  if (rc) {
    free(op);
    follow_end(f, follow_rc(rc), NULL, 0);
    return;
  }
  f->pending++;
  follow_set(f, F_TAKE);
}

static void follow_lease_got(void *ud, int rc, const redisReply *rep) {
  struct pc_shared_follow *f = ud;
  follow_enter(f);
  rc = reply_rc(rc, rep);
  if (f->st == F_OVER) {
  } else if (rc) {
    follow_end(f, follow_rc(rc), NULL, 0);
  } else if (rep->type != REDIS_REPLY_NIL) { /* held: the leader is alive, only slow */
    f->idle_since = pc_mono_ms();
    follow_read(f);
  } else {
    rc = xread_send(f, 0, follow_got);
    if (rc)
      follow_end(f, follow_rc(rc), NULL, 0);
    else
      follow_set(f, F_RECHECK);
  }
  follow_leave(f);
}

static void follow_check_lease(struct pc_shared_follow *f) {
  struct args a;
  a.n = 0;
  int rc;
  arg_s(&a, "GET");
  arg_s(&a, f->lkey);
  rc = f->s->closing ? PC_ECANCELED : send_cmd(f->s, &a, 1, follow_lease_got, f);
  if (rc) {
    follow_end(f, follow_rc(rc), NULL, 0);
    return;
  }
  f->pending++;
  follow_set(f, F_LEASE);
}

struct pc_shared_follow *pc_shared_follow(struct pc_shared *s, const uint8_t key[16],
                                          const struct pc_shared_follow_ops *ops, void *ud) {
  struct pc_shared_follow *f;
  if (!s || s->closing || !key || !ops || !ops->on_head || !ops->on_body || !ops->on_done || !ops->on_takeover)
    return NULL;
  f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->s = s;
  f->ops = ops;
  f->ud = ud;
  memcpy(f->key, key, 16);
  flight_keys(s, key, f->lkey, f->skey);
  memcpy(f->last, "0-0", 4);
  f->idle_since = pc_mono_ms();
  if (follow_send_read(f)) {
    count_fail(s, PC_EUNAVAIL);
    free(f);
    return NULL;
  }
  follow_link(f);
  s->k.ops[PC_SHARED_OP_FOLLOW]++;
  return f;
}

void pc_shared_unfollow(struct pc_shared_follow *f) {
  if (!f) return;
  if (f->st != F_OVER) follow_over(f);
  follow_maybe_free(f);
}
