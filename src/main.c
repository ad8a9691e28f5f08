/* main.c — subcommand dispatch only. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "serve.h"

/* The offline subcommands; each gets argv starting at its own name. */
static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
} OFFLINE[] = {
    {"stats", pc_cli_stats}, {"export", pc_cli_export},   {"import", pc_cli_import},
    {"purge", pc_cli_purge}, {"inspect", pc_cli_inspect}, {"verify", pc_cli_verify},
};

static int cmd_serve(int argc, char **argv) {
  struct pc_config cfg;
  char err[512];
  int rc = pc_config_parse(&cfg, argc, argv, err, sizeof err);
  if (rc == 1) {
    pc_config_usage(stdout);
    pc_config_free(&cfg);
    return 0;
  }
  if (rc) {
    fprintf(stderr, "promptcache: %s\n", err);
    pc_config_free(&cfg);
    return 2;
  }
  rc = pc_serve(&cfg);
  pc_config_free(&cfg);
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
    printf("promptcache %s\n", PC_VERSION);
    return 0;
  }
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
    pc_config_usage(stdout);
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[1], "serve")) return cmd_serve(argc - 2, argv + 2);
  for (size_t i = 0; argc >= 2 && i < sizeof OFFLINE / sizeof OFFLINE[0]; i++)
    if (!strcmp(argv[1], OFFLINE[i].name)) return OFFLINE[i].run(argc - 1, argv + 1);
  if (argc >= 2 && argv[1][0] != '-') {
    fprintf(stderr, "promptcache: unknown subcommand '%s' (see --help)\n", argv[1]);
    return 2;
  }
  return cmd_serve(argc - 1, argv + 1);
}
