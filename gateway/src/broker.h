/*
 * broker.h: the gateway's MQTT broker core: connections, sessions, the subscription tree,
 * retained messages and the per-device ACL. One file per protocol step implements it
 * (handle_connect.c, handle_publish.c, handle_subscribe.c, handle_control.c), on top of
 * conn.c (socket + TLS I/O), session.c (sessions and delivery queues) and topic_tree.c.
 */
#ifndef PSAGW_BROKER_H
#define PSAGW_BROKER_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "metrics.h"
#include "psagw/iat.h"
#include "psagw/mqtt.h"
#include "registry.h"
#include "tls_record.h"

#define PSK_FP_LEN 8 /* bytes of SHA-256(PSK) kept to notice a changed key */

struct gateway;
struct worker;
struct idset;
struct session;
struct tnode;
struct record_keys;

/* A message as routed: one allocation, shared by every queue that holds it (refcounted). */
struct msg {
    uint32_t refs;
    uint8_t qos;
    bool retain;
    uint64_t expires_at_ms; /* 0: no Message Expiry Interval */
    size_t topic_len;
    size_t payload_len;
    char *topic;        /* NUL-terminated, inside this allocation */
    uint8_t *payload;   /* inside this allocation */
    struct mqtt_props props; /* forwarded properties; pointers into this allocation */
};

/* One delivery of a message to one session. */
struct qentry {
    struct qentry *next;
    struct msg *m;
    uint8_t qos;
    bool retain;
    bool dup;
    uint16_t packet_id;
    uint8_t n_sub_ids;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS];
};

struct sub {
    struct sub *next_in_node;
    struct sub *next_in_session;
    struct session *session;
    struct tnode *node;
    uint8_t options; /* MQTT 5 subscription options; QoS already capped */
    uint32_t sub_id; /* 0: none */
};

/* Who a connection speaks for, and what it may do. */
struct principal {
    bool anonymous;
    char id[DEVICE_ID_MAX + 1]; /* PSK identity; empty for anonymous clients */
    enum device_role role;
    enum attest_policy attestation;
    char **acl_pub; /* NULL-terminated pattern lists with %c already replaced */
    char **acl_sub;
};

/* A device's attestation material and, while an exchange runs, its nonce (attest.c). Lives
 * only from the handshake (or a re-authentication request) to the verdict, then is wiped. */
struct attest_state {
    uint8_t iak[DEVICE_IAK_MAX];
    size_t iak_len;
    uint8_t instance_id[IAT_INSTANCE_ID_SIZE];
    enum iat_profile profile;
    uint8_t nonce[64];
    size_t nonce_len;
    uint8_t *connect; /* the CONNECT, kept to finish it after the verdict (initial exchange) */
    size_t connect_len;
    bool in_exchange;
    uint64_t started_us;
};

enum conn_state {
    CONN_TLS_HANDSHAKE,
    CONN_WAIT_CONNECT,
    CONN_AUTHENTICATING, /* MQTT 5 enhanced authentication in progress before CONNACK */
    CONN_CONNECTED,
    CONN_CLOSED,
};

/*
 * A connection belongs to one worker: only that worker's thread reads it, writes its socket,
 * touches its SSL and its timers. Other workers reach it only through its session, under the
 * broker lock: they append to `out` and queue it on its worker's remote list.
 */
struct conn {
    struct loop_io io;
    struct worker *w;
    struct loop_timer timer; /* connect deadline, then keep-alive */
    struct loop_timer resume; /* reading again what TLS read ahead (see on_readable) */
    struct gateway *gw;
    const struct listener_config *listener;
    bool tls;            /* a TLS listener's connection */
    SSL *ssl;            /* the handshake; after it only where tls_record.c cannot take over */
    struct tls_rec *rec; /* our record layer after a TLS 1.2 AEAD handshake (tls_record.h) */
    struct tls_rec_handshake *hs; /* what the record layer needs of the handshake, then freed */
    const char *tls_version;      /* static strings from OpenSSL, for logs */
    const char *tls_cipher;
    bool peer_closed; /* close_notify or a fatal alert arrived */
    uint8_t *rx;      /* raw bytes of a TLS record still arriving */
    size_t rx_len;
    uint8_t *tx; /* protected bytes the socket did not take yet */
    size_t tx_len, tx_off, tx_cap;
    enum conn_state state;
    char peer[64];
    struct principal who;
    bool have_identity; /* set by the TLS PSK callbacks */
    bool resumed;       /* the handshake used one of our session tickets */
    struct attest_state *att; /* see struct attest_state; NULL most of the time */
    bool auth_psa_iat;        /* CONNECT carried Authentication Method PSA-IAT */
    bool attested;            /* the last verdict on this connection was "accepted" */
    struct loop_timer att_timer; /* re-attestation deadline / interval */
    const char *psk_refusal; /* why the PSK callback refused, for the handshake failure log */
    uint8_t psk_fp[PSK_FP_LEN]; /* SHA-256 prefix of the PSK used, bound into session tickets */
    uint64_t last_rx_ms;
    uint8_t version;
    uint16_t keep_alive;
    bool request_problem_info;
    bool graceful; /* DISCONNECT 0x00 received: no will */
    uint32_t client_max_packet;
    uint16_t client_receive_max;
    uint16_t alias_max; /* what we granted the client */
    char **aliases;     /* client -> gateway topic aliases, [1..alias_max] */
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out; /* appended under the broker lock, by any worker */
    size_t out_len, out_cap;
    uint8_t *wbuf; /* being written; the owning worker's alone */
    size_t wbuf_len, wbuf_off;
    bool flush_pending;  /* on the owner's flush list (owner only) */
    bool remote_pending; /* on the owner's remote list (broker lock) */
    int kill_reason;     /* >= 0: another worker asked the owner to close it (broker lock) */
    struct session *session;
    uint64_t gen;           /* unique per connection: acks the spool releases find their conn */
    uint32_t spool_waiting; /* QoS 1/2 acks waiting for the spool (broker lock) */
    bool read_paused;       /* too many waiting: input is not read (set under the broker lock) */
    bool resume_requested;  /* the spool caught up: the owner reads again (broker lock) */
    struct conn *next, *prev;  /* the worker's live connections */
    struct conn *next_flush;   /* the worker's connections with output to write */
    struct conn *next_remote;  /* the worker's remote list (broker lock) */
    struct conn *next_dead;    /* freed before the next sleep */
};

struct session {
    struct session *hnext;
    struct gateway *gw;
    char *id;
    bool anonymous;
    struct conn *conn; /* NULL while offline */
    struct sub *subs;
    uint32_t expiry;   /* seconds after disconnect; UINT32_MAX: never */
    uint64_t expires_at_ms; /* while offline: when the session ends (0: never) */
    struct qentry *pend_head, *pend_tail;
    uint32_t n_pending;
    struct qentry *infl_head, *infl_tail;
    uint32_t n_inflight;
    uint16_t next_pid;
    uint16_t *qos2_in; /* packet ids of QoS 2 PUBLISHes awaiting PUBREL */
    uint16_t n_qos2_in, cap_qos2_in;
    struct msg *will;
    uint32_t will_delay;
    uint64_t will_due_ms; /* while offline: when the delayed will is published (0: none) */
    uint64_t match_gen;
    size_t match_slot;
};

struct listener {
    struct loop_io io;
    struct worker *w;
    const struct listener_config *cfg;
    SSL_CTX *tls; /* shared by every worker's socket of this listener */
    int fd;
};

#define READ_CHUNK 16384
/* raw TLS input: a record still arriving (at most one, <= 18 KB) plus one full read */
#define TLS_IN_CAP (2 * (TLS_REC_HEADER + TLS_REC_MAX_CIPHERTEXT))
/* protected output per send(): four full records */
#define TLS_OUT_CAP (4 * (TLS_REC_MAX_PLAIN + TLS_REC_OVERHEAD))

/* One event loop on one thread, with its own listening sockets (SO_REUSEPORT), connections,
 * timers and registry connection. */
struct worker {
    struct gateway *gw;
    unsigned index;
    pthread_t thread;
    struct loop *loop;
    struct listener listeners[CONFIG_MAX_LISTENERS];
    size_t n_listeners;
    struct conn *conns;
    struct conn *flush_list;
    struct conn *dead_list;
    struct conn *remote_list; /* broker lock */
    bool wake_sent;           /* broker lock */
    bool stop_requested;      /* broker lock */
    bool recheck_requested;   /* broker lock: re-check connections against the registry */
    struct idset *recheck_ids; /* broker lock: only these device ids (NULL: every one) */
    struct loop_io wake_io;   /* eventfd */
    struct loop_timer tick_timer;
    uint8_t scratch[READ_CHUNK];
    uint8_t tls_in[TLS_IN_CAP];
    uint8_t tls_out[TLS_OUT_CAP];
};

struct gateway {
    struct config cfg;
    pthread_mutex_t lock; /* the broker lock: sessions, trees, retained, conn->out */
    /* One registry connection for every worker, under its own short lock (two SQLite
     * connections in one process stopped seeing the CLI's commits in testing). */
    struct registry *reg;
    pthread_mutex_t reg_lock;
    int64_t registry_version; /* worker 0's last look at data_version */
    int64_t change_seq;       /* worker 0's last look at the registry's device change log */
    struct worker *workers;
    unsigned n_workers;
    SSL_CTX *tls[CONFIG_MAX_LISTENERS];
    _Atomic size_t n_conns;
    struct session **sessions;
    size_t n_sessions, session_buckets;
    struct tnode *subs_root;
    struct tnode *retained_root;
    size_t n_retained;
    uint64_t match_gen;
    struct loop_timer stats_timer; /* on worker 0 */
    struct metrics metrics;
    struct attest_ctx *attest;
    struct spool *spool;   /* NULL without a cloud section */
    struct uplink *uplink;
    struct record_keys *record_keys; /* the group key for payload = "json" routes, or NULL */
    bool cloud_topics_ok;  /* the templates passed the AWS checks (broker lock) */
    _Atomic uint64_t conn_gen;
    _Atomic bool shutting_down;
};

/* The worker whose thread is running (NULL outside the workers). */
struct worker *worker_current(void);
/* Wakes a worker's loop through its eventfd, once until it runs (broker lock held). */
void worker_wake(struct worker *w);
void broker_lock(struct gateway *gw);
void broker_unlock(struct gateway *gw);

/* gateway.c */
int gateway_init(struct gateway *gw, const struct config *cfg, char *err, size_t errlen);
int gateway_run(struct gateway *gw);
void gateway_free(struct gateway *gw);
/* The registry lookup the TLS callbacks use: fills *d for an active (not revoked) device. */
int gateway_lookup_device(struct worker *w, const char *id, struct device *d, const char **why);

/* attest.c: the attestation verifier's glue (policy, reference values, verdicts). */
#define ATTEST_METHOD "PSA-IAT"
struct attest_ctx;
int attest_init(struct gateway *gw, char *err, size_t errlen);
void attest_free(struct gateway *gw);
/* Copies a device's IAK into a new c->att (nothing if the device has none). */
void attest_keys_from_device(struct conn *c, const struct device *d);
void attest_state_free(struct conn *c);
uint64_t attest_clock_us(void); /* monotonic */
/* Verifies a token for connection c; fills *tok and writes the reason text (no secrets). */
enum iat_result attest_verify(struct conn *c, const uint8_t *token, size_t len,
                              struct iat_token *tok, char *reason, size_t reason_cap);
/* Reloads reference values after a registry change; writes queued verdicts (worker 0). */
void attest_registry_changed(struct gateway *gw);
void attest_flush_history(struct gateway *gw);
/* Logs the per-reason refusal counters (with the stats line). */
void attest_log_stats(struct gateway *gw);

/* tls.c */
/* The PSK's fingerprint bound into tickets and re-checked when the registry changes. */
void tls_psk_fingerprint(const uint8_t *psk, size_t len, uint8_t fp[PSK_FP_LEN]);
SSL_CTX *tls_server_ctx(const struct config *cfg, const struct listener_config *l, char *err,
                        size_t errlen);
int tls_conn_index(void);

/* conn.c */
void conn_accept(struct worker *w, struct listener *l, int fd, const char *peer,
                 uint32_t connect_timeout);
/* Room for n more output bytes at c->out + c->out_len (broker lock); NULL if out of memory. */
uint8_t *conn_out_reserve(struct conn *c, size_t n);
/* Appends bytes to the output buffer; they are written before the loop sleeps. */
int conn_send(struct conn *c, const uint8_t *data, size_t len);
/* Encodes and queues a packet: helpers over the codec's encoders. */
int conn_send_connack(struct conn *c, bool session_present, uint8_t reason,
                      const struct mqtt_props *props);
int conn_send_ack(struct conn *c, uint8_t type, uint16_t packet_id, uint8_t reason,
                  const char *reason_string);
/*
 * Ends the connection. With MQTT 5 and reason >= 0x80, a DISCONNECT carrying the reason (and
 * reason_string if given) is sent first. Safe to call twice; memory is freed later.
 */
void conn_close(struct conn *c, int reason, const char *reason_string);
/* Asks the connection's own worker to close it (from any worker, broker lock held). */
void conn_close_remote(struct conn *c, int reason);
/* Asks the owner to read a connection paused by spool back-pressure again (broker lock). */
void conn_resume_remote(struct conn *c);
/* The worker's before-sleep work: take the remote list, write output, free closed conns. */
void conn_worker_housekeeping(struct worker *w);
void conn_touch(struct conn *c); /* a packet arrived: push the keep-alive deadline */

/* handle_*.c: one per protocol step. */
void handle_packet(struct conn *c, const uint8_t *buf, size_t len);
void handle_connect(struct conn *c, const struct mqtt_connect *p, const uint8_t *raw,
                    size_t raw_len);
void handle_publish(struct conn *c, struct mqtt_publish *p);
void handle_puback(struct conn *c, const struct mqtt_ack *a);
void handle_pubrel(struct conn *c, const struct mqtt_ack *a);
void handle_subscribe(struct conn *c, const struct mqtt_subscribe *s);
void handle_unsubscribe(struct conn *c, const struct mqtt_subscribe *s);
void handle_auth(struct conn *c, const struct mqtt_reason_packet *a);
/* The end of CONNECT once any authentication is done: session, CONNACK (handle_connect.c). */
void connect_accept(struct conn *c, const struct mqtt_connect *p);
/* Starts the PSA-IAT challenge for a CONNECT that carries the method (handle_auth.c). */
void auth_begin(struct conn *c, const uint8_t *raw, size_t len);
/* (Re)starts the re-attestation interval after a good verdict (handle_auth.c). */
void auth_arm_reattest(struct conn *c);
/* Refuses a CONNECT with a CONNACK reason and closes (handle_connect.c). */
void connect_refuse(struct conn *c, uint8_t reason, const char *why);
void handle_disconnect(struct conn *c, const struct mqtt_reason_packet *d);

/* cloud.c: the spool and uplink glue (docs/cloud.md). */
int cloud_init(struct gateway *gw, char *err, size_t errlen);
void cloud_stop(struct gateway *gw); /* at shutdown, after the workers */
void cloud_free(struct gateway *gw);
void cloud_reload(struct gateway *gw, const struct cloud_config *next);
/* The cloud route a device topic takes (with the levels for {rest}), or NULL (broker lock). */
const struct cloud_route *cloud_route(struct gateway *gw, const char *topic, size_t len,
                                      const char **rest, size_t *rest_len);
/* handle_publish: takes a PUBLISH for the cloud `route`, or (route NULL) just its ack when
 * earlier acks of the connection still wait for the spool. Returns 0 when the ack will be sent
 * by the spool, -1 after refusing the message (reply sent or connection closed). */
int cloud_take_publish(struct conn *c, const struct mqtt_publish *p,
                       const struct cloud_route *route, const char *rest, size_t rest_len);
/* An attestation verdict as JSON, spooled for attest_topic. */
void cloud_attest_verdict(struct gateway *gw, const char *id, const char *json, size_t len);
void cloud_log_stats(struct gateway *gw);

/* acl.c */
bool acl_may_publish(const struct principal *who, const char *topic, size_t len);
bool acl_may_subscribe(const struct principal *who, const char *filter, size_t len);
/* Builds the principal's pattern lists from the role and registry entry (or anonymous ACL). */
int acl_principal_init(struct principal *who, const struct device *d, const struct config *cfg);
void acl_principal_clear(struct principal *who);
/* Is every topic matched by `filter` also matched by `pattern`? */
bool acl_filter_within(const char *pattern, const char *filter, size_t flen);

/* session.c */
struct session *session_find(struct gateway *gw, const char *id, bool anonymous);
struct session *session_create(struct gateway *gw, const char *id, bool anonymous);
void session_destroy(struct gateway *gw, struct session *s);
/* The connection went away: publish or schedule the will, start the expiry clock. */
void session_detach(struct gateway *gw, struct session *s);
/* A connection took the session: cancel will and expiry, resend in-flight, send pending. */
void session_attach(struct gateway *gw, struct session *s, struct conn *c);
/* Sends what the client's receive maximum allows. */
void session_flush(struct gateway *gw, struct session *s);
void session_ack(struct gateway *gw, struct session *s, uint16_t packet_id);
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

struct msg *msg_new(const char *topic, size_t topic_len, const uint8_t *payload,
                    size_t payload_len, uint8_t qos, bool retain, const struct mqtt_props *props,
                    uint64_t now_ms);
void msg_ref(struct msg *m);
void msg_unref(struct msg *m);

/* topic_tree.c */
struct tnode *tree_new(void);
void tree_free(struct tnode *root);
/* Finds or creates the node of a filter (or topic); NULL on allocation failure. */
struct tnode *tree_node(struct tnode *root, const char *filter, size_t len);
/* Removes empty nodes from n up towards the root. */
void tree_prune(struct tnode *n);
void tree_add_sub(struct tnode *n, struct sub *s);
void tree_remove_sub(struct tnode *n, struct sub *s);
struct sub *tree_node_subs(struct tnode *n);
struct msg **tree_node_retained(struct tnode *n);
/* Calls fn for every subscription matching topic. */
void tree_match(struct tnode *root, const char *topic, size_t len,
                void (*fn)(struct sub *s, void *arg), void *arg);
/* Calls fn for every retained message whose topic matches filter. */
void tree_match_retained(struct tnode *root, const char *filter, size_t len,
                         void (*fn)(struct msg *m, void *arg), void *arg);

#endif
