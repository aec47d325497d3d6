/*
 * sensor_partition.c: the sensor secure partition (docs/design/wire.md section 4).
 *
 * On a sensor it reads the (emulated) temperature/humidity sensor and returns each reading
 * already sealed for its topic (COSE_Encrypt0, AES-CCM-16-64-128, or COSE_Mac0 when
 * integrity-only is asked), so the reading is protected from inside the secure side to the
 * monitor's secure side; the NSPE and the gateway carry bytes they cannot alter unnoticed.
 * On a monitor it opens records and refuses replays (seq not above the last one seen from
 * that device, remembered in ITS across restarts).
 *
 * The record key of a device is HMAC-SHA256(group key, "psagw app key" || device id): the
 * group key never leaves PSA Crypto; the derived key is imported as a volatile key owned by
 * this partition for the one operation and destroyed. seq never repeats, across reboots too:
 * blocks of SEQ_BLOCK numbers are reserved in ITS before any of them is used, so a crash
 * skips the rest of a block instead of reusing it.
 */
#include <stdio.h>
#include <string.h>

#include "mbedtls/platform_util.h"
#include "psa/internal_trusted_storage.h"
#include "psagw/record.h"
#include "../platform/platform.h"
#include "spe.h"

#define SEQ_BLOCK 64
#define SPE_UID_SEQ 0x1001u
#define SPE_UID_REPLAY_BASE 0x20000000u
#define REPLAY_SLOTS 4096u

static struct {
    struct spe_device_info info;
#ifdef PSADEV_EMULATOR
    FILE *readings; /* lines "temperature_c humidity_pct", replayed in a loop; NULL: emulate */
#endif
    uint64_t next_seq, reserved_until;
    int32_t temp_centi;
    int32_t rh_centi;
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
    return psa_mac_compute(mbedtls_svc_key_id_make(SPE_OWNER_SENSOR, SPE_KEY_GROUP),
                           PSA_ALG_HMAC(PSA_ALG_SHA_256), msg, l + k, out, 32, &n) ==
                       PSA_SUCCESS &&
                   n == 32
               ? 0
               : -1;
}

/* Imports the derived key as a volatile key of this partition. */
static int record_key(const char *kid, bool aes, mbedtls_svc_key_id_t *key)
{
    uint8_t raw[32];
    if (derive(kid, raw) != 0)
        return -1;
    psa_key_attributes_t a = psa_key_attributes_init();
    a.MBEDTLS_PRIVATE(id) = mbedtls_svc_key_id_make(SPE_OWNER_SENSOR, 0);
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
    mbedtls_platform_zeroize(raw, sizeof(raw));
    return st == PSA_SUCCESS ? 0 : -1;
}

static int ccm(void *ctx, bool enc, const char *kid, const uint8_t nonce[RECORD_IV_SIZE],
               const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
               size_t cap, size_t *out_len)
{
    (void)ctx;
    mbedtls_svc_key_id_t k;
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
    mbedtls_svc_key_id_t k;
    size_t n = 0;
    if (record_key(kid, false, &k) != 0)
        return -1;
    psa_status_t st = psa_mac_compute(k, PSA_ALG_HMAC(PSA_ALG_SHA_256), in, len, out, 32, &n);
    psa_destroy_key(k);
    return st == PSA_SUCCESS && n == 32 ? 0 : -1;
}

static const struct record_crypto crypto = {ccm, hmac, NULL};

/* ---- sensor ----------------------------------------------------------------------------- */

static int reserve_seq(void)
{
    uint64_t until = sp.reserved_until + SEQ_BLOCK;
    if (psa_its_set(SPE_UID_SEQ, sizeof(until), &until, PSA_STORAGE_FLAG_NONE) != PSA_SUCCESS)
        return -1;
    sp.reserved_until = until;
    return 0;
}

void sensor_partition_boot(const struct spe_device_info *info, const char *readings_file)
{
    sp.info = *info;
#ifdef PSADEV_EMULATOR
    /* the emulator's stand-in for a sensor peripheral only the SPE can reach */
    sp.readings = readings_file ? fopen(readings_file, "r") : NULL;
    if (readings_file && !sp.readings)
        fprintf(stderr, "psadev-spe: cannot read %s; emulating the sensor instead\n",
                readings_file);
#else
    (void)readings_file;
#endif
    uint64_t until = 0;
    size_t n = 0;
    if (psa_its_get(SPE_UID_SEQ, 0, sizeof(until), &until, &n) != PSA_SUCCESS || n != sizeof(until))
        until = 0;
    /* whatever was reserved before this boot may have been used: start after it */
    sp.next_seq = until;
    sp.reserved_until = until;
    uint8_t r[4];
    psa_generate_random(r, sizeof(r));
    sp.temp_centi = 2000 + r[0] % 400;  /* 20.00 .. 23.99 C */
    sp.rh_centi = 3500 + (r[1] << 8 | r[2]) % 1000; /* 35.00 .. 44.99 % */
    sp.ready = true;
}

#ifdef PSADEV_EMULATOR
/* The next line of the readings file, from the top again at its end; 0 if one was read. */
static int read_file_line(struct record *r)
{
    char line[128];
    for (int pass = 0; pass < 2; pass++) {
        while (fgets(line, sizeof(line), sp.readings)) {
            double t, h;
            if (line[0] == '#' || sscanf(line, "%lf %lf", &t, &h) != 2 || t < -100 || t > 200 ||
                h < 0 || h > 100)
                continue;
            r->temp_centi = (int32_t)(t * 100.0 + (t < 0 ? -0.5 : 0.5));
            r->rh_centi = (uint32_t)(h * 100.0 + 0.5);
            return 0;
        }
        rewind(sp.readings);
    }
    return -1;
}
#endif

static void read_sensor(struct record *r)
{
#ifdef PSADEV_EMULATOR
    if (sp.readings && read_file_line(r) == 0)
        return;
#endif
    uint8_t d[2];
    psa_generate_random(d, sizeof(d));
    /* a slow random walk within plausible indoor bounds */
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

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Finds the device's slot (or the free slot it would take). */
static psa_storage_uid_t replay_slot(const char *device, struct replay_entry *e, bool *found)
{
    uint32_t h = fnv1a(device);
    for (uint32_t i = 0; i < REPLAY_SLOTS; i++) {
        psa_storage_uid_t uid = SPE_UID_REPLAY_BASE + (h + i) % REPLAY_SLOTS;
        size_t n = 0;
        if (psa_its_get(uid, 0, sizeof(*e), e, &n) != PSA_SUCCESS || n != sizeof(*e)) {
            *found = false;
            memset(e, 0, sizeof(*e));
            return uid;
        }
        if (strcmp(e->device, device) == 0) {
            *found = true;
            return uid;
        }
    }
    *found = false;
    return 0;
}

/* ---- the service -------------------------------------------------------------------------- */

int32_t sensor_service(int32_t type, const struct ipc_invec *in, size_t n_in,
                       struct ipc_outvec *out, size_t n_out)
{
    char topic[256];
    if (!sp.ready || n_in < 1 || n_out < 1 || in[0].len == 0 || in[0].len >= sizeof(topic))
        return PSA_ERROR_INVALID_ARGUMENT;
    memcpy(topic, in[0].base, in[0].len);
    topic[in[0].len] = '\0';
    if (strlen(topic) != in[0].len)
        return PSA_ERROR_INVALID_ARGUMENT;

    if (type == SENSOR_FN_READ) {
        if (strcmp(sp.info.role, "sensor") != 0)
            return PSA_ERROR_NOT_PERMITTED;
        bool mac_only = n_in >= 2 && in[1].len == 1 && ((const uint8_t *)in[1].base)[0] == 1;
        if (sp.next_seq >= sp.reserved_until && reserve_seq() != 0)
            return PSA_ERROR_STORAGE_FAILURE;
        struct record r;
        memset(&r, 0, sizeof(r));
        snprintf(r.device, sizeof(r.device), "%s", sp.info.id);
        r.seq = sp.next_seq++;
        r.time_ms = plat_wall_ms();
        read_sensor(&r);
        size_t len = 0;
        enum record_result res =
            record_seal(&r, topic, mac_only, &crypto, out[0].base, out[0].len, &len);
        out[0].len = res == RECORD_OK ? len : 0;
        return res == RECORD_OK             ? PSA_SUCCESS
               : res == RECORD_ERR_BUFFER ? PSA_ERROR_BUFFER_TOO_SMALL
                                          : PSA_ERROR_GENERIC_ERROR;
    }
    if (type == SENSOR_FN_OPEN) {
        if (strcmp(sp.info.role, "monitor") != 0)
            return PSA_ERROR_NOT_PERMITTED;
        if (n_in < 2 || out[0].len < sizeof(struct sensor_reading))
            return PSA_ERROR_INVALID_ARGUMENT;
        struct record r;
        enum record_result res = record_open(in[1].base, in[1].len, topic, &crypto, &r);
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
        snprintf(rd.device, sizeof(rd.device), "%s", r.device);
        rd.seq = r.seq;
        rd.time_ms = r.time_ms;
        rd.temp_centi = r.temp_centi;
        rd.rh_centi = r.rh_centi;
        rd.last_seq = e.last_seq;
        memcpy(out[0].base, &rd, sizeof(rd));
        out[0].len = sizeof(rd);
        if (found && r.seq <= e.last_seq)
            return PSA_ERROR_ALREADY_EXISTS; /* a replay: the reading is shown, not accepted */
        snprintf(e.device, sizeof(e.device), "%s", r.device);
        e.last_seq = r.seq;
        if (psa_its_set(uid, sizeof(e), &e, PSA_STORAGE_FLAG_NONE) != PSA_SUCCESS)
            return PSA_ERROR_STORAGE_FAILURE;
        return PSA_SUCCESS;
    }
    return PSA_ERROR_NOT_SUPPORTED;
}
