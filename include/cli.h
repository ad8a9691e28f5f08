/* cli.h — the offline subcommands (SPEC §2): stats, export, import, purge,
 * inspect, verify. Each works on a database directory (--db PATH, else
 * $PROMPTCACHE_DB, else ./promptcache.db), also while a server runs on it.
 *
 * Each takes the subcommand's own argv (argv[0] is the subcommand name, the
 * options follow) and returns the process exit status:
 *   0  success
 *   1  the operation failed (no such entry, bad import file, bad entries found)
 *   2  bad usage: unknown option, missing or invalid value, no database at PATH
 *   3  export refused: an entry holds something shaped like a secret */
#ifndef PC_CLI_H
#define PC_CLI_H

int pc_cli_stats(int argc, char **argv);
int pc_cli_export(int argc, char **argv);
int pc_cli_import(int argc, char **argv);
int pc_cli_purge(int argc, char **argv);
int pc_cli_inspect(int argc, char **argv);
int pc_cli_verify(int argc, char **argv);

#endif
