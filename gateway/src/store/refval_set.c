/* refval_set.c: see refval_set.h. */
#include "refval_set.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct refval_entry {
    uint8_t value[64];
    size_t value_len;
    uint8_t signer[64];
    size_t signer_len;
};

struct refval_set *refval_set_new(void)
{
    return calloc(1, sizeof(struct refval_set));
}

void refval_set_free(struct refval_set *s)
{
    if (!s)
        return;
    free(s->impl);
    free(s->meas);
    free(s);
}

int refval_set_add(const struct refval *rv, void *set)
{
    struct refval_set *s = set;
    struct refval_entry **arr = rv->kind == REFVAL_IMPLEMENTATION ? &s->impl : &s->meas;
    size_t *n = rv->kind == REFVAL_IMPLEMENTATION ? &s->n_impl : &s->n_meas;
    struct refval_entry *grown = realloc(*arr, (*n + 1) * sizeof(**arr));
    if (!grown)
        return 1;
    *arr = grown;
    struct refval_entry *e = &grown[(*n)++];
    memcpy(e->value, rv->value, rv->value_len);
    e->value_len = rv->value_len;
    memcpy(e->signer, rv->signer_id, rv->signer_len);
    e->signer_len = rv->signer_len;
    return 0;
}

static int implementation_known(void *ctx, const uint8_t *id, size_t len)
{
    const struct refval_set *s = ctx;
    for (size_t i = 0; i < s->n_impl; i++)
        if (s->impl[i].value_len == len && memcmp(s->impl[i].value, id, len) == 0)
            return 1;
    return 0;
}

/* 1: known (with a matching signer where one is registered), -1: value known but signed by
 * another signer, 0: unknown. */
static int measurement_known(void *ctx, const struct iat_sw_component *sw)
{
    const struct refval_set *s = ctx;
    bool value_seen = false;
    for (size_t i = 0; i < s->n_meas; i++) {
        const struct refval_entry *e = &s->meas[i];
        if (e->value_len != sw->value.len || memcmp(e->value, sw->value.p, sw->value.len) != 0)
            continue;
        value_seen = true;
        if (e->signer_len == 0 ||
            (e->signer_len == sw->signer_id.len &&
             memcmp(e->signer, sw->signer_id.p, e->signer_len) == 0))
            return 1;
    }
    return value_seen ? -1 : 0;
}

struct iat_refvals refval_set_matcher(const struct refval_set *s)
{
    return (struct iat_refvals){implementation_known, measurement_known, (void *)s};
}
