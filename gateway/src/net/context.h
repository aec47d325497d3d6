/*
 * context.h: struct gateway, the state the layers share at run time. It is data, not code:
 * each group of fields belongs to the layer named beside it, and only that layer (and the
 * daemon, which builds and frees it) touches the fields. It lives in net/, the lowest layer that
 * needs a running gateway; the layers above see it through their link to net/.
 */
#ifndef PSAGW_CONTEXT_H
#define PSAGW_CONTEXT_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "loop.h"
#include "metrics.h"
#include "registry.h"

struct worker;
struct session;
struct tnode;
struct share_group;
struct attest_ctx;
struct spool;
struct uplink;
struct record_keys;
struct http_server;

struct gateway {
    /* daemon: the configuration in force (changed by a reload under the broker lock) */
    struct config cfg;
    struct metrics metrics; /* every layer counts here (under the broker lock or owner-only) */

    /* store: one registry connection for every worker, under its own short lock (two SQLite
     * connections in one process stopped seeing the CLI's commits in testing) */
    struct registry *reg;
    pthread_mutex_t reg_lock;
    int64_t registry_version; /* daemon, worker 0: the last data_version seen */
    int64_t change_seq;       /* daemon, worker 0: the last device change log entry seen */
    dev_t registry_dev;       /* daemon, worker 0: the file the connection has open */
    ino_t registry_ino;
    _Atomic bool registry_lost; /* the path no longer leads to it: new devices are refused */

    /* net: workers, TLS contexts, connections */
    struct worker *workers;
    unsigned n_workers;
    SSL_CTX *tls[CONFIG_MAX_LISTENERS];
    _Atomic size_t n_conns;
    _Atomic uint64_t conn_gen;
    _Atomic bool shutting_down;

    /* broker (broker lock): sessions, subscriptions, retained messages */
    struct session **sessions;
    size_t n_sessions, session_buckets;
    struct tnode *subs_root;
    struct tnode *retained_root;
    size_t n_retained;
    uint64_t retained_bytes; /* topics and payloads of the retained messages */
    uint64_t match_gen;
    struct share_group **share_groups; /* shared subscription groups: buckets (broker/share.h) */
    size_t share_buckets, n_share_groups;

    /* attest */
    struct attest_ctx *attest;

    /* cloud: the spool and the uplink (NULL without a cloud section) */
    struct spool *spool;
    struct uplink *uplink;
    struct record_keys *record_keys; /* the group key for payload = "json" routes, or NULL */
    bool cloud_topics_ok;            /* the templates passed the AWS checks (broker lock) */

    /* http: the operator's endpoint (NULL when not configured) */
    struct http_server *http;

    /* daemon */
    uint64_t started_ms;          /* monotonic: gateway_init */
    _Atomic bool serving;         /* the workers run (readiness) */
    struct loop_timer stats_timer;  /* on worker 0 */
    struct loop_timer notify_timer; /* on worker 0: service manager status and watchdog */
    uint64_t notify_status_ms;      /* when STATUS= was last sent */
    uint32_t sys_ticks;             /* worker 0's seconds since $SYS/ was published */
};

#endif
