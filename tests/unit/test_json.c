/* test_json.c — the JSON DOM (json.h): strict parsing with the right error
 * codes and positions, literal-preserving round trips, pointer lookups,
 * pretty-printing golden output, and the structural diff used to explain
 * replay misses (pointers, abbreviations, the max_diffs cap). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "json.h"

#define OUT_MAX (16u << 20)
#define ELL "\xE2\x80\xA6" /* U+2026 */

static struct pc_json_doc *parse_ok_n(const char *in, size_t len) {
  struct pc_json_doc *doc = NULL;
  size_t pos = 0;
  int rc = pc_json_parse(in, len, &doc, &pos);
  cr_assert_eq(rc, 0, "input %.*s: %s at %zu", (int)len, in, pc_errname(rc), pos);
  cr_assert_not_null(doc);
  return doc;
}

static struct pc_json_doc *parse_ok(const char *in) { return parse_ok_n(in, strlen(in)); }

static void expect_rc_n(const char *in, size_t len, int want) {
  struct pc_json_doc *doc = (struct pc_json_doc *)1;
  size_t pos = (size_t)-1;
  int rc = pc_json_parse(in, len, &doc, &pos);
  cr_assert_eq(rc, want, "input %.*s: got %s, want %s", (int)len, in, pc_errname(rc), pc_errname(want));
  cr_assert_null(doc, "input %.*s: doc set on error", (int)len, in);
  cr_assert_leq(pos, len, "input %.*s: errpos %zu", (int)len, in, pos);
}

static void expect_rc(const char *in, int want) { expect_rc_n(in, strlen(in), want); }

static size_t errpos_of(const char *in) {
  struct pc_json_doc *doc = NULL;
  size_t pos = (size_t)-1;
  cr_assert_neq(pc_json_parse(in, strlen(in), &doc, &pos), 0, "input %s parsed", in);
  return pos;
}

/* Compact (indent < 0) or pretty text of v, malloc'd. */
static char *to_text(const struct pc_json *v, int indent) {
  pc_buf b;
  pc_buf_init(&b, OUT_MAX);
  int rc = indent < 0 ? pc_json_write(v, &b) : pc_json_write_pretty(v, &b, indent);
  cr_assert_eq(rc, 0, "write: %s", pc_errname(rc));
  char *s = pc_buf_steal(&b, NULL);
  cr_assert_not_null(s);
  return s;
}

/* parse(in) then write compactly: must give want. */
static void expect_write(const char *in, const char *want) {
  struct pc_json_doc *doc = parse_ok(in);
  char *s = to_text(pc_json_root(doc), -1);
  cr_assert_str_eq(s, want, "input %s", in);
  free(s);
  pc_json_free(doc);
}

static void expect_roundtrip(const char *in) { expect_write(in, in); }

/* ---------- parse and write ---------- */

Test(json, roundtrip_keeps_order_and_literals) {
  expect_roundtrip("{\"z\":1,\"a\":2,\"m\":{\"y\":[],\"b\":{}}}");
  expect_roundtrip("[1.0,1e400,-0,0.5e-3,1E+2,-12.50,123456789012345678901234567890]");
  expect_roundtrip("[true,false,null,\"\",[[]],{\"\":\"\"}]");
  expect_roundtrip("\"just a string\"");
  expect_roundtrip("42");
  expect_roundtrip("null");
  expect_roundtrip("{\"dup\":1,\"dup\":2}");
}

Test(json, whitespace_is_dropped) {
  expect_write(" \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" :\n{ } }\n ", "{\"a\":[1,2],\"b\":{}}");
  expect_write("[ ]", "[]");
  expect_write("  7  ", "7");
}

Test(json, number_values) {
  struct pc_json_doc *doc = parse_ok("[1.0,1e400,-1e400,-0,2.5E-1,9007199254740993]");
  const struct pc_json *r = pc_json_root(doc);
  cr_assert_eq(r->type, PC_JSON_ARRAY);
  cr_assert_eq(r->len, 6);
  cr_assert_eq(r->kids[0].type, PC_JSON_NUMBER);
  cr_assert_str_eq(r->kids[0].str, "1.0");
  cr_assert_eq(r->kids[0].len, 3);
  cr_assert_eq(r->kids[0].num, 1.0);
  cr_assert_str_eq(r->kids[1].str, "1e400");
  cr_assert(isinf(r->kids[1].num) && r->kids[1].num > 0);
  cr_assert(isinf(r->kids[2].num) && r->kids[2].num < 0);
  cr_assert_str_eq(r->kids[3].str, "-0");
  cr_assert_eq(r->kids[4].num, 0.25);
  cr_assert_str_eq(r->kids[5].str, "9007199254740993");
  pc_json_free(doc);
}

Test(json, object_members_and_duplicates) {
  struct pc_json_doc *doc = parse_ok("{\"b\":1,\"a\":\"x\",\"b\":2}");
  const struct pc_json *r = pc_json_root(doc);
  cr_assert_eq(r->type, PC_JSON_OBJECT);
  cr_assert_eq(r->len, 3);
  cr_assert_str_eq(r->keys[0], "b");
  cr_assert_str_eq(r->keys[1], "a");
  cr_assert_str_eq(r->keys[2], "b");
  cr_assert_eq(r->key_lens[1], 1);
  cr_assert_str_eq(r->kids[1].str, "x");
  cr_assert_eq(pc_json_get_num(r, "b", -1), 1.0, "first match wins");
  pc_json_free(doc);
}

Test(json, string_escapes_decode_and_write_minimal) {
  const char *in = "\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\\u001f\\u007f\"";
  struct pc_json_doc *doc = parse_ok(in);
  const struct pc_json *r = pc_json_root(doc);
  const char want[] = "q\"b\\s/\b\f\n\r\tA\xC3\xA9\xE2\x82\xAC\x1f\x7f";
  cr_assert_eq(r->type, PC_JSON_STRING);
  cr_assert_eq(r->len, sizeof want - 1);
  cr_assert_eq(memcmp(r->str, want, sizeof want), 0, "decoded bytes (with NUL)");
  char *s = to_text(r, -1);
  cr_assert_str_eq(s, "\"q\\\"b\\\\s/\\b\\f\\n\\r\\tA\xC3\xA9\xE2\x82\xAC\\u001f\x7f\"");
  free(s);
  pc_json_free(doc);
}

Test(json, nul_in_string_and_key) {
  struct pc_json_doc *doc = parse_ok("{\"k\\u0000x\":\"a\\u0000b\"}");
  const struct pc_json *r = pc_json_root(doc);
  cr_assert_eq(r->key_lens[0], 3);
  cr_assert_eq(memcmp(r->keys[0], "k\0x", 4), 0);
  cr_assert_eq(r->kids[0].len, 3);
  cr_assert_eq(memcmp(r->kids[0].str, "a\0b", 4), 0);
  char *s = to_text(r, -1);
  cr_assert_str_eq(s, "{\"k\\u0000x\":\"a\\u0000b\"}");
  free(s);
  pc_json_free(doc);
}

Test(json, raw_utf8_kept) {
  expect_roundtrip("\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF\"");
  expect_roundtrip("{\"\xE2\x9C\x93\":\"\xE2\x80\xA8\"}");
}

Test(json, surrogate_pairs) {
  struct pc_json_doc *doc = parse_ok("[\"\\ud83d\\ude00\",\"\\uD834\\uDD1E\",\"\\udbff\\udfff\",\"\\ud800\\udc00\"]");
  const struct pc_json *r = pc_json_root(doc);
  cr_assert_str_eq(r->kids[0].str, "\xF0\x9F\x98\x80");
  cr_assert_str_eq(r->kids[1].str, "\xF0\x9D\x84\x9E");
  cr_assert_str_eq(r->kids[2].str, "\xF4\x8F\xBF\xBF");
  cr_assert_str_eq(r->kids[3].str, "\xF0\x90\x80\x80");
  pc_json_free(doc);
}

Test(json, write_string_escapes) {
  pc_buf b;
  pc_buf_init(&b, 1024);
  const char in[] = "a\"\\\x00\x01\b\f\n\r\t\x1f\x7f/\xC3\xA9";
  cr_assert_eq(pc_json_write_string(&b, in, sizeof in - 1), 0);
  cr_assert_str_eq(b.data, "\"a\\\"\\\\\\u0000\\u0001\\b\\f\\n\\r\\t\\u001f\x7f/\xC3\xA9\"");
  pc_buf_reset(&b);
  cr_assert_eq(pc_json_write_string(&b, "", 0), 0);
  cr_assert_str_eq(b.data, "\"\"");
  pc_buf_free(&b);
}

Test(json, write_respects_buffer_limit) {
  struct pc_json_doc *doc = parse_ok("{\"a\":\"0123456789\",\"b\":[1,2,3]}");
  pc_buf b;
  pc_buf_init(&b, 12);
  cr_assert_eq(pc_buf_puts(&b, "pre"), 0);
  cr_assert_eq(pc_json_write(pc_json_root(doc), &b), PC_ETOOBIG);
  cr_assert_eq(b.len, 3, "failed write leaves the buffer as it was");
  cr_assert_str_eq(b.data, "pre");
  cr_assert_eq(pc_json_write_string(&b, "0123456789", 10), PC_ETOOBIG);
  cr_assert_str_eq(b.data, "pre");
  pc_buf_free(&b);
  pc_json_free(doc);
}

Test(json, large_document) {
  size_t n = 200000;
  pc_buf in;
  pc_buf_init(&in, OUT_MAX);
  cr_assert_eq(pc_buf_putc(&in, '['), 0);
  for (size_t i = 0; i < n; i++) cr_assert_eq(pc_buf_printf(&in, "%s{\"i\":%zu,\"s\":\"v\\n%zu\"}", i ? "," : "", i, i), 0);
  cr_assert_eq(pc_buf_putc(&in, ']'), 0);
  struct pc_json_doc *doc = parse_ok_n(in.data, in.len);
  const struct pc_json *r = pc_json_root(doc);
  cr_assert_eq(r->len, n);
  cr_assert_eq(pc_json_get_num(&r->kids[n - 1], "i", -1), (double)(n - 1));
  char *s = to_text(r, -1);
  cr_assert_eq(strlen(s), in.len);
  cr_assert_eq(memcmp(s, in.data, in.len), 0);
  free(s);
  pc_json_free(doc);
  pc_buf_free(&in);
}

/* ---------- rejects ---------- */

Test(json, rejects_syntax) {
  static const char *const bad[] = {
      "", " ", "[1,]", "{\"a\":1,}", "[,1]", "[1 2]", "{\"a\" 1}", "{\"a\":}", "{1:2}", "{'a':1}",
      "{\"a\":1 \"b\":2}", "[", "]", "{", "}", "[1}", "{\"a\":1]", "01", "-01", "00", "1.", ".5", "-",
      "1e", "1e+", "+1", "1.e3", "0x10", "NaN", "nan", "Infinity", "-Infinity", "tru", "nul", "True",
      "[1]x", "{} {}", "1 2", "// c\n1", "/* c */1", "[1]//", "[1]#", "\"abc", "\"\\x\"", "\"\\u12\"",
      "\"\\u12G4\"", "\"\\", "\"a\tb\"", "\"a\nb\"", "\"\x01\"", "\"\x1f\"", "\xEF\xBB\xBF{}",
      "\xC3\xA9", "[\x0b]", "[\f1]", "'a'", "\"\\U0041\"", "[1,,2]", "{\"a\"::1}", "{,}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_rc(bad[i], PC_EJSON);
  expect_rc("\"\\ud83d\\ude\"", PC_EJSON); /* malformed escape after a high surrogate */
  expect_rc("\"\\ud83d\\u12G4\"", PC_EJSON);
  expect_rc("\"\\ud83d\\ude0", PC_EJSON);
  expect_rc_n("[1]\0", 4, PC_EJSON);
  expect_rc_n("\"a\0b\"", 5, PC_EJSON);
}

Test(json, rejects_bad_utf8) {
  static const char *const bad[] = {
      "\"\\ud800\"",          /* lone high surrogate */
      "\"\\udc00\"",          /* lone low surrogate */
      "\"\\ud800\\u0041\"",   /* high + non-surrogate */
      "\"\\ud800\\ud800\"",   /* high + high */
      "\"\\ud800x\"",         /* high + plain text */
      "\"\\udfff\\ud800\"",   /* reversed pair */
      "\"\xC0\xAF\"",         /* overlong 2-byte */
      "\"\xC1\xBF\"",         /* overlong 2-byte */
      "\"\xE0\x80\xAF\"",     /* overlong 3-byte */
      "\"\xF0\x80\x80\xAF\"", /* overlong 4-byte */
      "\"\xED\xA0\x80\"",     /* encoded surrogate U+D800 */
      "\"\xED\xBF\xBF\"",     /* encoded surrogate U+DFFF */
      "\"\xF4\x90\x80\x80\"", /* U+110000 */
      "\"\xF5\x80\x80\x80\"", /* lead byte beyond range */
      "\"\xFF\"",             /* never valid */
      "\"\x80\"",             /* lone continuation */
      "\"\xC3\x28\"",         /* bad continuation */
      "\"\xE2\x82\"",         /* truncated 3-byte */
      "\"\xF0\x9F\x98\"",     /* truncated 4-byte */
      "{\"k\xC3\":1}",        /* in a key */
      "\"\\ud800\\n\"",       /* high + other escape */
      "\"ab\xC3\x28",          /* unterminated, but bad UTF-8 comes first */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_rc(bad[i], PC_EUTF8);
}

static char *nested(size_t depth, int close) {
  char *s = malloc(2 * depth + 1);
  cr_assert_not_null(s);
  memset(s, '[', depth);
  if (close) memset(s + depth, ']', depth);
  s[close ? 2 * depth : depth] = '\0';
  return s;
}

Test(json, depth_limit) {
  char *ok = nested(PC_JSON_MAX_DEPTH, 1);
  struct pc_json_doc *doc = parse_ok(ok);
  char *s = to_text(pc_json_root(doc), -1);
  cr_assert_str_eq(s, ok);
  free(s);
  pc_json_free(doc);
  free(ok);
  char *deep = nested(PC_JSON_MAX_DEPTH + 1, 1);
  expect_rc(deep, PC_EDEPTH);
  cr_assert_eq(errpos_of(deep), PC_JSON_MAX_DEPTH);
  free(deep);
}

Test(json, megabyte_of_brackets) {
  size_t n = (size_t)1 << 20;
  char *s = nested(n, 0);
  expect_rc_n(s, n, PC_EDEPTH);
  memset(s, '{', n);
  expect_rc_n(s, n, PC_EJSON); /* `{{` fails on the missing key first */
  for (size_t i = 0; i + 4 < n; i += 5) memcpy(s + i, "{\"\":[", 5);
  expect_rc_n(s, n - n % 5, PC_EDEPTH);
  free(s);
}

Test(json, error_positions) {
  cr_assert_eq(errpos_of("[1,]"), 3);
  cr_assert_eq(errpos_of("[1]x"), 3);
  cr_assert_eq(errpos_of("  "), 2);
  cr_assert_eq(errpos_of("{\"a\":01}"), 6);
  cr_assert_eq(errpos_of("[\"\\ud800\"]"), 2);
  cr_assert_eq(errpos_of("[\"ab\xC3\x28\"]"), 4);
  cr_assert_eq(errpos_of("[\"a\x01\"]"), 3);
  cr_assert_eq(errpos_of("[\"abc"), 5);
  cr_assert_eq(errpos_of("[truth]"), 1);
}

/* ---------- lookup ---------- */

static const char *const LOOKUP_DOC =
    "{\"a/b\":{\"m~n\":[10,20,{\"\":\"empty\"}]},"
    "\"arr\":[0,1,2,3,4,5,6,7,8,9,10,11],\"x\":{\"y\":\"z\"},\"n\":3.5,\"s\":\"str\","
    "\"~1\":\"tilde-one\",\"\":{\" \":\"space\"}}";

Test(json, pointer_lookup) {
  struct pc_json_doc *doc = parse_ok(LOOKUP_DOC);
  const struct pc_json *r = pc_json_root(doc);
  cr_assert_eq(pc_json_at(r, ""), r);
  cr_assert_eq(pc_json_at(r, "/a~1b/m~0n/1")->num, 20);
  cr_assert_str_eq(pc_json_at(r, "/a~1b/m~0n/2/")->str, "empty");
  cr_assert_str_eq(pc_json_at(r, "/~01")->str, "tilde-one", "~01 is ~1, not /");
  cr_assert_str_eq(pc_json_at(r, "// ")->str, "space");
  cr_assert_eq(pc_json_at(r, "/arr/0")->num, 0);
  cr_assert_eq(pc_json_at(r, "/arr/10")->num, 10);
  cr_assert_eq(pc_json_at(r, "/arr/11")->num, 11);
  cr_assert_str_eq(pc_json_at(r, "/x/y")->str, "z");
  cr_assert_null(pc_json_at(r, "/arr/12"));
  cr_assert_null(pc_json_at(r, "/arr/01"));
  cr_assert_null(pc_json_at(r, "/arr/-"));
  cr_assert_null(pc_json_at(r, "/arr/-1"));
  cr_assert_null(pc_json_at(r, "/arr/1a"));
  cr_assert_null(pc_json_at(r, "/arr/"));
  cr_assert_null(pc_json_at(r, "/arr/99999999999999999999999999"));
  cr_assert_null(pc_json_at(r, "x"), "no leading slash");
  cr_assert_null(pc_json_at(r, "/a/b"), "unescaped / splits");
  cr_assert_null(pc_json_at(r, "/a~2b"), "bad escape");
  cr_assert_null(pc_json_at(r, "/a~"), "bad escape");
  cr_assert_null(pc_json_at(r, "/x/y/z"), "into a string");
  cr_assert_null(pc_json_at(r, "/missing"));
  cr_assert_null(pc_json_at(NULL, ""));
  pc_json_free(doc);
}

Test(json, get_helpers) {
  struct pc_json_doc *doc = parse_ok(LOOKUP_DOC);
  const struct pc_json *r = pc_json_root(doc);
  cr_assert_str_eq(pc_json_get_str(r, "s", "fb"), "str");
  cr_assert_str_eq(pc_json_get_str(r, "n", "fb"), "fb", "number is not a string");
  cr_assert_str_eq(pc_json_get_str(r, "nope", "fb"), "fb");
  cr_assert_null(pc_json_get_str(r, "nope", NULL));
  cr_assert_eq(pc_json_get_num(r, "n", -1), 3.5);
  cr_assert_eq(pc_json_get_num(r, "s", -1), -1);
  cr_assert_eq(pc_json_get(r, "a/b"), pc_json_at(r, "/a~1b"));
  cr_assert_not_null(pc_json_get(r, ""));
  cr_assert_null(pc_json_get(pc_json_at(r, "/arr"), "0"), "arrays have no members");
  cr_assert_null(pc_json_get(NULL, "x"));
  pc_json_free(doc);
}

/* ---------- pretty ---------- */

Test(json, pretty_golden) {
  struct pc_json_doc *doc =
      parse_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\\n\"}],"
               "\"e\":[],\"o\":{},\"n\":[1.0,[2]],\"t\":true}");
  char *s = to_text(pc_json_root(doc), 2);
  cr_assert_str_eq(s, "{\n"
                      "  \"model\": \"m\",\n"
                      "  \"messages\": [\n"
                      "    {\n"
                      "      \"role\": \"user\",\n"
                      "      \"content\": \"hi\\n\"\n"
                      "    }\n"
                      "  ],\n"
                      "  \"e\": [],\n"
                      "  \"o\": {},\n"
                      "  \"n\": [\n"
                      "    1.0,\n"
                      "    [\n"
                      "      2\n"
                      "    ]\n"
                      "  ],\n"
                      "  \"t\": true\n"
                      "}");
  free(s);
  s = to_text(pc_json_at(pc_json_root(doc), "/n"), 4);
  cr_assert_str_eq(s, "[\n    1.0,\n    [\n        2\n    ]\n]");
  free(s);
  s = to_text(pc_json_at(pc_json_root(doc), "/n"), 0);
  cr_assert_str_eq(s, "[\n1.0,\n[\n2\n]\n]");
  free(s);
  s = to_text(pc_json_at(pc_json_root(doc), "/model"), 2);
  cr_assert_str_eq(s, "\"m\"");
  free(s);
  pc_json_free(doc);
}

Test(json, pretty_reparses_to_same_compact) {
  const char *in = "{\"a\":[1,{\"b\":[[],{}]},\"\\u0000\"],\"c\":{\"d\":null}}";
  struct pc_json_doc *doc = parse_ok(in);
  char *p = to_text(pc_json_root(doc), 3);
  struct pc_json_doc *again = parse_ok(p);
  char *c = to_text(pc_json_root(again), -1);
  cr_assert_str_eq(c, in);
  free(c);
  free(p);
  pc_json_free(again);
  pc_json_free(doc);
}

/* ---------- diff ---------- */

struct diffs {
  struct pc_json_diff *d;
  size_t n, total;
};

static struct diffs diff_of(const char *a, const char *b, size_t max, size_t abbrev) {
  struct pc_json_doc *da = parse_ok(a), *db = parse_ok(b);
  struct diffs r = {NULL, 0, 0};
  int rc = pc_json_diff(pc_json_root(da), pc_json_root(db), max, abbrev, &r.d, &r.n, &r.total);
  cr_assert_eq(rc, 0, "diff: %s", pc_errname(rc));
  pc_json_free(da);
  pc_json_free(db);
  return r;
}

/* want_* NULL means "absent on that side". */
static void expect_diff(const struct pc_json_diff *d, const char *ptr, const char *rec, const char *req) {
  cr_assert_str_eq(d->pointer, ptr);
  if (rec)
    cr_assert_str_eq(d->recorded, rec, "at %s", ptr);
  else
    cr_assert_null(d->recorded, "at %s", ptr);
  if (req)
    cr_assert_str_eq(d->requested, req, "at %s", ptr);
  else
    cr_assert_null(d->requested, "at %s", ptr);
}

/* The text must parse as one JSON string; returns its decoded form. */
static struct pc_json_doc *parse_string_text(const char *text) {
  struct pc_json_doc *doc = parse_ok(text);
  cr_assert_eq(pc_json_root(doc)->type, PC_JSON_STRING, "%s", text);
  return doc;
}

static int ends_with(const char *s, size_t n, const char *suffix) {
  size_t k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

Test(json, diff_equal_documents) {
  struct diffs r = diff_of("{\"a\":[1,{\"b\":\"x\"}],\"n\":1.0,\"e\":{},\"z\":null}",
                           " { \"a\" : [ 1.00 , { \"b\" : \"x\" } ] , \"n\" : 1 , \"e\":{}, \"z\":null } ", 10,
                           100);
  cr_assert_eq(r.n, 0);
  cr_assert_eq(r.total, 0);
  pc_json_diff_free(r.d, r.n);
}

Test(json, diff_message_content) {
  struct diffs r = diff_of(
      "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"old\"}]}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"new\"}]}",
      10, 100);
  cr_assert_eq(r.n, 1);
  cr_assert_eq(r.total, 1);
  expect_diff(&r.d[0], "/messages/1/content", "\"old\"", "\"new\"");
  pc_json_diff_free(r.d, r.n);
}

Test(json, diff_added_and_removed_members) {
  struct diffs r = diff_of("{\"a\":1,\"b\":{\"x\":[1]},\"c\":true}", "{\"d\":\"new\",\"b\":{\"x\":[1]},\"a\":1,\"e\":null}",
                           10, 100);
  cr_assert_eq(r.n, 3);
  cr_assert_eq(r.total, 3);
  expect_diff(&r.d[0], "/c", "true", NULL);
  expect_diff(&r.d[1], "/d", NULL, "\"new\"");
  expect_diff(&r.d[2], "/e", NULL, "null");
  pc_json_diff_free(r.d, r.n);
}

Test(json, diff_array_length) {
  struct diffs r = diff_of("{\"t\":[1,2]}", "{\"t\":[1,2,{\"x\":1},4]}", 10, 100);
  cr_assert_eq(r.n, 2);
  expect_diff(&r.d[0], "/t/2", NULL, "{\"x\":1}");
  expect_diff(&r.d[1], "/t/3", NULL, "4");
  pc_json_diff_free(r.d, r.n);
  r = diff_of("[\"a\",\"b\",\"c\"]", "[\"a\"]", 10, 100);
  cr_assert_eq(r.n, 2);
  expect_diff(&r.d[0], "/1", "\"b\"", NULL);
  expect_diff(&r.d[1], "/2", "\"c\"", NULL);
  pc_json_diff_free(r.d, r.n);
}

Test(json, diff_type_change) {
  struct diffs r = diff_of("{\"v\":1,\"w\":{\"a\":[1,2]},\"t\":true,\"s\":\"x\"}",
                           "{\"v\":\"1\",\"w\":[1,2],\"t\":false,\"s\":null}", 10, 100);
  cr_assert_eq(r.n, 4);
  expect_diff(&r.d[0], "/v", "1", "\"1\"");
  expect_diff(&r.d[1], "/w", "{\"a\":[1,2]}", "[1,2]");
  expect_diff(&r.d[2], "/t", "true", "false");
  expect_diff(&r.d[3], "/s", "\"x\"", "null");
  pc_json_diff_free(r.d, r.n);
}

Test(json, diff_numbers) {
  struct diffs r = diff_of("[1.0,-0,1e400,1e400,1e2,0.1]", "[1,0,1e400,1E400,100,0.10000000000000001]", 10, 100);
  cr_assert_eq(r.n, 1, "only the non-finite literals that differ in text");
  expect_diff(&r.d[0], "/3", "1e400", "1E400");
  pc_json_diff_free(r.d, r.n);
  r = diff_of("{\"temperature\":0.7}", "{\"temperature\":0.8}", 10, 100);
  cr_assert_eq(r.n, 1);
  expect_diff(&r.d[0], "/temperature", "0.7", "0.8");
  pc_json_diff_free(r.d, r.n);
}

Test(json, diff_root_scalar) {
  struct diffs r = diff_of("1", "\"x\\n\"", 10, 100);
  cr_assert_eq(r.n, 1);
  expect_diff(&r.d[0], "", "1", "\"x\\n\"");
  pc_json_diff_free(r.d, r.n);
}

Test(json, diff_escaped_keys) {
  const char *a = "{\"a/b~c\":{\"~1\":1,\"/\":[0]}}";
  const char *b = "{\"a/b~c\":{\"~1\":2,\"/\":[0,1]}}";
  struct diffs r = diff_of(a, b, 10, 100);
  cr_assert_eq(r.n, 2);
  expect_diff(&r.d[0], "/a~1b~0c/~01", "1", "2");
  expect_diff(&r.d[1], "/a~1b~0c/~1/1", NULL, "1");
  /* The pointers lead back to the values. */
  struct pc_json_doc *db = parse_ok(b);
  cr_assert_eq(pc_json_at(pc_json_root(db), r.d[0].pointer)->num, 2);
  cr_assert_eq(pc_json_at(pc_json_root(db), r.d[1].pointer)->num, 1);
  pc_json_free(db);
  pc_json_diff_free(r.d, r.n);
}

Test(json, diff_abbreviates_long_string) {
  /* 10 KB of 2-byte characters after one ASCII byte: an odd limit lands inside a character. */
  pc_buf a;
  pc_buf_init(&a, OUT_MAX);
  cr_assert_eq(pc_buf_puts(&a, "{\"content\":\"x"), 0);
  for (int i = 0; i < 5000; i++) cr_assert_eq(pc_buf_puts(&a, i % 100 == 99 ? "\\n" : "\xC3\xA9"), 0);
  cr_assert_eq(pc_buf_puts(&a, "\"}"), 0);
  struct diffs r = diff_of(a.data, "{\"content\":\"short\"}", 10, 100);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.d[0].pointer, "/content");
  cr_assert_str_eq(r.d[0].requested, "\"short\"");
  const char *rec = r.d[0].recorded;
  cr_assert(ends_with(rec, strlen(rec), ELL "\""), "%s", rec);
  struct pc_json_doc *sd = parse_string_text(rec); /* valid JSON, valid UTF-8 */
  const struct pc_json *s = pc_json_root(sd);
  cr_assert(ends_with(s->str, s->len, ELL));
  size_t kept = s->len - strlen(ELL);
  cr_assert_leq(kept, 100);
  cr_assert_geq(kept, 98);
  cr_assert_eq(kept % 2, 1, "x + whole 2-byte characters");
  cr_assert_eq(memcmp(s->str, "x\xC3\xA9\xC3\xA9", 5), 0);
  pc_json_free(sd);
  pc_json_diff_free(r.d, r.n);
  /* abbrev 0: no abbreviation at all. */
  r = diff_of(a.data, "{\"content\":\"short\"}", 10, 0);
  cr_assert_eq(r.n, 1);
  cr_assert_gt(strlen(r.d[0].recorded), 10000);
  cr_assert(!ends_with(r.d[0].recorded, strlen(r.d[0].recorded), ELL "\""));
  pc_json_diff_free(r.d, r.n);
  pc_buf_free(&a);
}

Test(json, diff_string_at_exact_limit_is_kept) {
  struct diffs r = diff_of("[\"0123456789\"]", "[\"01234567890\"]", 10, 10);
  cr_assert_eq(r.n, 1);
  expect_diff(&r.d[0], "/0", "\"0123456789\"", "\"0123456789" ELL "\"");
  pc_json_diff_free(r.d, r.n);
}

Test(json, diff_abbreviates_big_object) {
  pc_buf a;
  pc_buf_init(&a, OUT_MAX);
  cr_assert_eq(pc_buf_puts(&a, "{\"tools\":{"), 0);
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(pc_buf_printf(&a, "%s\"t\xC3\xA9%d\":{\"d\":\"\\\"\xE2\x82\xAC\"}", i ? "," : "", i), 0);
  cr_assert_eq(pc_buf_puts(&a, "}}"), 0);
  struct diffs r = diff_of(a.data, "{\"tools\":[]}", 10, 64);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.d[0].pointer, "/tools");
  cr_assert_str_eq(r.d[0].requested, "[]");
  struct pc_json_doc *sd = parse_string_text(r.d[0].recorded);
  const struct pc_json *s = pc_json_root(sd);
  cr_assert(ends_with(s->str, s->len, ELL));
  size_t kept = s->len - strlen(ELL);
  cr_assert_leq(kept, 64);
  cr_assert_geq(kept, 61);
  /* The kept part is a prefix of the compact text of the recorded value. */
  struct pc_json_doc *da = parse_ok(a.data);
  char *compact = to_text(pc_json_at(pc_json_root(da), "/tools"), -1);
  cr_assert_eq(memcmp(s->str, compact, kept), 0);
  cr_assert_eq(memcmp(compact, "{\"t\xC3\xA9" "0\":{\"d\":\"\\\"", 14), 0);
  free(compact);
  pc_json_free(da);
  pc_json_free(sd);
  pc_json_diff_free(r.d, r.n);
  /* A small object under the limit stays raw JSON. */
  r = diff_of("{\"v\":{\"k\":1}}", "{\"v\":[]}", 10, 7);
  cr_assert_eq(r.n, 1);
  expect_diff(&r.d[0], "/v", "{\"k\":1}", "[]");
  pc_json_diff_free(r.d, r.n);
  r = diff_of("{\"v\":{\"k\":1}}", "{\"v\":[]}", 10, 6);
  expect_diff(&r.d[0], "/v", "\"{\\\"k\\\":1" ELL "\"", "[]");
  pc_json_diff_free(r.d, r.n);
  pc_buf_free(&a);
}

Test(json, diff_max_cap_counts_total) {
  pc_buf a, b;
  pc_buf_init(&a, OUT_MAX);
  pc_buf_init(&b, OUT_MAX);
  cr_assert_eq(pc_buf_putc(&a, '['), 0);
  cr_assert_eq(pc_buf_putc(&b, '['), 0);
  for (int i = 0; i < 100; i++) {
    cr_assert_eq(pc_buf_printf(&a, "%s%d", i ? "," : "", i), 0);
    cr_assert_eq(pc_buf_printf(&b, "%s%d", i ? "," : "", i + 1), 0);
  }
  cr_assert_eq(pc_buf_puts(&a, ",{\"x\":1}]"), 0);
  cr_assert_eq(pc_buf_puts(&b, "]"), 0);
  struct diffs r = diff_of(a.data, b.data, 5, 100);
  cr_assert_eq(r.n, 5);
  cr_assert_eq(r.total, 101);
  expect_diff(&r.d[0], "/0", "0", "1");
  expect_diff(&r.d[4], "/4", "4", "5");
  pc_json_diff_free(r.d, r.n);
  r = diff_of(a.data, b.data, 0, 100);
  cr_assert_eq(r.n, 0);
  cr_assert_eq(r.total, 101);
  pc_json_diff_free(r.d, r.n);
  r = diff_of(a.data, b.data, 1000, 100);
  cr_assert_eq(r.n, 101);
  expect_diff(&r.d[100], "/100", "{\"x\":1}", NULL);
  pc_json_diff_free(r.d, r.n);
  pc_buf_free(&a);
  pc_buf_free(&b);
}

Test(json, diff_null_sides) {
  struct pc_json_doc *d = parse_ok("{\"a\":1}");
  struct pc_json_diff *out = NULL;
  size_t n = 9, total = 9;
  cr_assert_eq(pc_json_diff(NULL, pc_json_root(d), 10, 100, &out, &n, &total), 0);
  cr_assert_eq(n, 1);
  cr_assert_eq(total, 1);
  expect_diff(&out[0], "", NULL, "{\"a\":1}");
  pc_json_diff_free(out, n);
  cr_assert_eq(pc_json_diff(NULL, NULL, 10, 100, &out, &n, &total), 0);
  cr_assert_eq(n, 0);
  cr_assert_eq(total, 0);
  pc_json_diff_free(out, n);
  pc_json_free(d);
}

/* Large objects use the sorted member index: same answers as the scan,
 * including "first member of a duplicated name wins", in a's order then b's. */
Test(json, diff_large_objects) {
  size_t n = 20000;
  pc_buf a, b;
  pc_buf_init(&a, OUT_MAX);
  pc_buf_init(&b, OUT_MAX);
  cr_assert_eq(pc_buf_puts(&a, "{\"dup\":1,\"dup\":2"), 0);
  cr_assert_eq(pc_buf_puts(&b, "{"), 0);
  for (size_t i = 0; i < n; i++) cr_assert_eq(pc_buf_printf(&a, ",\"k%zu\":%zu", i, i), 0);
  for (size_t i = n; i-- > 0;) /* reversed order, k7 changed, k3 missing */
    if (i != 3) cr_assert_eq(pc_buf_printf(&b, "\"k%zu\":%zu,", i, i == 7 ? 70 : i), 0);
  cr_assert_eq(pc_buf_puts(&a, "}"), 0);
  cr_assert_eq(pc_buf_puts(&b, "\"dup\":1,\"new\":{},\"dup\":9}"), 0);
  struct diffs r = diff_of(a.data, b.data, 10, 100);
  cr_assert_eq(r.total, 4);
  cr_assert_eq(r.n, 4);
  expect_diff(&r.d[0], "/dup", "2", "1"); /* a's second dup against b's first */
  expect_diff(&r.d[1], "/k3", "3", NULL);
  expect_diff(&r.d[2], "/k7", "7", "70");
  expect_diff(&r.d[3], "/new", NULL, "{}");
  pc_json_diff_free(r.d, r.n);
  r = diff_of(a.data, a.data, 10, 100);
  cr_assert_eq(r.total, 1, "only the duplicate: its second value meets the first");
  expect_diff(&r.d[0], "/dup", "2", "1");
  pc_json_diff_free(r.d, r.n);
  pc_buf_free(&a);
  pc_buf_free(&b);
}

Test(json, diff_unlimited_abbrev) {
  struct diffs r = diff_of("{\"v\":{\"k\":\"long value\"}}", "{\"v\":\"long value\"}", 10, SIZE_MAX);
  cr_assert_eq(r.n, 1);
  expect_diff(&r.d[0], "/v", "{\"k\":\"long value\"}", "\"long value\"");
  pc_json_diff_free(r.d, r.n);
}
