/*
 * iat_crypto_psa.c: the token library's crypto backend inside the SPE, on PSA Crypto. The
 * IAK is used by key id (struct iat_key.id, owned by the attestation service) and never
 * leaves the key store; the MAC input is gathered in one buffer (a token is at most 4 KiB).
 */
#include <string.h>

#include "psagw/iat_crypto.h"
#include "spe.h"

int iat_crypto_hmac(int alg, const struct iat_key *key, const struct iat_iov *iov, size_t n,
                    uint8_t out[IAT_MAX_MAC_SIZE], size_t *out_len)
{
    static uint8_t buf[IAT_MAX_TOKEN_SIZE + 64];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (iov[i].len > sizeof(buf) - len)
            return -1;
        if (iov[i].len)
            memcpy(buf + len, iov[i].p, iov[i].len);
        len += iov[i].len;
    }
    psa_algorithm_t hash = alg == IAT_ALG_HMAC256   ? PSA_ALG_SHA_256
                           : alg == IAT_ALG_HMAC384 ? PSA_ALG_SHA_384
                           : alg == IAT_ALG_HMAC512 ? PSA_ALG_SHA_512
                                                    : 0;
    if (!hash || !key || key->raw)
        return -1; /* inside the SPE keys are used by id only */
    psa_status_t st = psa_mac_compute(mbedtls_svc_key_id_make(SPE_OWNER_ATTEST, key->id),
                                      PSA_ALG_HMAC(hash), buf, len, out, IAT_MAX_MAC_SIZE,
                                      out_len);
    return st == PSA_SUCCESS ? 0 : -1;
}

int iat_crypto_sha256(const uint8_t *in, size_t len, uint8_t out[32])
{
    size_t n = 0;
    return psa_hash_compute(PSA_ALG_SHA_256, in, len, out, 32, &n) == PSA_SUCCESS && n == 32
               ? 0
               : -1;
}
