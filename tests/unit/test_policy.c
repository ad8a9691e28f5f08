/* test_policy.c — the proxy's pure decisions (policy.h). */
#include <criterion/criterion.h>
#include <string.h>

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
