/* rawkey.h — a per-loop memo of recent requests' raw bytes → their key and
 * canonical request, so that an exact repeat (the common case on the hit
 * path) skips canonicalization, the credential HMAC and the key hash. The
 * raw identity is compared byte for byte, never by hash alone, so a memo
 * hit is exactly the request that was keyed before; the LMDB lookup and the
 * stored-request comparison still follow as usual. Small requests only
 * (identity ≤ PC_RAWKEY_MAX_IDENTITY bytes). */
#ifndef PC_RAWKEY_H
#define PC_RAWKEY_H

#include <stddef.h>

#include "buf.h"
#include "key.h"

#define PC_RAWKEY_SLOTS 4096
#define PC_RAWKEY_MAX_IDENTITY (4 * 1024) /* bounds the memo to about 4096 × 8 KiB per loop */

struct pc_rawkey; /* one per event loop */

/* Everything the key depends on, as raw bytes. `values` are the raw values
 * of every request header the key reads (namespace, credentials, key
 * headers), in a fixed order, NULL when absent: the caller lists them from
 * the same tables the key uses (policy.h, key.h), so the two cannot drift. */
struct pc_rawkey_in {
  const char *route;
  const char *method;
  const char *target;
  size_t target_len;
  const char *const *values;
  const size_t *lens;
  size_t n_values;
  const char *body;
  size_t body_len;
};

struct pc_rawkey *pc_rawkey_create(void);
void pc_rawkey_destroy(struct pc_rawkey *r);

/* The raw identity of a request into `out`. Returns 0 when the request is
 * small enough to memo (PC_ETOOBIG otherwise). */
int pc_rawkey_identity(const struct pc_rawkey_in *in, pc_buf *out);

/* A memo hit: the key, the canonical request (borrowed until the next
 * pc_rawkey_put) and the model. Returns 0 or PC_ENOTFOUND. */
int pc_rawkey_get(struct pc_rawkey *r, const pc_buf *identity, struct pc_key *key, const char **material,
                  size_t *mlen, const char **model);
void pc_rawkey_put(struct pc_rawkey *r, const pc_buf *identity, const struct pc_key *key, const char *material,
                   size_t mlen, const char *model);

#endif
