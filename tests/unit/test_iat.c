/*
 * test_iat.c: the attestation token library against RFC 9783's example and TF-M's layout,
 * and one test per way a token must be refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "psagw/cbor.h"
#include "psagw/iat.h"
#include "psagw/iat_crypto.h"

#ifndef VECTORS_DIR
#error "VECTORS_DIR must be defined"
#endif

/* RFC 9783's symmetric IAK (tests/vectors/README.md). */
static const uint8_t rfc_key[64] = {
    0xde, 0x03, 0x8b, 0x34, 0xac, 0xa1, 0x25, 0x76, 0x8c, 0x5e, 0x33, 0x57, 0xab, 0x8d, 0x06,
    0xb3, 0x67, 0xb9, 0xab, 0x0d, 0x7e, 0x8b, 0xe1, 0x24, 0xed, 0xca, 0x47, 0xfe, 0x03, 0x3a,
    0x5b, 0xb7, 0xa9, 0x3d, 0x30, 0x7f, 0xf2, 0x29, 0xaa, 0x36, 0xff, 0x24, 0x6c, 0x12, 0x95,
    0x96, 0x4f, 0xac, 0xf7, 0x1a, 0xb7, 0xaa, 0x6e, 0xc4, 0xfd, 0x61, 0x02, 0xb7, 0xb3, 0x98,
    0x32, 0x55, 0xad, 0x92};

/* TF-M's public dummy symmetric IAK (test only; docs/design/token.md). */
static const uint8_t tfm_iak[32] = {
    0xA9, 0xB4, 0x54, 0xB2, 0x6D, 0x6F, 0x90, 0xA4, 0xEA, 0x31, 0x19, 0x35, 0x64, 0xCB, 0xA9, 0x1F,
    0xEC, 0x6F, 0x9A, 0x00, 0x2A, 0x7D, 0xC0, 0x50, 0x4B, 0x92, 0xA1, 0x93, 0x71, 0x34, 0x58, 0x5F};

static uint8_t rfc_token[512];
static size_t rfc_token_len;

static void load_rfc_token(void)
{
    FILE *f = fopen(VECTORS_DIR "/rfc9783-mac0.hex", "r");
    assert_non_null(f);
    int c, hi = -1;
    rfc_token_len = 0;
    while ((c = fgetc(f)) != EOF) {
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            rfc_token[rfc_token_len++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    fclose(f);
    assert_int_equal(rfc_token_len, 323);
}

static const uint8_t ones[64] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

static void test_rfc9783_example_verifies(void **state)
{
    (void)state;
    load_rfc_token();
    struct iat_key key = {.raw = rfc_key, .raw_len = sizeof rfc_key};
    struct iat_policy pol = {.key = &key, .nonce = ones, .nonce_len = 32};
    struct iat_token t;
    assert_int_equal(iat_verify(rfc_token, rfc_token_len, &pol, &t), IAT_OK);
    assert_int_equal(t.alg, IAT_ALG_HMAC256);
    assert_int_equal(t.claims.profile, IAT_PROFILE_PSA2);
    assert_int_equal(t.claims.client_id, 0x7fffffff);
    assert_int_equal(t.claims.lifecycle, IAT_LC_SECURED);
    assert_int_equal(t.claims.boot_seed_key, 2397);
    assert_int_equal(t.claims.sw_count, 1);
    assert_int_equal(t.claims.sw[0].type.len, 4);
    assert_memory_equal(t.claims.sw[0].type.p, "PRoT", 4);
    assert_int_equal(t.claims.cert_ref.len, 19);
    uint8_t iid[IAT_INSTANCE_ID_SIZE];
    assert_int_equal(iat_instance_id(rfc_key, sizeof rfc_key, iid), 0);
    assert_memory_equal(iid, t.claims.instance_id.p, IAT_INSTANCE_ID_SIZE);
}

static void test_rfc9783_example_reencodes_byte_for_byte(void **state)
{
    (void)state;
    load_rfc_token();
    struct iat_token t;
    assert_int_equal(iat_decode_unverified(rfc_token, rfc_token_len, IAT_PROFILE_AUTO, &t), IAT_OK);
    /* The RFC example's claim and field order (not TF-M's). */
    static const enum iat_claim order[] = {
        IAT_CLAIM_INSTANCE_ID, IAT_CLAIM_IMPLEMENTATION_ID, IAT_CLAIM_NONCE,
        IAT_CLAIM_CLIENT_ID,   IAT_CLAIM_CERT_REF,          IAT_CLAIM_LIFECYCLE,
        IAT_CLAIM_PROFILE,     IAT_CLAIM_BOOT_SEED,         IAT_CLAIM_SW_COMPONENTS,
    };
    static const int sw_order[] = {IAT_SW_SIGNER_ID, IAT_SW_VALUE, IAT_SW_TYPE};
    struct iat_key key = {.raw = rfc_key, .raw_len = sizeof rfc_key};
    uint8_t out[512];
    size_t len = 0;
    assert_int_equal(iat_encode(&t.claims, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, &key, order, 9,
                                sw_order, 3, out, sizeof out, &len),
                     IAT_OK);
    assert_int_equal(len, rfc_token_len);
    assert_memory_equal(out, rfc_token, len);
}

/* ---- A TF-M-like legacy token ---------------------------------------------------------- */

static uint8_t nonce[64], boot_seed[32], impl_id[32], meas_spe[32], meas_nspe[32], signer[32];
static uint8_t tfm_iid[IAT_INSTANCE_ID_SIZE];

static void base_claims(struct iat_claims *c, enum iat_profile profile)
{
    for (int i = 0; i < 64; i++)
        nonce[i] = (uint8_t)(0xa0 + i);
    memset(boot_seed, 0xb5, sizeof boot_seed);
    memset(impl_id, 0xaa, sizeof impl_id);
    memset(meas_spe, 0x11, sizeof meas_spe);
    memset(meas_nspe, 0x22, sizeof meas_nspe);
    memset(signer, 0x5e, sizeof signer);
    assert_int_equal(iat_instance_id(tfm_iak, sizeof tfm_iak, tfm_iid), 0);
    memset(c, 0, sizeof *c);
    c->nonce = (struct iat_bytes){nonce, 32};
    c->boot_seed = (struct iat_bytes){boot_seed, 32};
    c->instance_id = (struct iat_bytes){tfm_iid, sizeof tfm_iid};
    c->implementation_id = (struct iat_bytes){impl_id, 32};
    c->client_id = -1;
    c->lifecycle = IAT_LC_SECURED;
    c->sw_count = 2;
    c->sw[0].type = (struct iat_bytes){(const uint8_t *)"SPE", 3};
    c->sw[0].value = (struct iat_bytes){meas_spe, 32};
    c->sw[0].version = (struct iat_bytes){(const uint8_t *)"1.0.0", 5};
    c->sw[0].signer_id = (struct iat_bytes){signer, 32};
    c->sw[0].description = (struct iat_bytes){(const uint8_t *)"sha-256", 7};
    c->sw[0].present = 1u << IAT_SW_TYPE | 1u << IAT_SW_VALUE | 1u << IAT_SW_VERSION |
                       1u << IAT_SW_SIGNER_ID | 1u << IAT_SW_DESCRIPTION;
    c->sw[1] = c->sw[0];
    c->sw[1].type = (struct iat_bytes){(const uint8_t *)"NSPE", 4};
    c->sw[1].value = (struct iat_bytes){meas_nspe, 32};
    const char *pname = profile == IAT_PROFILE_LEGACY ? IAT_PROFILE_STR_LEGACY
                                                      : IAT_PROFILE_STR_PSA2_2023;
    c->profile_name = (struct iat_bytes){(const uint8_t *)pname, strlen(pname)};
    c->present = 1u << IAT_CLAIM_NONCE | 1u << IAT_CLAIM_BOOT_SEED | 1u << IAT_CLAIM_INSTANCE_ID |
                 1u << IAT_CLAIM_IMPLEMENTATION_ID | 1u << IAT_CLAIM_CLIENT_ID |
                 1u << IAT_CLAIM_LIFECYCLE | 1u << IAT_CLAIM_SW_COMPONENTS |
                 1u << IAT_CLAIM_PROFILE;
}

static const struct iat_key tfm_key = {.raw = tfm_iak, .raw_len = sizeof tfm_iak};

static size_t make_token(const struct iat_claims *c, enum iat_profile p, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    assert_int_equal(iat_encode(c, p, IAT_ALG_HMAC256, &tfm_key, NULL, 0, NULL, 0, buf, cap, &len),
                     IAT_OK);
    return len;
}

static enum iat_result verify(const uint8_t *tok, size_t len, struct iat_token *t)
{
    struct iat_policy pol = {.key = &tfm_key, .nonce = nonce, .nonce_len = 32};
    return iat_verify(tok, len, &pol, t);
}

static void test_tfm_layout_legacy(void **state)
{
    (void)state;
    struct iat_claims c;
    base_claims(&c, IAT_PROFILE_LEGACY);
    uint8_t tok[1024];
    size_t len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
    /* Envelope exactly as TF-M: tag 17, [h'a10105', {}, payload, tag]. */
    static const uint8_t head[] = {0xd1, 0x84, 0x43, 0xa1, 0x01, 0x05, 0xa0, 0x59};
    assert_memory_equal(tok, head, sizeof head);
    /* First claim: map of 8, nonce key -75008 (0x3a 00 01 24 ff), bstr 32. */
    static const uint8_t first[] = {0xa8, 0x3a, 0x00, 0x01, 0x24, 0xff, 0x58, 0x20};
    assert_memory_equal(tok + 10, first, sizeof first);
    /* Then boot seed -75004 after the 32 nonce bytes. */
    static const uint8_t second[] = {0x3a, 0x00, 0x01, 0x24, 0xfb};
    assert_memory_equal(tok + 10 + sizeof first + 32, second, sizeof second);
    /* The first software component starts with signer ID (5), then version (4), type (1). */
    struct iat_token t;
    assert_int_equal(verify(tok, len, &t), IAT_OK);
    assert_int_equal(t.claims.profile, IAT_PROFILE_LEGACY);
    const uint8_t *sw0 = t.claims.sw[0].signer_id.p;
    assert_int_equal(sw0[-4], 0xa5); /* map of 5, key 5, bstr 32 */
    assert_int_equal(sw0[-3], 0x05);
    assert_true(t.claims.sw[0].version.p > t.claims.sw[0].signer_id.p);
    assert_true(t.claims.sw[0].type.p > t.claims.sw[0].version.p);
    assert_true(t.claims.sw[0].description.p > t.claims.sw[0].type.p);
    assert_true(t.claims.sw[0].value.p > t.claims.sw[0].description.p);
    /* The size query agrees, and a short buffer is refused with the size needed. */
    size_t need = 0;
    assert_int_equal(iat_encode(&c, IAT_PROFILE_LEGACY, IAT_ALG_HMAC256, &tfm_key, NULL, 0, NULL,
                                0, NULL, 0, &need),
                     IAT_ERR_BUFFER);
    assert_int_equal(need, len);
    assert_true(len <= IAT_TFM_MAX_TOKEN_SIZE);
}

static void test_psa2_profile_and_larger_macs(void **state)
{
    (void)state;
    struct iat_claims c;
    base_claims(&c, IAT_PROFILE_PSA2);
    c.present &= ~(1u << IAT_CLAIM_BOOT_SEED); /* optional in PSA 2.0 */
    uint8_t tok[1024];
    struct iat_token t;
    for (int alg = IAT_ALG_HMAC256; alg <= IAT_ALG_HMAC512; alg++) {
        size_t len = 0;
        assert_int_equal(iat_encode(&c, IAT_PROFILE_PSA2, alg, &tfm_key, NULL, 0, NULL, 0, tok,
                                    sizeof tok, &len),
                         IAT_OK);
        assert_int_equal(verify(tok, len, &t), IAT_OK);
        assert_int_equal(t.alg, alg);
        assert_int_equal(t.tag.len, iat_alg_mac_size(alg));
        assert_int_equal(t.claims.profile, IAT_PROFILE_PSA2);
        /* Pinned to the other profile: refused. */
        struct iat_policy pol = {.key = &tfm_key, .nonce = nonce, .nonce_len = 32,
                                 .profile = IAT_PROFILE_LEGACY};
        assert_int_equal(iat_verify(tok, len, &pol, &t), IAT_ERR_PROFILE);
        /* An alg the policy does not allow. */
        struct iat_policy pol2 = {.key = &tfm_key, .nonce = nonce, .nonce_len = 32,
                                  .alg_mask = 1u << IAT_ALG_HMAC384};
        assert_int_equal(iat_verify(tok, len, &pol2, &t),
                         alg == IAT_ALG_HMAC384 ? IAT_OK : IAT_ERR_ALG);
    }
}

/* ---- Refusals ------------------------------------------------------------------------- */

static size_t good_token(uint8_t *tok, size_t cap)
{
    struct iat_claims c;
    base_claims(&c, IAT_PROFILE_LEGACY);
    return make_token(&c, IAT_PROFILE_LEGACY, tok, cap);
}

static void test_refuses_wrong_key(void **state)
{
    (void)state;
    uint8_t tok[1024];
    size_t len = good_token(tok, sizeof tok);
    uint8_t other[32];
    memcpy(other, tfm_iak, 32);
    other[31] ^= 1;
    struct iat_key k = {.raw = other, .raw_len = 32};
    struct iat_policy pol = {.key = &k, .nonce = nonce, .nonce_len = 32};
    struct iat_token t;
    assert_int_equal(iat_verify(tok, len, &pol, &t), IAT_ERR_MAC);
}

static void test_refuses_flipped_mac_byte(void **state)
{
    (void)state;
    uint8_t tok[1024];
    size_t len = good_token(tok, sizeof tok);
    struct iat_token t;
    for (size_t i = len - 32; i < len; i++) {
        tok[i] ^= 0x80;
        assert_int_equal(verify(tok, len, &t), IAT_ERR_MAC);
        tok[i] ^= 0x80;
    }
    assert_int_equal(verify(tok, len, &t), IAT_OK);
}

static void test_refuses_flipped_payload_byte(void **state)
{
    (void)state;
    uint8_t tok[1024];
    size_t len = good_token(tok, sizeof tok);
    struct iat_token t;
    tok[len / 2] ^= 0x01;
    assert_int_equal(verify(tok, len, &t), IAT_ERR_MAC);
}

static void test_refuses_wrong_nonce(void **state)
{
    (void)state;
    uint8_t tok[1024];
    size_t len = good_token(tok, sizeof tok);
    uint8_t other[32];
    memcpy(other, nonce, 32);
    other[0] ^= 1;
    struct iat_policy pol = {.key = &tfm_key, .nonce = other, .nonce_len = 32};
    struct iat_token t;
    assert_int_equal(iat_verify(tok, len, &pol, &t), IAT_ERR_NONCE);
    /* The right bytes but a longer expected nonce (48): also a mismatch. */
    struct iat_policy pol48 = {.key = &tfm_key, .nonce = nonce, .nonce_len = 48};
    assert_int_equal(iat_verify(tok, len, &pol48, &t), IAT_ERR_NONCE);
}

static void test_nonce_sizes(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        enum iat_result want;
    } cases[] = {{31, IAT_ERR_NONCE_SIZE}, {32, IAT_OK}, {33, IAT_ERR_NONCE_SIZE},
                 {48, IAT_OK},             {64, IAT_OK}, {65, IAT_ERR_NONCE_SIZE}};
    static uint8_t big[65];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct iat_claims c;
        base_claims(&c, IAT_PROFILE_LEGACY);
        memcpy(big, nonce, 64);
        big[64] = 0x42;
        c.nonce = (struct iat_bytes){big, cases[i].len};
        uint8_t tok[1024];
        size_t len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
        struct iat_policy pol = {.key = &tfm_key, .nonce = big, .nonce_len = cases[i].len};
        struct iat_token t;
        assert_int_equal(iat_verify(tok, len, &pol, &t), cases[i].want);
    }
}

static void test_refuses_each_missing_claim(void **state)
{
    (void)state;
    static const enum iat_claim mandatory_legacy[] = {
        IAT_CLAIM_NONCE,     IAT_CLAIM_BOOT_SEED, IAT_CLAIM_INSTANCE_ID, IAT_CLAIM_IMPLEMENTATION_ID,
        IAT_CLAIM_CLIENT_ID, IAT_CLAIM_LIFECYCLE, IAT_CLAIM_SW_COMPONENTS,
    };
    for (size_t i = 0; i < sizeof mandatory_legacy / sizeof mandatory_legacy[0]; i++) {
        struct iat_claims c;
        base_claims(&c, IAT_PROFILE_LEGACY);
        c.present &= ~(1u << mandatory_legacy[i]);
        uint8_t tok[1024];
        size_t len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
        struct iat_token t;
        assert_int_equal(verify(tok, len, &t), IAT_ERR_MISSING_CLAIM);
        assert_int_equal(t.bad_claim, mandatory_legacy[i]);
    }
    /* PSA 2.0: the profile claim is mandatory, the boot seed is not. */
    struct iat_claims c;
    base_claims(&c, IAT_PROFILE_PSA2);
    c.present &= ~(1u << IAT_CLAIM_PROFILE);
    uint8_t tok[1024];
    size_t len = make_token(&c, IAT_PROFILE_PSA2, tok, sizeof tok);
    struct iat_token t;
    assert_int_equal(verify(tok, len, &t), IAT_ERR_MISSING_CLAIM);
    assert_int_equal(t.bad_claim, IAT_CLAIM_PROFILE);
    /* Legacy without SW components but with the "no measurements" claim: accepted. */
    base_claims(&c, IAT_PROFILE_LEGACY);
    c.present &= ~(1u << IAT_CLAIM_SW_COMPONENTS);
    c.present |= 1u << IAT_CLAIM_NO_SW_MEASUREMENTS;
    len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
    assert_int_equal(verify(tok, len, &t), IAT_OK);
    /* A software component without its measurement value. */
    base_claims(&c, IAT_PROFILE_LEGACY);
    c.sw[1].present &= ~(1u << IAT_SW_VALUE);
    len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
    assert_int_equal(verify(tok, len, &t), IAT_ERR_MISSING_CLAIM);
    assert_int_equal(t.bad_sw, 1);
}

/* Builds a legacy token by hand with claim `wrong` given a value of the wrong CBOR type. */
static size_t token_with_wrong_type(enum iat_claim wrong, uint8_t *tok, size_t cap)
{
    uint8_t payload[1024];
    struct cbor_writer w;
    cbor_writer_init(&w, payload, sizeof payload);
    static const enum iat_claim claims[] = {
        IAT_CLAIM_NONCE,     IAT_CLAIM_BOOT_SEED, IAT_CLAIM_INSTANCE_ID, IAT_CLAIM_IMPLEMENTATION_ID,
        IAT_CLAIM_CLIENT_ID, IAT_CLAIM_LIFECYCLE, IAT_CLAIM_SW_COMPONENTS, IAT_CLAIM_PROFILE,
    };
    cbor_put_head(&w, CBOR_MAP, 8);
    for (size_t i = 0; i < 8; i++) {
        enum iat_claim c = claims[i];
        cbor_put_int(&w, iat_claim_key(c, IAT_PROFILE_LEGACY));
        bool bad = c == wrong;
        switch (c) {
        case IAT_CLAIM_NONCE:
            bad ? cbor_put_tstr(&w, (const char *)nonce, 32) : cbor_put_bstr(&w, nonce, 32);
            break;
        case IAT_CLAIM_BOOT_SEED:
            bad ? cbor_put_int(&w, 5) : cbor_put_bstr(&w, boot_seed, 32);
            break;
        case IAT_CLAIM_INSTANCE_ID:
            bad ? cbor_put_head(&w, CBOR_ARRAY, 0) : cbor_put_bstr(&w, tfm_iid, 33);
            break;
        case IAT_CLAIM_IMPLEMENTATION_ID:
            bad ? cbor_put_tstr(&w, "impl", 4) : cbor_put_bstr(&w, impl_id, 32);
            break;
        case IAT_CLAIM_CLIENT_ID:
            bad ? cbor_put_bstr(&w, impl_id, 4) : cbor_put_int(&w, -1);
            break;
        case IAT_CLAIM_LIFECYCLE:
            bad ? cbor_put_int(&w, -0x3000) : cbor_put_int(&w, 0x3000);
            break;
        case IAT_CLAIM_SW_COMPONENTS:
            if (bad) {
                cbor_put_head(&w, CBOR_MAP, 0);
            } else {
                cbor_put_head(&w, CBOR_ARRAY, 1);
                cbor_put_head(&w, CBOR_MAP, 1);
                cbor_put_int(&w, IAT_SW_VALUE);
                cbor_put_bstr(&w, meas_spe, 32);
            }
            break;
        case IAT_CLAIM_PROFILE:
            bad ? cbor_put_bstr(&w, (const uint8_t *)"PSA_IOT_PROFILE_1", 17)
                : cbor_put_tstr(&w, "PSA_IOT_PROFILE_1", 17);
            break;
        default:
            break;
        }
    }
    assert_false(w.overflow);
    /* Wrap it: [h'a10105', {}, payload, HMAC(MAC_structure)]. */
    struct cbor_writer out;
    cbor_writer_init(&out, tok, cap);
    static const uint8_t head[] = {0xd1, 0x84, 0x43, 0xa1, 0x01, 0x05, 0xa0};
    cbor_put_raw(&out, head, sizeof head);
    cbor_put_bstr(&out, payload, w.len);
    uint8_t mac0[1100];
    struct cbor_writer m;
    cbor_writer_init(&m, mac0, sizeof mac0);
    static const uint8_t mh[] = {0x84, 0x64, 'M', 'A', 'C', '0', 0x43, 0xa1, 0x01, 0x05, 0x40};
    cbor_put_raw(&m, mh, sizeof mh);
    cbor_put_bstr(&m, payload, w.len);
    struct iat_iov iov = {mac0, m.len};
    uint8_t mac[64];
    size_t mac_len;
    assert_int_equal(iat_crypto_hmac(5, &tfm_key, &iov, 1, mac, &mac_len), 0);
    cbor_put_bstr(&out, mac, mac_len);
    assert_false(out.overflow);
    return out.len;
}

/* The OpenSSL backend's key NULL: the same tag as with the key of this thread's previous call
 * for that alg, and a different one from another key's */
static void test_hmac_reuses_the_previous_key(void **state)
{
    (void)state;
    static const uint8_t k1[32] = {1}, k2[32] = {2}, msg[] = "the same message";
    struct iat_key a = {.raw = k1, .raw_len = sizeof k1}, b = {.raw = k2, .raw_len = sizeof k2};
    struct iat_iov iov = {msg, sizeof msg};
    uint8_t t1[64], t2[64], t3[64];
    size_t n1, n2, n3;
    assert_int_equal(iat_crypto_hmac(IAT_ALG_HMAC384, &a, &iov, 1, t1, &n1), 0);
    assert_int_equal(iat_crypto_hmac(IAT_ALG_HMAC384, &b, &iov, 1, t2, &n2), 0);
    assert_int_equal(iat_crypto_hmac(IAT_ALG_HMAC384, NULL, &iov, 1, t3, &n3), 0);
    assert_int_equal(n3, 48);
    assert_memory_equal(t2, t3, 48);
    assert_memory_not_equal(t1, t3, 48);
}

static void test_refuses_each_claim_of_wrong_type(void **state)
{
    (void)state;
    struct iat_claims c;
    base_claims(&c, IAT_PROFILE_LEGACY); /* fills the globals */
    uint8_t tok[1200];
    struct iat_token t;
    /* The hand-built token is good when nothing is wrong (the builder itself is right). */
    size_t len = token_with_wrong_type(IAT_CLAIM_COUNT_, tok, sizeof tok);
    assert_int_equal(verify(tok, len, &t), IAT_OK);
    static const enum iat_claim typed[] = {
        IAT_CLAIM_NONCE,     IAT_CLAIM_BOOT_SEED, IAT_CLAIM_INSTANCE_ID, IAT_CLAIM_IMPLEMENTATION_ID,
        IAT_CLAIM_CLIENT_ID, IAT_CLAIM_LIFECYCLE, IAT_CLAIM_SW_COMPONENTS, IAT_CLAIM_PROFILE,
    };
    for (size_t i = 0; i < sizeof typed / sizeof typed[0]; i++) {
        len = token_with_wrong_type(typed[i], tok, sizeof tok);
        assert_int_equal(verify(tok, len, &t), IAT_ERR_CLAIM_TYPE);
        assert_int_equal(t.bad_claim, typed[i]);
    }
}

static void test_refuses_wrong_instance_id(void **state)
{
    (void)state;
    struct iat_claims c;
    base_claims(&c, IAT_PROFILE_LEGACY);
    uint8_t other[IAT_INSTANCE_ID_SIZE];
    memcpy(other, tfm_iid, sizeof other);
    other[32] ^= 1;
    c.instance_id = (struct iat_bytes){other, sizeof other};
    uint8_t tok[1024];
    size_t len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
    struct iat_token t;
    assert_int_equal(verify(tok, len, &t), IAT_ERR_INSTANCE_ID);
    /* With the registry's stored instance ID instead of deriving it: same verdict. */
    struct iat_policy pol = {.key = &tfm_key, .nonce = nonce, .nonce_len = 32,
                             .instance_id = tfm_iid};
    assert_int_equal(iat_verify(tok, len, &pol, &t), IAT_ERR_INSTANCE_ID);
}

static void test_each_lifecycle_state(void **state)
{
    (void)state;
    static const struct {
        uint32_t lc;
        enum iat_result by_default, with_debug_allowed;
    } cases[] = {
        {IAT_LC_UNKNOWN, IAT_ERR_LIFECYCLE, IAT_ERR_LIFECYCLE},
        {IAT_LC_ASSEMBLY_AND_TEST, IAT_ERR_LIFECYCLE, IAT_ERR_LIFECYCLE},
        {IAT_LC_PSA_ROT_PROVISIONING, IAT_ERR_LIFECYCLE, IAT_ERR_LIFECYCLE},
        {IAT_LC_SECURED, IAT_OK, IAT_OK},
        {IAT_LC_SECURED | 0x00ab, IAT_OK, IAT_OK}, /* minor bits are free */
        {IAT_LC_NON_PSA_ROT_DEBUG, IAT_ERR_LIFECYCLE, IAT_OK},
        {IAT_LC_RECOVERABLE_PSA_ROT_DEBUG, IAT_ERR_LIFECYCLE, IAT_ERR_LIFECYCLE},
        {IAT_LC_DECOMMISSIONED, IAT_ERR_LIFECYCLE, IAT_ERR_LIFECYCLE},
        {0x7000, IAT_ERR_LIFECYCLE, IAT_ERR_LIFECYCLE},
        {0x3100, IAT_ERR_LIFECYCLE, IAT_ERR_LIFECYCLE}, /* not a defined state */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct iat_claims c;
        base_claims(&c, IAT_PROFILE_LEGACY);
        c.lifecycle = cases[i].lc;
        uint8_t tok[1024];
        size_t len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
        struct iat_token t;
        assert_int_equal(verify(tok, len, &t), cases[i].by_default);
        struct iat_policy pol = {
            .key = &tfm_key, .nonce = nonce, .nonce_len = 32,
            .lifecycle_mask = IAT_LC_BIT(IAT_LC_SECURED) | IAT_LC_BIT(IAT_LC_NON_PSA_ROT_DEBUG)};
        assert_int_equal(iat_verify(tok, len, &pol, &t), cases[i].with_debug_allowed);
    }
}

static void test_refuses_untagged(void **state)
{
    (void)state;
    uint8_t tok[1024];
    size_t len = good_token(tok, sizeof tok);
    struct iat_token t;
    assert_int_equal(verify(tok + 1, len - 1, &t), IAT_ERR_NOT_MAC0);
    tok[0] = 0xd2; /* tag 18: COSE_Sign1 */
    assert_int_equal(verify(tok, len, &t), IAT_ERR_NOT_MAC0);
}

static void test_refuses_trailing_bytes(void **state)
{
    (void)state;
    uint8_t tok[1024];
    size_t len = good_token(tok, sizeof tok);
    tok[len] = 0x00;
    struct iat_token t;
    assert_int_equal(verify(tok, len + 1, &t), IAT_ERR_TRAILING);
}

static void test_refuses_alg_zero_and_unknown(void **state)
{
    (void)state;
    uint8_t tok[1024];
    size_t len = good_token(tok, sizeof tok);
    struct iat_token t;
    static const uint8_t algs[] = {0x00, 0x04, 0x08, 0x26 /* -7: ES256 */};
    for (size_t i = 0; i < sizeof algs; i++) {
        tok[5] = algs[i];
        assert_int_equal(verify(tok, len, &t), IAT_ERR_ALG);
    }
    /* A protected header with an extra parameter is not {1: alg}. */
    static const uint8_t extra[] = {0xd1, 0x84, 0x45, 0xa2, 0x01, 0x05, 0x04, 0x40,
                                    0xa0, 0x41, 0xa0, 0x58, 0x20};
    uint8_t bad[64] = {0};
    memcpy(bad, extra, sizeof extra);
    assert_int_equal(verify(bad, sizeof extra + 32, &t), IAT_ERR_HEADER);
    /* HMAC 256 with a 16-byte tag (truncated MAC): refused before any MAC is computed. */
    static const uint8_t short_tag[] = {0xd1, 0x84, 0x43, 0xa1, 0x01, 0x05, 0xa0, 0x41, 0xa0, 0x50};
    memset(bad, 0, sizeof bad);
    memcpy(bad, short_tag, sizeof short_tag);
    assert_int_equal(verify(bad, sizeof short_tag + 16, &t), IAT_ERR_MAC_SIZE);
}

static void test_refuses_every_truncation(void **state)
{
    (void)state;
    uint8_t tok[1024];
    size_t len = good_token(tok, sizeof tok);
    struct iat_token t;
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any over-read */
        memcpy(copy, tok, n);
        enum iat_result r = verify(copy, n, &t);
        assert_int_not_equal(r, IAT_OK);
        free(copy);
    }
}

static void test_refuses_deep_nesting(void **state)
{
    (void)state;
    /* An unknown claim nested 200 arrays deep: refused, not a stack overflow. */
    uint8_t payload[400];
    size_t n = 0;
    payload[n++] = 0xa1;
    payload[n++] = 0x19; /* key 4660 (unknown) */
    payload[n++] = 0x12;
    payload[n++] = 0x34;
    for (int i = 0; i < 200; i++)
        payload[n++] = 0x81;
    payload[n++] = 0x00;
    uint8_t tok[512];
    struct cbor_writer w;
    cbor_writer_init(&w, tok, sizeof tok);
    static const uint8_t head[] = {0xd1, 0x84, 0x43, 0xa1, 0x01, 0x05};
    cbor_put_raw(&w, head, sizeof head);
    /* ... and an unprotected header nested just as deep. */
    uint8_t unprot[210];
    size_t u = 0;
    unprot[u++] = 0xa1;
    unprot[u++] = 0x20; /* label -1 */
    for (int i = 0; i < 200; i++)
        unprot[u++] = 0x81;
    unprot[u++] = 0x00;
    cbor_put_raw(&w, unprot, u);
    cbor_put_bstr(&w, payload, n);
    uint8_t mac[32] = {0};
    cbor_put_bstr(&w, mac, 32);
    struct iat_token t;
    assert_int_equal(iat_decode_unverified(tok, w.len, IAT_PROFILE_AUTO, &t), IAT_ERR_CBOR);
    /* With a plain unprotected header the deep claim is reached by the claims decoder. */
    cbor_writer_init(&w, tok, sizeof tok);
    cbor_put_raw(&w, head, sizeof head);
    cbor_put_head(&w, CBOR_MAP, 0);
    cbor_put_bstr(&w, payload, n);
    cbor_put_bstr(&w, mac, 32);
    assert_int_equal(iat_decode_unverified(tok, w.len, IAT_PROFILE_AUTO, &t), IAT_ERR_CLAIMS_CBOR);
}

static void test_refuses_huge_declared_lengths(void **state)
{
    (void)state;
    struct iat_token t;
    /* Payload bstr declaring 2^32-1 bytes. */
    static const uint8_t huge_bstr[] = {0xd1, 0x84, 0x43, 0xa1, 0x01, 0x05, 0xa0,
                                        0x5a, 0xff, 0xff, 0xff, 0xff, 0x00};
    assert_int_equal(verify(huge_bstr, sizeof huge_bstr, &t), IAT_ERR_CBOR);
    /* 64-bit length. */
    static const uint8_t huge64[] = {0xd1, 0x84, 0x43, 0xa1, 0x01, 0x05, 0xa0, 0x5b,
                                     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    assert_int_equal(verify(huge64, sizeof huge64, &t), IAT_ERR_CBOR);
    /* Array of 2^63 elements; map of 2^32 entries in the unprotected header. */
    static const uint8_t huge_array[] = {0xd1, 0x9b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x40};
    assert_int_equal(verify(huge_array, sizeof huge_array, &t), IAT_ERR_CBOR);
    static const uint8_t huge_map[] = {0xd1, 0x84, 0x43, 0xa1, 0x01, 0x05,
                                       0xba, 0xff, 0xff, 0xff, 0xff, 0x00};
    assert_int_equal(verify(huge_map, sizeof huge_map, &t), IAT_ERR_CBOR);
    /* Indefinite-length payload: refused as malformed for a token. */
    static const uint8_t indefinite[] = {0xd1, 0x84, 0x43, 0xa1, 0x01, 0x05, 0xa0, 0x5f, 0xff};
    assert_int_equal(verify(indefinite, sizeof indefinite, &t), IAT_ERR_CBOR);
    /* Over the size bound, whatever it holds. */
    static uint8_t big[IAT_MAX_TOKEN_SIZE + 1];
    assert_int_equal(verify(big, sizeof big, &t), IAT_ERR_TOO_LARGE);
}

static void test_refuses_duplicate_and_mixed_claims(void **state)
{
    (void)state;
    struct iat_claims c;
    base_claims(&c, IAT_PROFILE_LEGACY);
    uint8_t tok[1024];
    size_t len;
    struct iat_token t;
    /* A PSA 2.0 key inside a legacy token: mixed profiles. */
    static const enum iat_claim order[] = {
        IAT_CLAIM_NONCE,     IAT_CLAIM_BOOT_SEED, IAT_CLAIM_INSTANCE_ID, IAT_CLAIM_IMPLEMENTATION_ID,
        IAT_CLAIM_CLIENT_ID, IAT_CLAIM_LIFECYCLE, IAT_CLAIM_SW_COMPONENTS, IAT_CLAIM_PROFILE,
    };
    len = 0;
    assert_int_equal(iat_encode(&c, IAT_PROFILE_LEGACY, 5, &tfm_key, order, 8, NULL, 0, tok,
                                sizeof tok, &len),
                     IAT_OK);
    /* Rewrite the client id key -75001 (3a 00 01 24 f8) into 2394 (19 09 5a) + padding is not
     * possible in place; instead check that decoding a PSA2 token pinned as legacy fails. */
    assert_int_equal(verify(tok, len, &t), IAT_OK);
    struct iat_claims p2;
    base_claims(&p2, IAT_PROFILE_PSA2);
    len = make_token(&p2, IAT_PROFILE_PSA2, tok, sizeof tok);
    struct iat_policy pol = {.key = &tfm_key, .nonce = nonce, .nonce_len = 32,
                             .profile = IAT_PROFILE_LEGACY};
    assert_int_equal(iat_verify(tok, len, &pol, &t), IAT_ERR_PROFILE);
    /* A legacy token claiming a PSA 2.0 profile string. */
    base_claims(&c, IAT_PROFILE_LEGACY);
    c.profile_name = (struct iat_bytes){(const uint8_t *)IAT_PROFILE_STR_PSA2_2023,
                                        strlen(IAT_PROFILE_STR_PSA2_2023)};
    len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
    assert_int_equal(verify(tok, len, &t), IAT_ERR_PROFILE);
}

/* Reference values: implementation IDs and measurements with signer IDs. */
static int impl_known(void *ctx, const uint8_t *id, size_t len)
{
    (void)ctx;
    return len == 32 && memcmp(id, impl_id, 32) == 0;
}

static int meas_known(void *ctx, const struct iat_sw_component *sw)
{
    (void)ctx;
    if (sw->value.len == 32 && memcmp(sw->value.p, meas_spe, 32) == 0)
        return 1;
    if (sw->value.len == 32 && memcmp(sw->value.p, meas_nspe, 32) == 0)
        return sw->signer_id.len == 32 && memcmp(sw->signer_id.p, signer, 32) == 0 ? 1 : -1;
    return 0;
}

static void test_reference_values(void **state)
{
    (void)state;
    struct iat_refvals rv = {impl_known, meas_known, NULL};
    struct iat_policy pol = {.key = &tfm_key, .nonce = nonce, .nonce_len = 32, .refvals = &rv,
                             .check_implementation = true, .require_known_measurements = true};
    struct iat_claims c;
    uint8_t tok[1024];
    struct iat_token t;
    base_claims(&c, IAT_PROFILE_LEGACY);
    size_t len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
    assert_int_equal(iat_verify(tok, len, &pol, &t), IAT_OK);

    uint8_t other[32];
    memset(other, 0x77, sizeof other);
    base_claims(&c, IAT_PROFILE_LEGACY);
    c.implementation_id = (struct iat_bytes){other, 32};
    len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
    assert_int_equal(iat_verify(tok, len, &pol, &t), IAT_ERR_IMPLEMENTATION_ID);

    base_claims(&c, IAT_PROFILE_LEGACY);
    c.sw[1].value = (struct iat_bytes){other, 32}; /* a modified NSPE */
    len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
    assert_int_equal(iat_verify(tok, len, &pol, &t), IAT_ERR_MEASUREMENT);
    assert_int_equal(t.bad_sw, 1);
    pol.require_known_measurements = false;
    assert_int_equal(iat_verify(tok, len, &pol, &t), IAT_OK);
    pol.require_known_measurements = true;

    base_claims(&c, IAT_PROFILE_LEGACY);
    c.sw[1].signer_id = (struct iat_bytes){other, 32}; /* right image, wrong signer */
    len = make_token(&c, IAT_PROFILE_LEGACY, tok, sizeof tok);
    assert_int_equal(iat_verify(tok, len, &pol, &t), IAT_ERR_SIGNER);
}

static void test_encoder_refuses_incomplete_arguments(void **state)
{
    (void)state;
    struct iat_claims c;
    base_claims(&c, IAT_PROFILE_PSA2);
    uint8_t tok[1024];
    size_t len;
    /* "No SW measurements" has no key in PSA 2.0. */
    c.present |= 1u << IAT_CLAIM_NO_SW_MEASUREMENTS;
    assert_int_equal(iat_encode(&c, IAT_PROFILE_PSA2, 5, &tfm_key, NULL, 0, NULL, 0, tok,
                                sizeof tok, &len),
                     IAT_ERR_ARG);
    base_claims(&c, IAT_PROFILE_LEGACY);
    assert_int_equal(iat_encode(&c, IAT_PROFILE_AUTO, 5, &tfm_key, NULL, 0, NULL, 0, tok,
                                sizeof tok, &len),
                     IAT_ERR_ARG);
    assert_int_equal(iat_encode(&c, IAT_PROFILE_LEGACY, 4, &tfm_key, NULL, 0, NULL, 0, tok,
                                sizeof tok, &len),
                     IAT_ERR_ARG);
    /* A claim present but left out of a custom order would vanish: refused. */
    static const enum iat_claim short_order[] = {IAT_CLAIM_NONCE};
    assert_int_equal(iat_encode(&c, IAT_PROFILE_LEGACY, 5, &tfm_key, short_order, 1, NULL, 0, tok,
                                sizeof tok, &len),
                     IAT_ERR_ARG);
}

static void test_reason_strings(void **state)
{
    (void)state;
    char buf[128];
    struct iat_token t = {.bad_claim = IAT_CLAIM_LIFECYCLE, .bad_sw = -1};
    assert_string_equal(iat_reason(&t, IAT_ERR_MISSING_CLAIM, buf, sizeof buf),
                        "missing claim lifecycle");
    assert_string_equal(iat_reason(&t, IAT_ERR_CLAIM_TYPE, buf, sizeof buf),
                        "wrong type of claim lifecycle");
    t.claims.lifecycle = IAT_LC_DECOMMISSIONED;
    assert_string_equal(iat_reason(&t, IAT_ERR_LIFECYCLE, buf, sizeof buf),
                        "lifecycle decommissioned (0x6000) not acceptable");
    for (int r = 0; r < IAT_RESULT_COUNT_; r++) {
        assert_string_not_equal(iat_result_name((enum iat_result)r), "unknown");
        assert_string_not_equal(iat_result_str((enum iat_result)r), "unknown error");
    }
}


/* The backend's HMAC against RFC 4231's test cases 2 (a key shorter than the block) and 6 (a key
 * longer than the block, hashed first), for each COSE alg; then the same MAC again under the
 * previous key (key NULL) with the message in pieces. */
static void test_hmac_rfc4231(void **state)
{
    (void)state;
    static const char *const jefe[3] = {
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecf"
        "ab21649",
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f"
        "8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"};
    static const char *const large[3] = {
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df16"
        "3f44952",
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215"
        "d6a1e5295e64f73f63f0aec8b915a985d786598"};
    uint8_t big_key[131];
    memset(big_key, 0xaa, sizeof(big_key));
    const char *msg2 = "what do ya want for nothing?";
    const char *msg6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    for (int h = 0; h < 3; h++) {
        int alg = IAT_ALG_HMAC256 + h;
        struct {
            struct iat_key key;
            const char *msg;
            const char *want;
        } cases[2] = {{{.raw = (const uint8_t *)"Jefe", .raw_len = 4}, msg2, jefe[h]},
                      {{.raw = big_key, .raw_len = sizeof(big_key)}, msg6, large[h]}};
        for (int c = 0; c < 2; c++) {
            uint8_t out[IAT_MAX_MAC_SIZE], want[IAT_MAX_MAC_SIZE];
            size_t len = 0, wl = strlen(cases[c].want) / 2;
            for (size_t i = 0; i < wl; i++)
                sscanf(cases[c].want + 2 * i, "%2hhx", &want[i]);
            struct iat_iov whole = {(const uint8_t *)cases[c].msg, strlen(cases[c].msg)};
            assert_int_equal(iat_crypto_hmac(alg, &cases[c].key, &whole, 1, out, &len), 0);
            assert_int_equal(len, wl);
            assert_memory_equal(out, want, wl);
            struct iat_iov parts[3] = {
                {whole.p, 5}, {whole.p + 5, 0}, {whole.p + 5, whole.len - 5}};
            memset(out, 0, sizeof(out));
            assert_int_equal(iat_crypto_hmac(alg, NULL, parts, 3, out, &len), 0);
            assert_memory_equal(out, want, wl);
        }
    }
    struct iat_iov none = {NULL, 0};
    uint8_t out[IAT_MAX_MAC_SIZE];
    size_t len;
    struct iat_key empty = {.raw = NULL, .raw_len = 0};
    assert_int_equal(iat_crypto_hmac(IAT_ALG_HMAC256, &empty, &none, 1, out, &len), -1);
    assert_int_equal(iat_crypto_hmac(4, NULL, &none, 1, out, &len), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_rfc9783_example_verifies),
        cmocka_unit_test(test_rfc9783_example_reencodes_byte_for_byte),
        cmocka_unit_test(test_tfm_layout_legacy),
        cmocka_unit_test(test_psa2_profile_and_larger_macs),
        cmocka_unit_test(test_refuses_wrong_key),
        cmocka_unit_test(test_refuses_flipped_mac_byte),
        cmocka_unit_test(test_refuses_flipped_payload_byte),
        cmocka_unit_test(test_refuses_wrong_nonce),
        cmocka_unit_test(test_nonce_sizes),
        cmocka_unit_test(test_refuses_each_missing_claim),
        cmocka_unit_test(test_refuses_each_claim_of_wrong_type),
        cmocka_unit_test(test_refuses_wrong_instance_id),
        cmocka_unit_test(test_each_lifecycle_state),
        cmocka_unit_test(test_refuses_untagged),
        cmocka_unit_test(test_refuses_trailing_bytes),
        cmocka_unit_test(test_refuses_alg_zero_and_unknown),
        cmocka_unit_test(test_refuses_every_truncation),
        cmocka_unit_test(test_refuses_deep_nesting),
        cmocka_unit_test(test_refuses_huge_declared_lengths),
        cmocka_unit_test(test_refuses_duplicate_and_mixed_claims),
        cmocka_unit_test(test_reference_values),
        cmocka_unit_test(test_encoder_refuses_incomplete_arguments),
        cmocka_unit_test(test_reason_strings),
        cmocka_unit_test(test_hmac_reuses_the_previous_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
