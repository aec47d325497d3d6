/*
 * histogram.h: a latency histogram with fixed buckets, counted with atomics so any thread may
 * add to it without a lock; exported as a Prometheus histogram (http/http_metrics.c).
 */
#ifndef PSAGW_HISTOGRAM_H
#define PSAGW_HISTOGRAM_H

#include <stdint.h>

/* Bucket upper bounds, microseconds: 100 us to 10 s, about x2.5 apart (the last bucket, +Inf,
 * takes the rest). */
#define HISTOGRAM_BUCKETS 16
extern const uint64_t histogram_bounds_us[HISTOGRAM_BUCKETS];

struct histogram {
    _Atomic uint64_t counts[HISTOGRAM_BUCKETS + 1]; /* per bucket, not cumulative */
    _Atomic uint64_t sum_us;
};

void histogram_observe(struct histogram *h, uint64_t us);

#endif
