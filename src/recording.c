/* recording.c — the pieces of the JSON Lines recording format (SPEC §9)
 * that export and import share, so that the two can never disagree: the
 * request fields of the key material and the shared-space key built from
 * them, RFC 3339 times, base64. */
#include "recording.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "json.h"
#include "utf8.h"

/* A JSON string of `n` bytes; invalid UTF-8 sequences become U+FFFD (used
 * only for response header values, which are not part of the key). */
int pc_rec_put_string_lossy(pc_buf *out, const char *s, size_t n) {
  if (pc_utf8_valid(s, n)) return pc_json_write_string(out, s, n);
  pc_buf fixed;
  int rc = 0;
  pc_buf_init(&fixed, n * 3 + 1);
  for (size_t i = 0; i < n && !rc;) {
    size_t k = pc_utf8_seq((const unsigned char *)s + i, n - i);
    rc = k ? pc_buf_append(&fixed, s + i, k) : pc_buf_puts(&fixed, "\xEF\xBF\xBD");
    i += k ? k : 1;
  }
  if (!rc) rc = pc_json_write_string(out, fixed.data ? fixed.data : "", fixed.len);
  pc_buf_free(&fixed);
  return rc;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard alphabet, padded, as a quoted JSON string. */
int pc_rec_put_base64(pc_buf *out, const void *data, size_t n) {
  const unsigned char *p = data;
  int rc = pc_buf_reserve(out, (n + 2) / 3 * 4 + 2);
  if (rc) return rc;
  (void)pc_buf_putc(out, '"');
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    char q[4] = {B64[v >> 18 & 63], B64[v >> 12 & 63], i + 1 < n ? B64[v >> 6 & 63] : '=',
                 i + 2 < n ? B64[v & 63] : '='};
    (void)pc_buf_append(out, q, 4);
  }
  return pc_buf_putc(out, '"');
}

static int b64_val(unsigned char c) {
  const char *q = c ? strchr(B64, c) : NULL;
  return q ? (int)(q - B64) : -1;
}

/* Strict decoding: length a multiple of 4, padding only at the end. */
int pc_rec_base64_decode(const char *s, size_t n, pc_buf *out) {
  if (n % 4) return PC_EINVAL;
  for (size_t i = 0; i < n; i += 4) {
    int v[4], pad = 0;
    for (int j = 0; j < 4; j++) {
      unsigned char c = (unsigned char)s[i + (size_t)j];
      v[j] = c == '=' && i + 4 == n && j >= 2 ? 0 : b64_val(c);
      if (c == '=' && v[j] == 0)
        pad++;
      else if (pad)
        return PC_EINVAL; /* data after padding */
      if (v[j] < 0) return PC_EINVAL;
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
    int rc = pc_buf_append(out, b, (size_t)(3 - pad));
    if (rc) return rc;
  }
  return 0;
}

/* RFC 3339 in UTC with milliseconds: 2025-01-31T12:34:56.789Z */
void pc_rec_format_time(int64_t ms, char out[PC_REC_TIME_LEN]) {
  int64_t sec = ms / 1000, rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    sec--;
  }
  time_t t = (time_t)sec;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) {
    snprintf(out, PC_REC_TIME_LEN, "1970-01-01T00:00:00.000Z");
    return;
  }
  snprintf(out, PC_REC_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

/* Exactly `n` digits at *s (advanced); -1 when they are not there. */
static int digits(const char **s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++, (*s)++) {
    if (!isdigit((unsigned char)**s)) return -1;
    v = v * 10 + (**s - '0');
  }
  return v;
}

static int expect(const char **s, char c) {
  if (**s != c && !(c == 'T' && (**s == 't' || **s == ' '))) return -1;
  (*s)++;
  return 0;
}

/* Fraction digits (any number, milliseconds kept) and the zone: Z or ±HH:MM. */
static int parse_zone(const char *s, int *ms, int *offset_min) {
  *ms = 0;
  if (*s == '.') {
    int n = 0;
    for (s++; isdigit((unsigned char)*s); s++, n++)
      if (n < 3) *ms = *ms * 10 + (*s - '0');
    if (n == 0) return -1;
    for (; n < 3; n++) *ms *= 10;
  }
  *offset_min = 0;
  if ((*s == 'Z' || *s == 'z') && s[1] == '\0') return 0;
  if (*s != '+' && *s != '-') return -1;
  int sign = *s++ == '-' ? -1 : 1;
  int hh = digits(&s, 2);
  if (hh < 0 || expect(&s, ':')) return -1;
  int mm = digits(&s, 2);
  if (mm < 0 || hh > 23 || mm > 59 || *s) return -1;
  *offset_min = sign * (hh * 60 + mm);
  return 0;
}

int pc_rec_parse_time(const char *s, int64_t *out) {
  struct tm tm;
  int ms, off;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = digits(&s, 4) - 1900;
  if (tm.tm_year < -1900 || expect(&s, '-')) return PC_EINVAL;
  tm.tm_mon = digits(&s, 2) - 1;
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || expect(&s, '-')) return PC_EINVAL;
  tm.tm_mday = digits(&s, 2);
  if (tm.tm_mday < 1 || tm.tm_mday > 31 || expect(&s, 'T')) return PC_EINVAL;
  tm.tm_hour = digits(&s, 2);
  if (tm.tm_hour < 0 || tm.tm_hour > 23 || expect(&s, ':')) return PC_EINVAL;
  tm.tm_min = digits(&s, 2);
  if (tm.tm_min < 0 || tm.tm_min > 59 || expect(&s, ':')) return PC_EINVAL;
  tm.tm_sec = digits(&s, 2);
  if (tm.tm_sec < 0 || tm.tm_sec > 60 || parse_zone(s, &ms, &off)) return PC_EINVAL;
  time_t t = timegm(&tm);
  *out = ((int64_t)t - (int64_t)off * 60) * 1000 + ms;
  return 0;
}

/* ====================================================================== */
/* The request fields and the shared-space key                             */
/* ====================================================================== */

const char *pc_rec_field_name(int i) {
  static const char *const names[4] = {"route", "method", "path", "namespace"};
  return i < PC_REC_F_HDR0 ? names[i] : pc_key_headers[i - PC_REC_F_HDR0];
}

void pc_rec_fields_free(struct pc_rec_fields *r) {
  for (int i = 0; i < PC_REC_N_FIELDS; i++) {
    free(r->f[i]);
    r->f[i] = NULL;
  }
}

/* Copy one field; NUL bytes or oversize values cannot be represented. */
int pc_rec_field_set(struct pc_rec_fields *r, int i, const char *p, size_t n) {
  if (n > PC_REC_FIELD_MAX || memchr(p, '\0', n)) return PC_EINVAL;
  r->f[i] = malloc(n + 1);
  if (!r->f[i]) return PC_ENOMEM;
  memcpy(r->f[i], p, n);
  r->f[i][n] = '\0';
  return 0;
}

/* The key material with an empty credential: the key an imported entry has.
 * Export and import both build it here, so they can never disagree. */
int pc_rec_material_build(const struct pc_rec_fields *r, pc_buf *out) {
  char *q = strchr(r->f[PC_REC_F_PATH], '?');
  struct pc_key_input in = {.route = r->f[PC_REC_F_ROUTE],
                            .method = r->f[PC_REC_F_METHOD],
                            .path = r->f[PC_REC_F_PATH],
                            .path_len = q ? (size_t)(q - r->f[PC_REC_F_PATH]) : strlen(r->f[PC_REC_F_PATH]),
                            .query = q ? q + 1 : NULL,
                            .ns = r->f[PC_REC_F_NS],
                            .cred_fp_hex = "",
                            .body = r->body,
                            .body_len = r->body_len,
                            .seq = r->seq};
  for (int i = 0; i < PC_KEY_N_ALL; i++) in.headers[i] = r->f[PC_REC_F_HDR0 + i];
  return pc_key_material(&in, out);
}

/* Split a stored key material into fields (every field must be present,
 * but the key headers that appear only when not empty). */
int pc_rec_fields_from_material(const struct pc_slice *m, struct pc_rec_fields *r) {
  const char *p;
  size_t n;
  int rc = 0;
  for (int i = 0; i < PC_REC_N_FIELDS && !rc; i++) {
    rc = pc_key_material_field(m->p, m->n, pc_rec_field_name(i), &p, &n);
    if (rc == PC_ENOTFOUND && i >= PC_REC_F_HDR0 + PC_KEY_N_HEADERS) rc = 0, p = "", n = 0;
    if (!rc) rc = pc_utf8_valid(p, n) ? pc_rec_field_set(r, i, p, n) : PC_EINVAL;
  }
  if (!rc) rc = pc_key_material_field(m->p, m->n, "body", &r->body, &r->body_len);
  if (!rc) r->seq = pc_key_material_seq_of(m->p, m->n);
  return rc == PC_EINVAL || rc == PC_ENOTFOUND ? PC_ECORRUPT : rc;
}
