/* config.h — flags, PROMPTCACHE_* environment and defaults → one immutable
 * struct pc_config, built once at start and read by every module. */
#ifndef PC_CONFIG_H
#define PC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define PC_VERSION "0.1.0"
#define PC_MAX_LISTEN 16

enum pc_mode { PC_MODE_READWRITE, PC_MODE_READONLY, PC_MODE_RECORD, PC_MODE_REPLAY, PC_MODE_OFF };
enum pc_scope { PC_SCOPE_CREDENTIAL, PC_SCOPE_SHARED };

struct pc_listen {
  char host[64]; /* numeric address, without brackets */
  int port;
};

struct pc_awscred;

/* What an upstream speaks (`,api=FAMILY[,region=REGION]` after its URL). */
struct pc_api {
  int family;             /* enum pc_family_id (family.h); 0: the default family */
  char *region;           /* Bedrock: the signing region; NULL: from the URL or the AWS environment */
  struct pc_awscred *aws; /* Bedrock: the credentials upstream requests are signed with */
};

struct pc_route {
  char *prefix; /* "/anthropic", no trailing slash */
  size_t prefix_len;
  char *url; /* upstream base URL, no trailing slash */
  struct pc_api api;
};

struct pc_strlist {
  char **v;
  size_t n;
};

struct pc_config {
  struct pc_listen listen[PC_MAX_LISTEN];
  size_t n_listen;
  char *upstream; /* default upstream base URL, no trailing slash */
  struct pc_api upstream_api;
  struct pc_route *routes;
  size_t n_routes;
  char *db;
  size_t max_size;
  enum pc_mode mode;
  int64_t ttl_ms;
  enum pc_scope key_scope;
  struct pc_strlist ignore_fields;
  struct pc_strlist cache_paths; /* --cache-path globs for every route; none: each route's family's list */
  size_t max_body;
  size_t max_buffered; /* 0: the default (server.c) */
  size_t memo_size;    /* bytes of raw requests all loops together may remember */
  int64_t upstream_timeout_ms;
  int64_t connect_timeout_ms;
  int64_t client_timeout_ms; /* a request must arrive whole within this */
  int64_t idle_timeout_ms;   /* an idle keep-alive connection is closed after this */
  char *admin_token;
  int log_json;
  int workers;
  char *upstream_ca;
  int replay_pacing_original;
  size_t max_followers;
  struct pc_strlist replay_files;
  int fail_on_miss;
  char *prices;
  int sync_batch;
  struct pc_strlist redis; /* --redis URLs (hold passwords: never print them) */
  char *redis_prefix;
  size_t redis_max_value;
  int64_t redis_timeout_ms;
};

/* Parse `serve` options from argv (argv[0] is the first option, not the
 * program) over the environment. On error writes a one-line message into
 * err and returns PC_EINVAL; the caller prints it and exits 2.
 * Returns 1 (and prints nothing) when --help was asked. */
int pc_config_parse(struct pc_config *cfg, int argc, char **argv, char *err, size_t errlen);
void pc_config_free(struct pc_config *cfg);

/* "1GiB", "32MiB", "64k", "512" → bytes. */
int pc_config_parse_size(const char *s, size_t *out);
/* "30s", "15m", "7d", "1h", "250ms", "0" → milliseconds. */
int pc_config_parse_duration(const char *s, int64_t *out);

void pc_config_usage(void *file);

#endif
