/*
 * Unit tests for psagw's own TLS 1.2 PSK server handshake (gateway/src/net/tls12_psk.c) against
 * OpenSSL as the client, over memory: every suite it runs, with and without the extended master
 * secret, max_fragment_length, the downgrade sentinel, data both ways through the record layer it
 * hands over, the client's flight a byte at a time; wrong keys, unknown identities, tampered and
 * out-of-order messages refused with the right alert; and each kind of ClientHello it must leave
 * to OpenSSL (TLS 1.3, tickets, another preferred suite, fallback, split or malformed hellos).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls12_psk.h"

static const uint8_t psk[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static uint8_t client_key[16];

static unsigned int client_psk(SSL *s, const char *hint, char *id, unsigned int id_max,
                               unsigned char *out, unsigned int max)
{
    (void)hint;
    const char *who = SSL_get_app_data(s);
    snprintf(id, id_max, "%s", who ? who : "dev-1");
    if (max < sizeof(client_key))
        return 0;
    memcpy(out, client_key, sizeof(client_key));
    return sizeof(client_key);
}

static size_t find_psk(void *arg, const uint8_t *id, size_t len, uint8_t *out, size_t max)
{
    int *calls = arg;
    (*calls)++;
    if (len != 5 || memcmp(id, "dev-1", 5) != 0 || max < sizeof(psk))
        return 0;
    memcpy(out, psk, sizeof(psk));
    return sizeof(psk);
}

/* The default listener's TLS 1.2 suites, as tls.c derives them (OpenSSL's order) */
static struct tls12_psk_config listener(void)
{
    struct tls12_psk_config c = {
        .suites = {0xC0A4, 0xC0A8, 0x00A8, 0xC037 /* ECDHE-PSK-AES128-CBC-SHA256 */,
                   0xCCAC /* ECDHE-PSK-CHACHA20-POLY1305 */},
        .n_suites = 5,
        .tls13 = true,
        .tickets = true,
        .max_plain = 16384,
    };
    return c;
}

struct run {
    SSL_CTX *cctx;
    SSL *cli;
    struct tls12_psk *hs;
    struct tls_rec *rec;
    int finds;
    uint8_t hello[4096];
    size_t hello_len;
};

static void client(struct run *r, const char *ciphers, int max_version, long options)
{
    memset(r, 0, sizeof(*r));
    memcpy(client_key, psk, sizeof(psk));
    r->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(r->cctx);
    SSL_CTX_set_min_proto_version(r->cctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(r->cctx, max_version);
    assert_int_equal(SSL_CTX_set_cipher_list(r->cctx, ciphers), 1);
    SSL_CTX_set_options(r->cctx, SSL_OP_NO_TICKET | options);
    SSL_CTX_set_psk_client_callback(r->cctx, client_psk);
    r->cli = SSL_new(r->cctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rb, -1);
    SSL_set_bio(r->cli, rb, wb);
    SSL_set_connect_state(r->cli);
}

static void run_free(struct run *r)
{
    tls12_psk_free(r->hs);
    tls_rec_free(r->rec);
    SSL_free(r->cli);
    SSL_CTX_free(r->cctx);
}

/* What the client wrote since the last call */
static size_t client_out(struct run *r, uint8_t *buf, size_t cap)
{
    int n = BIO_read(SSL_get_wbio(r->cli), buf, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

static void to_client(struct run *r, const uint8_t *p, size_t n)
{
    if (n)
        assert_int_equal(BIO_write(SSL_get_rbio(r->cli), p, (int)n), (int)n);
}

/* The client's ClientHello, and our answer to it */
static int hello(struct run *r, const struct tls12_psk_config *cfg)
{
    assert_int_equal(SSL_do_handshake(r->cli), -1);
    r->hello_len = client_out(r, r->hello, sizeof(r->hello));
    assert_true(r->hello_len > 0);
    uint8_t out[TLS12_PSK_OUT_MAX];
    size_t out_len = 0;
    int rc = tls12_psk_hello(cfg, r->hello, r->hello_len, &r->hs, out, sizeof(out), &out_len);
    if (rc == TLS12_PSK_MORE)
        to_client(r, out, out_len);
    else
        assert_int_equal(out_len, 0);
    return rc;
}

/* The client's second flight given to us `step` bytes at a time; returns the last result */
static int second_flight(struct run *r, size_t step, uint8_t *out, size_t *out_len)
{
    uint8_t flight[2048];
    SSL_do_handshake(r->cli);
    size_t n = client_out(r, flight, sizeof(flight));
    assert_true(n > 0);
    int rc = TLS12_PSK_MORE;
    for (size_t off = 0; off < n && rc == TLS12_PSK_MORE;) {
        size_t k = n - off < step ? n - off : step, used = 0;
        rc = tls12_psk_input(r->hs, find_psk, &r->finds, flight + off, k, &used, out,
                             TLS12_PSK_OUT_MAX, out_len);
        if (rc == TLS12_PSK_MORE) {
            assert_int_equal(used, k);
            assert_int_equal(*out_len, 0);
        }
        off += used;
    }
    return rc;
}

/* A whole handshake; then data both ways through the record layer handed over */
static void full_run(const char *ciphers, long options, size_t step, const char *want_suite,
                     size_t want_max_plain)
{
    struct run r;
    client(&r, ciphers, TLS1_2_VERSION, options);
    if (want_max_plain < 16384) /* code 1..4: 2^(8+code) */
        SSL_set_tlsext_max_fragment_length(r.cli, want_max_plain == 512    ? 1
                                                  : want_max_plain == 1024 ? 2
                                                  : want_max_plain == 2048 ? 3
                                                                           : 4);
    struct tls12_psk_config cfg = listener();
    cfg.suites[cfg.n_suites++] = 0xC0A5; /* AES-256-CCM, CCM_8, PSK ChaCha20 as well */
    cfg.suites[cfg.n_suites++] = 0xC0A9;
    cfg.suites[cfg.n_suites++] = 0xCCAB;
    assert_int_equal(hello(&r, &cfg), TLS12_PSK_MORE);
    uint8_t out[TLS12_PSK_OUT_MAX];
    size_t out_len = 0;
    assert_int_equal(second_flight(&r, step, out, &out_len), TLS12_PSK_DONE);
    assert_int_equal(r.finds, 1);
    assert_string_equal(tls12_psk_suite_name(r.hs), want_suite);
    to_client(&r, out, out_len);
    assert_int_equal(SSL_do_handshake(r.cli), 1);
    assert_string_equal(SSL_get_cipher_name(r.cli), want_suite);
    assert_int_equal(SSL_get_extms_support(r.cli),
                     (options & SSL_OP_NO_EXTENDED_MASTER_SECRET) ? 0 : 1);
    r.rec = tls12_psk_take_record(r.hs);
    assert_non_null(r.rec);
    assert_int_equal(tls_rec_max_plain(r.rec), want_max_plain);
    /* client -> gateway */
    static const char up[] = "CONNECT from the device";
    assert_int_equal(SSL_write(r.cli, up, sizeof(up)), (int)sizeof(up));
    uint8_t buf[4096];
    size_t n = client_out(&r, buf, sizeof(buf)), used = 0, plain = 0;
    uint8_t alert = 0;
    assert_int_equal(tls_rec_open(r.rec, buf, n, &used, &plain, &alert), TLS_REC_OK);
    assert_int_equal(used, n);
    assert_memory_equal(buf, up, sizeof(up));
    /* gateway -> client, more than one record where the client asked for small ones */
    static uint8_t down[3000];
    memset(down, 'x', sizeof(down));
    static uint8_t sealed[8192];
    size_t taken = 0, len = tls_rec_seal(r.rec, down, sizeof(down), sealed, sizeof(sealed), &taken);
    assert_int_equal(taken, sizeof(down));
    to_client(&r, sealed, len);
    size_t got = 0;
    int k;
    while (got < sizeof(down) && (k = SSL_read(r.cli, buf, sizeof(buf))) > 0) {
        assert_true((size_t)k <= want_max_plain);
        assert_memory_equal(buf, down, (size_t)k);
        got += (size_t)k;
    }
    assert_int_equal(got, sizeof(down));
    run_free(&r);
}

static void every_suite_both_ways(void **state)
{
    (void)state;
    full_run("PSK-AES128-CCM", 0, 4096, "PSK-AES128-CCM", 16384);
    full_run("PSK-AES128-CCM8", 0, 4096, "PSK-AES128-CCM8", 16384);
    full_run("PSK-AES128-GCM-SHA256", 0, 4096, "PSK-AES128-GCM-SHA256", 16384);
    full_run("PSK-AES256-CCM", 0, 4096, "PSK-AES256-CCM", 16384);
    full_run("PSK-AES256-CCM8", 0, 4096, "PSK-AES256-CCM8", 16384);
    full_run("PSK-CHACHA20-POLY1305", 0, 4096, "PSK-CHACHA20-POLY1305", 16384);
}

static void without_extended_master_secret(void **state)
{
    (void)state;
    /* Mbed TLS on the devices offers no RFC 7627 extension: the RFC 5246 master secret */
    full_run("PSK-AES128-CCM", SSL_OP_NO_EXTENDED_MASTER_SECRET, 4096, "PSK-AES128-CCM", 16384);
    full_run("PSK-AES128-GCM-SHA256", SSL_OP_NO_EXTENDED_MASTER_SECRET, 4096,
             "PSK-AES128-GCM-SHA256", 16384);
}

static void max_fragment_length_honoured(void **state)
{
    (void)state;
    full_run("PSK-AES128-CCM", 0, 4096, "PSK-AES128-CCM", 1024);
    full_run("PSK-AES128-CCM8", 0, 4096, "PSK-AES128-CCM8", 512);
}

static void flight_a_byte_at_a_time(void **state)
{
    (void)state;
    full_run("PSK-AES128-CCM", 0, 1, "PSK-AES128-CCM", 16384);
    full_run("PSK-AES128-CCM", SSL_OP_NO_EXTENDED_MASTER_SECRET, 7, "PSK-AES128-CCM", 16384);
}

static void server_preference_and_sentinel(void **state)
{
    (void)state;
    struct run r;
    /* the client prefers GCM; the listener's order (CCM first) wins, as with OpenSSL */
    client(&r, "PSK-AES128-GCM-SHA256:PSK-AES128-CCM", TLS1_2_VERSION, 0);
    struct tls12_psk_config cfg = listener();
    assert_int_equal(hello(&r, &cfg), TLS12_PSK_MORE);
    assert_string_equal(tls12_psk_suite_name(r.hs), "PSK-AES128-CCM");
    assert_int_equal(SSL_do_handshake(r.cli), -1); /* reads our flight */
    uint8_t sr[32];
    assert_int_equal(SSL_get_server_random(r.cli, sr, sizeof(sr)), 32);
    /* RFC 8446 4.1.3: a server that speaks TLS 1.3 and answers with 1.2 says so */
    static const uint8_t downgrade[8] = {0x44, 0x4F, 0x57, 0x4E, 0x47, 0x52, 0x44, 0x01};
    assert_memory_equal(sr + 24, downgrade, 8);
    run_free(&r);
    /* without TLS 1.3 on the listener the random is all random */
    client(&r, "PSK-AES128-CCM", TLS1_2_VERSION, 0);
    cfg.tls13 = false;
    assert_int_equal(hello(&r, &cfg), TLS12_PSK_MORE);
    assert_int_equal(SSL_do_handshake(r.cli), -1);
    assert_int_equal(SSL_get_server_random(r.cli, sr, sizeof(sr)), 32);
    assert_memory_not_equal(sr + 24, downgrade, 8);
    run_free(&r);
}

/* A handshake whose second flight fails with `why`, the client seeing alert `alert` */
static void refused(struct run *r, const char *why, int alert)
{
    uint8_t out[TLS12_PSK_OUT_MAX];
    size_t out_len = 0;
    assert_int_equal(second_flight(r, 4096, out, &out_len), TLS12_PSK_FAILED);
    assert_string_equal(tls12_psk_why(r->hs), why);
    assert_int_equal(out_len, 7); /* an alert in the clear: we never changed cipher spec */
    assert_int_equal(out[0], TLS_REC_ALERT);
    assert_int_equal(out[5], 2);
    assert_int_equal(out[6], alert);
    assert_null(tls12_psk_take_record(r->hs));
    to_client(r, out, out_len);
    assert_int_equal(SSL_do_handshake(r->cli), -1);
    /* and the handshake takes nothing more */
    uint8_t junk[8] = {22, 3, 3, 0, 3, 1, 2, 3};
    size_t used;
    assert_int_equal(tls12_psk_input(r->hs, find_psk, &r->finds, junk, sizeof(junk), &used, out,
                                     sizeof(out), &out_len),
                     TLS12_PSK_FAILED);
}

static void wrong_key_and_unknown_identity(void **state)
{
    (void)state;
    struct run r;
    struct tls12_psk_config cfg = listener();
    client(&r, "PSK-AES128-CCM", TLS1_2_VERSION, 0);
    client_key[0] ^= 1; /* the device holds another key: its Finished does not open */
    assert_int_equal(hello(&r, &cfg), TLS12_PSK_MORE);
    refused(&r, "decryption_failed_or_bad_record_mac", TLS_ALERT_BAD_RECORD_MAC);
    run_free(&r);

    client(&r, "PSK-AES128-CCM", TLS1_2_VERSION, 0);
    SSL_set_app_data(r.cli, (void *)"nobody");
    assert_int_equal(hello(&r, &cfg), TLS12_PSK_MORE);
    refused(&r, "unknown_psk_identity", 115);
    assert_int_equal(r.finds, 1);
    run_free(&r);
}

/* Our flight answered, then the client's second flight replaced by `flight` */
static int forged_flight(const uint8_t *flight, size_t n, uint8_t *out, size_t *out_len,
                         const char **why)
{
    struct run r;
    struct tls12_psk_config cfg = listener();
    client(&r, "PSK-AES128-CCM", TLS1_2_VERSION, 0);
    assert_int_equal(hello(&r, &cfg), TLS12_PSK_MORE);
    uint8_t buf[512];
    memcpy(buf, flight, n);
    size_t used = 0;
    int rc =
        tls12_psk_input(r.hs, find_psk, &r.finds, buf, n, &used, out, TLS12_PSK_OUT_MAX, out_len);
    *why = tls12_psk_why(r.hs);
    run_free(&r);
    return rc;
}

static void out_of_order_and_malformed_refused(void **state)
{
    (void)state;
    uint8_t out[TLS12_PSK_OUT_MAX];
    size_t out_len;
    const char *why;
    /* a ChangeCipherSpec before the ClientKeyExchange */
    static const uint8_t ccs_first[] = {20, 3, 3, 0, 1, 1};
    assert_int_equal(forged_flight(ccs_first, sizeof(ccs_first), out, &out_len, &why),
                     TLS12_PSK_FAILED);
    assert_string_equal(why, "unexpected_message");
    assert_int_equal(out[6], TLS_ALERT_UNEXPECTED_MESSAGE);
    /* a Finished in the clear instead of the ClientKeyExchange */
    static const uint8_t fin_first[] = {22, 3, 3, 0, 16, 20, 0, 0,  12, 1, 2,
                                        3,  4, 5, 6, 7,  8,  9, 10, 11, 12};
    assert_int_equal(forged_flight(fin_first, sizeof(fin_first), out, &out_len, &why),
                     TLS12_PSK_FAILED);
    assert_string_equal(why, "unexpected_message");
    /* a ClientKeyExchange whose identity runs past its message */
    static const uint8_t cke_long[] = {22, 3, 3, 0, 9, 16, 0, 0, 5, 0, 9, 'd', 'e', 'v'};
    assert_int_equal(forged_flight(cke_long, sizeof(cke_long), out, &out_len, &why),
                     TLS12_PSK_FAILED);
    assert_string_equal(why, "bad_client_key_exchange");
    assert_int_equal(out[6], TLS_ALERT_DECODE_ERROR);
    /* an empty handshake record (RFC 5246 6.2.1) */
    static const uint8_t empty[] = {22, 3, 3, 0, 0};
    assert_int_equal(forged_flight(empty, sizeof(empty), out, &out_len, &why), TLS12_PSK_FAILED);
    assert_string_equal(why, "unexpected_message");
    /* application data during the handshake */
    static const uint8_t data[] = {23, 3, 3, 0, 2, 'h', 'i'};
    assert_int_equal(forged_flight(data, sizeof(data), out, &out_len, &why), TLS12_PSK_FAILED);
    assert_string_equal(why, "unexpected_message");
    /* another record version, and a record larger than the flight can need */
    static const uint8_t v11[] = {22, 3, 2, 0, 1, 16};
    assert_int_equal(forged_flight(v11, sizeof(v11), out, &out_len, &why), TLS12_PSK_FAILED);
    assert_string_equal(why, "wrong_version_number");
    assert_int_equal(out[6], TLS_ALERT_PROTOCOL_VERSION);
    static const uint8_t big[] = {22, 3, 3, 0x40, 0, 16};
    assert_int_equal(forged_flight(big, sizeof(big), out, &out_len, &why), TLS12_PSK_FAILED);
    assert_string_equal(why, "handshake_record_too_large");
    assert_int_equal(out[6], TLS_ALERT_RECORD_OVERFLOW);
    /* a message announced larger than any of the flight's */
    static const uint8_t huge_msg[] = {22, 3, 3, 0, 4, 16, 0, 0x10, 0};
    assert_int_equal(forged_flight(huge_msg, sizeof(huge_msg), out, &out_len, &why),
                     TLS12_PSK_FAILED);
    assert_string_equal(why, "excessive_message_size");
    /* the client gives up with an alert: nothing is owed back */
    static const uint8_t alert[] = {21, 3, 3, 0, 2, 2, 40};
    out_len = 99;
    assert_int_equal(forged_flight(alert, sizeof(alert), out, &out_len, &why), TLS12_PSK_FAILED);
    assert_string_equal(why, "alert_received");
    assert_int_equal(out_len, 0);
    /* a partial record is kept, not refused */
    static const uint8_t partial[] = {22, 3, 3, 0, 9, 16, 0};
    assert_int_equal(forged_flight(partial, sizeof(partial), out, &out_len, &why), TLS12_PSK_MORE);
    assert_null(why);
}

static void tampered_finished_refused(void **state)
{
    (void)state;
    struct run r;
    struct tls12_psk_config cfg = listener();
    client(&r, "PSK-AES128-CCM", TLS1_2_VERSION, 0);
    assert_int_equal(hello(&r, &cfg), TLS12_PSK_MORE);
    uint8_t flight[512], out[TLS12_PSK_OUT_MAX];
    SSL_do_handshake(r.cli);
    size_t n = client_out(&r, flight, sizeof(flight)), used, out_len;
    flight[n - 1] ^= 0x80; /* the last byte of the Finished record's tag */
    assert_int_equal(
        tls12_psk_input(r.hs, find_psk, &r.finds, flight, n, &used, out, sizeof(out), &out_len),
        TLS12_PSK_FAILED);
    assert_string_equal(tls12_psk_why(r.hs), "decryption_failed_or_bad_record_mac");
    run_free(&r);
}

static void bytes_behind_finished_left_for_the_record_layer(void **state)
{
    (void)state;
    struct run r;
    struct tls12_psk_config cfg = listener();
    client(&r, "PSK-AES128-CCM", TLS1_2_VERSION, 0);
    assert_int_equal(hello(&r, &cfg), TLS12_PSK_MORE);
    uint8_t flight[600], out[TLS12_PSK_OUT_MAX];
    SSL_do_handshake(r.cli);
    size_t n = client_out(&r, flight, sizeof(flight) - 9), used = 0, out_len = 0;
    /* a record (or the start of one) right behind the client's Finished, in the same read */
    memcpy(flight + n, "\x17\x03\x03\x00\x20junk", 9);
    assert_int_equal(
        tls12_psk_input(r.hs, find_psk, &r.finds, flight, n + 9, &used, out, sizeof(out), &out_len),
        TLS12_PSK_DONE);
    assert_int_equal(used, n);
    assert_memory_equal(flight + used, "\x17\x03\x03\x00\x20junk", 9);
    run_free(&r);
}

/* Whether our handshake declines the hello of a client set up so */
static int first_answer(const char *ciphers, int max_version, long options, long mode,
                        const struct tls12_psk_config *cfg)
{
    struct run r;
    client(&r, ciphers, max_version, options);
    if (mode)
        SSL_set_mode(r.cli, mode);
    int rc = hello(&r, cfg);
    if (rc == TLS12_PSK_DECLINED)
        assert_null(r.hs);
    run_free(&r);
    return rc;
}

static void left_to_openssl(void **state)
{
    (void)state;
    struct tls12_psk_config cfg = listener();
    /* TLS 1.3 offered on a listener that has it */
    assert_int_equal(first_answer("PSK-AES128-CCM", TLS1_3_VERSION, 0, 0, &cfg),
                     TLS12_PSK_DECLINED);
    /* a ticket wanted where the listener issues them */
    assert_int_equal(first_answer("PSK-AES128-CCM", TLS1_2_VERSION, 0, 0, &cfg), TLS12_PSK_MORE);
    struct run r;
    client(&r, "PSK-AES128-CCM", TLS1_2_VERSION, 0);
    SSL_clear_options(r.cli, SSL_OP_NO_TICKET);
    assert_int_equal(hello(&r, &cfg), TLS12_PSK_DECLINED);
    run_free(&r);
    /* the listener prefers a suite we do not run (ECDHE-PSK) among those offered */
    assert_int_equal(
        first_answer("ECDHE-PSK-AES128-CBC-SHA256:PSK-AES128-CCM", TLS1_2_VERSION, 0, 0, &cfg),
        TLS12_PSK_MORE); /* CCM comes first in the listener's order */
    assert_int_equal(first_answer("ECDHE-PSK-AES128-CBC-SHA256", TLS1_2_VERSION, 0, 0, &cfg),
                     TLS12_PSK_DECLINED);
    /* no suite in common: OpenSSL's handshake_failure */
    assert_int_equal(first_answer("PSK-AES256-GCM-SHA384", TLS1_2_VERSION, 0, 0, &cfg),
                     TLS12_PSK_DECLINED);
    /* a fallback below the listener's best version (RFC 7507): OpenSSL's inappropriate_fallback */
    assert_int_equal(
        first_answer("PSK-AES128-CCM", TLS1_2_VERSION, 0, SSL_MODE_SEND_FALLBACK_SCSV, &cfg),
        TLS12_PSK_DECLINED);
    cfg.tls13 = false;
    assert_int_equal(
        first_answer("PSK-AES128-CCM", TLS1_2_VERSION, 0, SSL_MODE_SEND_FALLBACK_SCSV, &cfg),
        TLS12_PSK_MORE);
    /* TLS 1.3 offered to a TLS 1.2 listener: answered with 1.2, as OpenSSL would */
    assert_int_equal(first_answer("PSK-AES128-CCM", TLS1_3_VERSION, 0, 0, &cfg), TLS12_PSK_MORE);
}

static void odd_hellos_left_to_openssl(void **state)
{
    (void)state;
    struct tls12_psk_config cfg = listener();
    struct run r;
    client(&r, "PSK-AES128-CCM", TLS1_2_VERSION, 0);
    assert_int_equal(SSL_do_handshake(r.cli), -1);
    uint8_t h[4096], out[TLS12_PSK_OUT_MAX];
    size_t n = client_out(&r, h, sizeof(h)), out_len;
    struct tls12_psk *hs = NULL;
    /* the hello as it came is ours */
    assert_int_equal(tls12_psk_hello(&cfg, h, n, &hs, out, sizeof(out), &out_len), TLS12_PSK_MORE);
    tls12_psk_free(hs);
    /* not all of it yet, or more behind it, or cut anywhere: OpenSSL's */
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(tls12_psk_hello(&cfg, h, cut, &hs, out, sizeof(out), &out_len),
                         TLS12_PSK_DECLINED);
    uint8_t more[4200];
    memcpy(more, h, n);
    memcpy(more + n, "\x15\x03\x03\x00\x02\x01\x00", 7);
    assert_int_equal(tls12_psk_hello(&cfg, more, n + 7, &hs, out, sizeof(out), &out_len),
                     TLS12_PSK_DECLINED);
    /* every byte of the hello changed in turn: ours only where it still reads as a hello, and
     * then a well-formed answer */
    for (size_t i = 0; i < n; i++) {
        memcpy(more, h, n);
        more[i] ^= 0xff;
        int rc = tls12_psk_hello(&cfg, more, n, &hs, out, sizeof(out), &out_len);
        if (rc == TLS12_PSK_MORE) {
            assert_true(out_len > 5 && out_len <= TLS12_PSK_OUT_MAX);
            tls12_psk_free(hs);
        } else {
            assert_int_equal(rc, TLS12_PSK_DECLINED);
        }
    }
    /* extensions we act on, with values we do not take, and a duplicated one (RFC 5246
     * 7.4.1.4): OpenSSL's to refuse */
    static const struct {
        uint16_t type;
        uint8_t len, data[5];
        int want;
    } ext[] = {
        {0x0017, 0, {0}, TLS12_PSK_DECLINED},             /* extended_master_secret again */
        {0xff01, 2, {1, 0}, TLS12_PSK_DECLINED},          /* renegotiation_info, not empty */
        {0x0001, 1, {5}, TLS12_PSK_DECLINED},             /* max_fragment_length 5 */
        {0x002b, 3, {2, 3, 1}, TLS12_PSK_DECLINED},       /* supported_versions: TLS 1.0 only */
        {0x002b, 5, {4, 3, 4, 3, 3}, TLS12_PSK_DECLINED}, /* TLS 1.3 and 1.2 */
        {0x002b, 3, {2, 3, 3}, TLS12_PSK_MORE},           /* TLS 1.2 only */
        {0x7777, 2, {1, 2}, TLS12_PSK_MORE},              /* unknown: ignored */
    };
    for (size_t e = 0; e < sizeof(ext) / sizeof(ext[0]); e++) {
        memcpy(more, h, n);
        size_t add = 4 + ext[e].len, m = n;
        more[m++] = (uint8_t)(ext[e].type >> 8);
        more[m++] = (uint8_t)ext[e].type;
        more[m++] = 0;
        more[m++] = ext[e].len;
        memcpy(more + m, ext[e].data, ext[e].len);
        m += ext[e].len;
        /* the record, message and extensions lengths grow by `add` */
        size_t rec = ((size_t)more[3] << 8 | more[4]) + add;
        more[3] = (uint8_t)(rec >> 8);
        more[4] = (uint8_t)rec;
        more[8] = (uint8_t)(more[8] + add); /* message length < 256 here */
        assert_true(more[8] >= add);
        size_t at = 9 + 2 + 32;
        at += 1 + more[at];
        at += 2 + ((size_t)more[at] << 8 | more[at + 1]);
        at += 1 + more[at];
        size_t el = ((size_t)more[at] << 8 | more[at + 1]) + add;
        more[at] = (uint8_t)(el >> 8);
        more[at + 1] = (uint8_t)el;
        int rc = tls12_psk_hello(&cfg, more, m, &hs, out, sizeof(out), &out_len);
        assert_int_equal(rc, ext[e].want);
        tls12_psk_free(hs);
        hs = NULL;
    }
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_suite_both_ways),
        cmocka_unit_test(without_extended_master_secret),
        cmocka_unit_test(max_fragment_length_honoured),
        cmocka_unit_test(flight_a_byte_at_a_time),
        cmocka_unit_test(server_preference_and_sentinel),
        cmocka_unit_test(wrong_key_and_unknown_identity),
        cmocka_unit_test(out_of_order_and_malformed_refused),
        cmocka_unit_test(tampered_finished_refused),
        cmocka_unit_test(bytes_behind_finished_left_for_the_record_layer),
        cmocka_unit_test(left_to_openssl),
        cmocka_unit_test(odd_hellos_left_to_openssl),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tls_rec_thread_done();
    return rc;
}
