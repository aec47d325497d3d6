/* histogram.c: fixed-bucket latency histograms (histogram.h). */
#include "histogram.h"

#include <stdatomic.h>

const uint64_t histogram_bounds_us[HISTOGRAM_BUCKETS] = {
    100,    250,     500,     1000,    2500,    5000,    10000,   25000,
    50000,  100000,  250000,  500000,  1000000, 2500000, 5000000, 10000000,
};

void histogram_observe(struct histogram *h, uint64_t us)
{
    unsigned i = 0;
    while (i < HISTOGRAM_BUCKETS && us > histogram_bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}
