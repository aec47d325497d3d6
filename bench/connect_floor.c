/*
 * connect_floor: the least a server can do for `loadgen connect` on this machine, to put the
 * gateway's connect figure in proportion (bench/run.sh prints it beside psagw and mosquitto).
 *
 *   connect_floor PORT PSKHEX
 *
 * One thread, blocking sockets, one connection at a time: accept, TLS 1.2 PSK handshake with
 * OpenSSL (the suites and options of a psagw listener, any identity, the one PSK, no registry),
 * read the CONNECT record, answer a fixed CONNACK, read until the client's DISCONNECT and
 * close_notify, send close_notify, close. No MQTT parsing, no sessions, no event loop, no
 * logging. Prints "ready" once listening; runs until killed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned char psk[64];
static unsigned int psk_len;

static unsigned int server_psk(SSL *s, const char *id, unsigned char *out, unsigned int max)
{
    (void)s;
    (void)id;
    if (psk_len > max)
        return 0;
    memcpy(out, psk, psk_len);
    return psk_len;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: connect_floor PORT PSKHEX\n");
        return 2;
    }
    for (const char *h = argv[2]; h[0] && h[1] && psk_len < sizeof(psk); h += 2) {
        unsigned v;
        if (sscanf(h, "%2x", &v) != 1)
            return 2;
        psk[psk_len++] = (unsigned char)v;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, "PSK-AES128-CCM:PSK-AES128-CCM8:PSK-AES128-GCM-SHA256");
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_psk_server_callback(ctx, server_psk);
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(l, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1024) != 0) {
        perror("listen");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    static const unsigned char connack[] = {0x20, 0x02, 0x00, 0x00};
    for (;;) {
        int fd = accept(l, NULL, NULL);
        if (fd < 0)
            continue;
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        unsigned char buf[512];
        if (SSL_accept(ssl) == 1 && SSL_read(ssl, buf, sizeof(buf)) > 0 &&
            SSL_write(ssl, connack, sizeof(connack)) == sizeof(connack)) {
            while (SSL_read(ssl, buf, sizeof(buf)) > 0)
                ;
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
    }
}
