/* nearest.h — explaining a replay miss: the recorded request on the same
 * route and path that is closest to the one that missed, and where the two
 * differ (JSON pointers into the canonical body; other key fields as
 * "@namespace", "@query", "@method", "@anthropic-version", ...). */
#ifndef PC_NEAREST_H
#define PC_NEAREST_H

#include <stddef.h>

#include "buf.h"
#include "cache.h"
#include "json.h"
#include "key.h"

#define PC_NEAREST_MAX_DIFFS 20
#define PC_NEAREST_ABBREV 200

struct pc_nearest {
  int found;
  struct pc_key key;
  struct pc_json_diff *diffs;
  size_t n, total;
};

/* Search every entry whose route and path equal the request's and whose
 * namespace and credential fingerprint are the request's own (what the
 * caller could have hit: another tenant's prompts are never shown). */
int pc_nearest_find(pc_cache *c, const char *route, const char *path, const char *material, size_t mlen,
                    struct pc_nearest *out);
void pc_nearest_free(struct pc_nearest *n);
/* The "nearest" member value: {"key":..,"differences":[{"path":..,"recorded":..,"requested":..}]} or null. */
int pc_nearest_json(const struct pc_nearest *n, pc_buf *out);
/* One log-friendly line: "nearest KEY differs at /a (recorded X, requested Y); ...". */
int pc_nearest_text(const struct pc_nearest *n, pc_buf *out);

#endif
