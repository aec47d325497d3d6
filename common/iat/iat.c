/*
 * iat.c: encoding, decoding and verification of the symmetric PSA attestation token.
 *
 * Decoding treats the token as hostile (docs/design/token.md section 4): the size is bounded first, every
 * length is checked by the CBOR reader before use, unknown items are skipped with a nesting
 * bound, and the MAC and the nonce are compared in constant time. The claims are decoded only
 * after the MAC is good, so an attacker without the IAK reaches nothing but the envelope.
 *
 * Encoding reproduces TF-M's layout (attest_core.c, attest_token_encode.c): tag 17, protected
 * header {1: alg}, empty unprotected header, claims in TF-M's order, software component fields
 * in the order 5, 4, 1, 6, 2, preferred CBOR heads, the full HMAC as the tag.
 */
#include "psagw/iat.h"

#include <stdio.h>
#include <string.h>

#include "psagw/cbor.h"
#include "psagw/iat_crypto.h"

#define KEY_PSA2_BOOT_SEED_OLD 2397 /* TF-M 1.7 - 2.1 */

/* int32_t: every key fits, and the tables stay small in a secure image */
static const int32_t legacy_keys[IAT_CLAIM_COUNT_] = {
    [IAT_CLAIM_NONCE] = -75008,
    [IAT_CLAIM_BOOT_SEED] = -75004,
    [IAT_CLAIM_INSTANCE_ID] = -75009,
    [IAT_CLAIM_IMPLEMENTATION_ID] = -75003,
    [IAT_CLAIM_CLIENT_ID] = -75001,
    [IAT_CLAIM_LIFECYCLE] = -75002,
    [IAT_CLAIM_SW_COMPONENTS] = -75006,
    [IAT_CLAIM_NO_SW_MEASUREMENTS] = -75007,
    [IAT_CLAIM_PROFILE] = -75000,
    [IAT_CLAIM_VERIFICATION_SERVICE] = -75010,
    [IAT_CLAIM_CERT_REF] = -75005,
};

static const int32_t psa2_keys[IAT_CLAIM_COUNT_] = {
    [IAT_CLAIM_NONCE] = 10,
    [IAT_CLAIM_BOOT_SEED] = 268,
    [IAT_CLAIM_INSTANCE_ID] = 256,
    [IAT_CLAIM_IMPLEMENTATION_ID] = 2396,
    [IAT_CLAIM_CLIENT_ID] = 2394,
    [IAT_CLAIM_LIFECYCLE] = 2395,
    [IAT_CLAIM_SW_COMPONENTS] = 2399,
    [IAT_CLAIM_NO_SW_MEASUREMENTS] = 0,
    [IAT_CLAIM_PROFILE] = 265,
    [IAT_CLAIM_VERIFICATION_SERVICE] = 2400,
    [IAT_CLAIM_CERT_REF] = 2398,
};

static const char *const claim_names[IAT_CLAIM_COUNT_] = {
    [IAT_CLAIM_NONCE] = "nonce",
    [IAT_CLAIM_BOOT_SEED] = "boot_seed",
    [IAT_CLAIM_INSTANCE_ID] = "instance_id",
    [IAT_CLAIM_IMPLEMENTATION_ID] = "implementation_id",
    [IAT_CLAIM_CLIENT_ID] = "client_id",
    [IAT_CLAIM_LIFECYCLE] = "lifecycle",
    [IAT_CLAIM_SW_COMPONENTS] = "sw_components",
    [IAT_CLAIM_NO_SW_MEASUREMENTS] = "no_sw_measurements",
    [IAT_CLAIM_PROFILE] = "profile",
    [IAT_CLAIM_VERIFICATION_SERVICE] = "verification_service",
    [IAT_CLAIM_CERT_REF] = "certification_reference",
};

static const struct {
    const char *name;
    const char *text;
} results[IAT_RESULT_COUNT_] = {
    [IAT_OK] = {"accepted", "accepted"},
    [IAT_ERR_TOO_LARGE] = {"too_large", "token larger than 4096 bytes"},
    [IAT_ERR_CBOR] = {"bad_cbor", "not well-formed CBOR"},
    [IAT_ERR_NOT_MAC0] = {"not_mac0", "not a COSE_Mac0 (tag 17)"},
    [IAT_ERR_STRUCTURE] = {"bad_structure", "COSE_Mac0 is not [bstr, map, bstr, bstr]"},
    [IAT_ERR_TRAILING] = {"trailing_bytes", "bytes after the token"},
    [IAT_ERR_HEADER] = {"bad_header", "protected header is not {1: alg}"},
    [IAT_ERR_ALG] = {"bad_alg", "algorithm is not an accepted HMAC (5, 6, 7)"},
    [IAT_ERR_MAC_SIZE] = {"bad_mac_size", "MAC length does not match the algorithm"},
    [IAT_ERR_KEY] = {"no_key", "no usable attestation key"},
    [IAT_ERR_MAC] = {"mac_mismatch", "MAC mismatch"},
    [IAT_ERR_CLAIMS_CBOR] = {"bad_claims", "claims are not a well-formed CBOR map"},
    [IAT_ERR_DUPLICATE_CLAIM] = {"duplicate_claim", "duplicate claim"},
    [IAT_ERR_PROFILE] = {"bad_profile", "profile not accepted"},
    [IAT_ERR_MISSING_CLAIM] = {"missing_claim", "missing claim"},
    [IAT_ERR_CLAIM_TYPE] = {"claim_type", "wrong type of claim"},
    [IAT_ERR_CLAIM_SIZE] = {"claim_size", "wrong size of claim"},
    [IAT_ERR_CLAIM_VALUE] = {"claim_value", "invalid value of claim"},
    [IAT_ERR_NONCE_SIZE] = {"bad_nonce_size", "nonce is not 32, 48 or 64 bytes"},
    [IAT_ERR_NONCE] = {"nonce_mismatch", "nonce mismatch"},
    [IAT_ERR_INSTANCE_ID] = {"instance_id_mismatch", "instance ID does not match the IAK"},
    [IAT_ERR_LIFECYCLE] = {"lifecycle", "lifecycle not acceptable"},
    [IAT_ERR_IMPLEMENTATION_ID] = {"unknown_implementation", "unknown implementation ID"},
    [IAT_ERR_MEASUREMENT] = {"unknown_measurement", "unknown software measurement"},
    [IAT_ERR_SIGNER] = {"wrong_signer", "software measurement signed by an unknown signer"},
    [IAT_ERR_BUFFER] = {"buffer", "buffer too small"},
    [IAT_ERR_ARG] = {"bad_argument", "claims incomplete or out of range"},
};

int64_t iat_claim_key(enum iat_claim claim, enum iat_profile profile)
{
    if ((unsigned)claim >= IAT_CLAIM_COUNT_)
        return 0;
    return profile == IAT_PROFILE_LEGACY ? legacy_keys[claim]
           : profile == IAT_PROFILE_PSA2 ? psa2_keys[claim]
                                         : 0;
}

const char *iat_claim_name(enum iat_claim claim)
{
    return (unsigned)claim < IAT_CLAIM_COUNT_ ? claim_names[claim] : "unknown";
}

const char *iat_result_name(enum iat_result r)
{
    return (unsigned)r < IAT_RESULT_COUNT_ ? results[r].name : "unknown";
}

const char *iat_result_str(enum iat_result r)
{
    return (unsigned)r < IAT_RESULT_COUNT_ ? results[r].text : "unknown error";
}

const char *iat_profile_name(enum iat_profile p)
{
    return p == IAT_PROFILE_LEGACY ? "legacy" : p == IAT_PROFILE_PSA2 ? "psa2" : "auto";
}

const char *iat_lifecycle_name(uint32_t lc)
{
    static const char *const names[] = {
        "unknown", "assembly_and_test", "psa_rot_provisioning", "secured",
        "non_psa_rot_debug", "recoverable_psa_rot_debug", "decommissioned",
    };
    unsigned major = (lc >> 12) & 0xf;
    if (lc > 0xffff || (lc >> 8) & 0x0f || major >= sizeof names / sizeof names[0])
        return "invalid";
    return names[major];
}

size_t iat_alg_mac_size(int alg)
{
    switch (alg) {
    case IAT_ALG_HMAC256:
        return 32;
    case IAT_ALG_HMAC384:
        return 48;
    case IAT_ALG_HMAC512:
        return 64;
    default:
        return 0;
    }
}

const char *iat_reason(const struct iat_token *tok, enum iat_result r, char *buf, size_t cap)
{
    switch (r) {
    case IAT_ERR_MISSING_CLAIM:
    case IAT_ERR_CLAIM_TYPE:
    case IAT_ERR_CLAIM_SIZE:
    case IAT_ERR_CLAIM_VALUE:
    case IAT_ERR_DUPLICATE_CLAIM:
        if (tok && tok->bad_sw >= 0)
            snprintf(buf, cap, "%s %s (software component %d)", iat_result_str(r),
                     iat_claim_name(tok->bad_claim), tok->bad_sw);
        else
            snprintf(buf, cap, "%s %s", iat_result_str(r),
                     tok ? iat_claim_name(tok->bad_claim) : "?");
        break;
    case IAT_ERR_LIFECYCLE:
        if (tok)
            snprintf(buf, cap, "lifecycle %s (0x%04x) not acceptable",
                     iat_lifecycle_name(tok->claims.lifecycle), (unsigned)tok->claims.lifecycle);
        else
            snprintf(buf, cap, "%s", iat_result_str(r));
        break;
    case IAT_ERR_MEASUREMENT:
    case IAT_ERR_SIGNER:
        if (tok && tok->bad_sw >= 0)
            snprintf(buf, cap, "%s (software component %d)", iat_result_str(r), tok->bad_sw);
        else
            snprintf(buf, cap, "%s", iat_result_str(r));
        break;
    default:
        snprintf(buf, cap, "%s", iat_result_str(r));
        break;
    }
    return buf;
}

/* Constant-time equality of two buffers of the same length. */
static bool ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

int iat_instance_id(const uint8_t *iak, size_t iak_len, uint8_t out[IAT_INSTANCE_ID_SIZE])
{
    uint8_t h[32];
    if (iat_crypto_sha256(iak, iak_len, h) != 0 || iat_crypto_sha256(h, sizeof h, out + 1) != 0)
        return -1;
    out[0] = 0x01;
    memset(h, 0, sizeof h);
    return 0;
}

/* ---- Envelope ---------------------------------------------------------------------------- */

static enum iat_result envelope_err(int cbor_rc)
{
    return cbor_rc == CBOR_ERR_TYPE ? IAT_ERR_STRUCTURE : IAT_ERR_CBOR;
}

static enum iat_result decode_protected(struct iat_token *t)
{
    struct cbor_reader r;
    uint64_t n;
    int64_t label, alg;
    cbor_reader_init(&r, t->protected_hdr.p, t->protected_hdr.len);
    if (cbor_read_container(&r, CBOR_MAP, &n) != CBOR_OK || n != 1)
        return IAT_ERR_HEADER;
    if (cbor_read_int(&r, &label) != CBOR_OK || label != 1)
        return IAT_ERR_HEADER;
    if (cbor_read_int(&r, &alg) != CBOR_OK || cbor_remaining(&r) != 0)
        return IAT_ERR_HEADER;
    if (alg < -65536 || alg > 65535)
        return IAT_ERR_ALG;
    t->alg = (int)alg;
    size_t mac = iat_alg_mac_size(t->alg);
    if (mac == 0)
        return IAT_ERR_ALG;
    if (t->tag.len != mac)
        return IAT_ERR_MAC_SIZE;
    return IAT_OK;
}

static enum iat_result decode_unprotected(struct cbor_reader *r, struct iat_token *t)
{
    uint64_t n;
    int rc = cbor_read_container(r, CBOR_MAP, &n);
    if (rc != CBOR_OK)
        return envelope_err(rc);
    for (uint64_t i = 0; i < n; i++) {
        int64_t label;
        uint8_t major;
        if ((rc = cbor_peek_major(r, &major)) != CBOR_OK)
            return IAT_ERR_CBOR;
        if ((major == CBOR_UINT || major == CBOR_NINT) && cbor_read_int(r, &label) == CBOR_OK &&
            label == 4) {
            const uint8_t *kid;
            size_t kid_len;
            if ((rc = cbor_read_string(r, CBOR_BSTR, &kid, &kid_len)) != CBOR_OK)
                return rc == CBOR_ERR_TYPE ? IAT_ERR_HEADER : IAT_ERR_CBOR;
            t->kid.p = kid;
            t->kid.len = kid_len;
            t->has_kid = true;
            continue;
        }
        if (major != CBOR_UINT && major != CBOR_NINT && cbor_skip(r, IAT_MAX_DEPTH) != CBOR_OK)
            return IAT_ERR_CBOR;
        if (cbor_skip(r, IAT_MAX_DEPTH) != CBOR_OK)
            return IAT_ERR_CBOR;
    }
    return IAT_OK;
}

static enum iat_result decode_envelope(const uint8_t *token, size_t len, struct iat_token *t)
{
    struct cbor_reader r;
    uint8_t major;
    uint64_t arg;
    int rc;

    memset(t, 0, sizeof *t);
    t->bad_sw = -1;
    if (len > IAT_MAX_TOKEN_SIZE)
        return IAT_ERR_TOO_LARGE;
    cbor_reader_init(&r, token, len);
    if ((rc = cbor_read_head(&r, &major, &arg)) != CBOR_OK)
        return IAT_ERR_CBOR;
    if (major != CBOR_TAG || arg != 17)
        return IAT_ERR_NOT_MAC0;
    if ((rc = cbor_read_container(&r, CBOR_ARRAY, &arg)) != CBOR_OK)
        return envelope_err(rc);
    if (arg != 4)
        return IAT_ERR_STRUCTURE;
    if ((rc = cbor_read_string(&r, CBOR_BSTR, &t->protected_hdr.p, &t->protected_hdr.len)))
        return envelope_err(rc);
    enum iat_result res = decode_unprotected(&r, t);
    if (res != IAT_OK)
        return res;
    if ((rc = cbor_read_string(&r, CBOR_BSTR, &t->payload.p, &t->payload.len)) != CBOR_OK)
        return envelope_err(rc);
    if ((rc = cbor_read_string(&r, CBOR_BSTR, &t->tag.p, &t->tag.len)) != CBOR_OK)
        return envelope_err(rc);
    if (cbor_remaining(&r) != 0)
        return IAT_ERR_TRAILING;
    return decode_protected(t);
}

/* MAC_structure = ["MAC0", protected, h'', payload] (RFC 9052 section 6.3), encoded here. */
static int compute_mac(int alg, const struct iat_key *key, struct iat_bytes prot,
                       struct iat_bytes payload, uint8_t out[IAT_MAX_MAC_SIZE], size_t *out_len)
{
    static const uint8_t prefix[] = {0x84, 0x64, 'M', 'A', 'C', '0'};
    static const uint8_t empty_bstr[] = {0x40};
    uint8_t ph[9], plh[9];
    struct cbor_writer w;
    cbor_writer_init(&w, ph, sizeof ph);
    cbor_put_head(&w, CBOR_BSTR, prot.len);
    size_t ph_len = w.len;
    cbor_writer_init(&w, plh, sizeof plh);
    cbor_put_head(&w, CBOR_BSTR, payload.len);
    size_t plh_len = w.len;
    struct iat_iov iov[] = {
        {prefix, sizeof prefix}, {ph, ph_len},     {prot.p, prot.len},
        {empty_bstr, 1},         {plh, plh_len}, {payload.p, payload.len},
    };
    return iat_crypto_hmac(alg, key, iov, sizeof iov / sizeof iov[0], out, out_len);
}

enum iat_result iat_check_mac(const struct iat_token *t, const struct iat_key *key)
{
    uint8_t mac[IAT_MAX_MAC_SIZE];
    size_t mac_len = 0;
    if (!key || (!key->raw && !key->id))
        return IAT_ERR_KEY;
    if (compute_mac(t->alg, key, t->protected_hdr, t->payload, mac, &mac_len) != 0)
        return IAT_ERR_KEY;
    bool ok = mac_len == t->tag.len && ct_equal(mac, t->tag.p, mac_len);
    memset(mac, 0, sizeof mac);
    return ok ? IAT_OK : IAT_ERR_MAC;
}

/* ---- Claims ------------------------------------------------------------------------------ */

/* Which claim a map key names, and in which profile; false for unknown keys. */
static bool claim_of_key(int64_t key, enum iat_claim *claim, enum iat_profile *profile)
{
    if (key == KEY_PSA2_BOOT_SEED_OLD) {
        *claim = IAT_CLAIM_BOOT_SEED;
        *profile = IAT_PROFILE_PSA2;
        return true;
    }
    for (int c = 0; c < IAT_CLAIM_COUNT_; c++) {
        if (legacy_keys[c] == key) {
            *claim = (enum iat_claim)c;
            *profile = IAT_PROFILE_LEGACY;
            return true;
        }
        if (psa2_keys[c] != 0 && psa2_keys[c] == key) {
            *claim = (enum iat_claim)c;
            *profile = IAT_PROFILE_PSA2;
            return true;
        }
    }
    return false;
}

static enum iat_result claim_fail(struct iat_token *t, enum iat_result r, enum iat_claim c,
                                  int sw)
{
    t->bad_claim = c;
    t->bad_sw = sw;
    return r;
}

/* Reads a string of the given major type; a different type is a claim type error. */
static enum iat_result read_claim_str(struct cbor_reader *r, uint8_t major, struct iat_bytes *b,
                                      struct iat_token *t, enum iat_claim c, int sw)
{
    int rc = cbor_read_string(r, major, &b->p, &b->len);
    if (rc == CBOR_ERR_TYPE)
        return claim_fail(t, IAT_ERR_CLAIM_TYPE, c, sw);
    return rc == CBOR_OK ? IAT_OK : IAT_ERR_CLAIMS_CBOR;
}

static enum iat_result decode_sw_component(struct cbor_reader *r, struct iat_token *t, int idx)
{
    struct iat_sw_component *sw = &t->claims.sw[idx];
    uint64_t n;
    int rc = cbor_read_container(r, CBOR_MAP, &n);
    if (rc == CBOR_ERR_TYPE)
        return claim_fail(t, IAT_ERR_CLAIM_TYPE, IAT_CLAIM_SW_COMPONENTS, idx);
    if (rc != CBOR_OK)
        return IAT_ERR_CLAIMS_CBOR;
    for (uint64_t i = 0; i < n; i++) {
        int64_t key;
        rc = cbor_read_int(r, &key);
        if (rc == CBOR_ERR_TYPE) { /* a non-integer key: unknown, skip key and value */
            if (cbor_skip(r, IAT_MAX_DEPTH - 3) != CBOR_OK ||
                cbor_skip(r, IAT_MAX_DEPTH - 3) != CBOR_OK)
                return IAT_ERR_CLAIMS_CBOR;
            continue;
        }
        if (rc != CBOR_OK)
            return IAT_ERR_CLAIMS_CBOR;
        struct iat_bytes *field;
        uint8_t major;
        switch (key) {
        case IAT_SW_TYPE: field = &sw->type; major = CBOR_TSTR; break;
        case IAT_SW_VALUE: field = &sw->value; major = CBOR_BSTR; break;
        case IAT_SW_VERSION: field = &sw->version; major = CBOR_TSTR; break;
        case IAT_SW_SIGNER_ID: field = &sw->signer_id; major = CBOR_BSTR; break;
        case IAT_SW_DESCRIPTION: field = &sw->description; major = CBOR_TSTR; break;
        default:
            if (cbor_skip(r, IAT_MAX_DEPTH - 3) != CBOR_OK)
                return IAT_ERR_CLAIMS_CBOR;
            continue;
        }
        if (sw->present & (1u << key))
            return claim_fail(t, IAT_ERR_DUPLICATE_CLAIM, IAT_CLAIM_SW_COMPONENTS, idx);
        enum iat_result res = read_claim_str(r, major, field, t, IAT_CLAIM_SW_COMPONENTS, idx);
        if (res != IAT_OK)
            return res;
        sw->present |= 1u << key;
    }
    return IAT_OK;
}

static enum iat_result decode_claim(struct cbor_reader *r, struct iat_token *t, enum iat_claim c)
{
    struct iat_claims *cl = &t->claims;
    int64_t v;
    uint64_t n;
    int rc;
    switch (c) {
    case IAT_CLAIM_NONCE:
        return read_claim_str(r, CBOR_BSTR, &cl->nonce, t, c, -1);
    case IAT_CLAIM_BOOT_SEED:
        return read_claim_str(r, CBOR_BSTR, &cl->boot_seed, t, c, -1);
    case IAT_CLAIM_INSTANCE_ID:
        return read_claim_str(r, CBOR_BSTR, &cl->instance_id, t, c, -1);
    case IAT_CLAIM_IMPLEMENTATION_ID:
        return read_claim_str(r, CBOR_BSTR, &cl->implementation_id, t, c, -1);
    case IAT_CLAIM_PROFILE:
        return read_claim_str(r, CBOR_TSTR, &cl->profile_name, t, c, -1);
    case IAT_CLAIM_VERIFICATION_SERVICE:
        return read_claim_str(r, CBOR_TSTR, &cl->verification_service, t, c, -1);
    case IAT_CLAIM_CERT_REF:
        return read_claim_str(r, CBOR_TSTR, &cl->cert_ref, t, c, -1);
    case IAT_CLAIM_CLIENT_ID:
        rc = cbor_read_int(r, &v);
        if (rc == CBOR_ERR_TYPE || rc == CBOR_ERR_RANGE)
            return claim_fail(t, rc == CBOR_ERR_TYPE ? IAT_ERR_CLAIM_TYPE : IAT_ERR_CLAIM_VALUE,
                              c, -1);
        if (rc != CBOR_OK)
            return IAT_ERR_CLAIMS_CBOR;
        cl->client_id = v;
        return IAT_OK;
    case IAT_CLAIM_LIFECYCLE:
    case IAT_CLAIM_NO_SW_MEASUREMENTS:
        rc = cbor_read_uint(r, &n);
        if (rc == CBOR_ERR_TYPE)
            return claim_fail(t, IAT_ERR_CLAIM_TYPE, c, -1);
        if (rc != CBOR_OK)
            return IAT_ERR_CLAIMS_CBOR;
        if (c == IAT_CLAIM_LIFECYCLE) {
            if (n > 0xffff)
                return claim_fail(t, IAT_ERR_CLAIM_VALUE, c, -1);
            cl->lifecycle = (uint32_t)n;
        } else if (n != 1) {
            return claim_fail(t, IAT_ERR_CLAIM_VALUE, c, -1);
        }
        return IAT_OK;
    case IAT_CLAIM_SW_COMPONENTS:
        rc = cbor_read_container(r, CBOR_ARRAY, &n);
        if (rc == CBOR_ERR_TYPE)
            return claim_fail(t, IAT_ERR_CLAIM_TYPE, c, -1);
        if (rc != CBOR_OK)
            return IAT_ERR_CLAIMS_CBOR;
        if (n == 0 || n > IAT_MAX_SW_COMPONENTS)
            return claim_fail(t, IAT_ERR_CLAIM_SIZE, c, -1);
        for (uint64_t i = 0; i < n; i++) {
            enum iat_result res = decode_sw_component(r, t, (int)i);
            if (res != IAT_OK)
                return res;
        }
        cl->sw_count = (size_t)n;
        return IAT_OK;
    default:
        return IAT_ERR_CLAIMS_CBOR;
    }
}

static enum iat_result decode_claims(struct iat_token *t, enum iat_profile want)
{
    struct iat_claims *cl = &t->claims;
    struct cbor_reader r;
    uint64_t n;
    bool seen_legacy = false, seen_psa2 = false;

    cbor_reader_init(&r, t->payload.p, t->payload.len);
    if (cbor_read_container(&r, CBOR_MAP, &n) != CBOR_OK)
        return IAT_ERR_CLAIMS_CBOR;
    for (uint64_t i = 0; i < n; i++) {
        int64_t key;
        enum iat_claim c;
        enum iat_profile p;
        int rc = cbor_read_int(&r, &key);
        if (rc == CBOR_ERR_TYPE || rc == CBOR_ERR_RANGE) {
            /* Not an integer key: an unknown claim (text keys are allowed in EAT). */
            if (cbor_skip(&r, IAT_MAX_DEPTH - 1) != CBOR_OK ||
                cbor_skip(&r, IAT_MAX_DEPTH - 1) != CBOR_OK)
                return IAT_ERR_CLAIMS_CBOR;
            continue;
        }
        if (rc != CBOR_OK)
            return IAT_ERR_CLAIMS_CBOR;
        if (!claim_of_key(key, &c, &p)) {
            if (cbor_skip(&r, IAT_MAX_DEPTH - 1) != CBOR_OK)
                return IAT_ERR_CLAIMS_CBOR;
            continue;
        }
        if (cl->present & (1u << c))
            return claim_fail(t, IAT_ERR_DUPLICATE_CLAIM, c, -1);
        enum iat_result res = decode_claim(&r, t, c);
        if (res != IAT_OK)
            return res;
        cl->present |= 1u << c;
        if (c == IAT_CLAIM_BOOT_SEED)
            cl->boot_seed_key = key;
        if (p == IAT_PROFILE_LEGACY)
            seen_legacy = true;
        else
            seen_psa2 = true;
    }
    if (cbor_remaining(&r) != 0)
        return IAT_ERR_CLAIMS_CBOR;
    if (seen_legacy == seen_psa2) /* mixed keys, or no known claim at all */
        return IAT_ERR_PROFILE;
    cl->profile = seen_legacy ? IAT_PROFILE_LEGACY : IAT_PROFILE_PSA2;
    if (want != IAT_PROFILE_AUTO && want != cl->profile)
        return IAT_ERR_PROFILE;
    return IAT_OK;
}

static bool bytes_is(struct iat_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && memcmp(b.p, s, n) == 0;
}

/* Mandatory claims, sizes and values fixed by the profile (not by local policy). */
static enum iat_result validate_claims(struct iat_token *t)
{
    struct iat_claims *cl = &t->claims;
    bool legacy = cl->profile == IAT_PROFILE_LEGACY;
    static const enum iat_claim mandatory[] = {
        IAT_CLAIM_NONCE,     IAT_CLAIM_INSTANCE_ID, IAT_CLAIM_IMPLEMENTATION_ID,
        IAT_CLAIM_CLIENT_ID, IAT_CLAIM_LIFECYCLE,
    };
    for (size_t i = 0; i < sizeof mandatory / sizeof mandatory[0]; i++)
        if (!(cl->present & (1u << mandatory[i])))
            return claim_fail(t, IAT_ERR_MISSING_CLAIM, mandatory[i], -1);
    if (legacy && !(cl->present & (1u << IAT_CLAIM_BOOT_SEED)))
        return claim_fail(t, IAT_ERR_MISSING_CLAIM, IAT_CLAIM_BOOT_SEED, -1);
    bool has_sw = cl->present & (1u << IAT_CLAIM_SW_COMPONENTS);
    bool has_no_sw = cl->present & (1u << IAT_CLAIM_NO_SW_MEASUREMENTS);
    if (!has_sw && !has_no_sw)
        return claim_fail(t, IAT_ERR_MISSING_CLAIM, IAT_CLAIM_SW_COMPONENTS, -1);
    if (has_sw && has_no_sw)
        return claim_fail(t, IAT_ERR_CLAIM_VALUE, IAT_CLAIM_NO_SW_MEASUREMENTS, -1);
    if (!legacy && !(cl->present & (1u << IAT_CLAIM_PROFILE)))
        return claim_fail(t, IAT_ERR_MISSING_CLAIM, IAT_CLAIM_PROFILE, -1);

    if (cl->nonce.len != 32 && cl->nonce.len != 48 && cl->nonce.len != 64)
        return claim_fail(t, IAT_ERR_NONCE_SIZE, IAT_CLAIM_NONCE, -1);
    if (cl->instance_id.len != IAT_INSTANCE_ID_SIZE)
        return claim_fail(t, IAT_ERR_CLAIM_SIZE, IAT_CLAIM_INSTANCE_ID, -1);
    if (cl->instance_id.p[0] != 0x01)
        return claim_fail(t, IAT_ERR_CLAIM_VALUE, IAT_CLAIM_INSTANCE_ID, -1);
    if (cl->implementation_id.len == 0 || cl->implementation_id.len > 64)
        return claim_fail(t, IAT_ERR_CLAIM_SIZE, IAT_CLAIM_IMPLEMENTATION_ID, -1);
    if (cl->client_id == 0)
        return claim_fail(t, IAT_ERR_CLAIM_VALUE, IAT_CLAIM_CLIENT_ID, -1);
    if ((cl->present & (1u << IAT_CLAIM_BOOT_SEED)) &&
        (cl->boot_seed.len < 8 || cl->boot_seed.len > 32))
        return claim_fail(t, IAT_ERR_CLAIM_SIZE, IAT_CLAIM_BOOT_SEED, -1);
    for (size_t i = 0; i < cl->sw_count; i++) {
        const struct iat_sw_component *sw = &cl->sw[i];
        if (!(sw->present & (1u << IAT_SW_VALUE)))
            return claim_fail(t, IAT_ERR_MISSING_CLAIM, IAT_CLAIM_SW_COMPONENTS, (int)i);
        if (sw->value.len < 32 || sw->value.len > 64)
            return claim_fail(t, IAT_ERR_CLAIM_SIZE, IAT_CLAIM_SW_COMPONENTS, (int)i);
    }
    if (cl->present & (1u << IAT_CLAIM_PROFILE)) {
        bool ok = legacy ? bytes_is(cl->profile_name, IAT_PROFILE_STR_LEGACY)
                         : bytes_is(cl->profile_name, IAT_PROFILE_STR_PSA2_2023) ||
                               bytes_is(cl->profile_name, IAT_PROFILE_STR_PSA2_OLD);
        if (!ok)
            return claim_fail(t, IAT_ERR_PROFILE, IAT_CLAIM_PROFILE, -1);
    }
    return IAT_OK;
}

enum iat_result iat_decode_unverified(const uint8_t *token, size_t len, enum iat_profile profile,
                                      struct iat_token *out)
{
    enum iat_result r = decode_envelope(token, len, out);
    if (r != IAT_OK)
        return r;
    r = decode_claims(out, profile);
    if (r != IAT_OK)
        return r;
    return validate_claims(out);
}

static enum iat_result check_refvals(struct iat_token *t, const struct iat_policy *pol)
{
    const struct iat_refvals *rv = pol->refvals;
    const struct iat_claims *cl = &t->claims;
    if (!rv)
        return IAT_OK;
    if (pol->check_implementation && rv->implementation_known &&
        rv->implementation_known(rv->ctx, cl->implementation_id.p, cl->implementation_id.len) != 1)
        return IAT_ERR_IMPLEMENTATION_ID;
    if (pol->require_known_measurements && rv->measurement_known) {
        for (size_t i = 0; i < cl->sw_count; i++) {
            int k = rv->measurement_known(rv->ctx, &cl->sw[i]);
            if (k != 1) {
                t->bad_sw = (int)i;
                return k < 0 ? IAT_ERR_SIGNER : IAT_ERR_MEASUREMENT;
            }
        }
    }
    return IAT_OK;
}

enum iat_result iat_verify(const uint8_t *token, size_t len, const struct iat_policy *pol,
                           struct iat_token *t)
{
    enum iat_result r = decode_envelope(token, len, t);
    if (r != IAT_OK)
        return r;
    uint32_t algs = pol->alg_mask ? pol->alg_mask
                                  : (1u << IAT_ALG_HMAC256) | (1u << IAT_ALG_HMAC384) |
                                        (1u << IAT_ALG_HMAC512);
    if (!(algs & (1u << t->alg)))
        return IAT_ERR_ALG;
    if ((r = iat_check_mac(t, pol->key)) != IAT_OK)
        return r;
    if ((r = decode_claims(t, pol->profile)) != IAT_OK)
        return r;
    if ((r = validate_claims(t)) != IAT_OK)
        return r;

    const struct iat_claims *cl = &t->claims;
    if (!pol->nonce || cl->nonce.len != pol->nonce_len ||
        !ct_equal(cl->nonce.p, pol->nonce, pol->nonce_len))
        return IAT_ERR_NONCE;

    uint8_t derived[IAT_INSTANCE_ID_SIZE];
    const uint8_t *want = pol->instance_id;
    if (!want) {
        if (!pol->key->raw || iat_instance_id(pol->key->raw, pol->key->raw_len, derived) != 0)
            return IAT_ERR_KEY;
        want = derived;
    }
    if (!ct_equal(cl->instance_id.p, want, IAT_INSTANCE_ID_SIZE))
        return IAT_ERR_INSTANCE_ID;

    uint32_t lcs = pol->lifecycle_mask ? pol->lifecycle_mask : IAT_LC_BIT(IAT_LC_SECURED);
    unsigned major = cl->lifecycle >> 12;
    if ((cl->lifecycle >> 8) & 0x0f || major > 6 || !(lcs & (1u << major)))
        return IAT_ERR_LIFECYCLE;
    return check_refvals(t, pol);
}

/* ---- Encoding ---------------------------------------------------------------------------- */

static const enum iat_claim tfm_order[] = {
    IAT_CLAIM_NONCE,         IAT_CLAIM_BOOT_SEED,          IAT_CLAIM_INSTANCE_ID,
    IAT_CLAIM_IMPLEMENTATION_ID, IAT_CLAIM_CLIENT_ID,      IAT_CLAIM_LIFECYCLE,
    IAT_CLAIM_SW_COMPONENTS, IAT_CLAIM_NO_SW_MEASUREMENTS, IAT_CLAIM_PROFILE,
    IAT_CLAIM_VERIFICATION_SERVICE, IAT_CLAIM_CERT_REF,
};
static const int tfm_sw_order[] = {IAT_SW_SIGNER_ID, IAT_SW_VERSION, IAT_SW_TYPE,
                                   IAT_SW_DESCRIPTION, IAT_SW_VALUE};

static void put_sw_field(struct cbor_writer *w, const struct iat_sw_component *sw, int key)
{
    const struct iat_bytes *f = key == IAT_SW_TYPE        ? &sw->type
                                : key == IAT_SW_VALUE     ? &sw->value
                                : key == IAT_SW_VERSION   ? &sw->version
                                : key == IAT_SW_SIGNER_ID ? &sw->signer_id
                                                          : &sw->description;
    cbor_put_int(w, key);
    cbor_put_head(w, key == IAT_SW_VALUE || key == IAT_SW_SIGNER_ID ? CBOR_BSTR : CBOR_TSTR,
                  f->len);
    cbor_put_raw(w, f->p, f->len);
}

static void put_claim(struct cbor_writer *w, const struct iat_claims *cl, enum iat_claim c,
                      int64_t key, const int *sw_order, size_t sw_order_len)
{
    cbor_put_int(w, key);
    switch (c) {
    case IAT_CLAIM_NONCE: cbor_put_bstr(w, cl->nonce.p, cl->nonce.len); break;
    case IAT_CLAIM_BOOT_SEED: cbor_put_bstr(w, cl->boot_seed.p, cl->boot_seed.len); break;
    case IAT_CLAIM_INSTANCE_ID: cbor_put_bstr(w, cl->instance_id.p, cl->instance_id.len); break;
    case IAT_CLAIM_IMPLEMENTATION_ID:
        cbor_put_bstr(w, cl->implementation_id.p, cl->implementation_id.len);
        break;
    case IAT_CLAIM_CLIENT_ID: cbor_put_int(w, cl->client_id); break;
    case IAT_CLAIM_LIFECYCLE: cbor_put_head(w, CBOR_UINT, cl->lifecycle); break;
    case IAT_CLAIM_NO_SW_MEASUREMENTS: cbor_put_head(w, CBOR_UINT, 1); break;
    case IAT_CLAIM_PROFILE:
        cbor_put_tstr(w, (const char *)cl->profile_name.p, cl->profile_name.len);
        break;
    case IAT_CLAIM_VERIFICATION_SERVICE:
        cbor_put_tstr(w, (const char *)cl->verification_service.p, cl->verification_service.len);
        break;
    case IAT_CLAIM_CERT_REF:
        cbor_put_tstr(w, (const char *)cl->cert_ref.p, cl->cert_ref.len);
        break;
    case IAT_CLAIM_SW_COMPONENTS:
        cbor_put_head(w, CBOR_ARRAY, cl->sw_count);
        for (size_t i = 0; i < cl->sw_count; i++) {
            const struct iat_sw_component *sw = &cl->sw[i];
            unsigned fields = 0;
            for (size_t k = 0; k < sw_order_len; k++)
                fields += (sw->present >> sw_order[k]) & 1u;
            cbor_put_head(w, CBOR_MAP, fields);
            for (size_t k = 0; k < sw_order_len; k++)
                if (sw->present & (1u << sw_order[k]))
                    put_sw_field(w, sw, sw_order[k]);
        }
        break;
    default:
        break;
    }
}

static void put_claims(struct cbor_writer *w, const struct iat_claims *cl,
                       enum iat_profile profile, const enum iat_claim *order, size_t order_len,
                       size_t count, const int *sw_order, size_t sw_order_len)
{
    cbor_put_head(w, CBOR_MAP, count);
    for (size_t i = 0; i < order_len; i++) {
        if (!(cl->present & (1u << order[i])))
            continue;
        int64_t k = iat_claim_key(order[i], profile);
        if (order[i] == IAT_CLAIM_BOOT_SEED && profile == IAT_PROFILE_PSA2 &&
            cl->boot_seed_key == KEY_PSA2_BOOT_SEED_OLD)
            k = KEY_PSA2_BOOT_SEED_OLD;
        put_claim(w, cl, order[i], k, sw_order, sw_order_len);
    }
}

enum iat_result iat_encode(const struct iat_claims *cl, enum iat_profile profile, int alg,
                           const struct iat_key *key, const enum iat_claim *order,
                           size_t order_len, const int *sw_order, size_t sw_order_len,
                           uint8_t *buf, size_t cap, size_t *out_len)
{
    size_t mac_size = iat_alg_mac_size(alg);
    if (mac_size == 0 || (profile != IAT_PROFILE_LEGACY && profile != IAT_PROFILE_PSA2))
        return IAT_ERR_ARG;
    if (!order) {
        order = tfm_order;
        order_len = sizeof tfm_order / sizeof tfm_order[0];
    }
    if (!sw_order) {
        sw_order = tfm_sw_order;
        sw_order_len = sizeof tfm_sw_order / sizeof tfm_sw_order[0];
    }
    if (cl->sw_count > IAT_MAX_SW_COMPONENTS)
        return IAT_ERR_ARG;

    /* Every present claim must be in the order and have a key in this profile, or it would
     * silently vanish from the token. */
    uint32_t listed = 0;
    size_t count = 0;
    for (size_t i = 0; i < order_len; i++) {
        if ((unsigned)order[i] >= IAT_CLAIM_COUNT_ || (listed & (1u << order[i])))
            return IAT_ERR_ARG;
        listed |= 1u << order[i];
        if (cl->present & (1u << order[i])) {
            if (iat_claim_key(order[i], profile) == 0)
                return IAT_ERR_ARG;
            count++;
        }
    }
    if (cl->present & ~listed)
        return IAT_ERR_ARG;
    unsigned sw_listed = 0;
    for (size_t k = 0; k < sw_order_len; k++)
        sw_listed |= 1u << sw_order[k];
    for (size_t i = 0; i < cl->sw_count; i++)
        if (cl->sw[i].present & ~sw_listed)
            return IAT_ERR_ARG;

    /* The claims map is written twice: first only counted (its size goes in the payload
     * head), then in place behind the envelope head. */
    struct cbor_writer w;
    cbor_writer_init(&w, NULL, 0);
    put_claims(&w, cl, profile, order, order_len, count, sw_order, sw_order_len);
    size_t payload_len = w.len;
    size_t total = 1 + 1 + 4 + 1 + cbor_head_size(payload_len) + payload_len +
                   cbor_head_size(mac_size) + mac_size;
    *out_len = total;
    if (!buf || cap < total)
        return IAT_ERR_BUFFER;

    static const uint8_t head[] = {0xd1, 0x84, 0x43, 0xa1, 0x01};
    cbor_writer_init(&w, buf, cap);
    cbor_put_raw(&w, head, sizeof head);
    cbor_put_int(&w, alg);
    cbor_put_head(&w, CBOR_MAP, 0);
    cbor_put_head(&w, CBOR_BSTR, payload_len);
    size_t payload_off = w.len;
    put_claims(&w, cl, profile, order, order_len, count, sw_order, sw_order_len);
    if (w.overflow || w.len - payload_off != payload_len)
        return IAT_ERR_BUFFER;

    uint8_t mac[IAT_MAX_MAC_SIZE];
    size_t mac_len = 0;
    struct iat_bytes prot = {buf + 3, 3};
    struct iat_bytes payload = {buf + payload_off, payload_len};
    if (compute_mac(alg, key, prot, payload, mac, &mac_len) != 0 || mac_len != mac_size)
        return IAT_ERR_KEY;
    cbor_put_bstr(&w, mac, mac_len);
    memset(mac, 0, sizeof mac);
    if (w.overflow || w.len != total)
        return IAT_ERR_BUFFER;
    return IAT_OK;
}
