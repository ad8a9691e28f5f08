/* policy.c — pure decisions shared by the key, the memo and the log (see
 * policy.h). */
#include "policy.h"

#include <string.h>
#include <strings.h>

#include "utf8.h"

/* Credential parameter names, lower case. */
static const char *const cred_params[] = {"key",          "api_key",   "api-key",         "apikey",
                                          "x-api-key",    "access_token", "subscription-key"};

#define NAME_MAX_DECODED 32 /* longer than any name above: cannot match */

size_t pc_policy_param_name_len(const char *p, size_t n) {
  const char *eq = memchr(p, '=', n);
  return eq ? (size_t)(eq - p) : n;
}

/* Percent-decode and lower-case a parameter name into out (cap bytes);
 * returns the decoded length, or cap + 1 when it does not fit. An invalid
 * %-sequence stands for itself, as a server would read it. */
static size_t decode_name(const char *p, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '%' && i + 2 < n && pc_hexval((unsigned char)p[i + 1]) >= 0 &&
        pc_hexval((unsigned char)p[i + 2]) >= 0) {
      c = (unsigned char)(pc_hexval((unsigned char)p[i + 1]) << 4 | pc_hexval((unsigned char)p[i + 2]));
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    if (o == cap) return cap + 1;
    out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  return o;
}

int pc_policy_credential_param(const char *name, size_t n) {
  char d[NAME_MAX_DECODED];
  size_t dl = decode_name(name, n, d, sizeof d);
  if (dl > sizeof d) return 0;
  for (size_t i = 0; i < sizeof cred_params / sizeof *cred_params; i++)
    if (strlen(cred_params[i]) == dl && !memcmp(cred_params[i], d, dl)) return 1;
  return 0;
}
