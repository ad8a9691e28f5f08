/* proxy.c — decides what happens to one request and starts it: admin
 * endpoint, cache hit, or a flight to upstream (MISS when cacheable, BYPASS
 * otherwise). The hit path opens only a read transaction and compares the
 * stored canonical request with the current one before serving. */
#include "proxy.h"
#include "clock.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin.h"
#include "cache.h"
#include "canon.h"
#include "config.h"
#include "conn.h"
#include "entry.h"
#include "error.h"
#include "flight.h"
#include "key.h"
#include "log.h"
#include "nearest.h"
#include "rawkey.h"
#include "respond.h"
#include "route.h"
#include "server.h"
#include "sse.h"
#include "upstream.h"
#include "writer.h"

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

/* ---- the conn's side of a flight ---- */

/* The conn behind a subscription; a follower answers as COALESCED. */
static struct pc_conn *conn_of(struct pc_sub *s) {
  struct pc_conn *c = container_of(s, struct pc_conn, sub);
  if (s->follower) c->resp.cache = "COALESCED";
  return c;
}

/* stale-if-error: an upstream 5xx or 429 is replaced by the expired entry. */
static void sub_head(struct pc_sub *s, int status, const char *headers, size_t len) {
  struct pc_conn *c = conn_of(s);
  if (status == 429) c->resp.err_class = PC_ERRC_UPSTREAM_429;
  else if (status >= 500) c->resp.err_class = PC_ERRC_UPSTREAM_5XX;
  else if (status >= 400) c->resp.err_class = PC_ERRC_UPSTREAM_4XX;
  if (c->stale.block && (status >= 500 || status == 429)) {
    c->swallow = 1;
    return;
  }
  pc_respond_head(c, status, headers, len);
}

/* A client that reads slower than upstream sends would make its write queue
 * grow without bound; past this it is cut off (the exchange goes on for the
 * others and for the cache). */
#define PC_MAX_PENDING_WRITE ((size_t)32 << 20)

static void sub_body(struct pc_sub *s, const char *p, size_t n) {
  struct pc_conn *c = conn_of(s);
  if (c->swallow) return;
  if (c->tcp.write_queue_size > PC_MAX_PENDING_WRITE) {
    pc_log_warn("client too slow: %zu bytes queued, closing its connection", c->tcp.write_queue_size);
    pc_conn_abort(c);
    return;
  }
  pc_respond_body(c, p, n);
}

static void serve_stale(struct pc_conn *c) {
  struct pc_held h = c->stale;
  memset(&c->stale, 0, sizeof c->stale);
  int64_t now = pc_now_ms();
  c->resp.cache = "STALE";
  pc_usage_read(h.e.usage.p, h.e.usage.n, &c->resp.usage);
  pc_respond_hit(c, h.block, &h.e, now > h.e.created_ms ? (now - h.e.created_ms) / 1000 : 0, 0);
}

static void sub_end(struct pc_sub *s, int rc, int64_t upstream_us) {
  struct pc_conn *c = conn_of(s);
  c->resp.upstream_us = upstream_us;
  if (s->follower) c->resp.usage = s->usage;
  if (rc == PC_EUPCONNECT) c->resp.err_class = PC_ERRC_UPSTREAM_CONNECT;
  else if (rc == PC_EUPTIMEOUT) c->resp.err_class = PC_ERRC_UPSTREAM_TIMEOUT;
  else if (rc == PC_EUPPROTO) c->resp.err_class = PC_ERRC_UPSTREAM_PROTOCOL;
  if (c->swallow || (rc && rc != PC_ECANCELED && !c->resp.head_sent && c->stale.block)) serve_stale(c);
  else if (!rc) pc_respond_end(c);
  else if (c->resp.head_sent) pc_conn_abort(c); /* truncated: the client must see it cut */
  else if (rc == PC_EUPTIMEOUT)
    pc_respond_error(c, 504, "upstream_timeout", "upstream did not answer within --upstream-timeout");
  else if (rc == PC_EUPCONNECT) pc_respond_error(c, 502, "upstream_unreachable", "could not connect to upstream");
  else if (rc == PC_ECANCELED) pc_respond_error(c, 503, "shutting_down", "promptcache is shutting down");
  else pc_respond_error(c, 502, "upstream_error", "upstream sent an invalid or incomplete response");
}

static const struct pc_sub_ops sub_ops = {sub_head, sub_body, sub_end};

/* ---- request analysis ---- */

static int name_eq(const char *a, size_t n, const char *lit) { return strlen(lit) == n && !strncasecmp(a, lit, n); }

/* Request headers never forwarded: hop-by-hop, framing that libcurl redoes,
 * and the proxy's own controls. */
static int dropped_request_header(const char *name, size_t n) {
  static const char *const drop[] = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
                                     "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
                                     "expect", "accept-encoding", "cache-control"};
  for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
    if (name_eq(name, n, drop[i])) return 1;
  return n >= 14 && !strncasecmp(name, "x-promptcache-", 14);
}

/* Next element of a comma-separated header value, spaces trimmed; 0 at the end. */
static int next_token(const char **p, const char *end, const char **tok, size_t *len) {
  while (*p < end && (**p == ' ' || **p == ',')) (*p)++;
  if (*p >= end) return 0;
  *tok = *p;
  while (*p < end && **p != ',') (*p)++;
  *len = (size_t)(*p - *tok);
  while (*len && (*tok)[*len - 1] == ' ') (*len)--;
  return 1;
}

/* Is `name` listed in the Connection header (and so hop-by-hop)? */
static int named_by_connection(const struct pc_req *r, const char *name, size_t n) {
  size_t clen, tl;
  const char *conn = pc_req_header(r, "connection", &clen), *tok;
  if (!conn) return 0;
  for (const char *p = conn, *end = conn + clen; next_token(&p, end, &tok, &tl);)
    if (tl == n && !strncasecmp(tok, name, n)) return 1;
  return 0;
}

static int build_upstream_headers(const struct pc_req *r, struct curl_slist **out) {
  int rc = 0, has_ctype = 0, has_accept = 0;
  for (size_t i = 0; i < r->nh && !rc; i++) {
    const char *name = r->hbuf.data + r->h[i].name, *val = r->hbuf.data + r->h[i].value;
    size_t n = r->h[i].nlen;
    if (dropped_request_header(name, n) || named_by_connection(r, name, n)) continue;
    has_ctype |= name_eq(name, n, "content-type");
    has_accept |= name_eq(name, n, "accept");
    rc = pc_upstream_header(out, name, n, val, r->h[i].vlen);
  }
  /* Stop libcurl from adding headers the client did not send. */
  if (!rc) rc = pc_upstream_header_suppress(out, "Expect");
  if (!rc && !has_ctype) rc = pc_upstream_header_suppress(out, "Content-Type");
  if (!rc && !has_accept) rc = pc_upstream_header_suppress(out, "Accept");
  return rc;
}

static int upstream_url(const struct pc_route_match *m, pc_buf *url) {
  int rc = pc_buf_puts(url, m->upstream);
  if (!rc) rc = m->path_len ? pc_buf_append(url, m->path, m->path_len) : pc_buf_putc(url, '/');
  if (!rc && m->query) rc = pc_buf_printf(url, "?%s", m->query);
  return rc;
}

/* Fingerprint of whatever credential the request carries, or "". */
static void credential_fp(struct pc_conn *c, const struct pc_route_match *m, char out[PC_FP_LEN * 2 + 1]) {
  static const char *const names[] = {"authorization", "x-api-key", "api-key", "x-goog-api-key"};
  pc_buf cred;
  pc_buf_init(&cred, PC_MAX_HEADER_BYTES * 2);
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    size_t n;
    const char *v = pc_req_header(&c->req, names[i], &n);
    if (!v) continue;
    pc_buf_printf(&cred, "%s:", names[i]);
    pc_buf_append(&cred, v, n);
    pc_buf_putc(&cred, '\n');
  }
  if (m->query) {
    pc_buf scratch;
    pc_buf_init(&scratch, PC_MAX_HEADER_BYTES);
    pc_key_sort_query(m->query, &scratch, &cred);
    pc_buf_free(&scratch);
  }
  out[0] = '\0';
  if (cred.len) pc_key_fingerprint(c->w->secret, sizeof c->w->secret, cred.data, cred.len, out);
  pc_buf_free(&cred);
}

/* Per-request cache controls (SPEC §5). */
struct controls {
  int no_store, no_cache, only_if_cached, paced;
  int64_t max_age_s; /* -1: any age */
  int64_t ttl_ms;
};

static int parse_controls(struct pc_conn *c, struct controls *ct) {
  size_t n;
  const char *v = pc_req_header(&c->req, "cache-control", &n);
  memset(ct, 0, sizeof *ct);
  ct->max_age_s = -1;
  ct->ttl_ms = c->w->cfg->ttl_ms;
  ct->paced = c->w->cfg->replay_pacing_original;
  const char *tok;
  size_t tl;
  for (const char *p = v, *end = v ? v + n : NULL; v && next_token(&p, end, &tok, &tl);) {
    if (tl == 8 && !strncasecmp(tok, "no-store", 8)) ct->no_store = 1;
    else if (tl == 8 && !strncasecmp(tok, "no-cache", 8)) ct->no_cache = 1;
    else if (tl == 14 && !strncasecmp(tok, "only-if-cached", 14)) ct->only_if_cached = 1;
    else if (tl > 8 && !strncasecmp(tok, "max-age=", 8)) {
      char num[24];
      size_t nl = tl - 8 < sizeof num - 1 ? tl - 8 : sizeof num - 1;
      memcpy(num, tok + 8, nl);
      num[nl] = '\0';
      char *e;
      long long a = strtoll(num, &e, 10);
      if (*e || a < 0) return -1;
      ct->max_age_s = a;
    }
  }
  const char *ttl = pc_req_header(&c->req, "x-promptcache-ttl", NULL);
  if (ttl && pc_config_parse_duration(ttl, &ct->ttl_ms)) return -2;
  const char *pacing = pc_req_header(&c->req, "x-promptcache-pacing", NULL);
  if (pacing) ct->paced = !strcasecmp(pacing, "original");
  return 0;
}

/* Serve from the cache if a fresh entry for exactly this request exists. An
 * entry that matches but is expired (or older than max-age) is kept in
 * c->stale for stale-if-error. */
/* A private copy of an entry (for stale-if-error or a paced replay, which
 * outlive the read txn). */
static int hold_copy(const void *p, size_t n, struct pc_held *h) {
  char *block = malloc(n ? n : 1);
  if (!block) return PC_ENOMEM;
  memcpy(block, p, n);
  if (pc_entry_decode(block, n, 0, &h->e)) {
    free(block);
    return PC_ECORRUPT;
  }
  h->block = block;
  return 0;
}

/* Serve from the cache if a fresh entry for exactly this request exists;
 * zero-copy: the response is written from the LMDB map while the read txn
 * is held. An entry that matches but is expired (or older than max-age) is
 * copied to c->stale for stale-if-error. */
static int try_hit(struct pc_conn *c, const struct pc_key *key, const pc_buf *material, const struct controls *ct) {
  pc_cache *cache = c->w->cache;
  const void *p;
  size_t n;
  struct pc_entry e;
  if (pc_cache_get_ref(cache, key->b, &p, &n)) return 0;
  if (pc_entry_decode(p, n, 0, &e) || e.request.n != material->len ||
      memcmp(e.request.p, material->data, material->len)) {
    pc_cache_release(cache);
    return 0;
  }
  int64_t now = pc_now_ms();
  int64_t age = now > e.created_ms ? (now - e.created_ms) / 1000 : 0;
  /* replay serves recordings whatever their age: a CI fixture must not rot.
   * max-age=N accepts entries younger than N seconds, to the millisecond. */
  int fresh = c->w->cfg->mode == PC_MODE_REPLAY ||
              !((e.expires_ms && now >= e.expires_ms) || (ct->max_age_s >= 0 && now - e.created_ms >= ct->max_age_s * 1000));
  if (!fresh) {
    hold_copy(p, n, &c->stale);
    pc_cache_release(cache);
    return 0;
  }
  c->resp.cache = "HIT";
  pc_usage_read(e.usage.p, e.usage.n, &c->resp.usage);
  pc_writer_touch(c->w->port, key->b); /* batched: for LRU eviction */
  if (ct->paced && (e.flags & PC_ENTRY_F_SSE)) {
    struct pc_held h = {0};
    int rc = hold_copy(p, n, &h);
    pc_cache_release(cache);
    if (rc) pc_respond_error(c, 500, "internal_error", pc_strerror(rc));
    else pc_respond_hit(c, h.block, &h.e, age, 1);
    return 1;
  }
  pc_respond_hit_borrowed(c, &e, age);
  pc_cache_release(cache); /* before finishing: the next pipelined request may look up */
  pc_conn_finish(c);
  return 1;
}

/* Everything a request for a flight may hold that the flight did not take. */
static void free_flight_req(struct pc_flight_req *fr) {
  pc_buf_free(&fr->url);
  pc_buf_free(&fr->body);
  pc_buf_free(&fr->material);
  pc_upstream_headers_free(fr->headers);
  fr->headers = NULL;
}

/* Start the exchange, or join an identical one in flight on any worker
 * (pc_flight_start claims the key atomically). */
static void start_flight(struct pc_conn *c, const struct pc_route_match *m, struct pc_flight_req *fr) {
  int rc = upstream_url(m, &fr->url);
  if (!rc) rc = build_upstream_headers(&c->req, &fr->headers);
  if (!rc) {
    fr->method = c->req.method;
    fr->body = c->req.body; /* hand-over: the conn gets a fresh body buffer */
    pc_buf_init(&c->req.body, c->w->cfg->max_body);
    c->sub.ops = &sub_ops;
    rc = pc_flight_start(c->w, fr, &c->sub); /* PC_EEXISTS: joined an identical one */
  }
  if (rc) free_flight_req(fr);
  if (rc && rc != PC_EEXISTS) pc_respond_error(c, 500, "internal_error", pc_strerror(rc));
}

static void copy_str(char *dst, size_t cap, const char *s, size_t n) {
  if (n >= cap) n = cap - 1;
  memcpy(dst, s, n);
  dst[n] = '\0';
}

/* Canonicalize and key a cacheable request. Returns 0 when it can be cached. */
static int key_request(struct pc_conn *c, const struct pc_route_match *m, struct pc_flight_req *fr, int *stream) {
  const struct pc_config *cfg = c->w->cfg;
  struct pc_canon_info info;
  pc_buf *canon = &c->w->scratch, *material = &c->w->material; /* per loop: no allocation per hit */
  pc_buf_reset(canon);
  pc_buf_reset(material);
  int rc = pc_canon_json(c->req.body.data ? c->req.body.data : "", c->req.body.len,
                         (const char *const *)cfg->ignore_fields.v, cfg->ignore_fields.n, canon, &info);
  if (!rc) {
    char fp[PC_FP_LEN * 2 + 1] = "";
    size_t nslen = 0;
    const char *ns = pc_req_header(&c->req, "x-promptcache-namespace", &nslen);
    struct pc_key_input in = {.route = m->route, .method = c->req.method, .path = m->path,
                              .path_len = m->path_len, .query = m->query, .ns = ns ? ns : "",
                              .cred_fp_hex = fp, .body = canon->data, .body_len = canon->len};
    if (cfg->key_scope == PC_SCOPE_CREDENTIAL) credential_fp(c, m, fp);
    for (int i = 0; i < PC_KEY_N_HEADERS; i++) in.headers[i] = pc_req_header(&c->req, pc_key_headers[i], NULL);
    rc = pc_key_material(&in, material);
    copy_str(fr->ns, sizeof fr->ns, ns ? ns : "", nslen);
  }
  if (!rc) {
    pc_key_hash(material->data, material->len, &fr->key);
    pc_key_hex(&fr->key, c->resp.key);
    copy_str(fr->route, sizeof fr->route, m->route, strlen(m->route));
    copy_str(fr->path, sizeof fr->path, m->path, m->path_len);
    copy_str(fr->model, sizeof fr->model, info.model, strlen(info.model));
    copy_str(c->resp.model, sizeof c->resp.model, info.model, strlen(info.model));
    *stream = info.stream;
  }
  return rc;
}

/* Replay mode never contacts upstream: a miss is a 424 that explains itself
 * (the nearest recorded request and where it differs), also in the log. */
static void replay_miss(struct pc_conn *c, const struct pc_route_match *m, const struct pc_flight_req *fr) {
  struct pc_nearest near;
  pc_buf body, text;
  pc_buf_init(&body, 1 << 20);
  pc_buf_init(&text, 1 << 20);
  int cacheable = fr->material.len > 0;
  int rc = cacheable ? pc_nearest_find(c->w->cache, m->route, fr->path, fr->material.data, fr->material.len, &near) : 0;
  if (!cacheable) memset(&near, 0, sizeof near);
  const char *why = cacheable ? "no recorded response for this request (replay mode never contacts upstream)"
                              : "this request is not cacheable and replay mode never contacts upstream";
  if (!rc) rc = pc_buf_puts(&body, "{\"error\":{\"type\":\"promptcache_replay_miss\",\"code\":\"replay_miss\",\"message\":");
  if (!rc) rc = pc_nearest_text(&near, &text);
  pc_buf msg;
  pc_buf_init(&msg, 2 << 20);
  if (!rc) rc = pc_buf_printf(&msg, "%s; %s", why, text.data ? text.data : "");
  if (!rc) rc = pc_json_write_string(&body, msg.data, msg.len);
  if (!rc && cacheable) rc = pc_buf_printf(&body, ",\"key\":\"%s\",\"nearest\":", c->resp.key);
  else if (!rc) rc = pc_buf_puts(&body, ",\"key\":null,\"nearest\":");
  if (!rc) rc = pc_nearest_json(&near, &body);
  if (!rc) rc = pc_buf_puts(&body, "}}\n");
  pc_log_warn("replay miss %s %.*s key=%s: %s", c->req.method, (int)strcspn(c->req.target.data, "?"),
              c->req.target.data, cacheable ? c->resp.key : "-", msg.data ? msg.data : pc_strerror(rc));
  c->resp.replay_miss = 1;
  c->resp.extra_headers = "x-should-retry: false\r\n";
  if (rc) pc_respond_error(c, 424, "replay_miss", "replay miss (explanation failed)");
  else pc_respond_content(c, 424, "application/json", body.data, body.len);
  pc_nearest_free(&near);
  pc_buf_free(&body);
  pc_buf_free(&text);
  pc_buf_free(&msg);
}

/* Whether a cacheable request looks the cache up (SPEC §5, §6). */
static int looks_up(const struct pc_config *cfg, const struct controls *ct) {
  return cfg->mode == PC_MODE_REPLAY || (!ct->no_store && !ct->no_cache && cfg->mode != PC_MODE_RECORD);
}

enum memo { MEMO_UNKNOWN, MEMO_HIT, MEMO_MISS };

/* An exact repeat of a recently keyed request is looked up without
 * canonicalizing again. MEMO_MISS: it was looked up and is not served (an
 * expired entry is kept in c->stale), so the normal path, which computes the
 * same key, need not look up again. */
static enum memo memo_lookup(struct pc_conn *c, const struct controls *ct) {
  struct pc_key key;
  const char *material, *model;
  size_t mlen;
  if (pc_rawkey_get(c->w->rawkey, &c->w->rawid, &key, &material, &mlen, &model)) return MEMO_UNKNOWN;
  pc_key_hex(&key, c->resp.key);
  copy_str(c->resp.model, sizeof c->resp.model, model, strlen(model));
  const pc_buf view = {(char *)material, mlen, mlen, mlen};
  return try_hit(c, &key, &view, ct) ? MEMO_HIT : MEMO_MISS;
}

/* A cacheable request: hit, coalesce, or miss (SPEC §5, §6). */
static void handle_cacheable(struct pc_conn *c, const struct pc_route_match *m, struct pc_flight_req *fr,
                             const struct controls *ct, int stream, int looked_up) {
  const struct pc_config *cfg = c->w->cfg;
  int replay = cfg->mode == PC_MODE_REPLAY;
  int lookup = looks_up(cfg, ct) && !looked_up;
  int stores = cfg->mode == PC_MODE_READWRITE || cfg->mode == PC_MODE_RECORD;
  if (lookup && try_hit(c, &fr->key, &c->w->material, ct)) {
    free_flight_req(fr);
    return;
  }
  /* a miss: the canonical request goes with the flight (hand-over; the
   * loop starts a fresh buffer for its next request) */
  pc_buf_free(&fr->material);
  fr->material = c->w->material;
  pc_buf_init(&c->w->material, c->w->material.max);
  if (replay) {
    c->resp.cache = "MISS";
    replay_miss(c, m, fr);
    free_flight_req(fr);
    return;
  }
  if (ct->only_if_cached) {
    free_flight_req(fr);
    c->resp.cache = "MISS";
    pc_respond_error(c, 504, "not_cached", "Cache-Control: only-if-cached and no fresh entry is stored");
    return;
  }
  c->resp.cache = ct->no_store ? "BYPASS" : ct->no_cache ? "REFRESH" : "MISS";
  fr->store = stores && !ct->no_store;
  fr->coalesce = !ct->no_store && !ct->no_cache;
  fr->stream = stream;
  fr->terminal = stream ? pc_sse_terminal_for(m->path, m->path_len) : PC_SSE_NONE;
  fr->ttl_ms = ct->ttl_ms;
  start_flight(c, m, fr);
}

void pc_proxy_handle(struct pc_conn *c) {
  const struct pc_config *cfg = c->w->cfg;
  const char *target = c->req.target.data ? c->req.target.data : "";
  if (target[0] != '/') {
    c->close_after = 1;
    pc_respond_error(c, 400, "bad_request", "request target must be a path (origin-form)");
    return;
  }
  if (!strncmp(target, "/_promptcache/", 14) || !strcmp(target, "/_promptcache") ||
      !strncmp(target, "/_promptcache?", 14)) {
    pc_admin_handle(c);
    return;
  }
  struct controls ct;
  int crc = parse_controls(c, &ct);
  if (crc) {
    pc_respond_error(c, 400, "bad_request",
                     crc == -1 ? "invalid Cache-Control max-age" : "invalid X-PromptCache-TTL: expected a duration like 30s");
    return;
  }
  struct pc_route_match m;
  pc_route_match(cfg, target, &m);
  c->resp.route = m.route;
  int cacheable = cfg->mode != PC_MODE_OFF && !strcmp(c->req.method, "POST") &&
                  pc_route_cacheable(cfg, m.path, m.path_len);
  int memo = cacheable && looks_up(cfg, &ct) && pc_rawkey_identity(c, &m, &c->w->rawid) == 0;
  enum memo looked = memo ? memo_lookup(c, &ct) : MEMO_UNKNOWN;
  if (looked == MEMO_HIT) return;
  struct pc_flight_req fr;
  memset(&fr, 0, sizeof fr);
  pc_buf_init(&fr.url, 64 * 1024);
  pc_buf_init(&fr.material, 0);
  int stream = 0;
  if (cacheable && key_request(c, &m, &fr, &stream) == 0) {
    if (memo && looked == MEMO_UNKNOWN)
      pc_rawkey_put(c->w->rawkey, &c->w->rawid, &fr.key, c->w->material.data, c->w->material.len, fr.model);
    handle_cacheable(c, &m, &fr, &ct, stream, looked == MEMO_MISS);
    return;
  }
  c->resp.cache = "BYPASS";
  c->resp.key[0] = '\0';
  if (cfg->mode == PC_MODE_REPLAY) {
    replay_miss(c, &m, &fr);
    free_flight_req(&fr);
    return;
  }
  start_flight(c, &m, &fr);
}
