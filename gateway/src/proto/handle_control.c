/*
 * handle_control.c: packet dispatch, PINGREQ and DISCONNECT (AUTH: handle_auth.c).
 *
 * Decoding errors end the connection with 0x81 (malformed) or 0x82 (protocol error), as
 * section 4.13 asks; a packet that is valid but out of place (a second CONNECT, anything
 * before CONNECT, a server-to-client packet) is a protocol error.
 */
#include <string.h>

#include "acl.h"
#include "attest.h"
#include "broker_lock.h"
#include "conn.h"
#include "end.h"
#include "log.h"
#include "proto.h"
#include "send.h"
#include "session.h"

/* The step a packet takes; each returns CONN_GO_ON or why the connection ends. */
static struct conn_end dispatch(struct conn *c, const uint8_t *buf, size_t len)
{
    uint8_t type = buf[0] >> 4;
    if (c->state == CONN_WAIT_CONNECT && type != MQTT_CONNECT) {
        /* section 3.1: the first packet must be CONNECT; no DISCONNECT is owed */
        c->gw->metrics.protocol_errors++;
        log_event(LOG_WARN, "protocol_error", "peer=%s detail=\"first packet is %s\"", c->peer,
                  mqtt_type_name(type));
        return CONN_END(CONN_END_QUIET, NULL);
    }
    struct mqtt_packet p;
    int rc = mqtt_decode(buf, len, c->version ? c->version : MQTT_V5, &p);
    if (rc == MQTT_ERR_VERSION) {
        /* section 3.1.2.2: CONNACK 0x84 / 3.1.1 return code 1, then close */
        send_connack(c, false, MQTT_V3_BAD_VERSION, NULL); /* c->version 0: as 3.1.1 */
        c->gw->metrics.mqtt_connects_refused++;
        log_event(LOG_WARN, "connect_refused", "peer=%s reason=unsupported_protocol_version",
                  c->peer);
        return CONN_END(CONN_END_QUIET, NULL);
    }
    if (rc != MQTT_OK) {
        bool malformed = rc == MQTT_ERR_MALFORMED;
        if (c->state == CONN_WAIT_CONNECT) {
            /* no CONNECT yet: nothing is owed, but it is counted and logged all the same */
            if (malformed)
                c->gw->metrics.malformed_packets++;
            else
                c->gw->metrics.protocol_errors++;
            log_event(LOG_WARN, malformed ? "malformed_packet" : "protocol_error",
                      "peer=%s type=%s", c->peer, mqtt_type_name(type));
            return CONN_END(CONN_END_QUIET, NULL);
        }
        return malformed ? CONN_END(MQTT_RC_MALFORMED, "malformed packet")
                         : CONN_END(MQTT_RC_PROTOCOL_ERROR, "protocol error");
    }
    if (c->state == CONN_AUTHENTICATING && type != MQTT_AUTH && type != MQTT_DISCONNECT)
        return CONN_END(MQTT_RC_PROTOCOL_ERROR, "packet other than AUTH during authentication");
    switch (type) {
    case MQTT_CONNECT:
        if (c->state != CONN_WAIT_CONNECT)
            return CONN_END(MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
        return handle_connect(c, &p.u.connect, buf, len);
    case MQTT_PUBLISH:
        return handle_publish(c, &p.u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        handle_ack(c, type, &p.u.ack);
        return CONN_GO_ON;
    case MQTT_PUBREL:
        handle_pubrel(c, &p.u.ack);
        return CONN_GO_ON;
    case MQTT_SUBSCRIBE:
        return handle_subscribe(c, &p.u.subscribe);
    case MQTT_UNSUBSCRIBE:
        return handle_unsubscribe(c, &p.u.subscribe);
    case MQTT_PINGREQ:
        send_pingresp(c);
        return CONN_GO_ON;
    case MQTT_DISCONNECT:
        return handle_disconnect(c, &p.u.reason);
    case MQTT_AUTH:
        return handle_auth(c, &p.u.reason);
    default:
        /* server-to-client packets */
        return CONN_END(MQTT_RC_PROTOCOL_ERROR, "unexpected packet type");
    }
}

void handle_packet(struct conn *c, const uint8_t *buf, size_t len)
{
    BROKER_LOCK_HELD();
    if (c->state == CONN_CONNECTED && !c->session)
        return; /* taken over by a connection on another worker, which is closing this one */
    proto_end(c, dispatch(c, buf, len));
}

struct conn_end handle_disconnect(struct conn *c, const struct mqtt_reason_packet *d)
{
    struct session *s = c->session;
    if (c->version == MQTT_V5 && mqtt_props_has(&d->props, MQTT_PROP_SESSION_EXPIRY)) {
        /* section 3.14.2.2.2: a session that was to end at disconnect cannot be revived */
        if (s->expiry == 0 && d->props.session_expiry != 0)
            return CONN_END(MQTT_RC_PROTOCOL_ERROR,
                            "session expiry set on DISCONNECT after 0 at CONNECT");
        uint32_t e = d->props.session_expiry;
        s->expiry = e > c->gw->cfg.max_session_expiry ? c->gw->cfg.max_session_expiry : e;
    }
    /* 0x04 "disconnect with will message" keeps the will; anything else discards it */
    if (!(c->version == MQTT_V5 && d->reason == MQTT_RC_DISCONNECT_WITH_WILL) && s->will) {
        msg_unref(s->will);
        s->will = NULL;
    }
    c->graceful = true;
    return (struct conn_end){d->reason, NULL, true};
}

/* The connection ends (broker lock held): an MQTT 5 client connected (or authenticating) hears
 * why in a DISCONNECT (section 3.14); its session lets go of it (will, expiry clock). */
static void on_closing(struct conn *c, int reason, const char *detail)
{
    if (reason >= 0x80 && c->version == MQTT_V5 &&
        (c->state == CONN_CONNECTED || c->state == CONN_AUTHENTICATING)) {
        struct mqtt_props props = {0};
        if (detail) {
            mqtt_props_set(&props, MQTT_PROP_REASON_STRING);
            props.reason_string = (struct mqtt_bytes){(const uint8_t *)detail, strlen(detail)};
        }
        send_reason(c, MQTT_DISCONNECT, (uint8_t)reason, &props);
    }
    struct session *s = c->session;
    c->session = NULL;
    if (s && s->conn == c)
        session_detach(c->gw, s);
}

/* Its memory goes: the ACL lists and any attestation material (wiped). */
static void on_release(struct conn *c)
{
    attest_state_free(c);
    acl_principal_clear(&c->who);
}

/* Output held back for a slow reader has drained: its session delivers again. */
static void on_drained(struct conn *c)
{
    if (c->session && c->session->conn == c)
        session_flush(c->gw, c->session);
}

const struct conn_handlers proto_handlers = {
    .packet = handle_packet,
    .unframed = proto_end,
    .drained = on_drained,
    .closing = on_closing,
    .release = on_release,
};

int proto_admit(struct conn *c, const struct device *d)
{
    /* the principal (role, ACL) is built now, so CONNECT needs no second registry read */
    if (acl_principal_init(&c->who, d, &c->gw->cfg) != 0)
        return -1;
    attest_keys_from_device(c, d); /* kept until CONNECT decides on attestation */
    return 0;
}
