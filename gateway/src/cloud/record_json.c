/*
 * record_json.c: opening protected records with the group key on OpenSSL (see record_json.h).
 * The per-device key is derived as the sensor partition derives it (common/record: the first
 * 16 (CCM) or 32 (HMAC) bytes of HMAC-SHA256(group key, "psagw app key" || device id)).
 */
#include "record_json.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"
#include "psagw/record.h"

int record_keys_load(const char *path, struct record_keys *k, char *err, size_t errlen)
{
    memset(k, 0, sizeof(*k));
    int n = hex_read_key_file("cloud.group_key_file", path, k->group, sizeof(k->group));
    if (n < 16) {
        record_keys_wipe(k);
        snprintf(err, errlen, "cloud.group_key_file %s: %s", path,
                 n < 0 ? "cannot be read as a key" : "a group key has at least 16 bytes");
        return -1;
    }
    k->len = (size_t)n;
    return 0;
}

void record_keys_wipe(struct record_keys *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

static int device_key(const struct record_keys *k, const char *kid, uint8_t out[32])
{
    uint8_t msg[sizeof(RECORD_KDF_LABEL) - 1 + RECORD_ID_MAX];
    size_t l = strlen(RECORD_KDF_LABEL), idl = strlen(kid);
    if (idl > RECORD_ID_MAX)
        return -1;
    memcpy(msg, RECORD_KDF_LABEL, l);
    memcpy(msg + l, kid, idl);
    unsigned int outl = 32;
    if (!HMAC(EVP_sha256(), k->group, (int)k->len, msg, l + idl, out, &outl))
        return -1;
    return 0;
}

static int ccm(void *ctx, bool encrypt, const char *kid, const uint8_t nonce[RECORD_IV_SIZE],
               const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
               size_t cap, size_t *out_len)
{
    const struct record_keys *k = ctx;
    uint8_t key[32];
    if (encrypt || len < RECORD_TAG_SIZE || len - RECORD_TAG_SIZE > cap ||
        device_key(k, kid, key) != 0)
        return -1;
    size_t plen = len - RECORD_TAG_SIZE;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = c && EVP_DecryptInit_ex(c, EVP_aes_128_ccm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_CCM_SET_IVLEN, RECORD_IV_SIZE, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_CCM_SET_TAG, RECORD_TAG_SIZE,
                                 (void *)(in + plen)) == 1 &&
             EVP_DecryptInit_ex(c, NULL, NULL, key, nonce) == 1;
    int n = 0;
    ok = ok && EVP_DecryptUpdate(c, NULL, &n, NULL, (int)plen) == 1 &&
         EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1 &&
         EVP_DecryptUpdate(c, out, &n, in, (int)plen) == 1; /* CCM: fails on a bad tag */
    EVP_CIPHER_CTX_free(c);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok)
        return -1;
    *out_len = plen;
    return 0;
}

static int mac(void *ctx, const char *kid, const uint8_t *in, size_t len, uint8_t out[32])
{
    const struct record_keys *k = ctx;
    uint8_t key[32];
    unsigned int outl = 32;
    int rc = device_key(k, kid, key) == 0 &&
                     HMAC(EVP_sha256(), key, 32, in, len, out, &outl) != NULL
                 ? 0
                 : -1;
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int record_to_json(const struct record_keys *k, const char *publisher, const char *topic,
                   size_t topic_len, const uint8_t *in, size_t len, char *out, size_t cap,
                   struct record *opened, const char **why)
{
    struct record_crypto c = {ccm, mac, (void *)k};
    char t[512];
    if (topic_len >= sizeof(t)) {
        *why = "topic too long for a record";
        return -1;
    }
    memcpy(t, topic, topic_len);
    t[topic_len] = '\0';
    struct record r;
    enum record_result res = record_open(in, len, t, &c, &r);
    if (res != RECORD_OK) {
        *why = res == RECORD_ERR_AUTH ? "record does not verify with the group key (wrong key, "
                                        "topic or bytes)"
                                      : record_result_str(res);
        return -1;
    }
    if (strcmp(r.device, publisher) != 0) {
        *why = "record of another device";
        return -1;
    }
    /* the id is printable ASCII (registry rule); quote and backslash need escaping
     * Quote and backslash are allowed in ids, so they are escaped. */
    char id[2 * RECORD_ID_MAX + 1];
    size_t o = 0;
    for (const char *p = r.device; *p && o + 2 < sizeof(id); p++) {
        if (*p == '"' || *p == '\\')
            id[o++] = '\\';
        id[o++] = *p;
    }
    id[o] = '\0';
    bool encrypted = len > 0 && (in[0] == 0xd0); /* tag 16: COSE_Encrypt0 */
    int n = snprintf(out, cap,
                     "{\"device\":\"%s\",\"seq\":%llu,\"time_ms\":%llu,\"temperature_c\":%.2f,"
                     "\"humidity_pct\":%.2f,\"protection\":\"%s\"}",
                     id, (unsigned long long)r.seq, (unsigned long long)r.time_ms,
                     r.temp_centi / 100.0, r.rh_centi / 100.0,
                     encrypted ? "cose_encrypt0" : "cose_mac0");
    if (n < 0 || (size_t)n >= cap) {
        *why = "JSON too long";
        return -1;
    }
    if (opened)
        *opened = r;
    return n;
}
