/* sse.h — server-sent-event framing facts the cache needs: whether a
 * recorded event stream reached its terminal event. */
#ifndef PC_SSE_H
#define PC_SSE_H

#include <stddef.h>

/* The terminal event an API's stream must end with, chosen by path:
 * OpenAI chat/completions → `data: [DONE]`; Anthropic /messages →
 * `event: message_stop`; OpenAI /responses → `response.completed`.
 * Other paths (Gemini :streamGenerateContent, unknown APIs) have none. */
enum pc_sse_terminal { PC_SSE_NONE, PC_SSE_DONE, PC_SSE_MESSAGE_STOP, PC_SSE_RESPONSE_COMPLETED };

enum pc_sse_terminal pc_sse_terminal_for(const char *path, size_t path_len);

/* Whether `body` (a whole recorded stream) contains the terminal event as a
 * complete line of its own. With PC_SSE_NONE any stream is complete (the
 * clean end of the body is the terminal). */
int pc_sse_complete(enum pc_sse_terminal t, const char *body, size_t n);

#endif
