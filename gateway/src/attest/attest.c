/*
 * attest.c: the gateway side of attestation, between the token library and the protocol.
 *
 * Builds each device's verification policy (config + registry entry), keeps the reference
 * values in memory (reloaded when the registry changes, so a verification never waits on
 * SQLite), records every verdict: a log line (no secrets: ids, reasons and public claims
 * only), counters, and the registry's history. History rows are queued and written by worker
 * 0 once a second in one transaction, so a connect storm does not become a storm of SQLite
 * commits inside the event loops.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attest.h"
#include "broker_lock.h"
#include "clock.h"
#include "hex.h"
#include "iat_json.h"
#include "log.h"
#include "refval_set.h"

struct verdict {
    struct verdict *next;
    struct attest_record rec;
    char device[DEVICE_ID_MAX + 1];
    char result[32];
    char reason[160];
    char peer[64];
    uint8_t *token;
    size_t token_len;
};

struct attest_ctx {
    struct refval_set *refvals;            /* broker lock */
    pthread_mutex_t queue_lock;
    struct verdict *queue_head, *queue_tail;
    size_t queued;
    _Atomic uint64_t refused_by[IAT_RESULT_COUNT_];
    struct attest_callbacks cb;
    struct attest_recent recent[ATTEST_RECENT_MAX]; /* broker lock; a ring */
    size_t recent_next, recent_n;
};

#define HISTORY_QUEUE_MAX 100000 /* verdicts beyond this are logged and counted, not kept */

/* Reads the reference values (registry lock held by the caller). */
static struct refval_set *load_refvals(struct registry *reg)
{
    struct refval_set *s = refval_set_new();
    if (s && registry_refval_list(reg, refval_set_add, s) != REG_OK) {
        log_event(LOG_ERROR, "registry_error", "detail=\"%s\"", registry_error(reg));
        refval_set_free(s);
        return NULL;
    }
    return s;
}

int attest_init(struct gateway *gw, const struct attest_callbacks *cb, char *err, size_t errlen)
{
    struct attest_ctx *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cb)
        a->cb = *cb;
    pthread_mutex_init(&a->queue_lock, NULL);
    pthread_mutex_lock(&gw->reg_lock);
    a->refvals = load_refvals(gw->reg);
    pthread_mutex_unlock(&gw->reg_lock);
    if (!a->refvals) {
        snprintf(err, errlen, "cannot read the reference values from the registry");
        pthread_mutex_destroy(&a->queue_lock);
        free(a);
        return -1;
    }
    gw->attest = a;
    const struct attest_config *c = &gw->cfg.attest;
    log_event(LOG_INFO, "attestation_policy",
              "default=%s nonce_size=%u deadline_s=%u debug_lifecycle=%s profiles=%s%s "
              "implementation_ids=%zu require_known_implementation=%d measurements=%zu "
              "require_known_measurements=%d reattest_interval_s=%u",
              device_policy_name(gw->cfg.attestation_default), c->nonce_size, c->deadline,
              c->lifecycle_mask & IAT_LC_BIT(IAT_LC_NON_PSA_ROT_DEBUG) ? "allowed" : "refused",
              c->profile_mask & (1u << IAT_PROFILE_LEGACY) ? "legacy," : "",
              c->profile_mask & (1u << IAT_PROFILE_PSA2) ? "psa2" : "", a->refvals->n_impl,
              c->require_known_implementation, a->refvals->n_meas,
              c->require_known_measurements, c->reattest_interval);
    if (c->require_known_implementation && a->refvals->n_impl == 0)
        log_event(LOG_WARN, "attestation_policy",
                  "detail=\"require_known_implementation is set but no implementation ID is "
                  "registered: every token will be refused (psagw refval add)\"");
    return 0;
}

void attest_free(struct gateway *gw)
{
    struct attest_ctx *a = gw->attest;
    if (!a)
        return;
    attest_flush_history(gw);
    refval_set_free(a->refvals);
    for (struct verdict *v = a->queue_head, *n; v; v = n) {
        n = v->next;
        free(v->token);
        free(v);
    }
    pthread_mutex_destroy(&a->queue_lock);
    free(a);
    gw->attest = NULL;
}

void attest_registry_changed(struct gateway *gw)
{
    pthread_mutex_lock(&gw->reg_lock);
    struct refval_set *fresh = load_refvals(gw->reg);
    pthread_mutex_unlock(&gw->reg_lock);
    if (!fresh)
        return; /* keep the old set; the error is logged */
    broker_lock();
    struct refval_set *old = gw->attest->refvals;
    gw->attest->refvals = fresh;
    broker_unlock();
    if (old->n_impl != fresh->n_impl || old->n_meas != fresh->n_meas)
        log_event(LOG_INFO, "refvals_reloaded", "implementation_ids=%zu measurements=%zu",
                  fresh->n_impl, fresh->n_meas);
    refval_set_free(old);
}

void attest_keys_from_device(struct conn *c, const struct device *d)
{
    attest_state_free(c);
    if (d->iak_len == 0)
        return;
    struct attest_state *s = calloc(1, sizeof(*s));
    if (!s)
        return;
    memcpy(s->iak, d->iak, d->iak_len);
    s->iak_len = d->iak_len;
    memcpy(s->instance_id, d->instance_id, sizeof(s->instance_id));
    s->profile = d->iat_profile;
    c->att = s;
}

void attest_state_free(struct conn *c)
{
    if (!c->att)
        return;
    free(c->att->connect);
    OPENSSL_cleanse(c->att, sizeof(*c->att));
    free(c->att);
    c->att = NULL;
}

static void queue_verdict(struct gateway *gw, const struct conn *c, enum iat_result r,
                          const char *reason, const uint8_t *token, size_t token_len)
{
    struct attest_ctx *a = gw->attest;
    struct verdict *v = calloc(1, sizeof(*v));
    if (!v)
        return;
    snprintf(v->device, sizeof(v->device), "%s", c->who.id);
    snprintf(v->result, sizeof(v->result), "%s", iat_result_name(r));
    snprintf(v->reason, sizeof(v->reason), "%s", reason);
    snprintf(v->peer, sizeof(v->peer), "%s", c->peer);
    /* the token itself is the evidence (claims are decoded from it when shown); one whose MAC
     * failed is attacker-made bytes and is not kept */
    if (token_len && (v->token = malloc(token_len)) != NULL) {
        memcpy(v->token, token, token_len);
        v->token_len = token_len;
    }
    v->rec = (struct attest_record){.device = v->device,
                                    .at_ms = (int64_t)clock_wall_ms(),
                                    .accepted = r == IAT_OK,
                                    .result = v->result,
                                    .reason = v->reason,
                                    .token = v->token,
                                    .token_len = v->token_len,
                                    .peer = v->peer};
    pthread_mutex_lock(&a->queue_lock);
    if (a->queued >= HISTORY_QUEUE_MAX) {
        pthread_mutex_unlock(&a->queue_lock);
        free(v->token);
        free(v);
        log_event(LOG_WARN, "attestation_history_full", "id=%s", c->who.id);
        return;
    }
    if (a->queue_tail)
        a->queue_tail->next = v;
    else
        a->queue_head = v;
    a->queue_tail = v;
    a->queued++;
    pthread_mutex_unlock(&a->queue_lock);
}

void attest_flush_history(struct gateway *gw)
{
    struct attest_ctx *a = gw->attest;
    pthread_mutex_lock(&a->queue_lock);
    struct verdict *list = a->queue_head;
    size_t n = a->queued;
    a->queue_head = a->queue_tail = NULL;
    a->queued = 0;
    pthread_mutex_unlock(&a->queue_lock);
    if (!list)
        return;
    struct attest_record *recs = calloc(n, sizeof(*recs));
    size_t i = 0;
    for (struct verdict *v = list; v && recs; v = v->next)
        recs[i++] = v->rec;
    if (recs) {
        pthread_mutex_lock(&gw->reg_lock);
        int rc = registry_history_add(gw->reg, recs, i, gw->cfg.attest.history_per_device);
        if (rc != REG_OK)
            log_event(LOG_ERROR, "registry_error", "detail=\"%s\" lost_verdicts=%zu",
                      registry_error(gw->reg), i);
        pthread_mutex_unlock(&gw->reg_lock);
        free(recs);
    }
    for (struct verdict *v = list, *next; v; v = next) {
        next = v->next;
        free(v->token);
        free(v);
    }
}

uint64_t attest_refused_count(struct gateway *gw, enum iat_result r)
{
    return r > 0 && r < IAT_RESULT_COUNT_ ? gw->attest->refused_by[r] : 0;
}

void attest_recent_each(struct gateway *gw, void (*fn)(const struct attest_recent *v, void *arg),
                        void *arg)
{
    struct attest_ctx *a = gw->attest;
    broker_lock();
    for (size_t k = 0; k < a->recent_n; k++)
        fn(&a->recent[(a->recent_next + ATTEST_RECENT_MAX - 1 - k) % ATTEST_RECENT_MAX], arg);
    broker_unlock();
}

/* Keeps a verdict in the ring of recent ones (broker lock held). */
static void remember_recent(struct gateway *gw, const struct conn *c, enum iat_result r,
                            const char *reason, const struct iat_token *tok, bool claims_valid)
{
    struct attest_ctx *a = gw->attest;
    struct attest_recent *v = &a->recent[a->recent_next];
    a->recent_next = (a->recent_next + 1) % ATTEST_RECENT_MAX;
    if (a->recent_n < ATTEST_RECENT_MAX)
        a->recent_n++;
    snprintf(v->id, sizeof(v->id), "%s", c->who.id);
    snprintf(v->peer, sizeof(v->peer), "%s", c->peer);
    v->at_ms = (int64_t)clock_wall_ms();
    v->accepted = r == IAT_OK;
    v->result = iat_result_name(r);
    snprintf(v->reason, sizeof(v->reason), "%s", reason);
    snprintf(v->profile, sizeof(v->profile), "%s",
             claims_valid ? iat_profile_name(tok->claims.profile) : "");
    snprintf(v->lifecycle, sizeof(v->lifecycle), "%s",
             claims_valid ? iat_lifecycle_name(tok->claims.lifecycle) : "");
}

void attest_log_stats(struct gateway *gw)
{
    char line[1024];
    int n = 0;
    for (int r = 1; r < IAT_RESULT_COUNT_; r++) {
        uint64_t v = gw->attest->refused_by[r];
        if (v && n >= 0 && (size_t)n < sizeof(line))
            n += snprintf(line + n, sizeof(line) - (size_t)n, "%s%s=%llu", n ? " " : "",
                          iat_result_name((enum iat_result)r), (unsigned long long)v);
    }
    if (n > 0)
        log_event(LOG_INFO, "attestation_refusals", "%s", line);
}

enum iat_result attest_verify(struct conn *c, const uint8_t *token, size_t len,
                              struct iat_token *tok, char *reason, size_t reason_cap)
{
    BROKER_LOCK_HELD();
    struct gateway *gw = c->gw;
    const struct attest_config *cfg = &gw->cfg.attest;
    struct attest_state *s = c->att;
    struct iat_key key = {.raw = s->iak, .raw_len = s->iak_len};
    struct iat_refvals rv = refval_set_matcher(gw->attest->refvals);
    struct iat_policy pol = {
        .key = &key,
        .nonce = s->nonce,
        .nonce_len = s->nonce_len,
        .instance_id = s->instance_id,
        .profile = s->profile,
        .lifecycle_mask = cfg->lifecycle_mask,
        .alg_mask = cfg->alg_mask,
        .refvals = &rv,
        .check_implementation = cfg->require_known_implementation,
        .require_known_measurements = cfg->require_known_measurements,
    };
    enum iat_result r = iat_verify(token, len, &pol, tok);
    /* a profile the config does not accept, even if the token is otherwise fine */
    if (r == IAT_OK && !(cfg->profile_mask & (1u << tok->claims.profile)))
        r = IAT_ERR_PROFILE;
    iat_reason(tok, r, reason, reason_cap);
    /* the nonce is single-use: whatever the verdict, it cannot be answered twice */
    OPENSSL_cleanse(s->nonce, sizeof(s->nonce));
    s->nonce_len = 0;

    /* Claims are worth recording when the MAC was good (they come from the device). */
    bool claims_valid = r == IAT_OK || r >= IAT_ERR_CLAIMS_CBOR;
    if (r == IAT_OK) {
        gw->metrics.attestations_accepted++;
    } else {
        gw->metrics.attestations_refused++;
        gw->attest->refused_by[r]++;
    }
    uint64_t took_us = clock_mono_us() - s->started_us;
    char iid[2 * IAT_INSTANCE_ID_SIZE + 1] = "-", impl[2 * 64 + 1] = "-";
    if (claims_valid && (tok->claims.present & (1u << IAT_CLAIM_INSTANCE_ID)))
        hex_encode(tok->claims.instance_id.p, tok->claims.instance_id.len, iid, sizeof(iid));
    if (claims_valid && (tok->claims.present & (1u << IAT_CLAIM_IMPLEMENTATION_ID)))
        hex_encode(tok->claims.implementation_id.p, tok->claims.implementation_id.len, impl,
                   sizeof(impl));
    char safe[LOG_SAFE_MAX];
    log_event(r == IAT_OK ? LOG_INFO : LOG_WARN, "attestation",
              "peer=%s id=%s verdict=%s result=%s reason=\"%s\" profile=%s lifecycle=%s "
              "client_id=%lld implementation_id=%s instance_id=%s alg=%d exchange_us=%llu",
              c->peer, log_safe(c->who.id, strlen(c->who.id), safe, sizeof(safe)),
              r == IAT_OK ? "accepted" : "refused", iat_result_name(r), reason,
              claims_valid ? iat_profile_name(tok->claims.profile) : "-",
              claims_valid ? iat_lifecycle_name(tok->claims.lifecycle) : "-",
              claims_valid ? (long long)tok->claims.client_id : 0LL, impl, iid, tok->alg,
              (unsigned long long)took_us);
    queue_verdict(gw, c, r, reason, claims_valid ? token : NULL, claims_valid ? len : 0);
    remember_recent(gw, c, r, reason, tok, claims_valid);
    if (gw->attest->cb.verdict) {
        struct attest_verdict v = {c->who.id, r, reason, claims_valid ? tok : NULL};
        gw->attest->cb.verdict(gw, &v);
    }
    return r;
}
