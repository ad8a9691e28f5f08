/* gen_seeds.c — writes the generated seeds of two fuzz corpora: encoded
 * entries (corpus/entry/gen-*.bin, as pc_entry_encode stores them) and the
 * JSONL lines `promptcache export` writes for the same entries
 * (corpus/import/gen-*.jsonl, with keys that match their requests).
 * Run by `make fuzz-seeds`; the output is committed, so the corpora do not
 * depend on running it. Usage: gen_seeds CORPUS_DIR */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cache.h"
#include "canon.h"
#include "entry.h"
#include "error.h"
#include "export.h"
#include "key.h"

struct seed {
  const char *name;
  const char *route, *method, *path, *query, *ns, *model;
  const char *anthropic_version;
  const char *request; /* JSON request body */
  int status;
  const char *headers;
  const char *body;
  size_t body_len; /* 0: strlen(body) */
  const char *usage;
  unsigned flags;
  int64_t expires_ms;
  const char *const *events; /* SSE: one chunk per string, NULL-terminated */
};

static const char *const chat_events[] = {
    "data: "
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":"
    "0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{"
    "\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n",
    "data: [DONE]\n\n", NULL};

static const char *const anthropic_events[] = {
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"model\":\"claude-3-5-haiku-latest\",\"content\":[],\"usage\":{\"input_tokens\":12,"
    "\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"Hi\"}}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{"
    "\"output_tokens\":5}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", NULL};

static const char *const responses_events[] = {
    "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\"}}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\xc3\xa9t\xc3\xa9\"}"
    "\n\n",
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{"
    "\"input_tokens\":20,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":3}}}\n\n",
    NULL};

/* A chunk split inside a UTF-8 character: exported as data_base64. */
static const char *const split_utf8_events[] = {"data: {\"t\":\"\xe2\x82", "\xac\"}\n\n", "data: [DONE]\n\n", NULL};

static const char binary_body[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xfe";

static const struct seed seeds[] = {
    {"openai-chat", "", "POST", "/v1/chat/completions", NULL, "", "gpt-4o-mini", NULL,
     "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"temperature\":0}", 200,
     "content-type: application/json\r\nx-request-id: req_1\r\n",
     "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"gpt-4o-mini\","
     "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello!\"},\"finish_reason\":"
     "\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,"
     "\"prompt_tokens_details\":{\"cached_tokens\":0}}}",
     0, "{\"input\":9,\"output\":2,\"cached_input\":0,\"cache_write\":0}", 0, 0, NULL},
    {"openai-chat-stream", "", "POST", "/v1/chat/completions", NULL, "", "gpt-4o-mini", NULL,
     "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":"
     "\"user\",\"content\":\"hi\"}]}",
     200, "content-type: text/event-stream\r\n", NULL, 0,
     "{\"input\":9,\"output\":2,\"cached_input\":0,\"cache_write\":0}", PC_ENTRY_F_SSE, 0, chat_events},
    {"anthropic-stream", "/anthropic", "POST", "/v1/messages", NULL, "team-a", "claude-3-5-haiku-latest", "2023-06-01",
     "{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":64,\"stream\":true,\"system\":[{\"type\":\"text\","
     "\"text\":\"be brief\",\"cache_control\":{\"type\":\"ephemeral\"}}],\"messages\":[{\"role\":\"user\","
     "\"content\":\"hi\"}]}",
     200, "content-type: text/event-stream\r\nanthropic-ratelimit-requests-remaining: 49\r\n", NULL, 0,
     "{\"input\":112,\"output\":5,\"cached_input\":100,\"cache_write\":0}", PC_ENTRY_F_SSE, 0, anthropic_events},
    {"responses-stream", "", "POST", "/v1/responses", NULL, "", "gpt-4.1", NULL,
     "{\"model\":\"gpt-4.1\",\"input\":\"say \\u00e9t\\u00e9\",\"stream\":true}", 200,
     "content-type: text/event-stream\r\n", NULL, 0, "{\"input\":20,\"output\":3,\"cached_input\":4,\"cache_write\":0}",
     PC_ENTRY_F_SSE, 1893456000000, responses_events},
    {"gemini", "/gemini", "POST", "/v1beta/models/gemini-2.0-flash:generateContent", "alt=json&b=2&a=1", "",
     "gemini-2.0-flash", NULL,
     "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"}]}],\"generationConfig\":"
     "{\"temperature\":0.2,\"maxOutputTokens\":1e2}}",
     200, "content-type: application/json; charset=UTF-8\r\n",
     "{\n  \"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}], \"role\": \"model\"}}],\n  "
     "\"usageMetadata\": {\"promptTokenCount\": 3, \"candidatesTokenCount\": 1, \"cachedContentTokenCount\": 0}\n}\n",
     0, "{\"input\":3,\"output\":1,\"cached_input\":0,\"cache_write\":0}", 0, 0, NULL},
    {"embeddings-error", "", "POST", "/v1/embeddings", NULL, "", "", NULL,
     "{\"input\":[\"a\",\"b\"],\"model\":\"text-embedding-3-small\",\"dimensions\":8}", 429,
     "content-type: application/json\r\nretry-after: 1\r\n",
     "{\"error\":{\"message\":\"Rate limit\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}", 0, "", 0, 0,
     NULL},
    {"binary-body", "", "POST", "/v1/audio/speech", NULL, "", "tts-1", NULL,
     "{\"model\":\"tts-1\",\"input\":\"x\",\"voice\":\"alloy\"}", 200, "content-type: image/png\r\n", binary_body,
     sizeof binary_body - 1, "", 0, 0, NULL},
    {"string-body", "", "POST", "/v1/completions", NULL, "", "", NULL, "[1,2.5,-0,true,null,\"\\ud83d\\ude00\"]", 200,
     "", "\"just a string\"", 0, "", 0, 0, NULL},
    {"split-utf8-stream", "", "POST", "/v1/chat/completions", NULL, "", "", NULL, "{\"stream\":true}", 200,
     "content-type: text/event-stream\r\n", NULL, 0, "", PC_ENTRY_F_SSE, 0, split_utf8_events},
};
#define N_SEEDS (sizeof seeds / sizeof *seeds)

/* The entry for seed s; its byte sections live in the buffers given. */
static int build(const struct seed *s, pc_buf *canon, pc_buf *material, pc_buf *body, struct pc_chunk *chunks,
                 struct pc_entry *e, struct pc_key *key) {
  int rc = pc_canon_json(s->request, strlen(s->request), NULL, 0, canon, NULL);
  if (rc) return rc;
  struct pc_key_input in = {.route = s->route,
                            .method = s->method,
                            .path = s->path,
                            .path_len = strlen(s->path),
                            .query = s->query,
                            .ns = s->ns,
                            .cred_fp_hex = "",
                            .headers = {s->anthropic_version},
                            .body = canon->data,
                            .body_len = canon->len};
  rc = pc_key_material(&in, material);
  if (rc) return rc;
  pc_key_hash(material->data, material->len, key);
  memset(e, 0, sizeof *e);
  uint32_t n = 0;
  for (const char *const *ev = s->events; ev && *ev && !rc; ev++, n++) {
    rc = pc_buf_puts(body, *ev);
    chunks[n] = (struct pc_chunk){(uint32_t)body->len, n * 40};
  }
  if (!s->events) rc = pc_buf_append(body, s->body, s->body_len ? s->body_len : strlen(s->body));
  e->flags = s->flags;
  e->status = s->status;
  e->created_ms = 1764445800123 + (int64_t)n;
  e->expires_ms = s->expires_ms;
  e->request = (struct pc_slice){material->data, material->len};
  e->ns = (struct pc_slice){s->ns, strlen(s->ns)};
  e->route = (struct pc_slice){s->route, strlen(s->route)};
  e->path = (struct pc_slice){s->path, strlen(s->path)};
  e->model = (struct pc_slice){s->model, strlen(s->model)};
  e->headers = (struct pc_slice){s->headers, strlen(s->headers)};
  e->body = (struct pc_slice){body->data, body->len};
  e->usage = (struct pc_slice){s->usage, strlen(s->usage)};
  e->chunks = n ? chunks : NULL;
  e->n_chunks = n;
  return rc;
}

static int write_file(const char *dir, const char *sub, const char *name, const char *ext, const void *p, size_t n) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s/gen-%s.%s", dir, sub, name, ext);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
    fprintf(stderr, "gen_seeds: cannot write %s\n", path);
    return PC_EIO;
  }
  return 0;
}

/* Export what the cache holds into corpus/import/gen-<name>.jsonl. */
static int export_to(pc_cache *c, const char *dir, const char *name) {
  char *text = NULL, err[512];
  size_t n = 0;
  FILE *f = open_memstream(&text, &n);
  struct pc_export_opts o = {NULL, 1};
  int rc = f ? pc_export(c, &o, f, err, sizeof err) : PC_ENOMEM;
  if (f) fclose(f);
  if (rc) fprintf(stderr, "gen_seeds: export %s: %s\n", name, err);
  if (!rc) rc = write_file(dir, "import", name, "jsonl", text, n);
  free(text);
  return rc;
}

/* Seed s: its entry file, its own export, and its encoding and key kept
 * (in enc and key) for the file of all seeds. */
static int one(pc_cache *c, const char *dir, const struct seed *s, pc_buf *enc, struct pc_key *key) {
  pc_buf canon, material, body;
  struct pc_chunk chunks[16];
  struct pc_entry e;
  pc_buf_init(&canon, 1 << 20);
  pc_buf_init(&material, 1 << 20);
  pc_buf_init(&body, 1 << 20);
  int rc = build(s, &canon, &material, &body, chunks, &e, key);
  if (!rc) rc = pc_entry_encode(&e, enc);
  if (!rc) rc = write_file(dir, "entry", s->name, "bin", enc->data, enc->len);
  if (!rc) rc = pc_cache_put(c, key->b, enc->data, enc->len);
  if (!rc) rc = export_to(c, dir, s->name);
  if (!rc) rc = pc_cache_del(c, key->b);
  if (rc) fprintf(stderr, "gen_seeds: %s: %s\n", s->name, pc_strerror(rc));
  pc_buf_free(&canon);
  pc_buf_free(&material);
  pc_buf_free(&body);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: gen_seeds CORPUS_DIR\n");
    return 2;
  }
  char tmp[] = "/tmp/pc-gen-seeds-XXXXXX", db[PATH_MAX];
  if (!mkdtemp(tmp)) return 1;
  snprintf(db, sizeof db, "%s/db", tmp);
  pc_cache *c = NULL;
  pc_buf enc[N_SEEDS];
  struct pc_key keys[N_SEEDS];
  for (size_t i = 0; i < N_SEEDS; i++) pc_buf_init(&enc[i], 1 << 20);
  int rc = pc_cache_open(db, 64 << 20, PC_SYNC_PERIODIC, &c);
  for (size_t i = 0; !rc && i < N_SEEDS; i++) rc = one(c, argv[1], &seeds[i], &enc[i], &keys[i]);
  /* Then every seed in one database, exported as one multi-line file. */
  for (size_t i = 0; !rc && i < N_SEEDS; i++) rc = pc_cache_put(c, keys[i].b, enc[i].data, enc[i].len);
  if (!rc) rc = export_to(c, argv[1], "all");
  if (c) pc_cache_close(c);
  for (size_t i = 0; i < N_SEEDS; i++) pc_buf_free(&enc[i]);
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/data.mdb", db);
  unlink(p);
  snprintf(p, sizeof p, "%s/lock.mdb", db);
  unlink(p);
  rmdir(db);
  rmdir(tmp);
  if (rc) fprintf(stderr, "gen_seeds: failed: %s\n", pc_strerror(rc));
  return rc ? 1 : 0;
}
