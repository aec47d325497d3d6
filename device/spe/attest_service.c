/*
 * attest_service.c: the initial attestation service (psa_initial_attest_get_token and
 * _get_token_size, docs/design/token.md section 1) on the shared token library.
 *
 * Claims as TF-M's attest_core.c gathers them: the caller's challenge; the boot seed drawn at
 * this boot; the instance ID derived from the IAK at provisioning; the implementation ID of
 * this "platform"; the caller's client id (-1: the NSPE, taken from the channel, never from
 * the request); the lifecycle from the device's provisioned state; the software components:
 * SHA-256 measurements of the SPE's and the NSPE's actual executables, taken at boot the way
 * a bootloader measures images (a modified NSPE binary then no longer matches the reference
 * values the gateway holds). The token is MACed with the IAK inside PSA Crypto.
 */
#include <string.h>

#include "psagw/iat.h"
#include "spe.h"

static struct {
    bool ready;
    uint8_t boot_seed[32];
    struct spe_device_info info;
    uint8_t meas_spe[32], meas_nspe[32];
    enum iat_profile profile;
} att;

void attest_service_boot(const struct spe_device_info *info, const uint8_t meas_spe[32],
                         const uint8_t meas_nspe[32], enum iat_profile profile)
{
    att.info = *info;
    memcpy(att.meas_spe, meas_spe, 32);
    memcpy(att.meas_nspe, meas_nspe, 32);
    att.profile = profile;
    att.ready = psa_generate_random(att.boot_seed, sizeof(att.boot_seed)) == PSA_SUCCESS;
}

static psa_status_t make_token(int32_t client_id, const uint8_t *challenge, size_t challenge_len,
                               uint8_t *token, size_t cap, size_t *len)
{
    if (challenge_len != 32 && challenge_len != 48 && challenge_len != 64)
        return PSA_ERROR_INVALID_ARGUMENT;
    if (!att.ready)
        return PSA_ERROR_BAD_STATE;
    static const uint8_t signer[32] = SPE_IMAGE_SIGNER_ID;
    struct iat_claims c;
    memset(&c, 0, sizeof(c));
    c.nonce = (struct iat_bytes){challenge, challenge_len};
    c.boot_seed = (struct iat_bytes){att.boot_seed, sizeof(att.boot_seed)};
    c.instance_id = (struct iat_bytes){att.info.instance_id, IAT_INSTANCE_ID_SIZE};
    c.implementation_id = (struct iat_bytes){att.info.implementation_id, 32};
    c.client_id = client_id;
    c.lifecycle = att.info.lifecycle;
    c.sw_count = 2;
    static const char *const types[2] = {"SPE", "NSPE"};
    const uint8_t *meas[2] = {att.meas_spe, att.meas_nspe};
    for (int i = 0; i < 2; i++) {
        struct iat_sw_component *sw = &c.sw[i];
        sw->type = (struct iat_bytes){(const uint8_t *)types[i], strlen(types[i])};
        sw->value = (struct iat_bytes){meas[i], 32};
        sw->version = (struct iat_bytes){(const uint8_t *)PSADEV_VERSION, strlen(PSADEV_VERSION)};
        sw->signer_id = (struct iat_bytes){signer, sizeof(signer)};
        sw->description = (struct iat_bytes){(const uint8_t *)"sha-256", 7};
        sw->present = 1u << IAT_SW_TYPE | 1u << IAT_SW_VALUE | 1u << IAT_SW_VERSION |
                      1u << IAT_SW_SIGNER_ID | 1u << IAT_SW_DESCRIPTION;
    }
    const char *pname = att.profile == IAT_PROFILE_PSA2 ? IAT_PROFILE_STR_PSA2_2023
                                                        : IAT_PROFILE_STR_LEGACY;
    c.profile_name = (struct iat_bytes){(const uint8_t *)pname, strlen(pname)};
    c.present = 1u << IAT_CLAIM_NONCE | 1u << IAT_CLAIM_BOOT_SEED | 1u << IAT_CLAIM_INSTANCE_ID |
                1u << IAT_CLAIM_IMPLEMENTATION_ID | 1u << IAT_CLAIM_CLIENT_ID |
                1u << IAT_CLAIM_LIFECYCLE | 1u << IAT_CLAIM_SW_COMPONENTS |
                1u << IAT_CLAIM_PROFILE;
    struct iat_key key = {.id = SPE_KEY_IAK};
    enum iat_result r = iat_encode(&c, att.profile, IAT_ALG_HMAC256, &key, NULL, 0, NULL, 0,
                                   token, cap, len);
    if (r == IAT_ERR_BUFFER)
        return PSA_ERROR_BUFFER_TOO_SMALL;
    return r == IAT_OK ? PSA_SUCCESS : PSA_ERROR_GENERIC_ERROR;
}

int32_t attest_service(int32_t client_id, int32_t type, const struct ipc_invec *in, size_t n_in,
                       struct ipc_outvec *out, size_t n_out)
{
    if (type == ATTEST_FN_GET_TOKEN) {
        if (n_in < 1 || n_out < 1)
            return PSA_ERROR_INVALID_ARGUMENT;
        size_t len = 0;
        psa_status_t st = make_token(client_id, in[0].base, in[0].len, out[0].base, out[0].len,
                                     &len);
        out[0].len = st == PSA_SUCCESS ? len : 0;
        return st;
    }
    if (type == ATTEST_FN_GET_TOKEN_SIZE) {
        uint32_t challenge_size;
        if (n_in < 1 || in[0].len != sizeof(challenge_size) || n_out < 1 ||
            out[0].len < sizeof(uint32_t))
            return PSA_ERROR_INVALID_ARGUMENT;
        memcpy(&challenge_size, in[0].base, sizeof(challenge_size));
        static const uint8_t zero[64];
        size_t len = 0;
        psa_status_t st = make_token(client_id, zero, challenge_size, NULL, 0, &len);
        if (st != PSA_ERROR_BUFFER_TOO_SMALL && st != PSA_SUCCESS)
            return st;
        uint32_t size = (uint32_t)len;
        memcpy(out[0].base, &size, sizeof(size));
        out[0].len = sizeof(size);
        return PSA_SUCCESS;
    }
    return PSA_ERROR_NOT_SUPPORTED;
}
