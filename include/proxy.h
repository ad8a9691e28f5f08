/* proxy.h — the request flow, as the server's application: for each
 * complete request, route → controls → key → cache lookup → hit, or a
 * flight to upstream; admin paths (/_promptcache/...) never reach upstream.
 * The process-wide resources it serves from are opened by serve.c. */
#ifndef PC_PROXY_H
#define PC_PROXY_H

#include "cache.h"
#include "config.h"
#include "server.h"

struct pc_writer;

struct pc_proxy_ctx {
  const struct pc_config *cfg;
  pc_cache *cache;
  struct pc_writer *writer;
  size_t memo_budget; /* bytes of raw requests each loop may remember (rawkey.h) */
};

/* The application table for pc_server_run; `ctx` must outlive the run. */
void pc_proxy_app(const struct pc_proxy_ctx *ctx, struct pc_app *out);

#endif
