/* purge.h — deleting entries by selector, shared by `promptcache purge` and
 * POST /_promptcache/purge. */
#ifndef PC_PURGE_H
#define PC_PURGE_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"

struct pc_purge_sel {
  int all;
  int has_key;
  uint8_t key[16];
  const char *ns;        /* namespace, or NULL */
  int64_t older_than_ms; /* > 0: entries created longer ago than this */
};

/* Whether exactly one selector is set: what every purge (local, shared,
 * admin) requires. */
static inline int pc_purge_sel_valid(const struct pc_purge_sel *s) {
  return (s->all != 0) + (s->has_key != 0) + (s->ns != NULL) + (s->older_than_ms > 0) == 1;
}

/* Exactly one selector must be set (PC_EINVAL otherwise). Keys are collected
 * in a read pass, then deleted in one write transaction. */
int pc_purge(pc_cache *c, const struct pc_purge_sel *sel, size_t *purged);

#endif
