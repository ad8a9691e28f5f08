/* test_redis.c — the Redis client against real redis-server processes (no
 * mocks): URLs and slots without a server; then standalone servers (commands,
 * pipelining, AUTH, SELECT, timeouts, outages, pub/sub, dedicated connections)
 * and a 3-master cluster (routing, MOVED, ASK). Each test starts its own
 * servers on free 127.0.0.1 ports in a temporary directory; the suite's fini
 * kills every one of them by pid (they also die with the test process:
 * PR_SET_PDEATHSIG) and removes the directory. Waits poll a condition with a
 * bound, never sleep for synchronization. Nothing is asserted inside a libuv
 * callback: callbacks record, the test body asserts. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "redis.h"

#define SRV_DEBUG_COMMAND /* tests use DEBUG SLEEP */
#include "redis_srv.h"

#define TIMEOUT_MS 250
/* A timed-out command must come back within the timeout plus this (2 shared
 * cores, sanitizers). */
#define MARGIN_MS 200

static pid_t g_bg[4];
static int g_nbg;

/* The same in the background (DEBUG SLEEP); reaped by the fini. */
static void cli_bg(const struct srv *s, const char *a, const char *b, const char *c) {
  char port[16];
  snprintf(port, sizeof port, "%d", s->port);
  const char *argv[] = {"redis-cli", "-h", "127.0.0.1", "-p", port, a, b, c, NULL};
  cr_assert(g_nbg < 4);
  g_bg[g_nbg++] = spawn(argv, NULL, -1);
}

/* ---- fixture ----------------------------------------------------------------- */

static void loop_open(void) {
  cr_assert_eq(uv_loop_init(&g_loop), 0);
  /* A heartbeat, so that a UV_RUN_ONCE in a wait loop returns regularly. */
  uv_timer_init(&g_loop, &g_tick);
  uv_timer_start(&g_tick, on_tick, 5, 5);
  g_loop_open = 1;
}

static void setup(void) {
  char tmpl[] = "/tmp/pc-redis-test-XXXXXX";
  signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
  cr_assert_not_null(mkdtemp(tmpl));
  memcpy(g_dir, tmpl, sizeof tmpl);
  loop_open();
}

static void teardown(void) {
  for (int i = 0; i < g_nsrv; i++) srv_kill(&g_srv[i]);
  for (int i = 0; i < g_nbg; i++) {
    kill(g_bg[i], SIGKILL);
    waitpid(g_bg[i], NULL, 0);
  }
  g_nsrv = g_nbg = 0;
  if (g_loop_open) {
    uv_close((uv_handle_t *)&g_tick, NULL);
    for (int i = 0; i < 100 && uv_run(&g_loop, UV_RUN_NOWAIT); i++) {
    }
    uv_loop_close(&g_loop);
    g_loop_open = 0;
  }
  if (g_dir[0]) nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  g_dir[0] = '\0';
}

static struct pc_redis *client_n(const char *const *urls, size_t n) {
  struct pc_redis_config cfg = {.urls = urls, .n_urls = n, .timeout_ms = TIMEOUT_MS};
  struct pc_redis *r = NULL;
  int rc = pc_redis_create(&g_loop, &cfg, &r);
  cr_assert_eq(rc, 0, "create: %s", pc_strerror(rc));
  return r;
}

static struct pc_redis *client(const char *url) { return client_n(&url, 1); }

/* Destroy and run the loop until every handle of the client has closed: the
 * loop must be able to close (nothing leaked on it). */
static void client_close(struct pc_redis *r) {
  pc_redis_destroy(r);
  uv_timer_stop(&g_tick);
  for (int i = 0; i < 1000 && uv_run(&g_loop, UV_RUN_NOWAIT); i++) {
  }
  uv_close((uv_handle_t *)&g_tick, NULL);
  uv_run(&g_loop, UV_RUN_NOWAIT);
  cr_assert_eq(uv_loop_close(&g_loop), 0, "handles left on the loop");
  g_loop_open = 0;
}

/* ---- commands ---------------------------------------------------------------- */

struct res {
  int done, rc, type;
  long long integer;
  char str[512];
  size_t len, elements;
  int64_t t0, ms;
  int order; /* completion order among several */
};

static int g_order;

static void res_cb(void *ud, int rc, const redisReply *rep) {
  struct res *x = ud;
  x->done++;
  x->rc = rc;
  x->ms = mono_ms() - x->t0;
  x->order = g_order++;
  if (!rep) return;
  x->type = rep->type;
  x->integer = rep->integer;
  x->elements = rep->elements;
  if (rep->str) {
    x->len = rep->len;
    snprintf(x->str, sizeof x->str, "%.*s", (int)rep->len, rep->str);
  }
}

static int send_cmd(struct pc_redis *r, struct res *x, int key_index, int node, int dedicated, int64_t timeout,
                    const char *const *argv) {
  int argc = 0;
  while (argv[argc]) argc++;
  struct pc_redis_cmd cmd = {
      .argc = argc, .argv = argv, .key_index = key_index, .node = node, .dedicated = dedicated, .timeout_ms = timeout};
  memset(x, 0, sizeof *x);
  x->t0 = mono_ms();
  return pc_redis_command(r, &cmd, res_cb, x);
}

static struct res run_cmd(struct pc_redis *r, int key_index, int node, const char *const *argv) {
  struct res x;
  int rc = send_cmd(r, &x, key_index, node, 0, 0, argv);
  if (rc) {
    x.rc = rc;
    x.done = -1; /* refused at once */
    return x;
  }
  WAIT_UNTIL(x.done, 3000);
  cr_assert_eq(x.done, 1, "no callback for %s", argv[0]);
  return x;
}

#define CMD(r, ki, ...) run_cmd((r), (ki), -1, (const char *const[]){__VA_ARGS__, NULL})
#define CMD_NODE(r, node, ...) run_cmd((r), -1, (node), (const char *const[]){__VA_ARGS__, NULL})

static void assert_ok(struct res x, const char *want) {
  cr_assert_eq(x.rc, 0, "rc %s", pc_errname(x.rc));
  cr_assert_neq(x.type, REDIS_REPLY_ERROR, "error reply: %s", x.str);
  if (want) cr_assert_str_eq(x.str, want);
}

/* ---- URLs and slots (no server) ---------------------------------------------- */

TestSuite(redis_url);

Test(redis_url, parses_every_form) {
  struct pc_redis_url u;
  char err[128];
  cr_assert_eq(pc_redis_parse_url("redis://127.0.0.1", &u, err, sizeof err), 0);
  cr_assert_str_eq(u.host, "127.0.0.1");
  cr_assert_eq(u.port, 6379);
  cr_assert_eq(u.db, 0);
  cr_assert_str_eq(u.password, "");
  cr_assert_eq(pc_redis_parse_url("redis://alice:s%40cret@cache.example:6380/7", &u, err, sizeof err), 0);
  cr_assert_str_eq(u.user, "alice");
  cr_assert_str_eq(u.password, "s@cret");
  cr_assert_str_eq(u.host, "cache.example");
  cr_assert_eq(u.port, 6380);
  cr_assert_eq(u.db, 7);
  cr_assert_eq(pc_redis_parse_url("redis://:pw@h:1/", &u, err, sizeof err), 0);
  cr_assert_str_eq(u.user, "");
  cr_assert_str_eq(u.password, "pw");
  cr_assert_eq(u.port, 1);
  cr_assert_eq(pc_redis_parse_url("REDIS://[::1]:7000/2", &u, err, sizeof err), 0);
  cr_assert_str_eq(u.host, "::1");
  cr_assert_eq(u.port, 7000);
  cr_assert_eq(u.db, 2);
  cr_assert_eq(pc_redis_parse_url("redis://p@ss@h", &u, err, sizeof err), 0); /* the last '@' ends the userinfo */
  cr_assert_str_eq(u.password, "p@ss");
  cr_assert_str_eq(u.host, "h");
}

Test(redis_url, rejects_bad_urls_without_leaking_the_password) {
  static const char *const bad[] = {
      "",
      "http://h",
      "rediss://:topsecret@h",
      "redis://",
      "redis://:topsecret@",
      "redis://h:0",
      "redis://h:65536",
      "redis://h:x",
      "redis://:topsecret@h:6379/x",
      "redis://h/1/2",
      "redis://[::1",
      "redis://h?x=1",
      "redis://:top%zzsecret@h",
      "redis://:top%00secret@h",
      "redis://ho st",
      "redis://::1:6379",
      "redis://h/1000000",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct pc_redis_url u;
    char err[128];
    cr_assert_eq(pc_redis_parse_url(bad[i], &u, err, sizeof err), PC_EINVAL, "accepted %s", bad[i]);
    cr_assert(strncmp(err, "redis URL: ", 11) == 0 && strlen(err) > 11, "message: %s", err);
    cr_assert_null(strstr(err, "topsecret"), "%s", err);
    cr_assert_null(strchr(err, '\n'));
    cr_assert_str_empty(u.password);
  }
  struct pc_redis_url u;
  cr_assert_eq(pc_redis_parse_url(NULL, &u, NULL, 0), PC_EINVAL);
}

Test(redis_url, redacts_the_password) {
  char out[128];
  pc_redis_redact("redis://alice:s3cret@h:6380/2", out, sizeof out);
  cr_assert_str_eq(out, "redis://alice:***@h:6380/2");
  pc_redis_redact("redis://:s3cret@h", out, sizeof out);
  cr_assert_str_eq(out, "redis://:***@h");
  pc_redis_redact("redis://s3cret@h", out, sizeof out);
  cr_assert_str_eq(out, "redis://***@h");
  pc_redis_redact("redis://h:1", out, sizeof out);
  cr_assert_str_eq(out, "redis://h:1");
  pc_redis_redact("redis://:a@b@h", out, sizeof out);
  cr_assert_str_eq(out, "redis://:***@h");
  pc_redis_redact("garbage:pw@h", out, sizeof out); /* malformed: still nothing of the password */
  cr_assert_null(strstr(out, "pw"), "%s", out);
  pc_redis_redact("redis://u:s3cret@h", out, 12); /* truncated */
  cr_assert_str_eq(out, "redis://u:*");
}

Test(redis_url, key_slots) {
  cr_assert_eq(pc_redis_key_slot("123456789", 9), 12739);
  cr_assert_eq(pc_redis_key_slot("foo", 3), 12182);
  cr_assert_eq(pc_redis_key_slot("bar", 3), 5061);
  cr_assert_eq(pc_redis_key_slot("{user1000}.following", 20), pc_redis_key_slot("{user1000}.followers", 20));
  cr_assert_eq(pc_redis_key_slot("{user1000}.following", 20), pc_redis_key_slot("user1000", 8));
  cr_assert_eq(pc_redis_key_slot("foo{bar}{zap}", 13), 5061);                             /* the first tag */
  cr_assert_eq(pc_redis_key_slot("foo{}{bar}", 10), pc_redis_key_slot("foo{}{bar}", 10)); /* stable */
  cr_assert_neq(pc_redis_key_slot("foo{}{bar}", 10), 5061);                               /* "{}": the whole key */
  cr_assert_eq(pc_redis_key_slot("foo{{bar}}zap", 13), pc_redis_key_slot("{bar", 4));
  cr_assert_eq(pc_redis_key_slot("", 0), 0);
}

/* ---- standalone -------------------------------------------------------------- */

TestSuite(redis, .init = setup, .fini = teardown, .timeout = 30);

Test(redis, standalone_commands_pipelining_and_errors) {
  struct srv *s = srv_start(NULL, 0, NULL);
  char url[128];
  srv_url(s, url, sizeof url, NULL, NULL);
  struct pc_redis *r = client(url);
  /* Before the first connect completes a command queues behind it. */
  struct res early;
  cr_assert_eq(send_cmd(r, &early, 1, -1, 0, 0, (const char *const[]){"SET", "k", "v", NULL}), 0);
  cr_assert_eq(early.done, 0, "callback ran inside pc_redis_command");
  WAIT_UNTIL(early.done, 2000);
  assert_ok(early, "OK");
  cr_assert_eq(pc_redis_wait_ready(r, 2000), 0);
  cr_assert(pc_redis_is_up(r));
  cr_assert_eq(pc_redis_masters(r), 1);
  char name[64];
  cr_assert_eq(pc_redis_master_name(r, 0, name, sizeof name), 0);
  cr_assert(strstr(name, "127.0.0.1:") == name);
  assert_ok(CMD(r, 1, "GET", "k"), "v");
  /* Binary-safe arguments. */
  const char *argv[] = {"SET", "bin", "a\0b"};
  size_t lens[] = {3, 3, 3};
  struct pc_redis_cmd bin = {.argc = 3, .argv = argv, .argvlen = lens, .key_index = 1, .node = -1};
  struct res x = {0};
  cr_assert_eq(pc_redis_command(r, &bin, res_cb, &x), 0);
  WAIT_UNTIL(x.done, 2000);
  struct res got = CMD(r, 1, "STRLEN", "bin");
  cr_assert_eq(got.integer, 3);
  /* 1000 pipelined INCRs: all queued before the loop runs, answered in order. */
  static struct res many[1000];
  g_order = 0;
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(send_cmd(r, &many[i], 1, -1, 0, 0, (const char *const[]){"INCR", "n", NULL}), 0);
  WAIT_UNTIL(many[999].done, 5000);
  for (int i = 0; i < 1000; i++) {
    cr_assert_eq(many[i].done, 1);
    cr_assert_eq(many[i].integer, i + 1);
    cr_assert_eq(many[i].order, i);
  }
  /* An error reply arrives as a reply. */
  struct res e = CMD(r, 1, "LPUSH", "k", "x");
  cr_assert_eq(e.rc, 0);
  cr_assert_eq(e.type, REDIS_REPLY_ERROR);
  cr_assert(strstr(e.str, "WRONGTYPE") != NULL, "%s", e.str);
  /* Bad commands are refused at once. */
  struct pc_redis_cmd none = {.argc = 0, .key_index = -1, .node = -1};
  cr_assert_eq(pc_redis_command(r, &none, res_cb, &x), PC_EINVAL);
  cr_assert_eq(CMD_NODE(r, 1, "DBSIZE").rc, PC_EINVAL);
  cr_assert_eq(CMD(r, -1, "subscribe", "ch").rc, PC_EINVAL); /* would turn the connection into a push stream */
  cr_assert_eq(CMD(r, -1, "MONITOR").rc, PC_EINVAL);
  assert_ok(CMD_NODE(r, 0, "DBSIZE"), NULL);
  struct pc_redis_counters k;
  pc_redis_get_counters(r, &k);
  cr_assert_geq(k.commands, 1006);
  cr_assert_eq(k.timeouts, 0);
  cr_assert_eq(k.moved + k.ask, 0);
  uint64_t sum = 0;
  for (int i = 0; i < PC_REDIS_LATENCY_BUCKETS; i++) sum += k.latency_us_buckets[i];
  cr_assert_eq(sum, k.latency_count);
  cr_assert_geq(k.latency_count, 1005);
  client_close(r);
}

Test(redis, auth_with_requirepass_and_acl_user) {
  const char *acl[] = {"--user", "alice", "on", ">alicepw", "~*", "&*", "+@all", NULL};
  struct srv *s = srv_start("s3cretpw", 0, acl);
  char url[160];
  srv_url(s, url, sizeof url, ":s3cretpw", NULL);
  struct pc_redis *r = client(url);
  cr_assert_eq(pc_redis_wait_ready(r, 2000), 0, "%s", pc_redis_last_error(r));
  assert_ok(CMD(r, 1, "SET", "a", "1"), "OK");
  client_close(r);

  loop_open();
  srv_url(s, url, sizeof url, "alice:alicepw", NULL);
  r = client(url);
  cr_assert_eq(pc_redis_wait_ready(r, 2000), 0, "%s", pc_redis_last_error(r));
  struct res who = CMD(r, -1, "ACL", "WHOAMI");
  assert_ok(who, "alice");
  client_close(r);

  loop_open();
  srv_url(s, url, sizeof url, ":wrongpw", NULL);
  r = client(url);
  cr_assert_eq(pc_redis_wait_ready(r, 500), PC_ETIMEDOUT);
  cr_assert_not(pc_redis_is_up(r));
  const char *e = pc_redis_last_error(r);
  cr_assert(strstr(e, "WRONGPASS") != NULL, "%s", e);
  cr_assert_null(strstr(e, "wrongpw"));
  client_close(r);
}

Test(redis, select_db) {
  struct srv *s = srv_start(NULL, 0, NULL);
  char url[128], out[64];
  srv_url(s, url, sizeof url, NULL, "/3");
  struct pc_redis *r = client(url);
  cr_assert_eq(pc_redis_wait_ready(r, 2000), 0, "%s", pc_redis_last_error(r));
  assert_ok(CMD(r, 1, "SET", "where", "three"), "OK");
  CLI(s, out, sizeof out, "-n", "3", "GET", "where");
  cr_assert_str_eq(out, "three");
  CLI(s, out, sizeof out, "-n", "0", "EXISTS", "where");
  cr_assert_str_eq(out, "0");
  client_close(r);
}

Test(redis, a_paused_server_times_out_and_the_client_recovers) {
  struct srv *s = srv_start(NULL, 0, NULL);
  char url[128];
  srv_url(s, url, sizeof url, NULL, NULL);
  struct pc_redis *r = client(url);
  cr_assert_eq(pc_redis_wait_ready(r, 2000), 0);
  assert_ok(CMD(r, 1, "SET", "k", "v"), "OK");
  cli_bg(s, "DEBUG", "SLEEP", "1");
  /* Until the sleep starts commands succeed; the first one caught by it must
   * come back PC_ETIMEDOUT in about the timeout. */
  struct res x = {0};
  int64_t dl = mono_ms() + 2000;
  while (mono_ms() < dl) {
    x = CMD(r, 1, "GET", "k");
    if (x.rc == PC_ETIMEDOUT) break;
  }
  cr_assert_eq(x.rc, PC_ETIMEDOUT, "rc %s", pc_errname(x.rc));
  cr_assert_geq(x.ms, TIMEOUT_MS - 5);
  cr_assert_leq(x.ms, TIMEOUT_MS + MARGIN_MS, "took %lld ms", (long long)x.ms);
  /* While it reconnects, nothing waits: refused at once, or answered. */
  struct res y;
  int64_t t0 = mono_ms();
  int rc = send_cmd(r, &y, 1, -1, 0, 0, (const char *const[]){"GET", "k", NULL});
  cr_assert_eq(rc, PC_EUNAVAIL, "rc %s", pc_errname(rc));
  cr_assert_leq(mono_ms() - t0, 5);
  cr_assert_not(pc_redis_is_up(r));
  /* Once the server wakes up, the client is back by itself. */
  WAIT_UNTIL(pc_redis_is_up(r), 5000);
  cr_assert(pc_redis_is_up(r), "%s", pc_redis_last_error(r));
  assert_ok(CMD(r, 1, "GET", "k"), "v");
  struct pc_redis_counters k;
  pc_redis_get_counters(r, &k);
  cr_assert_geq(k.timeouts, 1);
  cr_assert_geq(k.reconnects, 1);
  cr_assert_geq(k.errors, 2);
  client_close(r);
}

/* Until the server sleeps, a probe on a connection of its own is answered. */
static int server_sleeping(struct pc_redis *probe) {
  struct res x;
  if (send_cmd(probe, &x, -1, -1, 1, 100, (const char *const[]){"PING", NULL})) return 0;
  WAIT_UNTIL(x.done, 1000);
  return x.rc == PC_ETIMEDOUT;
}

Test(redis, a_command_behind_the_first_connect_times_out_alone) {
  struct srv *s = srv_start(NULL, 0, NULL);
  char url[128];
  srv_url(s, url, sizeof url, NULL, NULL);
  struct pc_redis *probe = client(url);
  cr_assert_eq(pc_redis_wait_ready(probe, 2000), 0);
  struct res slp;
  cr_assert_eq(send_cmd(probe, &slp, -1, -1, 0, 3000, (const char *const[]){"DEBUG", "SLEEP", "0.7", NULL}), 0);
  int64_t dl = mono_ms() + 2000;
  while (!server_sleeping(probe) && mono_ms() < dl) {
  }
  /* The server accepts the connection but answers nothing for a while: the
   * command queued behind the handshake times out on its own deadline, and the
   * connect goes on (its own deadline is the connect timeout, 1 s). */
  struct pc_redis *r = client(url);
  struct res x;
  cr_assert_eq(send_cmd(r, &x, 1, -1, 0, 0, (const char *const[]){"GET", "k", NULL}), 0);
  WAIT_UNTIL(x.done, 2000);
  cr_assert_eq(x.rc, PC_ETIMEDOUT, "rc %s", pc_errname(x.rc));
  cr_assert_leq(x.ms, TIMEOUT_MS + MARGIN_MS, "took %lld ms", (long long)x.ms);
  WAIT_UNTIL(pc_redis_is_up(r), 3000);
  cr_assert(pc_redis_is_up(r), "%s", pc_redis_last_error(r));
  struct pc_redis_counters k;
  pc_redis_get_counters(r, &k);
  cr_assert_eq(k.reconnects, 0, "the first connect was not abandoned");
  cr_assert_eq(k.timeouts, 1);
  WAIT_UNTIL(slp.done, 3000);
  pc_redis_destroy(probe);
  client_close(r);
}

Test(redis, a_dead_server_fails_fast_and_a_restart_is_picked_up) {
  struct srv *s = srv_start(NULL, 0, NULL);
  char url[128];
  srv_url(s, url, sizeof url, NULL, NULL);
  struct pc_redis *r = client(url);
  cr_assert_eq(pc_redis_wait_ready(r, 2000), 0);
  assert_ok(CMD(r, 1, "SET", "k", "v"), "OK");
  srv_kill(s);
  WAIT_UNTIL(!pc_redis_is_up(r), 2000);
  cr_assert_not(pc_redis_is_up(r));
  for (int i = 0; i < 3; i++) {
    int64_t t0 = mono_ms();
    struct res x = CMD(r, 1, "GET", "k");
    cr_assert_eq(x.rc, PC_EUNAVAIL, "rc %s", pc_errname(x.rc));
    cr_assert_eq(x.done, -1, "not refused at once");
    cr_assert_leq(mono_ms() - t0, 5);
  }
  /* It keeps trying, and fails, in the background. */
  WAIT_UNTIL(strstr(pc_redis_last_error(r), "refused"), 3000);
  cr_assert(strstr(pc_redis_last_error(r), "refused"), "%s", pc_redis_last_error(r));
  srv_restart(s);
  WAIT_UNTIL(pc_redis_is_up(r), 6000);
  cr_assert(pc_redis_is_up(r), "%s", pc_redis_last_error(r));
  assert_ok(CMD(r, 1, "SET", "k", "again"), "OK");
  assert_ok(CMD(r, 1, "GET", "k"), "again");
  struct pc_redis_counters k;
  pc_redis_get_counters(r, &k);
  cr_assert_geq(k.reconnects, 1);
  client_close(r);
}

struct subrec {
  int ups, msgs;
  char last[64];
};

static void on_msg(void *ud, const char *p, size_t n) {
  struct subrec *sr = ud;
  sr->msgs++;
  snprintf(sr->last, sizeof sr->last, "%.*s", (int)n, p);
}

static void on_up(void *ud) { ((struct subrec *)ud)->ups++; }

Test(redis, pubsub_delivers_and_resubscribes_after_a_restart) {
  struct srv *s = srv_start("pw", 0, NULL);
  char url[128], out[64];
  srv_url(s, url, sizeof url, ":pw", NULL);
  struct pc_redis *r = client(url);
  struct subrec a = {0}, b = {0};
  cr_assert_eq(pc_redis_subscribe(r, "chan-a", on_msg, on_up, &a), 0);
  cr_assert_eq(pc_redis_wait_ready(r, 2000), 0);
  WAIT_UNTIL(a.ups == 1, 2000);
  cr_assert_eq(a.ups, 1);
  cr_assert_eq(pc_redis_subscribe(r, "chan-b", on_msg, on_up, &b), 0); /* on a live subscriber connection */
  WAIT_UNTIL(b.ups == 1, 2000);
  struct res p = CMD(r, -1, "PUBLISH", "chan-a", "hello");
  assert_ok(p, NULL);
  cr_assert_eq(p.integer, 1);
  WAIT_UNTIL(a.msgs == 1, 2000);
  cr_assert_str_eq(a.last, "hello");
  CLI(s, out, sizeof out, "PUBLISH", "chan-b", "from-cli");
  WAIT_UNTIL(b.msgs == 1, 2000);
  cr_assert_str_eq(b.last, "from-cli");
  srv_restart(s);
  WAIT_UNTIL(a.ups == 2 && b.ups == 2 && pc_redis_is_up(r), 6000);
  cr_assert_eq(a.ups, 2, "%s", pc_redis_last_error(r));
  cr_assert_eq(b.ups, 2);
  assert_ok(CMD(r, -1, "PUBLISH", "chan-a", "again"), NULL);
  WAIT_UNTIL(a.msgs == 2, 2000);
  cr_assert_str_eq(a.last, "again");
  cr_assert_eq(b.msgs, 1);
  client_close(r);
}

Test(redis, a_blocking_command_on_a_dedicated_connection_delays_nothing) {
  struct srv *s = srv_start(NULL, 0, NULL);
  char url[128];
  srv_url(s, url, sizeof url, NULL, NULL);
  struct pc_redis *r = client(url);
  cr_assert_eq(pc_redis_wait_ready(r, 2000), 0);
  struct res blk;
  cr_assert_eq(send_cmd(r, &blk, 1, -1, 1, 3000 + TIMEOUT_MS, (const char *const[]){"BLPOP", "q", "3", NULL}), 0);
  for (int i = 0; i < 5; i++) {
    struct res g = CMD(r, 1, "GET", "nothing");
    cr_assert_eq(g.rc, 0);
    cr_assert_lt(g.ms, 100, "a GET waited %lld ms", (long long)g.ms);
  }
  cr_assert_eq(blk.done, 0);
  assert_ok(CMD(r, 1, "RPUSH", "q", "item"), NULL);
  WAIT_UNTIL(blk.done, 2000);
  cr_assert_eq(blk.rc, 0);
  cr_assert_eq(blk.type, REDIS_REPLY_ARRAY);
  cr_assert_eq(blk.elements, 2);
  /* The dedicated connection is reused. */
  cr_assert_eq(send_cmd(r, &blk, 1, -1, 1, 1000 + TIMEOUT_MS, (const char *const[]){"BLPOP", "q", "1", NULL}), 0);
  assert_ok(CMD(r, 1, "RPUSH", "q", "two"), NULL);
  WAIT_UNTIL(blk.done, 2000);
  cr_assert_eq(blk.rc, 0);
  char out[2048];
  CLI(s, out, sizeof out, "CLIENT", "LIST");
  int clients = 0;
  for (char *p = out; (p = strstr(p, "id=")) != NULL; p += 3) clients++;
  cr_assert_eq(clients, 3, "main + dedicated + redis-cli:\n%s", out);
  struct pc_redis_counters k;
  pc_redis_get_counters(r, &k);
  cr_expect_eq(k.errors, 0, "successful blocking reads are not errors");
  cr_expect_eq(k.latency_count, k.commands - 2, "nor round trips: the two BLPOPs are left out of the latency");
  client_close(r);
}

static int g_cancels;
static void count_cancel(void *ud, int rc, const redisReply *rep) {
  if (rc == PC_ECANCELED && !rep) g_cancels++;
}

Test(redis, destroy_cancels_every_pending_command_before_returning) {
  struct srv *s = srv_start(NULL, 0, NULL);
  char url[128];
  srv_url(s, url, sizeof url, NULL, NULL);
  struct pc_redis *r = client(url);
  cr_assert_eq(pc_redis_wait_ready(r, 2000), 0);
  const char *argv[] = {"PING"};
  struct pc_redis_cmd ping = {.argc = 1, .argv = argv, .key_index = -1, .node = -1};
  g_cancels = 0;
  for (int i = 0; i < 10; i++) cr_assert_eq(pc_redis_command(r, &ping, count_cancel, NULL), 0);
  pc_redis_destroy(r);
  cr_assert_eq(g_cancels, 10);
  cr_assert_eq(pc_redis_command(r, &ping, count_cancel, NULL), PC_ECANCELED);
  client_close(r); /* destroy again is a no-op; the loop closes */
}

/* ---- cluster ----------------------------------------------------------------- */

/* A key whose slot lies in [lo, hi]. */
static void key_in(char *out, size_t n, const char *prefix, int lo, int hi) {
  for (int i = 0;; i++) {
    snprintf(out, n, "%s%d", prefix, i);
    int s = pc_redis_key_slot(out, strlen(out));
    if (s >= lo && s <= hi) return;
  }
}

Test(redis, cluster_routes_every_slot_range_to_its_master) {
  struct srv *m[3];
  char urls[3][128], out[256], key[32];
  cluster_start(m, urls);
  const char *seeds[] = {urls[1]}; /* any node will do as a seed */
  struct pc_redis *r = client_n(seeds, 1);
  cr_assert_eq(pc_redis_wait_ready(r, 3000), 0, "%s", pc_redis_last_error(r));
  cr_assert_eq(pc_redis_masters(r), 3);
  static const int range[3][2] = {{0, 5460}, {5461, 10922}, {10923, 16383}};
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 3; j++) { /* low end, middle, high end of each range */
      int lo = range[i][0] + j * (range[i][1] - range[i][0]) / 3, hi = lo + (range[i][1] - range[i][0]) / 3;
      char val[32];
      key_in(key, sizeof key, "k", lo, hi);
      snprintf(val, sizeof val, "v%d%d", i, j);
      assert_ok(CMD(r, 1, "SET", key, val), "OK");
      CLI(m[i], out, sizeof out, "GET", key); /* no -c: only the owner has it */
      cr_assert_str_eq(out, val, "key %s (slot %d) not on master %d", key, pc_redis_key_slot(key, strlen(key)), i);
      snprintf(out, sizeof out, "%d", pc_redis_key_slot(key, strlen(key)));
      char ks[16];
      CLI(m[i], ks, sizeof ks, "CLUSTER", "KEYSLOT", key);
      cr_assert_str_eq(ks, out);
    }
  }
  /* Per-master commands: the keys add up. */
  long long total = 0;
  for (size_t i = 0; i < pc_redis_masters(r); i++) {
    struct res d = CMD_NODE(r, (int)i, "DBSIZE");
    assert_ok(d, NULL);
    total += d.integer;
  }
  cr_assert_eq(total, 9);
  struct pc_redis_counters k;
  pc_redis_get_counters(r, &k);
  cr_assert_eq(k.moved + k.ask, 0, "the map was right: no redirects");
  /* A master dies: its slots fail fast, the others keep working. */
  srv_kill(m[2]);
  WAIT_UNTIL(!pc_redis_is_up(r), 2000);
  cr_assert_not(pc_redis_is_up(r));
  key_in(key, sizeof key, "dead", 10923, 16383);
  struct res d = CMD(r, 1, "GET", key);
  cr_assert_eq(d.rc, PC_EUNAVAIL);
  cr_assert_eq(d.done, -1, "not refused at once");
  key_in(key, sizeof key, "alive", 0, 5460);
  assert_ok(CMD(r, 1, "SET", key, "x"), "OK");
  client_close(r);
}

static void node_id(const struct srv *s, char *out, size_t n) {
  CLI(s, out, n, "CLUSTER", "MYID");
  cr_assert_eq(strlen(out), 40, "%s", out);
}

Test(redis, cluster_follows_ask_during_a_migration_and_moved_after_it) {
  struct srv *m[3];
  char urls[3][128], out[256], key[32], src_id[64], dst_id[64], slot[16], dport[16];
  cluster_start(m, urls);
  const char *seeds[] = {urls[0], urls[1], urls[2]};
  struct pc_redis *r = client_n(seeds, 3);
  cr_assert_eq(pc_redis_wait_ready(r, 3000), 0, "%s", pc_redis_last_error(r));
  key_in(key, sizeof key, "mig", 0, 5460); /* on master 0, moving to master 1 */
  assert_ok(CMD(r, 1, "SET", key, "payload"), "OK");
  snprintf(slot, sizeof slot, "%d", pc_redis_key_slot(key, strlen(key)));
  snprintf(dport, sizeof dport, "%d", m[1]->port);
  node_id(m[0], src_id, sizeof src_id);
  node_id(m[1], dst_id, sizeof dst_id);
  CLI(m[1], out, sizeof out, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id);
  cr_assert_str_eq(out, "OK");
  CLI(m[0], out, sizeof out, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id);
  cr_assert_str_eq(out, "OK");
  CLI(m[0], out, sizeof out, "MIGRATE", "127.0.0.1", dport, key, "0", "5000");
  cr_assert_str_eq(out, "OK");
  /* Mid-migration: master 0 answers ASK; the client asks master 1. */
  assert_ok(CMD(r, 1, "GET", key), "payload");
  struct pc_redis_counters k;
  pc_redis_get_counters(r, &k);
  cr_assert_geq(k.ask, 1);
  cr_assert_eq(k.moved, 0);
  assert_ok(CMD(r, 1, "GET", key), "payload"); /* the map did not change: ASK again */
  pc_redis_get_counters(r, &k);
  cr_assert_geq(k.ask, 2);
  for (int i = 1; i < 4; i++) { /* the destination first, as redis-cli does */
    CLI(m[i % 3], out, sizeof out, "CLUSTER", "SETSLOT", slot, "NODE", dst_id);
    cr_assert_str_eq(out, "OK");
  }
  /* Done: master 0 answers MOVED; the client follows and learns the new map. */
  assert_ok(CMD(r, 1, "GET", key), "payload");
  pc_redis_get_counters(r, &k);
  cr_assert_eq(k.moved, 1);
  uint64_t moved = k.moved;
  assert_ok(CMD(r, 1, "SET", key, "after"), "OK");
  assert_ok(CMD(r, 1, "GET", key), "after");
  pc_redis_get_counters(r, &k);
  cr_assert_eq(k.moved, moved, "the updated map routes directly");
  CLI(m[1], out, sizeof out, "GET", key);
  cr_assert_str_eq(out, "after");
  client_close(r);
}
