/* test_cache.c — the LMDB store, each test in its own temporary directory
 * (created by cache_setup, removed by cache_teardown). Cross-process tests
 * use fork(): LMDB forbids opening one environment twice in a process, and
 * another process sharing the directory is exactly the production case. The
 * children report through their exit status only (never cr_assert). */
#include <criterion/criterion.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "cache.h"
#include "error.h"

#define MIB ((size_t)1 << 20)
#define OUT_MAX (8 * MIB)

static char g_dir[64];

static void cache_setup(void) {
  char tmpl[] = "/tmp/pc-cache-test-XXXXXX";
  cr_assert_not_null(mkdtemp(tmpl));
  memcpy(g_dir, tmpl, sizeof tmpl);
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f) {
  return remove(p);
}

static void cache_teardown(void) {
  if (g_dir[0]) nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A subdirectory of the test directory. */
static void subdir(char *out, size_t n, const char *name) {
  int w = snprintf(out, n, "%s/%s", g_dir, name);
  cr_assert(w > 0 && (size_t)w < n);
}

/* Key i, big-endian in the first bytes so key order is numeric order. */
static void mkkey(uint8_t k[16], uint32_t i) {
  memset(k, 0xA5, 16);
  k[0] = (uint8_t)(i >> 24);
  k[1] = (uint8_t)(i >> 16);
  k[2] = (uint8_t)(i >> 8);
  k[3] = (uint8_t)i;
}

static pc_cache *open_ok(const char *dir, size_t max) {
  pc_cache *c = NULL;
  int rc = pc_cache_open(dir, max, PC_SYNC_PERIODIC, &c);
  cr_assert_eq(rc, 0, "open %s: %s", dir, pc_strerror(rc));
  cr_assert_not_null(c);
  return c;
}

static void put_str(pc_cache *c, uint32_t i, const char *s) {
  uint8_t k[16];
  mkkey(k, i);
  cr_assert_eq(pc_cache_put(c, k, s, strlen(s)), 0);
}

static void assert_get_str(pc_cache *c, uint32_t i, const char *want) {
  uint8_t k[16];
  pc_buf out;
  pc_buf_init(&out, OUT_MAX);
  mkkey(k, i);
  int rc = pc_cache_get(c, k, &out);
  cr_assert_eq(rc, 0, "get %u: %s", i, pc_strerror(rc));
  cr_assert_eq(out.len, strlen(want));
  cr_assert_eq(memcmp(out.data, want, out.len), 0);
  pc_buf_free(&out);
}

static int get_rc(pc_cache *c, uint32_t i) {
  uint8_t k[16];
  pc_buf out;
  pc_buf_init(&out, OUT_MAX);
  mkkey(k, i);
  int rc = pc_cache_get(c, k, &out);
  pc_buf_free(&out);
  return rc;
}

/* A value whose bytes depend on its key and length, so a mix-up shows. */
static void fill_value(uint8_t *v, size_t n, uint32_t i) {
  for (size_t j = 0; j < n; j++) v[j] = (uint8_t)(i * 31 + j * 7);
}

static void assert_get_value(pc_cache *c, uint32_t i, size_t n) {
  uint8_t k[16];
  pc_buf out;
  uint8_t *want = malloc(n);
  cr_assert_not_null(want);
  fill_value(want, n, i);
  pc_buf_init(&out, OUT_MAX);
  mkkey(k, i);
  cr_assert_eq(pc_cache_get(c, k, &out), 0, "key %u", i);
  cr_assert_eq(out.len, n);
  cr_assert_eq(memcmp(out.data, want, n), 0);
  pc_buf_free(&out);
  free(want);
}

/* Put value-sized records from `from` until PC_EMAPFULL or `limit` keys;
 * returns how many were stored. */
static uint32_t fill_until_full(pc_cache *c, uint32_t from, uint32_t limit, size_t n,
                                int *last_rc) {
  uint8_t k[16];
  uint8_t *v = malloc(n);
  uint32_t i = from;
  cr_assert_not_null(v);
  *last_rc = 0;
  for (; i < from + limit; i++) {
    mkkey(k, i);
    fill_value(v, n, i);
    *last_rc = pc_cache_put(c, k, v, n);
    if (*last_rc) break;
  }
  free(v);
  return i - from;
}

TestSuite(cache, .init = cache_setup, .fini = cache_teardown);

Test(cache, put_get_round_trip) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  put_str(c, 1, "hello, world");
  assert_get_str(c, 1, "hello, world");
  /* The read txn is reset and renewed on every call: many in a row work. */
  for (int i = 0; i < 1000; i++) assert_get_str(c, 1, "hello, world");
  pc_cache_close(c);
}

Test(cache, get_replaces_buffer_contents) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  uint8_t k[16];
  pc_buf out;
  pc_buf_init(&out, OUT_MAX);
  cr_assert_eq(pc_buf_puts(&out, "stale contents here"), 0);
  put_str(c, 7, "new");
  mkkey(k, 7);
  cr_assert_eq(pc_cache_get(c, k, &out), 0);
  cr_assert_eq(out.len, 3);
  cr_assert_str_eq(out.data, "new");
  pc_buf_free(&out);
  pc_cache_close(c);
}

Test(cache, get_respects_buffer_limit) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  uint8_t k[16];
  pc_buf out;
  pc_buf_init(&out, 4);
  put_str(c, 1, "longer than four");
  mkkey(k, 1);
  cr_assert_eq(pc_cache_get(c, k, &out), PC_ETOOBIG);
  /* The handle is still fine afterwards. */
  assert_get_str(c, 1, "longer than four");
  pc_buf_free(&out);
  pc_cache_close(c);
}

Test(cache, empty_value) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  put_str(c, 3, "");
  assert_get_str(c, 3, "");
  pc_cache_close(c);
}

Test(cache, overwrite) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  size_t n = 0, bytes = 0;
  put_str(c, 1, "first, a long value");
  put_str(c, 1, "second");
  assert_get_str(c, 1, "second");
  cr_assert_eq(pc_cache_count(c, &n, &bytes), 0);
  cr_assert_eq(n, 1);
  pc_cache_close(c);
}

Test(cache, missing_key) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  cr_assert_eq(get_rc(c, 42), PC_ENOTFOUND);
  put_str(c, 41, "x");
  cr_assert_eq(get_rc(c, 42), PC_ENOTFOUND);
  cr_assert_eq(get_rc(c, 41), 0);
  pc_cache_close(c);
}

Test(cache, del) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  uint8_t k[16];
  put_str(c, 1, "one");
  put_str(c, 2, "two");
  mkkey(k, 1);
  cr_assert_eq(pc_cache_del(c, k), 0);
  cr_assert_eq(get_rc(c, 1), PC_ENOTFOUND);
  cr_assert_eq(pc_cache_del(c, k), PC_ENOTFOUND);
  assert_get_str(c, 2, "two");
  pc_cache_close(c);
}

struct walk_log {
  uint8_t keys[64][16];
  size_t lens[64];
  int n;
  int stop_after; /* 0: never */
};

static int record(void *ud, const uint8_t key[16], const void *val, size_t len) {
  struct walk_log *w = ud;
  if (w->n >= 64) return -1000;
  memcpy(w->keys[w->n], key, 16);
  w->lens[w->n] = len;
  w->n++;
  return (w->stop_after && w->n == w->stop_after) ? 42 : 0;
}

Test(cache, iterate_in_key_order) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  static struct walk_log w;
  char val[32];
  /* Insert in a scrambled order: 0, 7, 14, ... mod 50. */
  for (uint32_t i = 0; i < 50; i++) {
    uint32_t id = (i * 7) % 50;
    int len = snprintf(val, sizeof val, "value-%u", id);
    cr_assert(len > 0);
    put_str(c, id, val);
  }
  cr_assert_eq(pc_cache_iterate(c, record, &w), 0);
  cr_assert_eq(w.n, 50);
  for (int i = 0; i < 50; i++) {
    uint8_t k[16];
    mkkey(k, (uint32_t)i);
    cr_assert_eq(memcmp(w.keys[i], k, 16), 0, "position %d", i);
    cr_assert_eq(w.lens[i], strlen("value-") + (i < 10 ? 1 : 2));
  }
  pc_cache_close(c);
}

Test(cache, iterate_stops_early) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  static struct walk_log w;
  for (uint32_t i = 0; i < 10; i++) put_str(c, i, "v");
  w.stop_after = 3;
  cr_assert_eq(pc_cache_iterate(c, record, &w), 42);
  cr_assert_eq(w.n, 3);
  /* The walk's txn is gone: the handle still reads and writes. */
  put_str(c, 100, "after");
  assert_get_str(c, 100, "after");
  pc_cache_close(c);
}

Test(cache, iterate_empty) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  static struct walk_log w;
  cr_assert_eq(pc_cache_iterate(c, record, &w), 0);
  cr_assert_eq(w.n, 0);
  pc_cache_close(c);
}

Test(cache, count) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  size_t n = 99, bytes = 99, bytes10 = 0;
  uint8_t k[16];
  cr_assert_eq(pc_cache_count(c, &n, &bytes), 0);
  cr_assert_eq(n, 0);
  for (uint32_t i = 0; i < 10; i++) put_str(c, i, "some value bytes");
  cr_assert_eq(pc_cache_count(c, &n, &bytes10), 0);
  cr_assert_eq(n, 10);
  cr_assert_gt(bytes10, 0);
  cr_assert_eq(bytes10 % (size_t)sysconf(_SC_PAGESIZE), 0);
  mkkey(k, 0);
  cr_assert_eq(pc_cache_del(c, k), 0);
  cr_assert_eq(pc_cache_count(c, &n, &bytes), 0);
  cr_assert_eq(n, 9);
  pc_cache_close(c);
}

Test(cache, count_bytes_follow_data) {
  pc_cache *c = open_ok(g_dir, 64 * MIB);
  size_t n, small, big;
  int last;
  cr_assert_eq(pc_cache_count(c, &n, &small), 0);
  cr_assert_eq(fill_until_full(c, 0, 100, 64 * 1024, &last), 100);
  cr_assert_eq(pc_cache_count(c, &n, &big), 0);
  cr_assert_eq(n, 100);
  cr_assert_geq(big, small + 100 * 64 * 1024);
  pc_cache_close(c);
}

Test(cache, secret_created_once) {
  char other[128];
  uint8_t s1[PC_CACHE_SECRET_LEN], s2[PC_CACHE_SECRET_LEN], s3[PC_CACHE_SECRET_LEN];
  uint8_t zero[PC_CACHE_SECRET_LEN] = {0};
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  cr_assert_eq(pc_cache_secret(c, s1), 0);
  cr_assert_neq(memcmp(s1, zero, sizeof zero), 0);
  cr_assert_eq(pc_cache_secret(c, s2), 0);
  cr_assert_eq(memcmp(s1, s2, sizeof s1), 0);
  pc_cache_close(c);

  c = open_ok(g_dir, 16 * MIB);
  cr_assert_eq(pc_cache_secret(c, s2), 0);
  cr_assert_eq(memcmp(s1, s2, sizeof s1), 0);
  pc_cache_close(c);

  subdir(other, sizeof other, "other");
  c = open_ok(other, 16 * MIB);
  cr_assert_eq(pc_cache_secret(c, s3), 0);
  cr_assert_neq(memcmp(s1, s3, sizeof s1), 0);
  pc_cache_close(c);
}

Test(cache, secret_is_not_an_entry) {
  uint8_t s[PC_CACHE_SECRET_LEN];
  size_t n, bytes;
  static struct walk_log w;
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  cr_assert_eq(pc_cache_secret(c, s), 0);
  cr_assert_eq(pc_cache_count(c, &n, &bytes), 0);
  cr_assert_eq(n, 0);
  cr_assert_eq(pc_cache_iterate(c, record, &w), 0);
  cr_assert_eq(w.n, 0);
  pc_cache_close(c);
}

Test(cache, persists_across_reopen) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  size_t n, bytes;
  for (uint32_t i = 0; i < 100; i++) put_str(c, i, i % 2 ? "odd" : "even");
  pc_cache_close(c);
  c = open_ok(g_dir, 16 * MIB);
  cr_assert_eq(pc_cache_count(c, &n, &bytes), 0);
  cr_assert_eq(n, 100);
  for (uint32_t i = 0; i < 100; i++) assert_get_str(c, i, i % 2 ? "odd" : "even");
  pc_cache_close(c);
}

Test(cache, batch_sync_mode) {
  pc_cache *c = NULL;
  cr_assert_eq(pc_cache_open(g_dir, 16 * MIB, PC_SYNC_BATCH, &c), 0);
  put_str(c, 5, "durable");
  cr_assert_eq(pc_cache_sync(c), 0);
  pc_cache_close(c);
  c = open_ok(g_dir, 16 * MIB);
  assert_get_str(c, 5, "durable");
  pc_cache_close(c);
}

Test(cache, creates_nested_private_directory) {
  char dir[128];
  struct stat st;
  subdir(dir, sizeof dir, "a/b/c");
  pc_cache *c = open_ok(dir, 0); /* 0: the 1 MiB minimum */
  put_str(c, 1, "x");
  pc_cache_close(c);
  cr_assert_eq(stat(dir, &st), 0);
  cr_assert(S_ISDIR(st.st_mode));
  cr_assert_eq(st.st_mode & 0777, 0700);
}

Test(cache, open_fails_on_a_file) {
  char path[128];
  pc_cache *c = (pc_cache *)&c; /* must be NULLed on failure */
  subdir(path, sizeof path, "plain-file");
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fclose(f);
  cr_assert_eq(pc_cache_open(path, 16 * MIB, PC_SYNC_PERIODIC, &c), PC_EIO);
  cr_assert_null(c);
  pc_cache_close(NULL); /* harmless */
}

Test(cache, map_full_then_still_usable) {
  pc_cache *c = open_ok(g_dir, 1 * MIB);
  const size_t vlen = 64 * 1024;
  int last = 0;
  uint32_t stored = fill_until_full(c, 0, 64, vlen, &last);
  cr_assert_eq(last, PC_EMAPFULL, "got %s", pc_strerror(last));
  cr_assert_gt(stored, 4);
  cr_assert_lt(stored, 16);
  /* The failed put stored nothing and broke nothing. */
  cr_assert_eq(get_rc(c, stored), PC_ENOTFOUND);
  for (uint32_t i = 0; i < stored; i++) assert_get_value(c, i, vlen);
  /* Deleting frees room, though not at once: LMDB reuses pages freed by a
   * txn only a few txns later (older snapshots must stay intact), and each
   * txn needs fresh pages for its own copy-on-write. So delete one entry at
   * a time until the put fits; a few deletes must be enough. */
  uint8_t k[16];
  uint32_t deleted = 0;
  do {
    mkkey(k, deleted++);
    cr_assert_eq(pc_cache_del(c, k), 0);
  } while (fill_until_full(c, 1000, 1, vlen, &last) == 0 && deleted < stored / 2);
  cr_assert_eq(last, 0, "still full after %u deletes", deleted);
  assert_get_value(c, 1000, vlen);
  pc_cache_close(c);
  /* And it all survived. */
  c = open_ok(g_dir, 1 * MIB);
  for (uint32_t i = deleted; i < stored; i++) assert_get_value(c, i, vlen);
  assert_get_value(c, 1000, vlen);
  pc_cache_close(c);
}

/* Run `fn` in a child process; returns its exit status (0: success). */
static int in_child(int (*fn)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) _exit(fn());
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

static int child_put_one(void) {
  pc_cache *c = NULL;
  uint8_t k[16];
  if (pc_cache_open(g_dir, 16 * MIB, PC_SYNC_PERIODIC, &c)) return 1;
  mkkey(k, 77);
  int rc = pc_cache_put(c, k, "from child", 10);
  pc_cache_close(c);
  return rc ? 2 : 0;
}

Test(cache, sees_writes_of_another_process) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  size_t n, bytes;
  put_str(c, 1, "from parent");
  cr_assert_eq(get_rc(c, 77), PC_ENOTFOUND); /* the read txn exists and is reset */
  cr_assert_eq(in_child(child_put_one), 0);
  assert_get_str(c, 77, "from child");
  assert_get_str(c, 1, "from parent");
  cr_assert_eq(pc_cache_count(c, &n, &bytes), 0);
  cr_assert_eq(n, 2);
  pc_cache_close(c);
}

static int child_secret(void) {
  pc_cache *c = NULL;
  uint8_t s[PC_CACHE_SECRET_LEN];
  if (pc_cache_open(g_dir, 16 * MIB, PC_SYNC_PERIODIC, &c)) return 1;
  int rc = pc_cache_secret(c, s);
  pc_cache_close(c);
  return rc ? 2 : 0;
}

Test(cache, secret_created_by_another_process_is_used) {
  pc_cache *c = open_ok(g_dir, 16 * MIB);
  uint8_t s1[PC_CACHE_SECRET_LEN], s2[PC_CACHE_SECRET_LEN];
  cr_assert_eq(in_child(child_secret), 0);
  cr_assert_eq(pc_cache_secret(c, s1), 0);
  pc_cache_close(c);
  c = open_ok(g_dir, 16 * MIB);
  cr_assert_eq(pc_cache_secret(c, s2), 0);
  cr_assert_eq(memcmp(s1, s2, sizeof s1), 0);
  pc_cache_close(c);
}

/* The child opens with a larger map and writes past the parent's 1 MiB. */
static int child_grow(void) {
  pc_cache *c = NULL;
  uint8_t k[16];
  static uint8_t v[64 * 1024];
  if (pc_cache_open(g_dir, 16 * MIB, PC_SYNC_PERIODIC, &c)) return 1;
  for (uint32_t i = 500; i < 540; i++) {
    mkkey(k, i);
    fill_value(v, sizeof v, i);
    if (pc_cache_put(c, k, v, sizeof v)) return 2;
  }
  pc_cache_close(c);
  return 0;
}

Test(cache, adopts_map_grown_by_another_process) {
  pc_cache *c = open_ok(g_dir, 1 * MIB);
  int last;
  put_str(c, 1, "small");
  assert_get_str(c, 1, "small");
  cr_assert_eq(in_child(child_grow), 0);
  /* 40 x 64 KiB is beyond our 1 MiB map: LMDB says MDB_MAP_RESIZED and the
   * handle adopts the new size, for reads, walks and writes alike. */
  assert_get_value(c, 539, 64 * 1024);
  assert_get_str(c, 1, "small");
  static struct walk_log w;
  cr_assert_eq(pc_cache_iterate(c, record, &w), 0);
  cr_assert_eq(w.n, 41);
  cr_assert_eq(fill_until_full(c, 2000, 1, 64 * 1024, &last), 1, "got %s", pc_strerror(last));
  pc_cache_close(c);
}

static int child_grow_then_parent_writes(void) { return child_grow(); }

Test(cache, write_after_growth_without_read) {
  pc_cache *c = open_ok(g_dir, 1 * MIB);
  int last;
  cr_assert_eq(in_child(child_grow_then_parent_writes), 0);
  /* First call after the growth is a write txn. */
  cr_assert_eq(fill_until_full(c, 3000, 1, 1024, &last), 1, "got %s", pc_strerror(last));
  assert_get_value(c, 3000, 1024);
  assert_get_value(c, 520, 64 * 1024);
  pc_cache_close(c);
}

/* A leaf page whose free-space offsets are damaged is found by the
 * structure check, and the handle writes no more (LMDB writing into such a
 * page moves memory past it). A healthy database passes. */
Test(cache, structure_check_turns_writes_off_on_a_damaged_leaf) {
  char dir[PATH_MAX], file[PATH_MAX + 16];
  subdir(dir, sizeof dir, "check");
  pc_cache *c = open_ok(dir, 16 * MIB);
  for (uint32_t i = 0; i < 20; i++) put_str(c, i, "a value");
  cr_assert_eq(pc_cache_check(c), 0, "a healthy database passes");
  pc_cache_close(c);
  /* find key 7's leaf page in the file and break its upper offset */
  snprintf(file, sizeof file, "%s/data.mdb", dir);
  FILE *f = fopen(file, "r+b");
  cr_assert_not_null(f);
  static unsigned char data[1 << 20];
  size_t n = fread(data, 1, sizeof data, f);
  uint8_t k[16];
  mkkey(k, 7);
  /* every page holding it (copy-on-write leaves old copies in the file too) */
  int pages = 0;
  for (unsigned char *at = data; (at = memmem(at, n - (size_t)(at - data), k, 16)); at += 16, pages++) {
    size_t page = (size_t)(at - data) / 4096 * 4096;
    data[page + 14] = 0xff;
    data[page + 15] = 0xff;
    cr_assert_eq(fseek(f, (long)page + 14, SEEK_SET), 0);
    cr_assert_eq(fwrite(data + page + 14, 1, 2, f), 2);
  }
  cr_assert(pages > 0);
  fclose(f);
  c = open_ok(dir, 16 * MIB);
  cr_expect_eq(pc_cache_check(c), PC_ECORRUPT);
  cr_expect(pc_cache_corrupt(c));
  mkkey(k, 100);
  cr_expect_eq(pc_cache_put(c, k, "x", 1), PC_ECORRUPT, "no write after the check failed");
  pc_cache_close(c);
}
