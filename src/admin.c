/* admin.c — the /_promptcache/ endpoints. Access rules: with --admin-token every endpoint
 * but health and the dashboard page (which holds no data) needs
 * `Authorization: Bearer <token>` (compared in constant time); without a token, listening on a non-loopback address serves health
 * only, so a cache's contents are never exposed by accident. */
#include "admin.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "config.h"
#include "conn.h"
#include "error.h"
#include "json.h"
#include "key.h"
#include "purge.h"
#include "respond.h"
#include "server.h"
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

static int authorized(struct pc_conn *c) {
  const char *tok = c->w->cfg->admin_token;
  if (!tok) return 1;
  size_t n;
  const char *h = pc_req_header(&c->req, "authorization", &n);
  if (!h || n < 7 || strncasecmp(h, "Bearer ", 7)) return 0;
  return token_ok(h + 7, n - 7, tok);
}

static void send_buf(struct pc_conn *c, int status, const char *ctype, pc_buf *b, int rc) {
  if (rc) pc_respond_error(c, 500, "internal_error", pc_strerror(rc));
  else pc_respond_content(c, status, ctype, b->data ? b->data : "", b->len);
  pc_buf_free(b);
}

static void stats(struct pc_conn *c) {
  pc_buf b;
  pc_buf_init(&b, 64 << 20);
  send_buf(c, 200, "application/json", &b, pc_stats_json(c->w->cache, &b));
}

static void metrics(struct pc_conn *c) {
  pc_buf b;
  pc_buf_init(&b, 64 << 20);
  send_buf(c, 200, "text/plain; version=0.0.4; charset=utf-8", &b, pc_stats_prometheus(c->w->cache, &b));
}

static void dashboard(struct pc_conn *c) {
  /* the two symbols bracket one .incbin in assets.S */
  size_t n = (size_t)(pc_asset_dashboard_end - pc_asset_dashboard); // cppcheck-suppress comparePointers
  pc_respond_content(c, 200, "text/html; charset=utf-8", pc_asset_dashboard, n);
}

/* Selector from a JSON body {"all":true} | {"key":..} | {"namespace":..} | {"older_than":"7d"}. */
static int purge_selector(const struct pc_json *r, struct pc_purge_sel *s, char *err, size_t errlen) {
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
  if ((s->all != 0) + (s->has_key != 0) + (s->ns != NULL) + (s->older_than_ms > 0) != 1)
    return snprintf(err, errlen, "give exactly one of all, key, namespace, older_than"), -1;
  return 0;
}

static void purge(struct pc_conn *c) {
  struct pc_json_doc *doc = NULL;
  struct pc_purge_sel sel;
  char err[128];
  memset(&sel, 0, sizeof sel);
  if (pc_json_parse(c->req.body.data ? c->req.body.data : "", c->req.body.len, &doc, NULL) ||
      pc_json_root(doc)->type != PC_JSON_OBJECT) {
    pc_json_free(doc);
    pc_respond_error(c, 400, "bad_request", "purge needs a JSON object body, e.g. {\"namespace\":\"ci\"}");
    return;
  }
  if (purge_selector(pc_json_root(doc), &sel, err, sizeof err)) {
    pc_json_free(doc);
    pc_respond_error(c, 400, "bad_request", err);
    return;
  }
  size_t n = 0;
  int rc = pc_purge(c->w->cache, &sel, &n);
  pc_json_free(doc);
  if (rc) {
    pc_respond_error(c, 500, "internal_error", pc_strerror(rc));
    return;
  }
  char body[64];
  int len = snprintf(body, sizeof body, "{\"purged\":%zu}\n", n);
  pc_respond_content(c, 200, "application/json", body, (size_t)len);
}

static int is_get(const struct pc_conn *c) { return !strcmp(c->req.method, "GET") || !strcmp(c->req.method, "HEAD"); }

void pc_admin_handle(struct pc_conn *c) {
  const char *t = c->req.target.data;
  size_t plen = strcspn(t, "?");
  const char *name = t + 13; /* after "/_promptcache" */
  size_t nlen = plen > 13 ? plen - 13 : 0;
#define IS(s) (nlen == sizeof(s) - 1 && !memcmp(name, s, nlen))
  if (IS("/health")) {
    static const char ok[] = "{\"status\":\"ok\"}\n";
    pc_respond_content(c, 200, "application/json", ok, sizeof ok - 1);
    return;
  }
  int get = is_get(c);
  /* The dashboard page holds no data (it fetches /stats with the token the
   * user types in), and a browser cannot send a Bearer header when it opens
   * a page: so the page itself is served without the token. */
  if ((IS("/") || IS("")) && get && c->w->cfg->admin_token) {
    dashboard(c);
    return;
  }
  if (!pc_admin_open(c->w->cfg)) {
    pc_respond_error(c, 403, "forbidden", "admin endpoints are off: listening on a non-loopback address without --admin-token");
    return;
  }
  if (!authorized(c)) {
    c->resp.extra_headers = "WWW-Authenticate: Bearer realm=\"promptcache\"\r\n";
    pc_respond_error(c, 401, "unauthorized", "admin endpoints need Authorization: Bearer <--admin-token>");
    return;
  }
  if (IS("/stats") && get) stats(c);
  else if (IS("/metrics") && get) metrics(c);
  else if ((IS("/") || IS("")) && get) dashboard(c);
  else if (IS("/purge") && !strcmp(c->req.method, "POST")) purge(c);
  else if (IS("/stats") || IS("/metrics") || IS("/") || IS("") || IS("/purge"))
    pc_respond_error(c, 405, "method_not_allowed", "method not allowed on this admin endpoint");
  else pc_respond_error(c, 404, "not_found", "no such admin endpoint");
#undef IS
}
