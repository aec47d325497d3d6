/*
 * tls_record.c: psagw's own TLS 1.2 AEAD record layer, after OpenSSL's handshake (see
 * tls_record.h for why, docs/tls-record-layer.md for the rules followed).
 *
 * Keys (RFC 5246 6.3): key_block = PRF(master_secret, "key expansion", server_random +
 * client_random), cut into client MAC key, server MAC key (both empty for AEAD suites), client
 * write key, server write key, client IV, server IV. The server reads with the client's.
 *
 * Records (RFC 5246 6.2.3.3): additional data = seq_num(8) + type(1) + version(2) + length(2)
 * of the plaintext. GCM (RFC 5288) and CCM (RFC 6655): nonce = the 4-byte implicit IV + an
 * 8-byte explicit nonce sent before the ciphertext; ChaCha20-Poly1305 (RFC 7905): nonce = the
 * 12-byte IV XOR the sequence number, nothing explicit. Our explicit nonce for sequence number
 * s is the one OpenSSL sent with the Finished (s = 0) plus s: OpenSSL's own rule (it sends the
 * sequence number with CCM, a random start counted up with GCM), so no nonce repeats under a
 * key across the hand-over.
 *
 * Cipher contexts: one per cipher and direction per thread, re-keyed for each record, so a
 * connection holds raw keys only (about 150 bytes in all instead of OpenSSL's ~11 KB).
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tls_record.h"

enum tls_rec_alg {
    ALG_AES128_GCM,
    ALG_AES256_GCM,
    ALG_AES128_CCM,
    ALG_AES256_CCM,
    ALG_AES128_CCM8,
    ALG_AES256_CCM8,
    ALG_CHACHA20_POLY1305,
    ALG_COUNT
};

static const struct {
    const char *evp_name;
    uint8_t key_len, iv_len, tag_len;
    bool ccm;
} alg_info[ALG_COUNT] = {
    [ALG_AES128_GCM] = {"AES-128-GCM", 16, 4, 16, false},
    [ALG_AES256_GCM] = {"AES-256-GCM", 32, 4, 16, false},
    [ALG_AES128_CCM] = {"AES-128-CCM", 16, 4, 16, true},
    [ALG_AES256_CCM] = {"AES-256-CCM", 32, 4, 16, true},
    [ALG_AES128_CCM8] = {"AES-128-CCM", 16, 4, 8, true},
    [ALG_AES256_CCM8] = {"AES-256-CCM", 32, 4, 8, true},
    [ALG_CHACHA20_POLY1305] = {"ChaCha20-Poly1305", 32, 12, 16, false},
};

struct tls_rec {
    uint64_t id; /* unique per record layer: which one a thread's cipher context is keyed for */
    enum tls_rec_alg alg;
    uint16_t max_plain;
    uint64_t read_seq, write_seq;
    uint64_t write_nonce_base; /* explicit nonce of write_seq 0 (GCM, CCM) */
    uint8_t read_key[32], write_key[32];
    uint8_t read_iv[12], write_iv[12];
};

/* ---- the handshake's byte streams ---- */

void tls_rec_wire_feed(struct tls_rec_wire *w, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (w->body_left == 0 && w->hdr_len < TLS_REC_HEADER) {
            w->hdr[w->hdr_len++] = *p++;
            n--;
            if (w->hdr_len < TLS_REC_HEADER)
                continue;
            w->body_left = (uint32_t)w->hdr[3] << 8 | w->hdr[4];
            if (w->ccs)
                w->protected_records++;
            if (w->hdr[0] == TLS_REC_CHANGE_CIPHER_SPEC)
                w->ccs = true;
            if (w->body_left == 0)
                w->hdr_len = 0;
            continue;
        }
        size_t take = n < w->body_left ? n : w->body_left;
        if (w->ccs && w->protected_records == 1 && w->hdr[0] != TLS_REC_CHANGE_CIPHER_SPEC) {
            /* the first bytes of the first protected record: its explicit nonce, if any */
            uint32_t body_len = (uint32_t)w->hdr[3] << 8 | w->hdr[4];
            uint32_t at = body_len - w->body_left;
            for (size_t i = 0; i < take && at + i < 8; i++) {
                w->first_nonce[at + i] = p[i];
                w->first_nonce_len = (uint8_t)(at + i + 1);
            }
        }
        p += take;
        n -= take;
        w->body_left -= (uint32_t)take;
        if (w->body_left == 0)
            w->hdr_len = 0;
    }
}

/* ---- per-thread cipher contexts ---- */

static EVP_CIPHER *ciphers[ALG_COUNT];
static EVP_KDF *prf;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
    for (int a = 0; a < ALG_COUNT; a++)
        ciphers[a] = EVP_CIPHER_fetch(NULL, alg_info[a].evp_name, NULL);
    prf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL);
}

static _Thread_local EVP_CIPHER_CTX *thread_ctx[ALG_COUNT][2];
/* the tls_rec id each context holds the key of: a burst of records of one connection (a read
 * or a flush) sets the key once and then only the nonce */
static _Thread_local uint64_t thread_keyed[ALG_COUNT][2];
static _Atomic uint64_t next_id = 1;

void tls_rec_thread_done(void)
{
    for (int a = 0; a < ALG_COUNT; a++)
        for (int e = 0; e < 2; e++) {
            EVP_CIPHER_CTX_free(thread_ctx[a][e]);
            thread_ctx[a][e] = NULL;
            thread_keyed[a][e] = 0;
        }
}

static EVP_CIPHER_CTX *cipher_ctx(enum tls_rec_alg a, int enc)
{
    EVP_CIPHER_CTX *ctx = thread_ctx[a][enc];
    if (ctx)
        return ctx;
    if (!ciphers[a] || !(ctx = EVP_CIPHER_CTX_new()))
        return NULL;
    if (!EVP_CipherInit_ex(ctx, ciphers[a], NULL, NULL, NULL, enc) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) ||
        (alg_info[a].ccm &&
         !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, alg_info[a].tag_len, NULL))) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    thread_ctx[a][enc] = ctx;
    return ctx;
}

/* ---- taking over from OpenSSL ---- */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int alg_of(const SSL_CIPHER *sc, enum tls_rec_alg *a)
{
    const char *name = SSL_CIPHER_get_name(sc);
    bool ccm8 = strstr(name, "CCM8") != NULL;
    switch (SSL_CIPHER_get_cipher_nid(sc)) {
    case NID_aes_128_gcm:
        *a = ALG_AES128_GCM;
        return 0;
    case NID_aes_256_gcm:
        *a = ALG_AES256_GCM;
        return 0;
    case NID_aes_128_ccm:
        *a = ccm8 ? ALG_AES128_CCM8 : ALG_AES128_CCM;
        return 0;
    case NID_aes_256_ccm:
        *a = ccm8 ? ALG_AES256_CCM8 : ALG_AES256_CCM;
        return 0;
    case NID_chacha20_poly1305:
        *a = ALG_CHACHA20_POLY1305;
        return 0;
    default:
        return -1;
    }
}

static int expand_keys(SSL *ssl, const SSL_CIPHER *sc, uint8_t *block, size_t len)
{
    uint8_t master[SSL_MAX_MASTER_KEY_LENGTH];
    uint8_t seed[13 + 2 * SSL3_RANDOM_SIZE];
    size_t mlen = SSL_SESSION_get_master_key(SSL_get_session(ssl), master, sizeof(master));
    memcpy(seed, "key expansion", 13);
    if (mlen == 0 || SSL_get_server_random(ssl, seed + 13, SSL3_RANDOM_SIZE) != SSL3_RANDOM_SIZE ||
        SSL_get_client_random(ssl, seed + 13 + SSL3_RANDOM_SIZE, SSL3_RANDOM_SIZE) !=
            SSL3_RANDOM_SIZE)
        return -1;
    const EVP_MD *md = SSL_CIPHER_get_handshake_digest(sc);
    EVP_KDF_CTX *kctx = prf && md ? EVP_KDF_CTX_new(prf) : NULL;
    int ok = 0;
    if (kctx) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)EVP_MD_get0_name(md), 0),
            OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SECRET, master, mlen),
            OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof(seed)),
            OSSL_PARAM_END,
        };
        ok = EVP_KDF_derive(kctx, block, len, params) > 0;
        EVP_KDF_CTX_free(kctx);
    }
    OPENSSL_cleanse(master, sizeof(master));
    return ok ? 0 : -1;
}

/* Records whose whole header is in p[0..n), n starting at a record boundary. */
static uint64_t records_in(const uint8_t *p, size_t n)
{
    uint64_t count = 0;
    for (size_t off = 0; off + TLS_REC_HEADER <= n;
         off += TLS_REC_HEADER + ((size_t)p[off + 3] << 8 | p[off + 4]))
        count++;
    return count;
}

int tls_rec_take(SSL *ssl, const struct tls_rec_wire *in, const struct tls_rec_wire *out,
                 const uint8_t *unread, size_t unread_len, size_t max_plain,
                 struct tls_rec **out_rec, const char **why)
{
    *out_rec = NULL;
    pthread_once(&fetch_once, fetch_algorithms);
    const SSL_CIPHER *sc = SSL_get_current_cipher(ssl);
    enum tls_rec_alg a;
    if (SSL_version(ssl) != TLS1_2_VERSION) {
        *why = "not_tls12";
        return TLS_REC_UNSUPPORTED;
    }
    if (!sc || !SSL_CIPHER_is_aead(sc) || alg_of(sc, &a) != 0 || !ciphers[a]) {
        *why = "not_an_aead_suite";
        return TLS_REC_UNSUPPORTED;
    }
    bool explicit_nonce = a != ALG_CHACHA20_POLY1305;
    uint64_t unread_records = records_in(unread, unread_len);
    /* both sides changed cipher spec, our output ended on a record boundary, and OpenSSL read
     * no further than a record boundary (read-ahead is off during the handshake) */
    if (!in->ccs || !out->ccs || out->protected_records < 1 || out->hdr_len != 0 ||
        out->body_left != 0 || in->protected_records < unread_records + 1 ||
        (explicit_nonce && out->first_nonce_len != 8)) {
        *why = "handshake_stream_not_understood";
        return TLS_REC_UNSUPPORTED;
    }
    struct tls_rec *r = calloc(1, sizeof(*r));
    if (!r) {
        *why = "out_of_memory";
        return TLS_REC_ERROR;
    }
    uint8_t block[2 * 32 + 2 * 12];
    size_t kl = alg_info[a].key_len, il = alg_info[a].iv_len;
    if (expand_keys(ssl, sc, block, 2 * kl + 2 * il) != 0) {
        free(r);
        *why = "key_expansion_failed";
        return TLS_REC_ERROR;
    }
    r->id = next_id++;
    r->alg = a;
    memcpy(r->read_key, block, kl);
    memcpy(r->write_key, block + kl, kl);
    memcpy(r->read_iv, block + 2 * kl, il);
    memcpy(r->write_iv, block + 2 * kl + il, il);
    OPENSSL_cleanse(block, sizeof(block));
    r->read_seq = in->protected_records - unread_records;
    r->write_seq = out->protected_records;
    r->write_nonce_base = explicit_nonce ? get_be64(out->first_nonce) : 0;
    if (max_plain == 0 || max_plain > TLS_REC_MAX_PLAIN)
        max_plain = TLS_REC_MAX_PLAIN;
    r->max_plain = (uint16_t)max_plain;
    *out_rec = r;
    return TLS_REC_OK;
}

void tls_rec_free(struct tls_rec *r)
{
    if (!r)
        return;
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
}

size_t tls_rec_max_plain(const struct tls_rec *r)
{
    return r->max_plain;
}

/* ---- protecting and opening records ---- */

static void record_nonce(const struct tls_rec *r, const uint8_t *iv, uint64_t seq,
                         const uint8_t *explicit8, uint8_t nonce[12])
{
    if (r->alg == ALG_CHACHA20_POLY1305) {
        memcpy(nonce, iv, 12);
        for (int i = 0; i < 8; i++)
            nonce[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
    } else {
        memcpy(nonce, iv, 4);
        memcpy(nonce + 4, explicit8, 8);
    }
}

static void record_aad(uint64_t seq, uint8_t type, size_t plain_len, uint8_t aad[13])
{
    put_be64(aad, seq);
    aad[8] = type;
    aad[9] = 3;
    aad[10] = 3;
    aad[11] = (uint8_t)(plain_len >> 8);
    aad[12] = (uint8_t)plain_len;
}

/* Sets the nonce, and the key unless the context still holds this connection's. */
static int rekey(EVP_CIPHER_CTX *ctx, const struct tls_rec *r, int enc, const uint8_t nonce[12])
{
    uint64_t *keyed = &thread_keyed[r->alg][enc];
    const uint8_t *key = *keyed == r->id ? NULL : enc ? r->write_key : r->read_key;
    if (!EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc)) {
        *keyed = 0;
        return 0;
    }
    *keyed = r->id;
    return 1;
}

/* Encrypts p[0..len) in place and writes the tag; 0 on success. */
static int aead_seal(struct tls_rec *r, const uint8_t nonce[12], const uint8_t aad[13],
                     uint8_t *p, size_t len, uint8_t *tag)
{
    EVP_CIPHER_CTX *ctx = cipher_ctx(r->alg, 1);
    bool ccm = alg_info[r->alg].ccm;
    int outl, tl = alg_info[r->alg].tag_len;
    if (!ctx || !rekey(ctx, r, 1, nonce) ||
        (ccm && !EVP_CipherUpdate(ctx, NULL, &outl, NULL, (int)len)) ||
        !EVP_CipherUpdate(ctx, NULL, &outl, aad, 13) ||
        (len && !EVP_CipherUpdate(ctx, p, &outl, p, (int)len)) ||
        !EVP_CipherFinal_ex(ctx, p + len, &outl) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, tl, tag))
        return -1;
    return 0;
}

/* Decrypts p[0..len) in place after checking the tag; 0 on success. */
static int aead_open(struct tls_rec *r, const uint8_t nonce[12], const uint8_t aad[13],
                     uint8_t *p, size_t len, const uint8_t *tag)
{
    EVP_CIPHER_CTX *ctx = cipher_ctx(r->alg, 0);
    bool ccm = alg_info[r->alg].ccm;
    int outl, tl = alg_info[r->alg].tag_len;
    if (!ctx || !rekey(ctx, r, 0, nonce) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, tl, (void *)tag))
        return -1;
    if (ccm) /* CCM checks the tag in the one update that carries the data */
        return EVP_CipherUpdate(ctx, NULL, &outl, NULL, (int)len) &&
                       EVP_CipherUpdate(ctx, NULL, &outl, aad, 13) &&
                       EVP_CipherUpdate(ctx, p, &outl, p, (int)len) > 0
                   ? 0
                   : -1;
    return EVP_CipherUpdate(ctx, NULL, &outl, aad, 13) &&
                   (len == 0 || EVP_CipherUpdate(ctx, p, &outl, p, (int)len)) &&
                   EVP_CipherFinal_ex(ctx, p + len, &outl) > 0
               ? 0
               : -1;
}

/* One record of `type` around plaintext[0..len) at out; returns its size or 0. */
static size_t seal_record(struct tls_rec *r, uint8_t type, const uint8_t *plaintext, size_t len,
                          uint8_t *out)
{
    bool explicit_nonce = r->alg != ALG_CHACHA20_POLY1305;
    size_t ex = explicit_nonce ? 8 : 0, tl = alg_info[r->alg].tag_len;
    size_t body = ex + len + tl;
    uint8_t nonce[12], aad[13];
    out[0] = type;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    if (explicit_nonce)
        put_be64(out + TLS_REC_HEADER, r->write_nonce_base + r->write_seq);
    record_nonce(r, r->write_iv, r->write_seq, out + TLS_REC_HEADER, nonce);
    record_aad(r->write_seq, type, len, aad);
    uint8_t *p = out + TLS_REC_HEADER + ex;
    memmove(p, plaintext, len);
    if (aead_seal(r, nonce, aad, p, len, p + len) != 0)
        return 0;
    r->write_seq++;
    return TLS_REC_HEADER + body;
}

size_t tls_rec_seal(struct tls_rec *r, const uint8_t *plaintext, size_t len, uint8_t *out,
                    size_t cap, size_t *taken)
{
    size_t done = 0, written = 0;
    size_t overhead = TLS_REC_HEADER + (r->alg != ALG_CHACHA20_POLY1305 ? 8 : 0) +
                      alg_info[r->alg].tag_len;
    while (done < len && cap - written > overhead) {
        size_t n = len - done;
        if (n > r->max_plain)
            n = r->max_plain;
        if (n > cap - written - overhead)
            n = cap - written - overhead;
        size_t rec = seal_record(r, TLS_REC_APPLICATION_DATA, plaintext + done, n, out + written);
        if (rec == 0) {
            *taken = 0;
            return 0;
        }
        done += n;
        written += rec;
    }
    *taken = done;
    return written;
}

size_t tls_rec_alert(struct tls_rec *r, uint8_t description, uint8_t *out, size_t cap)
{
    uint8_t alert[2] = {description == TLS_ALERT_CLOSE_NOTIFY ? 1 : 2, description};
    if (cap < TLS_REC_OVERHEAD + sizeof(alert))
        return 0;
    return seal_record(r, TLS_REC_ALERT, alert, sizeof(alert), out);
}

int tls_rec_open(struct tls_rec *r, uint8_t *buf, size_t len, size_t *used, size_t *plain_len,
                 uint8_t *alert)
{
    size_t ex = r->alg != ALG_CHACHA20_POLY1305 ? 8 : 0, tl = alg_info[r->alg].tag_len;
    size_t off = 0, plain = 0;
    int rc = TLS_REC_OK;
    while (len - off >= TLS_REC_HEADER) {
        uint8_t *h = buf + off;
        size_t body = (size_t)h[3] << 8 | h[4];
        if (h[1] != 3 || h[2] != 3) {
            *alert = TLS_ALERT_DECODE_ERROR;
            rc = TLS_REC_ERROR;
            break;
        }
        if (body > TLS_REC_MAX_CIPHERTEXT) {
            *alert = TLS_ALERT_RECORD_OVERFLOW;
            rc = TLS_REC_ERROR;
            break;
        }
        if (len - off < TLS_REC_HEADER + body)
            break;
        if (body < ex + tl) {
            *alert = TLS_ALERT_BAD_RECORD_MAC;
            rc = TLS_REC_ERROR;
            break;
        }
        size_t n = body - ex - tl;
        if (n > TLS_REC_MAX_PLAIN) {
            *alert = TLS_ALERT_RECORD_OVERFLOW;
            rc = TLS_REC_ERROR;
            break;
        }
        uint8_t nonce[12], aad[13], type = h[0];
        uint8_t *p = h + TLS_REC_HEADER + ex;
        record_nonce(r, r->read_iv, r->read_seq, h + TLS_REC_HEADER, nonce);
        record_aad(r->read_seq, type, n, aad);
        if (aead_open(r, nonce, aad, p, n, p + n) != 0) {
            *alert = TLS_ALERT_BAD_RECORD_MAC;
            rc = TLS_REC_ERROR;
            break;
        }
        r->read_seq++;
        off += TLS_REC_HEADER + body;
        if (type == TLS_REC_APPLICATION_DATA) {
            memmove(buf + plain, p, n);
            plain += n;
            continue;
        }
        if (type == TLS_REC_ALERT && n == 2) {
            if (p[0] == 1 && p[1] != TLS_ALERT_CLOSE_NOTIFY)
                continue; /* a warning (user_canceled, no_renegotiation): nothing to do */
            rc = TLS_REC_CLOSED; /* close_notify or a fatal alert: the peer is done */
            break;
        }
        /* a handshake message now is a renegotiation, which psagw does not do; anything else
         * (ChangeCipherSpec, heartbeat, unknown types, malformed alerts) is out of place */
        *alert = type == TLS_REC_HANDSHAKE ? TLS_ALERT_NO_RENEGOTIATION
                                            : TLS_ALERT_UNEXPECTED_MESSAGE;
        rc = TLS_REC_ERROR;
        break;
    }
    *used = off;
    *plain_len = plain;
    return rc;
}
