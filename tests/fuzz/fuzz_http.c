/* fuzz_http.c — libFuzzer target for src/http.c, the parser of every byte a
 * client sends. Input: one byte choosing how the rest is cut into reads (the
 * way TCP may deliver it), then the bytes of a connection. The connection is
 * parsed twice, in one read and in reads of 1..64 bytes; both must give the
 * same requests (method, target, header fields, body) and the same end (an
 * error, or more to come), and every request must keep the limits
 * http.h promises. */
#include "fuzz.h"

#include "buf.h"
#include "http.h"

#define MAX_BODY (1 << 16)

struct outcome {
  pc_buf log; /* every request, serialized */
  int error_status;
  int requests;
};

static void log_part(pc_buf *b, const char *p, size_t n) {
  uint32_t len = (uint32_t)n;
  FUZZ_CHECK(!pc_buf_append(b, &len, sizeof len) && !pc_buf_append(b, p, n), "log out of memory");
}

static void check_and_log(const struct pc_req *r, struct outcome *o) {
  FUZZ_CHECK(memchr(r->method, '\0', sizeof r->method) != NULL, "method not terminated");
  FUZZ_CHECK(r->nh <= PC_MAX_HEADERS, "%zu header fields", r->nh);
  FUZZ_CHECK(r->header_bytes <= PC_MAX_HEADER_BYTES, "%zu header bytes", r->header_bytes);
  FUZZ_CHECK(r->body_len <= MAX_BODY, "body of %zu bytes over the limit", r->body_len);
  FUZZ_CHECK(r->body_len == 0 || r->body_at != NULL, "body without bytes");
  log_part(&o->log, r->method, strlen(r->method));
  log_part(&o->log, r->target.data ? r->target.data : "", r->target.len);
  for (size_t i = 0; i < r->nh; i++) {
    const struct pc_header *h = &r->h[i];
    FUZZ_CHECK((size_t)h->name + h->nlen < r->hbuf.len + 1 && (size_t)h->value + h->vlen <= r->hbuf.len,
               "header %zu outside hbuf", i);
    FUZZ_CHECK(h->nlen > 0, "empty header name");
    FUZZ_CHECK(r->hbuf.data[h->name + h->nlen] == '\0' && r->hbuf.data[h->value + h->vlen] == '\0',
               "header %zu not terminated", i);
    log_part(&o->log, r->hbuf.data + h->name, h->nlen);
    log_part(&o->log, r->hbuf.data + h->value, h->vlen);
    size_t n = 0;
    const char *v = pc_req_header(r, r->hbuf.data + h->name, &n);
    FUZZ_CHECK(v != NULL, "pc_req_header cannot find a parsed field");
  }
  log_part(&o->log, r->body_at ? r->body_at : "", r->body_len);
  uint8_t flags = (uint8_t)(r->keep_alive | r->expect_continue << 1 | (r->http_minor & 1) << 2);
  FUZZ_CHECK(!pc_buf_append(&o->log, &flags, 1), "log out of memory");
  o->requests++;
}

/* Parse data[0..n) in reads of `piece` bytes (0: one read). */
static void run(const char *data, size_t n, size_t piece, struct outcome *o) {
  struct pc_req req;
  struct pc_http h;
  pc_req_init(&req, MAX_BODY);
  pc_http_init(&h, &req, MAX_BODY);
  pc_buf_init(&o->log, (size_t)64 << 20);
  o->error_status = 0;
  o->requests = 0;
  size_t off = 0;
  while (off < n && o->requests < 1000) {
    size_t len = piece && n - off > piece ? piece : n - off, used = 0;
    enum pc_http_result r = pc_http_feed(&h, data + off, len, &used);
    if (r == PC_HTTP_ERROR) {
      FUZZ_CHECK(h.error_status == 400 || h.error_status == 405 || h.error_status == 413 || h.error_status == 431,
                 "error status %d", h.error_status);
      o->error_status = h.error_status;
      break;
    }
    if (r == PC_HTTP_MORE) {
      off += len;
      continue;
    }
    FUZZ_CHECK(used <= len, "used %zu of %zu", used, len);
    FUZZ_CHECK(!pc_req_own_body(&req), "owning a body within the limit failed");
    check_and_log(&req, o);
    h.continue_wanted = 0; /* the transport answered it */
    pc_req_reset(&req);
    off += used;
  }
  pc_req_release(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t piece = (size_t)(data[0] % 64) + 1;
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  struct outcome whole, cut;
  run(p, n, 0, &whole);
  run(p, n, piece, &cut);
  FUZZ_CHECK(whole.requests == cut.requests, "%d requests in one read, %d in reads of %zu", whole.requests,
             cut.requests, piece);
  /* Both fail or neither. Which status a bad request gets may depend on
   * where the reads split it when it breaks two rules (a 257th field whose
   * name is also malformed: 431 when the name's first bytes come alone, 400
   * when llhttp sees the bad byte in the same read). */
  FUZZ_CHECK(!whole.error_status == !cut.error_status, "status %d in one read, %d in reads of %zu",
             whole.error_status, cut.error_status, piece);
  FUZZ_CHECK(whole.log.len == cut.log.len && (!whole.log.len || !memcmp(whole.log.data, cut.log.data, whole.log.len)),
             "requests differ between one read and reads of %zu", piece);
  pc_buf_free(&whole.log);
  pc_buf_free(&cut.log);
  return 0;
}
