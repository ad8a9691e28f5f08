/* route.c — maps a request target to its upstream and decides cacheability.
 * Prefixes match whole path segments only: /anthropic matches /anthropic and
 * /anthropic/v1/messages, never /anthropicx. */
#include "route.h"

#include <fnmatch.h>
#include <string.h>

#include "family.h"

void pc_route_match(const struct pc_config *cfg, const char *target, struct pc_route_match *m) {
  const struct pc_route *best = NULL;
  for (size_t i = 0; i < cfg->n_routes; i++) {
    const struct pc_route *r = &cfg->routes[i];
    if (strncmp(target, r->prefix, r->prefix_len)) continue;
    char next = target[r->prefix_len];
    if (r->prefix_len > 1 && next != '\0' && next != '/' && next != '?') continue;
    if (!best || r->prefix_len > best->prefix_len) best = r;
  }
  m->route = best ? best->prefix : "";
  m->upstream = best ? best->url : cfg->upstream;
  m->api = best ? &best->api : &cfg->upstream_api;
  const char *p = target + (best && best->prefix_len > 1 ? best->prefix_len : 0);
  const char *q = strchr(p, '?');
  m->path = p;
  m->path_len = q ? (size_t)(q - p) : strlen(p);
  m->query = q ? q + 1 : NULL;
}

/* "*literal" (the default list's shape) is a suffix test: no fnmatch per request. */
static int suffix_glob(const char *g, const char *path, size_t path_len, int *matched) {
  if (g[0] != '*' || strpbrk(g + 1, "*?[\\")) return 0;
  size_t l = strlen(g + 1);
  *matched = path_len >= l && !memcmp(path + path_len - l, g + 1, l);
  return 1;
}

int pc_route_cacheable(const struct pc_config *cfg, const struct pc_route_match *m) {
  const char *path = m->path;
  size_t path_len = m->path_len;
  if (!cfg->cache_paths.n) return pc_family_cacheable((enum pc_family_id)m->api->family, path, path_len);
  char tmp[2048];
  int matched, copied = 0;
  for (size_t i = 0; i < cfg->cache_paths.n; i++) {
    const char *g = cfg->cache_paths.v[i];
    if (suffix_glob(g, path, path_len, &matched)) {
      if (matched) return 1;
      continue;
    }
    if (!copied) {
      if (path_len >= sizeof tmp) return 0;
      memcpy(tmp, path, path_len);
      tmp[path_len] = '\0';
      copied = 1;
    }
    if (fnmatch(g, tmp, 0) == 0) return 1;
  }
  return 0;
}
