/* test_uphttp.c — the pure parts of the http:// upstream client: URL
 * splitting (which URLs it takes, Host as libcurl sends it, the target),
 * Content-Encoding folding, and the request head it writes. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "uphttp.h"

static struct pc_uphttp_url url(const char *s, int *rc) {
  struct pc_uphttp_url u;
  memset(&u, 0, sizeof u);
  *rc = pc_uphttp_parse_url(s, &u);
  return u;
}

static int target_is(const struct pc_uphttp_url *u, const char *want) {
  return u->target_len == strlen(want) && !memcmp(u->target, want, u->target_len);
}

Test(uphttp_url, host_port_and_target) {
  int rc;
  struct pc_uphttp_url u = url("http://127.0.0.1:8080/v1/chat/completions?x=1", &rc);
  cr_assert_eq(rc, 0);
  cr_expect_str_eq(u.host, "127.0.0.1");
  cr_expect_eq(u.port, 8080);
  cr_expect_str_eq(u.hosthdr, "127.0.0.1:8080");
  cr_expect(target_is(&u, "/v1/chat/completions?x=1"));
  cr_expect_eq(u.authority_len, strlen("127.0.0.1:8080"));
  cr_expect_eq(strncmp(u.authority, "127.0.0.1:8080", u.authority_len), 0);
}

Test(uphttp_url, default_port_is_left_out_of_host) {
  int rc;
  struct pc_uphttp_url u = url("http://api.example.com/v1beta/models", &rc);
  cr_assert_eq(rc, 0);
  cr_expect_str_eq(u.host, "api.example.com");
  cr_expect_eq(u.port, 80);
  cr_expect_str_eq(u.hosthdr, "api.example.com");
  cr_expect(target_is(&u, "/v1beta/models"));
  u = url("http://api.example.com:80/x", &rc);
  cr_assert_eq(rc, 0);
  cr_expect_str_eq(u.hosthdr, "api.example.com", "an explicit :80 is the default too");
}

Test(uphttp_url, ipv6_literal_in_brackets) {
  int rc;
  struct pc_uphttp_url u = url("http://[::1]:9000/v1/x", &rc);
  cr_assert_eq(rc, 0);
  cr_expect_str_eq(u.host, "::1");
  cr_expect_eq(u.port, 9000);
  cr_expect_str_eq(u.hosthdr, "[::1]:9000");
  u = url("http://[2001:db8::5]", &rc);
  cr_assert_eq(rc, 0);
  cr_expect_str_eq(u.host, "2001:db8::5");
  cr_expect_str_eq(u.hosthdr, "[2001:db8::5]");
  cr_expect_eq(u.target_len, 0, "no path: the request head writes /");
}

Test(uphttp_url, query_without_path_and_fragment) {
  int rc;
  struct pc_uphttp_url u = url("http://h:1?q=1#frag", &rc);
  cr_assert_eq(rc, 0);
  cr_expect(target_is(&u, "?q=1"), "the fragment is never sent");
}

Test(uphttp_url, what_it_leaves_to_libcurl) {
  const char *no[] = {"https://api.openai.com/v1",
                      "http://user:pw@host/v1",
                      "http://host:0/",
                      "http://host:65536/",
                      "http://host:8x/",
                      "http://host:/",
                      "http:///nohost",
                      "http://",
                      "ftp://host/",
                      "http://[::1/",
                      "http://[::1]x/",
                      "http://[fe80::1%25eth0]:80/",
                      "http://bad host/"};
  for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
    int rc;
    url(no[i], &rc);
    cr_expect_eq(rc, PC_EINVAL, "%s", no[i]);
  }
  char longhost[400] = "http://";
  memset(longhost + 7, 'a', 300);
  longhost[307] = '\0';
  int rc;
  url(longhost, &rc);
  cr_expect_eq(rc, PC_EINVAL, "a host over 255 bytes");
}

static int coding(const char *v, enum pc_uphttp_coding *c) { return pc_uphttp_parse_coding(v, strlen(v), c); }

Test(uphttp_coding, decodable_codings) {
  enum pc_uphttp_coding c = PC_CODING_IDENTITY;
  cr_expect_eq(coding("gzip", &c), 0);
  cr_expect_eq(c, PC_CODING_GZIP);
  c = PC_CODING_IDENTITY;
  cr_expect_eq(coding(" X-GZip ", &c), 0);
  cr_expect_eq(c, PC_CODING_GZIP);
  c = PC_CODING_IDENTITY;
  cr_expect_eq(coding("Deflate", &c), 0);
  cr_expect_eq(c, PC_CODING_DEFLATE);
  c = PC_CODING_IDENTITY;
  cr_expect_eq(coding("identity", &c), 0);
  cr_expect_eq(coding("", &c), 0);
  cr_expect_eq(coding("identity, gzip", &c), 0);
  cr_expect_eq(c, PC_CODING_GZIP, "identity adds nothing");
}

Test(uphttp_coding, what_it_cannot_decode) {
  const char *no[] = {"br", "zstd", "compress", "x-unknown", "gzip, gzip", "gzip,deflate"};
  for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
    enum pc_uphttp_coding c = PC_CODING_IDENTITY;
    cr_expect_eq(coding(no[i], &c), PC_EPROTO, "%s", no[i]);
  }
  enum pc_uphttp_coding c = PC_CODING_GZIP; /* a second field after "gzip" */
  cr_expect_eq(coding("deflate", &c), PC_EPROTO, "stacked over two fields");
}

/* A header list of "Name: value" lines, as pc_upstream_header builds it. */
static struct curl_slist *list_of(const char *const *lines, size_t n) {
  struct curl_slist *head = NULL;
  for (size_t i = 0; i < n; i++) {
    const char *colon = strchr(lines[i], ':');
    cr_assert(colon && colon[1] == ' ');
    cr_assert_eq(pc_upstream_header(&head, lines[i], (size_t)(colon - lines[i]), colon + 2, strlen(colon + 2)), 0);
  }
  return head;
}

Test(uphttp_request, head_with_forwarded_headers_and_length) {
  struct curl_slist *hl = NULL;
  cr_assert_eq(pc_upstream_header(&hl, "Authorization", 13, "Bearer sk-x", 11), 0);
  cr_assert_eq(pc_upstream_header_suppress(&hl, "Expect"), 0);
  cr_assert_eq(pc_upstream_header(&hl, "X-Empty", 7, "", 0), 0);
  pc_buf b;
  pc_buf_init(&b, 1 << 20);
  const char *t = "/v1/chat/completions?a=1";
  cr_assert_eq(pc_uphttp_request_head(&b, "POST", t, strlen(t), "127.0.0.1:9", hl, 42), 0);
  cr_expect_str_eq(b.data, "POST /v1/chat/completions?a=1 HTTP/1.1\r\n"
                           "Host: 127.0.0.1:9\r\n"
                           "Authorization: Bearer sk-x\r\n"
                           "X-Empty:\r\n"
                           "Content-Length: 42\r\n"
                           "\r\n");
  cr_assert_eq(pc_uphttp_request_head(&b, "GET", "", 0, "h", NULL, -1), 0);
  cr_expect_str_eq(b.data, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "no body: no length; no path: /");
  cr_assert_eq(pc_uphttp_request_head(&b, "POST", "?q", 2, "h", NULL, 0), 0);
  cr_expect_str_eq(b.data, "POST /?q HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  pc_buf_free(&b);
  pc_upstream_headers_free(hl);
}

Test(uphttp_request, order_is_kept) {
  const char *lines[] = {"A: 1", "B: 2", "C: 3"};
  struct curl_slist *hl = list_of(lines, 3);
  pc_buf b;
  pc_buf_init(&b, 1 << 20);
  cr_assert_eq(pc_uphttp_request_head(&b, "PUT", "/x", 2, "h", hl, 0), 0);
  cr_expect_str_eq(b.data, "PUT /x HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n");
  pc_buf_free(&b);
  pc_upstream_headers_free(hl);
}

Test(uphttp_request, bounded_by_the_buffer) {
  pc_buf b;
  pc_buf_init(&b, 16);
  cr_expect_eq(pc_uphttp_request_head(&b, "GET", "/a-long-target", 14, "h", NULL, -1), PC_ETOOBIG);
  pc_buf_free(&b);
}
