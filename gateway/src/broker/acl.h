/*
 * acl.h: what a principal may publish and subscribe to: its role's patterns (with %c replaced
 * by its id), its registry entry's own patterns, or the anonymous ACL (docs/configuration.md).
 */
#ifndef PSAGW_ACL_H
#define PSAGW_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "conn.h"
#include "registry.h"

bool acl_may_publish(const struct principal *who, const char *topic, size_t len);
bool acl_may_subscribe(const struct principal *who, const char *filter, size_t len);
/* Builds the principal's pattern lists from the role and registry entry (d NULL: anonymous). */
int acl_principal_init(struct principal *who, const struct device *d, const struct config *cfg);
void acl_principal_clear(struct principal *who);
/* Is every topic matched by `filter` also matched by `pattern`? */
bool acl_filter_within(const char *pattern, const char *filter, size_t flen);

#endif
