/*
 * handle_subscribe.c: SUBSCRIBE and UNSUBSCRIBE.
 *
 * Each filter gets its own reason code: the granted QoS (as asked, 0 to 2), 0x8F for an
 * invalid filter (a malformed `$share/` one too), 0x87 outside the ACL (3.1.1: 0x80). A shared
 * subscription `$share/{name}/{filter}` makes the session a member of that group
 * (broker/share.h); the ACL applies to {filter}.
 * A new subscription replaces an existing one with the same filter (section 3.8.4) and then
 * retained messages are sent as its Retain Handling option says.
 */
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "send.h"
#include "session.h"
#include "topic_tree.h"

#define MAX_FILTERS_PER_PACKET SEND_MAX_SUBACK_CODES

static uint8_t subscribe_one(struct conn *c, const struct mqtt_sub_entry *e, uint32_t sub_id)
{
    struct gateway *gw = c->gw;
    struct session *s = c->session;
    const char *f = (const char *)e->filter.data;
    size_t flen = e->filter.len;
    uint8_t fail = c->version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
    if (!mqtt_topic_filter_valid(e->filter.data, flen))
        return fail;
    /* $share/{name}/{filter}: the subscription is to {filter}, as a member of the group */
    const char *name = NULL;
    size_t name_len = 0;
    bool well_formed;
    bool shared = share_parse(f, flen, &well_formed, &name, &name_len, &f, &flen);
    if (shared && (!well_formed || !mqtt_topic_filter_valid((const uint8_t *)f, flen)))
        return fail; /* [MQTT-4.8.2-1], [MQTT-4.8.2-2] */
    if (!topic_tree_within_limits((const uint8_t *)f, flen, gw->cfg.max_topic_length,
                                  gw->cfg.max_topic_levels)) {
        gw->metrics.topics_refused++;
        return fail; /* 0x8F: a filter over the configured limits */
    }
    if (!acl_may_subscribe(&c->who, f, flen)) {
        gw->metrics.acl_denied_subscribe++;
        char id[LOG_SAFE_MAX], t[LOG_SAFE_MAX];
        log_event(LOG_WARN, "acl_denied", "action=subscribe id=%s filter=%s",
                  log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)),
                  log_safe(f, flen, t, sizeof(t)));
        return c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
    }
    uint8_t qos = e->options & MQTT_SUBOPT_QOS_MASK;
    struct tnode *node = topic_tree_node(gw->subs_root, f, flen);
    if (!node)
        return c->version == MQTT_V5 ? MQTT_RC_IMPL_SPECIFIC : 0x80;
    struct share_group *group = NULL;
    if (shared && !(group = share_group_get(gw, node, name, name_len, true))) {
        topic_tree_prune(node);
        return c->version == MQTT_V5 ? MQTT_RC_IMPL_SPECIFIC : 0x80;
    }
    struct sub *sub = session_sub_find(s, node, group);
    bool existed = sub != NULL;
    if (!sub && s->n_subs >= gw->cfg.max_subscriptions_per_client) {
        topic_tree_prune(node);
        gw->metrics.subscriptions_refused++;
        return c->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
    }
    if (!sub && !(sub = session_sub_add(s, node, group))) {
        topic_tree_prune(node);
        return c->version == MQTT_V5 ? MQTT_RC_IMPL_SPECIFIC : 0x80;
    }
    sub->options = e->options;
    sub->sub_id = sub_id;
    uint8_t rh = (uint8_t)(e->options >> MQTT_SUBOPT_RETAIN_HANDLING_SHIFT & 3);
    if (c->version != MQTT_V5)
        rh = 0;
    /* section 4.8.2: retained messages are not sent for a shared subscription */
    if (!shared && (rh == 0 || (rh == 1 && !existed)))
        broker_send_retained(gw, s, f, flen, qos, sub_id);
    return qos;
}

/* [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error. */
static bool no_local_on_shared(const struct conn *c, const struct mqtt_subscribe *p)
{
    size_t off = 0;
    struct mqtt_sub_entry e;
    while (mqtt_subscribe_next(p, c->version, &off, &e)) {
        const char *name, *f;
        size_t name_len, flen;
        bool ok;
        if ((e.options & MQTT_SUBOPT_NO_LOCAL) &&
            share_parse((const char *)e.filter.data, e.filter.len, &ok, &name, &name_len, &f,
                        &flen))
            return true;
    }
    return false;
}

struct conn_end handle_subscribe(struct conn *c, const struct mqtt_subscribe *p)
{
    uint8_t reasons[MAX_FILTERS_PER_PACKET];
    if (p->count > MAX_FILTERS_PER_PACKET) {
        return CONN_END(MQTT_RC_QUOTA_EXCEEDED, "too many filters in one SUBSCRIBE");
    }
    if (c->version == MQTT_V5 && no_local_on_shared(c, p))
        return CONN_END(MQTT_RC_PROTOCOL_ERROR, "No Local on a shared subscription");
    uint32_t sub_id = 0;
    if (c->version == MQTT_V5 && p->props.n_sub_ids)
        sub_id = p->props.sub_ids[0];
    /* The SUBACK goes before the retained messages it releases: its space is reserved first
     * and filled in once every filter has its reason code (same size whatever the codes). */
    size_t at = 0;
    if (send_suback_reserve(c, p->packet_id, p->count, &at) != 0) {
        return CONN_END(MQTT_RC_IMPL_SPECIFIC, "out of memory");
    }
    size_t off = 0, n = 0;
    struct mqtt_sub_entry e;
    while (mqtt_subscribe_next(p, c->version, &off, &e)) {
        reasons[n] = subscribe_one(c, &e, sub_id);
        char id[LOG_SAFE_MAX], t[LOG_SAFE_MAX];
        log_event(LOG_DEBUG, "subscribe", "id=%s filter=%s result=0x%02x",
                  log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)),
                  log_safe(e.filter.data, e.filter.len, t, sizeof(t)), reasons[n]);
        n++;
    }
    send_suback_fill(c, at, p->packet_id, reasons, n);
    return CONN_GO_ON;
}

struct conn_end handle_unsubscribe(struct conn *c, const struct mqtt_subscribe *p)
{
    uint8_t reasons[MAX_FILTERS_PER_PACKET];
    if (p->count > MAX_FILTERS_PER_PACKET) {
        return CONN_END(MQTT_RC_QUOTA_EXCEEDED, "too many filters in one UNSUBSCRIBE");
    }
    struct session *s = c->session;
    size_t off = 0, n = 0;
    struct mqtt_bytes f;
    while (mqtt_unsubscribe_next(p, &off, &f)) {
        reasons[n] = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
        const char *name = NULL, *filter = (const char *)f.data;
        size_t name_len = 0, flen = f.len;
        bool well_formed;
        bool shared = share_parse(filter, flen, &well_formed, &name, &name_len, &filter, &flen);
        if ((!shared || well_formed) && mqtt_topic_filter_valid((const uint8_t *)filter, flen)) {
            struct tnode *node = topic_tree_node(c->gw->subs_root, filter, flen);
            struct share_group *g =
                node && shared ? share_group_get(c->gw, node, name, name_len, false) : NULL;
            struct sub *x = node && (!shared || g) ? session_sub_find(s, node, g) : NULL;
            if (x) {
                session_sub_remove(s, x); /* prunes the node */
                reasons[n] = MQTT_RC_SUCCESS;
            } else if (node) {
                topic_tree_prune(node);
            }
        } else {
            reasons[n] = MQTT_RC_TOPIC_FILTER_INVALID;
        }
        n++;
    }
    send_suback(c, MQTT_UNSUBACK, p->packet_id, reasons, n);
    return CONN_GO_ON;
}
