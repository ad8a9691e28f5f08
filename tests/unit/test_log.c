/* test_log.c — the access log never shows a credential, whatever the target. */
#include <criterion/criterion.h>
#include <string.h>

#include "log.h"

static char *masked(const char *target) {
  static pc_buf b;
  pc_buf_free(&b);
  pc_buf_init(&b, 1 << 22);
  pc_log_mask_target(&b, target);
  return b.data ? b.data : "";
}

Test(log, credential_values_are_masked) {
  cr_expect_str_eq(masked("/v1/x?key=AIzaSECRET"), "/v1/x?key=***");
  cr_expect_str_eq(masked("/v1/x?a=1&api_key=s&KEY=t&k%65y=u&b=2"), "/v1/x?a=1&api_key=***&KEY=***&k%65y=***&b=2");
  cr_expect_str_eq(masked("/v1/x?keyword=visible"), "/v1/x?keyword=visible");
  cr_expect_str_eq(masked("/v1/x"), "/v1/x");
  cr_expect_str_eq(masked("/v1/x?"), "/v1/x?");
  cr_expect_str_eq(masked("/v1/x?key"), "/v1/x?key");
  cr_expect_str_eq(masked("/v1/x?&&key=s&"), "/v1/x?&&key=***&");
}

/* The crash this replaced: a fixed 4 KiB copy scanned from an offset
 * computed on the whole target. */
Test(log, long_targets_are_masked_in_full) {
  size_t n = 64 * 1024;
  char *t = malloc(n + 64);
  memcpy(t, "/v1/x?", 6);
  memset(t + 6, 'a', n);
  memcpy(t + 6 + n, "=1&key=SECRET", 14);
  const char *m = masked(t);
  cr_expect_eq(strlen(m), 6 + n + strlen("=1&key=***"));
  cr_expect_null(strstr(m, "SECRET"));
  free(t);
}
