/* policy.c — the proxy's pure decisions (see policy.h). */
#include "policy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "utf8.h"

/* ---- credentials ---- */

const char *const pc_policy_credential_headers[] = {"authorization", "x-api-key", "api-key", "x-goog-api-key", NULL};

/* Credential parameter names, lower case. */
static const char *const cred_params[] = {"key",       "api_key",      "api-key",         "apikey",
                                          "x-api-key", "access_token", "subscription-key"};

#define NAME_MAX_DECODED 32 /* longer than any name above: cannot match */

size_t pc_policy_param_name_len(const char *p, size_t n) {
  const char *eq = memchr(p, '=', n);
  return eq ? (size_t)(eq - p) : n;
}

int pc_policy_credential_param(const char *name, size_t n) {
  char d[NAME_MAX_DECODED];
  size_t dl = pc_param_name_decode(name, n, d, sizeof d);
  if (dl > sizeof d) return 0;
  for (size_t i = 0; i < sizeof cred_params / sizeof *cred_params; i++)
    if (strlen(cred_params[i]) == dl && !memcmp(cred_params[i], d, dl)) return 1;
  return 0;
}

/* ---- per-request controls ---- */

int pc_policy_next_token(const char **p, const char *end, const char **tok, size_t *len) {
  while (*p < end && (**p == ' ' || **p == ',' || **p == '\t')) (*p)++;
  if (*p >= end) return 0;
  *tok = *p;
  while (*p < end && **p != ',') (*p)++;
  *len = (size_t)(*p - *tok);
  while (*len && ((*tok)[*len - 1] == ' ' || (*tok)[*len - 1] == '\t')) (*len)--;
  return 1;
}

static int tok_is(const char *tok, size_t tl, const char *lit) {
  size_t n = strlen(lit);
  return tl == n && !strncasecmp(tok, lit, n);
}

/* max-age=N: N decimal digits (optionally quoted); past what milliseconds
 * can hold it means any age. Returns 0 or -1 for a malformed value. */
static int parse_max_age(const char *v, size_t n, int64_t *ms) {
  if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
    v++;
    n -= 2;
  }
  if (n == 0) return -1;
  int64_t s = 0, max_s = INT64_MAX / 1000;
  int over = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    int d = v[i] - '0';
    if (over || s > (max_s - d) / 10)
      over = 1; /* more seconds than milliseconds can count */
    else
      s = s * 10 + d;
  }
  *ms = over ? -1 : s * 1000;
  return 0;
}

enum pc_controls_error pc_policy_controls(const struct pc_config *cfg, const char *cc, size_t cc_len, const char *ttl,
                                          const char *pacing, struct pc_controls *out) {
  memset(out, 0, sizeof *out);
  out->max_age_ms = -1;
  out->ttl_ms = cfg->ttl_ms;
  out->paced = cfg->replay_pacing_original;
  const char *tok;
  size_t tl;
  for (const char *p = cc, *end = cc ? cc + cc_len : NULL; cc && pc_policy_next_token(&p, end, &tok, &tl);) {
    if (tok_is(tok, tl, "no-store"))
      out->no_store = 1;
    else if (tok_is(tok, tl, "no-cache"))
      out->no_cache = 1;
    else if (tok_is(tok, tl, "only-if-cached"))
      out->only_if_cached = 1;
    else if (tl >= 8 && !strncasecmp(tok, "max-age=", 8) && parse_max_age(tok + 8, tl - 8, &out->max_age_ms))
      return PC_CONTROLS_BAD_MAX_AGE;
  }
  if (ttl && pc_config_parse_duration(ttl, &out->ttl_ms)) return PC_CONTROLS_BAD_TTL;
  if (pacing) out->paced = !strcasecmp(pacing, "original");
  return PC_CONTROLS_OK;
}

void pc_policy_decide(enum pc_mode mode, const struct pc_controls *ct, struct pc_decision *d) {
  int replay = mode == PC_MODE_REPLAY;
  d->lookup = replay || (!ct->no_store && !ct->no_cache && mode != PC_MODE_RECORD && mode != PC_MODE_OFF);
  d->store = (mode == PC_MODE_READWRITE || mode == PC_MODE_RECORD) && !ct->no_store;
  d->coalesce = !ct->no_store && !ct->no_cache && mode != PC_MODE_OFF;
  d->upstream = !replay && !ct->only_if_cached;
  d->miss_status = ct->no_store ? "BYPASS" : ct->no_cache ? "REFRESH" : "MISS";
}

int pc_policy_fresh(enum pc_mode mode, const struct pc_controls *ct, int64_t created_ms, int64_t expires_ms,
                    int64_t now_ms) {
  if (mode == PC_MODE_REPLAY) return 1;
  if (expires_ms && now_ms >= expires_ms) return 0;
  return !(ct->max_age_ms >= 0 && now_ms - created_ms >= ct->max_age_ms);
}

/* ---- headers ---- */

static int name_eq(const char *a, size_t n, const char *lit) { return strlen(lit) == n && !strncasecmp(a, lit, n); }

static int in_list(const char *name, size_t n, const char *const *list, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (name_eq(name, n, list[i])) return 1;
  return 0;
}

/* Is `name` listed in the Connection header (and so hop-by-hop)? */
static int named_by_connection(const char *conn, size_t clen, const char *name, size_t n) {
  const char *tok;
  size_t tl;
  for (const char *p = conn, *end = conn ? conn + clen : NULL; conn && pc_policy_next_token(&p, end, &tok, &tl);)
    if (tl == n && !strncasecmp(tok, name, n)) return 1;
  return 0;
}

int pc_policy_forward_request_header(const char *name, size_t n, const char *connection, size_t clen) {
  static const char *const drop[] = {"connection",          "keep-alive", "proxy-connection",
                                     "proxy-authorization", "te",         "trailer",
                                     "transfer-encoding",   "upgrade",    "host",
                                     "content-length",      "expect",     "accept-encoding",
                                     "cache-control"};
  if (in_list(name, n, drop, sizeof drop / sizeof *drop)) return 0;
  if (n >= 14 && !strncasecmp(name, "x-promptcache-", 14)) return 0;
  return !named_by_connection(connection, clen, name, n);
}

int pc_policy_pass_response_header(const char *name, size_t n) {
  static const char *const hop[] = {
      "connection", "keep-alive",        "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
      "trailer",    "transfer-encoding", "upgrade",          "content-length",     "content-encoding"};
  return !in_list(name, n, hop, sizeof hop / sizeof *hop);
}

int pc_policy_store_response_header(const char *name, size_t n) {
  if (!pc_policy_pass_response_header(name, n) || name_eq(name, n, "set-cookie") || name_eq(name, n, "date")) return 0;
  if (n >= 12 && !strncasecmp(name, "x-ratelimit-", 12)) return 0;
  if (n >= 20 && !strncasecmp(name, "anthropic-ratelimit-", 20)) return 0;
  return 1;
}
