/*
 * broker_lock.h: the broker lock, the one mutex behind the state the workers share: sessions,
 * the subscription and retained trees, each connection's `out` buffer and remote-request
 * fields, and the attestation verifier's reference values.
 *
 * It is not recursive: code that runs with the lock held never takes it again. A connection
 * closed while the lock is held (inside a packet handler, or by routing) is only marked; its
 * teardown runs after the lock is released (net/conn.c). In debug builds (the ASan and TSan
 * test runs) every function whose contract says "broker lock held" asserts it.
 */
#ifndef PSAGW_BROKER_LOCK_H
#define PSAGW_BROKER_LOCK_H

#include <assert.h>
#include <stdbool.h>

void broker_lock(void);
void broker_unlock(void);
/* Whether the calling thread holds the broker lock. */
bool broker_lock_held(void);

#define BROKER_LOCK_HELD() assert(broker_lock_held())
#define BROKER_LOCK_NOT_HELD() assert(!broker_lock_held())

#endif
