/* awscred.c — AWS credentials from the environment and the shared files, and
 * the parse of a client's SigV4 Authorization header (see awscred.h).
 * Secrets only ever live in heap strings owned by struct pc_awscred, and every
 * buffer that held file text is wiped before it is freed: a core dump or a
 * reused allocation must not leak a secret key. */
#include "awscred.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <time.h>

#include "buf.h"
#include "error.h"

#define MAX_FILE (1u << 20) /* a shared config file is a few KiB */

extern char **environ;

static void wipe_free(char *s) {
  if (!s) return;
  explicit_bzero(s, strlen(s));
  free(s);
}

void pc_awscred_free(struct pc_awscred *c) {
  wipe_free(c->access_key_id);
  wipe_free(c->secret_access_key);
  wipe_free(c->session_token);
  free(c->region);
  memset(c, 0, sizeof *c);
}

static const char *env_get(char *const *envp, const char *name) {
  size_t l = strlen(name);
  for (; envp && *envp; envp++)
    if (!strncmp(*envp, name, l) && (*envp)[l] == '=') return *envp + l + 1;
  return NULL;
}

/* An environment value, or NULL when unset or empty (as the SDKs read them). */
static const char *env_nonempty(char *const *envp, const char *name) {
  const char *v = env_get(envp, name);
  return v && *v ? v : NULL;
}

/* Set *dst to a copy of s[0..n) unless it is already set. */
static int fill(char **dst, const char *s, size_t n) {
  if (*dst) return 0;
  *dst = strndup(s, n);
  return *dst ? 0 : PC_ENOMEM;
}

/* ---- INI files (the format botocore and the SDKs read) ---- */

struct span {
  const char *p;
  size_t n;
};

static struct span trim(const char *p, size_t n) {
  while (n && (*p == ' ' || *p == '\t')) p++, n--;
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r')) n--;
  return (struct span){p, n};
}

static int span_eq(struct span s, const char *lit) {
  size_t l = strlen(lit);
  return s.n == l && !memcmp(s.p, lit, l);
}

/* Does a section header's inside name `profile`? The credentials file says
 * [NAME]; the config file [profile NAME], and [default] for the default. */
static int section_is(struct span inside, const char *profile, int config) {
  if (!config) return span_eq(inside, profile);
  if (!strcmp(profile, "default") && span_eq(inside, "default")) return 1;
  if (inside.n < 8 || memcmp(inside.p, "profile", 7) || (inside.p[7] != ' ' && inside.p[7] != '\t')) return 0;
  return span_eq(trim(inside.p + 7, inside.n - 7), profile);
}

/* One `key = value` of the chosen section. */
static int take_pair(struct span key, struct span val, int config, struct pc_awscred *c) {
  if (key.n == 17 && !strncasecmp(key.p, "aws_access_key_id", 17)) return fill(&c->access_key_id, val.p, val.n);
  if (key.n == 21 && !strncasecmp(key.p, "aws_secret_access_key", 21)) return fill(&c->secret_access_key, val.p, val.n);
  if (key.n == 17 && !strncasecmp(key.p, "aws_session_token", 17)) return fill(&c->session_token, val.p, val.n);
  if (config && key.n == 6 && !strncasecmp(key.p, "region", 6)) return fill(&c->region, val.p, val.n);
  return 0;
}

/* Walk the file line by line; pairs of every matching section are taken
 * (a profile may be split over two sections). Indented lines under a key
 * without value are a nested block (`s3 =` then `  addressing_style = ...`)
 * and are skipped. */
static int parse_ini(const char *text, size_t n, const char *profile, int config, struct pc_awscred *c) {
  const char *p = text, *end = text + n;
  int in = 0, found = 0, nested = 0, rc = 0;
  while (!rc && p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    int indented = p < le && (*p == ' ' || *p == '\t');
    struct span l = trim(p, (size_t)(le - p));
    p = nl ? nl + 1 : end;
    if (!l.n || l.p[0] == '#' || l.p[0] == ';') continue;
    if (indented && nested) continue;
    nested = 0;
    if (l.p[0] == '[') {
      in = l.p[l.n - 1] == ']' && l.n >= 2 && section_is(trim(l.p + 1, l.n - 2), profile, config);
      found |= in;
      continue;
    }
    const char *eq = memchr(l.p, '=', l.n);
    if (!eq) continue;
    struct span key = trim(l.p, (size_t)(eq - l.p)), val = trim(eq + 1, (size_t)(l.p + l.n - eq - 1));
    if (!val.n) {
      nested = 1;
      continue;
    }
    if (in) rc = take_pair(key, val, config, c);
  }
  if (rc) return rc;
  return found ? 0 : PC_ENOTFOUND;
}

int pc_awscred_parse_credentials(const char *text, size_t n, const char *profile, struct pc_awscred *c) {
  return parse_ini(text, n, profile, 0, c);
}

int pc_awscred_parse_config(const char *text, size_t n, const char *profile, struct pc_awscred *c) {
  return parse_ini(text, n, profile, 1, c);
}

/* ---- loading ---- */

/* Read a whole small file into a heap buffer. PC_ENOTFOUND when it does
 * not exist (the shared files are optional). */
static int read_file(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return errno == ENOENT || errno == ENOTDIR ? PC_ENOTFOUND : PC_EIO;
  char *buf = malloc(MAX_FILE + 1);
  int rc = buf ? 0 : PC_ENOMEM;
  size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
  if (!rc && ferror(f)) rc = PC_EIO;
  if (!rc && n > MAX_FILE) rc = PC_ETOOBIG;
  fclose(f);
  if (rc) {
    if (buf) explicit_bzero(buf, n);
    free(buf);
    return rc;
  }
  *out = buf;
  *len = n;
  return 0;
}

/* The path of a shared file: the variable, else ~/.aws/NAME. */
static int file_path(char *const *envp, const char *var, const char *name, char *out, size_t cap) {
  const char *v = env_nonempty(envp, var), *home = env_nonempty(envp, "HOME");
  int n = v ? snprintf(out, cap, "%s", v) : home ? snprintf(out, cap, "%s/.aws/%s", home, name) : -1;
  return n < 0 || (size_t)n >= cap ? PC_ENOTFOUND : 0;
}

/* Parse one shared file for the profile; a missing file or section is no error. */
static int load_file(char *const *envp, const char *var, const char *name, const char *profile, int config,
                     struct pc_awscred *c, int *found) {
  char path[4096], *text = NULL;
  size_t n = 0;
  int rc = file_path(envp, var, name, path, sizeof path);
  if (rc) return 0;
  rc = read_file(path, &text, &n);
  if (rc == PC_ENOTFOUND) return 0;
  if (rc) return rc;
  int had_key = c->access_key_id != NULL;
  rc = parse_ini(text, n, profile, config, c);
  explicit_bzero(text, n);
  free(text);
  if (rc == PC_ENOTFOUND) return 0;
  if (!rc) *found = 1;
  if (!rc && !had_key && c->access_key_id) c->source = config ? "config file" : "credentials file";
  return rc;
}

/* An access key without its secret (or the reverse) is no credential:
 * drop the half so that a later source can supply a whole pair. */
static void drop_half_pair(struct pc_awscred *c) {
  if ((c->access_key_id != NULL) == (c->secret_access_key != NULL)) return;
  wipe_free(c->access_key_id);
  wipe_free(c->secret_access_key);
  wipe_free(c->session_token);
  c->access_key_id = c->secret_access_key = c->session_token = NULL;
  c->source = NULL;
}

static int from_env(char *const *envp, struct pc_awscred *c) {
  const char *id = env_nonempty(envp, "AWS_ACCESS_KEY_ID"), *secret = env_nonempty(envp, "AWS_SECRET_ACCESS_KEY");
  const char *token = env_nonempty(envp, "AWS_SESSION_TOKEN");
  const char *region = env_nonempty(envp, "AWS_REGION");
  if (!region) region = env_nonempty(envp, "AWS_DEFAULT_REGION");
  int rc = region ? fill(&c->region, region, strlen(region)) : 0;
  if (rc || !id || !secret) return rc;
  rc = fill(&c->access_key_id, id, strlen(id));
  if (!rc) rc = fill(&c->secret_access_key, secret, strlen(secret));
  if (!rc && token) rc = fill(&c->session_token, token, strlen(token));
  c->source = "environment";
  return rc;
}

int pc_awscred_load(struct pc_awscred *c, char *const *envp) {
  if (!envp) envp = environ;
  const char *profile = env_nonempty(envp, "AWS_PROFILE");
  if (!profile) profile = env_nonempty(envp, "AWS_DEFAULT_PROFILE");
  if (!profile) profile = "default";
  int found = 0;
  int rc = from_env(envp, c);
  if (!rc && !c->access_key_id)
    rc = load_file(envp, "AWS_SHARED_CREDENTIALS_FILE", "credentials", profile, 0, c, &found);
  if (!rc) drop_half_pair(c);
  /* The config file may hold keys too, and it is where the region is. */
  if (!rc) rc = load_file(envp, "AWS_CONFIG_FILE", "config", profile, 1, c, &found);
  if (!rc) drop_half_pair(c);
  if (!rc && !c->access_key_id) rc = PC_ENOTFOUND;
  if (rc && rc != PC_ENOTFOUND) pc_awscred_free(c);
  return rc;
}

/* ---- SigV4 Authorization ---- */

static int all_of(const char *p, size_t n, const char *set) {
  for (size_t i = 0; i < n; i++)
    if (!p[i] || !strchr(set, p[i])) return 0;
  return n > 0;
}

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define LOWER_DASH "abcdefghijklmnopqrstuvwxyz0123456789-"
#define HEX "0123456789abcdefABCDEF"

/* Split `AKID/DATE/REGION/SERVICE/aws4_request` (SigV4a: no REGION). */
static int parse_scope(const char *p, size_t n, int v4a, struct pc_sigv4_auth *a) {
  struct span part[5] = {{0}};
  size_t k = 0, want = v4a ? 4 : 5;
  const char *end = p + n;
  while (k < want) {
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *e = k + 1 == want ? end : slash;
    if (!e) return PC_EINVAL;
    part[k++] = (struct span){p, (size_t)(e - p)};
    p = e == end ? end : e + 1;
  }
  struct span id = part[0], date = part[1], region = v4a ? (struct span){part[1].p, 0} : part[2];
  struct span service = part[want - 2], term = part[want - 1];
  if (!all_of(id.p, id.n, ALNUM) || id.n > 128) return PC_EINVAL;
  if (date.n != 8 || !all_of(date.p, date.n, "0123456789")) return PC_EINVAL;
  if (!v4a && (!all_of(region.p, region.n, LOWER_DASH) || region.n > 64)) return PC_EINVAL;
  if (!all_of(service.p, service.n, LOWER_DASH) || !span_eq(term, "aws4_request")) return PC_EINVAL;
  a->access_key_id = id.p, a->access_key_id_len = id.n;
  a->date = date.p, a->date_len = date.n;
  a->region = region.p, a->region_len = region.n;
  a->service = service.p, a->service_len = service.n;
  return 0;
}

/* One `Name=value` parameter; each may appear once. */
static int take_param(struct span name, struct span val, int v4a, struct pc_sigv4_auth *a, unsigned *seen) {
  if (span_eq(name, "Credential") && !(*seen & 1)) {
    *seen |= 1;
    return parse_scope(val.p, val.n, v4a, a);
  }
  if (span_eq(name, "SignedHeaders") && !(*seen & 2)) {
    *seen |= 2;
    a->signed_headers = val.p, a->signed_headers_len = val.n;
    return all_of(val.p, val.n, LOWER_DASH ";_.") && val.p[0] != ';' && val.p[val.n - 1] != ';' ? 0 : PC_EINVAL;
  }
  if (span_eq(name, "Signature") && !(*seen & 4)) {
    *seen |= 4;
    a->signature = val.p, a->signature_len = val.n;
    return all_of(val.p, val.n, HEX) && (v4a || val.n == 64) ? 0 : PC_EINVAL;
  }
  return PC_EINVAL;
}

int pc_awscred_parse_authorization(const char *v, size_t n, struct pc_sigv4_auth *a) {
  static const char *const algs[] = {"AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"};
  struct span s = trim(v, n);
  memset(a, 0, sizeof *a);
  int v4a = -1;
  for (int i = 0; i < 2 && v4a < 0; i++) {
    size_t l = strlen(algs[i]);
    if (s.n > l && !memcmp(s.p, algs[i], l) && s.p[l] == ' ') v4a = i;
  }
  if (v4a < 0) return PC_EINVAL;
  a->algorithm = s.p, a->algorithm_len = strlen(algs[v4a]);
  const char *p = s.p + a->algorithm_len, *end = s.p + s.n;
  unsigned seen = 0;
  int rc = 0;
  while (!rc && p < end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    struct span item = trim(p, (size_t)((comma ? comma : end) - p));
    p = comma ? comma + 1 : end;
    const char *eq = item.n ? memchr(item.p, '=', item.n) : NULL;
    struct span name = {item.p, eq ? (size_t)(eq - item.p) : 0};
    struct span val = {eq ? eq + 1 : item.p, eq ? (size_t)(item.p + item.n - eq - 1) : 0};
    rc = val.n ? take_param(name, val, v4a, a, &seen) : PC_EINVAL;
  }
  if (!rc && seen != 7) rc = PC_EINVAL;
  if (rc) memset(a, 0, sizeof *a);
  return rc;
}

/* ---- Signing ---------------------------------------------------------- */

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

/* AWS's URI encoding: every byte but the unreserved ones as %XX (upper case);
 * '/' kept when keep_slash. */
static int uri_encode(pc_buf *b, const char *p, size_t n, int keep_slash) {
  static const char hx[] = "0123456789ABCDEF";
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    unsigned char c = (unsigned char)p[i];
    if (unreserved(c) || (keep_slash && c == '/'))
      rc = pc_buf_putc(b, (char)c);
    else {
      char e[3] = {'%', hx[c >> 4], hx[c & 15]};
      rc = pc_buf_append(b, e, 3);
    }
  }
  return rc;
}

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decode (a stray '%' stays) into b. */
static int uri_decode(pc_buf *b, const char *p, size_t n) {
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    if (p[i] == '%' && i + 2 < n && hexv(p[i + 1]) >= 0 && hexv(p[i + 2]) >= 0) {
      rc = pc_buf_putc(b, (char)(hexv(p[i + 1]) << 4 | hexv(p[i + 2])));
      i += 2;
    } else {
      rc = pc_buf_putc(b, p[i]);
    }
  }
  return rc;
}

struct qparam {
  char *enc; /* "name=value", both encoded */
  size_t name_len;
};

static int cmp_qparam(const void *a, const void *b) {
  const struct qparam *x = a, *y = b;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = memcmp(x->enc, y->enc, n);
  if (c) return c;
  if (x->name_len != y->name_len) return x->name_len < y->name_len ? -1 : 1;
  return strcmp(x->enc + x->name_len, y->enc + y->name_len);
}

/* The canonical query string: each parameter decoded, encoded the AWS way,
 * sorted by name then value. */
static int canonical_query(pc_buf *out, const char *q, size_t n) {
  struct qparam *ps = NULL;
  size_t np = 0;
  int rc = 0;
  pc_buf tmp;
  pc_buf_init(&tmp, 1 << 20);
  for (const char *p = q, *end = q + n; p < end && !rc;) {
    const char *amp = memchr(p, '&', (size_t)(end - p)), *pe = amp ? amp : end;
    if (pe > p) {
      const char *eq = memchr(p, '=', (size_t)(pe - p));
      pc_buf enc;
      pc_buf_init(&enc, 1 << 20);
      pc_buf_reset(&tmp);
      rc = uri_decode(&tmp, p, (size_t)((eq ? eq : pe) - p));
      if (!rc) rc = uri_encode(&enc, tmp.data ? tmp.data : "", tmp.len, 0);
      size_t nl = enc.len;
      if (!rc) rc = pc_buf_putc(&enc, '=');
      pc_buf_reset(&tmp);
      if (!rc && eq) rc = uri_decode(&tmp, eq + 1, (size_t)(pe - eq - 1));
      if (!rc) rc = uri_encode(&enc, tmp.data ? tmp.data : "", tmp.len, 0);
      struct qparam *np2 = rc ? NULL : realloc(ps, (np + 1) * sizeof *ps);
      if (!np2) {
        pc_buf_free(&enc);
        rc = rc ? rc : PC_ENOMEM;
      } else {
        ps = np2;
        ps[np++] = (struct qparam){pc_buf_steal(&enc, NULL), nl};
        if (!ps[np - 1].enc) rc = PC_ENOMEM;
      }
    }
    p = amp ? amp + 1 : end;
  }
  if (!rc && np > 1) qsort(ps, np, sizeof *ps, cmp_qparam);
  for (size_t i = 0; i < np && !rc; i++) {
    if (i) rc = pc_buf_putc(out, '&');
    if (!rc) rc = pc_buf_puts(out, ps[i].enc);
  }
  for (size_t i = 0; i < np; i++) free(ps[i].enc);
  free(ps);
  pc_buf_free(&tmp);
  return rc;
}

static void hex_of(const unsigned char *d, size_t n, char *out) {
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hx[d[i] >> 4];
    out[2 * i + 1] = hx[d[i] & 15];
  }
  out[2 * n] = '\0';
}

static void hmac(const void *key, size_t kn, const void *msg, size_t mn, unsigned char out[32]) {
  unsigned int len = 32;
  HMAC(EVP_sha256(), key, (int)kn, msg, mn, out, &len);
}

int pc_awscred_sign(const struct pc_awscred *c, const char *region, const char *service, const char *method,
                    const char *url, const void *body, size_t n, long long now, struct pc_sigv4_out *out) {
  if (!c || !c->access_key_id || !c->secret_access_key || !region || !service || !method || !url) return PC_EINVAL;
  const char *scheme_end = strstr(url, "://");
  if (!scheme_end) return PC_EINVAL;
  int https = scheme_end - url == 5 && !strncasecmp(url, "https", 5);
  const char *auth = scheme_end + 3, *path = auth + strcspn(auth, "/?#");
  size_t alen = (size_t)(path - auth);
  if (!alen) return PC_EINVAL;
  /* Host as sent: the default port left out */
  size_t hlen = alen;
  const char *colon = NULL;
  for (const char *p = auth + alen; p > auth; p--)
    if (p[-1] == ':') {
      colon = p - 1;
      break;
    } else if (p[-1] == ']') {
      break;
    }
  size_t portlen = colon ? (size_t)(auth + alen - colon) : 0;
  if (colon &&
      ((https && portlen == 4 && !memcmp(colon, ":443", 4)) || (!https && portlen == 3 && !memcmp(colon, ":80", 3))))
    hlen = (size_t)(colon - auth);
  const char *q = strchr(path, '?');
  size_t plen = q ? (size_t)(q - path) : strcspn(path, "#");
  const char *qend = q ? q + 1 + strcspn(q + 1, "#") : NULL;

  time_t t = (time_t)now;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out->amz_date, sizeof out->amz_date, "%Y%m%dT%H%M%SZ", &tm);
  char date[9];
  memcpy(date, out->amz_date, 8);
  date[8] = '\0';

  unsigned char digest[32];
  char payload_hex[65], creq_hex[65], sig_hex[65];
  SHA256(body ? body : (const void *)"", n, digest);
  hex_of(digest, 32, payload_hex);

  const char *signed_headers = c->session_token ? "host;x-amz-date;x-amz-security-token" : "host;x-amz-date";
  pc_buf cr, sts;
  pc_buf_init(&cr, (size_t)64 << 20);
  pc_buf_init(&sts, 4096);
  int rc = pc_buf_puts(&cr, method);
  if (!rc) rc = pc_buf_putc(&cr, '\n');
  if (!rc) rc = plen ? uri_encode(&cr, path, plen, 1) : pc_buf_putc(&cr, '/'); /* the path encoded once more */
  if (!rc) rc = pc_buf_putc(&cr, '\n');
  if (!rc && q) rc = canonical_query(&cr, q + 1, (size_t)(qend - q - 1));
  if (!rc) rc = pc_buf_printf(&cr, "\nhost:%.*s\nx-amz-date:%s\n", (int)hlen, auth, out->amz_date);
  if (!rc && c->session_token) rc = pc_buf_printf(&cr, "x-amz-security-token:%s\n", c->session_token);
  if (!rc) rc = pc_buf_printf(&cr, "\n%s\n%s", signed_headers, payload_hex);
  if (!rc) {
    SHA256((const unsigned char *)cr.data, cr.len, digest);
    hex_of(digest, 32, creq_hex);
    rc = pc_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", out->amz_date, date, region, service,
                       creq_hex);
  }
  if (!rc) {
    pc_buf k;
    pc_buf_init(&k, 4096);
    unsigned char kd[32], kr[32], ks[32], kn[32], sig[32];
    rc = pc_buf_printf(&k, "AWS4%s", c->secret_access_key);
    if (!rc) {
      hmac(k.data, k.len, date, 8, kd);
      hmac(kd, 32, region, strlen(region), kr);
      hmac(kr, 32, service, strlen(service), ks);
      hmac(ks, 32, "aws4_request", 12, kn);
      hmac(kn, 32, sts.data, sts.len, sig);
      hex_of(sig, 32, sig_hex);
    }
    if (k.data) explicit_bzero(k.data, k.len);
    pc_buf_free(&k);
  }
  if (!rc) {
    int w = snprintf(out->authorization, sizeof out->authorization,
                     "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
                     c->access_key_id, date, region, service, signed_headers, sig_hex);
    if (w < 0 || (size_t)w >= sizeof out->authorization) rc = PC_EINVAL;
  }
  pc_buf_free(&cr);
  pc_buf_free(&sts);
  return rc;
}
