/* import.h — reading JSON Lines recordings (SPEC §9, written by export.h)
 * into a database. Imported entries land in the shared key space: their
 * keys are recomputed without a credential. */
#ifndef PC_IMPORT_H
#define PC_IMPORT_H

#include <stddef.h>

#include "cache.h"

/* Import one JSONL file; *count gets the number of entries stored. On a bad
 * line returns PC_EJSON / PC_EINVAL with err naming file:line and the
 * problem, having stored nothing. */
int pc_import_file(pc_cache *c, const char *path, size_t *count, char *err, size_t errlen);

#endif
