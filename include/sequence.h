/* sequence.h — record/replay sequences (SPEC §6): the same request recorded
 * several times with different answers (a run polled until it completes, a
 * create called twice) keeps its answers in order, as entries 0, 1, 2...
 * (key.h: the "seq" field of the key material); replay serves them in the
 * same order, then repeats the last. The counters are per process (every
 * loop shares them), keyed by the request's key (its entry 0). */
#ifndef PC_SEQUENCE_H
#define PC_SEQUENCE_H

#include <stdint.h>

#include "key.h"

/* Record: the index the next answer to `key` gets in this run (0 for its
 * first answer: the entry that replaces whatever an earlier run recorded). */
uint32_t pc_seq_record_next(const struct pc_key *key);

/* Replay: the index of the entry this request for `key` gets, taken in one
 * step (requests on several loops at once each get their own): the count
 * of requests before it, or the last entry once the sequence is known to be
 * shorter. */
uint32_t pc_seq_replay_take(const struct pc_key *key);
/* Entry `index` does not exist: the sequence has `index` entries (the
 * caller then tries the one before). */
void pc_seq_replay_length(const struct pc_key *key, uint32_t index);

#endif
