/*
 * iat_crypto.h: what the token library needs from a crypto backend.
 *
 * The gateway and the tools link iat_crypto_openssl.c; the device's secure side links a PSA
 * Crypto backend that resolves key ids. Both return 0 on success, -1 on any error.
 */
#ifndef PSAGW_IAT_CRYPTO_H
#define PSAGW_IAT_CRYPTO_H

#include "psagw/iat.h"

struct iat_iov {
    const uint8_t *p;
    size_t len;
};

/* HMAC (COSE alg 5, 6 or 7) of the concatenated pieces; writes the full tag to out. The
 * OpenSSL backend also takes key NULL: the raw key of this thread's previous call for the same
 * alg, without setting it up again (the gateway's TLS key schedules make several HMACs under
 * one secret); the PSA backend refuses it. */
int iat_crypto_hmac(int alg, const struct iat_key *key, const struct iat_iov *iov, size_t n,
                    uint8_t out[IAT_MAX_MAC_SIZE], size_t *out_len);
/* SHA-256 of one buffer. */
int iat_crypto_sha256(const uint8_t *in, size_t len, uint8_t out[32]);

#endif
