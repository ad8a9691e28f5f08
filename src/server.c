/* server.c — the `serve` loop: opens the cache, binds the listeners, runs the
 * worker's event loop, and shuts down gracefully on SIGINT/SIGTERM: stop
 * accepting, let in-flight responses finish, then close the cache cleanly. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "admin.h"
#include "conn.h"
#include "export.h"
#include "error.h"
#include "flight.h"
#include "log.h"
#include "stats.h"
#include "upstream.h"
#include "writer.h"

static void on_connection(uv_stream_t *server, int status) {
  struct pc_worker *w = server->data;
  if (status < 0 || w->shutting_down) return;
  if (pc_conn_accept(w, server)) pc_log_warn("accept failed");
}

static int bind_one(struct pc_worker *w, const struct pc_listen *l, uv_tcp_t *t) {
  struct sockaddr_storage ss;
  int rc = strchr(l->host, ':') ? uv_ip6_addr(l->host, l->port, (struct sockaddr_in6 *)&ss)
                                : uv_ip4_addr(l->host, l->port, (struct sockaddr_in *)&ss);
  if (rc) {
    fprintf(stderr, "promptcache: invalid listen address '%s'\n", l->host);
    return PC_EINVAL;
  }
  uv_tcp_init(w->loop, t);
  t->data = w;
  rc = uv_tcp_bind(t, (struct sockaddr *)&ss, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)t, 1024, on_connection);
  if (rc) {
    fprintf(stderr, "promptcache: cannot listen on %s:%d: %s\n", l->host, l->port, uv_strerror(rc));
    return PC_EIO;
  }
  struct sockaddr_storage got;
  int len = sizeof got;
  uv_tcp_getsockname(t, (struct sockaddr *)&got, &len);
  int port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                             : ((struct sockaddr_in *)&got)->sin_port);
  /* Scripts and tests wait for this exact line, so it is plain text in either log format. */
  if (strchr(l->host, ':')) fprintf(stderr, "promptcache: listening on [%s]:%d\n", l->host, port);
  else fprintf(stderr, "promptcache: listening on %s:%d\n", l->host, port);
  return 0;
}

static void begin_shutdown(struct pc_worker *w) {
  if (w->shutting_down) return;
  w->shutting_down = 1;
  pc_log_info("promptcache: shutting down: finishing in-flight requests");
  for (size_t i = 0; i < w->n_listeners; i++) uv_close((uv_handle_t *)&w->listeners[i], NULL);
  pc_conn_shutdown_all(w);
  pc_server_maybe_done(w);
}

static void on_signal(uv_signal_t *s, int signum) {
  struct pc_worker *w = s->data;
  if (w->shutting_down) {
    /* second signal: stop waiting for in-flight exchanges */
    pc_flight_abort_all(w);
    return;
  }
  begin_shutdown(w);
}

/* Every 10 s: persist lifetime totals (fsync is the writer thread's job). */
static void on_sync(uv_timer_t *t) {
  struct pc_worker *w = t->data;
  if (++w->ticks % 10 == 0) pc_stats_save_lifetime(w->cache);
}

/* Once nothing is left to finish, close the worker's own handles so the
 * loop ends. Runs once: later connection/flight ends are no-ops. */
void pc_server_maybe_done(struct pc_worker *w) {
  if (!w->shutting_down || w->conns || w->flights || w->done) return;
  w->done = 1;
  uv_close((uv_handle_t *)&w->sigint, NULL);
  uv_close((uv_handle_t *)&w->sigterm, NULL);
  uv_close((uv_handle_t *)&w->sync_timer, NULL);
  pc_upstream_destroy(w->up);
  w->up = NULL;
  pc_wport_close(w->port);
  w->port = NULL;
}

/* --replay FILE...: import recordings before serving, so a CI job needs only
 * the committed JSONL file. */
static int load_recordings(struct pc_worker *w) {
  for (size_t i = 0; i < w->cfg->replay_files.n; i++) {
    char err[512] = "";
    size_t n = 0;
    int rc = pc_import_file(w->cache, w->cfg->replay_files.v[i], &n, err, sizeof err);
    if (rc) {
      fprintf(stderr, "promptcache: %s\n", err[0] ? err : pc_strerror(rc));
      return rc;
    }
    pc_log_info("promptcache: loaded %zu recorded entries from %s", n, w->cfg->replay_files.v[i]);
  }
  return 0;
}

static int worker_init(struct pc_worker *w, const struct pc_config *cfg, uv_loop_t *loop) {
  memset(w, 0, sizeof *w);
  w->loop = loop;
  w->cfg = cfg;
  int rc = pc_cache_open(cfg->db, cfg->max_size, cfg->sync_batch ? PC_SYNC_BATCH : PC_SYNC_PERIODIC, &w->cache);
  if (rc) {
    fprintf(stderr, "promptcache: cannot open database '%s': %s\n", cfg->db, pc_strerror(rc));
    return rc;
  }
  rc = pc_cache_secret(w->cache, w->secret);
  if (!rc) rc = pc_stats_load_lifetime(w->cache);
  if (!rc) rc = load_recordings(w);
  if (rc == PC_EJSON || rc == PC_EINVAL) return PC_EINVAL;
  if (!rc) rc = pc_writer_start(w->cache, cfg, &w->writer);
  if (!rc) rc = pc_wport_open(w->writer, loop, &w->port);
  if (!rc) rc = pc_upstream_create(loop, cfg, &w->up);
  if (rc) {
    fprintf(stderr, "promptcache: cannot initialise: %s\n", pc_strerror(rc));
    return rc;
  }
  for (size_t i = 0; i < cfg->n_listen && !rc; i++) {
    rc = bind_one(w, &cfg->listen[i], &w->listeners[i]);
    w->n_listeners++;
  }
  if (rc) return rc;
  uv_signal_init(loop, &w->sigint);
  uv_signal_init(loop, &w->sigterm);
  w->sigint.data = w->sigterm.data = w;
  uv_signal_start(&w->sigint, on_signal, SIGINT);
  uv_signal_start(&w->sigterm, on_signal, SIGTERM);
  uv_timer_init(loop, &w->sync_timer);
  w->sync_timer.data = w;
  uv_timer_start(&w->sync_timer, on_sync, 1000, 1000);
  return 0;
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

int pc_server_run(const struct pc_config *cfg) {
  struct pc_worker w;
  uv_loop_t loop;
  if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
    fprintf(stderr, "promptcache: libcurl initialisation failed\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  pc_log_init(cfg->log_json);
  if (pc_stats_init(cfg)) return 2;
  if (!pc_admin_open(cfg))
    pc_log_warn("listening on a non-loopback address without --admin-token: only /_promptcache/health is served");
  int rc = worker_init(&w, cfg, &loop);
  if (!rc) {
    if (cfg->n_listen) uv_run(&loop, UV_RUN_DEFAULT);
  } else {
    w.shutting_down = 1;
    if (w.up) pc_upstream_destroy(w.up);
    if (w.port) pc_wport_close(w.port);
  }
  uv_walk(&loop, close_walk, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  pc_writer_stop(w.writer); /* commits anything still queued */
  if (w.cache) {
    pc_stats_save_lifetime(w.cache);
    pc_cache_close(w.cache);
  }
  curl_global_cleanup();
  if (!rc) pc_log_info("promptcache: stopped");
  if (rc) return rc == PC_EINVAL ? 2 : 1;
  uint64_t misses = pc_stats_replay_misses();
  if (cfg->fail_on_miss && misses) {
    fprintf(stderr, "promptcache: %llu replay miss%s (--fail-on-miss)\n", (unsigned long long)misses,
            misses == 1 ? "" : "es");
    return 1;
  }
  return 0;
}
