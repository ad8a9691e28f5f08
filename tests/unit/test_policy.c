/* test_policy.c — the proxy's pure decisions (policy.h). */
#include <criterion/criterion.h>
#include <string.h>

#include "config.h"
#include "policy.h"

static int cred(const char *s) { return pc_policy_credential_param(s, strlen(s)); }

Test(policy, credential_params_are_recognised_in_any_spelling) {
  cr_expect(cred("key"));
  cr_expect(cred("KEY"));
  cr_expect(cred("k%65y"));
  cr_expect(cred("K%45Y"));
  cr_expect(cred("api_key"));
  cr_expect(cred("api-key"));
  cr_expect(cred("apikey"));
  cr_expect(cred("x-api-key"));
  cr_expect(cred("access_token"));
  cr_expect(cred("subscription-key"));
  cr_expect_not(cred("keys"));
  cr_expect_not(cred("keyword"));
  cr_expect_not(cred("alt"));
  cr_expect_not(cred(""));
  cr_expect_not(cred("%"));
  cr_expect_not(cred("k%6"));
  cr_expect_not(cred("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

Test(policy, param_name_stops_at_equals) {
  cr_expect_eq(pc_policy_param_name_len("key=abc", 7), 3);
  cr_expect_eq(pc_policy_param_name_len("flag", 4), 4);
  cr_expect_eq(pc_policy_param_name_len("=x", 2), 0);
}

static struct pc_config cfg_of(const char *mode, const char *ttl, const char *pacing) {
  struct pc_config c;
  char err[256];
  char *argv[6];
  int argc = 0;
  argv[argc++] = "--mode";
  argv[argc++] = (char *)mode;
  if (ttl) {
    argv[argc++] = "--ttl";
    argv[argc++] = (char *)ttl;
  }
  if (pacing) {
    argv[argc++] = "--replay-pacing";
    argv[argc++] = (char *)pacing;
  }
  cr_assert_eq(pc_config_parse(&c, argc, argv, err, sizeof err), 0, "%s", err);
  return c;
}

static enum pc_controls_error controls(const struct pc_config *c, const char *cc, const char *ttl, const char *pacing,
                                       struct pc_controls *out) {
  return pc_policy_controls(c, cc, cc ? strlen(cc) : 0, ttl, pacing, out);
}

Test(policy, cache_control_directives) {
  struct pc_config c = cfg_of("readwrite", "1h", NULL);
  struct pc_controls ct;
  cr_assert_eq(controls(&c, NULL, NULL, NULL, &ct), PC_CONTROLS_OK);
  cr_expect_eq(ct.max_age_ms, -1);
  cr_expect_eq(ct.ttl_ms, 3600000);
  cr_expect_not(ct.no_store || ct.no_cache || ct.only_if_cached || ct.paced);
  cr_assert_eq(controls(&c, "No-Store, no-cache ,ONLY-IF-CACHED,max-age=30", "15m", "original", &ct), PC_CONTROLS_OK);
  cr_expect(ct.no_store && ct.no_cache && ct.only_if_cached && ct.paced);
  cr_expect_eq(ct.max_age_ms, 30000);
  cr_expect_eq(ct.ttl_ms, 900000);
  cr_assert_eq(controls(&c, "max-age=\"0\"", NULL, NULL, &ct), PC_CONTROLS_OK);
  cr_expect_eq(ct.max_age_ms, 0);
  cr_expect_eq(controls(&c, "max-age=-1", NULL, NULL, &ct), PC_CONTROLS_BAD_MAX_AGE);
  cr_expect_eq(controls(&c, "max-age=", NULL, NULL, &ct), PC_CONTROLS_BAD_MAX_AGE);
  cr_expect_eq(controls(&c, "max-age=1x", NULL, NULL, &ct), PC_CONTROLS_BAD_MAX_AGE);
  cr_expect_eq(controls(&c, NULL, "soon", NULL, &ct), PC_CONTROLS_BAD_TTL);
  pc_config_free(&c);
}

/* max-age near INT64_MAX used to overflow when turned into milliseconds. */
Test(policy, huge_max_age_means_any_age) {
  struct pc_config c = cfg_of("readwrite", NULL, NULL);
  struct pc_controls ct;
  cr_assert_eq(controls(&c, "max-age=9223372036854775807", NULL, NULL, &ct), PC_CONTROLS_OK);
  cr_expect_eq(ct.max_age_ms, -1);
  cr_assert_eq(controls(&c, "max-age=99999999999999999999999999", NULL, NULL, &ct), PC_CONTROLS_OK);
  cr_expect_eq(ct.max_age_ms, -1);
  cr_assert_eq(controls(&c, "max-age=9223372036854775", NULL, NULL, &ct), PC_CONTROLS_OK);
  cr_expect_eq(ct.max_age_ms, 9223372036854775000LL);
  cr_expect(pc_policy_fresh(PC_MODE_READWRITE, &ct, 0, 0, INT64_MAX / 2));
  pc_config_free(&c);
}

Test(policy, decisions_by_mode_and_controls) {
  struct pc_controls none = {.max_age_ms = -1}, nostore = {.no_store = 1, .max_age_ms = -1},
                     nocache = {.no_cache = 1, .max_age_ms = -1}, oic = {.only_if_cached = 1, .max_age_ms = -1};
  struct pc_decision d;
  pc_policy_decide(PC_MODE_READWRITE, &none, &d);
  cr_expect(d.lookup && d.store && d.coalesce && d.upstream);
  cr_expect_str_eq(d.miss_status, "MISS");
  pc_policy_decide(PC_MODE_READWRITE, &nostore, &d);
  cr_expect(!d.lookup && !d.store && !d.coalesce && d.upstream);
  cr_expect_str_eq(d.miss_status, "BYPASS");
  pc_policy_decide(PC_MODE_READWRITE, &nocache, &d);
  cr_expect(!d.lookup && d.store && !d.coalesce && d.upstream);
  cr_expect_str_eq(d.miss_status, "REFRESH");
  pc_policy_decide(PC_MODE_READWRITE, &oic, &d);
  cr_expect(d.lookup && !d.upstream);
  pc_policy_decide(PC_MODE_READONLY, &none, &d);
  cr_expect(d.lookup && !d.store && d.coalesce);
  pc_policy_decide(PC_MODE_RECORD, &none, &d);
  cr_expect(!d.lookup && d.store);
  pc_policy_decide(PC_MODE_REPLAY, &nostore, &d);
  cr_expect(d.lookup && !d.store && !d.upstream, "replay looks up whatever the controls say and never goes upstream");
  pc_policy_decide(PC_MODE_OFF, &none, &d);
  cr_expect(!d.lookup && !d.store && !d.coalesce);
}

Test(policy, freshness) {
  struct pc_controls any = {.max_age_ms = -1}, young = {.max_age_ms = 10000};
  cr_expect(pc_policy_fresh(PC_MODE_READWRITE, &any, 1000, 0, 999999));
  cr_expect_not(pc_policy_fresh(PC_MODE_READWRITE, &any, 1000, 5000, 5000), "expired at its expiry");
  cr_expect(pc_policy_fresh(PC_MODE_READWRITE, &any, 1000, 5000, 4999));
  cr_expect(pc_policy_fresh(PC_MODE_REPLAY, &any, 1000, 5000, 99999), "replay serves recordings whatever their age");
  cr_expect(pc_policy_fresh(PC_MODE_READWRITE, &young, 1000, 0, 10999));
  cr_expect_not(pc_policy_fresh(PC_MODE_READWRITE, &young, 1000, 0, 11000));
}

static int fwd(const char *name, const char *connection) {
  return pc_policy_forward_request_header(name, strlen(name), connection, connection ? strlen(connection) : 0);
}

Test(policy, request_headers_forwarded) {
  cr_expect(fwd("Authorization", NULL));
  cr_expect(fwd("content-type", NULL));
  cr_expect(fwd("x-mock-behavior", NULL));
  cr_expect_not(fwd("Host", NULL));
  cr_expect_not(fwd("Content-Length", NULL));
  cr_expect_not(fwd("Transfer-Encoding", NULL));
  cr_expect_not(fwd("Connection", NULL));
  cr_expect_not(fwd("Upgrade", NULL));
  cr_expect_not(fwd("Cache-Control", NULL));
  cr_expect_not(fwd("X-PromptCache-Namespace", NULL));
  cr_expect_not(fwd("Accept-Encoding", NULL), "libcurl negotiates encoding itself");
  cr_expect_not(fwd("x-secret-hop", "keep-alive, X-Secret-Hop"), "named by Connection: hop-by-hop");
  cr_expect(fwd("x-other", "keep-alive, X-Secret-Hop"));
}

static int pass(const char *n) { return pc_policy_pass_response_header(n, strlen(n)); }
static int stored(const char *n) { return pc_policy_store_response_header(n, strlen(n)); }

Test(policy, response_headers_passed_and_stored) {
  cr_expect(pass("content-type") && stored("content-type"));
  cr_expect(pass("openai-processing-ms") && stored("openai-processing-ms"));
  cr_expect(pass("Set-Cookie") && !stored("Set-Cookie"));
  cr_expect(pass("Date") && !stored("Date"));
  cr_expect(pass("x-ratelimit-remaining-tokens") && !stored("x-ratelimit-remaining-tokens"));
  cr_expect(pass("anthropic-ratelimit-requests-limit") && !stored("anthropic-ratelimit-requests-limit"));
  cr_expect(!pass("Content-Length") && !stored("Content-Length"));
  cr_expect(!pass("Content-Encoding") && !stored("Content-Encoding"));
  cr_expect(!pass("Transfer-Encoding") && !stored("Transfer-Encoding"));
  cr_expect(!pass("Connection") && !stored("Connection"));
}

Test(policy, one_list_of_credential_headers) {
  const char *want[] = {"authorization", "x-api-key", "api-key", "x-goog-api-key"};
  size_t n = 0;
  while (pc_policy_credential_headers[n]) n++;
  cr_assert_eq(n, 4);
  for (size_t i = 0; i < n; i++) cr_expect_str_eq(pc_policy_credential_headers[i], want[i]);
}
