/* policy.h — the proxy's pure decisions, in one place so that they can be
 * unit-tested and can never drift apart between the modules that need them:
 * the per-request cache controls and what they mean in each mode, when an
 * entry is fresh, which request headers are forwarded, which response
 * headers are passed on and which stored, which headers and query
 * parameters carry a credential (the key, the raw-request memo and the
 * access log must agree, or the memo could hand one tenant's answer to
 * another and the log could print a secret). No I/O, no state. */
#ifndef PC_POLICY_H
#define PC_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* ---- credentials ---- */

/* Request headers that carry a credential, lower case, NULL-terminated. */
extern const char *const pc_policy_credential_headers[];

/* Whether a query parameter named `name` (n bytes, as written in the URL:
 * percent-encoded, any case) carries a credential: key, api_key, api-key,
 * apikey, x-api-key, access_token, subscription-key. Compared after
 * percent-decoding, case-insensitively, so `KEY` and `k%65y` are caught. */
int pc_policy_credential_param(const char *name, size_t n);

/* The name part of one query parameter `p` (n bytes, without '&'): its
 * length up to the first '='. */
size_t pc_policy_param_name_len(const char *p, size_t n);

/* ---- per-request controls (SPEC §5) ---- */

struct pc_controls {
  int no_store, no_cache, only_if_cached, paced;
  int64_t max_age_ms; /* -1: any age */
  int64_t ttl_ms;     /* lifetime of the entry this request stores (0: none) */
};

enum pc_controls_error { PC_CONTROLS_OK, PC_CONTROLS_BAD_MAX_AGE, PC_CONTROLS_BAD_TTL };

/* Parse `Cache-Control` (cc, cc_len; NULL when absent), `X-PromptCache-TTL`
 * and `X-PromptCache-Pacing` (NUL-terminated or NULL) over the configured
 * defaults. max-age beyond what milliseconds can hold counts as "any age". */
enum pc_controls_error pc_policy_controls(const struct pc_config *cfg, const char *cc, size_t cc_len, const char *ttl,
                                          const char *pacing, struct pc_controls *out);

/* What one cacheable request does, by mode (SPEC §6) and controls. */
struct pc_decision {
  int lookup;              /* look the cache up */
  int store;               /* store a complete answer */
  int coalesce;            /* may join, and be joined by, an identical request in flight */
  int upstream;            /* may go upstream on a miss (replay and only-if-cached may not) */
  const char *miss_status; /* X-PromptCache-Status when it goes upstream: MISS, BYPASS or REFRESH */
};
void pc_policy_decide(enum pc_mode mode, const struct pc_controls *ct, struct pc_decision *out);

/* Whether an entry created at created_ms and expiring at expires_ms (0:
 * never) may be served as a hit at now_ms. Replay serves recordings whatever
 * their age (a CI fixture must not rot); max-age=N accepts entries younger
 * than N seconds, to the millisecond. */
int pc_policy_fresh(enum pc_mode mode, const struct pc_controls *ct, int64_t created_ms, int64_t expires_ms,
                    int64_t now_ms);

/* ---- headers ---- */

/* Next element of a comma-separated header value, spaces trimmed; 0 at the end. */
int pc_policy_next_token(const char **p, const char *end, const char **tok, size_t *len);

/* Whether a request header is forwarded upstream: not hop-by-hop (nor named
 * by the request's Connection header, `connection` / `clen`, may be NULL),
 * not framing that libcurl redoes, not one of the proxy's own controls. */
int pc_policy_forward_request_header(const char *name, size_t n, const char *connection, size_t clen);

/* Whether an upstream response header is passed to the client (hop-by-hop
 * ones and the framing libcurl undid are not) ... */
int pc_policy_pass_response_header(const char *name, size_t n);
/* ... and whether it is stored with the entry (per-response cookies, dates
 * and rate limits are not). */
int pc_policy_store_response_header(const char *name, size_t n);

#endif
