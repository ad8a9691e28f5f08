/* http.h — HTTP/1.1 request parsing with limits: bytes in, a complete
 * request (struct pc_req) or an error status out. No sockets, no timers:
 * conn.c feeds it what the client sends; the fuzz target feeds it anything.
 * Limits: 64 KiB of request line and headers (431), at most PC_MAX_HEADERS
 * header fields (431), the body bound given at init (413), CONNECT (405),
 * anything llhttp rejects (400). Trailer fields of a chunked body are read
 * and dropped: they never join the request's headers. */
#ifndef PC_HTTP_H
#define PC_HTTP_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PC_MAX_HEADER_BYTES (64 * 1024)
#define PC_MAX_HEADERS 256

struct pc_header {
  uint32_t name, nlen, value, vlen; /* offsets into pc_req.hbuf */
};

/* One request as received. Buffers are kept between requests of a
 * keep-alive connection (small ones only: see pc_req_reset). */
struct pc_req {
  char method[24];
  pc_buf target;       /* request target as received */
  pc_buf hbuf;         /* header names and values, NUL-terminated each */
  struct pc_header *h; /* h_cap slots, grown on demand up to PC_MAX_HEADERS */
  size_t nh, h_cap;
  size_t header_bytes;
  pc_buf body;         /* the body's storage when it is owned */
  const char *body_at; /* the body: in `body`, or (borrowed) in the transport's read buffer */
  size_t body_len;
  int body_borrowed; /* body_at points outside `body`: valid only while the read is handled */
  int http_minor;
  int keep_alive;
  int expect_continue;
  uint64_t start_ns; /* when its first byte arrived (uv_hrtime) */
};

struct pc_http {
  llhttp_t parser;
  struct pc_req *req;
  size_t max_body;
  int error_status;    /* the status a failure is answered with (400, 405, 413, 431) */
  int in_message;      /* a request has begun arriving */
  int headers_done;    /* past the header block: fields now are trailers */
  int continue_wanted; /* Expect: 100-continue on HTTP/1.1: the transport answers it, then clears this */
  int upgrade;         /* the request just completed asked for an Upgrade */
};

enum pc_http_result {
  PC_HTTP_MORE,    /* everything was consumed; the request is not complete yet */
  PC_HTTP_REQUEST, /* a request is complete; *used bytes were consumed (pipelined bytes follow) */
  PC_HTTP_ERROR    /* malformed or over a limit: answer h->error_status and close */
};

void pc_http_init(struct pc_http *h, struct pc_req *req, size_t max_body);
/* Parse from p[0..n). After PC_HTTP_REQUEST the parser is ready for the
 * next request once the caller has reset the pc_req (pc_req_reset). */
enum pc_http_result pc_http_feed(struct pc_http *h, const char *p, size_t n, size_t *used);
/* While a body with a Content-Length arrives and at least `min` bytes of it
 * are still to come: room for up to `most` of them at the end of the
 * request's body buffer (*p, *n), so the transport can read them in place.
 * Bytes fed from there are taken without a copy. Returns 1, or 0 when
 * reading in place does not apply (then use a buffer of your own). */
int pc_http_body_room(struct pc_http *h, size_t min, size_t most, char **p, size_t *n);
/* llhttp's name for the last parse error (for the 400 message). */
const char *pc_http_error_name(const struct pc_http *h);

void pc_req_init(struct pc_req *r, size_t max_body);
/* Empty the request for the next one, keeping small buffers. */
void pc_req_reset(struct pc_req *r);
/* Give every buffer back (an idle connection); the request stays usable. */
int pc_req_release(struct pc_req *r); /* returns whether anything was freed */
/* Make a borrowed body owned (copied into `body`): before the request
 * outlives the read that brought it (the transport does it when a request
 * is still being answered after its read), or before `body` is handed on.
 * Returns 0 or PC_ENOMEM / PC_ETOOBIG. */
int pc_req_own_body(struct pc_req *r);
/* Header lookup by case-insensitive name (the first field of that name); NULL if absent. */
const char *pc_req_header(const struct pc_req *r, const char *name, size_t *len);

#endif
