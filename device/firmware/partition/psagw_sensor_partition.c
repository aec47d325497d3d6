/*
 * psagw_sensor_partition.c: the sensor secure partition as a TF-M partition (SFN model), the
 * firmware's counterpart of the emulator's device/spe/sensor_partition.c, with the same record
 * format (common/record, docs/wire.md section 4) and the same rules:
 *
 * - a sensor seals each reading for its topic inside the secure side (COSE_Encrypt0, or
 *   COSE_Mac0 when integrity only is asked): the non-secure side and the gateway carry bytes
 *   they cannot read or alter unnoticed;
 * - a monitor opens records and refuses replays (seq not above the last one seen from that
 *   device, kept in ITS);
 * - the record key of a device is HMAC-SHA256(group key, "psagw app key" || device id); the
 *   group key is a TF-M builtin key only this partition may use (psagw_builtin_keys.c), the
 *   derived key a volatile key of this partition for one operation;
 * - seq never repeats, across reboots too: blocks of SEQ_BLOCK numbers are reserved in ITS
 *   (which lives in the device's non-volatile memory) before any of them is used, so a crash
 *   skips the rest of a block instead of reusing one (seq is the CCM nonce).
 *
 * QEMU has no sensor: readings are emulated, a slow random walk from a per-device start
 * (derived from the device id), within plausible indoor bounds.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "psa/crypto.h"
#include "psa/internal_trusted_storage.h"
#include "psa/service.h"
#include "psa_manifest/psagw_sensor.h"
#include "psagw/record.h"
#include "psagw_secure.h"
#include "psagw_sensor_api.h"

#define SEQ_BLOCK 64
#define UID_SEQ 0x1001u
#define UID_REPLAY_BASE 0x20000000u
#define REPLAY_SLOTS 64u /* devices a monitor tracks (one ITS object each) */

static struct {
    char id[PSAGW_DEVICE_ID_MAX + 1];
    uint32_t role;
    uint64_t next_seq, reserved_until;
    int32_t temp_centi, rh_centi;
    bool ready;
} sp;

/* ---- keys ------------------------------------------------------------------------------- */

static int derive(const char *kid, uint8_t out[32])
{
    uint8_t msg[sizeof(RECORD_KDF_LABEL) - 1 + RECORD_ID_MAX];
    size_t l = sizeof(RECORD_KDF_LABEL) - 1, k = strlen(kid), n = 0;
    if (k > RECORD_ID_MAX)
        return -1;
    memcpy(msg, RECORD_KDF_LABEL, l);
    memcpy(msg + l, kid, k);
    return psa_mac_compute(PSAGW_KEY_ID_GROUP, PSA_ALG_HMAC(PSA_ALG_SHA_256), msg, l + k, out,
                           32, &n) == PSA_SUCCESS &&
                   n == 32
               ? 0
               : -1;
}

static int record_key(const char *kid, bool aes, psa_key_id_t *key)
{
    uint8_t raw[32];
    if (derive(kid, raw) != 0)
        return -1;
    psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
    if (aes) {
        psa_set_key_type(&a, PSA_KEY_TYPE_AES);
        psa_set_key_usage_flags(&a, PSA_KEY_USAGE_ENCRYPT | PSA_KEY_USAGE_DECRYPT);
        psa_set_key_algorithm(&a, PSA_ALG_AEAD_WITH_SHORTENED_TAG(PSA_ALG_CCM, RECORD_TAG_SIZE));
    } else {
        psa_set_key_type(&a, PSA_KEY_TYPE_HMAC);
        psa_set_key_usage_flags(&a, PSA_KEY_USAGE_SIGN_MESSAGE);
        psa_set_key_algorithm(&a, PSA_ALG_HMAC(PSA_ALG_SHA_256));
    }
    psa_status_t st = psa_import_key(&a, raw, aes ? 16 : 32, key);
    memset(raw, 0, sizeof(raw));
    return st == PSA_SUCCESS ? 0 : -1;
}

static int ccm(void *ctx, bool enc, const char *kid, const uint8_t nonce[RECORD_IV_SIZE],
               const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
               size_t cap, size_t *out_len)
{
    (void)ctx;
    psa_key_id_t k;
    if (record_key(kid, true, &k) != 0)
        return -1;
    psa_algorithm_t alg = PSA_ALG_AEAD_WITH_SHORTENED_TAG(PSA_ALG_CCM, RECORD_TAG_SIZE);
    psa_status_t st = enc ? psa_aead_encrypt(k, alg, nonce, RECORD_IV_SIZE, aad, aad_len, in, len,
                                             out, cap, out_len)
                          : psa_aead_decrypt(k, alg, nonce, RECORD_IV_SIZE, aad, aad_len, in, len,
                                             out, cap, out_len);
    psa_destroy_key(k);
    return st == PSA_SUCCESS ? 0 : -1;
}

static int hmac(void *ctx, const char *kid, const uint8_t *in, size_t len, uint8_t out[32])
{
    (void)ctx;
    psa_key_id_t k;
    size_t n = 0;
    if (record_key(kid, false, &k) != 0)
        return -1;
    psa_status_t st = psa_mac_compute(k, PSA_ALG_HMAC(PSA_ALG_SHA_256), in, len, out, 32, &n);
    psa_destroy_key(k);
    return st == PSA_SUCCESS && n == 32 ? 0 : -1;
}

static const struct record_crypto crypto = {ccm, hmac, NULL};

/* ---- sensor ----------------------------------------------------------------------------- */

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int reserve_seq(void)
{
    uint64_t until = sp.reserved_until + SEQ_BLOCK;
    if (psa_its_set(UID_SEQ, sizeof(until), &until, PSA_STORAGE_FLAG_NONE) != PSA_SUCCESS)
        return -1;
    sp.reserved_until = until;
    return 0;
}

psa_status_t psagw_sensor_init(void)
{
    const struct psagw_factory_record *f = psagw_factory();
    if (!f)
        return PSA_SUCCESS; /* no service without a factory record: every call says so */
    memcpy(sp.id, f->device_id, sizeof(sp.id) - 1);
    sp.id[sizeof(sp.id) - 1] = '\0';
    sp.role = f->role;
    uint64_t until = 0;
    size_t n = 0;
    if (psa_its_get(UID_SEQ, 0, sizeof(until), &until, &n) != PSA_SUCCESS || n != sizeof(until))
        until = 0;
    /* whatever was reserved before this boot may have been used: start after it */
    sp.next_seq = until;
    sp.reserved_until = until;
    uint32_t h = fnv1a(sp.id);
    sp.temp_centi = 1900 + (int32_t)(h % 500);        /* 19.00 .. 23.99 C, per device */
    sp.rh_centi = 3500 + (int32_t)((h >> 16) % 1500); /* 35.00 .. 49.99 %, per device */
    sp.ready = true;
    return PSA_SUCCESS;
}

static void read_sensor(struct record *r)
{
    uint8_t d[2] = {10, 20};
    (void)psa_generate_random(d, sizeof(d));
    sp.temp_centi += (int32_t)(d[0] % 21) - 10;
    sp.rh_centi += (int32_t)(d[1] % 41) - 20;
    if (sp.temp_centi < 1500 || sp.temp_centi > 3000)
        sp.temp_centi = 2150;
    if (sp.rh_centi < 2000 || sp.rh_centi > 7000)
        sp.rh_centi = 4000;
    r->temp_centi = sp.temp_centi;
    r->rh_centi = (uint32_t)sp.rh_centi;
}

/* ---- monitor: replay protection ------------------------------------------------------------ */

struct replay_entry {
    char device[RECORD_ID_MAX + 1];
    uint64_t last_seq;
};

static psa_storage_uid_t replay_slot(const char *device, struct replay_entry *e, bool *found)
{
    uint32_t h = fnv1a(device);
    for (uint32_t i = 0; i < REPLAY_SLOTS; i++) {
        psa_storage_uid_t uid = UID_REPLAY_BASE + (h + i) % REPLAY_SLOTS;
        size_t n = 0;
        if (psa_its_get(uid, 0, sizeof(*e), e, &n) != PSA_SUCCESS || n != sizeof(*e)) {
            *found = false;
            memset(e, 0, sizeof(*e));
            return uid;
        }
        if (strncmp(e->device, device, sizeof(e->device)) == 0) {
            *found = true;
            return uid;
        }
    }
    *found = false;
    return 0;
}

/* ---- the service -------------------------------------------------------------------------- */

/* Reads input vector i (whole) into buf; its length, or -1 when it does not fit. */
static int read_in(const psa_msg_t *msg, int i, void *buf, size_t cap)
{
    size_t n = msg->in_size[i];
    if (n > cap)
        return -1;
    return n && psa_read(msg->handle, (uint32_t)i, buf, n) != n ? -1 : (int)n;
}

static psa_status_t do_read(const psa_msg_t *msg, const char *topic)
{
    static uint8_t out[RECORD_MAX_SIZE];
    uint8_t mode = 0;
    uint64_t now = 0;
    if (sp.role != PSAGW_ROLE_SENSOR)
        return PSA_ERROR_NOT_PERMITTED;
    if (read_in(msg, 1, &mode, 1) < 0 ||
        (msg->in_size[2] && read_in(msg, 2, &now, sizeof(now)) != (int)sizeof(now)))
        return PSA_ERROR_INVALID_ARGUMENT;
    if (sp.next_seq >= sp.reserved_until && reserve_seq() != 0)
        return PSA_ERROR_STORAGE_FAILURE;
    struct record r;
    memset(&r, 0, sizeof(r));
    memcpy(r.device, sp.id, sizeof(r.device));
    r.seq = sp.next_seq++;
    r.time_ms = now;
    read_sensor(&r);
    size_t len = 0;
    enum record_result res = record_seal(&r, topic, mode == 1, &crypto, out, sizeof(out), &len);
    if (res != RECORD_OK)
        return res == RECORD_ERR_BUFFER ? PSA_ERROR_BUFFER_TOO_SMALL : PSA_ERROR_GENERIC_ERROR;
    if (msg->out_size[0] < len)
        return PSA_ERROR_BUFFER_TOO_SMALL;
    psa_write(msg->handle, 0, out, len);
    return PSA_SUCCESS;
}

static psa_status_t do_open(const psa_msg_t *msg, const char *topic)
{
    static uint8_t in[RECORD_MAX_SIZE];
    if (sp.role != PSAGW_ROLE_MONITOR)
        return PSA_ERROR_NOT_PERMITTED;
    int n = read_in(msg, 1, in, sizeof(in));
    if (n <= 0 || msg->out_size[0] < sizeof(struct sensor_reading))
        return PSA_ERROR_INVALID_ARGUMENT;
    struct record r;
    enum record_result res = record_open(in, (size_t)n, topic, &crypto, &r);
    if (res == RECORD_ERR_AUTH || res == RECORD_ERR_KID)
        return PSA_ERROR_INVALID_SIGNATURE;
    if (res != RECORD_OK)
        return PSA_ERROR_INVALID_ARGUMENT;
    struct replay_entry e;
    bool found;
    psa_storage_uid_t uid = replay_slot(r.device, &e, &found);
    if (!uid)
        return PSA_ERROR_INSUFFICIENT_STORAGE;
    struct sensor_reading rd;
    memset(&rd, 0, sizeof(rd));
    memcpy(rd.device, r.device, sizeof(rd.device));
    rd.seq = r.seq;
    rd.time_ms = r.time_ms;
    rd.temp_centi = r.temp_centi;
    rd.rh_centi = r.rh_centi;
    rd.last_seq = e.last_seq;
    psa_write(msg->handle, 0, &rd, sizeof(rd));
    if (found && r.seq <= e.last_seq)
        return PSA_ERROR_ALREADY_EXISTS; /* a replay: the reading is shown, not accepted */
    memcpy(e.device, r.device, sizeof(e.device));
    e.last_seq = r.seq;
    if (psa_its_set(uid, sizeof(e), &e, PSA_STORAGE_FLAG_NONE) != PSA_SUCCESS)
        return PSA_ERROR_STORAGE_FAILURE;
    return PSA_SUCCESS;
}

psa_status_t psagw_sensor_service_sfn(const psa_msg_t *msg)
{
    if (!sp.ready)
        return PSA_ERROR_BAD_STATE; /* not provisioned */
    if (msg->type == SENSOR_FN_INFO) {
        struct psagw_device_info info;
        memset(&info, 0, sizeof(info));
        memcpy(info.id, sp.id, sizeof(info.id));
        info.role = sp.role;
        volatile struct psagw_fault_record *f =
            (volatile struct psagw_fault_record *)(uintptr_t)PSAGW_FAULT_ADDR;
        if (f->magic == PSAGW_FAULT_MAGIC) {
            info.faults = f->count;
            info.fault_pending = f->pending;
            info.cfsr = f->cfsr;
            info.hfsr = f->hfsr;
            info.sfsr = f->sfsr;
            info.sfar = f->sfar;
            f->pending = 0;
        }
        if (msg->out_size[0] < sizeof(info))
            return PSA_ERROR_BUFFER_TOO_SMALL;
        psa_write(msg->handle, 0, &info, sizeof(info));
        return PSA_SUCCESS;
    }
    char topic[256];
    int n = read_in(msg, 0, topic, sizeof(topic) - 1);
    if (n <= 0)
        return PSA_ERROR_INVALID_ARGUMENT;
    topic[n] = '\0';
    if (strlen(topic) != (size_t)n)
        return PSA_ERROR_INVALID_ARGUMENT;
    if (msg->type == SENSOR_FN_READ)
        return do_read(msg, topic);
    if (msg->type == SENSOR_FN_OPEN)
        return do_open(msg, topic);
    return PSA_ERROR_NOT_SUPPORTED;
}
