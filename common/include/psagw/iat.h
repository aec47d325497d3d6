/*
 * iat.h: the symmetric PSA Initial Attestation Token (COSE_Mac0 over a CBOR claims map).
 *
 * Shared by the device's secure side (which creates tokens) and the gateway (which verifies
 * them). Portable C, no heap: decoded claims point into the caller's token buffer, which must
 * outlive them. Cryptography comes from the backend declared in iat_crypto.h (OpenSSL on the
 * gateway, PSA Crypto on the device), so this code never sees how a key is stored.
 *
 * Specification: RFC 9783 (PSA attestation token, its TF-M profile and Mac0 example), RFC 9052
 * sections 6.2 and 6.3 (COSE_Mac0, MAC_structure), TF-M's symmetric initial attestation design
 * (attest_core.c fixes the claim order reproduced by iat_encode). The project summary is
 * docs/design/token.md; the gateway's use of it is docs/attestation.md.
 */
#ifndef PSAGW_IAT_H
#define PSAGW_IAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* COSE algorithm identifiers for HMAC with SHA-2 (RFC 9053 section 3.1). */
#define IAT_ALG_HMAC256 5
#define IAT_ALG_HMAC384 6
#define IAT_ALG_HMAC512 7

#define IAT_INSTANCE_ID_SIZE 33 /* 0x01 || SHA-256(SHA-256(IAK)) */
#define IAT_MAX_MAC_SIZE 64
#define IAT_MAX_TOKEN_SIZE 4096 /* verification refuses anything larger */
#define IAT_MAX_SW_COMPONENTS 16
#define IAT_MAX_DEPTH 8 /* nesting bound for skipping unknown claims */

/* TF-M's default maximum token size (PSA_INITIAL_ATTEST_MAX_TOKEN_SIZE). */
#define IAT_TFM_MAX_TOKEN_SIZE 0x250

enum iat_profile {
    IAT_PROFILE_AUTO = 0, /* verification: detect from the claim keys */
    IAT_PROFILE_LEGACY,   /* PSA_IOT_PROFILE_1, keys -75000.. */
    IAT_PROFILE_PSA2,     /* PSA 2.0 / RFC 9783, keys 10, 256, 2394.. */
};

/* The claims of both profiles, by meaning; iat_claim_key() gives the map key per profile. */
enum iat_claim {
    IAT_CLAIM_NONCE = 0,
    IAT_CLAIM_BOOT_SEED,
    IAT_CLAIM_INSTANCE_ID,
    IAT_CLAIM_IMPLEMENTATION_ID,
    IAT_CLAIM_CLIENT_ID,
    IAT_CLAIM_LIFECYCLE,
    IAT_CLAIM_SW_COMPONENTS,
    IAT_CLAIM_NO_SW_MEASUREMENTS, /* legacy only */
    IAT_CLAIM_PROFILE,
    IAT_CLAIM_VERIFICATION_SERVICE,
    IAT_CLAIM_CERT_REF,
    IAT_CLAIM_COUNT_,
};

/* Software component map keys (same in both profiles). */
enum iat_sw_key {
    IAT_SW_TYPE = 1,
    IAT_SW_VALUE = 2,
    IAT_SW_VERSION = 4,
    IAT_SW_SIGNER_ID = 5,
    IAT_SW_DESCRIPTION = 6,
};

/* Security lifecycle: the major state is the high byte (docs/design/token.md section 3). */
enum iat_lifecycle {
    IAT_LC_UNKNOWN = 0x0000,
    IAT_LC_ASSEMBLY_AND_TEST = 0x1000,
    IAT_LC_PSA_ROT_PROVISIONING = 0x2000,
    IAT_LC_SECURED = 0x3000,
    IAT_LC_NON_PSA_ROT_DEBUG = 0x4000,
    IAT_LC_RECOVERABLE_PSA_ROT_DEBUG = 0x5000,
    IAT_LC_DECOMMISSIONED = 0x6000,
};
/* Bit for a lifecycle in iat_policy.lifecycle_mask. */
#define IAT_LC_BIT(lc) (1u << (((unsigned)(lc) >> 12) & 0xf))

struct iat_bytes {
    const uint8_t *p;
    size_t len;
};

struct iat_sw_component {
    unsigned present; /* bit (1 << iat_sw_key) per field present */
    struct iat_bytes type, value, version, signer_id, description;
};

struct iat_claims {
    uint32_t present; /* bit (1 << iat_claim) per claim present */
    enum iat_profile profile;
    struct iat_bytes nonce, boot_seed, instance_id, implementation_id;
    int64_t client_id;
    uint32_t lifecycle;
    size_t sw_count;
    struct iat_sw_component sw[IAT_MAX_SW_COMPONENTS];
    struct iat_bytes profile_name, verification_service, cert_ref;
    /* PSA 2.0 boot seed key: 268 (RFC 9783, TF-M >= 2.2) or 2397 (TF-M 1.7-2.1). */
    int64_t boot_seed_key;
};

/* Why a token was refused. Each has its own message (iat_result_str). */
enum iat_result {
    IAT_OK = 0,
    IAT_ERR_TOO_LARGE,          /* over IAT_MAX_TOKEN_SIZE */
    IAT_ERR_CBOR,               /* not well-formed CBOR (or truncated) */
    IAT_ERR_NOT_MAC0,           /* not tag 17 */
    IAT_ERR_STRUCTURE,          /* not [bstr, map, bstr, bstr] */
    IAT_ERR_TRAILING,           /* bytes after the token */
    IAT_ERR_HEADER,             /* protected header not {1: alg} */
    IAT_ERR_ALG,                /* alg not HMAC 256/384/512, or not allowed by policy */
    IAT_ERR_MAC_SIZE,           /* tag length differs from the hash size */
    IAT_ERR_KEY,                /* no key or the backend refused it */
    IAT_ERR_MAC,                /* MAC mismatch */
    IAT_ERR_CLAIMS_CBOR,        /* payload not a well-formed, bounded claims map */
    IAT_ERR_DUPLICATE_CLAIM,    /* a claim key appears twice */
    IAT_ERR_PROFILE,            /* profile unknown, mixed keys, or not the pinned one */
    IAT_ERR_MISSING_CLAIM,      /* a mandatory claim is absent */
    IAT_ERR_CLAIM_TYPE,         /* a claim has the wrong CBOR type */
    IAT_ERR_CLAIM_SIZE,         /* a claim has a size outside its range */
    IAT_ERR_CLAIM_VALUE,        /* a claim has a value the spec forbids */
    IAT_ERR_NONCE_SIZE,         /* nonce claim not 32, 48 or 64 bytes */
    IAT_ERR_NONCE,              /* nonce differs from the one sent */
    IAT_ERR_INSTANCE_ID,        /* instance ID differs from the registered IAK's */
    IAT_ERR_LIFECYCLE,          /* lifecycle not acceptable by policy */
    IAT_ERR_IMPLEMENTATION_ID,  /* implementation ID not among the reference values */
    IAT_ERR_MEASUREMENT,        /* a software measurement not among the reference values */
    IAT_ERR_SIGNER,             /* a measurement known, but signed by another signer */
    IAT_ERR_BUFFER,             /* encoder: output buffer too small */
    IAT_ERR_ARG,                /* encoder: claims incomplete or out of range */
    IAT_RESULT_COUNT_,
};

/* A key for the crypto backend: raw bytes (gateway, tools) or a backend key id (device). */
struct iat_key {
    const uint8_t *raw;
    size_t raw_len;
    uint32_t id;
};

/* Reference values, consulted through callbacks so the store can be a database or a file. */
struct iat_refvals {
    /* 1 = known, 0 = unknown. */
    int (*implementation_known)(void *ctx, const uint8_t *id, size_t len);
    /* 1 = known (and signer matches, where the reference value names one), 0 = unknown,
     * -1 = measurement known but the signer ID differs. */
    int (*measurement_known)(void *ctx, const struct iat_sw_component *sw);
    void *ctx;
};

struct iat_policy {
    const struct iat_key *key;
    const uint8_t *nonce;       /* the nonce this connection sent */
    size_t nonce_len;
    const uint8_t *instance_id; /* IAT_INSTANCE_ID_SIZE bytes; NULL = derive from key->raw */
    enum iat_profile profile;   /* AUTO or pinned */
    uint32_t lifecycle_mask;    /* IAT_LC_BIT()s accepted; 0 = SECURED only */
    uint32_t alg_mask;          /* (1 << alg) accepted; 0 = 5, 6 and 7 */
    const struct iat_refvals *refvals;  /* NULL = no reference value checks */
    bool check_implementation;          /* implementation ID must be known */
    bool require_known_measurements;    /* every SW measurement must be known */
};

/* A decoded token: its parts (pointing into the token) and its claims. */
struct iat_token {
    int alg;
    struct iat_bytes protected_hdr; /* the bstr contents */
    struct iat_bytes kid;           /* unprotected kid, if any */
    struct iat_bytes payload;
    struct iat_bytes tag;
    struct iat_claims claims;
    bool has_kid;
    enum iat_claim bad_claim;       /* which claim, for the claim-specific results */
    int bad_sw;                     /* which SW component, or -1 */
};

/* Verifies a token against a policy in the order of docs/design/token.md section 4 and fills *out with
 * what was decoded (claims are valid when the result is OK or a policy refusal). */
enum iat_result iat_verify(const uint8_t *token, size_t len, const struct iat_policy *policy,
                           struct iat_token *out);

/* Decodes the envelope and the claims without checking the MAC or any policy ("show"). */
enum iat_result iat_decode_unverified(const uint8_t *token, size_t len, enum iat_profile profile,
                                      struct iat_token *out);

/* Checks the MAC of a decoded token with a key (constant-time comparison). */
enum iat_result iat_check_mac(const struct iat_token *tok, const struct iat_key *key);

/* Creates a token: claims in `order` (NULL: TF-M's order), software component fields in
 * `sw_order` (NULL: TF-M's 5, 4, 1, 6, 2). Writes at most `cap` bytes; *out_len is the size
 * written, or the size needed when the result is IAT_ERR_BUFFER (buf may be NULL to ask). */
enum iat_result iat_encode(const struct iat_claims *claims, enum iat_profile profile, int alg,
                           const struct iat_key *key, const enum iat_claim *order,
                           size_t order_len, const int *sw_order, size_t sw_order_len,
                           uint8_t *buf, size_t cap, size_t *out_len);

/* Instance ID = 0x01 || SHA-256(SHA-256(iak)); returns 0 or -1 on a backend error. */
int iat_instance_id(const uint8_t *iak, size_t iak_len, uint8_t out[IAT_INSTANCE_ID_SIZE]);

/* The map key of a claim in a profile (0 if the profile has none). */
int64_t iat_claim_key(enum iat_claim claim, enum iat_profile profile);
/* Names for logs, JSON and messages. */
const char *iat_claim_name(enum iat_claim claim);
const char *iat_result_name(enum iat_result r);   /* short token: "mac_mismatch" */
const char *iat_result_str(enum iat_result r);    /* sentence: "MAC mismatch" */
const char *iat_profile_name(enum iat_profile p); /* "legacy", "psa2", "auto" */
const char *iat_lifecycle_name(uint32_t lifecycle);
/* Hash size of a COSE HMAC alg (32/48/64) or 0 if not one. */
size_t iat_alg_mac_size(int alg);
/* Formats the reason of a result into buf ("missing claim nonce", ...); returns buf. */
const char *iat_reason(const struct iat_token *tok, enum iat_result r, char *buf, size_t cap);

#define IAT_PROFILE_STR_LEGACY "PSA_IOT_PROFILE_1"
#define IAT_PROFILE_STR_PSA2_2023 "tag:psacertified.org,2023:psa#tfm"
#define IAT_PROFILE_STR_PSA2_OLD "http://arm.com/psa/2.0.0"

#endif
