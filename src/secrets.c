/* secrets.c — finding secret-shaped strings (API keys, bearer tokens, AWS
 * and Google keys, PEM private keys) in what is about to be exported, so a
 * recording committed to a repository never carries one by accident. The
 * shapes are deliberately loose on length and strict on their start: a
 * false alarm costs an --allow-secrets, a miss costs a leaked key. */
#include "secrets.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int word_char(unsigned char c) { return isalnum(c) || c == '_' || c == '-'; }
static int upper_digit(unsigned char c) { return isupper(c) || isdigit(c); }
static int token68(unsigned char c) { return isalnum(c) || strchr("-._~+/=", c) != NULL; }

static size_t run_of(const char *s, size_t n, size_t i, int (*cls)(unsigned char)) {
  size_t k = i;
  while (k < n && s[k] && cls((unsigned char)s[k])) k++;
  return k - i;
}

static int starts(const char *s, size_t n, size_t i, const char *lit) {
  size_t l = strlen(lit);
  return n - i >= l && !memcmp(s + i, lit, l);
}

static const char *private_key_at(const char *s, size_t n, size_t i) {
  if (!starts(s, n, i, "-----BEGIN ")) return NULL;
  size_t lim = i + 11 + 64 < n ? i + 11 + 64 : n;
  for (size_t k = i + 11; k < lim && s[k] != '\n'; k++)
    if (starts(s, n, k, "PRIVATE KEY-----")) return "a private key (-----BEGIN ... PRIVATE KEY-----)";
  return NULL;
}

/* What secret-shaped thing starts at s[i], or NULL. Prefixes must start a
 * word, so "task-..." or "risk-..." is not an "sk-" key. */
static const char *secret_at(const char *s, size_t n, size_t i) {
  if (i > 0 && word_char((unsigned char)s[i - 1])) return NULL;
  if (starts(s, n, i, "sk-") && run_of(s, n, i + 3, word_char) >= 16) return "an API key (sk-...)";
  if (n - i > 7 && !strncasecmp(s + i, "bearer ", 7) && run_of(s, n, i + 7, token68) >= 16)
    return "a bearer token (Bearer ...)";
  if ((starts(s, n, i, "AKIA") || starts(s, n, i, "ASIA")) && run_of(s, n, i + 4, upper_digit) == 16)
    return "an AWS access key id (AKIA.../ASIA...)";
  if (starts(s, n, i, "AIza") && run_of(s, n, i + 4, word_char) >= 35) return "a Google API key (AIza...)";
  return private_key_at(s, n, i);
}

const char *pc_secrets_in(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c != 's' && c != 'B' && c != 'b' && c != 'A' && c != '-') continue;
    const char *kind = secret_at(s, n, i);
    if (kind) return kind;
  }
  return NULL;
}

/* Record a hit at `ptr` (control bytes shown as '?', so the message stays one line). */
int pc_secrets_hit_at(struct pc_secret_hit *h, const char *kind, const pc_buf *ptr) {
  h->kind = kind;
  snprintf(h->pointer, sizeof h->pointer, "%s", ptr->data ? ptr->data : "");
  for (char *p = h->pointer; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
  return 1;
}

/* Append "/" and an RFC 6901 reference token (~ → ~0, / → ~1). */
int pc_secrets_ptr_push(pc_buf *ptr, const char *tok, size_t n) {
  int rc = pc_buf_putc(ptr, '/');
  for (size_t i = 0; i < n && !rc; i++) {
    /* tok is a parsed member name of n bytes (the analyzer loses it in the JSON arena) */
    if (tok[i] == '~')
      rc = pc_buf_puts(ptr, "~0"); // NOLINT(clang-analyzer-core.UndefinedBinaryOperatorResult)
    else if (tok[i] == '/')
      rc = pc_buf_puts(ptr, "~1");
    else
      rc = pc_buf_putc(ptr, tok[i]);
  }
  return rc;
}

void pc_secrets_ptr_pop(pc_buf *ptr, size_t mark) {
  ptr->len = mark;
  if (ptr->data) ptr->data[mark] = '\0';
}

/* 1 when a string (or member name) under v holds a secret, else 0 or an error. */
int pc_secrets_scan_json(const struct pc_json *v, pc_buf *ptr, struct pc_secret_hit *h) {
  int rc = 0;
  if (v->type == PC_JSON_STRING) {
    const char *kind = pc_secrets_in(v->str, v->len);
    return kind ? pc_secrets_hit_at(h, kind, ptr) : 0;
  }
  if (v->type != PC_JSON_ARRAY && v->type != PC_JSON_OBJECT) return 0;
  for (size_t i = 0; i < v->len && !rc; i++) {
    size_t mark = ptr->len;
    char idx[24];
    if (v->type == PC_JSON_OBJECT) {
      rc = pc_secrets_ptr_push(ptr, v->keys[i], v->key_lens[i]);
      const char *kind = rc ? NULL : pc_secrets_in(v->keys[i], v->key_lens[i]);
      if (kind) rc = pc_secrets_hit_at(h, kind, ptr);
    } else {
      snprintf(idx, sizeof idx, "%zu", i);
      rc = pc_secrets_ptr_push(ptr, idx, strlen(idx));
    }
    if (!rc) rc = pc_secrets_scan_json(&v->kids[i], ptr, h);
    pc_secrets_ptr_pop(ptr, mark);
  }
  return rc;
}

/* Raw bytes at the pointer `at`. */
int pc_secrets_scan_bytes(const char *s, size_t n, const char *at, struct pc_secret_hit *h) {
  const char *kind = pc_secrets_in(s, n);
  if (!kind) return 0;
  h->kind = kind;
  snprintf(h->pointer, sizeof h->pointer, "%s", at);
  return 1;
}
