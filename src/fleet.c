/* fleet.c — this node's side of a fleet (see fleet.h). */
#include "fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "json.h"
#include "log.h"
#include "purge.h"
#include "stats.h"
#include "writer.h"

#define CHORE_MS 1000
#define FLEET_EVERY 10 /* chores between two publications of the fleet stats */
#define PURGE_META "fleet_purge"

struct pc_fleet {
  uv_timer_t timer;
  struct pc_shared *shared;
  struct pc_fleet_opts o;
  char node_id[PC_SHARED_MAX_NODE_ID + 1];
  unsigned ticks;
  int was_up;
  int reading; /* a fleet stats read is pending */
  pc_buf rows; /* struct pc_fleet_node[] of the read in progress */
};

void pc_fleet_node_id(const struct pc_config *cfg, int port, char out[PC_SHARED_MAX_NODE_ID + 1]) {
  char host[PC_SHARED_MAX_NODE_ID + 1] = "";
  if (gethostname(host, sizeof host - 1) || !host[0]) snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  if (port <= 0) port = cfg->n_listen ? cfg->listen[0].port : 8080;
  char suffix[32];
  /* port 0 (any free port) names no one node: the process id does */
  int sn =
      port ? snprintf(suffix, sizeof suffix, ":%d", port) : snprintf(suffix, sizeof suffix, ":pid%ld", (long)getpid());
  size_t hn = strlen(host);
  if (hn + (size_t)sn > PC_SHARED_MAX_NODE_ID) hn = PC_SHARED_MAX_NODE_ID - (size_t)sn;
  memcpy(out, host, hn);
  memcpy(out + hn, suffix, (size_t)sn + 1);
}

void pc_fleet_shared_config(const struct pc_config *cfg, const char *node_id, struct pc_shared_config *out) {
  *out = (struct pc_shared_config){.urls = (const char *const *)cfg->redis.v,
                                   .n_urls = cfg->redis.n,
                                   .prefix = cfg->redis_prefix,
                                   .max_value = cfg->redis_max_value,
                                   .timeout_ms = cfg->redis_timeout_ms,
                                   .node_id = node_id};
}

/* ---- the fleet secret, before serving ---- */

struct agree {
  int done, rc;
  uint8_t secret[PC_CACHE_SECRET_LEN];
};

static void agreed(void *ud, int rc, const uint8_t secret[32]) {
  struct agree *a = ud;
  a->done = 1;
  a->rc = rc;
  if (!rc) memcpy(a->secret, secret, sizeof a->secret);
}

int pc_fleet_agree_secret(const struct pc_config *cfg, pc_cache *cache) {
  uint8_t mine[PC_CACHE_SECRET_LEN];
  char node_id[PC_SHARED_MAX_NODE_ID + 1];
  pc_fleet_node_id(cfg, 0, node_id);
  int rc = pc_cache_secret(cache, mine);
  if (rc) return rc;
  uv_loop_t loop;
  if (uv_loop_init(&loop)) return PC_ENOMEM;
  struct pc_shared_config sc;
  pc_fleet_shared_config(cfg, node_id, &sc);
  struct pc_shared *s = NULL;
  rc = pc_shared_create(&loop, &sc, &s);
  struct agree a = {0};
  if (!rc) {
    int64_t wait = cfg->redis_timeout_ms * 4 > 2000 ? cfg->redis_timeout_ms * 4 : 2000;
    if (pc_redis_wait_ready(pc_shared_redis(s), wait)) {
      pc_log_warn("fleet: Redis not reachable at start (%s): serving without the shared tier until it is; "
                  "this node keeps its own credential secret until restarted, so credential-scoped entries it "
                  "stores meanwhile are not found by other nodes",
                  pc_redis_last_error(pc_shared_redis(s)));
      a.done = 1;
      a.rc = PC_EUNAVAIL;
    } else if (pc_shared_secret(s, mine, agreed, &a)) {
      a.done = 1;
      a.rc = PC_EUNAVAIL;
    }
    while (!a.done) uv_run(&loop, UV_RUN_ONCE); /* the command has a timeout */
    if (!a.rc && memcmp(a.secret, mine, sizeof mine)) {
      rc = pc_cache_set_secret(cache, a.secret);
      if (!rc) pc_log_info("fleet: adopted the fleet's credential secret");
    } else if (a.rc == PC_ECORRUPT) {
      fprintf(stderr,
              "promptcache: the fleet secret stored in Redis is not 32 bytes long (delete the key "
              "'%ssecret' and restart the nodes)\n",
              cfg->redis_prefix);
      rc = PC_ECORRUPT;
    } else if (a.rc && a.rc != PC_EUNAVAIL) {
      pc_log_warn("fleet: could not agree on the fleet secret (%s): this node keeps its own until restarted",
                  pc_strerror(a.rc));
    }
  }
  pc_shared_destroy(s);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return rc;
}

/* ---- fleet totals ---- */

int pc_fleet_node_parse(const char *node, const char *json, size_t n, int64_t updated_ms, struct pc_fleet_node *out) {
  struct pc_json_doc *doc = NULL;
  memset(out, 0, sizeof *out);
  snprintf(out->node, sizeof out->node, "%s", node ? node : "");
  out->updated_ms = updated_ms;
  if (pc_json_parse(json, n, &doc, NULL) || pc_json_root(doc)->type != PC_JSON_OBJECT) {
    pc_json_free(doc);
    return PC_EJSON;
  }
  const struct pc_json *r = pc_json_root(doc);
#define NUM(name) ((uint64_t)pc_json_get_num(r, name, 0))
  out->hits = NUM("hit");
  out->coalesced = NUM("coalesced");
  out->misses = NUM("miss");
  out->hits_shared = NUM("hit_shared");
  out->fleet_coalesced = NUM("fleet_coalesced");
  out->lookups = out->hits + out->coalesced + out->misses + NUM("refresh") + NUM("stale") + NUM("replay_miss");
  out->requests = out->lookups + NUM("bypass");
  out->tokens_in = NUM("tokens_saved_input");
  out->tokens_out = NUM("tokens_saved_output");
#undef NUM
  out->money = pc_json_get_num(r, "money_saved", 0);
  pc_json_free(doc);
  return 0;
}

void pc_fleet_node_add(struct pc_fleet_node *sum, const struct pc_fleet_node *n) {
  sum->requests += n->requests;
  sum->hits += n->hits;
  sum->hits_shared += n->hits_shared;
  sum->coalesced += n->coalesced;
  sum->fleet_coalesced += n->fleet_coalesced;
  sum->misses += n->misses;
  sum->lookups += n->lookups;
  sum->tokens_in += n->tokens_in;
  sum->tokens_out += n->tokens_out;
  sum->money += n->money;
  if (n->updated_ms > sum->updated_ms) sum->updated_ms = n->updated_ms;
}

double pc_fleet_hit_ratio(const struct pc_fleet_node *n) {
  return n->lookups ? (double)(n->hits + n->coalesced) / (double)n->lookups : 0;
}

static int node_json(const struct pc_fleet_node *n, int named, pc_buf *out) {
  int rc = pc_buf_putc(out, '{');
  if (!rc && named) {
    rc = pc_buf_puts(out, "\"node\":");
    if (!rc) rc = pc_json_write_string(out, n->node, strlen(n->node));
    if (!rc) rc = pc_buf_printf(out, ",\"updated_ms\":%lld,", (long long)n->updated_ms);
  }
  if (!rc)
    rc = pc_buf_printf(out,
                       "\"requests\":%llu,\"hits\":%llu,\"hits_shared\":%llu,\"coalesced\":%llu,"
                       "\"fleet_coalesced\":%llu,\"misses\":%llu,\"hit_ratio\":%.4f,\"tokens_saved\":%llu,"
                       "\"money_saved\":%.6f}",
                       (unsigned long long)n->requests, (unsigned long long)n->hits, (unsigned long long)n->hits_shared,
                       (unsigned long long)n->coalesced, (unsigned long long)n->fleet_coalesced,
                       (unsigned long long)n->misses, pc_fleet_hit_ratio(n),
                       (unsigned long long)(n->tokens_in + n->tokens_out), n->money);
  return rc;
}

int pc_fleet_summary_json(const struct pc_fleet_node *nodes, size_t n, int list, pc_buf *out) {
  struct pc_fleet_node sum;
  memset(&sum, 0, sizeof sum);
  int rc = pc_buf_puts(out, "{\"nodes\":");
  if (!rc && !list) rc = pc_buf_printf(out, "%zu", n);
  if (!rc && list) rc = pc_buf_putc(out, '[');
  for (size_t i = 0; i < n && !rc; i++) {
    pc_fleet_node_add(&sum, &nodes[i]);
    if (list && i) rc = pc_buf_putc(out, ',');
    if (!rc && list) rc = node_json(&nodes[i], 1, out);
  }
  if (!rc && list) rc = pc_buf_putc(out, ']');
  if (!rc) rc = pc_buf_puts(out, ",\"totals\":");
  if (!rc) rc = node_json(&sum, 0, out);
  return rc ? rc : pc_buf_putc(out, '}');
}

/* ---- the chores ---- */

static void persist_purge_id(struct pc_fleet *f, const char *id) {
  size_t n = strlen(id);
  char *copy = malloc(n ? n : 1);
  if (!copy) return;
  memcpy(copy, id, n);
  pc_writer_meta(f->o.writer, PURGE_META, copy, n);
}

static void purge_apply(void *ud, const struct pc_purge_sel *sel, const char *id) {
  struct pc_fleet *f = ud;
  size_t n = 0;
  int rc = pc_purge(f->o.cache, sel, &n);
  if (rc)
    pc_log_warn("fleet: purge %s could not be applied here: %s", id, pc_strerror(rc));
  else if (n)
    pc_log_info("fleet: purge %s removed %zu local entr%s", id, n, n == 1 ? "y" : "ies");
  persist_purge_id(f, id);
}

/* The purge log no longer reaches back to the last purge applied here: a
 * purge may have been missed, so the whole local tier goes. */
static void purge_reset(void *ud, const char *id) {
  struct pc_fleet *f = ud;
  struct pc_purge_sel all = {.all = 1};
  size_t n = 0;
  int rc = pc_purge(f->o.cache, &all, &n);
  pc_log_warn("fleet: the purge log does not reach back to the last purge applied here: dropped the local tier "
              "(%zu entries)%s%s",
              n, rc ? ": " : "", rc ? pc_strerror(rc) : "");
  persist_purge_id(f, id);
}

static void stats_row(void *ud, const char *node, const char *json, size_t n, int64_t updated_ms) {
  struct pc_fleet *f = ud;
  struct pc_fleet_node row;
  if (!pc_fleet_node_parse(node, json, n, updated_ms, &row)) pc_buf_append(&f->rows, &row, sizeof row);
}

static void stats_done(void *ud, int rc) {
  struct pc_fleet *f = ud;
  f->reading = 0;
  if (!rc) {
    pc_buf b;
    pc_buf_init(&b, 1 << 20);
    size_t n = f->rows.len / sizeof(struct pc_fleet_node);
    if (!pc_fleet_summary_json((const struct pc_fleet_node *)f->rows.data, n, 0, &b)) pc_stats_fleet(b.data, b.len);
    pc_buf_free(&b);
  }
  pc_buf_reset(&f->rows);
}

static void publish(struct pc_fleet *f) {
  pc_buf b;
  pc_buf_init(&b, 1 << 16);
  if (!pc_stats_node_json(&b)) pc_shared_publish_stats(f->shared, b.data, b.len);
  pc_buf_free(&b);
  if (!f->reading && !pc_shared_read_stats(f->shared, stats_row, stats_done, f)) f->reading = 1;
}

static void chore(uv_timer_t *t) {
  struct pc_fleet *f = t->data;
  struct pc_shared_counters c;
  int up = pc_shared_up(f->shared);
  pc_shared_get_counters(f->shared, &c);
  pc_stats_shared(f->o.slot, &c, up);
  f->ticks++;
  /* the first time Redis is up, then every FLEET_EVERY seconds */
  if (f->o.primary && up && (!f->was_up || f->ticks % FLEET_EVERY == 0)) publish(f);
  f->was_up |= up;
}

int pc_fleet_open(uv_loop_t *loop, const struct pc_fleet_opts *o, struct pc_fleet **out) {
  *out = NULL;
  if (!o->cfg->redis.n) return 0;
  struct pc_fleet *f = calloc(1, sizeof *f);
  if (!f) return PC_ENOMEM;
  f->o = *o;
  pc_buf_init(&f->rows, 1 << 20);
  struct pc_shared_config sc;
  pc_fleet_node_id(o->cfg, o->port, f->node_id);
  pc_fleet_shared_config(o->cfg, f->node_id, &sc);
  int rc = pc_shared_create(loop, &sc, &f->shared);
  if (rc) {
    pc_buf_free(&f->rows);
    free(f);
    return rc;
  }
  if (o->primary) {
    pc_buf last;
    pc_buf_init(&last, 64);
    int mrc = pc_cache_meta_get(o->cache, PURGE_META, &last);
    if (!mrc) mrc = pc_buf_putc(&last, '\0');
    rc = pc_shared_watch_purges(f->shared, !mrc ? last.data : NULL, purge_apply, purge_reset, f);
    pc_buf_free(&last);
  }
  uv_timer_init(loop, &f->timer);
  f->timer.data = f;
  if (!rc) uv_timer_start(&f->timer, chore, 0, CHORE_MS);
  *out = f;
  return rc;
}

struct pc_shared *pc_fleet_shared(const struct pc_fleet *f) {
  return f ? f->shared : NULL;
}

static void timer_closed(uv_handle_t *h) {
  struct pc_fleet *f = h->data;
  pc_buf_free(&f->rows);
  free(f);
}

void pc_fleet_close(struct pc_fleet *f) {
  if (!f) return;
  uv_timer_stop(&f->timer);
  pc_shared_destroy(f->shared); /* pending reads end with PC_ECANCELED here */
  f->shared = NULL;
  uv_close((uv_handle_t *)&f->timer, timer_closed);
}
