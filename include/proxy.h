/* proxy.h — the request flow for one complete request:
 * route → canon → key → cache lookup → hit, or a flight to upstream.
 * Admin paths (/_promptcache/...) never reach upstream. */
#ifndef PC_PROXY_H
#define PC_PROXY_H

struct pc_conn;

void pc_proxy_handle(struct pc_conn *c);

#endif
