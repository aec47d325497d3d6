/*
 * tls_edge_client: a TLS-PSK client for the edges of the gateway's record layer
 * (tests/integration/test_record_layer.sh).
 *
 *   tls_edge_client tamper HOST PORT IDENTITY PSKHEX
 *       TLS 1.2 (PSK-AES128-CCM) handshake, then an MQTT CONNECT in a record whose last tag byte
 *       is flipped; prints the alert the gateway answers with ("alert=bad record mac").
 *   tls_edge_client together12 HOST PORT IDENTITY PSKHEX
 *   tls_edge_client together13 HOST PORT IDENTITY PSKHEX
 *       the client's last handshake flight and its MQTT CONNECT in one write(), so they reach
 *       the gateway in one read: TLS 1.3 (the client finishes first), or TLS 1.2 with a resumed
 *       session (a first connection gets the ticket); prints "connack=0xRR" when the CONNACK
 *       comes back.
 *   tls_edge_client dribble12 HOST PORT IDENTITY PSKHEX
 *       TLS 1.2 (PSK-AES128-CCM, no ticket wanted) with every byte of the handshake in a write of
 *       its own, 1 ms apart, as a device on a slow link delivers it; then the MQTT CONNECT;
 *       prints "connack=0xRR".
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
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

static int dial(const char *host, const char *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    inet_pton(AF_INET, host, &a.sin_addr);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static const unsigned char connect_pkt[] = {0x10, 0x11, 0, 4, 'M', 'Q', 'T', 'T', 4,  2,
                                            0,    60,   0, 5, 'd', 'e', 'v', '-', '1'};

/* Sends what the client wrote into its memory BIO in one write(). */
static void flush_out(SSL *ssl, int fd)
{
    unsigned char buf[16384];
    int n = BIO_read(SSL_get_wbio(ssl), buf, sizeof(buf));
    if (n > 0 && write(fd, buf, (size_t)n) != n)
        exit(1);
}

/* Sends what the client wrote into its memory BIO a byte a write, 1 ms apart. */
static void dribble_out(SSL *ssl, int fd)
{
    unsigned char buf[16384];
    int n = BIO_read(SSL_get_wbio(ssl), buf, sizeof(buf));
    for (int i = 0; i < n; i++) {
        if (write(fd, buf + i, 1) != 1)
            exit(1);
        usleep(1000);
    }
}

static bool dribbling;

/* A handshake whose output waits in a memory BIO; reads come from the socket. Returns 1. */
static int handshake_buffered(SSL *ssl, int fd)
{
    for (;;) {
        int r = SSL_connect(ssl);
        if (r == 1)
            return 1;
        if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
            return 0;
        if (dribbling)
            dribble_out(ssl, fd);
        else
            flush_out(ssl, fd);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1)
            return 0;
        unsigned char buf[16384];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return 0;
        BIO_write(SSL_get_rbio(ssl), buf, (int)n);
    }
}

static SSL *buffered_ssl(SSL_CTX *ctx)
{
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rb, -1);
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    return ssl;
}

/* Reads the CONNACK through the memory BIOs and prints its reason code. */
static int read_connack(SSL *ssl, int fd)
{
    unsigned char buf[16384];
    for (;;) {
        int r = SSL_read(ssl, buf, sizeof(buf));
        if (r >= 4 && buf[0] == 0x20) {
            printf("connack=0x%02x\n", buf[3]);
            return 0;
        }
        if (r > 0 || SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
            return 1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1) {
            printf("no CONNACK within 5 s\n");
            return 1;
        }
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return 1;
        BIO_write(SSL_get_rbio(ssl), buf, (int)n);
    }
}

static int together(SSL_CTX *ctx, const char *host, const char *port, bool tls13)
{
    SSL_SESSION *sess = NULL;
    if (!tls13) { /* a first connection for the session ticket */
        int fd = dial(host, port);
        SSL *ssl = buffered_ssl(ctx);
        if (!handshake_buffered(ssl, fd))
            return 1;
        flush_out(ssl, fd);
        sess = SSL_get1_session(ssl);
        SSL_shutdown(ssl);
        flush_out(ssl, fd);
        SSL_free(ssl);
        close(fd);
    }
    int fd = dial(host, port);
    SSL *ssl = buffered_ssl(ctx);
    if (sess)
        SSL_set_session(ssl, sess);
    if (!handshake_buffered(ssl, fd))
        return 1;
    if (!tls13 && !SSL_session_reused(ssl)) {
        printf("the session was not resumed\n");
        return 1;
    }
    /* the Finished (and TLS 1.2's ChangeCipherSpec) still wait in the BIO: the CONNECT joins */
    if (SSL_write(ssl, connect_pkt, (int)sizeof(connect_pkt)) != (int)sizeof(connect_pkt))
        return 1;
    flush_out(ssl, fd);
    int rc = read_connack(ssl, fd);
    SSL_SESSION_free(sess);
    SSL_free(ssl);
    close(fd);
    return rc;
}

static int dribble(SSL_CTX *ctx, const char *host, const char *port)
{
    int fd = dial(host, port);
    SSL *ssl = buffered_ssl(ctx);
    int rc = 1;
    dribbling = true;
    if (fd >= 0 && handshake_buffered(ssl, fd) &&
        SSL_write(ssl, connect_pkt, sizeof(connect_pkt)) == (int)sizeof(connect_pkt)) {
        flush_out(ssl, fd);
        rc = read_connack(ssl, fd);
    } else {
        printf("handshake failed\n");
    }
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int tamper(SSL_CTX *ctx, const char *host, const char *port)
{
    int fd = dial(host, port);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    /* the CONNECT is protected into a memory BIO, tampered with, and sent by hand */
    BIO *mem = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, SSL_get_rbio(ssl), mem); /* the read side stays the socket */
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
        /* after a fatal alert nothing may follow, not even close_notify (RFC 5246 7.2.2,
         * RFC 8446 6.2): the rest of the stream must be its end */
        size_t after = 0;
        ssize_t k;
        while ((k = read(fd, buf, sizeof(buf))) > 0)
            after += (size_t)k;
        printf("bytes_after_alert=%zu\n", after);
        if (after)
            rc = 1;
    }
    SSL_free(ssl);
    close(fd);
    return rc;
}

/* TLS 1.3: after the handshake, nothing but KeyUpdates (records that carry no data), as fast as
 * they go, until the server ends the connection or `count` were sent; prints how many went.
 * For bench/abuse.sh (the empty-record flood). */
static int key_updates(SSL_CTX *ctx, const char *host, const char *port, long count)
{
    signal(SIGPIPE, SIG_IGN); /* the server may end the connection mid-flood */
    int fd = dial(host, port);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    long sent = 0;
    for (; sent < count; sent++) {
        if (SSL_key_update(ssl, SSL_KEY_UPDATE_NOT_REQUESTED) != 1 || SSL_do_handshake(ssl) != 1)
            break;
    }
    /* how the server answered: the end of the stream, or nothing yet */
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    unsigned char buf[256];
    int r = SSL_read(ssl, buf, sizeof(buf));
    printf("key_updates_sent=%ld server_ended=%d\n", sent, r <= 0 && SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ);
    SSL_free(ssl);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6 && !(argc == 7 && strcmp(argv[1], "keyupdates") == 0)) {
        fprintf(stderr, "usage: tls_edge_client tamper|together12|together13|dribble12 HOST PORT IDENTITY "
                        "PSKHEX\n       tls_edge_client keyupdates HOST PORT IDENTITY PSKHEX COUNT\n");
        return 2;
    }
    identity = argv[4];
    for (const char *h = argv[5]; h[0] && h[1] && psk_len < sizeof(psk); h += 2) {
        unsigned v;
        if (sscanf(h, "%2x", &v) != 1)
            return 2;
        psk[psk_len++] = (unsigned char)v;
    }
    bool tls13 = strcmp(argv[1], "together13") == 0 || strcmp(argv[1], "keyupdates") == 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, "PSK-AES128-CCM");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_set_psk_client_callback(ctx, client_psk);
    SSL_CTX_set_info_callback(ctx, on_info);
    int rc = 2;
    if (strcmp(argv[1], "tamper") == 0)
        rc = tamper(ctx, argv[2], argv[3]);
    else if (strcmp(argv[1], "dribble12") == 0) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        rc = dribble(ctx, argv[2], argv[3]);
    } else if (strcmp(argv[1], "keyupdates") == 0)
        rc = key_updates(ctx, argv[2], argv[3], atol(argv[6]));
    else if (strcmp(argv[1], "together12") == 0 || tls13)
        rc = together(ctx, argv[2], argv[3], tls13);
    SSL_CTX_free(ctx);
    return rc;
}
