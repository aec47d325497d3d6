/*
 * pacing.c: the uplink's rate limiter and reconnect backoff (pacing.h).
 */
#include <stdlib.h>

#include "pacing.h"

static void expire(struct pacing_rate *r, uint64_t t)
{
    while (r->n > 0) {
        struct pacing_event *e = &r->ring[r->head];
        if (t - e->at_us < PACING_WINDOW_US)
            break;
        r->bytes -= e->bytes;
        r->head = (r->head + 1) % r->cap;
        r->n--;
    }
}

uint64_t pacing_wait(struct pacing_rate *r, uint32_t max_publishes, uint64_t max_bytes,
                     size_t bytes, uint64_t t)
{
    if (!max_publishes && !max_bytes)
        return 0;
    expire(r, t);
    uint64_t wait = 0;
    if (max_publishes && r->n >= max_publishes) {
        /* the oldest of the last `max_publishes` publishes must leave the window */
        struct pacing_event *e = &r->ring[(r->head + r->n - max_publishes) % r->cap];
        wait = e->at_us + PACING_WINDOW_US - t;
    }
    if (max_bytes && r->n > 0 && r->bytes + bytes > max_bytes) {
        /* wait until enough old bytes leave (a message over the limit goes alone) */
        uint64_t over = r->bytes + bytes - max_bytes;
        uint64_t freed = 0;
        for (size_t i = 0; i < r->n; i++) {
            struct pacing_event *e = &r->ring[(r->head + i) % r->cap];
            freed += e->bytes;
            if (freed >= over || i + 1 == r->n) {
                uint64_t w = e->at_us + PACING_WINDOW_US - t;
                if (w > wait)
                    wait = w;
                break;
            }
        }
    }
    return wait;
}

size_t pacing_in_window(struct pacing_rate *r, uint64_t t, uint64_t *bytes)
{
    expire(r, t);
    if (bytes)
        *bytes = r->bytes;
    return r->n;
}

int pacing_record(struct pacing_rate *r, size_t bytes, uint64_t t)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        struct pacing_event *n = malloc(cap * sizeof(*n));
        if (!n)
            return -1;
        for (size_t i = 0; i < r->n; i++)
            n[i] = r->ring[(r->head + i) % r->cap];
        free(r->ring);
        r->ring = n;
        r->cap = cap;
        r->head = 0;
    }
    r->ring[(r->head + r->n) % r->cap] =
        (struct pacing_event){t, (uint32_t)(bytes > UINT32_MAX ? UINT32_MAX : bytes)};
    r->n++;
    r->bytes += bytes;
    return 0;
}

void pacing_rate_free(struct pacing_rate *r)
{
    free(r->ring);
    *r = (struct pacing_rate){0};
}

uint64_t pacing_backoff_ms(uint32_t *backoff_s, uint32_t min_s, uint32_t max_s, unsigned *rng)
{
    /* min, 2min, 4min ... max, each drawn from [d/2, d] */
    uint32_t d = *backoff_s ? *backoff_s * 2 : min_s;
    if (d > max_s)
        d = max_s;
    *backoff_s = d;
    return (uint64_t)d * 500u + (uint64_t)(rand_r(rng) % (d * 500u + 1));
}
