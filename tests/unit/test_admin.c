/* test_admin.c — which admin endpoints a configuration exposes. */
#include <criterion/criterion.h>
#include <string.h>

#include "admin.h"
#include "config.h"

static int open_for(const char *listen, const char *token) {
  struct pc_config c;
  char err[256];
  char *argv[4] = {"--listen", (char *)listen, NULL, NULL};
  int argc = 2;
  if (token) {
    argv[2] = "--admin-token";
    argv[3] = (char *)token;
    argc = 4;
  }
  cr_assert_eq(pc_config_parse(&c, argc, argv, err, sizeof err), 0, "%s", err);
  int open = pc_admin_open(&c);
  pc_config_free(&c);
  return open;
}

Test(admin, loopback_listeners_serve_admin_without_a_token) {
  cr_expect(open_for("127.0.0.1:8080", NULL));
  cr_expect(open_for("[::1]:8080", NULL));
}

Test(admin, a_non_loopback_listener_without_a_token_serves_only_health) {
  cr_expect_not(open_for("0.0.0.0:8080", NULL));
  cr_expect_not(open_for("[::]:8080", NULL));
  cr_expect_not(open_for("10.1.2.3:8080", NULL));
}

Test(admin, a_token_opens_admin_on_any_address) {
  cr_expect(open_for("0.0.0.0:8080", "s3cret"));
}
