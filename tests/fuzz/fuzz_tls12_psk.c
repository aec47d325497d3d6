/*
 * Fuzz target for psagw's own TLS 1.2 PSK handshake (tls12_psk.c): the bytes a client sends
 * before the record layer exists. Byte 0 picks the mode: even, the rest of the input is a
 * client's first bytes (tls12_psk_hello must take a ClientHello or decline, never misread one);
 * odd, a real ClientHello from an OpenSSL client is answered first and the rest is the client's
 * second flight, split into reads of byte 1's size (ClientKeyExchange parsing, record and message
 * reassembly, the identity callback, ChangeCipherSpec, a Finished that must not open).
 */
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls12_psk.h"

static uint8_t hello[2048];
static size_t hello_len;

static unsigned int client_psk(SSL *s, const char *hint, char *id, unsigned int id_max,
                               unsigned char *out, unsigned int max)
{
    (void)s;
    (void)hint;
    (void)id_max;
    (void)max;
    strcpy(id, "dev-1");
    memset(out, 0x5a, 16);
    return 16;
}

static size_t find_psk(void *arg, const uint8_t *id, size_t len, uint8_t *out, size_t max)
{
    (void)arg;
    if (len != 5 || memcmp(id, "dev-1", 5) != 0 || max < 16)
        return 0;
    memset(out, 0x5a, 16);
    return 16;
}

/* One ClientHello of an OpenSSL TLS 1.2 PSK client, kept for every input */
static void capture_hello(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, "PSK-AES128-CCM:PSK-AES128-GCM-SHA256");
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_psk_client_callback(ctx, client_psk);
    SSL *s = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rb, -1);
    SSL_set_bio(s, rb, wb);
    SSL_set_connect_state(s);
    SSL_do_handshake(s);
    int n = BIO_read(wb, hello, sizeof(hello));
    hello_len = n > 0 ? (size_t)n : 0;
    SSL_free(s);
    SSL_CTX_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!hello_len)
        capture_hello();
    if (size < 2)
        return 0;
    struct tls12_psk_config cfg = {.suites = {0xC0A4, 0xC0A8, 0x00A8, 0xC037},
                                   .n_suites = 4,
                                   .tls13 = true,
                                   .tickets = true,
                                   .max_plain = 16384};
    uint8_t out[TLS12_PSK_OUT_MAX];
    size_t out_len = 0;
    struct tls12_psk *hs = NULL;
    uint8_t *buf = malloc(size);
    if (!buf)
        return 0;
    if (!(data[0] & 1)) {
        memcpy(buf, data + 1, size - 1);
        if (tls12_psk_hello(&cfg, buf, size - 1, &hs, out, sizeof(out), &out_len) ==
                TLS12_PSK_MORE &&
            (out_len < 5 || out_len > sizeof(out)))
            abort();
        tls12_psk_free(hs);
        free(buf);
        return 0;
    }
    if (tls12_psk_hello(&cfg, hello, hello_len, &hs, out, sizeof(out), &out_len) != TLS12_PSK_MORE)
        abort();
    size_t step = data[1] ? data[1] : 1, n = size - 2;
    memcpy(buf, data + 2, n);
    int rc = TLS12_PSK_MORE;
    for (size_t off = 0; off < n && rc == TLS12_PSK_MORE;) {
        size_t k = n - off < step ? n - off : step, used = 0;
        rc = tls12_psk_input(hs, find_psk, NULL, buf + off, k, &used, out, sizeof(out), &out_len);
        if (used > k || out_len > sizeof(out))
            abort();
        if (rc == TLS12_PSK_MORE && used != k)
            abort();
        off += used ? used : k;
    }
    /* a Finished cannot be forged without the key */
    if (rc == TLS12_PSK_DONE)
        abort();
    tls12_psk_free(hs);
    free(buf);
    return 0;
}
