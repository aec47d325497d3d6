/*
 * psagw_builtin_keys.c: the TLS-PSK and the group key as TF-M platform builtin keys.
 *
 * TF-M's builtin key loader (secure_fw/partitions/crypto/psa_driver_api/
 * tfm_builtin_key_loader.c) loads at boot every key the platform's descriptor table lists and
 * grants each caller the usage its policy table gives it. The secure image is linked with
 * -Wl,--wrap for both table getters: the tables below are TF-M's own entries (HUK, IAK), then
 * the project's two keys, read from the factory record (psagw_factory.h, psagw_key_ids.h).
 * The key material stays in the crypto partition; no caller can export it.
 * TFM_BUILTIN_MAX_KEYS (psagw_tfm_config.h) makes room for them in the loader's slots.
 */
#include <stddef.h>
#include <string.h>

#include "psa/crypto.h"
#include "psa_manifest/pid.h"
#include "psagw_secure.h"
#include "tfm_builtin_key_loader.h"
#include "tfm_plat_crypto_keys.h"

#define N_OURS 2
/* After TF-M's HUK (0) and IAK (1). Not 2: that is TFM_BUILTIN_KEY_SLOT_MAX, which the loader's
 * slot lookup takes for "no such key" (builtin_key_get_slot). */
#define SLOT_PSK 3
#define SLOT_GROUP 4

size_t __real_tfm_plat_builtin_key_get_desc_table_ptr(
    const tfm_plat_builtin_key_descriptor_t *desc_ptr[]);
size_t __real_tfm_plat_builtin_key_get_policy_table_ptr(
    const tfm_plat_builtin_key_policy_t *desc_ptr[]);

static enum tfm_plat_err_t load(const uint8_t *key, size_t len, uint8_t *buf, size_t buf_len,
                                size_t *key_len, psa_key_bits_t *key_bits)
{
    if (buf_len < len)
        return TFM_PLAT_ERR_SYSTEM_ERR;
    memcpy(buf, key, len);
    *key_len = len;
    *key_bits = (psa_key_bits_t)PSA_BYTES_TO_BITS(len);
    return TFM_PLAT_ERR_SUCCESS;
}

static enum tfm_plat_err_t load_psk(uint8_t *buf, size_t buf_len, size_t *key_len,
                                    psa_key_bits_t *key_bits, psa_algorithm_t *alg,
                                    psa_key_type_t *type)
{
    const struct psagw_factory_record *r = psagw_factory();
    if (!r)
        return TFM_PLAT_ERR_SYSTEM_ERR;
    *alg = PSA_ALG_TLS12_PSK_TO_MS(PSA_ALG_SHA_256);
    *type = PSA_KEY_TYPE_DERIVE;
    return load(r->psk, sizeof(r->psk), buf, buf_len, key_len, key_bits);
}

static enum tfm_plat_err_t load_group(uint8_t *buf, size_t buf_len, size_t *key_len,
                                      psa_key_bits_t *key_bits, psa_algorithm_t *alg,
                                      psa_key_type_t *type)
{
    const struct psagw_factory_record *r = psagw_factory();
    if (!r)
        return TFM_PLAT_ERR_SYSTEM_ERR;
    *alg = PSA_ALG_HMAC(PSA_ALG_SHA_256);
    *type = PSA_KEY_TYPE_HMAC;
    return load(r->group_key, sizeof(r->group_key), buf, buf_len, key_len, key_bits);
}

static const tfm_plat_builtin_key_per_user_policy_t psk_users[] = {
    {.user = PSAGW_NS_CLIENT_ID, .usage = PSA_KEY_USAGE_DERIVE},
};
static const tfm_plat_builtin_key_per_user_policy_t group_users[] = {
    {.user = TFM_SP_PSAGW_SENSOR, .usage = PSA_KEY_USAGE_SIGN_MESSAGE},
};

static tfm_plat_builtin_key_descriptor_t descs[8];
static tfm_plat_builtin_key_policy_t policies[8];

size_t __wrap_tfm_plat_builtin_key_get_desc_table_ptr(
    const tfm_plat_builtin_key_descriptor_t *desc_ptr[])
{
    const tfm_plat_builtin_key_descriptor_t *tfm;
    size_t n = __real_tfm_plat_builtin_key_get_desc_table_ptr(&tfm);
    if (n + N_OURS > sizeof(descs) / sizeof(descs[0]) || n > TFM_BUILTIN_KEY_SLOT_MAX) {
        *desc_ptr = tfm;
        return n; /* TF-M's keys only: the PSK and group key calls will fail */
    }
    memcpy(descs, tfm, n * sizeof(*tfm));
    descs[n] = (tfm_plat_builtin_key_descriptor_t){
        .key_id = PSAGW_KEY_ID_TLS_PSK,
        .slot_number = (psa_drv_slot_number_t)SLOT_PSK,
        .lifetime = TFM_BUILTIN_KEY_LOADER_LIFETIME,
        .loader_key_func = load_psk};
    descs[n + 1] = (tfm_plat_builtin_key_descriptor_t){
        .key_id = PSAGW_KEY_ID_GROUP,
        .slot_number = (psa_drv_slot_number_t)SLOT_GROUP,
        .lifetime = TFM_BUILTIN_KEY_LOADER_LIFETIME,
        .loader_key_func = load_group};
    *desc_ptr = descs;
    return n + N_OURS;
}

size_t __wrap_tfm_plat_builtin_key_get_policy_table_ptr(
    const tfm_plat_builtin_key_policy_t *desc_ptr[])
{
    const tfm_plat_builtin_key_policy_t *tfm;
    size_t n = __real_tfm_plat_builtin_key_get_policy_table_ptr(&tfm);
    if (n + N_OURS > sizeof(policies) / sizeof(policies[0])) {
        *desc_ptr = tfm;
        return n;
    }
    memcpy(policies, tfm, n * sizeof(*tfm));
    policies[n] = (tfm_plat_builtin_key_policy_t){
        .key_id = PSAGW_KEY_ID_TLS_PSK, .per_user_policy = 1, .policy_ptr = psk_users};
    policies[n + 1] = (tfm_plat_builtin_key_policy_t){
        .key_id = PSAGW_KEY_ID_GROUP, .per_user_policy = 1, .policy_ptr = group_users};
    *desc_ptr = policies;
    return n + N_OURS;
}
