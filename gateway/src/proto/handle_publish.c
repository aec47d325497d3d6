/*
 * handle_publish.c: PUBLISH from a client, and the acknowledgements of both directions.
 *
 * Inbound QoS 2 is accepted (method B of section 4.3.3: the message is routed on receipt and
 * its packet id remembered until PUBREL, so a DUP resend is not routed twice). Outbound we
 * grant at most QoS 1 (SUBACK says so), so the gateway never expects a PUBREC or PUBCOMP.
 * A publish outside the ACL: MQTT 5 QoS 1/2 gets PUBACK/PUBREC 0x87; MQTT 5 QoS 0 and every
 * 3.1.1 publish end the connection (WIRE.md section 2), logged and counted.
 *
 * A message that routes to the cloud is acknowledged only once the spool made it durable
 * (cloud.c, WIRE.md section 6).
 */
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "cloud.h"
#include "clock.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "send.h"
#include "session.h"

static bool qos2_pending(const struct session *s, uint16_t id)
{
    for (uint16_t i = 0; i < s->n_qos2_in; i++)
        if (s->qos2_in[i] == id)
            return true;
    return false;
}

static int qos2_remember(struct session *s, uint16_t id)
{
    if (s->n_qos2_in == s->cap_qos2_in) {
        uint16_t cap = s->cap_qos2_in ? (uint16_t)(s->cap_qos2_in * 2) : 4;
        uint16_t *n = realloc(s->qos2_in, cap * sizeof(*n));
        if (!n)
            return -1;
        s->qos2_in = n;
        s->cap_qos2_in = cap;
    }
    s->qos2_in[s->n_qos2_in++] = id;
    return 0;
}

static bool qos2_forget(struct session *s, uint16_t id)
{
    for (uint16_t i = 0; i < s->n_qos2_in; i++) {
        if (s->qos2_in[i] == id) {
            s->qos2_in[i] = s->qos2_in[--s->n_qos2_in];
            return true;
        }
    }
    return false;
}

/* Resolves a Topic Alias (section 3.3.2.3.4). Returns false after closing the connection. */
static bool resolve_alias(struct conn *c, struct mqtt_publish *p)
{
    if (!mqtt_props_has(&p->props, MQTT_PROP_TOPIC_ALIAS))
        return true;
    uint16_t a = p->props.topic_alias;
    if (a == 0 || a > c->alias_max) {
        conn_close(c, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
        return false;
    }
    if (p->topic.len == 0) {
        if (!c->aliases[a]) {
            conn_close(c, MQTT_RC_PROTOCOL_ERROR, "unknown topic alias");
            return false;
        }
        p->topic = (struct mqtt_bytes){(const uint8_t *)c->aliases[a], strlen(c->aliases[a])};
        return true;
    }
    char *t = malloc(p->topic.len + 1);
    if (!t) {
        conn_close(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
        return false;
    }
    memcpy(t, p->topic.data, p->topic.len);
    t[p->topic.len] = '\0';
    free(c->aliases[a]);
    c->aliases[a] = t;
    return true;
}

void handle_publish(struct conn *c, struct mqtt_publish *p)
{
    struct gateway *gw = c->gw;
    struct session *s = c->session;
    gw->metrics.publishes_in++;
    if (c->version == MQTT_V5 && mqtt_props_has(&p->props, MQTT_PROP_SUBSCRIPTION_ID)) {
        /* section 3.3.4: a client must not send Subscription Identifiers */
        gw->metrics.protocol_errors++;
        conn_close(c, MQTT_RC_PROTOCOL_ERROR, "subscription identifier in PUBLISH");
        return;
    }
    if (!resolve_alias(c, p))
        return;
    if (!mqtt_topic_name_valid(p->topic.data, p->topic.len)) {
        gw->metrics.protocol_errors++;
        conn_close(c, c->version == MQTT_V5 ? MQTT_RC_TOPIC_NAME_INVALID : -1,
                   "invalid topic name");
        return;
    }
    if (p->qos == 2 && qos2_pending(s, p->packet_id)) {
        /* a resend of a QoS 2 message we already routed */
        if (c->spool_waiting > 0)
            cloud_take_publish(c, p, NULL, NULL, 0);
        else
            send_ack(c, MQTT_PUBREC, p->packet_id, MQTT_RC_SUCCESS, NULL);
        return;
    }
    if (p->qos == 2 && s->n_qos2_in >= gw->cfg.receive_maximum) {
        conn_close(c, MQTT_RC_RECEIVE_MAX_EXCEEDED, "too many unacknowledged QoS 2 messages");
        return;
    }
    const char *topic = (const char *)p->topic.data;
    if (!acl_may_publish(&c->who, topic, p->topic.len)) {
        gw->metrics.acl_denied_publish++;
        char id[LOG_SAFE_MAX], t[LOG_SAFE_MAX];
        log_event(LOG_WARN, "acl_denied", "action=publish id=%s topic=%s qos=%u",
                  log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)),
                  log_safe(topic, p->topic.len, t, sizeof(t)), p->qos);
        if (c->version == MQTT_V5 && p->qos > 0) {
            send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
                          MQTT_RC_NOT_AUTHORIZED, "topic not allowed by the ACL");
            return;
        }
        conn_close(c, c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : -1,
                   "topic not allowed by the ACL");
        return;
    }
    /* only authenticated devices speak to the cloud: an anonymous local tool could otherwise
     * publish under a device's name */
    const char *rest = NULL;
    size_t rest_len = 0;
    const struct cloud_route *route =
        c->who.anonymous ? NULL : cloud_route(gw, topic, p->topic.len, &rest, &rest_len);
    bool to_cloud = route != NULL;
    if (to_cloud && cloud_take_publish(c, p, route, rest, rest_len) != 0)
        return; /* refused: the cloud could not take it */
    struct msg *m = msg_new(topic, p->topic.len, p->payload.data, p->payload.len,
                            p->qos > 1 ? 1 : p->qos, p->retain,
                            c->version == MQTT_V5 ? &p->props : NULL, clock_mono_ms());
    if (!m) {
        conn_close(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
        return;
    }
    broker_publish(gw, m, s);
    msg_unref(m);
    if (p->qos == 2 && qos2_remember(s, p->packet_id) != 0) {
        conn_close(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
        return;
    }
    if (p->qos == 0 || to_cloud)
        return; /* to_cloud: the spool sends the ack once the message is durable */
    if (c->spool_waiting > 0) /* earlier acks still wait for the spool: keep the order */
        cloud_take_publish(c, p, NULL, NULL, 0);
    else
        send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, MQTT_RC_SUCCESS,
                      NULL);
}

void handle_pubrel(struct conn *c, const struct mqtt_ack *a)
{
    bool known = qos2_forget(c->session, a->packet_id);
    send_ack(c, MQTT_PUBCOMP, a->packet_id,
                  known || c->version != MQTT_V5 ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND,
                  NULL);
}

void handle_puback(struct conn *c, const struct mqtt_ack *a)
{
    session_ack(c->gw, c->session, a->packet_id);
}
