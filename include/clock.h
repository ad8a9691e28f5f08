/* clock.h — wall-clock milliseconds since the epoch: the one time base of
 * entries (created/expires), access times, purges and stats; and monotonic
 * milliseconds for intervals (uptime, periodic work), which a step of the
 * wall clock (NTP on a fresh machine) must not stretch or stall. */
#ifndef PC_CLOCK_H
#define PC_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t pc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t pc_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
