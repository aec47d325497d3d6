/*
 * attest.h: the gateway side of attestation (docs/attestation.md): each device's verification
 * policy, the reference values in memory, and every verdict (log line, counters, registry
 * history, and a JSON copy handed upward for the cloud).
 */
#ifndef PSAGW_ATTEST_H
#define PSAGW_ATTEST_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "context.h"
#include "psagw/iat.h"
#include "registry.h"

#define ATTEST_METHOD "PSA-IAT"

/* A device's attestation material and, while an exchange runs, its nonce. Lives only from the
 * handshake (or a re-authentication request) to the verdict, then is wiped. */
struct attest_state {
    uint8_t iak[DEVICE_IAK_MAX];
    size_t iak_len;
    uint8_t instance_id[IAT_INSTANCE_ID_SIZE];
    enum iat_profile profile;
    uint8_t nonce[64];
    size_t nonce_len;
    uint8_t *connect; /* the CONNECT, kept to finish it after the verdict (initial exchange) */
    size_t connect_len;
    bool in_exchange;
    uint64_t started_us;
};

/* A verdict as handed upward: the device, the result and its reason, and the token's claims
 * when its MAC was good (else NULL). Valid during the call only. */
struct attest_verdict {
    const char *device;
    enum iat_result result;
    const char *reason;
    const struct iat_token *tok;
};

/* What attestation hands upward. */
struct attest_callbacks {
    /* Every verdict (broker lock held; NULL: not handed up). */
    void (*verdict)(struct gateway *gw, const struct attest_verdict *v);
};

struct attest_ctx;
int attest_init(struct gateway *gw, const struct attest_callbacks *cb, char *err, size_t errlen);
void attest_free(struct gateway *gw); /* writes the verdicts still queued */
/* Copies a device's IAK into a new c->att (nothing if the device has none). */
void attest_keys_from_device(struct conn *c, const struct device *d);
void attest_state_free(struct conn *c);
/* Verifies a token for connection c (broker lock held); fills *tok and writes the reason text
 * (no secrets). */
enum iat_result attest_verify(struct conn *c, const uint8_t *token, size_t len,
                              struct iat_token *tok, char *reason, size_t reason_cap);
/* Reloads reference values after a registry change (worker 0). */
void attest_registry_changed(struct gateway *gw);
/* Writes the queued verdicts to the registry's history in one transaction (worker 0). */
void attest_flush_history(struct gateway *gw);
/* Logs the per-reason refusal counters (with the stats line). */
void attest_log_stats(struct gateway *gw);
/* Refusals counted for one result (any thread). */
uint64_t attest_refused_count(struct gateway *gw, enum iat_result r);

/* The latest verdicts, kept in memory for the operator's view (http/). */
#define ATTEST_RECENT_MAX 64
struct attest_recent {
    char id[DEVICE_ID_MAX + 1];
    char peer[64];
    int64_t at_ms; /* wall clock */
    bool accepted;
    const char *result; /* iat_result_name(), static */
    char reason[160];
    char profile[16];   /* the token's claim profile, "" when its claims were not valid */
    char lifecycle[24];
};
/* Calls fn for the kept verdicts, newest first (takes the broker lock: fn must not). */
void attest_recent_each(struct gateway *gw, void (*fn)(const struct attest_recent *v, void *arg),
                        void *arg);

#endif
