/* eventstream.c — decoder and encoder for AWS's binary event-stream framing
 * (see eventstream.h). These bytes come from upstream and are fuzzed: every
 * read is preceded by a check that it stays inside the message, and lengths
 * are compared in size_t after they were bounded by AWS's limits, so no sum
 * can wrap. The encoder exists for the tests and for fake upstreams. */
#include "eventstream.h"

#include <string.h>

#include "error.h"

/* CRC-32/IEEE (reflected, polynomial 0xEDB88320): a constant table, so that
 * there is nothing to initialize and no race between worker threads. */
static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu, 0xe963a535u, 0x9e6495a3u, 0x0edb8832u,
    0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u, 0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u, 0x136c9856u, 0x646ba8c0u, 0xfd62f97au,
    0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u, 0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu, 0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u,
    0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u, 0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u, 0x2f6f7c87u, 0x58684c11u, 0xc1611dabu,
    0xb6662d3du, 0x76dc4190u, 0x01db7106u, 0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du, 0x91646c97u, 0xe6635c01u, 0x6b6b51f4u,
    0x1c6c6162u, 0x856530d8u, 0xf262004eu, 0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u, 0x4db26158u, 0x3ab551ceu, 0xa3bc0074u,
    0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u, 0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau, 0xbe0b1010u, 0xc90c2086u, 0x5768b525u,
    0x206f85b3u, 0xb966d409u, 0xce61e49fu, 0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au, 0xead54739u, 0x9dd277afu, 0x04db2615u,
    0x73dc1683u, 0xe3630b12u, 0x94643b84u, 0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu, 0x196c3671u, 0x6e6b06e7u, 0xfed41b76u,
    0x89d32be0u, 0x10da7a5au, 0x67dd4accu, 0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu, 0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u,
    0x41047a60u, 0xdf60efc3u, 0xa867df55u, 0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u, 0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u,
    0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du, 0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u, 0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u,
    0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u, 0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u, 0x616bffd3u, 0x166ccf45u, 0xa00ae278u,
    0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u, 0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u, 0xbdbdf21cu, 0xcabac28au, 0x53b39330u,
    0x24b4a3a6u, 0xbad03605u, 0xcdd70693u, 0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t pc_eventstream_crc32(uint32_t crc, const void *p, size_t n) {
  const unsigned char *b = p;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

static uint32_t get_u32(const char *p) {
  const unsigned char *b = (const unsigned char *)p;
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static uint64_t get_be(const char *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v << 8 | b[i];
  return v;
}

/* Sign-extend an n-byte big-endian two's-complement integer. */
static int64_t get_signed(const char *p, size_t n) {
  uint64_t v = get_be(p, n);
  if (n < 8 && (v >> (n * 8 - 1)) & 1) v |= ~(uint64_t)0 << (n * 8);
  return (int64_t)v;
}

/* Fixed value sizes by type; -1: a u16 length prefix follows; -2: unknown type. */
static int value_size(unsigned t) {
  static const int sizes[] = {0, 0, 1, 2, 4, 8, -1, -1, 8, 16};
  return t < sizeof sizes / sizeof *sizes ? sizes[t] : -2;
}

int pc_eventstream_next_header(const char **cur, const char *end, struct pc_eventstream_header *h) {
  const char *p = *cur;
  if (p >= end) return 0;
  size_t left = (size_t)(end - p);
  size_t nl = (unsigned char)p[0];
  if (nl == 0 || left < 1 + nl + 1) return PC_ECORRUPT;
  h->name = p + 1;
  h->name_len = nl;
  unsigned t = (unsigned char)p[1 + nl];
  p += 2 + nl;
  left -= 2 + nl;
  int size = value_size(t);
  if (size == -2) return PC_ECORRUPT;
  h->type = (enum pc_eventstream_type)t;
  h->num = 0;
  h->bytes = NULL;
  h->bytes_len = 0;
  if (size == -1) {
    if (left < 2) return PC_ECORRUPT;
    size_t vl = (size_t)get_be(p, 2);
    if (left - 2 < vl) return PC_ECORRUPT;
    h->bytes = p + 2;
    h->bytes_len = vl;
    p += 2 + vl;
  } else {
    if (left < (size_t)size) return PC_ECORRUPT;
    if (t == PC_EVENTSTREAM_TRUE)
      h->num = 1;
    else if (t == PC_EVENTSTREAM_UUID)
      h->bytes = p, h->bytes_len = 16;
    else if (size)
      h->num = get_signed(p, (size_t)size);
    p += size;
  }
  *cur = p;
  return 1;
}

static void keep(struct pc_eventstream_str *s, const struct pc_eventstream_header *h) {
  if (!s->p && h->type == PC_EVENTSTREAM_STRING)
    *s = (struct pc_eventstream_str){h->bytes ? h->bytes : "", h->bytes_len};
}

static int name_is(const struct pc_eventstream_header *h, const char *name) {
  size_t l = strlen(name);
  return h->name_len == l && !memcmp(h->name, name, l);
}

/* Walk the whole header block (so a malformed one rejects the message) and
 * remember the well-known string headers. */
static int read_headers(struct pc_eventstream_msg *m) {
  const char *cur = m->headers, *end = m->headers + m->headers_len;
  struct pc_eventstream_header h;
  int rc;
  while ((rc = pc_eventstream_next_header(&cur, end, &h)) == 1) {
    if (name_is(&h, ":event-type"))
      keep(&m->event_type, &h);
    else if (name_is(&h, ":message-type"))
      keep(&m->message_type, &h);
    else if (name_is(&h, ":content-type"))
      keep(&m->content_type, &h);
    else if (name_is(&h, ":exception-type"))
      keep(&m->exception_type, &h);
    else if (name_is(&h, ":error-code"))
      keep(&m->error_code, &h);
    else if (name_is(&h, ":error-message"))
      keep(&m->error_message, &h);
  }
  return rc;
}

/* The prelude alone: lengths within limits and consistent, CRC right. */
static int check_prelude(const char *p, size_t *total, size_t *hlen) {
  uint32_t t = get_u32(p), h = get_u32(p + 4);
  if (pc_eventstream_crc32(0, p, 8) != get_u32(p + 8)) return PC_ECORRUPT;
  if (t > PC_EVENTSTREAM_MAX_LEN || h > PC_EVENTSTREAM_MAX_HEADERS_LEN) return PC_ETOOBIG;
  if (t < PC_EVENTSTREAM_MIN_LEN || h > t - PC_EVENTSTREAM_MIN_LEN) return PC_ECORRUPT;
  *total = t;
  *hlen = h;
  return 0;
}

int pc_eventstream_decode(const char *p, size_t n, struct pc_eventstream_msg *m, size_t *used) {
  size_t total, hlen;
  *used = 0;
  memset(m, 0, sizeof *m);
  if (n < PC_EVENTSTREAM_PRELUDE_LEN) return 0;
  int rc = check_prelude(p, &total, &hlen);
  if (rc) return rc;
  if (n < total) return 0;
  if (pc_eventstream_crc32(0, p, total - 4) != get_u32(p + total - 4)) return PC_ECORRUPT;
  m->total_len = total;
  m->headers = p + PC_EVENTSTREAM_PRELUDE_LEN;
  m->headers_len = hlen;
  m->payload = m->headers + hlen;
  m->payload_len = total - PC_EVENTSTREAM_MIN_LEN - hlen;
  rc = read_headers(m);
  if (rc) {
    memset(m, 0, sizeof *m);
    return rc;
  }
  *used = total;
  return 0;
}

int pc_eventstream_scan(const char *p, size_t n, size_t *complete, size_t *count) {
  size_t off = 0, k = 0, used;
  struct pc_eventstream_msg m;
  int rc;
  while ((rc = pc_eventstream_decode(p + off, n - off, &m, &used)) == 0 && used) {
    off += used;
    k++;
  }
  *complete = off;
  if (count) *count = k;
  return rc;
}

static void put_be(char *d, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++) d[i] = (char)(v >> (8 * (n - 1 - i)));
}

/* Wire size of one header, or 0 when it cannot be encoded. */
static size_t header_size(const struct pc_eventstream_header *h) {
  int size = value_size((unsigned)h->type);
  if (h->name_len == 0 || h->name_len > 255 || size == -2) return 0;
  if (size == -1 && h->bytes_len > 0xffff) return 0;
  return 2 + h->name_len + (size == -1 ? 2 + h->bytes_len : (size_t)size);
}

static char *put_header(char *d, const struct pc_eventstream_header *h) {
  int size = value_size((unsigned)h->type);
  *d++ = (char)h->name_len;
  memcpy(d, h->name, h->name_len);
  d += h->name_len;
  *d++ = (char)h->type;
  if (size == -1) {
    put_be(d, h->bytes_len, 2);
    if (h->bytes_len) memcpy(d + 2, h->bytes, h->bytes_len);
    return d + 2 + h->bytes_len;
  }
  if (h->type == PC_EVENTSTREAM_UUID)
    memcpy(d, h->bytes, 16);
  else if (size)
    put_be(d, (uint64_t)h->num, (size_t)size);
  return d + size;
}

int pc_eventstream_encode(pc_buf *out, const struct pc_eventstream_header *h, size_t nh, const void *payload,
                          size_t payload_len) {
  size_t hlen = 0;
  for (size_t i = 0; i < nh; i++) {
    size_t s = header_size(&h[i]);
    if (!s) return PC_EINVAL;
    hlen += s;
    if (hlen > PC_EVENTSTREAM_MAX_HEADERS_LEN) return PC_ETOOBIG;
  }
  if (payload_len > PC_EVENTSTREAM_MAX_LEN - PC_EVENTSTREAM_MIN_LEN - hlen) return PC_ETOOBIG;
  size_t total = PC_EVENTSTREAM_MIN_LEN + hlen + payload_len;
  int rc = pc_buf_reserve(out, total);
  if (rc) return rc;
  char *start = out->data + out->len, *d = start;
  put_be(d, total, 4);
  put_be(d + 4, hlen, 4);
  put_be(d + 8, pc_eventstream_crc32(0, d, 8), 4);
  d += PC_EVENTSTREAM_PRELUDE_LEN;
  for (size_t i = 0; i < nh; i++) d = put_header(d, &h[i]);
  if (payload_len) memcpy(d, payload, payload_len);
  d += payload_len;
  put_be(d, pc_eventstream_crc32(0, start, total - 4), 4);
  out->len += total;
  out->data[out->len] = '\0';
  return 0;
}

static struct pc_eventstream_header str_header(const char *name, const char *value) {
  return (struct pc_eventstream_header){.name = name,
                                        .name_len = strlen(name),
                                        .type = PC_EVENTSTREAM_STRING,
                                        .bytes = value,
                                        .bytes_len = strlen(value)};
}

int pc_eventstream_encode_event(pc_buf *out, const char *event_type, const char *content_type, const void *payload,
                                size_t payload_len) {
  struct pc_eventstream_header h[3];
  size_t nh = 0;
  if (event_type) h[nh++] = str_header(":event-type", event_type);
  if (content_type) h[nh++] = str_header(":content-type", content_type);
  h[nh++] = str_header(":message-type", "event");
  return pc_eventstream_encode(out, h, nh, payload, payload_len);
}
