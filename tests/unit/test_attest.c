/*
 * Unit tests of the gateway's attestation policy (gateway/src/attest/attest.c), linked with the
 * attest layer and those below only: which tokens a device's policy accepts and why it refuses
 * the others (nonce single use, lifecycle, profile, algorithm, key, instance ID, reference
 * values), what is counted, and the verdict handed upward.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "attest.h"
#include "broker_lock.h"

static char dir[] = "/tmp/psagw-unit-attest.XXXXXX";
static uint8_t iak[32], nonce[32], boot_seed[32], impl_id[32], meas[32], signer[32];

struct verdicts {
    unsigned n;
    char last[2048];
};
static struct verdicts seen;

static void on_verdict(struct gateway *gw, const struct attest_verdict *v)
{
    (void)gw;
    seen.n++;
    snprintf(seen.last, sizeof(seen.last), "device=%s result=%s reason=%s claims=%d", v->device,
             iat_result_name(v->result), v->reason, v->tok != NULL);
}

struct fixture {
    struct gateway gw;
    struct conn c;
    struct device d;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[256], err[256];
    snprintf(path, sizeof(path), "%s/registry-%d.db", dir, rand());
    config_defaults(&f->gw.cfg);
    pthread_mutex_init(&f->gw.reg_lock, NULL);
    if (registry_open(path, true, &f->gw.reg, err, sizeof(err)) != REG_OK)
        fail_msg("%s", err);
    static const struct attest_callbacks cb = {.verdict = on_verdict};
    if (attest_init(&f->gw, &cb, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    memset(iak, 0x42, sizeof(iak));
    memcpy(f->d.iak, iak, sizeof(iak));
    f->d.iak_len = sizeof(iak);
    assert_int_equal(iat_instance_id(iak, sizeof(iak), f->d.instance_id), 0);
    f->c.gw = &f->gw;
    snprintf(f->c.who.id, sizeof(f->c.who.id), "sensor-1");
    snprintf(f->c.peer, sizeof(f->c.peer), "127.0.0.1:5000");
    memset(&seen, 0, sizeof(seen));
    broker_lock();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    broker_unlock();
    attest_state_free(&f->c);
    attest_free(&f->gw);
    registry_close(f->gw.reg);
    pthread_mutex_destroy(&f->gw.reg_lock);
    config_free(&f->gw.cfg);
    free(f);
    return 0;
}

/* A challenge as handle_auth.c makes it: the device's key, a fresh nonce. */
static void challenge(struct fixture *f)
{
    attest_keys_from_device(&f->c, &f->d);
    assert_non_null(f->c.att);
    for (size_t i = 0; i < sizeof(nonce); i++)
        nonce[i] = (uint8_t)rand();
    memcpy(f->c.att->nonce, nonce, sizeof(nonce));
    f->c.att->nonce_len = sizeof(nonce);
}

static void claims(struct iat_claims *c, const struct fixture *f, enum iat_profile profile)
{
    memset(boot_seed, 0xb5, sizeof(boot_seed));
    memset(impl_id, 0xaa, sizeof(impl_id));
    memset(meas, 0x11, sizeof(meas));
    memset(signer, 0x5e, sizeof(signer));
    memset(c, 0, sizeof(*c));
    c->nonce = (struct iat_bytes){nonce, sizeof(nonce)};
    c->boot_seed = (struct iat_bytes){boot_seed, 32};
    c->instance_id = (struct iat_bytes){f->d.instance_id, IAT_INSTANCE_ID_SIZE};
    c->implementation_id = (struct iat_bytes){impl_id, 32};
    c->client_id = -1;
    c->lifecycle = IAT_LC_SECURED;
    c->sw_count = 1;
    c->sw[0].type = (struct iat_bytes){(const uint8_t *)"SPE", 3};
    c->sw[0].value = (struct iat_bytes){meas, 32};
    c->sw[0].signer_id = (struct iat_bytes){signer, 32};
    c->sw[0].present = 1u << IAT_SW_TYPE | 1u << IAT_SW_VALUE | 1u << IAT_SW_SIGNER_ID;
    const char *pname =
        profile == IAT_PROFILE_LEGACY ? IAT_PROFILE_STR_LEGACY : IAT_PROFILE_STR_PSA2_2023;
    c->profile_name = (struct iat_bytes){(const uint8_t *)pname, strlen(pname)};
    c->present = 1u << IAT_CLAIM_NONCE | 1u << IAT_CLAIM_BOOT_SEED | 1u << IAT_CLAIM_INSTANCE_ID |
                 1u << IAT_CLAIM_IMPLEMENTATION_ID | 1u << IAT_CLAIM_CLIENT_ID |
                 1u << IAT_CLAIM_LIFECYCLE | 1u << IAT_CLAIM_SW_COMPONENTS |
                 1u << IAT_CLAIM_PROFILE;
}

static size_t token(const struct iat_claims *c, enum iat_profile profile, int alg,
                    const uint8_t *key, size_t key_len, uint8_t *out, size_t cap)
{
    struct iat_key k = {.raw = key, .raw_len = key_len};
    size_t len = 0;
    assert_int_equal(iat_encode(c, profile, alg, &k, NULL, 0, NULL, 0, out, cap, &len), IAT_OK);
    return len;
}

static enum iat_result verify(struct fixture *f, const uint8_t *tok, size_t len)
{
    struct iat_token t;
    char reason[160];
    return attest_verify(&f->c, tok, len, &t, reason, sizeof(reason));
}

static void a_good_token_is_accepted_and_reported(void **state)
{
    struct fixture *f = *state;
    challenge(f);
    struct iat_claims c;
    claims(&c, f, IAT_PROFILE_PSA2);
    uint8_t tok[1024];
    size_t len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_OK);
    assert_int_equal(f->gw.metrics.attestations_accepted, 1);
    assert_int_equal(seen.n, 1);
    assert_non_null(strstr(seen.last, "device=sensor-1 result=accepted"));
    assert_non_null(strstr(seen.last, "claims=1"));
}

static void the_nonce_is_single_use(void **state)
{
    struct fixture *f = *state;
    challenge(f);
    struct iat_claims c;
    claims(&c, f, IAT_PROFILE_PSA2);
    uint8_t tok[1024];
    size_t len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_OK);
    /* the same token again, against the same (now spent) challenge */
    assert_int_not_equal(verify(f, tok, len), IAT_OK);
    /* a token for an older nonce, against a fresh challenge: a replay */
    challenge(f);
    assert_int_equal(verify(f, tok, len), IAT_ERR_NONCE);
    assert_int_equal(f->gw.metrics.attestations_refused, 2);
}

static void a_debug_lifecycle_is_refused_unless_allowed(void **state)
{
    struct fixture *f = *state;
    challenge(f);
    struct iat_claims c;
    claims(&c, f, IAT_PROFILE_PSA2);
    c.lifecycle = IAT_LC_NON_PSA_ROT_DEBUG;
    uint8_t tok[1024];
    size_t len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_ERR_LIFECYCLE);
    assert_non_null(strstr(seen.last, "result=lifecycle"));
    f->gw.cfg.attest.lifecycle_mask |= IAT_LC_BIT(IAT_LC_NON_PSA_ROT_DEBUG);
    challenge(f);
    claims(&c, f, IAT_PROFILE_PSA2);
    c.lifecycle = IAT_LC_NON_PSA_ROT_DEBUG;
    len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_OK);
}

static void profile_algorithm_and_key_follow_the_policy(void **state)
{
    struct fixture *f = *state;
    struct iat_claims c;
    uint8_t tok[1024];
    /* a profile the configuration does not accept */
    f->gw.cfg.attest.profile_mask = 1u << IAT_PROFILE_LEGACY;
    challenge(f);
    claims(&c, f, IAT_PROFILE_PSA2);
    size_t len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_ERR_PROFILE);
    f->gw.cfg.attest.profile_mask |= 1u << IAT_PROFILE_PSA2;
    /* a device pinned to the legacy profile */
    f->d.iat_profile = IAT_PROFILE_LEGACY;
    challenge(f);
    claims(&c, f, IAT_PROFILE_PSA2);
    len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_ERR_PROFILE);
    f->d.iat_profile = IAT_PROFILE_AUTO;
    /* an algorithm the configuration does not allow */
    f->gw.cfg.attest.alg_mask = 1u << IAT_ALG_HMAC256;
    challenge(f);
    claims(&c, f, IAT_PROFILE_PSA2);
    len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC384, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_ERR_ALG);
    /* another device's key */
    uint8_t other[32];
    memset(other, 0x43, sizeof(other));
    challenge(f);
    claims(&c, f, IAT_PROFILE_PSA2);
    len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, other, sizeof(other), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_ERR_MAC);
    /* the right key, but claiming another instance */
    challenge(f);
    claims(&c, f, IAT_PROFILE_PSA2);
    uint8_t iid[IAT_INSTANCE_ID_SIZE];
    assert_int_equal(iat_instance_id(other, sizeof(other), iid), 0);
    c.instance_id = (struct iat_bytes){iid, sizeof(iid)};
    len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_ERR_INSTANCE_ID);
    assert_int_equal(f->gw.metrics.attestations_refused, 5);
}

static void reference_values_are_reloaded_after_a_registry_change(void **state)
{
    struct fixture *f = *state;
    f->gw.cfg.attest.require_known_measurements = true;
    struct iat_claims c;
    uint8_t tok[1024];
    challenge(f);
    claims(&c, f, IAT_PROFILE_PSA2);
    size_t len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_ERR_MEASUREMENT);
    /* the operator adds the measurement (signed by someone else first) */
    struct refval rv = {.kind = REFVAL_MEASUREMENT, .value_len = 32, .signer_len = 32};
    memset(rv.value, 0x11, 32);
    memset(rv.signer_id, 0x77, 32);
    assert_int_equal(registry_refval_add(f->gw.reg, &rv), REG_OK);
    broker_unlock(); /* attest_registry_changed takes the lock to swap the set */
    attest_registry_changed(&f->gw);
    broker_lock();
    challenge(f);
    claims(&c, f, IAT_PROFILE_PSA2);
    len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_ERR_SIGNER);
    struct refval good = {.kind = REFVAL_MEASUREMENT, .value_len = 32, .signer_len = 32};
    memset(good.value, 0x11, 32);
    memset(good.signer_id, 0x5e, 32);
    assert_int_equal(registry_refval_add(f->gw.reg, &good), REG_OK);
    broker_unlock();
    attest_registry_changed(&f->gw);
    broker_lock();
    challenge(f);
    claims(&c, f, IAT_PROFILE_PSA2);
    len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_OK);
}

static int count_record(const struct attest_record *rec, void *arg)
{
    (void)rec;
    (*(unsigned *)arg)++;
    return 0;
}

static void verdicts_reach_the_history(void **state)
{
    struct fixture *f = *state;
    struct iat_claims c;
    uint8_t tok[1024];
    challenge(f);
    claims(&c, f, IAT_PROFILE_PSA2);
    size_t len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_equal(verify(f, tok, len), IAT_OK);
    c.lifecycle = IAT_LC_DECOMMISSIONED;
    challenge(f);
    len = token(&c, IAT_PROFILE_PSA2, IAT_ALG_HMAC256, iak, sizeof(iak), tok, sizeof(tok));
    assert_int_not_equal(verify(f, tok, len), IAT_OK);
    broker_unlock();
    attest_flush_history(&f->gw);
    broker_lock();
    unsigned n = 0;
    assert_int_equal(registry_history_list(f->gw.reg, "sensor-1", 10, count_record, &n), REG_OK);
    assert_int_equal(n, 2);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_good_token_is_accepted_and_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(the_nonce_is_single_use, setup, teardown),
        cmocka_unit_test_setup_teardown(a_debug_lifecycle_is_refused_unless_allowed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(profile_algorithm_and_key_follow_the_policy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reference_values_are_reloaded_after_a_registry_change,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(verdicts_reach_the_history, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
