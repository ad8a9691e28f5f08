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
