/*
 * refval_set.h: reference values in memory, and the matching the token verifier asks for
 * (struct iat_refvals). The daemon fills one from the registry, `psagw iat verify --refvals`
 * from a JSON file; both then match the same way.
 */
#ifndef PSAGW_REFVAL_SET_H
#define PSAGW_REFVAL_SET_H

#include <stddef.h>

#include "psagw/iat.h"
#include "registry.h"

struct refval_set {
    struct refval_entry *impl, *meas;
    size_t n_impl, n_meas;
};

struct refval_set *refval_set_new(void);
void refval_set_free(struct refval_set *s);
/* Adds one; the signature of the registry's and the JSON reader's callbacks (1: no memory). */
int refval_set_add(const struct refval *rv, void *set);
/* The verifier's view of the set (which must outlive its use). */
struct iat_refvals refval_set_matcher(const struct refval_set *s);

#endif
