/*
 * sensor_core.c: the sensor partition's work, shared by the emulator and the firmware
 * (sensor_core.h says what it does and why).
 */
#include <string.h>

#include "psa/internal_trusted_storage.h"
#include "sensor_core.h"

static void wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n--)
        *v++ = 0;
}

/* ---- keys ------------------------------------------------------------------------------- */

static int derive(struct sensor_core *s, const char *kid, uint8_t out[32])
{
    uint8_t msg[sizeof(RECORD_KDF_LABEL) - 1 + RECORD_ID_MAX];
    size_t l = sizeof(RECORD_KDF_LABEL) - 1, k = strlen(kid), n = 0;
    if (k > RECORD_ID_MAX)
        return -1;
    memcpy(msg, RECORD_KDF_LABEL, l);
    memcpy(msg + l, kid, k);
    return psa_mac_compute(s->group_key, PSA_ALG_HMAC(PSA_ALG_SHA_256), msg, l + k, out, 32,
                           &n) == PSA_SUCCESS &&
                   n == 32
               ? 0
               : -1;
}

/* Imports kid's record key as a volatile key of the partition. */
static int record_key(struct sensor_core *s, const char *kid, bool aes, mbedtls_svc_key_id_t *key)
{
    uint8_t raw[32];
    if (derive(s, kid, raw) != 0)
        return -1;
    psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
    if (s->set_owner)
        s->set_owner(&a);
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
    wipe(raw, sizeof(raw));
    return st == PSA_SUCCESS ? 0 : -1;
}

static int ccm(void *ctx, bool enc, const char *kid, const uint8_t nonce[RECORD_IV_SIZE],
               const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
               size_t cap, size_t *out_len)
{
    mbedtls_svc_key_id_t k;
    if (record_key(ctx, kid, true, &k) != 0)
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
    mbedtls_svc_key_id_t k;
    size_t n = 0;
    if (record_key(ctx, kid, false, &k) != 0)
        return -1;
    psa_status_t st = psa_mac_compute(k, PSA_ALG_HMAC(PSA_ALG_SHA_256), in, len, out, 32, &n);
    psa_destroy_key(k);
    return st == PSA_SUCCESS && n == 32 ? 0 : -1;
}

/* ---- sensor ----------------------------------------------------------------------------- */

static uint32_t fnv1a(const char *str)
{
    uint32_t h = 2166136261u;
    for (; *str; str++)
        h = (h ^ (uint8_t)*str) * 16777619u;
    return h;
}

void sensor_core_boot(struct sensor_core *s)
{
    uint64_t until = 0;
    size_t n = 0;
    if (psa_its_get(SENSOR_UID_SEQ, 0, sizeof(until), &until, &n) != PSA_SUCCESS ||
        n != sizeof(until))
        until = 0;
    s->next_seq = until;
    s->reserved_until = until;
    uint32_t h = fnv1a(s->id);
    s->temp_centi = 1900 + (int32_t)(h % 500);        /* 19.00 .. 23.99 C, per device */
    s->rh_centi = 3500 + (int32_t)((h >> 16) % 1500); /* 35.00 .. 49.99 %, per device */
}

void sensor_core_emulate(struct sensor_core *s, int32_t *temp_centi, uint32_t *rh_centi)
{
    uint8_t d[2] = {10, 20};
    (void)psa_generate_random(d, sizeof(d));
    s->temp_centi += (int32_t)(d[0] % 21) - 10;
    s->rh_centi += (int32_t)(d[1] % 41) - 20;
    if (s->temp_centi < 1500 || s->temp_centi > 3000)
        s->temp_centi = 2150;
    if (s->rh_centi < 2000 || s->rh_centi > 7000)
        s->rh_centi = 4000;
    *temp_centi = s->temp_centi;
    *rh_centi = (uint32_t)s->rh_centi;
}

psa_status_t sensor_core_seal(struct sensor_core *s, const char *topic, bool mac_only,
                              uint64_t time_ms, int32_t temp_centi, uint32_t rh_centi,
                              uint8_t *out, size_t cap, size_t *out_len)
{
    const struct record_crypto crypto = {ccm, hmac, s};
    if (!s->sensor)
        return PSA_ERROR_NOT_PERMITTED;
    if (s->next_seq >= s->reserved_until) {
        uint64_t until = s->reserved_until + SENSOR_SEQ_BLOCK;
        if (psa_its_set(SENSOR_UID_SEQ, sizeof(until), &until, PSA_STORAGE_FLAG_NONE) !=
            PSA_SUCCESS)
            return PSA_ERROR_STORAGE_FAILURE;
        s->reserved_until = until;
    }
    struct record r;
    memset(&r, 0, sizeof(r));
    memcpy(r.device, s->id, sizeof(r.device));
    r.seq = s->next_seq++;
    r.time_ms = time_ms;
    r.temp_centi = temp_centi;
    r.rh_centi = rh_centi;
    enum record_result res = record_seal(&r, topic, mac_only, &crypto, out, cap, out_len);
    return res == RECORD_OK           ? PSA_SUCCESS
           : res == RECORD_ERR_BUFFER ? PSA_ERROR_BUFFER_TOO_SMALL
                                      : PSA_ERROR_GENERIC_ERROR;
}

/* ---- monitor: replay protection ------------------------------------------------------------ */

struct replay_entry {
    char device[RECORD_ID_MAX + 1];
    uint64_t last_seq;
};

/* Finds the device's slot (or the free slot it would take); 0 when every slot is taken. */
static psa_storage_uid_t replay_slot(struct sensor_core *s, const char *device,
                                     struct replay_entry *e, bool *found)
{
    uint32_t h = fnv1a(device);
    for (uint32_t i = 0; i < s->replay_slots; i++) {
        psa_storage_uid_t uid = SENSOR_UID_REPLAY_BASE + (h + i) % s->replay_slots;
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

psa_status_t sensor_core_open(struct sensor_core *s, const char *topic, const uint8_t *in,
                              size_t len, struct sensor_reading *rd)
{
    const struct record_crypto crypto = {ccm, hmac, s};
    if (s->sensor)
        return PSA_ERROR_NOT_PERMITTED;
    struct record r;
    enum record_result res = record_open(in, len, topic, &crypto, &r);
    if (res == RECORD_ERR_AUTH || res == RECORD_ERR_KID)
        return PSA_ERROR_INVALID_SIGNATURE;
    if (res != RECORD_OK)
        return PSA_ERROR_INVALID_ARGUMENT;
    struct replay_entry e;
    bool found;
    psa_storage_uid_t uid = replay_slot(s, r.device, &e, &found);
    if (!uid)
        return PSA_ERROR_INSUFFICIENT_STORAGE;
    memset(rd, 0, sizeof(*rd));
    memcpy(rd->device, r.device, sizeof(rd->device));
    rd->seq = r.seq;
    rd->time_ms = r.time_ms;
    rd->temp_centi = r.temp_centi;
    rd->rh_centi = r.rh_centi;
    rd->last_seq = e.last_seq;
    if (found && r.seq <= e.last_seq)
        return PSA_ERROR_ALREADY_EXISTS; /* a replay: the reading is shown, not accepted */
    memcpy(e.device, r.device, sizeof(e.device));
    e.last_seq = r.seq;
    if (psa_its_set(uid, sizeof(e), &e, PSA_STORAGE_FLAG_NONE) != PSA_SUCCESS)
        return PSA_ERROR_STORAGE_FAILURE;
    return PSA_SUCCESS;
}
