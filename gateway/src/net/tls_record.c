/*
 * tls_record.c: psagw's own TLS record layer after OpenSSL's handshake, TLS 1.2 with AEAD
 * suites and TLS 1.3 (see tls_record.h for why, docs/tls-record-layer.md for the rules).
 *
 * TLS 1.2 keys (RFC 5246 6.3): key_block = PRF(master_secret, "key expansion", server_random +
 * client_random), cut into client MAC key, server MAC key (both empty for AEAD suites), client
 * write key, server write key, client IV, server IV. The server reads with the client's.
 *
 * TLS 1.2 records (RFC 5246 6.2.3.3): additional data = seq_num(8) + type(1) + version(2) +
 * length(2) of the plaintext. GCM (RFC 5288) and CCM (RFC 6655): nonce = the 4-byte implicit IV
 * + an 8-byte explicit nonce sent before the ciphertext; ChaCha20-Poly1305 (RFC 7905): nonce =
 * the 12-byte IV XOR the sequence number, nothing explicit. Our explicit nonce for sequence
 * number s is the one OpenSSL sent with the Finished (s = 0) plus s: OpenSSL's own rule (it
 * sends the sequence number with CCM, a random start counted up with GCM), so no nonce repeats
 * under a key across the hand-over.
 *
 * TLS 1.3 (RFC 8446): key = HKDF-Expand-Label(traffic_secret, "key", "", key_length), iv = the
 * same with "iv" and 12 (7.3); records carry the content type after the content, the additional
 * data is the record header and the nonce the IV XOR the sequence number (5.2, 5.3). A KeyUpdate
 * (4.6.3) moves a direction to HKDF-Expand-Label(secret, "traffic upd", "", Hash.length) and its
 * sequence number back to 0; one asking for an update is answered with ours before our next
 * data; we update our own keys before 2^23 records (5.5 allows 2^24.5 with AES-GCM).
 *
 * Cipher contexts: one per cipher and direction per thread, re-keyed for each record, so a
 * connection holds raw keys only (about 150 bytes in all instead of OpenSSL's ~11 KB).
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "psagw/iat.h"
#include "psagw/iat_crypto.h"
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

/* Kept for every connected device, so grouped by size (no holes), and the TLS 1.3 traffic
 * secrets (for KeyUpdate) only in the allocations of TLS 1.3 connections: 144 bytes for TLS 1.2,
 * 240 for TLS 1.3 (rec_size). */
struct tls_rec {
    uint64_t id; /* unique per record layer: which one a thread's cipher context is keyed for */
    uint64_t read_seq, write_seq;
    uint64_t write_nonce_base; /* TLS 1.2: explicit nonce of write_seq 0 (GCM, CCM) */
    uint8_t read_key[32], write_key[32];
    uint8_t read_iv[12], write_iv[12];
    enum tls_rec_alg alg;
    uint16_t max_plain;
    uint16_t empty_run;  /* records in a row without application data */
    bool tls13;
    bool sha384;         /* TLS 1.3: the suite's hash (else SHA-256) */
    bool key_update_due; /* TLS 1.3: the client asked for ours */
    uint8_t hs_buf[5];   /* TLS 1.3: a KeyUpdate arriving in pieces */
    uint8_t hs_len;
    uint8_t warning_run; /* warning alerts in a row */
    bool failed;         /* a fatal alert went either way */
    uint8_t warning;     /* a warning alert owed to the peer */
    uint8_t secret[][TLS_REC_SECRET_MAX]; /* TLS 1.3 only: [0] reading, [1] writing */
};

static size_t rec_size(bool tls13)
{
    return sizeof(struct tls_rec) + (tls13 ? 2 * TLS_REC_SECRET_MAX : 0);
}

/* TLS 1.3: our keys are replaced before this many records (RFC 8446 5.5) */
#define TLS13_KEY_UPDATE_AFTER (1ull << 23)
#define TLS13_MAX_CIPHERTEXT (TLS_REC_MAX_PLAIN + 256)
#define TLS13_KEY_UPDATE 24 /* handshake message type */

/* ---- what a handshake tells us ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

void tls_rec_handshake_keylog(struct tls_rec_handshake *h, const char *line)
{
    uint8_t *secret;
    uint8_t *len;
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) {
        secret = h->client_secret;
        len = &h->client_secret_len;
    } else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) {
        secret = h->server_secret;
        len = &h->server_secret_len;
    } else {
        return;
    }
    const char *hex = strchr(line + 24, ' '); /* after the client random */
    size_t n = 0;
    if (!hex)
        return;
    for (hex++; n < TLS_REC_SECRET_MAX && hexval(hex[0]) >= 0 && hexval(hex[1]) >= 0; hex += 2)
        secret[n++] = (uint8_t)(hexval(hex[0]) << 4 | hexval(hex[1]));
    *len = *hex == '\0' && (n == 32 || n == 48) ? (uint8_t)n : 0;
}

void tls_rec_handshake_msg(struct tls_rec_handshake *h, int write_p, int content_type)
{
    if (write_p && content_type == SSL3_RT_HEADER && h->server_secret_len)
        h->records_after_server_secret++;
}

void tls_rec_handshake_clear(struct tls_rec_handshake *h)
{
    OPENSSL_cleanse(h, sizeof(*h));
}

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
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
    for (int a = 0; a < ALG_COUNT; a++)
        ciphers[a] = EVP_CIPHER_fetch(NULL, alg_info[a].evp_name, NULL);
}

/* HMAC(key, a | b | c) with SHA-256 or SHA-384, on the token library's per-thread HMAC contexts
 * (psagw/iat_crypto.h: the digest set once per thread; key NULL: the previous call's key, not
 * set up again). OpenSSL 3.0's KDF objects fetched the digest by name and built and freed HMAC
 * contexts at every take-over (~100,000 instructions of a 670,000-instruction connect; they
 * have no dup before 3.1). */
static bool hmac3(bool sha384, const uint8_t *key, size_t key_len, const uint8_t *a, size_t al,
                  const uint8_t *b, size_t bl, const uint8_t *c, size_t cl, uint8_t *out)
{
    struct iat_key k = {.raw = key, .raw_len = key_len};
    struct iat_iov iov[3] = {{a, al}, {b, bl}, {c, cl}};
    uint8_t mac[IAT_MAX_MAC_SIZE];
    size_t n = 0;
    bool ok = iat_crypto_hmac(sha384 ? IAT_ALG_HMAC384 : IAT_ALG_HMAC256, key ? &k : NULL, iov,
                              3, mac, &n) == 0 &&
              n == (sha384 ? 48u : 32u);
    if (ok)
        memcpy(out, mac, n);
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

/* RFC 5246 section 5: P_hash(secret, seed), len bytes; A(0) = seed, A(i) = HMAC(secret,
 * A(i-1)), output HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ... */
static int p_hash(bool sha384, const uint8_t *secret, size_t secret_len, const uint8_t *seed,
                  size_t seed_len, uint8_t *out, size_t len)
{
    size_t hl = sha384 ? 48 : 32;
    uint8_t a[48], blk[48];
    bool ok = hmac3(sha384, secret, secret_len, seed, seed_len, NULL, 0, NULL, 0, a);
    for (size_t off = 0; ok && off < len; off += hl) {
        ok = hmac3(sha384, NULL, 0, a, hl, seed, seed_len, NULL, 0, blk);
        if (ok)
            memcpy(out + off, blk, len - off < hl ? len - off : hl);
        if (ok && off + hl < len)
            ok = hmac3(sha384, NULL, 0, a, hl, NULL, 0, NULL, 0, a);
    }
    /* the per-thread context would keep the secret's key schedule until its next use: re-key
     * it with zeros */
    static const uint8_t zero[48];
    hmac3(sha384, zero, hl, NULL, 0, NULL, 0, NULL, 0, blk);
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(blk, sizeof(blk));
    return ok ? 0 : -1;
}

/* RFC 5869 section 2.3: HKDF-Expand(PRK, info, len); T(0) empty, T(i) = HMAC(PRK, T(i-1) |
 * info | i), output T(1) | T(2) | ... */
static int hkdf_expand(bool sha384, const uint8_t *prk, const uint8_t *info, size_t info_len,
                       uint8_t *out, size_t len)
{
    size_t hl = sha384 ? 48 : 32;
    uint8_t t[48];
    bool ok = len <= 255 * hl;
    for (size_t off = 0, i = 1; ok && off < len; off += hl, i++) {
        uint8_t ctr = (uint8_t)i;
        ok = hmac3(sha384, off ? NULL : prk, hl, t, off ? hl : 0, info, info_len, &ctr, 1, t);
        if (ok)
            memcpy(out + off, t, len - off < hl ? len - off : hl);
    }
    OPENSSL_cleanse(t, sizeof(t));
    return ok ? 0 : -1;
}

/* Each thread keeps, per algorithm and direction, a few cipher contexts keyed for the
 * connections it served last (by tls_rec id): a burst of records of one connection sets the
 * nonce only, and so do records of up to KEY_SLOTS connections taking turns, as when devices
 * that wait for each PUBACK and a subscriber are served by one worker (re-keying costs an AES
 * key schedule and OpenSSL's setup, ~1.5 us a record, three times a message there). A slot
 * taken over for another connection has its key schedule overwritten; tls_rec_free and key
 * updates free the slots of their keys at once (freeing a context cleanses it). */
#define KEY_SLOTS 8
struct key_slot {
    EVP_CIPHER_CTX *ctx;
    uint64_t id;   /* the tls_rec whose key it holds, 0 for none */
    uint64_t used; /* this thread's clock at its last use (the least recent is taken over) */
};
static _Thread_local struct key_slot key_slots[ALG_COUNT][2][KEY_SLOTS];
static _Thread_local uint64_t key_clock;
static _Atomic uint64_t next_id = 1;

static void slot_free(struct key_slot *k)
{
    EVP_CIPHER_CTX_free(k->ctx);
    *k = (struct key_slot){0};
}

void tls_rec_thread_done(void)
{
    for (int a = 0; a < ALG_COUNT; a++)
        for (int e = 0; e < 2; e++)
            for (int i = 0; i < KEY_SLOTS; i++)
                slot_free(&key_slots[a][e][i]);
}

/* Overwrites r's expanded keys in this thread's cipher contexts with those of an all-zero key
 * (a new key replaces every key-dependent byte of the context, as freeing it would), keeping the
 * contexts for the next connections: allocating and setting one up again costs more than the
 * AES key schedule. A context that cannot be re-keyed is freed. */
static void forget_thread_keys(const struct tls_rec *r)
{
    static const uint8_t zero[32];
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < KEY_SLOTS; i++) {
            struct key_slot *k = &key_slots[r->alg][e][i];
            if (k->id != r->id)
                continue;
            if (EVP_CipherInit_ex(k->ctx, NULL, NULL, zero, NULL, e))
                k->id = 0;
            else
                slot_free(k);
        }
}

static EVP_CIPHER_CTX *new_cipher_ctx(enum tls_rec_alg a, int enc)
{
    EVP_CIPHER_CTX *ctx;
    if (!ciphers[a] || !(ctx = EVP_CIPHER_CTX_new()))
        return NULL;
    if (!EVP_CipherInit_ex(ctx, ciphers[a], NULL, NULL, NULL, enc) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) ||
        (alg_info[a].ccm &&
         !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, alg_info[a].tag_len, NULL))) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Which slot to take over: one holding no key before one holding a key, then the one used
 * least recently. */
static bool take_first(const struct key_slot *a, const struct key_slot *b)
{
    if ((a->id == 0) != (b->id == 0))
        return a->id == 0;
    return a->used < b->used;
}

/* A context of this thread holding r's key for direction enc, with the nonce set. */
static EVP_CIPHER_CTX *keyed_ctx(const struct tls_rec *r, int enc, const uint8_t nonce[12])
{
    struct key_slot *set = key_slots[r->alg][enc], *k = NULL, *lru = &set[0];
    for (int i = 0; i < KEY_SLOTS && !k; i++) {
        if (set[i].id == r->id && set[i].ctx)
            k = &set[i];
        else if (take_first(&set[i], lru))
            lru = &set[i];
    }
    const uint8_t *key = NULL;
    if (!k) {
        k = lru;
        if (!k->ctx && !(k->ctx = new_cipher_ctx(r->alg, enc)))
            return NULL;
        key = enc ? r->write_key : r->read_key;
    }
    k->used = ++key_clock;
    if (!EVP_CipherInit_ex(k->ctx, NULL, NULL, key, nonce, enc)) {
        slot_free(k);
        return NULL;
    }
    k->id = r->id;
    return k->ctx;
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
    bool ccm8 = strstr(name, "CCM8") != NULL || strstr(name, "CCM_8") != NULL;
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

/* RFC 5246 section 5: PRF(secret, label, seed_a + seed_b) = P_hash(secret, label + seed_a +
 * seed_b), P_hash with the suite's handshake digest */
static int prf12(bool sha384, const uint8_t *secret, size_t secret_len, const char *label,
                 const uint8_t *a, size_t al, const uint8_t *b, size_t bl, uint8_t *out, size_t len)
{
    uint8_t seed[32 + 2 * 48];
    size_t ll = strlen(label);
    if (ll + al + bl > sizeof(seed))
        return -1;
    memcpy(seed, label, ll);
    if (al) /* a or b may be NULL when empty */
        memcpy(seed + ll, a, al);
    if (bl)
        memcpy(seed + ll + al, b, bl);
    return p_hash(sha384, secret, secret_len, seed, ll + al + bl, out, len);
}

int tls_rec_prf12(const uint8_t *secret, size_t secret_len, const char *label, const uint8_t *a,
                  size_t al, const uint8_t *b, size_t bl, uint8_t *out, size_t len)
{
    return prf12(false, secret, secret_len, label, a, al, b, bl, out, len);
}

/* RFC 5246 6.3: key_block = PRF(master_secret, "key expansion", server_random + client_random) */
static int key_block12(bool sha384, const uint8_t *master, size_t mlen,
                       const uint8_t server_random[32], const uint8_t client_random[32],
                       uint8_t *block, size_t len)
{
    return prf12(sha384, master, mlen, "key expansion", server_random, 32, client_random, 32, block,
                 len);
}

static int expand_keys(SSL *ssl, const SSL_CIPHER *sc, uint8_t *block, size_t len)
{
    uint8_t master[SSL_MAX_MASTER_KEY_LENGTH];
    uint8_t sr[SSL3_RANDOM_SIZE], cr[SSL3_RANDOM_SIZE];
    size_t mlen = SSL_SESSION_get_master_key(SSL_get_session(ssl), master, sizeof(master));
    if (mlen == 0 || SSL_get_server_random(ssl, sr, sizeof(sr)) != sizeof(sr) ||
        SSL_get_client_random(ssl, cr, sizeof(cr)) != sizeof(cr))
        return -1;
    const EVP_MD *md = SSL_CIPHER_get_handshake_digest(sc);
    int sz = md ? EVP_MD_get_size(md) : 0;
    int rc = sz == 32 || sz == 48 ? key_block12(sz == 48, master, mlen, sr, cr, block, len) : -1;
    OPENSSL_cleanse(master, sizeof(master));
    return rc;
}

/* The read and write keys and IVs of a TLS 1.2 server from its key block */
static void set_keys12(struct tls_rec *r, const uint8_t *block)
{
    size_t kl = alg_info[r->alg].key_len, il = alg_info[r->alg].iv_len;
    memcpy(r->read_key, block, kl);
    memcpy(r->write_key, block + kl, kl);
    memcpy(r->read_iv, block + 2 * kl, il);
    memcpy(r->write_iv, block + 2 * kl + il, il);
}

/* RFC 8446 7.1: HKDF-Expand-Label(secret, label, "", out_len) */
static int expand_label(bool sha384, const uint8_t *secret, const char *label, uint8_t *out,
                        size_t out_len)
{
    uint8_t info[2 + 1 + 6 + 16 + 1];
    size_t ll = strlen(label);
    info[0] = (uint8_t)(out_len >> 8);
    info[1] = (uint8_t)out_len;
    info[2] = (uint8_t)(6 + ll);
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, ll);
    info[9 + ll] = 0; /* empty context */
    return hkdf_expand(sha384, secret, info, 10 + ll, out, out_len);
}

/* TLS 1.3: the key and IV of one direction from its traffic secret */
static int traffic_keys(const struct tls_rec *r, const uint8_t *secret, uint8_t *key, uint8_t *iv)
{
    return expand_label(r->sha384, secret, "key", key, alg_info[r->alg].key_len) == 0 &&
                   expand_label(r->sha384, secret, "iv", iv, 12) == 0
               ? 0
               : -1;
}

/* TLS 1.3 KeyUpdate: the next secret and keys of one direction (forgetting the keys held by
 * this thread's contexts, by a new id) */
static int update_traffic(struct tls_rec *r, int write)
{
    uint8_t *secret = r->secret[write ? 1 : 0];
    uint8_t next[TLS_REC_SECRET_MAX];
    size_t hl = r->sha384 ? 48 : 32;
    if (expand_label(r->sha384, secret, "traffic upd", next, hl) != 0)
        return -1;
    memcpy(secret, next, hl);
    OPENSSL_cleanse(next, sizeof(next));
    if (traffic_keys(r, secret, write ? r->write_key : r->read_key,
                     write ? r->write_iv : r->read_iv) != 0)
        return -1;
    if (write)
        r->write_seq = 0;
    else
        r->read_seq = 0;
    forget_thread_keys(r); /* the old keys go now, not when a later connection needs a context */
    r->id = next_id++;
    return 0;
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

static int take12(struct tls_rec *r, SSL *ssl, const SSL_CIPHER *sc,
                  const struct tls_rec_handshake *h, const uint8_t *unread, size_t unread_len,
                  const char **why)
{
    bool explicit_nonce = r->alg != ALG_CHACHA20_POLY1305;
    uint64_t unread_records = records_in(unread, unread_len);
    /* both sides changed cipher spec, our output ended on a record boundary, and OpenSSL read
     * no further than a record boundary (read-ahead is off during the handshake) */
    if (!h->in.ccs || !h->out.ccs || h->out.protected_records < 1 || h->out.hdr_len != 0 ||
        h->out.body_left != 0 || h->in.protected_records < unread_records + 1 ||
        (explicit_nonce && h->out.first_nonce_len != 8)) {
        *why = "handshake_stream_not_understood";
        return TLS_REC_UNSUPPORTED;
    }
    uint8_t block[2 * 32 + 2 * 12];
    size_t kl = alg_info[r->alg].key_len, il = alg_info[r->alg].iv_len;
    if (expand_keys(ssl, sc, block, 2 * kl + 2 * il) != 0) {
        *why = "key_expansion_failed";
        return TLS_REC_ERROR;
    }
    set_keys12(r, block);
    OPENSSL_cleanse(block, sizeof(block));
    r->read_seq = h->in.protected_records - unread_records;
    r->write_seq = h->out.protected_records;
    r->write_nonce_base = explicit_nonce ? get_be64(h->out.first_nonce) : 0;
    return TLS_REC_OK;
}

static int take13(struct tls_rec *r, const SSL_CIPHER *sc, const struct tls_rec_handshake *h,
                  const char **why)
{
    const EVP_MD *md = SSL_CIPHER_get_handshake_digest(sc);
    r->sha384 = md && EVP_MD_get_size(md) == 48;
    size_t hl = r->sha384 ? 48 : 32;
    /* the keylog callback gave both application traffic secrets, the message callback the
     * records OpenSSL wrote under the server's (its NewSessionTickets); OpenSSL has read
     * nothing under the client's (it stops after the client's Finished) */
    if (h->client_secret_len != hl || h->server_secret_len != hl) {
        *why = "traffic_secrets_not_seen";
        return TLS_REC_UNSUPPORTED;
    }
    r->tls13 = true;
    memcpy(r->secret[0], h->client_secret, hl);
    memcpy(r->secret[1], h->server_secret, hl);
    if (traffic_keys(r, r->secret[0], r->read_key, r->read_iv) != 0 ||
        traffic_keys(r, r->secret[1], r->write_key, r->write_iv) != 0) {
        *why = "key_expansion_failed";
        return TLS_REC_ERROR;
    }
    r->read_seq = 0;
    r->write_seq = h->records_after_server_secret;
    return TLS_REC_OK;
}

int tls_rec_take(SSL *ssl, const struct tls_rec_handshake *h, const uint8_t *unread,
                 size_t unread_len, size_t max_plain, struct tls_rec **out_rec, const char **why)
{
    *out_rec = NULL;
    pthread_once(&fetch_once, fetch_algorithms);
    const SSL_CIPHER *sc = SSL_get_current_cipher(ssl);
    enum tls_rec_alg a;
    int version = SSL_version(ssl);
    if (version != TLS1_2_VERSION && version != TLS1_3_VERSION) {
        *why = "not_tls12_or_tls13";
        return TLS_REC_UNSUPPORTED;
    }
    if (!sc || !SSL_CIPHER_is_aead(sc) || alg_of(sc, &a) != 0 || !ciphers[a]) {
        *why = "not_an_aead_suite";
        return TLS_REC_UNSUPPORTED;
    }
    if (SSL_has_pending(ssl)) {
        /* OpenSSL holds bytes it read with the last handshake record and has not handed out
         * (handshake data packed behind the client's Finished): we could not see them, so the
         * connection keeps OpenSSL's record layer, which deals with them */
        *why = "handshake_bytes_pending";
        return TLS_REC_UNSUPPORTED;
    }
    struct tls_rec *r = calloc(1, rec_size(version == TLS1_3_VERSION));
    if (!r) {
        *why = "out_of_memory";
        return TLS_REC_ERROR;
    }
    r->alg = a;
    r->tls13 = version == TLS1_3_VERSION; /* the allocation's size (tls_rec_free) */
    int rc = version == TLS1_3_VERSION ? take13(r, sc, h, why)
                                       : take12(r, ssl, sc, h, unread, unread_len, why);
    if (rc != TLS_REC_OK) {
        tls_rec_free(r);
        return rc;
    }
    r->id = next_id++;
    if (max_plain == 0 || max_plain > TLS_REC_MAX_PLAIN)
        max_plain = TLS_REC_MAX_PLAIN;
    r->max_plain = (uint16_t)max_plain;
    *out_rec = r;
    return TLS_REC_OK;
}

/* ---- keys from psagw's own TLS 1.2 handshake (tls12_psk.c) ---- */

/* The TLS 1.2 PSK suites with an AEAD cipher and a SHA-256 PRF (RFC 6655, 5487, 7905), by IANA
 * number, with OpenSSL's names (logs and the API show those for either handshake) */
static const struct {
    uint16_t id;
    enum tls_rec_alg alg;
    const char *name;
} suites12[] = {
    {0xC0A4, ALG_AES128_CCM, "PSK-AES128-CCM"},
    {0xC0A5, ALG_AES256_CCM, "PSK-AES256-CCM"},
    {0xC0A8, ALG_AES128_CCM8, "PSK-AES128-CCM8"},
    {0xC0A9, ALG_AES256_CCM8, "PSK-AES256-CCM8"},
    {0x00A8, ALG_AES128_GCM, "PSK-AES128-GCM-SHA256"},
    {0xCCAB, ALG_CHACHA20_POLY1305, "PSK-CHACHA20-POLY1305"},
};
#define SUITES12 (sizeof(suites12) / sizeof(suites12[0]))

const char *tls_rec_psk_suite12(uint16_t suite)
{
    for (size_t i = 0; i < SUITES12; i++)
        if (suites12[i].id == suite)
            return suites12[i].name;
    return NULL;
}

int tls_rec_new12(uint16_t suite, const uint8_t master[48], const uint8_t client_random[32],
                  const uint8_t server_random[32], size_t max_plain, struct tls_rec **out_rec)
{
    *out_rec = NULL;
    pthread_once(&fetch_once, fetch_algorithms);
    size_t i = 0;
    while (i < SUITES12 && suites12[i].id != suite)
        i++;
    if (i == SUITES12 || !ciphers[suites12[i].alg])
        return TLS_REC_UNSUPPORTED;
    struct tls_rec *r = calloc(1, rec_size(false));
    if (!r)
        return TLS_REC_ERROR;
    r->alg = suites12[i].alg;
    uint8_t block[2 * 32 + 2 * 12];
    size_t kl = alg_info[r->alg].key_len, il = alg_info[r->alg].iv_len;
    if (key_block12(false, master, 48, server_random, client_random, block, 2 * kl + 2 * il) != 0) {
        OPENSSL_cleanse(block, sizeof(block));
        tls_rec_free(r);
        return TLS_REC_ERROR;
    }
    set_keys12(r, block);
    OPENSSL_cleanse(block, sizeof(block));
    /* our explicit nonces (GCM, CCM) are the sequence numbers, as RFC 6655 3 has it */
    r->write_nonce_base = 0;
    r->id = next_id++;
    if (max_plain == 0 || max_plain > TLS_REC_MAX_PLAIN)
        max_plain = TLS_REC_MAX_PLAIN;
    r->max_plain = (uint16_t)max_plain;
    *out_rec = r;
    return TLS_REC_OK;
}

unsigned tls_rec_thread_keys(void)
{
    unsigned n = 0;
    for (int a = 0; a < ALG_COUNT; a++)
        for (int e = 0; e < 2; e++)
            for (int i = 0; i < KEY_SLOTS; i++)
                n += key_slots[a][e][i].ctx && key_slots[a][e][i].id != 0;
    return n;
}

void tls_rec_free(struct tls_rec *r)
{
    if (!r)
        return;
    /* this thread's cipher contexts may still hold this connection's expanded keys: they go
     * with it */
    forget_thread_keys(r);
    OPENSSL_cleanse(r, rec_size(r->tls13));
    free(r);
}

size_t tls_rec_max_plain(const struct tls_rec *r)
{
    return r->max_plain;
}

/* ---- protecting and opening records ---- */

/* Bytes a record adds to its content: header, explicit nonce (TLS 1.2 GCM/CCM), inner content
 * type (TLS 1.3), tag. */
static size_t overhead(const struct tls_rec *r)
{
    return TLS_REC_HEADER +
           (r->tls13                          ? 1
            : r->alg != ALG_CHACHA20_POLY1305 ? 8
                                              : 0) +
           alg_info[r->alg].tag_len;
}

static void record_nonce(const struct tls_rec *r, const uint8_t *iv, uint64_t seq,
                         const uint8_t *explicit8, uint8_t nonce[12])
{
    if (r->tls13 || r->alg == ALG_CHACHA20_POLY1305) {
        memcpy(nonce, iv, 12);
        for (int i = 0; i < 8; i++)
            nonce[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
    } else {
        memcpy(nonce, iv, 4);
        memcpy(nonce + 4, explicit8, 8);
    }
}

/* The additional data: TLS 1.2 seq_num + type + version + plaintext length (13 bytes); TLS 1.3
 * the record header (5). Returns its length. */
static size_t record_aad(const struct tls_rec *r, uint64_t seq, const uint8_t *header,
                         size_t plain_len, uint8_t aad[13])
{
    if (r->tls13) {
        memcpy(aad, header, TLS_REC_HEADER);
        return TLS_REC_HEADER;
    }
    put_be64(aad, seq);
    aad[8] = header[0];
    aad[9] = 3;
    aad[10] = 3;
    aad[11] = (uint8_t)(plain_len >> 8);
    aad[12] = (uint8_t)plain_len;
    return 13;
}

/* Encrypts p[0..len) in place and writes the tag; 0 on success. */
static int aead_seal(struct tls_rec *r, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                     uint8_t *p, size_t len, uint8_t *tag)
{
    EVP_CIPHER_CTX *ctx = keyed_ctx(r, 1, nonce);
    bool ccm = alg_info[r->alg].ccm;
    int outl, tl = alg_info[r->alg].tag_len;
    if (!ctx ||
        (ccm && !EVP_CipherUpdate(ctx, NULL, &outl, NULL, (int)len)) ||
        !EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) ||
        /* CCM computes the tag in the data update, even an empty one (p is never NULL) */
        ((len || ccm) && !EVP_CipherUpdate(ctx, p, &outl, p, (int)len)) ||
        !EVP_CipherFinal_ex(ctx, p + len, &outl) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, tl, tag))
        return -1;
    return 0;
}

/* Decrypts p[0..len) in place after checking the tag; 0 on success. */
static int aead_open(struct tls_rec *r, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                     uint8_t *p, size_t len, const uint8_t *tag)
{
    EVP_CIPHER_CTX *ctx = keyed_ctx(r, 0, nonce);
    bool ccm = alg_info[r->alg].ccm;
    int outl, tl = alg_info[r->alg].tag_len;
    if (!ctx ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, tl, (void *)tag))
        return -1;
    if (ccm) /* CCM checks the tag in the one update that carries the data */
        return EVP_CipherUpdate(ctx, NULL, &outl, NULL, (int)len) &&
                       EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) &&
                       EVP_CipherUpdate(ctx, p, &outl, p, (int)len) > 0
                   ? 0
                   : -1;
    return EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) &&
                   (len == 0 || EVP_CipherUpdate(ctx, p, &outl, p, (int)len)) &&
                   EVP_CipherFinal_ex(ctx, p + len, &outl) > 0
               ? 0
               : -1;
}

/* One record of `type` around plaintext[0..len) at out; returns its size or 0. */
static size_t seal_record(struct tls_rec *r, uint8_t type, const uint8_t *plaintext, size_t len,
                          uint8_t *out)
{
    size_t ex = !r->tls13 && r->alg != ALG_CHACHA20_POLY1305 ? 8 : 0;
    size_t inner = len + (r->tls13 ? 1 : 0); /* TLS 1.3: the content type goes inside */
    size_t body = ex + inner + alg_info[r->alg].tag_len;
    uint8_t nonce[12], aad[13];
    out[0] = r->tls13 ? TLS_REC_APPLICATION_DATA : type;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    if (ex)
        put_be64(out + TLS_REC_HEADER, r->write_nonce_base + r->write_seq);
    record_nonce(r, r->write_iv, r->write_seq, out + TLS_REC_HEADER, nonce);
    size_t aad_len = record_aad(r, r->write_seq, out, len, aad);
    uint8_t *p = out + TLS_REC_HEADER + ex;
    if (len)
        memmove(p, plaintext, len);
    if (r->tls13)
        p[len] = type;
    if (aead_seal(r, nonce, aad, aad_len, p, inner, p + inner) != 0)
        return 0;
    r->write_seq++;
    return TLS_REC_HEADER + body;
}

/* TLS 1.3: our KeyUpdate (update_not_requested) and the new write keys; returns the record's
 * size or 0. */
static size_t seal_key_update(struct tls_rec *r, uint8_t *out)
{
    static const uint8_t msg[5] = {TLS13_KEY_UPDATE, 0, 0, 1, 0};
    size_t n = seal_record(r, TLS_REC_HANDSHAKE, msg, sizeof(msg), out);
    if (n == 0 || update_traffic(r, 1) != 0)
        return 0;
    r->key_update_due = false;
    return n;
}

size_t tls_rec_seal(struct tls_rec *r, const uint8_t *plaintext, size_t len, uint8_t *out,
                    size_t cap, size_t *taken)
{
    size_t done = 0, written = 0, ov = overhead(r);
    *taken = 0;
    while (done < len && cap - written > ov + 5) {
        if (r->tls13 && (r->key_update_due || r->write_seq >= TLS13_KEY_UPDATE_AFTER)) {
            size_t n = seal_key_update(r, out + written);
            if (n == 0)
                return 0;
            written += n;
            continue;
        }
        size_t n = len - done;
        if (n > r->max_plain)
            n = r->max_plain;
        if (n > cap - written - ov)
            n = cap - written - ov;
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

const char *tls_rec_alert_name(uint8_t description)
{
    switch (description) {
    case TLS_ALERT_CLOSE_NOTIFY:
        return "close_notify";
    case TLS_ALERT_UNEXPECTED_MESSAGE:
        return "unexpected_message";
    case TLS_ALERT_BAD_RECORD_MAC:
        return "bad_record_mac";
    case TLS_ALERT_RECORD_OVERFLOW:
        return "record_overflow";
    case TLS_ALERT_ILLEGAL_PARAMETER:
        return "illegal_parameter";
    case TLS_ALERT_DECODE_ERROR:
        return "decode_error";
    case TLS_ALERT_PROTOCOL_VERSION:
        return "protocol_version";
    case TLS_ALERT_INTERNAL_ERROR:
        return "internal_error";
    case TLS_ALERT_NO_RENEGOTIATION:
        return "renegotiation_refused";
    default:
        return "other_alert";
    }
}

size_t tls_rec_alert(struct tls_rec *r, uint8_t description, uint8_t *out, size_t cap)
{
    uint8_t alert[2] = {description == TLS_ALERT_CLOSE_NOTIFY ? 1 : 2, description};
    if (cap < TLS_REC_OVERHEAD + sizeof(alert))
        return 0;
    if (description != TLS_ALERT_CLOSE_NOTIFY)
        r->failed = true;
    return seal_record(r, TLS_REC_ALERT, alert, sizeof(alert), out);
}

size_t tls_rec_warning(struct tls_rec *r, uint8_t description, uint8_t *out, size_t cap)
{
    uint8_t alert[2] = {1, description};
    if (cap < TLS_REC_OVERHEAD + sizeof(alert) || r->failed)
        return 0;
    return seal_record(r, TLS_REC_ALERT, alert, sizeof(alert), out);
}

bool tls_rec_failed(const struct tls_rec *r)
{
    return r->failed;
}

uint8_t tls_rec_take_warning(struct tls_rec *r)
{
    uint8_t w = r->warning;
    r->warning = 0;
    return w;
}

struct tls_rec *tls_rec_peer(const struct tls_rec *r)
{
    struct tls_rec *m = malloc(rec_size(r->tls13));
    if (!m)
        return NULL;
    memcpy(m, r, rec_size(r->tls13));
    m->id = next_id++;
    m->read_seq = r->write_seq;
    m->write_seq = r->read_seq;
    m->write_nonce_base = 0;
    memcpy(m->read_key, r->write_key, sizeof(m->read_key));
    memcpy(m->write_key, r->read_key, sizeof(m->write_key));
    memcpy(m->read_iv, r->write_iv, sizeof(m->read_iv));
    memcpy(m->write_iv, r->read_iv, sizeof(m->write_iv));
    if (r->tls13) {
        memcpy(m->secret[0], r->secret[1], TLS_REC_SECRET_MAX);
        memcpy(m->secret[1], r->secret[0], TLS_REC_SECRET_MAX);
    }
    m->hs_len = 0;
    m->empty_run = 0;
    m->warning_run = 0;
    m->failed = false;
    m->warning = 0;
    return m;
}

size_t tls_rec_seal_type(struct tls_rec *r, uint8_t type, const uint8_t *plaintext, size_t len,
                         uint8_t *out, size_t cap)
{
    if (len > TLS_REC_MAX_PLAIN || cap < len + TLS_REC_OVERHEAD)
        return 0;
    return seal_record(r, type, plaintext, len, out);
}

/*
 * TLS 1.3: the handshake messages a client may send after the handshake: only KeyUpdate (RFC
 * 8446 4.6.3), which may arrive in pieces over several records (5.1), must end its record (the
 * keys change after it), and whose record may not be empty (5.4 forbids zero-length Handshake
 * fragments). Returns 0 or the alert.
 */
static uint8_t post_handshake(struct tls_rec *r, const uint8_t *p, size_t n)
{
    if (n == 0)
        return TLS_ALERT_UNEXPECTED_MESSAGE;
    while (n > 0) {
        size_t take = sizeof(r->hs_buf) - r->hs_len;
        if (take > n)
            take = n;
        memcpy(r->hs_buf + r->hs_len, p, take);
        r->hs_len = (uint8_t)(r->hs_len + take);
        p += take;
        n -= take;
        const uint8_t *m = r->hs_buf;
        if (m[0] != TLS13_KEY_UPDATE)
            return TLS_ALERT_UNEXPECTED_MESSAGE;
        if (r->hs_len >= 4 && (m[1] != 0 || m[2] != 0 || m[3] != 1))
            return TLS_ALERT_DECODE_ERROR; /* a KeyUpdate body is one byte */
        if (r->hs_len < sizeof(r->hs_buf))
            return 0; /* the rest comes in the next record */
        if (m[4] > 1)
            return TLS_ALERT_ILLEGAL_PARAMETER;
        r->hs_len = 0;
        if (update_traffic(r, 0) != 0)
            return TLS_ALERT_INTERNAL_ERROR;
        if (m[4] == 1)
            r->key_update_due = true;
        if (n > 0)
            return TLS_ALERT_UNEXPECTED_MESSAGE; /* more after it: no record boundary */
    }
    return 0;
}

/* One more record without application data; false when that makes too many in a row. */
static bool count_empty(struct tls_rec *r)
{
    return ++r->empty_run <= TLS_REC_EMPTY_MAX;
}

/* Opens the complete record at h in place: its content type, where its plaintext starts and
 * how long it is. Returns 0 or the alert to send. */
static uint8_t open_one(struct tls_rec *r, uint8_t *h, uint8_t *type, uint8_t **plain,
                        size_t *plain_len)
{
    size_t ex = !r->tls13 && r->alg != ALG_CHACHA20_POLY1305 ? 8 : 0;
    size_t tl = alg_info[r->alg].tag_len;
    size_t body = (size_t)h[3] << 8 | h[4];
    if (body < ex + tl + (r->tls13 ? 1 : 0))
        return TLS_ALERT_BAD_RECORD_MAC;
    size_t n = body - ex - tl;
    uint8_t nonce[12], aad[13];
    uint8_t *p = h + TLS_REC_HEADER + ex;
    record_nonce(r, r->read_iv, r->read_seq, h + TLS_REC_HEADER, nonce);
    size_t aad_len = record_aad(r, r->read_seq, h, n, aad);
    if (aead_open(r, nonce, aad, aad_len, p, n, p + n) != 0)
        return TLS_ALERT_BAD_RECORD_MAC;
    r->read_seq++;
    *type = h[0];
    if (r->tls13) { /* TLSInnerPlaintext: content, type, zero padding (RFC 8446 5.2) */
        while (n > 0 && p[n - 1] == 0)
            n--;
        if (n == 0)
            return TLS_ALERT_UNEXPECTED_MESSAGE;
        *type = p[--n];
    }
    if (n > TLS_REC_MAX_PLAIN)
        return TLS_ALERT_RECORD_OVERFLOW;
    *plain = p;
    *plain_len = n;
    return 0;
}

uint8_t tls_rec_open_record(struct tls_rec *r, uint8_t *rec, size_t len, uint8_t *type,
                            uint8_t **plain, size_t *plain_len)
{
    if (len < TLS_REC_HEADER || len != TLS_REC_HEADER + ((size_t)rec[3] << 8 | rec[4]) ||
        rec[1] != 3 || rec[2] != 3)
        return TLS_ALERT_DECODE_ERROR;
    if (len - TLS_REC_HEADER > TLS_REC_MAX_CIPHERTEXT)
        return TLS_ALERT_RECORD_OVERFLOW;
    uint8_t a = open_one(r, rec, type, plain, plain_len);
    if (a)
        r->failed = true;
    return a;
}

int tls_rec_open(struct tls_rec *r, uint8_t *buf, size_t len, size_t *used, size_t *plain_len,
                 uint8_t *alert)
{
    size_t max_body = r->tls13 ? TLS13_MAX_CIPHERTEXT : TLS_REC_MAX_CIPHERTEXT;
    size_t off = 0, plain = 0;
    int rc = TLS_REC_OK;
    while (len - off >= TLS_REC_HEADER) {
        uint8_t *h = buf + off;
        size_t body = (size_t)h[3] << 8 | h[4];
        if (h[1] != 3 || h[2] != 3 || (r->tls13 && h[0] != TLS_REC_APPLICATION_DATA)) {
            /* TLS 1.2 records carry the negotiated version; TLS 1.3's legacy field is fixed
             * (RFC 8446 5.1), so a wrong one there is malformed: the alerts OpenSSL sends */
            *alert = h[1] != 3 || h[2] != 3
                         ? (r->tls13 ? TLS_ALERT_DECODE_ERROR : TLS_ALERT_PROTOCOL_VERSION)
                         : TLS_ALERT_UNEXPECTED_MESSAGE;
            rc = TLS_REC_ERROR;
            break;
        }
        if (body > max_body) {
            *alert = TLS_ALERT_RECORD_OVERFLOW;
            rc = TLS_REC_ERROR;
            break;
        }
        if (len - off < TLS_REC_HEADER + body)
            break;
        uint8_t type, *p;
        size_t n;
        uint8_t bad = open_one(r, h, &type, &p, &n);
        if (bad) {
            *alert = bad;
            rc = TLS_REC_ERROR;
            break;
        }
        off += TLS_REC_HEADER + body;
        if (r->hs_len > 0 && type != TLS_REC_HANDSHAKE) {
            /* a KeyUpdate begun must be finished before anything else (RFC 8446 5.1) */
            *alert = TLS_ALERT_UNEXPECTED_MESSAGE;
            rc = TLS_REC_ERROR;
            break;
        }
        if (type == TLS_REC_APPLICATION_DATA) {
            if (n == 0) {
                if (count_empty(r))
                    continue;
                *alert = TLS_ALERT_UNEXPECTED_MESSAGE;
                rc = TLS_REC_ERROR;
                break;
            }
            r->empty_run = 0;
            r->warning_run = 0;
            memmove(buf + plain, p, n);
            plain += n;
            continue;
        }
        if (type == TLS_REC_ALERT && n == 2) {
            /* TLS 1.2 warnings, and user_canceled in TLS 1.3 (RFC 8446 6.1), change nothing */
            if ((r->tls13 ? p[1] == TLS_ALERT_USER_CANCELED
                          : p[0] == 1 && p[1] != TLS_ALERT_CLOSE_NOTIFY)) {
                if (++r->warning_run <= TLS_REC_WARNINGS_MAX && count_empty(r))
                    continue;
                *alert = TLS_ALERT_UNEXPECTED_MESSAGE;
                rc = TLS_REC_ERROR;
                break;
            }
            if (p[1] != TLS_ALERT_CLOSE_NOTIFY)
                r->failed = true; /* a fatal alert: nothing more may be sent */
            rc = TLS_REC_CLOSED; /* close_notify or a fatal alert: the peer is done */
            break;
        }
        if (type == TLS_REC_HANDSHAKE && r->tls13) {
            uint8_t a = post_handshake(r, p, n);
            if (a == 0 && count_empty(r))
                continue;
            *alert = a ? a : TLS_ALERT_UNEXPECTED_MESSAGE;
            rc = TLS_REC_ERROR;
            break;
        }
        if (type == TLS_REC_HANDSHAKE && n > 0) {
            /* TLS 1.2: a handshake message now is a renegotiation, which psagw does not do: a
             * warning no_renegotiation, and the connection goes on (RFC 5246 7.2.2), as with
             * OpenSSL's record layer; the message itself is ignored */
            r->warning = TLS_ALERT_NO_RENEGOTIATION;
            if (count_empty(r))
                continue;
            *alert = TLS_ALERT_UNEXPECTED_MESSAGE;
            rc = TLS_REC_ERROR;
            break;
        }
        /* anything else (ChangeCipherSpec, heartbeat, unknown types, malformed alerts, empty
         * handshake records) is out of place */
        *alert = TLS_ALERT_UNEXPECTED_MESSAGE;
        rc = TLS_REC_ERROR;
        break;
    }
    if (rc == TLS_REC_ERROR)
        r->failed = true; /* the caller sends the fatal alert; nothing may follow it */
    *used = off;
    *plain_len = plain;
    return rc;
}
