/* sequence.c — the per-process counters of record/replay sequences (see
 * sequence.h): one open-addressing table under one mutex (record and replay
 * are test-suite traffic, not the hot path). */
#include "sequence.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct slot {
  uint8_t key[16];
  int used;
  uint32_t recorded; /* answers recorded in this run */
  uint32_t served;   /* requests that took an entry in this run */
  uint32_t length;   /* known number of entries (0: unknown) */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;
static size_t cap, used;

static int grow(void) {
  size_t ncap = cap ? cap * 2 : 1024;
  struct slot *n = calloc(ncap, sizeof *n);
  if (!n) return -1;
  for (size_t i = 0; i < cap; i++) {
    if (!slots[i].used) continue;
    size_t h;
    memcpy(&h, slots[i].key, sizeof h);
    for (h &= ncap - 1; n[h].used; h = (h + 1) & (ncap - 1)) {
    }
    n[h] = slots[i];
  }
  free(slots);
  slots = n;
  cap = ncap;
  return 0;
}

/* Under mu: the key's slot, created if new (NULL: out of memory). */
static struct slot *slot_of(const struct pc_key *k) {
  if ((used + 1) * 2 > cap && grow()) return NULL;
  size_t h;
  memcpy(&h, k->b, sizeof h);
  for (h &= cap - 1; slots[h].used; h = (h + 1) & (cap - 1))
    if (!memcmp(slots[h].key, k->b, 16)) return &slots[h];
  memcpy(slots[h].key, k->b, 16);
  slots[h].used = 1;
  used++;
  return &slots[h];
}

uint32_t pc_seq_record_next(const struct pc_key *key) {
  pthread_mutex_lock(&mu);
  struct slot *s = slot_of(key);
  uint32_t n = s ? s->recorded++ : 0;
  pthread_mutex_unlock(&mu);
  return n;
}

uint32_t pc_seq_replay_take(const struct pc_key *key) {
  pthread_mutex_lock(&mu);
  struct slot *s = slot_of(key);
  uint32_t n = 0;
  if (s) {
    n = s->length && s->served >= s->length ? s->length - 1 : s->served;
    if (s->served < UINT32_MAX) s->served++;
  }
  pthread_mutex_unlock(&mu);
  return n;
}

void pc_seq_replay_length(const struct pc_key *key, uint32_t index) {
  pthread_mutex_lock(&mu);
  struct slot *s = slot_of(key);
  if (s && (!s->length || index < s->length)) s->length = index;
  pthread_mutex_unlock(&mu);
}
