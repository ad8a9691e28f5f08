/* rawkey.h — a per-loop memo of recent requests' raw bytes → their key, so
 * that an exact repeat (the common case on the hit path) skips
 * canonicalization, the credential HMAC and the key hash. The raw identity
 * (route, method, target, every header the key reads, the body) is compared
 * byte for byte, never by hash alone, so a memo hit is exactly the request
 * that was keyed before.
 *
 * Two kinds of entries:
 *  - small requests (identity up to PC_RAWKEY_SMALL bytes) keep their
 *    canonical request too: the hit path still compares it with the stored
 *    entry's, as without the memo;
 *  - larger ones keep no canonical request but a stamp of the stored entry
 *    whose request was found equal to it (the entry's creation time and
 *    length: an entry is never changed in place, only replaced, and a
 *    replacement changes them). A repeat that finds that same entry is
 *    served without canonicalizing, hashing or comparing its body again; any
 *    other outcome goes the long way (and stamps again).
 * Memory: a byte budget per loop (pc_rawkey_create); past it the oldest
 * entries go. */
#ifndef PC_RAWKEY_H
#define PC_RAWKEY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "key.h"

#define PC_RAWKEY_SLOTS 4096
#define PC_RAWKEY_SMALL (4 * 1024) /* identities up to this keep their canonical request */

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

/* What the memo knows of a request. */
struct pc_rawkey_hit {
  struct pc_key key;
  const char *material; /* the canonical request (small entries), or NULL */
  size_t mlen;
  const char *model;
  int64_t stamp_created; /* the verified stored entry (large entries), or 0 */
  size_t stamp_len;
};

/* budget: bytes this loop's memo may hold. */
struct pc_rawkey *pc_rawkey_create(size_t budget);
void pc_rawkey_destroy(struct pc_rawkey *r);

/* Look a request up; `scratch` holds its identity's head while comparing.
 * Returns 0 (out is borrowed until the next put) or PC_ENOTFOUND. */
int pc_rawkey_get(struct pc_rawkey *r, const struct pc_rawkey_in *in, pc_buf *scratch, struct pc_rawkey_hit *out);
/* Remember a request: a small one with its canonical request; a large one
 * with the stamp of the stored entry it was verified against (a large one
 * without a stamp is not remembered: it could not skip anything). */
void pc_rawkey_put(struct pc_rawkey *r, const struct pc_rawkey_in *in, pc_buf *scratch, const struct pc_key *key,
                   const char *material, size_t mlen, const char *model, int64_t stamp_created, size_t stamp_len);
/* Entries and bytes held. */
void pc_rawkey_usage(const struct pc_rawkey *r, size_t *entries, size_t *bytes);

#endif
