/* cli_fleet.c — `stats --redis` and `purge --redis` (see cli_fleet.h): one
 * shared-tier client on a loop of its own, run until the job's callback. */
#include "cli_fleet.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "fleet.h"
#include "purge.h"
#include "shared.h"

#define CLI_TIMEOUT_MS 2000 /* per command: a command-line tool may wait longer than a request */
#define CLI_CONNECT_MS 5000

struct job {
  uv_loop_t loop;
  struct pc_shared *s;
  int done, rc;
  size_t deleted;
  pc_buf rows; /* struct pc_fleet_node[] */
};

/* Connect; returns 0 or the exit status (the reason printed). */
static int job_open(struct job *j, const struct pc_cli_redis *r, const char *cmd) {
  memset(j, 0, sizeof *j);
  signal(SIGPIPE, SIG_IGN); /* a connection Redis closed must not kill the tool */
  pc_buf_init(&j->rows, 64 << 20);
  if (uv_loop_init(&j->loop)) {
    fprintf(stderr, "promptcache %s: cannot create an event loop\n", cmd);
    return 1;
  }
  char node[PC_SHARED_MAX_NODE_ID + 1] = "cli", host[64] = "";
  if (!gethostname(host, sizeof host - 1)) snprintf(node, sizeof node, "cli@%s", host);
  struct pc_shared_config sc = {
      .urls = r->urls, .n_urls = r->n_urls, .prefix = r->prefix, .timeout_ms = CLI_TIMEOUT_MS, .node_id = node};
  int rc = pc_shared_create(&j->loop, &sc, &j->s);
  if (rc) {
    fprintf(stderr, "promptcache %s: invalid --redis settings: %s\n", cmd, pc_strerror(rc));
    return 2;
  }
  /* a refused connection or a wrong password does not get better by waiting:
   * past the first second, a known error ends the wait */
  int ready = 0;
  for (int waited = 0; !ready && waited < CLI_CONNECT_MS; waited += 250) {
    ready = !pc_redis_wait_ready(pc_shared_redis(j->s), 250);
    if (!ready && waited >= 750 && pc_redis_last_error(pc_shared_redis(j->s))[0]) break;
  }
  if (!ready) {
    fprintf(stderr, "promptcache %s: cannot reach Redis: %s\n", cmd, pc_redis_last_error(pc_shared_redis(j->s)));
    return 1;
  }
  return 0;
}

static void job_run(struct job *j) {
  while (!j->done) uv_run(&j->loop, UV_RUN_ONCE);
}

static void job_close(struct job *j) {
  pc_shared_destroy(j->s);
  uv_run(&j->loop, UV_RUN_DEFAULT);
  uv_loop_close(&j->loop);
  pc_buf_free(&j->rows);
}

/* ---- stats ---- */

static void row(void *ud, const char *node, const char *json, size_t n, int64_t updated_ms) {
  struct job *j = ud;
  struct pc_fleet_node r;
  if (!pc_fleet_node_parse(node, json, n, updated_ms, &r)) pc_buf_append(&j->rows, &r, sizeof r);
}

static void rows_done(void *ud, int rc) {
  struct job *j = ud;
  j->rc = rc;
  j->done = 1;
}

static int cmp_node(const void *a, const void *b) {
  return strcmp(((const struct pc_fleet_node *)a)->node, ((const struct pc_fleet_node *)b)->node);
}

static void ago(int64_t updated_ms, char *out, size_t n) {
  int64_t s = (pc_now_ms() - updated_ms) / 1000;
  if (s < 0) s = 0;
  if (s < 120)
    snprintf(out, n, "%llds ago", (long long)s);
  else if (s < 7200)
    snprintf(out, n, "%lldm ago", (long long)(s / 60));
  else
    snprintf(out, n, "%lldh ago", (long long)(s / 3600));
}

static void text_row(const struct pc_fleet_node *r, const char *name, const char *when) {
  printf("%-28.28s %10llu %10llu %8llu %10llu %8llu %10llu %6.1f%% %12llu %11.4f  %s\n", name,
         (unsigned long long)r->requests, (unsigned long long)r->hits, (unsigned long long)r->hits_shared,
         (unsigned long long)r->coalesced, (unsigned long long)r->fleet_coalesced, (unsigned long long)r->misses,
         100.0 * pc_fleet_hit_ratio(r), (unsigned long long)(r->tokens_in + r->tokens_out), r->money, when);
}

int pc_cli_fleet_stats(const struct pc_cli_redis *r, int json) {
  struct job j;
  int st = job_open(&j, r, "stats");
  if (!st && pc_shared_read_stats(j.s, row, rows_done, &j)) {
    fprintf(stderr, "promptcache stats: Redis became unreachable\n");
    st = 1;
  }
  if (!st) job_run(&j);
  if (!st && j.rc) {
    fprintf(stderr, "promptcache stats: reading the fleet's stats failed: %s\n", pc_strerror(j.rc));
    st = 1;
  }
  size_t n = j.rows.len / sizeof(struct pc_fleet_node);
  struct pc_fleet_node *rows = (struct pc_fleet_node *)j.rows.data;
  if (!st && n) qsort(rows, n, sizeof *rows, cmp_node);
  if (!st && json) {
    pc_buf b;
    pc_buf_init(&b, 64 << 20);
    if (pc_fleet_summary_json(rows, n, 1, &b) || pc_buf_putc(&b, '\n'))
      st = 1;
    else
      fwrite(b.data, 1, b.len, stdout);
    pc_buf_free(&b);
  } else if (!st) {
    struct pc_fleet_node sum;
    memset(&sum, 0, sizeof sum);
    printf("fleet: %zu node%s (prefix %s); lifetime totals as each node last published them\n", n, n == 1 ? "" : "s",
           r->prefix ? r->prefix : PC_SHARED_DEFAULT_PREFIX);
    printf("%-28s %10s %10s %8s %10s %8s %10s %7s %12s %11s  %s\n", "node", "requests", "hits", "shared", "coalesced",
           "fleet", "misses", "ratio", "tokens saved", "money saved", "updated");
    for (size_t i = 0; i < n; i++) {
      char when[32];
      ago(rows[i].updated_ms, when, sizeof when);
      text_row(&rows[i], rows[i].node, when);
      pc_fleet_node_add(&sum, &rows[i]);
    }
    text_row(&sum, "total", "");
  }
  job_close(&j);
  return st;
}

/* ---- purge ---- */

static void purged(void *ud, int rc, size_t deleted) {
  struct job *j = ud;
  j->rc = rc;
  j->deleted = deleted;
  j->done = 1;
}

int pc_cli_fleet_purge(const struct pc_cli_redis *r, const struct pc_purge_sel *sel) {
  struct job j;
  int st = job_open(&j, r, "purge");
  if (!st && (j.rc = pc_shared_purge(j.s, sel, purged, &j)) != 0) j.done = 1;
  if (!st) job_run(&j);
  if (!st && j.rc) {
    fprintf(stderr, "promptcache purge: purging in Redis failed (%s): run it again\n", pc_strerror(j.rc));
    st = 1;
  } else if (!st) {
    printf("deleted %zu entries in Redis; every running node drops its local copies\n", j.deleted);
  }
  job_close(&j);
  return st;
}
