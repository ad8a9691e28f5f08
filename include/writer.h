/* writer.h — cache writes off the event loops: one thread owns every write
 * transaction of the serving process. Stores queued by the loops are
 * committed in batches (several entries per transaction); access times of
 * hits are recorded in batches too; the writer keeps the cache under
 * --max-size by evicting least recently used entries, and fsyncs per batch
 * (--sync batch) or once a second (--sync periodic).
 *
 * A queued store reports back to its loop when it is committed, so the
 * flight can hold a response's last bytes until its entry is durable: a
 * response a client saw complete is HIT-able after a crash. */
#ifndef PC_WRITER_H
#define PC_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "config.h"

struct pc_writer;
struct pc_wport; /* one per event loop: where completions come back */

typedef void (*pc_writer_done_fn)(void *ud, int rc);

int pc_writer_start(pc_cache *c, const struct pc_config *cfg, struct pc_writer **out);
/* Drain the queue, commit, stop the thread, free. */
void pc_writer_stop(struct pc_writer *w);

int pc_wport_open(struct pc_writer *w, uv_loop_t *loop, struct pc_wport **out);
/* Closes the async handle (frees in its close callback); completions still
 * pending for this port are dropped. */
void pc_wport_close(struct pc_wport *p);
/* Wake the writer for the entries this loop queued since the last call.
 * Called at the end of every loop iteration and before the loop polls
 * (server.h: loop_flush). */
void pc_wport_flush(struct pc_wport *p);

/* Queue a store of `val` (malloc'd, taken over). `done` runs on the port's
 * loop once committed (rc 0) or failed; it may be NULL. */
void pc_writer_put(struct pc_wport *p, const uint8_t key[16], char *val, size_t len, pc_writer_done_fn done, void *ud);
/* Queue a small record for the "meta" database (e.g. lifetime totals);
 * `val` is malloc'd and taken over. No completion callback. */
void pc_writer_meta(struct pc_writer *w, const char *name, char *val, size_t len);
/* Queue the deletion of the entry under `key` (no completion callback;
 * committed in order with the stores queued before it). */
void pc_writer_del(struct pc_writer *w, const uint8_t key[16]);
struct pc_writer *pc_wport_writer(struct pc_wport *p);
/* Record a hit on `key` (batched; the access time is written later). */
void pc_writer_touch(struct pc_wport *p, const uint8_t key[16]);

#endif
