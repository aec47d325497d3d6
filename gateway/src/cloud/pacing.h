/*
 * pacing.h: how fast the uplink may talk to the cloud. A rate limiter over sliding one-second
 * windows (AWS IoT's per-connection limits: publishes per second and bytes per second, with a
 * small margin for the cloud's clock), and the jittered exponential backoff between connection
 * attempts. Pure computations on the caller's state and clock, so they are tested alone.
 */
#ifndef PSAGW_PACING_H
#define PSAGW_PACING_H

#include <stddef.h>
#include <stdint.h>

#define PACING_WINDOW_US 1020000 /* one second plus a margin for the cloud's clock */

struct pacing_event {
    uint64_t at_us;
    uint32_t bytes;
};

/* The publishes of the last window (a ring). Zero-initialised is empty. */
struct pacing_rate {
    struct pacing_event *ring;
    size_t cap, head, n;
    uint64_t bytes;
};

/* 0 if a publish of `bytes` may go at time t (microseconds), else microseconds until it may.
 * A limit of 0 is no limit; a message larger than max_bytes goes alone in its window. */
uint64_t pacing_wait(struct pacing_rate *r, uint32_t max_publishes, uint64_t max_bytes,
                     size_t bytes, uint64_t t);
/* Records a publish of `bytes` at time t; -1 if out of memory (the publish is not counted). */
int pacing_record(struct pacing_rate *r, size_t bytes, uint64_t t);
void pacing_rate_free(struct pacing_rate *r);
/* The publishes still in the window at time t, and their bytes in *bytes (may be NULL). */
size_t pacing_in_window(struct pacing_rate *r, uint64_t t, uint64_t *bytes);

/* The next reconnect delay in milliseconds: *backoff_s doubles from min_s up to max_s (0 is a
 * fresh start), and the delay is drawn from [d/2, d] seconds with *rng (rand_r). */
uint64_t pacing_backoff_ms(uint32_t *backoff_s, uint32_t min_s, uint32_t max_s, unsigned *rng);

#endif
