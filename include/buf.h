/* buf.h — bounded growable byte buffer. Every buffer has a maximum size set at
 * creation; appends past it fail with PC_ETOOBIG and leave the buffer unchanged.
 * The data is always NUL-terminated (not counted in len) once anything was appended. */
#ifndef PC_BUF_H
#define PC_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct pc_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t max;
} pc_buf;

void pc_buf_init(pc_buf *b, size_t max);
void pc_buf_free(pc_buf *b);
/* Keep the allocation, drop the contents. */
void pc_buf_reset(pc_buf *b);
/* Make room for n more bytes (len + n <= max). */
int pc_buf_reserve(pc_buf *b, size_t n);

/* Appends are inline: on the hit path most of them fit the room already
 * there, and then cost a compare and a copy, not a call. */
static inline int pc_buf_append(pc_buf *b, const void *p, size_t n) {
  if (b->cap - b->len <= n || !b->data) { /* room for n bytes and the NUL? */
    int rc = pc_buf_reserve(b, n);
    if (rc) return rc;
  }
  if (n) __builtin_memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static inline int pc_buf_puts(pc_buf *b, const char *s) { return pc_buf_append(b, s, __builtin_strlen(s)); }

static inline int pc_buf_putc(pc_buf *b, char c) { return pc_buf_append(b, &c, 1); }
/* Decimal digits of v (no printf on hot paths). */
int pc_buf_put_u64(pc_buf *b, unsigned long long v);
/* Lower-case hexadecimal digits of v (chunk sizes). */
int pc_buf_put_hex(pc_buf *b, unsigned long long v);
int pc_buf_printf(pc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pc_buf_vprintf(pc_buf *b, const char *fmt, va_list ap);
/* Hand the storage to the caller (who frees it with free()); the buffer becomes empty. */
char *pc_buf_steal(pc_buf *b, size_t *len);

#endif
