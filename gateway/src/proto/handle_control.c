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
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "send.h"
#include "session.h"

static void protocol_error(struct conn *c, const char *why)
{
    c->gw->metrics.protocol_errors++;
    log_event(LOG_WARN, "protocol_error", "peer=%s id=%s detail=\"%s\"", c->peer,
              c->who.id[0] ? c->who.id : "-", why);
    conn_close(c, MQTT_RC_PROTOCOL_ERROR, why);
}

void handle_packet(struct conn *c, const uint8_t *buf, size_t len)
{
    uint8_t type = buf[0] >> 4;
    if (c->state == CONN_CONNECTED && !c->session)
        return; /* taken over by a connection on another worker, which is closing this one */
    if (c->state == CONN_WAIT_CONNECT && type != MQTT_CONNECT) {
        /* section 3.1: the first packet must be CONNECT; no DISCONNECT is owed */
        c->gw->metrics.protocol_errors++;
        log_event(LOG_WARN, "protocol_error", "peer=%s detail=\"first packet is %s\"", c->peer,
                  mqtt_type_name(type));
        conn_close(c, -1, NULL);
        return;
    }
    struct mqtt_packet p;
    int rc = mqtt_decode(buf, len, c->version ? c->version : MQTT_V5, &p);
    if (rc == MQTT_ERR_VERSION) {
        /* section 3.1.2.2: CONNACK 0x84 / 3.1.1 return code 1, then close */
        send_connack(c, false, MQTT_V3_BAD_VERSION, NULL); /* c->version 0: as 3.1.1 */
        c->gw->metrics.mqtt_connects_refused++;
        log_event(LOG_WARN, "connect_refused", "peer=%s reason=unsupported_protocol_version",
                  c->peer);
        conn_close(c, -1, NULL);
        return;
    }
    if (rc != MQTT_OK) {
        bool malformed = rc == MQTT_ERR_MALFORMED;
        if (malformed)
            c->gw->metrics.malformed_packets++;
        else
            c->gw->metrics.protocol_errors++;
        log_event(LOG_WARN, malformed ? "malformed_packet" : "protocol_error",
                  "peer=%s id=%s type=%s", c->peer, c->who.id[0] ? c->who.id : "-",
                  mqtt_type_name(type));
        if (c->state == CONN_WAIT_CONNECT)
            conn_close(c, -1, NULL);
        else
            conn_close(c, malformed ? MQTT_RC_MALFORMED : MQTT_RC_PROTOCOL_ERROR,
                       malformed ? "malformed packet" : "protocol error");
        return;
    }
    if (c->state == CONN_AUTHENTICATING && type != MQTT_AUTH && type != MQTT_DISCONNECT) {
        protocol_error(c, "packet other than AUTH during authentication");
        return;
    }
    switch (type) {
    case MQTT_CONNECT:
        if (c->state != CONN_WAIT_CONNECT) {
            protocol_error(c, "second CONNECT");
            return;
        }
        handle_connect(c, &p.u.connect, buf, len);
        return;
    case MQTT_PUBLISH:
        handle_publish(c, &p.u.publish);
        return;
    case MQTT_PUBACK:
        handle_puback(c, &p.u.ack);
        return;
    case MQTT_PUBREL:
        handle_pubrel(c, &p.u.ack);
        return;
    case MQTT_SUBSCRIBE:
        handle_subscribe(c, &p.u.subscribe);
        return;
    case MQTT_UNSUBSCRIBE:
        handle_unsubscribe(c, &p.u.subscribe);
        return;
    case MQTT_PINGREQ:
        send_pingresp(c);
        return;
    case MQTT_DISCONNECT:
        handle_disconnect(c, &p.u.reason);
        return;
    case MQTT_AUTH:
        handle_auth(c, &p.u.reason);
        return;
    default:
        /* PUBREC / PUBCOMP (we never send QoS 2) and server-to-client packets */
        protocol_error(c, "unexpected packet type");
        return;
    }
}

void handle_disconnect(struct conn *c, const struct mqtt_reason_packet *d)
{
    struct session *s = c->session;
    if (c->version == MQTT_V5 && mqtt_props_has(&d->props, MQTT_PROP_SESSION_EXPIRY)) {
        /* section 3.14.2.2.2: a session that was to end at disconnect cannot be revived */
        if (s->expiry == 0 && d->props.session_expiry != 0) {
            protocol_error(c, "session expiry set on DISCONNECT after 0 at CONNECT");
            return;
        }
        uint32_t e = d->props.session_expiry;
        s->expiry = e > c->gw->cfg.max_session_expiry ? c->gw->cfg.max_session_expiry : e;
    }
    /* 0x04 "disconnect with will message" keeps the will; anything else discards it */
    if (!(c->version == MQTT_V5 && d->reason == MQTT_RC_DISCONNECT_WITH_WILL) && s->will) {
        msg_unref(s->will);
        s->will = NULL;
    }
    c->graceful = true;
    conn_close(c, d->reason, NULL);
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

const struct conn_handlers proto_handlers = {
    .packet = handle_packet,
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
