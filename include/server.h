/* server.h — one worker = one event loop with its listeners, its connections,
 * its upstream multi handle and its cache handle. `serve` runs one worker. */
#ifndef PC_SERVER_H
#define PC_SERVER_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "config.h"

struct pc_conn;
struct pc_upstream;
struct pc_flight;

struct pc_server;

struct pc_worker {
  struct pc_server *srv;
  int index; /* 0 is the main thread's worker: signals, lifetime totals */
  pthread_t thread;
  uv_loop_t loop_storage;
  uv_async_t stop_async; /* another thread asks this loop to shut down */
  uv_loop_t *loop;
  const struct pc_config *cfg;
  pc_cache *cache;
  uint8_t secret[PC_CACHE_SECRET_LEN];
  struct pc_upstream *up;
  struct pc_writer *writer; /* shared by all workers */
  struct pc_wport *port;    /* this loop's completions from the writer */
  uv_tcp_t listeners[PC_MAX_LISTEN];
  size_t n_listeners;
  struct pc_conn *conns; /* every open connection */
  struct pc_flight *flights; /* every exchange this loop leads */
  struct pc_rsub *rsubs;     /* this loop's followers of other loops' exchanges */
  uv_async_t xnotify;        /* other loops wake us for rsubs */
  uv_check_t log_check;      /* flushes this thread's access log once per iteration */
  /* Per-loop scratch for the request being handled (requests are handled one
   * at a time per loop, synchronously): the canonical body and the key
   * material. Shared by all connections so an idle one costs nothing here;
   * the material is handed to a flight on a miss. */
  pc_buf scratch;
  pc_buf material;
  pc_buf rawid;              /* the raw identity of the request being handled */
  pc_buf out;                /* a hit's head (and framed stream) before it is written */
  struct pc_rawkey *rawkey;  /* recent raw requests → key (rawkey.h) */
  uv_signal_t sigint, sigterm;
  uv_timer_t sync_timer;
  int shutting_down;
  int done; /* shutdown finished: the worker's handles are closing */
  unsigned ticks; /* sync timer ticks */
};

/* Run `serve` until SIGINT/SIGTERM; returns the process exit status. */
int pc_server_run(const struct pc_config *cfg);
/* Connections gave memory back: the next tick returns free heap pages to
 * the OS (malloc_trim), so idle connections do not keep their peak. */
void pc_server_note_trim(void);
/* A connection or flight ended: lets shutdown finish when none remain. */
void pc_server_maybe_done(struct pc_worker *w);

#endif
