/* test_entry.c — the stored entry format: round trips, the golden byte
 * layout, and decode's refusal of truncated, altered or foreign bytes.
 * Every decode of damaged input runs on an exactly sized heap copy so that
 * ASan reports any read past the end. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "buf.h"
#include "entry.h"
#include "error.h"

#define BUF_MAX (1u << 20)

static struct pc_slice sl(const char *s) {
  struct pc_slice v = {s, strlen(s)};
  return v;
}

static const struct pc_chunk FULL_CHUNKS[3] = {{5, 0}, {12, 40}, {23, 95}};

/* Every field set, SSE, three chunks. */
static struct pc_entry full_entry(void) {
  struct pc_entry e;
  memset(&e, 0, sizeof e);
  e.flags = PC_ENTRY_F_SSE;
  e.status = 200;
  e.created_ms = 1700000000123;
  e.expires_ms = 1700000600123;
  e.request = sl("{\"model\":\"gpt\",\"stream\":true}");
  e.ns = sl("team-a");
  e.route = sl("openai");
  e.path = sl("/v1/chat/completions");
  e.model = sl("gpt-4o-mini");
  e.headers = sl("content-type: text/event-stream\r\nx-request-id: abc\r\n");
  e.body = sl("data: a\n\ndata: bb\n\ndata: [DONE]\n\n");
  e.usage = sl("{\"prompt_tokens\":3,\"completion_tokens\":5}");
  e.chunks = FULL_CHUNKS;
  e.n_chunks = 3;
  return e;
}

static void encode_ok(const struct pc_entry *e, pc_buf *b) {
  pc_buf_init(b, BUF_MAX);
  cr_assert_eq(pc_entry_encode(e, b), 0);
}

static void assert_slice_eq(struct pc_slice got, struct pc_slice want) {
  cr_assert_eq(got.n, want.n);
  if (want.n) cr_assert_eq(memcmp(got.p, want.p, want.n), 0);
}

/* What "structurally valid" promises a caller: every slice inside the input,
 * every chunk end inside the body and in order. */
static void assert_structural(const struct pc_entry *e, const uint8_t *p, size_t n) {
  const struct pc_slice *s[8] = {&e->request, &e->ns,      &e->route, &e->path,
                                 &e->model,   &e->headers, &e->body,  &e->usage};
  for (int i = 0; i < 8; i++) {
    const uint8_t *q = (const uint8_t *)s[i]->p;
    cr_assert(q >= p && s[i]->n <= n && (size_t)(q - p) <= n - s[i]->n);
  }
  uint32_t prev = 0;
  for (uint32_t i = 0; i < e->n_chunks; i++) {
    struct pc_chunk c = pc_entry_chunk(e, i);
    cr_assert(c.end >= prev && c.end <= e->body.n);
    prev = c.end;
  }
}

/* Decode a heap copy of exactly n bytes (so overreads are caught). */
static int decode_copy(const void *p, size_t n, int verify, struct pc_entry *e, uint8_t **copy) {
  *copy = malloc(n ? n : 1);
  cr_assert_not_null(*copy);
  if (n) memcpy(*copy, p, n);
  return pc_entry_decode(*copy, n, verify, e);
}

Test(entry, round_trip_full) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  encode_ok(&in, &b);
  cr_assert_eq(pc_entry_decode(b.data, b.len, 1, &out), 0);
  cr_assert_eq(out.flags, PC_ENTRY_F_SSE);
  cr_assert_eq(out.status, 200);
  cr_assert_eq(out.created_ms, in.created_ms);
  cr_assert_eq(out.expires_ms, in.expires_ms);
  assert_slice_eq(out.request, in.request);
  assert_slice_eq(out.ns, in.ns);
  assert_slice_eq(out.route, in.route);
  assert_slice_eq(out.path, in.path);
  assert_slice_eq(out.model, in.model);
  assert_slice_eq(out.headers, in.headers);
  assert_slice_eq(out.body, in.body);
  assert_slice_eq(out.usage, in.usage);
  cr_assert_eq(out.n_chunks, 3);
  for (uint32_t i = 0; i < 3; i++) {
    struct pc_chunk c = pc_entry_chunk(&out, i);
    cr_assert_eq(c.end, FULL_CHUNKS[i].end);
    cr_assert_eq(c.t_ms, FULL_CHUNKS[i].t_ms);
  }
  /* Zero-copy: the body points into the encoded bytes. */
  cr_assert(out.body.p > b.data && out.body.p < b.data + b.len);
  pc_buf_free(&b);
}

Test(entry, round_trip_negative_times_and_large_status) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  in.created_ms = INT64_MIN;
  in.expires_ms = -1;
  in.status = 65535;
  in.flags = 0;
  encode_ok(&in, &b);
  cr_assert_eq(pc_entry_decode(b.data, b.len, 1, &out), 0);
  cr_assert_eq(out.created_ms, INT64_MIN);
  cr_assert_eq(out.expires_ms, -1);
  cr_assert_eq(out.status, 65535);
  cr_assert_eq(out.flags, 0);
  pc_buf_free(&b);
}

Test(entry, empty_sections) {
  struct pc_entry in, out;
  pc_buf b;
  memset(&in, 0, sizeof in); /* NULL slices of length 0, no chunks */
  in.status = 204;
  encode_ok(&in, &b);
  cr_assert_eq(b.len, 36 + 9 * 4 + 8);
  cr_assert_eq(pc_entry_decode(b.data, b.len, 1, &out), 0);
  cr_assert_eq(out.status, 204);
  cr_assert_eq(out.expires_ms, 0);
  cr_assert_eq(out.request.n + out.ns.n + out.route.n + out.path.n + out.model.n, 0);
  cr_assert_eq(out.headers.n + out.body.n + out.usage.n, 0);
  cr_assert_eq(out.n_chunks, 0);
  cr_assert_null(out.chunks);
  pc_buf_free(&b);
}

Test(entry, encode_appends_after_existing_bytes) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  pc_buf_init(&b, BUF_MAX);
  cr_assert_eq(pc_buf_puts(&b, "prefix"), 0);
  cr_assert_eq(pc_entry_encode(&in, &b), 0);
  cr_assert_eq(memcmp(b.data, "prefix", 6), 0);
  /* The checksum covers the entry only. */
  cr_assert_eq(pc_entry_decode(b.data + 6, b.len - 6, 1, &out), 0);
  assert_slice_eq(out.body, in.body);
  pc_buf_free(&b);
}

Test(entry, encode_rejects_what_decode_would) {
  struct pc_entry e = full_entry();
  struct pc_chunk bad_end[1] = {{1000, 0}};
  struct pc_chunk backwards[2] = {{10, 0}, {5, 1}};
  pc_buf b;
  pc_buf_init(&b, BUF_MAX);
  cr_assert_eq(pc_buf_puts(&b, "keep"), 0);

  e.chunks = bad_end;
  e.n_chunks = 1;
  cr_assert_eq(pc_entry_encode(&e, &b), PC_EINVAL);
  e.chunks = backwards;
  e.n_chunks = 2;
  cr_assert_eq(pc_entry_encode(&e, &b), PC_EINVAL);
  e = full_entry();
  e.chunks = NULL;
  cr_assert_eq(pc_entry_encode(&e, &b), PC_EINVAL);
  e = full_entry();
  e.status = 70000;
  cr_assert_eq(pc_entry_encode(&e, &b), PC_EINVAL);
  e.status = -1;
  cr_assert_eq(pc_entry_encode(&e, &b), PC_EINVAL);
  e = full_entry();
  e.flags = 0x80;
  cr_assert_eq(pc_entry_encode(&e, &b), PC_EINVAL);
  e = full_entry();
  e.model.p = NULL;
  cr_assert_eq(pc_entry_encode(&e, &b), PC_EINVAL);
  /* Nothing was appended by any failed encode. */
  cr_assert_eq(b.len, 4);
  cr_assert_str_eq(b.data, "keep");
  pc_buf_free(&b);
}

Test(entry, encode_respects_buffer_limit) {
  struct pc_entry e = full_entry();
  pc_buf b;
  pc_buf_init(&b, 64); /* far smaller than the entry */
  cr_assert_eq(pc_entry_encode(&e, &b), PC_ETOOBIG);
  cr_assert_eq(b.len, 0);
  pc_buf_free(&b);
}

Test(entry, golden_bytes) {
  struct pc_chunk one[1] = {{2, 0x01020304}};
  struct pc_entry e;
  pc_buf b;
  memset(&e, 0, sizeof e);
  e.flags = PC_ENTRY_F_SSE;
  e.status = 200;
  e.created_ms = 0x0102030405060708;
  e.expires_ms = -2;
  e.request = sl("R");
  e.body = sl("ab");
  e.chunks = one;
  e.n_chunks = 1;
  encode_ok(&e, &b);
  static const uint8_t want[] = {
      'P',  'C',  'E',  '1',  0x01, 0x00,             /* magic, version 1 */
      0x01, 0x00, 0xC8, 0x00, 0x00, 0x00,             /* flags SSE, status 200, reserved */
      0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* created_ms */
      0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* expires_ms = -2 */
      0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* n_chunks 1, reserved */
      0x01, 0x00, 0x00, 0x00, 'R',                    /* request */
      0x00, 0x00, 0x00, 0x00,                         /* namespace */
      0x00, 0x00, 0x00, 0x00,                         /* route */
      0x00, 0x00, 0x00, 0x00,                         /* path */
      0x00, 0x00, 0x00, 0x00,                         /* model */
      0x00, 0x00, 0x00, 0x00,                         /* headers */
      0x02, 0x00, 0x00, 0x00, 'a',  'b',              /* body */
      0x00, 0x00, 0x00, 0x00,                         /* usage */
      0x08, 0x00, 0x00, 0x00,                         /* chunks: 8 bytes */
      0x02, 0x00, 0x00, 0x00, 0x04, 0x03, 0x02, 0x01, /* end 2, t_ms */
  };
  cr_assert_eq(b.len, sizeof want + 8);
  cr_assert_eq(memcmp(b.data, want, sizeof want), 0);
  /* Trailer: XXH3-64 (seed 0) of every byte before it, little-endian. */
  uint64_t sum = XXH3_64bits(want, sizeof want);
  for (int i = 0; i < 8; i++)
    cr_assert_eq((uint8_t)b.data[sizeof want + i], (uint8_t)(sum >> (8 * i)));
  pc_buf_free(&b);
}

Test(entry, rejects_every_truncation) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  uint8_t *copy;
  encode_ok(&in, &b);
  for (size_t n = 0; n < b.len; n++) {
    for (int verify = 0; verify <= 1; verify++) {
      int rc = decode_copy(b.data, n, verify, &out, &copy);
      cr_assert_eq(rc, PC_ECORRUPT, "truncated to %zu bytes: %d", n, rc);
      free(copy);
    }
  }
  cr_assert_eq(decode_copy(b.data, b.len, 1, &out, &copy), 0);
  free(copy);
  cr_assert_eq(pc_entry_decode(NULL, 0, 0, &out), PC_ECORRUPT);
  pc_buf_free(&b);
}

Test(entry, rejects_trailing_bytes) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  encode_ok(&in, &b);
  cr_assert_eq(pc_buf_putc(&b, 0), 0);
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_ECORRUPT);
  pc_buf_free(&b);
}

Test(entry, rejects_bad_magic) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  encode_ok(&in, &b);
  b.data[3] = '2';
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_ECORRUPT);
  cr_assert_eq(pc_entry_decode("{\"json\":1}", 10, 0, &out), PC_ECORRUPT);
  pc_buf_free(&b);
}

Test(entry, rejects_other_versions) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  encode_ok(&in, &b);
  b.data[4] = 2;
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_EVERSION);
  b.data[4] = 0;
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_EVERSION);
  /* A future version is recognised even when its header is shorter. */
  cr_assert_eq(pc_entry_decode("PCE1\x02\x00", 6, 0, &out), PC_EVERSION);
  pc_buf_free(&b);
}

Test(entry, rejects_unknown_flags_and_reserved) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  encode_ok(&in, &b);
  b.data[6] |= 0x02; /* a flag this version does not know */
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_EVERSION);
  b.data[6] &= (char)~0x02;
  b.data[10] = 1; /* reserved u16 */
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_EVERSION);
  b.data[10] = 0;
  b.data[35] = 1; /* reserved u32 */
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_EVERSION);
  b.data[35] = 0;
  cr_assert_eq(pc_entry_decode(b.data, b.len, 1, &out), 0);
  pc_buf_free(&b);
}

Test(entry, checksum_verified_only_when_asked) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  encode_ok(&in, &b);
  char *body = memmem(b.data, b.len, "data: a", 7);
  cr_assert_not_null(body);
  body[6] = 'z'; /* same length, different byte */
  cr_assert_eq(pc_entry_decode(b.data, b.len, 1, &out), PC_ECORRUPT);
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), 0);
  cr_assert_eq(out.body.p[6], 'z');
  pc_buf_free(&b);
}

Test(entry, rejects_chunks_outside_body) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  encode_ok(&in, &b);
  /* Last chunk's end is the 16 bytes before the checksum, then t_ms. */
  uint8_t *last = (uint8_t *)b.data + b.len - 8 - 8;
  last[0] = 0xFF;
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_ECORRUPT);
  last[0] = 4; /* before the previous chunk's end (12) */
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_ECORRUPT);
  pc_buf_free(&b);
}

Test(entry, rejects_chunk_count_mismatch) {
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  encode_ok(&in, &b);
  b.data[28] = 2; /* header says 2 chunks, section holds 3 */
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_ECORRUPT);
  b.data[28] = (char)0xFF;
  b.data[31] = (char)0xFF; /* absurd count */
  cr_assert_eq(pc_entry_decode(b.data, b.len, 0, &out), PC_ECORRUPT);
  pc_buf_free(&b);
}

/* Every byte flipped in three ways: with the checksum on, every one is
 * caught; with it off, decode fails or yields a structurally valid entry. */
Test(entry, every_byte_flip_is_safe) {
  static const uint8_t masks[] = {0x01, 0x80, 0xFF};
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  uint8_t *copy;
  encode_ok(&in, &b);
  for (size_t i = 0; i < b.len; i++) {
    for (size_t m = 0; m < sizeof masks; m++) {
      b.data[i] ^= (char)masks[m];
      cr_assert_neq(decode_copy(b.data, b.len, 1, &out, &copy), 0, "flip at %zu undetected", i);
      free(copy);
      if (decode_copy(b.data, b.len, 0, &out, &copy) == 0) assert_structural(&out, copy, b.len);
      free(copy);
      b.data[i] ^= (char)masks[m];
    }
  }
  pc_buf_free(&b);
}

static uint64_t xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Random bytes, half of them behind a valid magic and version so that the
 * section parser, not just the magic check, sees garbage. */
Test(entry, random_bytes_are_safe) {
  uint64_t seed = 0x9E3779B97F4A7C15u;
  uint8_t buf[256];
  struct pc_entry out;
  uint8_t *copy;
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = xorshift(&seed) % sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)xorshift(&seed);
    if ((iter & 1) && n >= 6) memcpy(buf, "PCE1\x01\x00", 6);
    if ((iter & 2) && n >= 36) memset(buf + 6, 0, 30); /* zero flags/reserved/counts */
    if (decode_copy(buf, n, 0, &out, &copy) == 0) assert_structural(&out, copy, n);
    free(copy);
  }
}

/* Several random byte changes to a valid encoding, then a random cut: the
 * lengths stay mostly plausible, so decode gets deep into the sections. */
Test(entry, random_mutations_are_safe) {
  uint64_t seed = 0xD1B54A32D192ED03u;
  struct pc_entry in = full_entry(), out;
  pc_buf b;
  uint8_t *copy;
  encode_ok(&in, &b);
  uint8_t *work = malloc(b.len);
  cr_assert_not_null(work);
  for (int iter = 0; iter < 20000; iter++) {
    memcpy(work, b.data, b.len);
    int flips = 1 + (int)(xorshift(&seed) % 4);
    for (int f = 0; f < flips; f++) work[xorshift(&seed) % b.len] = (uint8_t)xorshift(&seed);
    size_t n = (iter & 1) ? b.len : xorshift(&seed) % (b.len + 1);
    if (decode_copy(work, n, 0, &out, &copy) == 0) assert_structural(&out, copy, n);
    free(copy);
  }
  free(work);
  pc_buf_free(&b);
}
