/* conn.h — one client connection: the HTTP/1.1 transport. It reads and
 * parses (http.h), writes, times out and closes; it knows nothing of
 * caching. Each complete request goes to the handler table it was given
 * (struct pc_conn_ops, as libuv hands a stream's bytes to its read_cb, or
 * Varnish's struct transport), which answers through pc_conn_write*() and
 * ends with pc_conn_finish() or pc_conn_abort(). One request at a time per
 * connection, answered in order; pipelined requests wait in the input
 * buffer, and are not even parsed while the connection's queued output is
 * over PC_CONN_OUT_HIGH (back-pressure: a client that sends and never reads
 * cannot make the proxy queue unbounded answers).
 *
 * Limits: see http.h for one request; a whole request must arrive within
 * the client timeout (408), an idle keep-alive connection lives the idle
 * timeout; request bodies buffered by all connections of the process
 * together stay under a budget (503 past it). */
#ifndef PC_CONN_H
#define PC_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"

#define PC_CONN_OPS_MAGIC 0x70636f70u       /* "pcop" */
#define PC_CONN_OUT_HIGH ((size_t)1 << 20)  /* stop parsing pipelined requests past this much queued output */
#define PC_CONN_OUT_LOW ((size_t)256 << 10) /* ... and resume below this */

struct pc_conn;

/* What the transport calls; every callback runs on the connection's loop. */
struct pc_conn_ops {
  unsigned magic; /* PC_CONN_OPS_MAGIC: a table that is not one is a broken invariant */
  /* A complete request (pc_conn_req) arrived: answer it, then pc_conn_finish
   * or pc_conn_abort (now or later). */
  void (*request)(struct pc_conn *c);
  /* The transport refuses a request (malformed 400, 405, 408, 413, 431, 503
   * over the body budget): write an error response, then pc_conn_finish.
   * The connection closes after it. */
  void (*reject)(struct pc_conn *c, int status, const char *code, const char *msg);
  /* The current request is over: answered, aborted, or its connection went
   * away. Exactly once per request or reject. */
  void (*end)(struct pc_conn *c);
  /* The connection is gone (after end, if a request was open): release what
   * pc_conn_user holds. */
  void (*closed)(struct pc_conn *c);
  /* The connection has been idle between requests for a while and gives its
   * buffers back: the user may release per-request state too (NULL: no). */
  void (*idle)(struct pc_conn *c);
};

/* A loop's connections. Filled by the server; the pool is the transport's
 * per-loop state, `app` the user's. */
struct pc_conn_pool {
  uv_loop_t *loop;
  const struct pc_conn_ops *ops;
  void *app;
  size_t max_body;
  uint64_t client_timeout_ms, idle_timeout_ms;
  size_t body_budget; /* process-wide bound on buffered request bytes (all pools) */
  struct pc_conn *conns;
  size_t n_conns;
  struct pc_conn *corked; /* connections with writes of this loop iteration not yet sent */
  int shutting_down;
  /* Shutdown: called when the last connection of the pool is freed. */
  void (*drained)(struct pc_conn_pool *p);
  void *drained_ud;
};

/* Accept one connection from a listening stream. */
int pc_conn_accept(struct pc_conn_pool *p, uv_stream_t *server);
/* Send what connections wrote during this loop iteration (see conn.c:
 * writes are corked). The server calls it before the loop polls and after
 * it handled I/O. */
void pc_conn_pool_flush(struct pc_conn_pool *p);
/* Shutdown: close idle connections, let busy ones finish and close. */
void pc_conn_shutdown_all(struct pc_conn_pool *p);
/* Whether connections gave memory back since the last call (the server
 * then returns free heap pages to the OS). */
int pc_conn_take_trimmed(void);

struct pc_req *pc_conn_req(struct pc_conn *c);
struct pc_conn_pool *pc_conn_pool(struct pc_conn *c);
void *pc_conn_user(const struct pc_conn *c);
void pc_conn_set_user(struct pc_conn *c, void *user);
/* The connection will close after this response (the response head says so). */
int pc_conn_will_close(const struct pc_conn *c);
void pc_conn_close_after(struct pc_conn *c);
/* Bytes queued for the client and not yet written. */
size_t pc_conn_queued(const struct pc_conn *c);

/* Queue bytes to the client. _own takes a malloc'd block (freed after the
 * write); `p`/`n` must lie inside it. */
void pc_conn_write_own(struct pc_conn *c, char *block, const char *p, size_t n);
void pc_conn_write_copy(struct pc_conn *c, const void *p, size_t n);
/* Two blocks in one write (head + body); either block pointer may be NULL. */
void pc_conn_write2(struct pc_conn *c, char *b1, const char *p1, size_t n1, char *b2, const char *p2, size_t n2);
/* Write now what the socket takes (nothing if writes are queued, to keep
 * order); returns the number of bytes written. */
size_t pc_conn_try_write(struct pc_conn *c, const char *p1, size_t n1, const char *p2, size_t n2);
/* Keep what was written for this response back until it ends
 * (pc_conn_finish) or is cut (pc_conn_abort), instead of sending it when the
 * loop iteration ends: for a response whose end waits anyway (a stored miss
 * waits for its commit), one write instead of two. */
void pc_conn_hold(struct pc_conn *c);
/* The response is complete: end it, then read the next request or close. */
void pc_conn_finish(struct pc_conn *c);
/* The response cannot be completed (upstream broke mid-body, a write could
 * not be queued): close now so the client sees a cut response, never a
 * wrong one. */
void pc_conn_abort(struct pc_conn *c);

#endif
