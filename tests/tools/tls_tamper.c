/*
 * tls_tamper: a TLS 1.2 PSK client (PSK-AES128-CCM) that completes the handshake with the
 * gateway, then sends an MQTT CONNECT in a record whose last tag byte is flipped, and prints
 * the alert the gateway answers with ("alert=bad record mac") or what happened instead.
 *
 *   tls_tamper HOST PORT IDENTITY PSKHEX
 *
 * For tests/integration/test_record_layer.sh: a record that fails its integrity check must be
 * refused with an alert, never handled.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *identity;
static unsigned char psk[64];
static unsigned int psk_len;

static unsigned int client_psk(SSL *s, const char *hint, char *id, unsigned int id_max,
                               unsigned char *out, unsigned int max)
{
    (void)s;
    (void)hint;
    if (strlen(identity) >= id_max || psk_len > max)
        return 0;
    strcpy(id, identity);
    memcpy(out, psk, psk_len);
    return psk_len;
}

static void on_info(const SSL *s, int where, int ret)
{
    (void)s;
    if (where & SSL_CB_READ_ALERT)
        printf("alert=%s\n", SSL_alert_desc_string_long(ret));
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: tls_tamper HOST PORT IDENTITY PSKHEX\n");
        return 2;
    }
    identity = argv[3];
    for (const char *h = argv[4]; h[0] && h[1] && psk_len < sizeof(psk); h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        psk[psk_len++] = (unsigned char)v;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        return 1;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, "PSK-AES128-CCM");
    SSL_CTX_set_psk_client_callback(ctx, client_psk);
    SSL_CTX_set_info_callback(ctx, on_info);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    /* the CONNECT is protected into a memory BIO, tampered with, and sent by hand */
    BIO *mem = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, SSL_get_rbio(ssl), mem); /* the read side stays the socket */
    static const unsigned char connect_pkt[] = {0x10, 0x11, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60,
                                                0,    5,    'd', 'e', 'v', '-', '1'};
    if (SSL_write(ssl, connect_pkt, (int)sizeof(connect_pkt)) != (int)sizeof(connect_pkt))
        return 1;
    unsigned char rec[256];
    int n = BIO_read(mem, rec, sizeof(rec));
    if (n <= 0)
        return 1;
    rec[n - 1] ^= 0x01;
    if (write(fd, rec, (size_t)n) != n)
        return 1;
    unsigned char buf[256];
    int r = SSL_read(ssl, buf, sizeof(buf));
    int rc = 0;
    if (r > 0) {
        printf("the gateway answered with data: %d bytes\n", r);
        rc = 1;
    } else {
        printf("read_result=%d error=%d\n", r, SSL_get_error(ssl, r));
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return rc;
}
