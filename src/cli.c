/* cli.c — the offline subcommands (see cli.h): stats, export, import, purge,
 * inspect, verify, run against a database directory, also while a server
 * runs on it (LMDB: many readers, one writer, across processes).
 * What must stay true here:
 *  - Read-only commands never create a database: a missing --db PATH is a
 *    usage error (exit 2), checked before opening.
 *  - No command holds a write txn for long: walks are read txns, writes go
 *    through pc_cache_put / pc_purge one short txn at a time.
 *  - Nothing prints a credential fingerprint; inspect only says whether the
 *    entry is credential-scoped.
 *  - Every error is one line on stderr, prefixed "promptcache <command>:". */
#include "cli.h"
#include "clock.h"
#include "utf8.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bodykey.h"
#include "buf.h"
#include "cache.h"
#include "cli_fleet.h"
#include "config.h"
#include "entry.h"
#include "error.h"
#include "export.h"
#include "import.h"
#include "json.h"
#include "key.h"
#include "purge.h"
#include "redis.h"

#define DEFAULT_DB "./promptcache.db"
#define DEFAULT_MAX_SIZE ((size_t)1 << 30)
#define ENTRY_MAX ((size_t)1 << 32)   /* largest entry inspect reads */
#define TEXT_MAX ((size_t)1 << 30)    /* pretty-printed bodies */
#define REPORT_MAX ((size_t)16 << 20) /* verify's list of bad entries */
#define MAX_GROUPS 4096               /* distinct routes/paths/models in stats */
#define NAME_MAX_LEN 256
#define TIME_LEN 80

/* ====================================================================== */
/* Options                                                                 */
/* ====================================================================== */

enum opt_id {
  O_DB,
  O_JSON,
  O_OUT,
  O_NS,
  O_ALLOW_SECRETS,
  O_ALL,
  O_KEY,
  O_OLDER_THAN,
  O_REDIS,
  O_REDIS_PREFIX,
  O_HELP,
  N_OPTS
};
#define MAX_REDIS_URLS 64

struct opt_def {
  const char *name;
  int takes_value;
};

static const struct opt_def OPTS[N_OPTS] = {
    [O_DB] = {"--db", 1},
    [O_JSON] = {"--json", 0},
    [O_OUT] = {"--out", 1},
    [O_NS] = {"--namespace", 1},
    [O_ALLOW_SECRETS] = {"--allow-secrets", 0},
    [O_ALL] = {"--all", 0},
    [O_KEY] = {"--key", 1},
    [O_OLDER_THAN] = {"--older-than", 1},
    [O_REDIS] = {"--redis", 1},
    [O_REDIS_PREFIX] = {"--redis-prefix", 1},
    [O_HELP] = {"--help", 0},
};

#define BIT(o) (1u << (o))

struct cmd_def {
  const char *name;
  unsigned allowed; /* BIT(opt) */
  int min_pos, max_pos;
  const char *usage;
};

static const struct cmd_def CMD_STATS = {
    "stats", BIT(O_DB) | BIT(O_JSON) | BIT(O_REDIS) | BIT(O_REDIS_PREFIX) | BIT(O_HELP), 0, 0,
    "usage: promptcache stats [--db PATH] [--json]\n"
    "       promptcache stats --redis URL [--redis URL...] [--redis-prefix STR] [--json]\n"
    "  Entries, bytes, entries and body bytes by route, path and model, oldest and\n"
    "  newest entry, expired entries. --json prints one JSON object.\n"
    "  With --redis: the fleet's totals (requests, hits by tier, coalesced, misses,\n"
    "  hit ratio, tokens and money saved), per node and overall.\n"};
static const struct cmd_def CMD_EXPORT = {
    "export", BIT(O_DB) | BIT(O_OUT) | BIT(O_NS) | BIT(O_ALLOW_SECRETS) | BIT(O_HELP), 0, 0,
    "usage: promptcache export [--db PATH] [--out FILE] [--namespace NS] [--allow-secrets]\n"
    "  Write every entry (or one namespace) as JSON Lines, in key order, to FILE or\n"
    "  stdout. Refuses (exit 3) when an entry holds something shaped like a secret\n"
    "  (sk-..., Bearer ..., AKIA..., AIza..., a private key) unless --allow-secrets.\n"};
static const struct cmd_def CMD_IMPORT = {
    "import", BIT(O_DB) | BIT(O_HELP), 1, 1 << 20,
    "usage: promptcache import [--db PATH] FILE...\n"
    "  Load JSON Lines recordings (made by export) into the database, creating it\n"
    "  if needed. Each file is validated whole before anything from it is stored.\n"};
static const struct cmd_def CMD_PURGE = {
    "purge",
    BIT(O_DB) | BIT(O_ALL) | BIT(O_KEY) | BIT(O_NS) | BIT(O_OLDER_THAN) | BIT(O_REDIS) | BIT(O_REDIS_PREFIX) |
        BIT(O_HELP),
    0, 0,
    "usage: promptcache purge [--db PATH] [--redis URL...] [--redis-prefix STR]\n"
    "                         (--all | --key KEY | --namespace NS | --older-than DURATION)\n"
    "  Delete entries; exactly one selector. DURATION like 30s, 15m, 12h, 7d.\n"
    "  With --redis: delete them fleet-wide (in Redis, and every running node drops\n"
    "  its local copies); the database is then purged only when --db is given.\n"};
static const struct cmd_def CMD_INSPECT = {
    "inspect", BIT(O_DB) | BIT(O_HELP), 1, 1,
    "usage: promptcache inspect [--db PATH] KEY\n"
    "  Show one entry: the canonical request, times, the response (SSE as events).\n"};
static const struct cmd_def CMD_VERIFY = {
    "verify", BIT(O_DB) | BIT(O_HELP), 0, 0,
    "usage: promptcache verify [--db PATH]\n"
    "  Check every entry's checksum and that its key matches its stored request.\n"
    "  Exits 1 when any entry is bad.\n"};

struct cli {
  const struct cmd_def *cmd;
  const char *val[N_OPTS];           /* option values; "" for a given flag; NULL when absent */
  const char *redis[MAX_REDIS_URLS]; /* --redis, repeatable */
  size_t n_redis;
  char **pos;
  int n_pos;
};

static void fail_line(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_line(const struct cli *c, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "promptcache %s: ", c->cmd->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static int find_opt(const char *arg, size_t n) {
  for (int i = 0; i < N_OPTS; i++)
    if (strlen(OPTS[i].name) == n && !strncmp(arg, OPTS[i].name, n)) return i;
  if (n == 2 && !strncmp(arg, "-h", 2)) return O_HELP;
  return -1;
}

/* One option at argv[*i] (advanced past its value). Returns 0 or 2. */
static int parse_opt(struct cli *c, int argc, char **argv, int *i) {
  const char *arg = argv[*i], *eq = strchr(arg, '=');
  size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
  int id = find_opt(arg, n);
  if (id < 0 || !(c->cmd->allowed & BIT(id))) {
    fail_line(c, "unknown option '%.*s' (see promptcache %s --help)", (int)n, arg, c->cmd->name);
    return 2;
  }
  if (!OPTS[id].takes_value) {
    if (eq) fail_line(c, "option %s takes no value", OPTS[id].name);
    c->val[id] = "";
    return eq ? 2 : 0;
  }
  const char *v = eq ? eq + 1 : *i + 1 < argc ? argv[++*i] : NULL;
  if (!v || !*v) {
    fail_line(c, "option %s needs a value", OPTS[id].name);
    return 2;
  }
  if (id == O_REDIS) { /* repeatable: seeds of one cluster; the password never reaches a message */
    struct pc_redis_url u;
    char why[160];
    if (pc_redis_parse_url(v, &u, why, sizeof why)) {
      fail_line(c, "invalid --redis: %s", why);
      return 2;
    }
    if (c->n_redis == MAX_REDIS_URLS) {
      fail_line(c, "too many --redis URLs (64 at most)");
      return 2;
    }
    c->redis[c->n_redis++] = v;
  }
  if (c->val[id] && id != O_REDIS) {
    fail_line(c, "option %s given twice", OPTS[id].name);
    return 2;
  }
  c->val[id] = v;
  return 0;
}

/* Parse argv (argv[0] is the subcommand). Positional arguments are moved to
 * the front of argv[1..] (argv's pointer array is ours to reorder).
 * Returns 0 to run, -1 when help was printed, 2 on a usage error. */
static int parse_args(struct cli *c, const struct cmd_def *cmd, int argc, char **argv) {
  memset(c, 0, sizeof *c);
  c->cmd = cmd;
  c->pos = argv + 1;
  int opts_done = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!opts_done && !strcmp(a, "--"))
      opts_done = 1;
    else if (!opts_done && a[0] == '-' && a[1]) {
      if (parse_opt(c, argc, argv, &i)) return 2;
    } else
      c->pos[c->n_pos++] = argv[i];
  }
  if (c->val[O_HELP]) {
    fputs(cmd->usage, stdout);
    return -1;
  }
  if (c->n_pos > cmd->max_pos) {
    fail_line(c, "unexpected argument '%s' (see promptcache %s --help)", c->pos[cmd->max_pos], cmd->name);
    return 2;
  }
  if (c->n_pos < cmd->min_pos) {
    fail_line(c, "missing %s (see promptcache %s --help)", cmd == &CMD_IMPORT ? "FILE" : "KEY", cmd->name);
    return 2;
  }
  return 0;
}

/* ====================================================================== */
/* Opening the database                                                    */
/* ====================================================================== */

static const char *db_path(const struct cli *c) {
  const char *env = getenv("PROMPTCACHE_DB");
  if (c->val[O_DB]) return c->val[O_DB];
  return env && *env ? env : DEFAULT_DB;
}

/* An LMDB environment directory with its data file. */
static int db_exists(const char *path) {
  struct stat st;
  char data[4096];
  if (stat(path, &st) || !S_ISDIR(st.st_mode)) return 0;
  int n = snprintf(data, sizeof data, "%s/data.mdb", path);
  return n > 0 && (size_t)n < sizeof data && !stat(data, &st) && S_ISREG(st.st_mode);
}

enum db_access { DB_READ, DB_WRITE, DB_CREATE };

/* Open the database: DB_READ read-only (works on a read-only mount or
 * directory), DB_WRITE an existing one for writing, DB_CREATE creating it
 * if missing. Returns 0 or the exit status. The map size never shrinks
 * what another process set: LMDB keeps the larger of the file's size and
 * ours. */
static int open_db(const struct cli *c, enum db_access access, pc_cache **out) {
  const char *path = db_path(c), *ms = getenv("PROMPTCACHE_MAX_SIZE");
  size_t max_size = DEFAULT_MAX_SIZE;
  *out = NULL;
  if (ms && *ms && pc_config_parse_size(ms, &max_size)) {
    fail_line(c, "invalid PROMPTCACHE_MAX_SIZE '%s'", ms);
    return 2;
  }
  if (access != DB_CREATE && !db_exists(path)) {
    fail_line(c, "no database at '%s' (give --db PATH or set PROMPTCACHE_DB)", path);
    return 2;
  }
  int rc = access == DB_READ ? pc_cache_open_ro(path, out) : pc_cache_open(path, max_size, PC_SYNC_PERIODIC, out);
  if (rc == PC_ECORRUPT) {
    fail_line(c, "cannot open database '%s': it is corrupt or truncated (restore it, or move it away and start empty)",
              path);
    return 1;
  }
  if (rc) {
    fail_line(c, "cannot open database '%s': %s", path, pc_strerror(rc));
    return 2;
  }
  return 0;
}

/* ====================================================================== */
/* Shared formatting                                                       */
/* ====================================================================== */

/* RFC 3339 UTC with milliseconds (the export format's spelling). */
static void format_time(int64_t ms, char out[TIME_LEN]) {
  time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  struct tm tm;
  if (!gmtime_r(&t, &tm)) {
    snprintf(out, TIME_LEN, "(invalid time)");
    return;
  }
  snprintf(out, TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(((ms % 1000) + 1000) % 1000));
}

/* "3d4h", "12m5s", "850ms". */
static void format_span(int64_t ms, char *out, size_t cap) {
  int64_t s = ms / 1000;
  if (ms < 1000)
    snprintf(out, cap, "%lldms", (long long)ms);
  else if (s < 60)
    snprintf(out, cap, "%llds", (long long)s);
  else if (s < 3600)
    snprintf(out, cap, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
  else if (s < 86400)
    snprintf(out, cap, "%lldh%lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else
    snprintf(out, cap, "%lldd%lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

/* Print text with every line indented by `indent` spaces. */
static void print_indented(const char *s, size_t n, int indent) {
  size_t i = 0;
  while (i < n) {
    const char *nl = memchr(s + i, '\n', n - i);
    size_t len = nl ? (size_t)(nl - (s + i)) : n - i, shown = len;
    if (shown && s[i + shown - 1] == '\r') shown--; /* header lines end in CRLF */
    printf("%*s%.*s\n", indent, "", (int)shown, s + i);
    i += len + (nl ? 1 : 0);
  }
}

/* A byte string shown on one line: JSON-escaped when it is UTF-8, else \xNN. */
static void print_quoted(const char *s, size_t n) {
  pc_buf b;
  pc_buf_init(&b, n * 6 + 16);
  if (pc_utf8_valid(s, n) && !pc_json_write_string(&b, s, n)) {
    fwrite(b.data, 1, b.len, stdout);
  } else {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
      unsigned char ch = (unsigned char)s[i];
      if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
        putchar(ch);
      else
        printf("\\x%02x", ch);
    }
    putchar('"');
  }
  pc_buf_free(&b);
}

/* ====================================================================== */
/* stats                                                                   */
/* ====================================================================== */

struct group {
  char name[NAME_MAX_LEN];
  size_t entries;
  uint64_t body_bytes;
};

struct groups {
  struct group *v;
  size_t n, cap;
};

struct stats_walk {
  struct groups by_route, by_path, by_model;
  size_t walked, expired, unreadable;
  uint64_t body_bytes;
  int64_t oldest, newest, now;
};

/* Count one entry under `name`; past MAX_GROUPS names, under "(other)". */
static int group_add(struct groups *g, const struct pc_slice *name, size_t body) {
  char key[NAME_MAX_LEN];
  size_t n = name->n < sizeof key - 1 ? name->n : sizeof key - 1;
  memcpy(key, name->p, n);
  key[n] = '\0';
  size_t i = 0;
  while (i < g->n && strcmp(g->v[i].name, key)) i++;
  if (i == g->n && g->n >= MAX_GROUPS) {
    snprintf(key, sizeof key, "(other)");
    for (i = 0; i < g->n && strcmp(g->v[i].name, key);) i++;
  }
  if (i == g->n) {
    if (g->n == g->cap) {
      size_t cap = g->cap ? g->cap * 2 : 16;
      struct group *v = realloc(g->v, cap * sizeof *v);
      if (!v) return PC_ENOMEM;
      g->v = v;
      g->cap = cap;
    }
    memset(&g->v[g->n], 0, sizeof g->v[0]);
    snprintf(g->v[g->n++].name, NAME_MAX_LEN, "%s", key);
  }
  g->v[i].entries++;
  g->v[i].body_bytes += body;
  return 0;
}

static int cmp_group(const void *a, const void *b) {
  return strcmp(((const struct group *)a)->name, ((const struct group *)b)->name);
}

static void sort_groups(struct groups *g) {
  if (g->n > 1) qsort(g->v, g->n, sizeof *g->v, cmp_group);
}

static int stats_one(void *ud, const uint8_t key[16], const void *val, size_t len) {
  struct stats_walk *w = ud;
  struct pc_entry e;
  w->walked++;
  if (pc_entry_decode(val, len, 0, &e)) {
    w->unreadable++;
    return 0;
  }
  if (e.expires_ms && e.expires_ms <= w->now) w->expired++;
  if (w->walked - w->unreadable == 1 || e.created_ms < w->oldest) w->oldest = e.created_ms;
  if (w->walked - w->unreadable == 1 || e.created_ms > w->newest) w->newest = e.created_ms;
  w->body_bytes += e.body.n;
  int rc = group_add(&w->by_route, &e.route, e.body.n);
  if (!rc) rc = group_add(&w->by_path, &e.path, e.body.n);
  if (!rc) rc = group_add(&w->by_model, &e.model, e.body.n);
  return rc;
}

static void stats_free(struct stats_walk *w) {
  free(w->by_route.v);
  free(w->by_path.v);
  free(w->by_model.v);
}

static int json_groups(pc_buf *b, const char *member, const struct groups *g) {
  int rc = pc_buf_printf(b, ",\"%s\":{", member);
  for (size_t i = 0; i < g->n && !rc; i++) {
    if (i) rc = pc_buf_putc(b, ',');
    if (!rc)
      rc = pc_utf8_valid(g->v[i].name, strlen(g->v[i].name))
               ? pc_json_write_string(b, g->v[i].name, strlen(g->v[i].name))
               : pc_buf_puts(b, "\"(not UTF-8)\"");
    if (!rc)
      rc = pc_buf_printf(b, ":{\"entries\":%zu,\"body_bytes\":%llu}", g->v[i].entries,
                         (unsigned long long)g->v[i].body_bytes);
  }
  return rc ? rc : pc_buf_putc(b, '}');
}

static int json_time(pc_buf *b, const char *member, int64_t ms, int have) {
  char t[TIME_LEN];
  format_time(ms, t);
  return have ? pc_buf_printf(b, ",\"%s\":\"%s\"", member, t) : pc_buf_printf(b, ",\"%s\":null", member);
}

/* The lifetime totals a server persisted in the database (its own compact
 * JSON object, see stats.c), appended as is; null when none were saved yet. */
static int lifetime_json(pc_cache *db, pc_buf *b) {
  pc_buf raw;
  struct pc_json_doc *doc = NULL;
  pc_buf_init(&raw, 1 << 20);
  int ok = !pc_cache_meta_get(db, "totals", &raw) && !pc_json_parse(raw.data, raw.len, &doc, NULL);
  int rc = ok ? pc_json_write(pc_json_root(doc), b) : pc_buf_puts(b, "null");
  pc_json_free(doc);
  pc_buf_free(&raw);
  return rc;
}

static void lifetime_text(pc_cache *db) {
  static const char *const names[] = {"hit",
                                      "miss",
                                      "coalesced",
                                      "bypass",
                                      "refresh",
                                      "stale",
                                      "replay_miss",
                                      "bytes_from_cache",
                                      "tokens_saved_input",
                                      "tokens_saved_output",
                                      "evictions"};
  pc_buf raw;
  struct pc_json_doc *doc = NULL;
  pc_buf_init(&raw, 1 << 20);
  if (!pc_cache_meta_get(db, "totals", &raw) && !pc_json_parse(raw.data, raw.len, &doc, NULL)) {
    const struct pc_json *r = pc_json_root(doc);
    printf("\nlifetime (all server runs on this database)\n");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
      printf("  %-22s %.0f\n", names[i], pc_json_get_num(r, names[i], 0));
    printf("  %-22s %.6f\n", "money_saved", pc_json_get_num(r, "money_saved", 0));
  }
  pc_json_free(doc);
  pc_buf_free(&raw);
}

/* One JSON object; "lifetime" holds the totals servers persisted. */
static int stats_json(pc_cache *dbh, const char *db, size_t entries, size_t bytes, const struct stats_walk *w) {
  pc_buf b;
  int have = w->walked > w->unreadable;
  pc_buf_init(&b, TEXT_MAX);
  int rc = pc_buf_puts(&b, "{\"db\":");
  if (!rc) rc = pc_utf8_valid(db, strlen(db)) ? pc_json_write_string(&b, db, strlen(db)) : pc_buf_puts(&b, "null");
  if (!rc)
    rc = pc_buf_printf(&b, ",\"entries\":%zu,\"bytes\":%zu,\"body_bytes\":%llu,\"expired\":%zu,\"unreadable\":%zu",
                       entries, bytes, (unsigned long long)w->body_bytes, w->expired, w->unreadable);
  if (!rc) rc = json_time(&b, "oldest", w->oldest, have);
  if (!rc) rc = json_time(&b, "newest", w->newest, have);
  if (!rc) rc = json_groups(&b, "by_route", &w->by_route);
  if (!rc) rc = json_groups(&b, "by_path", &w->by_path);
  if (!rc) rc = json_groups(&b, "by_model", &w->by_model);
  if (!rc) rc = pc_buf_puts(&b, ",\"lifetime\":");
  if (!rc) rc = lifetime_json(dbh, &b);
  if (!rc) rc = pc_buf_puts(&b, "}\n");
  if (!rc) fwrite(b.data, 1, b.len, stdout);
  pc_buf_free(&b);
  return rc;
}

static void text_groups(const char *title, const char *empty, const struct groups *g) {
  int width = (int)strlen(title);
  for (size_t i = 0; i < g->n; i++)
    if ((int)strlen(g->v[i].name) > width) width = (int)strlen(g->v[i].name);
  if (width > 60) width = 60;
  printf("\n%-*s  %8s  %12s\n", width, title, "entries", "body bytes");
  for (size_t i = 0; i < g->n; i++)
    printf("%-*s  %8zu  %12llu\n", width, g->v[i].name[0] ? g->v[i].name : empty, g->v[i].entries,
           (unsigned long long)g->v[i].body_bytes);
}

static void stats_text(const char *db, size_t entries, size_t bytes, const struct stats_walk *w) {
  char t[TIME_LEN];
  printf("database    %s\n", db);
  printf("entries     %zu\n", entries);
  if (bytes >= ((size_t)1 << 20))
    printf("bytes       %zu (%.1f MiB in use)\n", bytes, (double)bytes / (1024.0 * 1024.0));
  else
    printf("bytes       %zu (%.1f KiB in use)\n", bytes, (double)bytes / 1024.0);
  printf("body bytes  %llu\n", (unsigned long long)w->body_bytes);
  printf("expired     %zu\n", w->expired);
  if (w->unreadable) printf("unreadable  %zu (run promptcache verify)\n", w->unreadable);
  if (w->walked > w->unreadable) {
    format_time(w->oldest, t);
    printf("oldest      %s\n", t);
    format_time(w->newest, t);
    printf("newest      %s\n", t);
  }
  text_groups("route", "(default)", &w->by_route);
  text_groups("path", "(none)", &w->by_path);
  text_groups("model", "(none)", &w->by_model);
}

int pc_cli_stats(int argc, char **argv) {
  struct cli c;
  struct stats_walk w;
  pc_cache *db = NULL;
  size_t entries = 0, bytes = 0;
  int st = parse_args(&c, &CMD_STATS, argc, argv);
  if (st) return st < 0 ? 0 : st;
  if (c.n_redis) {
    struct pc_cli_redis r = {c.redis, c.n_redis, c.val[O_REDIS_PREFIX]};
    return pc_cli_fleet_stats(&r, c.val[O_JSON] != NULL);
  }
  memset(&w, 0, sizeof w);
  w.now = pc_now_ms();
  st = open_db(&c, DB_READ, &db);
  if (st) goto out;
  int rc = pc_cache_count(db, &entries, &bytes);
  if (!rc) rc = pc_cache_iterate(db, stats_one, &w);
  if (rc) {
    fail_line(&c, "reading the database failed: %s", pc_strerror(rc));
    st = 1;
    goto out;
  }
  sort_groups(&w.by_route);
  sort_groups(&w.by_path);
  sort_groups(&w.by_model);
  if (c.val[O_JSON])
    st = stats_json(db, db_path(&c), entries, bytes, &w) ? 1 : 0;
  else {
    stats_text(db_path(&c), entries, bytes, &w);
    lifetime_text(db);
  }
out:
  pc_cache_close(db);
  stats_free(&w);
  return st;
}

/* ====================================================================== */
/* export                                                                  */
/* ====================================================================== */

/* Export into FILE.tmp, renamed over FILE only on success: a refused or
 * failed export leaves no partial file behind. */
static int export_to_file(const struct cli *c, pc_cache *db, const struct pc_export_opts *o, char *err, size_t errlen) {
  pc_buf tmp;
  pc_buf_init(&tmp, 8192);
  int rc = pc_buf_printf(&tmp, "%s.tmp", c->val[O_OUT]);
  FILE *f = rc ? NULL : fopen(tmp.data, "w");
  if (!f) {
    snprintf(err, errlen, "cannot write '%s': %s", rc ? c->val[O_OUT] : tmp.data, strerror(errno));
    rc = PC_EIO;
    goto out;
  }
  rc = pc_export(db, o, f, err, errlen);
  if (!rc && (fflush(f) || fsync(fileno(f)))) {
    snprintf(err, errlen, "writing '%s' failed: %s", tmp.data, strerror(errno));
    rc = PC_EIO;
  }
  if (fclose(f) && !rc) {
    snprintf(err, errlen, "writing '%s' failed: %s", tmp.data, strerror(errno));
    rc = PC_EIO;
  }
  if (!rc && rename(tmp.data, c->val[O_OUT])) {
    snprintf(err, errlen, "cannot rename '%s' to '%s': %s", tmp.data, c->val[O_OUT], strerror(errno));
    rc = PC_EIO;
  }
  if (rc) (void)unlink(tmp.data);
out:
  pc_buf_free(&tmp);
  return rc;
}

int pc_cli_export(int argc, char **argv) {
  struct cli c;
  pc_cache *db = NULL;
  char err[1024] = "";
  int st = parse_args(&c, &CMD_EXPORT, argc, argv);
  if (st) return st < 0 ? 0 : st;
  st = open_db(&c, DB_READ, &db);
  if (st) goto out;
  struct pc_export_opts o = {c.val[O_NS], c.val[O_ALLOW_SECRETS] != NULL};
  int rc = c.val[O_OUT] ? export_to_file(&c, db, &o, err, sizeof err) : pc_export(db, &o, stdout, err, sizeof err);
  if (rc) {
    fail_line(&c, "%s", err[0] ? err : pc_strerror(rc));
    st = rc == PC_EINVAL ? PC_EXPORT_SECRET : 1;
  }
out:
  pc_cache_close(db);
  return st;
}

/* ====================================================================== */
/* import                                                                  */
/* ====================================================================== */

int pc_cli_import(int argc, char **argv) {
  struct cli c;
  pc_cache *db = NULL;
  char err[1024];
  size_t total = 0;
  int st = parse_args(&c, &CMD_IMPORT, argc, argv);
  if (st) return st < 0 ? 0 : st;
  for (int i = 0; i < c.n_pos; i++) {
    if (access(c.pos[i], R_OK)) {
      fail_line(&c, "cannot read '%s': %s", c.pos[i], strerror(errno));
      return 2;
    }
  }
  st = open_db(&c, DB_CREATE, &db);
  for (int i = 0; !st && i < c.n_pos; i++) {
    size_t n = 0;
    int rc = pc_import_file(db, c.pos[i], &n, err, sizeof err);
    total += n;
    if (rc) {
      fail_line(&c, "%s", err[0] ? err : pc_strerror(rc));
      st = 1;
    }
  }
  if (!st)
    printf("imported %zu entries\n", total);
  else if (total)
    fprintf(stderr, "promptcache import: %zu entries from earlier files were imported\n", total);
  pc_cache_close(db);
  return st;
}

/* ====================================================================== */
/* purge                                                                   */
/* ====================================================================== */

/* The one selector as a pc_purge_sel. Returns 0 or the exit status. */
static int purge_selector(const struct cli *c, struct pc_purge_sel *sel) {
  int n = !!c->val[O_ALL] + !!c->val[O_KEY] + !!c->val[O_NS] + !!c->val[O_OLDER_THAN];
  memset(sel, 0, sizeof *sel);
  if (n != 1) {
    fail_line(c, "give exactly one of --all, --key KEY, --namespace NS, --older-than DURATION");
    return 2;
  }
  sel->all = c->val[O_ALL] != NULL;
  sel->ns = c->val[O_NS];
  if (c->val[O_KEY]) {
    struct pc_key k;
    if (pc_key_from_hex(c->val[O_KEY], &k)) {
      fail_line(c, "invalid --key '%s': expected 32 hex digits", c->val[O_KEY]);
      return 2;
    }
    sel->has_key = 1;
    memcpy(sel->key, k.b, 16);
  }
  if (c->val[O_OLDER_THAN] &&
      (pc_config_parse_duration(c->val[O_OLDER_THAN], &sel->older_than_ms) || sel->older_than_ms <= 0)) {
    fail_line(c, "invalid --older-than '%s': expected a positive duration like 30s, 15m, 12h, 7d",
              c->val[O_OLDER_THAN]);
    return 2;
  }
  return 0;
}

int pc_cli_purge(int argc, char **argv) {
  struct cli c;
  struct pc_purge_sel sel;
  pc_cache *db = NULL;
  size_t n = 0;
  int st = parse_args(&c, &CMD_PURGE, argc, argv);
  if (st) return st < 0 ? 0 : st;
  st = purge_selector(&c, &sel);
  if (!st && c.n_redis) {
    struct pc_cli_redis r = {c.redis, c.n_redis, c.val[O_REDIS_PREFIX]};
    st = pc_cli_fleet_purge(&r, &sel);
    if (st || !c.val[O_DB]) return st;
  }
  if (!st) st = open_db(&c, DB_WRITE, &db);
  if (st) goto out;
  int rc = pc_purge(db, &sel, &n);
  if (rc) {
    fail_line(&c, "purge failed: %s", pc_strerror(rc));
    st = 1;
  } else if (sel.has_key && n == 0) {
    fail_line(&c, "no entry with key %s", c.val[O_KEY]);
    st = 1;
  } else {
    printf("deleted %zu entries\n", n);
  }
out:
  pc_cache_close(db);
  return st;
}

/* ====================================================================== */
/* inspect                                                                 */
/* ====================================================================== */

/* Plain text when it is printable UTF-8 on one line, else quoted. */
static void print_text(const char *p, size_t n) {
  int plain = pc_utf8_valid(p, n);
  for (size_t i = 0; plain && i < n; i++) plain = (unsigned char)p[i] >= 0x20 && p[i] != 0x7f;
  if (plain)
    fwrite(p, 1, n, stdout);
  else
    print_quoted(p, n);
}

static void print_field(const char *label, const struct pc_entry *e, const char *name, const char *empty) {
  const char *p;
  size_t n;
  if (pc_key_material_field(e->request.p, e->request.n, name, &p, &n)) p = "", n = 0;
  printf("  %-11s", label);
  if (n)
    print_text(p, n);
  else
    fputs(empty, stdout);
  putchar('\n');
}

/* A JSON body pretty-printed and indented; other text as it is; else its size. */
static void print_body(const char *p, size_t n, int indent) {
  struct pc_json_doc *doc = NULL;
  pc_buf b;
  pc_buf_init(&b, TEXT_MAX);
  if (n == 0)
    printf("%*s(empty)\n", indent, "");
  else if (pc_utf8_valid(p, n) && !pc_json_parse(p, n, &doc, NULL) && !pc_json_write_pretty(pc_json_root(doc), &b, 2))
    print_indented(b.data, b.len, indent);
  else if (pc_utf8_valid(p, n))
    print_indented(p, n, indent);
  else
    printf("%*s(%zu bytes, not UTF-8)\n", indent, "", n);
  pc_json_free(doc);
  pc_buf_free(&b);
}

static void print_request(const struct pc_entry *e) {
  const char *p, *cred;
  size_t n, cn;
  puts("request");
  print_field("method", e, "method", "");
  print_field("route", e, "route", "(default)");
  print_field("path", e, "path", "");
  print_field("namespace", e, "namespace", "(none)");
  int scoped = !pc_key_material_field(e->request.p, e->request.n, "credential", &cred, &cn) && cn > 0;
  printf("  %-11s%s\n", "credential", scoped ? "(scoped)" : "(shared)");
  puts("  headers");
  int shown = 0;
  for (int i = 0; i < PC_KEY_N_ALL; i++) {
    if (pc_key_material_field(e->request.p, e->request.n, pc_key_headers[i], &p, &n) || n == 0) continue;
    printf("    %s: ", pc_key_headers[i]);
    print_text(p, n);
    putchar('\n');
    shown++;
  }
  if (!shown) puts("    (none)");
  uint32_t seq = pc_key_material_seq_of(e->request.p, e->request.n);
  if (seq) printf("  %-11s%u (answer %u of a recorded sequence)\n", "seq", (unsigned)seq, (unsigned)seq + 1);
  if (pc_key_material_field(e->request.p, e->request.n, "body", &p, &n)) {
    puts("  body\n    (missing)");
  } else if (pc_bodykey_is_canon(p, n)) { /* not JSON: as export writes it */
    pc_buf j;
    pc_buf_init(&j, (size_t)1 << 32);
    puts("  payload");
    if (pc_bodykey_to_json(p, n, &j))
      puts("    (unreadable)");
    else
      print_body(j.data, j.len, 4);
    pc_buf_free(&j);
  } else {
    puts("  body");
    print_body(p, n, 4);
  }
}

static void print_times(const struct pc_entry *e) {
  char t[TIME_LEN], span[32];
  int64_t now = pc_now_ms();
  format_time(e->created_ms, t);
  format_span(now > e->created_ms ? now - e->created_ms : 0, span, sizeof span);
  printf("created      %s (age %s)\n", t, span);
  if (!e->expires_ms) {
    puts("expires      never");
    return;
  }
  format_time(e->expires_ms, t);
  format_span(e->expires_ms > now ? e->expires_ms - now : now - e->expires_ms, span, sizeof span);
  printf("expires      %s (%s %s%s)\n", t, e->expires_ms > now ? "in" : "expired", span,
         e->expires_ms > now ? "" : " ago");
}

static void print_events(const struct pc_entry *e) {
  uint32_t prev = 0;
  printf("  events (%u)\n", e->n_chunks);
  for (uint32_t i = 0; i < e->n_chunks; i++) {
    struct pc_chunk ch = pc_entry_chunk(e, i);
    printf("    +%6u ms  ", ch.t_ms);
    print_quoted(e->body.p + prev, ch.end - prev);
    putchar('\n');
    prev = ch.end;
  }
  if (prev < e->body.n) {
    printf("    (after the last chunk)  ");
    print_quoted(e->body.p + prev, e->body.n - prev);
    putchar('\n');
  }
}

static void print_response(const struct pc_entry *e) {
  puts("response");
  printf("  %-11s%d\n", "status", e->status);
  puts("  headers");
  if (e->headers.n)
    print_indented(e->headers.p, e->headers.n, 4);
  else
    puts("    (none)");
  if (e->flags & PC_ENTRY_F_SSE) {
    print_events(e);
  } else {
    printf("  body (%zu bytes)\n", e->body.n);
    print_body(e->body.p, e->body.n, 4);
  }
  if (e->usage.n) {
    puts("usage");
    print_body(e->usage.p, e->usage.n, 2);
  }
}

int pc_cli_inspect(int argc, char **argv) {
  struct cli c;
  struct pc_key k;
  struct pc_entry e;
  pc_cache *db = NULL;
  pc_buf val;
  pc_buf_init(&val, ENTRY_MAX);
  int st = parse_args(&c, &CMD_INSPECT, argc, argv);
  if (st) return st < 0 ? 0 : st;
  if (pc_key_from_hex(c.pos[0], &k)) {
    fail_line(&c, "invalid KEY '%s': expected 32 hex digits", c.pos[0]);
    return 2;
  }
  st = open_db(&c, DB_READ, &db);
  if (st) goto out;
  int rc = pc_cache_get(db, k.b, &val);
  if (!rc) rc = pc_entry_decode(val.data, val.len, 1, &e);
  if (rc) {
    if (rc == PC_ENOTFOUND)
      fail_line(&c, "no entry with key %s", c.pos[0]);
    else
      fail_line(&c, "entry %s cannot be read: %s", c.pos[0], pc_strerror(rc));
    st = 1;
    goto out;
  }
  printf("key          %s\n", c.pos[0]);
  printf("model        %.*s\n", (int)e.model.n, e.model.p);
  print_times(&e);
  print_request(&e);
  print_response(&e);
out:
  pc_cache_close(db);
  pc_buf_free(&val);
  return st;
}

/* ====================================================================== */
/* verify                                                                  */
/* ====================================================================== */

struct verify_walk {
  size_t n, bad;
  pc_buf report; /* one line per bad entry (bounded; the count is exact) */
};

/* Why an entry is bad, or NULL. */
static const char *entry_problem(const uint8_t key[16], const void *val, size_t len) {
  struct pc_entry e;
  struct pc_key k;
  const char *p;
  size_t n;
  int rc = pc_entry_decode(val, len, 1, &e);
  if (rc == PC_EVERSION) return "written by an unsupported format version";
  if (rc && !pc_entry_decode(val, len, 0, &e)) return "corrupt: checksum mismatch";
  if (rc) return "corrupt: broken entry structure";
  if (pc_key_material_field(e.request.p, e.request.n, "body", &p, &n)) return "corrupt: unreadable request material";
  pc_key_hash(e.request.p, e.request.n, &k);
  if (memcmp(k.b, key, 16)) return "key does not match the stored request";
  return NULL;
}

static int verify_one(void *ud, const uint8_t key[16], const void *val, size_t len) {
  struct verify_walk *w = ud;
  char hex[PC_KEY_HEX_LEN + 1];
  const char *why = entry_problem(key, val, len);
  w->n++;
  if (!why) return 0;
  w->bad++;
  struct pc_key k;
  memcpy(k.b, key, 16);
  pc_key_hex(&k, hex);
  (void)pc_buf_printf(&w->report, "BAD %s: %s\n", hex, why); /* past the bound only the count grows */
  return 0;
}

int pc_cli_verify(int argc, char **argv) {
  struct cli c;
  struct verify_walk w;
  pc_cache *db = NULL;
  memset(&w, 0, sizeof w);
  pc_buf_init(&w.report, REPORT_MAX);
  int st = parse_args(&c, &CMD_VERIFY, argc, argv);
  if (st) return st < 0 ? 0 : st;
  st = open_db(&c, DB_READ, &db);
  if (st) goto out;
  int rc = pc_cache_iterate(db, verify_one, &w);
  if (w.report.len) fwrite(w.report.data, 1, w.report.len, stdout);
  if (rc) {
    fail_line(&c, "reading the database failed after %zu entries: %s", w.n, pc_strerror(rc));
    st = 1;
  } else if (w.bad) {
    printf("%zu of %zu entries bad\n", w.bad, w.n);
    st = 1;
  } else {
    printf("%zu entries OK\n", w.n);
  }
out:
  pc_cache_close(db);
  pc_buf_free(&w.report);
  return st;
}
