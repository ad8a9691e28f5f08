/* fuzz_entry.c — libFuzzer target for src/entry.c: decoding stored entries
 * (bytes from LMDB, possibly written by another version of the program).
 * Each input is decoded three ways: as is with the checksum verified, as is
 * without it, and with its trailing checksum fixed up and verified (so the
 * fuzzer reaches past the checksum). Checked:
 *  - a decoded entry's slices lie inside the input (every byte is read, so
 *    ASan reports any that does not) and its chunk ends are in order and
 *    inside the body;
 *  - verify on and off agree whenever the checksum is right, and a failed
 *    decode leaves the caller's struct untouched;
 *  - encode(decode(x)) decodes to the same entry and gives x again (the
 *    format has one encoding per entry), checksum included when it was right. */
#include "fuzz.h"

#include <xxhash.h>

#include "buf.h"
#include "entry.h"

#define SUM_LEN 8

static volatile unsigned sink;

/* Read every byte of a slice: ASan stops here if it points outside the input. */
static void touch(struct pc_slice s, const uint8_t *base, size_t n) {
  unsigned acc = 0;
  FUZZ_CHECK(s.n == 0 || ((const uint8_t *)s.p >= base && (const uint8_t *)s.p + s.n <= base + n),
             "slice outside the input");
  for (size_t i = 0; i < s.n; i++) acc += (unsigned char)s.p[i];
  sink += acc;
}

static struct pc_slice *slices(struct pc_entry *e, int i) {
  struct pc_slice *all[] = {&e->request, &e->ns, &e->route, &e->path, &e->model, &e->headers, &e->body, &e->usage};
  return all[i];
}

static int slice_eq(struct pc_slice a, struct pc_slice b) { return a.n == b.n && (!a.n || !memcmp(a.p, b.p, a.n)); }

static int entries_eq(struct pc_entry *a, struct pc_entry *b) {
  if (a->flags != b->flags || a->status != b->status || a->created_ms != b->created_ms ||
      a->expires_ms != b->expires_ms || a->n_chunks != b->n_chunks)
    return 0;
  for (int i = 0; i < 8; i++)
    if (!slice_eq(*slices(a, i), *slices(b, i))) return 0;
  for (uint32_t i = 0; i < a->n_chunks; i++) {
    struct pc_chunk x = pc_entry_chunk(a, i), y = pc_entry_chunk(b, i);
    if (x.end != y.end || x.t_ms != y.t_ms) return 0;
  }
  return 1;
}

/* Every slice inside the input, chunks in order inside the body; returns the
 * chunks as an array encode accepts (the caller frees it). */
static struct pc_chunk *walk(struct pc_entry *e, const uint8_t *p, size_t n) {
  struct pc_chunk *c = malloc((e->n_chunks ? e->n_chunks : 1) * sizeof *c);
  FUZZ_CHECK(c, "out of memory");
  for (int i = 0; i < 8; i++) touch(*slices(e, i), p, n);
  uint32_t prev = 0;
  for (uint32_t i = 0; i < e->n_chunks; i++) {
    c[i] = pc_entry_chunk(e, i);
    FUZZ_CHECK(c[i].end >= prev && c[i].end <= e->body.n, "chunk %u ends at %u (previous %u, body %zu)", i, c[i].end,
               prev, e->body.n);
    struct pc_slice piece = {e->body.p + prev, c[i].end - prev};
    touch(piece, p, n);
    prev = c[i].end;
  }
  return c;
}

/* Encode the decoded entry: it must decode to the same entry, and the bytes
 * must be the input's (all of them when its checksum was right). */
static void check_round_trip(struct pc_entry *e, const uint8_t *p, size_t n, int sum_ok) {
  struct pc_chunk *chunks = walk(e, p, n);
  struct pc_entry enc_in = *e, back;
  pc_buf out;
  enc_in.chunks = e->n_chunks ? chunks : NULL;
  pc_buf_init(&out, n + 64);
  int rc = pc_entry_encode(&enc_in, &out);
  FUZZ_CHECK(rc == 0, "a decoded entry does not encode: %d", rc);
  FUZZ_CHECK(out.len == n, "re-encoded to %zu bytes, decoded from %zu", out.len, n);
  FUZZ_CHECK(!memcmp(out.data, p, n - SUM_LEN), "re-encoding changed the bytes");
  FUZZ_CHECK(!sum_ok || !memcmp(out.data + n - SUM_LEN, p + n - SUM_LEN, SUM_LEN), "re-encoding changed the sum");
  uint8_t *copy = (uint8_t *)fuzz_copy(out.data, out.len);
  rc = pc_entry_decode(copy, out.len, 1, &back);
  FUZZ_CHECK(rc == 0, "an encoded entry does not decode: %d", rc);
  FUZZ_CHECK(entries_eq(e, &back), "decode(encode(e)) != e");
  free(copy);
  pc_buf_free(&out);
  free(chunks);
}

static void decode_both(const uint8_t *p, size_t n) {
  struct pc_entry on, off, untouched;
  memset(&on, 0xa5, sizeof on);
  memset(&untouched, 0xa5, sizeof untouched);
  int rc_on = pc_entry_decode(p, n, 1, &on);
  int rc_off = pc_entry_decode(p, n, 0, &off);
  FUZZ_CHECK(rc_on == 0 || !memcmp(&on, &untouched, sizeof on), "a failed decode wrote to the entry");
  if (rc_on == 0) {
    FUZZ_CHECK(rc_off == 0 && entries_eq(&on, &off), "verify on accepts what verify off does not");
    check_round_trip(&on, p, n, 1);
  } else if (rc_off == 0) {
    check_round_trip(&off, p, n, 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *p = (uint8_t *)fuzz_copy((const char *)data, size);
  decode_both(p, size);
  if (size > SUM_LEN) { /* the same bytes with a right checksum */
    uint64_t sum = XXH3_64bits(p, size - SUM_LEN);
    for (int i = 0; i < SUM_LEN; i++) p[size - SUM_LEN + i] = (uint8_t)(sum >> (8 * i));
    decode_both(p, size);
  }
  free(p);
  return 0;
}
