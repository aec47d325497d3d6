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
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
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
    {
        struct pair p = {0};
        const char *why = NULL;
        pair_ctx(&p, "PSK-AES128-GCM-SHA256", TLS1_2_VERSION);
        handshake(&p, NULL, NULL);
        assert_int_equal(take(&p, &why), TLS_REC_OK);
        struct tls_rec *peer = tls_rec_peer(p.rec);
        uint8_t rec[64], data[64];
        size_t used = 0, plain = 0;
        uint8_t alert = 0;
        for (int i = 0; i < TLS_REC_EMPTY_MAX; i++) {
            size_t n = tls_rec_seal_type(peer, TLS_REC_APPLICATION_DATA, NULL, 0, rec,
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
    assert_int_equal(alert, TLS_ALERT_PROTOCOL_VERSION);
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

/* ---- the same crafted input against both record layers ----
 *
 * A listener runs either this record layer or OpenSSL's (record_layer = "openssl"). Each case
 * below is a byte stream a broken or hostile client could send after the handshake; it is given
 * to ours (tls_rec_open) and to an OpenSSL server SSL that finished the same handshake, and
 * both must answer alike: the same fatal alert (or none), the same warnings, the same data.
 * Where they differ on purpose, docs/tls-record-layer.md says why. */

struct outcome {
    int fatal;        /* the fatal alert the server sends, -1 if none */
    int warning;      /* the warning alert it sends, -1 if none */
    size_t data;      /* application data bytes handed out */
    bool peer_closed; /* the stream ended (close_notify or a fatal alert received) */
};

struct layer_case {
    const char *name;
    bool tls13;
    /* writes the client's bytes into out (the client SSL or a tls_rec_peer writing) */
    size_t (*craft)(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap);
    struct outcome want;
    /* where OpenSSL's layer answers otherwise on purpose of ours (docs/tls-record-layer.md,
     * "Where the two record layers differ"): its answer */
    const struct outcome *openssl;
    const struct outcome *openssl_alt; /* OpenSSL's answer on other CPUs (its cipher code) */
};

static int sent_fatal, sent_warning;

static void alert_cb(const SSL *s, int where, int ret)
{
    (void)s;
    if ((where & SSL_CB_WRITE_ALERT) != SSL_CB_WRITE_ALERT)
        return;
    if ((ret >> 8) == SSL3_AL_FATAL)
        sent_fatal = ret & 0xff;
    else if ((ret & 0xff) != TLS_ALERT_CLOSE_NOTIFY)
        sent_warning = ret & 0xff;
}

static struct outcome through_ours(struct pair *p, const uint8_t *in, size_t len)
{
    struct outcome o = {.fatal = -1, .warning = -1};
    static uint8_t buf[1 << 17];
    memcpy(buf, in, len);
    size_t off = 0;
    while (off < len) {
        size_t used = 0, plain = 0;
        uint8_t alert = 0;
        int rc = tls_rec_open(p->rec, buf + off, len - off, &used, &plain, &alert);
        o.data += plain;
        uint8_t w = tls_rec_take_warning(p->rec);
        if (w)
            o.warning = w;
        if (rc == TLS_REC_ERROR) {
            o.fatal = alert;
            return o;
        }
        if (rc == TLS_REC_CLOSED) {
            o.peer_closed = true;
            return o;
        }
        if (used == 0)
            break;
        off += used;
    }
    return o;
}

static struct outcome through_openssl(SSL *srv, const uint8_t *in, size_t len)
{
    struct outcome o = {.fatal = -1, .warning = -1};
    sent_fatal = sent_warning = -1;
    SSL_set_info_callback(srv, alert_cb);
    BIO_write(SSL_get_rbio(srv), in, (int)len);
    uint8_t buf[1 << 14];
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(srv, buf, sizeof(buf));
        if (r > 0) {
            o.data += (size_t)r;
            continue;
        }
        int e = SSL_get_error(srv, r);
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SSL && sent_fatal < 0))
            o.peer_closed = true;
        break;
    }
    o.fatal = sent_fatal;
    o.warning = sent_warning;
    return o;
}

static size_t seal(struct tls_rec *peer, uint8_t type, const void *body, size_t len,
                   uint8_t *out, size_t cap)
{
    size_t n = tls_rec_seal_type(peer, type, body, len, out, cap);
    assert_true(n > 0);
    return n;
}

static size_t craft_tampered(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    size_t n = seal(peer, TLS_REC_APPLICATION_DATA, "PUBLISH", 7, out, cap);
    out[n - 1] ^= 1;
    return n;
}

static size_t craft_replayed(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    size_t n = seal(peer, TLS_REC_APPLICATION_DATA, "PUBLISH", 7, out, cap);
    memcpy(out + n, out, n);
    return 2 * n;
}

static size_t craft_overflow(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    (void)peer;
    (void)cap;
    static const uint8_t h[5] = {23, 3, 3, 0x48, 0x01}; /* 18433 > 2^14 + 2048 */
    memcpy(out, h, 5);
    return 5;
}

static size_t craft_too_short(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    (void)peer;
    (void)cap;
    static const uint8_t r[5 + 10] = {23, 3, 3, 0, 10}; /* shorter than nonce + tag */
    memcpy(out, r, sizeof(r));
    return sizeof(r);
}

static size_t craft_bad_version(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    size_t n = seal(peer, TLS_REC_APPLICATION_DATA, "PUBLISH", 7, out, cap);
    out[2] = 1; /* TLS 1.0 */
    return n;
}

static size_t empty_records(struct tls_rec *peer, int n, uint8_t *out, size_t cap)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += seal(peer, TLS_REC_APPLICATION_DATA, NULL, 0, out + len, cap - len);
    return len;
}

static size_t craft_empty_max(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    size_t n = empty_records(peer, TLS_REC_EMPTY_MAX, out, cap);
    return n + seal(peer, TLS_REC_APPLICATION_DATA, "x", 1, out + n, cap - n);
}

static size_t craft_empty_flood(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    return empty_records(peer, TLS_REC_EMPTY_MAX + 1, out, cap);
}

static size_t warnings(struct tls_rec *peer, int n, uint8_t *out, size_t cap)
{
    static const uint8_t w[2] = {1, TLS_ALERT_USER_CANCELED};
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += seal(peer, TLS_REC_ALERT, w, 2, out + len, cap - len);
    return len;
}

static size_t craft_warnings_max(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    size_t n = 0;
    for (int round = 0; round < 2; round++) { /* data in between starts the count again */
        n += warnings(peer, TLS_REC_WARNINGS_MAX, out + n, cap - n);
        n += seal(peer, TLS_REC_APPLICATION_DATA, "x", 1, out + n, cap - n);
    }
    return n;
}

static size_t craft_warning_flood(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    return warnings(peer, TLS_REC_WARNINGS_MAX + 1, out, cap);
}

static size_t craft_fatal_alert(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    static const uint8_t a[2] = {2, TLS_ALERT_DECODE_ERROR};
    return seal(peer, TLS_REC_ALERT, a, 2, out, cap);
}

static size_t from_client_ssl(struct pair *p, uint8_t *out, size_t cap)
{
    int n = BIO_read(SSL_get_wbio(p->cli), out, (int)cap);
    assert_true(n > 0);
    return (size_t)n;
}

static size_t craft_close_notify(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)peer;
    assert_int_equal(SSL_write(p->cli, "DISCONNECT", 10), 10);
    SSL_shutdown(p->cli);
    return from_client_ssl(p, out, cap);
}

static size_t craft_renegotiation(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)peer;
    assert_int_equal(SSL_renegotiate(p->cli), 1);
    SSL_do_handshake(p->cli); /* an encrypted ClientHello */
    return from_client_ssl(p, out, cap);
}

static size_t craft_key_update_real(struct pair *p, struct tls_rec *peer, uint8_t *out,
                                    size_t cap)
{
    (void)peer;
    assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    assert_int_equal(SSL_write(p->cli, "after-update", 12), 12);
    return from_client_ssl(p, out, cap);
}

static size_t craft_key_update_flood(struct pair *p, struct tls_rec *peer, uint8_t *out,
                                     size_t cap)
{
    (void)peer;
    for (int i = 0; i <= TLS_REC_EMPTY_MAX; i++) {
        assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
        assert_int_equal(SSL_do_handshake(p->cli), 1);
    }
    return from_client_ssl(p, out, cap);
}

static const uint8_t key_update[5] = {24, 0, 0, 1, 0};

static size_t craft_key_update_split(struct pair *p, struct tls_rec *peer, uint8_t *out,
                                     size_t cap)
{
    (void)p;
    size_t n = seal(peer, TLS_REC_HANDSHAKE, key_update, 2, out, cap);
    n += seal(peer, TLS_REC_HANDSHAKE, key_update + 2, 3, out + n, cap - n);
    /* the keys changed: data sealed under the old ones no longer opens */
    return n + seal(peer, TLS_REC_APPLICATION_DATA, "x", 1, out + n, cap - n);
}

static size_t craft_two_key_updates(struct pair *p, struct tls_rec *peer, uint8_t *out,
                                    size_t cap)
{
    (void)p;
    uint8_t two[10];
    memcpy(two, key_update, 5);
    memcpy(two + 5, key_update, 5);
    return seal(peer, TLS_REC_HANDSHAKE, two, sizeof(two), out, cap);
}

static size_t craft_key_update_bad_length(struct pair *p, struct tls_rec *peer, uint8_t *out,
                                          size_t cap)
{
    (void)p;
    static const uint8_t bad[6] = {24, 0, 0, 2, 0, 0};
    return seal(peer, TLS_REC_HANDSHAKE, bad, sizeof(bad), out, cap);
}

static size_t craft_key_update_bad_value(struct pair *p, struct tls_rec *peer, uint8_t *out,
                                         size_t cap)
{
    (void)p;
    static const uint8_t bad[5] = {24, 0, 0, 1, 7};
    return seal(peer, TLS_REC_HANDSHAKE, bad, sizeof(bad), out, cap);
}

static size_t craft_empty_handshake(struct pair *p, struct tls_rec *peer, uint8_t *out,
                                    size_t cap)
{
    (void)p;
    return seal(peer, TLS_REC_HANDSHAKE, NULL, 0, out, cap);
}

static size_t craft_other_handshake(struct pair *p, struct tls_rec *peer, uint8_t *out,
                                    size_t cap)
{
    (void)p;
    static const uint8_t finished[4 + 32] = {20, 0, 0, 32};
    return seal(peer, TLS_REC_HANDSHAKE, finished, sizeof(finished), out, cap);
}

static size_t craft_ccs13(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    (void)peer;
    (void)cap;
    static const uint8_t ccs[6] = {TLS_REC_CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1};
    memcpy(out, ccs, sizeof(ccs));
    return sizeof(ccs);
}

static size_t craft_inner_ccs13(struct pair *p, struct tls_rec *peer, uint8_t *out, size_t cap)
{
    (void)p;
    return seal(peer, TLS_REC_CHANGE_CIPHER_SPEC, "\x01", 1, out, cap);
}

#define NO_ALERT -1
#define OK_WITH(bytes) {.fatal = NO_ALERT, .warning = NO_ALERT, .data = (bytes)}
#define FATAL(a) {.fatal = (a), .warning = NO_ALERT}
#define SAME(n, v13, f, ...) {.name = (n), .tls13 = (v13), .craft = (f), .want = __VA_ARGS__}
#define DIFFERENT(n, v13, f, ours, theirs)                                                     \
    {.name = (n), .tls13 = (v13), .craft = (f), .want = ours,                                  \
     .openssl = &(const struct outcome)theirs}

static const struct layer_case layer_cases[] = {
    SAME("1.2 tampered tag", false, craft_tampered, FATAL(TLS_ALERT_BAD_RECORD_MAC)),
    SAME("1.2 replayed record", false, craft_replayed,
         {.fatal = TLS_ALERT_BAD_RECORD_MAC, .warning = NO_ALERT, .data = 7}),
    SAME("1.2 record version TLS 1.0", false, craft_bad_version,
         FATAL(TLS_ALERT_PROTOCOL_VERSION)),
    SAME("1.3 record version TLS 1.0", true, craft_bad_version, FATAL(TLS_ALERT_DECODE_ERROR)),
    SAME("1.2 record too long", false, craft_overflow, FATAL(TLS_ALERT_RECORD_OVERFLOW)),
    /* OpenSSL's x86-64 AES-CCM code says internal_error; on arm64 it says bad_record_mac */
    {.name = "1.2 record shorter than its tag", .tls13 = false, .craft = craft_too_short,
     .want = FATAL(TLS_ALERT_BAD_RECORD_MAC),
     .openssl = &(const struct outcome)FATAL(TLS_ALERT_INTERNAL_ERROR),
     .openssl_alt = &(const struct outcome)FATAL(TLS_ALERT_BAD_RECORD_MAC)},
    SAME("1.2 32 empty records then data", false, craft_empty_max, OK_WITH(1)),
    SAME("1.2 33 empty records", false, craft_empty_flood, FATAL(TLS_ALERT_UNEXPECTED_MESSAGE)),
    SAME("1.2 4 warnings, data, 4 warnings, data", false, craft_warnings_max, OK_WITH(2)),
    SAME("1.2 5 warnings", false, craft_warning_flood, FATAL(TLS_ALERT_UNEXPECTED_MESSAGE)),
    SAME("1.2 fatal alert received", false, craft_fatal_alert,
         {.fatal = NO_ALERT, .warning = NO_ALERT, .peer_closed = true}),
    SAME("1.2 close_notify after data", false, craft_close_notify,
         {.fatal = NO_ALERT, .warning = NO_ALERT, .data = 10, .peer_closed = true}),
    SAME("1.2 renegotiation", false, craft_renegotiation,
         {.fatal = NO_ALERT, .warning = TLS_ALERT_NO_RENEGOTIATION}),
    SAME("1.3 tampered tag", true, craft_tampered, FATAL(TLS_ALERT_BAD_RECORD_MAC)),
    SAME("1.3 record too long", true, craft_overflow, FATAL(TLS_ALERT_RECORD_OVERFLOW)),
    SAME("1.3 32 empty records then data", true, craft_empty_max, OK_WITH(1)),
    SAME("1.3 33 empty records", true, craft_empty_flood, FATAL(TLS_ALERT_UNEXPECTED_MESSAGE)),
    SAME("1.3 4 user_canceled, data, 4 user_canceled, data", true, craft_warnings_max,
         OK_WITH(2)),
    SAME("1.3 5 user_canceled", true, craft_warning_flood, FATAL(TLS_ALERT_UNEXPECTED_MESSAGE)),
    SAME("1.3 fatal alert received", true, craft_fatal_alert,
         {.fatal = NO_ALERT, .warning = NO_ALERT, .peer_closed = true}),
    SAME("1.3 close_notify after data", true, craft_close_notify,
         {.fatal = NO_ALERT, .warning = NO_ALERT, .data = 10, .peer_closed = true}),
    SAME("1.3 KeyUpdate from a real client", true, craft_key_update_real, OK_WITH(12)),
    DIFFERENT("1.3 33 KeyUpdates from a real client", true, craft_key_update_flood,
              FATAL(TLS_ALERT_UNEXPECTED_MESSAGE), OK_WITH(0)),
    SAME("1.3 KeyUpdate split over two records", true, craft_key_update_split,
         FATAL(TLS_ALERT_BAD_RECORD_MAC)),
    SAME("1.3 two KeyUpdates in one record", true, craft_two_key_updates,
         FATAL(TLS_ALERT_UNEXPECTED_MESSAGE)),
    DIFFERENT("1.3 KeyUpdate with a body of two bytes", true, craft_key_update_bad_length,
              FATAL(TLS_ALERT_DECODE_ERROR), FATAL(TLS_ALERT_ILLEGAL_PARAMETER)),
    SAME("1.3 KeyUpdate with an unknown request", true, craft_key_update_bad_value,
         FATAL(TLS_ALERT_ILLEGAL_PARAMETER)),
    SAME("1.3 zero-length handshake record", true, craft_empty_handshake,
         FATAL(TLS_ALERT_UNEXPECTED_MESSAGE)),
    SAME("1.3 handshake message other than KeyUpdate", true, craft_other_handshake,
         FATAL(TLS_ALERT_UNEXPECTED_MESSAGE)),
    SAME("1.3 ChangeCipherSpec after the handshake", true, craft_ccs13,
         FATAL(TLS_ALERT_UNEXPECTED_MESSAGE)),
    SAME("1.3 protected ChangeCipherSpec", true, craft_inner_ccs13,
         FATAL(TLS_ALERT_UNEXPECTED_MESSAGE)),
};

static void print_outcome(const char *who, const struct outcome *o)
{
    fprintf(stderr, "  %-12s fatal=%d warning=%d data=%zu closed=%d\n", who, o->fatal,
            o->warning, o->data, o->peer_closed);
}

static bool same(const struct outcome *a, const struct outcome *b)
{
    return a->fatal == b->fatal && a->warning == b->warning && a->data == b->data &&
           a->peer_closed == b->peer_closed;
}

static void both_record_layers_agree(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(layer_cases) / sizeof(layer_cases[0]); i++) {
        const struct layer_case *c = &layer_cases[i];
        static uint8_t wire[1 << 16];
        struct outcome got[2] = {0};
        for (int layer = 0; layer < 2; layer++) {
            struct pair p = {0};
            const char *why = NULL;
            if (c->tls13)
                pair_ctx13(&p, "TLS_AES_128_GCM_SHA256");
            else
                pair_ctx(&p, "PSK-AES128-CCM", TLS1_2_VERSION);
            handshake(&p, NULL, NULL);
            /* the keys are taken either way (the client's writing side is sealed from them);
             * for OpenSSL's layer the server SSL stays and reads on */
            char *unread = NULL;
            long unread_len = BIO_get_mem_data(SSL_get_rbio(p.srv), &unread);
            assert_int_equal(unread_len, 0);
            assert_int_equal(tls_rec_take(p.srv, &p.hs, NULL, 0, 0, &p.rec, &why), TLS_REC_OK);
            struct tls_rec *peer = tls_rec_peer(p.rec);
            size_t n = c->craft(&p, peer, wire, sizeof(wire));
            got[layer] = layer == 0 ? through_ours(&p, wire, n) : through_openssl(p.srv, wire, n);
            tls_rec_free(peer);
            pair_free(&p);
        }
        const struct outcome *want_openssl = c->openssl ? c->openssl : &c->want;
        bool ok = same(&got[0], &c->want) &&
                  (same(&got[1], want_openssl) || (c->openssl_alt && same(&got[1], c->openssl_alt)));
        fprintf(stderr, "%s %s\n", !ok ? "WRONG:" : c->openssl ? "differ as documented:" : "agree:",
                c->name);
        if (!ok) {
            print_outcome("want", &c->want);
            if (c->openssl)
                print_outcome("want-openssl", c->openssl);
            print_outcome("psagw", &got[0]);
            print_outcome("openssl", &got[1]);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* The client's Finished record (TLS 1.2, PSK-AES128-GCM-SHA256) re-sealed with `extra` behind
 * the Finished in the same record, as a client could send it. The key block is derived here, on
 * its own (RFC 5246 6.3), from the client's master secret. */
static size_t refinish(SSL *cli, const uint8_t *flight, size_t len, const uint8_t *extra,
                       size_t extra_len, uint8_t *out)
{
    uint8_t master[48], cr[32], sr[32], seed[13 + 64], block[40];
    assert_int_equal(SSL_SESSION_get_master_key(SSL_get_session(cli), master, 48), 48);
    SSL_get_client_random(cli, cr, 32);
    SSL_get_server_random(cli, sr, 32);
    memcpy(seed, "key expansion", 13);
    memcpy(seed + 13, sr, 32);
    memcpy(seed + 45, cr, 32);
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL);
    EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM prf[] = {
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SECRET, master, 48),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof(seed)),
        OSSL_PARAM_END,
    };
    assert_int_equal(EVP_KDF_derive(k, block, sizeof(block), prf), 1);
    EVP_KDF_CTX_free(k);
    EVP_KDF_free(kdf);
    const uint8_t *key = block, *salt = block + 32; /* client write key, client write IV */
    /* the records of the flight: ClientKeyExchange, ChangeCipherSpec, then the Finished */
    size_t off = 0, copied = 0;
    while (off < len && flight[off] != TLS_REC_CHANGE_CIPHER_SPEC)
        off += TLS_REC_HEADER + ((size_t)flight[off + 3] << 8 | flight[off + 4]);
    off += TLS_REC_HEADER + 1;
    memcpy(out, flight, off);
    copied = off;
    const uint8_t *rec = flight + off;
    size_t body = (size_t)rec[3] << 8 | rec[4], plain_len = body - 8 - 16;
    assert_int_equal(rec[0], TLS_REC_HANDSHAKE);
    uint8_t nonce[12], aad[13] = {0}, plain[64];
    memcpy(nonce, salt, 4);
    memcpy(nonce + 4, rec + TLS_REC_HEADER, 8);
    aad[8] = TLS_REC_HANDSHAKE;
    aad[9] = aad[10] = 3;
    aad[11] = (uint8_t)(plain_len >> 8);
    aad[12] = (uint8_t)plain_len;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n;
    assert_int_equal(EVP_DecryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, nonce), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16,
                                         (void *)(rec + TLS_REC_HEADER + 8 + plain_len)),
                     1);
    assert_int_equal(EVP_DecryptUpdate(c, NULL, &n, aad, 13), 1);
    assert_int_equal(EVP_DecryptUpdate(c, plain, &n, rec + TLS_REC_HEADER + 8, (int)plain_len), 1);
    assert_int_equal(EVP_DecryptFinal_ex(c, plain + n, &n), 1);
    assert_int_equal(plain[0], 20); /* Finished */
    memcpy(plain + plain_len, extra, extra_len);
    plain_len += extra_len;
    aad[11] = (uint8_t)(plain_len >> 8);
    aad[12] = (uint8_t)plain_len;
    uint8_t *w = out + copied;
    w[0] = TLS_REC_HANDSHAKE;
    w[1] = w[2] = 3;
    w[3] = (uint8_t)((8 + plain_len + 16) >> 8);
    w[4] = (uint8_t)(8 + plain_len + 16);
    memcpy(w + TLS_REC_HEADER, rec + TLS_REC_HEADER, 8);
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, nonce), 1);
    assert_int_equal(EVP_EncryptUpdate(c, NULL, &n, aad, 13), 1);
    assert_int_equal(EVP_EncryptUpdate(c, w + TLS_REC_HEADER + 8, &n, plain, (int)plain_len), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, w + TLS_REC_HEADER + 8 + plain_len, &n), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16,
                                         w + TLS_REC_HEADER + 8 + plain_len),
                     1);
    EVP_CIPHER_CTX_free(c);
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(master, sizeof(master));
    return copied + TLS_REC_HEADER + 8 + plain_len + 16;
}

/* TLS 1.2: a handshake message in the same record as the client's Finished. OpenSSL read the
 * whole record and holds the bytes after the Finished; taking over would lose them without a
 * word, so the connection keeps OpenSSL's layer, which answers them (here a renegotiation
 * attempt: a warning no_renegotiation) and carries data on. */
static void handshake_bytes_behind_finished_keep_openssl(void **state)
{
    (void)state;
    struct pair p = {0};
    const char *why = NULL;
    pair_ctx(&p, "PSK-AES128-GCM-SHA256", TLS1_2_VERSION);
    memset(&p.hs, 0, sizeof(p.hs));
    p.srv = new_ssl(p.sctx);
    p.cli = new_ssl(p.cctx);
    SSL_set_app_data(p.srv, &p.hs);
    SSL_set_read_ahead(p.srv, 0);
    SSL_set_accept_state(p.srv);
    SSL_set_connect_state(p.cli);
    static uint8_t flight[1 << 14], changed[1 << 14];
    /* ClientHello; ServerHello ... ServerHelloDone; the client's last flight, held back */
    assert_int_equal(SSL_do_handshake(p.cli), -1);
    pump(&p);
    assert_int_equal(SSL_do_handshake(p.srv), -1);
    pump(&p);
    assert_int_equal(SSL_do_handshake(p.cli), -1);
    int len = BIO_read(SSL_get_wbio(p.cli), flight, sizeof(flight));
    assert_true(len > 0);
    static const uint8_t client_hello_stub[4] = {1, 0, 0, 0};
    size_t n = refinish(p.cli, flight, (size_t)len, client_hello_stub, sizeof(client_hello_stub),
                        changed);
    tls_rec_wire_feed(&p.hs.in, changed, n);
    BIO_write(SSL_get_rbio(p.srv), changed, (int)n);
    assert_int_equal(SSL_do_handshake(p.srv), 1);
    pump(&p);
    assert_int_equal(SSL_do_handshake(p.cli), 1);
    assert_true(SSL_has_pending(p.srv));
    assert_int_equal(take(&p, &why), TLS_REC_UNSUPPORTED);
    assert_string_equal(why, "handshake_bytes_pending");
    assert_null(p.rec);
    /* OpenSSL's layer deals with the message: a warning, and the connection goes on */
    sent_fatal = sent_warning = -1;
    SSL_set_info_callback(p.srv, alert_cb);
    assert_int_equal(SSL_write(p.cli, "PINGREQ", 7), 7);
    pump(&p);
    char buf[16];
    assert_int_equal(SSL_read(p.srv, buf, sizeof(buf)), 7);
    assert_int_equal(sent_warning, TLS_ALERT_NO_RENEGOTIATION);
    assert_int_equal(sent_fatal, -1);
    pair_free(&p);
}

/* The worker thread's cipher contexts keep a connection's expanded key between its records;
 * none may keep it once the connection is gone, nor keep an old key after a KeyUpdate */
static void keys_do_not_outlive_their_connection(void **state)
{
    (void)state;
    tls_rec_thread_done();
    for (int v13 = 0; v13 <= 1; v13++) {
        struct pair p = {0};
        const char *why = NULL;
        if (v13)
            pair_ctx13(&p, "TLS_AES_128_GCM_SHA256");
        else
            pair_ctx(&p, "PSK-AES128-GCM-SHA256", TLS1_2_VERSION);
        handshake(&p, NULL, NULL);
        assert_int_equal(take(&p, &why), TLS_REC_OK);
        assert_int_equal(SSL_write(p.cli, "PUBLISH", 7), 7);
        pump(&p);
        expect_from_client(&p, (const uint8_t *)"PUBLISH", 7, 1 << 17);
        send_to_client(&p, (const uint8_t *)"PUBACK", 6, TLS_REC_MAX_PLAIN);
        assert_int_equal(tls_rec_thread_keys(), 2); /* reading and writing, keyed */
        if (v13) {
            /* the client moves to new keys: the contexts holding the old ones go at once */
            assert_int_equal(SSL_key_update(p.cli, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
            assert_int_equal(SSL_write(p.cli, "after", 5), 5);
            pump(&p);
            expect_from_client(&p, (const uint8_t *)"after", 5, 1 << 17);
            assert_int_equal(tls_rec_thread_keys(), 1); /* the new reading key only */
        }
        tls_rec_free(p.rec);
        p.rec = NULL;
        assert_int_equal(tls_rec_thread_keys(), 0);
        pair_free(&p);
    }
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
        cmocka_unit_test(both_record_layers_agree),
        cmocka_unit_test(keys_do_not_outlive_their_connection),
        cmocka_unit_test(handshake_bytes_behind_finished_keep_openssl),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tls_rec_thread_done();
    return rc;
}
