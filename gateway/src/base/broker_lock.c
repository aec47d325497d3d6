/*
 * broker_lock.c: the broker lock (broker_lock.h): a plain mutex and a per-thread flag, so
 * "held" can be asserted without asking the mutex.
 */
#include <pthread.h>

#include "broker_lock.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local bool held;

void broker_lock(void)
{
    assert(!held && "the broker lock is not recursive");
    pthread_mutex_lock(&lock);
    held = true;
}

void broker_unlock(void)
{
    assert(held);
    held = false;
    pthread_mutex_unlock(&lock);
}

bool broker_lock_held(void)
{
    return held;
}
