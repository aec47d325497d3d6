/*
 * tls.h: the TLS-PSK server side on OpenSSL 3 (docs/design/wire.md section 1): one context per
 * listener, the PSK callback that looks the identity up in the registry, session tickets bound
 * to the device and its PSK.
 */
#ifndef PSAGW_TLS_H
#define PSAGW_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "registry.h"
#include "tls12_psk.h"

/* What the layers above attach to a connection whose PSK identity was found (its ACL
 * principal, its attestation key). Returns 0, or -1 to refuse the identity. */
typedef int (*tls_admit_fn)(struct conn *c, const struct device *d);

/* The PSK's fingerprint bound into tickets and re-checked when the registry changes. */
void tls_psk_fingerprint(const uint8_t *psk, size_t len, uint8_t fp[PSK_FP_LEN]);
/* A listener's context; NULL with the reason in err. admit is called for each identity. */
SSL_CTX *tls_server_ctx(const struct config *cfg, const struct listener_config *l,
                        tls_admit_fn admit, char *err, size_t errlen);
/* The twin of a listener's context that TLS 1.3 handshakes move to (tls.c, hello_cb), or NULL;
 * an SSL's context is the one or the other. */
SSL_CTX *tls_twin_ctx(SSL_CTX *ctx);
/* The settings of psagw's own TLS 1.2 PSK handshake on a listener's context (tls12_psk.h), or
 * NULL where OpenSSL runs every handshake (handshake or record_layer = "openssl"). */
const struct tls12_psk_config *tls_own_handshake(SSL_CTX *ctx);
/* The PSK of a device identity[0..len) (any bytes) into psk[0..max): its length, with the
 * connection's principal admitted and the PSK's fingerprint kept; 0 when refused, with
 * c->psk_refusal saying why (logged and counted, except an invalid identity when !warn_invalid). */
size_t tls_psk_for_identity(struct conn *c, const uint8_t *identity, size_t len, bool warn_invalid,
                            uint8_t *psk, size_t max);
/* The SSL ex_data index under which a connection's struct conn is kept. */
int tls_conn_index(void);

#endif
