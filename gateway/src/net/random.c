/*
 * random.c: OpenSSL's DRBG output, drawn 1 KiB at a time per thread.
 *
 * A RAND_bytes call costs 3-5 us here whatever its size (locks, the provider's dispatch, the
 * DRBG's reseed checks), and a connect needed one for the ServerHello's random and, attested,
 * one for the nonce: as much as the rest of the handshake's user-space work bar the PRF. Each
 * thread now draws 1 KiB and hands each byte out once, wiping it from the pool as it goes, so a
 * call per 32 connects. The bytes are the same DRBG's output as before, only fetched earlier: a
 * server random and a nonce need to be unpredictable and never reused (RFC 5246 section 7.4.1.2,
 * docs/attestation.md), which both still are; whoever could read this pool from the process's
 * memory could read the DRBG's state as well. A forked child would inherit the pool and hand out
 * the parent's next bytes (OpenSSL's DRBG reseeds after a fork, this pool does not): the daemon
 * never forks, and anything that ever does must not draw from here in the child.
 */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

#include "random.h"

#define POOL_SIZE 1024

int random_draw(uint8_t *out, size_t len)
{
    static _Thread_local uint8_t pool[POOL_SIZE];
    static _Thread_local size_t left;
    if (len == 0)
        return 0;
    if (len > POOL_SIZE)
        return RAND_bytes(out, (int)len) == 1 ? 0 : -1;
    if (left < len) {
        if (RAND_bytes(pool, POOL_SIZE) != 1)
            return -1;
        left = POOL_SIZE;
    }
    uint8_t *p = pool + POOL_SIZE - left;
    memcpy(out, p, len);
    OPENSSL_cleanse(p, len);
    left -= len;
    return 0;
}
