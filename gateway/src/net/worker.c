/*
 * worker.c: which worker runs on this thread, and waking one from another (worker.h).
 */
#include <assert.h>
#include <unistd.h>

#include "broker_lock.h"
#include "worker.h"

static _Thread_local struct worker *current_worker;

struct worker *worker_current(void)
{
    return current_worker;
}

void worker_set_current(struct worker *w)
{
    current_worker = w;
}

void worker_wake(struct worker *w)
{
    BROKER_LOCK_HELD();
    if (w->wake_sent)
        return;
    w->wake_sent = true;
    uint64_t one = 1;
    ssize_t n = write(w->wake_io.fd, &one, sizeof(one));
    (void)n; /* an eventfd only fails to count past 2^64 - 2 */
}
