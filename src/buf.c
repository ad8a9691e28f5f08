/* buf.c — bounded growable buffer (see buf.h). Growth doubles, capped at max+1
 * so that the trailing NUL always fits. */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void pc_buf_init(pc_buf *b, size_t max) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

void pc_buf_free(pc_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void pc_buf_reset(pc_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

int pc_buf_reserve(pc_buf *b, size_t n) {
  if (n > b->max || b->len > b->max - n) return PC_ETOOBIG;
  size_t need = b->len + n + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > (SIZE_MAX / 2) ? need : cap * 2;
  if (cap > b->max + 1) cap = b->max + 1;
  if (cap < need) cap = need;
  char *p = realloc(b->data, cap);
  if (!p) return PC_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

/* One formatting pass when the text fits the room already there (the
 * common case), a second one only after growing. */
int pc_buf_vprintf(pc_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  size_t room = b->cap > b->len ? b->cap - b->len : 0;
  int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap2);
  va_end(ap2);
  if (n < 0) return PC_EINVAL;
  if ((size_t)n < room) {
    if (b->len + (size_t)n > b->max) {
      b->data[b->len] = '\0';
      return PC_ETOOBIG;
    }
    b->len += (size_t)n;
    return 0;
  }
  int rc = pc_buf_reserve(b, (size_t)n);
  if (rc) {
    if (b->data) b->data[b->len] = '\0';
    return rc;
  }
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int pc_buf_put_u64(pc_buf *b, unsigned long long v) {
  char tmp[24];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return pc_buf_append(b, tmp + i, sizeof tmp - i);
}

int pc_buf_put_hex(pc_buf *b, unsigned long long v) {
  static const char hx[] = "0123456789abcdef";
  char tmp[16];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = hx[v & 15];
    v >>= 4;
  } while (v);
  return pc_buf_append(b, tmp + i, sizeof tmp - i);
}

int pc_buf_printf(pc_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = pc_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

char *pc_buf_steal(pc_buf *b, size_t *len) {
  char *p = b->data;
  if (len) *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}
