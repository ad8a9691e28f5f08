/* admin.h — the /_promptcache/ endpoints (SPEC §7): health, stats (JSON),
 * metrics (Prometheus), the HTML dashboard, and purge. Never forwarded. */
#ifndef PC_ADMIN_H
#define PC_ADMIN_H

struct pc_conn;
struct pc_config;

void pc_admin_handle(struct pc_conn *c);
/* Whether admin endpoints other than health are served at all (a token is
 * set, or every listener is on a loopback address). */
int pc_admin_open(const struct pc_config *cfg);

#endif
