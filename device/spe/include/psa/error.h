/* psa/error.h: PSA status codes, as the PSA Storage API expects them (they are Mbed TLS's). */
#ifndef PSAGW_PSA_ERROR_H
#define PSAGW_PSA_ERROR_H
#include <psa/crypto_types.h>
#include <psa/crypto_values.h>
#endif
