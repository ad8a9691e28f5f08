/* test_key.c — golden vectors for the cache key: one request spelled many
 * ways gives one key; any change that matters gives another. */
#include <criterion/criterion.h>
#include <string.h>

#include "canon.h"
#include "error.h"
#include "key.h"

struct req {
  const char *route, *method, *path, *query, *ns, *cred, *body;
  const char *headers[PC_KEY_N_HEADERS];
};

static const uint8_t secret[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

/* The whole key pipeline: canon → material → XXH3-128 → hex. */
static void key_of(const struct req *r, char hex[PC_KEY_HEX_LEN + 1]) {
  pc_buf canon, mat;
  pc_buf_init(&canon, 1 << 20);
  pc_buf_init(&mat, 1 << 20);
  cr_assert_eq(pc_canon_json(r->body, strlen(r->body), NULL, 0, &canon, NULL), 0, "canon failed for %s", r->body);
  char fp[PC_FP_LEN * 2 + 1] = "";
  if (r->cred) pc_key_fingerprint(secret, sizeof secret, r->cred, strlen(r->cred), fp);
  struct pc_key_input in = {.route = r->route ? r->route : "", .method = r->method ? r->method : "POST",
                            .path = r->path ? r->path : "/v1/chat/completions", .query = r->query,
                            .ns = r->ns ? r->ns : "", .cred_fp_hex = fp, .body = canon.data, .body_len = canon.len};
  in.path_len = strlen(in.path);
  memcpy(in.headers, r->headers, sizeof r->headers);
  cr_assert_eq(pc_key_material(&in, &mat), 0);
  struct pc_key k;
  pc_key_hash(mat.data, mat.len, &k);
  pc_key_hex(&k, hex);
  pc_buf_free(&canon);
  pc_buf_free(&mat);
}

#define BASE_BODY "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"héllo\"}],\"temperature\":1}"

Test(key, same_request_spelled_differently_gives_one_key) {
  static const char *const spellings[] = {
      BASE_BODY,
      "{\"messages\":[{\"content\":\"héllo\",\"role\":\"user\"}],\"temperature\":1,\"model\":\"gpt-4o\"}",
      "  {\n \"model\" : \"gpt-4o\",\n \"messages\" : [ { \"role\" : \"user\", \"content\" : \"h\\u00e9llo\" } ],\n"
      " \"temperature\" : 1.0 }\n",
      "{\"temperature\":1e0,\"model\":\"gpt\\u002d4o\",\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00E9llo\"}]}",
      "{\"model\":\"gpt-4o\",\"temperature\":10E-1,\"messages\":[{\"content\":\"h\\u00e9llo\",\"role\":\"\\u0075ser\"}]}",
  };
  char first[33], k[33];
  struct req r = {.body = spellings[0], .cred = "Bearer sk-test"};
  key_of(&r, first);
  for (size_t i = 1; i < sizeof spellings / sizeof *spellings; i++) {
    r.body = spellings[i];
    key_of(&r, k);
    cr_expect_str_eq(k, first, "spelling %zu gave another key", i);
  }
}

Test(key, query_parameter_order_does_not_matter) {
  char a[33], b[33];
  struct req r = {.body = BASE_BODY, .query = "b=2&a=1"};
  key_of(&r, a);
  r.query = "a=1&b=2";
  key_of(&r, b);
  cr_expect_str_eq(a, b);
}

Test(key, every_meaningful_change_gives_another_key) {
  char base[33], k[33];
  struct req r = {.body = BASE_BODY, .cred = "Bearer sk-one"};
  key_of(&r, base);
  struct req v[12];
  for (int i = 0; i < 12; i++) v[i] = r;
  v[0].body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"temperature\":1}";
  v[1].body = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"héllo\"}],\"temperature\":1}";
  v[2].body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"héllo\"}],\"temperature\":1.5}";
  v[3].body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"héllo\"}],\"temperature\":1,\"stream\":true}";
  v[4].cred = "Bearer sk-two";
  v[5].cred = NULL;
  v[6].ns = "tenant-a";
  v[7].headers[0] = "2023-06-01";
  v[8].headers[3] = "org-123";
  v[9].path = "/v1/completions";
  v[10].route = "/anthropic";
  v[11].query = "api-version=2024-02-01";
  for (int i = 0; i < 12; i++) {
    key_of(&v[i], k);
    cr_expect_str_neq(k, base, "variant %d kept the key", i);
  }
}

Test(key, golden_value_is_stable) {
  /* Changing the key format silently would orphan every stored entry: bump
   * the "pc-key-v1" version instead, and update this vector. */
  char k[33];
  struct req r = {.body = BASE_BODY};
  key_of(&r, k);
  cr_expect_str_eq(k, "59cbbd31e7dfc51cb33d44fc9c3a1213");
}

Test(key, fingerprint_is_keyed_and_never_the_credential) {
  char a[33], b[33];
  const uint8_t other[32] = {9};
  pc_key_fingerprint(secret, sizeof secret, "Bearer sk-abc", 13, a);
  pc_key_fingerprint(other, sizeof other, "Bearer sk-abc", 13, b);
  cr_expect_str_neq(a, b);
  cr_expect_null(strstr(a, "sk-abc"));
  cr_expect_eq(strlen(a), 32);
}

Test(key, credential_query_parameters_are_removed) {
  pc_buf out, cred;
  pc_buf_init(&out, 4096);
  pc_buf_init(&cred, 4096);
  cr_assert_eq(pc_key_sort_query("z=1&key=AIzaSECRET&a=2&API_KEY=x&k%65y=y&keyword=q", 0, &out, &cred), 0);
  cr_expect_str_eq(out.data, "a=2&keyword=q&z=1");
  cr_expect_str_eq(cred.data, "key=AIzaSECRET&API_KEY=x&k%65y=y");
  pc_buf_free(&out);
  pc_buf_free(&cred);
}

/* A repeated parameter is a list: its order is part of the request. */
Test(key, repeated_query_parameters_keep_their_order) {
  pc_buf a, b;
  pc_buf_init(&a, 4096);
  pc_buf_init(&b, 4096);
  cr_assert_eq(pc_key_sort_query("b=0&a=1&a=2", 0, &a, NULL), 0);
  cr_assert_eq(pc_key_sort_query("a=2&b=0&a=1", 0, &b, NULL), 0);
  cr_expect_str_eq(a.data, "a=1&a=2&b=0");
  cr_expect_str_eq(b.data, "a=2&a=1&b=0");
  char ka[33], kb[33];
  struct req ra = {.query = "a=1&a=2", .body = BASE_BODY}, rb = {.query = "a=2&a=1", .body = BASE_BODY};
  key_of(&ra, ka);
  key_of(&rb, kb);
  cr_expect_str_neq(ka, kb);
  pc_buf_free(&a);
  pc_buf_free(&b);
}

Test(key, material_fields_parse_back) {
  pc_buf mat;
  pc_buf_init(&mat, 4096);
  struct pc_key_input in = {.route = "/anthropic", .method = "POST", .path = "/v1/messages", .path_len = 12,
                            .query = "b=1&a=2", .ns = "ci", .cred_fp_hex = "", .body = "{\"a\":1}", .body_len = 7};
  cr_assert_eq(pc_key_material(&in, &mat), 0);
  const char *p;
  size_t n;
  cr_assert_eq(pc_key_material_field(mat.data, mat.len, "path", &p, &n), 0);
  cr_expect_eq(n, strlen("/v1/messages?a=2&b=1"));
  cr_expect_eq(memcmp(p, "/v1/messages?a=2&b=1", n), 0);
  cr_assert_eq(pc_key_material_field(mat.data, mat.len, "body", &p, &n), 0);
  cr_expect_eq(n, 7);
  cr_expect_eq(memcmp(p, "{\"a\":1}", 7), 0);
  cr_expect_eq(pc_key_material_field(mat.data, mat.len, "nope", &p, &n), PC_ENOTFOUND);
  cr_expect_eq(pc_key_material_field("garbage", 7, "path", &p, &n), PC_ECORRUPT);
  pc_buf_free(&mat);
}

Test(key, hex_round_trip) {
  struct pc_key k, back;
  for (int i = 0; i < 16; i++) k.b[i] = (uint8_t)(i * 17);
  char hex[33];
  pc_key_hex(&k, hex);
  cr_assert_eq(pc_key_from_hex(hex, &back), 0);
  cr_expect_eq(memcmp(k.b, back.b, 16), 0);
  cr_expect_eq(pc_key_from_hex("xyz", &back), PC_EINVAL);
}

Test(key, optional_key_headers_enter_the_material_only_when_set) {
  struct pc_key_input in = {.route = "/b", .method = "POST", .path = "/model/m/invoke", .path_len = 15, .ns = "",
                            .cred_fp_hex = "", .body = "{}", .body_len = 2, .family = 0};
  pc_buf a, b;
  pc_buf_init(&a, 1 << 16);
  pc_buf_init(&b, 1 << 16);
  cr_assert_eq(pc_key_material(&in, &a), 0);
  cr_expect_null(strstr(a.data, "x-amzn-bedrock-trace="), "an empty optional header is not in the material");
  cr_expect_not_null(strstr(a.data, "openai-project=0:\n"), "the five first are always there");
  in.headers[7] = "ENABLED"; /* x-amzn-bedrock-trace */
  cr_assert_eq(pc_key_material(&in, &b), 0);
  cr_expect_not_null(strstr(b.data, "x-amzn-bedrock-trace=7:ENABLED\n"));
  struct pc_key ka, kb;
  pc_key_hash(a.data, a.len, &ka);
  pc_key_hash(b.data, b.len, &kb);
  cr_expect_neq(memcmp(ka.b, kb.b, 16), 0);
  pc_buf_free(&a);
  pc_buf_free(&b);
}

Test(key, a_sequence_entry_has_its_own_material_and_key) {
  struct pc_key_input in = {.route = "", .method = "GET", .path = "/v1/threads/t/runs/r", .path_len = 20, .ns = "",
                            .cred_fp_hex = "", .body = "", .body_len = 0};
  pc_buf m0, m2, via, back;
  pc_buf_init(&m0, 1 << 16);
  pc_buf_init(&m2, 1 << 16);
  pc_buf_init(&via, 1 << 16);
  pc_buf_init(&back, 1 << 16);
  cr_assert_eq(pc_key_material(&in, &m0), 0);
  in.seq = 2;
  cr_assert_eq(pc_key_material(&in, &m2), 0);
  cr_expect_not_null(strstr(m2.data, "seq=1:2\nbody=0:"));
  cr_expect_null(strstr(m0.data, "seq="), "entry 0 has no seq field: keys recorded before sequences stay");
  cr_assert_eq(pc_key_material_seq(m0.data, m0.len, 2, &via), 0);
  cr_expect_eq(via.len, m2.len);
  cr_expect_eq(memcmp(via.data, m2.data, m2.len), 0, "inserting the field gives what the key input gives");
  cr_expect_eq(pc_key_material_seq_of(via.data, via.len), 2);
  cr_assert_eq(pc_key_material_seq(via.data, via.len, 0, &back), 0);
  cr_expect_eq(back.len, m0.len);
  cr_expect_eq(memcmp(back.data, m0.data, m0.len), 0, "and seq 0 removes it");
  pc_buf_free(&m0);
  pc_buf_free(&m2);
  pc_buf_free(&via);
  pc_buf_free(&back);
}
