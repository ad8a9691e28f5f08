/* test_http.c — the request parser: bytes in, a request or an error out. */
#include <criterion/criterion.h>
#include <string.h>

#include "http.h"

struct parsed {
  struct pc_http h;
  struct pc_req r;
};

static enum pc_http_result feed(struct parsed *p, const char *s, size_t *used) {
  return pc_http_feed(&p->h, s, strlen(s), used);
}

static void init(struct parsed *p, size_t max_body) {
  pc_req_init(&p->r, max_body);
  pc_http_init(&p->h, &p->r, max_body);
}

static void fini(struct parsed *p) { pc_req_release(&p->r); }

Test(http, a_request_and_its_headers) {
  struct parsed p;
  size_t used;
  init(&p, 1 << 20);
  const char *req = "POST /v1/x?a=1 HTTP/1.1\r\nHost: h\r\nX-A:  v  \r\nContent-Length: 2\r\n\r\n{}";
  cr_assert_eq(feed(&p, req, &used), PC_HTTP_REQUEST);
  cr_expect_eq(used, strlen(req));
  cr_expect_str_eq(p.r.method, "POST");
  cr_expect_str_eq(p.r.target.data, "/v1/x?a=1");
  size_t n;
  cr_expect_str_eq(pc_req_header(&p.r, "x-a", &n), "v");
  cr_expect_eq(n, 1);
  cr_expect_eq(p.r.body_len, 2);
  cr_expect(p.r.keep_alive);
  fini(&p);
}

/* A trailer of a chunked body must never pose as a header: a front proxy
 * that checked the headers never saw it. */
Test(http, chunked_trailers_are_not_headers) {
  struct parsed p;
  size_t used;
  init(&p, 1 << 20);
  const char *req = "POST /v1/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "2\r\n{}\r\n0\r\nX-PromptCache-Namespace: other\r\nAuthorization: Bearer sneaky\r\n\r\n";
  cr_assert_eq(feed(&p, req, &used), PC_HTTP_REQUEST);
  cr_expect_null(pc_req_header(&p.r, "x-promptcache-namespace", NULL));
  cr_expect_null(pc_req_header(&p.r, "authorization", NULL));
  cr_expect_eq(p.r.nh, 2);
  cr_expect_eq(p.r.body_len, 2);
  fini(&p);
}

Test(http, pipelined_requests_one_at_a_time) {
  struct parsed p;
  size_t used;
  init(&p, 1 << 20);
  const char *two = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  cr_assert_eq(feed(&p, two, &used), PC_HTTP_REQUEST);
  cr_expect_str_eq(p.r.target.data, "/a");
  pc_req_reset(&p.r);
  size_t used2;
  cr_assert_eq(pc_http_feed(&p.h, two + used, strlen(two) - used, &used2), PC_HTTP_REQUEST);
  cr_expect_str_eq(p.r.target.data, "/b");
  cr_expect_eq(used + used2, strlen(two));
  fini(&p);
}

/* An Upgrade request is answered as plain HTTP, so what follows is HTTP too. */
Test(http, upgrade_request_then_another_request) {
  struct parsed p;
  size_t used;
  init(&p, 1 << 20);
  const char *two = "GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                    "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  cr_assert_eq(feed(&p, two, &used), PC_HTTP_REQUEST);
  cr_expect_str_eq(p.r.target.data, "/a");
  pc_req_reset(&p.r);
  size_t used2;
  cr_assert_eq(pc_http_feed(&p.h, two + used, strlen(two) - used, &used2), PC_HTTP_REQUEST);
  cr_expect_str_eq(p.r.target.data, "/b");
  fini(&p);
}

Test(http, limits) {
  struct parsed p;
  size_t used;
  init(&p, 10);
  cr_expect_eq(feed(&p, "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", &used), PC_HTTP_ERROR);
  cr_expect_eq(p.h.error_status, 413);
  fini(&p);
  init(&p, 10);
  cr_expect_eq(feed(&p, "CONNECT a:1 HTTP/1.1\r\n\r\n", &used), PC_HTTP_ERROR);
  cr_expect_eq(p.h.error_status, 405);
  fini(&p);
  init(&p, 10);
  cr_expect_eq(feed(&p, "GET / HTTP/1.1\r\nBad Header\r\n\r\n", &used), PC_HTTP_ERROR);
  cr_expect_eq(p.h.error_status, 400);
  fini(&p);
  init(&p, 10);
  static char big[70 * 1024];
  memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
  memset(big + 19, 'a', sizeof big - 20);
  big[sizeof big - 1] = '\0';
  cr_expect_eq(feed(&p, big, &used), PC_HTTP_ERROR);
  cr_expect_eq(p.h.error_status, 431);
  fini(&p);
}

Test(http, expect_continue_is_flagged_for_the_transport) {
  struct parsed p;
  size_t used;
  init(&p, 100);
  cr_assert_eq(feed(&p, "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", &used), PC_HTTP_MORE);
  cr_expect(p.h.continue_wanted);
  cr_expect(p.h.in_message);
  fini(&p);
}

Test(http, a_field_with_an_empty_name_is_refused) {
  struct parsed p;
  size_t used;
  init(&p, 1 << 20);
  cr_assert_eq(feed(&p, "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", &used), PC_HTTP_ERROR);
  cr_expect_eq(p.h.error_status, 400);
  fini(&p);
}
