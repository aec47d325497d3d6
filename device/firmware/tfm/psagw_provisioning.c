/*
 * psagw_provisioning.c: TF-M's provisioning from the device's factory record.
 *
 * TF-M provisions the PSA RoT secrets (HUK, IAK, boot seed, implementation ID, entropy seed)
 * into OTP on the first boot, while the lifecycle state in OTP is ASSEMBLY_AND_TEST or
 * PSA_ROT_PROVISIONING (secure_fw/spm/core/main.c). Its default implementation takes them from
 * values compiled into the image (TF-M's dummy provisioning, the same published keys for every
 * device). The secure image is linked with -Wl,--wrap=tfm_plat_provisioning_perform, so that
 * step takes them from this device's factory record instead (psagw_factory.h), written by the
 * factory step into the device's non-volatile memory: one image for every device, its secrets
 * per device. BL2's own step (the image signing keys' ROTPK) is TF-M's, unchanged.
 *
 * Lifecycle: the record says where the factory left the device. "secured" ends provisioning in
 * SECURED; 0x2000 leaves it in PSA_ROT_PROVISIONING (every boot then retries the last step and
 * stays there). Debug states (0x4000 NON_PSA_ROT_DEBUG, 0x5000 RECOVERABLE_PSA_ROT_DEBUG) are
 * a SECURED device whose debug is left open: TF-M's OTP has no such state, so the attestation
 * HAL's answer is wrapped too (tfm_attest_hal_get_security_lifecycle) to report it.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cmsis.h"
#include "psa/crypto.h"
#include "psagw_factory.h"
#include "psagw_secure.h"
#include "tfm_attest_hal.h"
#include "tfm_plat_otp.h"
#include "tfm_plat_provisioning.h"
#include "tfm_spm_log.h"

const struct psagw_factory_record *psagw_factory(void)
{
    const struct psagw_factory_record *r =
        (const struct psagw_factory_record *)(uintptr_t)PSAGW_FACTORY_ADDR;
    if (r->magic != PSAGW_FACTORY_MAGIC || r->version != PSAGW_FACTORY_VERSION ||
        r->size != sizeof(*r) ||
        r->crc32 != psagw_crc32(r, offsetof(struct psagw_factory_record, crc32)) ||
        r->device_id[0] == '\0' || memchr(r->device_id, '\0', sizeof(r->device_id)) == NULL)
        return NULL;
    return r;
}

static enum tfm_plat_err_t otp_put(enum tfm_otp_element_id_t id, const void *v, size_t n)
{
    enum tfm_plat_err_t err = tfm_plat_otp_write(id, n, (const uint8_t *)v);
    return err == TFM_PLAT_ERR_UNSUPPORTED ? TFM_PLAT_ERR_SUCCESS : err;
}

static enum tfm_plat_err_t set_lcs(uint32_t lcs)
{
    return tfm_plat_otp_write(PLAT_OTP_ID_LCS, sizeof(lcs), (const uint8_t *)&lcs);
}

static enum tfm_plat_err_t provision_psa_rot(const struct psagw_factory_record *r)
{
    /* the OTP string fields hold 32 bytes */
    static const char cert_ref[32] = "psagw-an521-qemu";
    static const char verification_url[32] = "";
    static const char profile[32] = "PSA_IOT_PROFILE_1";
    uint32_t iak_len = sizeof(r->iak), iak_type = PSA_ALG_HMAC(PSA_ALG_SHA_256);
    enum tfm_plat_err_t err = otp_put(PLAT_OTP_ID_IAK, r->iak, sizeof(r->iak));
    if (err == TFM_PLAT_ERR_SUCCESS)
        err = otp_put(PLAT_OTP_ID_IAK_LEN, &iak_len, sizeof(iak_len));
    if (err == TFM_PLAT_ERR_SUCCESS)
        err = otp_put(PLAT_OTP_ID_IAK_TYPE, &iak_type, sizeof(iak_type));
    if (err == TFM_PLAT_ERR_SUCCESS)
        err = otp_put(PLAT_OTP_ID_BOOT_SEED, r->boot_seed, sizeof(r->boot_seed));
    if (err == TFM_PLAT_ERR_SUCCESS)
        err = otp_put(PLAT_OTP_ID_IMPLEMENTATION_ID, r->implementation_id,
                      sizeof(r->implementation_id));
    if (err == TFM_PLAT_ERR_SUCCESS)
        err = otp_put(PLAT_OTP_ID_CERT_REF, cert_ref, sizeof(cert_ref));
    if (err == TFM_PLAT_ERR_SUCCESS)
        err = otp_put(PLAT_OTP_ID_VERIFICATION_SERVICE_URL, verification_url,
                      sizeof(verification_url));
    if (err == TFM_PLAT_ERR_SUCCESS)
        err = otp_put(PLAT_OTP_ID_PROFILE_DEFINITION, profile, sizeof(profile));
    if (err == TFM_PLAT_ERR_SUCCESS)
        err = otp_put(PLAT_OTP_ID_ENTROPY_SEED, r->entropy_seed, sizeof(r->entropy_seed));
    return err;
}

enum tfm_plat_err_t __wrap_tfm_plat_provisioning_perform(void)
{
    const struct psagw_factory_record *r = psagw_factory();
    uint32_t lcs = 0;
    enum tfm_plat_err_t err;

    if (!r) {
        SPMLOG_ERRMSG("[psagw] no valid factory record: run the factory step (psadev-fw "
                      "provision); the device stays unprovisioned\r\n");
        return TFM_PLAT_ERR_INVALID_INPUT;
    }
    if (tfm_plat_otp_read(PLAT_OTP_ID_LCS, sizeof(lcs), (uint8_t *)&lcs) != TFM_PLAT_ERR_SUCCESS)
        return TFM_PLAT_ERR_SYSTEM_ERR;
    if (lcs == PLAT_OTP_LCS_ASSEMBLY_AND_TEST) {
        err = tfm_plat_otp_secure_provisioning_start();
        if (err == TFM_PLAT_ERR_SUCCESS)
            err = otp_put(PLAT_OTP_ID_HUK, r->huk, sizeof(r->huk));
        if (err == TFM_PLAT_ERR_SUCCESS)
            err = set_lcs(PLAT_OTP_LCS_PSA_ROT_PROVISIONING);
        if (err == TFM_PLAT_ERR_SUCCESS)
            err = tfm_plat_otp_secure_provisioning_finish();
        if (err != TFM_PLAT_ERR_SUCCESS)
            return err;
        lcs = PLAT_OTP_LCS_PSA_ROT_PROVISIONING;
    }
    if (lcs == PLAT_OTP_LCS_PSA_ROT_PROVISIONING) {
        err = tfm_plat_otp_secure_provisioning_start();
        if (err == TFM_PLAT_ERR_SUCCESS)
            err = provision_psa_rot(r);
        /* a record saying "provisioning unfinished" keeps the device there */
        if (err == TFM_PLAT_ERR_SUCCESS && r->lifecycle != TFM_SLC_PSA_ROT_PROVISIONING)
            err = set_lcs(PLAT_OTP_LCS_SECURED);
        if (err == TFM_PLAT_ERR_SUCCESS)
            err = tfm_plat_otp_secure_provisioning_finish();
        if (err != TFM_PLAT_ERR_SUCCESS)
            return err;
    }
    return TFM_PLAT_ERR_SUCCESS;
}

/* TF-M stops the system (and resets it) on any fault it cannot recover from; the registers
 * that say why are kept in the NV memory first, for the sensor partition to report after the
 * reset (the board has no secure log TF-M would write them to in a Release build). */
void __real_tfm_core_panic(void);

void __wrap_tfm_core_panic(void)
{
    volatile struct psagw_fault_record *f =
        (volatile struct psagw_fault_record *)(uintptr_t)PSAGW_FAULT_ADDR;
    uint32_t count = f->magic == PSAGW_FAULT_MAGIC ? f->count : 0;
    f->cfsr = SCB->CFSR;
    f->hfsr = SCB->HFSR;
    f->sfsr = SAU->SFSR;
    f->sfar = SAU->SFAR;
    f->bfar = SCB->BFAR;
    f->count = count + 1;
    f->pending = 1;
    f->magic = PSAGW_FAULT_MAGIC;
    __real_tfm_core_panic();
}

enum tfm_security_lifecycle_t __real_tfm_attest_hal_get_security_lifecycle(void);

enum tfm_security_lifecycle_t __wrap_tfm_attest_hal_get_security_lifecycle(void)
{
    enum tfm_security_lifecycle_t lc = __real_tfm_attest_hal_get_security_lifecycle();
    const struct psagw_factory_record *r = psagw_factory();
    if (lc == TFM_SLC_SECURED && r &&
        (r->lifecycle == TFM_SLC_NON_PSA_ROT_DEBUG ||
         r->lifecycle == TFM_SLC_RECOVERABLE_PSA_ROT_DEBUG))
        return (enum tfm_security_lifecycle_t)r->lifecycle;
    return lc;
}
