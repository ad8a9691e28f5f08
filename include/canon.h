/* canon.h — strict JSON parser that writes the canonical form used in cache keys
 * (SPEC §4): object members sorted by the byte order of their UTF-8 keys, no
 * insignificant whitespace, strings with minimal escapes, numbers in one
 * shortest form (1, 1.0 and 1e0 are the same), integers beyond 2^53 keep their
 * digits, array order kept, --ignore-field JSON pointers removed.
 * Rejected (error, nothing written usable): invalid JSON, duplicate keys
 * (after unescaping), invalid UTF-8 or lone surrogates, nesting deeper than
 * PC_CANON_MAX_DEPTH, trailing garbage. */
#ifndef PC_CANON_H
#define PC_CANON_H

#include <stddef.h>

#include "buf.h"

#define PC_CANON_MAX_DEPTH 128

/* Facts about the top-level object the caller needs without re-parsing. */
struct pc_canon_info {
  int is_object;    /* top-level value is an object */
  int stream;       /* top-level "stream" member is literally true */
  int stream_field; /* that member: 1 true, 0 false, -1 absent or not a boolean */
  char model[128];  /* top-level "model" string (truncated, NUL-terminated), "" if absent */
};

/* Canonicalize `len` bytes of JSON text into `out` (appended). `ignore` is an
 * array of `n_ignore` RFC 6901 JSON pointers ("/user", "/metadata/trace_id",
 * "/messages/0/name"); a pointer that matches nothing is not an error; an
 * array-index pointer removes that element. `info` may be NULL.
 * Returns 0, PC_EJSON, PC_EDUPKEY, PC_EUTF8, PC_EDEPTH, PC_ETOOBIG or PC_ENOMEM. */
int pc_canon_json(const char *in, size_t len, const char *const *ignore, size_t n_ignore, pc_buf *out,
                  struct pc_canon_info *info);

/* Free the per-thread parse buffers canon keeps between calls (call from a
 * thread before it exits). */
void pc_canon_thread_done(void);

#endif
