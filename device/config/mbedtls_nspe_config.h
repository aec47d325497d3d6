/*
 * mbedtls_nspe_config.h: Mbed TLS 3.6 for the emulated device's non-secure side (NSPE).
 *
 * A pure PSA crypto *client* (MBEDTLS_PSA_CRYPTO_CLIENT + MBEDTLS_USE_PSA_CRYPTO, no
 * MBEDTLS_PSA_CRYPTO_C): every psa_* call the TLS stack makes goes to the SPE over the IPC
 * channel (device/nspe/psa_client.c), as on TF-M, so the PSK is used by key id and never enters
 * this process. TLS 1.2 client with the PSK suites of docs/design/wire.md that Profile Small can run
 * (AES-128-CCM and CCM_8), records of 1 KiB (and max_fragment_length to ask the gateway for it).
 */
#ifndef PSAGW_MBEDTLS_NSPE_CONFIG_H
#define PSAGW_MBEDTLS_NSPE_CONFIG_H

#define MBEDTLS_PSA_CRYPTO_CLIENT
#define MBEDTLS_USE_PSA_CRYPTO
#define MBEDTLS_PSA_CRYPTO_CONFIG
#define MBEDTLS_PSA_CRYPTO_CONFIG_FILE "psa_nspe_crypto_config.h"

#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_KEY_EXCHANGE_PSK_ENABLED
#define MBEDTLS_SSL_MAX_FRAGMENT_LENGTH
#define MBEDTLS_SSL_IN_CONTENT_LEN 1024
#define MBEDTLS_SSL_OUT_CONTENT_LEN 1024
#define MBEDTLS_SSL_CIPHERSUITES \
    MBEDTLS_TLS_PSK_WITH_AES_128_CCM, MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8

#define MBEDTLS_MD_C /* message digests through PSA (no legacy hash code is compiled) */
#define MBEDTLS_PLATFORM_C
/* calloc/free through mbedtls_platform_set_calloc_free: the emulator counts the heap a TLS
 * session needs (psadev connect --stats), the board points it at its RTOS heap */
#define MBEDTLS_PLATFORM_MEMORY

#endif
