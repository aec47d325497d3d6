/*
 * tls12_psk.c: psagw's own server side of a full TLS 1.2 PSK handshake (see tls12_psk.h for
 * why, docs/tls-handshake.md for the rules and what is declined).
 *
 * The exchange (RFC 5246 7.3; RFC 4279 2: no ServerKeyExchange, as psagw sends no identity
 * hint; no Certificate, no session id, as psagw caches no sessions):
 *
 *   ClientHello                    -->
 *                                  <--  ServerHello, ServerHelloDone       (one record)
 *   ClientKeyExchange (identity)
 *   ChangeCipherSpec
 *   Finished                       -->
 *                                  <--  ChangeCipherSpec, Finished
 *
 * - premaster secret (RFC 4279 2): uint16 N, N zero bytes, uint16 N, the PSK (N bytes);
 * - master secret (48 bytes): PRF(pms, "extended master secret", SHA-256(ClientHello ..
 *   ClientKeyExchange)) when the client offered RFC 7627's extension (echoed then), else
 *   PRF(pms, "master secret", client_random + server_random) (RFC 5246 8.1);
 * - Finished (RFC 5246 7.4.9): PRF(master, "client finished" | "server finished",
 *   SHA-256(every handshake message before it)), 12 bytes, under the new keys;
 * - the ServerHello echoes renegotiation_info (RFC 5746 3.6) and max_fragment_length (RFC 6066
 *   4), and ends its random with the RFC 8446 4.1.3 downgrade sentinel on a listener that also
 *   speaks TLS 1.3.
 *
 * Until our ChangeCipherSpec our alerts go in the clear (RFC 5246 7.1: the pending write state
 * becomes current only then), as OpenSSL's do.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Update: see the transcript below */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "tls12_psk.h"
#include "random.h"

/* handshake message types (RFC 5246 7.4) */
#define HS_CLIENT_HELLO 1
#define HS_SERVER_HELLO 2
#define HS_SERVER_HELLO_DONE 14
#define HS_CLIENT_KEY_EXCHANGE 16
#define HS_FINISHED 20

/* extensions and signalling suites we act on */
#define EXT_MAX_FRAGMENT_LENGTH 0x0001    /* RFC 6066 4 */
#define EXT_EXTENDED_MASTER_SECRET 0x0017 /* RFC 7627 */
#define EXT_SESSION_TICKET 0x0023         /* RFC 5077 */
#define EXT_SUPPORTED_VERSIONS 0x002b     /* RFC 8446 4.2.1 */
#define EXT_RENEGOTIATION_INFO 0xff01     /* RFC 5746 */
#define SCSV_RENEGOTIATION 0x00ff         /* RFC 5746 3.3 */
#define SCSV_FALLBACK 0x5600              /* RFC 7507 */

#define ALERT_DECRYPT_ERROR 51
#define ALERT_UNKNOWN_PSK_IDENTITY 115 /* RFC 4279 2 */

#define FINISHED_LEN 12
#define PSK_MAX 256 /* longer keys are refused (the registry holds 16..64 bytes) */
/* The client's second flight is small: a ClientKeyExchange with an identity of at most a few
 * hundred bytes, a ChangeCipherSpec, a Finished. Records and messages beyond these are refused. */
#define RECORD_MAX 640
#define MSG_MAX 512

enum step { WAIT_KEY_EXCHANGE, WAIT_CHANGE_CIPHER_SPEC, WAIT_FINISHED, FINISHED, FAILED };

struct tls12_psk {
    /* SHA-256 of the handshake messages so far, on OpenSSL's SHA-2 functions: EVP's digest
     * context cost an allocation and a copy for each hash taken mid-way */
    SHA256_CTX transcript;
    struct tls_rec *rec;    /* the keys, once the ClientKeyExchange is in */
    const char *why;
    const char *suite_name;
    uint16_t suite;
    uint16_t max_plain;
    uint16_t rec_len; /* bytes of a record still arriving, in record[] */
    uint16_t msg_len; /* bytes of a handshake message still arriving, in msg[] */
    enum step step;
    bool ems;
    uint8_t client_random[32], server_random[32];
    uint8_t master[48];
    uint8_t session_hash[32]; /* SHA-256(ClientHello .. ClientKeyExchange) */
    uint8_t record[RECORD_MAX];
    uint8_t msg[MSG_MAX];
};

/* ---- reading a ClientHello ---- */

/* A bounds-checked reader: a read past the end sets `bad` and yields zeros / NULL. */
struct reader {
    const uint8_t *p;
    size_t n;
    bool bad;
};

static const uint8_t *take(struct reader *r, size_t k)
{
    if (r->bad || r->n < k) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += k;
    r->n -= k;
    return p;
}

static uint32_t get(struct reader *r, size_t k)
{
    const uint8_t *p = take(r, k);
    uint32_t v = 0;
    for (size_t i = 0; p && i < k; i++)
        v = v << 8 | p[i];
    return v;
}

/* What a ClientHello asks for, as far as we act on it */
struct offer {
    const uint8_t *random;
    const uint8_t *suites; /* the client's cipher_suites vector */
    size_t suites_len;
    uint8_t mfl; /* max_fragment_length code 1..4, or 0 */
    bool ems, renegotiation_info;
};

static bool offered(const struct offer *o, uint16_t suite)
{
    for (size_t i = 0; i + 1 < o->suites_len; i += 2)
        if ((o->suites[i] << 8 | o->suites[i + 1]) == suite)
            return true;
    return false;
}

/* supported_versions (RFC 8446 4.2.1): whether we may answer with TLS 1.2 here */
static bool versions_allow_tls12(const struct tls12_psk_config *cfg, const uint8_t *e, size_t n)
{
    struct reader r = {e, n, false};
    size_t len = get(&r, 1);
    const uint8_t *v = take(&r, len);
    if (r.bad || r.n != 0 || len < 2 || len % 2)
        return false;
    bool tls12 = false;
    for (size_t i = 0; i < len; i += 2) {
        uint16_t ver = (uint16_t)(v[i] << 8 | v[i + 1]);
        if (ver == 0x0304 && cfg->tls13)
            return false; /* OpenSSL runs TLS 1.3 */
        tls12 |= ver == 0x0303;
    }
    return tls12;
}

/*
 * Parses the body of a ClientHello (RFC 5246 7.4.1.2) into *o; false when the handshake is not
 * ours to run (OpenSSL will take it, and its alert if the hello is malformed).
 */
static bool read_hello(const struct tls12_psk_config *cfg, const uint8_t *body, size_t len,
                       struct offer *o)
{
    struct reader r = {body, len, false};
    if (get(&r, 2) != 0x0303) /* client_version: exactly TLS 1.2 */
        return false;
    o->random = take(&r, 32);
    size_t sid = get(&r, 1);
    take(&r, sid);
    o->suites_len = get(&r, 2);
    o->suites = take(&r, o->suites_len);
    size_t ncomp = get(&r, 1);
    const uint8_t *comp = take(&r, ncomp);
    if (r.bad || sid > 32 || o->suites_len < 2 || o->suites_len % 2 || ncomp < 1 ||
        !memchr(comp, 0, ncomp))
        return false;
    if (offered(o, SCSV_FALLBACK) && cfg->tls13)
        return false; /* a fallback below our best version: OpenSSL sends inappropriate_fallback */
    o->renegotiation_info = offered(o, SCSV_RENEGOTIATION);
    if (r.n == 0)
        return true; /* no extensions */
    size_t ext_len = get(&r, 2);
    if (r.bad || ext_len != r.n)
        return false;
    uint16_t seen[64];
    size_t n_seen = 0;
    while (r.n > 0) {
        uint16_t type = (uint16_t)get(&r, 2);
        size_t n = get(&r, 2);
        const uint8_t *e = take(&r, n);
        if (r.bad || n_seen == sizeof(seen) / sizeof(seen[0]))
            return false;
        for (size_t i = 0; i < n_seen; i++)
            if (seen[i] == type)
                return false; /* RFC 5246 7.4.1.4: each type at most once */
        seen[n_seen++] = type;
        switch (type) {
        case EXT_MAX_FRAGMENT_LENGTH:
            if (n != 1 || e[0] < 1 || e[0] > 4)
                return false;
            o->mfl = e[0];
            break;
        case EXT_EXTENDED_MASTER_SECRET:
            if (n != 0)
                return false;
            o->ems = true;
            break;
        case EXT_RENEGOTIATION_INFO:
            if (n != 1 || e[0] != 0) /* an initial handshake: empty renegotiated_connection */
                return false;
            o->renegotiation_info = true;
            break;
        case EXT_SESSION_TICKET:
            if (cfg->tickets)
                return false; /* OpenSSL issues tickets and resumes from them */
            break;
        case EXT_SUPPORTED_VERSIONS:
            if (!versions_allow_tls12(cfg, e, n))
                return false;
            break;
        default:
            break; /* nothing to do for a PSK suite (SNI, groups, signature algorithms, ...) */
        }
    }
    return true;
}

/* The listener's most preferred suite the client offers (OpenSSL's server preference), if we
 * run it; 0 when OpenSSL would choose another (or none) */
static uint16_t choose_suite(const struct tls12_psk_config *cfg, const struct offer *o)
{
    for (size_t i = 0; i < cfg->n_suites; i++)
        if (offered(o, cfg->suites[i]))
            return tls_rec_psk_suite12(cfg->suites[i]) ? cfg->suites[i] : 0;
    return 0;
}

/* ---- our messages ---- */

static void put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put24(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

/* ServerHello + ServerHelloDone in one handshake record at out; returns its length */
static size_t server_flight(const struct tls12_psk *hs, const struct offer *o, uint8_t *out)
{
    uint8_t *m = out + TLS_REC_HEADER, *p = m + 4;
    *p++ = 3;
    *p++ = 3;
    memcpy(p, hs->server_random, 32);
    p += 32;
    *p++ = 0; /* no session id: nothing to resume */
    put16(p, hs->suite);
    p += 2;
    *p++ = 0; /* null compression */
    uint8_t *ext = p;
    p += 2;
    if (o->renegotiation_info) {
        put16(p, EXT_RENEGOTIATION_INFO);
        put16(p + 2, 1);
        p[4] = 0;
        p += 5;
    }
    if (o->ems) {
        put16(p, EXT_EXTENDED_MASTER_SECRET);
        put16(p + 2, 0);
        p += 4;
    }
    if (o->mfl) {
        put16(p, EXT_MAX_FRAGMENT_LENGTH);
        put16(p + 2, 1);
        p[4] = o->mfl;
        p += 5;
    }
    if (p == ext + 2)
        p = ext; /* no extensions: no extensions block */
    else
        put16(ext, (size_t)(p - ext - 2));
    m[0] = HS_SERVER_HELLO;
    put24(m + 1, (size_t)(p - m - 4));
    p[0] = HS_SERVER_HELLO_DONE;
    put24(p + 1, 0);
    p += 4;
    out[0] = TLS_REC_HANDSHAKE;
    out[1] = 3;
    out[2] = 3;
    put16(out + 3, (size_t)(p - m));
    return (size_t)(p - out);
}

static const uint8_t downgrade_sentinel[8] = {0x44, 0x4F, 0x57, 0x4E, 0x47, 0x52, 0x44, 0x01};

int tls12_psk_hello(const struct tls12_psk_config *cfg, const uint8_t *in, size_t len,
                    struct tls12_psk **out_hs, uint8_t *out, size_t cap, size_t *out_len)
{
    *out_hs = NULL;
    *out_len = 0;
    /* one handshake record (any TLS 1.x record version, as OpenSSL takes) holding exactly one
     * ClientHello; nothing after it (a client sends nothing more before our answer) */
    if (!cfg || cap < TLS12_PSK_OUT_MAX || len < TLS_REC_HEADER + 4 || in[0] != TLS_REC_HANDSHAKE ||
        in[1] != 3 || in[2] < 1 || in[2] > 3)
        return TLS12_PSK_DECLINED;
    size_t body = (size_t)in[3] << 8 | in[4];
    const uint8_t *m = in + TLS_REC_HEADER;
    size_t mlen = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];
    if (body > TLS_REC_MAX_PLAIN || len != TLS_REC_HEADER + body || m[0] != HS_CLIENT_HELLO ||
        body != 4 + mlen)
        return TLS12_PSK_DECLINED;
    struct offer o = {0};
    uint16_t suite;
    if (!read_hello(cfg, m + 4, mlen, &o) || !(suite = choose_suite(cfg, &o)))
        return TLS12_PSK_DECLINED;
    struct tls12_psk *hs = calloc(1, sizeof(*hs));
    if (!hs)
        return TLS12_PSK_FAILED;
    hs->suite = suite;
    hs->suite_name = tls_rec_psk_suite12(suite);
    hs->ems = o.ems;
    size_t max = cfg->max_plain;
    if (o.mfl && ((size_t)256 << o.mfl) < max)
        max = (size_t)256 << o.mfl; /* 2^9 .. 2^12 */
    hs->max_plain = (uint16_t)max;
    memcpy(hs->client_random, o.random, 32);
    size_t flight;
    if (!SHA256_Init(&hs->transcript) || random_draw(hs->server_random, 32) != 0)
        goto fail;
    if (cfg->tls13)
        memcpy(hs->server_random + 24, downgrade_sentinel, 8);
    flight = server_flight(hs, &o, out);
    if (!SHA256_Update(&hs->transcript, m, 4 + mlen) ||
        !SHA256_Update(&hs->transcript, out + TLS_REC_HEADER, flight - TLS_REC_HEADER))
        goto fail;
    hs->step = WAIT_KEY_EXCHANGE;
    *out_hs = hs;
    *out_len = flight;
    return TLS12_PSK_MORE;
fail:
    tls12_psk_free(hs);
    return TLS12_PSK_FAILED;
}

/* ---- the client's second flight ---- */

/* Ends the handshake: a fatal alert in the clear at out (if one is owed) */
static int fail(struct tls12_psk *hs, uint8_t alert, const char *why, uint8_t *out, size_t *out_len)
{
    hs->step = FAILED;
    hs->why = why;
    if (alert) {
        const uint8_t rec[7] = {TLS_REC_ALERT, 3, 3, 0, 2, 2, alert};
        memcpy(out, rec, sizeof(rec));
        *out_len = sizeof(rec);
    }
    return TLS12_PSK_FAILED;
}

/* The ClientKeyExchange (RFC 4279 2: opaque psk_identity<0..2^16-1>): the PSK, the master
 * secret, the keys. Returns 0, or an alert with hs->why set. */
static uint8_t key_exchange(struct tls12_psk *hs, const uint8_t *m, size_t len,
                            tls12_psk_find_fn find, void *arg)
{
    struct reader r = {m + 4, len - 4, false};
    size_t id_len = get(&r, 2);
    const uint8_t *id = take(&r, id_len);
    if (r.bad || r.n != 0) {
        hs->why = "bad_client_key_exchange";
        return TLS_ALERT_DECODE_ERROR;
    }
    uint8_t psk[PSK_MAX], pms[4 + 2 * PSK_MAX];
    size_t n = find(arg, id, id_len, psk, sizeof(psk));
    if (n == 0 || n > PSK_MAX) {
        OPENSSL_cleanse(psk, sizeof(psk));
        hs->why = "unknown_psk_identity";
        return ALERT_UNKNOWN_PSK_IDENTITY;
    }
    put16(pms, n);
    memset(pms + 2, 0, n);
    put16(pms + 2 + n, n);
    memcpy(pms + 4 + n, psk, n);
    OPENSSL_cleanse(psk, sizeof(psk));
    SHA256_CTX copy;
    bool ok = SHA256_Update(&hs->transcript, m, len);
    copy = hs->transcript;
    ok = ok && SHA256_Final(hs->session_hash, &copy);
    ok = ok && (hs->ems ? tls_rec_prf12(pms, 4 + 2 * n, "extended master secret", hs->session_hash,
                                        32, NULL, 0, hs->master, 48)
                        : tls_rec_prf12(pms, 4 + 2 * n, "master secret", hs->client_random, 32,
                                        hs->server_random, 32, hs->master, 48)) == 0;
    OPENSSL_cleanse(pms, sizeof(pms));
    if (!ok || tls_rec_new12(hs->suite, hs->master, hs->client_random, hs->server_random,
                             hs->max_plain, &hs->rec) != TLS_REC_OK) {
        hs->why = "key_derivation_failed";
        return TLS_ALERT_INTERNAL_ERROR;
    }
    return 0;
}

/* The client's Finished checked, ours at out (after our ChangeCipherSpec). Returns 0, or an
 * alert with hs->why set. */
static uint8_t finished(struct tls12_psk *hs, const uint8_t *m, size_t len, uint8_t *out,
                        size_t *out_len)
{
    uint8_t want[FINISHED_LEN], hash[32];
    if (len != 4 + FINISHED_LEN) {
        hs->why = "bad_finished";
        return TLS_ALERT_DECODE_ERROR;
    }
    if (tls_rec_prf12(hs->master, 48, "client finished", hs->session_hash, 32, NULL, 0, want,
                      sizeof(want)) != 0) {
        hs->why = "key_derivation_failed";
        return TLS_ALERT_INTERNAL_ERROR;
    }
    if (CRYPTO_memcmp(want, m + 4, FINISHED_LEN) != 0) {
        hs->why = "digest_check_failed"; /* OpenSSL's words */
        return ALERT_DECRYPT_ERROR;
    }
    uint8_t msg[4 + FINISHED_LEN] = {HS_FINISHED, 0, 0, FINISHED_LEN};
    if (!SHA256_Update(&hs->transcript, m, len) || !SHA256_Final(hash, &hs->transcript) ||
        tls_rec_prf12(hs->master, 48, "server finished", hash, 32, NULL, 0, msg + 4,
                      FINISHED_LEN) != 0) {
        hs->why = "key_derivation_failed";
        return TLS_ALERT_INTERNAL_ERROR;
    }
    static const uint8_t ccs[6] = {TLS_REC_CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1};
    memcpy(out, ccs, sizeof(ccs));
    size_t n = tls_rec_seal_type(hs->rec, TLS_REC_HANDSHAKE, msg, sizeof(msg), out + sizeof(ccs),
                                 TLS12_PSK_OUT_MAX - sizeof(ccs));
    if (n == 0) {
        hs->why = "key_derivation_failed";
        return TLS_ALERT_INTERNAL_ERROR;
    }
    *out_len = sizeof(ccs) + n;
    OPENSSL_cleanse(hs->master, sizeof(hs->master));
    return 0;
}

/* Handshake content p[0..n) of the current step (in the clear before the client's
 * ChangeCipherSpec, opened after it): complete messages are handled as they fill up. */
static int handshake_bytes(struct tls12_psk *hs, const uint8_t *p, size_t n, tls12_psk_find_fn find,
                           void *arg, uint8_t *out, size_t *out_len)
{
    if (n == 0) /* RFC 5246 6.2.1: no empty handshake fragments */
        return fail(hs, TLS_ALERT_UNEXPECTED_MESSAGE, "unexpected_message", out, out_len);
    if (hs->step == WAIT_CHANGE_CIPHER_SPEC)
        return fail(hs, TLS_ALERT_UNEXPECTED_MESSAGE, "unexpected_message", out, out_len);
    if (n > (size_t)(MSG_MAX - hs->msg_len))
        return fail(hs, TLS_ALERT_ILLEGAL_PARAMETER, "excessive_message_size", out, out_len);
    memcpy(hs->msg + hs->msg_len, p, n);
    hs->msg_len = (uint16_t)(hs->msg_len + n);
    if (hs->msg_len < 4)
        return TLS12_PSK_MORE;
    size_t len = 4 + ((size_t)hs->msg[1] << 16 | (size_t)hs->msg[2] << 8 | hs->msg[3]);
    if (len > MSG_MAX)
        return fail(hs, TLS_ALERT_ILLEGAL_PARAMETER, "excessive_message_size", out, out_len);
    if (hs->msg_len < len)
        return TLS12_PSK_MORE;
    /* a message must end its record here: the ChangeCipherSpec follows the ClientKeyExchange,
     * and nothing follows the Finished before our answer */
    if (hs->msg_len > len)
        return fail(hs, TLS_ALERT_UNEXPECTED_MESSAGE, "unexpected_message", out, out_len);
    uint8_t want = hs->step == WAIT_KEY_EXCHANGE ? HS_CLIENT_KEY_EXCHANGE : HS_FINISHED;
    if (hs->msg[0] != want)
        return fail(hs, TLS_ALERT_UNEXPECTED_MESSAGE, "unexpected_message", out, out_len);
    hs->msg_len = 0;
    uint8_t alert = want == HS_CLIENT_KEY_EXCHANGE ? key_exchange(hs, hs->msg, len, find, arg)
                                                   : finished(hs, hs->msg, len, out, out_len);
    if (alert)
        return fail(hs, alert, hs->why, out, out_len);
    hs->step = want == HS_CLIENT_KEY_EXCHANGE ? WAIT_CHANGE_CIPHER_SPEC : FINISHED;
    return hs->step == FINISHED ? TLS12_PSK_DONE : TLS12_PSK_MORE;
}

/* One whole record of the client's. */
static int client_record(struct tls12_psk *hs, uint8_t *rec, size_t len, tls12_psk_find_fn find,
                         void *arg, uint8_t *out, size_t *out_len)
{
    uint8_t type = rec[0], *p = rec + TLS_REC_HEADER;
    size_t n = len - TLS_REC_HEADER;
    if (hs->step == WAIT_FINISHED) { /* the client's records are protected from here on */
        uint8_t alert = tls_rec_open_record(hs->rec, rec, len, &type, &p, &n);
        if (alert)
            return fail(hs, alert,
                        alert == TLS_ALERT_BAD_RECORD_MAC ? "decryption_failed_or_bad_record_mac"
                                                          : "bad_record",
                        out, out_len);
    }
    switch (type) {
    case TLS_REC_HANDSHAKE:
        return handshake_bytes(hs, p, n, find, arg, out, out_len);
    case TLS_REC_CHANGE_CIPHER_SPEC:
        if (hs->step != WAIT_CHANGE_CIPHER_SPEC || n != 1 || p[0] != 1)
            return fail(hs, TLS_ALERT_UNEXPECTED_MESSAGE, "unexpected_message", out, out_len);
        hs->step = WAIT_FINISHED;
        return TLS12_PSK_MORE;
    case TLS_REC_ALERT:
        /* the client gave up (a warning here would only be close_notify or user_canceled) */
        return fail(hs, 0, "alert_received", out, out_len);
    default:
        return fail(hs, TLS_ALERT_UNEXPECTED_MESSAGE, "unexpected_message", out, out_len);
    }
}

/* A record header of the client's second flight: TLS 1.2's version, no larger than we take */
static bool header_ok(struct tls12_psk *hs, const uint8_t *h, uint8_t *out, size_t *out_len)
{
    if (h[1] != 3 || h[2] != 3) {
        fail(hs, TLS_ALERT_PROTOCOL_VERSION, "wrong_version_number", out, out_len);
        return false;
    }
    if (TLS_REC_HEADER + ((size_t)h[3] << 8 | h[4]) > RECORD_MAX) {
        fail(hs, TLS_ALERT_RECORD_OVERFLOW, "handshake_record_too_large", out, out_len);
        return false;
    }
    return true;
}

/* The next whole record: in place in `in` when it is all there, else gathered in hs->record.
 * Returns 1 with *rec set, 0 when the input ran out, -1 on a record we refuse (alert in out). */
static int next_record(struct tls12_psk *hs, uint8_t *in, size_t len, size_t *off, uint8_t **rec,
                       size_t *rec_len, uint8_t *out, size_t *out_len)
{
    if (hs->rec_len == 0 && len - *off >= TLS_REC_HEADER) { /* the usual case */
        const uint8_t *h = in + *off;
        size_t whole = TLS_REC_HEADER + ((size_t)h[3] << 8 | h[4]);
        if (!header_ok(hs, h, out, out_len))
            return -1;
        if (len - *off >= whole) {
            *rec = in + *off;
            *rec_len = whole;
            *off += whole;
            return 1;
        }
    }
    while (*off < len) { /* the header, then the body, as they come */
        size_t whole = TLS_REC_HEADER;
        if (hs->rec_len >= TLS_REC_HEADER)
            whole += (size_t)hs->record[3] << 8 | hs->record[4];
        size_t k = whole - hs->rec_len < len - *off ? whole - hs->rec_len : len - *off;
        memcpy(hs->record + hs->rec_len, in + *off, k);
        hs->rec_len = (uint16_t)(hs->rec_len + k);
        *off += k;
        if (hs->rec_len < whole)
            return 0;
        if (whole == TLS_REC_HEADER) {
            if (!header_ok(hs, hs->record, out, out_len))
                return -1;
            if (hs->record[3] != 0 || hs->record[4] != 0)
                continue; /* the body next */
        }
        *rec = hs->record;
        *rec_len = hs->rec_len;
        hs->rec_len = 0;
        return 1;
    }
    return 0;
}

int tls12_psk_input(struct tls12_psk *hs, tls12_psk_find_fn find, void *arg, uint8_t *in,
                    size_t len, size_t *used, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t off = 0;
    int rc = TLS12_PSK_MORE;
    *out_len = 0;
    if (hs->step == FINISHED || hs->step == FAILED || cap < TLS12_PSK_OUT_MAX)
        rc = fail(hs, TLS_ALERT_INTERNAL_ERROR, "handshake_state", out, out_len);
    while (rc == TLS12_PSK_MORE) {
        uint8_t *rec;
        size_t rec_len;
        int got = next_record(hs, in, len, &off, &rec, &rec_len, out, out_len);
        if (got < 0)
            rc = TLS12_PSK_FAILED;
        else if (got == 0)
            break;
        else
            rc = client_record(hs, rec, rec_len, find, arg, out, out_len);
    }
    *used = off;
    return rc;
}

struct tls_rec *tls12_psk_take_record(struct tls12_psk *hs)
{
    if (hs->step != FINISHED)
        return NULL;
    struct tls_rec *r = hs->rec;
    hs->rec = NULL;
    return r;
}

const char *tls12_psk_suite_name(const struct tls12_psk *hs)
{
    return hs->suite_name;
}

const char *tls12_psk_why(const struct tls12_psk *hs)
{
    return hs->why;
}

void tls12_psk_free(struct tls12_psk *hs)
{
    if (!hs)
        return;
    tls_rec_free(hs->rec);
    OPENSSL_cleanse(hs, sizeof(*hs));
    free(hs);
}
