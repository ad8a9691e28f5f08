/* upstream.h — the upstream client. A fetch is one upstream exchange; its
 * callbacks run on the loop thread. http:// upstreams are served by our own
 * HTTP/1.1 client (uphttp.h); https:// ones by libcurl: one multi handle per
 * event loop, driven by uv_poll (one per socket) and one uv_timer (DESIGN
 * habit 8). Both behave the same behind these functions. */
#ifndef PC_UPSTREAM_H
#define PC_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

struct curl_slist;
struct pc_upstream;
struct pc_fetch;

struct pc_fetch_ops {
  /* The final (non-1xx) response status and its header lines
   * ("Name: value\r\n" each, status line excluded), once. */
  void (*on_head)(void *ud, int status, const char *headers, size_t len);
  /* Decoded body bytes as they arrive. */
  void (*on_body)(void *ud, const char *p, size_t n);
  /* The exchange ended: 0 when the whole response arrived, else
   * PC_EUPCONNECT, PC_EUPTIMEOUT or PC_EUPPROTO. Called exactly once unless
   * the fetch was aborted; the fetch is freed right after. */
  void (*on_done)(void *ud, int rc);
};

struct pc_fetch_req {
  const char *method;
  const char *url;
  struct curl_slist *headers; /* taken over (freed with the fetch) */
  const char *body;           /* must stay valid until on_done / abort */
  size_t body_len;
  int has_body;
};

int pc_upstream_create(uv_loop_t *loop, const struct pc_config *cfg, struct pc_upstream **out);
/* Aborts every fetch (no callbacks) and closes the handles; frees in close callbacks. */
void pc_upstream_destroy(struct pc_upstream *up);

/* Start an exchange. On failure to start returns NULL (no callbacks). */
struct pc_fetch *pc_upstream_fetch(struct pc_upstream *up, struct pc_fetch_req *req, const struct pc_fetch_ops *ops,
                                   void *ud);
/* Cancel: no further callbacks for this fetch. */
void pc_upstream_abort(struct pc_fetch *f);
/* Append a header line to a request's header list (a curl_slist in
 * libcurl's spelling, built here so callers need no curl.h; free it with
 * pc_upstream_headers_free only). An empty value is sent as such. */
int pc_upstream_header(struct curl_slist **list, const char *name, size_t nlen, const char *value, size_t vlen);
/* Keep the client from sending its own default for this header (libcurl
 * has a few; uphttp adds only Host and Content-Length). */
int pc_upstream_header_suppress(struct curl_slist **list, const char *name);
void pc_upstream_headers_free(struct curl_slist *list);
/* Whether the response's end was marked by the protocol (HTTP/1.x:
 * Content-Length or chunked, or no body allowed: HEAD, 1xx, 204, 304;
 * HTTP/2: always), not by a closed connection,
 * which looks the same whether the body was complete or cut. Valid in
 * on_done. */
int pc_fetch_delimited(const struct pc_fetch *f);
/* Microseconds the fetch has taken so far (or took). */
int64_t pc_fetch_elapsed_us(const struct pc_fetch *f);

#endif
