/*
 * tls_client.c: the NSPE's TLS 1.2 PSK client on Mbed TLS 3.6, built as a pure PSA client.
 *
 * The PSK is named by its key id (mbedtls_ssl_conf_psk_opaque): the PSK-to-master-secret
 * derivation runs in the SPE, and this process never holds the PSK (docs/design/wire.md section 1, the
 * Amazon FreeRTOS + TF-M Profile Small arrangement). Suites: PSK with AES-128-CCM and CCM_8,
 * which Profile Small's crypto can run; records of 1 KiB, and the max_fragment_length
 * extension asks the gateway to keep its records that small too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbedtls/platform.h"
#include "mbedtls/ssl.h"

#include "../platform/platform.h"
#include "nspe.h"

struct tls_conn {
    int fd;
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
};

static int rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    return psa_generate_random(out, len) == PSA_SUCCESS ? 0 : -1;
}

static int net_send(void *ctx, const unsigned char *buf, size_t len)
{
    int n = plat_tcp_send(*(int *)ctx, buf, len);
    return n == PLAT_WOULD_BLOCK ? MBEDTLS_ERR_SSL_WANT_WRITE
           : n < 0              ? MBEDTLS_ERR_SSL_INTERNAL_ERROR
                                : n;
}

static int net_recv(void *ctx, unsigned char *buf, size_t len)
{
    int n = plat_tcp_recv(*(int *)ctx, buf, len);
    return n == PLAT_WOULD_BLOCK ? MBEDTLS_ERR_SSL_WANT_READ
           : n < 0              ? MBEDTLS_ERR_SSL_INTERNAL_ERROR
                                : n;
}

static const int suites_all[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM,
                                  MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};
static const int suites_ccm[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM, 0};
static const int suites_ccm8[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};

struct tls_conn *tls_connect(const char *host, const char *port, const char *identity,
                             const char *suite, char *err, size_t errlen)
{
    struct tls_conn *t = mbedtls_calloc(1, sizeof(*t)); /* counted with the TLS heap */
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->fd = plat_tcp_connect(host, port);
    if (t->fd < 0) {
        snprintf(err, errlen, "cannot connect to %s:%s", host, port);
        mbedtls_free(t);
        return NULL;
    }
    mbedtls_ssl_init(&t->ssl);
    mbedtls_ssl_config_init(&t->conf);
    int rc = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT,
                                         MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc == 0) {
        mbedtls_ssl_conf_rng(&t->conf, rng, NULL);
        mbedtls_ssl_conf_max_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
        mbedtls_ssl_conf_min_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
        rc = mbedtls_ssl_conf_max_frag_len(&t->conf, MBEDTLS_SSL_MAX_FRAG_LEN_1024);
        mbedtls_ssl_conf_ciphersuites(&t->conf, !suite                      ? suites_all
                                                : strcmp(suite, "ccm") == 0 ? suites_ccm
                                                                            : suites_ccm8);
    }
    if (rc == 0)
        rc = mbedtls_ssl_conf_psk_opaque(&t->conf, mbedtls_svc_key_id_make(0, NSPE_PSK_KEY_ID),
                                         (const unsigned char *)identity, strlen(identity));
    if (rc == 0)
        rc = mbedtls_ssl_setup(&t->ssl, &t->conf);
    if (rc == 0) {
        mbedtls_ssl_set_bio(&t->ssl, &t->fd, net_send, net_recv, NULL);
        while ((rc = mbedtls_ssl_handshake(&t->ssl)) == MBEDTLS_ERR_SSL_WANT_READ ||
               rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            ;
    }
    if (rc != 0) {
        /* codes, not texts: MBEDTLS_ERROR_C costs flash a device does not have (see
         * mbedtls/ssl.h: -0x7780 fatal alert from the peer, e.g. an unknown PSK identity) */
        snprintf(err, errlen, "TLS-PSK handshake with %s:%s failed: Mbed TLS error -0x%04x",
                 host, port, (unsigned)-rc);
        tls_close(t);
        return NULL;
    }
    return t;
}

const char *tls_cipher(struct tls_conn *t)
{
    return mbedtls_ssl_get_ciphersuite(&t->ssl);
}

int tls_write_all(struct tls_conn *t, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        int n = mbedtls_ssl_write(&t->ssl, buf, len);
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int tls_read(struct tls_conn *t, uint8_t *buf, size_t cap, int timeout_ms)
{
    for (;;) {
        if (timeout_ms >= 0 && mbedtls_ssl_get_bytes_avail(&t->ssl) == 0) {
            int r = plat_tcp_wait(t->fd, timeout_ms);
            if (r == 0)
                return -2; /* a timeout, or a signal the caller may want to look at */
            if (r < 0)
                return -1;
        }
        int n = mbedtls_ssl_read(&t->ssl, buf, cap);
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == 0)
            return 0;
        return n < 0 ? -1 : n;
    }
}

void tls_close(struct tls_conn *t)
{
    if (!t)
        return;
    mbedtls_ssl_close_notify(&t->ssl);
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_config_free(&t->conf);
    plat_tcp_close(t->fd);
    mbedtls_free(t);
}
