/* cli_fleet.h — the fleet side of the offline subcommands: `stats --redis`
 * (the fleet's totals, per node and overall) and `purge --redis` (delete in
 * Redis and log the purge, which every running node applies to its local
 * tier). Each connects, does its one job within a few seconds, and returns
 * the process exit status (cli.h), having printed its result or a one-line
 * error that never shows a password. */
#ifndef PC_CLI_FLEET_H
#define PC_CLI_FLEET_H

#include <stddef.h>

struct pc_purge_sel;

struct pc_cli_redis {
  const char *const *urls; /* --redis (several: seeds of one cluster) */
  size_t n_urls;
  const char *prefix; /* --redis-prefix, NULL: "pc:" */
};

int pc_cli_fleet_stats(const struct pc_cli_redis *r, int json);
int pc_cli_fleet_purge(const struct pc_cli_redis *r, const struct pc_purge_sel *sel);

#endif
