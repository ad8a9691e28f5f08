/* bodykey.h — canonical keys for request bodies that are not JSON (SPEC §6:
 * `record` / `replay` key every exchange), the differences between two
 * canonical bodies (the 424 explainer), and their JSON form for export.
 * Pure functions: no I/O, no globals.
 *
 * Canonical form ("pc-body-v1"). An empty body is the empty string (its
 * content type is ignored: SDKs send `Content-Type: application/json` on
 * bodiless GETs and DELETEs). Any other body is
 *
 *   "pc-body-v1\n" "kind=<len>:<kind>\n" "type=<len>:<content type>\n"
 *
 * followed by records "<tag>=<decimal length>:<bytes>\n" (as key.h's fields;
 * lengths have no leading zeros), per kind:
 *   raw        data=<bytes as sent>
 *   form       field=<name> value=<value>          one pair per field
 *   multipart  part=<name> [filename=<filename>] type=<part type> data=<bytes>
 *              one group per part; filename only when the part has one
 * The form is injective: it parses back unambiguously (the parser below
 * rebuilds every field), so two bodies give the same bytes only when they
 * are equal under the rules that follow. It never starts like canonical
 * JSON ('p' is not a JSON first byte), so a key's body field says by itself
 * which of the two it holds (pc_bodykey_is_canon).
 *
 * What is normalized, and nothing else:
 *  - content types (the request's and each part's): parameters dropped
 *    (the random multipart boundary among them), surrounding spaces and tabs
 *    trimmed, ASCII lower-cased; a part without Content-Type is text/plain.
 *  - multipart/... (RFC 2046 / 7578): the boundary, preamble, epilogue,
 *    transport padding and every part header other than Content-Disposition's
 *    name / filename and Content-Type are left out. Part order is kept; part bytes are
 *    exact. name and filename are keyed as written between their quotes,
 *    without unescaping (clients disagree: `\"` versus `%22`); `filename*`
 *    stands in for a missing `filename`; a missing name is the empty name.
 *    Malformed multipart (no usable boundary, a delimiter line not followed
 *    by CRLF or "--", no closing delimiter, a part's headers over
 *    PC_BODYKEY_MAX_PART_HEADERS bytes, more than PC_BODYKEY_MAX_PARTS
 *    parts) is keyed as raw bytes.
 *  - application/x-www-form-urlencoded (as the WHATWG URL standard parses
 *    it): fields split at '&', empty fields dropped, a field without '=' has
 *    the empty value (`a` == `a=`), '+' decodes to a space and %XX (either
 *    case) to its byte, a '%' not followed by two hex digits stays as it is.
 *    So `%41` == `A`, `+` == `%20`, `%zz` == `%25zz`, but `%2B` (a '+') != `+`. Fields are then
 *    sorted by decoded name in byte order, stably: repeated names keep their
 *    relative order (`a=1&a=2` != `a=2&a=1`). More than PC_BODYKEY_MAX_FIELDS
 *    fields: keyed as raw bytes.
 *  - anything else (binary, text, JSON that did not parse, no content type):
 *    the bytes as they are. */
#ifndef PC_BODYKEY_H
#define PC_BODYKEY_H

#include <stddef.h>

#include "buf.h"
#include "json.h"

#define PC_BODYKEY_MAX_PARTS 1024
#define PC_BODYKEY_MAX_PART_HEADERS (16 * 1024)
#define PC_BODYKEY_MAX_BOUNDARY 200 /* RFC 2046 says 70; some clients go beyond */
#define PC_BODYKEY_MAX_FIELDS 4096

enum pc_bodykey_kind { PC_BODYKEY_EMPTY, PC_BODYKEY_RAW, PC_BODYKEY_FORM, PC_BODYKEY_MULTIPART };

struct pc_bodykey_info {
  enum pc_bodykey_kind kind;
  char content_type[128]; /* normalized as above (truncated), "" when absent */
  size_t n_items;         /* parts (multipart) or fields (form); 0 otherwise */
};

/* Append the canonical form of a body to `out`. `content_type` is the raw
 * header value (NULL or ctlen 0 when absent). Malformed input is never an
 * error (see above); the only failures are `out`'s limit (PC_ETOOBIG) and
 * PC_ENOMEM, after which `out` is as it was. `info` may be NULL. */
int pc_bodykey_canon(const char *content_type, size_t ctlen, const char *body, size_t n, pc_buf *out,
                     struct pc_bodykey_info *info);

/* 1 when a key's body field holds this module's canonical form (empty, or
 * starting with "pc-body-v1\n"), 0 when it holds canonical JSON. */
int pc_bodykey_is_canon(const char *canon, size_t n);

/* Differences between two canonical bodies, recorded `a` and requested `b`,
 * each either canonical JSON or this module's form. Both JSON: pc_json_diff
 * (JSON pointers). Otherwise pseudo-pointers:
 *   "@content-type"            the content types differ
 *   "@body"                    the kinds differ (a whole-body summary on each
 *                              side; absent side for an empty body), or two
 *                              raw bodies differ
 *   "@part/<name>[/<i>]"       a part added, removed, or with other bytes,
 *                              filename or type; /<i> (0-based occurrence)
 *                              when the name occurs more than once on a side
 *   "@parts"                   the same parts in another order
 *   "@field/<name>[/<i>]"      form fields, likewise
 * <name> is escaped as in RFC 6901 (~0, ~1), with '%', control bytes and
 * invalid UTF-8 as %XX. Values follow pc_json_diff: JSON texts, NULL when
 * absent; UTF-8 text as a string abbreviated to `abbrev` bytes ("…"); a part
 * with a filename, a type other than text/plain or binary bytes, and binary
 * bodies, as a summary string: "[filename, ]type, N bytes, xxh3 <16 hex>".
 *
 * APPENDS to *diffs / *n (which may start as NULL / 0, e.g. after
 * pc_json_diff): entries are kept while *n < max_diffs, every difference is
 * added to *total (may be NULL). Free with pc_json_diff_free. On failure
 * (PC_ENOMEM, PC_ECORRUPT for a malformed canonical form) what was appended
 * stays valid. */
int pc_bodykey_diff(const char *a, size_t an, const char *b, size_t bn, size_t max_diffs, size_t abbrev,
                    struct pc_json_diff **diffs, size_t *n, size_t *total);

/* Differences between two query strings (without '?', as the key's sorted
 * path field holds them) as "@query/<name>[/<i>]", names and values as sent
 * (not decoded); a parameter without '=' has the value `true`. Appends like
 * pc_bodykey_diff. */
int pc_bodykey_query_diff(const char *a, size_t an, const char *b, size_t bn, size_t max_diffs, size_t abbrev,
                          struct pc_json_diff **diffs, size_t *n, size_t *total);

/* A canonical form as one JSON value, for export (compact, deterministic):
 *   {"empty":true}
 *   {"content_type":T,"text":S} | {"content_type":T,"base64":S}           raw
 *   {"content_type":T,"form":[[NAME,VALUE],...]}
 *   {"content_type":T,"multipart":[{"name":NAME[,"filename":FN]
 *       [,"content_type":PT],"value":S | "base64":S},...]}
 * "text"/"value" when the bytes are valid UTF-8, else "base64" (standard,
 * padded); NAME, VALUE, FN are strings, or {"base64":S} when not UTF-8; PT
 * is left out when text/plain. The export must put it in a member of its
 * own, not "body": a JSON request body could have the same shape.
 * Returns 0, PC_ECORRUPT (not this module's form), PC_ETOOBIG, PC_ENOMEM;
 * `out` is unchanged on failure. */
int pc_bodykey_to_json(const char *canon, size_t n, pc_buf *out);

/* The inverse: from such a value, append the canonical form. Exactly the
 * bytes pc_bodykey_to_json started from (export → import keeps keys); an
 * edited value is normalized as pc_bodykey_canon would (types lower-cased,
 * form fields stably sorted). Returns 0, PC_EINVAL (not of that shape, a
 * multipart type not multipart/..., a form type other than
 * application/x-www-form-urlencoded, over the part/field limits, bad
 * base64), PC_ETOOBIG, PC_ENOMEM; `out` is unchanged on failure. */
int pc_bodykey_from_json(const struct pc_json *v, pc_buf *out);
/* The same from JSON text (PC_EJSON / PC_EUTF8 / PC_EDEPTH when it does not parse). */
int pc_bodykey_from_json_text(const char *json, size_t len, pc_buf *out);

#endif
