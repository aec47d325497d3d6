/*
 * gateway.h: the daemon (`psagw serve`): builds every layer in order, runs the workers, handles
 * signals, reloads and the once-a-second work, and tears everything down in reverse.
 */
#ifndef PSAGW_GATEWAY_H
#define PSAGW_GATEWAY_H

#include <stddef.h>

#include "config.h"
#include "context.h"

/* Builds the gateway from cfg (copied). On failure returns -1 with the reason in err; the
 * half-built gateway must still be given to gateway_free. */
int gateway_init(struct gateway *gw, const struct config *cfg, char *err, size_t errlen);
/* Runs the workers until SIGTERM/SIGINT; returns 0. */
int gateway_run(struct gateway *gw);
/* Frees what gateway_init built, whatever point it reached. */
void gateway_free(struct gateway *gw);

#endif
