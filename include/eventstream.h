/* eventstream.h — AWS's binary event-stream framing
 * (`application/vnd.amazon.eventstream`), as Bedrock's ConverseStream and
 * InvokeModelWithResponseStream answer. One message on the wire:
 *
 *   u32 BE total length | u32 BE headers length | u32 BE prelude CRC32
 *   headers (headers length bytes) | payload | u32 BE message CRC32
 *
 * where the prelude CRC covers the first 8 bytes and the message CRC every
 * byte before it (CRC-32/IEEE, as zlib's crc32()). A header is: u8 name
 * length, name, u8 value type, value (see enum pc_eventstream_type).
 * The bytes come from upstream: every length is checked before it is used,
 * and a message whose CRCs or lengths disagree is rejected whole. */
#ifndef PC_EVENTSTREAM_H
#define PC_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PC_EVENTSTREAM_PRELUDE_LEN 12u
#define PC_EVENTSTREAM_MIN_LEN 16u /* prelude + message CRC: no headers, no payload */
/* AWS's limits: a message is at most 16 MiB, its headers at most 128 KiB. */
#define PC_EVENTSTREAM_MAX_LEN (16u << 20)
#define PC_EVENTSTREAM_MAX_HEADERS_LEN (128u << 10)

/* Header value types, numbered as on the wire. */
enum pc_eventstream_type {
  PC_EVENTSTREAM_TRUE = 0,      /* no value bytes */
  PC_EVENTSTREAM_FALSE = 1,     /* no value bytes */
  PC_EVENTSTREAM_BYTE = 2,      /* i8 */
  PC_EVENTSTREAM_SHORT = 3,     /* i16 BE */
  PC_EVENTSTREAM_INT = 4,       /* i32 BE */
  PC_EVENTSTREAM_LONG = 5,      /* i64 BE */
  PC_EVENTSTREAM_BYTES = 6,     /* u16 BE length, bytes */
  PC_EVENTSTREAM_STRING = 7,    /* u16 BE length, UTF-8 bytes */
  PC_EVENTSTREAM_TIMESTAMP = 8, /* i64 BE milliseconds since the epoch */
  PC_EVENTSTREAM_UUID = 9       /* 16 bytes */
};

/* One header. Pointers borrow the message's bytes. */
struct pc_eventstream_header {
  const char *name;
  size_t name_len;
  enum pc_eventstream_type type;
  int64_t num;       /* TRUE (1), FALSE (0), BYTE, SHORT, INT, LONG, TIMESTAMP */
  const char *bytes; /* BYTES, STRING: the value; UUID: its 16 bytes */
  size_t bytes_len;
};

/* A borrowed span of bytes (not NUL-terminated); p is NULL when absent. */
struct pc_eventstream_str {
  const char *p;
  size_t n;
};

/* One decoded message; every pointer borrows the buffer it was decoded from. */
struct pc_eventstream_msg {
  size_t total_len; /* bytes the message takes on the wire */
  const char *headers;
  size_t headers_len; /* the raw header block, for pc_eventstream_next_header() */
  const char *payload;
  size_t payload_len;
  /* The string headers a reader of Bedrock needs (first occurrence wins). */
  struct pc_eventstream_str event_type;     /* :event-type, e.g. "messageStop", "chunk" */
  struct pc_eventstream_str message_type;   /* :message-type: "event", "exception" or "error" */
  struct pc_eventstream_str content_type;   /* :content-type, e.g. "application/json" */
  struct pc_eventstream_str exception_type; /* :exception-type, e.g. "throttlingException" */
  struct pc_eventstream_str error_code;     /* :error-code (message-type "error") */
  struct pc_eventstream_str error_message;  /* :error-message */
};

/* CRC-32/IEEE of n bytes, continuing from `crc` (0 to start). */
uint32_t pc_eventstream_crc32(uint32_t crc, const void *p, size_t n);

/* Decode the message at the start of p (n bytes available).
 * 0 with *used = its length: one whole valid message, in *m.
 * 0 with *used = 0: not enough bytes yet (the prelude, once 12 bytes are
 *   there, was already checked, so a bad length is reported at once).
 * PC_ETOOBIG: a length beyond AWS's limits. PC_ECORRUPT: a CRC mismatch,
 *   lengths that contradict each other, or a malformed header. */
int pc_eventstream_decode(const char *p, size_t n, struct pc_eventstream_msg *m, size_t *used);

/* Iterate over a header block: `*cur` starts at m->headers, `end` is
 * m->headers + m->headers_len. Returns 1 with *h filled and *cur moved past
 * it, 0 at the end, PC_ECORRUPT on a malformed header (a zero-length name,
 * an unknown type, a value running past the end). */
int pc_eventstream_next_header(const char **cur, const char *end, struct pc_eventstream_header *h);

/* How many leading bytes of p form whole valid messages (*complete), and
 * how many messages that is (*count, may be NULL). Returns 0 when the rest
 * is a (valid so far) partial message or nothing, or the error of the first
 * bad message (then *complete stops before it): an incremental reader passes
 * on the first *complete bytes and keeps the rest for the next read. */
int pc_eventstream_scan(const char *p, size_t n, size_t *complete, size_t *count);

/* Append one message with these headers and payload to out.
 * PC_EINVAL: an empty or over-long (> 255) name, an unknown type, a
 * BYTES/STRING value over 65535 bytes. PC_ETOOBIG: past AWS's limits, or
 * out's own maximum (out is then unchanged). */
int pc_eventstream_encode(pc_buf *out, const struct pc_eventstream_header *h, size_t nh, const void *payload,
                          size_t payload_len);

/* Convenience for the common case: a message whose headers are the string
 * headers :event-type, :content-type and :message-type ("event"); a NULL
 * event type or content type leaves that header out. */
int pc_eventstream_encode_event(pc_buf *out, const char *event_type, const char *content_type, const void *payload,
                                size_t payload_len);

#endif
