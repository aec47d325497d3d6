/*
 * clock.h: the one place the gateway reads the time. Monotonic time measures durations and
 * deadlines (it never jumps); wall time is only for what leaves the process (logs, records in
 * the spool and the registry, JSON for the cloud).
 */
#ifndef PSAGW_CLOCK_H
#define PSAGW_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds / microseconds since an arbitrary point. */
uint64_t clock_mono_ms(void);
uint64_t clock_mono_us(void);
/* Wall-clock milliseconds since the Unix epoch. */
uint64_t clock_wall_ms(void);
/* The absolute CLOCK_REALTIME instant `ms` from now, for pthread_cond_timedwait. */
struct timespec clock_wall_deadline(uint64_t ms);

#endif
