/*
 * crypto_service.c: the SPE's crypto service: the PSA calls the NSPE may make, run by Mbed
 * TLS's PSA core on keys that never leave this process.
 *
 * Every request is made in the caller's name (owner -1, the NSPE): its key ids are turned
 * into owner-scoped ids here, so the NSPE can use its PSK by id but cannot name the IAK or the
 * group key, which belong to other owners. Keys it creates are volatile; persistent keys are
 * only made at provisioning, inside the SPE. Exporting a persistent key is refused whatever its
 * policy says. Multi-part operations live in small tables here; the NSPE holds handles.
 */
#include <string.h>

#include "../platform/crypto_ipc.h"
#include "spe.h"

#define MAX_HASH_OPS 8
#define MAX_KDF_OPS 4

static psa_hash_operation_t hash_ops[MAX_HASH_OPS];
static bool hash_used[MAX_HASH_OPS];
static psa_key_derivation_operation_t kdf_ops[MAX_KDF_OPS];
static bool kdf_used[MAX_KDF_OPS];

static mbedtls_svc_key_id_t caller_key(uint32_t id)
{
    return mbedtls_svc_key_id_make(SPE_OWNER_NSPE, id);
}

static psa_hash_operation_t *hash_op(uint32_t handle)
{
    return handle >= 1 && handle <= MAX_HASH_OPS && hash_used[handle - 1] ? &hash_ops[handle - 1]
                                                                          : NULL;
}

static psa_key_derivation_operation_t *kdf_op(uint32_t handle)
{
    return handle >= 1 && handle <= MAX_KDF_OPS && kdf_used[handle - 1] ? &kdf_ops[handle - 1]
                                                                        : NULL;
}

static int32_t new_hash(uint32_t *handle)
{
    for (uint32_t i = 0; i < MAX_HASH_OPS; i++)
        if (!hash_used[i]) {
            hash_used[i] = true;
            hash_ops[i] = psa_hash_operation_init();
            *handle = i + 1;
            return PSA_SUCCESS;
        }
    return PSA_ERROR_INSUFFICIENT_MEMORY;
}

static void free_hash(uint32_t handle)
{
    psa_hash_abort(&hash_ops[handle - 1]);
    hash_used[handle - 1] = false;
}

static int32_t put_handle(struct ipc_outvec *out, size_t n_out, uint32_t h)
{
    if (n_out < 1 || out[0].len < sizeof(h))
        return PSA_ERROR_BUFFER_TOO_SMALL;
    memcpy(out[0].base, &h, sizeof(h));
    out[0].len = sizeof(h);
    return PSA_SUCCESS;
}

/* out[0] as the output buffer of a call that writes *len bytes */
#define OUT0 ((uint8_t *)out[0].base)
#define OUT0_CAP (n_out ? out[0].len : 0)

int32_t crypto_service(int32_t type, const struct ipc_invec *in, size_t n_in,
                       struct ipc_outvec *out, size_t n_out)
{
    struct crypto_pack p;
    if (n_in < 1 || in[0].len != sizeof(p))
        return PSA_ERROR_INVALID_ARGUMENT;
    memcpy(&p, in[0].base, sizeof(p));
    size_t len = 0;
    psa_status_t st;
    uint32_t h;

    switch (type) {
    case CRYPTO_FN_INIT:
        return psa_crypto_init();
    case CRYPTO_FN_GENERATE_RANDOM:
        if (n_out < 1)
            return PSA_ERROR_INVALID_ARGUMENT;
        return psa_generate_random(OUT0, out[0].len);

    case CRYPTO_FN_HASH_COMPUTE:
        if (n_in < 2 || n_out < 1)
            return PSA_ERROR_INVALID_ARGUMENT;
        st = psa_hash_compute(p.alg, in[1].base, in[1].len, OUT0, OUT0_CAP, &len);
        out[0].len = st == PSA_SUCCESS ? len : 0;
        return st;
    case CRYPTO_FN_HASH_SETUP:
        if ((st = new_hash(&h)) != PSA_SUCCESS)
            return st;
        if ((st = psa_hash_setup(&hash_ops[h - 1], p.alg)) != PSA_SUCCESS) {
            free_hash(h);
            return st;
        }
        return put_handle(out, n_out, h);
    case CRYPTO_FN_HASH_UPDATE:
        if (!hash_op(p.handle) || n_in < 2)
            return PSA_ERROR_BAD_STATE;
        return psa_hash_update(hash_op(p.handle), in[1].base, in[1].len);
    case CRYPTO_FN_HASH_FINISH:
        if (!hash_op(p.handle) || n_out < 1)
            return PSA_ERROR_BAD_STATE;
        st = psa_hash_finish(hash_op(p.handle), OUT0, out[0].len, &len);
        out[0].len = st == PSA_SUCCESS ? len : 0;
        free_hash(p.handle);
        return st;
    case CRYPTO_FN_HASH_ABORT:
        if (hash_op(p.handle))
            free_hash(p.handle);
        return PSA_SUCCESS;
    case CRYPTO_FN_HASH_CLONE:
        if (!hash_op(p.handle))
            return PSA_ERROR_BAD_STATE;
        if ((st = new_hash(&h)) != PSA_SUCCESS)
            return st;
        if ((st = psa_hash_clone(hash_op(p.handle), &hash_ops[h - 1])) != PSA_SUCCESS) {
            free_hash(h);
            return st;
        }
        return put_handle(out, n_out, h);

    case CRYPTO_FN_KDF_SETUP:
        for (h = 0; h < MAX_KDF_OPS && kdf_used[h]; h++)
            ;
        if (h == MAX_KDF_OPS)
            return PSA_ERROR_INSUFFICIENT_MEMORY;
        kdf_ops[h] = psa_key_derivation_operation_init();
        if ((st = psa_key_derivation_setup(&kdf_ops[h], p.alg)) != PSA_SUCCESS)
            return st;
        kdf_used[h] = true;
        return put_handle(out, n_out, h + 1);
    case CRYPTO_FN_KDF_SET_CAPACITY:
        if (!kdf_op(p.handle))
            return PSA_ERROR_BAD_STATE;
        return psa_key_derivation_set_capacity(kdf_op(p.handle), (size_t)p.capacity);
    case CRYPTO_FN_KDF_INPUT_BYTES:
        if (!kdf_op(p.handle) || n_in < 2)
            return PSA_ERROR_BAD_STATE;
        return psa_key_derivation_input_bytes(kdf_op(p.handle), p.step, in[1].base, in[1].len);
    case CRYPTO_FN_KDF_INPUT_KEY:
        if (!kdf_op(p.handle))
            return PSA_ERROR_BAD_STATE;
        return psa_key_derivation_input_key(kdf_op(p.handle), p.step, caller_key(p.key_id));
    case CRYPTO_FN_KDF_OUTPUT_BYTES:
        if (!kdf_op(p.handle) || n_out < 1)
            return PSA_ERROR_BAD_STATE;
        return psa_key_derivation_output_bytes(kdf_op(p.handle), OUT0, out[0].len);
    case CRYPTO_FN_KDF_ABORT:
        if (kdf_op(p.handle)) {
            psa_key_derivation_abort(kdf_op(p.handle));
            kdf_used[p.handle - 1] = false;
        }
        return PSA_SUCCESS;

    case CRYPTO_FN_IMPORT_KEY: {
        if (n_in < 2)
            return PSA_ERROR_INVALID_ARGUMENT;
        if (p.lifetime != PSA_KEY_LIFETIME_VOLATILE)
            return PSA_ERROR_NOT_PERMITTED; /* persistent keys are made at provisioning */
        psa_key_attributes_t a = psa_key_attributes_init();
        psa_set_key_type(&a, (psa_key_type_t)p.key_type);
        psa_set_key_bits(&a, p.key_bits);
        psa_set_key_usage_flags(&a, p.usage);
        psa_set_key_algorithm(&a, p.key_alg);
        /* volatile keys are still owned: a volatile id carries the caller as owner */
        a.MBEDTLS_PRIVATE(id) = mbedtls_svc_key_id_make(SPE_OWNER_NSPE, 0);
        mbedtls_svc_key_id_t k;
        st = psa_import_key(&a, in[1].base, in[1].len, &k);
        if (st != PSA_SUCCESS)
            return st;
        return put_handle(out, n_out, MBEDTLS_SVC_KEY_ID_GET_KEY_ID(k));
    }
    case CRYPTO_FN_DESTROY_KEY: {
        psa_key_attributes_t a = psa_key_attributes_init();
        if ((st = psa_get_key_attributes(caller_key(p.key_id), &a)) != PSA_SUCCESS)
            return st;
        if (!PSA_KEY_LIFETIME_IS_VOLATILE(psa_get_key_lifetime(&a)))
            return PSA_ERROR_NOT_PERMITTED;
        return psa_destroy_key(caller_key(p.key_id));
    }
    case CRYPTO_FN_GET_KEY_ATTRIBUTES: {
        psa_key_attributes_t a = psa_key_attributes_init();
        if ((st = psa_get_key_attributes(caller_key(p.key_id), &a)) != PSA_SUCCESS)
            return st;
        struct crypto_pack r = {
            .key_id = p.key_id,
            .key_type = psa_get_key_type(&a),
            .key_bits = (uint32_t)psa_get_key_bits(&a),
            .lifetime = psa_get_key_lifetime(&a),
            .usage = psa_get_key_usage_flags(&a),
            .key_alg = psa_get_key_algorithm(&a),
        };
        psa_reset_key_attributes(&a);
        if (n_out < 1 || out[0].len < sizeof(r))
            return PSA_ERROR_BUFFER_TOO_SMALL;
        memcpy(out[0].base, &r, sizeof(r));
        out[0].len = sizeof(r);
        return PSA_SUCCESS;
    }
    case CRYPTO_FN_EXPORT_KEY: {
        psa_key_attributes_t a = psa_key_attributes_init();
        if ((st = psa_get_key_attributes(caller_key(p.key_id), &a)) != PSA_SUCCESS)
            return st;
        if (!PSA_KEY_LIFETIME_IS_VOLATILE(psa_get_key_lifetime(&a)) || n_out < 1)
            return PSA_ERROR_NOT_PERMITTED; /* the PSK, the IAK and the group key stay here */
        st = psa_export_key(caller_key(p.key_id), OUT0, out[0].len, &len);
        out[0].len = st == PSA_SUCCESS ? len : 0;
        return st;
    }

    case CRYPTO_FN_AEAD_ENCRYPT:
    case CRYPTO_FN_AEAD_DECRYPT:
        if (n_in < 4 || n_out < 1)
            return PSA_ERROR_INVALID_ARGUMENT;
        if (type == CRYPTO_FN_AEAD_ENCRYPT)
            st = psa_aead_encrypt(caller_key(p.key_id), p.alg, in[1].base, in[1].len,
                                  in[2].base, in[2].len, in[3].base, in[3].len, OUT0,
                                  out[0].len, &len);
        else
            st = psa_aead_decrypt(caller_key(p.key_id), p.alg, in[1].base, in[1].len,
                                  in[2].base, in[2].len, in[3].base, in[3].len, OUT0,
                                  out[0].len, &len);
        out[0].len = st == PSA_SUCCESS ? len : 0;
        return st;
    case CRYPTO_FN_MAC_COMPUTE:
        if (n_in < 2 || n_out < 1)
            return PSA_ERROR_INVALID_ARGUMENT;
        st = psa_mac_compute(caller_key(p.key_id), p.alg, in[1].base, in[1].len, OUT0,
                             out[0].len, &len);
        out[0].len = st == PSA_SUCCESS ? len : 0;
        return st;
    default:
        return PSA_ERROR_NOT_SUPPORTED;
    }
}
