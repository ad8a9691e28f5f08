/* upstream.c — the upstream client: http:// URLs go to uphttp.c, our own
 * HTTP/1.1 client on the loop (a fraction of libcurl's cost per exchange);
 * https:// (and anything uphttp does not take) to libcurl, here.
 *
 * libcurl runs multi-socket on the libuv loop (curl's multi-uv pattern):
 * curl tells us which sockets to watch (sock_cb → uv_poll) and when to call
 * it back (timer_cb → one uv_timer); every curl_multi_socket_action is
 * followed by draining curl_multi_info_read. Connections to upstream are
 * reused by the multi handle's pool; HTTPS is verified. libcurl decodes
 * gzip/br/zstd itself. Both clients' fetches begin with a struct
 * pc_fetch_tag, which is how the functions below tell them apart. */
#include "upstream.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "error.h"
#include "uphttp.h"

/* A fresh easy handle costs an allocation and a large memset, and its
 * cleanup as much again: finished handles are reset and reused. */
#define PC_EASY_POOL 64

struct pc_upstream {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  const struct pc_config *cfg;
  struct pc_fetch *fetches; /* all live fetches, for destroy */
  int in_action;            /* inside curl_multi_socket_action: no handle removal now */
  int busy;                 /* inside poll_cb/timer_cb (callbacks included): destroy waits */
  int destroy_pending;      /* destroy was asked from inside a callback */
  int closing;
  CURL *idle[PC_EASY_POOL]; /* easy handles kept for reuse (reset, connections stay in the multi's pool) */
  int n_idle;
  struct pc_uphttp *http; /* the client for http:// upstreams */
};

struct pc_fetch {
  struct pc_fetch_tag tag; /* PC_VIA_CURL; first, see uphttp.h */
  struct pc_upstream *up;
  CURL *easy;
  struct curl_slist *headers;
  const struct pc_fetch_ops *ops;
  void *ud;
  pc_buf head; /* header lines of the response being received */
  int framed;  /* the final response says where its body ends (Content-Length or chunked) */
  int head_sent;
  int aborted;
  uint64_t start_ns, end_ns;
  struct pc_fetch *next, *prev;
};

struct pc_sock {
  uv_poll_t poll;
  curl_socket_t fd;
  struct pc_upstream *up;
};

static void check_info(struct pc_upstream *up);

static void unlink_fetch(struct pc_fetch *f) {
  if (f->prev)
    f->prev->next = f->next;
  else
    f->up->fetches = f->next;
  if (f->next) f->next->prev = f->prev;
}

static void easy_put(struct pc_upstream *up, CURL *e) {
  if (up->n_idle < PC_EASY_POOL && !up->closing) {
    curl_easy_reset(e);
    up->idle[up->n_idle++] = e;
  } else {
    curl_easy_cleanup(e);
  }
}

static CURL *easy_get(struct pc_upstream *up) { return up->n_idle ? up->idle[--up->n_idle] : curl_easy_init(); }

static void fetch_free(struct pc_fetch *f) {
  unlink_fetch(f);
  curl_multi_remove_handle(f->up->multi, f->easy);
  easy_put(f->up, f->easy);
  pc_upstream_headers_free(f->headers);
  pc_buf_free(&f->head);
  free(f);
}

static void destroy_now(struct pc_upstream *up);

/* Drive libcurl for one socket (or the timeout) and deliver what finished.
 * A callback may ask to destroy the upstream (the last exchange of a loop
 * that is shutting down ends): that waits until we are out of here. */
static void drive(struct pc_upstream *up, curl_socket_t fd, int flags) {
  int running;
  up->busy++;
  up->in_action++;
  curl_multi_socket_action(up->multi, fd, flags, &running);
  up->in_action--;
  check_info(up);
  if (--up->busy == 0 && up->destroy_pending) destroy_now(up);
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  struct pc_sock *s = h->data;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (!status && (events & UV_READABLE)) flags |= CURL_CSELECT_IN;
  if (!status && (events & UV_WRITABLE)) flags |= CURL_CSELECT_OUT;
  drive(s->up, s->fd, flags);
}

static void sock_close_cb(uv_handle_t *h) { free(h->data); }

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  struct pc_upstream *up = userp;
  struct pc_sock *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      uv_poll_stop(&s->poll);
      curl_multi_assign(up->multi, fd, NULL);
      uv_close((uv_handle_t *)&s->poll, sock_close_cb);
    }
    return 0;
  }
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->fd = fd;
    s->up = up;
    if (uv_poll_init_socket(up->loop, &s->poll, fd)) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    curl_multi_assign(up->multi, fd, s);
  }
  int ev = ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
  uv_poll_start(&s->poll, ev, poll_cb);
  return 0;
}

static void timer_cb(uv_timer_t *t) { drive(t->data, CURL_SOCKET_TIMEOUT, 0); }

/* libcurl asks to be called after `ms`; 0 means as soon as possible: a 0 ms
 * uv timer runs on the next loop iteration (never inside libcurl's own
 * callback), where a 1 ms one would add a millisecond to every exchange. */
static int timer_fn(CURLM *m, long ms, void *userp) {
  struct pc_upstream *up = userp;
  if (ms < 0)
    uv_timer_stop(&up->timer);
  else
    uv_timer_start(&up->timer, timer_cb, (uint64_t)ms, 0); /* 0: the next loop iteration, never inside libcurl */
  return 0;
}

static int map_result(CURL *e, CURLcode res) {
  if (res == CURLE_OK) return 0;
  curl_off_t connected = 0;
  curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connected);
  switch (res) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
    return PC_EUPCONNECT;
  case CURLE_OPERATION_TIMEDOUT:
    return connected ? PC_EUPTIMEOUT : PC_EUPCONNECT;
  default:
    return PC_EUPPROTO;
  }
}

static void deliver_head(struct pc_fetch *f) {
  if (f->head_sent || f->aborted) return;
  long status = 0;
  curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
  f->head_sent = 1;
  f->ops->on_head(f->ud, (int)status, f->head.data ? f->head.data : "", f->head.len);
}

static void check_info(struct pc_upstream *up) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(up->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    struct pc_fetch *f = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
    int rc = map_result(msg->easy_handle, msg->data.result);
    f->end_ns = uv_hrtime();
    if (!f->aborted) {
      if (!rc) deliver_head(f);
      if (!f->aborted) f->ops->on_done(f->ud, rc);
    }
    fetch_free(f);
  }
}

/* A header line from curl. Skips status lines and 1xx responses; the blank
 * line after a final response's headers hands them to on_head. */
static size_t header_cb(char *p, size_t size, size_t n, void *ud) {
  struct pc_fetch *f = ud;
  size_t len = size * n;
  if (f->aborted) return 0;
  if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
    pc_buf_reset(&f->head);
    /* HTTP/2 and 3 frame every body; HTTP/1.x only with a length or chunks */
    f->framed = len >= 6 && p[5] != '1' && p[5] != '0';
    return len;
  }
  if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
    long status = 0;
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200) deliver_head(f);
    return len;
  }
  if (len && (p[0] == ' ' || p[0] == '\t')) return len; /* obsolete line folding: drop */
  if ((len > 15 && !strncasecmp(p, "content-length:", 15)) ||
      (len > 18 && !strncasecmp(p, "transfer-encoding:", 18) && memmem(p, len, "chunked", 7)))
    f->framed = 1;
  if (pc_buf_append(&f->head, p, len)) return 0;
  return len;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud) {
  struct pc_fetch *f = ud;
  size_t len = size * n;
  if (f->aborted) return 0;
  deliver_head(f);
  if (f->aborted) return 0;
  f->ops->on_body(f->ud, p, len);
  return f->aborted ? 0 : len;
}

/* --upstream-ca adds to the system CAs, which curl has already loaded. */
static CURLcode ssl_ctx_cb(CURL *e, void *sslctx, void *ud) {
  const char *file = ud;
  X509_STORE *st = SSL_CTX_get_cert_store((SSL_CTX *)sslctx);
  return X509_STORE_load_file(st, file) == 1 ? CURLE_OK : CURLE_SSL_CACERT_BADFILE;
}

int pc_upstream_create(uv_loop_t *loop, const struct pc_config *cfg, struct pc_upstream **out) {
  struct pc_upstream *up = calloc(1, sizeof *up);
  if (!up) return PC_ENOMEM;
  up->loop = loop;
  up->cfg = cfg;
  up->multi = curl_multi_init();
  if (!up->multi) {
    free(up);
    return PC_ENOMEM;
  }
  curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
  curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
  curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
  curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
  curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, 256L);
  int rc = pc_uphttp_create(loop, cfg, &up->http);
  if (rc) {
    curl_multi_cleanup(up->multi);
    free(up);
    return rc;
  }
  uv_timer_init(loop, &up->timer);
  up->timer.data = up;
  *out = up;
  return 0;
}

static void timer_close_cb(uv_handle_t *h) {
  struct pc_upstream *up = h->data;
  while (up->n_idle) curl_easy_cleanup(up->idle[--up->n_idle]);
  curl_multi_cleanup(up->multi);
  free(up);
}

void pc_upstream_destroy(struct pc_upstream *up) {
  if (up->http) pc_uphttp_destroy(up->http); /* safe at any time: it frees in close callbacks */
  up->http = NULL;
  if (up->busy) {
    up->destroy_pending = 1;
    return;
  }
  destroy_now(up);
}

static void destroy_now(struct pc_upstream *up) {
  up->destroy_pending = 0;
  while (up->fetches) {
    up->fetches->aborted = 1;
    fetch_free(up->fetches);
  }
  up->closing = 1;
  uv_timer_stop(&up->timer);
  uv_close((uv_handle_t *)&up->timer, timer_close_cb);
}

static void setup_method(CURL *e, struct pc_fetch_req *req) {
  if (!strcmp(req->method, "GET") && !req->has_body) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    return;
  }
  if (!strcmp(req->method, "HEAD")) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    return;
  }
  if (req->has_body || !strcmp(req->method, "POST") || !strcmp(req->method, "PUT") || !strcmp(req->method, "PATCH")) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body_len ? req->body : "");
  }
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
}

static enum pc_fetch_via via(const struct pc_fetch *f) { return ((const struct pc_fetch_tag *)(const void *)f)->via; }

static struct pc_uphttp_fetch *as_http(const struct pc_fetch *f) { return (struct pc_uphttp_fetch *)(uintptr_t)f; }

/* http:// to our own client; what it does not take (https://, user info in
 * the URL, ...) to libcurl. */
static struct pc_fetch *fetch_http(struct pc_upstream *up, struct pc_fetch_req *req, const struct pc_fetch_ops *ops,
                                   void *ud, int *taken) {
  struct pc_uphttp_fetch *hf = NULL;
  int rc = up->http ? pc_uphttp_fetch(up->http, req, ops, ud, &hf) : PC_EINVAL;
  *taken = rc != PC_EINVAL;
  if (rc) return NULL;
  pc_upstream_headers_free(req->headers); /* already written into the request */
  req->headers = NULL;
  return (struct pc_fetch *)(void *)hf;
}

struct pc_fetch *pc_upstream_fetch(struct pc_upstream *up, struct pc_fetch_req *req, const struct pc_fetch_ops *ops,
                                   void *ud) {
  int taken;
  struct pc_fetch *hf = fetch_http(up, req, ops, ud, &taken);
  if (taken) return hf;
  struct pc_fetch *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  CURL *e = easy_get(up);
  if (!e) {
    free(f);
    return NULL;
  }
  f->tag.via = PC_VIA_CURL;
  f->up = up;
  f->easy = e;
  f->ops = ops;
  f->ud = ud;
  f->headers = req->headers;
  req->headers = NULL;
  pc_buf_init(&f->head, 256 * 1024);
  f->start_ns = uv_hrtime();
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, f);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->headers);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)up->cfg->upstream_timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)up->cfg->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_PROXY, ""); /* no proxy: and no look at *_proxy variables per request */
  if (up->cfg->upstream_ca) {
    curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
    curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, up->cfg->upstream_ca);
  }
  setup_method(e, req);
  if (curl_multi_add_handle(up->multi, e) != CURLM_OK) {
    easy_put(up, e);
    req->headers = f->headers; /* not taken after all */
    pc_buf_free(&f->head);
    free(f);
    return NULL;
  }
  f->next = up->fetches;
  if (f->next) f->next->prev = f;
  up->fetches = f;
  return f;
}

/* Inside a curl callback the handle must not be removed: mark it, make the
 * callbacks return 0 so curl fails the transfer, and free it in check_info. */
void pc_upstream_abort(struct pc_fetch *f) {
  if (via(f) == PC_VIA_UPHTTP) {
    pc_uphttp_abort(as_http(f));
    return;
  }
  f->aborted = 1;
  if (!f->up->in_action) fetch_free(f);
}

/* One allocation per header, the node and its line together: libcurl only
 * reads the list, and pc_upstream_headers_free knows the layout. The line
 * is libcurl's spelling: "Name: value", "Name;" (empty value) or "Name:"
 * (keep libcurl's default away); uphttp.c reads the same list. */
static int list_add(struct curl_slist **list, const char *name, size_t nlen, char sep, const char *value, size_t vlen) {
  struct curl_slist *node = malloc(sizeof *node + nlen + vlen + 3);
  if (!node) return PC_ENOMEM;
  char *d = (char *)(node + 1);
  size_t k = nlen;
  memcpy(d, name, nlen);
  d[k++] = sep;
  if (vlen) {
    d[k++] = ' ';
    memcpy(d + k, value, vlen);
    k += vlen;
  }
  d[k] = '\0';
  node->data = d;
  node->next = NULL;
  while (*list) list = &(*list)->next;
  *list = node;
  return 0;
}

int pc_upstream_header(struct curl_slist **list, const char *name, size_t nlen, const char *value, size_t vlen) {
  return vlen ? list_add(list, name, nlen, ':', value, vlen) : list_add(list, name, nlen, ';', NULL, 0);
}

int pc_upstream_header_suppress(struct curl_slist **list, const char *name) {
  return list_add(list, name, strlen(name), ':', NULL, 0);
}

void pc_upstream_headers_free(struct curl_slist *list) {
  while (list) {
    struct curl_slist *next = list->next;
    free(list);
    list = next;
  }
}

int pc_fetch_delimited(const struct pc_fetch *f) {
  if (via(f) == PC_VIA_UPHTTP) return pc_uphttp_delimited(as_http(f));
  long status = 0;
  curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
  return f->framed || status == 204 || status == 304 || status < 200;
}

int64_t pc_fetch_elapsed_us(const struct pc_fetch *f) {
  if (via(f) == PC_VIA_UPHTTP) return pc_uphttp_elapsed_us(as_http(f));
  uint64_t end = f->end_ns ? f->end_ns : uv_hrtime();
  return (int64_t)((end - f->start_ns) / 1000);
}
