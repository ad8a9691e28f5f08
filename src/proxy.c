/* proxy.c — the request flow: for each complete request the transport hands
 * over, decide what happens and start it: an admin endpoint, a cache hit,
 * or a flight to upstream (MISS when cacheable, BYPASS otherwise).
 *   route → controls (policy) → canon → key → memo / LMDB lookup → hit
 *                                                                → flight
 * The hit path opens only a read transaction and compares the stored
 * canonical request with the current one before serving. This file owns
 * the exchange (exchange.h) and the flow's per-loop state, and implements
 * the transport's handler table (conn.h) and the server's application
 * table (server.h). */
#include "proxy.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "bodykey.h"
#include "cache.h"
#include "canon.h"
#include "clock.h"
#include "conn.h"
#include "entry.h"
#include "error.h"
#include "exchange.h"
#include "family.h"
#include "fleet.h"
#include "flight.h"
#include "json.h"
#include "key.h"
#include "log.h"
#include "nearest.h"
#include "policy.h"
#include "rawkey.h"
#include "respond.h"
#include "route.h"
#include "sequence.h"
#include "server.h"
#include "shared.h"
#include "sse.h"
#include "upstream.h"
#include "utf8.h"
#include "writer.h"

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))
#define PC_MAX_NAMESPACE 1024 /* bytes; longer namespaces are refused (400), never cut */

/* A client that reads slower than upstream sends would make its write queue
 * grow without bound; past this it is cut off (the exchange goes on for the
 * others and for the cache). */
#define PC_MAX_PENDING_WRITE ((size_t)32 << 20)

static const struct pc_req *req_of(const struct pc_exchange *x) { return pc_conn_req(x->conn); }

static void x_set_state(struct pc_exchange *x, enum pc_x_state s) { x->state = s; }

static void copy_str(char *dst, size_t cap, const char *s, size_t n) {
  if (n >= cap) n = cap - 1;
  memcpy(dst, s, n);
  dst[n] = '\0';
}

/* ---- the exchange's side of a flight ---- */

/* The exchange behind a subscription; a follower answers as COALESCED. */
static struct pc_exchange *x_of(struct pc_sub *s) {
  struct pc_exchange *x = container_of(s, struct pc_exchange, sub);
  if (s->follower) x->resp.cache = "COALESCED";
  x->resp.shared = s->follower && s->fleet;
  return x;
}

/* stale-if-error: an upstream 5xx or 429 is replaced by the expired entry. */
static void sub_head(struct pc_sub *s, int status, const char *headers, size_t len) {
  struct pc_exchange *x = x_of(s);
  if (status == 429)
    x->resp.err_class = PC_ERRC_UPSTREAM_429;
  else if (status >= 500)
    x->resp.err_class = PC_ERRC_UPSTREAM_5XX;
  else if (status >= 400)
    x->resp.err_class = PC_ERRC_UPSTREAM_4XX;
  if (x->stale.block && (status >= 500 || status == 429)) {
    x->swallow = 1;
    return;
  }
  pc_respond_head(x, status, headers, len);
}

static void sub_body(struct pc_sub *s, const char *p, size_t n) {
  struct pc_exchange *x = x_of(s);
  if (x->swallow) return;
  if (pc_conn_queued(x->conn) > PC_MAX_PENDING_WRITE) {
    pc_log_warn("client too slow: %zu bytes queued, closing its connection", pc_conn_queued(x->conn));
    pc_conn_abort(x->conn);
    return;
  }
  pc_respond_body(x, p, n);
}

static void serve_stale(struct pc_exchange *x) {
  struct pc_held h = x->stale;
  memset(&x->stale, 0, sizeof x->stale);
  int64_t now = pc_now_ms();
  x->resp.cache = "STALE";
  x->resp.tier = x->flow->shared ? (x->stale_shared ? "shared" : "local") : NULL;
  pc_usage_read(h.e.usage.p, h.e.usage.n, &x->resp.usage);
  pc_respond_hit(x, h.block, &h.e, now > h.e.created_ms ? (now - h.e.created_ms) / 1000 : 0, 0);
}

static void sub_end(struct pc_sub *s, int rc, int64_t upstream_us) {
  struct pc_exchange *x = x_of(s);
  x->resp.upstream_us = upstream_us;
  if (s->follower) x->resp.usage = s->usage;
  if (rc == PC_EUPCONNECT)
    x->resp.err_class = PC_ERRC_UPSTREAM_CONNECT;
  else if (rc == PC_EUPTIMEOUT)
    x->resp.err_class = PC_ERRC_UPSTREAM_TIMEOUT;
  else if (rc == PC_EUPPROTO)
    x->resp.err_class = PC_ERRC_UPSTREAM_PROTOCOL;
  x_set_state(x, PC_X_DONE);
  if (x->swallow || (rc && rc != PC_ECANCELED && !x->resp.head_sent && x->stale.block))
    serve_stale(x);
  else if (!rc)
    pc_respond_end(x);
  else if (x->resp.head_sent)
    pc_conn_abort(x->conn); /* cut: the client must see it cut */
  else if (rc == PC_EUPTIMEOUT)
    pc_respond_error(x, 504, "upstream_timeout", "upstream did not answer within --upstream-timeout");
  else if (rc == PC_EUPCONNECT)
    pc_respond_error(x, 502, "upstream_unreachable", "could not connect to upstream");
  else if (rc == PC_ECANCELED)
    pc_respond_error(x, 503, "shutting_down", "promptcache is shutting down");
  else if (rc == PC_ENOMEM)
    pc_respond_error(x, 503, "overloaded", "out of memory for this response; retry later");
  else
    pc_respond_error(x, 502, "upstream_error", "upstream sent an invalid or incomplete response");
}

/* The end waits for the commit: the response's last bytes go out with it,
 * in one write (see pc_conn_hold). */
static void sub_storing(struct pc_sub *s) {
  struct pc_exchange *x = x_of(s);
  if (!x->swallow) pc_conn_hold(x->conn);
}

static const struct pc_sub_ops sub_ops = {sub_head, sub_body, sub_end, sub_storing};

/* ---- request analysis ---- */

/* Every family's credential headers; the default family's first, in the
 * order its fingerprint has always read them (policy.h). */
static const char *const cred_headers[PC_H_KEY0 - PC_H_CRED0] = {"authorization", "x-api-key", "api-key",
                                                                 "x-goog-api-key", "x-amz-security-token"};

static const char *hdr_name(int i) {
  static const char *const fixed[PC_H_CRED0] = {"x-promptcache-namespace", "cache-control", "x-promptcache-ttl",
                                                "x-promptcache-pacing", "connection"};
  if (i < PC_H_CRED0) return fixed[i];
  if (i < PC_H_KEY0) return cred_headers[i - PC_H_CRED0];
  return pc_key_headers[i - PC_H_KEY0];
}

/* Which of the indexed credential and key headers a family reads (bit i:
 * cred_headers[i], pc_key_headers[i]). */
struct family_mask {
  unsigned cred, key;
};
static struct family_mask family_masks[PC_FAMILY_N];
static pthread_once_t family_masks_once = PTHREAD_ONCE_INIT;

static unsigned mask_of(const char *const *names, const char *const *table, int n) {
  unsigned m = 0;
  for (; *names; names++)
    for (int i = 0; i < n; i++)
      if (!strcmp(*names, table[i])) m |= 1u << i;
  return m;
}

static void family_masks_init(void) {
  for (int f = 0; f < PC_FAMILY_N; f++) {
    family_masks[f].cred =
        mask_of(pc_family_credential_headers((enum pc_family_id)f), cred_headers, PC_H_KEY0 - PC_H_CRED0);
    family_masks[f].key = mask_of(pc_family_key_headers((enum pc_family_id)f), pc_key_headers, PC_KEY_N_ALL);
  }
}

static const struct family_mask *mask_for(int family) {
  pthread_once(&family_masks_once, family_masks_init);
  return &family_masks[(unsigned)family < PC_FAMILY_N ? family : 0];
}

/* One pass over the request's header fields: each header the flow reads
 * gets its first value (a lookup per name and request would scan them all
 * each time, on the hit path). */
static void index_headers(const struct pc_req *r, struct pc_hdrs *out) {
  static __thread size_t lens[PC_H_N];
  if (!lens[0])
    for (int i = 0; i < PC_H_N; i++) lens[i] = strlen(hdr_name(i));
  memset(out->v, 0, sizeof out->v);
  for (size_t k = 0; k < r->nh; k++) {
    const struct pc_header *h = &r->h[k];
    const char *name = r->hbuf.data + h->name;
    for (int i = 0; i < PC_H_N; i++) {
      if (h->nlen != lens[i] || out->v[i] || strncasecmp(name, hdr_name(i), lens[i])) continue;
      out->v[i] = r->hbuf.data + h->value;
      out->n[i] = h->vlen;
      break;
    }
  }
}

/* The client's SigV4 signature (and what it signed with) is for our host:
 * a signing route signs again with its own credentials. */
static int client_signature_header(const char *name, size_t n) {
  return (n == 13 && !strncasecmp(name, "authorization", 13)) || (n == 10 && !strncasecmp(name, "x-amz-date", 10)) ||
         (n == 20 && !strncasecmp(name, "x-amz-security-token", 20)) ||
         (n == 20 && !strncasecmp(name, "x-amz-content-sha256", 20));
}

static int build_upstream_headers(const struct pc_req *r, const struct pc_hdrs *hd, int resign,
                                  struct curl_slist **out) {
  int rc = 0, has_ctype = 0, has_accept = 0;
  size_t clen = hd->n[PC_H_CONNECTION];
  const char *conn = hd->v[PC_H_CONNECTION];
  for (size_t i = 0; i < r->nh && !rc; i++) {
    const char *name = r->hbuf.data + r->h[i].name, *val = r->hbuf.data + r->h[i].value;
    size_t n = r->h[i].nlen;
    if (!pc_policy_forward_request_header(name, n, conn, clen)) continue;
    if (resign && client_signature_header(name, n)) continue;
    has_ctype |= n == 12 && !strncasecmp(name, "content-type", 12);
    has_accept |= n == 6 && !strncasecmp(name, "accept", 6);
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
  if (!rc && m->query) rc = pc_buf_putc(url, '?');
  if (!rc && m->query) rc = pc_buf_puts(url, m->query);
  return rc;
}

/* Fingerprint of whatever credential the request carries (headers of
 * policy.h's list, credential query parameters), or "". */
static void credential_fp(struct pc_exchange *x, const struct pc_route_match *m, char out[PC_FP_LEN * 2 + 1]) {
  pc_buf cred;
  pc_buf_init(&cred, PC_MAX_HEADER_BYTES * 2);
  unsigned mask = mask_for(m->api->family)->cred;
  for (int i = 0; i < PC_H_KEY0 - PC_H_CRED0; i++) {
    size_t n = x->hdr.n[PC_H_CRED0 + i];
    const char *v = x->hdr.v[PC_H_CRED0 + i];
    if (!v || !(mask & (1u << i))) continue;
    /* the part that names the caller (a SigV4 signature changes every time: its key id) */
    pc_family_credential_identity(cred_headers[i], strlen(cred_headers[i]), v, n, &v, &n);
    pc_buf_puts(&cred, cred_headers[i]);
    pc_buf_putc(&cred, ':');
    pc_buf_append(&cred, v, n);
    pc_buf_putc(&cred, '\n');
  }
  if (m->query) {
    pc_buf scratch;
    pc_buf_init(&scratch, PC_MAX_HEADER_BYTES);
    pc_key_sort_query(m->query, m->api->family, &scratch, &cred);
    pc_buf_free(&scratch);
  }
  out[0] = '\0';
  if (cred.len) pc_key_fingerprint(x->flow->secret, sizeof x->flow->secret, cred.data, cred.len, out);
  pc_buf_free(&cred);
}

/* The memo's identity holds every header the key reads: namespace,
 * credential headers, key headers (PC_H_NAMESPACE, PC_H_CRED0.., PC_H_KEY0..). */
static size_t identity_headers(const struct pc_hdrs *hd, const char **v, size_t *n) {
  size_t k = 0;
  v[k] = hd->v[PC_H_NAMESPACE];
  n[k++] = hd->n[PC_H_NAMESPACE];
  for (int i = PC_H_CRED0; i < PC_H_N; i++, k++) {
    v[k] = hd->v[i];
    n[k] = hd->n[i];
  }
  return k;
}

#define N_IDENTITY_HEADERS (1 + PC_H_N - PC_H_CRED0)

/* Remember a request in the memo; its memory is counted in the stats. */
static void memo_put(struct pc_flow *fw, const struct pc_rawkey_in *in, const struct pc_key *key, const char *material,
                     size_t mlen, const char *model, int64_t stamp_created, size_t stamp_len) {
  size_t e0, b0, e1, b1;
  pc_rawkey_usage(fw->rawkey, &e0, &b0);
  pc_rawkey_put(fw->rawkey, in, &fw->rawid, key, material, mlen, model, stamp_created, stamp_len);
  pc_rawkey_usage(fw->rawkey, &e1, &b1);
  pc_stats_memo((int64_t)e1 - (int64_t)e0, (int64_t)b1 - (int64_t)b0);
}

/* The memo's view of a request: its raw parts (pointers into the request,
 * valid while it is being handled). */
struct memo_in {
  struct pc_rawkey_in in;
  const char *v[N_IDENTITY_HEADERS];
  size_t n[N_IDENTITY_HEADERS];
};

static void memo_input(struct pc_exchange *x, const struct pc_route_match *m, struct memo_in *mi) {
  const struct pc_req *r = req_of(x);
  memset(mi->n, 0, sizeof mi->n);
  mi->in = (struct pc_rawkey_in){.route = m->route,
                                 .method = r->method,
                                 .target = r->target.data,
                                 .target_len = r->target.len,
                                 .values = mi->v,
                                 .lens = mi->n,
                                 .n_values = identity_headers(&x->hdr, mi->v, mi->n),
                                 .body = r->body_at,
                                 .body_len = r->body_len};
}

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

/* Decode a stored entry for a hit. Its checksum is verified the first time
 * this loop serves it (a damaged entry is a miss, never served); after that
 * the loop remembers it (key, creation time and length: an overwrite
 * changes them) and skips the pass over its bytes. */
static int decode_checked(struct pc_flow *fw, const struct pc_key *key, const void *p, size_t n, struct pc_entry *e) {
  struct pc_verified *v = &fw->verified[(key->b[0] | (unsigned)key->b[1] << 8) % PC_VERIFIED_SLOTS];
  int known = v->len == n && !memcmp(v->key, key->b, 16);
  int rc = pc_entry_decode(p, n, !known, e);
  if (!rc && known && v->created_ms != e->created_ms) rc = pc_entry_decode(p, n, 1, e); /* overwritten since */
  if (rc) {
    v->len = 0;
    return rc;
  }
  memcpy(v->key, key->b, 16);
  v->len = n;
  v->created_ms = e->created_ms;
  return 0;
}

/* What a hit compares the stored entry with: its canonical request, or (a
 * large request the memo knows) the stamp of the entry verified before. */
struct expect {
  const char *material;
  size_t mlen;
  int64_t stamp_created;
  size_t stamp_len;
};

static int matches(const struct expect *ex, const struct pc_entry *e, size_t n) {
  if (ex->material) return e->request.n == ex->mlen && !memcmp(e->request.p, ex->material, ex->mlen);
  return ex->stamp_len && ex->stamp_len == n && ex->stamp_created == e->created_ms;
}

/* Serve from the cache if a fresh entry for exactly this request exists;
 * zero-copy: the response is written from the LMDB map while the read txn
 * is held. An entry that matches but is not fresh is copied to x->stale for
 * stale-if-error. `remember` (or NULL): the request, for the memo to learn
 * the verified entry's stamp before the response ends (the request's
 * buffers are reused after that). Returns whether it served. */
static int try_hit(struct pc_exchange *x, const struct pc_key *key, const struct expect *ex,
                   const struct pc_controls *ct, const struct memo_in *remember, const char *model) {
  struct pc_flow *fw = x->flow;
  const void *p;
  size_t n;
  struct pc_entry e;
  if (pc_cache_get_ref(fw->cache, key->b, &p, &n)) return 0;
  if (decode_checked(fw, key, p, n, &e) || !matches(ex, &e, n)) {
    pc_cache_release(fw->cache);
    return 0;
  }
  if (remember) memo_put(fw, &remember->in, key, ex->material, ex->mlen, model, e.created_ms, n);
  int64_t now = pc_now_ms();
  int64_t age = now > e.created_ms ? (now - e.created_ms) / 1000 : 0;
  if (!pc_policy_fresh(fw->cfg->mode, ct, e.created_ms, e.expires_ms, now)) {
    hold_copy(p, n, &x->stale);
    x->stale_shared = 0;
    pc_cache_release(fw->cache);
    return 0;
  }
  x->resp.cache = "HIT";
  x->resp.tier = fw->shared ? "local" : NULL;
  pc_usage_read(e.usage.p, e.usage.n, &x->resp.usage);
  pc_writer_touch(fw->port, key->b); /* batched: for LRU eviction */
  x_set_state(x, PC_X_DONE);
  if (ct->paced && (e.flags & PC_ENTRY_F_SSE)) {
    struct pc_held h = {0};
    int rc = hold_copy(p, n, &h);
    pc_cache_release(fw->cache);
    if (rc)
      pc_respond_error(x, 500, "internal_error", pc_strerror(rc));
    else
      pc_respond_hit(x, h.block, &h.e, age, 1);
    return 1;
  }
  int rc = pc_respond_hit_borrowed(x, &e, age);
  pc_cache_release(fw->cache); /* before finishing: the next pipelined request may look up */
  if (rc)
    pc_conn_abort(x->conn);
  else
    pc_conn_finish(x->conn);
  return 1;
}

/* Replay: the n-th identical request of this run gets the n-th recorded
 * answer (sequence.h), the last one once they run out. */
static int try_hit_sequence(struct pc_exchange *x, const struct pc_key *key, const struct pc_controls *ct,
                            const char *model) {
  struct pc_flow *fw = x->flow;
  pc_buf m;
  pc_buf_init(&m, fw->material.len + 64);
  int served = 0;
  for (uint32_t want = pc_seq_replay_take(key);; want--) {
    struct pc_key k = *key;
    struct expect ex = {fw->material.data, fw->material.len, 0, 0};
    if (want) {
      if (pc_key_material_seq(fw->material.data, fw->material.len, want, &m)) break;
      pc_key_hash(m.data, m.len, &k);
      ex.material = m.data;
      ex.mlen = m.len;
    }
    if (try_hit(x, &k, &ex, ct, NULL, model)) {
      served = 1;
      break;
    }
    if (!want) break;
    pc_seq_replay_length(key, want); /* the sequence is shorter: its last entry again */
  }
  pc_buf_free(&m);
  return served;
}

/* Start the exchange, or join an identical one in flight on any loop
 * (pc_flight_start claims the key atomically). */
static void start_flight(struct pc_exchange *x, const struct pc_route_match *m, struct pc_flight_req *fr) {
  struct pc_req *r = pc_conn_req(x->conn);
  int rc = upstream_url(m, &fr->url);
  fr->api = m->api;
  if (!rc) rc = build_upstream_headers(r, &x->hdr, m->api->aws != NULL, &fr->headers);
  if (!rc) rc = pc_req_own_body(r); /* a borrowed body must not go with the flight */
  if (!rc) {
    fr->method = r->method;
    fr->body = r->body; /* hand-over: the request gets a fresh body buffer */
    pc_buf_init(&r->body, r->body.max);
    r->body_at = NULL;
    r->body_len = 0;
    x->sub.ops = &sub_ops;
    x_set_state(x, PC_X_FLIGHT);
    rc = pc_flight_start(x->flow->flights, fr, &x->sub); /* PC_EEXISTS: joined an identical one */
  }
  pc_flight_req_free(fr);
  if (rc && rc != PC_EEXISTS) {
    x_set_state(x, PC_X_DONE);
    pc_respond_error(x, 500, "internal_error", pc_strerror(rc));
  }
}

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* Header values that enter the key must survive export as JSON text: a
 * request whose values are not UTF-8 is forwarded uncached. */
static int key_headers_printable(const struct pc_hdrs *hd, unsigned keyed) {
  for (int i = 0; i < PC_KEY_N_ALL; i++)
    if ((keyed & (1u << i)) && hd->v[PC_H_KEY0 + i] && !pc_utf8_valid(hd->v[PC_H_KEY0 + i], hd->n[PC_H_KEY0 + i]))
      return 0;
  return 1;
}

/* A body that is not JSON is keyed by bodykey.h's canonical form: in
 * record and replay modes (`any_body`), which key every exchange. */
static int non_json(const char *ct, size_t n) {
  while (n && (*ct == ' ' || *ct == '\t')) ct++, n--;
  return (n >= 10 && !strncasecmp(ct, "multipart/", 10)) ||
         (n >= 33 && !strncasecmp(ct, "application/x-www-form-urlencoded", 33));
}

static int canon_body(struct pc_exchange *x, const struct pc_config *cfg, int any_body, pc_buf *canon,
                      struct pc_canon_info *info) {
  const struct pc_req *r = req_of(x);
  const char *body = r->body_at ? r->body_at : "";
  size_t ctlen = 0;
  const char *ct = any_body ? pc_req_header(r, "content-type", &ctlen) : NULL;
  if (!any_body || (r->body_len && !(ct && non_json(ct, ctlen)))) {
    int rc =
        pc_canon_json(body, r->body_len, (const char *const *)cfg->ignore_fields.v, cfg->ignore_fields.n, canon, info);
    if (!rc || !any_body || rc == PC_ENOMEM || rc == PC_ETOOBIG) return rc;
    pc_buf_reset(canon); /* not JSON: keyed by its bytes */
  }
  memset(info, 0, sizeof *info);
  info->stream_field = -1;
  return pc_bodykey_canon(ct, ctlen, body, r->body_len, canon, NULL);
}

/* The model of a request whose body does not name it, from its path:
 * Gemini's /models/<m>:..., Bedrock's /model/<id>/... (percent-decoded),
 * Azure's /deployments/<d>/... Empty when none. */
static void model_from_path(const char *path, size_t n, char *out, size_t cap) {
  static const char *const marks[] = {"/models/", "/model/", "/deployments/"};
  out[0] = '\0';
  for (size_t k = 0; k < sizeof marks / sizeof *marks; k++) {
    size_t ml = strlen(marks[k]);
    const char *p = n >= ml ? memmem(path, n, marks[k], ml) : NULL;
    if (!p) continue;
    p += ml;
    const char *end = path + n;
    size_t o = 0;
    for (; p < end && *p != '/' && *p != ':' && o + 1 < cap; p++) {
      if (*p == '%' && end - p > 2 && pc_hexval((unsigned char)p[1]) >= 0 && pc_hexval((unsigned char)p[2]) >= 0) {
        out[o++] = (char)(pc_hexval((unsigned char)p[1]) << 4 | pc_hexval((unsigned char)p[2]));
        p += 2;
      } else {
        out[o++] = *p;
      }
    }
    out[o] = '\0';
    return;
  }
}

/* Canonicalize and key a cacheable request. Returns 0 when it can be cached. */
static int key_request(struct pc_exchange *x, const struct pc_route_match *m, struct pc_flight_req *fr, int *stream) {
  struct pc_flow *fw = x->flow;
  const struct pc_req *r = req_of(x);
  const struct pc_config *cfg = fw->cfg;
  struct pc_canon_info info;
  pc_buf *canon = &fw->scratch, *material = &fw->material; /* per loop: no allocation per hit */
  int any_body = cfg->mode == PC_MODE_RECORD || cfg->mode == PC_MODE_REPLAY;
  pc_buf_reset(canon);
  pc_buf_reset(material);
  unsigned keyed = mask_for(m->api->family)->key;
  if (!key_headers_printable(&x->hdr, keyed)) return PC_EUTF8;
  int rc = canon_body(x, cfg, any_body, canon, &info);
  size_t nslen = x->hdr.n[PC_H_NAMESPACE];
  const char *ns = x->hdr.v[PC_H_NAMESPACE];
  if (!rc) {
    char fp[PC_FP_LEN * 2 + 1] = "";
    struct pc_key_input in = {.route = m->route,
                              .method = r->method,
                              .path = m->path,
                              .path_len = m->path_len,
                              .query = m->query,
                              .ns = ns ? ns : "",
                              .cred_fp_hex = fp,
                              .body = canon->data,
                              .body_len = canon->len,
                              .family = m->api->family};
    if (cfg->key_scope == PC_SCOPE_CREDENTIAL) credential_fp(x, m, fp);
    for (int i = 0; i < PC_KEY_N_ALL; i++) in.headers[i] = keyed & (1u << i) ? x->hdr.v[PC_H_KEY0 + i] : NULL;
    rc = pc_key_material(&in, material);
  }
  if (!rc) {
    pc_key_hash(material->data, material->len, &fr->key);
    pc_key_hex(&fr->key, x->resp.key);
    fr->ns = dup_n(ns ? ns : "", nslen);
    fr->route = dup_n(m->route, strlen(m->route));
    fr->path = dup_n(m->path, m->path_len);
    if (!info.model[0]) model_from_path(m->path, m->path_len, info.model, sizeof info.model);
    fr->model = dup_n(info.model, strlen(info.model));
    if (!fr->ns || !fr->route || !fr->path || !fr->model) rc = PC_ENOMEM;
    copy_str(x->resp.model, sizeof x->resp.model, info.model, strlen(info.model));
    *stream = pc_family_streams((enum pc_family_id)m->api->family, m->path, m->path_len, info.stream_field);
  }
  return rc;
}

/* Replay mode never contacts upstream: a miss is a 424 that explains itself
 * (the nearest recorded request the caller could have hit, and where it
 * differs), also in the log. */
static void replay_miss(struct pc_exchange *x, const struct pc_route_match *m, const struct pc_flight_req *fr) {
  const struct pc_req *r = req_of(x);
  struct pc_nearest near;
  pc_buf body, text, msg;
  pc_buf_init(&body, 1 << 20);
  pc_buf_init(&text, 1 << 20);
  pc_buf_init(&msg, 2 << 20);
  int cacheable = fr->material.len > 0;
  int rc = cacheable ? pc_nearest_find(x->flow->cache, m->route, fr->path ? fr->path : "", fr->material.data,
                                       fr->material.len, &near)
                     : 0;
  if (!cacheable) memset(&near, 0, sizeof near);
  const char *why = cacheable ? "no recorded response for this request (replay mode never contacts upstream)"
                              : "this request is not cacheable and replay mode never contacts upstream";
  if (!rc)
    rc = pc_buf_puts(&body, "{\"error\":{\"type\":\"promptcache_replay_miss\",\"code\":\"replay_miss\",\"message\":");
  if (!rc) rc = pc_nearest_text(&near, &text);
  if (!rc) rc = pc_buf_printf(&msg, "%s; %s", why, text.data ? text.data : "");
  if (!rc) rc = pc_json_write_string(&body, msg.data, msg.len);
  if (!rc && cacheable)
    rc = pc_buf_printf(&body, ",\"key\":\"%s\",\"nearest\":", x->resp.key);
  else if (!rc)
    rc = pc_buf_puts(&body, ",\"key\":null,\"nearest\":");
  if (!rc) rc = pc_nearest_json(&near, &body);
  if (!rc) rc = pc_buf_puts(&body, "}}\n");
  pc_log_warn("replay miss %s %.*s key=%s: %s", r->method, (int)strcspn(r->target.data, "?"), r->target.data,
              cacheable ? x->resp.key : "-", msg.data ? msg.data : pc_strerror(rc));
  x->resp.replay_miss = 1;
  x->resp.extra_headers = "x-should-retry: false\r\n";
  x_set_state(x, PC_X_DONE);
  if (rc)
    pc_respond_error(x, 424, "replay_miss", "replay miss (explanation failed)");
  else
    pc_respond_content(x, 424, "application/json", body.data, body.len);
  pc_nearest_free(&near);
  pc_buf_free(&body);
  pc_buf_free(&text);
  pc_buf_free(&msg);
}

enum memo { MEMO_UNKNOWN, MEMO_HIT, MEMO_MISS };

/* An exact repeat of a recently keyed request is looked up without
 * canonicalizing again. MEMO_MISS: a small request was looked up and is not
 * served (an expired entry is kept in x->stale), so the normal path, which
 * computes the same key, need not look up again. A large request whose
 * stamp does not match the stored entry any more is MEMO_UNKNOWN: the long
 * way decides (and stamps again). */
static enum memo memo_lookup(struct pc_exchange *x, const struct memo_in *mi, const struct pc_controls *ct) {
  struct pc_rawkey_hit h;
  if (pc_rawkey_get(x->flow->rawkey, &mi->in, &x->flow->rawid, &h)) return MEMO_UNKNOWN;
  pc_key_hex(&h.key, x->resp.key);
  copy_str(x->resp.model, sizeof x->resp.model, h.model, strlen(h.model));
  struct expect ex = {h.material, h.mlen, h.stamp_created, h.stamp_len};
  if (try_hit(x, &h.key, &ex, ct, NULL, NULL)) return MEMO_HIT;
  return h.material ? MEMO_MISS : MEMO_UNKNOWN;
}

/* The canonical request goes with the flight (hand-over; the loop starts a
 * fresh buffer for its next request). */
static void take_material(struct pc_flow *fw, struct pc_flight_req *fr) {
  pc_buf_free(&fr->material);
  fr->material = fw->material;
  pc_buf_init(&fw->material, fw->material.max);
}

/* A cacheable request after its lookup: replay miss, only-if-cached miss,
 * or a flight to upstream (SPEC §5, §6). */
static void handle_miss(struct pc_exchange *x, const struct pc_route_match *m, struct pc_flight_req *fr,
                        const struct pc_controls *ct, const struct pc_decision *d, int stream) {
  struct pc_flow *fw = x->flow;
  if (fw->cfg->mode == PC_MODE_REPLAY) {
    x->resp.cache = "MISS";
    replay_miss(x, m, fr);
    pc_flight_req_free(fr);
    return;
  }
  if (!d->upstream) {
    pc_flight_req_free(fr);
    x->resp.cache = "MISS";
    x_set_state(x, PC_X_DONE);
    pc_respond_error(x, 504, "not_cached", "Cache-Control: only-if-cached and no fresh entry is stored");
    return;
  }
  x->resp.cache = d->miss_status;
  fr->store = d->store;
  fr->coalesce = d->coalesce;
  fr->stream = stream;
  fr->terminal = stream ? pc_sse_terminal_for(m->path, m->path_len) : PC_SSE_NONE;
  fr->ttl_ms = ct->ttl_ms;
  start_flight(x, m, fr);
}

/* ---- waiting on the shared tier ---- */

/* What an exchange waits on in the shared tier: a lookup (with what the
 * miss path needs afterwards) or a fleet-wide purge. A Redis callback runs
 * exactly once, whenever it comes: if the connection goes first, x is set
 * to NULL and the wait is freed by the callback. */
struct pc_wait {
  struct pc_exchange *x;
  struct pc_flow *fw;
  struct pc_route_match m;
  struct pc_flight_req fr;
  struct pc_controls ct;
  struct pc_decision d;
  int stream;
  struct pc_admin_resp admin;
};

static struct pc_wait *wait_begin(struct pc_exchange *x) {
  struct pc_wait *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->x = x;
  w->fw = x->flow;
  x->wait = w;
  x->flow->n_waits++;
  x_set_state(x, PC_X_SHARED);
  return w;
}

/* The callback came: the exchange (if still there) goes on; returns it. */
static struct pc_exchange *wait_resume(struct pc_wait *w) {
  struct pc_exchange *x = w->x;
  if (x) {
    x->wait = NULL;
    x_set_state(x, PC_X_DECIDING);
  }
  w->x = NULL;
  return x;
}

static void wait_free(struct pc_wait *w) {
  struct pc_flow *fw = w->fw;
  pc_flight_req_free(&w->fr);
  pc_admin_resp_free(&w->admin);
  free(w);
  if (--fw->n_waits == 0) pc_server_check_done(fw->worker); /* shutdown may be waiting */
}

/* A value from the shared tier is served only if it is a whole entry
 * (format, checksum) of exactly this request (the stored canonical request,
 * byte for byte) and fresh; it is then copied into the local tier. A value
 * that fails is counted and never served; a stale one is kept for
 * stale-if-error. Returns whether it served. */
static int serve_shared(struct pc_exchange *x, struct pc_wait *w, const char *val, size_t n) {
  struct pc_flow *fw = x->flow;
  struct pc_entry e;
  char *block = malloc(n ? n : 1);
  if (!block) return 0;
  memcpy(block, val, n);
  const char *why = pc_entry_decode(block, n, 1, &e) ? "not a whole entry (format or checksum)"
                    : e.request.n != w->fr.material.len || memcmp(e.request.p, w->fr.material.data, e.request.n)
                        ? "stored for another request"
                        : NULL;
  if (why) {
    pc_stats_shared_corrupt();
    pc_log_warn("shared tier: the value under key %s is %s: not served", x->resp.key, why);
    free(block);
    return 0;
  }
  int64_t now = pc_now_ms();
  if (!pc_policy_fresh(fw->cfg->mode, &w->ct, e.created_ms, e.expires_ms, now)) {
    if (x->stale.block)
      free(block);
    else {
      x->stale = (struct pc_held){.block = block, .e = e};
      x->stale_shared = 1;
    }
    return 0;
  }
  char *copy = w->d.store ? malloc(n ? n : 1) : NULL;
  if (copy) {
    memcpy(copy, val, n);
    pc_writer_put(fw->port, w->fr.key.b, copy, n, NULL, NULL);
  }
  x->resp.cache = "HIT";
  x->resp.tier = "shared";
  x->resp.shared = 1;
  pc_usage_read(e.usage.p, e.usage.n, &x->resp.usage);
  x_set_state(x, PC_X_DONE);
  pc_respond_hit(x, block, &e, now > e.created_ms ? (now - e.created_ms) / 1000 : 0,
                 w->ct.paced && (e.flags & PC_ENTRY_F_SSE));
  return 1;
}

static void shared_got(void *ud, int rc, const char *val, size_t n) {
  struct pc_wait *w = ud;
  struct pc_exchange *x = wait_resume(w);
  if (x && rc == PC_ECANCELED) {
    x_set_state(x, PC_X_DONE);
    pc_respond_error(x, 503, "shutting_down", "promptcache is shutting down");
  } else if (x && !(rc == 0 && serve_shared(x, w, val, n))) {
    handle_miss(x, &w->m, &w->fr, &w->ct, &w->d, w->stream);
  }
  wait_free(w);
}

/* Local miss: look the shared tier up (asynchronously) unless there is none,
 * it is down, the request may not be served from a cache, or an identical
 * exchange is already in flight here (joining it is the answer). Returns
 * whether the lookup took the request over (fr is then emptied). */
static int lookup_shared(struct pc_exchange *x, const struct pc_route_match *m, struct pc_flight_req *fr,
                         const struct pc_controls *ct, const struct pc_decision *d, int stream) {
  struct pc_flow *fw = x->flow;
  if (!fw->shared || !d->lookup || !pc_shared_up(fw->shared) || pc_flight_joinable(&fr->key)) return 0;
  struct pc_wait *w = wait_begin(x);
  if (!w) return 0;
  if (pc_shared_get(fw->shared, fr->key.b, shared_got, w)) {
    wait_resume(w);
    wait_free(w);
    return 0;
  }
  w->m = *m;
  w->ct = *ct;
  w->d = *d;
  w->stream = stream;
  w->fr = *fr;
  memset(fr, 0, sizeof *fr);
  return 1;
}

/* The local part of a purge is done: now the shared tier and, through its
 * purge log, every other node's local tier. */
static void purged_shared(void *ud, int rc, size_t deleted) {
  struct pc_wait *w = ud;
  struct pc_exchange *x = wait_resume(w);
  if (x) {
    char body[160];
    x_set_state(x, PC_X_DONE);
    if (rc) {
      snprintf(body, sizeof body, "purged %zu local entries, but the shared tier failed (%s): retry the purge",
               w->admin.purged, pc_strerror(rc));
      pc_respond_error(x, 503, "shared_unavailable", body);
    } else {
      int len = snprintf(body, sizeof body, "{\"purged\":%zu,\"shared\":%zu}\n", w->admin.purged, deleted);
      pc_respond_content(x, 200, "application/json", body, (size_t)len);
    }
  }
  wait_free(w);
}

static void purge_fleet(struct pc_exchange *x, struct pc_admin_resp *o) {
  struct pc_wait *w = wait_begin(x);
  if (!w) {
    pc_admin_resp_free(o);
    x_set_state(x, PC_X_DONE);
    pc_respond_error(x, 503, "overloaded", "out of memory; retry later");
    return;
  }
  w->admin = *o; /* the selector points into its JSON document, which goes with it */
  int rc = pc_shared_purge(x->flow->shared, &w->admin.sel, purged_shared, w);
  if (rc) purged_shared(w, rc, 0); /* Redis known to be down: answered now */
}

static void admin(struct pc_exchange *x) {
  const struct pc_req *r = req_of(x);
  struct pc_admin_req rq = {.method = r->method, .target = r->target.data, .body = r->body_at, .body_len = r->body_len};
  rq.authorization = pc_req_header(r, "authorization", &rq.auth_len); /* admin: not indexed yet */
  if (x->flow->shared) rq.shared = pc_shared_up(x->flow->shared) ? PC_ADMIN_SHARED_UP : PC_ADMIN_SHARED_DOWN;
  struct pc_admin_resp o;
  pc_admin_handle(x->flow->cfg, x->flow->cache, &rq, &o);
  if (o.fleet_purge) {
    purge_fleet(x, &o);
    return;
  }
  x->resp.extra_headers = o.extra_headers;
  x_set_state(x, PC_X_DONE);
  if (o.code)
    pc_respond_error(x, o.status, o.code, o.msg);
  else
    pc_respond_content(x, o.status, o.ctype, o.body, o.len);
  pc_admin_resp_free(&o);
}

/* Checks of what the client asked before anything is looked up; returns
 * whether the request was answered (with an error). */
static int refuse(struct pc_exchange *x, struct pc_controls *ct) {
  const struct pc_hdrs *hd = &x->hdr;
  enum pc_controls_error e = pc_policy_controls(x->flow->cfg, hd->v[PC_H_CACHE_CONTROL], hd->n[PC_H_CACHE_CONTROL],
                                                hd->v[PC_H_TTL], hd->v[PC_H_PACING], ct);
  const char *msg = e == PC_CONTROLS_BAD_MAX_AGE ? "invalid Cache-Control max-age"
                    : e == PC_CONTROLS_BAD_TTL   ? "invalid X-PromptCache-TTL: expected a duration like 30s"
                                                 : NULL;
  const char *ns = hd->v[PC_H_NAMESPACE];
  size_t n = hd->n[PC_H_NAMESPACE];
  if (!msg && ns && (n > PC_MAX_NAMESPACE || !pc_utf8_valid(ns, n)))
    msg = "invalid X-PromptCache-Namespace: at most 1024 bytes of UTF-8";
  if (!msg) return 0;
  x_set_state(x, PC_X_DONE);
  pc_respond_error(x, 400, "bad_request", msg);
  return 1;
}

static void handle(struct pc_exchange *x) {
  struct pc_flow *fw = x->flow;
  const struct pc_config *cfg = fw->cfg;
  const struct pc_req *r = req_of(x);
  const char *target = r->target.data ? r->target.data : "";
  if (target[0] != '/') {
    pc_conn_close_after(x->conn);
    x_set_state(x, PC_X_DONE);
    pc_respond_error(x, 400, "bad_request", "request target must be a path (origin-form)");
    return;
  }
  if (pc_admin_path(target)) {
    admin(x);
    return;
  }
  index_headers(r, &x->hdr);
  struct pc_controls ct;
  if (refuse(x, &ct)) return;
  struct pc_decision d;
  pc_policy_decide(cfg->mode, &ct, &d);
  struct pc_route_match m;
  pc_route_match(cfg, target, &m);
  x->resp.route = m.route;
  /* record and replay key every exchange; the other modes cache inference calls only */
  int record_all = cfg->mode == PC_MODE_RECORD || cfg->mode == PC_MODE_REPLAY;
  int inference = !strcmp(r->method, "POST") && pc_route_cacheable(cfg, &m);
  int cacheable = cfg->mode != PC_MODE_OFF && (inference || record_all);
  if (record_all && !inference) d.coalesce = 0; /* two identical creates are two exchanges, recorded in turn */
  struct memo_in mi;
  int memo = cacheable && d.lookup && !record_all; /* replay: a sequence's next answer is not the memo's */
  if (memo) memo_input(x, &m, &mi);
  enum memo looked = memo ? memo_lookup(x, &mi, &ct) : MEMO_UNKNOWN;
  if (looked == MEMO_HIT) return;
  struct pc_flight_req fr;
  memset(&fr, 0, sizeof fr);
  pc_buf_init(&fr.url, 64 * 1024);
  pc_buf_init(&fr.material, 0);
  int stream = 0;
  if (cacheable && key_request(x, &m, &fr, &stream) == 0) {
    struct expect ex = {fw->material.data, fw->material.len, 0, 0};
    const struct memo_in *remember = memo && looked == MEMO_UNKNOWN ? &mi : NULL;
    int served = 0;
    if (d.lookup && looked == MEMO_UNKNOWN)
      served = cfg->mode == PC_MODE_REPLAY ? try_hit_sequence(x, &fr.key, &ct, fr.model)
                                           : try_hit(x, &fr.key, &ex, &ct, remember, fr.model);
    if (served) {
      pc_flight_req_free(&fr);
      return;
    }
    fr.sequence = fr.any_status = cfg->mode == PC_MODE_RECORD;
    /* not served: a small request is remembered anyway (its next repeat skips the canonicalization);
     * one that matched a stale entry (x->stale) try_hit remembered already, with the entry's stamp */
    if (remember && !x->stale.block) memo_put(fw, &mi.in, &fr.key, fw->material.data, fw->material.len, fr.model, 0, 0);
    take_material(fw, &fr);
    if (!lookup_shared(x, &m, &fr, &ct, &d, stream)) handle_miss(x, &m, &fr, &ct, &d, stream);
    return;
  }
  x->resp.cache = "BYPASS";
  x->resp.key[0] = '\0';
  if (cfg->mode == PC_MODE_REPLAY) {
    replay_miss(x, &m, &fr);
    pc_flight_req_free(&fr);
    return;
  }
  start_flight(x, &m, &fr);
}

/* ---- the exchange's life ---- */

static void x_begin(struct pc_exchange *x) {
  pc_held_release(&x->replay);
  pc_held_release(&x->stale);
  x->swallow = 0;
  x->stale_shared = 0;
  memset(&x->resp, 0, sizeof x->resp);
  x->resp.upstream_us = -1;
  x->resp.err_class = -1;
  x->resp.route = "";
  x_set_state(x, PC_X_DECIDING);
}

static struct pc_exchange *exchange_for(struct pc_conn *c) {
  struct pc_exchange *x = pc_conn_user(c);
  if (x) return x;
  x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->conn = c;
  x->flow = pc_conn_pool(c)->app;
  x->flow->n_exchanges++;
  pc_conn_set_user(c, x);
  return x;
}

static void on_request(struct pc_conn *c) {
  struct pc_exchange *x = exchange_for(c);
  if (!x) {
    pc_conn_abort(c);
    return;
  }
  x_begin(x);
  handle(x);
}

static void on_reject(struct pc_conn *c, int status, const char *code, const char *msg) {
  struct pc_exchange *x = exchange_for(c);
  if (!x) {
    pc_conn_abort(c);
    return;
  }
  x_begin(x);
  x_set_state(x, PC_X_DONE);
  if (status == 503) x->resp.extra_headers = "Retry-After: 1\r\n";
  pc_respond_error(x, status, code, msg);
}

static enum pc_outcome outcome_of(const struct pc_resp *r) {
  static const char *const names[] = {"HIT", "MISS", "COALESCED", "BYPASS", "REFRESH", "STALE"};
  if (r->replay_miss) return PC_OUT_REPLAY_MISS;
  for (int i = 0; r->cache && i < 6; i++)
    if (!strcmp(r->cache, names[i])) return (enum pc_outcome)i;
  return PC_OUT_ADMIN;
}

/* One finished request: stats and the access-log line. */
static void record(struct pc_exchange *x) {
  const struct pc_req *r = req_of(x);
  int64_t total_us = (int64_t)((uv_hrtime() - r->start_ns) / 1000);
  struct pc_stats_req s = {.outcome = outcome_of(&x->resp),
                           .route = x->resp.route,
                           .model = x->resp.model,
                           .status = x->resp.status,
                           .upstream_us = x->resp.upstream_us,
                           .total_us = total_us,
                           .bytes = x->resp.bytes,
                           .usage = x->resp.usage,
                           .err_class = x->resp.err_class,
                           .shared = x->resp.shared};
  if (s.err_class < 0 && x->resp.status >= 400 && x->resp.status < 500 && x->resp.upstream_us < 0)
    s.err_class = PC_ERRC_CLIENT;
  pc_stats_record(&s);
  struct pc_access a = {
      .method = r->method[0] ? r->method : "-",
      .path = r->target.data ? r->target.data : "-",
      .status = x->resp.status,
      .cache = x->resp.cache ? x->resp.cache : "-",
      .key = x->resp.key,
      .bytes = x->resp.bytes,
      .upstream_us = x->resp.upstream_us,
      .total_us = total_us,
  };
  pc_log_access(&a);
}

static void on_end(struct pc_conn *c) {
  struct pc_exchange *x = pc_conn_user(c);
  if (!x) return;
  record(x);
  if (x->wait) { /* its callback frees it */
    x->wait->x = NULL;
    x->wait = NULL;
  }
  pc_flight_leave(&x->sub);
  if (x->pace) uv_timer_stop(x->pace);
  pc_held_release(&x->replay);
  pc_held_release(&x->stale);
  x_set_state(x, PC_X_IDLE);
}

static void pace_closed(uv_handle_t *h) { free(h); }

static void on_closed(struct pc_conn *c) {
  struct pc_exchange *x = pc_conn_user(c);
  if (!x) return;
  pc_conn_set_user(c, NULL);
  if (x->pace) uv_close((uv_handle_t *)x->pace, pace_closed);
  x->flow->n_exchanges--;
  free(x);
}

/* Idle between requests for a while: the exchange goes (it is made again
 * at the next request), so idle keep-alive connections cost only their
 * transport state. */
static void on_idle(struct pc_conn *c) {
  struct pc_exchange *x = pc_conn_user(c);
  if (x && x->state == PC_X_IDLE && !x->wait) on_closed(c);
}

static const struct pc_conn_ops conn_ops = {PC_CONN_OPS_MAGIC, on_request, on_reject, on_end, on_closed, on_idle};

/* ---- the flow's per-loop state (the server's application) ---- */

static void flights_idle(void *ud) {
  struct pc_flow *fw = ud;
  pc_server_check_done(fw->worker);
}

static int flow_start(void *ctx, struct pc_worker *w, void **out) {
  const struct pc_proxy_ctx *pctx = ctx;
  const struct pc_config *cfg = pctx->cfg;
  struct pc_flow *fw = calloc(1, sizeof *fw);
  if (!fw) return PC_ENOMEM;
  *out = fw;
  fw->worker = w;
  fw->loop = pc_worker_loop(w);
  fw->cfg = cfg;
  fw->cache = pctx->cache;
  pc_buf_init(&fw->scratch, cfg->max_body * 2 + 64);
  pc_buf_init(&fw->material, cfg->max_body * 2 + 64 * 1024);
  pc_buf_init(&fw->rawid, 2 * PC_MAX_HEADER_BYTES);
  pc_buf_init(&fw->out, cfg->max_size / 2 + (1u << 20));
  fw->rawkey = pc_rawkey_create(pctx->memo_budget);
  int rc = fw->rawkey ? 0 : PC_ENOMEM;
  if (!rc) rc = pc_cache_secret(fw->cache, fw->secret);
  if (!rc) rc = pc_upstream_create(fw->loop, cfg, &fw->up);
  if (!rc) rc = pc_wport_open(pctx->writer, fw->loop, &fw->port);
  if (!rc) {
    struct pc_fleet_opts fo = {.cfg = cfg,
                               .cache = pctx->cache,
                               .writer = pctx->writer,
                               .port = pc_worker_port(w, 0),
                               .slot = pc_worker_index(w),
                               .primary = pc_worker_index(w) == 0};
    rc = pc_fleet_open(fw->loop, &fo, &fw->fleet);
    fw->shared = pc_fleet_shared(fw->fleet);
  }
  if (!rc)
    rc = pc_flights_create(fw->loop, cfg, fw->up, fw->port, fw->cache, fw->shared, flights_idle, fw, &fw->flights);
  return rc;
}

static int flow_busy(void *app) {
  struct pc_flow *fw = app;
  return fw->n_waits || (fw->flights && pc_flights_busy(fw->flights));
}

static void flow_abort(void *app) {
  struct pc_flow *fw = app;
  if (fw->flights) pc_flights_abort_all(fw->flights);
}

/* Shutdown finished on this loop: close the handles the flow owns. */
static void flow_close(void *app) {
  struct pc_flow *fw = app;
  pc_fleet_close(fw->fleet); /* first: a lease's last release may still be pending in it */
  fw->fleet = NULL;
  fw->shared = NULL;
  pc_flights_close(fw->flights);
  fw->flights = NULL;
  if (fw->up) pc_upstream_destroy(fw->up);
  fw->up = NULL;
  if (fw->port) pc_wport_close(fw->port);
  fw->port = NULL;
}

/* On the loop's thread, after it ended: thread-local state too. */
static void flow_free(void *app) {
  struct pc_flow *fw = app;
  pc_cache_thread_done(fw->cache);
  pc_canon_thread_done();
  pc_buf_free(&fw->scratch);
  pc_buf_free(&fw->material);
  pc_buf_free(&fw->rawid);
  pc_buf_free(&fw->out);
  if (fw->rawkey) {
    size_t e, b;
    pc_rawkey_usage(fw->rawkey, &e, &b);
    pc_stats_memo(-(int64_t)e, -(int64_t)b);
  }
  pc_rawkey_destroy(fw->rawkey);
  free(fw);
}

static void flow_flush(void *app) {
  struct pc_flow *fw = app;
  if (fw->port) pc_wport_flush(fw->port);
}

void pc_proxy_app(const struct pc_proxy_ctx *ctx, struct pc_app *out) {
  *out = (struct pc_app){.conn_ops = &conn_ops,
                         .ctx = (void *)ctx,
                         .loop_start = flow_start,
                         .loop_free = flow_free,
                         .loop_busy = flow_busy,
                         .loop_abort = flow_abort,
                         .loop_close = flow_close,
                         .loop_flush = flow_flush};
}
