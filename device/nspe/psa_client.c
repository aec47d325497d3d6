/*
 * psa_client.c: the PSA Crypto API for the NSPE, every call a message to the SPE.
 *
 * Mbed TLS is built here as a pure PSA client (MBEDTLS_PSA_CRYPTO_CLIENT without
 * MBEDTLS_PSA_CRYPTO_C), so its TLS code links against these functions instead of a crypto
 * core: the same arrangement as TF-M's NS interface (interface/src/tfm_crypto_api.c). Only
 * what the TLS 1.2 PSK client and the application use is here; the SPE refuses the rest.
 * Operation objects hold only a handle to the SPE's operation.
 */
#include <string.h>

#include "psa/crypto.h"

#include "../platform/crypto_ipc.h"
#include "../platform/ipc.h"
#include "nspe.h"

static int spe_fd = -1;

void psa_client_bind(int fd)
{
    spe_fd = fd;
}

int psa_client_fd(void)
{
    return spe_fd;
}

static psa_status_t call(enum crypto_fn fn, const struct crypto_pack *p, const void *in1,
                         size_t in1_len, const void *in2, size_t in2_len, const void *in3,
                         size_t in3_len, void *out, size_t out_cap, size_t *out_len)
{
    struct ipc_invec in[4] = {{p, sizeof(*p)}, {in1, in1_len}, {in2, in2_len}, {in3, in3_len}};
    struct ipc_outvec o[1] = {{out, out_cap}};
    size_t n_in = in3 ? 4 : in2 ? 3 : in1 ? 2 : 1;
    psa_status_t st = ipc_call(spe_fd, IPC_SVC_CRYPTO, fn, in, n_in, o, out ? 1 : 0);
    if (out_len)
        *out_len = out ? o[0].len : 0;
    return st;
}

psa_status_t psa_crypto_init(void)
{
    struct crypto_pack p = {0};
    return spe_fd < 0 ? PSA_ERROR_BAD_STATE : call(CRYPTO_FN_INIT, &p, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

int psa_can_do_hash(psa_algorithm_t hash_alg)
{
    return hash_alg == PSA_ALG_SHA_256; /* what the SPE implements (Profile Small) */
}

psa_status_t psa_generate_random(uint8_t *output, size_t output_size)
{
    struct crypto_pack p = {0};
    while (output_size > 0) {
        size_t chunk = output_size > 1024 ? 1024 : output_size, got = 0;
        psa_status_t st =
            call(CRYPTO_FN_GENERATE_RANDOM, &p, 0, 0, 0, 0, 0, 0, output, chunk, &got);
        if (st != PSA_SUCCESS)
            return st;
        if (got != chunk)
            return PSA_ERROR_COMMUNICATION_FAILURE;
        output += chunk;
        output_size -= chunk;
    }
    return PSA_SUCCESS;
}

/* ---- hashes ------------------------------------------------------------------------------ */

psa_status_t psa_hash_compute(psa_algorithm_t alg, const uint8_t *input, size_t input_length,
                              uint8_t *hash, size_t hash_size, size_t *hash_length)
{
    struct crypto_pack p = {.alg = alg};
    return call(CRYPTO_FN_HASH_COMPUTE, &p, input, input_length, 0, 0, 0, 0, hash, hash_size,
                hash_length);
}

psa_status_t psa_hash_setup(psa_hash_operation_t *operation, psa_algorithm_t alg)
{
    if (operation->handle)
        return PSA_ERROR_BAD_STATE;
    struct crypto_pack p = {.alg = alg};
    uint32_t h = 0;
    size_t n = 0;
    psa_status_t st = call(CRYPTO_FN_HASH_SETUP, &p, 0, 0, 0, 0, 0, 0, &h, sizeof(h), &n);
    if (st == PSA_SUCCESS)
        operation->handle = h;
    return st;
}

psa_status_t psa_hash_update(psa_hash_operation_t *operation, const uint8_t *input,
                             size_t input_length)
{
    struct crypto_pack p = {.handle = operation->handle};
    /* long inputs go in pieces that fit a message */
    while (input_length > 0) {
        size_t chunk = input_length > 4096 ? 4096 : input_length;
        psa_status_t st = call(CRYPTO_FN_HASH_UPDATE, &p, input, chunk, 0, 0, 0, 0, 0, 0, 0);
        if (st != PSA_SUCCESS) {
            psa_hash_abort(operation);
            return st;
        }
        input += chunk;
        input_length -= chunk;
    }
    return PSA_SUCCESS;
}

psa_status_t psa_hash_finish(psa_hash_operation_t *operation, uint8_t *hash, size_t hash_size,
                             size_t *hash_length)
{
    struct crypto_pack p = {.handle = operation->handle};
    psa_status_t st = call(CRYPTO_FN_HASH_FINISH, &p, 0, 0, 0, 0, 0, 0, hash, hash_size,
                           hash_length);
    operation->handle = 0; /* finished or failed, the SPE has freed it */
    return st;
}

psa_status_t psa_hash_abort(psa_hash_operation_t *operation)
{
    if (!operation->handle)
        return PSA_SUCCESS;
    struct crypto_pack p = {.handle = operation->handle};
    operation->handle = 0;
    return call(CRYPTO_FN_HASH_ABORT, &p, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

psa_status_t psa_hash_clone(const psa_hash_operation_t *source_operation,
                            psa_hash_operation_t *target_operation)
{
    if (target_operation->handle)
        return PSA_ERROR_BAD_STATE;
    struct crypto_pack p = {.handle = source_operation->handle};
    uint32_t h = 0;
    size_t n = 0;
    psa_status_t st = call(CRYPTO_FN_HASH_CLONE, &p, 0, 0, 0, 0, 0, 0, &h, sizeof(h), &n);
    if (st == PSA_SUCCESS)
        target_operation->handle = h;
    return st;
}

/* ---- key derivation (TLS 1.2 PRF, PSK-to-MS) ------------------------------------------------ */

psa_status_t psa_key_derivation_setup(psa_key_derivation_operation_t *operation,
                                      psa_algorithm_t alg)
{
    if (operation->handle)
        return PSA_ERROR_BAD_STATE;
    struct crypto_pack p = {.alg = alg};
    uint32_t h = 0;
    size_t n = 0;
    psa_status_t st = call(CRYPTO_FN_KDF_SETUP, &p, 0, 0, 0, 0, 0, 0, &h, sizeof(h), &n);
    if (st == PSA_SUCCESS)
        operation->handle = h;
    return st;
}

psa_status_t psa_key_derivation_set_capacity(psa_key_derivation_operation_t *operation,
                                             size_t capacity)
{
    struct crypto_pack p = {.handle = operation->handle, .capacity = capacity};
    return call(CRYPTO_FN_KDF_SET_CAPACITY, &p, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

psa_status_t psa_key_derivation_input_bytes(psa_key_derivation_operation_t *operation,
                                            psa_key_derivation_step_t step, const uint8_t *data,
                                            size_t data_length)
{
    struct crypto_pack p = {.handle = operation->handle, .step = step};
    /* an empty input still needs a vector to say so */
    static const uint8_t none[1];
    return call(CRYPTO_FN_KDF_INPUT_BYTES, &p, data_length ? data : none, data_length, 0, 0, 0,
                0, 0, 0, 0);
}

psa_status_t psa_key_derivation_input_key(psa_key_derivation_operation_t *operation,
                                          psa_key_derivation_step_t step, mbedtls_svc_key_id_t key)
{
    struct crypto_pack p = {.handle = operation->handle, .step = step, .key_id = key};
    return call(CRYPTO_FN_KDF_INPUT_KEY, &p, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

psa_status_t psa_key_derivation_output_bytes(psa_key_derivation_operation_t *operation,
                                             uint8_t *output, size_t output_length)
{
    struct crypto_pack p = {.handle = operation->handle};
    size_t n = 0;
    psa_status_t st =
        call(CRYPTO_FN_KDF_OUTPUT_BYTES, &p, 0, 0, 0, 0, 0, 0, output, output_length, &n);
    if (st == PSA_SUCCESS && n != output_length)
        return PSA_ERROR_COMMUNICATION_FAILURE;
    return st;
}

psa_status_t psa_key_derivation_abort(psa_key_derivation_operation_t *operation)
{
    if (!operation->handle)
        return PSA_SUCCESS;
    struct crypto_pack p = {.handle = operation->handle};
    operation->handle = 0;
    return call(CRYPTO_FN_KDF_ABORT, &p, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

/* ---- keys --------------------------------------------------------------------------------- */

static void pack_attributes(struct crypto_pack *p, const psa_key_attributes_t *a)
{
    p->key_type = psa_get_key_type(a);
    p->key_bits = (uint32_t)psa_get_key_bits(a);
    p->lifetime = psa_get_key_lifetime(a);
    p->usage = psa_get_key_usage_flags(a);
    p->key_alg = psa_get_key_algorithm(a);
    p->key_id = psa_get_key_id(a);
}

psa_status_t psa_import_key(const psa_key_attributes_t *attributes, const uint8_t *data,
                            size_t data_length, mbedtls_svc_key_id_t *key)
{
    struct crypto_pack p = {0};
    pack_attributes(&p, attributes);
    uint32_t id = 0;
    size_t n = 0;
    psa_status_t st =
        call(CRYPTO_FN_IMPORT_KEY, &p, data, data_length, 0, 0, 0, 0, &id, sizeof(id), &n);
    *key = st == PSA_SUCCESS ? id : 0;
    return st;
}

psa_status_t psa_destroy_key(mbedtls_svc_key_id_t key)
{
    struct crypto_pack p = {.key_id = key};
    return key == 0 ? PSA_SUCCESS : call(CRYPTO_FN_DESTROY_KEY, &p, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

psa_status_t psa_get_key_attributes(mbedtls_svc_key_id_t key, psa_key_attributes_t *attributes)
{
    struct crypto_pack p = {.key_id = key}, r = {0};
    size_t n = 0;
    psa_status_t st =
        call(CRYPTO_FN_GET_KEY_ATTRIBUTES, &p, 0, 0, 0, 0, 0, 0, &r, sizeof(r), &n);
    *attributes = psa_key_attributes_init();
    if (st != PSA_SUCCESS)
        return st;
    psa_set_key_id(attributes, key);
    psa_set_key_lifetime(attributes, r.lifetime);
    psa_set_key_type(attributes, (psa_key_type_t)r.key_type);
    psa_set_key_bits(attributes, r.key_bits);
    psa_set_key_usage_flags(attributes, r.usage);
    psa_set_key_algorithm(attributes, r.key_alg);
    return PSA_SUCCESS;
}

psa_status_t psa_export_key(mbedtls_svc_key_id_t key, uint8_t *data, size_t data_size,
                            size_t *data_length)
{
    struct crypto_pack p = {.key_id = key};
    return call(CRYPTO_FN_EXPORT_KEY, &p, 0, 0, 0, 0, 0, 0, data, data_size, data_length);
}

/* ---- single-part AEAD and MAC --------------------------------------------------------------- */

psa_status_t psa_aead_encrypt(mbedtls_svc_key_id_t key, psa_algorithm_t alg,
                              const uint8_t *nonce, size_t nonce_length,
                              const uint8_t *additional_data, size_t additional_data_length,
                              const uint8_t *plaintext, size_t plaintext_length,
                              uint8_t *ciphertext, size_t ciphertext_size,
                              size_t *ciphertext_length)
{
    struct crypto_pack p = {.key_id = key, .alg = alg};
    static const uint8_t none[1];
    return call(CRYPTO_FN_AEAD_ENCRYPT, &p, nonce, nonce_length,
                additional_data_length ? additional_data : none, additional_data_length,
                plaintext_length ? plaintext : none, plaintext_length, ciphertext,
                ciphertext_size, ciphertext_length);
}

psa_status_t psa_aead_decrypt(mbedtls_svc_key_id_t key, psa_algorithm_t alg,
                              const uint8_t *nonce, size_t nonce_length,
                              const uint8_t *additional_data, size_t additional_data_length,
                              const uint8_t *ciphertext, size_t ciphertext_length,
                              uint8_t *plaintext, size_t plaintext_size,
                              size_t *plaintext_length)
{
    struct crypto_pack p = {.key_id = key, .alg = alg};
    static const uint8_t none[1];
    return call(CRYPTO_FN_AEAD_DECRYPT, &p, nonce, nonce_length,
                additional_data_length ? additional_data : none, additional_data_length,
                ciphertext, ciphertext_length, plaintext, plaintext_size, plaintext_length);
}

psa_status_t psa_mac_compute(mbedtls_svc_key_id_t key, psa_algorithm_t alg,
                             const uint8_t *input, size_t input_length, uint8_t *mac,
                             size_t mac_size, size_t *mac_length)
{
    struct crypto_pack p = {.key_id = key, .alg = alg};
    return call(CRYPTO_FN_MAC_COMPUTE, &p, input, input_length, 0, 0, 0, 0, mac, mac_size,
                mac_length);
}
