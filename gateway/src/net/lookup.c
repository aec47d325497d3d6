/*
 * lookup.c: reading one device's entry from the shared registry connection (lookup.h).
 */
#include <stdio.h>

#include "log.h"
#include "lookup.h"

int lookup_device(struct gateway *gw, const char *id, struct device *d, const char **why)
{
    if (gw->registry_lost) { /* the daemon logged it (registry_missing / registry_unusable) */
        *why = "registry_unavailable";
        return -1;
    }
    pthread_mutex_lock(&gw->reg_lock);
    int rc = registry_get(gw->reg, id, d);
    char err[256] = "";
    if (rc != REG_OK && rc != REG_NOT_FOUND)
        snprintf(err, sizeof(err), "%s", registry_error(gw->reg));
    pthread_mutex_unlock(&gw->reg_lock);
    if (rc == REG_NOT_FOUND) {
        *why = "unknown_identity";
        return -1;
    }
    if (rc != REG_OK) {
        log_event(LOG_ERROR, "registry_error", "detail=\"%s\"", err);
        *why = "registry_unavailable";
        return -1;
    }
    if (d->revoked) {
        device_clear(d);
        *why = "revoked";
        return -1;
    }
    return 0;
}
