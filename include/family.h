/* family.h — the API families a route can speak (`--route PREFIX=URL,api=FAMILY`,
 * SPEC §2): for each, which POST paths are inference endpoints worth caching,
 * which request headers carry a credential or belong in the key, whether a
 * request streams, how its answer is framed, when a recorded answer is whole
 * (its terminal event), and where its token usage is. Pure logic: no I/O, no
 * state, every answer a function of its arguments, so the request flow, the
 * CLI and the tests agree by construction.
 *
 * The default family (a route without `api=`) is today's behaviour and must
 * stay it: OpenAI and Anthropic shapes told apart by path (sse.c, usage.c),
 * the same five key headers (keys of existing caches must not change), and
 * a cacheable list that matches inference endpoints only. */
#ifndef PC_FAMILY_H
#define PC_FAMILY_H

#include <stddef.h>

#include "stats.h"

enum pc_family_id {
  PC_FAMILY_DEFAULT, /* no api=: OpenAI + Anthropic (+ Gemini) shapes by path */
  PC_FAMILY_OPENAI,  /* OpenAI and compatibles: vLLM, llama.cpp's /v1, DeepSeek, Groq, Together, Mistral */
  PC_FAMILY_ANTHROPIC,
  PC_FAMILY_GEMINI,   /* Gemini API / Vertex: :generateContent, :streamGenerateContent */
  PC_FAMILY_AZURE,    /* Azure OpenAI: /openai/deployments/{d}/..., /openai/v1/... */
  PC_FAMILY_OLLAMA,   /* native /api/chat, /api/generate: NDJSON, streaming by default */
  PC_FAMILY_TGI,      /* Hugging Face text-generation-inference */
  PC_FAMILY_LLAMACPP, /* llama.cpp's llama-server, native endpoints */
  PC_FAMILY_BEDROCK,  /* Amazon Bedrock Runtime: InvokeModel, Converse, and their streams */
  PC_FAMILY_N
};

/* How a response body is framed. */
enum pc_family_framing {
  PC_FRAMING_JSON,        /* one JSON document (object, or Gemini's array of chunks) */
  PC_FRAMING_SSE,         /* text/event-stream */
  PC_FRAMING_NDJSON,      /* one JSON object per line (Ollama) */
  PC_FRAMING_EVENTSTREAM, /* application/vnd.amazon.eventstream (Bedrock), see eventstream.h */
  PC_FRAMING_OTHER        /* anything else: bytes, complete at a clean end */
};

/* Family by its `api=` name ("openai", "anthropic", "gemini", "azure",
 * "ollama", "tgi", "llamacpp", "bedrock"; "default" names the default
 * family, so that pc_family_name() round-trips). ASCII case-insensitive.
 * 0, or PC_EINVAL for an unknown name (*out untouched). */
int pc_family_parse(const char *name, enum pc_family_id *out);
/* The family's name as pc_family_parse() reads it; "default" for the default
 * family and for an out-of-range id. */
const char *pc_family_name(enum pc_family_id f);

/* NULL-terminated fnmatch(3) globs (flags 0, as route.c matches them: `*`
 * also matches '/') of the POST paths, after route prefix stripping and
 * without the query, that are inference endpoints. Never a state-changing
 * endpoint: that is what tests/unit/test_family.c audits. */
const char *const *pc_family_cache_paths(enum pc_family_id f);
/* Whether `path` (path_len bytes, no query; "" is "/") matches one of them,
 * with route.c's semantics. */
int pc_family_cacheable(enum pc_family_id f, const char *path, size_t path_len);

/* NULL-terminated lower-case names of the request headers that carry a
 * credential: never logged, stored or keyed as such, only fingerprinted
 * (SPEC §4) when the key is scoped by credential. */
const char *const *pc_family_credential_headers(enum pc_family_id f);
/* NULL-terminated lower-case names of the request headers whose values are
 * part of the key because they change the answer. The default family's are
 * exactly key.c's five, in the same order. */
const char *const *pc_family_key_headers(enum pc_family_id f);

/* Whether a query parameter named `name` (n bytes, as written in the URL:
 * percent-encoded, any case) carries a credential (Gemini's `key=`, api_key,
 * access_token, a SAS `sig`, Bedrock presigned X-Amz-Signature, ...).
 * Compared after percent-decoding ('+' is a space), case-insensitively. */
int pc_family_is_credential_param(enum pc_family_id f, const char *name, size_t n);

/* The part of a credential header's value that identifies the caller, for
 * the key's credential fingerprint: the whole value, except for an AWS
 * SigV4 `Authorization` (any family), whose signature and date change on
 * every request: there, its access key id. *id points into `value`. */
void pc_family_credential_identity(const char *name, size_t name_len, const char *value, size_t vlen, const char **id,
                                   size_t *id_len);

/* Whether a request streams its answer. stream_field: the body's top-level
 * "stream" member, -1 absent (or not a boolean), 0 false, 1 true. By path
 * for Gemini (:streamGenerateContent), TGI (/generate_stream) and Bedrock
 * (converse-stream, invoke-with-response-stream); by the body elsewhere, and
 * for Ollama's /api/chat and /api/generate an absent "stream" streams. The
 * default family: "stream": true, as today. */
int pc_family_streams(enum pc_family_id f, const char *path, size_t path_len, int stream_field);

/* One recorded upstream answer to a request of the family. */
struct pc_family_response {
  const char *path; /* request path after route prefix stripping, no query */
  size_t path_len;
  int streamed;             /* pc_family_streams() of the request */
  const char *content_type; /* the response's Content-Type value, NULL when absent */
  size_t ctlen;
  const char *headers; /* response header lines "Name: value\r\n", may be NULL */
  size_t hlen;
  const char *body; /* the body as received (identity bytes), may be NULL when n is 0 */
  size_t n;
  int clean_end; /* the transfer ended with its framing intact (no reset, no cut chunk) */
};

/* The framing of an answer: from its content type; without one, from the
 * family and endpoint when the request streamed (Ollama NDJSON, Bedrock
 * event stream, else SSE), else JSON if the body looks like JSON. */
enum pc_family_framing pc_family_framing(enum pc_family_id f, const struct pc_family_response *r);

/* Whether a 200 answer is whole, so that it may be stored (SPEC §3): the
 * transfer ended cleanly and
 *  - JSON parses (and for Ollama reached "done": true, for a Gemini chunk
 *    array its last chunk has a finishReason or blockReason);
 *  - SSE reached the endpoint's terminal event: `data: [DONE]` (chat and
 *    completions), `event: message_stop` (Anthropic), `response.completed`
 *    (Responses), a final chunk with finishReason (Gemini), a final event
 *    with a non-null generated_text (TGI), a final event with "stop": true
 *    or [DONE] (llama.cpp); the default family exactly as today
 *    (pc_sse_terminal_for() by path, a clean end for Gemini);
 *  - NDJSON (Ollama) ends with an object that has "done": true;
 *  - an event stream is whole messages with valid CRCs, none an exception,
 *    and reached messageStop + metadata (ConverseStream) or the chunk that
 *    carries amazon-bedrock-invocationMetrics (InvokeModelWithResponseStream).
 * Returns 1 or 0. */
int pc_family_complete(enum pc_family_id f, const struct pc_family_response *r);

/* Token usage of an answer, normalized as usage.c (input: every prompt token
 * incl. cached; cached_input; cache_write; output); u->present = 0 when the
 * answer has none. OpenAI-shaped `usage` (OpenAI, Azure, the /v1 endpoints
 * of Ollama, TGI, llama.cpp), Anthropic `usage` (+ cache read/creation),
 * Gemini `usageMetadata`; Ollama prompt_eval_count / eval_count; TGI
 * details.generated_tokens (+ input_length or the prefill) or the
 * x-prompt-tokens / x-generated-tokens headers; llama.cpp tokens_evaluated /
 * tokens_predicted and timings.prompt_n (+ cache_n) / predicted_n; Bedrock
 * Converse usage.inputTokens (+ cacheRead/WriteInputTokens) / outputTokens,
 * the ConverseStream metadata event, InvokeModel's X-Amzn-Bedrock-*-Token-Count
 * headers, amazon-bedrock-invocationMetrics in a response stream's chunks.
 * Every figure is the largest value seen (streams repeat running totals). */
void pc_family_usage(enum pc_family_id f, const struct pc_family_response *r, struct pc_usage *u);

#endif
