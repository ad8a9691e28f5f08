/* server.c — `serve`'s transport (see server.h): opens --workers event
 * loops (the first on the main thread), each with its own listening sockets
 * on the same ports and its own connections, and hands their requests to
 * the application. Graceful shutdown on SIGINT/SIGTERM: stop accepting, let
 * in-flight responses finish, then end the loops; a second signal asks the
 * application to cancel what is still in flight. */
#include "server.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

struct pc_server;

struct pc_worker {
  struct pc_server *srv;
  int index; /* 0 is the main thread's loop: signals, the tick */
  pthread_t thread;
  uv_loop_t loop_storage;
  uv_loop_t *loop;
  uv_async_t stop_async; /* another thread asks this loop to shut down */
  uv_tcp_t listeners[PC_MAX_LISTEN];
  size_t n_listeners;
  struct pc_conn_pool pool;
  void *app;                  /* the application's state for this loop */
  uv_check_t log_check;       /* after I/O: flush_iteration, then the access log */
  uv_prepare_t flush_prepare; /* before polling: flush_iteration for what timers and closes did */
  uv_signal_t sigint, sigterm;
  uv_timer_t tick;
  int shutting_down;
  int done; /* shutdown finished: the loop's handles are closing */
  unsigned seconds;
};

struct pc_server {
  const struct pc_config *cfg;
  const struct pc_app *app;
  struct pc_worker *workers;
  int n_workers;
  int ports[PC_MAX_LISTEN]; /* the bound ports (port 0 resolved by the first loop) */
  atomic_int abort_flights;
};

int pc_worker_port(const struct pc_worker *w, size_t i) { return i < w->srv->cfg->n_listen ? w->srv->ports[i] : 0; }

uv_loop_t *pc_worker_loop(struct pc_worker *w) { return w->loop; }
int pc_worker_index(const struct pc_worker *w) { return w->index; }

static void on_connection(uv_stream_t *server, int status) {
  struct pc_worker *w = server->data;
  if (status < 0 || w->shutting_down) return;
  if (pc_conn_accept(&w->pool, server)) pc_log_warn("accept failed");
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
  in_port_t port = 0;
  if (got.ss_family == AF_INET6)
    memcpy(&port, &((struct sockaddr_in6 *)&got)->sin6_port, sizeof port);
  else
    memcpy(&port, &((struct sockaddr_in *)&got)->sin_port, sizeof port);
  return ntohs(port);
}

static int bind_one(struct pc_worker *w, size_t i) {
  const struct pc_listen *l = &w->srv->cfg->listen[i];
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
  if (strchr(l->host, ':'))
    fprintf(stderr, "promptcache: listening on [%s]:%d\n", l->host, srv->ports[i]);
  else
    fprintf(stderr, "promptcache: listening on %s:%d\n", l->host, srv->ports[i]);
  return 0;
}

/* Once nothing is left to finish, close the loop's own handles so it
 * ends. Runs once: later ends are no-ops. */
void pc_server_check_done(struct pc_worker *w) {
  const struct pc_app *app = w->srv->app;
  if (!w->shutting_down || w->done || w->pool.n_conns || (w->app && app->loop_busy(w->app))) return;
  w->done = 1;
  if (w->index == 0) {
    uv_close((uv_handle_t *)&w->sigint, NULL);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
  }
  uv_close((uv_handle_t *)&w->stop_async, NULL);
  uv_close((uv_handle_t *)&w->log_check, NULL);
  uv_close((uv_handle_t *)&w->flush_prepare, NULL);
  if (w->app) app->loop_close(w->app);
}

static void on_drained(struct pc_conn_pool *p) { pc_server_check_done(p->drained_ud); }

static void begin_shutdown(struct pc_worker *w) {
  if (w->shutting_down) return;
  w->shutting_down = 1;
  if (w->index == 0) pc_log_info("promptcache: shutting down: finishing in-flight requests");
  for (size_t i = 0; i < w->n_listeners; i++) uv_close((uv_handle_t *)&w->listeners[i], NULL);
  pc_conn_shutdown_all(&w->pool);
  pc_server_check_done(w);
}

static void abort_app(struct pc_worker *w) {
  if (w->app) w->srv->app->loop_abort(w->app);
}

static void on_stop_async(uv_async_t *a) {
  struct pc_worker *w = a->data;
  if (atomic_load(&w->srv->abort_flights)) abort_app(w);
  begin_shutdown(w);
}

/* SIGINT/SIGTERM (first loop): every loop shuts down; a second one also
 * cancels what is still in flight. */
static void on_signal(uv_signal_t *s, int signum) {
  struct pc_worker *w = s->data;
  struct pc_server *srv = w->srv;
  if (w->shutting_down) atomic_store(&srv->abort_flights, 1);
  for (int i = 1; i < srv->n_workers; i++) uv_async_send(&srv->workers[i].stop_async);
  if (atomic_load(&srv->abort_flights)) abort_app(w);
  begin_shutdown(w);
}

/* The end of an iteration's work: the application's batches first (a commit
 * can start while the writes go out), then the corked writes. */
static void flush_iteration(struct pc_worker *w) {
  const struct pc_app *app = w->srv->app;
  if (w->app && app->loop_flush) app->loop_flush(w->app);
  pc_conn_pool_flush(&w->pool);
}

static void on_log_check(uv_check_t *h) {
  flush_iteration(h->data);
  pc_log_flush();
}

static void on_flush_prepare(uv_prepare_t *h) { flush_iteration(h->data); }

/* Every second: hand freed heap pages back after connections went idle,
 * and the application's periodic work. */
static void on_tick(uv_timer_t *t) {
  struct pc_worker *w = t->data;
  if (pc_conn_take_trimmed()) malloc_trim(0);
  const struct pc_app *app = w->srv->app;
  if (app->tick) app->tick(app->tick_ctx, ++w->seconds);
}

static void main_handles(struct pc_worker *w) {
  uv_signal_init(w->loop, &w->sigint);
  uv_signal_init(w->loop, &w->sigterm);
  w->sigint.data = w->sigterm.data = w;
  uv_signal_start(&w->sigint, on_signal, SIGINT);
  uv_signal_start(&w->sigterm, on_signal, SIGTERM);
  uv_timer_init(w->loop, &w->tick);
  w->tick.data = w;
  uv_timer_start(&w->tick, on_tick, 1000, 1000);
}

/* Request bytes all connections may buffer at once: 256 MiB, or room for
 * two bodies of --max-body; --max-buffered overrides. */
static size_t body_budget(const struct pc_config *cfg) {
  if (cfg->max_buffered) return cfg->max_buffered;
  size_t two = cfg->max_body * 2;
  return two > ((size_t)256 << 20) ? two : (size_t)256 << 20;
}

static int worker_init(struct pc_server *srv, int index) {
  struct pc_worker *w = &srv->workers[index];
  const struct pc_config *cfg = srv->cfg;
  w->srv = srv;
  w->index = index;
  w->loop = &w->loop_storage;
  uv_loop_init(w->loop);
  uv_async_init(w->loop, &w->stop_async, on_stop_async);
  w->stop_async.data = w;
  uv_check_init(w->loop, &w->log_check);
  w->log_check.data = w;
  uv_check_start(&w->log_check, on_log_check);
  uv_unref((uv_handle_t *)&w->log_check);
  uv_prepare_init(w->loop, &w->flush_prepare);
  w->flush_prepare.data = w;
  uv_prepare_start(&w->flush_prepare, on_flush_prepare);
  uv_unref((uv_handle_t *)&w->flush_prepare);
  w->pool = (struct pc_conn_pool){.loop = w->loop,
                                  .ops = srv->app->conn_ops,
                                  .max_body = cfg->max_body,
                                  .client_timeout_ms = (uint64_t)cfg->client_timeout_ms,
                                  .idle_timeout_ms = (uint64_t)cfg->idle_timeout_ms,
                                  .body_budget = body_budget(cfg),
                                  .drained = on_drained,
                                  .drained_ud = w};
  int rc = 0;
  /* listening first: the application may want the ports (nothing is
   * accepted before the loop runs) */
  for (size_t i = 0; i < cfg->n_listen && !rc; i++) rc = bind_one(w, i);
  if (!rc) rc = srv->app->loop_start(srv->app->ctx, w, &w->app);
  w->pool.app = w->app;
  if (!rc && index == 0) main_handles(w);
  if (rc && rc != PC_EINVAL && rc != PC_EIO) fprintf(stderr, "promptcache: cannot initialise: %s\n", pc_strerror(rc));
  return rc;
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Close whatever a failed or finished loop still has, and the loop (on the
 * loop's own thread: the application frees its thread-local state). */
static void worker_teardown(struct pc_worker *w) {
  if (!w->loop) return;
  if (!w->done) {
    w->shutting_down = w->done = 1;
    if (w->app) w->srv->app->loop_close(w->app);
  }
  uv_walk(w->loop, close_walk, NULL);
  uv_run(w->loop, UV_RUN_DEFAULT);
  uv_loop_close(w->loop);
  if (w->app) w->srv->app->loop_free(w->app);
  w->app = NULL;
  pc_log_thread_done();
}

static void *worker_thread(void *arg) {
  struct pc_worker *w = arg;
  uv_run(w->loop, UV_RUN_DEFAULT);
  worker_teardown(w);
  return NULL;
}

int pc_server_run(const struct pc_config *cfg, const struct pc_app *app) {
  struct pc_server srv;
  memset(&srv, 0, sizeof srv);
  srv.cfg = cfg;
  srv.app = app;
  srv.n_workers = cfg->workers;
  srv.workers = calloc((size_t)cfg->workers, sizeof *srv.workers);
  if (!srv.workers) return PC_ENOMEM;
  int rc = 0, started = 0;
  for (int i = 0; !rc && i < srv.n_workers; i++, started++) rc = worker_init(&srv, i);
  for (int i = 1; !rc && i < srv.n_workers; i++)
    if (pthread_create(&srv.workers[i].thread, NULL, worker_thread, &srv.workers[i])) rc = PC_ENOMEM;
  if (!rc) {
    uv_run(srv.workers[0].loop, UV_RUN_DEFAULT);
    for (int i = 1; i < srv.n_workers; i++) pthread_join(srv.workers[i].thread, NULL);
  }
  for (int i = 0; i < started; i++)
    if (rc || i == 0) worker_teardown(&srv.workers[i]);
  free(srv.workers);
  return rc;
}
