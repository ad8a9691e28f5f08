/* family.c — the API family presets (see family.h). Each family is a table
 * of endpoints: a path glob and the kind of endpoint it is. The kind decides
 * streaming, the terminal event and, with the response's content type, the
 * framing; the family decides which usage shapes to look for. The default
 * family keeps today's rules (sse.c, usage.c) wherever they differ, so that
 * existing caches keep their keys and their completeness decisions. */
#include "family.h"

#include <fnmatch.h>
#include <string.h>
#include <strings.h>

#include "awscred.h"
#include "buf.h"
#include "error.h"
#include "eventstream.h"
#include "json.h"
#include "sse.h"
#include "utf8.h"

/* What an endpoint is, as far as streaming and completeness go. */
enum kind {
  K_OTHER,                   /* not a preset endpoint (record mode records everything) */
  K_CHAT,                    /* OpenAI chat/completions, completions: SSE ends with data: [DONE] */
  K_JSON,                    /* one JSON answer, never streamed: embeddings, moderations, rerank... */
  K_RESPONSES,               /* OpenAI Responses: SSE ends with response.completed */
  K_ANTHROPIC,               /* Anthropic Messages: SSE ends with event: message_stop */
  K_GEMINI,                  /* :generateContent: JSON */
  K_GEMINI_STREAM,           /* :streamGenerateContent: SSE (alt=sse) or a JSON array; last chunk has finishReason */
  K_OLLAMA,                  /* /api/chat, /api/generate: NDJSON by default, ends at "done": true */
  K_TGI,                     /* /generate: JSON */
  K_TGI_STREAM,              /* /generate_stream: SSE, final event has a non-null generated_text */
  K_TGI_COMPAT,              /* POST /: /generate or /generate_stream by "stream" */
  K_LLAMACPP,                /* /completion: SSE whose final event has "stop": true */
  K_BEDROCK_CONVERSE_STREAM, /* event stream: messageStop, then metadata */
  K_BEDROCK_INVOKE_STREAM    /* event stream of chunks; the last carries invocation metrics */
};

/* Endpoint lists: one X-macro each, expanded into the public NULL-terminated
 * glob array and the parallel array of kinds, so that they cannot drift. */
#define GLOB(g, k) g,
#define KIND(g, k) k,

/* Today's list, except that Anthropic's endpoint is matched as /v1/messages
 * under any prefix: the old suffix "/messages" also matched OpenAI's
 * POST /v1/threads/{id}/messages, which creates a message. */
#define DEFAULT_EPS(X)                                                                                                 \
  X("*/chat/completions", K_CHAT)                                                                                      \
  X("*/completions", K_CHAT)                                                                                           \
  X("*/embeddings", K_JSON)                                                                                            \
  X("*/v1/messages", K_ANTHROPIC)                                                                                      \
  X("*/responses", K_RESPONSES)                                                                                        \
  X("*/moderations", K_JSON)                                                                                           \
  X("*/rerank", K_JSON)                                                                                                \
  X("*:generateContent", K_GEMINI)                                                                                     \
  X("*:streamGenerateContent", K_GEMINI_STREAM)

#define OPENAI_EPS(X)                                                                                                  \
  X("*/chat/completions", K_CHAT)                                                                                      \
  X("*/completions", K_CHAT)                                                                                           \
  X("*/embeddings", K_JSON)                                                                                            \
  X("*/responses", K_RESPONSES)                                                                                        \
  X("*/moderations", K_JSON)                                                                                           \
  X("*/rerank", K_JSON)

#define ANTHROPIC_EPS(X) X("*/v1/messages", K_ANTHROPIC)

/* Also the OpenAI-compatible endpoints Gemini serves under /v1beta/openai/.
 * Not :batchGenerateContent (it creates a batch job) nor :countTokens. */
#define GEMINI_EPS(X)                                                                                                  \
  X("*:generateContent", K_GEMINI)                                                                                     \
  X("*:streamGenerateContent", K_GEMINI_STREAM)                                                                        \
  X("*:embedContent", K_JSON)                                                                                          \
  X("*:batchEmbedContents", K_JSON)                                                                                    \
  X("*/openai/chat/completions", K_CHAT)                                                                               \
  X("*/openai/embeddings", K_JSON)

/* Deployment paths (api-version is in the query, hence in the key) and the
 * newer /openai/v1/ paths; `*` in front allows an API Management prefix. */
#define AZURE_EPS(X)                                                                                                   \
  X("*/openai/deployments/*/chat/completions", K_CHAT)                                                                 \
  X("*/openai/deployments/*/completions", K_CHAT)                                                                      \
  X("*/openai/deployments/*/embeddings", K_JSON)                                                                       \
  X("*/openai/v1/chat/completions", K_CHAT)                                                                            \
  X("*/openai/v1/completions", K_CHAT)                                                                                 \
  X("*/openai/v1/embeddings", K_JSON)                                                                                  \
  X("*/openai/v1/responses", K_RESPONSES)                                                                              \
  X("*/openai/responses", K_RESPONSES)

/* Native API and the OpenAI/Anthropic-compatible /v1 endpoints. Never
 * /api/pull, /api/create, /api/copy, /api/push, /api/delete. */
#define OLLAMA_EPS(X)                                                                                                  \
  X("*/api/chat", K_OLLAMA)                                                                                            \
  X("*/api/generate", K_OLLAMA)                                                                                        \
  X("*/api/embed", K_JSON)                                                                                             \
  X("*/api/embeddings", K_JSON)                                                                                        \
  X("*/v1/chat/completions", K_CHAT)                                                                                   \
  X("*/v1/completions", K_CHAT)                                                                                        \
  X("*/v1/embeddings", K_JSON)                                                                                         \
  X("*/v1/responses", K_RESPONSES)                                                                                     \
  X("*/v1/messages", K_ANTHROPIC)

/* TGI's native and OpenAI-compatible routes, and text-embeddings-inference's
 * (/embed, /rerank), which is usually deployed beside it. */
#define TGI_EPS(X)                                                                                                     \
  X("/", K_TGI_COMPAT)                                                                                                 \
  X("*/generate", K_TGI)                                                                                               \
  X("*/generate_stream", K_TGI_STREAM)                                                                                 \
  X("*/v1/chat/completions", K_CHAT)                                                                                   \
  X("*/v1/completions", K_CHAT)                                                                                        \
  X("*/embed", K_JSON)                                                                                                 \
  X("*/rerank", K_JSON)                                                                                                \
  X("*/v1/embeddings", K_JSON)

/* llama-server: /completion and its alias /completions are native (the
 * OpenAI one is /v1/completions, listed first); /chat/completions is the
 * OpenAI one under both spellings. */
#define LLAMACPP_EPS(X)                                                                                                \
  X("*/chat/completions", K_CHAT)                                                                                      \
  X("*/v1/completions", K_CHAT)                                                                                        \
  X("*/completion", K_LLAMACPP)                                                                                        \
  X("*/completions", K_LLAMACPP)                                                                                       \
  X("*/infill", K_LLAMACPP)                                                                                            \
  X("*/embedding", K_JSON)                                                                                             \
  X("*/embeddings", K_JSON)                                                                                            \
  X("*/rerank", K_JSON)                                                                                                \
  X("*/reranking", K_JSON)                                                                                             \
  X("*/v1/messages", K_ANTHROPIC)

/* Model ids may be ARNs with '/' (fnmatch's `*` spans it). Never
 * /async-invoke (StartAsyncInvoke creates a job). */
#define BEDROCK_EPS(X)                                                                                                 \
  X("*/model/*/invoke", K_JSON)                                                                                        \
  X("*/model/*/converse", K_JSON)                                                                                      \
  X("*/model/*/converse-stream", K_BEDROCK_CONVERSE_STREAM)                                                            \
  X("*/model/*/invoke-with-response-stream", K_BEDROCK_INVOKE_STREAM)

#define EP_ARRAYS(name, LIST)                                                                                          \
  static const char *const name##_paths[] = {LIST(GLOB) NULL};                                                         \
  static const unsigned char name##_kinds[] = {LIST(KIND)};

EP_ARRAYS(default, DEFAULT_EPS)
EP_ARRAYS(openai, OPENAI_EPS)
EP_ARRAYS(anthropic, ANTHROPIC_EPS)
EP_ARRAYS(gemini, GEMINI_EPS)
EP_ARRAYS(azure, AZURE_EPS)
EP_ARRAYS(ollama, OLLAMA_EPS)
EP_ARRAYS(tgi, TGI_EPS)
EP_ARRAYS(llamacpp, LLAMACPP_EPS)
EP_ARRAYS(bedrock, BEDROCK_EPS)

/* Credential headers. The default family's are what proxy.c fingerprints today. */
static const char *const default_cred[] = {"authorization", "x-api-key", "api-key", "x-goog-api-key", NULL};
static const char *const openai_cred[] = {"authorization", "api-key", "x-api-key", NULL};
static const char *const anthropic_cred[] = {"x-api-key", "authorization", NULL};
static const char *const gemini_cred[] = {"x-goog-api-key", "authorization", NULL};
static const char *const azure_cred[] = {"api-key", "authorization", NULL};
static const char *const bearer_cred[] = {"authorization", NULL};
static const char *const llamacpp_cred[] = {"authorization", "x-api-key", NULL};
/* A SigV4 request carries its session token beside the signature. */
static const char *const bedrock_cred[] = {"authorization", "x-amz-security-token", NULL};

/* Key headers: request headers that change the answer. The default family's
 * are key.c's pc_key_headers, in their order: existing keys depend on it. */
static const char *const default_keyh[] = {"anthropic-version",   "anthropic-beta", "openai-beta",
                                           "openai-organization", "openai-project", NULL};
static const char *const openai_keyh[] = {"openai-beta", "openai-organization", "openai-project", NULL};
static const char *const anthropic_keyh[] = {"anthropic-version", "anthropic-beta", NULL};
static const char *const no_keyh[] = {NULL};
/* InvokeModel's options travel as headers (Converse has them in the body). */
static const char *const bedrock_keyh[] = {"x-amzn-bedrock-guardrailidentifier",
                                           "x-amzn-bedrock-guardrailversion",
                                           "x-amzn-bedrock-trace",
                                           "x-amzn-bedrock-performanceconfig-latency",
                                           "x-amzn-bedrock-service-tier",
                                           "accept",
                                           NULL};

/* Query parameters that carry a credential, lower case, for every family:
 * Gemini's key=, OpenAPI-style api_key / apikey, OAuth access_token, Azure
 * API Management's subscription-key, SAS signatures (sig). */
static const char *const common_params[] = {"key",          "api_key",          "api-key",
                                            "apikey",       "x-api-key",        "x-goog-api-key",
                                            "access_token", "access-token",     "accesstoken",
                                            "oauth_token",  "auth_token",       "token",
                                            "api_token",    "subscription-key", "ocp-apim-subscription-key",
                                            "sig",          "signature",        "password",
                                            "secret",       "client_secret",    NULL};
/* Bedrock presigned URLs (SigV4 in the query). */
static const char *const bedrock_params[] = {"x-amz-credential", "x-amz-signature", "x-amz-security-token", NULL};
static const char *const no_params[] = {NULL};

/* Which usage shapes a family's answers may carry besides the ones
 * pc_usage_from_body() reads (OpenAI, Anthropic, Gemini). */
enum { U_OLLAMA = 1, U_TGI = 2, U_LLAMACPP = 4, U_BEDROCK = 8 };

struct preset {
  const char *name;
  const char *const *paths;
  const unsigned char *kinds;
  const char *const *cred;
  const char *const *keyh;
  const char *const *params; /* besides common_params */
  unsigned native_usage;
};

#define PRESET(id, nm, cred_, keyh_, params_, usage_)                                                                  \
  [PC_FAMILY_##id] = {#nm, nm##_paths, nm##_kinds, cred_, keyh_, params_, usage_}

static const struct preset presets[PC_FAMILY_N] = {
    PRESET(DEFAULT, default, default_cred, default_keyh, no_params, 0),
    PRESET(OPENAI, openai, openai_cred, openai_keyh, no_params, 0),
    PRESET(ANTHROPIC, anthropic, anthropic_cred, anthropic_keyh, no_params, 0),
    PRESET(GEMINI, gemini, gemini_cred, no_keyh, no_params, 0),
    PRESET(AZURE, azure, azure_cred, no_keyh, no_params, 0),
    PRESET(OLLAMA, ollama, bearer_cred, no_keyh, no_params, U_OLLAMA),
    PRESET(TGI, tgi, bearer_cred, no_keyh, no_params, U_TGI),
    PRESET(LLAMACPP, llamacpp, llamacpp_cred, no_keyh, no_params, U_LLAMACPP),
    PRESET(BEDROCK, bedrock, bedrock_cred, bedrock_keyh, bedrock_params, U_BEDROCK),
};

static const struct preset *preset(enum pc_family_id f) {
  return (unsigned)f < PC_FAMILY_N ? &presets[f] : &presets[PC_FAMILY_DEFAULT];
}

int pc_family_parse(const char *name, enum pc_family_id *out) {
  for (int i = 0; name && i < PC_FAMILY_N; i++)
    if (!strcasecmp(name, presets[i].name)) {
      *out = (enum pc_family_id)i;
      return 0;
    }
  return PC_EINVAL;
}

const char *pc_family_name(enum pc_family_id f) { return preset(f)->name; }
const char *const *pc_family_cache_paths(enum pc_family_id f) { return preset(f)->paths; }
const char *const *pc_family_credential_headers(enum pc_family_id f) { return preset(f)->cred; }
const char *const *pc_family_key_headers(enum pc_family_id f) { return preset(f)->keyh; }

/* ---- paths ---- */

/* fnmatch(glob, path, 0), as route.c does it: a "*literal" glob is a suffix
 * test (any length); others need a NUL-terminated copy, and a path too long
 * for it matches nothing. */
static int glob_match(const char *g, const char *path, size_t n) {
  if (g[0] == '*' && !strpbrk(g + 1, "*?[\\")) {
    size_t l = strlen(g + 1);
    return n >= l && !memcmp(path + n - l, g + 1, l);
  }
  char tmp[2048];
  if (n >= sizeof tmp) return 0;
  memcpy(tmp, path, n);
  tmp[n] = '\0';
  return fnmatch(g, tmp, 0) == 0;
}

/* The first endpoint of the family that the path matches. */
static int lookup(enum pc_family_id f, const char *path, size_t n, enum kind *k) {
  const struct preset *p = preset(f);
  if (!n) path = "/", n = 1; /* a route prefix alone stands for "/" */
  for (size_t i = 0; p->paths[i]; i++)
    if (glob_match(p->paths[i], path, n)) {
      *k = (enum kind)p->kinds[i];
      return 1;
    }
  *k = K_OTHER;
  return 0;
}

static enum kind kind_of(enum pc_family_id f, const char *path, size_t n) {
  enum kind k;
  lookup(f, path ? path : "", path ? n : 0, &k);
  return k;
}

int pc_family_cacheable(enum pc_family_id f, const char *path, size_t path_len) {
  enum kind k;
  return lookup(f, path ? path : "", path ? path_len : 0, &k);
}

/* ---- credentials ---- */

#define PARAM_NAME_MAX 32 /* longer than every name above: cannot match */

static int in_list(const char *const *list, const char *s, size_t n) {
  for (; *list; list++)
    if (strlen(*list) == n && !memcmp(*list, s, n)) return 1;
  return 0;
}

int pc_family_is_credential_param(enum pc_family_id f, const char *name, size_t n) {
  char d[PARAM_NAME_MAX];
  size_t dl = pc_param_name_decode(name, n, d, sizeof d);
  if (dl > sizeof d) return 0;
  return in_list(common_params, d, dl) || in_list(preset(f)->params, d, dl);
}

void pc_family_credential_identity(const char *name, size_t name_len, const char *value, size_t vlen, const char **id,
                                   size_t *id_len) {
  struct pc_sigv4_auth a;
  *id = value;
  *id_len = vlen;
  if (name_len == 13 && !strncasecmp(name, "authorization", 13) && !pc_awscred_parse_authorization(value, vlen, &a)) {
    *id = a.access_key_id;
    *id_len = a.access_key_id_len;
  }
}

/* ---- streaming and framing ---- */

int pc_family_streams(enum pc_family_id f, const char *path, size_t path_len, int stream_field) {
  if (f == PC_FAMILY_DEFAULT) return stream_field == 1; /* today's rule */
  switch (kind_of(f, path, path_len)) {
  case K_GEMINI_STREAM:
  case K_TGI_STREAM:
  case K_BEDROCK_CONVERSE_STREAM:
  case K_BEDROCK_INVOKE_STREAM:
    return 1;
  case K_JSON:
  case K_GEMINI:
  case K_TGI:
    return 0;
  case K_OLLAMA:
    return stream_field != 0; /* Ollama streams unless told "stream": false */
  default:
    return stream_field == 1;
  }
}

/* The media type (before ';', trimmed) equals `type`, ASCII case-insensitive. */
static int media_is(const char *ct, size_t n, const char *type) {
  const char *semi = memchr(ct, ';', n);
  size_t l = semi ? (size_t)(semi - ct) : n, tl = strlen(type);
  while (l && (ct[l - 1] == ' ' || ct[l - 1] == '\t')) l--;
  while (l && (*ct == ' ' || *ct == '\t')) ct++, l--;
  return l == tl && !strncasecmp(ct, type, tl);
}

static int json_suffix(const char *ct, size_t n) {
  const char *semi = memchr(ct, ';', n);
  size_t l = semi ? (size_t)(semi - ct) : n;
  while (l && (ct[l - 1] == ' ' || ct[l - 1] == '\t')) l--;
  return l >= 5 && !strncasecmp(ct + l - 5, "+json", 5);
}

static int framing_of_type(const char *ct, size_t n, enum pc_family_framing *out) {
  static const struct {
    const char *type;
    enum pc_family_framing framing;
  } types[] = {
      {"text/event-stream", PC_FRAMING_SSE},
      {"application/json", PC_FRAMING_JSON},
      {"application/x-ndjson", PC_FRAMING_NDJSON},
      {"application/ndjson", PC_FRAMING_NDJSON},
      {"application/jsonl", PC_FRAMING_NDJSON},
      {"application/x-jsonlines", PC_FRAMING_NDJSON},
      {"application/vnd.amazon.eventstream", PC_FRAMING_EVENTSTREAM},
  };
  for (size_t i = 0; i < sizeof types / sizeof *types; i++)
    if (media_is(ct, n, types[i].type)) {
      *out = types[i].framing;
      return 1;
    }
  if (json_suffix(ct, n)) {
    *out = PC_FRAMING_JSON;
    return 1;
  }
  return 0;
}

static int looks_like_json(const char *p, size_t n) {
  while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++, n--;
  return n && (*p == '{' || *p == '[');
}

enum pc_family_framing pc_family_framing(enum pc_family_id f, const struct pc_family_response *r) {
  enum pc_family_framing fr;
  if (r->content_type && r->ctlen) return framing_of_type(r->content_type, r->ctlen, &fr) ? fr : PC_FRAMING_OTHER;
  if (r->streamed) {
    switch (kind_of(f, r->path, r->path_len)) {
    case K_OLLAMA:
      return PC_FRAMING_NDJSON;
    case K_BEDROCK_CONVERSE_STREAM:
    case K_BEDROCK_INVOKE_STREAM:
      return PC_FRAMING_EVENTSTREAM;
    default:
      return PC_FRAMING_SSE;
    }
  }
  return looks_like_json(r->body, r->n) ? PC_FRAMING_JSON : PC_FRAMING_OTHER;
}

/* ---- completeness ---- */

/* Parse a JSON text; NULL when it is not one. */
static struct pc_json_doc *parse(const char *p, size_t n) {
  struct pc_json_doc *doc = NULL;
  return pc_json_parse(p, n, &doc, NULL) ? NULL : doc;
}

static int is_true(const struct pc_json *o, const char *name) {
  const struct pc_json *v = o && o->type == PC_JSON_OBJECT ? pc_json_get(o, name) : NULL;
  return v && v->type == PC_JSON_TRUE;
}

static int is_string(const struct pc_json *o, const char *name) {
  const struct pc_json *v = o && o->type == PC_JSON_OBJECT ? pc_json_get(o, name) : NULL;
  return v && v->type == PC_JSON_STRING;
}

/* A Gemini chunk that ends the answer: a candidate with a finishReason, or
 * a prompt blocked before any candidate. */
static int gemini_final(const struct pc_json *chunk) {
  const struct pc_json *cands = chunk->type == PC_JSON_OBJECT ? pc_json_get(chunk, "candidates") : NULL;
  for (size_t i = 0; cands && cands->type == PC_JSON_ARRAY && i < cands->len; i++)
    if (is_string(&cands->kids[i], "finishReason")) return 1;
  const struct pc_json *fb = chunk->type == PC_JSON_OBJECT ? pc_json_get(chunk, "promptFeedback") : NULL;
  return is_string(fb, "blockReason");
}

/* Does one JSON text (an SSE data line, an NDJSON line, a whole body) end
 * an answer of this kind? */
static int final_doc(enum kind k, const char *p, size_t n) {
  struct pc_json_doc *doc = parse(p, n);
  if (!doc) return 0;
  const struct pc_json *r = pc_json_root(doc);
  int fin;
  switch (k) {
  case K_GEMINI_STREAM:
    fin = r->type == PC_JSON_ARRAY ? r->len && gemini_final(&r->kids[r->len - 1]) : gemini_final(r);
    break;
  case K_OLLAMA:
    fin = is_true(r, "done");
    break;
  case K_TGI_STREAM:
  case K_TGI_COMPAT:
    fin = is_string(r, "generated_text");
    break;
  case K_LLAMACPP:
    fin = is_true(r, "stop");
    break;
  default:
    fin = 1;
    break;
  }
  pc_json_free(doc);
  return fin;
}

static int json_complete(enum pc_family_id f, enum kind k, const char *body, size_t n) {
  if (f == PC_FAMILY_DEFAULT || (k != K_GEMINI_STREAM && k != K_OLLAMA)) k = K_OTHER; /* parsing is enough */
  return final_doc(k, body, n);
}

static int sse_complete(enum pc_family_id f, enum kind k, const struct pc_family_response *r) {
  if (f == PC_FAMILY_DEFAULT) return pc_sse_complete(pc_sse_terminal_for(r->path, r->path_len), r->body, r->n);
  const char *d;
  size_t dl;
  switch (k) {
  case K_CHAT:
    return pc_sse_complete(PC_SSE_DONE, r->body, r->n);
  case K_RESPONSES:
    return pc_sse_complete(PC_SSE_RESPONSE_COMPLETED, r->body, r->n);
  case K_ANTHROPIC:
    return pc_sse_complete(PC_SSE_MESSAGE_STOP, r->body, r->n);
  case K_GEMINI_STREAM:
  case K_TGI_STREAM:
  case K_TGI_COMPAT:
    return pc_sse_last_data(r->body, r->n, &d, &dl) && final_doc(k, d, dl);
  case K_LLAMACPP:
    if (!pc_sse_last_data(r->body, r->n, &d, &dl)) return 0;
    return (dl == 6 && !memcmp(d, "[DONE]", 6)) || final_doc(k, d, dl);
  default:
    return 1;
  }
}

/* The last non-blank line of an NDJSON body. */
static int last_line(const char *p, size_t n, const char **l, size_t *ll) {
  const char *end = p + n;
  while (end > p) {
    const char *s = end;
    while (s > p && s[-1] != '\n') s--;
    const char *e = end;
    while (e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
    if (e > s) {
      *l = s;
      *ll = (size_t)(e - s);
      return 1;
    }
    end = s > p ? s - 1 : p;
  }
  return 0;
}

static int ndjson_complete(enum kind k, const char *body, size_t n) {
  const char *l;
  size_t ll;
  if (k != K_OLLAMA) return 1;
  return last_line(body, n, &l, &ll) && final_doc(K_OLLAMA, l, ll);
}

static int str_is(struct pc_eventstream_str s, const char *lit) {
  size_t l = strlen(lit);
  return s.p && s.n == l && !memcmp(s.p, lit, l);
}

/* ---- Bedrock chunks: {"bytes":"<base64 of the model's own event>"} ---- */

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 (padding optional) into out; PC_EINVAL on a bad character. */
static int b64_decode(const char *s, size_t n, pc_buf *out) {
  unsigned acc = 0;
  int bits = 0, rc = 0;
  for (size_t i = 0; !rc && i < n && s[i] != '='; i++) {
    int v = b64val((unsigned char)s[i]);
    if (v < 0) return PC_EINVAL;
    acc = (acc << 6 | (unsigned)v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      rc = pc_buf_putc(out, (char)(acc >> bits));
    }
  }
  return rc;
}

/* The model event a Bedrock `chunk` message carries, decoded into out. */
static int chunk_bytes(const struct pc_eventstream_msg *m, pc_buf *out) {
  struct pc_json_doc *doc = parse(m->payload, m->payload_len);
  if (!doc) return PC_EINVAL;
  const struct pc_json *b = pc_json_get(pc_json_root(doc), "bytes");
  int rc = b && b->type == PC_JSON_STRING ? b64_decode(b->str, b->len, out) : PC_EINVAL;
  pc_json_free(doc);
  return rc;
}

static int chunk_is_final(const struct pc_eventstream_msg *m) {
  pc_buf dec;
  pc_buf_init(&dec, m->payload_len);
  int fin = 0;
  if (!chunk_bytes(m, &dec) && dec.len) {
    struct pc_json_doc *doc = parse(dec.data, dec.len);
    const struct pc_json *r = doc ? pc_json_root(doc) : NULL;
    fin = r && r->type == PC_JSON_OBJECT && pc_json_get(r, "amazon-bedrock-invocationMetrics") != NULL;
    pc_json_free(doc);
  }
  pc_buf_free(&dec);
  return fin;
}

static int eventstream_complete(enum kind k, const char *body, size_t n) {
  size_t off = 0, used;
  int stop = 0, meta = 0, last_chunk = 0;
  struct pc_eventstream_msg m;
  while (off < n) {
    if (pc_eventstream_decode(body + off, n - off, &m, &used) || !used) return 0; /* bad or cut frame */
    off += used;
    if (m.message_type.p && !str_is(m.message_type, "event")) return 0; /* exception or error */
    if (str_is(m.event_type, "messageStop"))
      stop = 1;
    else if (str_is(m.event_type, "metadata"))
      meta = stop;
    else if (str_is(m.event_type, "chunk") && k == K_BEDROCK_INVOKE_STREAM)
      last_chunk = chunk_is_final(&m);
  }
  if (k == K_BEDROCK_CONVERSE_STREAM) return stop && meta;
  if (k == K_BEDROCK_INVOKE_STREAM) return last_chunk;
  return 1;
}

int pc_family_complete(enum pc_family_id f, const struct pc_family_response *r) {
  if (!r->clean_end) return 0;
  const char *body = r->body ? r->body : "";
  struct pc_family_response c = *r;
  c.body = body;
  enum kind k = kind_of(f, r->path, r->path_len);
  switch (pc_family_framing(f, &c)) {
  case PC_FRAMING_JSON:
    return json_complete(f, k, body, r->n);
  case PC_FRAMING_SSE:
    return sse_complete(f, k, &c);
  case PC_FRAMING_NDJSON:
    return f == PC_FAMILY_DEFAULT ? 1 : ndjson_complete(k, body, r->n);
  case PC_FRAMING_EVENTSTREAM:
    return eventstream_complete(k, body, r->n);
  default:
    return 1;
  }
}

/* ---- usage ---- */

static uint64_t num(const struct pc_json *o, const char *ptr) {
  const struct pc_json *v = pc_json_at(o, ptr);
  return v && v->type == PC_JSON_NUMBER && v->num > 0 ? (uint64_t)v->num : 0;
}

static void take(uint64_t *dst, uint64_t v) {
  if (v > *dst) *dst = v;
}

static void merge(struct pc_usage *u, const struct pc_usage *v) {
  if (!v->present) return;
  u->present = 1;
  take(&u->input, v->input);
  take(&u->output, v->output);
  take(&u->cached_input, v->cached_input);
  take(&u->cache_write, v->cache_write);
}

/* A figure that a shape reports: usage is present even if it is 0. */
static int has(const struct pc_json *o, const char *ptr) {
  const struct pc_json *v = pc_json_at(o, ptr);
  return v && v->type == PC_JSON_NUMBER;
}

/* Ollama's final object: prompt_eval_count, eval_count. */
static void usage_ollama(const struct pc_json *r, struct pc_usage *u) {
  if (!has(r, "/prompt_eval_count") && !has(r, "/eval_count")) return;
  u->present = 1;
  take(&u->input, num(r, "/prompt_eval_count"));
  take(&u->output, num(r, "/eval_count"));
}

/* TGI: details.generated_tokens; the prompt as details.input_length (newer
 * streams) or the prefill tokens (decoder_input_details). */
static void usage_tgi(const struct pc_json *r, struct pc_usage *u) {
  const struct pc_json *d = r->type == PC_JSON_OBJECT ? pc_json_get(r, "details") : NULL;
  if (!d || d->type != PC_JSON_OBJECT || !has(d, "/generated_tokens")) return;
  u->present = 1;
  take(&u->output, num(d, "/generated_tokens"));
  take(&u->input, num(d, "/input_length"));
  const struct pc_json *pre = pc_json_get(d, "prefill");
  if (pre && pre->type == PC_JSON_ARRAY) take(&u->input, pre->len);
}

/* llama.cpp native: tokens_evaluated / tokens_predicted, and the timings
 * block (prompt_n counts only the prompt tokens not reused from its cache,
 * cache_n the reused ones). */
static void usage_llamacpp(const struct pc_json *r, struct pc_usage *u) {
  if (!has(r, "/tokens_predicted") && !has(r, "/timings/predicted_n")) return;
  u->present = 1;
  take(&u->input, num(r, "/tokens_evaluated"));
  take(&u->input, num(r, "/timings/prompt_n") + num(r, "/timings/cache_n"));
  take(&u->cached_input, num(r, "/timings/cache_n"));
  take(&u->output, num(r, "/tokens_predicted"));
  take(&u->output, num(r, "/timings/predicted_n"));
}

/* Bedrock's camelCase usage (Converse, the ConverseStream metadata event):
 * inputTokens leaves out the cache reads and writes (totalTokens = input +
 * output + cacheRead + cacheWrite), so they are added back. Also the
 * invocation metrics a response stream appends to its last chunk. */
static void usage_bedrock(const struct pc_json *r, struct pc_usage *u) {
  static const char *const blocks[] = {"/usage", "/amazon-bedrock-invocationMetrics"};
  static const char *const names[][4] = {
      {"/inputTokens", "/outputTokens", "/cacheReadInputTokens", "/cacheWriteInputTokens"},
      {"/inputTokenCount", "/outputTokenCount", "/cacheReadInputTokenCount", "/cacheWriteInputTokenCount"}};
  for (int b = 0; b < 2; b++) {
    const struct pc_json *o = pc_json_at(r, blocks[b]);
    if (!o || o->type != PC_JSON_OBJECT || (!has(o, names[b][0]) && !has(o, names[b][1]))) continue;
    uint64_t rd = num(o, names[b][2]), wr = num(o, names[b][3]);
    u->present = 1;
    take(&u->input, num(o, names[b][0]) + rd + wr);
    take(&u->output, num(o, names[b][1]));
    take(&u->cached_input, rd);
    take(&u->cache_write, wr);
  }
}

static void native_doc(unsigned shapes, const struct pc_json *r, struct pc_usage *u) {
  if (r->type == PC_JSON_ARRAY) { /* TGI's POST / answers [{...}] */
    for (size_t i = 0; i < r->len; i++) native_doc(shapes, &r->kids[i], u);
    return;
  }
  if (r->type != PC_JSON_OBJECT) return;
  if (shapes & U_OLLAMA) usage_ollama(r, u);
  if (shapes & U_TGI) usage_tgi(r, u);
  if (shapes & U_LLAMACPP) usage_llamacpp(r, u);
  if (shapes & U_BEDROCK) usage_bedrock(r, u);
}

/* Words every native usage block contains, to skip parsing the many events
 * that have none (content deltas). */
static int may_have_usage(const char *p, size_t n) {
  static const char *const words[] = {"eval_count", "generated_tokens", "tokens_predicted", "predicted_n", "nputToken"};
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    if (memmem(p, n, words[i], strlen(words[i]))) return 1;
  return 0;
}

static void native_text(unsigned shapes, const char *p, size_t n, struct pc_usage *u) {
  if (!may_have_usage(p, n)) return;
  struct pc_json_doc *doc = parse(p, n);
  if (!doc) return;
  native_doc(shapes, pc_json_root(doc), u);
  pc_json_free(doc);
}

/* The OpenAI/Anthropic/Gemini shapes of one JSON text, merged into u. */
static void common_text(const char *p, size_t n, struct pc_usage *u) {
  struct pc_usage v;
  pc_usage_from_body(p, n, 0, &v);
  merge(u, &v);
}

static void usage_lines(unsigned shapes, const char *p, size_t n, struct pc_usage *u) {
  const char *end = p + n;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    native_text(shapes, p, (size_t)(le - p), u);
    p = nl ? nl + 1 : end;
  }
}

static void usage_sse(unsigned shapes, const char *p, size_t n, struct pc_usage *u) {
  const char *cur = p, *d;
  size_t dl;
  while (pc_sse_next_data(&cur, p + n, &d, &dl)) native_text(shapes, d, dl, u);
}

/* Event-stream messages: ConverseStream's metadata payload has the usage;
 * a response stream's chunks carry the model's own events (Anthropic-shaped
 * for Claude) and, last, the invocation metrics. */
static void usage_eventstream(const char *p, size_t n, struct pc_usage *u) {
  size_t off = 0, used;
  struct pc_eventstream_msg m;
  while (off < n && !pc_eventstream_decode(p + off, n - off, &m, &used) && used) {
    off += used;
    if (str_is(m.event_type, "chunk")) {
      pc_buf dec;
      pc_buf_init(&dec, m.payload_len);
      if (!chunk_bytes(&m, &dec) && dec.len) {
        common_text(dec.data, dec.len, u);
        native_text(U_BEDROCK, dec.data, dec.len, u);
      }
      pc_buf_free(&dec);
    } else if (str_is(m.event_type, "metadata")) {
      native_text(U_BEDROCK, m.payload, m.payload_len, u);
    }
  }
}

/* A response header's value as a number, or -1 when absent. */
static long long header_num(const char *h, size_t hlen, const char *name) {
  size_t nl = strlen(name);
  const char *p = h, *end = h + hlen;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    if ((size_t)(le - p) > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
      const char *v = p + nl + 1;
      while (v < le && (*v == ' ' || *v == '\t')) v++;
      long long x = 0;
      int digits = 0;
      for (; v < le && *v >= '0' && *v <= '9' && x < (1LL << 53); v++, digits++) x = x * 10 + (*v - '0');
      return digits ? x : -1;
    }
    p = eol ? eol + 1 : NULL;
  }
  return -1;
}

/* Usage the answer's headers report: TGI's x-prompt-tokens /
 * x-generated-tokens; InvokeModel's X-Amzn-Bedrock-*-Token-Count. */
static void usage_headers(unsigned shapes, const char *h, size_t hlen, struct pc_usage *u) {
  static const char *const tgi[] = {"x-prompt-tokens", "x-generated-tokens", NULL, NULL};
  static const char *const bedrock[] = {"x-amzn-bedrock-input-token-count", "x-amzn-bedrock-output-token-count",
                                        "x-amzn-bedrock-cache-read-input-token-count",
                                        "x-amzn-bedrock-cache-write-input-token-count"};
  const char *const *names = shapes & U_TGI ? tgi : shapes & U_BEDROCK ? bedrock : NULL;
  if (!names || !h) return;
  long long in = header_num(h, hlen, names[0]), out = header_num(h, hlen, names[1]);
  long long rd = names[2] ? header_num(h, hlen, names[2]) : -1, wr = names[3] ? header_num(h, hlen, names[3]) : -1;
  if (in < 0 && out < 0) return;
  u->present = 1;
  take(&u->input, (uint64_t)(in > 0 ? in : 0) + (uint64_t)(rd > 0 ? rd : 0) + (uint64_t)(wr > 0 ? wr : 0));
  take(&u->output, (uint64_t)(out > 0 ? out : 0));
  take(&u->cached_input, (uint64_t)(rd > 0 ? rd : 0));
  take(&u->cache_write, (uint64_t)(wr > 0 ? wr : 0));
}

void pc_family_usage(enum pc_family_id f, const struct pc_family_response *r, struct pc_usage *u) {
  memset(u, 0, sizeof *u);
  unsigned shapes = preset(f)->native_usage;
  const char *body = r->body ? r->body : "";
  struct pc_family_response c = *r;
  c.body = body;
  enum pc_family_framing fr = pc_family_framing(f, &c);
  struct pc_usage v;
  if (fr == PC_FRAMING_JSON || fr == PC_FRAMING_SSE) {
    /* today's reader: the default family's figures come from here alone */
    pc_usage_from_body(body, r->n, fr == PC_FRAMING_SSE, &v);
    merge(u, &v);
  }
  if (shapes) {
    if (fr == PC_FRAMING_JSON)
      native_text(shapes, body, r->n, u);
    else if (fr == PC_FRAMING_SSE)
      usage_sse(shapes, body, r->n, u);
    else if (fr == PC_FRAMING_NDJSON)
      usage_lines(shapes, body, r->n, u);
    else if (fr == PC_FRAMING_EVENTSTREAM)
      usage_eventstream(body, r->n, u);
    usage_headers(shapes, r->headers, r->hlen, u);
  }
}
