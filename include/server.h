/* server.h — the serving process's transport: --workers event loops (the
 * first on the main thread), each with its own listening sockets on the
 * same ports (SO_REUSEPORT spreads connections) and its own connections;
 * signals; graceful shutdown. It knows nothing of caching: the application
 * (the request flow) is given to it as a table of callbacks, and each
 * loop's connections go to the application's connection handlers. */
#ifndef PC_SERVER_H
#define PC_SERVER_H

#include <uv.h>

#include "config.h"
#include "conn.h"

struct pc_worker; /* one event loop */

struct pc_app {
  const struct pc_conn_ops *conn_ops;
  void *ctx;
  /* Make the application's state for one loop (called on the main thread,
   * before any loop runs). */
  int (*loop_start)(void *ctx, struct pc_worker *w, void **app);
  /* The loop has ended (on the loop's thread): free that state. */
  void (*loop_free)(void *app);
  /* Shutdown: does the application still have work on this loop (e.g.
   * upstream exchanges that others wait on)? When it ends it calls
   * pc_server_check_done. */
  int (*loop_busy)(void *app);
  /* A second signal: cancel what is still in flight. */
  void (*loop_abort)(void *app);
  /* Shutdown has finished on this loop: close the application's handles. */
  void (*loop_close)(void *app);
  /* The loop iteration's work is done (after its I/O callbacks, and before
   * the loop polls again): hand on what it batched (NULL: nothing). */
  void (*loop_flush)(void *app);
  /* Every second, on the first loop only (NULL: none). */
  void (*tick)(void *tick_ctx, unsigned seconds);
  void *tick_ctx;
};

/* Run until SIGINT/SIGTERM; returns 0, or PC_EINVAL / PC_EIO / ... when it
 * could not start (the reason already printed). */
int pc_server_run(const struct pc_config *cfg, const struct pc_app *app);

uv_loop_t *pc_worker_loop(struct pc_worker *w);
int pc_worker_index(const struct pc_worker *w);
/* The port --listen i is bound to (known before loop_start; 0 given in
 * the configuration means any free port). */
int pc_worker_port(const struct pc_worker *w, size_t i);
/* Something the loop waited on ended: if it is shutting down and nothing
 * is left, close its handles so the loop ends. */
void pc_server_check_done(struct pc_worker *w);

#endif
