/*
 * session.c: MQTT sessions, messages and their delivery.
 *
 * A session outlives its connection for its Session Expiry Interval (MQTT 5 section 3.1.2.11;
 * a 3.1.1 clean_session=0 session lasts until the configured maximum). Each session has two
 * FIFOs: `pending` (not yet sent) and `in-flight` (QoS 1 sent, awaiting PUBACK; QoS 2 sent,
 * awaiting PUBREC, or released, awaiting PUBCOMP). Sending
 * moves entries from pending to in-flight while the client's Receive Maximum allows (section
 * 4.9) and max_inflight_messages allow; a PUBACK frees a slot. The pending queue is bounded by
 * max_queued_messages: when full, new deliveries to that session are dropped, logged and
 * counted (never silently).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_lock.h"
#include "clock.h"
#include "log.h"
#include "send.h"
#include "session.h"

static uint32_t hash_id(const char *s, bool anonymous)
{
    uint32_t h = anonymous ? 0x9e3779b9u : 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

struct session *session_find(struct gateway *gw, const char *id, bool anonymous)
{
    BROKER_LOCK_HELD();
    if (gw->session_buckets == 0)
        return NULL;
    uint32_t b = hash_id(id, anonymous) & (uint32_t)(gw->session_buckets - 1);
    for (struct session *s = gw->sessions[b]; s; s = s->hnext)
        if (s->anonymous == anonymous && strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static int sessions_grow(struct gateway *gw)
{
    size_t nb = gw->session_buckets ? gw->session_buckets * 2 : 1024;
    struct session **t = calloc(nb, sizeof(*t));
    if (!t)
        return -1;
    for (size_t b = 0; b < gw->session_buckets; b++) {
        struct session *s = gw->sessions[b];
        while (s) {
            struct session *next = s->hnext;
            size_t nbk = hash_id(s->id, s->anonymous) & (nb - 1);
            s->hnext = t[nbk];
            t[nbk] = s;
            s = next;
        }
    }
    free(gw->sessions);
    gw->sessions = t;
    gw->session_buckets = nb;
    return 0;
}

struct session *session_create(struct gateway *gw, const char *id, bool anonymous)
{
    BROKER_LOCK_HELD();
    if (gw->n_sessions >= gw->session_buckets && sessions_grow(gw) != 0)
        return NULL;
    size_t idlen = strlen(id);
    struct session *s = calloc(1, sizeof(*s) + idlen + 1);
    if (!s)
        return NULL;
    memcpy(s->id, id, idlen + 1);
    s->gw = gw;
    s->anonymous = anonymous;
    s->next_pid = 1;
    size_t b = hash_id(id, anonymous) & (gw->session_buckets - 1);
    s->hnext = gw->sessions[b];
    gw->sessions[b] = s;
    gw->n_sessions++;
    return s;
}

static size_t entry_bytes(const struct qentry *q)
{
    return q->m->topic_len + q->m->payload_len;
}

/* Frees one delivery that left the session's queues. */
static void entry_free(struct session *s, struct qentry *q)
{
    s->queued_bytes -= entry_bytes(q);
    msg_unref(q->m);
    share_unref(q->group);
    free(q);
}

static void free_queue(struct session *s, struct qentry *q)
{
    while (q) {
        struct qentry *next = q->next;
        entry_free(s, q);
        q = next;
    }
}

static void enqueue(struct gateway *gw, struct session *s, struct msg *m, uint8_t qos,
                    bool retain, const uint32_t *sub_ids, uint8_t n_sub_ids,
                    struct share_group *group);

/* A session that ends with messages it got through shared subscriptions and did not
 * acknowledge: each goes to another member of its group (section 4.8.2), QoS 0 excepted (no
 * promise was made), and a QoS 2 one the client already received (released) too. */
static void hand_over_shared(struct gateway *gw, struct session *s, struct qentry *q)
{
    for (; q; q = q->next) {
        if (!q->group || q->qos == 0 || q->released)
            continue;
        struct sub *to = share_choose(q->group, s);
        if (!to) {
            gw->metrics.shared_lost++; /* the group has no member left */
            continue;
        }
        uint8_t qos = to->options & MQTT_SUBOPT_QOS_MASK;
        if (qos > q->m->qos)
            qos = q->m->qos;
        gw->metrics.shared_handed_over++;
        enqueue(gw, to->session, q->m, qos, q->retain, &to->sub_id, to->sub_id ? 1 : 0, q->group);
    }
}

void session_destroy(struct gateway *gw, struct session *s)
{
    BROKER_LOCK_HELD();
    size_t b = hash_id(s->id, s->anonymous) & (gw->session_buckets - 1);
    for (struct session **pp = &gw->sessions[b]; *pp; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    }
    gw->n_sessions--;
    if (!atomic_load(&gw->shutting_down)) {
        hand_over_shared(gw, s, s->infl_head);
        hand_over_shared(gw, s, s->pend_head);
    }
    while (s->subs)
        session_sub_remove(s, s->subs);
    free_queue(s, s->pend_head);
    free_queue(s, s->infl_head);
    if (s->will)
        msg_unref(s->will);
    free(s->qos2_in);
    free(s->readings);
    free(s);
}

/*
 * Offline sessions are checked once a second (broker_sweep) rather than each holding timers:
 * a session is not tied to one worker's event loop, and a second is the granularity of both
 * the Session Expiry and the Will Delay Interval.
 */
void broker_sweep(struct gateway *gw)
{
    BROKER_LOCK_HELD();
    uint64_t now = clock_mono_ms();
    for (size_t b = 0; b < gw->session_buckets; b++) {
        for (struct session *s = gw->sessions[b], *next; s; s = next) {
            next = s->hnext;
            if (s->conn)
                continue;
            if (s->will && s->will_due_ms && now >= s->will_due_ms)
                broker_publish_will(gw, s);
            if (s->expires_at_ms && now >= s->expires_at_ms) {
                char id[LOG_SAFE_MAX];
                log_event(LOG_INFO, "session_expired", "client_id=%s",
                          log_safe(s->id, strlen(s->id), id, sizeof(id)));
                gw->metrics.sessions_expired++;
                if (s->will)
                    broker_publish_will(gw, s); /* section 3.1.3.2.2: the session ends first */
                session_destroy(gw, s);
            }
        }
    }
}

void broker_publish_will(struct gateway *gw, struct session *s)
{
    struct msg *m = s->will;
    if (!m)
        return;
    s->will = NULL;
    s->will_due_ms = 0;
    gw->metrics.wills_published++;
    char id[LOG_SAFE_MAX], topic[LOG_SAFE_MAX];
    log_event(LOG_INFO, "will_published", "client_id=%s topic=%s",
              log_safe(s->id, strlen(s->id), id, sizeof(id)),
              log_safe(m->topic, m->topic_len, topic, sizeof(topic)));
    broker_publish(gw, m, NULL);
    msg_unref(m);
}

void session_detach(struct gateway *gw, struct session *s)
{
    BROKER_LOCK_HELD();
    s->conn = NULL;
    s->detached_ms = (int64_t)clock_wall_ms();
    if (s->will) {
        if (s->will_delay == 0 || s->expiry == 0) {
            broker_publish_will(gw, s);
        } else {
            char id[LOG_SAFE_MAX];
            log_event(LOG_DEBUG, "will_scheduled", "client_id=%s delay=%u",
                      log_safe(s->id, strlen(s->id), id, sizeof(id)), s->will_delay);
            s->will_due_ms = clock_mono_ms() + (uint64_t)s->will_delay * 1000u;
        }
    }
    if (s->expiry == 0) {
        session_destroy(gw, s);
        return;
    }
    s->expires_at_ms = s->expiry == UINT32_MAX ? 0
                                               : clock_mono_ms() + (uint64_t)s->expiry * 1000u;
}

void session_attach(struct gateway *gw, struct session *s, struct conn *c)
{
    BROKER_LOCK_HELD();
    s->conn = c;
    c->session = s;
    (void)gw;
    s->expires_at_ms = 0;
    s->will_due_ms = 0;
    if (s->will) {
        /* a new connection before the Will Delay passed: the old will is not sent */
        msg_unref(s->will);
        s->will = NULL;
    }
    /* Section 4.4: resend unacknowledged PUBLISHes, with DUP set, before anything new; a QoS 2
     * delivery already released stays in flight and its PUBREL goes again (session_flush, once
     * the CONNACK is out) */
    struct qentry *resend = NULL, *resend_last = NULL, *keep = NULL, *keep_last = NULL;
    uint32_t n_resend = 0, n_keep = 0;
    for (struct qentry *q = s->infl_head, *next; q; q = next) {
        next = q->next;
        q->next = NULL;
        q->dup = true;
        if (q->released) {
            if (keep_last)
                keep_last->next = q;
            else
                keep = q;
            keep_last = q;
            n_keep++;
        } else {
            if (resend_last)
                resend_last->next = q;
            else
                resend = q;
            resend_last = q;
            n_resend++;
        }
    }
    s->infl_head = keep;
    s->infl_tail = keep_last;
    s->n_inflight = n_keep;
    s->rel_resend = n_keep > 0;
    if (resend) {
        resend_last->next = s->pend_head;
        if (!s->pend_head)
            s->pend_tail = resend_last;
        s->pend_head = resend;
        s->n_pending += n_resend;
    }
}

/* Encodes one queued delivery as a PUBLISH for this connection. Returns 0 when the entry is
 * done with (sent, dropped as too large, or expired), -1 on failure to queue output. */
static int send_entry(struct gateway *gw, struct conn *c, struct qentry *q)
{
    struct msg *m = q->m;
    struct mqtt_publish p = {.dup = q->dup,
                             .qos = q->qos,
                             .retain = q->retain,
                             .topic = {(const uint8_t *)m->topic, m->topic_len},
                             .packet_id = q->packet_id,
                             .payload = {m->payload, m->payload_len}};
    if (c->version == MQTT_V5) {
        p.props = m->props;
        if (m->expires_at_ms) {
            uint64_t now = clock_mono_ms();
            mqtt_props_set(&p.props, MQTT_PROP_MESSAGE_EXPIRY);
            p.props.message_expiry = (uint32_t)((m->expires_at_ms - now + 999) / 1000);
        }
        if (q->n_sub_ids) {
            mqtt_props_set(&p.props, MQTT_PROP_SUBSCRIPTION_ID);
            p.props.n_sub_ids = q->n_sub_ids;
            memcpy(p.props.sub_ids, q->sub_ids, sizeof(p.props.sub_ids));
        }
    }
    bool known = false;
    uint16_t alias = c->aliases_out ? topic_alias_pick(c->aliases_out, m->topic, m->topic_len,
                                                       &known)
                                    : 0;
    if (alias) {
        /* section 3.3.2.3.4: the topic once with its alias, then the alias alone */
        mqtt_props_set(&p.props, MQTT_PROP_TOPIC_ALIAS);
        p.props.topic_alias = alias;
        if (known)
            p.topic.len = 0;
    }
    int rc = send_publish(c, &p);
    if (rc != 0 && alias && !known)
        topic_alias_forget(c->aliases_out, alias); /* the client never learned it */
    if (rc == 0 && alias)
        gw->metrics.topic_alias_bytes_saved += known ? m->topic_len : 0;
    if (rc == 1) /* section 3.1.2.25: discard what the client said it cannot take */
        gw->metrics.messages_dropped_too_large++;
    else if (rc == 0)
        gw->metrics.publishes_out++;
    return rc;
}

static uint16_t next_packet_id(struct session *s)
{
    /* skip ids still in flight; the in-flight list is at most Receive Maximum long */
    for (;;) {
        uint16_t id = s->next_pid++;
        if (s->next_pid == 0)
            s->next_pid = 1;
        bool used = false;
        for (struct qentry *q = s->infl_head; q && !used; q = q->next)
            used = q->packet_id == id;
        if (!used)
            return id;
    }
}

void session_flush(struct gateway *gw, struct session *s)
{
    BROKER_LOCK_HELD();
    struct conn *c = s->conn;
    if (!c || c->state != CONN_CONNECTED)
        return;
    if (s->rel_resend) {
        /* after a reconnect: the PUBRELs of released QoS 2 deliveries, first (section 4.4) */
        s->rel_resend = false;
        for (struct qentry *q = s->infl_head; q; q = q->next)
            if (q->released && q->dup)
                send_ack(c, MQTT_PUBREL, q->packet_id, MQTT_RC_SUCCESS, NULL);
    }
    uint64_t now = clock_mono_ms();
    while (s->pend_head) {
        struct qentry *q = s->pend_head;
        if (q->qos > 0 && s->n_inflight >= c->client_receive_max)
            return;
        if (conn_out_full(c))
            return; /* the client is not reading: the rest waits here, bounded */
        s->pend_head = q->next;
        if (!s->pend_head)
            s->pend_tail = NULL;
        s->n_pending--;
        s->n_pending_qos0 -= q->qos == 0;
        q->next = NULL;
        if (q->m->expires_at_ms && q->m->expires_at_ms <= now && !q->dup) {
            gw->metrics.messages_expired++;
            entry_free(s, q);
            continue;
        }
        if (q->qos > 0 && q->packet_id == 0)
            q->packet_id = next_packet_id(s);
        int rc = send_entry(gw, c, q);
        if (rc < 0) {
            /* cannot buffer output: put it back and end the connection */
            q->next = s->pend_head;
            s->pend_head = q;
            if (!s->pend_tail)
                s->pend_tail = q;
            s->n_pending++;
            s->n_pending_qos0 += q->qos == 0;
            conn_close_remote(c, MQTT_RC_IMPL_SPECIFIC); /* this may be another worker's conn */
            return;
        }
        if (q->qos > 0 && rc == 0) {
            if (s->infl_tail)
                s->infl_tail->next = q;
            else
                s->infl_head = q;
            s->infl_tail = q;
            s->n_inflight++;
        } else {
            entry_free(s, q);
        }
    }
}

/* Takes one delivery out of the in-flight list. */
static void inflight_remove(struct session *s, struct qentry *prev, struct qentry *q)
{
    if (prev)
        prev->next = q->next;
    else
        s->infl_head = q->next;
    if (s->infl_tail == q)
        s->infl_tail = prev;
    s->n_inflight--;
}

bool session_ack(struct gateway *gw, struct session *s, uint8_t type, uint16_t packet_id,
                 uint8_t reason)
{
    BROKER_LOCK_HELD();
    struct qentry *prev = NULL, *q = s->infl_head;
    for (; q && q->packet_id != packet_id; prev = q, q = q->next)
        ;
    bool fits = q && (type == MQTT_PUBACK     ? q->qos == 1
                      : type == MQTT_PUBREC ? q->qos == 2
                                            : q->qos == 2 && q->released);
    if (!fits) {
        if (type == MQTT_PUBREC && s->conn)
            /* section 4.3.3: a PUBREC for an id we do not hold still gets its PUBREL */
            send_ack(s->conn, MQTT_PUBREL, packet_id, MQTT_RC_PACKET_ID_NOT_FOUND, NULL);
        return false;
    }
    if (type == MQTT_PUBREC && reason < 0x80) {
        /* the client has the message: from now on only the PUBREL / PUBCOMP exchange is
         * repeated, never the PUBLISH (section 4.3.3, method of the sender) */
        q->released = true;
        q->dup = false;
        if (s->conn)
            send_ack(s->conn, MQTT_PUBREL, packet_id, MQTT_RC_SUCCESS, NULL);
        return true;
    }
    /* PUBACK, PUBCOMP, or a PUBREC that refuses the message: the exchange is over */
    inflight_remove(s, prev, q);
    entry_free(s, q);
    session_flush(gw, s);
    return true;
}

/* A drop, logged once per interval per session with the count since (the counters have the
 * exact totals): a subscriber that stops reading must not turn routing into logging. */
static void log_dropped(struct gateway *gw, struct session *s, const char *why)
{
    (void)gw;
    char id[LOG_SAFE_MAX];
    LOG_LIMITED(&s->drop_log, LOG_WARN, "message_dropped",
                "client_id=%s reason=%s queued=%u queued_bytes=%llu",
                log_safe(s->id, strlen(s->id), id, sizeof(id)), why, s->n_pending,
                (unsigned long long)s->queued_bytes);
}

/* Drops pending QoS 0 deliveries, oldest first, until `need` bytes are freed or none is left. */
static void drop_qos0(struct gateway *gw, struct session *s, size_t need)
{
    if (s->n_pending_qos0 == 0)
        return; /* nothing to drop: no walk along a long queue of QoS 1 deliveries */
    size_t freed = 0;
    struct qentry *prev = NULL;
    for (struct qentry *q = s->pend_head, *next; q && freed < need; q = next) {
        next = q->next;
        if (q->qos != 0) {
            prev = q;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            s->pend_head = next;
        if (s->pend_tail == q)
            s->pend_tail = prev;
        s->n_pending--;
        s->n_pending_qos0--;
        freed += entry_bytes(q);
        gw->metrics.messages_dropped_queue_full++;
        gw->metrics.bytes_dropped_queue_full += entry_bytes(q);
        entry_free(s, q);
    }
    if (freed)
        log_dropped(gw, s, "queue_bytes_qos0_first");
}

static void enqueue(struct gateway *gw, struct session *s, struct msg *m, uint8_t qos,
                    bool retain, const uint32_t *sub_ids, uint8_t n_sub_ids,
                    struct share_group *group)
{
    size_t bytes = m->topic_len + m->payload_len;
    /* over the byte bound, room is made by dropping the oldest QoS 0 deliveries first (no
     * promise was made for them); a message that still does not fit is dropped */
    if (s->queued_bytes + bytes > gw->cfg.max_queued_bytes && qos > 0)
        drop_qos0(gw, s, s->queued_bytes + bytes - gw->cfg.max_queued_bytes);
    const char *why = s->n_pending >= gw->cfg.max_queued_messages ? "queue_full"
                      : s->queued_bytes + bytes > gw->cfg.max_queued_bytes ? "queue_bytes"
                                                                            : NULL;
    if (why) {
        gw->metrics.messages_dropped_queue_full++;
        gw->metrics.bytes_dropped_queue_full += bytes;
        log_dropped(gw, s, why);
        return;
    }
    struct qentry *q = calloc(1, sizeof(*q));
    if (!q) {
        gw->metrics.messages_dropped_queue_full++;
        return;
    }
    msg_ref(m);
    q->m = m;
    if (group) {
        share_ref(group);
        q->group = group;
    }
    q->qos = qos;
    q->retain = retain;
    q->n_sub_ids = n_sub_ids;
    if (n_sub_ids)
        memcpy(q->sub_ids, sub_ids, n_sub_ids * sizeof(*sub_ids));
    if (s->pend_tail)
        s->pend_tail->next = q;
    else
        s->pend_head = q;
    s->pend_tail = q;
    s->n_pending++;
    s->n_pending_qos0 += q->qos == 0;
    s->queued_bytes += bytes;
    session_flush(gw, s);
}

/* Matching collects one target per session: the highest QoS over its matching
 * subscriptions and all their identifiers (section 3.3.4). */
struct target {
    struct session *s;
    struct share_group *group; /* the delivery of a shared subscription (never merged) */
    uint8_t qos;
    bool retain_as_published;
    uint8_t n_sub_ids;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS];
};

struct match_ctx {
    struct gateway *gw;
    const struct session *origin;
    const struct session *only; /* deliver to this session alone (commands from the cloud) */
    struct target *t;
    size_t n, cap;
    uint8_t msg_qos;
};

static struct target *new_target(struct match_ctx *mc, struct session *s, uint8_t qos)
{
    if (mc->n == mc->cap) {
        size_t cap = mc->cap ? mc->cap * 2 : 16;
        struct target *nt = realloc(mc->t, cap * sizeof(*nt));
        if (!nt)
            return NULL;
        mc->t = nt;
        mc->cap = cap;
    }
    struct target *t = &mc->t[mc->n++];
    memset(t, 0, sizeof(*t));
    t->s = s;
    t->qos = qos;
    return t;
}

/* A shared subscription matched: the first of its group's members met for this message
 * chooses the one that gets it (a separate delivery from that session's own subscriptions,
 * section 4.8.2); the others are passed over. */
static void collect_shared(struct match_ctx *mc, struct share_group *g)
{
    if (mc->only || g->match_gen == mc->gw->match_gen)
        return;
    g->match_gen = mc->gw->match_gen;
    struct sub *to = share_choose(g, NULL);
    if (!to)
        return;
    uint8_t qos = to->options & MQTT_SUBOPT_QOS_MASK;
    struct target *t = new_target(mc, to->session, qos < mc->msg_qos ? qos : mc->msg_qos);
    if (!t)
        return;
    t->group = g;
    t->retain_as_published = (to->options & MQTT_SUBOPT_RETAIN_AS_PUBLISHED) != 0;
    if (to->sub_id)
        t->sub_ids[t->n_sub_ids++] = to->sub_id;
}

static void collect(struct sub *sub, void *arg)
{
    struct match_ctx *mc = arg;
    struct session *s = sub->session;
    if (sub->group) {
        collect_shared(mc, sub->group);
        return;
    }
    if ((sub->options & MQTT_SUBOPT_NO_LOCAL) && s == mc->origin)
        return;
    if (mc->only && s != mc->only)
        return;
    uint8_t qos = sub->options & MQTT_SUBOPT_QOS_MASK;
    if (qos > mc->msg_qos)
        qos = mc->msg_qos;
    struct target *t;
    if (s->match_gen == mc->gw->match_gen) {
        t = &mc->t[s->match_slot];
        if (qos > t->qos)
            t->qos = qos;
    } else {
        size_t slot = mc->n;
        if (!(t = new_target(mc, s, qos)))
            return;
        s->match_gen = mc->gw->match_gen;
        s->match_slot = slot;
    }
    if (sub->options & MQTT_SUBOPT_RETAIN_AS_PUBLISHED)
        t->retain_as_published = true;
    if (sub->sub_id && t->n_sub_ids < MQTT_MAX_SUB_IDS)
        t->sub_ids[t->n_sub_ids++] = sub->sub_id;
}

static void store_retained(struct gateway *gw, struct msg *m)
{
    struct tnode *n = topic_tree_node(gw->retained_root, m->topic, m->topic_len);
    if (!n)
        return;
    struct msg **slot = topic_tree_node_retained(n);
    if (*slot) {
        gw->retained_bytes -= (*slot)->topic_len + (*slot)->payload_len;
        msg_unref(*slot);
        *slot = NULL;
        gw->n_retained--;
    }
    size_t bytes = m->topic_len + m->payload_len;
    if (m->payload_len == 0 || gw->retained_bytes + bytes > gw->cfg.max_retained_bytes) {
        /* section 3.3.1.3: an empty retained message clears the topic; one over the store's
         * bound clears it too (the message is still delivered to subscribers now) */
        if (m->payload_len != 0) {
            gw->metrics.retained_refused++;
            static struct log_limit limit;
            char t[LOG_SAFE_MAX];
            LOG_LIMITED(&limit, LOG_WARN, "retained_refused",
                        "topic=%s bytes=%zu retained_bytes=%llu max_retained_bytes=%llu",
                        log_safe(m->topic, m->topic_len, t, sizeof(t)), bytes,
                        (unsigned long long)gw->retained_bytes,
                        (unsigned long long)gw->cfg.max_retained_bytes);
        }
        topic_tree_prune(n);
        return;
    }
    msg_ref(m);
    *slot = m;
    gw->n_retained++;
    gw->retained_bytes += bytes;
}

void broker_publish(struct gateway *gw, struct msg *m, const struct session *origin)
{
    BROKER_LOCK_HELD();
    if (m->retain)
        store_retained(gw, m);
    static struct match_ctx mc; /* the scratch array is reused across publishes */
    mc.gw = gw;
    mc.origin = origin;
    mc.only = NULL;
    mc.n = 0;
    mc.msg_qos = m->qos;
    gw->match_gen++;
    topic_tree_match(gw->subs_root, m->topic, m->topic_len, collect, &mc);
    for (size_t i = 0; i < mc.n; i++) {
        struct target *t = &mc.t[i];
        /* section 3.3.1.3: retain is cleared for normal delivery unless retain-as-published */
        enqueue(gw, t->s, m, t->qos, m->retain && t->retain_as_published, t->sub_ids,
                t->n_sub_ids, t->group);
    }
}

int broker_deliver_command(struct gateway *gw, const char *id, const char *rest, size_t rest_len,
                           const void *payload, size_t payload_len, uint8_t qos)
{
    char topic[DEVICE_ID_MAX + 512];
    int n = snprintf(topic, sizeof(topic), "cmd/%s%s%.*s", id, rest_len ? "/" : "",
                     (int)rest_len, rest ? rest : "");
    char ids[LOG_SAFE_MAX], ts[LOG_SAFE_MAX];
    if (n < 0 || (size_t)n >= sizeof(topic) ||
        !mqtt_topic_name_valid((const uint8_t *)topic, (size_t)n)) {
        log_event(LOG_WARN, "command_dropped", "id=%s reason=bad_topic",
                  log_safe(id, strlen(id), ids, sizeof(ids)));
        return -1;
    }
    log_safe(topic, (size_t)n, ts, sizeof(ts));
    struct msg *m = msg_new(topic, (size_t)n, payload, payload_len, qos, false, NULL,
                            clock_mono_ms());
    if (!m)
        return -1;
    broker_lock();
    struct session *s = session_find(gw, id, false);
    int rc = -1;
    if (s) {
        static struct match_ctx mc;
        mc.gw = gw;
        mc.origin = NULL;
        mc.only = s;
        mc.n = 0;
        mc.msg_qos = qos;
        gw->match_gen++;
        topic_tree_match(gw->subs_root, m->topic, m->topic_len, collect, &mc);
        for (size_t i = 0; i < mc.n; i++)
            enqueue(gw, mc.t[i].s, m, mc.t[i].qos, false, mc.t[i].sub_ids, mc.t[i].n_sub_ids,
                    NULL);
        rc = mc.n ? 0 : -1;
        gw->metrics.commands_down += mc.n ? 1 : 0;
    }
    msg_unref(m); /* refcounts live under the broker lock */
    broker_unlock();
    log_event(rc == 0 ? LOG_INFO : LOG_WARN, rc == 0 ? "command_delivered" : "command_dropped",
              "id=%s topic=%s bytes=%zu%s", log_safe(id, strlen(id), ids, sizeof(ids)),
              ts, payload_len,
              rc == 0 ? "" : s ? " reason=not_subscribed" : " reason=no_session");
    return rc;
}

struct retained_ctx {
    struct gateway *gw;
    struct session *s;
    uint8_t qos;
    uint32_t sub_id;
};

static void send_one_retained(struct msg *m, void *arg)
{
    struct retained_ctx *rc = arg;
    uint64_t now = clock_mono_ms();
    if (m->expires_at_ms && m->expires_at_ms <= now)
        return;
    uint8_t qos = m->qos < rc->qos ? m->qos : rc->qos;
    enqueue(rc->gw, rc->s, m, qos, true, &rc->sub_id, rc->sub_id ? 1 : 0, NULL);
}

void broker_send_retained(struct gateway *gw, struct session *s, const char *filter, size_t flen,
                          uint8_t qos, uint32_t sub_id)
{
    BROKER_LOCK_HELD();
    struct retained_ctx rc = {gw, s, qos, sub_id};
    topic_tree_match_retained(gw->retained_root, filter, flen, send_one_retained, &rc);
}

struct sub *session_sub_find(const struct session *s, struct tnode *node,
                             const struct share_group *group)
{
    BROKER_LOCK_HELD();
    if (topic_tree_node_sub_count(node) <= s->n_subs) {
        for (struct sub *x = topic_tree_node_subs(node); x; x = x->next_in_node)
            if (x->session == s && x->group == group)
                return x;
        return NULL;
    }
    for (struct sub *x = s->subs; x; x = x->next_in_session)
        if (x->node == node && x->group == group)
            return x;
    return NULL;
}

struct sub *session_sub_add(struct session *s, struct tnode *node, struct share_group *group)
{
    BROKER_LOCK_HELD();
    struct sub *sub = calloc(1, sizeof(*sub));
    if (!sub)
        return NULL;
    sub->session = s;
    topic_tree_add_sub(node, sub);
    sub->next_in_session = s->subs;
    if (s->subs)
        s->subs->prev_in_session = sub;
    s->subs = sub;
    s->n_subs++;
    if (group)
        share_join(group, sub);
    return sub;
}

void session_sub_remove(struct session *s, struct sub *sub)
{
    BROKER_LOCK_HELD();
    if (sub->group)
        share_leave(s->gw, sub);
    if (sub->prev_in_session)
        sub->prev_in_session->next_in_session = sub->next_in_session;
    else
        s->subs = sub->next_in_session;
    if (sub->next_in_session)
        sub->next_in_session->prev_in_session = sub->prev_in_session;
    s->n_subs--;
    struct tnode *node = sub->node;
    topic_tree_remove_sub(node, sub);
    topic_tree_prune(node);
    free(sub);
}

void session_add_reading(struct session *s, int64_t time_ms, float temperature_c,
                         float humidity_pct)
{
    BROKER_LOCK_HELD();
    if (!s->readings && !(s->readings = calloc(1, sizeof(*s->readings))))
        return;
    struct readings *rs = s->readings;
    rs->r[rs->next] = (struct reading){time_ms, temperature_c, humidity_pct};
    rs->next = (rs->next + 1) % SESSION_READINGS;
    if (rs->n < SESSION_READINGS)
        rs->n++;
}

size_t session_readings(const struct session *s, struct reading *out, size_t max)
{
    BROKER_LOCK_HELD();
    const struct readings *rs = s->readings;
    size_t n = rs ? rs->n : 0;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        out[i] = rs->r[(rs->next + SESSION_READINGS - n + i) % SESSION_READINGS];
    return n;
}

void session_destroy_all(struct gateway *gw)
{
    atomic_store(&gw->shutting_down, true); /* no hand-over of shared deliveries now */
    broker_lock();
    for (size_t b = 0; b < gw->session_buckets; b++)
        while (gw->sessions[b])
            session_destroy(gw, gw->sessions[b]);
    share_free_table(gw);
    broker_unlock();
    free(gw->sessions);
    gw->sessions = NULL;
    gw->session_buckets = 0;
}
