/* export.h — the JSON Lines recording format (SPEC §9): export a database to
 * a reviewable file and import such files back. One entry per line, in key
 * order; two exports of the same cache are byte-identical; export → import →
 * export is lossless. Credential fingerprints are never exported: imported
 * entries land in the shared key space (their keys are recomputed). */
#ifndef PC_EXPORT_H
#define PC_EXPORT_H

#include <stdio.h>

#include "cache.h"

struct pc_export_opts {
  const char *ns;    /* only this namespace, or NULL for all */
  int allow_secrets; /* else refuse (PC_EXPORT_SECRET) on secret-shaped content */
};

#define PC_EXPORT_SECRET 3 /* exit status when a secret was found */

/* Write every entry to `out`. On a secret-shaped value writes one line to
 * `err` naming the entry key and JSON pointer and returns PC_EINVAL, having
 * written nothing to `out` (the scan happens before writing). */
int pc_export(pc_cache *c, const struct pc_export_opts *o, FILE *out, char *err, size_t errlen);
/* Import one JSONL file; *count gets the number of entries stored. On a bad
 * line returns PC_EJSON / PC_EINVAL with err naming file:line and the problem. */
int pc_import_file(pc_cache *c, const char *path, size_t *count, char *err, size_t errlen);

#endif
