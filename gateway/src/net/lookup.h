/*
 * lookup.h: a device's registry entry, read through the registry connection the workers share
 * (under its lock): what the TLS callbacks, the registry re-check and re-attestation use.
 */
#ifndef PSAGW_LOOKUP_H
#define PSAGW_LOOKUP_H

#include "context.h"
#include "registry.h"

/* Fills *d for an active (not revoked) device and returns 0; otherwise -1 and *why is one of
 * "unknown_identity", "revoked", "registry_unavailable" (an error logged). */
int lookup_device(struct gateway *gw, const char *id, struct device *d, const char **why);

#endif
