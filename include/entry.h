/* entry.h — the byte format of one stored cache entry (versioned).
 * An encoded entry is one contiguous byte string: a fixed little-endian header,
 * then length-prefixed sections. Decoding is zero-copy: the decoded struct
 * points into the encoded bytes, which must outlive it.
 *
 * Layout, version 1 (all integers little-endian):
 *   magic "PCE1" | u16 version | u16 flags | u16 status | u16 reserved
 *   i64 created_ms | i64 expires_ms (0 = never) | u32 n_chunks | u32 reserved
 *   sections, each u32 length + bytes, in this order:
 *     request   the canonical request (key material, see key.h)
 *     namespace, route, path, model   (UTF-8 strings, may be empty)
 *     headers   "Name: value\r\n" lines, response headers as stored
 *     body      response body bytes exactly as received
 *     usage     raw JSON of the usage block, or empty
 *     chunks    n_chunks × (u32 end_offset_in_body, u32 t_ms since first byte)
 *   u64 XXH3-64 checksum of every byte before it
 * Reserved fields are written as zero. A decoder rejects (PC_EVERSION) flags
 * and non-zero reserved fields it does not know, so a later writer's meaning
 * is never silently misread. Chunk ends never decrease and never pass the
 * body's length; encode refuses (PC_EINVAL) what decode would reject.
 */
#ifndef PC_ENTRY_H
#define PC_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PC_ENTRY_VERSION 1
#define PC_ENTRY_F_SSE 0x1 /* body is a text/event-stream recorded with chunk timings */

struct pc_slice {
  const char *p;
  size_t n;
};

struct pc_chunk {
  uint32_t end;  /* offset in body where this chunk ends */
  uint32_t t_ms; /* arrival time after the first chunk */
};

struct pc_entry {
  unsigned flags;
  int status;
  int64_t created_ms;
  int64_t expires_ms; /* 0: never expires */
  struct pc_slice request;
  struct pc_slice ns;
  struct pc_slice route;
  struct pc_slice path;
  struct pc_slice model;
  struct pc_slice headers;
  struct pc_slice body;
  struct pc_slice usage;
  const struct pc_chunk *chunks; /* encode: array of n_chunks; decode: see pc_entry_chunk() */
  uint32_t n_chunks;
};

/* Append the encoding of `e` to `out` (growing it once; on failure `out` is
 * unchanged). Returns 0, PC_EINVAL (unknown flags, status outside 0..65535,
 * chunk ends out of order or past the body, NULL with a non-zero length) or
 * PC_ETOOBIG (a section over 4 GiB, or past out's maximum). */
int pc_entry_encode(const struct pc_entry *e, pc_buf *out);
/* Decode `n` bytes at `p` into `e` (pointers into p). Checks magic, version,
 * bounds and, when verify_checksum is set, the checksum. On success every
 * slice lies inside p[0..n) and every chunk end inside the body, in order;
 * on failure `e` is untouched. Returns 0, PC_ECORRUPT or PC_EVERSION. */
int pc_entry_decode(const void *p, size_t n, int verify_checksum, struct pc_entry *e);
/* Chunk i (< n_chunks) of a decoded entry. A decoded entry's `chunks` points
 * at the raw little-endian array, which may be unaligned: never index it
 * directly, always go through this function. */
struct pc_chunk pc_entry_chunk(const struct pc_entry *e, uint32_t i);

#endif
