/* route.h — which upstream a request path goes to (longest --route prefix
 * wins and is stripped) and whether the resulting path is cacheable. */
#ifndef PC_ROUTE_H
#define PC_ROUTE_H

#include <stddef.h>

#include "config.h"

struct pc_route_match {
  const char *route;        /* matched prefix, "" for the default upstream */
  const char *upstream;     /* base URL */
  const char *path;         /* path after prefix stripping, points into the target; "" means "/" */
  size_t path_len;          /* up to, not including, '?' */
  const char *query;        /* after '?', or NULL */
  const struct pc_api *api; /* what the upstream speaks (family, Bedrock signing) */
};

/* Match `target` (origin-form request target, "/v1/chat?x=1"). */
void pc_route_match(const struct pc_config *cfg, const char *target, struct pc_route_match *m);
/* Whether a POST to this path of the matched route is cacheable: against
 * the --cache-path globs if any were given, else the route's family's list
 * (family.h). */
int pc_route_cacheable(const struct pc_config *cfg, const struct pc_route_match *m);

#endif
