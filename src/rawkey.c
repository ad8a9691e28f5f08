/* rawkey.c — the raw-request memo (see rawkey.h): a direct-mapped table of
 * PC_RAWKEY_SLOTS slots, indexed by XXH3-64 of the identity; each slot owns
 * one block holding the identity, the key, the canonical request and the
 * model. A colliding newer request replaces the slot. */
#include "rawkey.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "error.h"

struct slot {
  uint64_t hash;
  char *block; /* identity | material | model\0 */
  size_t ilen, mlen;
  struct pc_key key;
};

struct pc_rawkey {
  struct slot slots[PC_RAWKEY_SLOTS];
};

struct pc_rawkey *pc_rawkey_create(void) { return calloc(1, sizeof(struct pc_rawkey)); }

void pc_rawkey_destroy(struct pc_rawkey *r) {
  if (!r) return;
  for (size_t i = 0; i < PC_RAWKEY_SLOTS; i++) free(r->slots[i].block);
  free(r);
}

/* Length-prefixed so that no two different requests give one identity. */
static int part(pc_buf *out, const char *p, size_t n) {
  int rc = pc_buf_put_u64(out, n);
  if (!rc) rc = pc_buf_putc(out, ':');
  if (!rc) rc = pc_buf_append(out, p, n);
  return rc;
}

int pc_rawkey_identity(const struct pc_rawkey_in *in, pc_buf *out) {
  pc_buf_reset(out);
  if (in->body_len + in->target_len > PC_RAWKEY_MAX_IDENTITY) return PC_ETOOBIG;
  int rc = part(out, in->route, strlen(in->route));
  if (!rc) rc = part(out, in->method, strlen(in->method));
  if (!rc) rc = part(out, in->target, in->target_len);
  for (size_t i = 0; !rc && i < in->n_values; i++)
    rc = in->values[i] ? part(out, in->values[i], in->lens[i]) : pc_buf_putc(out, '-');
  if (!rc) rc = part(out, in->body ? in->body : "", in->body_len);
  return rc ? rc : out->len > PC_RAWKEY_MAX_IDENTITY ? PC_ETOOBIG : 0;
}

static struct slot *slot_for(struct pc_rawkey *r, uint64_t h) { return &r->slots[h % PC_RAWKEY_SLOTS]; }

int pc_rawkey_get(struct pc_rawkey *r, const pc_buf *id, struct pc_key *key, const char **material, size_t *mlen,
                  const char **model) {
  uint64_t h = XXH3_64bits(id->data, id->len);
  struct slot *s = slot_for(r, h);
  if (!s->block || s->hash != h || s->ilen != id->len || memcmp(s->block, id->data, id->len)) return PC_ENOTFOUND;
  *key = s->key;
  *material = s->block + s->ilen;
  *mlen = s->mlen;
  *model = s->block + s->ilen + s->mlen;
  return 0;
}

void pc_rawkey_put(struct pc_rawkey *r, const pc_buf *id, const struct pc_key *key, const char *material, size_t mlen,
                   const char *model) {
  size_t ml = strlen(model);
  char *block = malloc(id->len + mlen + ml + 1);
  if (!block) return;
  memcpy(block, id->data, id->len);
  memcpy(block + id->len, material, mlen);
  memcpy(block + id->len + mlen, model, ml + 1);
  uint64_t h = XXH3_64bits(id->data, id->len);
  struct slot *s = slot_for(r, h);
  free(s->block);
  *s = (struct slot){.hash = h, .block = block, .ilen = id->len, .mlen = mlen, .key = *key};
}
