/*
 * conn.h: one client connection: socket, TLS (OpenSSL's handshake, then our record layer),
 * input framing into MQTT packets, output buffering, deadlines and the close.
 *
 * The transport does not interpret packets: the layer above hands down a table of handlers
 * (conn_set_handlers) that receives each complete packet and hears when a connection ends.
 *
 * Threads: a connection belongs to one worker, whose thread alone reads its socket, runs its
 * TLS state and timers. Other workers reach it only through its session, under the broker lock:
 * they append to `out` and queue it on its worker's remote list (net/conn.c).
 *
 * Closing: conn_close() may be called anywhere on the owner's thread, with or without the
 * broker lock. With the lock held (inside a packet handler, or while routing) it only marks
 * the connection closed and queues its teardown, which runs once the lock is released; so the
 * lock is never taken twice and the handler's caller still holds a valid pointer.
 */
#ifndef PSAGW_CONN_H
#define PSAGW_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "context.h"
#include "loop.h"
#include "psagw/mqtt.h"
#include "registry.h"
#include "tls12_psk.h"
#include "tls_record.h"
#include "topic_alias.h"
#include "worker.h"

#define PSK_FP_LEN 8 /* bytes of SHA-256(PSK) kept to notice a changed key */

struct session;
struct attest_state;

/* Who a connection speaks for, and what it may do (the ACL of broker/acl.c reads it). */
struct principal {
    bool anonymous;
    char id[DEVICE_ID_MAX + 1]; /* PSK identity; empty for anonymous clients */
    enum device_role role;
    enum attest_policy attestation;
    char **acl_pub; /* NULL-terminated pattern lists with %c already replaced */
    char **acl_sub;
};

/* A TLS connection's state until its handshake ends (then freed). */
struct conn_handshake {
    SSL_CTX *ctx;                 /* the listener's (a reference): an SSL is made only for a
                                   * handshake OpenSSL runs */
    struct tls12_psk *own;        /* psagw's own TLS 1.2 PSK handshake (tls12_psk.h), or NULL */
    uint8_t *hello;               /* the first record while it arrives in pieces, or NULL */
    size_t hello_len;
    struct tls_rec_handshake rec; /* what the record layer needs of OpenSSL's handshake */
};

/* "address:port": the longest IPv6 address (INET6_ADDRSTRLEN - 1 = 45), ":", 5 digits, NUL */
#define CONN_PEER_MAX 52

enum conn_state {
    CONN_TLS_HANDSHAKE,
    CONN_WAIT_CONNECT,
    CONN_AUTHENTICATING, /* MQTT 5 enhanced authentication in progress before CONNACK */
    CONN_CONNECTED,
    CONN_CLOSED,
};

struct conn {
    /* fields are grouped by size so the struct has no holes: it is kept for every connected
     * device (docs/performance.md, idle memory) */
    struct loop_io io;
    struct worker *w;
    struct loop_timer timer;  /* connect deadline, then keep-alive */
    struct loop_timer resume; /* reading again what TLS read ahead (see on_readable) */
    struct loop_timer att_timer; /* re-attestation deadline / interval */
    struct gateway *gw;
    const struct listener_config *listener;
    SSL *ssl;            /* the handshake; after it only where tls_record.c cannot take over */
    struct tls_rec *rec; /* our record layer after a TLS 1.2 AEAD or TLS 1.3 handshake */
    struct conn_handshake *hs; /* until the TLS handshake ends */
    const char *tls_version;      /* static strings from OpenSSL, for logs */
    const char *tls_cipher;
    uint8_t *rx; /* raw bytes of a TLS record still arriving */
    size_t rx_len;
    uint8_t *tx; /* protected bytes the socket did not take yet */
    size_t tx_len, tx_off, tx_cap;
    struct principal who;
    struct attest_state *att;    /* attest/attest.h; NULL most of the time */
    const char *psk_refusal;     /* why the PSK callback refused, for the handshake failure log */
    uint8_t psk_fp[PSK_FP_LEN];  /* SHA-256 prefix of the PSK used, bound into session tickets */
    uint64_t last_rx_ms;
    uint64_t accepted_us; /* monotonic: TCP accept (connect latency) */
    uint64_t rx_us;       /* monotonic: the wake-up that read the packet being handled */
    char **aliases;     /* client -> gateway topic aliases, [1..alias_max] */
    struct topic_alias_table *aliases_out; /* gateway -> client (net/topic_alias.h), or NULL */
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out; /* appended under the broker lock, by any worker */
    size_t out_len, out_cap;
    uint8_t *wbuf; /* being written; the owning worker's alone */
    size_t wbuf_len, wbuf_off;
    struct session *session;
    uint64_t gen;             /* unique per connection: acks the spool releases find their conn */
    struct conn *next, *prev; /* the worker's live connections */
    struct conn *next_flush;  /* the worker's connections with output to write */
    struct conn *next_remote; /* the worker's remote list (broker lock) */
    struct conn *next_dead;   /* the closing list, then the dead list (owner only) */
    enum conn_state state;
    uint32_t addr_slot;       /* the peer address's slot in handshake_limit.h */
    uint32_t client_max_packet;
    int kill_reason;     /* >= 0: another worker asked the owner to close it (broker lock) */
    uint32_t spool_waiting;   /* QoS 1/2 acks waiting for the spool (broker lock) */
    uint16_t keep_alive;
    uint16_t client_receive_max;
    uint16_t alias_max; /* what we granted the client */
    uint8_t version;
    bool tls;            /* a TLS listener's connection */
    bool peer_closed; /* close_notify or a fatal alert arrived */
    bool teardown_pending; /* closed under the broker lock, on the worker's closing list */
    bool in_handshake_limit; /* counted by handshake_limit.h until the handshake ends */
    bool have_identity;          /* set by the TLS PSK callbacks */
    bool resumed;                /* the handshake used one of our session tickets */
    bool auth_psa_iat;           /* CONNECT carried Authentication Method PSA-IAT */
    bool attested;               /* the last verdict on this connection was "accepted" */
    bool request_problem_info;
    bool graceful; /* DISCONNECT 0x00 received: no will */
    bool flush_pending;  /* on the owner's flush list (owner only) */
    _Atomic bool out_throttled; /* deliveries held back until `out` drains (set: broker lock) */
    bool remote_pending; /* on the owner's remote list (broker lock) */
    bool read_paused;         /* too many waiting: input is not read (set under the broker lock) */
    bool out_paused; /* our unwritten output to it is beyond what deliveries can queue: its
                      * input waits until that is written (owner only), so a client that sends
                      * requests and never reads the answers costs a bounded amount */
    bool resume_requested;    /* the spool caught up: the owner reads again (broker lock) */
    char peer[CONN_PEER_MAX]; /* "address:port" */
};

/* Why a connection must end: an MQTT reason code (the DISCONNECT an MQTT 5 client gets, and
 * the log line and counter, all chosen in one place: proto_end in proto/end.c), or
 * CONN_END_QUIET to close without a word (a CONNACK already said why, or nothing is owed
 * before CONNECT). `detail` is the reason string and log detail (or NULL), read at once.
 * by_client: the client's own DISCONNECT. Steps that cannot go on return one. */
#define CONN_END_NONE (-2) /* go on */
#define CONN_END_QUIET (-1)
struct conn_end {
    int reason;
    const char *detail;
    bool by_client;
};
#define CONN_GO_ON ((struct conn_end){CONN_END_NONE, NULL, false})
#define CONN_END(code, text) ((struct conn_end){(code), (text), false})

/* What the layer above does with a connection (set once, before the workers run). */
struct conn_handlers {
    /* One complete packet (broker lock held). The handler may close the connection. */
    void (*packet)(struct conn *c, const uint8_t *pkt, size_t len);
    /* The byte stream cannot be read as packets (broker lock held): a bad length, a packet over
     * the limit. The handler ends the connection. */
    void (*unframed)(struct conn *c, struct conn_end why);
    /* The connection ends (broker lock held), for `reason` (an MQTT reason code, or -1 when
     * the peer went away) and `detail` (or NULL): say goodbye if the protocol has a way, let
     * go of the session. Nothing is queued for the connection after this returns. */
    void (*closing)(struct conn *c, int reason, const char *detail);
    /* Its memory is about to go (owner thread, no lock): free what upper layers hung on it. */
    void (*release)(struct conn *c);
    /* Output held back by conn_out_full() has drained (broker lock held): deliver again. */
    void (*drained)(struct conn *c);
};
void conn_set_handlers(const struct conn_handlers *h);

/* Frees the SSL objects a listener keeps for reuse (when its socket closes; owner only). */
void conn_listener_release(struct listener *l);
/* A new connection on the owner's loop. A TLS one must have been admitted by
 * handshake_limit_enter(addr_slot); it leaves the count when its handshake ends. */
void conn_accept(struct worker *w, struct listener *l, int fd, const char *peer,
                 uint32_t addr_slot, uint32_t connect_timeout);
/* Room for n more output bytes at c->out + c->out_len (broker lock); NULL if out of memory. */
uint8_t *conn_out_reserve(struct conn *c, size_t n);
/* Counts n bytes written into the reserved room as output and schedules the write. */
void conn_out_commit(struct conn *c, size_t n);
/* Output not yet handed to the socket, beyond which deliveries wait in the session's queue
 * (bounded and counted there) instead of growing `out`: a client that stops reading costs at
 * most this here. */
#define CONN_OUT_MAX (256u * 1024u)
/* Whether `out` is at CONN_OUT_MAX; if so the connection remembers to call the handlers'
 * drained() once it has written it (broker lock held). */
bool conn_out_full(struct conn *c);
/*
 * Ends the connection (owner thread): the handlers' closing() says goodbye (an MQTT 5 DISCONNECT
 * with reason >= 0x80 and `detail` as its reason string), and the disconnect is logged. Safe to
 * call twice; memory is freed later. With the broker lock held the rest of the teardown (flush, TLS
 * close, unhooking from the loop) is deferred until it is released.
 */
void conn_close(struct conn *c, int reason, const char *detail);
/* Asks the connection's own worker to close it (from any worker, broker lock held). */
void conn_close_remote(struct conn *c, int reason);
/* Asks the owner to read a connection paused by spool back-pressure again (broker lock). */
void conn_resume_remote(struct conn *c);
/* The worker's before-sleep work: take the remote list, write output, free closed conns. */
void conn_worker_housekeeping(struct worker *w);
void conn_touch(struct conn *c); /* a packet arrived: push the keep-alive deadline */

#endif
