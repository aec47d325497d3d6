/*
 * Fuzz target for the gateway's record layer input (tls_record.c, tls_rec_open): bytes from
 * the network after a TLS 1.2 handshake. A real PSK-AES128-CCM handshake between an OpenSSL
 * client and server runs once; each input then gets a fresh record layer taken over from that
 * server. The first byte picks the mode: raw bytes as they are, or the input sent first as
 * valid records by the client (so the MAC passes) followed by the rest raw; the second byte
 * splits the stream into reads of that size, as a slow device would deliver it. One record
 * layer serves every input: the client's records all open, so its sequence numbers stay in
 * step with the client's, and raw bytes never pass a MAC.
 */
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls_record.h"

static SSL *srv, *cli;
static struct tls_rec_wire wire_in, wire_out;
static struct tls_rec *rec;

static unsigned int server_psk(SSL *s, const char *id, unsigned char *out, unsigned int max)
{
    (void)s;
    (void)id;
    (void)max;
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

static void setup(void)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(sctx, "PSK-AES128-CCM");
    SSL_CTX_set_cipher_list(cctx, "PSK-AES128-CCM");
    SSL_CTX_set_psk_server_callback(sctx, server_psk);
    SSL_CTX_set_psk_client_callback(cctx, client_psk);
    srv = new_ssl(sctx);
    cli = new_ssl(cctx);
    SSL_set_read_ahead(srv, 0);
    SSL_set_accept_state(srv);
    SSL_set_connect_state(cli);
    for (int i = 0; i < 10; i++) {
        SSL_do_handshake(cli);
        move(cli, srv, &wire_in);
        SSL_do_handshake(srv);
        move(srv, cli, &wire_out);
    }
    const char *why = NULL;
    if (SSL_do_handshake(srv) != 1 || SSL_do_handshake(cli) != 1 ||
        tls_rec_take(srv, &wire_in, &wire_out, NULL, 0, 0, &rec, &why) != TLS_REC_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[1 << 17];
    if (!srv)
        setup();
    if (size < 2)
        return 0;
    int mode = data[0] & 1;
    size_t step = data[1] ? data[1] : 1;
    data += 2;
    size -= 2;
    /* the stream: client records of the input (valid under the keys), then the input raw */
    size_t len = 0;
    if (mode == 1 && size > 0) {
        SSL_write(cli, data, (int)(size > 20000 ? 20000 : size));
        int n = BIO_read(SSL_get_wbio(cli), buf, sizeof(buf) / 2);
        len = n > 0 ? (size_t)n : 0;
    }
    if (size > sizeof(buf) - len)
        size = sizeof(buf) - len;
    memcpy(buf + len, data, size);
    len += size;
    static uint8_t in[1 << 17];
    size_t have = 0, fed = 0;
    while (fed < len) {
        size_t n = len - fed < step ? len - fed : step;
        memcpy(in + have, buf + fed, n);
        fed += n;
        have += n;
        size_t used = 0, plain = 0;
        uint8_t alert = 0;
        int rc = tls_rec_open(rec, in, have, &used, &plain, &alert);
        if (rc != TLS_REC_OK)
            break;
        if (used > have || plain > used)
            abort();
        memmove(in, in + used, have - used);
        have -= used;
    }
    return 0;
}
