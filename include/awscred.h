/* awscred.h — AWS credentials, for re-signing Bedrock requests (SigV4), and
 * the parse of a client's own SigV4 `Authorization` header, whose access key
 * id (never its signature, which changes on every request) scopes the cache
 * key. Credentials are resolved as the AWS CLI and SDKs do, in this order:
 *   1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
 *   2. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
 *      ~/.aws/credentials), section [PROFILE];
 *   3. the shared config file (AWS_CONFIG_FILE, else ~/.aws/config),
 *      section [profile PROFILE] ([default] for the default profile);
 * PROFILE being AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default". The
 * region: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's `region`
 * in the config file. Not supported: credential_process, SSO, web identity,
 * container and instance metadata (they need I/O at request time).
 * Secrets are never logged: struct pc_awscred has no printer, `source`
 * names where they came from, and pc_awscred_free() wipes them. */
#ifndef PC_AWSCRED_H
#define PC_AWSCRED_H

#include <stddef.h>

struct pc_awscred {
  char *access_key_id;     /* NULL until found */
  char *secret_access_key; /* secret */
  char *session_token;     /* secret; NULL for long-term keys */
  char *region;            /* NULL when no region is configured */
  const char *source;      /* static: "environment", "credentials file", "config file" */
};

/* Resolve credentials and region from `envp` (NULL-terminated "NAME=value"
 * strings, as environ; NULL means the process environment) and the files it
 * names. `c` must be zeroed (or freed) before. 0; PC_ENOTFOUND when no
 * access key pair is found (c->region may still be set); PC_EIO for a file
 * that exists but cannot be read; PC_ETOOBIG for a file over 1 MiB;
 * PC_ENOMEM. On error nothing secret is left in `c`. */
int pc_awscred_load(struct pc_awscred *c, char *const *envp);

/* The shared credentials file's text: fill the fields of `profile`'s section
 * that `c` does not have yet (a later source never overrides an earlier
 * one). 0, PC_ENOTFOUND (no such section), PC_ENOMEM. */
int pc_awscred_parse_credentials(const char *text, size_t n, const char *profile, struct pc_awscred *c);
/* The same for the config file, whose sections are [profile NAME] and
 * [default] (also [profile default]); reads `region` too. */
int pc_awscred_parse_config(const char *text, size_t n, const char *profile, struct pc_awscred *c);

/* Wipe the secrets and free every field; `c` is zeroed and reusable. */
void pc_awscred_free(struct pc_awscred *c);

/* A client's SigV4 Authorization header, split; every span points into the
 * parsed value (not NUL-terminated). */
struct pc_sigv4_auth {
  const char *algorithm; /* "AWS4-HMAC-SHA256" or "AWS4-ECDSA-P256-SHA256" (SigV4a) */
  size_t algorithm_len;
  const char *access_key_id;
  size_t access_key_id_len;
  const char *date; /* YYYYMMDD of the credential scope */
  size_t date_len;
  const char *region; /* empty for SigV4a, whose scope has no region */
  size_t region_len;
  const char *service; /* e.g. "bedrock" */
  size_t service_len;
  const char *signed_headers; /* "host;x-amz-date" */
  size_t signed_headers_len;
  const char *signature; /* hex */
  size_t signature_len;
};

/* Parse `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
 * SignedHeaders=a;b, Signature=HEX` (parameters in any order, spaces after
 * the commas optional). 0 or PC_EINVAL (another scheme, a missing or
 * repeated parameter, a malformed scope or signature). */
int pc_awscred_parse_authorization(const char *v, size_t n, struct pc_sigv4_auth *a);

/* ---- Signing (SigV4) ---------------------------------------------------- */

/* The headers that sign one request. */
struct pc_sigv4_out {
  char amz_date[17];       /* X-Amz-Date: YYYYMMDDTHHMMSSZ */
  char authorization[640]; /* Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=... */
};

/* Sign a request to `url` (scheme://host[:port]/path[?query], the path and
 * query as they will be sent) for `service` in `region` at `now` (Unix
 * seconds), as AWS does for every service but S3: the canonical URI is the
 * path encoded once more, the canonical query its parameters decoded,
 * encoded and sorted; the signed headers are host (the URL's authority, the
 * scheme's default port left out, as the HTTP clients send it), x-amz-date
 * and, with a session token, x-amz-security-token (which the caller sends
 * too, with c->session_token). Returns 0, PC_EINVAL (no credentials, a URL
 * without host) or PC_ENOMEM. */
int pc_awscred_sign(const struct pc_awscred *c, const char *region, const char *service, const char *method,
                    const char *url, const void *body, size_t n, long long now, struct pc_sigv4_out *out);

#endif
