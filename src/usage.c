/* usage.c — token usage out of provider responses, normalized:
 *   input  = every prompt token, cached or not
 *   cached_input = prompt tokens read from the provider's own prompt cache
 *   cache_write  = prompt tokens written to it (Anthropic)
 *   output = completion tokens
 * OpenAI chat/completions: usage.prompt_tokens (incl. prompt_tokens_details
 * .cached_tokens), usage.completion_tokens. OpenAI Responses: usage
 * .input_tokens (incl. input_tokens_details.cached_tokens), output_tokens.
 * Anthropic: usage.input_tokens + cache_read_input_tokens +
 * cache_creation_input_tokens, output_tokens. Gemini: usageMetadata
 * .promptTokenCount (incl. cachedContentTokenCount) + toolUsePromptTokenCount,
 * candidatesTokenCount + thoughtsTokenCount (thinking is billed as output,
 * as OpenAI's completion_tokens include reasoning tokens).
 * Streams: each SSE data event is examined; the largest value seen for each
 * figure wins (Anthropic splits usage over message_start / message_delta,
 * OpenAI sends it in the last chunk, Responses inside response.completed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "stats.h"

/* A token count as upstream sent it: negative or not a number is 0, too
 * large for 64 bits (1e300, infinity) saturates (a cast would be undefined). */
static uint64_t num(const struct pc_json *o, const char *ptr) {
  const struct pc_json *v = pc_json_at(o, ptr);
  if (!v || v->type != PC_JSON_NUMBER || !(v->num > 0)) return 0;
  return v->num >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)v->num;
}

static uint64_t add_sat(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

static void take(uint64_t *dst, uint64_t v) {
  if (v > *dst) *dst = v;
}

/* Usage in one JSON document (a whole body or one SSE event). */
static void from_doc(const struct pc_json *r, struct pc_usage *u) {
  const struct pc_json *usage = pc_json_get(r, "usage");
  if (!usage) {
    const struct pc_json *inner = pc_json_get(r, "message"); /* Anthropic message_start */
    if (!inner) inner = pc_json_get(r, "response");          /* Responses response.completed */
    usage = inner ? pc_json_get(inner, "usage") : NULL;
  }
  if (usage && usage->type == PC_JSON_OBJECT) {
    u->present = 1;
    uint64_t cache_read = num(usage, "/cache_read_input_tokens"),
             cache_write = num(usage, "/cache_creation_input_tokens");
    take(&u->input, num(usage, "/prompt_tokens"));
    take(&u->input, add_sat(add_sat(num(usage, "/input_tokens"), cache_read), cache_write));
    take(&u->output, num(usage, "/completion_tokens"));
    take(&u->output, num(usage, "/output_tokens"));
    take(&u->cached_input, num(usage, "/prompt_tokens_details/cached_tokens"));
    take(&u->cached_input, num(usage, "/input_tokens_details/cached_tokens"));
    take(&u->cached_input, cache_read);
    take(&u->cache_write, cache_write);
  }
  const struct pc_json *g = pc_json_get(r, "usageMetadata");
  if (g && g->type == PC_JSON_OBJECT) {
    u->present = 1;
    take(&u->input, num(g, "/promptTokenCount") + num(g, "/toolUsePromptTokenCount"));
    take(&u->output, num(g, "/candidatesTokenCount") + num(g, "/thoughtsTokenCount"));
    take(&u->cached_input, num(g, "/cachedContentTokenCount"));
  }
}

static int from_json(const char *p, size_t n, struct pc_usage *u) {
  struct pc_json_doc *doc = NULL;
  if (pc_json_parse(p, n, &doc, NULL)) return PC_EJSON;
  const struct pc_json *r = pc_json_root(doc);
  if (r->type == PC_JSON_OBJECT)
    from_doc(r, u);
  else if (r->type == PC_JSON_ARRAY) /* Gemini without alt=sse streams a JSON array */
    for (size_t i = 0; i < r->len; i++) from_doc(&r->kids[i], u);
  pc_json_free(doc);
  return 0;
}

static void from_sse(const char *p, size_t n, struct pc_usage *u) {
  const char *end = p + n;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    if (le - p > 5 && !memcmp(p, "data:", 5)) {
      const char *d = p + 5;
      if (*d == ' ') d++;
      size_t dl = (size_t)(le - d);
      if (dl && d[dl - 1] == '\r') dl--;
      if (dl && (memmem(d, dl, "sage", 4))) from_json(d, dl, u); /* usage / usageMetadata */
    }
    p = nl ? nl + 1 : end;
  }
}

int pc_usage_from_body(const char *body, size_t n, int sse, struct pc_usage *u) {
  memset(u, 0, sizeof *u);
  if (sse) {
    from_sse(body, n, u);
    return 0;
  }
  return from_json(body, n, u);
}

int pc_usage_write(const struct pc_usage *u, pc_buf *out) {
  if (!u->present) return 0;
  int rc = pc_buf_puts(out, "{\"input\":");
  if (!rc) rc = pc_buf_put_u64(out, u->input);
  if (!rc) rc = pc_buf_puts(out, ",\"output\":");
  if (!rc) rc = pc_buf_put_u64(out, u->output);
  if (!rc) rc = pc_buf_puts(out, ",\"cached_input\":");
  if (!rc) rc = pc_buf_put_u64(out, u->cached_input);
  if (!rc) rc = pc_buf_puts(out, ",\"cache_write\":");
  if (!rc) rc = pc_buf_put_u64(out, u->cache_write);
  if (!rc) rc = pc_buf_putc(out, '}');
  return rc;
}

/* Read back what pc_usage_write wrote, in one pass and without a JSON
 * parser or printf: this runs on every hit. Unknown members are skipped. */
void pc_usage_read(const char *p, size_t n, struct pc_usage *u) {
  memset(u, 0, sizeof *u);
  if (!n) return;
  u->present = 1;
  const char *end = p + n;
  while (p < end) {
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q) break;
    const char *name = q + 1, *close = memchr(name, '"', (size_t)(end - name));
    if (!close || close + 1 >= end || close[1] != ':') break;
    uint64_t v = 0;
    for (p = close + 2; p < end && *p >= '0' && *p <= '9'; p++) v = v * 10 + (uint64_t)(*p - '0');
    size_t nl = (size_t)(close - name);
    if (nl == 5 && !memcmp(name, "input", 5))
      u->input = v;
    else if (nl == 6 && !memcmp(name, "output", 6))
      u->output = v;
    else if (nl == 12 && !memcmp(name, "cached_input", 12))
      u->cached_input = v;
    else if (nl == 11 && !memcmp(name, "cache_write", 11))
      u->cache_write = v;
  }
}
