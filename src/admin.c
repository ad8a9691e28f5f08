/* admin.c — the /_promptcache/ endpoints. Access rules: with --admin-token every endpoint
 * but health and the dashboard page (which holds no data) needs
 * `Authorization: Bearer <token>` (compared in constant time); without a token, listening on a non-loopback address
 * serves health only, so a cache's contents are never exposed by accident. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "json.h"
#include "key.h"
#include "purge.h"
#include "stats.h"

extern const char pc_asset_dashboard[], pc_asset_dashboard_end[];

static int is_loopback(const char *host) {
  return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcasecmp(host, "localhost");
}

int pc_admin_open(const struct pc_config *cfg) {
  if (cfg->admin_token) return 1;
  for (size_t i = 0; i < cfg->n_listen; i++)
    if (!is_loopback(cfg->listen[i].host)) return 0;
  return 1;
}

/* Constant-time: the time taken does not depend on where the bytes differ. */
static int token_ok(const char *got, size_t n, const char *want) {
  size_t wl = strlen(want);
  unsigned char diff = (unsigned char)(n != wl);
  for (size_t i = 0; i < wl; i++) diff |= (unsigned char)(want[i] ^ (i < n ? got[i] : 0));
  return diff == 0;
}

static int authorized(const struct pc_config *cfg, const struct pc_admin_req *rq) {
  const char *tok = cfg->admin_token;
  if (!tok) return 1;
  const char *h = rq->authorization;
  size_t n = rq->auth_len;
  if (!h || n < 7 || strncasecmp(h, "Bearer ", 7)) return 0;
  return token_ok(h + 7, n - 7, tok);
}

static void error(struct pc_admin_resp *o, int status, const char *code, const char *msg) {
  o->status = status;
  o->code = code;
  snprintf(o->msg, sizeof o->msg, "%s", msg);
}

static void content(struct pc_admin_resp *o, int status, const char *ctype, const char *body, size_t len) {
  o->status = status;
  o->ctype = ctype;
  o->body = body;
  o->len = len;
}

/* A body built into o->buf (or the error that stopped it). */
static void built(struct pc_admin_resp *o, const char *ctype, int rc) {
  if (rc)
    error(o, 500, "internal_error", pc_strerror(rc));
  else
    content(o, 200, ctype, o->buf.data ? o->buf.data : "", o->buf.len);
}

static void dashboard(struct pc_admin_resp *o) {
  /* the two symbols bracket one .incbin in assets.S */
  size_t n = (size_t)(pc_asset_dashboard_end - pc_asset_dashboard); // cppcheck-suppress comparePointers
  content(o, 200, "text/html; charset=utf-8", pc_asset_dashboard, n);
}

/* Selector from a JSON body {"all":true} | {"key":..} | {"namespace":..} | {"older_than":"7d"}. */
int pc_admin_purge_selector(const struct pc_json *r, struct pc_purge_sel *s, char *err, size_t errlen) {
  const struct pc_json *all = pc_json_get(r, "all");
  const char *key = pc_json_get_str(r, "key", NULL), *older = pc_json_get_str(r, "older_than", NULL);
  s->all = all && all->type == PC_JSON_TRUE;
  s->ns = pc_json_get_str(r, "namespace", NULL);
  if (key) {
    s->has_key = 1;
    if (pc_key_from_hex(key, (struct pc_key *)s->key)) return snprintf(err, errlen, "key must be 32 hex digits"), -1;
  }
  if (older && (pc_config_parse_duration(older, &s->older_than_ms) || s->older_than_ms <= 0))
    return snprintf(err, errlen, "older_than must be a duration like 7d"), -1;
  if (!pc_purge_sel_valid(s)) return snprintf(err, errlen, "give exactly one of all, key, namespace, older_than"), -1;
  return 0;
}

static void purge(pc_cache *cache, const struct pc_admin_req *rq, struct pc_admin_resp *o) {
  struct pc_json_doc *doc = NULL;
  struct pc_purge_sel sel;
  char err[128];
  memset(&sel, 0, sizeof sel);
  if (pc_json_parse(rq->body ? rq->body : "", rq->body_len, &doc, NULL) || pc_json_root(doc)->type != PC_JSON_OBJECT) {
    pc_json_free(doc);
    error(o, 400, "bad_request", "purge needs a JSON object body, e.g. {\"namespace\":\"ci\"}");
    return;
  }
  if (pc_admin_purge_selector(pc_json_root(doc), &sel, err, sizeof err)) {
    pc_json_free(doc);
    error(o, 400, "bad_request", err);
    return;
  }
  size_t n = 0;
  int rc = pc_purge(cache, &sel, &n);
  if (!rc && rq->shared != PC_ADMIN_NO_SHARED) { /* the caller goes on fleet-wide */
    o->fleet_purge = 1;
    o->purged = n;
    o->sel = sel;
    o->doc = doc;
    return;
  }
  pc_json_free(doc);
  if (!rc) rc = pc_buf_printf(&o->buf, "{\"purged\":%zu}\n", n);
  built(o, "application/json", rc);
}

static int is_get(const struct pc_admin_req *rq) { return !strcmp(rq->method, "GET") || !strcmp(rq->method, "HEAD"); }

int pc_admin_path(const char *t) {
  return !strncmp(t, "/_promptcache/", 14) || !strcmp(t, "/_promptcache") || !strncmp(t, "/_promptcache?", 14);
}

void pc_admin_resp_free(struct pc_admin_resp *r) {
  pc_buf_free(&r->buf);
  pc_json_free(r->doc);
  r->doc = NULL;
}

void pc_admin_handle(const struct pc_config *cfg, pc_cache *cache, const struct pc_admin_req *rq,
                     struct pc_admin_resp *o) {
  memset(o, 0, sizeof *o);
  pc_buf_init(&o->buf, 64 << 20);
  const char *t = rq->target;
  size_t plen = strcspn(t, "?");
  const char *name = t + 13; /* after "/_promptcache" */
  size_t nlen = plen > 13 ? plen - 13 : 0;
#define IS(s) (nlen == sizeof(s) - 1 && !memcmp(name, s, nlen))
  if (IS("/health")) {
    static const char ok[] = "{\"status\":\"ok\"}\n", up[] = "{\"status\":\"ok\",\"shared\":\"up\"}\n",
                      down[] = "{\"status\":\"ok\",\"shared\":\"down\"}\n";
    const char *b = rq->shared == PC_ADMIN_NO_SHARED ? ok : rq->shared == PC_ADMIN_SHARED_UP ? up : down;
    content(o, 200, "application/json", b, strlen(b));
    return;
  }
  int get = is_get(rq);
  /* The dashboard page holds no data (it fetches /stats with the token the
   * user types in), and a browser cannot send a Bearer header when it opens
   * a page: so the page itself is served without the token. */
  if ((IS("/") || IS("")) && get && cfg->admin_token) {
    dashboard(o);
    return;
  }
  if (!pc_admin_open(cfg)) {
    error(o, 403, "forbidden", "admin endpoints are off: listening on a non-loopback address without --admin-token");
    return;
  }
  if (!authorized(cfg, rq)) {
    o->extra_headers = "WWW-Authenticate: Bearer realm=\"promptcache\"\r\n";
    error(o, 401, "unauthorized", "admin endpoints need Authorization: Bearer <--admin-token>");
    return;
  }
  if (IS("/stats") && get)
    built(o, "application/json", pc_stats_json(cache, &o->buf));
  else if (IS("/metrics") && get)
    built(o, "text/plain; version=0.0.4; charset=utf-8", pc_stats_prometheus(cache, &o->buf));
  else if ((IS("/") || IS("")) && get)
    dashboard(o);
  else if (IS("/purge") && !strcmp(rq->method, "POST"))
    purge(cache, rq, o);
  else if (IS("/stats") || IS("/metrics") || IS("/") || IS("") || IS("/purge"))
    error(o, 405, "method_not_allowed", "method not allowed on this admin endpoint");
  else
    error(o, 404, "not_found", "no such admin endpoint");
#undef IS
}
