/* stats.c — counters for everything the proxy does, kept lock-free on the
 * hot path (relaxed atomics; a row for a new route×model pair is the only
 * thing taken under a mutex), rendered as JSON and Prometheus text.
 * Lifetime totals = what earlier runs saved in the meta database + this
 * run's counters; they are written back in batches, never per request.
 *
 * hit_ratio = (hits + coalesced) / (hits + coalesced + misses + refresh +
 * stale + replay_misses): the share of cacheable lookups answered without an
 * upstream request of their own. */
#include "stats.h"
#include "clock.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "config.h"
#include "error.h"
#include "json.h"
#include "prices.h"
#include "shared.h"

#define N_BUCKETS 20
#define MAX_ROWS 512

static const double bucket_le[N_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,   0.5,     1,      2.5,   5,      10,    30,   60,    120,  300};

static const char *const outcome_names[PC_OUT_N] = {"hit",     "miss",  "coalesced",   "bypass",
                                                    "refresh", "stale", "replay_miss", "admin"};
static const char *const err_names[PC_ERRC_N] = {"upstream_connect",
                                                 "upstream_timeout",
                                                 "upstream_protocol",
                                                 "upstream_5xx",
                                                 "upstream_429",
                                                 "upstream_4xx",
                                                 "client"};

typedef _Atomic uint64_t counter;

struct hist {
  counter b[N_BUCKETS + 1]; /* last: +Inf */
  counter sum_us;
  counter count;
};

struct row {
  _Atomic int ready;
  char route[64];
  char model[96];
  counter out[PC_OUT_N];
  counter tok_in, tok_out, tok_cached;
};

struct totals { /* the persisted part */
  uint64_t out[PC_OUT_N];
  uint64_t err[PC_ERRC_N];
  uint64_t bytes_from_cache, tok_in, tok_out, tok_cached, evictions;
  uint64_t hit_shared, fleet_coalesced; /* of the hits and coalesced: from the shared tier / another node */
  double money;
};

#define MAX_SLOTS 64 /* --workers: at most 64 loops */

static struct {
  counter out[PC_OUT_N];
  counter err[PC_ERRC_N];
  counter bytes_from_cache, tok_in, tok_out, tok_cached, evictions;
  counter store_failures; /* answers that should have been stored and were not (this run) */
  counter hit_shared, fleet_coalesced, shared_corrupt;
  pthread_mutex_t shared_mu; /* the loops' shared-tier counters and the fleet's totals */
  struct pc_shared_counters shared[MAX_SLOTS];
  int shared_used[MAX_SLOTS], shared_up[MAX_SLOTS];
  char *fleet;
  size_t fleet_len;
  _Atomic int64_t inflight[2];              /* gauges: upstream exchanges in flight, requests waiting on them */
  _Atomic int64_t memo_entries, memo_bytes; /* gauges: the raw-request memo of every loop */
  struct hist up, hit;
  struct row rows[MAX_ROWS];
  _Atomic size_t n_rows;
  pthread_mutex_t rows_mu;
  struct totals base; /* loaded lifetime totals */
  struct pc_prices prices;
  int have_prices;
  int64_t start_mono_ms; /* uptime is not moved by a clock step */
  const struct pc_config *cfg;
} S = {.rows_mu = PTHREAD_MUTEX_INITIALIZER, .shared_mu = PTHREAD_MUTEX_INITIALIZER};

#define INC(c, n) atomic_fetch_add_explicit(&(c), (n), memory_order_relaxed)
#define GET(c) atomic_load_explicit(&(c), memory_order_relaxed)

int pc_stats_init(const struct pc_config *cfg) {
  S.cfg = cfg;
  S.start_mono_ms = pc_mono_ms();
  if (cfg->prices) {
    char err[512];
    int rc = pc_prices_load(cfg->prices, &S.prices, err, sizeof err);
    if (rc) {
      fprintf(stderr, "promptcache: %s\n", err);
      return rc;
    }
    S.have_prices = 1;
  }
  return 0;
}

static void hist_add(struct hist *h, int64_t us) {
  double s = (double)us / 1e6;
  int i = 0;
  while (i < N_BUCKETS && s > bucket_le[i]) i++;
  INC(h->b[i], 1);
  INC(h->sum_us, (uint64_t)us);
  INC(h->count, 1);
}

/* Find or create the row for route×model. The last row is kept for
 * "other": once the table is full, requests for route×model pairs it does
 * not hold are counted there (junk model names cannot push real models out
 * of sight, nor grow memory). */
#define OTHER "(other)"

static struct row *row_for(const char *route, const char *model) {
  size_t n = atomic_load_explicit(&S.n_rows, memory_order_acquire);
  for (size_t i = 0; i < n; i++)
    if (!strcmp(S.rows[i].route, route) && !strcmp(S.rows[i].model, model)) return &S.rows[i];
  pthread_mutex_lock(&S.rows_mu);
  struct row *r = NULL;
  n = atomic_load_explicit(&S.n_rows, memory_order_relaxed);
  for (size_t i = 0; i < n && !r; i++)
    if (!strcmp(S.rows[i].route, route) && !strcmp(S.rows[i].model, model)) r = &S.rows[i];
  if (!r && n < MAX_ROWS) {
    int other = n == MAX_ROWS - 1;
    r = &S.rows[n];
    snprintf(r->route, sizeof r->route, "%s", other ? OTHER : route);
    snprintf(r->model, sizeof r->model, "%s", other ? OTHER : model);
    atomic_store_explicit(&S.n_rows, n + 1, memory_order_release);
  } else if (!r) {
    r = &S.rows[MAX_ROWS - 1];
  }
  pthread_mutex_unlock(&S.rows_mu);
  return r;
}

void pc_stats_record(const struct pc_stats_req *r) {
  INC(S.out[r->outcome], 1);
  if (r->err_class >= 0 && r->err_class < PC_ERRC_N) INC(S.err[r->err_class], 1);
  if (r->upstream_us >= 0 && r->outcome != PC_OUT_COALESCED) hist_add(&S.up, r->upstream_us);
  int saved = r->outcome == PC_OUT_HIT || r->outcome == PC_OUT_STALE || r->outcome == PC_OUT_COALESCED;
  if (r->outcome == PC_OUT_HIT) hist_add(&S.hit, r->total_us);
  if (saved && r->outcome != PC_OUT_COALESCED) INC(S.bytes_from_cache, r->bytes);
  if (r->shared && r->outcome == PC_OUT_HIT) INC(S.hit_shared, 1);
  if (r->shared && r->outcome == PC_OUT_COALESCED) INC(S.fleet_coalesced, 1);
  if (r->outcome == PC_OUT_ADMIN) return;
  struct row *row = row_for(r->route ? r->route : "", r->model ? r->model : "");
  if (row) INC(row->out[r->outcome], 1);
  if (saved && r->usage.present) {
    INC(S.tok_in, r->usage.input);
    INC(S.tok_out, r->usage.output);
    INC(S.tok_cached, r->usage.cached_input);
    if (row) {
      INC(row->tok_in, r->usage.input);
      INC(row->tok_out, r->usage.output);
      INC(row->tok_cached, r->usage.cached_input);
    }
  }
}

void pc_stats_eviction(uint64_t n) { INC(S.evictions, n); }

void pc_stats_store_failed(void) { INC(S.store_failures, 1); }

void pc_stats_memo(int64_t entries, int64_t bytes) {
  atomic_fetch_add_explicit(&S.memo_entries, entries, memory_order_relaxed);
  atomic_fetch_add_explicit(&S.memo_bytes, bytes, memory_order_relaxed);
}

void pc_stats_inflight(int followers, int delta) {
  atomic_fetch_add_explicit(&S.inflight[followers ? 1 : 0], delta, memory_order_relaxed);
}

uint64_t pc_stats_replay_misses(void) { return GET(S.out[PC_OUT_REPLAY_MISS]); }

void pc_stats_shared(int slot, const struct pc_shared_counters *c, int up) {
  if (slot < 0 || slot >= MAX_SLOTS) return;
  pthread_mutex_lock(&S.shared_mu);
  S.shared[slot] = *c;
  S.shared_used[slot] = 1;
  S.shared_up[slot] = up;
  pthread_mutex_unlock(&S.shared_mu);
}

void pc_stats_shared_corrupt(void) { INC(S.shared_corrupt, 1); }

void pc_stats_fleet(const char *json, size_t n) {
  char *copy = json ? malloc(n + 1) : NULL;
  if (copy) {
    memcpy(copy, json, n);
    copy[n] = '\0';
  }
  pthread_mutex_lock(&S.shared_mu);
  free(S.fleet);
  S.fleet = copy;
  S.fleet_len = copy ? n : 0;
  pthread_mutex_unlock(&S.shared_mu);
}

/* Every loop's counters summed; returns whether any loop has a shared tier. */
static int shared_sum(struct pc_shared_counters *t, int *up) {
  int any = 0;
  *up = 1;
  memset(t, 0, sizeof *t);
  pthread_mutex_lock(&S.shared_mu);
  for (int i = 0; i < MAX_SLOTS; i++) {
    if (!S.shared_used[i]) continue;
    const struct pc_shared_counters *c = &S.shared[i];
    any = 1;
    *up &= S.shared_up[i];
    for (int k = 0; k < PC_SHARED_OPS; k++) t->ops[k] += c->ops[k];
    t->hits += c->hits;
    t->misses += c->misses;
    t->errors += c->errors;
    t->timeouts += c->timeouts;
    t->too_big += c->too_big;
    t->busy += c->busy;
    t->leases_won += c->leases_won;
    t->leases_held += c->leases_held;
    t->takeovers += c->takeovers;
    t->follows_cut += c->follows_cut;
    t->purges_applied += c->purges_applied;
    t->purge_resets += c->purge_resets;
    t->redis.commands += c->redis.commands;
    t->redis.errors += c->redis.errors;
    t->redis.timeouts += c->redis.timeouts;
    t->redis.reconnects += c->redis.reconnects;
    t->redis.moved += c->redis.moved;
    t->redis.ask += c->redis.ask;
    for (int k = 0; k < PC_REDIS_LATENCY_BUCKETS; k++) t->redis.latency_us_buckets[k] += c->redis.latency_us_buckets[k];
    t->redis.latency_us_sum += c->redis.latency_us_sum;
    t->redis.latency_count += c->redis.latency_count;
  }
  pthread_mutex_unlock(&S.shared_mu);
  return any;
}

/* ---- money ---- */

static double row_money(const struct row *r) {
  const struct pc_price *p = pc_prices_find(&S.prices, r->model);
  return p ? pc_prices_cost(p, GET(r->tok_in), GET(r->tok_cached), GET(r->tok_out)) : 0;
}

static double run_money(void) {
  double m = 0;
  size_t n = atomic_load_explicit(&S.n_rows, memory_order_acquire);
  for (size_t i = 0; i < n; i++) m += row_money(&S.rows[i]);
  return m;
}

/* ---- lifetime totals ---- */

static void current_totals(struct totals *t) {
  *t = S.base;
  for (int i = 0; i < PC_OUT_N; i++) t->out[i] += GET(S.out[i]);
  for (int i = 0; i < PC_ERRC_N; i++) t->err[i] += GET(S.err[i]);
  t->bytes_from_cache += GET(S.bytes_from_cache);
  t->tok_in += GET(S.tok_in);
  t->tok_out += GET(S.tok_out);
  t->tok_cached += GET(S.tok_cached);
  t->evictions += GET(S.evictions);
  t->hit_shared += GET(S.hit_shared);
  t->fleet_coalesced += GET(S.fleet_coalesced);
  t->money += S.have_prices ? run_money() : 0;
}

static int totals_json(const struct totals *t, pc_buf *b) {
  int rc = pc_buf_puts(b, "{");
  for (int i = 0; i < PC_OUT_N && !rc; i++)
    rc = pc_buf_printf(b, "\"%s\":%llu,", outcome_names[i], (unsigned long long)t->out[i]);
  for (int i = 0; i < PC_ERRC_N && !rc; i++)
    rc = pc_buf_printf(b, "\"err_%s\":%llu,", err_names[i], (unsigned long long)t->err[i]);
  if (!rc)
    rc = pc_buf_printf(b,
                       "\"bytes_from_cache\":%llu,\"tokens_saved_input\":%llu,\"tokens_saved_output\":%llu,"
                       "\"tokens_saved_cached_input\":%llu,\"evictions\":%llu,\"hit_shared\":%llu,"
                       "\"fleet_coalesced\":%llu,\"money_saved\":%.6f}",
                       (unsigned long long)t->bytes_from_cache, (unsigned long long)t->tok_in,
                       (unsigned long long)t->tok_out, (unsigned long long)t->tok_cached,
                       (unsigned long long)t->evictions, (unsigned long long)t->hit_shared,
                       (unsigned long long)t->fleet_coalesced, t->money);
  return rc;
}

int pc_stats_load_lifetime(struct pc_cache *c) {
  pc_buf b;
  struct pc_json_doc *doc = NULL;
  pc_buf_init(&b, 1 << 20);
  int rc = pc_cache_meta_get(c, "totals", &b);
  if (rc == PC_ENOTFOUND)
    rc = 0;
  else if (!rc && !pc_json_parse(b.data, b.len, &doc, NULL)) {
    const struct pc_json *r = pc_json_root(doc);
    char name[64];
    for (int i = 0; i < PC_OUT_N; i++) S.base.out[i] = (uint64_t)pc_json_get_num(r, outcome_names[i], 0);
    for (int i = 0; i < PC_ERRC_N; i++) {
      snprintf(name, sizeof name, "err_%s", err_names[i]);
      S.base.err[i] = (uint64_t)pc_json_get_num(r, name, 0);
    }
    S.base.bytes_from_cache = (uint64_t)pc_json_get_num(r, "bytes_from_cache", 0);
    S.base.tok_in = (uint64_t)pc_json_get_num(r, "tokens_saved_input", 0);
    S.base.tok_out = (uint64_t)pc_json_get_num(r, "tokens_saved_output", 0);
    S.base.tok_cached = (uint64_t)pc_json_get_num(r, "tokens_saved_cached_input", 0);
    S.base.evictions = (uint64_t)pc_json_get_num(r, "evictions", 0);
    S.base.hit_shared = (uint64_t)pc_json_get_num(r, "hit_shared", 0);
    S.base.fleet_coalesced = (uint64_t)pc_json_get_num(r, "fleet_coalesced", 0);
    S.base.money = pc_json_get_num(r, "money_saved", 0);
  }
  pc_json_free(doc);
  pc_buf_free(&b);
  return rc;
}

int pc_stats_lifetime_json(pc_buf *out) {
  struct totals t;
  current_totals(&t);
  return totals_json(&t, out);
}

int pc_stats_node_json(pc_buf *out) {
  struct totals t;
  current_totals(&t);
  return totals_json(&t, out);
}

int pc_stats_save_lifetime(struct pc_cache *c) {
  struct totals t;
  pc_buf b;
  current_totals(&t);
  pc_buf_init(&b, 1 << 16);
  int rc = totals_json(&t, &b);
  if (!rc) rc = pc_cache_meta_put(c, "totals", b.data, b.len);
  pc_buf_free(&b);
  return rc;
}

/* ---- rendering ---- */

static double ratio(uint64_t num, uint64_t den) { return den ? (double)num / (double)den : 0; }

static double hit_ratio_of(const uint64_t *o) {
  uint64_t good = o[PC_OUT_HIT] + o[PC_OUT_COALESCED];
  return ratio(good, good + o[PC_OUT_MISS] + o[PC_OUT_REFRESH] + o[PC_OUT_STALE] + o[PC_OUT_REPLAY_MISS]);
}

/* Percentile from a histogram, interpolated inside its bucket (ms). */
static double hist_pct(const struct hist *h, double q) {
  uint64_t total = GET(h->count);
  if (!total) return 0;
  double target = q * (double)total, seen = 0, lo = 0;
  for (int i = 0; i <= N_BUCKETS; i++) {
    double c = (double)GET(h->b[i]);
    double hi = i < N_BUCKETS ? bucket_le[i] : bucket_le[N_BUCKETS - 1] * 2;
    if (seen + c >= target && c > 0) return 1000 * (lo + (hi - lo) * ((target - seen) / c));
    seen += c;
    lo = hi;
  }
  return 1000 * lo;
}

static int hist_json(pc_buf *b, const char *name, const struct hist *h) {
  int rc =
      pc_buf_printf(b, "\"%s\":{\"count\":%llu,\"sum_ms\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"buckets\":[",
                    name, (unsigned long long)GET(h->count), (double)GET(h->sum_us) / 1000.0, hist_pct(h, 0.5),
                    hist_pct(h, 0.9), hist_pct(h, 0.99));
  uint64_t cum = 0;
  for (int i = 0; i <= N_BUCKETS && !rc; i++) {
    cum += GET(h->b[i]);
    if (i < N_BUCKETS)
      rc = pc_buf_printf(b, "%s[%g,%llu]", i ? "," : "", bucket_le[i], (unsigned long long)cum);
    else
      rc = pc_buf_printf(b, ",[\"+Inf\",%llu]", (unsigned long long)cum);
  }
  return rc ? rc : pc_buf_puts(b, "]}");
}

static int row_json(pc_buf *b, const struct row *r) {
  uint64_t o[PC_OUT_N], req = 0;
  for (int i = 0; i < PC_OUT_N; i++) req += (o[i] = GET(r->out[i]));
  int rc = pc_buf_puts(b, "{\"route\":");
  if (!rc) rc = pc_json_write_string(b, r->route[0] ? r->route : "/", strlen(r->route[0] ? r->route : "/"));
  if (!rc) rc = pc_buf_puts(b, ",\"model\":");
  if (!rc) rc = pc_json_write_string(b, r->model, strlen(r->model));
  if (!rc) rc = pc_buf_printf(b, ",\"requests\":%llu", (unsigned long long)req);
  for (int i = 0; i < PC_OUT_N - 1 && !rc; i++)
    rc = pc_buf_printf(b, ",\"%s\":%llu", outcome_names[i], (unsigned long long)o[i]);
  if (!rc)
    rc = pc_buf_printf(b, ",\"hit_ratio\":%.4f,\"tokens_saved\":{\"input\":%llu,\"output\":%llu,\"cached_input\":%llu}",
                       hit_ratio_of(o), (unsigned long long)GET(r->tok_in), (unsigned long long)GET(r->tok_out),
                       (unsigned long long)GET(r->tok_cached));
  if (!rc && S.have_prices)
    rc = pc_buf_printf(b, ",\"money_saved\":%.6f}", row_money(r));
  else if (!rc)
    rc = pc_buf_puts(b, ",\"money_saved\":null}");
  return rc;
}

static int rows_json(pc_buf *b) {
  size_t n = atomic_load_explicit(&S.n_rows, memory_order_acquire);
  int rc = pc_buf_puts(b, "\"by_route_model\":[");
  for (size_t i = 0; i < n && !rc; i++) {
    if (i) rc = pc_buf_putc(b, ',');
    if (!rc) rc = row_json(b, &S.rows[i]);
  }
  return rc ? rc : pc_buf_puts(b, "]");
}

static int totals_block(pc_buf *b, size_t entries, size_t bytes) {
  uint64_t o[PC_OUT_N], req = 0, errs = 0;
  for (int i = 0; i < PC_OUT_N; i++) req += (o[i] = GET(S.out[i]));
  for (int i = 0; i < PC_ERRC_N; i++) errs += GET(S.err[i]);
  uint64_t hs = GET(S.hit_shared);
  int rc = pc_buf_printf(b, "\"totals\":{\"requests\":%llu", (unsigned long long)req);
  for (int i = 0; i < PC_OUT_N && !rc; i++)
    rc = pc_buf_printf(b, ",\"%s\":%llu", outcome_names[i], (unsigned long long)o[i]);
  if (!rc)
    rc = pc_buf_printf(b, ",\"hits_local\":%llu,\"hits_shared\":%llu,\"fleet_coalesced\":%llu",
                       (unsigned long long)(o[PC_OUT_HIT] > hs ? o[PC_OUT_HIT] - hs : 0), (unsigned long long)hs,
                       (unsigned long long)GET(S.fleet_coalesced));
  if (!rc)
    rc = pc_buf_printf(b,
                       ",\"errors\":%llu,\"hit_ratio\":%.4f,\"bytes_from_cache\":%llu,"
                       "\"tokens_saved\":{\"input\":%llu,\"output\":%llu,\"cached_input\":%llu,\"total\":%llu}",
                       (unsigned long long)errs, hit_ratio_of(o), (unsigned long long)GET(S.bytes_from_cache),
                       (unsigned long long)GET(S.tok_in), (unsigned long long)GET(S.tok_out),
                       (unsigned long long)GET(S.tok_cached), (unsigned long long)(GET(S.tok_in) + GET(S.tok_out)));
  if (!rc && S.have_prices)
    rc = pc_buf_printf(b, ",\"money_saved\":%.6f", run_money());
  else if (!rc)
    rc = pc_buf_puts(b, ",\"money_saved\":null");
  if (!rc) rc = pc_buf_puts(b, "},\"errors\":{");
  for (int i = 0; i < PC_ERRC_N && !rc; i++)
    rc = pc_buf_printf(b, "%s\"%s\":%llu", i ? "," : "", err_names[i], (unsigned long long)GET(S.err[i]));
  if (!rc)
    rc = pc_buf_printf(b,
                       "},\"cache\":{\"entries\":%zu,\"bytes\":%zu,\"max_bytes\":%zu,\"evictions\":%llu,"
                       "\"store_failures\":%llu},\"in_flight\":{\"exchanges\":%lld,\"followers\":%lld},"
                       "\"memo\":{\"entries\":%lld,\"bytes\":%lld,\"budget\":%zu}",
                       entries, bytes, S.cfg ? S.cfg->max_size : 0, (unsigned long long)GET(S.evictions),
                       (unsigned long long)GET(S.store_failures), (long long)GET(S.inflight[0]),
                       (long long)GET(S.inflight[1]), (long long)GET(S.memo_entries), (long long)GET(S.memo_bytes),
                       S.cfg ? S.cfg->memo_size : 0);
  return rc;
}

/* Latency percentile (ms) from the Redis client's histogram (not cumulative). */
static double redis_pct(const struct pc_redis_counters *r, double q) {
  if (!r->latency_count) return 0;
  double target = q * (double)r->latency_count, seen = 0;
  for (int i = 0; i < PC_REDIS_LATENCY_BUCKETS; i++) {
    seen += (double)r->latency_us_buckets[i];
    if (seen >= target)
      return (double)(i < PC_REDIS_LATENCY_BUCKETS - 1 ? pc_redis_latency_bounds_us[i]
                                                       : pc_redis_latency_bounds_us[PC_REDIS_LATENCY_BUCKETS - 2] * 2) /
             1000.0;
  }
  return 0;
}

/* "shared": the Redis tier's numbers (null without --redis), and "fleet". */
static int shared_json(pc_buf *b) {
  struct pc_shared_counters t;
  int up;
  if (!shared_sum(&t, &up)) return pc_buf_puts(b, ",\"shared\":null,\"fleet\":null");
  int rc = pc_buf_printf(b, ",\"shared\":{\"up\":%s,\"ops\":{", up ? "true" : "false");
  for (int k = 0; k < PC_SHARED_OPS && !rc; k++)
    rc = pc_buf_printf(b, "%s\"%s\":%llu", k ? "," : "", pc_shared_op_names[k], (unsigned long long)t.ops[k]);
  if (!rc)
    rc = pc_buf_printf(
        b,
        "},\"hits\":%llu,\"misses\":%llu,\"errors\":%llu,\"timeouts\":%llu,\"corrupt\":%llu,\"too_big\":%llu,"
        "\"busy\":%llu,\"reconnects\":%llu,\"commands\":%llu,\"command_errors\":%llu,\"moved\":%llu,\"ask\":%llu,"
        "\"leases_won\":%llu,"
        "\"leases_held\":%llu,\"takeovers\":%llu,\"follows_cut\":%llu,\"purges_applied\":%llu,"
        "\"purge_resets\":%llu,\"latency_ms\":{\"count\":%llu,\"sum_ms\":%.3f,\"p50\":%.3f,\"p99\":%.3f}}",
        (unsigned long long)t.hits, (unsigned long long)t.misses, (unsigned long long)t.errors,
        (unsigned long long)t.timeouts, (unsigned long long)GET(S.shared_corrupt), (unsigned long long)t.too_big,
        (unsigned long long)t.busy, (unsigned long long)t.redis.reconnects, (unsigned long long)t.redis.commands,
        (unsigned long long)t.redis.errors, (unsigned long long)t.redis.moved, (unsigned long long)t.redis.ask,
        (unsigned long long)t.leases_won, (unsigned long long)t.leases_held, (unsigned long long)t.takeovers,
        (unsigned long long)t.follows_cut, (unsigned long long)t.purges_applied, (unsigned long long)t.purge_resets,
        (unsigned long long)t.redis.latency_count, (double)t.redis.latency_us_sum / 1000.0, redis_pct(&t.redis, 0.5),
        redis_pct(&t.redis, 0.99));
  if (!rc) rc = pc_buf_puts(b, ",\"fleet\":");
  pthread_mutex_lock(&S.shared_mu);
  if (!rc) rc = S.fleet ? pc_buf_append(b, S.fleet, S.fleet_len) : pc_buf_puts(b, "null");
  pthread_mutex_unlock(&S.shared_mu);
  return rc;
}

int pc_stats_json(struct pc_cache *c, pc_buf *out) {
  size_t entries = 0, bytes = 0;
  struct totals life;
  if (c) pc_cache_count(c, &entries, &bytes);
  current_totals(&life);
  int rc = pc_buf_printf(out, "{\"version\":\"%s\",\"time\":%lld,\"uptime_s\":%lld,", PC_VERSION,
                         (long long)(pc_now_ms() / 1000), (long long)((pc_mono_ms() - S.start_mono_ms) / 1000));
  if (!rc) rc = totals_block(out, entries, bytes);
  if (!rc) rc = pc_buf_puts(out, ",\"latency\":{");
  if (!rc) rc = hist_json(out, "upstream_ms", &S.up);
  if (!rc) rc = pc_buf_putc(out, ',');
  if (!rc) rc = hist_json(out, "hit_ms", &S.hit);
  if (!rc) rc = pc_buf_puts(out, "},");
  if (!rc) rc = rows_json(out);
  if (!rc && S.have_prices) {
    rc = pc_buf_puts(out, ",\"prices\":{\"currency\":");
    if (!rc) rc = pc_json_write_string(out, S.prices.currency, strlen(S.prices.currency));
    if (!rc) rc = pc_buf_puts(out, ",\"as_of\":");
    if (!rc) rc = pc_json_write_string(out, S.prices.as_of, strlen(S.prices.as_of));
    if (!rc) rc = pc_buf_putc(out, '}');
  }
  if (!rc) rc = shared_json(out);
  if (!rc) rc = pc_buf_puts(out, ",\"lifetime\":");
  if (!rc) rc = totals_json(&life, out);
  return rc ? rc : pc_buf_puts(out, "}\n");
}

/* ---- Prometheus ---- */

static int prom_label(pc_buf *b, const char *v) {
  int rc = pc_buf_putc(b, '"');
  for (; *v && !rc; v++) {
    if (*v == '\\' || *v == '"')
      rc = pc_buf_printf(b, "\\%c", *v);
    else if (*v == '\n')
      rc = pc_buf_puts(b, "\\n");
    else
      rc = pc_buf_putc(b, *v);
  }
  return rc ? rc : pc_buf_putc(b, '"');
}

static int prom_hist(pc_buf *b, const char *name, const char *help, const struct hist *h) {
  int rc = pc_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  uint64_t cum = 0;
  for (int i = 0; i < N_BUCKETS && !rc; i++) {
    cum += GET(h->b[i]);
    rc = pc_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_le[i], (unsigned long long)cum);
  }
  cum += GET(h->b[N_BUCKETS]);
  if (!rc)
    rc = pc_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)cum,
                       name, (double)GET(h->sum_us) / 1e6, name, (unsigned long long)GET(h->count));
  return rc;
}

static int prom_rows(pc_buf *b) {
  size_t n = atomic_load_explicit(&S.n_rows, memory_order_acquire);
  int rc = pc_buf_puts(b, "# HELP promptcache_model_requests_total Requests by route, model and cache outcome.\n"
                          "# TYPE promptcache_model_requests_total counter\n");
  for (size_t i = 0; i < n && !rc; i++)
    for (int o = 0; o < PC_OUT_N - 1 && !rc; o++) {
      rc = pc_buf_puts(b, "promptcache_model_requests_total{route=");
      if (!rc) rc = prom_label(b, S.rows[i].route[0] ? S.rows[i].route : "/");
      if (!rc) rc = pc_buf_puts(b, ",model=");
      if (!rc) rc = prom_label(b, S.rows[i].model);
      if (!rc)
        rc = pc_buf_printf(b, ",outcome=\"%s\"} %llu\n", outcome_names[o], (unsigned long long)GET(S.rows[i].out[o]));
    }
  if (!rc)
    rc = pc_buf_puts(b, "# HELP promptcache_tokens_saved_total Tokens not paid for again thanks to the cache.\n"
                        "# TYPE promptcache_tokens_saved_total counter\n");
  static const char *const kinds[] = {"input", "output", "cached_input"};
  for (size_t i = 0; i < n && !rc; i++)
    for (int k = 0; k < 3 && !rc; k++) {
      const struct row *r = &S.rows[i];
      uint64_t v = k == 0 ? GET(r->tok_in) : k == 1 ? GET(r->tok_out) : GET(r->tok_cached);
      rc = pc_buf_puts(b, "promptcache_tokens_saved_total{route=");
      if (!rc) rc = prom_label(b, r->route[0] ? r->route : "/");
      if (!rc) rc = pc_buf_puts(b, ",model=");
      if (!rc) rc = prom_label(b, r->model);
      if (!rc) rc = pc_buf_printf(b, ",kind=\"%s\"} %llu\n", kinds[k], (unsigned long long)v);
    }
  if (!rc && S.have_prices) {
    rc = pc_buf_puts(b, "# HELP promptcache_money_saved_total Money saved, priced with the --prices table.\n"
                        "# TYPE promptcache_money_saved_total counter\n");
    for (size_t i = 0; i < n && !rc; i++) {
      rc = pc_buf_puts(b, "promptcache_money_saved_total{route=");
      if (!rc) rc = prom_label(b, S.rows[i].route[0] ? S.rows[i].route : "/");
      if (!rc) rc = pc_buf_puts(b, ",model=");
      if (!rc) rc = prom_label(b, S.rows[i].model);
      if (!rc) rc = pc_buf_puts(b, ",currency=");
      if (!rc) rc = prom_label(b, S.prices.currency);
      if (!rc) rc = pc_buf_printf(b, "} %.6f\n", row_money(&S.rows[i]));
    }
  }
  return rc;
}

/* Hits by tier, and the Redis tier's counters (only with --redis). */
static int prom_shared(pc_buf *b) {
  uint64_t hits = GET(S.out[PC_OUT_HIT]), hs = GET(S.hit_shared);
  int rc = pc_buf_printf(b,
                         "# HELP promptcache_hits_total Cache hits by tier (local: LMDB, shared: Redis).\n"
                         "# TYPE promptcache_hits_total counter\npromptcache_hits_total{tier=\"local\"} %llu\n"
                         "promptcache_hits_total{tier=\"shared\"} %llu\n"
                         "# HELP promptcache_fleet_coalesced_total Requests answered by following another node's "
                         "upstream exchange.\n# TYPE promptcache_fleet_coalesced_total counter\n"
                         "promptcache_fleet_coalesced_total %llu\n",
                         (unsigned long long)(hits > hs ? hits - hs : 0), (unsigned long long)hs,
                         (unsigned long long)GET(S.fleet_coalesced));
  struct pc_shared_counters t;
  int up;
  if (rc || !shared_sum(&t, &up)) return rc;
  rc = pc_buf_printf(b,
                     "# HELP promptcache_redis_up Whether every Redis master is connected.\n"
                     "# TYPE promptcache_redis_up gauge\npromptcache_redis_up %d\n"
                     "# HELP promptcache_redis_ops_total Shared-tier operations started, by kind.\n"
                     "# TYPE promptcache_redis_ops_total counter\n",
                     up);
  for (int k = 0; k < PC_SHARED_OPS && !rc; k++)
    rc = pc_buf_printf(b, "promptcache_redis_ops_total{op=\"%s\"} %llu\n", pc_shared_op_names[k],
                       (unsigned long long)t.ops[k]);
  if (!rc)
    rc = pc_buf_printf(
        b,
        "# HELP promptcache_redis_errors_total Shared-tier operations that failed (Redis down, slow or erring).\n"
        "# TYPE promptcache_redis_errors_total counter\npromptcache_redis_errors_total %llu\n"
        "# HELP promptcache_redis_timeouts_total Redis commands past --redis-timeout.\n"
        "# TYPE promptcache_redis_timeouts_total counter\npromptcache_redis_timeouts_total %llu\n"
        "# HELP promptcache_redis_reconnects_total Redis connections ready again after being lost.\n"
        "# TYPE promptcache_redis_reconnects_total counter\npromptcache_redis_reconnects_total %llu\n"
        "# HELP promptcache_shared_corrupt_total Shared values that failed verification (never served).\n"
        "# TYPE promptcache_shared_corrupt_total counter\npromptcache_shared_corrupt_total %llu\n"
        "# HELP promptcache_shared_lookups_total Shared-tier lookups by result.\n"
        "# TYPE promptcache_shared_lookups_total counter\npromptcache_shared_lookups_total{result=\"hit\"} %llu\n"
        "promptcache_shared_lookups_total{result=\"miss\"} %llu\n"
        "# HELP promptcache_fleet_takeovers_total Leases of a dead leader taken over by this node.\n"
        "# TYPE promptcache_fleet_takeovers_total counter\npromptcache_fleet_takeovers_total %llu\n"
        "# HELP promptcache_redis_latency_seconds Redis command round trips.\n"
        "# TYPE promptcache_redis_latency_seconds histogram\n",
        (unsigned long long)t.errors, (unsigned long long)t.redis.timeouts, (unsigned long long)t.redis.reconnects,
        (unsigned long long)GET(S.shared_corrupt), (unsigned long long)t.hits, (unsigned long long)t.misses,
        (unsigned long long)t.takeovers);
  uint64_t cum = 0;
  for (int i = 0; i < PC_REDIS_LATENCY_BUCKETS - 1 && !rc; i++) {
    cum += t.redis.latency_us_buckets[i];
    rc = pc_buf_printf(b, "promptcache_redis_latency_seconds_bucket{le=\"%g\"} %llu\n",
                       (double)pc_redis_latency_bounds_us[i] / 1e6, (unsigned long long)cum);
  }
  cum += t.redis.latency_us_buckets[PC_REDIS_LATENCY_BUCKETS - 1];
  if (!rc)
    rc = pc_buf_printf(b,
                       "promptcache_redis_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
                       "promptcache_redis_latency_seconds_sum %.6f\npromptcache_redis_latency_seconds_count %llu\n",
                       (unsigned long long)cum, (double)t.redis.latency_us_sum / 1e6,
                       (unsigned long long)t.redis.latency_count);
  return rc;
}

int pc_stats_prometheus(struct pc_cache *c, pc_buf *b) {
  size_t entries = 0, bytes = 0;
  if (c) pc_cache_count(c, &entries, &bytes);
  int rc = pc_buf_puts(b, "# HELP promptcache_requests_total Requests by cache outcome.\n"
                          "# TYPE promptcache_requests_total counter\n");
  for (int i = 0; i < PC_OUT_N && !rc; i++)
    rc = pc_buf_printf(b, "promptcache_requests_total{outcome=\"%s\"} %llu\n", outcome_names[i],
                       (unsigned long long)GET(S.out[i]));
  if (!rc)
    rc = pc_buf_puts(b, "# HELP promptcache_errors_total Errors by class.\n# TYPE promptcache_errors_total counter\n");
  for (int i = 0; i < PC_ERRC_N && !rc; i++)
    rc = pc_buf_printf(b, "promptcache_errors_total{class=\"%s\"} %llu\n", err_names[i],
                       (unsigned long long)GET(S.err[i]));
  if (!rc)
    rc = pc_buf_printf(
        b,
        "# HELP promptcache_cache_bytes_served_total Response body bytes served from the cache.\n"
        "# TYPE promptcache_cache_bytes_served_total counter\npromptcache_cache_bytes_served_total %llu\n"
        "# HELP promptcache_cache_entries Entries stored.\n# TYPE promptcache_cache_entries gauge\n"
        "promptcache_cache_entries %zu\n"
        "# HELP promptcache_cache_size_bytes LMDB bytes in use.\n# TYPE promptcache_cache_size_bytes gauge\n"
        "promptcache_cache_size_bytes %zu\n"
        "# HELP promptcache_cache_max_bytes The --max-size bound.\n# TYPE promptcache_cache_max_bytes gauge\n"
        "promptcache_cache_max_bytes %zu\n"
        "# HELP promptcache_evictions_total Entries evicted to stay within --max-size.\n"
        "# TYPE promptcache_evictions_total counter\npromptcache_evictions_total %llu\n"
        "# HELP promptcache_store_failures_total Complete answers that could not be stored.\n"
        "# TYPE promptcache_store_failures_total counter\npromptcache_store_failures_total %llu\n"
        "# HELP promptcache_memo_bytes Bytes of raw requests remembered to skip canonicalization.\n"
        "# TYPE promptcache_memo_bytes gauge\npromptcache_memo_bytes %lld\n"
        "# HELP promptcache_inflight_exchanges Upstream exchanges in flight.\n"
        "# TYPE promptcache_inflight_exchanges gauge\npromptcache_inflight_exchanges %lld\n"
        "# HELP promptcache_inflight_followers Requests waiting on an identical exchange in flight.\n"
        "# TYPE promptcache_inflight_followers gauge\npromptcache_inflight_followers %lld\n"
        "# HELP promptcache_hit_ratio Share of cacheable requests answered without their own upstream call.\n"
        "# TYPE promptcache_hit_ratio gauge\n",
        (unsigned long long)GET(S.bytes_from_cache), entries, bytes, S.cfg ? S.cfg->max_size : 0,
        (unsigned long long)GET(S.evictions), (unsigned long long)GET(S.store_failures), (long long)GET(S.memo_bytes),
        (long long)GET(S.inflight[0]), (long long)GET(S.inflight[1]));
  if (!rc) {
    uint64_t o[PC_OUT_N];
    for (int i = 0; i < PC_OUT_N; i++) o[i] = GET(S.out[i]);
    rc = pc_buf_printf(b, "promptcache_hit_ratio %.6f\n", hit_ratio_of(o));
  }
  if (!rc) rc = prom_hist(b, "promptcache_upstream_latency_seconds", "Upstream exchange duration.", &S.up);
  if (!rc) rc = prom_hist(b, "promptcache_hit_latency_seconds", "Time to serve a cache hit.", &S.hit);
  if (!rc) rc = prom_rows(b);
  if (!rc) rc = prom_shared(b);
  return rc;
}
