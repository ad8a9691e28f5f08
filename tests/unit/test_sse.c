/* test_sse.c — terminal events decide whether a recorded stream is stored. */
#include <criterion/criterion.h>
#include <string.h>

#include "sse.h"

#define S(x) x, strlen(x)

Test(sse, terminal_by_path) {
  cr_expect_eq(pc_sse_terminal_for(S("/v1/chat/completions")), PC_SSE_DONE);
  cr_expect_eq(pc_sse_terminal_for(S("/v1/completions")), PC_SSE_DONE);
  cr_expect_eq(pc_sse_terminal_for(S("/v1/messages")), PC_SSE_MESSAGE_STOP);
  cr_expect_eq(pc_sse_terminal_for(S("/v1/responses")), PC_SSE_RESPONSE_COMPLETED);
  cr_expect_eq(pc_sse_terminal_for(S("/v1beta/models/g:streamGenerateContent")), PC_SSE_NONE);
}

Test(sse, openai_done) {
  cr_expect(pc_sse_complete(PC_SSE_DONE, S("data: {\"a\":1}\n\ndata: [DONE]\n\n")));
  cr_expect(pc_sse_complete(PC_SSE_DONE, S("data: {\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n")));
  cr_expect_not(pc_sse_complete(PC_SSE_DONE, S("data: {\"a\":1}\n\n")));
  cr_expect_not(pc_sse_complete(PC_SSE_DONE, S("data: {\"text\":\"data: [DONE]\"}\n\n")));
  cr_expect_not(pc_sse_complete(PC_SSE_DONE, S("")));
}

Test(sse, anthropic_message_stop) {
  const char *ok = "event: message_start\ndata: {}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  cr_expect(pc_sse_complete(PC_SSE_MESSAGE_STOP, ok, strlen(ok)));
  const char *err = "event: message_start\ndata: {}\n\nevent: error\ndata: {\"type\":\"overloaded_error\"}\n\n";
  cr_expect_not(pc_sse_complete(PC_SSE_MESSAGE_STOP, err, strlen(err)));
}

Test(sse, responses_completed) {
  cr_expect(pc_sse_complete(PC_SSE_RESPONSE_COMPLETED,
                            S("event: response.created\ndata: {}\n\nevent: response.completed\ndata: {}\n\n")));
  cr_expect(pc_sse_complete(PC_SSE_RESPONSE_COMPLETED, S("data: {\"type\":\"response.completed\",\"x\":1}\n\n")));
  cr_expect_not(pc_sse_complete(PC_SSE_RESPONSE_COMPLETED, S("event: response.failed\ndata: {}\n\n")));
}

Test(sse, no_terminal_api_is_complete_at_clean_end) {
  cr_expect(pc_sse_complete(PC_SSE_NONE, S("data: {\"candidates\":[]}\n\n")));
}

Test(sse, data_lines_one_by_one) {
  const char *s = ": comment\nevent: a\ndata: {\"x\":1}\r\n\r\nid: 7\ndata:{\"y\":2}\n\ndata:\n\ndata: last";
  const char *cur = s, *end = s + strlen(s), *d;
  size_t n;
  cr_assert(pc_sse_next_data(&cur, end, &d, &n));
  cr_expect_eq(n, 7);
  cr_expect_arr_eq(d, "{\"x\":1}", 7);
  cr_assert(pc_sse_next_data(&cur, end, &d, &n));
  cr_expect_arr_eq(d, "{\"y\":2}", 7, "no space after the colon (TGI)");
  cr_assert(pc_sse_next_data(&cur, end, &d, &n));
  cr_expect_eq(n, 0);
  cr_assert(pc_sse_next_data(&cur, end, &d, &n));
  cr_expect_eq(n, 4, "an unterminated last line still counts");
  cr_expect_not(pc_sse_next_data(&cur, end, &d, &n));
  cr_expect_eq(cur, end);
  cur = "event: ping\n\n";
  cr_expect_not(pc_sse_next_data(&cur, cur + 13, &d, &n));
  cur = "datum: x\n";
  cr_expect_not(pc_sse_next_data(&cur, cur + 9, &d, &n));
}

Test(sse, last_data_line) {
  const char *d;
  size_t n;
  cr_assert(pc_sse_last_data(S("data: 1\n\ndata: 22\r\n\r\nevent: x\n\n"), &d, &n));
  cr_expect_eq(n, 2);
  cr_expect_arr_eq(d, "22", 2);
  cr_assert(pc_sse_last_data(S("data: 333"), &d, &n));
  cr_expect_eq(n, 3);
  cr_expect_not(pc_sse_last_data(S("event: x\n\n"), &d, &n));
  cr_expect_not(pc_sse_last_data(S(""), &d, &n));
  cr_expect_not(pc_sse_last_data(S("\n\n\n"), &d, &n));
}
