/* random.h: unpredictable bytes for the hot paths (TLS server randoms, attestation nonces). */
#ifndef PSAGW_RANDOM_H
#define PSAGW_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* Fills out with len bytes of OpenSSL's DRBG output, drawn 1 KiB at a time per thread (random.c);
 * 0, or -1 if the DRBG fails. */
int random_draw(uint8_t *out, size_t len);

#endif
