/* admin.h — the /_promptcache/ endpoints (SPEC §7): health, stats (JSON),
 * metrics (Prometheus), the HTML dashboard, and purge. Never forwarded.
 * A function from what the request says to what the response is: the
 * request flow writes it. */
#ifndef PC_ADMIN_H
#define PC_ADMIN_H

#include <stddef.h>

#include "buf.h"
#include "cache.h"

struct pc_config;

struct pc_admin_req {
  const char *method;
  const char *target; /* "/_promptcache/..." */
  const char *authorization; /* header value, or NULL */
  size_t auth_len;
  const char *body;
  size_t body_len;
};

struct pc_admin_resp {
  int status;
  const char *code;          /* an error: its code (the message is in msg) ... */
  char msg[160];
  const char *ctype;         /* ... or content of this type: */
  const char *body;          /* static bytes, or buf.data */
  size_t len;
  pc_buf buf;                /* owns a built body; free with pc_admin_resp_free */
  const char *extra_headers; /* "Name: value\r\n" lines, static */
};

/* Whether `target` is an admin path. */
int pc_admin_path(const char *target);
void pc_admin_handle(const struct pc_config *cfg, pc_cache *cache, const struct pc_admin_req *rq,
                     struct pc_admin_resp *out);
void pc_admin_resp_free(struct pc_admin_resp *r);
/* Whether admin endpoints other than health are served at all (a token is
 * set, or every listener is on a loopback address). */
int pc_admin_open(const struct pc_config *cfg);

#endif
