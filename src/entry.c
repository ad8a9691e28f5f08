/* entry.c — the stored entry's byte format (version 1, see entry.h).
 * Encoding writes every integer byte by byte in little-endian order, so the
 * format never depends on the host's struct layout or endianness. Decoding
 * trusts nothing: the bytes come from disk (or from another version of the
 * program), so every length is checked against what is left before it is
 * used, and a decoded entry is structurally valid (every slice lies inside
 * the input, every chunk end lies inside the body, in order). Encode applies
 * the same rules up front, so it can never produce bytes decode rejects. */
#include "entry.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>
#define XXH_INLINE_ALL /* inlined: the library build is scalar; inlined, XXH3 uses SSE2 */
#include <xxhash.h>

#include "error.h"

#define HDR_LEN 36u  /* magic .. second reserved field */
#define LEN_LEN 4u   /* the u32 in front of every section */
#define N_SECTIONS 9 /* request .. chunks */
#define CHUNK_LEN 8u /* u32 end + u32 t_ms */
#define SUM_LEN 8u   /* trailing XXH3-64 */
#define KNOWN_FLAGS ((unsigned)PC_ENTRY_F_SSE)
/* The chunks section length is a u32 too. */
#define MAX_CHUNKS (UINT32_MAX / CHUNK_LEN)

static const uint8_t MAGIC[4] = {'P', 'C', 'E', '1'};

/* ---- little-endian stores and loads ---------------------------------- */

static void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

/* Where the eight byte sections live in the struct, in stored order (the
 * chunks section follows them). One table serves encode and decode, so the
 * two can never disagree on the order. */
static const size_t SECTION_OFF[8] = {
    offsetof(struct pc_entry, request), offsetof(struct pc_entry, ns),    offsetof(struct pc_entry, route),
    offsetof(struct pc_entry, path),    offsetof(struct pc_entry, model), offsetof(struct pc_entry, headers),
    offsetof(struct pc_entry, body),    offsetof(struct pc_entry, usage),
};

static const struct pc_slice *section(const struct pc_entry *e, int i) {
  return (const struct pc_slice *)(const void *)((const char *)e + SECTION_OFF[i]);
}

static struct pc_slice *section_mut(struct pc_entry *e, int i) {
  return (struct pc_slice *)(void *)((char *)e + SECTION_OFF[i]);
}

/* Chunk ends must lie inside the body and never go backwards: a reader may
 * then slice body[prev_end, end) without further checks. */
static int check_chunk_end(uint32_t end, uint32_t prev_end, size_t body_len) {
  if (end < prev_end || end > body_len) return PC_ECORRUPT;
  return 0;
}

/* ---- encode ----------------------------------------------------------- */

/* Everything decode would reject is refused here, and the exact encoded size
 * is computed so that `out` is grown once (and left untouched on failure). */
static int encode_check(const struct pc_entry *e, size_t *total) {
  uint64_t n = HDR_LEN + N_SECTIONS * LEN_LEN + SUM_LEN;

  if ((e->flags & ~KNOWN_FLAGS) != 0 || e->status < 0 || e->status > UINT16_MAX) return PC_EINVAL;
  for (int i = 0; i < 8; i++) {
    const struct pc_slice *s = section(e, i);
    if (s->n > UINT32_MAX) return PC_ETOOBIG;
    if (s->n > 0 && s->p == NULL) return PC_EINVAL;
    n += s->n;
  }
  if (e->n_chunks > MAX_CHUNKS) return PC_ETOOBIG;
  if (e->n_chunks > 0 && e->chunks == NULL) return PC_EINVAL;
  uint32_t prev = 0;
  for (uint32_t i = 0; i < e->n_chunks; i++) {
    if (check_chunk_end(e->chunks[i].end, prev, e->body.n)) return PC_EINVAL;
    prev = e->chunks[i].end;
  }
  n += (uint64_t)e->n_chunks * CHUNK_LEN;
  if (n > SIZE_MAX) return PC_ETOOBIG;
  *total = (size_t)n;
  return 0;
}

static void encode_header(const struct pc_entry *e, uint8_t h[HDR_LEN]) {
  memcpy(h, MAGIC, 4);
  put_u16(h + 4, PC_ENTRY_VERSION);
  put_u16(h + 6, (uint16_t)e->flags);
  put_u16(h + 8, (uint16_t)e->status);
  put_u16(h + 10, 0);
  put_u64(h + 12, (uint64_t)e->created_ms); /* two's complement, as stored */
  put_u64(h + 20, (uint64_t)e->expires_ms);
  put_u32(h + 28, e->n_chunks);
  put_u32(h + 32, 0);
}

/* The appends below cannot fail: encode_check sized the reservation. */
static void append_section(pc_buf *out, const void *p, size_t n) {
  uint8_t len[LEN_LEN];
  put_u32(len, (uint32_t)n);
  (void)pc_buf_append(out, len, sizeof len);
  if (n) (void)pc_buf_append(out, p, n);
}

static void append_chunks(pc_buf *out, const struct pc_chunk *c, uint32_t n) {
  uint8_t len[LEN_LEN], rec[CHUNK_LEN];
  put_u32(len, n * CHUNK_LEN);
  (void)pc_buf_append(out, len, sizeof len);
  for (uint32_t i = 0; i < n; i++) {
    put_u32(rec, c[i].end);
    put_u32(rec + 4, c[i].t_ms);
    (void)pc_buf_append(out, rec, sizeof rec);
  }
}

int pc_entry_encode(const struct pc_entry *e, pc_buf *out) {
  uint8_t h[HDR_LEN], sum[SUM_LEN];
  size_t total = 0, start = out->len;

  int rc = encode_check(e, &total);
  if (rc) goto out;
  rc = pc_buf_reserve(out, total);
  if (rc) goto out;
  encode_header(e, h);
  (void)pc_buf_append(out, h, sizeof h);
  for (int i = 0; i < 8; i++) append_section(out, section(e, i)->p, section(e, i)->n);
  append_chunks(out, e->chunks, e->n_chunks);
  /* The checksum covers this entry only, not what `out` held before. */
  put_u64(sum, XXH3_64bits(out->data + start, out->len - start));
  (void)pc_buf_append(out, sum, sizeof sum);
  assert(out->len - start == total);
out:
  return rc;
}

/* ---- decode ----------------------------------------------------------- */

/* A bounds-checked read position: `off` never passes `n`. */
struct reader {
  const uint8_t *p;
  size_t n;
  size_t off;
};

static int take(struct reader *r, size_t len, const uint8_t **out) {
  if (len > r->n - r->off) return PC_ECORRUPT;
  *out = r->p + r->off;
  r->off += len;
  return 0;
}

static int take_slice(struct reader *r, struct pc_slice *s) {
  const uint8_t *q;
  int rc = take(r, LEN_LEN, &q);
  if (rc) return rc;
  uint32_t len = get_u32(q);
  rc = take(r, len, &q);
  if (rc) return rc;
  s->p = (const char *)q;
  s->n = len;
  return 0;
}

/* Magic first (is this an entry at all?), then the version, before the rest
 * of the header is even required to be present: a later version may have a
 * shorter header and must still be reported as PC_EVERSION. Flags and
 * reserved fields this version does not know are PC_EVERSION too, so that a
 * future writer's meaning (say, a compressed body) is never silently
 * misread as something else. */
static int decode_header(struct reader *r, struct pc_entry *e) {
  const uint8_t *h;
  if (r->n < 6 || memcmp(r->p, MAGIC, 4) != 0) return PC_ECORRUPT;
  if (get_u16(r->p + 4) != PC_ENTRY_VERSION) return PC_EVERSION;
  int rc = take(r, HDR_LEN, &h);
  if (rc) return rc;
  e->flags = get_u16(h + 6);
  if ((e->flags & ~KNOWN_FLAGS) != 0 || get_u16(h + 10) != 0 || get_u32(h + 32) != 0) return PC_EVERSION;
  e->status = get_u16(h + 8);
  e->created_ms = (int64_t)get_u64(h + 12);
  e->expires_ms = (int64_t)get_u64(h + 20);
  e->n_chunks = get_u32(h + 28);
  return 0;
}

static int decode_chunks(struct reader *r, struct pc_entry *e) {
  struct pc_slice s;
  int rc = take_slice(r, &s);
  if (rc) return rc;
  if (e->n_chunks > MAX_CHUNKS || s.n != (size_t)e->n_chunks * CHUNK_LEN) return PC_ECORRUPT;
  const uint8_t *q = (const uint8_t *)s.p;
  uint32_t prev = 0;
  for (uint32_t i = 0; i < e->n_chunks; i++) {
    uint32_t end = get_u32(q + (size_t)i * CHUNK_LEN);
    rc = check_chunk_end(end, prev, e->body.n);
    if (rc) return rc;
    prev = end;
  }
  /* Not dereferenced directly: the array may be unaligned, see pc_entry_chunk(). */
  e->chunks = e->n_chunks ? (const struct pc_chunk *)(const void *)q : NULL;
  return 0;
}

static int decode_checksum(struct reader *r, int verify) {
  const uint8_t *q;
  size_t covered = r->off;
  int rc = take(r, SUM_LEN, &q);
  if (rc) return rc;
  if (r->off != r->n) return PC_ECORRUPT; /* trailing bytes */
  if (verify && get_u64(q) != XXH3_64bits(r->p, covered)) return PC_ECORRUPT;
  return 0;
}

int pc_entry_decode(const void *p, size_t n, int verify_checksum, struct pc_entry *e) {
  struct reader r = {p, n, 0};
  struct pc_entry d;
  int rc = PC_ECORRUPT;

  memset(&d, 0, sizeof d);
  if (p == NULL) goto out;
  rc = decode_header(&r, &d);
  if (rc) goto out;
  for (int i = 0; i < 8 && rc == 0; i++) rc = take_slice(&r, section_mut(&d, i));
  if (rc) goto out;
  rc = decode_chunks(&r, &d);
  if (rc) goto out;
  rc = decode_checksum(&r, verify_checksum);
  if (rc) goto out;
  *e = d; /* only a fully checked entry reaches the caller */
out:
  return rc;
}

struct pc_chunk pc_entry_chunk(const struct pc_entry *e, uint32_t i) {
  assert(i < e->n_chunks); /* caller's loop bound, not data from disk */
  const uint8_t *q = (const uint8_t *)(const void *)e->chunks + (size_t)i * CHUNK_LEN;
  struct pc_chunk c = {get_u32(q), get_u32(q + 4)};
  return c;
}
