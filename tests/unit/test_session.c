/*
 * Unit tests of sessions and routing (gateway/src/broker/session.c), linked with the broker
 * layer and the layers below only. A connection here is a struct conn on a worker that never
 * runs: what the broker sends lands in its output buffer, which the tests decode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker_lock.h"
#include "session.h"

static struct worker worker; /* large (scratch buffers): not on the stack */

struct fixture {
    struct gateway gw;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    config_defaults(&f->gw.cfg);
    f->gw.cfg.max_queued_messages = 5;
    f->gw.subs_root = topic_tree_new();
    f->gw.retained_root = topic_tree_new();
    worker.gw = &f->gw;
    worker_set_current(&worker);
    broker_lock();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    broker_unlock();
    session_destroy_all(&f->gw);
    topic_tree_free(f->gw.subs_root);
    topic_tree_free(f->gw.retained_root);
    config_free(&f->gw.cfg);
    worker.flush_list = NULL;
    free(f);
    return 0;
}

static struct conn *connect_conn(struct gateway *gw, uint16_t receive_max)
{
    struct conn *c = calloc(1, sizeof(*c));
    c->w = &worker;
    c->gw = gw;
    c->state = CONN_CONNECTED;
    c->version = MQTT_V5;
    c->client_receive_max = receive_max;
    return c;
}

static void free_conn(struct conn *c)
{
    free(c->out);
    free(c);
}

static void subscribe(struct gateway *gw, struct session *s, const char *filter, uint8_t options,
                      uint32_t sub_id)
{
    struct tnode *n = topic_tree_node(gw->subs_root, filter, strlen(filter));
    assert_non_null(n);
    struct sub *sub = session_sub_add(s, n, NULL);
    assert_non_null(sub);
    sub->options = options;
    sub->sub_id = sub_id;
}

static void publish(struct gateway *gw, const char *topic, const char *payload, uint8_t qos,
                    bool retain, const struct session *origin)
{
    struct msg *m = msg_new(topic, strlen(topic), (const uint8_t *)payload, strlen(payload), qos,
                            retain, NULL, 0);
    assert_non_null(m);
    broker_publish(gw, m, origin);
    msg_unref(m);
}

/* The PUBLISHes in c->out, decoded in order (the buffer stays: drain() empties it). */
static size_t sent(struct conn *c, struct mqtt_publish *out, size_t max)
{
    size_t n = 0, off = 0;
    while (off < c->out_len) {
        uint8_t first;
        uint32_t rem;
        size_t hlen;
        assert_int_equal(mqtt_fixed_header(c->out + off, c->out_len - off, &first, &rem, &hlen),
                         MQTT_OK);
        struct mqtt_packet p;
        assert_int_equal(mqtt_decode(c->out + off, hlen + rem, c->version, &p), MQTT_OK);
        assert_int_equal(p.type, MQTT_PUBLISH);
        if (n < max)
            out[n] = p.u.publish; /* points into c->out: read before the next call */
        n++;
        off += hlen + rem;
    }
    return n;
}

static void drain(struct conn *c)
{
    c->out_len = 0;
}

static void offline_queue_is_bounded_and_drops_are_counted(void **state)
{
    struct fixture *f = *state;
    struct session *s = session_create(&f->gw, "mon-1", false);
    subscribe(&f->gw, s, "sensors/#", 1, 0);
    for (int i = 0; i < 8; i++)
        publish(&f->gw, "sensors/a/env", "21.5", 1, false, NULL);
    assert_int_equal(s->n_pending, 5);
    assert_int_equal(f->gw.metrics.messages_dropped_queue_full, 3);
}

/* A subscriber that stops reading must not grow the gateway without bound: its queue is
 * bounded in bytes as well, QoS 0 deliveries make room first, and drops are counted. */
static void queue_is_bounded_in_bytes_and_qos0_goes_first(void **state)
{
    struct fixture *f = *state;
    f->gw.cfg.max_queued_messages = 1000;
    f->gw.cfg.max_queued_bytes = 4096;
    struct session *s = session_create(&f->gw, "mon-1", false);
    subscribe(&f->gw, s, "sensors/#", 1, 0);
    static char big[1001];
    memset(big, 'x', 1000);
    publish(&f->gw, "sensors/a/env", big, 0, false, NULL); /* 1013 bytes each */
    publish(&f->gw, "sensors/a/env", big, 0, false, NULL);
    publish(&f->gw, "sensors/a/env", big, 1, false, NULL);
    publish(&f->gw, "sensors/a/env", big, 1, false, NULL);
    assert_int_equal(s->n_pending, 4);
    assert_true(s->queued_bytes <= 4096);
    /* a fifth: the oldest QoS 0 one makes room for a QoS 1 message */
    publish(&f->gw, "sensors/a/env", big, 1, false, NULL);
    assert_int_equal(s->n_pending, 4);
    assert_true(s->queued_bytes <= 4096);
    assert_int_equal(f->gw.metrics.messages_dropped_queue_full, 1);
    unsigned qos0 = 0;
    for (struct qentry *q = s->pend_head; q; q = q->next)
        qos0 += q->qos == 0;
    assert_int_equal(qos0, 1);
    /* QoS 0 beyond the bound is dropped, never queued */
    for (int i = 0; i < 100; i++)
        publish(&f->gw, "sensors/a/env", big, 0, false, NULL);
    assert_true(s->queued_bytes <= 4096);
    /* QoS 1 with no QoS 0 left to drop: dropped too, and counted in bytes */
    publish(&f->gw, "sensors/a/env", big, 1, false, NULL);
    publish(&f->gw, "sensors/a/env", big, 1, false, NULL);
    assert_true(s->queued_bytes <= 4096);
    assert_true(f->gw.metrics.bytes_dropped_queue_full >= 100 * 1013);
    /* the accounting returns to zero as deliveries leave */
    struct conn *c = connect_conn(&f->gw, 100);
    session_attach(&f->gw, s, c);
    session_flush(&f->gw, s);
    for (struct qentry *q = s->infl_head, *next; q; q = next) {
        next = q->next;
        session_ack(&f->gw, s, MQTT_PUBACK, q->packet_id, 0);
    }
    assert_int_equal(s->queued_bytes, 0);
    s->conn = NULL;
    free_conn(c);
}

static void receive_maximum_bounds_inflight_and_acks_release_more(void **state)
{
    struct fixture *f = *state;
    struct session *s = session_create(&f->gw, "mon-1", false);
    subscribe(&f->gw, s, "sensors/#", 1, 0);
    struct conn *c = connect_conn(&f->gw, 2);
    session_attach(&f->gw, s, c);
    for (int i = 0; i < 4; i++)
        publish(&f->gw, "sensors/a/env", "x", 1, false, NULL);
    struct mqtt_publish p[8];
    assert_int_equal(sent(c, p, 8), 2); /* Receive Maximum 2 (section 4.9) */
    uint16_t first = p[0].packet_id;
    assert_int_not_equal(first, 0);
    assert_int_not_equal(p[1].packet_id, first);
    assert_int_equal(s->n_inflight, 2);
    assert_int_equal(s->n_pending, 2);
    drain(c);
    session_ack(&f->gw, s, MQTT_PUBACK, first, 0);
    assert_int_equal(sent(c, p, 8), 1);
    assert_int_equal(s->n_inflight, 2);
    drain(c);
    session_ack(&f->gw, s, MQTT_PUBACK, 0x7777, 0); /* unknown id: nothing happens */
    assert_int_equal(c->out_len, 0);
    s->conn = NULL;
    free_conn(c);
}

static void reconnect_resends_inflight_with_dup_first(void **state)
{
    struct fixture *f = *state;
    struct session *s = session_create(&f->gw, "mon-1", false);
    s->expiry = 3600;
    subscribe(&f->gw, s, "t/#", 1, 0);
    struct conn *c = connect_conn(&f->gw, 1);
    session_attach(&f->gw, s, c);
    publish(&f->gw, "t/1", "one", 1, false, NULL);
    publish(&f->gw, "t/2", "two", 1, false, NULL);
    struct mqtt_publish p[4];
    assert_int_equal(sent(c, p, 4), 1);
    uint16_t pid = p[0].packet_id;
    session_detach(&f->gw, s); /* the connection went away */
    assert_null(s->conn);
    free_conn(c);
    struct conn *c2 = connect_conn(&f->gw, 10);
    session_attach(&f->gw, s, c2);
    session_flush(&f->gw, s);
    assert_int_equal(sent(c2, p, 4), 2);
    assert_true(p[0].dup); /* section 4.4: resent with DUP and the same packet id */
    assert_int_equal(p[0].packet_id, pid);
    assert_memory_equal(p[0].topic.data, "t/1", 3);
    assert_false(p[1].dup);
    assert_memory_equal(p[1].topic.data, "t/2", 3);
    s->conn = NULL;
    free_conn(c2);
}

static void overlapping_subscriptions_deliver_once_at_the_highest_qos(void **state)
{
    struct fixture *f = *state;
    struct session *s = session_create(&f->gw, "mon-1", false);
    subscribe(&f->gw, s, "sensors/#", 0, 7);
    subscribe(&f->gw, s, "sensors/+/env", 1, 9);
    struct conn *c = connect_conn(&f->gw, 10);
    session_attach(&f->gw, s, c);
    publish(&f->gw, "sensors/a/env", "x", 1, false, NULL);
    struct mqtt_publish p[4];
    assert_int_equal(sent(c, p, 4), 1);
    assert_int_equal(p[0].qos, 1);
    assert_int_equal(p[0].props.n_sub_ids, 2); /* section 3.3.4: every matching identifier */
    /* a QoS 0 message is not raised to the subscription's QoS */
    drain(c);
    publish(&f->gw, "sensors/a/env", "x", 0, false, NULL);
    assert_int_equal(sent(c, p, 4), 1);
    assert_int_equal(p[0].qos, 0);
    s->conn = NULL;
    free_conn(c);
}

static void no_local_skips_the_publisher(void **state)
{
    struct fixture *f = *state;
    struct session *s = session_create(&f->gw, "dev-1", false);
    subscribe(&f->gw, s, "chat/#", MQTT_SUBOPT_NO_LOCAL | 1, 0);
    publish(&f->gw, "chat/x", "hi", 1, false, s);
    assert_int_equal(s->n_pending, 0);
    publish(&f->gw, "chat/x", "hi", 1, false, NULL);
    assert_int_equal(s->n_pending, 1);
}

static void retained_store_replaces_and_empty_payload_clears(void **state)
{
    struct fixture *f = *state;
    publish(&f->gw, "status/a", "on", 0, true, NULL);
    publish(&f->gw, "status/b", "on", 0, true, NULL);
    assert_int_equal(f->gw.n_retained, 2);
    publish(&f->gw, "status/a", "off", 0, true, NULL);
    assert_int_equal(f->gw.n_retained, 2);
    publish(&f->gw, "status/a", "", 0, true, NULL); /* section 3.3.1.3: clears the topic */
    assert_int_equal(f->gw.n_retained, 1);
    /* a new subscription gets what is retained, flagged retained */
    struct session *s = session_create(&f->gw, "mon-1", false);
    struct conn *c = connect_conn(&f->gw, 10);
    session_attach(&f->gw, s, c);
    broker_send_retained(&f->gw, s, "status/#", 8, 1, 0);
    struct mqtt_publish p[4];
    assert_int_equal(sent(c, p, 4), 1);
    assert_true(p[0].retain);
    assert_memory_equal(p[0].topic.data, "status/b", 8);
    assert_int_equal(p[0].qos, 0); /* the message's QoS, not more */
    s->conn = NULL;
    free_conn(c);
}

/* The retained store is bounded in bytes: beyond it a retained message is delivered but not
 * kept (and clears what its topic held); replacing one frees its bytes. */
static void retained_store_is_bounded_in_bytes(void **state)
{
    struct fixture *f = *state;
    f->gw.cfg.max_retained_bytes = 2100;
    static char big[1001];
    memset(big, 'r', 1000);
    publish(&f->gw, "status/a", big, 0, true, NULL); /* 1008 bytes */
    publish(&f->gw, "status/b", big, 0, true, NULL);
    assert_int_equal(f->gw.n_retained, 2);
    publish(&f->gw, "status/c", big, 0, true, NULL); /* over: not kept */
    assert_int_equal(f->gw.n_retained, 2);
    assert_int_equal(f->gw.metrics.retained_refused, 1);
    assert_true(f->gw.retained_bytes <= 2100);
    publish(&f->gw, "status/a", "small", 0, true, NULL); /* replacing frees room */
    publish(&f->gw, "status/c", big, 0, true, NULL);
    assert_int_equal(f->gw.n_retained, 3);
    assert_true(f->gw.retained_bytes <= 2100);
    publish(&f->gw, "status/b", "", 0, true, NULL);
    publish(&f->gw, "status/c", "", 0, true, NULL);
    publish(&f->gw, "status/a", "", 0, true, NULL);
    assert_int_equal(f->gw.retained_bytes, 0);
}

/* One client with 100,000 filters, and one filter with 10,000 subscribers: adding, finding and
 * removing each is near-constant (it was a scan of the session's list: 45 s for 100,000). */
static void many_subscriptions_stay_cheap_both_ways(void **state)
{
    struct fixture *f = *state;
    struct session *s = session_create(&f->gw, "mon-1", false);
    char t[64];
    for (int i = 0; i < 100000; i++) {
        snprintf(t, sizeof(t), "sensors/dev-%d/env", i);
        struct tnode *n = topic_tree_node(f->gw.subs_root, t, strlen(t));
        assert_null(session_sub_find(s, n, NULL));
        assert_non_null(session_sub_add(s, n, NULL));
    }
    assert_int_equal(s->n_subs, 100000);
    /* 10,000 sessions on one popular filter */
    struct tnode *popular = topic_tree_node(f->gw.subs_root, "status/#", 8);
    for (int i = 0; i < 10000; i++) {
        snprintf(t, sizeof(t), "m-%d", i);
        struct session *m = session_create(&f->gw, t, false);
        assert_non_null(session_sub_add(m, popular, NULL));
    }
    assert_int_equal(topic_tree_node_sub_count(popular), 10000);
    assert_null(session_sub_find(s, popular, NULL));
    for (int i = 0; i < 100000; i++) {
        snprintf(t, sizeof(t), "sensors/dev-%d/env", i);
        struct tnode *n = topic_tree_node(f->gw.subs_root, t, strlen(t));
        struct sub *x = session_sub_find(s, n, NULL);
        assert_non_null(x);
        session_sub_remove(s, x);
    }
    assert_int_equal(s->n_subs, 0);
    assert_null(s->subs);
}

static void many_sessions_found_by_id(void **state)
{
    struct fixture *f = *state;
    char id[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "dev-%d", i);
        assert_non_null(session_create(&f->gw, id, false));
    }
    assert_int_equal(f->gw.n_sessions, 5000);
    assert_non_null(session_find(&f->gw, "dev-4321", false));
    assert_null(session_find(&f->gw, "dev-4321", true)); /* anonymous ids are another space */
    assert_null(session_find(&f->gw, "dev-5000", false));
    struct session *s = session_find(&f->gw, "dev-17", false);
    session_destroy(&f->gw, s);
    assert_null(session_find(&f->gw, "dev-17", false));
    assert_int_equal(f->gw.n_sessions, 4999);
}

/* Every packet in c->out, decoded in order; consumes the buffer. */
static size_t packets(struct conn *c, struct mqtt_packet *out, size_t max)
{
    size_t n = 0, off = 0;
    while (off < c->out_len) {
        uint8_t first;
        uint32_t rem;
        size_t hlen;
        assert_int_equal(mqtt_fixed_header(c->out + off, c->out_len - off, &first, &rem, &hlen),
                         MQTT_OK);
        assert_true(n < max);
        assert_int_equal(mqtt_decode(c->out + off, hlen + rem, c->version, &out[n]), MQTT_OK);
        n++;
        off += hlen + rem;
    }
    c->out_len = 0;
    return n;
}

/* QoS 2 towards a subscriber (MQTT 5 section 4.3.3, the sender's side): PUBLISH, PUBREC ->
 * PUBREL, PUBCOMP ends it; after a reconnect an unreceived PUBLISH goes again with DUP, a
 * released one only as its PUBREL; a PUBREC >= 0x80 ends it without a PUBREL; acks of the
 * wrong kind change nothing. */
static void qos2_outbound_exchange_and_resume(void **state)
{
    struct fixture *f = *state;
    struct session *s = session_create(&f->gw, "mon-1", false);
    s->expiry = 3600;
    subscribe(&f->gw, s, "sensors/#", 2, 0);
    struct conn *c = connect_conn(&f->gw, 10);
    session_attach(&f->gw, s, c);
    publish(&f->gw, "sensors/a/env", "one", 2, false, NULL);
    publish(&f->gw, "sensors/a/env", "two", 2, false, NULL);
    publish(&f->gw, "sensors/a/env", "three", 1, false, NULL); /* QoS 1 stays QoS 1 */
    struct mqtt_packet p[8];
    assert_int_equal(packets(c, p, 8), 3);
    assert_int_equal(p[0].u.publish.qos, 2);
    assert_int_equal(p[1].u.publish.qos, 2);
    assert_int_equal(p[2].u.publish.qos, 1);
    uint16_t one = p[0].u.publish.packet_id, two = p[1].u.publish.packet_id,
             three = p[2].u.publish.packet_id;
    /* wrong kinds: a PUBACK for a QoS 2 delivery, a PUBCOMP before its PUBREC */
    assert_false(session_ack(&f->gw, s, MQTT_PUBACK, one, 0));
    assert_false(session_ack(&f->gw, s, MQTT_PUBCOMP, one, 0));
    assert_int_equal(s->n_inflight, 3);
    /* PUBREC -> PUBREL */
    assert_true(session_ack(&f->gw, s, MQTT_PUBREC, one, 0));
    assert_int_equal(packets(c, p, 8), 1);
    assert_int_equal(p[0].type, MQTT_PUBREL);
    assert_int_equal(p[0].u.ack.packet_id, one);
    assert_int_equal(s->n_inflight, 3); /* still counted against Receive Maximum */
    /* the subscriber goes away and comes back: "two" again with DUP, "one" only as PUBREL,
     * the PUBRELs first, "three" (QoS 1) again with DUP */
    session_detach(&f->gw, s);
    free_conn(c);
    c = connect_conn(&f->gw, 10);
    session_attach(&f->gw, s, c);
    session_flush(&f->gw, s);
    size_t n = packets(c, p, 8);
    assert_int_equal(n, 3);
    assert_int_equal(p[0].type, MQTT_PUBREL);
    assert_int_equal(p[0].u.ack.packet_id, one);
    assert_int_equal(p[1].type, MQTT_PUBLISH);
    assert_int_equal(p[1].u.publish.packet_id, two);
    assert_true(p[1].u.publish.dup);
    assert_int_equal(p[1].u.publish.qos, 2);
    assert_int_equal(p[2].u.publish.packet_id, three);
    assert_true(p[2].u.publish.dup);
    /* PUBCOMP ends "one"; a second PUBCOMP finds nothing */
    assert_true(session_ack(&f->gw, s, MQTT_PUBCOMP, one, 0));
    assert_false(session_ack(&f->gw, s, MQTT_PUBCOMP, one, 0));
    /* the client refuses "two" (PUBREC 0x80): over, no PUBREL */
    assert_true(session_ack(&f->gw, s, MQTT_PUBREC, two, 0x80));
    assert_true(session_ack(&f->gw, s, MQTT_PUBACK, three, 0));
    assert_int_equal(packets(c, p, 8), 0);
    assert_int_equal(s->n_inflight, 0);
    assert_int_equal(s->queued_bytes, 0);
    /* a PUBREC for an id we do not hold still gets a PUBREL, 0x92 */
    assert_false(session_ack(&f->gw, s, MQTT_PUBREC, 0x4444, 0));
    assert_int_equal(packets(c, p, 8), 1);
    assert_int_equal(p[0].type, MQTT_PUBREL);
    assert_int_equal(p[0].u.ack.reason, MQTT_RC_PACKET_ID_NOT_FOUND);
    s->conn = NULL;
    free_conn(c);
}

static struct sub *share_subscribe(struct gateway *gw, struct session *s, const char *group,
                                   const char *filter, uint8_t options)
{
    struct tnode *n = topic_tree_node(gw->subs_root, filter, strlen(filter));
    assert_non_null(n);
    struct share_group *g = share_group_get(gw, n, group, strlen(group), true);
    assert_non_null(g);
    struct sub *sub = session_sub_add(s, n, g);
    assert_non_null(sub);
    sub->options = options;
    return sub;
}

/* A client that makes many groups: each is found again by its name (a hash table, so the
 * 20,000th costs what the first did), and each is gone with its last member */
static void many_share_groups(void **state)
{
    struct fixture *f = *state;
    struct session *s = session_create(&f->gw, "mon-1", false);
    char name[32];
    struct sub *subs[2000];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof(name), "g%d", i);
        struct sub *sub = share_subscribe(&f->gw, s, name, "sensors/#", 1);
        if (i < 2000)
            subs[i] = sub;
    }
    assert_int_equal(f->gw.n_share_groups, 20000);
    struct tnode *n = topic_tree_node(f->gw.subs_root, "sensors/#", 9);
    assert_ptr_equal(share_group_get(&f->gw, n, "g1234", 5, false), subs[1234]->group);
    assert_null(share_group_get(&f->gw, n, "g20000", 6, false));
    for (int i = 0; i < 2000; i++)
        session_sub_remove(s, subs[i]);
    assert_int_equal(f->gw.n_share_groups, 18000);
    assert_null(share_group_get(&f->gw, n, "g1234", 5, false));
}

/* $share/{name}/{filter} as [MQTT-4.8.2-1] and [MQTT-4.8.2-2] define it */
static void share_filters_parsed(void **state)
{
    (void)state;
    const char *name, *filter;
    size_t nl, fl;
    bool ok;
    assert_false(share_parse("sensors/#", 9, &ok, &name, &nl, &filter, &fl));
    assert_true(share_parse("$share/g1/sensors/#", 19, &ok, &name, &nl, &filter, &fl));
    assert_true(ok);
    assert_int_equal(nl, 2);
    assert_memory_equal(name, "g1", 2);
    assert_int_equal(fl, 9);
    assert_memory_equal(filter, "sensors/#", 9);
    static const char *const bad[] = {"$share/", "$share//x", "$share/g", "$share/g/",
                                      "$share/g+/x", "$share/#/x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_true(share_parse(bad[i], strlen(bad[i]), &ok, &name, &nl, &filter, &fl));
        assert_false(ok);
    }
}

/* Each message to one member, in turn; a member with a full window is passed over; a member
 * who also has its own subscription gets that copy besides (section 4.8.2); the group's turn
 * and membership survive one member leaving; a member whose session ends hands what it had not
 * acknowledged to another. */
static void shared_subscription_round_robin_and_hand_over(void **state)
{
    struct fixture *f = *state;
    f->gw.cfg.max_queued_messages = 1000;
    struct session *m[3];
    struct conn *c[3];
    char id[8];
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "mon-%d", i);
        m[i] = session_create(&f->gw, id, false);
        share_subscribe(&f->gw, m[i], "g", "sensors/#", 1);
        c[i] = connect_conn(&f->gw, 100);
        session_attach(&f->gw, m[i], c[i]);
    }
    struct mqtt_publish p[64];
    for (int k = 0; k < 30; k++)
        publish(&f->gw, "sensors/a/env", "x", 1, false, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(m[i]->n_inflight, 10);
    /* mon-0's window full: the next two go to the others */
    c[0]->client_receive_max = 10;
    publish(&f->gw, "sensors/a/env", "x", 1, false, NULL);
    publish(&f->gw, "sensors/a/env", "x", 1, false, NULL);
    assert_int_equal(m[0]->n_inflight + m[0]->n_pending, 10);
    assert_int_equal(m[1]->n_inflight + m[2]->n_inflight, 22);
    /* its own subscription gets its own copy as well */
    subscribe(&f->gw, m[1], "sensors/a/#", 1, 0);
    for (int i = 0; i < 3; i++)
        drain(c[i]);
    uint32_t before = m[1]->n_inflight + m[2]->n_inflight + m[0]->n_inflight;
    publish(&f->gw, "sensors/a/env", "y", 1, false, NULL);
    assert_int_equal(m[1]->n_inflight + m[2]->n_inflight + m[0]->n_inflight, before + 2);
    /* mon-2 ends (clean session) with messages unacknowledged: they go to the others */
    uint32_t unacked = m[2]->n_inflight + m[2]->n_pending;
    assert_true(unacked > 0);
    uint32_t others = m[0]->n_inflight + m[0]->n_pending + m[1]->n_inflight + m[1]->n_pending;
    m[2]->expiry = 0;
    session_detach(&f->gw, m[2]); /* destroys it */
    free_conn(c[2]);
    assert_int_equal(m[0]->n_inflight + m[0]->n_pending + m[1]->n_inflight + m[1]->n_pending,
                     others + unacked);
    assert_int_equal(f->gw.metrics.shared_handed_over, unacked);
    /* the group goes on with two */
    for (int i = 0; i < 2; i++)
        drain(c[i]);
    publish(&f->gw, "sensors/b/env", "z", 1, false, NULL);
    publish(&f->gw, "sensors/b/env", "z", 1, false, NULL);
    assert_int_equal(sent(c[0], p, 64) + sent(c[1], p, 64), 2);
    for (int i = 0; i < 2; i++) {
        m[i]->conn = NULL;
        free_conn(c[i]);
    }
}

/* Topic aliases towards a client that allows them (section 3.3.2.3.4): the topic with a new
 * alias once, then the alias alone; the least recently used replaced when the table is full;
 * an alias whose PUBLISH was not sent (too large for the client) is not used again. */
static void outbound_topic_aliases_lru(void **state)
{
    struct fixture *f = *state;
    struct session *s = session_create(&f->gw, "mon-1", false);
    subscribe(&f->gw, s, "sensors/#", 0, 0);
    struct conn *c = connect_conn(&f->gw, 10);
    c->aliases_out = topic_alias_new(2);
    session_attach(&f->gw, s, c);
    static const char *const topics[] = {"sensors/a", "sensors/a", "sensors/b", "sensors/c",
                                         "sensors/a"};
    static const uint16_t alias[] = {1, 1, 2, 1, 2};
    static const bool topic_sent[] = {true, false, true, true, true};
    for (size_t i = 0; i < 5; i++) {
        publish(&f->gw, topics[i], "x", 0, false, NULL);
        struct mqtt_publish p[2];
        assert_int_equal(sent(c, p, 2), 1);
        assert_true(mqtt_props_has(&p[0].props, MQTT_PROP_TOPIC_ALIAS));
        assert_int_equal(p[0].props.topic_alias, alias[i]);
        assert_int_equal(p[0].topic.len, topic_sent[i] ? strlen(topics[i]) : 0);
        if (topic_sent[i])
            assert_memory_equal(p[0].topic.data, topics[i], strlen(topics[i]));
        drain(c);
    }
    /* too large for the client: dropped, and its alias forgotten */
    c->client_max_packet = 40;
    publish(&f->gw, "sensors/d", "a payload longer than forty bytes, for sure", 0, false, NULL);
    struct mqtt_publish p[2];
    assert_int_equal(sent(c, p, 2), 0);
    c->client_max_packet = 0;
    drain(c);
    publish(&f->gw, "sensors/d", "x", 0, false, NULL);
    assert_int_equal(sent(c, p, 2), 1);
    assert_int_equal(p[0].topic.len, 9); /* the topic again: the client never had the alias */
    drain(c);
    /* a topic that would take the table past TOPIC_ALIAS_OUT_BYTES goes without an alias */
    char longest[TOPIC_ALIAS_OUT_BYTES + 16];
    memset(longest, 'x', sizeof(longest) - 1);
    memcpy(longest, "sensors/", 8);
    longest[sizeof(longest) - 1] = '\0';
    f->gw.cfg.max_topic_length = sizeof(longest);
    publish(&f->gw, longest, "x", 0, false, NULL);
    assert_int_equal(sent(c, p, 2), 1);
    assert_false(mqtt_props_has(&p[0].props, MQTT_PROP_TOPIC_ALIAS));
    assert_int_equal(p[0].topic.len, strlen(longest));
    topic_alias_free(c->aliases_out);
    s->conn = NULL;
    free_conn(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(offline_queue_is_bounded_and_drops_are_counted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(queue_is_bounded_in_bytes_and_qos0_goes_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(receive_maximum_bounds_inflight_and_acks_release_more,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(reconnect_resends_inflight_with_dup_first, setup, teardown),
        cmocka_unit_test_setup_teardown(qos2_outbound_exchange_and_resume, setup, teardown),
        cmocka_unit_test(share_filters_parsed),
        cmocka_unit_test_setup_teardown(many_share_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(outbound_topic_aliases_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(shared_subscription_round_robin_and_hand_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(overlapping_subscriptions_deliver_once_at_the_highest_qos,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(no_local_skips_the_publisher, setup, teardown),
        cmocka_unit_test_setup_teardown(retained_store_replaces_and_empty_payload_clears, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(retained_store_is_bounded_in_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(many_subscriptions_stay_cheap_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(many_sessions_found_by_id, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
