/* test_canon.c — golden vectors for the canonical JSON that feeds the cache key
 * (SPEC §4): equal documents in different spellings must give identical bytes,
 * and everything the strict parser must refuse is refused with the right code. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "canon.h"
#include "error.h"

#define OUT_MAX (16u << 20)

/* Canonicalize in[0..len) into a fresh buffer; returns the rc, *out owned by caller. */
static int run(const char *in, size_t len, const char *const *ign, size_t n_ign, pc_buf *out,
               struct pc_canon_info *info) {
  pc_buf_init(out, OUT_MAX);
  return pc_canon_json(in, len, ign, n_ign, out, info);
}

static void expect_ign(const char *in, const char *const *ign, size_t n_ign, const char *want) {
  pc_buf out;
  int rc = run(in, strlen(in), ign, n_ign, &out, NULL);
  cr_assert_eq(rc, 0, "input %s: %s", in, pc_errname(rc));
  cr_assert_str_eq(out.data, want, "input %s", in);
  cr_assert_eq(out.len, strlen(want));
  pc_buf_free(&out);
}

static void expect(const char *in, const char *want) { expect_ign(in, NULL, 0, want); }

static void expect_rc_n(const char *in, size_t len, int want) {
  pc_buf out;
  int rc = run(in, len, NULL, 0, &out, NULL);
  cr_assert_eq(rc, want, "input %.*s: got %s, want %s", (int)len, in, pc_errname(rc),
               pc_errname(want));
  pc_buf_free(&out);
}

static void expect_rc(const char *in, int want) { expect_rc_n(in, strlen(in), want); }

/* ---------- structure and whitespace ---------- */

Test(canon, sorts_members) {
  expect("{\"b\":1,\"a\":2,\"c\":3}", "{\"a\":2,\"b\":1,\"c\":3}");
  expect("{\"ab\":1,\"b\":3,\"a\":2}", "{\"a\":2,\"ab\":1,\"b\":3}"); /* prefix first */
  expect("{}", "{}");
  expect("{\"\":1,\"a\":0}", "{\"\":1,\"a\":0}");
}

Test(canon, sorts_by_utf8_bytes) {
  /* U+FFFF (EF BF BF) sorts before U+1F600 (F0 ..) in UTF-8 order, and raw
   * non-ASCII after every ASCII key. */
  expect("{\"\\ud83d\\ude00\":2,\"\\uffff\":1,\"z\":0}",
         "{\"z\":0,\"\xef\xbf\xbf\":1,\"\xf0\x9f\x98\x80\":2}");
  expect("{\"\xc3\xa9\":1,\"z\":2}", "{\"z\":2,\"\xc3\xa9\":1}");
}

Test(canon, sorts_nested) {
  expect("{\"z\":{\"y\":1,\"x\":[{\"d\":1,\"c\":2},{\"b\":[]}]},\"a\":null}",
         "{\"a\":null,\"z\":{\"x\":[{\"c\":2,\"d\":1},{\"b\":[]}],\"y\":1}}");
}

Test(canon, sorts_large_objects) {
  /* 200 members in reverse order: exercises the merge sort path */
  pc_buf in, want;
  pc_buf_init(&in, OUT_MAX);
  pc_buf_init(&want, OUT_MAX);
  pc_buf_putc(&in, '{');
  pc_buf_putc(&want, '{');
  for (int i = 0; i < 200; i++) {
    pc_buf_printf(&in, "%s\"k%03d\":%d", i ? "," : "", 199 - i, 199 - i);
    pc_buf_printf(&want, "%s\"k%03d\":%d", i ? "," : "", i, i);
  }
  pc_buf_putc(&in, '}');
  pc_buf_putc(&want, '}');
  expect(in.data, want.data);
  pc_buf_free(&in);
  pc_buf_free(&want);
}

Test(canon, keeps_array_order) { expect("[3,1,2,\"b\",\"a\"]", "[3,1,2,\"b\",\"a\"]"); }

Test(canon, strips_whitespace) {
  expect(" \n\t{ \"a\" : [ 1 , 2 , { } , [ ] ] ,\r\n \"b\" : true }\r\n ",
         "{\"a\":[1,2,{},[]],\"b\":true}");
  expect("  7  ", "7");
}

Test(canon, literals) {
  expect("[true,false,null]", "[true,false,null]");
  expect("null", "null");
  expect_rc("tru", PC_EJSON);
  expect_rc("nul", PC_EJSON);
  expect_rc("True", PC_EJSON);
  expect_rc("[truex]", PC_EJSON);
}

Test(canon, appends_to_existing_content) {
  pc_buf out;
  pc_buf_init(&out, 1024);
  pc_buf_puts(&out, "prefix:");
  cr_assert_eq(pc_canon_json("{\"b\":1,\"a\":2}", 13, NULL, 0, &out, NULL), 0);
  cr_assert_str_eq(out.data, "prefix:{\"a\":2,\"b\":1}");
  pc_buf_free(&out);
}

/* ---------- numbers ---------- */

Test(canon, equal_numbers_one_spelling) {
  const char *ones[] = {"1", "1.0", "1e0", "1E0", "10e-1", "10E-1", "0.1e1", "100e-2", "1.000"};
  for (size_t i = 0; i < sizeof ones / sizeof ones[0]; i++) expect(ones[i], "1");
  expect("[-0,-0.0,0e5,0.0,-0e-3]", "[0,0,0,0,0]");
  expect("[-1.0,1e2,1.5e1,-2.5e1]", "[-1,100,15,-25]");
  expect("[1e15,9007199254740992.0]", "[1000000000000000,9007199254740992]");
}

Test(canon, big_integers_keep_digits) {
  expect("12345678901234567890123", "12345678901234567890123");
  expect("[-12345678901234567890123,9007199254740993]",
         "[-12345678901234567890123,9007199254740993]");
  /* as a float it is a double like any other */
  expect("9007199254740993.0", "9007199254740992");
  expect("9007199254740994.0", "9007199254740994");
}

Test(canon, floats_shortest_round_trip) {
  expect("0.1", "0.1");
  expect("1e300", "1e300");
  expect("1.5e+300", "1.5e300");
  expect("1.5e-7", "1.5e-7");
  expect("1e-07", "1e-7");
  expect("0.00000015", "1.5e-7");
  expect("-2.5", "-2.5");
  expect("123456.7", "123456.7");
  expect("0.0001", "0.0001");
  expect("1e16", "1e16");
  expect("1E22", "1e22");
  expect("0.30000000000000004", "0.30000000000000004");
  expect("5e-324", "5e-324");
  expect("1.7976931348623157e308", "1.7976931348623157e308");
  expect("1e-400", "0"); /* underflow is zero, not an error */
  expect("[0.7,0.70,7e-1,70E-2]", "[0.7,0.7,0.7,0.7]");
}

Test(canon, long_number_texts) {
  /* more digits than the on-stack conversion buffer */
  char in[400], want[400];
  size_t k = 0;
  in[k++] = '0';
  in[k++] = '.';
  for (int i = 0; i < 300; i++) in[k++] = '0';
  memcpy(in + k, "15e301", 7);
  expect(in, "1.5");
  for (k = 0; k < 300; k++) want[k] = (char)('1' + k % 9);
  want[k] = '\0';
  expect(want, want); /* a 300-digit integer literal keeps every digit */
}

Test(canon, number_overflow_rejected) {
  expect_rc("1e400", PC_EJSON);
  expect_rc("-1e400", PC_EJSON);
  expect_rc("[1e99999999999999999999999999]", PC_EJSON);
  expect("1e-99999999999999999999999999", "0");
}

Test(canon, invalid_numbers) {
  const char *bad[] = {"01",   "-01", "1.",   ".5",  "+1",       "-",         "1e",
                       "1e+",  "1E-", "NaN",  "nan", "Infinity", "-Infinity", "0x10",
                       "1.e5", "-.5", "[01]", "1_0", "--1",      "0.5.5"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_rc(bad[i], PC_EJSON);
}

/* ---------- strings ---------- */

Test(canon, unicode_escapes_equal_raw) {
  expect("\"\\u00e9\"", "\"\xc3\xa9\"");
  expect("\"\\u00E9\"", "\"\xc3\xa9\"");
  expect("\"\xc3\xa9\"", "\"\xc3\xa9\"");
  expect("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
  expect("\"\\uD83D\\uDE00\"", "\"\xf0\x9f\x98\x80\"");
  expect("\"\xf0\x9f\x98\x80\"", "\"\xf0\x9f\x98\x80\"");
  expect("{\"k\\u00e9\":\"v\"}", "{\"k\xc3\xa9\":\"v\"}");
}

Test(canon, solidus_unescaped) {
  expect("\"a\\/b\"", "\"a/b\"");
  expect("\"a/b\"", "\"a/b\"");
}

Test(canon, minimal_escapes) {
  expect("\"\\u0001\\b\\f\\n\\r\\t\\u001F\\\"\\\\\"", "\"\\u0001\\b\\f\\n\\r\\t\\u001f\\\"\\\\\"");
  expect("\"\\u0008\\u0009\\u000A\\u000c\\u000D\"", "\"\\b\\t\\n\\f\\r\"");
  expect("\"\\u0000\"", "\"\\u0000\"");
  expect("\"\\u0022\\u005c\"", "\"\\\"\\\\\"");
  expect("\"\\u0041\\u007f\x7f\"", "\"A\x7f\x7f\"");            /* DEL stays raw */
  expect("\"\\u2028\\u2029\"", "\"\xe2\x80\xa8\xe2\x80\xa9\""); /* so do U+2028/9 */
  /* already-canonical escapes are kept as written */
  expect("\"line\\none \\\"q\\\" \\\\ \\u001f\"", "\"line\\none \\\"q\\\" \\\\ \\u001f\"");
  expect("{\"a\\nb\":\"\\t\"}", "{\"a\\nb\":\"\\t\"}");
}

Test(canon, rewritten_strings) {
  /* a canonical prefix, then escapes that must be rewritten, in strings longer
   * than one 16-byte vector */
  expect("\"0123456789abcdef\\n0123456789abcdef\\/0123456789abcdef\\u0001\\u00e9\\\"tail\"",
         "\"0123456789abcdef\\n0123456789abcdef/0123456789abcdef\\u0001\xc3\xa9\\\"tail\"");
  expect("[\"\\/\",\"x\",\"\\u0041\\u0042\",\"0123456789abcdefghij\\u000a\"]",
         "[\"/\",\"x\",\"AB\",\"0123456789abcdefghij\\n\"]");
  expect("{\"k\\n\":\"0123456789abcdefghij\\u00e9 and more than sixteen\",\"k\":1}",
         "{\"k\":1,\"k\\n\":\"0123456789abcdefghij\xc3\xa9 and more than sixteen\"}");
}

Test(canon, nul_in_keys_and_values) {
  expect("{\"a\\u0000b\":1,\"a\":2}", "{\"a\":2,\"a\\u0000b\":1}");
}

Test(canon, invalid_strings) {
  expect_rc("\"abc", PC_EJSON);
  expect_rc("\"a\\x\"", PC_EJSON);
  expect_rc("\"\\u12\"", PC_EJSON);
  expect_rc("\"\\u12G4\"", PC_EJSON);
  expect_rc("\"\\", PC_EJSON);
  expect_rc("\"a\nb\"", PC_EJSON);
  expect_rc("\"a\tb\"", PC_EJSON);
  expect_rc_n("\"a\0b\"", 5, PC_EJSON);
  expect_rc("'a'", PC_EJSON);
  expect_rc("{a:1}", PC_EJSON);
}

Test(canon, invalid_utf8) {
  const char *bad[] = {
      "\"\xc0\x80\"",         /* overlong NUL */
      "\"\xc1\xbf\"",         /* overlong */
      "\"\xe0\x80\x80\"",     /* overlong 3-byte */
      "\"\xf0\x80\x80\x80\"", /* overlong 4-byte */
      "\"\x80\"",             /* lone continuation */
      "\"a\xbf\"",            /* lone continuation */
      "\"\xed\xa0\x80\"",     /* U+D800 encoded in UTF-8 */
      "\"\xed\xbf\xbf\"",     /* U+DFFF encoded in UTF-8 */
      "\"\xf4\x90\x80\x80\"", /* U+110000 */
      "\"\xf5\x80\x80\x80\"", /* invalid lead */
      "\"\xff\"",
      "\"\xe2\x82\"",             /* truncated */
      "\"\xc3\"",                 /* truncated at the quote */
      "{\"\xc3\x28\":1}",         /* bad continuation in a key */
      "\"ok \\n then \xc0\xaf\"", /* after an escape (decode path) */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_rc(bad[i], PC_EUTF8);
  expect_rc("\xc3\xa9", PC_EJSON);       /* non-ASCII outside a string is bad JSON */
  expect_rc("\xef\xbb\xbf{}", PC_EJSON); /* no BOM */
  expect("\"\xf4\x8f\xbf\xbf\xee\x80\x80\"", "\"\xf4\x8f\xbf\xbf\xee\x80\x80\"");
}

Test(canon, lone_surrogate_escapes) {
  const char *bad[] = {"\"\\ud800\"",        "\"\\udc00\"",        "\"\\ud800x\"",
                       "\"\\ud800\\u0041\"", "\"\\ud800\\ud800\"", "\"\\ude00\\ud83d\"",
                       "\"\\uDBFF\\n\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_rc(bad[i], PC_EUTF8);
  expect_rc("\"\\ud800\\u12x4\"", PC_EJSON);
}

/* ---------- structure errors ---------- */

Test(canon, duplicate_keys) {
  expect_rc("{\"a\":1,\"a\":2}", PC_EDUPKEY);
  expect_rc("{\"a\":1,\"\\u0061\":2}", PC_EDUPKEY);
  expect_rc("{\"b\":1,\"a\":1,\"b\":2}", PC_EDUPKEY);
  expect_rc("{\"x\":{\"\\/\":1,\"/\":2}}", PC_EDUPKEY);
  expect_rc("[{},{\"k\":{\"a\":[],\"a\":{}}}]", PC_EDUPKEY);
  /* same key in different objects is fine */
  expect("[{\"a\":1},{\"a\":2}]", "[{\"a\":1},{\"a\":2}]");
}

Test(canon, duplicate_keys_large_object) {
  pc_buf in;
  pc_buf_init(&in, OUT_MAX);
  pc_buf_putc(&in, '{');
  for (int i = 0; i < 100; i++) pc_buf_printf(&in, "\"k%d\":%d,", (i * 37) % 100, i);
  pc_buf_puts(&in, "\"k42\":0}");
  expect_rc(in.data, PC_EDUPKEY);
  pc_buf_free(&in);
}

Test(canon, trailing_commas_and_bad_structure) {
  const char *bad[] = {"[1,]",      "{\"a\":1,}", "[,]",      "{,}",       "[1,,2]",
                       "[,1]",      "{\"a\"}",    "{\"a\":}", "{\"a\" 1}", "{\"a\":1 \"b\":2}",
                       "[1 2]",     "[",          "{",        "]",         "}",
                       "{\"a\":1]", "[1}",        ":",        ","};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_rc(bad[i], PC_EJSON);
}

Test(canon, trailing_garbage_and_empty) {
  const char *bad[] = {"{} x", "1 2", "{}}", "[]]", "\"\"x", "null,", "{}\"", "", "   ", "\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_rc(bad[i], PC_EJSON);
  expect_rc_n("{}\0", 3, PC_EJSON);
  expect_rc_n(NULL, 0, PC_EJSON);
}

/* ---------- depth ---------- */

static char *nested(size_t depth, const char *open, const char *inner, const char *close) {
  size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
  char *s = malloc(depth * (lo + lc) + li + 1), *p = s;
  for (size_t i = 0; i < depth; i++, p += lo) memcpy(p, open, lo);
  memcpy(p, inner, li);
  p += li;
  for (size_t i = 0; i < depth; i++, p += lc) memcpy(p, close, lc);
  *p = '\0';
  return s;
}

Test(canon, depth_limit) {
  char *ok = nested(PC_CANON_MAX_DEPTH, "[", "1", "]");
  expect(ok, ok);
  free(ok);
  char *over = nested(PC_CANON_MAX_DEPTH + 1, "[", "1", "]");
  expect_rc(over, PC_EDEPTH);
  free(over);
  ok = nested(PC_CANON_MAX_DEPTH - 1, "{\"a\":", "[]", "}");
  expect(ok, ok);
  free(ok);
  over = nested(PC_CANON_MAX_DEPTH, "{\"a\":", "[]", "}");
  expect_rc(over, PC_EDEPTH);
  free(over);
}

Test(canon, megabyte_of_brackets) {
  size_t n = 1u << 20;
  char *s = malloc(n);
  memset(s, '[', n);
  expect_rc_n(s, n, PC_EDEPTH);
  memset(s, '{', n);
  expect_rc_n(s, n, PC_EJSON); /* `{{` is a syntax error before it is deep */
  for (size_t i = 0; i < n; i += 5) memcpy(s + i, "{\"a\":", n - i < 5 ? n - i : 5);
  expect_rc_n(s, n, PC_EDEPTH);
  free(s);
}

/* ---------- ignore pointers ---------- */

Test(canon, ignore_members) {
  const char *body =
      "{\"user\":\"u1\",\"model\":\"m\",\"metadata\":{\"trace_id\":\"t\",\"keep\":1}}";
  const char *ign1[] = {"/user"};
  expect_ign(body, ign1, 1, "{\"metadata\":{\"keep\":1,\"trace_id\":\"t\"},\"model\":\"m\"}");
  const char *ign2[] = {"/user", "/metadata/trace_id"};
  expect_ign(body, ign2, 2, "{\"metadata\":{\"keep\":1},\"model\":\"m\"}");
  const char *ign3[] = {"/metadata"};
  expect_ign(body, ign3, 1, "{\"model\":\"m\",\"user\":\"u1\"}");
  const char *all[] = {"/user", "/model", "/metadata"};
  expect_ign(body, all, 3, "{}");
}

Test(canon, ignore_escaped_tokens) {
  const char *ign[] = {"/a~1b", "/m~0n"};
  expect_ign("{\"a/b\":1,\"m~n\":2,\"a~1b\":3,\"c\":4}", ign, 2, "{\"a~1b\":3,\"c\":4}");
  /* matching is on the unescaped key */
  expect_ign("{\"a\\/b\":1,\"m\\u007en\":2,\"c\":4}", ign, 2, "{\"c\":4}");
  const char *user[] = {"/user"};
  expect_ign("{\"\\u0075ser\":1,\"x\":2}", user, 1, "{\"x\":2}");
  const char *empty_key[] = {"/"};
  expect_ign("{\"\":1,\"x\":2}", empty_key, 1, "{\"x\":2}");
}

Test(canon, ignore_array_elements) {
  const char *body = "{\"messages\":[{\"role\":\"a\"},{\"role\":\"b\"},{\"role\":\"c\"}]}";
  const char *one[] = {"/messages/1"};
  expect_ign(body, one, 1, "{\"messages\":[{\"role\":\"a\"},{\"role\":\"c\"}]}");
  /* indexes refer to the original document, whatever the pointer order */
  const char *two[] = {"/messages/0", "/messages/1"};
  expect_ign(body, two, 2, "{\"messages\":[{\"role\":\"c\"}]}");
  const char *two_rev[] = {"/messages/1", "/messages/0"};
  expect_ign(body, two_rev, 2, "{\"messages\":[{\"role\":\"c\"}]}");
  const char *inner[] = {"/messages/2/role"};
  expect_ign(body, inner, 1, "{\"messages\":[{\"role\":\"a\"},{\"role\":\"b\"},{}]}");
  const char *root[] = {"/0"};
  expect_ign("[1,2]", root, 1, "[2]");
}

Test(canon, ignore_nonexistent_and_invalid) {
  const char *body = "{\"messages\":[1,2],\"a\":{\"b\":1}}";
  const char *want = "{\"a\":{\"b\":1},\"messages\":[1,2]}";
  const char *ign[] = {"/x/y/z",
                       "/messages/9",
                       "/messages/01",
                       "/messages/-",
                       "/messages/x",
                       "/a/b/c",
                       "/a/c",
                       "",
                       "a",
                       "/a~2",
                       "/messages/99999999999999999999999",
                       NULL};
  expect_ign(body, ign, sizeof ign / sizeof ign[0], want);
  expect_ign("[1]", ign, sizeof ign / sizeof ign[0], "[1]");
  expect_ign("\"s\"", ign, sizeof ign / sizeof ign[0], "\"s\"");
}

Test(canon, ignore_does_not_hide_errors) {
  /* the whole document is validated before anything is removed */
  const char *ign[] = {"/user"};
  pc_buf out;
  cr_assert_eq(run("{\"user\":1e999}", 14, ign, 1, &out, NULL), PC_EJSON);
  pc_buf_free(&out);
  cr_assert_eq(run("{\"user\":{\"a\":1,\"a\":2}}", 23, ign, 1, &out, NULL), PC_EDUPKEY);
  pc_buf_free(&out);
}

/* ---------- info ---------- */

static struct pc_canon_info info_of(const char *in, const char *const *ign, size_t n) {
  struct pc_canon_info info;
  memset(&info, 0x5a, sizeof info);
  pc_buf out;
  int rc = run(in, strlen(in), ign, n, &out, &info);
  cr_assert_eq(rc, 0, "input %s: %s", in, pc_errname(rc));
  pc_buf_free(&out);
  return info;
}

Test(canon, info_fields) {
  struct pc_canon_info i =
      info_of("{\"stream\":true,\"model\":\"gpt-4o\",\"x\":{\"model\":\"n\"}}", NULL, 0);
  cr_assert_eq(i.is_object, 1);
  cr_assert_eq(i.stream, 1);
  cr_assert_str_eq(i.model, "gpt-4o");
  i = info_of("{\"stream\":false}", NULL, 0);
  cr_assert_eq(i.stream, 0);
  cr_assert_str_eq(i.model, "");
  i = info_of("{\"stream\":\"true\",\"model\":5}", NULL, 0);
  cr_assert_eq(i.stream, 0);
  cr_assert_str_eq(i.model, "");
  i = info_of("{\"stream\":1}", NULL, 0);
  cr_assert_eq(i.stream, 0);
  i = info_of("[{\"stream\":true,\"model\":\"m\"}]", NULL, 0);
  cr_assert_eq(i.is_object, 0);
  cr_assert_eq(i.stream, 0);
  cr_assert_str_eq(i.model, "");
  i = info_of("{\"x\":{\"model\":\"n\",\"stream\":true}}", NULL, 0);
  cr_assert_eq(i.stream, 0);
  cr_assert_str_eq(i.model, "");
}

Test(canon, info_model_unescaped) {
  struct pc_canon_info i = info_of("{\"model\":\"gpt\\u002d4o\"}", NULL, 0);
  cr_assert_str_eq(i.model, "gpt-4o");
  i = info_of("{\"model\":\"a\\\"b\\\\c\\n\"}", NULL, 0); /* kept-raw escapes */
  cr_assert_str_eq(i.model, "a\"b\\c\n");
  i = info_of("{\"model\":\"a\\n\\/b\\u00e9\"}", NULL, 0); /* rewritten escapes */
  cr_assert_str_eq(i.model, "a\n/b\xc3\xa9");
  i = info_of("{\"m\\u006fdel\":\"x\",\"str\\u0065am\":true}", NULL, 0);
  cr_assert_str_eq(i.model, "x");
  cr_assert_eq(i.stream, 1);
}

Test(canon, info_model_truncated) {
  char in[400];
  int k = snprintf(in, sizeof in, "{\"model\":\"");
  for (int j = 0; j < 200; j++) in[k++] = 'm';
  memcpy(in + k, "\"}", 3);
  struct pc_canon_info i = info_of(in, NULL, 0);
  cr_assert_eq(strlen(i.model), sizeof i.model - 1);
  /* 126 ASCII bytes then é: the 2-byte char does not fit, it is dropped whole */
  k = snprintf(in, sizeof in, "{\"model\":\"");
  for (int j = 0; j < 126; j++) in[k++] = 'm';
  memcpy(in + k, "\xc3\xa9\"}", 5);
  i = info_of(in, NULL, 0);
  cr_assert_eq(strlen(i.model), 126);
}

Test(canon, info_before_ignore) {
  const char *ign[] = {"/model", "/stream"};
  struct pc_canon_info i = info_of("{\"model\":\"m\",\"stream\":true}", ign, 2);
  cr_assert_str_eq(i.model, "m");
  cr_assert_eq(i.stream, 1);
}

/* ---------- limits ---------- */

Test(canon, small_buffer_too_big) {
  pc_buf out;
  pc_buf_init(&out, 8);
  int rc = pc_canon_json("{\"hello\":\"world\"}", 17, NULL, 0, &out, NULL);
  cr_assert_eq(rc, PC_ETOOBIG);
  pc_buf_free(&out);
  pc_buf_init(&out, 17);
  rc = pc_canon_json("{ \"hello\" : \"world\" }", 21, NULL, 0, &out, NULL);
  cr_assert_eq(rc, 0);
  cr_assert_str_eq(out.data, "{\"hello\":\"world\"}");
  pc_buf_free(&out);
}

/* ---------- a whole request in two spellings ---------- */

Test(canon, chat_body_spellings_agree) {
  const char *a = "{\"model\":\"gpt-4o\",\"temperature\":0.7,\"max_tokens\":100,"
                  "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\\nReally.\"},"
                  "{\"role\":\"user\",\"content\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 a/b\"}],"
                  "\"stream\":true}";
  const char *b = "{\n  \"stream\" : true,\n  \"messages\" : [\n"
                  "    { \"content\" : \"Be brief.\\u000aReally.\", \"role\" : \"system\" },\n"
                  "    { \"content\" : \"caf\\u00e9 \\ud83d\\ude00 a\\/b\", \"role\" : \"user\" }\n"
                  "  ],\n  \"max_tokens\" : 1e2,\n  \"temperature\" : 7e-1,\n"
                  "  \"model\" : \"gpt\\u002d4o\"\n}\n";
  pc_buf oa, ob;
  cr_assert_eq(run(a, strlen(a), NULL, 0, &oa, NULL), 0);
  cr_assert_eq(run(b, strlen(b), NULL, 0, &ob, NULL), 0);
  cr_assert_str_eq(oa.data, ob.data);
  cr_assert_str_eq(oa.data,
                   "{\"max_tokens\":100,\"messages\":[{\"content\":\"Be brief.\\nReally.\","
                   "\"role\":\"system\"},{\"content\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 a/b\","
                   "\"role\":\"user\"}],\"model\":\"gpt-4o\",\"stream\":true,"
                   "\"temperature\":0.7}");
  pc_buf_free(&oa);
  pc_buf_free(&ob);
}
