/* redis_srv.h — real redis-server processes for the unit tests that talk to
 * Redis (test_redis.c, test_shared.c): free 127.0.0.1 ports, servers started
 * in the test's temporary directory g_dir (standalone or a 3-master cluster),
 * redis-cli against them, killing and restarting them, and the loop every
 * such test runs (g_loop, with a heartbeat timer, and WAIT_UNTIL). Servers die
 * with the test process (PR_SET_PDEATHSIG); each test file's fini kills them
 * by pid and removes g_dir (rm_one). Everything here is static: each file that
 * includes it has its own servers and loop. Define SRV_DEBUG_COMMAND before
 * the include to start servers with --enable-debug-command yes. */
#ifndef PC_TEST_REDIS_SRV_H
#define PC_TEST_REDIS_SRV_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define MAX_SRV 4
#define MAX_EXTRA 12

struct srv {
  pid_t pid;
  int port;
  int cluster;
  char pass[64];
  const char *extra[MAX_EXTRA];
};

static char g_dir[64];
static struct srv g_srv[MAX_SRV];
static int g_nsrv;
static uv_loop_t g_loop;
static uv_timer_t g_tick;
static int g_loop_open;

/* ---- processes --------------------------------------------------------------- */

static inline int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int port_free(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

/* A port p with p and p + 10000 (the cluster bus) free, from a per-process
 * random start so parallel tests rarely collide (a collision makes the
 * server exit, and srv_start tries another port). */
static inline int pick_port(void) {
  static unsigned seed;
  if (!seed) seed = (unsigned)getpid() * 2654435761u ^ (unsigned)mono_ms();
  for (int i = 0; i < 200; i++) {
    int p = 20000 + (int)(rand_r(&seed) % 25000);
    if (port_free(p) && port_free(p + 10000)) return p;
  }
  cr_assert_fail("no free port");
  return 0;
}

static inline pid_t spawn(const char *const *argv, const char *log, int out_fd) {
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* servers die with a crashed test */
    int fd = out_fd >= 0 ? out_fd : open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  return pid;
}

/* redis-cli against server s; stdout (trailing newline removed) into out.
 * Returns the exit status. */
static inline int cli_argv(const struct srv *s, char *out, size_t n, const char *const *args) {
  const char *argv[32];
  char port[16];
  int k = 0, fds[2], status = 0;
  size_t len = 0;
  snprintf(port, sizeof port, "%d", s->port);
  argv[k++] = "redis-cli";
  argv[k++] = "-h";
  argv[k++] = "127.0.0.1";
  argv[k++] = "-p";
  argv[k++] = port;
  if (s->pass[0]) {
    argv[k++] = "-a";
    argv[k++] = s->pass;
    argv[k++] = "--no-auth-warning";
  }
  while (*args && k < 31) argv[k++] = *args++;
  argv[k] = NULL;
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = spawn(argv, NULL, fds[1]);
  close(fds[1]);
  for (;;) {
    char tmp[4096];
    ssize_t got = read(fds[0], tmp, sizeof tmp);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    for (ssize_t i = 0; i < got && out && len + 1 < n; i++) out[len++] = tmp[i];
  }
  close(fds[0]);
  waitpid(pid, &status, 0);
  if (out && n) {
    while (len && (out[len - 1] == '\n' || out[len - 1] == '\r')) len--;
    out[len] = '\0';
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define CLI(s, out, n, ...) cli_argv((s), (out), (n), (const char *const[]){__VA_ARGS__, NULL})

static inline void srv_spawn(struct srv *s) {
  char port[16], dir[96], log[128], conf[128];
  const char *argv[40];
  int k = 0;
  snprintf(port, sizeof port, "%d", s->port);
  snprintf(dir, sizeof dir, "%s/%d", g_dir, s->port);
  snprintf(log, sizeof log, "%s/%d.log", g_dir, s->port);
  snprintf(conf, sizeof conf, "nodes-%d.conf", s->port);
  mkdir(dir, 0700);
  argv[k++] = "redis-server";
  argv[k++] = "--port";
  argv[k++] = port;
  argv[k++] = "--bind";
  argv[k++] = "127.0.0.1";
  argv[k++] = "--dir";
  argv[k++] = dir;
  argv[k++] = "--save";
  argv[k++] = "";
  argv[k++] = "--appendonly";
  argv[k++] = "no";
#ifdef SRV_DEBUG_COMMAND
  argv[k++] = "--enable-debug-command";
  argv[k++] = "yes";
#endif
  if (s->pass[0]) {
    argv[k++] = "--requirepass";
    argv[k++] = s->pass;
  }
  if (s->cluster) {
    argv[k++] = "--cluster-enabled";
    argv[k++] = "yes";
    argv[k++] = "--cluster-config-file";
    argv[k++] = conf;
    argv[k++] = "--cluster-node-timeout";
    argv[k++] = "5000";
  }
  for (int i = 0; s->extra[i]; i++) argv[k++] = s->extra[i];
  argv[k] = NULL;
  s->pid = spawn(argv, log, -1);
}

static inline int srv_answers(const struct srv *s) {
  char out[64];
  return CLI(s, out, sizeof out, "PING") == 0 && strcmp(out, "PONG") == 0;
}

/* Wait until s answers PING; 0 when its process exited first. */
static inline int srv_wait(struct srv *s) {
  int64_t deadline = mono_ms() + 5000;
  while (mono_ms() < deadline) {
    int status;
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
      s->pid = 0;
      return 0;
    }
    if (srv_answers(s)) return 1;
    usleep(10000); /* polling interval, not a synchronization */
  }
  cr_assert_fail("redis-server on port %d did not answer", s->port);
  return 0;
}

static inline struct srv *srv_start(const char *pass, int cluster, const char *const *extra) {
  cr_assert(g_nsrv < MAX_SRV);
  struct srv *s = &g_srv[g_nsrv++];
  memset(s, 0, sizeof *s);
  if (pass) snprintf(s->pass, sizeof s->pass, "%s", pass);
  s->cluster = cluster;
  for (int i = 0; extra && extra[i] && i < MAX_EXTRA - 1; i++) s->extra[i] = extra[i];
  for (int tries = 0; tries < 5; tries++) {
    s->port = pick_port();
    srv_spawn(s);
    if (srv_wait(s)) return s;
  }
  cr_assert_fail("redis-server would not start");
  return NULL;
}

static inline void srv_kill(struct srv *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
  }
  s->pid = 0;
}

/* Start again on the same port (data is gone: no persistence). */
static inline void srv_restart(struct srv *s) {
  srv_kill(s);
  for (int tries = 0; tries < 50; tries++) {
    srv_spawn(s);
    if (srv_wait(s)) return;
  }
  cr_assert_fail("redis-server would not restart on port %d", s->port);
}

static inline void srv_url(const struct srv *s, char *out, size_t n, const char *userinfo, const char *path) {
  snprintf(out, n, "redis://%s%s127.0.0.1:%d%s", userinfo ? userinfo : "", userinfo ? "@" : "", s->port,
           path ? path : "");
}

/* Three masters (0-5460, 5461-10922, 10923-16383 in start order). */
static inline void cluster_start(struct srv **m, char urls[3][128]) {
  char out[4096], a[3][32];
  for (int i = 0; i < 3; i++) {
    m[i] = srv_start(NULL, 1, NULL);
    snprintf(a[i], sizeof a[i], "127.0.0.1:%d", m[i]->port);
    srv_url(m[i], urls[i], sizeof urls[i], NULL, NULL);
  }
  int rc =
      CLI(m[0], out, sizeof out, "--cluster", "create", a[0], a[1], a[2], "--cluster-replicas", "0", "--cluster-yes");
  cr_assert_eq(rc, 0, "%s", out);
  for (int i = 0; i < 3; i++) {
    int64_t dl = mono_ms() + 10000;
    while (mono_ms() < dl) {
      CLI(m[i], out, sizeof out, "CLUSTER", "INFO");
      if (strstr(out, "cluster_state:ok") && strstr(out, "cluster_known_nodes:3")) break;
      usleep(20000); /* polling interval */
    }
    cr_assert(strstr(out, "cluster_state:ok"), "%s", out);
  }
}

/* ---- loop -------------------------------------------------------------------- */

static inline void on_tick(uv_timer_t *t) {}

static inline int rm_one(const char *p, const struct stat *st, int type, struct FTW *f) { return remove(p); }

#define WAIT_UNTIL(cond, ms)                                                                                           \
  do {                                                                                                                 \
    int64_t wait_dl_ = mono_ms() + (ms);                                                                               \
    while (!(cond) && mono_ms() < wait_dl_) uv_run(&g_loop, UV_RUN_ONCE);                                              \
  } while (0)

#endif
