/* record.c: sealing and opening the protected sensor record (see record.h, docs/design/wire.md 4). */
#include "psagw/record.h"

#include <stdio.h>
#include <string.h>

#include "psagw/cbor.h"

static const uint8_t prot_ccm[] = {0xa1, 0x01, 0x0a};
static const uint8_t prot_mac[] = {0xa1, 0x01, 0x05};

const char *record_result_str(enum record_result res)
{
    switch (res) {
    case RECORD_OK: return "ok";
    case RECORD_ERR_BUFFER: return "buffer too small";
    case RECORD_ERR_FORMAT: return "not a well-formed record";
    case RECORD_ERR_ALG: return "unsupported algorithm";
    case RECORD_ERR_AUTH: return "authentication failed";
    case RECORD_ERR_KID: return "kid does not match the device";
    default: return "crypto backend failed";
    }
}

static size_t encode_payload(const struct record *r, uint8_t *buf, size_t cap)
{
    struct cbor_writer w;
    cbor_writer_init(&w, buf, cap);
    cbor_put_head(&w, CBOR_MAP, 5);
    cbor_put_int(&w, 1);
    cbor_put_tstr(&w, r->device, strlen(r->device));
    cbor_put_int(&w, 2);
    cbor_put_head(&w, CBOR_UINT, r->seq);
    cbor_put_int(&w, 3);
    cbor_put_head(&w, CBOR_UINT, r->time_ms);
    cbor_put_int(&w, 4);
    cbor_put_int(&w, r->temp_centi);
    cbor_put_int(&w, 5);
    cbor_put_head(&w, CBOR_UINT, r->rh_centi);
    return w.overflow ? 0 : w.len;
}

/* [context, protected, external_aad (, payload)] as RFC 9052 sections 5.3 and 6.3 encode it. */
static size_t build_structure(uint8_t *buf, size_t cap, bool mac, const char *topic,
                              const uint8_t *payload, size_t payload_len)
{
    struct cbor_writer w;
    cbor_writer_init(&w, buf, cap);
    cbor_put_head(&w, CBOR_ARRAY, mac ? 4 : 3);
    if (mac)
        cbor_put_tstr(&w, "MAC0", 4);
    else
        cbor_put_tstr(&w, "Encrypt0", 8);
    cbor_put_bstr(&w, mac ? prot_mac : prot_ccm, 3);
    cbor_put_bstr(&w, (const uint8_t *)topic, strlen(topic));
    if (mac)
        cbor_put_bstr(&w, payload, payload_len);
    return w.overflow ? 0 : w.len;
}

static void make_iv(uint64_t seq, uint8_t iv[RECORD_IV_SIZE])
{
    memset(iv, 0, 5);
    for (int i = 0; i < 8; i++)
        iv[5 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

enum record_result record_seal(const struct record *r, const char *topic, bool mac_only,
                               const struct record_crypto *c, uint8_t *out, size_t cap,
                               size_t *out_len)
{
    uint8_t payload[RECORD_MAX_SIZE], aad[RECORD_MAX_SIZE], body[RECORD_MAX_SIZE];
    size_t plen = encode_payload(r, payload, sizeof(payload));
    size_t alen = build_structure(aad, sizeof(aad), mac_only, topic, payload, plen);
    if (!plen || !alen)
        return RECORD_ERR_BUFFER;
    uint8_t iv[RECORD_IV_SIZE];
    size_t blen = 0;
    if (mac_only) {
        if (c->hmac(c->ctx, r->device, aad, alen, body) != 0)
            return RECORD_ERR_CRYPTO;
        blen = 32;
    } else {
        make_iv(r->seq, iv);
        if (c->ccm(c->ctx, true, r->device, iv, aad, alen, payload, plen, body, sizeof(body),
                   &blen) != 0)
            return RECORD_ERR_CRYPTO;
    }
    struct cbor_writer w;
    cbor_writer_init(&w, out, cap);
    cbor_put_head(&w, CBOR_TAG, mac_only ? 17 : 16);
    cbor_put_head(&w, CBOR_ARRAY, mac_only ? 4 : 3);
    cbor_put_bstr(&w, mac_only ? prot_mac : prot_ccm, 3);
    cbor_put_head(&w, CBOR_MAP, mac_only ? 1 : 2);
    cbor_put_int(&w, 4);
    cbor_put_bstr(&w, (const uint8_t *)r->device, strlen(r->device));
    if (!mac_only) {
        cbor_put_int(&w, 5);
        cbor_put_bstr(&w, iv, sizeof(iv));
        cbor_put_bstr(&w, body, blen);
    } else {
        cbor_put_bstr(&w, payload, plen);
        cbor_put_bstr(&w, body, blen);
    }
    *out_len = w.len;
    return w.overflow ? RECORD_ERR_BUFFER : RECORD_OK;
}

static enum record_result decode_payload(const uint8_t *p, size_t len, struct record *r)
{
    struct cbor_reader rd;
    uint64_t n;
    unsigned seen = 0;
    cbor_reader_init(&rd, p, len);
    if (cbor_read_container(&rd, CBOR_MAP, &n) != CBOR_OK)
        return RECORD_ERR_FORMAT;
    memset(r, 0, sizeof(*r));
    for (uint64_t i = 0; i < n; i++) {
        int64_t key, v;
        uint64_t u;
        if (cbor_read_int(&rd, &key) != CBOR_OK || key < 1 || key > 5 || (seen & (1u << key)))
            return RECORD_ERR_FORMAT;
        seen |= 1u << key;
        if (key == 1) {
            const uint8_t *s;
            size_t sl;
            if (cbor_read_string(&rd, CBOR_TSTR, &s, &sl) != CBOR_OK || sl == 0 ||
                sl > RECORD_ID_MAX)
                return RECORD_ERR_FORMAT;
            memcpy(r->device, s, sl);
            r->device[sl] = '\0';
        } else if (key == 4) {
            if (cbor_read_int(&rd, &v) != CBOR_OK || v < INT32_MIN || v > INT32_MAX)
                return RECORD_ERR_FORMAT;
            r->temp_centi = (int32_t)v;
        } else {
            if (cbor_read_uint(&rd, &u) != CBOR_OK)
                return RECORD_ERR_FORMAT;
            if (key == 2)
                r->seq = u;
            else if (key == 3)
                r->time_ms = u;
            else if (u <= UINT32_MAX)
                r->rh_centi = (uint32_t)u;
            else
                return RECORD_ERR_FORMAT;
        }
    }
    return seen == 0x3e && cbor_remaining(&rd) == 0 ? RECORD_OK : RECORD_ERR_FORMAT;
}

enum record_result record_open(const uint8_t *in, size_t len, const char *topic,
                               const struct record_crypto *c, struct record *r)
{
    struct cbor_reader rd;
    uint8_t major;
    uint64_t tag, n;
    const uint8_t *prot, *kid = NULL, *iv = NULL, *body, *payload = NULL;
    size_t prot_len, kid_len = 0, iv_len = 0, body_len, payload_len = 0;
    if (len > RECORD_MAX_SIZE)
        return RECORD_ERR_FORMAT;
    cbor_reader_init(&rd, in, len);
    if (cbor_read_head(&rd, &major, &tag) != CBOR_OK || major != CBOR_TAG ||
        (tag != 16 && tag != 17))
        return RECORD_ERR_FORMAT;
    bool mac = tag == 17;
    if (cbor_read_container(&rd, CBOR_ARRAY, &n) != CBOR_OK || n != (mac ? 4u : 3u) ||
        cbor_read_string(&rd, CBOR_BSTR, &prot, &prot_len) != CBOR_OK)
        return RECORD_ERR_FORMAT;
    if (prot_len != 3 || memcmp(prot, mac ? prot_mac : prot_ccm, 3) != 0)
        return RECORD_ERR_ALG;
    if (cbor_read_container(&rd, CBOR_MAP, &n) != CBOR_OK)
        return RECORD_ERR_FORMAT;
    for (uint64_t i = 0; i < n; i++) {
        int64_t label;
        const uint8_t *v;
        size_t vl;
        if (cbor_read_int(&rd, &label) != CBOR_OK ||
            cbor_read_string(&rd, CBOR_BSTR, &v, &vl) != CBOR_OK)
            return RECORD_ERR_FORMAT;
        if (label == 4 && !kid) {
            kid = v;
            kid_len = vl;
        } else if (label == 5 && !iv) {
            iv = v;
            iv_len = vl;
        } else {
            return RECORD_ERR_FORMAT;
        }
    }
    if (mac && cbor_read_string(&rd, CBOR_BSTR, &payload, &payload_len) != CBOR_OK)
        return RECORD_ERR_FORMAT;
    if (cbor_read_string(&rd, CBOR_BSTR, &body, &body_len) != CBOR_OK || cbor_remaining(&rd))
        return RECORD_ERR_FORMAT;
    if (!kid || kid_len == 0 || kid_len > RECORD_ID_MAX || (!mac && (!iv || iv_len != 13)))
        return RECORD_ERR_FORMAT;
    char kid_str[RECORD_ID_MAX + 1];
    memcpy(kid_str, kid, kid_len);
    kid_str[kid_len] = '\0';
    if (strlen(kid_str) != kid_len)
        return RECORD_ERR_FORMAT;

    uint8_t aad[RECORD_MAX_SIZE + 64], plain[RECORD_MAX_SIZE];
    size_t alen = build_structure(aad, sizeof(aad), mac, topic, payload, payload_len);
    if (!alen)
        return RECORD_ERR_FORMAT;
    enum record_result res;
    if (mac) {
        uint8_t want[32];
        if (body_len != 32)
            return RECORD_ERR_AUTH;
        if (c->hmac(c->ctx, kid_str, aad, alen, want) != 0)
            return RECORD_ERR_CRYPTO;
        volatile uint8_t diff = 0;
        for (size_t i = 0; i < 32; i++)
            diff |= want[i] ^ body[i];
        if (diff)
            return RECORD_ERR_AUTH;
        res = decode_payload(payload, payload_len, r);
    } else {
        size_t plen = 0;
        if (body_len < RECORD_TAG_SIZE ||
            c->ccm(c->ctx, false, kid_str, iv, aad, alen, body, body_len, plain, sizeof(plain),
                   &plen) != 0)
            return RECORD_ERR_AUTH;
        res = decode_payload(plain, plen, r);
        /* the IV must be the one the seq gives: no IV reuse can be smuggled in */
        uint8_t want_iv[RECORD_IV_SIZE];
        if (res == RECORD_OK) {
            make_iv(r->seq, want_iv);
            if (memcmp(want_iv, iv, RECORD_IV_SIZE) != 0)
                res = RECORD_ERR_FORMAT;
        }
        memset(plain, 0, sizeof(plain));
    }
    if (res == RECORD_OK && strcmp(r->device, kid_str) != 0)
        return RECORD_ERR_KID;
    return res;
}
