/* authd entry point: dispatches to a subcommand (config-ops §4). */
#include "cli/cli.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

void cli_usage(FILE *f)
{
    fputs("usage: authd <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve [--no-worker]   serve the HTTP API (and run background jobs)\n"
          "  migrate               apply pending database migrations\n"
          "  rotate-signing-key [--overlap-seconds N]  rotate the JWT signing key\n"
          "  create-admin --email ADDR [--password-stdin]  create or promote an admin\n"
          "  version               print the version\n"
          "  help [config]         this text, or every configuration variable\n"
          "\n"
          "Configuration comes from the environment and ./.env; see `authd help config`.\n",
          f);
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "authd: libsodium failed to initialise\n");
        return 1;
    }
    const char *cmd = argc > 1 ? argv[1] : "help";
    if (strcmp(cmd, "serve") == 0)
        return cli_serve(argc, argv);
    if (strcmp(cmd, "migrate") == 0)
        return cli_migrate(argc, argv);
    if (strcmp(cmd, "create-admin") == 0)
        return cli_create_admin(argc, argv);
    if (strcmp(cmd, "rotate-signing-key") == 0)
        return cli_rotate_signing_key(argc, argv);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("authd %s\n", AUTHD_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc > 2 && strcmp(argv[2], "config") == 0) {
            config_print_help(stdout);
            return 0;
        }
        if (argc > 2) {
            fprintf(stderr, "authd help: unknown topic %s\n", argv[2]);
            return 2;
        }
        cli_usage(stdout);
        return argc > 1 ? 0 : 2;
    }
    fprintf(stderr, "authd: unknown command '%s'\n", cmd);
    cli_usage(stderr);
    return 2;
}
