/* recording.h — what export and import share of the JSON Lines recording
 * format (see recording.c). */
#ifndef PC_RECORDING_H
#define PC_RECORDING_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "entry.h"
#include "key.h"

#define PC_REC_TIME_LEN 80
#define PC_REC_FIELD_MAX ((size_t)64 * 1024) /* route, method, path, namespace, header values */
#define PC_REC_N_FIELDS (4 + PC_KEY_N_ALL)

/* The request part of the key material as NUL-terminated strings: route,
 * method, path (with its sorted query), namespace, the key headers. */
struct pc_rec_fields {
  char *f[PC_REC_N_FIELDS];
  const char *body; /* canonical body (JSON, or bodykey.h's form), borrowed */
  size_t body_len;
  uint32_t seq; /* the entry's index in its request's recorded sequence */
};

enum { PC_REC_F_ROUTE, PC_REC_F_METHOD, PC_REC_F_PATH, PC_REC_F_NS, PC_REC_F_HDR0 };

const char *pc_rec_field_name(int i);
void pc_rec_fields_free(struct pc_rec_fields *r);
/* Copy one field; NUL bytes or oversize values cannot be represented (PC_EINVAL). */
int pc_rec_field_set(struct pc_rec_fields *r, int i, const char *p, size_t n);
/* The key material with an empty credential: the key an imported entry has. */
int pc_rec_material_build(const struct pc_rec_fields *r, pc_buf *out);
/* Split a stored key material into fields (every field must be present but
 * the optional key headers). */
int pc_rec_fields_from_material(const struct pc_slice *m, struct pc_rec_fields *r);

/* A JSON string of n bytes; invalid UTF-8 sequences become U+FFFD. */
int pc_rec_put_string_lossy(pc_buf *out, const char *s, size_t n);
/* Standard alphabet, padded, as a quoted JSON string. */
int pc_rec_put_base64(pc_buf *out, const void *data, size_t n);
/* Strict: length a multiple of 4, padding only at the end. */
int pc_rec_base64_decode(const char *s, size_t n, pc_buf *out);
/* RFC 3339 in UTC with milliseconds: 2025-01-31T12:34:56.789Z */
void pc_rec_format_time(int64_t ms, char out[PC_REC_TIME_LEN]);
int pc_rec_parse_time(const char *s, int64_t *out);

#endif
