/*
 * worker.h: one event loop on one thread, with its own listening sockets (SO_REUSEPORT),
 * connections, timers and scratch buffers. The daemon creates the workers and runs them; this
 * layer knows which one is running and how to wake one from another thread.
 */
#ifndef PSAGW_WORKER_H
#define PSAGW_WORKER_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "context.h"
#include "loop.h"
#include "tls_record.h"

struct conn;
struct idset;

/* SSL objects kept for reuse after their handshake ended (conn.c): SSL_new costs a connect more
 * than SSL_clear does */
#define LISTENER_SSL_POOL 32

struct listener {
    struct loop_io io;
    struct loop_timer resume; /* accepting again after running out of descriptors */
    struct worker *w;
    const struct listener_config *cfg;
    SSL_CTX *tls; /* shared by every worker's socket of this listener */
    int fd;
    SSL *ssl_pool[LISTENER_SSL_POOL]; /* this worker's, for this listener (owner only) */
    unsigned n_ssl_pool;
};

#define READ_CHUNK 16384
/* raw TLS input: a record still arriving (at most one, <= 18 KB) plus one full read */
#define TLS_IN_CAP (2 * (TLS_REC_HEADER + TLS_REC_MAX_CIPHERTEXT))
/* protected output per send(): four full records */
#define TLS_OUT_CAP (4 * (TLS_REC_MAX_PLAIN + TLS_REC_OVERHEAD))

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
    struct conn *closing_list; /* closed under the broker lock, torn down after (owner only) */
    struct conn *remote_list;  /* broker lock */
    bool wake_sent;            /* broker lock */
    bool stop_requested;       /* broker lock (daemon) */
    bool recheck_requested;    /* broker lock (daemon): re-check connections against the registry */
    struct idset *recheck_ids; /* broker lock (daemon): only these device ids (NULL: every one) */
    struct loop_io wake_io;    /* eventfd */
    int spare_fd; /* kept open to accept-and-close when descriptors run out (-1: none) */
    uint32_t handshakes; /* TLS handshakes in progress on this worker (owner only) */
    struct loop_timer tick_timer;
    _Atomic uint64_t heartbeat; /* loop iterations (daemon: the watchdog sees the loop turn) */
    uint64_t heartbeat_seen;    /* worker 0's last look at it */
    uint8_t scratch[READ_CHUNK];
    uint8_t tls_in[TLS_IN_CAP];
    uint8_t tls_out[TLS_OUT_CAP];
};

/* The worker whose thread is running (NULL outside the workers). */
struct worker *worker_current(void);
/* Marks w as the calling thread's worker (NULL: none). */
void worker_set_current(struct worker *w);
/* Wakes a worker's loop through its eventfd, once until it runs (broker lock held). */
void worker_wake(struct worker *w);

#define WORKER_OWNS(w) assert(worker_current() == (w))

#endif
