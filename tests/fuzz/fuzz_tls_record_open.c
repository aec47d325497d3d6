/*
 * Fuzz target for the gateway's record layer input (tls_record.c, tls_rec_open): bytes from
 * the network after the handshake. Real PSK handshakes between an OpenSSL client and server run
 * once, one TLS 1.2 (PSK-AES128-CCM) and one TLS 1.3 (TLS_AES_128_GCM_SHA256), each taken over
 * as the gateway does. Byte 0 of an input picks the connection (bit 1) and the mode (bit 0):
 * raw bytes as they are, or the input sent first as valid records by the client (so the tag
 * passes and what is inside gets parsed: content types, TLS 1.3 padding) followed by the rest
 * raw; byte 1 splits the stream into reads of that size, as a slow device would deliver it.
 * Each connection's record layer serves every input: the client's records all open, so the
 * sequence numbers stay in step with the client's, and raw bytes never pass a tag.
 */
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls_record.h"

struct conn {
    SSL *srv, *cli;
    struct tls_rec_handshake hs;
    struct tls_rec *rec;
};
static struct conn conns[2];
static bool ready;

static unsigned int server_psk(SSL *s, const char *id, unsigned char *out, unsigned int max)
{
    (void)s;
    (void)max;
    if (!id || strcmp(id, "dev-1") != 0)
        return 0;
    memset(out, 0x5a, 16);
    return 16;
}

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

static void keylog_cb(const SSL *ssl, const char *line)
{
    tls_rec_handshake_keylog(SSL_get_app_data(ssl), line);
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version;
    (void)buf;
    (void)len;
    (void)arg;
    tls_rec_handshake_msg(SSL_get_app_data(ssl), write_p, content_type);
}

static SSL *new_ssl(SSL_CTX *ctx)
{
    SSL *s = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rb, -1);
    SSL_set_bio(s, rb, wb);
    return s;
}

static void move(SSL *from, SSL *to, struct tls_rec_wire *w)
{
    uint8_t buf[16384];
    int n;
    while ((n = BIO_read(SSL_get_wbio(from), buf, sizeof(buf))) > 0) {
        tls_rec_wire_feed(w, buf, (size_t)n);
        BIO_write(SSL_get_rbio(to), buf, n);
    }
}

static void setup(struct conn *c, int version)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(sctx, version);
    SSL_CTX_set_max_proto_version(sctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);
    SSL_CTX_set_cipher_list(sctx, "PSK-AES128-CCM");
    SSL_CTX_set_cipher_list(cctx, "PSK-AES128-CCM");
    SSL_CTX_set_ciphersuites(sctx, "TLS_AES_128_GCM_SHA256");
    SSL_CTX_set_ciphersuites(cctx, "TLS_AES_128_GCM_SHA256");
    SSL_CTX_set_psk_server_callback(sctx, server_psk);
    SSL_CTX_set_psk_client_callback(cctx, client_psk);
    SSL_CTX_set_keylog_callback(sctx, keylog_cb);
    SSL_CTX_set_msg_callback(sctx, msg_cb);
    c->srv = new_ssl(sctx);
    c->cli = new_ssl(cctx);
    SSL_set_app_data(c->srv, &c->hs);
    SSL_set_read_ahead(c->srv, 0);
    SSL_set_accept_state(c->srv);
    SSL_set_connect_state(c->cli);
    for (int i = 0; i < 10; i++) {
        SSL_do_handshake(c->cli);
        move(c->cli, c->srv, &c->hs.in);
        SSL_do_handshake(c->srv);
        move(c->srv, c->cli, &c->hs.out);
    }
    const char *why = NULL;
    if (SSL_do_handshake(c->srv) != 1 || SSL_do_handshake(c->cli) != 1 ||
        tls_rec_take(c->srv, &c->hs, NULL, 0, 0, &c->rec, &why) != TLS_REC_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[1 << 17], in[1 << 17];
    if (!ready) {
        setup(&conns[0], TLS1_2_VERSION);
        setup(&conns[1], TLS1_3_VERSION);
        ready = true;
    }
    if (size < 2)
        return 0;
    struct conn *c = &conns[(data[0] >> 1) & 1];
    int mode = data[0] & 1;
    size_t step = data[1] ? data[1] : 1;
    data += 2;
    size -= 2;
    /* the stream: client records of the input (valid under the keys), then the input raw */
    size_t len = 0;
    if (mode == 1 && size > 0) {
        SSL_write(c->cli, data, (int)(size > 20000 ? 20000 : size));
        int n = BIO_read(SSL_get_wbio(c->cli), buf, sizeof(buf) / 2);
        len = n > 0 ? (size_t)n : 0;
    }
    if (size > sizeof(buf) - len)
        size = sizeof(buf) - len;
    memcpy(buf + len, data, size);
    len += size;
    size_t have = 0, fed = 0;
    while (fed < len) {
        size_t n = len - fed < step ? len - fed : step;
        memcpy(in + have, buf + fed, n);
        fed += n;
        have += n;
        size_t used = 0, plain = 0;
        uint8_t alert = 0;
        int rc = tls_rec_open(c->rec, in, have, &used, &plain, &alert);
        if (rc != TLS_REC_OK)
            break;
        if (used > have || plain > used)
            abort();
        memmove(in, in + used, have - used);
        have -= used;
    }
    return 0;
}
