/* serve.c — the `serve` subcommand (see serve.h): the composition root of
 * the serving process. The order matters: the cache before the writer that
 * commits to it, recordings imported before any loop serves, and at the
 * end the writer stopped (committing what is queued) before the cache
 * closes. */
#include "serve.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "admin.h"
#include "cache.h"
#include "error.h"
#include "fleet.h"
#include "import.h"
#include "log.h"
#include "proxy.h"
#include "server.h"
#include "stats.h"
#include "writer.h"

struct serve {
  const struct pc_config *cfg;
  pc_cache *cache;
  struct pc_writer *writer;
  struct pc_proxy_ctx pctx;
};

/* --replay FILE...: import recordings before serving, so a CI job needs only
 * the committed JSONL file. */
static int load_recordings(struct serve *s) {
  for (size_t i = 0; i < s->cfg->replay_files.n; i++) {
    char err[512] = "";
    size_t n = 0;
    int rc = pc_import_file(s->cache, s->cfg->replay_files.v[i], &n, err, sizeof err);
    if (rc) {
      fprintf(stderr, "promptcache: %s\n", err[0] ? err : pc_strerror(rc));
      return PC_EINVAL;
    }
    pc_log_info("promptcache: loaded %zu recorded entries from %s", n, s->cfg->replay_files.v[i]);
  }
  return 0;
}

static int open_shared(struct serve *s) {
  const struct pc_config *cfg = s->cfg;
  int rc = pc_cache_open(cfg->db, cfg->max_size, cfg->sync_batch ? PC_SYNC_BATCH : PC_SYNC_PERIODIC, &s->cache);
  if (rc == PC_ECORRUPT)
    fprintf(stderr,
            "promptcache: cannot open database '%s': it is corrupt or truncated (restore it, or move it away "
            "and start empty)\n",
            cfg->db);
  else if (rc)
    fprintf(stderr, "promptcache: cannot open database '%s': %s\n", cfg->db, pc_strerror(rc));
  if (rc) {
    return rc == PC_EINVAL ? PC_EIO : rc;
  }
  rc = pc_stats_load_lifetime(s->cache);
  if (!rc) rc = load_recordings(s);
  /* before any loop reads the credential secret */
  if (!rc && cfg->redis.n) rc = pc_fleet_agree_secret(cfg, s->cache);
  if (!rc) rc = pc_writer_start(s->cache, cfg, &s->writer);
  return rc;
}

/* Every 10 s: persist lifetime totals, written by the writer thread so no
 * loop waits on LMDB's write lock. */
static void tick(void *ctx, unsigned seconds) {
  struct serve *s = ctx;
  if (seconds % 10) return;
  pc_buf b;
  pc_buf_init(&b, 1 << 16);
  if (!pc_stats_lifetime_json(&b)) {
    size_t n;
    char *p = pc_buf_steal(&b, &n);
    pc_writer_meta(s->writer, "totals", p, n);
  }
  pc_buf_free(&b);
}

static int exit_status(const struct pc_config *cfg, int rc) {
  if (rc) return rc == PC_EINVAL ? 2 : 1;
  uint64_t misses = pc_stats_replay_misses();
  if (cfg->fail_on_miss && misses) {
    fprintf(stderr, "promptcache: %llu replay miss%s (--fail-on-miss)\n", (unsigned long long)misses,
            misses == 1 ? "" : "es");
    return 1;
  }
  return 0;
}

int pc_serve(const struct pc_config *cfg) {
  struct serve s;
  memset(&s, 0, sizeof s);
  s.cfg = cfg;
  if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
    fprintf(stderr, "promptcache: libcurl initialisation failed\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  /* a file-size limit (ulimit -f) makes a write fail with EFBIG, like a full
   * disk, instead of killing the process */
  signal(SIGXFSZ, SIG_IGN);
  pc_log_init(cfg->log_json);
  if (pc_stats_init(cfg)) return 2;
  if (!pc_admin_open(cfg))
    pc_log_warn("listening on a non-loopback address without --admin-token: only /_promptcache/health is served");
  int rc = open_shared(&s);
  if (!rc) {
    s.pctx = (struct pc_proxy_ctx){
        .cfg = cfg, .cache = s.cache, .writer = s.writer, .memo_budget = cfg->memo_size / (size_t)cfg->workers};
    struct pc_app app;
    pc_proxy_app(&s.pctx, &app);
    app.tick = tick;
    app.tick_ctx = &s;
    rc = pc_server_run(cfg, &app);
  }
  pc_writer_stop(s.writer); /* commits anything still queued */
  if (s.cache) {
    pc_stats_save_lifetime(s.cache);
    pc_cache_close(s.cache);
  }
  curl_global_cleanup();
  pc_log_thread_done();
  if (!rc) pc_log_info("promptcache: stopped");
  return exit_status(cfg, rc);
}
