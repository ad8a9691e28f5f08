/* key.h — the cache key (SPEC §4): key = XXH3-128(key material), where the
 * key material is the canonical request, also stored with the entry so that
 * a hit can compare it byte for byte (a hash collision never serves another
 * request's answer).
 *
 * Material layout (format version 1): the line "pc-key-v1\n", then fields,
 * each written as "<name>=<decimal length>:<bytes>\n", in this order:
 *   route, method, path (query parameters sorted, credentials removed),
 *   namespace, credential (fingerprint hex or empty), anthropic-version,
 *   anthropic-beta, openai-beta, openai-organization, openai-project
 *   (always present, empty when absent or not keyed by the route's family),
 *   then the other key headers of pc_key_headers (Bedrock's), each only
 *   when its value is not empty, in that order, then "seq" (a recorded
 *   sequence's index, only when > 0),
 * then "body=<length>:" and the canonical body (JSON, or bodykey.h's form). Length prefixes make the
 * encoding unambiguous whatever bytes a field holds. */
#ifndef PC_KEY_H
#define PC_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PC_KEY_HEX_LEN 32
#define PC_FP_LEN 16

struct pc_key {
  uint8_t b[16];
};

/* Headers whose values may enter the key, in key order: every family's
 * (family.h says which a route keys on). The first PC_KEY_N_HEADERS are
 * always in the material; the others only when not empty, so that keys of
 * routes that never use them stay what they were. */
#define PC_KEY_N_HEADERS 5
#define PC_KEY_N_ALL 11
extern const char *const pc_key_headers[PC_KEY_N_ALL];

struct pc_key_input {
  const char *route;
  const char *method;
  const char *path; /* without query */
  size_t path_len;
  const char *query;                 /* raw query string without '?', or NULL */
  const char *ns;                    /* namespace or "" */
  const char *cred_fp_hex;           /* "" when the key scope is shared */
  const char *headers[PC_KEY_N_ALL]; /* values or NULL, by pc_key_headers */
  int family;                        /* the route's (family.h): which query parameters are credentials */
  uint32_t seq;     /* record/replay: the index of this answer in the request's sequence (0: the first) */
  const char *body; /* canonical JSON */
  size_t body_len;
};

/* Append the key material for `in` to `out`. */
int pc_key_material(const struct pc_key_input *in, pc_buf *out);
void pc_key_hash(const void *material, size_t len, struct pc_key *out);
void pc_key_hex(const struct pc_key *k, char out[PC_KEY_HEX_LEN + 1]);
int pc_key_from_hex(const char *hex, struct pc_key *out);

/* Query string with parameters sorted by name (byte order; a repeated name
 * keeps its values in their order) and credential parameters removed (the
 * default family: policy.h's list; another: family.h's); appended to out.
 * The removed credential parameters are appended to `cred` (when not NULL),
 * '&'-separated, in their order. */
int pc_key_sort_query(const char *query, int family, pc_buf *out, pc_buf *cred);

/* Keyed fingerprint of a credential: HMAC-SHA256(secret, value) truncated to
 * 16 bytes, as 32 hex digits. The raw value is never stored anywhere. */
void pc_key_fingerprint(const uint8_t *secret, size_t secret_len, const char *cred, size_t len,
                        char out[PC_FP_LEN * 2 + 1]);

/* Split a key material back into fields: returns the value of field `name`
 * (or of "body") via p/n. Returns 0 or PC_ENOTFOUND / PC_ECORRUPT. */
int pc_key_material_field(const char *m, size_t len, const char *name, const char **p, size_t *n);
/* The material of the seq-th answer to the request whose (seq 0) material
 * is m: m with its "seq" field set (0: removed). Replaces out's content. */
int pc_key_material_seq(const char *m, size_t len, uint32_t seq, pc_buf *out);
/* The "seq" field of a material (0 when absent). */
uint32_t pc_key_material_seq_of(const char *m, size_t len);

#endif
