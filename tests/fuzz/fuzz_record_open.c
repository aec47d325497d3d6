/*
 * libFuzzer target for the protected-record parser (common/record), which a monitor's SPE (and
 * later the gateway) runs on bytes anyone on the network can send. The crypto backend here is
 * a stand-in that "decrypts" by dropping the 8-byte tag and accepts every MAC, so the fuzzer
 * reaches the payload decoder behind the authentication; the real backends only narrow that.
 * Opened records must name a device matching their kid, and their fields must be in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "psagw/record.h"

static int ccm(void *ctx, bool encrypt, const char *kid, const uint8_t nonce[RECORD_IV_SIZE],
               const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
               size_t cap, size_t *out_len)
{
    (void)ctx;
    (void)kid;
    (void)nonce;
    (void)aad;
    (void)aad_len;
    if (encrypt) {
        if (len + RECORD_TAG_SIZE > cap)
            return -1;
        memcpy(out, in, len);
        memset(out + len, 0, RECORD_TAG_SIZE);
        *out_len = len + RECORD_TAG_SIZE;
        return 0;
    }
    if (len < RECORD_TAG_SIZE || len - RECORD_TAG_SIZE > cap)
        return -1;
    memcpy(out, in, len - RECORD_TAG_SIZE);
    *out_len = len - RECORD_TAG_SIZE;
    return 0;
}

static int mac(void *ctx, const char *kid, const uint8_t *in, size_t len, uint8_t out[32])
{
    (void)ctx;
    (void)kid;
    (void)in;
    (void)len;
    memset(out, 0, 32);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct record_crypto c = {ccm, mac, NULL};
    struct record r;
    if (record_open(data, size, "sensors/fuzz/env", &c, &r) == RECORD_OK) {
        if (strlen(r.device) == 0 || strlen(r.device) > RECORD_ID_MAX)
            abort();
        /* what opens must seal again to something that opens to the same reading */
        uint8_t again[RECORD_MAX_SIZE];
        size_t n = 0;
        struct record back;
        if (record_seal(&r, "sensors/fuzz/env", false, &c, again, sizeof(again), &n) != RECORD_OK ||
            record_open(again, n, "sensors/fuzz/env", &c, &back) != RECORD_OK ||
            back.seq != r.seq || back.temp_centi != r.temp_centi || back.rh_centi != r.rh_centi ||
            strcmp(back.device, r.device) != 0)
            abort();
    }
    return 0;
}
