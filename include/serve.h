/* serve.h — the `serve` subcommand: opens what the serving process shares
 * (the LMDB cache, its writer thread, stats, recordings to replay), runs
 * the server with the request flow as its application, and closes it all. */
#ifndef PC_SERVE_H
#define PC_SERVE_H

#include "config.h"

/* Run until SIGINT/SIGTERM; returns the process exit status: 0, 2 for bad
 * configuration, 1 otherwise (and for --fail-on-miss after a replay miss). */
int pc_serve(const struct pc_config *cfg);

#endif
