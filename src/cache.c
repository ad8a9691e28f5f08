/* cache.c — the LMDB environment (see cache.h); the only file that calls LMDB.
 * What must stay true here:
 *  - The hit path (pc_cache_get) never opens a write txn. It reuses one read
 *    txn per thread (event-loop workers share the environment), renewed
 *    before and reset after every lookup, so a lookup costs no allocation and
 *    holds no snapshot between requests (a held snapshot would stop LMDB from
 *    reusing freed pages).
 *  - "atime" holds a last-access time per entry (ms, u64 LE), written in
 *    batches by the writer thread; eviction drops the least recently used.
 *  - Values are borrowed from the map only while a txn is open: get copies
 *    them out, iterate lends them to the callback for the call only.
 *  - Everything read from disk is checked, never asserted; every LMDB error is
 *    mapped to a PC_E* code at this boundary (map_err).
 *  - Another process may grow the map (it opened with a larger max size):
 *    LMDB then reports MDB_MAP_RESIZED and we adopt the new size and retry once.
 *  Internal helpers return raw LMDB codes when the caller must inspect them
 *  (MDB_MAP_RESIZED, MDB_NOTFOUND) and PC_E* codes otherwise; the public
 *  functions always return PC_E* codes. */
#include "cache.h"
#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <limits.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

#define KEY_LEN 16
#define MIN_MAP_SIZE ((size_t)1 << 20)
#define MAX_DBS 4
#define MAX_READERS 126
#define SECRET_KEY "secret"

struct pc_cache {
  MDB_env *env;
  MDB_dbi entries;
  MDB_dbi meta;
  MDB_dbi atime;
  int env_open;           /* mdb_env_open succeeded: sync and dbi close make sense */
  int read_only;          /* opened with pc_cache_open_ro */
  atomic_int corrupt;     /* a read faulted on the map: the file is damaged */
  atomic_int write_fault; /* ... inside a write txn, which is left open: no more writes */
  int dbis_open;          /* entries and meta are valid handles */
};

/* The calling thread's reusable read txn for get/count/secret (NULL until
 * first use), tied to the handle it was begun on. */
static __thread struct {
  const pc_cache *owner;
  MDB_txn *txn;
} tls_r;

static MDB_txn **rtxn_slot(const pc_cache *c) {
  if (tls_r.owner != c) {
    /* a txn of a handle closed on this thread was aborted at close */
    tls_r.owner = c;
    tls_r.txn = NULL;
  }
  return &tls_r.txn;
}

/* ---- errors --------------------------------------------------------- */

static int map_err(int m) {
  switch (m) {
  case MDB_SUCCESS:
    return 0;
  case MDB_NOTFOUND:
    return PC_ENOTFOUND;
  case MDB_KEYEXIST:
    return PC_EEXISTS;
  case MDB_MAP_FULL:
    return PC_EMAPFULL;
  case MDB_BAD_VALSIZE:
    return PC_ETOOBIG; /* keys are fixed, so it is the value */
  case ENOMEM:
    return PC_ENOMEM;
  case EINVAL:
    return PC_EINVAL;
  case EACCES:
  case EPERM:
  case EROFS:
    return PC_EREADONLY;
  case ENOSPC:
  case EFBIG:
  case EDQUOT:
    return PC_ENOSPACE;
  case MDB_VERSION_MISMATCH:
    return PC_EVERSION;
  case MDB_INVALID:
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_INCOMPATIBLE:
    return PC_ECORRUPT;
  default:
    return PC_EIO; /* errno values, MDB_PANIC, MDB_READERS_FULL, ... */
  }
}

/* ---- the fault guard ------------------------------------------------ */

/* LMDB trusts its file: a damaged page (a flipped bit in a page number or a
 * node offset) makes it read wild addresses, and a page past the end of a
 * truncated file is SIGBUS. So every public call that reads the map runs
 * under a guard: SIGSEGV/SIGBUS raised while a thread's guard is armed jump
 * back to it, the txn and cursor it had open are dropped, and the call
 * returns PC_ECORRUPT. A fault with no guard armed is a bug like any other:
 * the handler that was installed before ours (the default, or a
 * sanitizer's) gets it. */
static __thread sigjmp_buf *tls_jmp;
static __thread MDB_txn *tls_open_txn;       /* begun inside the guarded call */
static __thread int tls_open_write;          /* ... and it is a write txn */
static __thread MDB_cursor *tls_open_cursor; /* opened inside it (read txns need an explicit close) */
static struct sigaction old_segv, old_bus;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

static void on_fault(int sig, siginfo_t *si, void *uc) {
  sigjmp_buf *g = tls_jmp;
  if (g) {
    tls_jmp = NULL;
    siglongjmp(*g, sig);
  }
  /* not ours: hand it back; returning re-executes the faulting access */
  sigaction(sig, sig == SIGBUS ? &old_bus : &old_segv, NULL);
}

/* LMDB's own assertions (a damaged page breaks its invariants) call this,
 * then abort(): under an armed guard, jump back like a fault instead. */
static void on_lmdb_assert(MDB_env *env, const char *msg) {
  sigjmp_buf *g = tls_jmp;
  if (g) {
    tls_jmp = NULL;
    siglongjmp(*g, SIGABRT);
  }
}

static void guard_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &old_segv);
  sigaction(SIGBUS, &sa, &old_bus);
}

/* After a fault: a read txn is dropped (reading garbage changed nothing
 * LMDB owns). A write txn cannot be: the fault may have left its dirty-page
 * list half-updated, and aborting it could free what was never allocated.
 * It is left as it is (LMDB's write lock with it), and this handle writes
 * no more: every later write returns PC_ECORRUPT at once. */
static int fault_recover(pc_cache *c) {
  if (tls_open_cursor) mdb_cursor_close(tls_open_cursor);
  tls_open_cursor = NULL;
  if (tls_open_txn && !tls_open_write) mdb_txn_abort(tls_open_txn);
  if (tls_open_txn && tls_open_write) atomic_store(&c->write_fault, 1);
  tls_open_txn = NULL;
  tls_open_write = 0;
  if (tls_r.owner == c && tls_r.txn) mdb_txn_abort(tls_r.txn);
  if (tls_r.owner == c) tls_r.txn = NULL;
  if (!atomic_exchange(&c->corrupt, 1))
    pc_log_warn(
        "the database is damaged: a read of its file faulted; what touches the damaged pages fails (lookups miss, "
        "stores are refused); run `promptcache verify`");
  return PC_ECORRUPT;
}

static int writes_refused(pc_cache *c) { return atomic_load(&c->write_fault) ? PC_ECORRUPT : 0; }

/* Evaluate `call` (an int expression) under the guard, from a function
 * that returns its value. Nothing the call changed is used after a fault. */
#define GUARDED(c, call)                                                                                               \
  do {                                                                                                                 \
    sigjmp_buf jb_;                                                                                                    \
    sigjmp_buf *volatile outer_ = tls_jmp;                                                                             \
    if (sigsetjmp(jb_, 0)) {                                                                                           \
      tls_jmp = outer_;                                                                                                \
      return fault_recover(c);                                                                                         \
    }                                                                                                                  \
    tls_jmp = &jb_;                                                                                                    \
    int rc_ = (call);                                                                                                  \
    tls_jmp = outer_;                                                                                                  \
    return rc_;                                                                                                        \
  } while (0)

int pc_cache_corrupt(const pc_cache *c) { return atomic_load(&((pc_cache *)c)->corrupt); }

/* ---- opening -------------------------------------------------------- */

/* mkdir -p with mode 0700 (the directory holds cached responses). Failures on
 * intermediate components are ignored: they may exist but be unwritable by us;
 * only the final directory has to exist. */
static int mkdir_p(const char *path) {
  char tmp[PATH_MAX];
  struct stat st;
  size_t n = strlen(path);
  int rc = PC_EINVAL;

  if (n == 0 || n >= sizeof tmp) goto out;
  memcpy(tmp, path, n + 1);
  for (char *s = tmp + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    (void)mkdir(tmp, 0700);
    *s = '/';
  }
  rc = PC_EIO;
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST) goto out;
  if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode)) goto out;
  rc = 0;
out:
  return rc;
}

/* max_size rounded up to whole pages, at least MIN_MAP_SIZE; saturates
 * instead of overflowing (mmap then fails cleanly). */
static size_t map_size_for(size_t max_size) {
  long ps = sysconf(_SC_PAGESIZE);
  size_t psize = ps > 0 ? (size_t)ps : 4096;
  size_t n = max_size < MIN_MAP_SIZE ? MIN_MAP_SIZE : max_size;
  size_t rem = n % psize;
  if (rem == 0) return n;
  if (n > SIZE_MAX - (psize - rem)) return SIZE_MAX / psize * psize;
  return n + (psize - rem);
}

static int env_create(pc_cache *c, size_t max_size) {
  int m = mdb_env_create(&c->env);
  if (!m) m = mdb_env_set_assert(c->env, on_lmdb_assert);
  if (!m) m = mdb_env_set_maxdbs(c->env, MAX_DBS);
  if (!m) m = mdb_env_set_maxreaders(c->env, MAX_READERS);
  if (!m && max_size) m = mdb_env_set_mapsize(c->env, map_size_for(max_size));
  return m;
}

static int env_open(pc_cache *c, const char *path, size_t max_size, enum pc_cache_sync sync, int ro) {
  /* MDB_NOTLS: read txns belong to the handle, not the thread. MDB_NORDAHEAD:
   * lookups are random, read-ahead only evicts useful pages. MDB_NOSYNC in
   * periodic mode: a committed txn is in the OS page cache, so a process crash
   * loses nothing; pc_cache_sync() bounds what an OS crash can lose. */
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (sync == PC_SYNC_PERIODIC ? MDB_NOSYNC : 0) | (ro ? MDB_RDONLY : 0);
  int dead = 0;
  int m = env_create(c, ro ? 0 : max_size);
  if (!m) m = mdb_env_open(c->env, path, flags, 0600);
  if (m == EACCES && ro) {
    /* A database we may read but not lock (a read-only directory that is
     * not a read-only mount, which LMDB handles itself): read it without
     * the lock file; nobody can be writing where we cannot. */
    mdb_env_close(c->env);
    c->env = NULL;
    m = env_create(c, 0);
    if (!m) m = mdb_env_open(c->env, path, flags | MDB_NOLOCK, 0600);
  }
  if (m) goto out;
  c->env_open = 1;
  c->read_only = ro;
  /* Free reader slots left behind by crashed processes, or they would pin
   * old snapshots (and pages) forever. */
  if (!ro) m = mdb_reader_check(c->env, &dead);
out:
  return map_err(m);
}

/* Every page the database says it uses must be in the file: the map is
 * larger than the file, and touching a page past its end is SIGBUS, not an
 * error. So a truncated data.mdb is refused here, before any read. */
static int check_size(pc_cache *c) {
  MDB_envinfo info;
  MDB_stat st;
  int fd = -1;
  struct stat fs;
  if (mdb_env_info(c->env, &info) || mdb_env_stat(c->env, &st) || mdb_env_get_fd(c->env, &fd) || fstat(fd, &fs))
    return PC_EIO;
  if ((uint64_t)fs.st_size < ((uint64_t)info.me_last_pgno + 1) * st.ms_psize) return PC_ECORRUPT;
  return 0;
}

/* Adopt a map grown by another process. Only legal with no txn of ours
 * active, so the (reset) read txn is dropped first; the next get begins a
 * fresh one. */
static int adopt_mapsize(pc_cache *c) {
  MDB_txn **r = rtxn_slot(c);
  if (*r) {
    mdb_txn_abort(*r);
    *r = NULL;
  }
  return mdb_env_set_mapsize(c->env, 0);
}

/* Begin a txn (raw LMDB code), adopting a grown map once if needed. The
 * guard knows it (tls_open_txn) until it is committed or aborted. */
static int txn_begin(pc_cache *c, unsigned flags, MDB_txn **txn) {
  int m = mdb_txn_begin(c->env, NULL, flags, txn);
  if (m == MDB_MAP_RESIZED) {
    m = adopt_mapsize(c);
    if (!m) m = mdb_txn_begin(c->env, NULL, flags, txn);
  }
  if (!m) {
    tls_open_txn = *txn;
    tls_open_write = !(flags & MDB_RDONLY);
  }
  return m;
}

/* LMDB reports a short write (a full disk, a file-size limit reached in
 * the middle of a page) as EIO: say so when the file cannot grow. */
static int short_of_space(MDB_env *env) {
  int fd = -1;
  struct stat fs;
  struct statvfs vs;
  struct rlimit rl;
  if (mdb_env_get_fd(env, &fd) || fstat(fd, &fs)) return 0;
  if (!getrlimit(RLIMIT_FSIZE, &rl) && rl.rlim_cur != RLIM_INFINITY && (uint64_t)fs.st_size + 65536 >= rl.rlim_cur)
    return 1;
  return !fstatvfs(fd, &vs) && (uint64_t)vs.f_bavail * vs.f_frsize < 65536;
}

/* Commit (raw LMDB code). The txn is freed by LMDB whatever the outcome. */
static int txn_commit(MDB_txn **txn) {
  MDB_env *env = mdb_txn_env(*txn);
  int m = mdb_txn_commit(*txn);
  if (m == EIO && short_of_space(env)) m = ENOSPC;
  *txn = NULL;
  tls_open_txn = NULL;
  tls_open_write = 0;
  return m;
}

static void txn_abort(MDB_txn **txn) {
  if (*txn) mdb_txn_abort(*txn);
  *txn = NULL;
  tls_open_txn = NULL;
  tls_open_write = 0;
}

static int cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cur) {
  int m = mdb_cursor_open(txn, dbi, cur);
  if (!m) tls_open_cursor = *cur;
  return m;
}

static void cursor_close(MDB_cursor **cur) {
  if (*cur) mdb_cursor_close(*cur);
  *cur = NULL;
  tls_open_cursor = NULL;
}

static int dbis_open(pc_cache *c) {
  MDB_txn *txn = NULL;
  unsigned create = c->read_only ? 0 : MDB_CREATE;
  int m = txn_begin(c, c->read_only ? MDB_RDONLY : 0, &txn);
  if (m) goto out;
  m = mdb_dbi_open(txn, "entries", create, &c->entries);
  if (m) goto out;
  m = mdb_dbi_open(txn, "meta", create, &c->meta);
  if (m) goto out;
  m = mdb_dbi_open(txn, "atime", create, &c->atime);
  if (m) goto out;
  m = txn_commit(&txn);
  if (m) goto out;
  c->dbis_open = 1;
out:
  txn_abort(&txn);
  if (m == MDB_NOTFOUND) return PC_ECORRUPT; /* read-only and not a promptcache database */
  return map_err(m);
}

static int open_env(const char *path, size_t max_size, enum pc_cache_sync sync, int ro, pc_cache **out) {
  pc_cache *c = NULL;
  int rc = PC_EINVAL;

  *out = NULL;
  pthread_once(&guard_once, guard_install);
  if (path == NULL) goto out;
  rc = ro ? 0 : mkdir_p(path);
  if (rc) goto out;
  rc = PC_ENOMEM;
  c = calloc(1, sizeof *c);
  if (!c) goto out;
  rc = env_open(c, path, max_size, sync, ro);
  if (rc) goto out;
  rc = check_size(c);
  if (rc) goto out;
  rc = dbis_open(c);
  if (rc) goto out;
  *out = c;
  c = NULL;
out:
  pc_cache_close(c);
  return rc;
}

int pc_cache_open(const char *path, size_t max_size, enum pc_cache_sync sync, pc_cache **out) {
  return open_env(path, max_size, sync, 0, out);
}

int pc_cache_open_ro(const char *path, pc_cache **out) { return open_env(path, 0, PC_SYNC_PERIODIC, 1, out); }

void pc_cache_close(pc_cache *c) {
  if (!c) return;
  pc_cache_thread_done(c); /* aborting a reset read txn just frees it */
  if (c->env_open && !c->read_only && !atomic_load(&c->write_fault)) (void)mdb_env_sync(c->env, 1);
  if (c->dbis_open) {
    mdb_dbi_close(c->env, c->entries);
    mdb_dbi_close(c->env, c->meta);
    mdb_dbi_close(c->env, c->atime);
  }
  if (c->env) mdb_env_close(c->env);
  free(c);
}

int pc_cache_sync(pc_cache *c) { return map_err(mdb_env_sync(c->env, 1)); }

/* ---- the reusable read txn ------------------------------------------ */

/* Renew the handle's read txn (begin it the first time). A failed renew has
 * already ended the txn inside LMDB, so it is freed and begun afresh, which
 * also covers MDB_MAP_RESIZED. Returns a PC_E* code. */
static int rtxn_acquire(pc_cache *c, MDB_txn **txn) {
  MDB_txn *t = NULL, **r = rtxn_slot(c);
  int m = MDB_BAD_TXN; /* no txn to renew yet */
  if (*r) m = mdb_txn_renew(*r);
  if (m) {
    txn_abort(r);
    m = txn_begin(c, MDB_RDONLY, &t);
    r = rtxn_slot(c);
    if (m == 0) *r = t;
  }
  *txn = *r;
  return map_err(m);
}

/* Release the snapshot (and with it every borrowed pointer), keep the handle. */
static void rtxn_release(pc_cache *c) { mdb_txn_reset(*rtxn_slot(c)); }

void pc_cache_thread_done(pc_cache *c) {
  if (tls_r.owner == c) txn_abort(&tls_r.txn);
  tls_r.owner = NULL;
}

static MDB_val key_val(const uint8_t key[KEY_LEN]) {
  MDB_val k = {KEY_LEN, (void *)key};
  return k;
}

static int pc_cache_get_unguarded(pc_cache *c, const uint8_t key[16], pc_buf *out) {
  MDB_txn *txn;
  MDB_val k = key_val(key), v;
  int rc = rtxn_acquire(c, &txn);
  if (rc) goto out;
  rc = map_err(mdb_get(txn, c->entries, &k, &v));
  if (rc == 0) {
    /* Copy before reset: v points into the map only while the txn lives. */
    pc_buf_reset(out);
    rc = pc_buf_append(out, v.mv_data, v.mv_size);
  }
  rtxn_release(c);
out:
  return rc;
}

int pc_cache_get(pc_cache *c, const uint8_t key[16], pc_buf *out) { GUARDED(c, pc_cache_get_unguarded(c, key, out)); }

static int pc_cache_get_ref_unguarded(pc_cache *c, const uint8_t key[16], const void **p, size_t *n) {
  MDB_txn *txn;
  MDB_val k = key_val(key), v;
  int rc = rtxn_acquire(c, &txn);
  if (rc) return rc;
  rc = map_err(mdb_get(txn, c->entries, &k, &v));
  if (rc) {
    rtxn_release(c);
    return rc;
  }
  *p = v.mv_data;
  *n = v.mv_size;
  return 0;
}

int pc_cache_get_ref(pc_cache *c, const uint8_t key[16], const void **p, size_t *n) {
  GUARDED(c, pc_cache_get_ref_unguarded(c, key, p, n));
}

void pc_cache_release(pc_cache *c) { rtxn_release(c); }

/* ---- writes --------------------------------------------------------- */

/* Access times: u64 little-endian milliseconds since the epoch. */
static int atime_put(pc_cache *c, MDB_txn *txn, const uint8_t key[KEY_LEN], uint64_t now_ms) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(now_ms >> (8 * i));
  MDB_val k = key_val(key), v = {sizeof b, b};
  return mdb_put(txn, c->atime, &k, &v, 0);
}

static uint64_t atime_get(pc_cache *c, MDB_txn *txn, const uint8_t key[KEY_LEN]) {
  MDB_val k = key_val(key), v;
  if (mdb_get(txn, c->atime, &k, &v) || v.mv_size != 8) return 0;
  const unsigned char *b = v.mv_data;
  uint64_t t = 0;
  for (int i = 7; i >= 0; i--) t = t << 8 | b[i];
  return t;
}

/* Delete an entry and its access time (raw LMDB code). */
static int del_one(pc_cache *c, MDB_txn *txn, const uint8_t key[KEY_LEN]) {
  MDB_val k = key_val(key);
  int m = mdb_del(txn, c->entries, &k, NULL);
  if (m == 0 || m == MDB_NOTFOUND) {
    int a = mdb_del(txn, c->atime, &k, NULL);
    if (a && a != MDB_NOTFOUND) return a;
  }
  return m;
}

/* All items in one txn; raw LMDB code of the first failure. */
static int put_all(pc_cache *c, struct pc_cache_put_item *items, size_t n, uint64_t now) {
  MDB_txn *txn = NULL;
  int m = txn_begin(c, 0, &txn);
  for (size_t i = 0; !m && i < n; i++) {
    MDB_val k = key_val(items[i].key), v = {items[i].len, (void *)items[i].val};
    m = mdb_put(txn, c->entries, &k, &v, 0);
    if (!m) m = atime_put(c, txn, items[i].key, now);
  }
  if (!m) m = txn_commit(&txn);
  txn_abort(&txn);
  return m;
}

static int pc_cache_put_batch_unguarded(pc_cache *c, struct pc_cache_put_item *items, size_t n) {
  uint64_t now = (uint64_t)pc_now_ms();
  int m = put_all(c, items, n, now);
  if (m == 0 || n == 1) {
    for (size_t i = 0; i < n; i++) items[i].rc = map_err(m);
    return map_err(m);
  }
  /* One bad item must not lose the batch: retry them one by one. */
  int first = 0;
  for (size_t i = 0; i < n; i++) {
    items[i].rc = map_err(put_all(c, &items[i], 1, now));
    if (items[i].rc && !first) first = items[i].rc;
  }
  return first;
}

int pc_cache_put_batch(pc_cache *c, struct pc_cache_put_item *items, size_t n) {
  if (writes_refused(c)) {
    for (size_t i = 0; i < n; i++) items[i].rc = PC_ECORRUPT;
    return PC_ECORRUPT;
  }
  GUARDED(c, pc_cache_put_batch_unguarded(c, items, n));
}

static int pc_cache_touch_batch_unguarded(pc_cache *c, const uint8_t *keys, size_t n) {
  uint64_t now = (uint64_t)pc_now_ms();
  MDB_txn *txn = NULL;
  int m = txn_begin(c, 0, &txn);
  for (size_t i = 0; !m && i < n; i++) {
    MDB_val k = key_val(keys + KEY_LEN * i), v;
    if (mdb_get(txn, c->entries, &k, &v)) continue; /* evicted or purged meanwhile */
    m = atime_put(c, txn, keys + KEY_LEN * i, now);
  }
  if (!m) m = txn_commit(&txn);
  txn_abort(&txn);
  return map_err(m);
}

int pc_cache_touch_batch(pc_cache *c, const uint8_t *keys, size_t n) {
  if (writes_refused(c)) return PC_ECORRUPT;
  GUARDED(c, pc_cache_touch_batch_unguarded(c, keys, n));
}

struct victim {
  uint8_t key[KEY_LEN];
  uint64_t atime;
  size_t size;
};

static int cmp_victim(const void *a, const void *b) {
  const struct victim *x = a, *y = b;
  return (x->atime > y->atime) - (x->atime < y->atime);
}

/* Every entry with its access time and size, in one read snapshot. */
static int collect_victims(pc_cache *c, struct victim **out, size_t *n) {
  MDB_txn *txn = NULL;
  MDB_cursor *cur = NULL;
  MDB_val k, v;
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  int m = txn_begin(c, MDB_RDONLY, &txn);
  if (!m) m = cursor_open(txn, c->entries, &cur);
  for (int op = MDB_FIRST; !m && (m = mdb_cursor_get(cur, &k, &v, op)) == 0; op = MDB_NEXT) {
    if (k.mv_size != KEY_LEN) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 1024;
      struct victim *nv = realloc(*out, cap * sizeof *nv);
      if (!nv) {
        m = ENOMEM;
        break;
      }
      *out = nv;
    }
    struct victim *vi = &(*out)[(*n)++];
    memcpy(vi->key, k.mv_data, KEY_LEN);
    vi->atime = atime_get(c, txn, vi->key);
    vi->size = v.mv_size + KEY_LEN + 64; /* rough per-entry overhead in pages */
  }
  if (m == MDB_NOTFOUND) m = 0;
  cursor_close(&cur);
  txn_abort(&txn);
  return m;
}

static int cmp_victim_key(const void *a, const void *b) {
  return memcmp(((const struct victim *)a)->key, ((const struct victim *)b)->key, KEY_LEN);
}

/* Delete v[0..n) in one write txn (raw LMDB code); *done counts deletions. */
static int del_batch(pc_cache *c, const struct victim *v, size_t n, size_t *done) {
  MDB_txn *txn = NULL;
  size_t k = 0;
  int m = txn_begin(c, 0, &txn);
  for (size_t i = 0; !m && i < n; i++) {
    m = del_one(c, txn, v[i].key);
    if (m == MDB_NOTFOUND)
      m = 0; /* purged meanwhile */
    else if (!m)
      k++;
  }
  if (!m) m = txn_commit(&txn);
  txn_abort(&txn);
  if (!m) *done += k;
  return m;
}

/* Small transactions, in key order: a delete copies every page it touches
 * (copy-on-write) and the old pages are reusable only after the commit, so
 * one big eviction txn in a nearly full map needs more free pages than there
 * are and fails with MDB_MAP_FULL, forever. A few dozen neighbouring keys
 * per txn touch few pages; a batch that still does not fit is halved, down
 * to one entry. */
#define EVICT_BATCH 64

static int del_victims(pc_cache *c, struct victim *v, size_t n, size_t *done) {
  size_t batch = EVICT_BATCH;
  int m = 0;
  qsort(v, n, sizeof *v, cmp_victim_key);
  for (size_t i = 0; i < n;) {
    size_t k = n - i < batch ? n - i : batch;
    m = del_batch(c, v + i, k, done);
    if (m == MDB_MAP_FULL && batch > 1) {
      batch /= 2;
      continue;
    }
    if (m) break;
    i += k;
  }
  return m;
}

static int pc_cache_evict_unguarded(pc_cache *c, size_t target_bytes, size_t *evicted) {
  size_t entries, bytes, n = 0, chosen = 0;
  struct victim *v = NULL;
  *evicted = 0;
  int rc = pc_cache_count(c, &entries, &bytes);
  if (rc || bytes <= target_bytes) return rc;
  int m = collect_victims(c, &v, &n);
  if (!m && n) qsort(v, n, sizeof *v, cmp_victim);
  size_t need = bytes - target_bytes, freed = 0;
  while (!m && chosen < n && freed < need) freed += v[chosen++].size; /* least recently used first */
  if (!m && chosen) m = del_victims(c, v, chosen, evicted);
  free(v);
  return map_err(m);
}

int pc_cache_evict(pc_cache *c, size_t target_bytes, size_t *evicted) {
  if (writes_refused(c)) return PC_ECORRUPT;
  GUARDED(c, pc_cache_evict_unguarded(c, target_bytes, evicted));
}

static int pc_cache_put_unguarded(pc_cache *c, const uint8_t key[16], const void *val, size_t len) {
  MDB_txn *txn = NULL;
  MDB_val k = key_val(key), v = {len, (void *)val};
  int m = txn_begin(c, 0, &txn);
  if (m) goto out;
  /* MDB_MAP_FULL here (or at commit) leaves the txn unusable: abort below,
   * nothing is stored and the environment stays usable. */
  m = mdb_put(txn, c->entries, &k, &v, 0);
  if (m) goto out;
  m = atime_put(c, txn, key, (uint64_t)pc_now_ms());
  if (m) goto out;
  m = txn_commit(&txn);
out:
  txn_abort(&txn);
  return map_err(m);
}

int pc_cache_put(pc_cache *c, const uint8_t key[16], const void *val, size_t len) {
  if (writes_refused(c)) return PC_ECORRUPT;
  GUARDED(c, pc_cache_put_unguarded(c, key, val, len));
}

static int pc_cache_del_unguarded(pc_cache *c, const uint8_t key[16]) {
  MDB_txn *txn = NULL;
  int m = txn_begin(c, 0, &txn);
  if (m) goto out;
  m = del_one(c, txn, key);
  if (m) goto out;
  m = txn_commit(&txn);
out:
  txn_abort(&txn);
  return map_err(m);
}

int pc_cache_del(pc_cache *c, const uint8_t key[16]) {
  if (writes_refused(c)) return PC_ECORRUPT;
  GUARDED(c, pc_cache_del_unguarded(c, key));
}

static int pc_cache_del_many_unguarded(pc_cache *c, const uint8_t *keys, size_t n, size_t *deleted) {
  MDB_txn *txn = NULL;
  size_t done = 0;
  int m = txn_begin(c, 0, &txn);
  for (size_t i = 0; !m && i < n; i++) {
    m = del_one(c, txn, keys + 16 * i);
    if (m == MDB_NOTFOUND)
      m = 0; /* deleted meanwhile by another process */
    else if (!m)
      done++;
  }
  if (!m) m = txn_commit(&txn);
  txn_abort(&txn);
  if (deleted) *deleted = m ? 0 : done;
  return map_err(m);
}

int pc_cache_del_many(pc_cache *c, const uint8_t *keys, size_t n, size_t *deleted) {
  if (writes_refused(c)) return PC_ECORRUPT;
  GUARDED(c, pc_cache_del_many_unguarded(c, keys, n, deleted));
}

/* ---- small named records in "meta" ---------------------------------- */

static int pc_cache_meta_get_unguarded(pc_cache *c, const char *name, pc_buf *out) {
  MDB_txn *txn;
  MDB_val k = {strlen(name), (void *)name}, v;
  int rc = rtxn_acquire(c, &txn);
  if (rc) return rc;
  rc = map_err(mdb_get(txn, c->meta, &k, &v));
  if (rc == 0) {
    pc_buf_reset(out);
    rc = pc_buf_append(out, v.mv_data, v.mv_size);
  }
  rtxn_release(c);
  return rc;
}

int pc_cache_meta_get(pc_cache *c, const char *name, pc_buf *out) {
  GUARDED(c, pc_cache_meta_get_unguarded(c, name, out));
}

static int pc_cache_meta_put_unguarded(pc_cache *c, const char *name, const void *val, size_t len) {
  MDB_txn *txn = NULL;
  MDB_val k = {strlen(name), (void *)name}, v = {len, (void *)val};
  int m = txn_begin(c, 0, &txn);
  if (m) goto out;
  m = mdb_put(txn, c->meta, &k, &v, 0);
  if (m) goto out;
  m = txn_commit(&txn);
out:
  txn_abort(&txn);
  return map_err(m);
}

int pc_cache_meta_put(pc_cache *c, const char *name, const void *val, size_t len) {
  if (writes_refused(c)) return PC_ECORRUPT;
  GUARDED(c, pc_cache_meta_put_unguarded(c, name, val, len));
}

/* ---- the secret ----------------------------------------------------- */

/* PC_ENOTFOUND when absent; a record of the wrong size is corruption, not a
 * reason to mint a new secret (that would silently change every key). */
static int secret_read(pc_cache *c, MDB_txn *txn, uint8_t out[PC_CACHE_SECRET_LEN]) {
  MDB_val k = {sizeof SECRET_KEY - 1, (void *)SECRET_KEY}, v;
  int rc = map_err(mdb_get(txn, c->meta, &k, &v));
  if (rc) return rc;
  if (v.mv_size != PC_CACHE_SECRET_LEN) return PC_ECORRUPT;
  memcpy(out, v.mv_data, PC_CACHE_SECRET_LEN);
  return 0;
}

static int fill_random(uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return PC_EIO;
    p += got;
    n -= (size_t)got;
  }
  return 0;
}

/* The get is repeated inside the write txn: writers are serialized, so if
 * another process created the secret since our read, we see and use theirs. */
static int secret_create(pc_cache *c, uint8_t out[PC_CACHE_SECRET_LEN]) {
  uint8_t fresh[PC_CACHE_SECRET_LEN];
  MDB_txn *txn = NULL;
  MDB_val k = {sizeof SECRET_KEY - 1, (void *)SECRET_KEY}, v = {sizeof fresh, fresh};
  int rc = map_err(txn_begin(c, 0, &txn));
  if (rc) goto out;
  rc = secret_read(c, txn, out);
  if (rc != PC_ENOTFOUND) goto out; /* 0: someone else's secret; or an error */
  rc = fill_random(fresh, sizeof fresh);
  if (rc) goto out;
  rc = map_err(mdb_put(txn, c->meta, &k, &v, 0));
  if (rc) goto out;
  rc = map_err(txn_commit(&txn));
  if (rc) goto out;
  memcpy(out, fresh, sizeof fresh);
  /* Made durable at once even in periodic mode: losing it in an OS crash
   * would silently change every credential-scoped key. */
  rc = pc_cache_sync(c);
out:
  txn_abort(&txn);
  return rc;
}

static int pc_cache_secret_unguarded(pc_cache *c, uint8_t out[PC_CACHE_SECRET_LEN]) {
  MDB_txn *txn;
  int rc = rtxn_acquire(c, &txn);
  if (rc) goto out;
  rc = secret_read(c, txn, out); /* the common case: no write txn at all */
  rtxn_release(c);
  if (rc == PC_ENOTFOUND) rc = secret_create(c, out);
out:
  return rc;
}

int pc_cache_secret(pc_cache *c, uint8_t out[PC_CACHE_SECRET_LEN]) { GUARDED(c, pc_cache_secret_unguarded(c, out)); }

/* Replace the secret (a fleet's nodes adopt one shared secret, or their
 * credential-scoped keys would never match): every credential-scoped key
 * computed with the old one stops matching. */
static int pc_cache_set_secret_unguarded(pc_cache *c, const uint8_t secret[PC_CACHE_SECRET_LEN]) {
  MDB_txn *txn = NULL;
  MDB_val k = {sizeof SECRET_KEY - 1, (void *)SECRET_KEY}, v = {PC_CACHE_SECRET_LEN, (void *)secret};
  int m = txn_begin(c, 0, &txn);
  if (!m) m = mdb_put(txn, c->meta, &k, &v, 0);
  if (!m) m = txn_commit(&txn);
  txn_abort(&txn);
  int rc = map_err(m);
  return rc ? rc : pc_cache_sync(c); /* durable at once, like a new secret */
}

int pc_cache_set_secret(pc_cache *c, const uint8_t secret[PC_CACHE_SECRET_LEN]) {
  if (writes_refused(c)) return PC_ECORRUPT;
  GUARDED(c, pc_cache_set_secret_unguarded(c, secret));
}

/* ---- walking and counting ------------------------------------------- */

static int walk(MDB_cursor *cur, pc_cache_iter_fn fn, void *ud) {
  MDB_val k, v;
  MDB_cursor_op op = MDB_FIRST;
  for (;;) {
    int m = mdb_cursor_get(cur, &k, &v, op);
    if (m == MDB_NOTFOUND) return 0;
    if (m) return map_err(m);
    if (k.mv_size != KEY_LEN) return PC_ECORRUPT; /* not written by us */
    int rc = fn(ud, k.mv_data, v.mv_data, v.mv_size);
    if (rc) return rc;
    op = MDB_NEXT;
  }
}

/* A txn of its own, not the get txn: the walk may be long, and the handle's
 * read txn must stay free to be reset. The snapshot pins pages for the whole
 * walk, which is why callbacks should be quick (and must not re-enter the
 * cache: a put that adopted a grown map would unmap the pages under the
 * cursor). */
static int pc_cache_iterate_unguarded(pc_cache *c, pc_cache_iter_fn fn, void *ud) {
  MDB_txn *txn = NULL;
  MDB_cursor *cur = NULL;
  int rc = map_err(txn_begin(c, MDB_RDONLY, &txn));
  if (rc) goto out;
  rc = map_err(cursor_open(txn, c->entries, &cur));
  if (rc) goto out;
  rc = walk(cur, fn, ud);
out:
  cursor_close(&cur);
  txn_abort(&txn);
  return rc;
}

int pc_cache_iterate(pc_cache *c, pc_cache_iter_fn fn, void *ud) { GUARDED(c, pc_cache_iterate_unguarded(c, fn, ud)); }

/* The header of the leaf page holding a record, as LMDB 0.9 lays it out
 * (lmdb.h does not export it): page number, pad, flags, then the free
 * space's lower and upper offsets and the node offsets. LMDB trusts these
 * when it writes into the page; a flipped bit there makes it move memory
 * past the page. Checked: the page is where its number says, the offsets
 * are in order, every node lies inside the page. */
#define P_LEAF 0x02
#define P_LEAF2 0x20
#define PAGEHDRSZ 16
#define NODEHDRSZ 8
#define F_BIGDATA 0x01

static uint16_t u16_at(const unsigned char *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

/* `*base` is where page 0 would be: every page of the map must agree (the
 * first one checked sets it; lmdb.h gives no map address). */
static int leaf_page_ok(const unsigned char *pg, uintptr_t *base, size_t psize) {
  uint64_t pgno;
  memcpy(&pgno, pg, 8);
  uint16_t flags = u16_at(pg + 10), lower = u16_at(pg + 12), upper = u16_at(pg + 14);
  uintptr_t b = (uintptr_t)pg - (uintptr_t)pgno * psize;
  if (!*base) *base = b;
  if (b != *base || !(flags & P_LEAF) || (flags & P_LEAF2)) return 0;
  if (lower < PAGEHDRSZ || (lower & 1) || lower > upper || upper > psize) return 0;
  for (size_t i = 0; i < (size_t)(lower - PAGEHDRSZ) / 2; i++) {
    uint16_t off = u16_at(pg + PAGEHDRSZ + 2 * i);
    if (off < upper || (size_t)off + NODEHDRSZ > psize) return 0;
    const unsigned char *node = pg + off;
    size_t dsize = u16_at(node) | (size_t)u16_at(node + 2) << 16, ksize = u16_at(node + 6);
    size_t room = psize - off - NODEHDRSZ;
    if (ksize > room || (!(u16_at(node + 4) & F_BIGDATA) && dsize > room - ksize)) return 0;
  }
  return 1;
}

/* Every record of one database in one cursor walk: the sizes our records
 * must have (LMDB does not know them), the leaf pages they sit in, and as
 * many records as the database says. */
static int check_dbi(MDB_txn *txn, MDB_dbi dbi, size_t key_len, size_t val_len, uintptr_t *base) {
  MDB_cursor *cur = NULL;
  MDB_stat st;
  MDB_val k, v;
  size_t n = 0;
  const unsigned char *last = NULL;
  int m = mdb_stat(txn, dbi, &st);
  if (!m) m = cursor_open(txn, dbi, &cur);
  size_t psize = st.ms_psize; /* the OS page size: the map and its pages are aligned to it */
  for (int op = MDB_FIRST; !m && (m = mdb_cursor_get(cur, &k, &v, op)) == 0; op = MDB_NEXT) {
    n++;
    if ((key_len && k.mv_size != key_len) || (val_len && v.mv_size != val_len) || k.mv_size == 0 || k.mv_size > 511)
      m = MDB_CORRUPTED;
    const unsigned char *pg = (const unsigned char *)((uintptr_t)k.mv_data & ~(uintptr_t)(psize - 1));
    if (!m && pg != last && !leaf_page_ok(pg, base, psize)) m = MDB_CORRUPTED;
    last = pg;
  }
  if (m == MDB_NOTFOUND) m = n == st.ms_entries ? 0 : MDB_CORRUPTED;
  cursor_close(&cur);
  return m;
}

static int pc_cache_check_unguarded(pc_cache *c) {
  MDB_txn *txn = NULL;
  int m = txn_begin(c, MDB_RDONLY, &txn);
  uintptr_t base = 0;
  if (!m) m = check_dbi(txn, c->entries, KEY_LEN, 0, &base);
  if (!m) m = check_dbi(txn, c->atime, KEY_LEN, 8, &base);
  if (!m) m = check_dbi(txn, c->meta, 0, 0, &base);
  txn_abort(&txn);
  return map_err(m);
}

int pc_cache_check(pc_cache *c) {
  int rc;
  {
    sigjmp_buf jb;
    sigjmp_buf *volatile outer = tls_jmp;
    if (sigsetjmp(jb, 0)) {
      tls_jmp = outer;
      rc = fault_recover(c);
      goto out;
    }
    tls_jmp = &jb;
    rc = pc_cache_check_unguarded(c);
    tls_jmp = outer;
  }
out:
  if (rc == PC_ECORRUPT) {
    /* LMDB writes on a damaged tree can scribble over memory: no writes at all */
    atomic_store(&c->write_fault, 1);
    if (!atomic_exchange(&c->corrupt, 1))
      pc_log_warn("the database is damaged: its structure check failed; stores are off (lookups still served); run "
                  "`promptcache verify`");
  }
  return rc;
}

static size_t pages_of(const MDB_stat *s) { return s->ms_branch_pages + s->ms_leaf_pages + s->ms_overflow_pages; }

/* bytes counts the pages of the two named DBs that hold live data. It is not
 * the file's high-water mark (mdb_env_info's me_last_pgno), which never
 * shrinks; it excludes LMDB's free list and main DB (a few pages). It can
 * fall when entries are deleted, which is what eviction needs to watch. */
static int pc_cache_count_unguarded(pc_cache *c, size_t *entries, size_t *bytes) {
  MDB_txn *txn;
  MDB_stat se, sm, sa;
  int rc = rtxn_acquire(c, &txn);
  if (rc) goto out;
  rc = map_err(mdb_stat(txn, c->entries, &se));
  if (rc == 0) rc = map_err(mdb_stat(txn, c->meta, &sm));
  if (rc == 0) rc = map_err(mdb_stat(txn, c->atime, &sa));
  rtxn_release(c);
  if (rc) goto out;
  *entries = se.ms_entries;
  *bytes = (pages_of(&se) + pages_of(&sm) + pages_of(&sa)) * se.ms_psize;
out:
  return rc;
}

int pc_cache_count(pc_cache *c, size_t *entries, size_t *bytes) {
  GUARDED(c, pc_cache_count_unguarded(c, entries, bytes));
}
