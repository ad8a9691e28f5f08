/* server.c — `serve`: opens the cache and the writer thread once, then runs
 * --workers event loops (the first on the main thread), each with its own
 * listening sockets on the same ports (SO_REUSEPORT spreads connections),
 * connections and upstream handle. Graceful shutdown on SIGINT/SIGTERM: stop
 * accepting, let in-flight responses finish, then close the cache cleanly; a
 * second signal cancels what is still in flight. */
#include "server.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "admin.h"
#include "canon.h"
#include "conn.h"
#include "error.h"
#include "export.h"
#include "flight.h"
#include "log.h"
#include "rawkey.h"
#include "stats.h"
#include "upstream.h"
#include "writer.h"

struct pc_server {
  const struct pc_config *cfg;
  pc_cache *cache;
  struct pc_writer *writer;
  struct pc_worker *workers;
  int n_workers;
  int ports[PC_MAX_LISTEN]; /* the bound ports (port 0 resolved by the first worker) */
  atomic_int abort_flights;
};

static void on_connection(uv_stream_t *server, int status) {
  struct pc_worker *w = server->data;
  if (status < 0 || w->shutting_down) return;
  if (pc_conn_accept(w, server)) pc_log_warn("accept failed");
}

static int listen_addr(const struct pc_listen *l, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  return strchr(l->host, ':') ? uv_ip6_addr(l->host, port, (struct sockaddr_in6 *)ss)
                              : uv_ip4_addr(l->host, port, (struct sockaddr_in *)ss);
}

/* A listening socket; with several workers each binds the same port with
 * SO_REUSEPORT (never set for one worker: it would let another process share
 * our port silently). */
static int open_socket(const struct sockaddr_storage *ss, int reuseport, int *out) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  if (fd < 0) return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) goto fail;
  if (ss->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (bind(fd, (const struct sockaddr *)ss, len)) goto fail;
  *out = fd;
  return 0;
fail:
  close(fd);
  return -1;
}

static int bound_port(int fd) {
  struct sockaddr_storage got = {0};
  socklen_t len = sizeof got;
  if (getsockname(fd, (struct sockaddr *)&got, &len)) return -1;
  /* getsockname filled `got` (the analyzer does not model it) */
  return ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port // NOLINT(clang-analyzer-core.CallAndMessage)
                                         : ((struct sockaddr_in *)&got)->sin_port);
}

static int bind_one(struct pc_worker *w, size_t i) {
  const struct pc_listen *l = &w->cfg->listen[i];
  struct pc_server *srv = w->srv;
  struct sockaddr_storage ss;
  int fd = -1, port = w->index ? srv->ports[i] : l->port;
  if (listen_addr(l, port, &ss)) {
    fprintf(stderr, "promptcache: invalid listen address '%s'\n", l->host);
    return PC_EINVAL;
  }
  uv_tcp_t *t = &w->listeners[i];
  int rc = open_socket(&ss, srv->n_workers > 1, &fd) ? uv_translate_sys_error(errno) : 0;
  if (!rc) {
    uv_tcp_init(w->loop, t);
    t->data = w;
    w->n_listeners++;
    rc = uv_tcp_open(t, fd);
    if (rc) close(fd);
  }
  if (!rc) rc = uv_listen((uv_stream_t *)t, 1024, on_connection);
  if (rc) {
    fprintf(stderr, "promptcache: cannot listen on %s:%d: %s\n", l->host, port, uv_strerror(rc));
    return PC_EIO;
  }
  if (w->index) return 0;
  srv->ports[i] = bound_port(fd);
  /* Scripts and tests wait for this exact line, so it is plain text in either log format. */
  if (strchr(l->host, ':')) fprintf(stderr, "promptcache: listening on [%s]:%d\n", l->host, srv->ports[i]);
  else fprintf(stderr, "promptcache: listening on %s:%d\n", l->host, srv->ports[i]);
  return 0;
}

static void begin_shutdown(struct pc_worker *w) {
  if (w->shutting_down) return;
  w->shutting_down = 1;
  if (w->index == 0) pc_log_info("promptcache: shutting down: finishing in-flight requests");
  for (size_t i = 0; i < w->n_listeners; i++) uv_close((uv_handle_t *)&w->listeners[i], NULL);
  pc_conn_shutdown_all(w);
  pc_server_maybe_done(w);
}

static void on_stop_async(uv_async_t *a) {
  struct pc_worker *w = a->data;
  if (atomic_load(&w->srv->abort_flights)) pc_flight_abort_all(w);
  begin_shutdown(w);
}

/* SIGINT/SIGTERM (main worker): every loop shuts down; a second one also
 * cancels the exchanges still in flight. */
static void on_signal(uv_signal_t *s, int signum) {
  struct pc_worker *w = s->data;
  struct pc_server *srv = w->srv;
  if (w->shutting_down) atomic_store(&srv->abort_flights, 1);
  for (int i = 1; i < srv->n_workers; i++) uv_async_send(&srv->workers[i].stop_async);
  if (atomic_load(&srv->abort_flights)) pc_flight_abort_all(w);
  begin_shutdown(w);
}

static void on_xnotify(uv_async_t *a) { pc_flight_pull_remote(a->data); }

static void on_log_check(uv_check_t *h) { pc_log_flush(); }

static atomic_uint trims;

void pc_server_note_trim(void) { atomic_fetch_add_explicit(&trims, 1, memory_order_relaxed); }

/* Every second: hand freed heap pages back after connections went idle;
 * every 10 s: persist lifetime totals (fsync is the writer's job). */
static void on_tick(uv_timer_t *t) {
  struct pc_worker *w = t->data;
  if (atomic_exchange_explicit(&trims, 0, memory_order_relaxed)) malloc_trim(0);
  if (++w->ticks % 10 == 0) { /* written by the writer thread: the loop never waits on LMDB's write lock */
    pc_buf b;
    pc_buf_init(&b, 1 << 16);
    if (!pc_stats_lifetime_json(&b)) {
      size_t n;
      char *p = pc_buf_steal(&b, &n);
      pc_writer_meta(w->port, "totals", p, n);
    }
    pc_buf_free(&b);
  }
}

/* Once nothing is left to finish, close the worker's own handles so its
 * loop ends. Runs once: later connection/flight ends are no-ops. */
void pc_server_maybe_done(struct pc_worker *w) {
  if (!w->shutting_down || w->conns || w->flights || w->rsubs || w->done) return;
  w->done = 1;
  if (w->index == 0) {
    uv_close((uv_handle_t *)&w->sigint, NULL);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_close((uv_handle_t *)&w->sync_timer, NULL);
  }
  uv_close((uv_handle_t *)&w->stop_async, NULL);
  uv_close((uv_handle_t *)&w->xnotify, NULL);
  uv_close((uv_handle_t *)&w->log_check, NULL);
  pc_upstream_destroy(w->up);
  w->up = NULL;
  pc_wport_close(w->port);
  w->port = NULL;
}

static void main_handles(struct pc_worker *w) {
  uv_signal_init(w->loop, &w->sigint);
  uv_signal_init(w->loop, &w->sigterm);
  w->sigint.data = w->sigterm.data = w;
  uv_signal_start(&w->sigint, on_signal, SIGINT);
  uv_signal_start(&w->sigterm, on_signal, SIGTERM);
  uv_timer_init(w->loop, &w->sync_timer);
  w->sync_timer.data = w;
  uv_timer_start(&w->sync_timer, on_tick, 1000, 1000);
}

static int worker_init(struct pc_server *srv, int index) {
  struct pc_worker *w = &srv->workers[index];
  w->srv = srv;
  w->index = index;
  w->cfg = srv->cfg;
  w->cache = srv->cache;
  w->writer = srv->writer;
  w->loop = &w->loop_storage;
  pc_buf_init(&w->scratch, w->cfg->max_body * 2 + 64);
  pc_buf_init(&w->material, w->cfg->max_body * 2 + 64 * 1024);
  pc_buf_init(&w->rawid, PC_RAWKEY_MAX_IDENTITY + 4096);
  pc_buf_init(&w->out, w->cfg->max_size / 2 + (1u << 20));
  w->rawkey = pc_rawkey_create();
  uv_loop_init(w->loop);
  uv_async_init(w->loop, &w->stop_async, on_stop_async);
  uv_async_init(w->loop, &w->xnotify, on_xnotify);
  w->stop_async.data = w->xnotify.data = w;
  uv_check_init(w->loop, &w->log_check);
  uv_check_start(&w->log_check, on_log_check);
  uv_unref((uv_handle_t *)&w->log_check);
  int rc = pc_cache_secret(w->cache, w->secret);
  if (!rc) rc = pc_upstream_create(w->loop, w->cfg, &w->up);
  if (!rc) rc = pc_wport_open(w->writer, w->loop, &w->port);
  for (size_t i = 0; i < w->cfg->n_listen && !rc; i++) rc = bind_one(w, i);
  if (!rc && index == 0) main_handles(w);
  if (rc && rc != PC_EINVAL && rc != PC_EIO) fprintf(stderr, "promptcache: cannot initialise: %s\n", pc_strerror(rc));
  return rc;
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Close whatever a failed or finished worker still has, and its loop. */
static void worker_teardown(struct pc_worker *w) {
  if (!w->loop) return;
  if (!w->done) {
    w->shutting_down = 1;
    if (w->up) pc_upstream_destroy(w->up);
    if (w->port) pc_wport_close(w->port);
    w->up = NULL;
    w->port = NULL;
  }
  uv_walk(w->loop, close_walk, NULL);
  uv_run(w->loop, UV_RUN_DEFAULT);
  uv_loop_close(w->loop);
  pc_cache_thread_done(w->cache);
  pc_log_thread_done();
  pc_canon_thread_done();
  pc_buf_free(&w->scratch);
  pc_buf_free(&w->material);
  pc_buf_free(&w->rawid);
  pc_buf_free(&w->out);
  pc_rawkey_destroy(w->rawkey);
  w->rawkey = NULL;
}

static void *worker_thread(void *arg) {
  struct pc_worker *w = arg;
  uv_run(w->loop, UV_RUN_DEFAULT);
  worker_teardown(w);
  return NULL;
}

/* --replay FILE...: import recordings before serving, so a CI job needs only
 * the committed JSONL file. */
static int load_recordings(struct pc_server *srv) {
  for (size_t i = 0; i < srv->cfg->replay_files.n; i++) {
    char err[512] = "";
    size_t n = 0;
    int rc = pc_import_file(srv->cache, srv->cfg->replay_files.v[i], &n, err, sizeof err);
    if (rc) {
      fprintf(stderr, "promptcache: %s\n", err[0] ? err : pc_strerror(rc));
      return PC_EINVAL;
    }
    pc_log_info("promptcache: loaded %zu recorded entries from %s", n, srv->cfg->replay_files.v[i]);
  }
  return 0;
}

static int shared_init(struct pc_server *srv, const struct pc_config *cfg) {
  srv->cfg = cfg;
  srv->n_workers = cfg->workers;
  srv->workers = calloc((size_t)cfg->workers, sizeof *srv->workers);
  if (!srv->workers) return PC_ENOMEM;
  int rc = pc_cache_open(cfg->db, cfg->max_size, cfg->sync_batch ? PC_SYNC_BATCH : PC_SYNC_PERIODIC, &srv->cache);
  if (rc) {
    fprintf(stderr, "promptcache: cannot open database '%s': %s\n", cfg->db, pc_strerror(rc));
    return rc == PC_EINVAL ? PC_EIO : rc;
  }
  rc = pc_stats_load_lifetime(srv->cache);
  if (!rc) rc = load_recordings(srv);
  if (!rc) rc = pc_writer_start(srv->cache, cfg, &srv->writer);
  return rc;
}

/* Exit status: 0, 2 for bad configuration, 1 otherwise (and for
 * --fail-on-miss after a replay miss). */
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

int pc_server_run(const struct pc_config *cfg) {
  struct pc_server srv;
  memset(&srv, 0, sizeof srv);
  if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
    fprintf(stderr, "promptcache: libcurl initialisation failed\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  pc_log_init(cfg->log_json);
  if (pc_stats_init(cfg)) return 2;
  if (!pc_admin_open(cfg))
    pc_log_warn("listening on a non-loopback address without --admin-token: only /_promptcache/health is served");
  int rc = shared_init(&srv, cfg);
  int started = 0;
  for (int i = 0; !rc && i < srv.n_workers; i++, started++) rc = worker_init(&srv, i);
  for (int i = 1; !rc && i < srv.n_workers; i++)
    if (pthread_create(&srv.workers[i].thread, NULL, worker_thread, &srv.workers[i])) rc = PC_ENOMEM;
  if (!rc) {
    uv_run(srv.workers[0].loop, UV_RUN_DEFAULT);
    for (int i = 1; i < srv.n_workers; i++) pthread_join(srv.workers[i].thread, NULL);
  }
  for (int i = 0; i < started; i++)
    if (rc || i == 0) worker_teardown(&srv.workers[i]);
  pc_writer_stop(srv.writer); /* commits anything still queued */
  if (srv.cache) {
    pc_stats_save_lifetime(srv.cache);
    pc_cache_close(srv.cache);
  }
  free(srv.workers);
  curl_global_cleanup();
  if (!rc) pc_log_info("promptcache: stopped");
  return exit_status(cfg, rc);
}
