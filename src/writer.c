/* writer.c — the writer thread (see writer.h). Queue discipline: loops
 * append jobs under a mutex and signal; the thread takes the whole queue,
 * commits it as one batch, then hands each job back to its loop through the
 * loop's uv_async (completions are delivered on the loop thread, where the
 * flight that waits for them lives). The queue is bounded in bytes: past the
 * bound a store is refused at once (PC_ETOOBIG) rather than growing memory. */
#include "writer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "stats.h"

#define QUEUE_MAX_BYTES ((size_t)256 << 20)
#define TOUCH_MAX 65536       /* keys per touch batch; more hits in one second are dropped */
#define HIGH_WATER 0.80       /* evict when the cache uses this share of --max-size */
#define LOW_WATER 0.65        /* down to this share */
#define EVICT_CHECK_SHARE 256 /* check the size after this share of --max-size is written */

struct job {
  struct job *next;
  char meta[16]; /* non-empty: a record for the "meta" database, not an entry */
  int del;       /* delete the entry under key (val NULL) */
  uint8_t key[16];
  char *val;
  size_t len;
  int rc;
  pc_writer_done_fn done;
  void *ud;
  struct pc_wport *port;
};

/* A loop's side of the writer. The entries a loop queues during one iteration
 * wake the writer once, when the server calls pc_wport_flush at the
 * iteration's end: one batch and one wake-up for all of them. */
struct pc_wport {
  uv_async_t async;
  struct pc_writer *w;
  pthread_mutex_t mu; /* guards done_head */
  struct job *done_head;
  int closing;
  int wake; /* jobs were queued since the last flush: the writer must be woken */
};

struct pc_writer {
  pc_cache *cache;
  const struct pc_config *cfg;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct job *head, **tail;
  size_t queued_bytes;
  uint8_t *touch;
  size_t n_touch;
  int stop;
};

static void complete(struct job *j) {
  struct pc_wport *p = j->port;
  if (!p) { /* nobody waits for it (a meta record) */
    free(j->val);
    free(j);
    return;
  }
  pthread_mutex_lock(&p->mu);
  j->next = p->done_head;
  p->done_head = j;
  pthread_mutex_unlock(&p->mu);
  uv_async_send(&p->async);
}

static void maybe_evict(struct pc_writer *w, int force) {
  size_t entries, bytes, evicted = 0;
  double max = (double)w->cfg->max_size;
  if (pc_cache_count(w->cache, &entries, &bytes)) return;
  if (!force && (double)bytes < HIGH_WATER * max) return;
  int rc = pc_cache_evict(w->cache, (size_t)(LOW_WATER * max), &evicted);
  if (rc) pc_log_warn("eviction failed: %s", pc_strerror(rc));
  if (evicted) pc_stats_eviction(evicted);
}

static void commit_batch(struct pc_writer *w, struct job *jobs) {
  size_t n = 0;
  for (struct job *j = jobs; j; j = j->next) {
    if (j->meta[0])
      j->rc = pc_cache_meta_put(w->cache, j->meta, j->val, j->len);
    else if (j->del)
      j->rc = pc_cache_del(w->cache, j->key);
    else
      n++;
  }
  struct pc_cache_put_item *items = n ? calloc(n, sizeof *items) : NULL;
  if (n && !items) {
    for (struct job *j = jobs; j; j = j->next) j->rc = PC_ENOMEM;
    return;
  }
  size_t i = 0;
  for (struct job *j = jobs; j; j = j->next)
    if (!j->meta[0] && !j->del) items[i++] = (struct pc_cache_put_item){j->key, j->val, j->len, 0};
  if (n && pc_cache_put_batch(w->cache, items, n) == PC_EMAPFULL) {
    maybe_evict(w, 1); /* a store never fails for lack of space: make room, retry once */
    pc_cache_put_batch(w->cache, items, n);
  }
  i = 0;
  for (struct job *j = jobs; j; j = j->next)
    if (!j->meta[0] && !j->del) j->rc = items[i++].rc;
  free(items);
}

/* Whole seconds of the monotonic clock: the periodic work's own clock. */
static time_t mono_s(void) { return (time_t)(pc_mono_ms() / 1000); }

static void *writer_main(void *arg) {
  struct pc_writer *w = arg;
  uint8_t *touch = malloc((size_t)TOUCH_MAX * 16);
  time_t last_sync = mono_s(), last_check = last_sync;
  size_t written = 0;
  /* Before the first write: a damaged tree turns writes off (cache.h). Stores
   * queue meanwhile; lookups do not wait. */
  pc_cache_check(w->cache);
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->stop && !w->n_touch) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts); /* the cv waits on it: a clock step cannot stall us */
      ts.tv_sec += 1;
      if (pthread_cond_timedwait(&w->cv, &w->mu, &ts)) break; /* timeout: periodic work */
    }
    struct job *jobs = w->head;
    size_t n_touch = touch ? w->n_touch : 0;
    if (n_touch) memcpy(touch, w->touch, n_touch * 16);
    w->head = NULL;
    w->tail = &w->head;
    w->queued_bytes = 0;
    w->n_touch = 0;
    int stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    if (jobs) commit_batch(w, jobs);
    if (n_touch) pc_cache_touch_batch(w->cache, touch, n_touch);
    if (w->cfg->sync_batch && jobs)
      pc_cache_sync(w->cache);
    else if (!w->cfg->sync_batch && mono_s() != last_sync) {
      pc_cache_sync(w->cache);
      last_sync = mono_s();
    }
    size_t batch_bytes = 0;
    while (jobs) { /* the waiting responses may end now; the eviction check comes after */
      struct job *next = jobs->next;
      batch_bytes += jobs->len;
      complete(jobs);
      jobs = next;
    }
    /* the size is looked at every EVICT_CHECK_SHARE of --max-size written, or
     * once a second, not after every batch (it reads the whole map's stats) */
    written += batch_bytes;
    if (batch_bytes && (written >= w->cfg->max_size / EVICT_CHECK_SHARE || mono_s() != last_check)) {
      maybe_evict(w, 0);
      written = 0;
      last_check = mono_s();
    }
    pthread_mutex_lock(&w->mu);
    if (stop && !w->head) break;
  }
  pthread_mutex_unlock(&w->mu);
  free(touch);
  pc_cache_thread_done(w->cache); /* the read txn pc_cache_count used */
  pc_log_thread_done();           /* the buffer its warnings used */
  return NULL;
}

int pc_writer_start(pc_cache *c, const struct pc_config *cfg, struct pc_writer **out) {
  struct pc_writer *w = calloc(1, sizeof *w);
  if (!w) return PC_ENOMEM;
  w->cache = c;
  w->cfg = cfg;
  w->tail = &w->head;
  w->touch = malloc((size_t)TOUCH_MAX * 16);
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (!w->touch || pthread_create(&w->thread, NULL, writer_main, w)) {
    free(w->touch);
    free(w);
    return PC_ENOMEM;
  }
  *out = w;
  return 0;
}

void pc_writer_stop(struct pc_writer *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w->touch);
  free(w);
}

/* Runs on the port's loop: hand each committed job to whoever waits. */
static void on_async(uv_async_t *a) {
  struct pc_wport *p = a->data;
  pthread_mutex_lock(&p->mu);
  struct job *j = p->done_head;
  p->done_head = NULL;
  pthread_mutex_unlock(&p->mu);
  while (j) {
    struct job *next = j->next;
    if (j->done && !p->closing) j->done(j->ud, j->rc);
    free(j->val);
    free(j);
    j = next;
  }
}

static void signal_writer(struct pc_writer *w) {
  pthread_mutex_lock(&w->mu);
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

void pc_wport_flush(struct pc_wport *p) {
  if (!p->wake) return;
  p->wake = 0;
  signal_writer(p->w);
}

int pc_wport_open(struct pc_writer *w, uv_loop_t *loop, struct pc_wport **out) {
  struct pc_wport *p = calloc(1, sizeof *p);
  if (!p) return PC_ENOMEM;
  p->w = w;
  pthread_mutex_init(&p->mu, NULL);
  if (uv_async_init(loop, &p->async, on_async)) {
    pthread_mutex_destroy(&p->mu);
    free(p);
    return PC_EIO;
  }
  p->async.data = p;
  *out = p;
  return 0;
}

static void port_closed(uv_handle_t *h) {
  struct pc_wport *p = h->data;
  on_async(&p->async); /* free what is left (callbacks suppressed) */
  pthread_mutex_destroy(&p->mu);
  free(p);
}

void pc_wport_close(struct pc_wport *p) {
  pc_wport_flush(p); /* what this iteration queued */
  p->closing = 1;
  uv_close((uv_handle_t *)&p->async, port_closed);
}

void pc_writer_put(struct pc_wport *p, const uint8_t key[16], char *val, size_t len, pc_writer_done_fn done, void *ud) {
  struct pc_writer *w = p->w;
  struct job *j = calloc(1, sizeof *j);
  if (!j) {
    free(val);
    if (done) done(ud, PC_ENOMEM);
    return;
  }
  memcpy(j->key, key, 16);
  j->val = val;
  j->len = len;
  j->done = done;
  j->ud = ud;
  j->port = p;
  pthread_mutex_lock(&w->mu);
  int full = w->queued_bytes + len > QUEUE_MAX_BYTES;
  if (!full) {
    *w->tail = j;
    w->tail = &j->next;
    w->queued_bytes += len;
  }
  pthread_mutex_unlock(&w->mu);
  if (!full && p->closing) /* no iteration end to wait for */
    signal_writer(w);
  else if (!full)
    p->wake = 1;
  if (full) {
    free(val);
    free(j);
    if (done) done(ud, PC_ETOOBIG);
  }
}

void pc_writer_meta(struct pc_writer *w, const char *name, char *val, size_t len) {
  struct job *j = calloc(1, sizeof *j);
  if (!j || strlen(name) >= sizeof j->meta) {
    free(j);
    free(val);
    return;
  }
  memcpy(j->meta, name, strlen(name) + 1);
  j->val = val;
  j->len = len;
  pthread_mutex_lock(&w->mu);
  *w->tail = j;
  w->tail = &j->next;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

void pc_writer_del(struct pc_writer *w, const uint8_t key[16]) {
  struct job *j = calloc(1, sizeof *j);
  if (!j) return;
  memcpy(j->key, key, 16);
  j->del = 1;
  pthread_mutex_lock(&w->mu);
  *w->tail = j;
  w->tail = &j->next;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

struct pc_writer *pc_wport_writer(struct pc_wport *p) {
  return p->w;
}

void pc_writer_touch(struct pc_wport *p, const uint8_t key[16]) {
  struct pc_writer *w = p->w;
  pthread_mutex_lock(&w->mu);
  if (w->n_touch < TOUCH_MAX) memcpy(w->touch + 16 * w->n_touch++, key, 16);
  pthread_mutex_unlock(&w->mu);
}
