/* main.c — subcommand dispatch only. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "server.h"

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
  rc = pc_server_run(&cfg);
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
  if (argc >= 2 && argv[1][0] != '-') {
    fprintf(stderr, "promptcache: unknown subcommand '%s' (see --help)\n", argv[1]);
    return 2;
  }
  return cmd_serve(argc - 1, argv + 1);
}
