/*
 * record.h: the protected sensor record of docs/design/wire.md section 4, shared by the sensor partition
 * (which seals records inside the sensor's SPE), the monitor's SPE (which opens them) and the
 * gateway (which may decode them for the cloud when it holds the group key).
 *
 *   payload  = CBOR {1: device id, 2: seq, 3: time ms, 4: temperature centi-degC, 5: RH centi-%}
 *   record   = COSE_Encrypt0 (tag 16): [ h'a1010a' ({1: 10}, AES-CCM-16-64-128),
 *                                        {4: kid = device id, 5: IV}, ciphertext || tag ]
 *              with external AAD = the MQTT topic (RFC 9052 section 5.3, Enc_structure)
 *   or, integrity only, COSE_Mac0 (tag 17): [ h'a10105' (HMAC 256/256), {4: kid},
 *                                        payload, tag ] with the topic as external AAD
 *   key      = first 16 (CCM) or 32 (HMAC) bytes of HMAC-SHA256(group key,
 *              "psagw app key" || device id)
 *   IV       = 5 zero bytes || seq as 8 bytes big-endian (13 bytes, never reused: seq only grows)
 *
 * Portable C, no heap. The cryptography comes through struct record_crypto, so the SPE runs
 * it on PSA Crypto with keys it never shows and the gateway on OpenSSL.
 */
#ifndef PSAGW_RECORD_H
#define PSAGW_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_ALG_AES_CCM_16_64_128 10
#define RECORD_ALG_HMAC256 5
#define RECORD_IV_SIZE 13
#define RECORD_TAG_SIZE 8
#define RECORD_MAX_SIZE 512
#define RECORD_ID_MAX 128
#define RECORD_KDF_LABEL "psagw app key"

struct record {
    char device[RECORD_ID_MAX + 1];
    uint64_t seq;
    uint64_t time_ms;
    int32_t temp_centi;  /* centi-degrees Celsius */
    uint32_t rh_centi;   /* centi-percent relative humidity */
};

enum record_result {
    RECORD_OK = 0,
    RECORD_ERR_BUFFER,    /* output buffer too small */
    RECORD_ERR_FORMAT,    /* not a well-formed record */
    RECORD_ERR_ALG,       /* algorithm not AES-CCM-16-64-128 or HMAC 256/256 */
    RECORD_ERR_AUTH,      /* tag or MAC does not verify (wrong key, topic or bytes) */
    RECORD_ERR_KID,       /* the kid is not the device the payload names */
    RECORD_ERR_CRYPTO,    /* the backend failed */
};

/* The backend: the device's record key is chosen by kid (the device id). */
struct record_crypto {
    /* AES-CCM, 13-byte nonce, 8-byte tag appended (encrypt) or checked and removed (decrypt);
     * returns 0 or -1 (decrypt: -1 = bad tag). */
    int (*ccm)(void *ctx, bool encrypt, const char *kid, const uint8_t nonce[RECORD_IV_SIZE],
               const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
               size_t cap, size_t *out_len);
    /* HMAC-SHA256 with the device's 32-byte integrity key. */
    int (*hmac)(void *ctx, const char *kid, const uint8_t *in, size_t len, uint8_t out[32]);
    void *ctx;
};

/* Seals r for `topic` (encrypted, or integrity-only when mac_only). */
enum record_result record_seal(const struct record *r, const char *topic, bool mac_only,
                               const struct record_crypto *c, uint8_t *out, size_t cap,
                               size_t *out_len);
/* Opens a record received on `topic`; fills *r. The caller checks r->seq against replays. */
enum record_result record_open(const uint8_t *in, size_t len, const char *topic,
                               const struct record_crypto *c, struct record *r);
const char *record_result_str(enum record_result res);

#endif
