/*
 * handle_auth.c: MQTT 5 enhanced authentication with the method PSA-IAT (docs/design/wire.md section 3).
 *
 *   CONNECT (method PSA-IAT) -> AUTH 0x18 (data: fresh nonce) -> AUTH 0x18 (data: token)
 *   -> CONNACK 0x00, or CONNACK 0x87 with the reason, then close.
 *
 * MQTT 5.0 section 4.12: before CONNACK only AUTH (or DISCONNECT) may come from the client,
 * with the CONNECT's method; the CONNACK that ends a successful exchange carries the method.
 * Section 4.12.1 (re-authentication): on a live connection the client sends AUTH 0x19, the
 * same exchange follows, and it ends with AUTH 0x00 (success) or DISCONNECT (failure); other
 * packets keep flowing meanwhile. The nonce is single-use and belongs to this connection:
 * it is wiped as soon as a token has been checked against it, whatever the verdict.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "broker_lock.h"
#include "clock.h"
#include "conn.h"
#include "end.h"
#include "log.h"
#include "lookup.h"
#include "proto.h"
#include "random.h"
#include "send.h"

static bool is_psa_iat(const struct mqtt_props *p)
{
    return mqtt_props_has(p, MQTT_PROP_AUTH_METHOD) &&
           p->auth_method.len == strlen(ATTEST_METHOD) &&
           memcmp(p->auth_method.data, ATTEST_METHOD, p->auth_method.len) == 0;
}

static int send_auth(struct conn *c, uint8_t reason, const uint8_t *data, size_t len)
{
    struct mqtt_props props = {0};
    mqtt_props_set(&props, MQTT_PROP_AUTH_METHOD);
    props.auth_method = (struct mqtt_bytes){(const uint8_t *)ATTEST_METHOD,
                                            strlen(ATTEST_METHOD)};
    if (data) {
        mqtt_props_set(&props, MQTT_PROP_AUTH_DATA);
        props.auth_data = (struct mqtt_bytes){data, len};
    }
    return send_reason(c, MQTT_AUTH, reason, &props);
}

/* Draws a fresh nonce and sends the challenge; starts `timer` with the deadline. */
static int challenge(struct conn *c, struct loop_timer *timer, loop_timer_fn on_deadline)
{
    struct attest_state *s = c->att;
    s->nonce_len = c->gw->cfg.attest.nonce_size;
    if (random_draw(s->nonce, s->nonce_len) != 0)
        return -1;
    s->in_exchange = true;
    s->started_us = clock_mono_us();
    if (send_auth(c, MQTT_RC_CONTINUE_AUTH, s->nonce, s->nonce_len) != 0)
        return -1;
    loop_timer_cancel(c->w->loop, timer);
    loop_timer_start(c->w->loop, timer, (uint64_t)c->gw->cfg.attest.deadline * 1000u,
                     on_deadline);
    return 0;
}

static void initial_deadline(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct conn *c = container_of(t, struct conn, timer);
    broker_lock();
    c->gw->metrics.attestation_timeouts++;
    log_event(LOG_WARN, "attestation", "peer=%s id=%s verdict=refused result=timeout "
                                       "reason=\"no token within %u s\"",
              c->peer, c->who.id, c->gw->cfg.attest.deadline);
    attest_state_free(c);
    proto_end(c, connect_refuse(c, MQTT_RC_NOT_AUTHORIZED, "attestation deadline passed"));
    broker_unlock();
}

struct conn_end auth_begin(struct conn *c, const uint8_t *raw, size_t len)
{
    if (!c->att)
        return connect_refuse(c, MQTT_RC_NOT_AUTHORIZED,
                              "attestation refused: no attestation key registered for this device");
    c->att->connect = malloc(len);
    if (!c->att->connect)
        return connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    memcpy(c->att->connect, raw, len);
    c->att->connect_len = len;
    c->state = CONN_AUTHENTICATING;
    if (challenge(c, &c->timer, initial_deadline) != 0)
        return connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, "cannot start attestation");
    return CONN_GO_ON;
}

/* The token of the initial exchange: CONNACK success or refusal. */
static struct conn_end finish_initial(struct conn *c, const struct mqtt_reason_packet *a)
{
    struct iat_token tok;
    char reason[160], why[200];
    enum iat_result r = attest_verify(c, a->props.auth_data.data, a->props.auth_data.len, &tok,
                                      reason, sizeof(reason));
    if (r != IAT_OK) {
        attest_state_free(c);
        snprintf(why, sizeof(why), "attestation refused: %s", reason);
        return connect_refuse(c, MQTT_RC_NOT_AUTHORIZED, why);
    }
    c->attested = true;
    /* finish the CONNECT that started it all, from our copy of its bytes */
    struct attest_state *s = c->att;
    struct mqtt_packet p;
    if (mqtt_decode(s->connect, s->connect_len, MQTT_V5, &p) != MQTT_OK) {
        attest_state_free(c);
        return connect_refuse(c, MQTT_RC_IMPL_SPECIFIC, "internal error");
    }
    struct conn_end end = connect_accept(c, &p.u.connect);
    attest_state_free(c); /* after: p points into s->connect */
    return end;
}

static void reauth_deadline(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct conn *c = container_of(t, struct conn, att_timer);
    broker_lock();
    if (c->att && c->att->in_exchange) {
        c->gw->metrics.attestation_timeouts++;
        log_event(LOG_WARN, "attestation", "peer=%s id=%s verdict=refused result=timeout "
                                           "reason=\"no token within %u s (re-attestation)\"",
                  c->peer, c->who.id, c->gw->cfg.attest.deadline);
        attest_state_free(c);
        proto_end(c, CONN_END(MQTT_RC_NOT_AUTHORIZED, "re-attestation timed out"));
    } else {
        log_event(LOG_INFO, "reattestation_due", "peer=%s id=%s interval_s=%u", c->peer,
                  c->who.id, c->gw->cfg.attest.reattest_interval);
        proto_end(c, CONN_END(MQTT_RC_NOT_AUTHORIZED, "re-attestation due"));
    }
    broker_unlock();
}

void auth_arm_reattest(struct conn *c)
{
    uint32_t every = c->gw->cfg.attest.reattest_interval;
    loop_timer_cancel(c->w->loop, &c->att_timer);
    if (every && c->attested)
        loop_timer_start(c->w->loop, &c->att_timer, (uint64_t)every * 1000u, reauth_deadline);
}

/* AUTH on a live connection: 0x19 starts a re-attestation, 0x18 answers its challenge. */
static struct conn_end reauth(struct conn *c, const struct mqtt_reason_packet *a)
{
    struct gateway *gw = c->gw;
    if (a->reason == MQTT_RC_REAUTHENTICATE) {
        if (c->att && c->att->in_exchange) {
            return CONN_END(MQTT_RC_PROTOCOL_ERROR, "re-authentication already in progress");
        }
        struct device d;
        const char *why = NULL;
        /* the IAK is not kept on live connections: read it again (and see revocation) */
        if (lookup_device(c->gw, c->who.id, &d, &why) != 0) {
            return CONN_END(MQTT_RC_NOT_AUTHORIZED, "device no longer registered");
        }
        attest_keys_from_device(c, &d);
        device_clear(&d);
        if (!c->att) {
            return CONN_END(MQTT_RC_NOT_AUTHORIZED, "no attestation key registered");
        }
        gw->metrics.reattestations++;
        if (challenge(c, &c->att_timer, reauth_deadline) != 0)
            return CONN_END(MQTT_RC_IMPL_SPECIFIC, "cannot start re-attestation");
        return CONN_GO_ON;
    }
    if (a->reason != MQTT_RC_CONTINUE_AUTH || !c->att || !c->att->in_exchange) {
        return CONN_END(MQTT_RC_PROTOCOL_ERROR, "unexpected AUTH");
    }
    struct iat_token tok;
    char reason[160];
    /* the end's detail outlives this frame: proto_end reads it before the next packet */
    static _Thread_local char why[200];
    enum iat_result r = attest_verify(c, a->props.auth_data.data, a->props.auth_data.len, &tok,
                                      reason, sizeof(reason));
    attest_state_free(c);
    if (r != IAT_OK) {
        c->attested = false;
        snprintf(why, sizeof(why), "re-attestation refused: %s", reason);
        return CONN_END(MQTT_RC_NOT_AUTHORIZED, why);
    }
    c->attested = true;
    send_auth(c, MQTT_RC_SUCCESS, NULL, 0);
    auth_arm_reattest(c);
    return CONN_GO_ON;
}

struct conn_end handle_auth(struct conn *c, const struct mqtt_reason_packet *a)
{
    /* section 4.12: AUTH only with the CONNECT's method, and only on MQTT 5 */
    if (c->version != MQTT_V5 || !c->auth_psa_iat) {
        return CONN_END(MQTT_RC_PROTOCOL_ERROR, "AUTH without an authentication method");
    }
    if (!is_psa_iat(&a->props)) {
        if (c->state == CONN_AUTHENTICATING) {
            attest_state_free(c);
            return connect_refuse(c, MQTT_RC_BAD_AUTH_METHOD, "AUTH must carry the method PSA-IAT");
        }
        return CONN_END(MQTT_RC_PROTOCOL_ERROR, "AUTH must carry the method PSA-IAT");
    }
    if (c->state == CONN_AUTHENTICATING) {
        if (a->reason != MQTT_RC_CONTINUE_AUTH || !c->att || !c->att->in_exchange) {
            attest_state_free(c);
            return connect_refuse(c, MQTT_RC_PROTOCOL_ERROR, "expected AUTH 0x18 with the token");
        }
        return finish_initial(c, a);
    }
    return reauth(c, a);
}
