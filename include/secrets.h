/* secrets.h — secret-shaped strings in exported data (see secrets.c). */
#ifndef PC_SECRETS_H
#define PC_SECRETS_H

#include <stddef.h>

#include "buf.h"
#include "json.h"

/* Where a secret was found: a JSON pointer into the exported line. */
struct pc_secret_hit {
  const char *kind; /* e.g. "an API key (sk-...)" */
  char pointer[512];
};

/* What secret-shaped thing the n bytes at s hold, or NULL. */
const char *pc_secrets_in(const char *s, size_t n);
/* 1 when a string or member name under v holds a secret (h says which and
 * where: `ptr` is v's pointer, extended while walking), 0, or an error. */
int pc_secrets_scan_json(const struct pc_json *v, pc_buf *ptr, struct pc_secret_hit *h);
/* The same for raw bytes at the pointer `at`. */
int pc_secrets_scan_bytes(const char *s, size_t n, const char *at, struct pc_secret_hit *h);
/* Record a hit of `kind` at the pointer `ptr` (control bytes shown as '?',
 * so a message naming it stays one line); returns 1. */
int pc_secrets_hit_at(struct pc_secret_hit *h, const char *kind, const pc_buf *ptr);
/* Append "/" and an RFC 6901 reference token (~ -> ~0, / -> ~1); pop back to a mark. */
int pc_secrets_ptr_push(pc_buf *ptr, const char *tok, size_t n);
void pc_secrets_ptr_pop(pc_buf *ptr, size_t mark);

#endif
