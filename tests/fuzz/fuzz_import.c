/* fuzz_import.c — libFuzzer target for the JSON Lines import in src/import.c
 * (`promptcache import`, `serve --replay`): recordings are files users edit
 * and commit, so every byte of them is outside input.
 * Each input is written to a file in a per-process temporary directory and
 * imported into an LMDB database opened once per process (emptied after every
 * input). A line's "key" must match its request; since random bytes almost
 * never do, a mismatch is fixed once per line from the error message (which
 * names the right key) so the fuzzer reaches the response and metadata
 * parsing too. Checked: a file holding a NUL byte is refused (no line of
 * JSON can hold one); what was imported exports, and export → import →
 * export gives the same bytes (export.h: lossless round trip). */
#include "fuzz.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "cache.h"
#include "error.h"
#include "export.h"
#include "import.h"

#define DB_MAX_SIZE ((size_t)64 << 20)
#define MAX_KEY_FIXES 8
#define MISMATCH "does not match the request (its key is "

static char dir[PATH_MAX], db_path[PATH_MAX], in_path[PATH_MAX];
static pc_cache *cache;

static void remove_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    char p[PATH_MAX * 2];
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) < (int)sizeof p) unlink(p);
  }
  closedir(d);
  rmdir(path);
}

static void cleanup(void) {
  if (cache) pc_cache_close(cache);
  cache = NULL;
  unlink(in_path);
  remove_dir(db_path);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/pc-fuzz-import-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  FUZZ_CHECK(mkdtemp(dir), "mkdtemp failed");
  snprintf(db_path, sizeof db_path, "%s/db", dir);
  snprintf(in_path, sizeof in_path, "%s/in.jsonl", dir);
  int rc = pc_cache_open(db_path, DB_MAX_SIZE, PC_SYNC_PERIODIC, &cache);
  FUZZ_CHECK(rc == 0, "cannot open the cache: %d", rc);
  atexit(cleanup);
  return 0;
}

static void write_file(const char *p, size_t n) {
  FILE *f = fopen(in_path, "wb");
  FUZZ_CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0, "cannot write %s", in_path);
}

/* The import error for a line whose key does not match names both keys:
 * put the right one in place of the given one. 0 if there was nothing to fix. */
static int fix_key(char *text, size_t n, const char *err) {
  const char *m = strstr(err, MISMATCH), *given = strstr(err, ": key ");
  if (!m || !given || m - given != 6 + 32 + 1) return 0;
  given += 6;
  const char *right = m + strlen(MISMATCH);
  if (strlen(right) < 32) return 0;
  char *at = memmem(text, n, given, 32);
  if (!at) return 0;
  memcpy(at, right, 32);
  return 1;
}

struct keys {
  uint8_t *k;
  size_t n, cap;
};

static int collect(void *ud, const uint8_t key[16], const void *val, size_t len) {
  struct keys *ks = ud;
  if (ks->n == ks->cap) {
    ks->cap = ks->cap ? 2 * ks->cap : 16;
    ks->k = realloc(ks->k, ks->cap * 16);
    FUZZ_CHECK(ks->k, "out of memory");
  }
  memcpy(ks->k + 16 * ks->n++, key, 16);
  return 0;
}

static void empty_cache(void) {
  struct keys ks = {NULL, 0, 0};
  size_t deleted = 0;
  FUZZ_CHECK(pc_cache_iterate(cache, collect, &ks) == 0, "iterate failed");
  if (ks.n) FUZZ_CHECK(pc_cache_del_many(cache, ks.k, ks.n, &deleted) == 0, "delete failed");
  free(ks.k);
}

static char *export_all(size_t *n) {
  char *text = NULL, err[512];
  FILE *f = open_memstream(&text, n);
  struct pc_export_opts o = {NULL, 1};
  FUZZ_CHECK(f, "open_memstream failed");
  int rc = pc_export(cache, &o, f, err, sizeof err);
  FUZZ_CHECK(fclose(f) == 0, "memstream close failed");
  FUZZ_CHECK(rc == 0 || rc == PC_ENOMEM, "an imported entry does not export (%d): %s", rc, err);
  if (rc) {
    free(text);
    return NULL;
  }
  return text;
}

/* export → import → export: the same bytes. */
static void check_round_trip(void) {
  size_t n1 = 0, n2 = 0, count = 0;
  char err[512];
  char *e1 = export_all(&n1);
  if (!e1) return;
  empty_cache();
  write_file(e1, n1);
  int rc = pc_import_file(cache, in_path, &count, err, sizeof err);
  FUZZ_CHECK(rc == 0 || rc == PC_EMAPFULL, "an export does not import (%d): %s\n%.*s", rc, err, (int)n1, e1);
  char *e2 = rc ? NULL : export_all(&n2);
  if (e2)
    FUZZ_CHECK(n1 == n2 && !memcmp(e1, e2, n1), "export -> import -> export changed:\n%.*s\n%.*s", (int)n1, e1, (int)n2,
               e2);
  free(e1);
  free(e2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_copy((const char *)data, size), err[1024];
  size_t count = 0;
  int rc = PC_EINVAL;
  for (int fixes = 0; fixes <= MAX_KEY_FIXES; fixes++) {
    write_file(text, size);
    rc = pc_import_file(cache, in_path, &count, err, sizeof err);
    if (rc == 0 || !fix_key(text, size, err)) break;
  }
  /* No JSON text and no blank line holds a NUL byte: a file with one is bad. */
  FUZZ_CHECK(rc != 0 || !memchr(text, '\0', size), "a file with a NUL byte was imported (%zu entries)", count);
  FUZZ_CHECK(rc != 0 || count > 0 || !memchr(text, '{', size), "a file with a line imported nothing");
  if (rc == 0 && count) check_round_trip();
  empty_cache();
  free(text);
  return 0;
}
