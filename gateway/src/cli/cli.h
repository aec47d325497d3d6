/* cli.h: the `psagw` subcommands other than serve. */
#ifndef PSAGW_CLI_H
#define PSAGW_CLI_H

#include <stdbool.h>

#include "psagw/mqtt.h"

struct registry;

/* `psagw device ...`: argv[0] is "device". Returns the process exit code. */
int cmd_device(int argc, char **argv);
/* `psagw refval ...`: attestation reference values in the registry. */
int cmd_refval(int argc, char **argv);
/* `psagw iat verify|show|create ...`: token tools. */
int cmd_iat(int argc, char **argv);
/* `psagw spool stats`: the durable spool's depth, bytes, oldest age and drops. */
int cmd_spool(int argc, char **argv);
/* `psagw cloud check`: the cloud config checked offline. */
int cmd_cloud(int argc, char **argv);
/* `psagw status`: the running daemon's summary, over its HTTP endpoint; exit 3 if not ready. */
int cmd_status(int argc, char **argv);

/* Opens the registry named by --registry, else by the config file (--config or the default
 * one), else the default path; prints why it cannot, prefixed with `who`. With `create` it is
 * made if missing, except where a configuration names it and --create (create_asked) was not
 * given: a daemon may be running with that configuration. */
struct registry *cli_open_registry(const char *registry, const char *config, bool create,
                                   bool create_asked, const char *who);

#endif
