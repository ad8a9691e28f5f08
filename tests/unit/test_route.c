/* test_route.c — which upstream a target goes to, what path remains, and
 * whether it is cacheable. */
#include <criterion/criterion.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "family.h"
#include "route.h"

static struct pc_config cfg;

static void setup_routes(void) {
  char err[256];
  char *argv[] = {"--upstream", "https://up.example", "--route", "/anthropic=https://api.anthropic.com", "--route",
                  "/anthropic/beta=http://127.0.0.1:9/", "--route", "/g=https://gemini.example/v1beta"};
  cr_assert_eq(pc_config_parse(&cfg, 8, argv, err, sizeof err), 0, "%s", err);
}

static void teardown_routes(void) { pc_config_free(&cfg); }

TestSuite(route, .init = setup_routes, .fini = teardown_routes);

static struct pc_route_match match(const char *t) {
  struct pc_route_match m;
  pc_route_match(&cfg, t, &m);
  return m;
}

Test(route, default_upstream_keeps_the_path) {
  struct pc_route_match m = match("/v1/chat/completions?x=1");
  cr_expect_str_eq(m.route, "");
  cr_expect_str_eq(m.upstream, "https://up.example");
  cr_expect_eq(m.path_len, strlen("/v1/chat/completions"));
  cr_expect_str_eq(m.query, "x=1");
}

Test(route, longest_prefix_wins_and_is_stripped) {
  struct pc_route_match m = match("/anthropic/v1/messages");
  cr_expect_str_eq(m.route, "/anthropic");
  cr_expect_str_eq(m.upstream, "https://api.anthropic.com");
  cr_expect_eq(strncmp(m.path, "/v1/messages", m.path_len), 0);
  m = match("/anthropic/beta/v1/messages");
  cr_expect_str_eq(m.route, "/anthropic/beta");
  cr_expect_str_eq(m.upstream, "http://127.0.0.1:9");
  cr_expect_eq(m.path_len, strlen("/v1/messages"));
}

Test(route, prefixes_match_whole_segments_only) {
  cr_expect_str_eq(match("/anthropicx/v1/messages").route, "");
  cr_expect_str_eq(match("/anthropic").route, "/anthropic");
  cr_expect_eq(match("/anthropic").path_len, 0, "an empty rest is the upstream's root");
  struct pc_route_match m = match("/anthropic?beta=1");
  cr_expect_str_eq(m.route, "/anthropic");
  cr_expect_str_eq(m.query, "beta=1");
}

static int cacheable_in(const struct pc_config *c, const char *target) {
  struct pc_route_match m;
  pc_route_match(c, target, &m);
  return pc_route_cacheable(c, &m);
}

static int cacheable(const char *p) { return cacheable_in(&cfg, p); }

Test(route, default_cacheable_paths) {
  cr_expect(cacheable("/v1/chat/completions"));
  cr_expect(cacheable("/v1/embeddings"));
  cr_expect(cacheable("/v1/models/gemini-pro:generateContent"));
  cr_expect(cacheable("/anthropic/v1/messages"));
  cr_expect_not(cacheable("/v1/models"));
  cr_expect_not(cacheable("/v1/files"));
  cr_expect_not(cacheable("/v1/threads/thread_1/messages"), "creating a thread message is never cached");
}

Test(route, a_route_family_brings_its_paths_and_cache_path_overrides_them) {
  struct pc_config c;
  char err[256];
  char *argv[] = {"--route", "/ollama=http://127.0.0.1:11434,api=ollama", "--route", "/tgi=http://127.0.0.1:1,api=tgi"};
  cr_assert_eq(pc_config_parse(&c, 4, argv, err, sizeof err), 0, "%s", err);
  cr_expect(cacheable_in(&c, "/ollama/api/chat"));
  cr_expect_not(cacheable_in(&c, "/ollama/api/pull"));
  cr_expect(cacheable_in(&c, "/tgi/generate_stream"));
  cr_expect_not(cacheable_in(&c, "/ollama/generate_stream"), "another route's family");
  struct pc_route_match m;
  pc_route_match(&c, "/ollama/api/chat", &m);
  cr_expect_eq(m.api->family, PC_FAMILY_OLLAMA);
  pc_config_free(&c);
  char *argv2[] = {"--route", "/ollama=http://127.0.0.1:11434,api=ollama", "--cache-path", "*/api/pull"};
  cr_assert_eq(pc_config_parse(&c, 4, argv2, err, sizeof err), 0, "%s", err);
  cr_expect(cacheable_in(&c, "/ollama/api/pull"));
  cr_expect_not(cacheable_in(&c, "/ollama/api/chat"), "--cache-path replaces every route's list");
  pc_config_free(&c);
}

Test(route, bad_api_options_are_refused_in_one_line) {
  struct pc_config c;
  char err[256];
  char *a1[] = {"--route", "/x=http://127.0.0.1:1,api=nope"};
  cr_expect_eq(pc_config_parse(&c, 2, a1, err, sizeof err), PC_EINVAL);
  cr_expect(strstr(err, "unknown api 'nope'") != NULL, "%s", err);
  pc_config_free(&c);
  char *a2[] = {"--route", "/x=http://127.0.0.1:1,colour=red"};
  cr_expect_eq(pc_config_parse(&c, 2, a2, err, sizeof err), 0, "a comma in the URL is the URL's: %s", err);
  pc_config_free(&c);
}
