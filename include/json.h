/* json.h — a small strict JSON DOM for the parts of promptcache that read
 * JSON as data rather than canonicalizing it: export/import (JSON Lines),
 * replay-miss explanations (diff of two canonical requests), usage blocks,
 * price tables. One document owns all of its memory (an arena), freed at once.
 * Object members keep their order as written; numbers keep their literal
 * text, so writing a parsed document back gives the same values. */
#ifndef PC_JSON_H
#define PC_JSON_H

#include <stddef.h>

#include "buf.h"

#define PC_JSON_MAX_DEPTH 256

enum pc_json_type {
  PC_JSON_NULL,
  PC_JSON_FALSE,
  PC_JSON_TRUE,
  PC_JSON_NUMBER,
  PC_JSON_STRING,
  PC_JSON_ARRAY,
  PC_JSON_OBJECT
};

struct pc_json {
  enum pc_json_type type;
  size_t len;           /* STRING: bytes (unescaped); NUMBER: literal length; ARRAY/OBJECT: children */
  const char *str;      /* STRING: unescaped UTF-8, NUL-terminated (may contain \0 from \u0000);
                           NUMBER: the literal as written, NUL-terminated */
  double num;           /* NUMBER: strtod of the literal */
  struct pc_json *kids; /* ARRAY/OBJECT: len values */
  const char **keys;    /* OBJECT: member names (unescaped, NUL-terminated), keys[i] names kids[i] */
  size_t *key_lens;     /* OBJECT: byte lengths of the names */
};

struct pc_json_doc;

/* Strict RFC 8259 parse (UTF-8 validated, depth-limited, trailing garbage
 * rejected; duplicate member names are allowed and kept). On error returns
 * PC_EJSON / PC_EUTF8 / PC_EDEPTH / PC_ENOMEM and, if errpos is non-NULL,
 * the byte offset where parsing failed. */
int pc_json_parse(const char *text, size_t len, struct pc_json_doc **out, size_t *errpos);
const struct pc_json *pc_json_root(const struct pc_json_doc *doc);
void pc_json_free(struct pc_json_doc *doc);

/* Member of an object by name (first match), or NULL. */
const struct pc_json *pc_json_get(const struct pc_json *obj, const char *name);
/* Value at an RFC 6901 pointer ("" is the value itself), or NULL. */
const struct pc_json *pc_json_at(const struct pc_json *v, const char *pointer);
/* Convenience: string/number member or fallback. */
const char *pc_json_get_str(const struct pc_json *obj, const char *name, const char *fallback);
double pc_json_get_num(const struct pc_json *obj, const char *name, double fallback);

/* Compact serialization, members in stored order, numbers as written,
 * strings with minimal escapes (as canon.h). */
int pc_json_write(const struct pc_json *v, pc_buf *out);
/* Indented serialization (for `inspect`). */
int pc_json_write_pretty(const struct pc_json *v, pc_buf *out, int indent);
/* Append `n` bytes of UTF-8 as a quoted JSON string. */
int pc_json_write_string(pc_buf *out, const char *s, size_t n);
/* The same for bytes that need not be UTF-8 (request targets in the log):
 * each invalid byte becomes U+FFFD, so the result is always valid JSON. */
int pc_json_write_text(pc_buf *out, const char *s, size_t n);

/* One difference between two documents. `recorded` / `requested` are valid
 * JSON texts (NULL when the member or element is absent on that side);
 * strings longer than the abbreviation limit are cut at a UTF-8 boundary and
 * end with "…"; other values whose compact form is longer are given as a
 * JSON string of their abbreviated compact form. */
struct pc_json_diff {
  char *pointer; /* RFC 6901, e.g. "/messages/1/content" */
  char *recorded;
  char *requested;
};

/* Structural diff of a (recorded) against b (requested): objects by member
 * name (in a's order, then b's extra members), arrays index by index, a
 * type or scalar change reported once at its pointer. At most max_diffs
 * entries (the rest are counted in *total). Returns 0 or PC_ENOMEM. */
int pc_json_diff(const struct pc_json *a, const struct pc_json *b, size_t max_diffs, size_t abbrev,
                 struct pc_json_diff **out, size_t *n, size_t *total);
void pc_json_diff_free(struct pc_json_diff *d, size_t n);

#endif
