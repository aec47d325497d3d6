/*
 * mbedtls_spe_config.h: Mbed TLS 3.6 for the emulated device's secure side (SPE).
 *
 * Only the PSA crypto core, restricted to what TF-M Profile Small offers: AES-128-CCM
 * (single-part AEAD), SHA-256, HMAC, the TLS 1.2 PRF and PSK-to-master-secret derivations,
 * random numbers. Persistent keys go through psa_its_* (the SPE's internal trusted storage
 * service, device/spe/its.c), not Mbed TLS's file backend. No TLS, no X.509, no asymmetric
 * crypto: none of it exists on a Profile Small device.
 */
#ifndef PSAGW_MBEDTLS_SPE_CONFIG_H
#define PSAGW_MBEDTLS_SPE_CONFIG_H

/* platform */
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C

/* primitives */
#define MBEDTLS_AES_C
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_CCM_C
#define MBEDTLS_CIPHER_C
#define MBEDTLS_MD_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA224_C /* the SHA-256 module also provides SHA-224 */

/* PSA crypto core with persistent keys in our ITS */
#define MBEDTLS_PSA_CRYPTO_C
#define MBEDTLS_PSA_CRYPTO_STORAGE_C
#define MBEDTLS_PSA_CRYPTO_CONFIG
#define MBEDTLS_PSA_CRYPTO_CONFIG_FILE "psa_spe_crypto_config.h"
#define MBEDTLS_PSA_KEY_SLOT_COUNT 16
/* key ids are scoped to their owner (the NSPE is client -1, secure services have their own
 * ids), as on TF-M: a client cannot name another owner's key */
#define MBEDTLS_PSA_CRYPTO_KEY_ID_ENCODES_OWNER

#endif
