/*
 * Unit tests for psagw's own TLS record layer (gateway/src/net/tls_record.c) against OpenSSL as the
 * client: a real TLS-PSK handshake between an OpenSSL client and an OpenSSL server over memory
 * BIOs (with the keylog and message callbacks the gateway sets), then the server's record layer
 * is taken over and both directions must interoperate: every TLS 1.2 AEAD suite and every TLS
 * 1.3 suite, full handshakes and ticket resumption (where the client's first data arrives with
 * its Finished), split and coalesced records, the peer's max record size, tampered and replayed
 * records, close_notify, renegotiation, TLS 1.3 KeyUpdate both ways, and the suites it must
 * leave to OpenSSL (CBC).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls_record.h"

static const uint8_t psk[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static unsigned int server_psk(SSL *s, const char *id, unsigned char *out, unsigned int max)
{
    (void)s;
    /* TLS 1.3 offers ticket identities here too: those are not ours (as in the gateway) */
    if (!id || strcmp(id, "dev-1") != 0 || max < sizeof(psk))
        return 0;
    memcpy(out, psk, sizeof(psk));
    return sizeof(psk);
}

static void keylog_cb(const SSL *ssl, const char *line)
{
    struct tls_rec_handshake *hs = SSL_get_app_data(ssl);
    if (hs)
        tls_rec_handshake_keylog(hs, line);
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version;
    (void)buf;
    (void)len;
    (void)arg;
    struct tls_rec_handshake *hs = SSL_get_app_data(ssl);
    if (hs)
        tls_rec_handshake_msg(hs, write_p, content_type);
}

static unsigned int client_psk(SSL *s, const char *hint, char *id, unsigned int id_max,
                               unsigned char *out, unsigned int max)
{
    (void)s;
    (void)hint;
    snprintf(id, id_max, "dev-1");
    if (max < sizeof(psk))
        return 0;
    memcpy(out, psk, sizeof(psk));
    return sizeof(psk);
}

/* One client/server pair over memory BIOs; the server's side is followed as conn.c does. */
struct pair {
    SSL_CTX *sctx, *cctx;
    SSL *srv, *cli;
    struct tls_rec_handshake hs;
    struct tls_rec *rec;
    uint8_t net[1 << 17]; /* client -> server bytes not yet given to the record layer */
    size_t net_len;
};

static void pair_ctx(struct pair *p, const char *ciphers, int max_version)
{
    p->sctx = SSL_CTX_new(TLS_server_method());
    p->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(p->sctx);
    assert_non_null(p->cctx);
    SSL_CTX_set_min_proto_version(p->sctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(p->sctx, max_version);
    SSL_CTX_set_min_proto_version(p->cctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(p->cctx, max_version);
    assert_int_equal(SSL_CTX_set_cipher_list(p->sctx, ciphers), 1);
    assert_int_equal(SSL_CTX_set_cipher_list(p->cctx, ciphers), 1);
    SSL_CTX_set_options(p->sctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_psk_server_callback(p->sctx, server_psk);
    SSL_CTX_set_psk_client_callback(p->cctx, client_psk);
    SSL_CTX_set1_groups_list(p->sctx, "X25519");
    SSL_CTX_set1_groups_list(p->cctx, "X25519");
    SSL_CTX_set_keylog_callback(p->sctx, keylog_cb);
    SSL_CTX_set_msg_callback(p->sctx, msg_cb);
}

/* TLS 1.3 with one suite (and a TLS 1.2 list the handshake will not use) */
static void pair_ctx13(struct pair *p, const char *suite)
{
    pair_ctx(p, "PSK-AES128-CCM", TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(p->sctx, TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_set_ciphersuites(p->sctx, suite), 1);
    assert_int_equal(SSL_CTX_set_ciphersuites(p->cctx, suite), 1);
}

/* Moves the server's output to the client; the client's output to the server (when the
 * server is still OpenSSL) or to `net` (once the record layer is ours). */
static void pump(struct pair *p)
{
    uint8_t buf[1 << 15];
    int n;
    if (p->srv)
        while ((n = BIO_read(SSL_get_wbio(p->srv), buf, sizeof(buf))) > 0) {
            tls_rec_wire_feed(&p->hs.out, buf, (size_t)n);
            BIO_write(SSL_get_rbio(p->cli), buf, n);
        }
    while ((n = BIO_read(SSL_get_wbio(p->cli), buf, sizeof(buf))) > 0) {
        if (p->srv) {
            tls_rec_wire_feed(&p->hs.in, buf, (size_t)n);
            BIO_write(SSL_get_rbio(p->srv), buf, n);
        } else {
            assert_true(p->net_len + (size_t)n <= sizeof(p->net));
            memcpy(p->net + p->net_len, buf, (size_t)n);
            p->net_len += (size_t)n;
        }
    }
}

static SSL *new_ssl(SSL_CTX *ctx)
{
    SSL *s = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rb, -1);
    SSL_set_bio(s, rb, wb);
    return s;
}

/* Handshakes; with early_data the client writes before the server has read its Finished. */
static void handshake(struct pair *p, SSL_SESSION *resume, const char *early_data)
{
    memset(&p->hs, 0, sizeof(p->hs));
    p->srv = new_ssl(p->sctx);
    SSL_set_app_data(p->srv, &p->hs);
    p->cli = new_ssl(p->cctx);
    SSL_set_read_ahead(p->srv, 0);
    SSL_set_accept_state(p->srv);
    SSL_set_connect_state(p->cli);
    if (resume)
        SSL_set_session(p->cli, resume);
    bool cli_done = false, srv_done = false, sent = false;
    for (int i = 0; i < 20 && !srv_done; i++) {
        if (!cli_done)
            cli_done = SSL_do_handshake(p->cli) == 1;
        if (cli_done && early_data && !sent) {
            assert_int_equal(SSL_write(p->cli, early_data, (int)strlen(early_data)),
                             (int)strlen(early_data));
            sent = true;
        }
        pump(p);
        int hr = SSL_do_handshake(p->srv);
        srv_done = hr == 1;
        if (hr != 1 && SSL_get_error(p->srv, hr) != SSL_ERROR_WANT_READ) {
            fprintf(stderr, "server handshake: error %d\n", SSL_get_error(p->srv, hr));
            ERR_print_errors_fp(stderr);
        }
        pump(p);
    }
    assert_true(srv_done);
    if (!cli_done)
        assert_int_equal(SSL_do_handshake(p->cli), 1);
}

static int take(struct pair *p, const char **why)
{
    char *unread = NULL;
    long len = BIO_get_mem_data(SSL_get_rbio(p->srv), &unread);
    int rc = tls_rec_take(p->srv, &p->hs, (const uint8_t *)unread, (size_t)len, 0, &p->rec, why);
    if (rc == TLS_REC_OK) {
        memcpy(p->net, unread, (size_t)len);
        p->net_len = (size_t)len;
        SSL_free(p->srv);
        p->srv = NULL;
    }
    return rc;
}

static void pair_free(struct pair *p)
{
    tls_rec_free(p->rec);
    SSL_free(p->srv);
    SSL_free(p->cli);
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
}

/* Opens what the client sent, giving the record layer `step` bytes more at a time (a record
 * split across reads), and checks the plaintext. */
static void expect_from_client(struct pair *p, const uint8_t *want, size_t want_len, size_t step)
{
    static uint8_t buf[1 << 17], got[1 << 17];
    size_t have = 0, got_len = 0, fed = 0;
    while (fed < p->net_len) {
        size_t n = p->net_len - fed < step ? p->net_len - fed : step;
        memcpy(buf + have, p->net + fed, n);
        fed += n;
        have += n;
        size_t used = 0, plain = 0;
        uint8_t alert = 0;
        assert_int_equal(tls_rec_open(p->rec, buf, have, &used, &plain, &alert), TLS_REC_OK);
        memcpy(got + got_len, buf, plain);
        got_len += plain;
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    assert_int_equal(have, 0);
    p->net_len = 0;
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
}

/* Seals `len` bytes for the client and checks what it reads, and each record's size. */
static void send_to_client(struct pair *p, const uint8_t *data, size_t len, size_t max_plain)
{
    static uint8_t wire[1 << 17], got[1 << 17];
    size_t taken = 0;
    size_t n = tls_rec_seal(p->rec, data, len, wire, sizeof(wire), &taken);
    assert_int_equal(taken, len);
    for (size_t off = 0; off < n;) {
        size_t body = (size_t)wire[off + 3] << 8 | wire[off + 4];
        assert_int_equal(wire[off], TLS_REC_APPLICATION_DATA);
        assert_true(body <= max_plain + 8 + 16);
        off += TLS_REC_HEADER + body;
        assert_true(off <= n);
    }
    BIO_write(SSL_get_rbio(p->cli), wire, (int)n);
    size_t got_len = 0;
    int k;
    while ((k = SSL_read(p->cli, got + got_len, (int)(sizeof(got) - got_len))) > 0)
        got_len += (size_t)k;
    assert_int_equal(got_len, len);
    assert_memory_equal(got, data, len);
}

static const char *const aead_suites[] = {
    "PSK-AES128-CCM",        "PSK-AES128-CCM8",
    "PSK-AES256-CCM",        "PSK-AES256-CCM8",
    "PSK-AES128-GCM-SHA256", "PSK-AES256-GCM-SHA384",
    "PSK-CHACHA20-POLY1305", "ECDHE-PSK-CHACHA20-POLY1305",
};

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 31u + seed);
}

static void every_aead_suite_both_ways(void **state)
{
    (void)state;
    static uint8_t big[40000];
    fill(big, sizeof(big), 7);
    for (size_t s = 0; s < sizeof(aead_suites) / sizeof(aead_suites[0]); s++) {
        struct pair p = {0};
        const char *why = NULL;
        pair_ctx(&p, aead_suites[s], TLS1_2_VERSION);
        handshake(&p, NULL, NULL);
        assert_string_equal(SSL_get_cipher_name(p.cli), aead_suites[s]);
        assert_int_equal(take(&p, &why), TLS_REC_OK);
        /* client -> gateway: several writes, coalesced; whole, and a byte at a time */
        assert_int_equal(SSL_write(p.cli, "CONNECT", 7), 7);
        assert_int_equal(SSL_write(p.cli, big, sizeof(big)), (int)sizeof(big));
        pump(&p);
        static uint8_t want[7 + sizeof(big)];
        memcpy(want, "CONNECT", 7);
        memcpy(want + 7, big, sizeof(big));
        expect_from_client(&p, want, sizeof(want), 1 << 17);
        assert_int_equal(SSL_write(p.cli, big, 3000), 3000);
        pump(&p);
        expect_from_client(&p, big, 3000, 1);
        /* gateway -> client, sequence numbers continue on both sides */
        send_to_client(&p, (const uint8_t *)"CONNACK", 7, TLS_REC_MAX_PLAIN);
        send_to_client(&p, big, sizeof(big), TLS_REC_MAX_PLAIN);
        assert_int_equal(SSL_write(p.cli, "PING", 4), 4);
        pump(&p);
        expect_from_client(&p, (const uint8_t *)"PING", 4, 5);
        pair_free(&p);
    }
}

static void resumption_with_data_behind_finished(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof(aead_suites) / sizeof(aead_suites[0]); s++) {
        struct pair p = {0};
        const char *why = NULL;
        pair_ctx(&p, aead_suites[s], TLS1_2_VERSION);
        handshake(&p, NULL, NULL);
        SSL_SESSION *sess = SSL_get1_session(p.cli);
        /* freed without a shutdown, OpenSSL would mark the client's session not resumable */
        SSL_set_shutdown(p.cli, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(p.srv);
        SSL_free(p.cli);
        /* abbreviated handshake: the client finishes first and its CONNECT travels with its
         * Finished, so the record layer starts with unread bytes */
        handshake(&p, sess, "CONNECT-early");
        assert_int_equal(SSL_session_reused(p.cli), 1);
        assert_int_equal(take(&p, &why), TLS_REC_OK);
        assert_true(p.net_len > 0);
        expect_from_client(&p, (const uint8_t *)"CONNECT-early", 13, 1 << 17);
        send_to_client(&p, (const uint8_t *)"CONNACK", 7, TLS_REC_MAX_PLAIN);
        SSL_SESSION_free(sess);
        pair_free(&p);
    }
}

static void records_no_larger_than_the_device_takes(void **state)
{
    (void)state;
    static uint8_t big[5000];
    fill(big, sizeof(big), 3);
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx(&p, "PSK-AES128-CCM8", TLS1_2_VERSION);
    handshake(&p, NULL, NULL);
    char *unread = NULL;
    long len = BIO_get_mem_data(SSL_get_rbio(p.srv), &unread);
    assert_int_equal(
        tls_rec_take(p.srv, &p.hs, (const uint8_t *)unread, (size_t)len, 1024, &p.rec, &why),
        TLS_REC_OK);
    SSL_free(p.srv);
    p.srv = NULL;
    assert_int_equal(tls_rec_max_plain(p.rec), 1024);
    send_to_client(&p, big, sizeof(big), 1024);
    pair_free(&p);
}

static void tampered_record_refused(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof(aead_suites) / sizeof(aead_suites[0]); s++) {
        struct pair p = {0};
        const char *why = NULL;
        pair_ctx(&p, aead_suites[s], TLS1_2_VERSION);
        handshake(&p, NULL, NULL);
        assert_int_equal(take(&p, &why), TLS_REC_OK);
        assert_int_equal(SSL_write(p.cli, "PUBLISH x", 9), 9);
        pump(&p);
        p.net[p.net_len - 3] ^= 0x40; /* a bit of the tag */
        size_t used = 0, plain = 0;
        uint8_t alert = 0;
        assert_int_equal(tls_rec_open(p.rec, p.net, p.net_len, &used, &plain, &alert),
                         TLS_REC_ERROR);
        assert_int_equal(alert, TLS_ALERT_BAD_RECORD_MAC);
        assert_int_equal(plain, 0);
        pair_free(&p);
    }
}

static void replayed_record_refused(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx(&p, "PSK-AES128-CCM", TLS1_2_VERSION);
    handshake(&p, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    assert_int_equal(SSL_write(p.cli, "PUBLISH 1", 9), 9);
    pump(&p);
    uint8_t copy[256];
    size_t copy_len = p.net_len;
    memcpy(copy, p.net, copy_len);
    expect_from_client(&p, (const uint8_t *)"PUBLISH 1", 9, 1 << 17);
    size_t used = 0, plain = 0;
    uint8_t alert = 0;
    /* the same record again: its sequence number is in the MAC, so it fails */
    assert_int_equal(tls_rec_open(p.rec, copy, copy_len, &used, &plain, &alert), TLS_REC_ERROR);
    assert_int_equal(alert, TLS_ALERT_BAD_RECORD_MAC);
    pair_free(&p);
}

static void close_notify_both_ways(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx(&p, "PSK-AES128-GCM-SHA256", TLS1_2_VERSION);
    handshake(&p, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    /* the client's last data, then its close_notify: the data still comes out */
    assert_int_equal(SSL_write(p.cli, "DISCONNECT", 10), 10);
    SSL_shutdown(p.cli);
    pump(&p);
    size_t used = 0, plain = 0;
    uint8_t alert = 0;
    assert_int_equal(tls_rec_open(p.rec, p.net, p.net_len, &used, &plain, &alert), TLS_REC_CLOSED);
    assert_int_equal(plain, 10);
    assert_memory_equal(p.net, "DISCONNECT", 10);
    /* ours: the client sees a clean end of the stream */
    uint8_t rec[64];
    size_t n = tls_rec_alert(p.rec, TLS_ALERT_CLOSE_NOTIFY, rec, sizeof(rec));
    assert_true(n > 0);
    BIO_write(SSL_get_rbio(p.cli), rec, (int)n);
    char buf[16];
    assert_int_equal(SSL_read(p.cli, buf, sizeof(buf)), 0);
    assert_int_equal(SSL_get_error(p.cli, 0), SSL_ERROR_ZERO_RETURN);
    pair_free(&p);
}

static void fatal_alert_reaches_client(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx(&p, "PSK-AES128-CCM8", TLS1_2_VERSION);
    handshake(&p, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    uint8_t rec[64];
    size_t n = tls_rec_alert(p.rec, TLS_ALERT_BAD_RECORD_MAC, rec, sizeof(rec));
    BIO_write(SSL_get_rbio(p.cli), rec, (int)n);
    char buf[16];
    ERR_clear_error();
    assert_true(SSL_read(p.cli, buf, sizeof(buf)) <= 0);
    assert_int_equal(SSL_get_error(p.cli, -1), SSL_ERROR_SSL);
    char err[256];
    ERR_error_string_n(ERR_peek_last_error(), err, sizeof(err));
    assert_non_null(strstr(err, "bad record mac"));
    pair_free(&p);
}

/* TLS 1.2 renegotiation: a warning no_renegotiation, and the connection goes on (RFC 5246
 * 7.2.2), as OpenSSL's record layer does */
static void renegotiation_answered_with_a_warning(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx(&p, "PSK-AES128-CCM", TLS1_2_VERSION);
    handshake(&p, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    struct tls_rec *peer = tls_rec_peer(p.rec);
    assert_non_null(peer);
    assert_int_equal(SSL_renegotiate(p.cli), 1);
    SSL_do_handshake(p.cli); /* sends an encrypted ClientHello */
    pump(&p);
    assert_true(p.net_len > 0);
    size_t used = 0, plain = 0;
    uint8_t alert = 0;
    assert_int_equal(tls_rec_open(p.rec, p.net, p.net_len, &used, &plain, &alert), TLS_REC_OK);
    assert_int_equal(plain, 0);
    assert_int_equal(tls_rec_take_warning(p.rec), TLS_ALERT_NO_RENEGOTIATION);
    assert_int_equal(tls_rec_take_warning(p.rec), 0);
    uint8_t rec[64];
    size_t n = tls_rec_warning(p.rec, TLS_ALERT_NO_RENEGOTIATION, rec, sizeof(rec));
    assert_true(n > 0);
    assert_false(tls_rec_failed(p.rec));
    /* and data still flows (sealed as the client would, its sequence after the ClientHello) */
    tls_rec_free(peer);
    peer = tls_rec_peer(p.rec);
    n = tls_rec_seal_type(peer, TLS_REC_APPLICATION_DATA, (const uint8_t *)"PINGREQ", 7, rec,
                          sizeof(rec));
    assert_int_equal(tls_rec_open(p.rec, rec, n, &used, &plain, &alert), TLS_REC_OK);
    assert_int_equal(plain, 7);
    tls_rec_free(peer);
    pair_free(&p);
}

/* Records that carry no data are limited, in a row, as OpenSSL's layer limits them: a flood
 * of them would make the gateway work for nothing */
static void empty_record_flood_refused(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        struct pair p = {0};
        const char *why = NULL;
        pair_ctx(&p, "PSK-AES128-GCM-SHA256", TLS1_2_VERSION);
        handshake(&p, NULL, NULL);
        assert_int_equal(take(&p, &why), TLS_REC_OK);
        struct tls_rec *peer = tls_rec_peer(p.rec);
        static const uint8_t warning[2] = {1, TLS_ALERT_USER_CANCELED};
        uint8_t rec[64], data[64];
        size_t used = 0, plain = 0;
        uint8_t alert = 0;
        for (int i = 0; i < TLS_REC_EMPTY_MAX; i++) {
            size_t n = kind == 0 ? tls_rec_seal_type(peer, TLS_REC_APPLICATION_DATA, NULL, 0, rec,
                                                     sizeof(rec))
                                 : tls_rec_seal_type(peer, TLS_REC_ALERT, warning, 2, rec,
                                                     sizeof(rec));
            assert_int_equal(tls_rec_open(p.rec, rec, n, &used, &plain, &alert), TLS_REC_OK);
            assert_int_equal(plain, 0);
        }
        /* data in between resets the count */
        size_t n = tls_rec_seal_type(peer, TLS_REC_APPLICATION_DATA, (const uint8_t *)"x", 1,
                                     data, sizeof(data));
        assert_int_equal(tls_rec_open(p.rec, data, n, &used, &plain, &alert), TLS_REC_OK);
        for (int i = 0; i < TLS_REC_EMPTY_MAX; i++) {
            n = tls_rec_seal_type(peer, TLS_REC_APPLICATION_DATA, NULL, 0, rec, sizeof(rec));
            assert_int_equal(tls_rec_open(p.rec, rec, n, &used, &plain, &alert), TLS_REC_OK);
        }
        n = tls_rec_seal_type(peer, TLS_REC_APPLICATION_DATA, NULL, 0, rec, sizeof(rec));
        assert_int_equal(tls_rec_open(p.rec, rec, n, &used, &plain, &alert), TLS_REC_ERROR);
        assert_int_equal(alert, TLS_ALERT_UNEXPECTED_MESSAGE);
        assert_true(tls_rec_failed(p.rec));
        tls_rec_free(peer);
        pair_free(&p);
    }
}

/* After a fatal alert, either way, nothing more may be sent (RFC 8446 6.2, RFC 5246 7.2.2) */
static void fatal_alerts_end_everything(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx(&p, "PSK-AES128-CCM", TLS1_2_VERSION);
    handshake(&p, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    struct tls_rec *peer = tls_rec_peer(p.rec);
    static const uint8_t fatal[2] = {2, TLS_ALERT_DECODE_ERROR};
    uint8_t rec[64];
    size_t used = 0, plain = 0;
    uint8_t alert = 0;
    size_t n = tls_rec_seal_type(peer, TLS_REC_ALERT, fatal, 2, rec, sizeof(rec));
    assert_int_equal(tls_rec_open(p.rec, rec, n, &used, &plain, &alert), TLS_REC_CLOSED);
    assert_true(tls_rec_failed(p.rec));
    assert_int_equal(tls_rec_warning(p.rec, TLS_ALERT_NO_RENEGOTIATION, rec, sizeof(rec)), 0);
    tls_rec_free(peer);
    pair_free(&p);
    /* a close_notify is not a failure: ours may answer it */
    struct pair q = {0};
    pair_ctx(&q, "PSK-AES128-CCM", TLS1_2_VERSION);
    handshake(&q, NULL, NULL);
    assert_int_equal(take(&q, &why), TLS_REC_OK);
    SSL_shutdown(q.cli);
    pump(&q);
    assert_int_equal(tls_rec_open(q.rec, q.net, q.net_len, &used, &plain, &alert),
                     TLS_REC_CLOSED);
    assert_false(tls_rec_failed(q.rec));
    /* and ours, once sent, marks it */
    assert_true(tls_rec_alert(q.rec, TLS_ALERT_BAD_RECORD_MAC, rec, sizeof(rec)) > 0);
    assert_true(tls_rec_failed(q.rec));
    pair_free(&q);
}

static void malformed_headers_refused(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx(&p, "PSK-AES128-CCM", TLS1_2_VERSION);
    handshake(&p, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    size_t used = 0, plain = 0;
    uint8_t alert = 0;
    uint8_t too_long[5] = {23, 3, 3, 0x48, 0x01}; /* 18433 > 2^14 + 2048 */
    assert_int_equal(tls_rec_open(p.rec, too_long, 5, &used, &plain, &alert), TLS_REC_ERROR);
    assert_int_equal(alert, TLS_ALERT_RECORD_OVERFLOW);
    uint8_t bad_version[5] = {23, 3, 1, 0, 40};
    assert_int_equal(tls_rec_open(p.rec, bad_version, 5, &used, &plain, &alert), TLS_REC_ERROR);
    assert_int_equal(alert, TLS_ALERT_DECODE_ERROR);
    uint8_t too_short[5 + 10] = {23, 3, 3, 0, 10}; /* shorter than nonce + tag */
    assert_int_equal(tls_rec_open(p.rec, too_short, sizeof(too_short), &used, &plain, &alert),
                     TLS_REC_ERROR);
    assert_int_equal(alert, TLS_ALERT_BAD_RECORD_MAC);
    uint8_t partial[4] = {23, 3, 3, 0}; /* not even a header yet: wait for more */
    assert_int_equal(tls_rec_open(p.rec, partial, 4, &used, &plain, &alert), TLS_REC_OK);
    assert_int_equal(used, 0);
    pair_free(&p);
}

static void connections_interleaved(void **state)
{
    (void)state;
    /* one thread's cipher contexts serve every connection: keys must never leak across */
    struct pair p = {0}, q = {0};
    const char *why = NULL;
    pair_ctx(&p, "PSK-AES128-CCM", TLS1_2_VERSION);
    pair_ctx(&q, "PSK-AES128-CCM", TLS1_2_VERSION);
    handshake(&p, NULL, NULL);
    handshake(&q, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    assert_int_equal(take(&q, &why), TLS_REC_OK);
    for (int i = 0; i < 3; i++) {
        char m[32];
        int n = snprintf(m, sizeof(m), "to-p-%d", i);
        send_to_client(&p, (const uint8_t *)m, (size_t)n, TLS_REC_MAX_PLAIN);
        n = snprintf(m, sizeof(m), "to-q-%d", i);
        send_to_client(&q, (const uint8_t *)m, (size_t)n, TLS_REC_MAX_PLAIN);
        assert_int_equal(SSL_write(q.cli, "from-q", 6), 6);
        pump(&q);
        expect_from_client(&q, (const uint8_t *)"from-q", 6, 1 << 17);
        assert_int_equal(SSL_write(p.cli, "from-p", 6), 6);
        pump(&p);
        expect_from_client(&p, (const uint8_t *)"from-p", 6, 1 << 17);
    }
    pair_free(&p);
    pair_free(&q);
}

static void other_suites_left_to_openssl(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx(&p, "ECDHE-PSK-AES128-CBC-SHA256", TLS1_2_VERSION);
    handshake(&p, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_UNSUPPORTED);
    assert_string_equal(why, "not_an_aead_suite");
    assert_null(p.rec);
    pair_free(&p);
}

/* (TLS_AES_256_GCM_SHA384 cannot carry an external PSK set through OpenSSL's TLS 1.2-style
 * PSK callbacks, which build a SHA-256 session: the gateway never negotiates it) */
static const char *const tls13_suites[] = {
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
};

static void tls13_every_suite_both_ways(void **state)
{
    (void)state;
    static uint8_t big[40000];
    fill(big, sizeof(big), 11);
    for (size_t s = 0; s < sizeof(tls13_suites) / sizeof(tls13_suites[0]); s++) {
        struct pair p = {0};
        const char *why = NULL;
        pair_ctx13(&p, tls13_suites[s]);
        /* the client's first data goes with its Finished, before the server has read it */
        handshake(&p, NULL, "CONNECT-13");
        assert_string_equal(SSL_get_cipher_name(p.cli), tls13_suites[s]);
        assert_int_equal(SSL_version(p.srv), TLS1_3_VERSION);
        assert_int_equal(take(&p, &why), TLS_REC_OK);
        expect_from_client(&p, (const uint8_t *)"CONNECT-13", 10, 1 << 17);
        /* after the session tickets OpenSSL sent, our records continue the sequence */
        send_to_client(&p, (const uint8_t *)"CONNACK", 7, TLS_REC_MAX_PLAIN);
        send_to_client(&p, big, sizeof(big), TLS_REC_MAX_PLAIN);
        assert_int_equal(SSL_write(p.cli, big, sizeof(big)), (int)sizeof(big));
        pump(&p);
        expect_from_client(&p, big, sizeof(big), 7);
        pair_free(&p);
    }
}

static void tls13_key_update_both_ways(void **state)
{
    (void)state;
    for (int requested = 0; requested <= 1; requested++) {
        struct pair p = {0};
        const char *why = NULL;
        pair_ctx13(&p, "TLS_AES_128_GCM_SHA256");
        handshake(&p, NULL, NULL);
        assert_int_equal(take(&p, &why), TLS_REC_OK);
        for (int round = 0; round < 3; round++) {
            /* the client moves to new keys (and may ask us to); its data after that must open */
            assert_int_equal(SSL_key_update(p.cli, requested ? SSL_KEY_UPDATE_REQUESTED
                                                             : SSL_KEY_UPDATE_NOT_REQUESTED),
                             1);
            assert_int_equal(SSL_write(p.cli, "after-update", 12), 12);
            pump(&p);
            expect_from_client(&p, (const uint8_t *)"after-update", 12, 1 << 17);
            /* when asked, our KeyUpdate goes out before our data, and the client reads on */
            send_to_client(&p, (const uint8_t *)"reply", 5, TLS_REC_MAX_PLAIN);
        }
        pair_free(&p);
    }
}

static void tls13_tampered_and_bad_content_refused(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx13(&p, "TLS_AES_128_CCM_SHA256");
    handshake(&p, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    assert_int_equal(SSL_write(p.cli, "PUBLISH", 7), 7);
    pump(&p);
    p.net[p.net_len - 1] ^= 1;
    size_t used = 0, plain = 0;
    uint8_t alert = 0;
    assert_int_equal(tls_rec_open(p.rec, p.net, p.net_len, &used, &plain, &alert), TLS_REC_ERROR);
    assert_int_equal(alert, TLS_ALERT_BAD_RECORD_MAC);
    /* an outer type other than application_data is not TLS 1.3 after the handshake */
    uint8_t ccs[6] = {TLS_REC_CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1};
    assert_int_equal(tls_rec_open(p.rec, ccs, sizeof(ccs), &used, &plain, &alert), TLS_REC_ERROR);
    assert_int_equal(alert, TLS_ALERT_UNEXPECTED_MESSAGE);
    pair_free(&p);
}

/* TLS 1.3 post-handshake messages: KeyUpdate only, possibly in pieces over records, ending its
 * record; no empty handshake records (RFC 8446 4.6.3, 5.1, 5.4) */
static void tls13_key_update_framing(void **state)
{
    (void)state;
    static const uint8_t ku[5] = {24, 0, 0, 1, 0};
    static const uint8_t two[10] = {24, 0, 0, 1, 0, 24, 0, 0, 1, 0};
    static const uint8_t bad_len[6] = {24, 0, 0, 2, 0, 0};
    for (int c = 0; c < 4; c++) {
        struct pair p = {0};
        const char *why = NULL;
        pair_ctx13(&p, "TLS_AES_128_GCM_SHA256");
        handshake(&p, NULL, NULL);
        assert_int_equal(take(&p, &why), TLS_REC_OK);
        struct tls_rec *peer = tls_rec_peer(p.rec);
        uint8_t rec[64], data[64];
        size_t used = 0, plain = 0, n;
        uint8_t alert = 0;
        switch (c) {
        case 0: /* a zero-length handshake record */
            n = tls_rec_seal_type(peer, TLS_REC_HANDSHAKE, NULL, 0, rec, sizeof(rec));
            assert_int_equal(tls_rec_open(p.rec, rec, n, &used, &plain, &alert), TLS_REC_ERROR);
            assert_int_equal(alert, TLS_ALERT_UNEXPECTED_MESSAGE);
            break;
        case 1: /* two KeyUpdates in one record: no record boundary after the first */
            n = tls_rec_seal_type(peer, TLS_REC_HANDSHAKE, two, sizeof(two), rec, sizeof(rec));
            assert_int_equal(tls_rec_open(p.rec, rec, n, &used, &plain, &alert), TLS_REC_ERROR);
            assert_int_equal(alert, TLS_ALERT_UNEXPECTED_MESSAGE);
            break;
        case 2: /* a malformed KeyUpdate (a body of two bytes) */
            n = tls_rec_seal_type(peer, TLS_REC_HANDSHAKE, bad_len, sizeof(bad_len), rec,
                                  sizeof(rec));
            assert_int_equal(tls_rec_open(p.rec, rec, n, &used, &plain, &alert), TLS_REC_ERROR);
            assert_int_equal(alert, TLS_ALERT_DECODE_ERROR);
            break;
        case 3: /* one KeyUpdate split over two records: legal, the keys change after it */
            n = tls_rec_seal_type(peer, TLS_REC_HANDSHAKE, ku, 2, rec, sizeof(rec));
            assert_int_equal(tls_rec_open(p.rec, rec, n, &used, &plain, &alert), TLS_REC_OK);
            n = tls_rec_seal_type(peer, TLS_REC_HANDSHAKE, ku + 2, 3, rec, sizeof(rec));
            assert_int_equal(tls_rec_open(p.rec, rec, n, &used, &plain, &alert), TLS_REC_OK);
            /* data under the old keys no longer opens: the update took effect */
            n = tls_rec_seal_type(peer, TLS_REC_APPLICATION_DATA, (const uint8_t *)"x", 1, data,
                                  sizeof(data));
            assert_int_equal(tls_rec_open(p.rec, data, n, &used, &plain, &alert),
                             TLS_REC_ERROR);
            assert_int_equal(alert, TLS_ALERT_BAD_RECORD_MAC);
            break;
        }
        assert_true(tls_rec_failed(p.rec));
        tls_rec_free(peer);
        pair_free(&p);
    }
}

static void tls13_close_notify(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx13(&p, "TLS_CHACHA20_POLY1305_SHA256");
    handshake(&p, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    assert_int_equal(SSL_write(p.cli, "DISCONNECT", 10), 10);
    SSL_shutdown(p.cli);
    pump(&p);
    size_t used = 0, plain = 0;
    uint8_t alert = 0;
    assert_int_equal(tls_rec_open(p.rec, p.net, p.net_len, &used, &plain, &alert), TLS_REC_CLOSED);
    assert_int_equal(plain, 10);
    uint8_t rec[64];
    size_t n = tls_rec_alert(p.rec, TLS_ALERT_CLOSE_NOTIFY, rec, sizeof(rec));
    BIO_write(SSL_get_rbio(p.cli), rec, (int)n);
    char buf[16];
    assert_int_equal(SSL_read(p.cli, buf, sizeof(buf)), 0);
    assert_int_equal(SSL_get_error(p.cli, 0), SSL_ERROR_ZERO_RETURN);
    pair_free(&p);
}

static void tls13_resumption(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx13(&p, "TLS_AES_128_GCM_SHA256");
    handshake(&p, NULL, NULL);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    /* the client takes its tickets in with its first read */
    send_to_client(&p, (const uint8_t *)"CONNACK", 7, TLS_REC_MAX_PLAIN);
    SSL_SESSION *sess = SSL_get1_session(p.cli);
    assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
    SSL_set_shutdown(p.cli, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(p.cli);
    p.cli = NULL;
    tls_rec_free(p.rec);
    p.rec = NULL;
    handshake(&p, sess, "CONNECT-resumed");
    assert_int_equal(SSL_session_reused(p.cli), 1);
    assert_int_equal(take(&p, &why), TLS_REC_OK);
    expect_from_client(&p, (const uint8_t *)"CONNECT-resumed", 15, 1 << 17);
    send_to_client(&p, (const uint8_t *)"CONNACK", 7, TLS_REC_MAX_PLAIN);
    SSL_SESSION_free(sess);
    pair_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_aead_suite_both_ways),
        cmocka_unit_test(resumption_with_data_behind_finished),
        cmocka_unit_test(records_no_larger_than_the_device_takes),
        cmocka_unit_test(tampered_record_refused),
        cmocka_unit_test(replayed_record_refused),
        cmocka_unit_test(close_notify_both_ways),
        cmocka_unit_test(fatal_alert_reaches_client),
        cmocka_unit_test(renegotiation_answered_with_a_warning),
        cmocka_unit_test(empty_record_flood_refused),
        cmocka_unit_test(fatal_alerts_end_everything),
        cmocka_unit_test(tls13_key_update_framing),
        cmocka_unit_test(malformed_headers_refused),
        cmocka_unit_test(connections_interleaved),
        cmocka_unit_test(other_suites_left_to_openssl),
        cmocka_unit_test(tls13_every_suite_both_ways),
        cmocka_unit_test(tls13_key_update_both_ways),
        cmocka_unit_test(tls13_tampered_and_bad_content_refused),
        cmocka_unit_test(tls13_close_notify),
        cmocka_unit_test(tls13_resumption),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tls_rec_thread_done();
    return rc;
}
