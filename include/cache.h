/* cache.h — the LMDB environment; this module owns every LMDB call.
 * One environment directory per database. Named sub-databases:
 *   "entries": 16-byte key -> encoded entry (entry.h)
 *   "meta":    small records such as the per-database secret
 *   "atime":   16-byte key -> u64 LE last access (ms since the epoch)
 * Safe to open from several processes at once (LMDB's own locking); one
 * handle per process, shared by its threads (each has its own read txn). */
#ifndef PC_CACHE_H
#define PC_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct pc_cache pc_cache;

#define PC_CACHE_SECRET_LEN 32

enum pc_cache_sync {
  PC_SYNC_PERIODIC = 0, /* commit without fsync; caller calls pc_cache_sync() about once a second */
  PC_SYNC_BATCH = 1     /* fsync at every commit */
};

/* Open (creating the directory and files if missing) the environment at
 * `path`, with a map size bound of `max_size` bytes. */
int pc_cache_open(const char *path, size_t max_size, enum pc_cache_sync sync, pc_cache **out);
/* Open an existing database for reading only (the offline commands that
 * only read): works on a read-only mount or directory; every write returns
 * PC_EREADONLY. Both opens refuse a truncated data file (PC_ECORRUPT)
 * instead of touching pages past its end. */
int pc_cache_open_ro(const char *path, pc_cache **out);
void pc_cache_close(pc_cache *c);
/* A read faulted on a damaged page of the map (every call that reads the
 * map is guarded: it returns PC_ECORRUPT instead of crashing). */
int pc_cache_corrupt(const pc_cache *c);
/* Walk every record of the databases (their leaf pages, not the values'
 * overflow pages) checking the sizes they must have. A damaged tree turns
 * this handle's writes off for good (PC_ECORRUPT from then on): LMDB
 * writing into a damaged page can corrupt the process's memory. Returns 0
 * or PC_ECORRUPT (or another error of a read). */
int pc_cache_check(pc_cache *c);
/* A thread that used pc_cache_get on `c` calls this before it exits (the
 * thread that closes the cache need not). */
void pc_cache_thread_done(pc_cache *c);

/* The per-database secret used to fingerprint credentials; created with
 * random bytes (getrandom) the first time, the same forever after. */
int pc_cache_secret(pc_cache *c, uint8_t out[PC_CACHE_SECRET_LEN]);
/* Replace it (a fleet adopts one secret for all its nodes). */
int pc_cache_set_secret(pc_cache *c, const uint8_t secret[PC_CACHE_SECRET_LEN]);

/* Copy the value stored under the 16-byte key into `out` (replacing its
 * contents). Opens only a read transaction (reset/renewed, never a write txn).
 * Returns 0 or PC_ENOTFOUND (`out` untouched); PC_ETOOBIG (`out` left empty) when
 * the value exceeds out's maximum; another PC_E* code if LMDB fails. */
int pc_cache_get(pc_cache *c, const uint8_t key[16], pc_buf *out);
/* Zero-copy lookup: *p points into the map and stays valid only until
 * pc_cache_release(c) on the same thread, which must follow every 0 return
 * before any other cache call of this thread. */
int pc_cache_get_ref(pc_cache *c, const uint8_t key[16], const void **p, size_t *n);
void pc_cache_release(pc_cache *c);
/* Store (overwrite) a value in one write txn. Returns 0, PC_EMAPFULL
 * (nothing stored; the handle stays usable) or PC_EIO (rarely another PC_E*
 * code for a specific LMDB failure, e.g. PC_ENOMEM). Space freed by deletes
 * becomes reusable only a few write txns later, so evict with some margin. */
int pc_cache_put(pc_cache *c, const uint8_t key[16], const void *val, size_t len);
/* Returns 0 or PC_ENOTFOUND (or PC_EMAPFULL: a delete copies pages too, so
 * in a completely full map it can fail). */
int pc_cache_del(pc_cache *c, const uint8_t key[16]);

/* Store several entries in one write transaction (their access time set to
 * now). If the batch fails, each item is retried alone so one bad item
 * cannot lose the others; items[i].rc gets each item's outcome (0 or
 * PC_EMAPFULL / PC_EIO). Returns the first failure or 0. */
struct pc_cache_put_item {
  const uint8_t *key;
  const void *val;
  size_t len;
  int rc;
};
int pc_cache_put_batch(pc_cache *c, struct pc_cache_put_item *items, size_t n);
/* Record accesses (16-byte keys, packed) for LRU eviction, in one txn. */
int pc_cache_touch_batch(pc_cache *c, const uint8_t *keys, size_t n);
/* Delete least recently used entries until the bytes in use are at or below
 * target_bytes. *evicted gets the number deleted. */
int pc_cache_evict(pc_cache *c, size_t target_bytes, size_t *evicted);

/* Delete n 16-byte keys (packed) in one write transaction; missing keys are
 * skipped. *deleted gets how many existed. */
int pc_cache_del_many(pc_cache *c, const uint8_t *keys, size_t n, size_t *deleted);

/* Walk every entry in key order inside one read transaction. The callback
 * gets borrowed bytes valid only during the call; returning non-zero stops the
 * walk and that value is returned. The callback must not call back into the
 * cache, and should be quick: the walk's snapshot pins pages until it ends. */
typedef int (*pc_cache_iter_fn)(void *ud, const uint8_t key[16], const void *val, size_t len);
int pc_cache_iterate(pc_cache *c, pc_cache_iter_fn fn, void *ud);

/* Small named records in the "meta" database (e.g. "totals"). get returns
 * 0 or PC_ENOTFOUND; the name "secret" is reserved. */
int pc_cache_meta_get(pc_cache *c, const char *name, pc_buf *out);
int pc_cache_meta_put(pc_cache *c, const char *name, const void *val, size_t len);

/* Entries and bytes in use: the branch, leaf and overflow pages of the
 * "entries" and "meta" DBs × page size (live data; falls after deletes). */
int pc_cache_count(pc_cache *c, size_t *entries, size_t *bytes);
/* Flush to disk (fsync); used by the periodic sync timer and at close. */
int pc_cache_sync(pc_cache *c);

#endif
