/* fuzz_eventstream.c — libFuzzer target for src/eventstream.c, the decoder
 * of Bedrock's binary event streams (bytes from upstream). Checks: scan and
 * decode agree on where whole messages end; every decoded message's headers
 * iterate to their end or a reported error; a decoded message encodes back
 * (from its headers and payload) to the same bytes. */
#include "fuzz.h"

#include "buf.h"
#include "error.h"
#include "eventstream.h"

#define MAX_HEADERS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  size_t complete = 0, count = 0;
  int src = pc_eventstream_scan(p, size, &complete, &count);
  FUZZ_CHECK(complete <= size, "scan: %zu of %zu", complete, size);
  size_t off = 0, msgs = 0;
  while (off < size) {
    struct pc_eventstream_msg m;
    size_t used = 0;
    int rc = pc_eventstream_decode(p + off, size - off, &m, &used);
    if (rc || !used) break;
    FUZZ_CHECK(used == m.total_len && used <= size - off, "decode used %zu of %zu", used, size - off);
    struct pc_eventstream_header hs[MAX_HEADERS];
    size_t nh = 0;
    const char *cur = m.headers, *end = m.headers + m.headers_len;
    int hr;
    while ((hr = pc_eventstream_next_header(&cur, end, nh < MAX_HEADERS ? &hs[nh] : &hs[MAX_HEADERS - 1])) == 1)
      if (nh < MAX_HEADERS) nh++;
    FUZZ_CHECK(hr == 0, "a decoded message's headers do not iterate: %d", hr); /* decode checked them */
    if (nh < MAX_HEADERS) {
      pc_buf again;
      pc_buf_init(&again, 1 << 26);
      int er = pc_eventstream_encode(&again, hs, nh, m.payload, m.payload_len);
      if (er == 0) /* duplicate names or types the encoder refuses aside, it is the same message */
        FUZZ_CHECK(again.len == used && !memcmp(again.data, p + off, used), "re-encoding changed a message");
      pc_buf_free(&again);
    }
    off += used;
    msgs++;
  }
  FUZZ_CHECK(off == complete, "decode reached %zu, scan says %zu whole bytes (scan rc %d)", off, complete, src);
  FUZZ_CHECK(msgs == count, "decode found %zu messages, scan %zu", msgs, count);
  return 0;
}
