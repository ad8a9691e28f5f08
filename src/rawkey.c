/* rawkey.c — the raw-request memo (see rawkey.h): a direct-mapped table of
 * PC_RAWKEY_SLOTS slots. An identity is its "head" (every part but the body,
 * length-prefixed, ending with the body's length) and its body; the slot is
 * chosen by XXH3-64 of the head and a sample of the body (all of it up to
 * 8 KiB, else its first and last 4 KiB), which costs the same at any size;
 * the full identity is then compared byte for byte. Each slot owns one block:
 * head | body | canonical request | model\0. A colliding newer request
 * replaces the slot; past the byte budget, a clock hand frees slots in turn.
 * What must stay true: a hit is only ever an identity equal byte for byte. */
#include "rawkey.h"

#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL /* inlined: the library build is scalar; inlined, XXH3 uses SSE2 */
#include <xxhash.h>

#include "error.h"

#define SAMPLE (4 * 1024)

struct slot {
  uint64_t hash;
  char *block;
  size_t hlen, blen, mlen;
  struct pc_key key;
  int64_t stamp_created;
  size_t stamp_len;
};

struct pc_rawkey {
  struct slot slots[PC_RAWKEY_SLOTS];
  size_t budget, bytes, entries;
  size_t hand; /* the clock hand: the next slot to free when over budget */
};

struct pc_rawkey *pc_rawkey_create(size_t budget) {
  struct pc_rawkey *r = calloc(1, sizeof *r);
  if (r) r->budget = budget;
  return r;
}

static size_t slot_bytes(const struct slot *s) {
  return s->block ? s->hlen + s->blen + s->mlen + strlen(s->block + s->hlen + s->blen + s->mlen) + 1 : 0;
}

static void slot_free(struct pc_rawkey *r, struct slot *s) {
  if (!s->block) return;
  r->bytes -= slot_bytes(s);
  r->entries--;
  free(s->block);
  memset(s, 0, sizeof *s);
}

void pc_rawkey_destroy(struct pc_rawkey *r) {
  if (!r) return;
  for (size_t i = 0; i < PC_RAWKEY_SLOTS; i++) free(r->slots[i].block);
  free(r);
}

void pc_rawkey_usage(const struct pc_rawkey *r, size_t *entries, size_t *bytes) {
  *entries = r->entries;
  *bytes = r->bytes;
}

/* Length-prefixed so that no two different requests give one identity. */
static int part(pc_buf *out, const char *p, size_t n) {
  int rc = pc_buf_put_u64(out, n);
  if (!rc) rc = pc_buf_putc(out, ':');
  if (!rc) rc = pc_buf_append(out, p, n);
  return rc;
}

/* The identity's head into `out`. */
static int head_of(const struct pc_rawkey_in *in, pc_buf *out) {
  pc_buf_reset(out);
  int rc = part(out, in->route, strlen(in->route));
  if (!rc) rc = part(out, in->method, strlen(in->method));
  if (!rc) rc = part(out, in->target, in->target_len);
  for (size_t i = 0; !rc && i < in->n_values; i++)
    rc = in->values[i] ? part(out, in->values[i], in->lens[i]) : pc_buf_putc(out, '-');
  if (!rc) rc = pc_buf_putc(out, '#');
  if (!rc) rc = pc_buf_put_u64(out, in->body_len);
  return rc;
}

static uint64_t hash_of(const pc_buf *head, const char *body, size_t n) {
  uint64_t h = XXH3_64bits(head->data, head->len);
  if (n <= 2 * SAMPLE) return h ^ XXH3_64bits_withSeed(body, n, 1);
  return h ^ XXH3_64bits_withSeed(body, SAMPLE, 2) ^ XXH3_64bits_withSeed(body + n - SAMPLE, SAMPLE, 3);
}

static int same(const struct slot *s, uint64_t h, const pc_buf *head, const char *body, size_t n) {
  return s->block && s->hash == h && s->hlen == head->len && s->blen == n && !memcmp(s->block, head->data, head->len) &&
         !memcmp(s->block + s->hlen, body, n);
}

int pc_rawkey_get(struct pc_rawkey *r, const struct pc_rawkey_in *in, pc_buf *scratch, struct pc_rawkey_hit *out) {
  const char *body = in->body ? in->body : "";
  if (head_of(in, scratch)) return PC_ENOTFOUND;
  uint64_t h = hash_of(scratch, body, in->body_len);
  struct slot *s = &r->slots[h % PC_RAWKEY_SLOTS];
  if (!same(s, h, scratch, body, in->body_len)) return PC_ENOTFOUND;
  out->key = s->key;
  out->material = s->mlen ? s->block + s->hlen + s->blen : NULL;
  out->mlen = s->mlen;
  out->model = s->block + s->hlen + s->blen + s->mlen;
  out->stamp_created = s->stamp_created;
  out->stamp_len = s->stamp_len;
  return 0;
}

/* Free slots in turn (not `keep`) until `need` more bytes fit the budget. */
static void make_room(struct pc_rawkey *r, size_t need, const struct slot *keep) {
  for (size_t scanned = 0; r->bytes + need > r->budget && scanned < PC_RAWKEY_SLOTS; scanned++) {
    struct slot *s = &r->slots[r->hand];
    r->hand = (r->hand + 1) % PC_RAWKEY_SLOTS;
    if (s != keep) slot_free(r, s);
  }
}

void pc_rawkey_put(struct pc_rawkey *r, const struct pc_rawkey_in *in, pc_buf *scratch, const struct pc_key *key,
                   const char *material, size_t mlen, const char *model, int64_t stamp_created, size_t stamp_len) {
  const char *body = in->body ? in->body : "";
  if (head_of(in, scratch)) return;
  int small = scratch->len + in->body_len <= PC_RAWKEY_SMALL;
  if (!small && !stamp_len) return; /* nothing it could let a repeat skip */
  if (!small) mlen = 0;             /* large: the stamp stands for the canonical request */
  size_t ml = strlen(model), total = scratch->len + in->body_len + mlen + ml + 1;
  if (total > r->budget) return;
  uint64_t h = hash_of(scratch, body, in->body_len);
  struct slot *s = &r->slots[h % PC_RAWKEY_SLOTS];
  slot_free(r, s);
  make_room(r, total, s);
  char *block = malloc(total);
  if (!block) return;
  memcpy(block, scratch->data, scratch->len);
  memcpy(block + scratch->len, body, in->body_len);
  if (mlen) memcpy(block + scratch->len + in->body_len, material, mlen);
  memcpy(block + scratch->len + in->body_len + mlen, model, ml + 1);
  *s = (struct slot){.hash = h,
                     .block = block,
                     .hlen = scratch->len,
                     .blen = in->body_len,
                     .mlen = mlen,
                     .key = *key,
                     .stamp_created = small ? 0 : stamp_created,
                     .stamp_len = small ? 0 : stamp_len};
  r->bytes += total;
  r->entries++;
}
