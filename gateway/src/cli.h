/* cli.h: the `psagw` subcommands other than serve. */
#ifndef PSAGW_CLI_H
#define PSAGW_CLI_H

#include "psagw/mqtt.h"

/* `psagw device ...`: argv[0] is "device". Returns the process exit code. */
int cmd_device(int argc, char **argv);

#endif
