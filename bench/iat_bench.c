/*
 * iat_bench: attestation token verification throughput on one core (docs/design/targets.md: >= 300,000
 * tokens/s per core), for bench/run.sh.
 *
 *   iat_bench [SECONDS]
 *
 * Mints 1024 distinct TF-M-layout tokens (legacy profile, two software components, fresh
 * nonce each) per algorithm, then verifies them round-robin on one thread for SECONDS
 * (default 2) with the gateway's full policy (MAC, nonce, instance ID, lifecycle, reference
 * values of 16 measurements), and prints tokens/s. Also prints the decode-only rate (no MAC)
 * to show what the HMAC costs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "psagw/iat.h"

#define N_TOKENS 1024

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t measurements[16][32];

static int meas_known(void *ctx, const struct iat_sw_component *sw)
{
    (void)ctx;
    for (int i = 0; i < 16; i++)
        if (sw->value.len == 32 && memcmp(sw->value.p, measurements[i], 32) == 0)
            return 1;
    return 0;
}

static int impl_known(void *ctx, const uint8_t *id, size_t len)
{
    (void)ctx;
    return len == 32 && id[0] == 0xaa;
}

struct token {
    uint8_t bytes[700];
    size_t len;
    uint8_t nonce[32];
};

static void run(int alg, size_t key_len, double seconds)
{
    static struct token toks[N_TOKENS];
    uint8_t key_bytes[64], iid[IAT_INSTANCE_ID_SIZE], boot[32], impl[32], signer[32];
    for (size_t i = 0; i < key_len; i++)
        key_bytes[i] = (uint8_t)(i * 7 + 1);
    memset(boot, 0xb0, sizeof(boot));
    memset(impl, 0xaa, sizeof(impl));
    memset(signer, 0x51, sizeof(signer));
    struct iat_key key = {.raw = key_bytes, .raw_len = key_len};
    if (iat_instance_id(key_bytes, key_len, iid) != 0) {
        fprintf(stderr, "iat_bench: crypto backend failed\n");
        exit(1);
    }
    for (int t = 0; t < N_TOKENS; t++) {
        struct token *tk = &toks[t];
        for (int i = 0; i < 32; i++)
            tk->nonce[i] = (uint8_t)(t * 31 + i);
        struct iat_claims c = {0};
        c.nonce = (struct iat_bytes){tk->nonce, 32};
        c.boot_seed = (struct iat_bytes){boot, 32};
        c.instance_id = (struct iat_bytes){iid, sizeof(iid)};
        c.implementation_id = (struct iat_bytes){impl, 32};
        c.client_id = -1;
        c.lifecycle = IAT_LC_SECURED;
        c.sw_count = 2;
        for (int i = 0; i < 2; i++) {
            c.sw[i].type = (struct iat_bytes){(const uint8_t *)(i ? "NSPE" : "SPE"), i ? 4u : 3u};
            c.sw[i].value = (struct iat_bytes){measurements[(t + i) % 16], 32};
            c.sw[i].version = (struct iat_bytes){(const uint8_t *)"2.1.0", 5};
            c.sw[i].signer_id = (struct iat_bytes){signer, 32};
            c.sw[i].present = 1u << IAT_SW_TYPE | 1u << IAT_SW_VALUE | 1u << IAT_SW_VERSION |
                              1u << IAT_SW_SIGNER_ID;
        }
        c.profile_name = (struct iat_bytes){(const uint8_t *)IAT_PROFILE_STR_LEGACY,
                                            strlen(IAT_PROFILE_STR_LEGACY)};
        c.present = 1u << IAT_CLAIM_NONCE | 1u << IAT_CLAIM_BOOT_SEED |
                    1u << IAT_CLAIM_INSTANCE_ID | 1u << IAT_CLAIM_IMPLEMENTATION_ID |
                    1u << IAT_CLAIM_CLIENT_ID | 1u << IAT_CLAIM_LIFECYCLE |
                    1u << IAT_CLAIM_SW_COMPONENTS | 1u << IAT_CLAIM_PROFILE;
        if (iat_encode(&c, IAT_PROFILE_LEGACY, alg, &key, NULL, 0, NULL, 0, tk->bytes,
                       sizeof(tk->bytes), &tk->len) != IAT_OK) {
            fprintf(stderr, "iat_bench: encode failed\n");
            exit(1);
        }
    }
    struct iat_refvals rv = {impl_known, meas_known, NULL};
    struct iat_policy pol = {.key = &key, .nonce_len = 32, .instance_id = iid, .refvals = &rv,
                             .check_implementation = true, .require_known_measurements = true};
    struct iat_token out;
    long n = 0, bad = 0;
    double t0 = now_s(), t1;
    do {
        for (int i = 0; i < 256; i++, n++) {
            struct token *tk = &toks[n % N_TOKENS];
            pol.nonce = tk->nonce;
            bad += iat_verify(tk->bytes, tk->len, &pol, &out) != IAT_OK;
        }
        t1 = now_s();
    } while (t1 - t0 < seconds);
    double verify_rate = (double)n / (t1 - t0);
    long m = 0;
    t0 = now_s();
    do {
        for (int i = 0; i < 256; i++, m++) {
            struct token *tk = &toks[m % N_TOKENS];
            bad += iat_decode_unverified(tk->bytes, tk->len, IAT_PROFILE_AUTO, &out) != IAT_OK;
        }
        t1 = now_s();
    } while (t1 - t0 < seconds / 2);
    double decode_rate = (double)m / (t1 - t0);
    printf("alg=%d token_bytes=%zu verify_per_s=%.0f us_per_token=%.2f decode_only_per_s=%.0f "
           "refused=%ld\n",
           alg, toks[0].len, verify_rate, 1e6 / verify_rate, decode_rate, bad);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    for (int i = 0; i < 16; i++)
        memset(measurements[i], 0x30 + i, 32);
    run(IAT_ALG_HMAC256, 32, seconds);
    run(IAT_ALG_HMAC384, 48, seconds);
    run(IAT_ALG_HMAC512, 64, seconds);
    return 0;
}
