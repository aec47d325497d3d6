/*
 * crypto_ipc.h: how the NSPE's PSA crypto client (nspe/psa_client.c) and the SPE's crypto
 * service (spe/crypto_service.c) talk: the call type is a function id, in_vec[0] a fixed
 * parameter block, the other vectors its byte strings (TF-M packs its crypto calls the same
 * way, in tfm_crypto_pack_iovec). Operation handles name multi-part operations held by the
 * SPE; key ids are the caller's, made into owner-scoped ids by the SPE.
 */
#ifndef PSADEV_CRYPTO_IPC_H
#define PSADEV_CRYPTO_IPC_H

#include <stdint.h>

enum crypto_fn {
    CRYPTO_FN_INIT = 1,
    CRYPTO_FN_GENERATE_RANDOM,
    CRYPTO_FN_HASH_COMPUTE,
    CRYPTO_FN_HASH_SETUP,
    CRYPTO_FN_HASH_UPDATE,
    CRYPTO_FN_HASH_FINISH,
    CRYPTO_FN_HASH_ABORT,
    CRYPTO_FN_HASH_CLONE,
    CRYPTO_FN_KDF_SETUP,
    CRYPTO_FN_KDF_SET_CAPACITY,
    CRYPTO_FN_KDF_INPUT_BYTES,
    CRYPTO_FN_KDF_INPUT_KEY,
    CRYPTO_FN_KDF_OUTPUT_BYTES,
    CRYPTO_FN_KDF_ABORT,
    CRYPTO_FN_IMPORT_KEY,
    CRYPTO_FN_DESTROY_KEY,
    CRYPTO_FN_GET_KEY_ATTRIBUTES,
    CRYPTO_FN_EXPORT_KEY,
    CRYPTO_FN_AEAD_ENCRYPT,
    CRYPTO_FN_AEAD_DECRYPT,
    CRYPTO_FN_MAC_COMPUTE,
};

/* in_vec[0] of every crypto call. */
struct crypto_pack {
    uint32_t key_id;
    uint32_t alg;
    uint32_t handle;  /* operation handle (0: none) */
    uint32_t step;    /* key derivation step */
    uint64_t capacity;
    /* key attributes (import, get attributes) */
    uint32_t key_type;
    uint32_t key_bits;
    uint32_t lifetime;
    uint32_t usage;
    uint32_t key_alg;
};

#endif
