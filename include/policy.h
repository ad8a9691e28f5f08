/* policy.h — the proxy's pure decisions, in one place so that they can be
 * unit-tested and can never drift apart between the modules that need them:
 * which query parameters carry a credential (the key, the raw-request memo
 * and the access log must agree, or the memo could hand one tenant's answer
 * to another and the log could print a secret). No I/O, no state. */
#ifndef PC_POLICY_H
#define PC_POLICY_H

#include <stddef.h>

/* Whether a query parameter named `name` (n bytes, as written in the URL:
 * percent-encoded, any case) carries a credential: key, api_key, api-key,
 * apikey, x-api-key, access_token, subscription-key. Compared after
 * percent-decoding, case-insensitively, so `KEY` and `k%65y` are caught. */
int pc_policy_credential_param(const char *name, size_t n);

/* The name part of one query parameter `p` (n bytes, without '&'): its
 * length up to the first '='. */
size_t pc_policy_param_name_len(const char *p, size_t n);

#endif
