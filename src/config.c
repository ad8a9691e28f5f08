/* config.c — builds the immutable struct pc_config from defaults, then the
 * PROMPTCACHE_<NAME> environment, then flags (flags win: a repeatable flag
 * given on the command line replaces the environment's list). Every value is
 * validated here so the rest of the program can trust it. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awscred.h"
#include "error.h"
#include "family.h"
#include "redis.h"

typedef int (*opt_fn)(struct pc_config *c, const char *v, char *err, size_t errlen);

struct opt {
  const char *name; /* without leading dashes */
  int has_arg;
  int repeatable;
  opt_fn fn;
};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return PC_EINVAL;
}

int pc_config_parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  if (!s || !isdigit((unsigned char)*s)) return PC_EINVAL;
  double v = strtod(s, &end);
  if (errno || end == s) return PC_EINVAL;
  double mul = 1;
  if (*end) {
    char u = (char)tolower((unsigned char)*end++);
    if (u == 'k')
      mul = 1024.0;
    else if (u == 'm')
      mul = 1024.0 * 1024;
    else if (u == 'g')
      mul = 1024.0 * 1024 * 1024;
    else if (u == 't')
      mul = 1024.0 * 1024 * 1024 * 1024;
    else if (u != 'b')
      return PC_EINVAL;
    if (u != 'b') {
      if (*end == 'i' || *end == 'I') end++;
      if (*end == 'b' || *end == 'B') end++;
    }
    if (*end) return PC_EINVAL;
  }
  v *= mul;
  if (v < 0 || v > 1e18) return PC_EINVAL;
  *out = (size_t)v;
  return 0;
}

int pc_config_parse_duration(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  if (!s || !isdigit((unsigned char)*s)) return PC_EINVAL;
  double v = strtod(s, &end);
  if (errno || end == s) return PC_EINVAL;
  double mul;
  if (!*end || !strcmp(end, "s"))
    mul = 1000;
  else if (!strcmp(end, "ms"))
    mul = 1;
  else if (!strcmp(end, "m"))
    mul = 60e3;
  else if (!strcmp(end, "h"))
    mul = 3600e3;
  else if (!strcmp(end, "d"))
    mul = 86400e3;
  else if (!strcmp(end, "w"))
    mul = 7 * 86400e3;
  else
    return PC_EINVAL;
  v *= mul;
  if (v < 0 || v > 9e15) return PC_EINVAL;
  *out = (int64_t)v;
  return 0;
}

static int strlist_add(struct pc_strlist *l, const char *s) {
  char **v = realloc(l->v, (l->n + 1) * sizeof *v);
  if (!v) return PC_ENOMEM;
  l->v = v;
  if (!(v[l->n] = strdup(s))) return PC_ENOMEM;
  l->n++;
  return 0;
}

static void strlist_clear(struct pc_strlist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static int set_str(char **dst, const char *v) {
  free(*dst);
  *dst = strdup(v);
  return *dst ? 0 : PC_ENOMEM;
}

/* An upstream base URL: http(s)://host[:port][/base], stored without trailing slash. */
static int check_url(const char *v, char **dst, char *err, size_t errlen, const char *what) {
  if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
    return fail(err, errlen, "invalid %s URL '%s': must start with http:// or https://", what, v);
  const char *host = strstr(v, "://") + 3;
  if (!*host || *host == '/') return fail(err, errlen, "invalid %s URL '%s': no host", what, v);
  if (strchr(v, '?') || strchr(v, '#'))
    return fail(err, errlen, "invalid %s URL '%s': no query or fragment allowed", what, v);
  int rc = set_str(dst, v);
  if (rc) return rc;
  size_t n = strlen(*dst), at = (size_t)(host - v); /* trailing slashes go, never into "scheme://" */
  while (n > at && (*dst)[n - 1] == '/') (*dst)[--n] = '\0';
  return 0;
}

static int opt_listen(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (c->n_listen >= PC_MAX_LISTEN) return fail(err, errlen, "too many --listen addresses");
  struct pc_listen *l = &c->listen[c->n_listen];
  const char *colon;
  size_t hostlen;
  if (v[0] == '[') {
    const char *rb = strchr(v, ']');
    if (!rb || rb[1] != ':') return fail(err, errlen, "invalid --listen '%s': expected [ADDR]:PORT", v);
    hostlen = (size_t)(rb - v - 1);
    memmove(l->host, v + 1, hostlen < sizeof l->host ? hostlen : 0);
    colon = rb + 1;
  } else {
    colon = strrchr(v, ':');
    if (!colon) return fail(err, errlen, "invalid --listen '%s': expected ADDR:PORT", v);
    hostlen = (size_t)(colon - v);
    memmove(l->host, v, hostlen < sizeof l->host ? hostlen : 0);
  }
  if (hostlen == 0 || hostlen >= sizeof l->host) return fail(err, errlen, "invalid --listen '%s': bad address", v);
  l->host[hostlen] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || port < 0 || port > 65535) return fail(err, errlen, "invalid --listen '%s': bad port", v);
  l->port = (int)port;
  c->n_listen++;
  return 0;
}

/* "URL[,api=FAMILY][,region=REGION]": the URL and what it speaks. */
static int url_and_api(const char *v, char **url, struct pc_api *api, char *err, size_t errlen, const char *what) {
  const char *opts = v;
  while ((opts = strchr(opts, ',')) && strncmp(opts + 1, "api=", 4) && strncmp(opts + 1, "region=", 7)) opts++;
  char *u = opts ? strndup(v, (size_t)(opts - v)) : strdup(v);
  if (!u) return PC_ENOMEM;
  int rc = check_url(u, url, err, errlen, what);
  free(u);
  while (!rc && opts) {
    const char *o = opts + 1, *next = strchr(o, ',');
    size_t n = next ? (size_t)(next - o) : strlen(o);
    char *val = NULL;
    if (n > 4 && !strncmp(o, "api=", 4) && (val = strndup(o + 4, n - 4))) {
      enum pc_family_id f;
      if (pc_family_parse(val, &f))
        rc = fail(err, errlen,
                  "invalid %s '%s': unknown api '%s' (openai, anthropic, gemini, azure, ollama, tgi, "
                  "llamacpp, bedrock)",
                  what, v, val);
      else
        api->family = (int)f;
    } else if (n > 7 && !strncmp(o, "region=", 7) && (val = strndup(o + 7, n - 7))) {
      free(api->region);
      api->region = val;
      val = NULL;
    } else {
      rc = fail(err, errlen, "invalid %s '%s': after the URL only ,api=FAMILY and ,region=REGION", what, v);
    }
    free(val);
    opts = next;
  }
  return rc;
}

static int opt_upstream(struct pc_config *c, const char *v, char *err, size_t errlen) {
  free(c->upstream_api.region);
  memset(&c->upstream_api, 0, sizeof c->upstream_api);
  return url_and_api(v, &c->upstream, &c->upstream_api, err, errlen, "--upstream");
}

static int opt_route(struct pc_config *c, const char *v, char *err, size_t errlen) {
  const char *eq = strchr(v, '=');
  if (!eq || v[0] != '/' || eq == v) return fail(err, errlen, "invalid --route '%s': expected /PREFIX=URL", v);
  struct pc_route *r = realloc(c->routes, (c->n_routes + 1) * sizeof *r);
  if (!r) return PC_ENOMEM;
  c->routes = r;
  r = &c->routes[c->n_routes];
  memset(r, 0, sizeof *r);
  size_t plen = (size_t)(eq - v);
  while (plen > 1 && v[plen - 1] == '/') plen--;
  r->prefix = strndup(v, plen);
  if (!r->prefix) return PC_ENOMEM;
  r->prefix_len = plen;
  int rc = url_and_api(eq + 1, &r->url, &r->api, err, errlen, "--route");
  if (rc) {
    free(r->prefix);
    free(r->url);
    free(r->api.region);
    return rc;
  }
  c->n_routes++;
  return 0;
}

static int opt_db(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (!*v) return fail(err, errlen, "invalid --db: empty path");
  return set_str(&c->db, v);
}

static int size_opt(const char *name, const char *v, size_t *dst, char *err, size_t errlen) {
  if (pc_config_parse_size(v, dst))
    return fail(err, errlen, "invalid %s '%s': expected a size like 64k, 32MiB, 1GiB", name, v);
  return 0;
}

static int dur_opt(const char *name, const char *v, int64_t *dst, char *err, size_t errlen) {
  if (pc_config_parse_duration(v, dst))
    return fail(err, errlen, "invalid %s '%s': expected a duration like 500ms, 30s, 15m, 7d", name, v);
  return 0;
}

static int opt_max_size(struct pc_config *c, const char *v, char *err, size_t errlen) {
  int rc = size_opt("--max-size", v, &c->max_size, err, errlen);
  if (!rc && c->max_size < (1u << 20)) return fail(err, errlen, "invalid --max-size '%s': at least 1MiB", v);
  return rc;
}

static int opt_max_body(struct pc_config *c, const char *v, char *err, size_t errlen) {
  return size_opt("--max-body", v, &c->max_body, err, errlen);
}

static int opt_memo_size(struct pc_config *c, const char *v, char *err, size_t errlen) {
  return size_opt("--memo-size", v, &c->memo_size, err, errlen);
}

static int opt_max_buffered(struct pc_config *c, const char *v, char *err, size_t errlen) {
  int rc = size_opt("--max-buffered", v, &c->max_buffered, err, errlen);
  if (!rc && c->max_buffered == 0) return fail(err, errlen, "invalid --max-buffered '%s': must be positive", v);
  return rc;
}

static int opt_mode(struct pc_config *c, const char *v, char *err, size_t errlen) {
  static const char *const names[] = {"readwrite", "readonly", "record", "replay", "off"};
  for (int i = 0; i < 5; i++)
    if (!strcmp(v, names[i])) {
      c->mode = (enum pc_mode)i;
      return 0;
    }
  return fail(err, errlen, "invalid --mode '%s': expected readwrite, readonly, record, replay or off", v);
}

static int opt_ttl(struct pc_config *c, const char *v, char *err, size_t errlen) {
  return dur_opt("--ttl", v, &c->ttl_ms, err, errlen);
}

static int opt_key_scope(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (!strcmp(v, "credential"))
    c->key_scope = PC_SCOPE_CREDENTIAL;
  else if (!strcmp(v, "shared"))
    c->key_scope = PC_SCOPE_SHARED;
  else
    return fail(err, errlen, "invalid --key-scope '%s': expected credential or shared", v);
  return 0;
}

static int opt_ignore_field(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (v[0] != '/') return fail(err, errlen, "invalid --ignore-field '%s': a JSON pointer starts with '/'", v);
  return strlist_add(&c->ignore_fields, v);
}

static int opt_cache_path(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (!*v) return fail(err, errlen, "invalid --cache-path: empty glob");
  return strlist_add(&c->cache_paths, v);
}

static int opt_upstream_timeout(struct pc_config *c, const char *v, char *err, size_t errlen) {
  int rc = dur_opt("--upstream-timeout", v, &c->upstream_timeout_ms, err, errlen);
  if (!rc && c->upstream_timeout_ms <= 0)
    return fail(err, errlen, "invalid --upstream-timeout '%s': must be positive", v);
  return rc;
}

static int opt_client_timeout(struct pc_config *c, const char *v, char *err, size_t errlen) {
  int rc = dur_opt("--client-timeout", v, &c->client_timeout_ms, err, errlen);
  if (!rc && c->client_timeout_ms <= 0) return fail(err, errlen, "invalid --client-timeout '%s': must be positive", v);
  return rc;
}

static int opt_idle_timeout(struct pc_config *c, const char *v, char *err, size_t errlen) {
  int rc = dur_opt("--idle-timeout", v, &c->idle_timeout_ms, err, errlen);
  if (!rc && c->idle_timeout_ms <= 0) return fail(err, errlen, "invalid --idle-timeout '%s': must be positive", v);
  return rc;
}

static int opt_admin_token(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (!*v) return fail(err, errlen, "invalid --admin-token: empty");
  return set_str(&c->admin_token, v);
}

static int opt_log_format(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (!strcmp(v, "text"))
    c->log_json = 0;
  else if (!strcmp(v, "json"))
    c->log_json = 1;
  else
    return fail(err, errlen, "invalid --log-format '%s': expected text or json", v);
  return 0;
}

static int opt_workers(struct pc_config *c, const char *v, char *err, size_t errlen) {
  char *end;
  long n = strtol(v, &end, 10);
  if (!*v || *end || n < 1 || n > 64) return fail(err, errlen, "invalid --workers '%s': expected 1..64", v);
  c->workers = (int)n;
  return 0;
}

static int readable_file(const char *name, const char *v, char *err, size_t errlen) {
  FILE *f = fopen(v, "rb");
  if (!f) return fail(err, errlen, "cannot read %s file '%s'", name, v);
  fclose(f);
  return 0;
}

static int opt_upstream_ca(struct pc_config *c, const char *v, char *err, size_t errlen) {
  int rc = readable_file("--upstream-ca", v, err, errlen);
  return rc ? rc : set_str(&c->upstream_ca, v);
}

static int opt_replay_pacing(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (!strcmp(v, "none"))
    c->replay_pacing_original = 0;
  else if (!strcmp(v, "original"))
    c->replay_pacing_original = 1;
  else
    return fail(err, errlen, "invalid --replay-pacing '%s': expected none or original", v);
  return 0;
}

static int opt_max_followers(struct pc_config *c, const char *v, char *err, size_t errlen) {
  char *end;
  long n = strtol(v, &end, 10);
  if (!*v || *end || n < 0 || n > 1000000) return fail(err, errlen, "invalid --max-followers '%s'", v);
  c->max_followers = (size_t)n;
  return 0;
}

static int opt_replay(struct pc_config *c, const char *v, char *err, size_t errlen) {
  int rc = readable_file("--replay", v, err, errlen);
  return rc ? rc : strlist_add(&c->replay_files, v);
}

static int opt_fail_on_miss(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (!v || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "on"))
    c->fail_on_miss = 1;
  else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "off"))
    c->fail_on_miss = 0;
  else
    return fail(err, errlen, "invalid PROMPTCACHE_FAIL_ON_MISS '%s'", v);
  return 0;
}

static int opt_prices(struct pc_config *c, const char *v, char *err, size_t errlen) {
  int rc = readable_file("--prices", v, err, errlen);
  return rc ? rc : set_str(&c->prices, v);
}

/* --redis URL: checked here (the password never reaches a message). */
static int opt_redis(struct pc_config *c, const char *v, char *err, size_t errlen) {
  struct pc_redis_url u;
  char why[256];
  if (pc_redis_parse_url(v, &u, why, sizeof why)) return fail(err, errlen, "invalid --redis: %s", why);
  explicit_bzero(&u, sizeof u);
  if (c->redis.n >= 64) return fail(err, errlen, "too many --redis URLs (64 at most)");
  return strlist_add(&c->redis, v);
}

static int opt_redis_prefix(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (!*v || strlen(v) > 64 || strpbrk(v, " \t\r\n{}"))
    return fail(err, errlen, "invalid --redis-prefix '%s': 1 to 64 characters, no spaces or braces", v);
  return set_str(&c->redis_prefix, v);
}

static int opt_redis_max_value(struct pc_config *c, const char *v, char *err, size_t errlen) {
  return size_opt("--redis-max-value", v, &c->redis_max_value, err, errlen);
}

static int opt_redis_timeout(struct pc_config *c, const char *v, char *err, size_t errlen) {
  int rc = dur_opt("--redis-timeout", v, &c->redis_timeout_ms, err, errlen);
  if (!rc && c->redis_timeout_ms <= 0) return fail(err, errlen, "invalid --redis-timeout '%s': must be positive", v);
  return rc;
}

static int opt_sync(struct pc_config *c, const char *v, char *err, size_t errlen) {
  if (!strcmp(v, "batch"))
    c->sync_batch = 1;
  else if (!strcmp(v, "periodic"))
    c->sync_batch = 0;
  else
    return fail(err, errlen, "invalid --sync '%s': expected batch or periodic", v);
  return 0;
}

static const struct opt opts[] = {
    {"listen", 1, 1, opt_listen},
    {"upstream", 1, 0, opt_upstream},
    {"route", 1, 1, opt_route},
    {"db", 1, 0, opt_db},
    {"max-size", 1, 0, opt_max_size},
    {"mode", 1, 0, opt_mode},
    {"ttl", 1, 0, opt_ttl},
    {"key-scope", 1, 0, opt_key_scope},
    {"ignore-field", 1, 1, opt_ignore_field},
    {"cache-path", 1, 1, opt_cache_path},
    {"max-body", 1, 0, opt_max_body},
    {"max-buffered", 1, 0, opt_max_buffered},
    {"memo-size", 1, 0, opt_memo_size},
    {"upstream-timeout", 1, 0, opt_upstream_timeout},
    {"client-timeout", 1, 0, opt_client_timeout},
    {"idle-timeout", 1, 0, opt_idle_timeout},
    {"admin-token", 1, 0, opt_admin_token},
    {"log-format", 1, 0, opt_log_format},
    {"workers", 1, 0, opt_workers},
    {"upstream-ca", 1, 0, opt_upstream_ca},
    {"replay-pacing", 1, 0, opt_replay_pacing},
    {"max-followers", 1, 0, opt_max_followers},
    {"replay", 1, 1, opt_replay},
    {"fail-on-miss", 0, 0, opt_fail_on_miss},
    {"prices", 1, 0, opt_prices},
    {"sync", 1, 0, opt_sync},
    {"redis", 1, 1, opt_redis},
    {"redis-prefix", 1, 0, opt_redis_prefix},
    {"redis-max-value", 1, 0, opt_redis_max_value},
    {"redis-timeout", 1, 0, opt_redis_timeout},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

/* Clears what a repeatable option accumulated, so flags replace env values. */
static void api_free(struct pc_api *a) {
  free(a->region);
  if (a->aws) pc_awscred_free(a->aws);
  free(a->aws);
  memset(a, 0, sizeof *a);
}

static void clear_list(struct pc_config *c, const struct opt *o) {
  if (o->fn == opt_listen)
    c->n_listen = 0;
  else if (o->fn == opt_ignore_field)
    strlist_clear(&c->ignore_fields);
  else if (o->fn == opt_cache_path)
    strlist_clear(&c->cache_paths);
  else if (o->fn == opt_replay)
    strlist_clear(&c->replay_files);
  else if (o->fn == opt_redis)
    strlist_clear(&c->redis);
  else if (o->fn == opt_route) {
    for (size_t i = 0; i < c->n_routes; i++) {
      free(c->routes[i].prefix);
      free(c->routes[i].url);
      api_free(&c->routes[i].api);
    }
    c->n_routes = 0;
  }
}

static void defaults(struct pc_config *c) {
  memset(c, 0, sizeof *c);
  c->max_size = (size_t)1 << 30;
  c->mode = PC_MODE_READWRITE;
  c->key_scope = PC_SCOPE_CREDENTIAL;
  c->max_body = (size_t)32 << 20;
  c->upstream_timeout_ms = 600000;
  c->connect_timeout_ms = 10000;
  c->client_timeout_ms = 30000;
  c->idle_timeout_ms = 60000;
  c->workers = 1;
  c->max_followers = 1024;
  c->redis_max_value = (size_t)16 << 20;
  c->memo_size = (size_t)64 << 20;
  c->redis_timeout_ms = 250;
}

/* Environment pass: PROMPTCACHE_<NAME>; repeatable options take a comma list. */
static int apply_env(struct pc_config *c, int *scope_set, char *err, size_t errlen) {
  for (size_t i = 0; i < N_OPTS; i++) {
    char var[64] = "PROMPTCACHE_";
    size_t n = strlen(var);
    for (const char *p = opts[i].name; *p && n < sizeof var - 1; p++)
      var[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    var[n] = '\0';
    const char *v = getenv(var);
    if (!v) continue;
    if (opts[i].fn == opt_key_scope) *scope_set = 1;
    if (!opts[i].repeatable) {
      int rc = opts[i].fn(c, v, err, errlen);
      if (rc) return rc;
      continue;
    }
    char *copy = strdup(v), *save = NULL;
    if (!copy) return PC_ENOMEM;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save))
      rc = opts[i].fn(c, tok, err, errlen);
    free(copy);
    if (rc) return rc;
  }
  return 0;
}

static const struct opt *find_opt(const char *name, size_t len) {
  for (size_t i = 0; i < N_OPTS; i++)
    if (strlen(opts[i].name) == len && !memcmp(opts[i].name, name, len)) return &opts[i];
  return NULL;
}

static int apply_flags(struct pc_config *c, int argc, char **argv, int *scope_set, char *err, size_t errlen) {
  unsigned char seen[N_OPTS] = {0};
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
    if (strncmp(a, "--", 2)) return fail(err, errlen, "unexpected argument '%s' (see --help)", a);
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct opt *o = find_opt(name, len);
    if (!o) return fail(err, errlen, "unknown option '%s' (see --help)", a);
    const char *v = NULL;
    if (o->has_arg) {
      if (eq)
        v = eq + 1;
      else if (i + 1 < argc)
        v = argv[++i];
      else
        return fail(err, errlen, "option '--%s' needs a value", o->name);
    } else if (eq) {
      return fail(err, errlen, "option '--%s' takes no value", o->name);
    }
    size_t idx = (size_t)(o - opts);
    if (o->repeatable && !seen[idx]) clear_list(c, o);
    seen[idx] = 1;
    if (o->fn == opt_key_scope) *scope_set = 1;
    int rc = o->fn(c, v, err, errlen);
    if (rc) return rc;
  }
  return 0;
}

/* The signing region in a Bedrock endpoint's host name:
 * bedrock-runtime[-fips].REGION.amazonaws.com[.cn]. */
static char *region_of_url(const char *url) {
  const char *h = strstr(url, "://");
  h = h ? h + 3 : url;
  const char *end = h + strcspn(h, "/:");
  for (const char *pre = "bedrock-runtime."; pre;) {
    size_t pl = strlen(pre);
    if ((size_t)(end - h) > pl && !strncmp(h, pre, pl)) {
      const char *r = h + pl, *dot = memchr(r, '.', (size_t)(end - r));
      if (dot && dot > r && !strncmp(dot, ".amazonaws.com", 14)) return strndup(r, (size_t)(dot - r));
    }
    pre = strcmp(pre, "bedrock-runtime.") ? NULL : "bedrock-runtime-fips.";
  }
  return NULL;
}

/* A Bedrock upstream signs every request with the proxy's own AWS
 * credentials (the client's signature is for the proxy's host, not
 * upstream's), so they must be found at start. */
static int api_finish(struct pc_api *a, const char *url, const char *what, char *err, size_t errlen) {
  if (a->family != PC_FAMILY_BEDROCK) return 0;
  a->aws = calloc(1, sizeof *a->aws);
  if (!a->aws) return PC_ENOMEM;
  int rc = pc_awscred_load(a->aws, NULL);
  if (rc == PC_ENOTFOUND)
    return fail(err, errlen,
                "%s (api=bedrock) needs AWS credentials to sign upstream requests: set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials",
                what);
  if (rc) return fail(err, errlen, "%s (api=bedrock): cannot read AWS credentials: %s", what, pc_strerror(rc));
  if (!a->region) a->region = region_of_url(url);
  if (!a->region && a->aws->region && !(a->region = strdup(a->aws->region))) return PC_ENOMEM;
  if (!a->region)
    return fail(err, errlen, "%s (api=bedrock) needs a region: add ,region=REGION or set AWS_REGION", what);
  return 0;
}

static int finish(struct pc_config *c, int scope_set, char *err, size_t errlen) {
  int rc = 0;
  if (c->n_listen == 0) {
    snprintf(c->listen[0].host, sizeof c->listen[0].host, "127.0.0.1");
    c->listen[0].port = 8080;
    c->n_listen = 1;
  }
  if (!c->upstream) rc = set_str(&c->upstream, "https://api.openai.com");
  if (!rc && !c->db) rc = set_str(&c->db, "./promptcache.db");
  if (!rc && !c->redis_prefix) rc = set_str(&c->redis_prefix, "pc:");
  if (!scope_set && (c->mode == PC_MODE_RECORD || c->mode == PC_MODE_REPLAY)) c->key_scope = PC_SCOPE_SHARED;
  if (!rc && c->max_buffered && c->max_buffered < c->max_body)
    return fail(err, errlen, "invalid --max-buffered: it must hold at least one body of --max-body");
  if (!rc) rc = api_finish(&c->upstream_api, c->upstream, "--upstream", err, errlen);
  for (size_t i = 0; !rc && i < c->n_routes; i++) {
    char what[96];
    snprintf(what, sizeof what, "route '%.64s'", c->routes[i].prefix);
    rc = api_finish(&c->routes[i].api, c->routes[i].url, what, err, errlen);
  }
  return rc;
}

int pc_config_parse(struct pc_config *c, int argc, char **argv, char *err, size_t errlen) {
  int scope_set = 0;
  defaults(c);
  err[0] = '\0';
  int rc = apply_env(c, &scope_set, err, errlen);
  if (!rc) rc = apply_flags(c, argc, argv, &scope_set, err, errlen);
  if (rc == 1) return 1;
  if (!rc) rc = finish(c, scope_set, err, errlen);
  if (rc && !err[0]) snprintf(err, errlen, "configuration error: %s", pc_strerror(rc));
  return rc;
}

void pc_config_free(struct pc_config *c) {
  free(c->upstream);
  api_free(&c->upstream_api);
  for (size_t i = 0; i < c->n_routes; i++) {
    free(c->routes[i].prefix);
    free(c->routes[i].url);
    api_free(&c->routes[i].api);
  }
  free(c->routes);
  free(c->db);
  free(c->admin_token);
  free(c->upstream_ca);
  free(c->prices);
  strlist_clear(&c->ignore_fields);
  strlist_clear(&c->cache_paths);
  strlist_clear(&c->replay_files);
  for (size_t i = 0; i < c->redis.n; i++) explicit_bzero(c->redis.v[i], strlen(c->redis.v[i])); /* passwords */
  strlist_clear(&c->redis);
  free(c->redis_prefix);
  memset(c, 0, sizeof *c);
}

void pc_config_usage(void *file) {
  FILE *f = file;
  fputs("usage: promptcache serve   [options]        run the caching proxy (the default subcommand)\n"
        "       promptcache stats   [--db PATH] [--json]\n"
        "       promptcache export  [--db PATH] [--out FILE] [--namespace NS] [--allow-secrets]\n"
        "       promptcache import  [--db PATH] FILE...\n"
        "       promptcache purge   [--db PATH] (--all | --key KEY | --namespace NS | --older-than DURATION)\n"
        "       promptcache inspect [--db PATH] KEY\n"
        "       promptcache verify  [--db PATH]\n"
        "       promptcache --help | --version\n"
        "\n"
        "serve options (each also read from PROMPTCACHE_<NAME>, e.g. PROMPTCACHE_KEY_SCOPE;\n"
        "repeatable ones take a comma-separated list there; flags win over the environment):\n"
        "  --listen ADDR:PORT        where clients connect (repeatable; [::1]:8080 for IPv6) [127.0.0.1:8080]\n"
        "  --upstream URL[,api=F]    default upstream [https://api.openai.com]\n"
        "  --route PREFIX=URL[,api=F][,region=R]\n"
        "                            repeatable; longest matching path prefix wins and is stripped; api= names\n"
        "                            the API family it speaks: openai, anthropic, gemini, azure, ollama, tgi,\n"
        "                            llamacpp, bedrock (signed with the AWS credentials of the environment)\n"
        "  --db PATH                 LMDB environment directory [./promptcache.db]\n"
        "  --max-size SIZE           cache size bound [1GiB]\n"
        "  --mode MODE               readwrite|readonly|record|replay|off [readwrite]\n"
        "  --ttl DURATION            default entry lifetime, 0 = never expires [0]\n"
        "  --key-scope SCOPE         credential|shared [credential; shared in record and replay]\n"
        "  --ignore-field POINTER    repeatable JSON pointer dropped from the key, e.g. /user\n"
        "  --cache-path GLOB         repeatable; replaces the default cacheable path list\n"
        "  --max-body SIZE           larger request bodies get 413 [32MiB]\n"
        "  --memo-size SIZE          raw requests remembered to skip canonicalizing exact repeats [64MiB]\n"
        "  --max-buffered SIZE       request bytes all connections may buffer at once; past it 503\n"
        "                            [256MiB, or 2x --max-body if larger]\n"
        "  --upstream-timeout DUR    whole upstream exchange [600s]; connect timeout 10s\n"
        "  --client-timeout DUR      a request must arrive whole within this [30s]\n"
        "  --idle-timeout DUR        idle keep-alive connections are closed after this [60s]\n"
        "  --upstream-ca FILE        extra CA bundle for a private upstream\n"
        "  --admin-token TOKEN       required as Authorization: Bearer on admin endpoints but health\n"
        "  --log-format FORMAT       text|json access log on stderr [text]\n"
        "  --workers N               event-loop threads [1]\n"
        "  --replay-pacing MODE      none|original: replay streamed hits at once or with recorded gaps [none]\n"
        "  --max-followers N         requests that may wait on one in-flight miss [1024]\n"
        "  --replay FILE             repeatable; load a JSONL recording into the database at start\n"
        "  --fail-on-miss            exit non-zero at shutdown if any replay miss happened\n"
        "  --prices FILE             per-model token prices (JSON), to report money saved\n"
        "  --sync MODE               batch|periodic fsync of cache writes [periodic]\n"
        "  --redis URL               redis://[user:password@]host:port[/db]: a shared tier for a fleet\n"
        "                            (repeatable: several URLs are seeds of one Redis Cluster)\n"
        "  --redis-prefix STR        prefix of every Redis key [pc:]\n"
        "  --redis-max-value SIZE    larger entries stay node-local [16MiB]\n"
        "  --redis-timeout DUR       per Redis command; past it the node goes on without the shared tier [250ms]\n",
        f);
}
