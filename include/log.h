/* log.h — stderr logging: one access-log line per request (text or JSON)
 * and event messages. Nothing here ever receives a credential. */
#ifndef PC_LOG_H
#define PC_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct pc_access {
  const char *method;
  const char *path; /* request target as received (credential query values are masked) */
  int status;
  const char *cache;   /* HIT, MISS, BYPASS, ... or "-" */
  const char *key;     /* 32 hex or "" */
  uint64_t bytes;      /* response body bytes sent */
  int64_t upstream_us; /* -1: upstream not contacted */
  int64_t total_us;
};

void pc_log_init(int json);
/* Write this thread's pending lines (called once per loop iteration). */
void pc_log_flush(void);
/* Flush and free this thread's buffer (thread exit). */
void pc_log_thread_done(void);
void pc_log_access(const struct pc_access *a);
/* Append `target` to t with the value of every credential query parameter
 * (policy.h) replaced by "***". */
void pc_log_mask_target(pc_buf *t, const char *target);
void pc_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pc_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
