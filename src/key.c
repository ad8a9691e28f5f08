/* key.c — builds the key material (the canonical request) and hashes it with
 * XXH3-128; fingerprints credentials with a per-database secret. */
#include "key.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL /* inlined: the library build is scalar; inlined, XXH3 uses SSE2 */
#include <xxhash.h>

#include "error.h"
#include "family.h"
#include "policy.h"

const char *const pc_key_headers[PC_KEY_N_ALL] = {
    "anthropic-version", "anthropic-beta", "openai-beta", "openai-organization", "openai-project",
    /* Bedrock InvokeModel's options (family.c) */
    "x-amzn-bedrock-guardrailidentifier", "x-amzn-bedrock-guardrailversion", "x-amzn-bedrock-trace",
    "x-amzn-bedrock-performanceconfig-latency", "x-amzn-bedrock-service-tier", "accept"};

static int field(pc_buf *out, const char *name, const char *v, size_t n) {
  int rc = pc_buf_puts(out, name);
  if (!rc) rc = pc_buf_putc(out, '=');
  if (!rc) rc = pc_buf_put_u64(out, n);
  if (!rc) rc = pc_buf_putc(out, ':');
  if (!rc) rc = pc_buf_append(out, v, n);
  if (!rc) rc = pc_buf_putc(out, '\n');
  return rc;
}

/* One query parameter, with its position: parameters are sorted by name
 * only, and equal names keep their order (`a=1&a=2` is not `a=2&a=1`: for
 * most servers a repeated parameter is a list). */
struct param {
  const char *p;
  size_t n, name_len, index;
};

static int cmp_param(const void *a, const void *b) {
  const struct param *x = a, *y = b;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = memcmp(x->p, y->p, n);
  if (c) return c;
  if (x->name_len != y->name_len) return (x->name_len > y->name_len) - (x->name_len < y->name_len);
  return (x->index > y->index) - (x->index < y->index);
}

static int credential_param(int family, const char *p, size_t n) {
  return family ? pc_family_is_credential_param((enum pc_family_id)family, p, n) : pc_policy_credential_param(p, n);
}

int pc_key_sort_query(const char *query, int family, pc_buf *out, pc_buf *cred) {
  struct param params[256];
  size_t np = 0;
  int rc = 0;
  for (const char *p = query; p && *p && !rc;) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    size_t nl = pc_policy_param_name_len(p, n);
    if (n && credential_param(family, p, nl)) {
      /* all of them, in order: the credential scopes the key, never enters the path */
      if (cred) rc = cred->len ? pc_buf_putc(cred, '&') : 0;
      if (cred && !rc) rc = pc_buf_append(cred, p, n);
    } else if (n) {
      if (np == 256) return PC_ETOOBIG; /* refuse rather than key on a prefix of the query */
      params[np] = (struct param){p, n, nl, np};
      np++;
    }
    p += n + (amp ? 1 : 0);
  }
  if (np > 1) qsort(params, np, sizeof params[0], cmp_param);
  for (size_t i = 0; i < np && !rc; i++) {
    if (i) rc = pc_buf_putc(out, '&');
    if (!rc) rc = pc_buf_append(out, params[i].p, params[i].n);
  }
  return rc;
}

int pc_key_material(const struct pc_key_input *in, pc_buf *out) {
  pc_buf path; /* only a query needs rewriting: without one the path goes in as it is */
  pc_buf_init(&path, 64 * 1024);
  int rc = in->query ? pc_buf_append(&path, in->path, in->path_len) : 0;
  if (!rc && in->query) {
    size_t mark = path.len;
    rc = pc_buf_putc(&path, '?');
    if (!rc) rc = pc_key_sort_query(in->query, in->family, &path, NULL);
    if (!rc && path.len == mark + 1) path.len = mark; /* nothing left after removing credentials */
  }
  /* one reservation for everything but the headers' values (they are short) */
  if (!rc) rc = pc_buf_reserve(out, 256 + in->path_len + path.len + in->body_len + strlen(in->ns));
  if (!rc) rc = pc_buf_puts(out, "pc-key-v1\n");
  if (!rc) rc = field(out, "route", in->route, strlen(in->route));
  if (!rc) rc = field(out, "method", in->method, strlen(in->method));
  if (!rc && in->query)
    rc = field(out, "path", path.data ? path.data : "", path.len);
  else if (!rc)
    rc = field(out, "path", in->path, in->path_len);
  if (!rc) rc = field(out, "namespace", in->ns, strlen(in->ns));
  if (!rc) rc = field(out, "credential", in->cred_fp_hex, strlen(in->cred_fp_hex));
  for (int i = 0; i < PC_KEY_N_ALL && !rc; i++) {
    const char *v = in->headers[i] ? in->headers[i] : "";
    if (i < PC_KEY_N_HEADERS || *v) rc = field(out, pc_key_headers[i], v, strlen(v));
  }
  if (!rc && in->seq) {
    char num[16];
    int nn = snprintf(num, sizeof num, "%u", (unsigned)in->seq);
    rc = field(out, "seq", num, (size_t)nn);
  }
  if (!rc) rc = pc_buf_puts(out, "body=");
  if (!rc) rc = pc_buf_put_u64(out, in->body_len);
  if (!rc) rc = pc_buf_putc(out, ':');
  if (!rc) rc = pc_buf_append(out, in->body, in->body_len);
  pc_buf_free(&path);
  return rc;
}

void pc_key_hash(const void *material, size_t len, struct pc_key *out) {
  XXH128_hash_t h = XXH3_128bits(material, len);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  memcpy(out->b, c.digest, 16);
}

void pc_key_hex(const struct pc_key *k, char out[PC_KEY_HEX_LEN + 1]) {
  static const char hx[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[2 * i] = hx[k->b[i] >> 4];
    out[2 * i + 1] = hx[k->b[i] & 15];
  }
  out[32] = '\0';
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int pc_key_from_hex(const char *hex, struct pc_key *out) {
  if (strlen(hex) != 32) return PC_EINVAL;
  for (int i = 0; i < 16; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return PC_EINVAL;
    out->b[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

void pc_key_fingerprint(const uint8_t *secret, size_t secret_len, const char *cred, size_t len,
                        char out[PC_FP_LEN * 2 + 1]) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)cred, len, mac, &maclen);
  struct pc_key k;
  memcpy(k.b, mac, 16);
  pc_key_hex(&k, out);
}

int pc_key_material_field(const char *m, size_t len, const char *name, const char **p, size_t *n) {
  const char *end = m + len;
  size_t nl = strlen(name);
  const char *s = memchr(m, '\n', len);
  if (!s || (size_t)(s - m) != 9 || memcmp(m, "pc-key-v1", 9)) return PC_ECORRUPT;
  for (s++; s < end;) {
    const char *eq = memchr(s, '=', (size_t)(end - s));
    if (!eq) return PC_ECORRUPT;
    const char *colon = eq + 1;
    size_t flen = 0;
    while (colon < end && *colon >= '0' && *colon <= '9' && flen < ((size_t)1 << 40))
      flen = flen * 10 + (size_t)(*colon++ - '0');
    if (colon >= end || *colon != ':' || flen > (size_t)(end - colon - 1)) return PC_ECORRUPT;
    const char *v = colon + 1;
    if ((size_t)(eq - s) == nl && !memcmp(s, name, nl)) {
      *p = v;
      *n = (size_t)flen;
      return 0;
    }
    s = v + flen + 1; /* skip the trailing newline (absent after body) */
  }
  return PC_ENOTFOUND;
}

uint32_t pc_key_material_seq_of(const char *m, size_t len) {
  const char *p;
  size_t n;
  if (pc_key_material_field(m, len, "seq", &p, &n) || n == 0 || n > 9) return 0;
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return 0;
    v = v * 10 + (uint32_t)(p[i] - '0');
  }
  return v;
}

int pc_key_material_seq(const char *m, size_t len, uint32_t seq, pc_buf *out) {
  const char *body, *old;
  size_t bn, on;
  pc_buf_reset(out);
  if (pc_key_material_field(m, len, "body", &body, &bn)) return PC_ECORRUPT;
  const char *cut = body; /* the start of the "body=" field: "body=<len>:" before the bytes */
  while (cut > m && cut[-1] != '\n') cut--;
  const char *head_end = cut;
  if (!pc_key_material_field(m, len, "seq", &old, &on)) { /* an existing seq field sits just before body */
    head_end = old;
    while (head_end > m && head_end[-1] != '\n') head_end--;
  }
  int rc = pc_buf_append(out, m, (size_t)(head_end - m));
  if (!rc && seq) {
    char num[16];
    int nn = snprintf(num, sizeof num, "%u", (unsigned)seq);
    rc = field(out, "seq", num, (size_t)nn);
  }
  if (!rc) rc = pc_buf_append(out, cut, (size_t)(m + len - cut));
  return rc;
}
