/* redis.c — the Redis client under the shared tier: connections (hiredis 0.14
 * async on the caller's libuv loop), handshakes, per-command timeouts,
 * reconnects with backoff, the cluster slot map with MOVED/ASK, dedicated
 * connections for blocking commands, pub/sub. Owns every hiredis call.
 *
 * Ownership, in one place:
 *  - struct pc_redis owns its nodes, conns and subscriptions, and is freed when
 *    the last of its uv handles (two timers, one timer per conn) has closed;
 *  - a conn owns at most one live hiredis context (ctx) and one dropped context
 *    still to be freed (zombie); its memory is freed in its timer's close
 *    callback, and only once both are gone;
 *  - a req (one command) belongs to hiredis from the moment it is queued until
 *    hiredis calls on_reply for it, exactly once, with a reply or with NULL (the
 *    context is being freed). The caller may have heard earlier (timeout while
 *    connecting, cancel): `finished` says so, and then the reply is dropped.
 * Re-entrancy: hiredis runs our callbacks inside redisAsyncHandleRead and
 * redisAsyncFree, and 0.14 calls onConnect outside its own in-callback guard.
 * r->depth counts how deep we are in hiredis' callbacks: a context is freed
 * only at depth 0; deeper it becomes the conn's zombie, freed by the conn's
 * timer on the next loop turn. A context hiredis frees by itself (error, EOF,
 * failed connect) is reported through on_connect/on_disconnect/NULL replies:
 * conn_lost forgets it and never frees it. */
#include "redis.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include "error.h"

#define NO_NODE 0xFFFFu
#define MAX_NODES 1024
#define MAX_URLS 64
#define MAX_DEDICATED 32     /* per node: more blocking commands at once get PC_EBUSY */
#define MAX_IDLE_DEDICATED 4 /* per node, kept open for the next blocking command */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define REFRESH_MIN_MS 100 /* between two CLUSTER SLOTS */
#define MIN_CONNECT_TIMEOUT_MS 1000
#define MAX_TIMEOUT_MS (24 * 3600 * 1000LL) /* keeps now + timeout far from overflow */

const uint64_t pc_redis_latency_bounds_us[PC_REDIS_LATENCY_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};

/* ---- URLs and slots (pure) ------------------------------------------------ */

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decode [p, end) into out. -1: bad encoding (or %00), -2: too long. */
static int pct_decode(const char *p, const char *end, char *out, size_t n) {
  size_t k = 0;
  while (p < end) {
    int c = (unsigned char)*p++;
    if (c == '%') {
      int hi = end - p >= 2 ? hexval(p[0]) : -1, lo = end - p >= 2 ? hexval(p[1]) : -1;
      if (hi < 0 || lo < 0 || (hi | lo) == 0) return -1;
      c = hi << 4 | lo;
      p += 2;
    }
    if (k + 1 >= n) return -2;
    out[k++] = (char)c;
  }
  out[k] = '\0';
  return 0;
}

static int parse_uint(const char *p, const char *end, long max, long *out) {
  long v = 0;
  if (p == end) return -1;
  for (; p < end; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
    if (v > max) return -1;
  }
  *out = v;
  return 0;
}

/* user:password or password (redis-cli reads a lone userinfo as the password). */
static const char *parse_userinfo(const char *p, const char *at, struct pc_redis_url *u) {
  const char *colon = memchr(p, ':', (size_t)(at - p));
  int rc;
  if (colon) {
    rc = pct_decode(p, colon, u->user, sizeof u->user);
    if (rc) return rc == -2 ? "user name too long" : "invalid percent-encoding in the user name";
    p = colon + 1;
  }
  rc = pct_decode(p, at, u->password, sizeof u->password);
  if (rc) return rc == -2 ? "password too long" : "invalid percent-encoding in the password";
  return NULL;
}

static int host_char_ok(int c, int v6) {
  if (isalnum(c) || c == '.' || c == '-' || c == '_') return 1;
  return v6 && (c == ':' || c == '%');
}

static const char *parse_hostport(const char **pp, const char *end, struct pc_redis_url *u) {
  const char *h = *pp, *hend, *q;
  int v6 = *h == '[';
  long port;
  if (v6) {
    h++;
    hend = memchr(h, ']', (size_t)(end - h));
    if (!hend) return "unterminated [IPv6] host";
    q = hend + 1;
  } else {
    for (hend = h; hend < end && *hend != ':' && *hend != '/';) hend++;
    q = hend;
  }
  if (hend == h) return "missing host";
  if ((size_t)(hend - h) >= sizeof u->host) return "host name too long";
  for (const char *c = h; c < hend; c++)
    if (!host_char_ok((unsigned char)*c, v6)) return "invalid character in the host";
  memcpy(u->host, h, (size_t)(hend - h));
  u->host[hend - h] = '\0';
  if (q < end && *q == ':') {
    const char *pe = q + 1;
    while (pe < end && *pe != '/') pe++;
    if (parse_uint(q + 1, pe, 65535, &port) || port == 0) return "invalid port";
    u->port = (int)port;
    q = pe;
  }
  if (q < end && *q != '/') return "unexpected characters after the host";
  *pp = q;
  return NULL;
}

int pc_redis_parse_url(const char *url, struct pc_redis_url *out, char *err, size_t errlen) {
  const char *msg = NULL, *p, *end, *at;
  long db = 0;
  memset(out, 0, sizeof *out);
  out->port = PC_REDIS_DEFAULT_PORT;
  if (err && errlen) err[0] = '\0';
  if (!url || !*url) {
    msg = "empty URL";
  } else if (strncasecmp(url, "rediss://", 9) == 0) {
    msg = "TLS (rediss://) is not supported";
  } else if (strncasecmp(url, "redis://", 8) != 0) {
    msg = "must start with redis://";
  }
  if (msg) goto bad;
  p = url + 8;
  end = p + strlen(p);
  at = strrchr(p, '@'); /* the last one: an unencoded '@' in the password stays in the password */
  if (at) {
    msg = parse_userinfo(p, at, out);
    if (msg) goto bad;
    p = at + 1;
  }
  msg = parse_hostport(&p, end, out);
  if (msg) goto bad;
  if (p + 1 < end && parse_uint(p + 1, end, 999999, &db)) { /* p is at "/" or the end; "/" alone is db 0 */
    msg = "invalid database number";
    goto bad;
  }
  out->db = (int)db;
  return 0;
bad:
  memset(out, 0, sizeof *out);
  if (err && errlen) snprintf(err, errlen, "redis URL: %s", msg);
  return PC_EINVAL;
}

void pc_redis_redact(const char *url, char *out, size_t n) {
  const char *s, *at, *colon, *keep;
  if (!out || !n) return;
  out[0] = '\0';
  if (!url) return;
  s = strstr(url, "://");
  s = s ? s + 3 : url;
  at = strrchr(s, '@');
  if (!at) {
    snprintf(out, n, "%s", url);
    return;
  }
  colon = memchr(s, ':', (size_t)(at - s));
  keep = colon ? colon + 1 : s; /* "user:" stays; a lone userinfo is a password */
  snprintf(out, n, "%.*s***%s", (int)(keep - url), url, at);
}

static uint16_t crc16_xmodem(const unsigned char *p, size_t n) {
  uint16_t crc = 0;
  while (n--) {
    crc ^= (uint16_t)(*p++ << 8);
    for (int i = 0; i < 8; i++) crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

uint16_t pc_redis_key_slot(const char *key, size_t len) {
  const char *open = len ? memchr(key, '{', len) : NULL;
  if (open) {
    const char *start = open + 1;
    const char *close = memchr(start, '}', len - (size_t)(start - key));
    if (close && close > start) { /* "{}" hashes the whole key */
      key = start;
      len = (size_t)(close - start);
    }
  }
  return len ? crc16_xmodem((const unsigned char *)key, len) & (PC_REDIS_SLOTS - 1) : 0;
}

/* ---- State ------------------------------------------------------------------ */

enum mode { MODE_UNKNOWN, MODE_STANDALONE, MODE_CLUSTER };
enum conn_kind { CONN_MAIN, CONN_DEDICATED, CONN_SUB };
/* DOWN → CONNECTING (context made, handshake queued) → READY (handshake answered) → DOWN */
enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_READY };

struct conn;

struct node {
  char host[256];
  int port;
  uint16_t index;
  struct conn *main; /* NULL until first wanted; lives as long as r */
};

struct req {
  struct pc_redis *r;
  struct conn *conn;       /* the conn it was last queued on */
  redisAsyncContext *ac;   /* ... and that conn's context then */
  struct req *prev, *next; /* conn's list of unfinished commands, oldest first */
  void (*done)(struct req *q, int rc, const redisReply *reply);
  pc_redis_cb cb;
  void *ud;
  char *cmd; /* RESP-formatted once, kept for redirects */
  size_t len;
  int64_t deadline; /* loop time, ms; kept across redirects */
  uint64_t t0;      /* uv_hrtime() at submission */
  int redirects;
  unsigned linked : 1, finished : 1, timed_out : 1, user : 1, dedicated : 1;
};

struct conn {
  struct pc_redis *r;
  struct node *node;
  enum conn_kind kind;
  enum conn_state state;
  redisAsyncContext *ctx;
  redisAsyncContext *zombie;
  uv_timer_t timer; /* DOWN: zombie free / backoff; else the earliest deadline of head..tail */
  int64_t armed;    /* loop time the timer fires at, -1: stopped */
  int64_t retry_at;
  struct req *head, *tail;
  unsigned attempts; /* failures since the last READY; 0: the first connect, which may queue */
  int hs_pending;
  int hs_failed;
  int users; /* user commands hiredis holds on ctx or zombie */
  unsigned want : 1, retire : 1, closed : 1, ever_ready : 1;
  struct conn *next; /* r->conns */
};

struct sub {
  struct sub *next;
  struct pc_redis *r;
  char *channel;
  size_t len;
  void (*on_message)(void *ud, const char *p, size_t n);
  void (*on_up)(void *ud);
  void *ud;
};

struct pc_redis {
  uv_loop_t *loop;
  char user[128], password[256];
  int db;
  int64_t timeout_ms, connect_timeout_ms;
  enum mode mode;
  struct node *nodes[MAX_NODES];
  size_t n_nodes;
  uint16_t masters[MAX_NODES]; /* node indexes, in order of their first slot */
  size_t n_masters;
  size_t rr;
  uint16_t slots[PC_REDIS_SLOTS]; /* node index or NO_NODE */
  struct conn *conns;
  struct conn *sub_conn;
  struct sub *subs;
  uv_timer_t refresh_timer, wait_timer;
  int refresh_wanted, refresh_inflight;
  int64_t last_refresh;
  int wait_expired, waiting;
  int handles; /* open uv handles of ours */
  int depth;   /* nesting in hiredis callbacks */
  int closing;
  uint64_t rng;
  struct pc_redis_counters counters;
  char last_error[256];
};

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void conn_on_timer(uv_timer_t *t);
static void conn_retire(struct conn *c);
static void conn_drop(struct conn *c);
static void refresh_request(struct pc_redis *r);
static void sub_resubscribe(struct conn *c);

/* Deadlines are on uv_hrtime, not on the loop's cached time: that one is as
 * old as the current loop iteration (or the loop's creation), and a deadline
 * computed from it could already be past. A timer started with (deadline -
 * now) then fires early rather than late, and its callback re-arms. */
static int64_t now_ms(const struct pc_redis *r) { return (int64_t)(uv_hrtime() / 1000000); }

static void node_name(const struct node *n, char *out, size_t len) {
  int v6 = strchr(n->host, ':') != NULL;
  if (snprintf(out, len, v6 ? "[%s]:%d" : "%s:%d", n->host, n->port) < 0 && len) out[0] = '\0';
}

static void set_error(struct pc_redis *r, const struct node *n, const char *fmt, ...) {
  char name[300], msg[200];
  va_list ap;
  va_start(ap, fmt);
  if (vsnprintf(msg, sizeof msg, fmt, ap) < 0) msg[0] = '\0';
  va_end(ap);
  name[0] = '\0';
  if (n) node_name(n, name, sizeof name);
  if (snprintf(r->last_error, sizeof r->last_error, "%s%s%s", name, n ? ": " : "", msg) < 0) r->last_error[0] = '\0';
}

static uint64_t rng_next(struct pc_redis *r) {
  r->rng ^= r->rng << 13;
  r->rng ^= r->rng >> 7;
  r->rng ^= r->rng << 17;
  return r->rng;
}

/* 50 ms doubling to 2 s, then a random point in its upper half, so that the
 * loops and nodes of a fleet do not reconnect in step. */
static int64_t backoff_ms(struct pc_redis *r, unsigned attempts) {
  int64_t d = BACKOFF_MIN_MS;
  for (unsigned i = 1; i < attempts && d < BACKOFF_MAX_MS; i++) d *= 2;
  if (d > BACKOFF_MAX_MS) d = BACKOFF_MAX_MS;
  return d / 2 + (int64_t)(rng_next(r) % (uint64_t)(d / 2 + 1));
}

static void latency_add(struct pc_redis_counters *k, uint64_t us) {
  size_t i = 0;
  while (i < PC_REDIS_LATENCY_BUCKETS - 1 && us > pc_redis_latency_bounds_us[i]) i++;
  k->latency_us_buckets[i]++;
  k->latency_us_sum += us;
  k->latency_count++;
}

/* ---- Nodes ------------------------------------------------------------------ */

static struct node *node_get(struct pc_redis *r, const char *host, size_t hlen, int port) {
  struct node *n;
  if (hlen > 2 && host[0] == '[' && host[hlen - 1] == ']') host++, hlen -= 2;
  for (size_t i = 0; i < r->n_nodes; i++) {
    n = r->nodes[i];
    if (n->port == port && strlen(n->host) == hlen && memcmp(n->host, host, hlen) == 0) return n;
  }
  if (r->n_nodes >= MAX_NODES || hlen == 0 || hlen >= sizeof n->host || memchr(host, '\0', hlen)) return NULL;
  n = calloc(1, sizeof *n);
  if (!n) return NULL;
  memcpy(n->host, host, hlen);
  n->port = port;
  n->index = (uint16_t)r->n_nodes;
  r->nodes[r->n_nodes++] = n;
  return n;
}

/* ---- Requests ----------------------------------------------------------------- */

static struct req *req_new(struct pc_redis *r, int argc, const char *const *argv, const size_t *argvlen) {
  struct req *q = calloc(1, sizeof *q);
  char *cmd = NULL;
  int len;
  if (!q) return NULL;
  len = redisFormatCommandArgv(&cmd, argc, (const char **)argv, argvlen);
  if (len < 0 || !cmd) {
    free(q);
    return NULL;
  }
  q->r = r;
  q->cmd = cmd;
  q->len = (size_t)len;
  return q;
}

static void req_free(struct req *q) {
  redisFreeCommand(q->cmd);
  free(q);
}

static void req_link(struct conn *c, struct req *q) {
  q->prev = c->tail;
  q->next = NULL;
  if (c->tail)
    c->tail->next = q;
  else
    c->head = q;
  c->tail = q;
  q->linked = 1;
}

static void req_unlink(struct req *q) {
  struct conn *c = q->conn;
  if (!q->linked) return;
  if (q->prev)
    q->prev->next = q->next;
  else
    c->head = q->next;
  if (q->next)
    q->next->prev = q->prev;
  else
    c->tail = q->prev;
  q->prev = q->next = NULL;
  q->linked = 0;
}

/* The command's outcome, told once. hiredis may still hold q afterwards. */
static void req_finish(struct req *q, int rc, const redisReply *reply) {
  if (q->finished) return;
  req_unlink(q);
  q->finished = 1;
  q->done(q, rc, reply);
}

static void user_done(struct req *q, int rc, const redisReply *reply) {
  struct pc_redis_counters *k = &q->r->counters;
  if (rc == 0) {
    if (!q->dedicated) latency_add(k, (uv_hrtime() - q->t0) / 1000); /* a blocking read's wait is not a round trip */
  } else if (rc != PC_ECANCELED) {
    k->errors++;
  }
  if (rc == PC_ETIMEDOUT) k->timeouts++;
  q->cb(q->ud, rc, rc == 0 ? reply : NULL);
}

/* ---- Connections: lifecycle ----------------------------------------------------- */

static void conn_set_state(struct conn *c, enum conn_state s) {
  assert(s == CONN_DOWN || (c->state == CONN_DOWN && s == CONN_CONNECTING) ||
         (c->state == CONN_CONNECTING && s == CONN_READY));
  c->state = s;
}

static struct conn *conn_new(struct pc_redis *r, struct node *n, enum conn_kind kind) {
  struct conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->r = r;
  c->node = n;
  c->kind = kind;
  c->state = CONN_DOWN;
  c->armed = -1;
  uv_timer_init(r->loop, &c->timer);
  c->timer.data = c;
  r->handles++;
  c->next = r->conns;
  r->conns = c;
  return c;
}

/* Fire the timer at `at` (loop ms); unless forced, only ever earlier. */
static void conn_arm(struct conn *c, int64_t at, int force) {
  int64_t now = now_ms(c->r);
  if (c->closed || (!force && c->armed >= 0 && c->armed <= at)) return;
  uv_timer_start(&c->timer, conn_on_timer, (uint64_t)(at > now ? at - now : 0), 0);
  c->armed = at;
}

/* A READY conn, or one on its very first connect (commands queue behind it,
 * bounded by their own deadlines); reconnects never take commands. */
static int conn_usable(const struct conn *c) {
  return c && c->ctx && (c->state == CONN_READY || (c->state == CONN_CONNECTING && c->attempts == 0));
}

/* c has no context any more (none was made, or it was just dropped or lost):
 * retire it, or schedule the next attempt. */
static void conn_down(struct conn *c) {
  struct pc_redis *r = c->r;
  int64_t now = now_ms(r);
  conn_set_state(c, CONN_DOWN);
  c->hs_pending = 0;
  c->attempts++;
  if (c->kind == CONN_DEDICATED || c->retire || r->closing) {
    conn_retire(c);
    return;
  }
  if (c->want) {
    c->retry_at = now + backoff_ms(r, c->attempts);
    conn_arm(c, c->zombie ? now : c->retry_at, 1);
  } else if (c->zombie) {
    conn_arm(c, now, 1);
  } else {
    uv_timer_stop(&c->timer);
    c->armed = -1;
  }
  if (c->kind == CONN_MAIN && c->want) refresh_request(r); /* a master unreachable: ask another node */
}

/* hiredis is freeing ac by itself (error, EOF, failed connect): forget it,
 * never free it. Idempotent: every path of one loss calls it. */
static void conn_lost(struct conn *c, const redisAsyncContext *ac) {
  if (!ac) return;
  if (ac == c->zombie) {
    c->zombie = NULL;
    return;
  }
  if (ac != c->ctx) return;
  if (ac->c.err)
    set_error(c->r, c->node, "%s", ac->c.errstr);
  else
    set_error(c->r, c->node, "connection lost");
  c->ctx = NULL;
  conn_down(c);
}

/* Drop c's live context. Its commands complete (PC_ETIMEDOUT when marked,
 * PC_EUNAVAIL otherwise) as hiredis frees it: now at depth 0, else on the next
 * loop turn as the zombie. */
static void conn_drop(struct conn *c) {
  redisAsyncContext *ac = c->ctx;
  int defer = c->r->depth > 0;
  if (!ac) return;
  c->ctx = NULL;
  if (defer) {
    assert(!c->zombie);
    c->zombie = ac;
  }
  conn_down(c);
  if (!defer) redisAsyncFree(ac);
}

static void conn_on_close(uv_handle_t *h);

/* Close c for good: its memory goes in the timer's close callback, after any
 * context of it is freed. */
static void conn_retire(struct conn *c) {
  c->retire = 1;
  c->want = 0;
  if (c->ctx) {
    conn_drop(c); /* comes back here without a ctx */
    return;
  }
  if (c->closed) return;
  if (c->zombie) {
    conn_arm(c, now_ms(c->r), 1); /* the timer frees it, then closes */
    return;
  }
  c->closed = 1;
  if (c->r->sub_conn == c) c->r->sub_conn = NULL;
  if (c->node && c->node->main == c) c->node->main = NULL;
  uv_close((uv_handle_t *)&c->timer, conn_on_close);
}

static void client_free(struct pc_redis *r) {
  struct sub *s, *next;
  for (size_t i = 0; i < r->n_nodes; i++) free(r->nodes[i]);
  for (s = r->subs; s; s = next) {
    next = s->next;
    free(s->channel);
    free(s);
  }
  explicit_bzero(r->password, sizeof r->password);
  free(r);
}

static void handle_closed(struct pc_redis *r) {
  if (--r->handles == 0 && r->closing && !r->waiting) client_free(r);
}

static void client_on_close(uv_handle_t *h) { handle_closed(h->data); }

static void conn_on_close(uv_handle_t *h) {
  struct conn *c = h->data;
  struct pc_redis *r = c->r;
  struct conn **pp;
  assert(!c->ctx && !c->zombie && !c->head);
  for (pp = &r->conns; *pp != c;) pp = &(*pp)->next;
  *pp = c->next;
  free(c);
  handle_closed(r);
}

/* ---- Connections: connect, handshake, deadlines ----------------------------------- */

static void on_connect(const redisAsyncContext *ac, int status) {
  struct conn *c = ac->data;
  if (status == REDIS_OK) return; /* the handshake's replies say when it is ready */
  c->r->depth++;
  conn_lost(c, ac); /* hiredis frees ac when this returns */
  c->r->depth--;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  struct conn *c = ac->data;
  c->r->depth++;
  conn_lost(c, ac);
  c->r->depth--;
}

/* hiredis 0.14's libuv adapter drops poll errors: libuv reports POLLERR (a
 * refused connect, a reset) as status < 0 and stops the handle, and the
 * adapter returns without telling hiredis, so the connection would hang until
 * a timer noticed. These hooks replace the adapter's four event hooks and keep
 * its handle, cleanup (uv_close) and free: every event, errors included, goes
 * to hiredis, whose read then finds the socket error and tears the context
 * down (on_connect / on_disconnect). */
static void io_poll(uv_poll_t *h, int status, int events) {
  redisLibuvEvents *p = h->data;
  if (status < 0) events = UV_READABLE;
  if (p->context && (events & UV_READABLE)) redisAsyncHandleRead(p->context);
  if (p->context && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->context); /* NULL once freed */
}

static void io_update(redisLibuvEvents *p, int add, int ev) {
  if (add)
    p->events |= ev;
  else
    p->events &= ~ev;
  if (p->events)
    uv_poll_start(&p->handle, p->events, io_poll);
  else
    uv_poll_stop(&p->handle);
}

static void io_add_read(void *p) { io_update(p, 1, UV_READABLE); }
static void io_del_read(void *p) { io_update(p, 0, UV_READABLE); }
static void io_add_write(void *p) { io_update(p, 1, UV_WRITABLE); }
static void io_del_write(void *p) { io_update(p, 0, UV_WRITABLE); }

static int io_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  if (redisLibuvAttach(ac, loop) != REDIS_OK) return -1;
  ac->ev.addRead = io_add_read;
  ac->ev.delRead = io_del_read;
  ac->ev.addWrite = io_add_write;
  ac->ev.delWrite = io_del_write;
  return 0;
}

/* Queue q on c's context (after ASKING when ask). The conn's timer then
 * watches q's deadline. */
static int conn_queue(struct conn *c, struct req *q, int ask) {
  if (ask && redisAsyncCommand(c->ctx, NULL, NULL, "ASKING") != REDIS_OK) goto lost;
  if (redisAsyncFormattedCommand(c->ctx, on_reply, q, q->cmd, q->len) != REDIS_OK) goto lost;
  q->conn = c;
  q->ac = c->ctx;
  req_link(c, q);
  conn_arm(c, q->deadline, 0);
  if (q->user) c->users++;
  return 0;
lost: /* refused only while hiredis is freeing the context, further up this stack */
  conn_lost(c, c->ctx);
  return PC_EUNAVAIL;
}

static void conn_ready(struct conn *c) {
  struct pc_redis *r = c->r;
  conn_set_state(c, CONN_READY);
  if (c->ever_ready) r->counters.reconnects++;
  c->ever_ready = 1;
  c->attempts = 0;
  if (c->kind == CONN_MAIN && r->mode != MODE_STANDALONE && r->refresh_wanted) refresh_request(r);
  if (c->kind == CONN_SUB) sub_resubscribe(c);
}

static void hs_done(struct req *q, int rc, const redisReply *reply) {
  struct conn *c = q->conn;
  if (c->ctx != q->ac || c->state != CONN_CONNECTING) return; /* from a context since dropped */
  if (rc || reply->type == REDIS_REPLY_ERROR) {
    if (!c->hs_failed) set_error(c->r, c->node, "%s", rc ? pc_strerror(rc) : reply->str);
    c->hs_failed = 1;
  }
  if (--c->hs_pending > 0) return;
  if (c->hs_failed)
    conn_drop(c);
  else
    conn_ready(c);
}

static int hs_send(struct conn *c, int argc, const char **argv, int64_t deadline) {
  struct req *q = req_new(c->r, argc, argv, NULL);
  int rc;
  if (!q) return PC_ENOMEM;
  q->done = hs_done;
  q->deadline = deadline;
  rc = conn_queue(c, q, 0);
  if (rc)
    req_free(q);
  else
    c->hs_pending++;
  return rc;
}

/* AUTH, SELECT, PING: sent first on every connection, before anything else.
 * Their deadline is the connect timeout; PING's reply makes the conn READY. */
static int handshake(struct conn *c) {
  struct pc_redis *r = c->r;
  int64_t dl = now_ms(r) + r->connect_timeout_ms;
  char db[16];
  const char *auth[3] = {"AUTH", r->user[0] ? r->user : r->password, r->password};
  const char *sel[2] = {"SELECT", db};
  const char *ping[1] = {"PING"};
  int rc = 0;
  c->hs_pending = 0;
  c->hs_failed = 0;
  if (r->password[0]) rc = hs_send(c, r->user[0] ? 3 : 2, auth, dl);
  if (!rc && r->db && r->mode != MODE_CLUSTER) {
    snprintf(db, sizeof db, "%d", r->db);
    rc = hs_send(c, 2, sel, dl);
  }
  if (!rc) rc = hs_send(c, 1, ping, dl);
  return rc;
}

static void conn_connect(struct conn *c) {
  struct pc_redis *r = c->r;
  redisAsyncContext *ac;
  assert(!c->ctx && !c->zombie && c->state == CONN_DOWN);
  ac = redisAsyncConnect(c->node->host, c->node->port);
  if (!ac || ac->err || io_attach(ac, r->loop)) {
    set_error(r, c->node, "connect: %s", !ac ? "out of memory" : ac->err ? ac->errstr : "cannot watch the socket");
    if (ac) redisAsyncFree(ac); /* new, never in a callback */
    conn_down(c);
    return;
  }
  ac->data = c;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  redisEnableKeepAlive(&ac->c);
  c->ctx = ac;
  conn_set_state(c, CONN_CONNECTING);
  if (handshake(c)) conn_drop(c);
}

static struct req *first_expired(const struct conn *c, int64_t now, int user_only) {
  for (struct req *q = c->head; q; q = q->next)
    if (q->deadline <= now && (!user_only || q->user)) return q;
  return NULL;
}

/* The timer of a CONNECTING or READY conn: some command may be overdue. On a
 * READY conn that breaks the connection (replies come in order: everything
 * behind it waits too). Behind a first connect, a user command times out
 * alone; the connect itself is bounded by the handshake's deadline. */
static void conn_check_deadlines(struct conn *c) {
  struct pc_redis *r = c->r;
  int64_t now = now_ms(r), next = INT64_MAX;
  struct req *q;
  int broken = 0;
  /* The caller may do anything in its callback: look again from the head. */
  while (c->state == CONN_CONNECTING && (q = first_expired(c, now, 1)) != NULL) req_finish(q, PC_ETIMEDOUT, NULL);
  if (c->closed || c->state == CONN_DOWN) return;
  for (q = c->head; q; q = q->next) {
    if (q->deadline <= now) {
      q->timed_out = 1;
      broken = 1;
    } else if (q->deadline < next) {
      next = q->deadline;
    }
  }
  if (broken) {
    set_error(r, c->node, c->state == CONN_CONNECTING ? "connect timed out" : "command timed out");
    conn_drop(c);
  } else if (next != INT64_MAX) {
    conn_arm(c, next, 1);
  }
}

static struct node *sub_node(struct pc_redis *r, struct node *cur);

static void conn_retry(struct conn *c) {
  struct pc_redis *r = c->r;
  if (!c->want || r->closing) return;
  if (now_ms(r) < c->retry_at) {
    conn_arm(c, c->retry_at, 1);
    return;
  }
  if (c->kind == CONN_SUB) c->node = sub_node(r, c->node);
  conn_connect(c);
}

static void conn_on_timer(uv_timer_t *t) {
  struct conn *c = t->data;
  c->armed = -1;
  if (c->zombie) {
    redisAsyncContext *ac = c->zombie;
    c->zombie = NULL;
    redisAsyncFree(ac); /* its commands complete now */
    if (c->closed) return;
  }
  if (c->retire) {
    conn_retire(c);
    return;
  }
  if (c->state == CONN_DOWN)
    conn_retry(c);
  else
    conn_check_deadlines(c);
}

/* ---- Routing and redirects ------------------------------------------------------- */

static struct conn *node_main(struct pc_redis *r, struct node *n) {
  struct conn *c;
  if (n->main) return n->main;
  c = conn_new(r, n, CONN_MAIN);
  if (!c) return NULL;
  c->want = 1;
  n->main = c;
  conn_connect(c);
  return c;
}

/* Masters (and nodes redirected to) keep a connection; others let theirs go
 * when it breaks. */
static void node_want(struct pc_redis *r, struct node *n, int want) {
  struct conn *c = n->main;
  if (!want) {
    if (c) c->want = 0;
    return;
  }
  if (!c) {
    node_main(r, n);
    return;
  }
  if (c->want || c->retire) return;
  c->want = 1;
  if (c->state == CONN_DOWN && !c->zombie) conn_arm(c, c->retry_at, 1);
}

static int dedicated_get(struct pc_redis *r, struct node *n, struct conn **out) {
  size_t count = 0;
  struct conn *c;
  for (c = r->conns; c; c = c->next) {
    if (c->kind != CONN_DEDICATED || c->node != n || c->retire) continue;
    if (c->state == CONN_READY && c->users == 0) {
      *out = c;
      return 0;
    }
    count++;
  }
  if (count >= MAX_DEDICATED) return PC_EBUSY;
  c = conn_new(r, n, CONN_DEDICATED);
  if (!c) return PC_ENOMEM;
  conn_connect(c);
  *out = c;
  return 0;
}

/* A dedicated conn whose command is done: kept for the next one, or closed
 * when enough others are idle. */
static void dedicated_idle(struct conn *c) {
  size_t idle = 0;
  if (c->retire || c->state != CONN_READY) return;
  for (struct conn *o = c->r->conns; o; o = o->next)
    if (o->kind == CONN_DEDICATED && o->node == c->node && !o->retire && o->state == CONN_READY && o->users == 0)
      idle++;
  if (idle > MAX_IDLE_DEDICATED) conn_retire(c);
}

static int req_send(struct req *q, struct node *n, int ask) {
  struct conn *c = NULL;
  int rc = 0;
  if (q->dedicated)
    rc = dedicated_get(q->r, n, &c);
  else if (!(c = node_main(q->r, n)))
    rc = PC_ENOMEM;
  if (rc) return rc;
  if (!conn_usable(c)) return PC_EUNAVAIL;
  return conn_queue(c, q, ask);
}

/* Any master with a usable connection, round robin; while the mode is
 * unknown, a seed. */
static struct node *any_node(struct pc_redis *r) {
  for (size_t i = 0; i < r->n_masters; i++) {
    size_t k = (r->rr + i) % r->n_masters;
    struct node *n = r->nodes[r->masters[k]];
    if (conn_usable(n->main)) {
      r->rr = k + 1;
      return n;
    }
  }
  if (r->n_masters) return r->nodes[r->masters[0]];
  for (size_t i = 0; i < r->n_nodes; i++)
    if (conn_usable(r->nodes[i]->main)) return r->nodes[i];
  return r->n_nodes ? r->nodes[0] : NULL;
}

static int route(struct pc_redis *r, const struct pc_redis_cmd *cmd, struct node **out) {
  if (cmd->node >= 0) {
    if (r->mode == MODE_UNKNOWN) return PC_EUNAVAIL;
    if ((size_t)cmd->node >= r->n_masters) return PC_EINVAL;
    *out = r->nodes[r->masters[cmd->node]];
    return 0;
  }
  if (r->mode == MODE_CLUSTER && cmd->key_index >= 0) {
    const char *key = cmd->argv[cmd->key_index];
    size_t klen = cmd->argvlen ? cmd->argvlen[cmd->key_index] : strlen(key);
    uint16_t idx = r->slots[pc_redis_key_slot(key, klen)];
    if (idx != NO_NODE) {
      *out = r->nodes[idx];
      return 0;
    }
  }
  *out = any_node(r);
  return *out ? 0 : PC_EUNAVAIL;
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381" (IPv6 unbracketed:
 * the port follows the last colon). 1: parsed, 0: not a redirect, -1: bad. */
static int parse_redirect(const char *s, size_t len, int *ask, int *slot, const char **host, size_t *hlen, int *port) {
  const char *end = s + len, *p, *sp, *colon = NULL;
  long v;
  if (len > 6 && memcmp(s, "MOVED ", 6) == 0)
    *ask = 0, p = s + 6;
  else if (len > 4 && memcmp(s, "ASK ", 4) == 0)
    *ask = 1, p = s + 4;
  else
    return 0;
  sp = memchr(p, ' ', (size_t)(end - p));
  if (!sp || parse_uint(p, sp, PC_REDIS_SLOTS - 1, &v)) return -1;
  *slot = (int)v;
  for (const char *c = sp + 1; c < end; c++)
    if (*c == ':') colon = c;
  if (!colon || colon == sp + 1 || parse_uint(colon + 1, end, 65535, &v) || v == 0) return -1;
  *host = sp + 1;
  *hlen = (size_t)(colon - (sp + 1));
  *port = (int)v;
  return 1;
}

/* Follow MOVED/ASK for a user command. 1: handled (q was re-sent or
 * finished), 0: an ordinary reply. */
static int redirect(struct req *q, const redisReply *rep) {
  struct pc_redis *r = q->r;
  struct node *n = NULL;
  const char *host;
  size_t hlen;
  int ask, slot, port, rc;
  if (!q->user || rep->type != REDIS_REPLY_ERROR || !rep->str) return 0;
  rc = parse_redirect(rep->str, rep->len, &ask, &slot, &host, &hlen, &port);
  if (rc == 0) return 0;
  if (rc < 0 || q->redirects >= PC_REDIS_MAX_REDIRECTS)
    rc = PC_EPROTO;
  else if (now_ms(r) >= q->deadline)
    rc = PC_ETIMEDOUT; /* sent on, it would break a healthy conn */
  else if (!(n = node_get(r, host, hlen, port)))
    rc = PC_EUNAVAIL;
  else
    rc = 0;
  if (rc) {
    req_finish(q, rc, NULL);
    req_free(q);
    return 1;
  }
  q->redirects++;
  if (ask) {
    r->counters.ask++; /* one command, during a migration: the map stays */
  } else {
    r->counters.moved++;
    if (r->mode == MODE_CLUSTER) r->slots[slot] = n->index;
    refresh_request(r);
  }
  node_want(r, n, 1);
  rc = req_send(q, n, ask);
  if (rc) {
    req_finish(q, rc, NULL);
    req_free(q);
  }
  return 1;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  struct req *q = privdata;
  struct pc_redis *r = q->r;
  struct conn *c = q->conn;
  const redisReply *rep = reply;
  r->depth++;
  req_unlink(q);
  if (q->user) c->users--;
  if (!rep) conn_lost(c, ac); /* no-op when we freed it ourselves */
  if (q->finished) {
    req_free(q);
  } else if (!rep) {
    req_finish(q, q->timed_out ? PC_ETIMEDOUT : PC_EUNAVAIL, NULL);
    req_free(q);
  } else if (!redirect(q, rep)) {
    req_finish(q, 0, rep);
    req_free(q);
  }
  if (c->kind == CONN_DEDICATED && c->users == 0) dedicated_idle(c);
  r->depth--;
}

/* ---- Cluster slot map ---------------------------------------------------------------- */

static void refresh_on_timer(uv_timer_t *t);

/* The map may be stale: read it again soon (at most every REFRESH_MIN_MS). */
static void refresh_request(struct pc_redis *r) {
  int64_t now, at;
  if (r->mode == MODE_STANDALONE || r->closing) return;
  r->refresh_wanted = 1;
  if (r->refresh_inflight || uv_is_active((uv_handle_t *)&r->refresh_timer)) return;
  now = now_ms(r);
  at = r->last_refresh + REFRESH_MIN_MS;
  uv_timer_start(&r->refresh_timer, refresh_on_timer, (uint64_t)(at > now ? at - now : 0), 0);
}

/* A READY main connection to ask: a master first, then any node we still talk to. */
static struct conn *ready_main(struct pc_redis *r) {
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < r->n_nodes; i++) {
      struct conn *c = r->nodes[(r->rr + i) % r->n_nodes]->main;
      if (c && c->state == CONN_READY && (pass || c->want)) return c;
    }
  }
  return NULL;
}

static void rebuild_masters(struct pc_redis *r) {
  unsigned char seen[MAX_NODES] = {0};
  r->n_masters = 0;
  for (size_t s = 0; s < PC_REDIS_SLOTS; s++) {
    uint16_t idx = r->slots[s];
    if (idx == NO_NODE || seen[idx]) continue;
    seen[idx] = 1;
    r->masters[r->n_masters++] = idx;
  }
  for (size_t i = 0; i < r->n_nodes; i++) node_want(r, r->nodes[i], seen[i]);
}

/* One CLUSTER SLOTS range: [start, end, [ip, port, id...], replicas...]. */
static int apply_range(struct pc_redis *r, const struct node *asked, const redisReply *e, uint16_t *map) {
  const redisReply *m;
  const char *h;
  size_t hl;
  struct node *n;
  if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
      e->element[1]->type != REDIS_REPLY_INTEGER)
    return PC_EPROTO;
  long long a = e->element[0]->integer, b = e->element[1]->integer;
  m = e->element[2];
  if (a < 0 || b < a || b >= PC_REDIS_SLOTS || m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
      m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_INTEGER ||
      m->element[1]->integer <= 0 || m->element[1]->integer > 65535)
    return PC_EPROTO;
  h = m->element[0]->str;
  hl = m->element[0]->len;
  if (hl == 0 || (hl == 1 && h[0] == '?')) { /* the node does not know its address: the one we used */
    h = asked->host;
    hl = strlen(h);
  }
  n = node_get(r, h, hl, (int)m->element[1]->integer);
  if (!n) return PC_ENOMEM;
  for (long long s = a; s <= b; s++) map[s] = n->index;
  return 0;
}

static int apply_slots(struct pc_redis *r, const struct node *asked, const redisReply *rep) {
  uint16_t *map;
  int rc = 0;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) return PC_EPROTO;
  map = malloc(sizeof r->slots);
  if (!map) return PC_ENOMEM;
  memset(map, 0xFF, sizeof r->slots);
  for (size_t i = 0; i < rep->elements && !rc; i++) rc = apply_range(r, asked, rep->element[i], map);
  if (!rc) {
    memcpy(r->slots, map, sizeof r->slots);
    r->mode = MODE_CLUSTER;
    rebuild_masters(r);
  }
  free(map);
  return rc;
}

static void become_standalone(struct pc_redis *r, struct node *n) {
  r->mode = MODE_STANDALONE;
  r->masters[0] = n->index;
  r->n_masters = 1;
  r->refresh_wanted = 0;
  uv_timer_stop(&r->refresh_timer);
  for (size_t i = 0; i < r->n_nodes; i++) node_want(r, r->nodes[i], r->nodes[i] == n);
}

static void slots_done(struct req *q, int rc, const redisReply *reply) {
  struct pc_redis *r = q->r;
  struct node *asked = q->conn->node;
  r->refresh_inflight = 0;
  if (r->closing) return;
  if (!rc && reply->type == REDIS_REPLY_ERROR) {
    if (r->mode == MODE_UNKNOWN && strstr(reply->str, "cluster support disabled")) {
      become_standalone(r, asked);
      return;
    }
    set_error(r, asked, "CLUSTER SLOTS: %s", reply->str);
    rc = PC_EPROTO;
  }
  if (!rc) {
    rc = apply_slots(r, asked, reply);
    if (rc) set_error(r, asked, "CLUSTER SLOTS: unreadable reply");
  }
  if (rc) r->refresh_wanted = 1;
  if (r->refresh_wanted) refresh_request(r);
}

static void refresh_on_timer(uv_timer_t *t) {
  struct pc_redis *r = t->data;
  const char *argv[2] = {"CLUSTER", "SLOTS"};
  struct conn *c;
  struct req *q;
  if (r->closing || r->mode == MODE_STANDALONE) return;
  c = ready_main(r);
  if (!c) return; /* refresh_wanted stays set: the next conn to become ready asks */
  q = req_new(r, 2, argv, NULL);
  if (!q) return;
  q->done = slots_done;
  q->deadline = now_ms(r) + r->connect_timeout_ms;
  if (conn_queue(c, q, 0)) {
    req_free(q);
    return;
  }
  r->rr++;
  r->refresh_wanted = 0;
  r->refresh_inflight = 1;
  r->last_refresh = now_ms(r);
}

/* ---- Pub/sub ----------------------------------------------------------------------- */

static void on_sub(redisAsyncContext *ac, void *reply, void *privdata) {
  struct sub *s = privdata;
  struct pc_redis *r = s->r;
  const redisReply *rep = reply;
  r->depth++;
  if (!rep) {
    conn_lost(ac->data, ac);
  } else if (!r->closing && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 3 &&
             rep->element[0]->type == REDIS_REPLY_STRING) {
    const char *kind = rep->element[0]->str;
    const redisReply *payload = rep->element[2];
    if (strcasecmp(kind, "message") == 0 && payload->type == REDIS_REPLY_STRING) {
      if (s->on_message) s->on_message(s->ud, payload->str, payload->len);
    } else if (strcasecmp(kind, "subscribe") == 0) {
      if (s->on_up) s->on_up(s->ud);
    }
  }
  r->depth--;
}

static void sub_send(struct conn *c, struct sub *s) {
  const char *argv[2] = {"SUBSCRIBE", s->channel};
  size_t lens[2] = {9, s->len};
  if (redisAsyncCommandArgv(c->ctx, on_sub, s, 2, argv, lens) != REDIS_OK) conn_lost(c, c->ctx);
}

static void sub_resubscribe(struct conn *c) {
  for (struct sub *s = c->r->subs; s && c->state == CONN_READY; s = s->next) sub_send(c, s);
}

/* Pub/sub reaches every node of a cluster: any master that answers will do. */
static struct node *sub_node(struct pc_redis *r, struct node *cur) {
  for (size_t i = 0; i < r->n_masters; i++) {
    struct node *n = r->nodes[r->masters[(r->rr + i) % r->n_masters]];
    if (n->main && n->main->state == CONN_READY) return n;
  }
  return cur ? cur : any_node(r);
}

/* ---- Public API --------------------------------------------------------------------- */

static int64_t default_connect_timeout(int64_t timeout_ms) {
  return timeout_ms > MIN_CONNECT_TIMEOUT_MS ? timeout_ms : MIN_CONNECT_TIMEOUT_MS;
}

static int add_seeds(struct pc_redis *r, const struct pc_redis_config *cfg) {
  struct pc_redis_url u;
  int rc = 0, have_pass = 0;
  for (size_t i = 0; i < cfg->n_urls && !rc; i++) {
    rc = pc_redis_parse_url(cfg->urls[i], &u, NULL, 0);
    if (rc) break;
    if (i == 0) r->db = u.db;
    if (!have_pass && u.password[0]) {
      memcpy(r->user, u.user, sizeof r->user);
      memcpy(r->password, u.password, sizeof r->password);
      have_pass = 1;
    }
    if (!node_get(r, u.host, strlen(u.host), u.port)) rc = PC_ENOMEM;
  }
  explicit_bzero(&u, sizeof u);
  return rc;
}

int pc_redis_create(uv_loop_t *loop, const struct pc_redis_config *cfg, struct pc_redis **out) {
  struct pc_redis *r;
  int rc;
  if (!loop || !cfg || !out || !cfg->urls || cfg->n_urls == 0 || cfg->n_urls > MAX_URLS || cfg->timeout_ms < 0 ||
      cfg->connect_timeout_ms < 0 || cfg->timeout_ms > MAX_TIMEOUT_MS || cfg->connect_timeout_ms > MAX_TIMEOUT_MS)
    return PC_EINVAL;
  *out = NULL;
  r = calloc(1, sizeof *r);
  if (!r) return PC_ENOMEM;
  r->loop = loop;
  r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : PC_REDIS_DEFAULT_TIMEOUT_MS;
  r->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : default_connect_timeout(r->timeout_ms);
  memset(r->slots, 0xFF, sizeof r->slots);
  r->rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)r) | 1;
  rc = add_seeds(r, cfg);
  if (rc) {
    client_free(r);
    return rc;
  }
  uv_timer_init(loop, &r->refresh_timer);
  uv_timer_init(loop, &r->wait_timer);
  r->refresh_timer.data = r->wait_timer.data = r;
  r->handles = 2;
  r->refresh_wanted = 1; /* the first READY seed asks CLUSTER SLOTS: that also tells the mode */
  for (size_t i = 0; i < r->n_nodes; i++) node_want(r, r->nodes[i], 1);
  *out = r;
  return 0;
}

static struct req *first_user_req(const struct pc_redis *r) {
  for (const struct conn *c = r->conns; c; c = c->next)
    for (struct req *q = c->head; q; q = q->next)
      if (q->user) return q;
  return NULL;
}

void pc_redis_destroy(struct pc_redis *r) {
  struct conn *c, *next;
  struct req *q;
  if (!r || r->closing) return;
  r->closing = 1;
  /* Every caller hears now, while its state surely exists; hiredis still holds
   * the reqs and frees them with the contexts. */
  while ((q = first_user_req(r)) != NULL) req_finish(q, PC_ECANCELED, NULL);
  for (c = r->conns; c; c = next) {
    next = c->next; /* conns leave the list only in close callbacks */
    conn_retire(c);
  }
  uv_close((uv_handle_t *)&r->refresh_timer, client_on_close);
  uv_close((uv_handle_t *)&r->wait_timer, client_on_close);
}

/* Commands that would turn a shared connection into a push stream, which
 * hiredis 0.14 then reads as such for good: pub/sub has its own connection. */
static int is_push_command(const struct pc_redis_cmd *cmd) {
  static const char *const names[] = {"SUBSCRIBE",    "PSUBSCRIBE",   "SSUBSCRIBE", "UNSUBSCRIBE",
                                      "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR"};
  size_t len = cmd->argvlen ? cmd->argvlen[0] : strlen(cmd->argv[0]);
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (len == strlen(names[i]) && strncasecmp(cmd->argv[0], names[i], len) == 0) return 1;
  return 0;
}

int pc_redis_command(struct pc_redis *r, const struct pc_redis_cmd *cmd, pc_redis_cb cb, void *ud) {
  struct node *n = NULL;
  struct req *q;
  int rc;
  if (!r || !cmd || !cb || cmd->argc < 1 || !cmd->argv || cmd->key_index < -1 || cmd->key_index >= cmd->argc ||
      cmd->timeout_ms < 0 || cmd->timeout_ms > MAX_TIMEOUT_MS || !cmd->argv[0] || is_push_command(cmd))
    return PC_EINVAL;
  if (r->closing) return PC_ECANCELED;
  r->counters.commands++;
  rc = route(r, cmd, &n);
  if (rc) goto out;
  q = req_new(r, cmd->argc, cmd->argv, cmd->argvlen);
  if (!q) {
    rc = PC_ENOMEM;
    goto out;
  }
  q->user = 1;
  q->done = user_done;
  q->cb = cb;
  q->ud = ud;
  q->dedicated = cmd->dedicated != 0;
  q->t0 = uv_hrtime();
  q->deadline = now_ms(r) + (cmd->timeout_ms ? cmd->timeout_ms : r->timeout_ms);
  rc = req_send(q, n, 0);
  if (rc) req_free(q);
out:
  if (rc) r->counters.errors++;
  return rc;
}

size_t pc_redis_masters(const struct pc_redis *r) { return r && r->mode != MODE_UNKNOWN ? r->n_masters : 0; }

int pc_redis_master_name(const struct pc_redis *r, size_t i, char *out, size_t n) {
  if (!out || !n || i >= pc_redis_masters(r)) return PC_EINVAL;
  node_name(r->nodes[r->masters[i]], out, n);
  return 0;
}

int pc_redis_is_up(const struct pc_redis *r) {
  if (!r || r->closing || r->mode == MODE_UNKNOWN || r->n_masters == 0) return 0;
  for (size_t i = 0; i < r->n_masters; i++) {
    const struct conn *c = r->nodes[r->masters[i]]->main;
    if (!c || c->state != CONN_READY) return 0;
  }
  return 1;
}

static void wait_on_timer(uv_timer_t *t) {
  struct pc_redis *r = t->data;
  r->wait_expired = 1;
}

int pc_redis_wait_ready(struct pc_redis *r, int64_t timeout_ms) {
  int up;
  if (!r || r->closing) return PC_ECANCELED;
  if (pc_redis_is_up(r)) return 0;
  r->wait_expired = 0;
  r->waiting = 1;          /* r outlives a destroy from a callback until we are out of uv_run */
  uv_update_time(r->loop); /* outside the loop's run: the timer starts from now, not from the last iteration */
  uv_timer_start(&r->wait_timer, wait_on_timer, (uint64_t)(timeout_ms > 0 ? timeout_ms : 0), 0);
  while (!r->wait_expired && !r->closing && !pc_redis_is_up(r)) uv_run(r->loop, UV_RUN_ONCE);
  r->waiting = 0;
  if (r->closing) {
    if (r->handles == 0) client_free(r);
    return PC_ECANCELED;
  }
  uv_timer_stop(&r->wait_timer);
  up = pc_redis_is_up(r);
  return up ? 0 : PC_ETIMEDOUT;
}

const char *pc_redis_last_error(const struct pc_redis *r) { return r ? r->last_error : ""; }

int pc_redis_subscribe(struct pc_redis *r, const char *channel, void (*on_message)(void *ud, const char *p, size_t n),
                       void (*on_up)(void *ud), void *ud) {
  struct sub *s, **tail;
  struct conn *c;
  if (!r || !channel || !*channel) return PC_EINVAL;
  if (r->closing) return PC_ECANCELED;
  s = calloc(1, sizeof *s);
  if (!s || !(s->channel = strdup(channel))) {
    free(s);
    return PC_ENOMEM;
  }
  s->r = r;
  s->len = strlen(channel);
  s->on_message = on_message;
  s->on_up = on_up;
  s->ud = ud;
  for (tail = &r->subs; *tail;) tail = &(*tail)->next;
  *tail = s; /* subscribed in order after every reconnect */
  c = r->sub_conn;
  if (c && c->state == CONN_READY) {
    sub_send(c, s);
  } else if (!c) {
    c = conn_new(r, sub_node(r, NULL), CONN_SUB);
    if (!c) {
      *tail = NULL;
      free(s->channel);
      free(s);
      return PC_ENOMEM;
    }
    c->want = 1;
    r->sub_conn = c;
    conn_connect(c);
  }
  return 0;
}

void pc_redis_get_counters(const struct pc_redis *r, struct pc_redis_counters *out) {
  if (r && out) *out = r->counters;
}
