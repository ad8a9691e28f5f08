/* conn.h — one client connection: llhttp parsing with limits, keep-alive and
 * pipelining (one request at a time, answered in order), timeouts, and the
 * connection state machine. Request handling lives in proxy.c; response
 * bytes are produced by respond.c through pc_conn_write*(). */
#ifndef PC_CONN_H
#define PC_CONN_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "flight.h"
#include "entry.h"
#include "key.h"
#include "stats.h"

#define PC_MAX_HEADER_BYTES (64 * 1024)
#define PC_MAX_HEADERS 256

struct pc_worker;

/* The states, listed once; conn_set_state() is the only writer. */
enum pc_conn_state {
  PC_CONN_READING, /* waiting for / receiving a request */
  PC_CONN_WORKING, /* a request was dispatched; its response is being produced */
  PC_CONN_DRAINING, /* final response queued; write side shut, discarding input until close */
  PC_CONN_CLOSED    /* uv_close called; freed in the close callbacks */
};

struct pc_header {
  uint32_t name, nlen, value, vlen; /* offsets into pc_req.hbuf */
};

struct pc_req {
  char method[24];
  pc_buf target; /* request target as received */
  pc_buf hbuf;   /* header names and values, NUL-terminated each */
  struct pc_header *h; /* h_cap slots, grown on demand up to PC_MAX_HEADERS */
  size_t nh, h_cap;
  size_t header_bytes;
  pc_buf body;
  int http_minor;
  int keep_alive;
  int expect_continue;
  uint64_t start_ns;
};

struct pc_resp {
  int status;
  const char *route;   /* for stats: route prefix, "" default */
  char model[96];      /* for stats: the request's model, if known */
  struct pc_usage usage; /* tokens of the entry served (HIT/STALE/COALESCED) */
  int err_class;       /* enum pc_err_class or -1 */
  int replay_miss;
  const char *extra_headers; /* complete "Name: value\r\n" lines added to the head */
  const char *cache; /* X-PromptCache-Status value, or NULL for none */
  char key[PC_KEY_HEX_LEN + 1];
  int head_sent;
  int chunked;
  int no_body; /* HEAD request or 1xx/204/304 status */
  uint64_t bytes;
  int64_t upstream_us;
};

/* A cache entry the connection holds: a hit being replayed with pacing, or
 * an expired entry kept for stale-if-error. `block` owns the bytes. */
struct pc_held {
  char *block;
  struct pc_entry e;
  uint32_t next_chunk;
  uint64_t start_ns;
};

struct pc_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  struct pc_worker *w;
  llhttp_t parser;
  enum pc_conn_state state;
  pc_buf in;          /* received, not yet parsed */
  int in_message;     /* a request has begun arriving */
  int parse_error;    /* HTTP status to answer a parse failure with (400/413/431) */
  int close_after;    /* close once the current response is written */
  int read_stopped;
  int peer_eof;       /* the client half-closed: answer, then close */
  int trimmed;        /* idle and its request buffers already given back */
  int in_dispatch;    /* inside conn_parse's dispatch: finish must not re-enter the parser */
  int handles_open;   /* tcp + timer still to be closed */
  size_t writes_pending;
  struct pc_req req;
  struct pc_resp resp;
  struct pc_sub sub; /* our subscription to a flight */
  struct pc_held replay; /* paced SSE replay in progress */
  struct pc_held stale;  /* expired entry, served if upstream fails */
  int swallow;           /* upstream failed and stale will be served: drop its bytes */
  struct pc_conn *next, *prev;
  uv_shutdown_t shutdown_req;
};

int pc_conn_accept(struct pc_worker *w, uv_stream_t *server);
/* Queue bytes to the client. _own takes a malloc'd block (freed after the
 * write); `p`/`n` must lie inside it. */
void pc_conn_write_own(struct pc_conn *c, char *block, const char *p, size_t n);
void pc_conn_write_copy(struct pc_conn *c, const void *p, size_t n);
/* Write now what the socket takes (nothing if writes are queued, to keep
 * order); returns the number of bytes written. */
size_t pc_conn_try_write(struct pc_conn *c, const char *p1, size_t n1, const char *p2, size_t n2);
/* Two blocks in one write (head + body); either block pointer may be NULL. */
void pc_conn_write2(struct pc_conn *c, char *b1, const char *p1, size_t n1, char *b2, const char *p2, size_t n2);
/* The response is complete: log it, then read the next request or close. */
void pc_conn_finish(struct pc_conn *c);
/* The response cannot be completed (upstream broke mid-body): close now so
 * the client sees a truncated response, never a wrong one. */
void pc_conn_abort(struct pc_conn *c);
/* Call pc_respond_replay_step() after `ms` (paced replay). */
void pc_conn_wait(struct pc_conn *c, uint64_t ms);
/* Free a held entry. */
void pc_held_release(struct pc_held *h);
/* Header lookup by case-insensitive name; NULL if absent. */
const char *pc_req_header(const struct pc_req *r, const char *name, size_t *len);
/* Shutdown: close idle connections, let busy ones finish and close. */
void pc_conn_shutdown_all(struct pc_worker *w);

#endif
