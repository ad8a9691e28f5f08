/* fuzz_usage.c — libFuzzer target for src/usage.c: token usage parsed out of
 * upstream response bodies (JSON documents and SSE streams from OpenAI,
 * Anthropic and Gemini), and the compact usage text stored with an entry.
 * The whole input is read as a JSON body, as an SSE stream and as stored
 * usage text. Checked: read(write(u)) == u for whatever each parse found. */
#include "fuzz.h"

#include "buf.h"
#include "stats.h"

static int usage_eq(const struct pc_usage *a, const struct pc_usage *b) {
  return a->present == b->present && a->input == b->input && a->output == b->output &&
         a->cached_input == b->cached_input && a->cache_write == b->cache_write;
}

static void check_round_trip(const struct pc_usage *u) {
  pc_buf text;
  struct pc_usage back;
  pc_buf_init(&text, 4096);
  int rc = pc_usage_write(u, &text);
  FUZZ_CHECK(rc == 0, "pc_usage_write failed: %d", rc);
  FUZZ_CHECK(u->present || text.len == 0, "usage written although absent");
  char *copy = fuzz_copy(text.data, text.len);
  pc_usage_read(copy, text.len, &back);
  FUZZ_CHECK(usage_eq(u, &back), "usage changed through write/read: %.*s", (int)text.len, text.data);
  free(copy);
  pc_buf_free(&text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *body = fuzz_copy((const char *)data, size);
  struct pc_usage u;
  pc_usage_from_body(body, size, 0, &u);
  check_round_trip(&u);
  pc_usage_from_body(body, size, 1, &u);
  check_round_trip(&u);
  pc_usage_read(body, size, &u);
  check_round_trip(&u);
  free(body);
  return 0;
}
