/*
 * handshake_limit.c: handshakes in progress per source address (handshake_limit.h).
 */
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

#include "handshake_limit.h"

#define SLOTS 65536

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint16_t counts[SLOTS];

static uint32_t hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

uint32_t handshake_limit_slot(const struct sockaddr *sa, socklen_t len)
{
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return hash((const uint8_t *)&in->sin_addr, sizeof(in->sin_addr)) % SLOTS;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return hash((const uint8_t *)&in6->sin6_addr, sizeof(in6->sin6_addr)) % SLOTS;
    }
    return 0;
}

bool handshake_limit_enter(uint32_t slot, uint32_t max)
{
    pthread_mutex_lock(&lock);
    bool ok = counts[slot] < max && counts[slot] < UINT16_MAX;
    if (ok)
        counts[slot]++;
    pthread_mutex_unlock(&lock);
    return ok;
}

void handshake_limit_leave(uint32_t slot)
{
    pthread_mutex_lock(&lock);
    if (counts[slot] > 0)
        counts[slot]--;
    pthread_mutex_unlock(&lock);
}
