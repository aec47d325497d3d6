/*
 * handle_connect.c: CONNECT -> (enhanced authentication) -> CONNACK.
 *
 * Order of checks, each with its own reason code (MQTT 5 section 3.2.2.2; 3.1.1 codes in
 * brackets): the client id must be the TLS-PSK identity, or empty (it is then given the
 * identity) -> 0x85 [2]; anonymous clients only where allowed -> 0x87 [5]; the will topic must
 * be valid and allowed -> 0x90/0x87 [5]; attestation policy -> 0x8C / 0x87 [5]. Then the session
 * is taken over, resumed or created, and CONNACK tells the client our limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "attest.h"
#include "clock.h"
#include "conn.h"
#include "end.h"
#include "log.h"
#include "proto.h"
#include "random.h"
#include "send.h"
#include "session.h"
#include "topic_tree.h"

#define REATTEST_KEY "psa-iat-reattest-interval"

static uint8_t v3_code(uint8_t reason)
{
    switch (reason) {
    case MQTT_RC_CLIENT_ID_INVALID:
        return MQTT_V3_ID_REJECTED;
    case MQTT_RC_UNSUPPORTED_VERSION:
        return MQTT_V3_BAD_VERSION;
    case MQTT_RC_BAD_USER_OR_PASSWORD:
        return MQTT_V3_BAD_USER_OR_PASSWORD;
    case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY:
    case MQTT_RC_IMPL_SPECIFIC:
        return MQTT_V3_UNAVAILABLE;
    default:
        return MQTT_V3_NOT_AUTHORIZED;
    }
}

/* Refuses the CONNECT with a CONNACK carrying the reason; the connection then closes. */
struct conn_end connect_refuse(struct conn *c, uint8_t reason, const char *why)
{
    struct mqtt_props props = {0};
    if (c->version == MQTT_V5 && why) {
        mqtt_props_set(&props, MQTT_PROP_REASON_STRING);
        props.reason_string = (struct mqtt_bytes){(const uint8_t *)why, strlen(why)};
    }
    c->gw->metrics.mqtt_connects_refused++;
    char id[LOG_SAFE_MAX];
    log_event(LOG_WARN, "connect_refused", "peer=%s id=%s reason=%s detail=\"%s\"", c->peer,
              c->who.id[0] ? log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)) : "-",
              mqtt_reason_name(reason), why);
    send_connack(c, false, c->version == MQTT_V5 ? reason : v3_code(reason), &props);
    return CONN_END(CONN_END_QUIET, NULL);
}

/* One User Property (section 3.1.2.11.8) as a raw property block; buf must hold
 * 5 + strlen(key) + strlen(value) bytes. */
static struct mqtt_bytes user_property(uint8_t *buf, const char *key, const char *value)
{
    size_t k = strlen(key), v = strlen(value), n = 0;
    buf[n++] = MQTT_PROP_USER_PROPERTY;
    buf[n++] = (uint8_t)(k >> 8);
    buf[n++] = (uint8_t)k;
    memcpy(buf + n, key, k);
    n += k;
    buf[n++] = (uint8_t)(v >> 8);
    buf[n++] = (uint8_t)v;
    memcpy(buf + n, value, v);
    n += v;
    return (struct mqtt_bytes){buf, n};
}

static void keepalive_check(struct loop *l, struct loop_timer *t)
{
    struct conn *c = container_of(t, struct conn, timer);
    uint64_t limit = (uint64_t)c->keep_alive * 1500u; /* section 3.1.2.10: 1.5 x keep-alive */
    uint64_t idle = loop_now_ms(l) - c->last_rx_ms;
    if (c->read_paused) /* we stopped reading (spool back-pressure), not the client talking */
        idle = 0;
    if (idle >= limit) {
        proto_end(c, CONN_END(MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout"));
        return;
    }
    loop_timer_start(l, t, limit - idle, keepalive_check);
}

static struct msg *make_will(struct conn *c, const struct mqtt_connect *p)
{
    return msg_new((const char *)p->will_topic.data, p->will_topic.len, p->will_payload.data,
                   p->will_payload.len, p->will_qos, p->will_retain,
                   c->version == MQTT_V5 ? &p->will_props : NULL, clock_mono_ms());
}

struct conn_end handle_connect(struct conn *c, const struct mqtt_connect *p, const uint8_t *raw,
                               size_t raw_len)
{
    struct gateway *gw = c->gw;
    c->version = p->version;
    char idbuf[DEVICE_ID_MAX + 1];

    if (c->tls) {
        /* the device's identity is the PSK identity; nobody speaks for another device (an
         * empty client id is given the identity, in connect_accept) */
        if (p->client_id.len != 0 && (p->client_id.len != strlen(c->who.id) ||
                                      memcmp(p->client_id.data, c->who.id, p->client_id.len))) {
            return connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "client id must equal the PSK identity");
        }
        /* role and ACL came with the PSK from the registry during the handshake (tls.c) */
    } else {
        if (!gw->cfg.allow_anonymous) {
            return connect_refuse(c, MQTT_RC_NOT_AUTHORIZED, "anonymous clients are not allowed");
        }
        if (p->client_id.len == 0) {
            if (p->version == MQTT_V311 && !p->clean_start) {
                /* 3.1.1 section 3.1.3.1: an empty id needs clean session */
                return connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "empty client id needs clean session");
            }
            uint8_t r[8];
            if (random_draw(r, sizeof(r)) != 0)
                return connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, "no randomness for a client id");
            int n = snprintf(idbuf, sizeof(idbuf), "auto-");
            for (size_t i = 0; i < sizeof(r); i++)
                n += snprintf(idbuf + n, sizeof(idbuf) - (size_t)n, "%02x", r[i]);
        } else if (p->client_id.len > DEVICE_ID_MAX) {
            return connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "client id too long");
        } else {
            memcpy(idbuf, p->client_id.data, p->client_id.len);
            idbuf[p->client_id.len] = '\0';
        }
        memcpy(c->who.id, idbuf, sizeof(c->who.id)); /* before the ACL: %c needs it */
        if (acl_principal_init(&c->who, NULL, &gw->cfg) != 0) {
            return connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        }
    }

    if (p->will) {
        if (!mqtt_topic_name_valid(p->will_topic.data, p->will_topic.len))
            return connect_refuse(c, MQTT_RC_TOPIC_NAME_INVALID,
                                  "will topic is not a valid topic name");
        if (!topic_tree_within_limits(p->will_topic.data, p->will_topic.len,
                                      gw->cfg.max_topic_length, gw->cfg.max_topic_levels)) {
            gw->metrics.topics_refused++;
            return connect_refuse(c, MQTT_RC_TOPIC_NAME_INVALID,
                                  "will topic over mqtt.max_topic_length or max_topic_levels");
        }
        if (!acl_may_publish(&c->who, (const char *)p->will_topic.data, p->will_topic.len)) {
            gw->metrics.acl_denied_publish++;
            return connect_refuse(c, MQTT_RC_NOT_AUTHORIZED, "will topic not allowed by the ACL");
        }
    }

    /* Attestation (docs/design/wire.md section 3, docs/attestation.md): the device's policy decides. */
    enum attest_policy policy = c->who.attestation == ATTEST_DEFAULT ? gw->cfg.attestation_default
                                                                     : c->who.attestation;
    if (c->version == MQTT_V5 && mqtt_props_has(&p->props, MQTT_PROP_AUTH_METHOD)) {
        const struct mqtt_bytes *m = &p->props.auth_method;
        if (m->len != strlen(ATTEST_METHOD) || memcmp(m->data, ATTEST_METHOD, m->len) != 0) {
            return connect_refuse(c, MQTT_RC_BAD_AUTH_METHOD,
                           "authentication method not supported (only PSA-IAT)");
        }
        if (c->who.anonymous) {
            return connect_refuse(c, MQTT_RC_NOT_AUTHORIZED,
                           "attestation needs a TLS-PSK device identity");
        }
        c->auth_psa_iat = true;
        if (policy != ATTEST_OFF)
            return auth_begin(c, raw, raw_len);
        /* policy off: the device is not challenged; the CONNACK still names the method */
    } else if (policy == ATTEST_REQUIRED && !c->who.anonymous) {
        return connect_refuse(c, MQTT_RC_NOT_AUTHORIZED,
                       c->version == MQTT_V5
                           ? "attestation required (authentication method PSA-IAT)"
                           : "attestation required (MQTT 5 with authentication method PSA-IAT)");
    }
    attest_state_free(c); /* not attesting: the IAK is not needed */
    return connect_accept(c, p);
}

struct conn_end connect_accept(struct conn *c, const struct mqtt_connect *p)
{
    struct gateway *gw = c->gw;
    char idbuf[DEVICE_ID_MAX + 1];
    bool assigned = p->client_id.len == 0;
    snprintf(idbuf, sizeof(idbuf), "%s", c->who.id);

    /* limits the client asked for */
    c->keep_alive = p->keep_alive;
    bool keepalive_capped = false;
    if (c->keep_alive > gw->cfg.max_keepalive ||
        (c->keep_alive == 0 && c->version == MQTT_V5)) {
        /* MQTT 5 lets the server set the keep-alive (Server Keep Alive, section 3.2.2.3.14);
         * 3.1.1 has no such means, so a 3.1.1 client asking for none gets none (TCP keep-alive
         * still finds dead peers) */
        c->keep_alive = gw->cfg.max_keepalive;
        keepalive_capped = true;
    }
    c->client_receive_max = 65535;
    c->request_problem_info = true;
    uint32_t expiry = p->clean_start ? 0 : gw->cfg.max_session_expiry;
    bool expiry_capped = false;
    if (c->version == MQTT_V5) {
        const struct mqtt_props *pp = &p->props;
        expiry = mqtt_props_has(pp, MQTT_PROP_SESSION_EXPIRY) ? pp->session_expiry : 0;
        if (mqtt_props_has(pp, MQTT_PROP_RECEIVE_MAX))
            c->client_receive_max = pp->receive_max;
        if (mqtt_props_has(pp, MQTT_PROP_MAX_PACKET_SIZE))
            c->client_max_packet = pp->max_packet_size;
        if (mqtt_props_has(pp, MQTT_PROP_REQUEST_PROBLEM_INFO))
            c->request_problem_info = pp->request_problem_info;
        if (mqtt_props_has(pp, MQTT_PROP_TOPIC_ALIAS_MAX) && pp->topic_alias_max > 0 &&
            gw->cfg.topic_aliases_out)
            c->aliases_out = topic_alias_new(pp->topic_alias_max); /* NULL: none used */
    }
    /* our own send window: the client's Receive Maximum (MQTT 5) and never above the
     * configured in-flight limit, as mosquitto's max_inflight_messages */
    if (c->client_receive_max > gw->cfg.max_inflight_messages)
        c->client_receive_max = gw->cfg.max_inflight_messages;
    if (expiry > gw->cfg.max_session_expiry && expiry != 0) {
        expiry = gw->cfg.max_session_expiry;
        expiry_capped = true;
    }

    /* take over, resume or start the session */
    struct session *s = session_find(gw, idbuf, c->who.anonymous);
    if (s && s->conn) {
        struct conn *old = s->conn;
        gw->metrics.sessions_taken_over++;
        char safe[LOG_SAFE_MAX];
        log_event(LOG_INFO, "session_taken_over", "id=%s old_peer=%s new_peer=%s",
                  log_safe(idbuf, strlen(idbuf), safe, sizeof(safe)), old->peer, c->peer);
        /* the session leaves the old connection now (its will and expiry apply as at any
         * disconnect); the old connection's own worker sends it DISCONNECT 0x8E and closes it */
        old->session = NULL;
        session_detach(gw, s);
        conn_close_remote(old, MQTT_RC_SESSION_TAKEN_OVER);
        s = session_find(gw, idbuf, c->who.anonymous); /* it may have ended with the old one */
    }
    bool present = false;
    if (s && p->clean_start) {
        session_destroy(gw, s);
        s = NULL;
    }
    if (s) {
        present = true;
    } else {
        s = session_create(gw, idbuf, c->who.anonymous);
        if (!s) {
            return connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        }
    }
    s->expiry = expiry;
    session_attach(gw, s, c); /* drops a will left by an earlier connection */
    if (p->will) {
        s->will = make_will(c, p);
        s->will_delay = c->version == MQTT_V5 ? p->will_props.will_delay : 0;
    }

    c->alias_max = c->version == MQTT_V5 ? gw->cfg.topic_alias_maximum : 0;
    if (c->alias_max) {
        c->aliases = calloc((size_t)c->alias_max + 1, sizeof(*c->aliases));
        if (!c->aliases)
            c->alias_max = 0;
    }

    struct mqtt_props props = {0};
    uint8_t reattest_prop[5 + sizeof(REATTEST_KEY) + 12];
    if (c->version == MQTT_V5) {
        mqtt_props_set(&props, MQTT_PROP_RECEIVE_MAX);
        props.receive_max = gw->cfg.receive_maximum;
        mqtt_props_set(&props, MQTT_PROP_MAX_PACKET_SIZE);
        props.max_packet_size = gw->cfg.max_packet_size;
        mqtt_props_set(&props, MQTT_PROP_TOPIC_ALIAS_MAX);
        props.topic_alias_max = c->alias_max;
        mqtt_props_set(&props, MQTT_PROP_RETAIN_AVAILABLE);
        props.retain_available = 1;
        mqtt_props_set(&props, MQTT_PROP_WILDCARD_SUB_AVAILABLE);
        props.wildcard_sub_available = 1;
        mqtt_props_set(&props, MQTT_PROP_SUB_ID_AVAILABLE);
        props.sub_id_available = 1;
        mqtt_props_set(&props, MQTT_PROP_SHARED_SUB_AVAILABLE);
        props.shared_sub_available = 1;
        if (assigned) {
            mqtt_props_set(&props, MQTT_PROP_ASSIGNED_CLIENT_ID);
            props.assigned_client_id = (struct mqtt_bytes){(const uint8_t *)s->id,
                                                           strlen(s->id)};
        }
        if (keepalive_capped) {
            mqtt_props_set(&props, MQTT_PROP_SERVER_KEEP_ALIVE);
            props.server_keep_alive = c->keep_alive;
        }
        if (expiry_capped) {
            mqtt_props_set(&props, MQTT_PROP_SESSION_EXPIRY);
            props.session_expiry = expiry;
        }
        if (c->auth_psa_iat) {
            /* section 3.2.2.3.17: the CONNACK carries the CONNECT's method */
            mqtt_props_set(&props, MQTT_PROP_AUTH_METHOD);
            props.auth_method = (struct mqtt_bytes){(const uint8_t *)ATTEST_METHOD,
                                                    strlen(ATTEST_METHOD)};
        }
        if (c->attested && gw->cfg.attest.reattest_interval) {
            /* tells the device how often fresh evidence is due (a user property, as MQTT 5
             * has no field for it) */
            char secs[12];
            snprintf(secs, sizeof(secs), "%u", gw->cfg.attest.reattest_interval);
            props.raw = user_property(reattest_prop, REATTEST_KEY, secs);
            props.n_user = 1;
        }
    }
    c->state = CONN_CONNECTED;
    send_connack(c, present, MQTT_RC_SUCCESS, &props);
    histogram_observe(&gw->metrics.connect_latency, clock_mono_us() - c->accepted_us);
    loop_timer_cancel(c->w->loop, &c->timer); /* the connect (or attestation) deadline */
    auth_arm_reattest(c);
    if (c->keep_alive)
        loop_timer_start(c->w->loop, &c->timer, (uint64_t)c->keep_alive * 1500u,
                         keepalive_check);
    gw->metrics.mqtt_connects_ok++;
    char safe[LOG_SAFE_MAX];
    log_event(LOG_INFO, "connect", "peer=%s id=%s role=%s mqtt=%s clean_start=%d "
                               "session_present=%d keep_alive=%u will=%d tls=%s attested=%d",
              c->peer, log_safe(s->id, strlen(s->id), safe, sizeof(safe)),
              c->who.anonymous ? "anonymous" : device_role_name(c->who.role),
              c->version == MQTT_V5 ? "5.0" : "3.1.1", p->clean_start, present, c->keep_alive,
              p->will, c->tls ? c->tls_version : "none", c->attested);
    session_flush(gw, s);
    return CONN_GO_ON;
}
