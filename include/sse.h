/* sse.h — server-sent-event framing facts the cache needs: whether a
 * recorded event stream reached its terminal event, and its data lines. */
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

/* The next `data:` field at or after *cur (before end): its value without
 * the one optional space after the colon and without the line end (LF or
 * CRLF), in *data / *len; *cur moves past its line. Other fields (event:,
 * id:, retry:) and comments are skipped. Returns 1, or 0 when no data line
 * is left. Each provider's event carries its JSON on one data line, so a
 * reader of usage or of a terminal event looks at one line at a time. */
int pc_sse_next_data(const char **cur, const char *end, const char **data, size_t *len);

/* The value of the last `data:` field of a stream (as pc_sse_next_data),
 * or 0 when there is none: the final event of APIs whose terminal is a
 * property of their last event (TGI, llama.cpp, Gemini). */
int pc_sse_last_data(const char *body, size_t n, const char **data, size_t *len);

#endif
