/* uphttp.h — the HTTP/1.1 client for http:// upstreams, on the loop's own
 * sockets: libcurl costs ~90,000 instructions per exchange on a path nginx
 * runs in a small fraction of that, so plain-HTTP upstreams get this lean
 * client and libcurl keeps TLS. It implements upstream.h's fetch contract
 * (same callbacks, same error codes, same meaning of "delimited");
 * upstream.c is its only user and dispatches on the URL.
 *
 * Per loop: a pool of idle keep-alive connections per origin (host, port),
 * reused last-in first-out and watched while idle (any byte or EOF closes
 * one); fetch objects and their buffers are pooled too. Names are resolved
 * with uv_getaddrinfo and cached for a minute; IP literals need no lookup.
 * One uv_timer per loop serves every deadline: connect, whole exchange and
 * idle connections each sit in a first-in first-out list whose deadlines
 * only grow, so only the heads are ever looked at. */
#ifndef PC_UPHTTP_H
#define PC_UPHTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "upstream.h"

/* Both clients' fetch objects begin with this, so upstream.c can tell them
 * apart behind the opaque struct pc_fetch the rest of the program holds. */
enum pc_fetch_via { PC_VIA_CURL = 1, PC_VIA_UPHTTP };
struct pc_fetch_tag {
  enum pc_fetch_via via;
};

struct pc_uphttp;
struct pc_uphttp_fetch; /* begins with a struct pc_fetch_tag */

int pc_uphttp_create(uv_loop_t *loop, const struct pc_config *cfg, struct pc_uphttp **out);
/* Aborts every fetch (no callbacks), closes every connection; memory goes
 * in close callbacks. Safe from inside a fetch's callback. */
void pc_uphttp_destroy(struct pc_uphttp *h);

/* Start an exchange (see pc_upstream_fetch). Returns 0 with *out set;
 * PC_EINVAL when the URL is not one this client serves (not http://, user
 * info, a port it cannot read: libcurl takes those, with its own errors);
 * PC_ENOMEM. The request head is written at once: the header list is only
 * read (the caller frees it), the body must stay valid until on_done or
 * abort. No callback runs before this returns. */
int pc_uphttp_fetch(struct pc_uphttp *h, struct pc_fetch_req *req, const struct pc_fetch_ops *ops, void *ud,
                    struct pc_uphttp_fetch **out);
void pc_uphttp_abort(struct pc_uphttp_fetch *f);
int pc_uphttp_delimited(const struct pc_uphttp_fetch *f);
int64_t pc_uphttp_elapsed_us(const struct pc_uphttp_fetch *f);

/* ---- pure parts (unit-tested) ---- */

/* An http:// URL split for the client: `host` is the name or address
 * (IPv6 without brackets, NUL-terminated), `hosthdr` the Host header value
 * (the port left out when it is 80, as libcurl does), `target` the request
 * target (path and query after the authority; "/" when there is none). */
struct pc_uphttp_url {
  char host[256];
  char hosthdr[264];
  uint16_t port;
  const char *authority; /* into the URL: the authority's bytes (the origin's key) */
  size_t authority_len;
  const char *target;
  size_t target_len;
};
/* Returns 0, or PC_EINVAL for anything but http://host[:port][/...] with a
 * host of at most 255 bytes and no user info. */
int pc_uphttp_parse_url(const char *url, struct pc_uphttp_url *out);

enum pc_uphttp_coding { PC_CODING_IDENTITY, PC_CODING_GZIP, PC_CODING_DEFLATE };
/* Fold one Content-Encoding value into *coding (start at IDENTITY; a
 * response may carry several fields). Returns PC_EPROTO for a coding this
 * client cannot decode (br, zstd, compress, unknown, or two stacked). */
int pc_uphttp_parse_coding(const char *v, size_t n, enum pc_uphttp_coding *coding);

/* The request head: request line, Host, the forwarded header lines (a list
 * from pc_upstream_header: "Name: value" sent, "Name;" sent empty, "Name:"
 * only keeps a default away, and this client adds none), Content-Length
 * when `clen` >= 0, blank line. */
int pc_uphttp_request_head(pc_buf *out, const char *method, const char *target, size_t target_len, const char *hosthdr,
                           const struct curl_slist *headers, long long clen);

#endif
