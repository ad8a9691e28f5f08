/* respond.h — writing an exchange's response to its client: cache hits,
 * pass-through of an upstream response (head, then chunks as they arrive),
 * and JSON errors. Every response carries X-PromptCache-Status /
 * X-PromptCache-Key when the exchange's resp.cache / resp.key are set. */
#ifndef PC_RESPOND_H
#define PC_RESPOND_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "entry.h"

struct pc_exchange;

/* {"error":{"message":...,"type":"promptcache_error","code":...}}, then finish. */
void pc_respond_error(struct pc_exchange *x, int status, const char *code, const char *msg);
/* A complete body with its content type (admin endpoints), then finish. */
void pc_respond_content(struct pc_exchange *x, int status, const char *ctype, const char *body, size_t len);
/* Head of a passed-through response; the body follows. */
void pc_respond_head(struct pc_exchange *x, int status, const char *headers, size_t len);
/* A piece of it; a piece that cannot be queued aborts the connection. */
void pc_respond_body(struct pc_exchange *x, const char *p, size_t n);
/* The end of the body, then finish. */
void pc_respond_end(struct pc_exchange *x);
/* Serve a decoded entry whose bytes live in `block` (malloc'd, taken over).
 * An event-stream entry is replayed with its recorded chunk boundaries, at
 * once or, with `paced`, with the recorded gaps. */
void pc_respond_hit(struct pc_exchange *x, char *block, const struct pc_entry *e, int64_t age_s, int paced);
/* Serve a plain (not paced) hit whose entry points into borrowed memory (an
 * LMDB read txn): what the socket does not take at once is copied. Does not
 * finish the response: the caller releases the memory, then finishes.
 * Returns 0, or an error before anything was written. */
int pc_respond_hit_borrowed(struct pc_exchange *x, const struct pc_entry *e, int64_t age_s);
/* Next due chunks of a paced replay (from the exchange's pacing timer). */
void pc_respond_replay_step(struct pc_exchange *x);

const char *pc_respond_reason(int status);

#endif
