/* admin.h — the /_promptcache/ endpoints (SPEC §7): health, stats (JSON),
 * metrics (Prometheus), the HTML dashboard, and purge. Never forwarded.
 * A function from what the request says to what the response is: the
 * request flow writes it. */
#ifndef PC_ADMIN_H
#define PC_ADMIN_H

#include <stddef.h>

#include "buf.h"
#include "cache.h"
#include "purge.h"

struct pc_config;

struct pc_admin_req {
  const char *method;
  const char *target;        /* "/_promptcache/..." */
  const char *authorization; /* header value, or NULL */
  size_t auth_len;
  const char *body;
  size_t body_len;
  enum { PC_ADMIN_NO_SHARED, PC_ADMIN_SHARED_DOWN, PC_ADMIN_SHARED_UP } shared; /* health says which */
};

struct pc_admin_resp {
  int status;
  const char *code; /* an error: its code (the message is in msg) ... */
  char msg[160];
  const char *ctype; /* ... or content of this type: */
  const char *body;  /* static bytes, or buf.data */
  size_t len;
  pc_buf buf;                /* owns a built body; free with pc_admin_resp_free */
  const char *extra_headers; /* "Name: value\r\n" lines, static */
  /* With a shared tier, a purge is done locally and then continues
   * fleet-wide: fleet_purge is set, `purged` local entries are gone, `sel`
   * (strings pointing into doc) is what to purge in the shared tier, and
   * the caller writes the response (no code, no body here). */
  int fleet_purge;
  size_t purged;
  struct pc_purge_sel sel;
  struct pc_json_doc *doc;
};

struct pc_json;
struct pc_json_doc;
/* A purge selector from a JSON object {"all":true} | {"key":..} |
 * {"namespace":..} | {"older_than":"7d"} (strings point into r). Returns 0,
 * or -1 with a one-line reason in err. */
int pc_admin_purge_selector(const struct pc_json *r, struct pc_purge_sel *s, char *err, size_t errlen);
/* Whether `target` is an admin path. */
int pc_admin_path(const char *target);
void pc_admin_handle(const struct pc_config *cfg, pc_cache *cache, const struct pc_admin_req *rq,
                     struct pc_admin_resp *out);
void pc_admin_resp_free(struct pc_admin_resp *r);
/* Whether admin endpoints other than health are served at all (a token is
 * set, or every listener is on a loopback address). */
int pc_admin_open(const struct pc_config *cfg);

#endif
