/*
 * libFuzzer target for the attestation token decoder and verifier. Each input is a token:
 * it is decoded without verification, then verified against a fixed key and nonce. Neither
 * may crash or read out of bounds (ASan), and a token our decoder accepts must also be
 * well-formed CBOR to libcbor, a separately maintained parser (differential check). libcbor
 * 0.8 (Debian bookworm) refuses the tags 6..20, COSE_Mac0's 17 among them (PJK/libcbor#307),
 * so the oracle gets the tagged array without its one-byte tag head.
 *
 * Seeds (corpus/iat_decode/): RFC 9783's Mac0 example; a TF-M layout legacy token MACed with
 * this target's key (bytes 1..32) for the all-zero 32-byte nonce, so mutations reach the claim
 * checks behind the MAC; a PSA 2.0 HMAC-SHA512 token.
 */
#include <cbor.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "psagw/iat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key_bytes[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                          17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
                                          31, 32};
    static const uint8_t nonce[32];
    struct iat_key key = {.raw = key_bytes, .raw_len = sizeof key_bytes};
    struct iat_policy pol = {.key = &key, .nonce = nonce, .nonce_len = sizeof nonce};
    struct iat_token t;

    enum iat_result r = iat_decode_unverified(data, size, IAT_PROFILE_AUTO, &t);
    if (r == IAT_OK) {
        struct cbor_load_result res;
        if (size < 1 || data[0] != 0xd1)
            abort();
        cbor_item_t *item = cbor_load(data + 1, size - 1, &res);
        if (!item || res.error.code != CBOR_ERR_NONE || res.read != size - 1)
            abort();
        cbor_decref(&item);
        /* Decoded claims stay inside the input. */
        const uint8_t *end = data + size;
        const struct iat_bytes *b = &t.claims.nonce;
        if (b->p && (b->p < data || b->p + b->len > end))
            abort();
    }
    (void)iat_verify(data, size, &pol, &t);
    return 0;
}
