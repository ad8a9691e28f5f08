/* test_sequence.c — record/replay sequence counters. */
#include <criterion/criterion.h>
#include <string.h>

#include "sequence.h"

static struct pc_key key_of(int i) {
  struct pc_key k;
  memset(&k, 0, sizeof k);
  k.b[0] = (uint8_t)i;
  k.b[9] = 0x5a;
  return k;
}

Test(sequence, record_numbers_answers_per_request) {
  struct pc_key a = key_of(1), b = key_of(2);
  cr_expect_eq(pc_seq_record_next(&a), 0);
  cr_expect_eq(pc_seq_record_next(&a), 1);
  cr_expect_eq(pc_seq_record_next(&b), 0);
  cr_expect_eq(pc_seq_record_next(&a), 2);
}

Test(sequence, replay_serves_in_order_then_repeats_the_last) {
  struct pc_key k = key_of(3);
  uint32_t n = 3, got[6];
  for (int i = 0; i < 6; i++) {
    uint32_t want = pc_seq_replay_take(&k);
    while (want >= n) pc_seq_replay_length(&k, want--); /* entries 0..2 exist */
    got[i] = want;
  }
  uint32_t expect[6] = {0, 1, 2, 2, 2, 2};
  cr_expect_arr_eq(got, expect, sizeof got);
}

Test(sequence, many_keys) {
  for (int i = 0; i < 5000; i++) {
    struct pc_key k = key_of(0);
    memcpy(k.b + 1, &i, sizeof i);
    cr_assert_eq(pc_seq_record_next(&k), 0);
  }
  for (int i = 0; i < 5000; i++) {
    struct pc_key k = key_of(0);
    memcpy(k.b + 1, &i, sizeof i);
    cr_assert_eq(pc_seq_record_next(&k), 1);
  }
}

Test(sequence, takes_are_atomic_across_threads_of_a_burst) {
  struct pc_key k = key_of(4);
  uint32_t seen[8] = {0};
  for (int i = 0; i < 8; i++) seen[i] = pc_seq_replay_take(&k); /* a burst before any length is known */
  for (uint32_t i = 0; i < 8; i++) cr_expect_eq(seen[i], i, "each request its own entry");
  pc_seq_replay_length(&k, 2); /* only 0 and 1 exist */
  cr_expect_eq(pc_seq_replay_take(&k), 1, "then the last, again and again");
  cr_expect_eq(pc_seq_replay_take(&k), 1);
}
