/* test_eventstream.c — AWS event-stream framing: a golden message encoded by
 * the AWS SDK's own codec, every header type both ways, incremental reads,
 * and the attacks a hostile upstream can make (bad CRCs, lying lengths,
 * malformed headers, every truncation and every single-bit flip). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "eventstream.h"

/* Encoded by @smithy/core 3.41.1's EventStreamCodec (the AWS SDK for
 * JavaScript v3) from headers :event-type=messageStop, :content-type=
 * application/json, :message-type=event, t=true, f=false, b=byte -2,
 * s=short -300, i=integer 70000, l=long -5000000000, y=binary 00 01 ff,
 * ts=timestamp 1700000000123, u=uuid 01234567-89ab-cdef-0123-456789abcdef
 * and the body {"stopReason":"end_turn","p":"abc"}. */
static const char golden[] =
    "\x00\x00\x00\xcc\x00\x00\x00\x99\xc0\x14\xf1\x53\x0b\x3a\x65\x76\x65\x6e\x74\x2d\x74\x79\x70\x65"
    "\x07\x00\x0b\x6d\x65\x73\x73\x61\x67\x65\x53\x74\x6f\x70\x0d\x3a\x63\x6f\x6e\x74\x65\x6e\x74\x2d"
    "\x74\x79\x70\x65\x07\x00\x10\x61\x70\x70\x6c\x69\x63\x61\x74\x69\x6f\x6e\x2f\x6a\x73\x6f\x6e\x0d"
    "\x3a\x6d\x65\x73\x73\x61\x67\x65\x2d\x74\x79\x70\x65\x07\x00\x05\x65\x76\x65\x6e\x74\x01\x74\x00"
    "\x01\x66\x01\x01\x62\x02\xfe\x01\x73\x03\xfe\xd4\x01\x69\x04\x00\x01\x11\x70\x01\x6c\x05\xff\xff"
    "\xff\xfe\xd5\xfa\x0e\x00\x01\x79\x06\x00\x03\x00\x01\xff\x02\x74\x73\x08\x00\x00\x01\x8b\xcf\xe5"
    "\x68\x7b\x01\x75\x09\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef\x7b\x22\x73"
    "\x74\x6f\x70\x52\x65\x61\x73\x6f\x6e\x22\x3a\x22\x65\x6e\x64\x5f\x74\x75\x72\x6e\x22\x2c\x22\x70"
    "\x22\x3a\x22\x61\x62\x63\x22\x7d\xb2\xb2\xaa\x78";
#define GOLDEN_LEN 204
#define BODY "{\"stopReason\":\"end_turn\",\"p\":\"abc\"}"

static const char uuid[16] = "\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef";

#define STR_H(n, v) {.name = n, .name_len = sizeof n - 1, .type = PC_EVENTSTREAM_STRING, .bytes = v, .bytes_len = sizeof v - 1}
#define NUM_H(n, t, v) {.name = n, .name_len = sizeof n - 1, .type = t, .num = v}

static const struct pc_eventstream_header golden_headers[] = {
    STR_H(":event-type", "messageStop"),
    STR_H(":content-type", "application/json"),
    STR_H(":message-type", "event"),
    NUM_H("t", PC_EVENTSTREAM_TRUE, 1),
    NUM_H("f", PC_EVENTSTREAM_FALSE, 0),
    NUM_H("b", PC_EVENTSTREAM_BYTE, -2),
    NUM_H("s", PC_EVENTSTREAM_SHORT, -300),
    NUM_H("i", PC_EVENTSTREAM_INT, 70000),
    NUM_H("l", PC_EVENTSTREAM_LONG, -5000000000LL),
    {.name = "y", .name_len = 1, .type = PC_EVENTSTREAM_BYTES, .bytes = "\x00\x01\xff", .bytes_len = 3},
    NUM_H("ts", PC_EVENTSTREAM_TIMESTAMP, 1700000000123LL),
    {.name = "u", .name_len = 1, .type = PC_EVENTSTREAM_UUID, .bytes = uuid, .bytes_len = 16},
};
#define N_GOLDEN (sizeof golden_headers / sizeof *golden_headers)

static void put32(char *p, uint32_t v) {
  p[0] = (char)(v >> 24), p[1] = (char)(v >> 16), p[2] = (char)(v >> 8), p[3] = (char)v;
}

/* Recompute both CRCs of a message edited by a test, so that the edit
 * itself (not a CRC) is what the decoder must catch. */
static void fix_crcs(char *p, size_t total) {
  put32(p + 8, pc_eventstream_crc32(0, p, 8));
  put32(p + total - 4, pc_eventstream_crc32(0, p, total - 4));
}

Test(eventstream, crc32_is_ieee) {
  cr_expect_eq(pc_eventstream_crc32(0, "123456789", 9), 0xCBF43926u);
  cr_expect_eq(pc_eventstream_crc32(pc_eventstream_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
  cr_expect_eq(pc_eventstream_crc32(0, "", 0), 0u);
}

Test(eventstream, decodes_the_aws_sdk_golden_message) {
  struct pc_eventstream_msg m;
  size_t used;
  cr_assert_eq(pc_eventstream_decode(golden, GOLDEN_LEN, &m, &used), 0);
  cr_expect_eq(used, GOLDEN_LEN);
  cr_expect_eq(m.total_len, GOLDEN_LEN);
  cr_expect_eq(m.headers_len, 0x99);
  cr_expect_eq(m.payload_len, strlen(BODY));
  cr_expect_arr_eq(m.payload, BODY, strlen(BODY));
  cr_expect_eq(m.event_type.n, 11);
  cr_expect_arr_eq(m.event_type.p, "messageStop", 11);
  cr_expect_arr_eq(m.content_type.p, "application/json", 16);
  cr_expect_arr_eq(m.message_type.p, "event", 5);
  cr_expect_null(m.exception_type.p);

  const char *cur = m.headers, *end = m.headers + m.headers_len;
  struct pc_eventstream_header h;
  size_t i = 0;
  while (pc_eventstream_next_header(&cur, end, &h) == 1) {
    cr_assert_lt(i, N_GOLDEN);
    const struct pc_eventstream_header *want = &golden_headers[i++];
    cr_expect_eq(h.name_len, want->name_len);
    cr_expect_arr_eq(h.name, want->name, want->name_len);
    cr_expect_eq(h.type, want->type, "header %s", want->name);
    cr_expect_eq(h.num, want->num, "header %s: %lld", want->name, (long long)h.num);
    cr_expect_eq(h.bytes_len, want->bytes_len);
    if (want->bytes_len) cr_expect_arr_eq(h.bytes, want->bytes, want->bytes_len);
  }
  cr_expect_eq(i, N_GOLDEN);
}

Test(eventstream, encodes_byte_for_byte_like_the_aws_sdk) {
  pc_buf b;
  pc_buf_init(&b, 1 << 20);
  cr_assert_eq(pc_eventstream_encode(&b, golden_headers, N_GOLDEN, BODY, strlen(BODY)), 0);
  cr_assert_eq(b.len, GOLDEN_LEN);
  cr_expect_arr_eq(b.data, golden, GOLDEN_LEN);
  pc_buf_free(&b);
}

Test(eventstream, encode_event_round_trips_and_empty_messages_are_valid) {
  pc_buf b;
  pc_buf_init(&b, 1 << 20);
  cr_assert_eq(pc_eventstream_encode_event(&b, "chunk", "application/json", "{}", 2), 0);
  cr_assert_eq(pc_eventstream_encode(&b, NULL, 0, NULL, 0), 0); /* 16 bytes: nothing but framing */
  struct pc_eventstream_msg m;
  size_t used, complete, count;
  cr_assert_eq(pc_eventstream_decode(b.data, b.len, &m, &used), 0);
  cr_expect_arr_eq(m.event_type.p, "chunk", 5);
  cr_expect_arr_eq(m.message_type.p, "event", 5);
  cr_expect_arr_eq(m.payload, "{}", 2);
  cr_assert_eq(pc_eventstream_decode(b.data + used, b.len - used, &m, &used), 0);
  cr_expect_eq(used, 16);
  cr_expect_eq(m.payload_len, 0);
  cr_expect_null(m.event_type.p);
  cr_expect_eq(pc_eventstream_scan(b.data, b.len, &complete, &count), 0);
  cr_expect_eq(complete, b.len);
  cr_expect_eq(count, 2);
  pc_buf_free(&b);
}

Test(eventstream, every_prefix_is_incomplete_never_an_error) {
  struct pc_eventstream_msg m;
  size_t used;
  for (size_t n = 0; n < GOLDEN_LEN; n++) {
    cr_assert_eq(pc_eventstream_decode(golden, n, &m, &used), 0, "prefix of %zu bytes", n);
    cr_assert_eq(used, 0, "prefix of %zu bytes", n);
  }
}

Test(eventstream, scan_reports_whole_messages_of_an_incremental_read) {
  pc_buf b;
  pc_buf_init(&b, 1 << 20);
  pc_buf_append(&b, golden, GOLDEN_LEN);
  pc_buf_append(&b, golden, GOLDEN_LEN);
  pc_buf_append(&b, golden, 100); /* half of a third */
  size_t complete, count;
  cr_expect_eq(pc_eventstream_scan(b.data, b.len, &complete, &count), 0);
  cr_expect_eq(complete, 2 * GOLDEN_LEN);
  cr_expect_eq(count, 2);
  b.data[GOLDEN_LEN + 50] ^= 1; /* the second message is damaged */
  cr_expect_eq(pc_eventstream_scan(b.data, b.len, &complete, &count), PC_ECORRUPT);
  cr_expect_eq(complete, GOLDEN_LEN);
  cr_expect_eq(count, 1);
  pc_buf_free(&b);
}

Test(eventstream, every_single_bit_flip_is_caught) {
  char m[GOLDEN_LEN];
  struct pc_eventstream_msg msg;
  size_t used;
  for (size_t i = 0; i < GOLDEN_LEN; i++)
    for (int bit = 0; bit < 8; bit++) {
      memcpy(m, golden, GOLDEN_LEN);
      m[i] ^= (char)(1 << bit);
      int rc = pc_eventstream_decode(m, GOLDEN_LEN, &msg, &used);
      /* an error, or (a length grown by the flip) waiting for more bytes */
      cr_assert(rc != 0 || used == 0, "flip of bit %d of byte %zu went unnoticed", bit, i);
    }
}

Test(eventstream, crc_mismatches_are_corrupt) {
  char m[GOLDEN_LEN];
  struct pc_eventstream_msg msg;
  size_t used;
  memcpy(m, golden, GOLDEN_LEN);
  m[11] ^= 0x80; /* prelude CRC */
  cr_expect_eq(pc_eventstream_decode(m, GOLDEN_LEN, &msg, &used), PC_ECORRUPT);
  cr_expect_eq(pc_eventstream_decode(m, 12, &msg, &used), PC_ECORRUPT, "the prelude is checked as soon as it is there");
  memcpy(m, golden, GOLDEN_LEN);
  m[GOLDEN_LEN - 1] ^= 1; /* message CRC */
  cr_expect_eq(pc_eventstream_decode(m, GOLDEN_LEN, &msg, &used), PC_ECORRUPT);
  memcpy(m, golden, GOLDEN_LEN);
  m[GOLDEN_LEN - 10] ^= 1; /* payload */
  cr_expect_eq(pc_eventstream_decode(m, GOLDEN_LEN, &msg, &used), PC_ECORRUPT);
  cr_expect_eq(used, 0);
}

/* A prelude (with a right CRC) that declares these lengths. */
static int decode_prelude(uint32_t total, uint32_t hlen, size_t avail) {
  static char m[64];
  put32(m, total);
  put32(m + 4, hlen);
  put32(m + 8, pc_eventstream_crc32(0, m, 8));
  struct pc_eventstream_msg msg;
  size_t used;
  return pc_eventstream_decode(m, avail, &msg, &used);
}

Test(eventstream, lying_lengths_are_rejected_before_any_read) {
  cr_expect_eq(decode_prelude(0, 0, 12), PC_ECORRUPT);
  cr_expect_eq(decode_prelude(15, 0, 15), PC_ECORRUPT);
  cr_expect_eq(decode_prelude(16, 1, 16), PC_ECORRUPT, "headers longer than the message");
  cr_expect_eq(decode_prelude(20, 5, 20), PC_ECORRUPT);
  cr_expect_eq(decode_prelude(0xffffffffu, 0, 12), PC_ETOOBIG);
  cr_expect_eq(decode_prelude(PC_EVENTSTREAM_MAX_LEN + 1, 0, 12), PC_ETOOBIG);
  cr_expect_eq(decode_prelude(1000, 0xfffffff0u, 12), PC_ETOOBIG, "no wrap-around in headers + 16");
  cr_expect_eq(decode_prelude(PC_EVENTSTREAM_MAX_LEN, PC_EVENTSTREAM_MAX_HEADERS_LEN + 1, 12), PC_ETOOBIG);
  /* plausible lengths: wait for the bytes, never read past those given */
  cr_expect_eq(decode_prelude(PC_EVENTSTREAM_MAX_LEN, 0, 12), 0);
}

/* A message whose header block is `hb` (with correct CRCs), decoded. */
static int decode_headers(const char *hb, size_t hlen) {
  char m[256];
  size_t total = 16 + hlen;
  cr_assert_leq(total, sizeof m);
  put32(m, (uint32_t)total);
  put32(m + 4, (uint32_t)hlen);
  memcpy(m + 12, hb, hlen);
  fix_crcs(m, total);
  struct pc_eventstream_msg msg;
  size_t used;
  int rc = pc_eventstream_decode(m, total, &msg, &used);
  cr_expect(rc ? used == 0 : used == total);
  return rc;
}

Test(eventstream, malformed_headers_are_corrupt) {
  cr_expect_eq(decode_headers("\x01x\x07\x00\x01y", 6), 0);
  cr_expect_eq(decode_headers("\x00\x07\x00\x00", 4), PC_ECORRUPT, "empty name");
  cr_expect_eq(decode_headers("\x05x", 2), PC_ECORRUPT, "name past the block");
  cr_expect_eq(decode_headers("\x01x", 2), PC_ECORRUPT, "no type");
  cr_expect_eq(decode_headers("\x01x\x0a", 3), PC_ECORRUPT, "type 10 does not exist");
  cr_expect_eq(decode_headers("\x01x\xff", 3), PC_ECORRUPT);
  cr_expect_eq(decode_headers("\x01x\x07\x00", 4), PC_ECORRUPT, "half a string length");
  cr_expect_eq(decode_headers("\x01x\x07\x00\x02y", 6), PC_ECORRUPT, "string past the block");
  cr_expect_eq(decode_headers("\x01x\x07\xff\xff", 5), PC_ECORRUPT);
  cr_expect_eq(decode_headers("\x01x\x06\x00\x05\x01", 6), PC_ECORRUPT, "bytes past the block");
  cr_expect_eq(decode_headers("\x01x\x04\x00\x00\x01", 6), PC_ECORRUPT, "int of 3 bytes");
  cr_expect_eq(decode_headers("\x01x\x05\x00\x00\x00\x00\x00\x00\x00", 10), PC_ECORRUPT, "long of 7 bytes");
  cr_expect_eq(decode_headers("\x01x\x08\x00", 4), PC_ECORRUPT, "timestamp of 1 byte");
  cr_expect_eq(decode_headers("\x01x\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 18),
               PC_ECORRUPT, "uuid of 15 bytes");
  cr_expect_eq(decode_headers("\x01x\x00\x01", 4), PC_ECORRUPT, "a stray byte after a whole header");
}

Test(eventstream, exceptions_expose_their_type) {
  const struct pc_eventstream_header h[] = {STR_H(":message-type", "exception"),
                                            STR_H(":exception-type", "throttlingException"),
                                            STR_H(":content-type", "application/json")};
  pc_buf b;
  pc_buf_init(&b, 4096);
  cr_assert_eq(pc_eventstream_encode(&b, h, 3, "{\"message\":\"slow down\"}", 23), 0);
  struct pc_eventstream_msg m;
  size_t used;
  cr_assert_eq(pc_eventstream_decode(b.data, b.len, &m, &used), 0);
  cr_expect_arr_eq(m.message_type.p, "exception", 9);
  cr_expect_arr_eq(m.exception_type.p, "throttlingException", 19);
  cr_expect_null(m.event_type.p);
  pc_buf_free(&b);
}

Test(eventstream, encoder_refuses_what_the_wire_cannot_carry) {
  pc_buf b;
  pc_buf_init(&b, 1 << 20);
  char name[256];
  memset(name, 'a', sizeof name);
  struct pc_eventstream_header h = {.name = name, .name_len = 256, .type = PC_EVENTSTREAM_TRUE};
  cr_expect_eq(pc_eventstream_encode(&b, &h, 1, NULL, 0), PC_EINVAL);
  h.name_len = 0;
  cr_expect_eq(pc_eventstream_encode(&b, &h, 1, NULL, 0), PC_EINVAL);
  h.name_len = 1;
  h.type = (enum pc_eventstream_type)10;
  cr_expect_eq(pc_eventstream_encode(&b, &h, 1, NULL, 0), PC_EINVAL);
  h.type = PC_EVENTSTREAM_STRING;
  h.bytes = name;
  h.bytes_len = 65536;
  cr_expect_eq(pc_eventstream_encode(&b, &h, 1, NULL, 0), PC_EINVAL);
  cr_expect_eq(pc_eventstream_encode(&b, NULL, 0, name, PC_EVENTSTREAM_MAX_LEN), PC_ETOOBIG);
  pc_buf small;
  pc_buf_init(&small, 20);
  cr_expect_eq(pc_eventstream_encode(&small, NULL, 0, "0123456789", 10), PC_ETOOBIG, "the buffer's own bound");
  cr_expect_eq(small.len, 0);
  cr_expect_eq(b.len, 0);
  pc_buf_free(&small);
  pc_buf_free(&b);
}

/* Deterministic random bytes (xorshift), so that a failure reproduces. */
static uint32_t rnd(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* Random header blocks and payloads inside well-formed framing with right
 * CRCs: the decoder reaches its header parser with garbage and must answer
 * 0 or PC_ECORRUPT, reading nothing outside the buffer (ASan checks it: the
 * message sits in its own exact-size allocation). */
Test(eventstream, random_headers_inside_valid_framing) {
  uint32_t seed = 0x9e3779b9u;
  int ok = 0, bad = 0;
  for (int iter = 0; iter < 20000; iter++) {
    size_t hlen = rnd(&seed) % 40, plen = rnd(&seed) % 8, total = 16 + hlen + plen;
    char *m = malloc(total);
    cr_assert_not_null(m);
    put32(m, (uint32_t)total);
    put32(m + 4, (uint32_t)hlen);
    for (size_t i = 12; i < total - 4; i++) m[i] = (char)(rnd(&seed) % 4 ? rnd(&seed) % 12 : rnd(&seed));
    fix_crcs(m, total);
    struct pc_eventstream_msg msg;
    size_t used, complete;
    int rc = pc_eventstream_decode(m, total, &msg, &used);
    cr_assert(rc == 0 || rc == PC_ECORRUPT);
    if (!rc) {
      cr_assert_eq(used, total);
      ok++;
    } else {
      bad++;
    }
    pc_eventstream_scan(m, total, &complete, NULL);
    cr_assert_leq(complete, total);
    free(m);
  }
  cr_expect_gt(ok, 0);
  cr_expect_gt(bad, 0);
}

/* Plain random bytes: nothing decodes, nothing is read out of bounds. */
Test(eventstream, random_bytes) {
  uint32_t seed = 12345;
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = rnd(&seed) % 64;
    char *m = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) m[i] = (char)rnd(&seed);
    size_t complete;
    int rc = pc_eventstream_scan(m, n, &complete, NULL);
    cr_assert(rc == 0 || rc == PC_ECORRUPT || rc == PC_ETOOBIG);
    cr_assert_leq(complete, n);
    free(m);
  }
}
