/*
 * handle_publish.c: PUBLISH from a client, and the acknowledgements of both directions.
 *
 * Inbound QoS 2 is accepted (method B of section 4.3.3: the message is routed on receipt and
 * its packet id remembered until PUBREL, so a DUP resend is not routed twice). Outbound QoS 2
 * runs in broker/session.c (PUBREC -> PUBREL -> PUBCOMP).
 * A publish outside the ACL: MQTT 5 QoS 1/2 gets PUBACK/PUBREC 0x87; MQTT 5 QoS 0 ends the
 * connection with DISCONNECT 0x87; MQTT 3.1.1 gets the usual acknowledgement and the message is
 * dropped (docs/design/wire.md section 2). Logged once per interval per client, counted.
 *
 * A message that routes to the cloud is acknowledged only once the spool made it durable
 * (cloud.c, docs/design/wire.md section 6).
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
#include "topic_tree.h"

#define TOPIC_LIMIT_TEXT "topic over mqtt.max_topic_length or max_topic_levels"

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

/* Resolves a Topic Alias (section 3.3.2.3.4). */
static struct conn_end resolve_alias(struct conn *c, struct mqtt_publish *p)
{
    if (!mqtt_props_has(&p->props, MQTT_PROP_TOPIC_ALIAS))
        return CONN_GO_ON;
    uint16_t a = p->props.topic_alias;
    if (a == 0 || a > c->alias_max) {
        return CONN_END(MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
    }
    if (p->topic.len == 0) {
        if (!c->aliases[a]) {
            return CONN_END(MQTT_RC_PROTOCOL_ERROR, "unknown topic alias");
        }
        p->topic = (struct mqtt_bytes){(const uint8_t *)c->aliases[a], strlen(c->aliases[a])};
        return CONN_GO_ON;
    }
    char *t = malloc(p->topic.len + 1);
    if (!t) {
        return CONN_END(MQTT_RC_IMPL_SPECIFIC, "out of memory");
    }
    memcpy(t, p->topic.data, p->topic.len);
    t[p->topic.len] = '\0';
    free(c->aliases[a]);
    c->aliases[a] = t;
    return CONN_GO_ON;
}

struct conn_end handle_publish(struct conn *c, struct mqtt_publish *p)
{
    struct gateway *gw = c->gw;
    struct session *s = c->session;
    gw->metrics.publishes_in++;
    s->publishes_in++;
    if (c->version == MQTT_V5 && mqtt_props_has(&p->props, MQTT_PROP_SUBSCRIPTION_ID)) {
        /* section 3.3.4: a client must not send Subscription Identifiers */
        return CONN_END(MQTT_RC_PROTOCOL_ERROR, "subscription identifier in PUBLISH");
    }
    if (p->topic.len && !topic_tree_within_limits(p->topic.data, p->topic.len,
                                                  gw->cfg.max_topic_length,
                                                  gw->cfg.max_topic_levels)) {
        /* a policy limit, not a malformed name: MQTT 5 hears 0x90 in its ack and goes on */
        gw->metrics.topics_refused++;
        static struct log_limit limit;
        char id[LOG_SAFE_MAX];
        LOG_LIMITED(&limit, LOG_WARN, "topic_refused",
                    "action=publish id=%s bytes=%zu max_topic_length=%u max_topic_levels=%u",
                    log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)), p->topic.len,
                    gw->cfg.max_topic_length, gw->cfg.max_topic_levels);
        if (c->version != MQTT_V5)
            return CONN_END(MQTT_RC_TOPIC_NAME_INVALID, TOPIC_LIMIT_TEXT);
        if (p->qos > 0)
            send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
                     MQTT_RC_TOPIC_NAME_INVALID, TOPIC_LIMIT_TEXT);
        return CONN_GO_ON;
    }
    struct conn_end end = resolve_alias(c, p);
    if (end.reason != CONN_END_NONE)
        return end;
    if (!mqtt_topic_name_valid(p->topic.data, p->topic.len))
        return CONN_END(MQTT_RC_TOPIC_NAME_INVALID, "invalid topic name");
    if (p->qos == 2 && qos2_pending(s, p->packet_id)) {
        /* a resend of a QoS 2 message we already routed */
        if (c->spool_waiting > 0)
            cloud_take_publish(c, p, NULL, NULL, 0, &end);
        else
            send_ack(c, MQTT_PUBREC, p->packet_id, MQTT_RC_SUCCESS, NULL);
        return end;
    }
    if (p->qos == 2 && s->n_qos2_in >= gw->cfg.receive_maximum)
        return CONN_END(MQTT_RC_RECEIVE_MAX_EXCEEDED, "too many unacknowledged QoS 2 messages");
    const char *topic = (const char *)p->topic.data;
    if (!acl_may_publish(&c->who, topic, p->topic.len)) {
        /* a device that keeps publishing where it may not is one line per interval, with the
         * count; the counter has every one */
        gw->metrics.acl_denied_publish++;
        char id[LOG_SAFE_MAX], t[LOG_SAFE_MAX];
        LOG_LIMITED(&s->acl_log, LOG_WARN, "acl_denied",
                    "action=publish id=%s topic=%s qos=%u mqtt=%s",
                    log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)),
                    log_safe(topic, p->topic.len, t, sizeof(t)), p->qos,
                    c->version == MQTT_V5 ? "5.0" : "3.1.1");
        if (c->version == MQTT_V5 && p->qos > 0) {
            send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
                     MQTT_RC_NOT_AUTHORIZED, "topic not allowed by the ACL");
            return CONN_GO_ON;
        }
        if (c->version != MQTT_V5) {
            /* 3.1.1 has no negative acknowledgement: [MQTT-3.3.5-2] lets the server either
             * acknowledge as usual or close; a closed client would reconnect and send it again
             * forever, so it is acknowledged (as mosquitto does) and dropped. A QoS 2 one is
             * remembered until its PUBREL like any other. */
            if (p->qos == 2 && !qos2_pending(s, p->packet_id) &&
                qos2_remember(s, p->packet_id) != 0)
                return CONN_END(MQTT_RC_IMPL_SPECIFIC, "out of memory");
            if (p->qos > 0)
                send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
                         MQTT_RC_SUCCESS, NULL);
            return CONN_GO_ON;
        }
        /* MQTT 5 QoS 0: no acknowledgement to carry 0x87, so the DISCONNECT says it */
        return CONN_END(MQTT_RC_NOT_AUTHORIZED, "topic not allowed by the ACL");
    }
    /* only authenticated devices speak to the cloud: an anonymous local tool could otherwise
     * publish under a device's name */
    const char *rest = NULL;
    size_t rest_len = 0;
    const struct cloud_route *route =
        c->who.anonymous ? NULL : cloud_route(gw, topic, p->topic.len, &rest, &rest_len);
    bool to_cloud = route != NULL;
    if (to_cloud && cloud_take_publish(c, p, route, rest, rest_len, &end) != 0)
        return end; /* refused: the cloud could not take it */
    struct msg *m = msg_new(topic, p->topic.len, p->payload.data, p->payload.len,
                            p->qos, p->retain,
                            c->version == MQTT_V5 ? &p->props : NULL, clock_mono_ms());
    if (!m)
        return CONN_END(MQTT_RC_IMPL_SPECIFIC, "out of memory");
    broker_publish(gw, m, s);
    msg_unref(m);
    if (p->qos == 2 && qos2_remember(s, p->packet_id) != 0)
        return CONN_END(MQTT_RC_IMPL_SPECIFIC, "out of memory");
    if (p->qos == 0 || to_cloud)
        return CONN_GO_ON; /* to_cloud: the spool sends the ack once the message is durable */
    if (c->spool_waiting > 0) { /* earlier acks still wait for the spool: keep the order */
        cloud_take_publish(c, p, NULL, NULL, 0, &end);
    } else {
        send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, MQTT_RC_SUCCESS,
                 NULL);
        histogram_observe(&gw->metrics.puback_latency, clock_mono_us() - c->rx_us);
    }
    return end;
}

void handle_pubrel(struct conn *c, const struct mqtt_ack *a)
{
    bool known = qos2_forget(c->session, a->packet_id);
    send_ack(c, MQTT_PUBCOMP, a->packet_id,
                  known || c->version != MQTT_V5 ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND,
                  NULL);
}

/* PUBACK, PUBREC or PUBCOMP for a PUBLISH we sent (section 4.3). An ack for nothing we hold
 * is ignored (a late duplicate after a reconnect); a PUBREC for it still gets a PUBREL (0x92). */
void handle_ack(struct conn *c, uint8_t type, const struct mqtt_ack *a)
{
    uint8_t reason = c->version == MQTT_V5 ? a->reason : MQTT_RC_SUCCESS;
    if (!session_ack(c->gw, c->session, type, a->packet_id, reason))
        c->gw->metrics.acks_unknown++;
}
