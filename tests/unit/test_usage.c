/* test_usage.c — token usage out of provider responses, and its compact
 * stored form read back on every hit. */
#include <criterion/criterion.h>
#include <string.h>

#include "stats.h"

#define S(x) x, strlen(x)

Test(usage, openai_chat_completion) {
  struct pc_usage u;
  pc_usage_from_body(S("{\"id\":\"x\",\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"total_tokens\":120,"
                       "\"prompt_tokens_details\":{\"cached_tokens\":64}}}"), 0, &u);
  cr_expect(u.present);
  cr_expect_eq(u.input, 100);
  cr_expect_eq(u.output, 20);
  cr_expect_eq(u.cached_input, 64);
}

Test(usage, anthropic_message_counts_cache_reads_and_writes_as_input) {
  struct pc_usage u;
  pc_usage_from_body(S("{\"type\":\"message\",\"usage\":{\"input_tokens\":10,\"output_tokens\":5,"
                       "\"cache_read_input_tokens\":30,\"cache_creation_input_tokens\":7}}"), 0, &u);
  cr_expect_eq(u.input, 47);
  cr_expect_eq(u.output, 5);
  cr_expect_eq(u.cached_input, 30);
  cr_expect_eq(u.cache_write, 7);
}

Test(usage, gemini_usage_metadata) {
  struct pc_usage u;
  pc_usage_from_body(S("{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":3,"
                       "\"totalTokenCount\":15}}"), 0, &u);
  cr_expect_eq(u.input, 12);
  cr_expect_eq(u.output, 3);
}

Test(usage, gemini_thinking_is_output_and_tool_prompts_are_input) {
  struct pc_usage u;
  pc_usage_from_body(S("{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":3,"
                       "\"thoughtsTokenCount\":40,\"toolUsePromptTokenCount\":5,\"cachedContentTokenCount\":8,"
                       "\"totalTokenCount\":60}}"), 0, &u);
  cr_expect_eq(u.input, 17);
  cr_expect_eq(u.output, 43);
  cr_expect_eq(u.cached_input, 8);
}

Test(usage, streams_take_usage_from_their_events) {
  struct pc_usage u;
  const char *anthropic =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":42}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  pc_usage_from_body(anthropic, strlen(anthropic), 1, &u);
  cr_expect_eq(u.input, 25);
  cr_expect_eq(u.output, 42);
  const char *openai = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
                       "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
  pc_usage_from_body(openai, strlen(openai), 1, &u);
  cr_expect_eq(u.input, 9);
  cr_expect_eq(u.output, 2);
  const char *responses = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":"
                          "{\"input_tokens\":8,\"output_tokens\":4,\"input_tokens_details\":{\"cached_tokens\":2}}}}\n\n";
  pc_usage_from_body(responses, strlen(responses), 1, &u);
  cr_expect_eq(u.input, 8);
  cr_expect_eq(u.output, 4);
  cr_expect_eq(u.cached_input, 2);
}

Test(usage, no_usage_block_is_absent_not_zero) {
  struct pc_usage u;
  pc_usage_from_body(S("{\"data\":[{\"embedding\":[0.1]}]}"), 0, &u);
  cr_expect_not(u.present);
  pc_usage_from_body(S("not json"), 0, &u);
  cr_expect_not(u.present);
}

Test(usage, stored_form_round_trips) {
  struct pc_usage u = {.input = 123456789012ULL, .output = 7, .cached_input = 0, .cache_write = 99, .present = 1}, back;
  pc_buf b;
  pc_buf_init(&b, 1024);
  cr_assert_eq(pc_usage_write(&u, &b), 0);
  pc_usage_read(b.data, b.len, &back);
  cr_expect(back.present);
  cr_expect_eq(back.input, u.input);
  cr_expect_eq(back.output, u.output);
  cr_expect_eq(back.cached_input, u.cached_input);
  cr_expect_eq(back.cache_write, u.cache_write);
  pc_usage_read("", 0, &back);
  cr_expect_not(back.present);
  pc_usage_read(S("{\"input\":5,\"bogus\":"), &back); /* truncated: what was read stays */
  cr_expect_eq(back.input, 5);
  pc_buf_free(&b);
}

Test(usage, counts_too_large_for_64_bits_saturate) {
  struct pc_usage u;
  pc_usage_from_body(S("{\"usage\":{\"prompt_tokens\":1e300,\"completion_tokens\":-5}}"), 0, &u);
  cr_expect_eq(u.input, UINT64_MAX);
  cr_expect_eq(u.output, 0);
  pc_usage_from_body(S("{\"type\":\"message\",\"usage\":{\"input_tokens\":1.8e19,\"cache_read_input_tokens\":1e19,"
                       "\"output_tokens\":1}}"), 0, &u);
  cr_expect_eq(u.input, UINT64_MAX, "the sum saturates too");
}
