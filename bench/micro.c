/* micro.c — microbenchmarks of the hit path's two inner costs:
 *   1. canonicalization + key material + XXH3-128 hashing of realistic chat
 *      request bodies (MB/s of request body), and
 *   2. pc_cache_get latency (p50/p99 over random existing keys) with 1k, 100k
 *      and 1M entries of ~1 KB values.
 * Linked against the project's own objects; prints human-readable lines and
 * "RESULT ..." lines for bench/run.sh to parse.
 *
 *   micro [--tmp DIR] [--entries 1000,100000,1000000] [--lookups N] [--seconds S]
 *
 * The LMDB environments are created with pc_cache_open (so the layout is the
 * proxy's own), filled directly with mdb_* calls in batches of 10k puts per
 * write txn (sorted keys, MDB_APPEND: filling 1M entries through pc_cache_put,
 * one txn each, would take minutes), then read back through pc_cache_get.
 * Every environment is deleted when measured. Throughputs are the best of
 * TRIALS slices of the time budget (least disturbed by other work on a shared
 * machine); latencies are percentiles over all timed lookups. */
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cache.h"
#include "canon.h"
#include "entry.h"
#include "error.h"
#include "key.h"

#define MAP_SIZE ((size_t)6 << 30)
#define BATCH 10000
#define TRIALS 5

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

/* ---- realistic chat bodies ------------------------------------------- */

static const char *const words[] = {
    "the",       "of",       "and",      "to",        "in",        "is",       "that",     "for",
    "it",        "as",       "with",     "was",       "on",        "be",       "by",       "this",
    "are",       "or",       "at",       "from",      "have",      "an",       "but",      "not",
    "they",      "which",    "you",      "one",       "all",       "were",     "we",       "when",
    "there",     "can",      "been",     "has",       "more",      "if",       "will",     "would",
    "their",     "so",       "about",    "what",      "up",        "out",      "them",     "into",
    "customer",  "order",    "invoice",  "account",   "payment",   "shipping", "address",  "product",
    "support",   "refund",   "policy",   "section",   "delivery",  "warranty", "return",   "days",
    "because",   "however",  "although", "therefore", "meanwhile", "instead",  "perhaps",  "usually",
    "quickly",   "carefully", "exactly", "roughly",   "nearly",    "clearly",  "simply",   "fairly",
    "model",     "request",  "response", "cache",     "latency",   "token",    "prompt",   "answer",
    "café",      "naïve",    "résumé",   "Zürich",    "München",   "São",      "Paulo",    "déjà",
    "\\\"quoted\\\"", "e.g.", "i.e.",    "(see",      "below)",    "50%",      "$19.99",   "#4521",
};
#define N_WORDS (sizeof words / sizeof words[0])

/* Append about n bytes of JSON-escaped prose (sentences, commas, paragraphs). */
static void prose(pc_buf *b, size_t n) {
  size_t start = b->len;
  int first = 1;
  while (b->len - start < n) {
    const char *w = words[rnd() % N_WORDS];
    if (!first) pc_buf_putc(b, ' ');
    if (first) {
      pc_buf_putc(b, (char)(w[0] >= 'a' && w[0] <= 'z' ? w[0] - 32 : w[0]));
      pc_buf_puts(b, w + 1);
    } else {
      pc_buf_puts(b, w);
    }
    first = 0;
    uint64_t r = rnd() % 100;
    if (r < 6) pc_buf_putc(b, ',');
    else if (r < 13) {
      pc_buf_puts(b, r < 11 ? "." : "?");
      first = 1;
      if (r == 12) pc_buf_puts(b, "\\n\\n");
      else pc_buf_putc(b, ' ');
    }
  }
  pc_buf_putc(b, '.');
}

/* A chat request body of about `size` bytes, formatted like an SDK sends it
 * (", " / ": " separators, keys in insertion order, not canonical). */
static void chat_body(pc_buf *b, size_t size) {
  static const char *const roles[] = {"user", "assistant"};
  pc_buf_reset(b);
  pc_buf_puts(b, "{\"model\": \"gpt-4o-mini\", \"messages\": [{\"role\": \"system\", \"content\": \"");
  pc_buf_puts(b, "You are a helpful assistant for an online store. Answer briefly and cite the policy "
                 "section you used.\\nToday is 2024-05-01.\"}");
  for (int i = 0; b->len + 120 < size; i++) {
    size_t left = size - b->len - 100;
    size_t n = 200 + (size_t)(rnd() % 1800);
    if (n > left) n = left;
    pc_buf_printf(b, ", {\"role\": \"%s\", \"content\": \"", roles[i & 1]);
    prose(b, n);
    pc_buf_puts(b, "\"}");
  }
  pc_buf_puts(b, "], \"temperature\": 0.7, \"max_tokens\": 512, \"top_p\": 1.0, \"stream\": false, "
                 "\"user\": \"user-8421\"}");
}

struct canon_result {
  double mbps, canon_mbps, hash_mbps;
  size_t bytes;
  long iters;
};

static int canon_bench(const pc_buf *body, double seconds, struct canon_result *res) {
  pc_buf canon, mat;
  struct pc_key key;
  struct pc_canon_info info;
  pc_buf_init(&canon, (size_t)64 << 20);
  pc_buf_init(&mat, (size_t)64 << 20);
  struct pc_key_input in = {.route = "openai",
                            .method = "POST",
                            .path = "/v1/chat/completions",
                            .path_len = strlen("/v1/chat/completions"),
                            .query = NULL,
                            .ns = "",
                            .cred_fp_hex = "",
                            .headers = {NULL, NULL, NULL, NULL, NULL}};
  int rc = 0;
  /* full path: canonicalize + key material + hash */
  /* Each figure is the best of TRIALS equal slices of the time budget: on a
   * shared machine the best slice is the one least disturbed by other work. */
  long iters = 0, total = 0;
  double t0, t, best = 0;
  for (int trial = 0; trial < TRIALS; trial++) {
    iters = 0;
    t0 = t = now_s();
    while (t - t0 < seconds / TRIALS || iters < 3) {
      pc_buf_reset(&canon);
      rc = pc_canon_json(body->data, body->len, NULL, 0, &canon, &info);
      if (rc) goto out;
      in.body = canon.data;
      in.body_len = canon.len;
      pc_buf_reset(&mat);
      rc = pc_key_material(&in, &mat);
      if (rc) goto out;
      pc_key_hash(mat.data, mat.len, &key);
      iters++;
      t = now_s();
    }
    total += iters;
    double mbps = (double)body->len * (double)iters / (t - t0) / 1e6;
    if (mbps > best) best = mbps;
  }
  res->iters = total;
  res->bytes = body->len;
  res->mbps = best;
  /* canonicalization alone */
  best = 0;
  for (int trial = 0; trial < TRIALS; trial++) {
    iters = 0;
    t0 = t = now_s();
    while (t - t0 < seconds / 2 / TRIALS || iters < 3) {
      pc_buf_reset(&canon);
      rc = pc_canon_json(body->data, body->len, NULL, 0, &canon, &info);
      if (rc) goto out;
      iters++;
      t = now_s();
    }
    double mbps = (double)body->len * (double)iters / (t - t0) / 1e6;
    if (mbps > best) best = mbps;
  }
  res->canon_mbps = best;
  /* hashing alone (of the key material) */
  best = 0;
  for (int trial = 0; trial < TRIALS; trial++) {
    iters = 0;
    t0 = t = now_s();
    while (t - t0 < seconds / 4 / TRIALS || iters < 3) {
      pc_key_hash(mat.data, mat.len, &key);
      iters++;
      t = now_s();
    }
    double mbps = (double)mat.len * (double)iters / (t - t0) / 1e6;
    if (mbps > best) best = mbps;
  }
  res->hash_mbps = best;
  if (key.b[0] == 0 && key.b[1] == 0 && key.b[2] == 0 && key.b[3] == 0) fprintf(stderr, " ");
out:
  pc_buf_free(&canon);
  pc_buf_free(&mat);
  return rc;
}

/* ---- LMDB lookups ----------------------------------------------------- */

static int cmp_key(const void *a, const void *b) { return memcmp(a, b, 16); }
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static void make_key(size_t i, uint8_t out[16]) {
  char m[64];
  int n = snprintf(m, sizeof m, "pc-key-v1\nbench=%zu\n", i);
  struct pc_key k;
  pc_key_hash(m, (size_t)n, &k);
  memcpy(out, k.b, 16);
}

/* A realistic ~1 KB stored entry: canonical request + JSON answer. */
static int make_value(pc_buf *val) {
  pc_buf body, canon, mat, resp;
  pc_buf_init(&body, 1 << 20);
  pc_buf_init(&canon, 1 << 20);
  pc_buf_init(&mat, 1 << 20);
  pc_buf_init(&resp, 1 << 20);
  chat_body(&body, 330);
  int rc = pc_canon_json(body.data, body.len, NULL, 0, &canon, NULL);
  struct pc_key_input in = {.route = "openai", .method = "POST", .path = "/v1/chat/completions",
                            .path_len = 20, .ns = "", .cred_fp_hex = "",
                            .body = canon.data, .body_len = canon.len};
  if (!rc) rc = pc_key_material(&in, &mat);
  pc_buf_puts(&resp, "{\"id\":\"chatcmpl-0123456789abcdef0123456789abcdef\",\"object\":\"chat.completion\","
                     "\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,"
                     "\"message\":{\"role\":\"assistant\",\"content\":\"");
  prose(&resp, 180);
  pc_buf_puts(&resp, "\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":812,"
                     "\"completion_tokens\":143,\"total_tokens\":955}}");
  static const char hdrs[] = "Content-Type: application/json\r\nopenai-processing-ms: 812\r\n";
  static const char usage[] = "{\"prompt_tokens\":812,\"completion_tokens\":143,\"total_tokens\":955}";
  struct pc_entry e = {.flags = 0, .status = 200, .created_ms = 1700000000000, .expires_ms = 0,
                       .request = {mat.data, mat.len}, .ns = {"", 0}, .route = {"openai", 6},
                       .path = {"/v1/chat/completions", 20}, .model = {"gpt-4o-mini", 11},
                       .headers = {hdrs, sizeof hdrs - 1}, .body = {resp.data, resp.len},
                       .usage = {usage, sizeof usage - 1}, .chunks = NULL, .n_chunks = 0};
  if (!rc) rc = pc_entry_encode(&e, val);
  pc_buf_free(&body);
  pc_buf_free(&canon);
  pc_buf_free(&mat);
  pc_buf_free(&resp);
  return rc;
}

static void rm_env(const char *dir) {
  char p[4096];
  snprintf(p, sizeof p, "%s/data.mdb", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/lock.mdb", dir);
  unlink(p);
  rmdir(dir);
}

static int noop_iter(void *ud, const uint8_t key[16], const void *val, size_t len) {
  (void)key;
  *(size_t *)ud += len + ((const unsigned char *)val)[len / 2];
  return 0;
}

struct lookup_result {
  double fill_s, p50_ns, p99_ns, mean_ns, timer_ns;
  double hit_p50_ns, hit_p99_ns; /* canonicalize+hash a 1 KB body, get, decode+verify, compare */
  size_t value_len, misses;
};

static int fill_env(const char *dir, size_t n, const uint8_t *sorted, const pc_buf *val) {
  MDB_env *env = NULL;
  MDB_txn *txn = NULL;
  MDB_dbi dbi;
  int m = mdb_env_create(&env);
  if (!m) m = mdb_env_set_maxdbs(env, 4);
  if (!m) m = mdb_env_set_mapsize(env, MAP_SIZE);
  if (!m) m = mdb_env_open(env, dir, MDB_NOSYNC | MDB_NOTLS, 0600);
  if (!m) m = mdb_txn_begin(env, NULL, 0, &txn);
  if (!m) m = mdb_dbi_open(txn, "entries", 0, &dbi);
  if (!m) {
    m = mdb_txn_commit(txn);
    txn = NULL;
  }
  for (size_t i = 0; !m && i < n; i += BATCH) {
    m = mdb_txn_begin(env, NULL, 0, &txn);
    for (size_t j = i; !m && j < n && j < i + BATCH; j++) {
      MDB_val k = {16, (void *)(sorted + 16 * j)};
      MDB_val v = {val->len, val->data};
      m = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
    }
    if (!m) m = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    txn = NULL;
  }
  if (txn) mdb_txn_abort(txn);
  if (m) fprintf(stderr, "micro: filling %s: %s\n", dir, mdb_strerror(m));
  if (env) {
    mdb_env_sync(env, 1);
    mdb_env_close(env);
  }
  return m ? -1 : 0;
}

static volatile size_t g_sink;

static int lookup_bench(const char *base, size_t n, size_t lookups, const pc_buf *body1k,
                        struct lookup_result *res) {
  char dir[3072];
  snprintf(dir, sizeof dir, "%s/lmdb-%zu", base, n);
  rm_env(dir);
  memset(res, 0, sizeof *res);
  int rc = -1;
  pc_cache *c = NULL;
  pc_buf val, out;
  pc_buf_init(&val, 1 << 20);
  pc_buf_init(&out, 1 << 20);
  uint8_t *keys = malloc(16 * n), *sorted = malloc(16 * n);
  uint64_t *lat = malloc(sizeof *lat * lookups);
  size_t *idx = malloc(sizeof *idx * lookups);
  if (!keys || !sorted || !lat || !idx) goto out;
  if (make_value(&val)) goto out;
  res->value_len = val.len;

  int prc = pc_cache_open(dir, MAP_SIZE, PC_SYNC_PERIODIC, &c);
  if (prc) {
    fprintf(stderr, "micro: pc_cache_open %s: %s\n", dir, pc_strerror(prc));
    goto out;
  }
  pc_cache_close(c);
  c = NULL;

  double t0 = now_s();
  for (size_t i = 0; i < n; i++) make_key(i, keys + 16 * i);
  memcpy(sorted, keys, 16 * n);
  qsort(sorted, n, 16, cmp_key);
  if (fill_env(dir, n, sorted, &val)) goto out;
  res->fill_s = now_s() - t0;

  prc = pc_cache_open(dir, MAP_SIZE, PC_SYNC_PERIODIC, &c);
  if (prc) {
    fprintf(stderr, "micro: pc_cache_open %s: %s\n", dir, pc_strerror(prc));
    goto out;
  }
  size_t sink = 0;
  pc_cache_iterate(c, noop_iter, &sink); /* fault every page in, as a long-running server has */
  for (size_t j = 0; j < lookups; j++) idx[j] = (size_t)(rnd() % n);
  for (size_t j = 0; j < lookups / 4; j++) /* warm-up */
    if (pc_cache_get(c, keys + 16 * idx[j], &out)) res->misses++;
  for (size_t j = 0; j < lookups; j++) {
    uint64_t a = now_ns();
    int g = pc_cache_get(c, keys + 16 * idx[j], &out);
    uint64_t b = now_ns();
    lat[j] = b - a;
    if (g || out.len != val.len) res->misses++;
  }
  double sum = 0;
  for (size_t j = 0; j < lookups; j++) sum += (double)lat[j];
  qsort(lat, lookups, sizeof *lat, cmp_u64);
  res->mean_ns = sum / (double)lookups;
  res->p50_ns = (double)lat[lookups / 2];
  res->p99_ns = (double)lat[lookups * 99 / 100];
  /* The cache layer's whole hit path, minus HTTP: canonicalize and hash a
   * 1 KB request, look the entry up, decode it with its checksum verified,
   * compare the stored request byte for byte (different keys here: the
   * comparison runs over the common length). */
  {
    pc_buf canon, mat;
    pc_buf_init(&canon, 1 << 20);
    pc_buf_init(&mat, 1 << 20);
    struct pc_key key;
    struct pc_key_input in = {.route = "openai", .method = "POST", .path = "/v1/chat/completions",
                              .path_len = 20, .ns = "", .cred_fp_hex = ""};
    volatile int cmp = 0;
    for (size_t j = 0; j < lookups; j++) {
      uint64_t h0 = now_ns();
      pc_buf_reset(&canon);
      pc_buf_reset(&mat);
      int g = pc_canon_json(body1k->data, body1k->len, NULL, 0, &canon, NULL);
      in.body = canon.data;
      in.body_len = canon.len;
      if (!g) g = pc_key_material(&in, &mat);
      if (!g) pc_key_hash(mat.data, mat.len, &key);
      if (!g) g = pc_cache_get(c, keys + 16 * idx[j], &out);
      struct pc_entry e;
      if (!g) g = pc_entry_decode(out.data, out.len, 1, &e);
      if (!g) cmp += memcmp(e.request.p, mat.data, e.request.n < mat.len ? e.request.n : mat.len) != 0;
      lat[j] = now_ns() - h0;
      if (g) res->misses++;
    }
    qsort(lat, lookups, sizeof *lat, cmp_u64);
    res->hit_p50_ns = (double)lat[lookups / 2];
    res->hit_p99_ns = (double)lat[lookups * 99 / 100];
    pc_buf_free(&canon);
    pc_buf_free(&mat);
  }
  uint64_t a = now_ns();
  for (int j = 0; j < 1000; j++) (void)now_ns();
  res->timer_ns = (double)(now_ns() - a) / 1000.0;
  g_sink = sink;
  rc = 0;
out:
  if (c) pc_cache_close(c);
  rm_env(dir);
  pc_buf_free(&val);
  pc_buf_free(&out);
  free(keys);
  free(sorted);
  free(lat);
  free(idx);
  return rc;
}

int main(int argc, char **argv) {
  const char *tmp = NULL;
  const char *entries = "1000,100000,1000000";
  size_t lookups = 200000;
  double seconds = 1.0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--tmp") && i + 1 < argc) tmp = argv[++i];
    else if (!strcmp(argv[i], "--entries") && i + 1 < argc) entries = argv[++i];
    else if (!strcmp(argv[i], "--lookups") && i + 1 < argc) lookups = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = strtod(argv[++i], NULL);
    else {
      fprintf(stderr, "usage: micro [--tmp DIR] [--entries 1000,100000,1000000] [--lookups N] [--seconds S]\n");
      return 2;
    }
  }
  if (lookups < 100) lookups = 100;

  printf("canonicalize + key material + XXH3-128, realistic chat bodies:\n");
  static const size_t sizes[] = {1024, 16 * 1024, 100 * 1024, 1024 * 1024};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    pc_buf body;
    pc_buf_init(&body, (size_t)8 << 20);
    chat_body(&body, sizes[s]);
    struct canon_result r;
    int rc = canon_bench(&body, seconds, &r);
    if (rc) {
      printf("  %7zu B: error %s\n", body.len, pc_errname(rc));
      printf("RESULT canon size=%zu bytes=%zu error=%s\n", sizes[s], body.len, pc_errname(rc));
    } else {
      printf("  %7zu B body: %8.1f MB/s (canonicalize alone %8.1f MB/s, XXH3-128 alone %8.1f MB/s)\n", r.bytes,
             r.mbps, r.canon_mbps, r.hash_mbps);
      printf("RESULT canon size=%zu bytes=%zu mbps=%.1f canon_mbps=%.1f hash_mbps=%.1f\n", sizes[s], r.bytes,
             r.mbps, r.canon_mbps, r.hash_mbps);
    }
    fflush(stdout);
    pc_buf_free(&body);
  }

  char base[2048];
  if (tmp) snprintf(base, sizeof base, "%s", tmp);
  else snprintf(base, sizeof base, "%s/pc-micro-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
  mkdir(base, 0700);
  printf("pc_cache_get latency, random existing keys, %zu timed lookups each:\n", lookups);
  pc_buf body1k;
  pc_buf_init(&body1k, 1 << 20);
  chat_body(&body1k, 1024);
  char *list = strdup(entries), *save = NULL;
  for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    size_t n = strtoul(tok, NULL, 10);
    if (!n) continue;
    struct lookup_result r;
    int rc = lookup_bench(base, n, lookups, &body1k, &r);
    if (rc) {
      printf("  %8zu entries: failed\n", n);
      printf("RESULT lookup entries=%zu error=1\n", n);
    } else {
      printf("  %8zu entries (%zu B values, filled in %.1f s): get p50 %.0f ns, p99 %.0f ns, mean %.0f ns%s "
             "(clock read ~%.0f ns included); canon+hash+get+decode p50 %.0f ns, p99 %.0f ns\n",
             n, r.value_len, r.fill_s, r.p50_ns, r.p99_ns, r.mean_ns, r.misses ? " MISSES!" : "", r.timer_ns,
             r.hit_p50_ns, r.hit_p99_ns);
      printf("RESULT lookup entries=%zu value_len=%zu p50_ns=%.0f p99_ns=%.0f mean_ns=%.0f misses=%zu fill_s=%.1f "
             "hit_p50_ns=%.0f hit_p99_ns=%.0f\n",
             n, r.value_len, r.p50_ns, r.p99_ns, r.mean_ns, r.misses, r.fill_s, r.hit_p50_ns, r.hit_p99_ns);
    }
    fflush(stdout);
  }
  free(list);
  pc_buf_free(&body1k);
  rmdir(base);
  return 0;
}
