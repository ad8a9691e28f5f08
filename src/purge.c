/* purge.c — selects entries (all, one key, a namespace, older than a
 * duration) and deletes them: a read pass collects keys (the iterate callback
 * must not write), then one write transaction deletes them. */
#include "purge.h"

#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "entry.h"
#include "error.h"

struct collect {
  const struct pc_purge_sel *sel;
  int64_t cutoff_ms;
  pc_buf keys;
};

static int want(const struct collect *col, const void *val, size_t len) {
  const struct pc_purge_sel *s = col->sel;
  if (s->all) return 1;
  struct pc_entry e;
  if (pc_entry_decode(val, len, 0, &e)) return s->older_than_ms > 0; /* undecodable: purge when sweeping by age */
  if (s->ns) return e.ns.n == strlen(s->ns) && !memcmp(e.ns.p, s->ns, e.ns.n);
  return e.created_ms < col->cutoff_ms;
}

static int collect_cb(void *ud, const uint8_t key[16], const void *val, size_t len) {
  struct collect *col = ud;
  return want(col, val, len) ? pc_buf_append(&col->keys, key, 16) : 0;
}

int pc_purge(pc_cache *c, const struct pc_purge_sel *sel, size_t *purged) {
  *purged = 0;
  if (!pc_purge_sel_valid(sel)) return PC_EINVAL;
  if (sel->has_key) {
    int rc = pc_cache_del(c, sel->key);
    if (!rc) *purged = 1;
    return rc == PC_ENOTFOUND ? 0 : rc;
  }
  struct collect col = {.sel = sel, .cutoff_ms = pc_now_ms() - sel->older_than_ms};
  pc_buf_init(&col.keys, (size_t)1 << 34);
  int rc = pc_cache_iterate(c, collect_cb, &col);
  if (!rc && col.keys.len) rc = pc_cache_del_many(c, (const uint8_t *)col.keys.data, col.keys.len / 16, purged);
  pc_buf_free(&col.keys);
  return rc;
}
