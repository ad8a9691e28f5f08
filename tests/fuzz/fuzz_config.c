/* fuzz_config.c — libFuzzer target for src/config.c: serve options from the
 * command line and the PROMPTCACHE_* environment, sizes and durations.
 * Input: NUL-separated words (at most MAX_ARGS). Leading words of the form
 * PROMPTCACHE_NAME=value are set in the environment for this run (at most
 * MAX_ENV); the rest is argv. The raw input (up to its first NUL) is also
 * given to pc_config_parse_size and pc_config_parse_duration.
 * Checked: an accepted configuration holds what the rest of the program
 * trusts (config.h: no trailing slash on URLs, a listener, paths set). */
#include "fuzz.h"

#include <stdint.h>

#include "config.h"
#include "error.h"

#define MAX_ARGS 32
#define MAX_ENV 4
#define ENV_PREFIX "PROMPTCACHE_"

extern char **environ;

/* Every PROMPTCACHE_* variable of the fuzzer's own environment is dropped:
 * the input alone decides what pc_config_parse sees. */
static void clear_env(void) {
  for (;;) {
    char *name = NULL;
    for (char **e = environ; e && *e; e++)
      if (!strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX))) {
        name = fuzz_cstr(*e, strcspn(*e, "="));
        break;
      }
    if (!name) return;
    unsetenv(name);
    free(name);
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  clear_env();
  return 0;
}

static void check_config(const struct pc_config *c) {
  FUZZ_CHECK(c->n_listen >= 1 && c->n_listen <= PC_MAX_LISTEN, "%zu listeners", c->n_listen);
  FUZZ_CHECK(c->upstream && c->db && c->redis_prefix, "unset defaults");
  for (size_t i = 0; i < c->cache_paths.n; i++) /* none: each route's family's own list */
    FUZZ_CHECK(c->cache_paths.v[i] && c->cache_paths.v[i][0], "cache path %zu empty", i);
  size_t n = strlen(c->upstream);
  FUZZ_CHECK(n && (c->upstream[n - 1] != '/' || c->upstream[n - 2] == '/'), "upstream with a trailing slash: %s",
             c->upstream);
  for (size_t i = 0; i < c->n_routes; i++) {
    FUZZ_CHECK(c->routes[i].prefix[0] == '/' && strlen(c->routes[i].prefix) == c->routes[i].prefix_len,
               "route prefix %s", c->routes[i].prefix);
    FUZZ_CHECK(c->routes[i].url, "route without URL");
  }
  for (size_t i = 0; i < c->n_listen; i++)
    FUZZ_CHECK(c->listen[i].port >= 0 && c->listen[i].port <= 65535 && c->listen[i].host[0], "listener %zu", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *words[MAX_ARGS], *env_set[MAX_ENV];
  size_t n = 0, n_env = 0;
  struct fuzz_part rest = {(const char *)data, size}, w;
  while (n < MAX_ARGS && rest.n) {
    fuzz_split((const uint8_t *)rest.p, rest.n, 0, &w, &rest);
    char *s = fuzz_cstr(w.p, w.n), *eq = strchr(s, '=');
    if (n == 0 && n_env < MAX_ENV && !strncmp(s, ENV_PREFIX, strlen(ENV_PREFIX)) && eq) {
      putenv(s); /* not setenv: glibc never frees the strings setenv makes */
      env_set[n_env++] = s;
      continue;
    }
    words[n++] = s;
  }

  struct pc_config cfg;
  char err[256];
  int rc = pc_config_parse(&cfg, (int)n, words, err, sizeof err);
  FUZZ_CHECK(rc == 0 || rc == 1 || rc == PC_EINVAL || rc == PC_ENOMEM, "pc_config_parse returned %d", rc);
  FUZZ_CHECK(rc != PC_EINVAL || err[0], "an error without a message");
  if (rc == 0) check_config(&cfg);
  pc_config_free(&cfg);

  char *raw = fuzz_cstr((const char *)data, size);
  size_t sz;
  int64_t ms;
  if (pc_config_parse_size(raw, &sz) == 0) FUZZ_CHECK(sz <= (size_t)1e18, "size %zu", sz);
  if (pc_config_parse_duration(raw, &ms) == 0) FUZZ_CHECK(ms >= 0, "negative duration %lld", (long long)ms);
  free(raw);

  for (size_t i = 0; i < n; i++) free(words[i]);
  for (size_t i = 0; i < n_env; i++) { /* out of environ before the strings it points at are freed */
    char *name = fuzz_cstr(env_set[i], (size_t)(strchr(env_set[i], '=') - env_set[i]));
    unsetenv(name);
    free(name);
  }
  for (size_t i = 0; i < n_env; i++) free(env_set[i]);
  return 0;
}
