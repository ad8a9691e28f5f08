/* test_config.c — option parsing: defaults, flags, environment (flags win),
 * values with units, and one-line errors for bad input. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "route.h"

static int parse(struct pc_config *c, char *err, const char *a0, const char *a1, const char *a2, const char *a3) {
  char *argv[5] = {(char *)a0, (char *)a1, (char *)a2, (char *)a3, NULL};
  int argc = 0;
  while (argc < 4 && argv[argc]) argc++;
  return pc_config_parse(c, argc, argv, err, 256);
}

Test(config, defaults) {
  struct pc_config c;
  char err[256];
  cr_assert_eq(parse(&c, err, NULL, NULL, NULL, NULL), 0);
  cr_expect_str_eq(c.listen[0].host, "127.0.0.1");
  cr_expect_eq(c.listen[0].port, 8080);
  cr_expect_str_eq(c.upstream, "https://api.openai.com");
  cr_expect_str_eq(c.db, "./promptcache.db");
  cr_expect_eq(c.max_size, (size_t)1 << 30);
  cr_expect_eq(c.max_body, (size_t)32 << 20);
  cr_expect_eq(c.upstream_timeout_ms, 600000);
  cr_expect_eq(c.key_scope, PC_SCOPE_CREDENTIAL);
  cr_expect_eq(c.cache_paths.n, 0, "no --cache-path: each route's family's list");
  pc_config_free(&c);
}

Test(config, sizes_and_durations) {
  size_t s;
  int64_t d;
  cr_expect_eq(pc_config_parse_size("1GiB", &s), 0);
  cr_expect_eq(s, (size_t)1 << 30);
  cr_expect_eq(pc_config_parse_size("32MiB", &s), 0);
  cr_expect_eq(s, (size_t)32 << 20);
  cr_expect_eq(pc_config_parse_size("64k", &s), 0);
  cr_expect_eq(s, 65536);
  cr_expect_eq(pc_config_parse_size("512", &s), 0);
  cr_expect_eq(s, 512);
  cr_expect_eq(pc_config_parse_size("12x", &s), PC_EINVAL);
  cr_expect_eq(pc_config_parse_size("-1", &s), PC_EINVAL);
  cr_expect_eq(pc_config_parse_duration("30s", &d), 0);
  cr_expect_eq(d, 30000);
  cr_expect_eq(pc_config_parse_duration("15m", &d), 0);
  cr_expect_eq(d, 900000);
  cr_expect_eq(pc_config_parse_duration("7d", &d), 0);
  cr_expect_eq(d, 7 * 86400000LL);
  cr_expect_eq(pc_config_parse_duration("250ms", &d), 0);
  cr_expect_eq(d, 250);
  cr_expect_eq(pc_config_parse_duration("soon", &d), PC_EINVAL);
}

Test(config, flags_win_over_environment) {
  struct pc_config c;
  char err[256];
  setenv("PROMPTCACHE_KEY_SCOPE", "shared", 1);
  setenv("PROMPTCACHE_LISTEN", "127.0.0.1:1000,[::1]:1001", 1);
  cr_assert_eq(parse(&c, err, NULL, NULL, NULL, NULL), 0);
  cr_expect_eq(c.key_scope, PC_SCOPE_SHARED);
  cr_expect_eq(c.n_listen, 2);
  cr_expect_str_eq(c.listen[1].host, "::1");
  cr_expect_eq(c.listen[1].port, 1001);
  pc_config_free(&c);
  cr_assert_eq(parse(&c, err, "--key-scope", "credential", "--listen=127.0.0.1:9", NULL), 0);
  cr_expect_eq(c.key_scope, PC_SCOPE_CREDENTIAL);
  cr_expect_eq(c.n_listen, 1);
  cr_expect_eq(c.listen[0].port, 9);
  pc_config_free(&c);
  unsetenv("PROMPTCACHE_KEY_SCOPE");
  unsetenv("PROMPTCACHE_LISTEN");
}

Test(config, record_and_replay_default_to_shared_scope) {
  struct pc_config c;
  char err[256];
  cr_assert_eq(parse(&c, err, "--mode", "replay", NULL, NULL), 0);
  cr_expect_eq(c.key_scope, PC_SCOPE_SHARED);
  pc_config_free(&c);
  cr_assert_eq(parse(&c, err, "--mode", "record", "--key-scope", "credential"), 0);
  cr_expect_eq(c.key_scope, PC_SCOPE_CREDENTIAL);
  pc_config_free(&c);
}

Test(config, bad_values_give_one_line_errors) {
  static const char *const bad[][2] = {
      {"--listen", "nowhere"}, {"--upstream", "ftp://x"}, {"--route", "anthropic"}, {"--max-body", "lots"},
      {"--mode", "sometimes"}, {"--ttl", "forever"}, {"--key-scope", "global"}, {"--ignore-field", "user"},
      {"--log-format", "xml"}, {"--upstream-ca", "/nonexistent/ca.pem"}, {"--bogus", "1"}, {"--workers", "0"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct pc_config c;
    char err[256];
    cr_expect_eq(parse(&c, err, bad[i][0], bad[i][1], NULL, NULL), PC_EINVAL, "%s %s accepted", bad[i][0], bad[i][1]);
    cr_expect_neq(err[0], '\0');
    cr_expect_null(strchr(err, '\n'), "multi-line error: %s", err);
    pc_config_free(&c);
  }
}

Test(config, routes_longest_prefix_wins_and_is_stripped) {
  struct pc_config c;
  char err[256];
  cr_assert_eq(parse(&c, err, "--route", "/a=http://127.0.0.1:1", "--route", "/a/b=http://127.0.0.1:2/base/"), 0);
  struct pc_route_match m;
  pc_route_match(&c, "/a/b/v1/messages?x=1", &m);
  cr_expect_str_eq(m.upstream, "http://127.0.0.1:2/base");
  cr_expect_str_eq(m.route, "/a/b");
  cr_expect_eq(m.path_len, strlen("/v1/messages"));
  cr_expect_str_eq(m.query, "x=1");
  pc_route_match(&c, "/a/v1/chat/completions", &m);
  cr_expect_str_eq(m.upstream, "http://127.0.0.1:1");
  pc_route_match(&c, "/ab/v1", &m); /* not a segment match */
  cr_expect_str_eq(m.route, "");
  cr_expect_str_eq(m.upstream, c.upstream);
  pc_route_match(&c, "/v1/chat/completions", &m);
  cr_expect(pc_route_cacheable(&c, &m));
  pc_route_match(&c, "/v1beta/models/gemini:generateContent", &m);
  cr_expect(pc_route_cacheable(&c, &m));
  pc_route_match(&c, "/v1/models", &m);
  cr_expect_not(pc_route_cacheable(&c, &m));
  pc_config_free(&c);
}

Test(config, upstream_trailing_slashes_are_dropped_but_never_the_scheme) {
  struct pc_config c;
  char err[256];
  cr_assert_eq(parse(&c, err, "--upstream", "http://127.0.0.1:1//", NULL, NULL), 0, "%s", err);
  cr_expect_str_eq(c.upstream, "http://127.0.0.1:1");
  pc_config_free(&c);
  cr_assert_eq(parse(&c, err, "--upstream", "https://h/base///", NULL, NULL), 0, "%s", err);
  cr_expect_str_eq(c.upstream, "https://h/base");
  pc_config_free(&c);
}
