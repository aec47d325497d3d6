/*
 * session.h: MQTT sessions and message routing (the broker proper). A session outlives its
 * connection for its expiry interval; messages reach it through its subscriptions, wait in its
 * pending queue and move to in-flight as the client's Receive Maximum allows. Broker lock held
 * for every call unless it says otherwise.
 */
#ifndef PSAGW_SESSION_H
#define PSAGW_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "log.h"
#include "conn.h"
#include "msg.h"
#include "share.h"
#include "topic_tree.h"

/* One delivery of a message to one session. */
struct qentry {
    struct qentry *next;
    struct msg *m;
    uint8_t qos;
    bool retain;
    bool dup;       /* sent before: the PUBLISH (or, once released, the PUBREL) goes again */
    bool released;  /* QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP */
    uint16_t packet_id;
    uint8_t n_sub_ids;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS];
    struct share_group *group; /* came through a shared subscription (a reference), or NULL */
};

/* The last readings of a sensor whose records the gateway opens (routes with payload = "json"),
 * for the operator's view; allocated at the first one, so other sessions pay a pointer. */
#define SESSION_READINGS 60
struct reading {
    int64_t time_ms; /* wall clock, the device's own time in the record */
    float temperature_c, humidity_pct;
};
struct readings {
    struct reading r[SESSION_READINGS]; /* a ring */
    uint32_t next, n;
};

struct session {
    /* grouped by size, no holes, the id inline: one allocation of ~200 bytes a device */
    struct session *hnext;
    struct gateway *gw;
    struct conn *conn; /* NULL while offline */
    struct sub *subs; /* doubly linked through next_in_session / prev_in_session */
    uint64_t expires_at_ms; /* while offline: when the session ends (0: never) */
    struct qentry *pend_head, *pend_tail;
    struct qentry *infl_head, *infl_tail;
    uint64_t queued_bytes; /* topics and payloads pending or in flight (max_queued_bytes) */
    struct log_limit drop_log; /* message_dropped: one line per interval */
    struct log_limit acl_log;  /* acl_denied for its publishes: one line per interval */
    uint64_t publishes_in; /* PUBLISHes its connections sent (the dashboard's rate) */
    struct readings *readings; /* NULL until a record of it was opened */
    int64_t detached_ms;       /* wall clock: when its last connection went (0: never) */
    uint16_t *qos2_in; /* packet ids of QoS 2 PUBLISHes awaiting PUBREL */
    struct msg *will;
    uint64_t will_due_ms; /* while offline: when the delayed will is published (0: none) */
    uint64_t match_gen;
    size_t match_slot;
    uint32_t n_subs;
    uint32_t expiry;        /* seconds after disconnect; UINT32_MAX: never */
    uint32_t n_pending;
    uint32_t n_inflight;
    uint32_t n_pending_qos0; /* QoS 0 deliveries among the pending ones */
    uint32_t will_delay;
    uint16_t next_pid;
    uint16_t n_qos2_in, cap_qos2_in;
    bool anonymous;
    bool rel_resend; /* reconnected: released QoS 2 deliveries' PUBRELs go again */
    char id[]; /* NUL-terminated */
};

struct session *session_find(struct gateway *gw, const char *id, bool anonymous);
struct session *session_create(struct gateway *gw, const char *id, bool anonymous);
void session_destroy(struct gateway *gw, struct session *s);
/* The connection went away: publish or schedule the will, start the expiry clock. */
void session_detach(struct gateway *gw, struct session *s);
/* A connection took the session: cancel will and expiry, resend in-flight, send pending. */
void session_attach(struct gateway *gw, struct session *s, struct conn *c);
/* Sends what the client's receive maximum allows. */
void session_flush(struct gateway *gw, struct session *s);
/* The client acknowledged an outbound QoS 1/2 PUBLISH: `type` is MQTT_PUBACK, MQTT_PUBREC
 * (reason >= 0x80 ends the exchange; otherwise the PUBREL goes out) or MQTT_PUBCOMP. Returns
 * false if no delivery of that kind waits under packet_id (MQTT 5 section 4.3.3). */
bool session_ack(struct gateway *gw, struct session *s, uint8_t type, uint16_t packet_id,
                 uint8_t reason);
/* The session's subscription at a filter's node (in shared subscription group `group`, or
 * its own when NULL), or NULL; looks along the shorter of the node's and the session's lists,
 * so neither many filters nor many subscribers make it slow. */
struct sub *session_sub_find(const struct session *s, struct tnode *node,
                             const struct share_group *group);
/* A new subscription of s at node (a member of `group` if not NULL); NULL if out of memory. */
struct sub *session_sub_add(struct session *s, struct tnode *node, struct share_group *group);
/* Removes and frees one subscription (O(1)); prunes its node. */
void session_sub_remove(struct session *s, struct sub *sub);
/* Keeps one opened reading (broker lock). */
void session_add_reading(struct session *s, int64_t time_ms, float temperature_c,
                         float humidity_pct);
/* Copies the kept readings, oldest first, into out[0..max); returns how many. */
size_t session_readings(const struct session *s, struct reading *out, size_t max);
/* Every session, at shutdown (takes the broker lock). */
void session_destroy_all(struct gateway *gw);

/* Routes a message to every matching subscriber (and stores it if retained). */
void broker_publish(struct gateway *gw, struct msg *m, const struct session *origin);
void broker_publish_will(struct gateway *gw, struct session *s);
/* A command from the cloud: delivers cmd/<id>[/<rest>] to that device's session alone (if it
 * subscribed). Any thread; takes the broker lock. Returns 0 if it was delivered or queued. */
int broker_deliver_command(struct gateway *gw, const char *id, const char *rest, size_t rest_len,
                           const void *payload, size_t payload_len, uint8_t qos);
/* Publishes due wills and ends expired sessions; called once a second. */
void broker_sweep(struct gateway *gw);
/* Sends matching retained messages for a new subscription. */
void broker_send_retained(struct gateway *gw, struct session *s, const char *filter, size_t flen,
                          uint8_t qos, uint32_t sub_id);

#endif
