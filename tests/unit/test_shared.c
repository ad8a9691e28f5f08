/* test_shared.c — the shared (fleet) tier against real redis-server processes
 * (no mocks): entries (get/put/del, TTL, max_value, back-pressure, prefix
 * isolation), purges by every selector with the purge log and its watchers
 * (in order; reset when the log no longer reaches back), fleet stats, the
 * fleet secret, Redis dying and coming back; a 3-master cluster for the same
 * ops; and single flight across nodes: a leader and followers live, late
 * followers, a leader dying before or after its first byte, error ends and
 * publishing that cannot keep up. Several pc_shared on one loop stand for
 * several nodes (each has its own connections). Servers start on free
 * 127.0.0.1 ports in a temporary directory, die with the test process
 * (PR_SET_PDEATHSIG) and are killed by pid in the fini, which also removes
 * the directory. Waits poll a condition with a bound, never sleep for
 * synchronization. Nothing is asserted inside a libuv callback: callbacks
 * record, the test body asserts. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "purge.h"
#include "redis.h"
#include "shared.h"

#include "redis_srv.h"

#define MAX_NODES 8
#define TIMEOUT_MS 250
/* A failing operation must come back within the timeout plus this (2 shared
 * cores, sanitizers). */
#define MARGIN_MS 250
#define LEASE_MS 600 /* shorter than the default 2 s: dead leaders are noticed sooner */

static struct pc_shared *g_nodes[MAX_NODES];
static int g_nnodes;

static long long cli_int(const struct srv *s, const char *const *args) {
  char out[64];
  cli_argv(s, out, sizeof out, args);
  return atoll(out);
}

#define CLI_INT(s, ...) cli_int((s), (const char *const[]){__VA_ARGS__, NULL})

/* ---- fixture -------------------------------------------------------------------- */

static void setup(void) {
  char tmpl[] = "/tmp/pc-shared-test-XXXXXX";
  signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
  cr_assert_not_null(mkdtemp(tmpl));
  memcpy(g_dir, tmpl, sizeof tmpl);
  cr_assert_eq(uv_loop_init(&g_loop), 0);
  /* A heartbeat, so that a UV_RUN_ONCE in a wait loop returns regularly. */
  uv_timer_init(&g_loop, &g_tick);
  uv_timer_start(&g_tick, on_tick, 5, 5);
  g_loop_open = 1;
}

static void teardown(void) {
  for (int i = 0; i < g_nsrv; i++) srv_kill(&g_srv[i]);
  g_nsrv = 0;
  if (g_loop_open) {
    for (int i = 0; i < g_nnodes; i++) pc_shared_destroy(g_nodes[i]);
    uv_close((uv_handle_t *)&g_tick, NULL);
    for (int i = 0; i < 1000 && uv_run(&g_loop, UV_RUN_NOWAIT); i++) {
    }
    uv_loop_close(&g_loop);
    g_loop_open = 0;
  }
  g_nnodes = 0;
  if (g_dir[0]) nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  g_dir[0] = '\0';
}

struct opts {
  const char *prefix;
  const char *id;
  size_t max_value, max_inflight;
};

static struct pc_shared *node_n(const char *const *urls, size_t n, struct opts o) {
  struct pc_shared_config cfg = {.urls = urls,
                                 .n_urls = n,
                                 .prefix = o.prefix,
                                 .timeout_ms = TIMEOUT_MS,
                                 .node_id = o.id ? o.id : "node",
                                 .max_value = o.max_value,
                                 .max_inflight = o.max_inflight,
                                 .lease_ms = LEASE_MS};
  struct pc_shared *s = NULL;
  cr_assert(g_nnodes < MAX_NODES);
  int rc = pc_shared_create(&g_loop, &cfg, &s);
  cr_assert_eq(rc, 0, "create: %s", pc_strerror(rc));
  g_nodes[g_nnodes++] = s;
  cr_assert_eq(pc_redis_wait_ready(pc_shared_redis(s), 5000), 0, "%s", pc_redis_last_error(pc_shared_redis(s)));
  return s;
}

static struct pc_shared *node(const char *url, struct opts o) { return node_n(&url, 1, o); }

/* A node dies: destroyed without releasing anything. */
static void node_kill(struct pc_shared *s) {
  for (int i = 0; i < g_nnodes; i++)
    if (g_nodes[i] == s) g_nodes[i] = NULL;
  pc_shared_destroy(s);
}

/* Destroy every node and run the loop until all their handles closed: the
 * loop must be able to close (nothing leaked on it). */
static void nodes_close(void) {
  for (int i = 0; i < g_nnodes; i++) pc_shared_destroy(g_nodes[i]);
  g_nnodes = 0;
  uv_timer_stop(&g_tick);
  for (int i = 0; i < 1000 && uv_run(&g_loop, UV_RUN_NOWAIT); i++) {
  }
  uv_close((uv_handle_t *)&g_tick, NULL);
  uv_run(&g_loop, UV_RUN_NOWAIT);
  cr_assert_eq(uv_loop_close(&g_loop), 0, "handles left on the loop");
  g_loop_open = 0;
}

/* ---- synchronous wrappers --------------------------------------------------------------- */

struct res {
  int done, rc;
  char val[8192];
  size_t n;
  int64_t t0, ms;
};

static void res_get(void *ud, int rc, const char *val, size_t n) {
  struct res *x = ud;
  x->done++;
  x->rc = rc;
  x->ms = mono_ms() - x->t0;
  x->n = n;
  if (val) memcpy(x->val, val, n < sizeof x->val ? n : sizeof x->val);
}

static void res_done(void *ud, int rc) {
  struct res *x = ud;
  x->done++;
  x->rc = rc;
  x->ms = mono_ms() - x->t0;
}

static void res_purged(void *ud, int rc, size_t deleted) {
  struct res *x = ud;
  x->done++;
  x->rc = rc;
  x->n = deleted;
  x->ms = mono_ms() - x->t0;
}

/* Wait for the callback of an accepted call; a refused one is recorded as done -1. */
static void finish(struct res *x, int rc) {
  if (rc) {
    x->rc = rc;
    x->done = -1;
    x->ms = mono_ms() - x->t0;
    return;
  }
  cr_assert_eq(x->done, 0, "callback inside the call");
  WAIT_UNTIL(x->done, 3000);
  cr_assert_eq(x->done, 1, "no callback");
}

static struct res *res_new(void) {
  static struct res pool[8];
  static int next;
  struct res *x = &pool[next++ % 8];
  memset(x, 0, sizeof *x);
  x->t0 = mono_ms();
  return x;
}

static struct res *sget(struct pc_shared *s, const uint8_t key[16]) {
  struct res *x = res_new();
  finish(x, pc_shared_get(s, key, res_get, x));
  return x;
}

static struct res *sput_ns(struct pc_shared *s, const uint8_t key[16], const char *val, size_t n, int64_t ttl,
                           const char *ns, int64_t created) {
  struct res *x = res_new();
  finish(x, pc_shared_put(s, key, val, n, ttl, ns, strlen(ns), created, res_done, x));
  return x;
}

static struct res *sput(struct pc_shared *s, const uint8_t key[16], const char *val) {
  return sput_ns(s, key, val, strlen(val), 0, "", pc_now_ms());
}

static struct res *sdel(struct pc_shared *s, const uint8_t key[16]) {
  struct res *x = res_new();
  finish(x, pc_shared_del(s, key, res_done, x));
  return x;
}

static struct res *spurge(struct pc_shared *s, struct pc_purge_sel sel) {
  struct res *x = res_new();
  finish(x, pc_shared_purge(s, &sel, res_purged, x));
  return x;
}

static void mkkey(uint8_t k[16], int i) {
  for (int j = 0; j < 16; j++) k[j] = (uint8_t)(i * 37 + j * 11 + (j == 0 ? 0x5a : 0));
}

static void hexkey(const uint8_t k[16], char out[33]) {
  for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", k[i]);
}

static void assert_val(const struct res *x, const char *want) {
  cr_assert_eq(x->rc, 0, "rc %s", pc_errname(x->rc));
  cr_assert_eq(x->n, strlen(want));
  cr_assert(memcmp(x->val, want, x->n) == 0, "got %.*s", (int)x->n, x->val);
}

static int entry_exists(const struct srv *s, const char *prefix, const uint8_t k[16]) {
  char hex[33], key[128];
  hexkey(k, hex);
  snprintf(key, sizeof key, "%se:%s", prefix, hex);
  return (int)CLI_INT(s, "EXISTS", key);
}

/* Keys in s (KEYS *) that start with neither prefix. */
static int keys_outside(const struct srv *s, const char *p1, const char *p2) {
  static char out[1 << 16];
  int n = 0;
  CLI(s, out, sizeof out, "KEYS", "*");
  for (char *line = out; *line;) {
    char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    int in1 = len >= strlen(p1) && strncmp(line, p1, strlen(p1)) == 0;
    int in2 = p2 && len >= strlen(p2) && strncmp(line, p2, strlen(p2)) == 0;
    if (len && !in1 && !in2) n++;
    line = nl ? nl + 1 : line + len;
  }
  return n;
}

/* Stream ids "<ms>-<seq>" in order. */
static int id_before(const char *a, const char *b) {
  unsigned long long am = 0, as = 0, bm = 0, bs = 0;
  sscanf(a, "%llu-%llu", &am, &as);
  sscanf(b, "%llu-%llu", &bm, &bs);
  return am < bm || (am == bm && as < bs);
}

/* ---- watchers --------------------------------------------------------------------------- */

struct applied {
  int all, has_key;
  uint8_t key[16];
  char ns[64];
  int64_t older_than_ms;
  char id[48];
};

struct watchrec {
  int applies, resets;
  struct applied a[16];
  char reset_id[48];
  char last[48]; /* what the caller would persist */
};

static void on_apply(void *ud, const struct pc_purge_sel *sel, const char *id) {
  struct watchrec *w = ud;
  struct applied *a = &w->a[w->applies++ % 16];
  memset(a, 0, sizeof *a);
  a->all = sel->all;
  a->has_key = sel->has_key;
  memcpy(a->key, sel->key, 16);
  if (sel->ns) snprintf(a->ns, sizeof a->ns, "%s", sel->ns);
  a->older_than_ms = sel->older_than_ms;
  snprintf(a->id, sizeof a->id, "%s", id);
  snprintf(w->last, sizeof w->last, "%s", id);
}

static void on_reset(void *ud, const char *id) {
  struct watchrec *w = ud;
  w->resets++;
  snprintf(w->reset_id, sizeof w->reset_id, "%s", id);
  snprintf(w->last, sizeof w->last, "%s", id);
}

/* ---- entries ------------------------------------------------------------------------------ */

TestSuite(shared, .init = setup, .fini = teardown, .timeout = 30);

Test(shared, get_put_del_ttl_and_max_value) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128], pttl[32], hex[33], key[128];
  uint8_t k1[16], k2[16], k3[16];
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *s = node(url, (struct opts){.max_value = 1024});
  cr_assert(pc_shared_up(s));
  mkkey(k1, 1);
  mkkey(k2, 2);
  mkkey(k3, 3);
  cr_assert_eq(sget(s, k1)->rc, PC_ENOTFOUND);
  cr_assert_eq(sput(s, k1, "first")->rc, 0);
  assert_val(sget(s, k1), "first");
  cr_assert_eq(sput(s, k1, "second")->rc, 0); /* overwrite */
  assert_val(sget(s, k1), "second");
  /* Binary values, byte for byte. */
  static const char bin[] = {'a', '\0', 'b', '\r', '\n', (char)0xff};
  cr_assert_eq(sput_ns(s, k2, bin, sizeof bin, 0, "", pc_now_ms())->rc, 0);
  struct res *g = sget(s, k2);
  cr_assert_eq(g->n, sizeof bin);
  cr_assert(memcmp(g->val, bin, sizeof bin) == 0);
  /* del */
  cr_assert_eq(sdel(s, k1)->rc, 0);
  cr_assert_eq(sget(s, k1)->rc, PC_ENOTFOUND);
  cr_assert_eq(sdel(s, k1)->rc, PC_ENOTFOUND);
  /* TTL: the Redis expiry is the entry's; gone once it passed. */
  cr_assert_eq(sput_ns(s, k3, "brief", 5, 300, "", pc_now_ms())->rc, 0);
  hexkey(k3, hex);
  snprintf(key, sizeof key, "pc:e:%s", hex);
  CLI(srv, pttl, sizeof pttl, "PTTL", key);
  cr_assert(atoi(pttl) > 0 && atoi(pttl) <= 300, "PTTL %s", pttl);
  int64_t dl = mono_ms() + 3000;
  while (sget(s, k3)->rc == 0 && mono_ms() < dl) uv_run(&g_loop, UV_RUN_ONCE);
  cr_assert_eq(sget(s, k3)->rc, PC_ENOTFOUND);
  /* max_value: refused without touching Redis. */
  static char big[1025];
  memset(big, 'x', sizeof big);
  struct res *tb = res_new();
  cr_assert_eq(pc_shared_put(s, k1, big, sizeof big, 0, "", 0, 0, res_done, tb), PC_ETOOBIG);
  cr_assert_eq(sput_ns(s, k1, big, 1024, 0, "", pc_now_ms())->rc, 0); /* the limit itself fits */
  cr_assert_eq(keys_outside(srv, "pc:", NULL), 0);
  struct pc_shared_counters k;
  pc_shared_get_counters(s, &k);
  cr_assert_geq(k.hits, 4);
  cr_assert_geq(k.misses, 2);
  cr_assert_eq(k.too_big, 1);
  cr_assert_eq(k.errors, 0);
  cr_assert_geq(k.ops[PC_SHARED_OP_PUT], 5);
  cr_assert_gt(k.redis.latency_count, 0);
  nodes_close();
}

Test(shared, two_prefixes_on_one_redis_never_see_each_others_keys) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128];
  uint8_t k[16], k2[16];
  srv_url(srv, url, sizeof url, NULL, NULL);
  /* B's prefix starts like A's entry keys: A's SCAN pattern must not reach B's. */
  struct pc_shared *a = node(url, (struct opts){.prefix = "pc:", .id = "a"});
  struct pc_shared *b = node(url, (struct opts){.prefix = "pc:e:", .id = "b"});
  struct watchrec wb = {0};
  cr_assert_eq(pc_shared_watch_purges(b, "", on_apply, on_reset, &wb), 0);
  mkkey(k, 7);
  mkkey(k2, 8);
  cr_assert_eq(sput_ns(a, k, "from-a", 6, 0, "ns", pc_now_ms())->rc, 0);
  cr_assert_eq(sput_ns(b, k, "from-b", 6, 0, "ns", pc_now_ms())->rc, 0);
  cr_assert_eq(sput_ns(b, k2, "b-only", 6, 0, "ns", pc_now_ms())->rc, 0);
  assert_val(sget(a, k), "from-a");
  assert_val(sget(b, k), "from-b");
  cr_assert_eq(sget(a, k2)->rc, PC_ENOTFOUND);
  /* A's purges, by every selector, leave B's entries alone. */
  cr_assert_eq(spurge(a, (struct pc_purge_sel){.ns = "ns"})->n, 1);
  cr_assert_eq(sput_ns(a, k, "from-a", 6, 0, "ns", pc_now_ms())->rc, 0);
  struct res *all = spurge(a, (struct pc_purge_sel){.all = 1});
  cr_assert_eq(all->rc, 0);
  cr_assert_eq(all->n, 1);
  assert_val(sget(b, k), "from-b");
  assert_val(sget(b, k2), "b-only");
  cr_assert_eq(sget(a, k)->rc, PC_ENOTFOUND);
  cr_assert_eq(CLI_INT(srv, "XLEN", "pc:purges"), 2);
  cr_assert_eq(CLI_INT(srv, "EXISTS", "pc:e:purges"), 0);
  /* B's own purge reaches B's watcher, and only it. */
  cr_assert_eq(spurge(b, (struct pc_purge_sel){.all = 1})->n, 2);
  WAIT_UNTIL(wb.applies == 1, 3000);
  cr_assert_eq(wb.applies, 1);
  cr_assert(wb.a[0].all);
  cr_assert_eq(keys_outside(srv, "pc:", NULL), 0);
  nodes_close();
}

Test(shared, puts_are_refused_while_too_many_bytes_are_unanswered) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128];
  uint8_t k[16];
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *s = node(url, (struct opts){.max_inflight = 1 << 20, .max_value = 1 << 20});
  static char val[300 * 1024];
  static struct res r[5];
  memset(val, 'v', sizeof val);
  /* Nothing is answered while the loop does not run. */
  for (int i = 0; i < 3; i++) {
    mkkey(k, i);
    cr_assert_eq(pc_shared_put(s, k, val, sizeof val, 0, "", 0, 0, res_done, &r[i]), 0);
  }
  mkkey(k, 3);
  cr_assert_eq(pc_shared_put(s, k, val, sizeof val, 0, "", 0, 0, res_done, &r[3]), PC_EBUSY);
  WAIT_UNTIL(r[0].done && r[1].done && r[2].done, 3000);
  for (int i = 0; i < 3; i++) cr_assert_eq(r[i].rc, 0);
  cr_assert_eq(pc_shared_put(s, k, val, sizeof val, 0, "", 0, 0, res_done, &r[4]), 0); /* answered: room again */
  WAIT_UNTIL(r[4].done, 3000);
  cr_assert_eq(r[4].rc, 0);
  struct pc_shared_counters c;
  pc_shared_get_counters(s, &c);
  cr_assert_eq(c.busy, 1);
  cr_assert_eq(c.ops[PC_SHARED_OP_PUT], 4);
  nodes_close();
}

/* ---- purges and the purge log ------------------------------------------------------------------ */

Test(shared, purge_by_key_namespace_age_and_all_reaches_a_watching_node) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128];
  uint8_t k[9][16], absent[16];
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *p = node(url, (struct opts){.id = "purger"});
  struct pc_shared *w = node(url, (struct opts){.id = "watcher"});
  struct watchrec wr = {0};
  cr_assert_eq(pc_shared_watch_purges(w, NULL, on_apply, on_reset, &wr), 0);
  int64_t now = pc_now_ms();
  for (int i = 0; i < 9; i++) mkkey(k[i], 100 + i);
  mkkey(absent, 99);
  for (int i = 0; i < 3; i++) cr_assert_eq(sput_ns(p, k[i], "alpha", 5, 0, "alpha", now - 600000)->rc, 0);
  for (int i = 3; i < 6; i++) cr_assert_eq(sput_ns(p, k[i], "beta", 4, 60000, "beta", now)->rc, 0);
  cr_assert_eq(sput_ns(p, k[6], "old", 3, 0, "beta", now - 2 * 3600000)->rc, 0);
  cr_assert_eq(sput_ns(p, k[7], "none", 4, 0, "", now)->rc, 0);
  /* key */
  struct pc_purge_sel sel = {.has_key = 1};
  memcpy(sel.key, k[3], 16);
  struct res *x = spurge(p, sel);
  cr_assert_eq(x->rc, 0);
  cr_assert_eq(x->n, 1);
  cr_assert_not(entry_exists(srv, "pc:", k[3]));
  memcpy(sel.key, absent, 16);
  x = spurge(p, sel);
  cr_assert_eq(x->rc, 0);
  cr_assert_eq(x->n, 0);
  /* namespace */
  x = spurge(p, (struct pc_purge_sel){.ns = "alpha"});
  cr_assert_eq(x->rc, 0);
  cr_assert_eq(x->n, 3);
  for (int i = 0; i < 3; i++) cr_assert_not(entry_exists(srv, "pc:", k[i]));
  /* age: only the entry created two hours ago */
  x = spurge(p, (struct pc_purge_sel){.older_than_ms = 3600000});
  cr_assert_eq(x->rc, 0);
  cr_assert_eq(x->n, 1);
  cr_assert_not(entry_exists(srv, "pc:", k[6]));
  for (int i = 4; i < 8; i++)
    if (i != 6) cr_assert(entry_exists(srv, "pc:", k[i]), "entry %d purged", i);
  /* The index follows: three entries left. */
  cr_assert_eq(CLI_INT(srv, "ZCARD", "pc:ix:{ix}:age"), 3);
  cr_assert_eq(CLI_INT(srv, "ZCARD", "pc:ix:{ix}:ns"), 3);
  cr_assert_eq(CLI_INT(srv, "ZCARD", "pc:ix:{ix}:exp"), 2);
  /* all */
  x = spurge(p, (struct pc_purge_sel){.all = 1});
  cr_assert_eq(x->rc, 0);
  cr_assert_eq(x->n, 3);
  cr_assert_eq(CLI_INT(srv, "EXISTS", "pc:ix:{ix}:age", "pc:ix:{ix}:exp", "pc:ix:{ix}:ns", "pc:ix:{ix}:meta"), 0);
  cr_assert_eq(CLI_INT(srv, "XLEN", "pc:purges"), 5);
  /* Invalid selectors are refused at once. */
  cr_assert_eq(pc_shared_purge(p, &(struct pc_purge_sel){0}, res_purged, x), PC_EINVAL);
  cr_assert_eq(pc_shared_purge(p, &(struct pc_purge_sel){.all = 1, .ns = "a"}, res_purged, x), PC_EINVAL);
  /* The watcher applied all five, in order. */
  WAIT_UNTIL(wr.applies == 5, 3000);
  cr_assert_eq(wr.applies, 5);
  cr_assert_eq(wr.resets, 0);
  cr_assert(wr.a[0].has_key && memcmp(wr.a[0].key, k[3], 16) == 0);
  cr_assert(wr.a[1].has_key && memcmp(wr.a[1].key, absent, 16) == 0);
  cr_assert_str_eq(wr.a[2].ns, "alpha");
  cr_assert_geq(wr.a[3].older_than_ms, 3600000);
  cr_assert_lt(wr.a[3].older_than_ms, 3600000 + 10000);
  cr_assert(wr.a[4].all);
  for (int i = 1; i < 5; i++) cr_assert(id_before(wr.a[i - 1].id, wr.a[i].id), "%s, %s", wr.a[i - 1].id, wr.a[i].id);
  struct pc_shared_counters c;
  pc_shared_get_counters(p, &c);
  cr_assert_eq(c.ops[PC_SHARED_OP_PURGE], 5);
  pc_shared_get_counters(w, &c);
  cr_assert_eq(c.purges_applied, 5);
  nodes_close();
}

Test(shared, a_watcher_resets_when_the_log_no_longer_reaches_back) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128], out[64], id2[48];
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *p = node(url, (struct opts){.id = "purger"});
  struct pc_shared *w1 = node(url, (struct opts){.id = "w1"});
  struct watchrec r1 = {0}, r2 = {0};
  static const char *const ns[] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 3; i++) cr_assert_eq(spurge(p, (struct pc_purge_sel){.ns = ns[i]})->rc, 0);
  /* A first start ("" / NULL): everything still in the log is applied. */
  cr_assert_eq(pc_shared_watch_purges(w1, "", on_apply, on_reset, &r1), 0);
  cr_assert_eq(pc_shared_watch_purges(w1, "", on_apply, on_reset, &r1), PC_EINVAL); /* once per module */
  WAIT_UNTIL(r1.applies == 3, 3000);
  cr_assert_eq(r1.applies, 3);
  cr_assert_str_eq(r1.a[2].ns, "c");
  snprintf(id2, sizeof id2, "%s", r1.a[1].id);
  /* The log loses what a node that stopped at id2 has not read. */
  CLI(srv, out, sizeof out, "XTRIM", "pc:purges", "MAXLEN", "0");
  cr_assert_eq(spurge(p, (struct pc_purge_sel){.ns = ns[3]})->rc, 0);
  struct pc_shared *w2 = node(url, (struct opts){.id = "w2"});
  cr_assert_eq(pc_shared_watch_purges(w2, id2, on_apply, on_reset, &r2), 0);
  WAIT_UNTIL(r2.resets == 1 && r1.resets == 1, 3000);
  cr_assert_eq(r2.resets, 1);
  cr_assert_eq(r2.applies, 0);
  /* The newest id is handed over: the purge of "d" is covered by the reset. */
  CLI(srv, out, sizeof out, "XREVRANGE", "pc:purges", "+", "-", "COUNT", "1");
  cr_assert(strncmp(out, r2.reset_id, strlen(r2.reset_id)) == 0 && r2.reset_id[0], "%s vs %s", out, r2.reset_id);
  /* w1 had read up to id3, gone too: it cannot know, so it resets as well. */
  cr_assert_eq(r1.resets, 1);
  cr_assert_str_eq(r1.reset_id, r2.reset_id);
  /* From there on, entries are applied again. */
  cr_assert_eq(spurge(p, (struct pc_purge_sel){.ns = ns[4]})->rc, 0);
  WAIT_UNTIL(r2.applies == 1 && r1.applies == 4, 3000);
  cr_assert_eq(r2.applies, 1);
  cr_assert_str_eq(r2.a[0].ns, "e");
  cr_assert_eq(r1.applies, 4);
  cr_assert_str_eq(r1.a[3].ns, "e");
  cr_assert_eq(r1.resets, 1);
  nodes_close();
}

/* ---- stats and secret -------------------------------------------------------------------------- */

struct rows {
  int n, done, rc;
  char node[4][32];
  char json[4][64];
  int64_t updated[4];
};

static void on_row(void *ud, const char *node, const char *json, size_t n, int64_t updated) {
  struct rows *r = ud;
  if (r->n < 4) {
    snprintf(r->node[r->n], sizeof r->node[0], "%s", node);
    snprintf(r->json[r->n], sizeof r->json[0], "%.*s", (int)n, json);
    r->updated[r->n] = updated;
  }
  r->n++;
}

static void on_rows_done(void *ud, int rc) {
  struct rows *r = ud;
  r->done++;
  r->rc = rc;
}

struct secret {
  int done, rc;
  uint8_t v[32];
};

static void on_secret(void *ud, int rc, const uint8_t v[32]) {
  struct secret *x = ud;
  x->done++;
  x->rc = rc;
  if (v) memcpy(x->v, v, 32);
}

Test(shared, fleet_stats_and_one_fleet_secret) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128], out[64];
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *n1 = node(url, (struct opts){.id = "host-1"});
  struct pc_shared *n2 = node(url, (struct opts){.id = "host-2"});
  struct pc_shared *n3 = node(url, (struct opts){.id = "cli"});
  CLI(srv, out, sizeof out, "HSET", "pc:stats", "ghost", "1000 {\"requests\":9}"); /* gone since 1970 */
  cr_assert_eq(pc_shared_publish_stats(n1, "{\"requests\":1}", 14), 0);
  cr_assert_eq(pc_shared_publish_stats(n2, "{\"requests\":2}", 14), 0);
  WAIT_UNTIL(CLI_INT(srv, "HLEN", "pc:stats") == 3, 3000);
  struct rows r = {0};
  cr_assert_eq(pc_shared_read_stats(n3, on_row, on_rows_done, &r), 0);
  WAIT_UNTIL(r.done, 3000);
  cr_assert_eq(r.rc, 0);
  cr_assert_eq(r.n, 2);
  int i1 = strcmp(r.node[0], "host-1") == 0 ? 0 : 1;
  cr_assert_str_eq(r.node[i1], "host-1");
  cr_assert_str_eq(r.json[i1], "{\"requests\":1}");
  cr_assert_str_eq(r.node[1 - i1], "host-2");
  cr_assert_str_eq(r.json[1 - i1], "{\"requests\":2}");
  cr_assert_lt(llabs(r.updated[0] - pc_now_ms()), 10000);
  WAIT_UNTIL(CLI_INT(srv, "HEXISTS", "pc:stats", "ghost") == 0, 3000);
  cr_assert_eq(CLI_INT(srv, "HEXISTS", "pc:stats", "ghost"), 0, "a stale record is removed");
  cr_assert_gt(CLI_INT(srv, "PTTL", "pc:stats"), 0);
  /* Two nodes propose different secrets at once: both end with the same one. */
  uint8_t p1[32], p2[32], p3[32];
  memset(p1, 1, 32);
  memset(p2, 2, 32);
  memset(p3, 3, 32);
  struct secret s1 = {0}, s2 = {0}, s3 = {0};
  cr_assert_eq(pc_shared_secret(n1, p1, on_secret, &s1), 0);
  cr_assert_eq(pc_shared_secret(n2, p2, on_secret, &s2), 0);
  WAIT_UNTIL(s1.done && s2.done, 3000);
  cr_assert_eq(s1.rc, 0);
  cr_assert_eq(s2.rc, 0);
  cr_assert(memcmp(s1.v, s2.v, 32) == 0);
  cr_assert(memcmp(s1.v, p1, 32) == 0 || memcmp(s1.v, p2, 32) == 0);
  cr_assert_eq(pc_shared_secret(n3, p3, on_secret, &s3), 0);
  WAIT_UNTIL(s3.done, 3000);
  cr_assert_eq(s3.rc, 0);
  cr_assert(memcmp(s3.v, s1.v, 32) == 0);
  /* A value of the wrong size is reported, not used. */
  CLI(srv, out, sizeof out, "SET", "pc:secret", "short");
  struct secret s4 = {0};
  cr_assert_eq(pc_shared_secret(n3, p3, on_secret, &s4), 0);
  WAIT_UNTIL(s4.done, 3000);
  cr_assert_eq(s4.rc, PC_ECORRUPT);
  nodes_close();
}

/* ---- single flight: recorders ------------------------------------------------------------------ */

struct frec {
  int heads, status, chunks, done, rc, takeovers;
  char hdr[256];
  char body[128 * 1024];
  size_t blen;
  char usage[128];
  int64_t t_done;
  struct pc_shared_lease *l;
  struct pc_shared_follow *f;
};

static void f_head(void *ud, int status, const char *h, size_t n) {
  struct frec *r = ud;
  r->heads++;
  r->status = status;
  snprintf(r->hdr, sizeof r->hdr, "%.*s", (int)n, h);
}

static void f_body(void *ud, const char *p, size_t n, uint32_t t_ms) {
  struct frec *r = ud;
  r->chunks++;
  if (r->blen + n <= sizeof r->body) memcpy(r->body + r->blen, p, n);
  r->blen += n;
}

static void f_done(void *ud, int rc, const char *u, size_t un) {
  struct frec *r = ud;
  r->done++;
  r->rc = rc;
  r->t_done = mono_ms();
  r->f = NULL;
  snprintf(r->usage, sizeof r->usage, "%.*s", (int)un, u ? u : "");
}

static void f_takeover(void *ud, struct pc_shared_lease *l) {
  struct frec *r = ud;
  r->takeovers++;
  r->l = l;
  r->f = NULL;
}

static const struct pc_shared_follow_ops g_fops = {f_head, f_body, f_done, f_takeover};

struct lres {
  int done, rc;
  struct pc_shared_lease *l;
};

static void on_lease(void *ud, int rc, struct pc_shared_lease *l) {
  struct lres *x = ud;
  x->done++;
  x->rc = rc;
  x->l = l;
}

static struct lres slease(struct pc_shared *s, const uint8_t key[16]) {
  struct lres x = {0};
  int rc = pc_shared_lease(s, key, on_lease, &x);
  if (rc) {
    x.rc = rc;
    x.done = -1;
    return x;
  }
  cr_assert_eq(x.done, 0);
  WAIT_UNTIL(x.done, 3000);
  cr_assert_eq(x.done, 1);
  return x;
}

static void follow(struct pc_shared *s, const uint8_t key[16], struct frec *r) {
  memset(r, 0, sizeof *r);
  r->f = pc_shared_follow(s, key, &g_fops, r);
  cr_assert_not_null(r->f);
}

#define PUB_CHUNK(l, t, str) cr_assert_eq(pc_shared_pub_chunk((l), (t), (str), strlen(str)), 0)

/* ---- Redis dies ---------------------------------------------------------------------------------- */

Test(shared, a_dead_redis_fails_every_op_fast_and_a_restart_is_picked_up) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128];
  uint8_t k[16];
  static struct frec fr;
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *s = node(url, (struct opts){.id = "n1"});
  struct pc_shared *l = node(url, (struct opts){.id = "leader"});
  struct watchrec wr = {0};
  mkkey(k, 42);
  cr_assert_eq(spurge(s, (struct pc_purge_sel){.ns = "x"})->rc, 0);
  cr_assert_eq(pc_shared_watch_purges(s, "", on_apply, on_reset, &wr), 0);
  WAIT_UNTIL(wr.applies == 1, 3000);
  cr_assert_eq(wr.applies, 1);
  cr_assert_eq(sput(s, k, "v")->rc, 0);
  struct lres lead = slease(l, k);
  cr_assert_eq(lead.rc, 0);
  cr_assert_eq(slease(s, k).rc, PC_EEXISTS);
  follow(s, k, &fr);
  cr_assert_eq(pc_shared_pub_head(lead.l, 200, "", 0), 0);
  WAIT_UNTIL(fr.heads == 1, 3000);
  int64_t t0 = mono_ms();
  srv_kill(srv);
  /* A follower is told, not left hanging (its read waits at most block + timeout). */
  WAIT_UNTIL(fr.done, 3000);
  cr_assert_eq(fr.done, 1);
  cr_assert_eq(fr.rc, PC_EUNAVAIL, "rc %s", pc_errname(fr.rc));
  cr_assert_leq(fr.t_done - t0, PC_SHARED_FOLLOW_BLOCK_MS + TIMEOUT_MS + MARGIN_MS);
  WAIT_UNTIL(!pc_shared_up(s), 2000);
  cr_assert_not(pc_shared_up(s));
  /* Every operation fails at once or within the timeout. */
  struct res *x = sget(s, k);
  cr_assert_neq(x->rc, 0);
  cr_assert_leq(x->ms, TIMEOUT_MS + MARGIN_MS);
  x = sput(s, k, "w");
  cr_assert_neq(x->rc, 0);
  cr_assert_leq(x->ms, TIMEOUT_MS + MARGIN_MS);
  x = sdel(s, k);
  cr_assert_neq(x->rc, 0);
  cr_assert_neq(x->rc, PC_ENOTFOUND);
  cr_assert_leq(x->ms, TIMEOUT_MS + MARGIN_MS);
  x = spurge(s, (struct pc_purge_sel){.all = 1});
  cr_assert_neq(x->rc, 0);
  cr_assert_leq(x->ms, TIMEOUT_MS + MARGIN_MS);
  int64_t t1 = mono_ms();
  struct lres ls = slease(s, k);
  cr_assert(ls.rc != 0 && ls.rc != PC_EEXISTS, "rc %s", pc_errname(ls.rc));
  cr_assert_null(ls.l);
  memset(&fr, 0, sizeof fr);
  if ((fr.f = pc_shared_follow(s, k, &g_fops, &fr)) != NULL) WAIT_UNTIL(fr.done, 3000);
  cr_assert(!fr.f || fr.rc == PC_EUNAVAIL, "follow: %d %s", fr.done, pc_errname(fr.rc));
  struct secret sec = {0};
  uint8_t prop[32] = {0};
  if (pc_shared_secret(s, prop, on_secret, &sec) == 0) WAIT_UNTIL(sec.done, 3000);
  struct rows rows = {0};
  if (pc_shared_read_stats(s, on_row, on_rows_done, &rows) == 0) WAIT_UNTIL(rows.done, 3000);
  cr_assert_eq(rows.n, 0);
  cr_assert_leq(mono_ms() - t1, 2 * (TIMEOUT_MS + MARGIN_MS));
  cr_assert_neq(pc_shared_publish_stats(s, "{}", 2), 0);
  /* The leader goes on, publishing into nothing. */
  pc_shared_pub_chunk(lead.l, 0, "x", 1);
  pc_shared_pub_end(lead.l, 0, NULL, 0);
  pc_shared_lease_release(lead.l);
  struct pc_shared_counters c;
  pc_shared_get_counters(s, &c);
  cr_assert_geq(c.errors, 7);
  /* Back: the node works again, and its watcher, whose last id the empty
   * log no longer has, resets. */
  srv_restart(srv);
  WAIT_UNTIL(pc_shared_up(s) && wr.resets == 1, 6000);
  cr_assert(pc_shared_up(s));
  cr_assert_eq(sput(s, k, "again")->rc, 0);
  assert_val(sget(s, k), "again");
  cr_assert_eq(wr.resets, 1);
  cr_assert_str_eq(wr.reset_id, "");
  cr_assert_eq(spurge(s, (struct pc_purge_sel){.ns = "y"})->rc, 0);
  WAIT_UNTIL(wr.applies == 2, 3000);
  cr_assert_eq(wr.applies, 2);
  cr_assert_str_eq(wr.a[1].ns, "y");
  pc_shared_get_counters(s, &c);
  cr_assert_geq(c.redis.reconnects, 1);
  nodes_close();
}

/* ---- cluster ------------------------------------------------------------------------------------- */

TestSuite(shared_cluster, .init = setup, .fini = teardown, .timeout = 30);

Test(shared_cluster, entries_purges_the_log_and_a_flight_across_three_masters) {
  struct srv *m[3];
  char urls[3][128], val[16];
  uint8_t k[24][16], old[2][16];
  static struct frec fr;
  cluster_start(m, urls);
  const char *seeds[] = {urls[0], urls[1], urls[2]};
  const char *seed1[] = {urls[1]};
  struct pc_shared *p = node_n(seeds, 3, (struct opts){.id = "p"});
  struct pc_shared *w = node_n(seed1, 1, (struct opts){.id = "w"});
  struct watchrec wr = {0};
  cr_assert_eq(pc_shared_watch_purges(w, "", on_apply, on_reset, &wr), 0);
  int64_t now = pc_now_ms();
  for (int i = 0; i < 24; i++) {
    mkkey(k[i], 500 + i);
    snprintf(val, sizeof val, "v%d", i);
    cr_assert_eq(sput_ns(p, k[i], val, strlen(val), 0, i % 2 ? "odd" : "even", now)->rc, 0);
  }
  for (int i = 0; i < 2; i++) {
    mkkey(old[i], 900 + i);
    cr_assert_eq(sput_ns(p, old[i], "old", 3, 0, "even", now - 7200000)->rc, 0);
  }
  /* The entries spread over the masters. */
  for (int i = 0; i < 3; i++) {
    char out[4096];
    CLI(m[i], out, sizeof out, "KEYS", "pc:e:*");
    cr_assert(strstr(out, "pc:e:"), "no entry on master %d", i);
  }
  for (int i = 0; i < 24; i++) {
    snprintf(val, sizeof val, "v%d", i);
    assert_val(sget(w, k[i]), val);
  }
  cr_assert_eq(sdel(w, k[1])->rc, 0);
  cr_assert_eq(sget(p, k[1])->rc, PC_ENOTFOUND);
  struct res *x = spurge(p, (struct pc_purge_sel){.older_than_ms = 3600000});
  cr_assert_eq(x->rc, 0);
  cr_assert_eq(x->n, 2);
  x = spurge(w, (struct pc_purge_sel){.ns = "even"});
  cr_assert_eq(x->rc, 0);
  cr_assert_eq(x->n, 12);
  for (int i = 0; i < 24; i += 2) cr_assert_eq(sget(p, k[i])->rc, PC_ENOTFOUND);
  x = spurge(p, (struct pc_purge_sel){.all = 1});
  cr_assert_eq(x->rc, 0);
  cr_assert_eq(x->n, 11);
  for (int i = 0; i < 3; i++) {
    char out[4096];
    CLI(m[i], out, sizeof out, "KEYS", "pc:e:*");
    cr_assert_str_empty(out, "master %d still has %s", i, out);
  }
  WAIT_UNTIL(wr.applies == 3, 3000);
  cr_assert_eq(wr.applies, 3);
  cr_assert_gt(wr.a[0].older_than_ms, 0);
  cr_assert_str_eq(wr.a[1].ns, "even");
  cr_assert(wr.a[2].all);
  /* A flight: lease and stream share a slot, wherever it is. */
  struct lres lead = slease(p, k[0]);
  cr_assert_eq(lead.rc, 0);
  follow(w, k[0], &fr);
  cr_assert_eq(pc_shared_pub_head(lead.l, 200, "A: b\r\n", 6), 0);
  PUB_CHUNK(lead.l, 0, "hello ");
  PUB_CHUNK(lead.l, 5, "world");
  cr_assert_eq(pc_shared_pub_end(lead.l, 0, "{}", 2), 0);
  pc_shared_lease_release(lead.l);
  WAIT_UNTIL(fr.done, 3000);
  cr_assert_eq(fr.rc, 0, "rc %s", pc_errname(fr.rc));
  cr_assert_eq(fr.blen, 11);
  cr_assert(memcmp(fr.body, "hello world", 11) == 0);
  struct pc_shared_counters c;
  pc_shared_get_counters(p, &c);
  cr_assert_eq(c.errors, 0);
  nodes_close();
}

/* ---- single flight ------------------------------------------------------------------------------- */

TestSuite(shared_flight, .init = setup, .fini = teardown, .timeout = 30);

Test(shared_flight, followers_get_the_stream_live_and_late_ones_get_it_all) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128];
  uint8_t k[16];
  static struct frec f1, f2, f3, f4, f5;
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *L = node(url, (struct opts){.id = "L"});
  struct pc_shared *n1 = node(url, (struct opts){.id = "n1"});
  struct pc_shared *n2 = node(url, (struct opts){.id = "n2"});
  mkkey(k, 1);
  struct lres lead = slease(L, k);
  cr_assert_eq(lead.rc, 0);
  cr_assert(pc_shared_lease_held(lead.l));
  cr_assert_eq(slease(n1, k).rc, PC_EEXISTS);
  follow(n1, k, &f1);
  follow(n2, k, &f2);
  cr_assert_eq(pc_shared_pub_head(lead.l, 200, "Content-Type: text/event-stream\r\n", 33), 0);
  WAIT_UNTIL(f1.heads && f2.heads, 3000);
  cr_assert_eq(f1.status, 200);
  cr_assert_str_eq(f2.hdr, "Content-Type: text/event-stream\r\n");
  PUB_CHUNK(lead.l, 0, "data: one\n\n");
  WAIT_UNTIL(f1.chunks && f2.chunks, 3000);
  cr_assert_eq(f1.chunks, 1, "the first chunk arrives before the end");
  cr_assert_eq(f1.done + f2.done, 0);
  /* A follower that joins now gets what was published, then the rest live. */
  follow(n2, k, &f3);
  WAIT_UNTIL(f3.chunks == 1, 3000);
  cr_assert_eq(f3.heads, 1);
  cr_assert_eq(f3.done, 0);
  PUB_CHUNK(lead.l, 40, "data: two\n\n");
  cr_assert_eq(pc_shared_pub_end(lead.l, 0, "{\"input\":3}", 11), 0);
  WAIT_UNTIL(f1.done && f2.done && f3.done, 3000);
  static const char want[] = "data: one\n\ndata: two\n\n";
  struct frec *all[] = {&f1, &f2, &f3};
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(all[i]->rc, 0, "follower %d: %s", i, pc_errname(all[i]->rc));
    cr_assert_eq(all[i]->blen, sizeof want - 1);
    cr_assert(memcmp(all[i]->body, want, sizeof want - 1) == 0);
    cr_assert_str_eq(all[i]->usage, "{\"input\":3}");
    cr_assert_eq(all[i]->takeovers, 0);
  }
  pc_shared_lease_release(lead.l);
  /* After the release the stream lingers: a follower still gets all of it. */
  follow(n1, k, &f4);
  WAIT_UNTIL(f4.done, 3000);
  cr_assert_eq(f4.rc, 0);
  cr_assert_eq(f4.blen, sizeof want - 1);
  /* A fresh lease starts the stream anew: a follower of the next leader
   * reads nothing of the last answer; this leader leaves before any byte,
   * and the follower takes over. */
  lead = slease(n1, k);
  cr_assert_eq(lead.rc, 0);
  follow(n2, k, &f5);
  pc_shared_lease_release(lead.l);
  WAIT_UNTIL(f5.takeovers || f5.done, 4000);
  cr_assert_eq(f5.takeovers, 1);
  cr_assert_eq(f5.heads + f5.chunks, 0);
  cr_assert(pc_shared_lease_held(f5.l));
  pc_shared_lease_release(f5.l);
  struct pc_shared_counters c;
  pc_shared_get_counters(L, &c);
  cr_assert_eq(c.ops[PC_SHARED_OP_PUBLISH], 4);
  cr_assert_eq(c.leases_won, 1);
  pc_shared_get_counters(n1, &c);
  cr_assert_eq(c.leases_held, 1);
  nodes_close();
}

Test(shared_flight, a_leader_dead_before_any_byte_is_taken_over_exactly_once) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128];
  uint8_t k[16];
  static struct frec f1, f2;
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *L = node(url, (struct opts){.id = "L"});
  struct pc_shared *n1 = node(url, (struct opts){.id = "n1"});
  struct pc_shared *n2 = node(url, (struct opts){.id = "n2"});
  mkkey(k, 2);
  struct lres dead = slease(L, k);
  cr_assert_eq(dead.rc, 0);
  follow(n1, k, &f1);
  follow(n2, k, &f2);
  int64_t t0 = mono_ms();
  node_kill(L); /* no renewal, no release, no byte */
  WAIT_UNTIL(f1.takeovers + f2.takeovers > 0, 5000);
  cr_assert_eq(f1.takeovers + f2.takeovers, 1);
  cr_assert_leq(mono_ms() - t0, LEASE_MS + 2 * PC_SHARED_FOLLOW_BLOCK_MS + 4 * TIMEOUT_MS);
  struct frec *leader = f1.takeovers ? &f1 : &f2, *other = f1.takeovers ? &f2 : &f1;
  /* Give the other follower time to try the lease too and lose it. */
  struct pc_shared *other_node = other == &f1 ? n1 : n2;
  struct pc_shared_counters c;
  WAIT_UNTIL((pc_shared_get_counters(other_node, &c), c.leases_held >= 1), 3000);
  cr_assert_geq(c.leases_held, 1, "the other follower never tried");
  cr_assert_eq(other->done, 0);
  /* The new leader goes upstream and publishes under its own token. */
  cr_assert_eq(pc_shared_pub_head(leader->l, 201, "X: 1\r\n", 6), 0);
  PUB_CHUNK(leader->l, 0, "new ");
  PUB_CHUNK(leader->l, 1, "leader");
  cr_assert_eq(pc_shared_pub_end(leader->l, 0, NULL, 0), 0);
  WAIT_UNTIL(other->done, 3000);
  cr_assert_eq(other->rc, 0, "rc %s", pc_errname(other->rc));
  cr_assert_eq(other->status, 201);
  cr_assert_eq(other->blen, 10);
  cr_assert(memcmp(other->body, "new leader", 10) == 0);
  pc_shared_lease_release(leader->l);
  pc_shared_lease_release(dead.l); /* the dead node's handle: inert, freed */
  struct pc_shared_counters c1, c2;
  pc_shared_get_counters(n1, &c1);
  pc_shared_get_counters(n2, &c2);
  cr_assert_eq(c1.takeovers + c2.takeovers, 1);
  nodes_close();
}

Test(shared_flight, a_leader_dead_after_bytes_cuts_its_followers) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128];
  uint8_t k[16];
  static struct frec f1, f2;
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *L = node(url, (struct opts){.id = "L"});
  struct pc_shared *n1 = node(url, (struct opts){.id = "n1"});
  struct pc_shared *n2 = node(url, (struct opts){.id = "n2"});
  mkkey(k, 3);
  struct lres dead = slease(L, k);
  cr_assert_eq(dead.rc, 0);
  follow(n1, k, &f1);
  cr_assert_eq(pc_shared_pub_head(dead.l, 200, "", 0), 0);
  PUB_CHUNK(dead.l, 0, "partial");
  WAIT_UNTIL(f1.chunks, 3000);
  follow(n2, k, &f2); /* late: gets the head and the chunk too */
  WAIT_UNTIL(f2.chunks, 3000);
  int64_t t0 = mono_ms();
  node_kill(L);
  WAIT_UNTIL(f1.done && f2.done, 5000);
  cr_assert_eq(f1.rc, PC_EUPPROTO, "rc %s", pc_errname(f1.rc));
  cr_assert_eq(f2.rc, PC_EUPPROTO, "rc %s", pc_errname(f2.rc));
  cr_assert_eq(f1.takeovers + f2.takeovers, 0);
  cr_assert_leq(mono_ms() - t0, LEASE_MS + 2 * PC_SHARED_FOLLOW_BLOCK_MS + 4 * TIMEOUT_MS);
  cr_assert_eq(f1.blen, 7);
  pc_shared_lease_release(dead.l);
  struct pc_shared_counters c;
  pc_shared_get_counters(n1, &c);
  cr_assert_eq(c.follows_cut, 1);
  nodes_close();
}

Test(shared_flight, an_error_end_reaches_every_follower) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128];
  uint8_t k[16];
  static struct frec f1, f2;
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *L = node(url, (struct opts){.id = "L"});
  struct pc_shared *n1 = node(url, (struct opts){.id = "n1"});
  mkkey(k, 4);
  struct lres lead = slease(L, k);
  cr_assert_eq(lead.rc, 0);
  follow(n1, k, &f1);
  follow(n1, k, &f2);
  cr_assert_eq(pc_shared_pub_head(lead.l, 200, "", 0), 0);
  PUB_CHUNK(lead.l, 0, "some");
  cr_assert_eq(pc_shared_pub_end(lead.l, PC_EUPTIMEOUT, NULL, 0), 0);
  cr_assert_eq(pc_shared_pub_chunk(lead.l, 0, "late", 4), PC_EINVAL); /* ended */
  pc_shared_lease_release(lead.l);
  WAIT_UNTIL(f1.done && f2.done, 3000);
  cr_assert_eq(f1.rc, PC_EUPTIMEOUT);
  cr_assert_eq(f2.rc, PC_EUPTIMEOUT);
  cr_assert_eq(f2.blen, 4);
  nodes_close();
}

Test(shared_flight, publishing_that_cannot_keep_up_cuts_the_followers) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128];
  uint8_t k[16];
  static struct frec f1, f2;
  static char chunk[40 * 1024];
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *L = node(url, (struct opts){.id = "L", .max_inflight = 64 * 1024});
  struct pc_shared *n1 = node(url, (struct opts){.id = "n1"});
  mkkey(k, 5);
  memset(chunk, 'c', sizeof chunk);
  struct lres lead = slease(L, k);
  cr_assert_eq(lead.rc, 0);
  follow(n1, k, &f1);
  cr_assert_eq(pc_shared_pub_head(lead.l, 200, "", 0), 0);
  WAIT_UNTIL(f1.heads, 3000);
  /* The loop does not run: nothing is answered. */
  cr_assert_eq(pc_shared_pub_chunk(lead.l, 0, chunk, sizeof chunk), 0);
  cr_assert_eq(pc_shared_pub_chunk(lead.l, 1, chunk, sizeof chunk), PC_EBUSY);
  cr_assert_eq(pc_shared_pub_chunk(lead.l, 2, chunk, 10), PC_ECANCELED); /* stopped for good */
  cr_assert_eq(pc_shared_pub_end(lead.l, 0, NULL, 0), PC_ECANCELED);
  WAIT_UNTIL(f1.done, 3000);
  cr_assert_eq(f1.rc, PC_EUPPROTO, "rc %s", pc_errname(f1.rc));
  cr_assert_eq(f1.blen, sizeof chunk, "a prefix, never a body with a hole");
  /* A follower that comes now reads the same: cut after what got through. */
  follow(n1, k, &f2);
  WAIT_UNTIL(f2.done, 3000);
  cr_assert_eq(f2.rc, PC_EUPPROTO);
  pc_shared_lease_release(lead.l);
  struct pc_shared_counters c;
  pc_shared_get_counters(L, &c);
  cr_assert_eq(c.busy, 1);
  nodes_close();
}

Test(shared_flight, unfollow_and_destroy_end_follows_cleanly) {
  struct srv *srv = srv_start(NULL, 0, NULL);
  char url[128];
  uint8_t k[16];
  static struct frec f1, f2;
  srv_url(srv, url, sizeof url, NULL, NULL);
  struct pc_shared *L = node(url, (struct opts){.id = "L"});
  struct pc_shared *n1 = node(url, (struct opts){.id = "n1"});
  mkkey(k, 6);
  struct lres lead = slease(L, k);
  cr_assert_eq(lead.rc, 0);
  follow(n1, k, &f1);
  follow(n1, k, &f2);
  cr_assert_eq(pc_shared_pub_head(lead.l, 200, "", 0), 0);
  WAIT_UNTIL(f1.heads && f2.heads, 3000);
  pc_shared_unfollow(f1.f); /* its blocking read is still out: freed when it returns */
  PUB_CHUNK(lead.l, 0, "after");
  WAIT_UNTIL(f2.chunks, 3000);
  cr_assert_eq(f1.chunks, 0, "no callback after unfollow");
  /* A lease attempt pending at destroy is canceled. */
  struct lres pend = {0};
  cr_assert_eq(pc_shared_lease(n1, k, on_lease, &pend), 0);
  pc_shared_destroy(n1);
  for (int i = 0; i < g_nnodes; i++)
    if (g_nodes[i] == n1) g_nodes[i] = NULL;
  cr_assert_eq(f2.done, 1);
  cr_assert_eq(f2.rc, PC_ECANCELED);
  cr_assert_eq(pend.done, 1);
  cr_assert_eq(pend.rc, PC_ECANCELED);
  cr_assert_eq(f1.done, 0);
  pc_shared_lease_release(lead.l);
  nodes_close();
}
