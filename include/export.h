/* export.h — writing a database as a JSON Lines recording (SPEC §9), a
 * reviewable file that import.h reads back. One entry per line, in key
 * order; two exports of the same cache are byte-identical; export → import →
 * export is lossless. Credential fingerprints are never exported. */
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

#endif
