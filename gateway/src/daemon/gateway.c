/*
 * gateway.c: the daemon: workers, listeners, signals, reload, periodic work, shutdown.
 *
 * One worker per core (config `workers`, default: the number of online CPUs), each an event
 * loop on its own thread with its own SO_REUSEPORT listening sockets, so the kernel spreads new
 * connections over the cores and TLS handshakes run in parallel. The broker state is shared
 * behind one lock (see conn.c for how output crosses workers).
 *
 * Signals arrive through a signalfd on worker 0, so handlers run as ordinary events:
 * SIGTERM/SIGINT stop accepting and end every session with DISCONNECT 0x8B; SIGHUP re-reads the
 * config file and has every worker re-check its connections against the registry; SIGUSR1 logs
 * the counters. Worker 0 also watches the registry once a second (SQLite's data_version) and has
 * every worker re-check its connections on a change, so a `psagw device revoke` ends that
 * device's live connection without a signal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acl.h"
#include "attest.h"
#include "broker_lock.h"
#include "cloud.h"
#include "conn.h"
#include "end.h"
#include "gateway.h"
#include "handshake_limit.h"
#include "http.h"
#include "log.h"
#include "lookup.h"
#include "notify.h"
#include "private_file.h"
#include "proto.h"
#include "session.h"
#include "spool.h"
#include "sys_topics.h"
#include "tls.h"
#include "worker.h"

static struct loop_io signal_io = {.fd = -1};

#define ACCEPT_PAUSE_MS 250 /* out of descriptors: how long a listener rests */

static void on_accept(struct loop *l, struct loop_io *io, uint32_t events);

static void accept_resume(struct loop *l, struct loop_timer *t)
{
    struct listener *ls = container_of(t, struct listener, resume);
    loop_io_modify(l, &ls->io, EPOLLIN);
}

/*
 * accept() failed for want of descriptors (EMFILE, ENFILE). The connection stays in the
 * kernel's queue and epoll would report it again at once: a worker would spin. So the spare
 * descriptor kept for this makes room to accept that connection and close it at once (the
 * client learns now, instead of waiting), the listener rests a moment, and the event is logged
 * once per interval with the count; it recovers by itself as descriptors free up.
 */
static void out_of_descriptors(struct worker *w, struct listener *ls, int err)
{
    w->gw->metrics.accept_fd_exhausted++;
    if (w->spare_fd >= 0) {
        close(w->spare_fd);
        int fd = accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    loop_io_modify(w->loop, &ls->io, 0);
    loop_timer_start(w->loop, &ls->resume, ACCEPT_PAUSE_MS, accept_resume);
    static struct log_limit limit;
    LOG_LIMITED(&limit, LOG_ERROR, "accept_failed",
                "listener=%s reason=%s connections=%zu detail=\"out of file descriptors: new "
                "connections are closed at once until some free up; raise the limit "
                "(LimitNOFILE) or lower mqtt.max_connections\"",
                ls->cfg->address, err == EMFILE ? "too_many_open_files" : "system_file_table_full",
                (size_t)w->gw->n_conns);
}

static void on_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    (void)events;
    struct listener *ls = container_of(io, struct listener, io);
    struct worker *w = ls->w;
    struct gateway *gw = w->gw;
    broker_lock(); /* SIGHUP may change these */
    uint32_t max_connections = gw->cfg.max_connections;
    uint32_t connect_timeout = gw->cfg.connect_timeout;
    uint32_t per_worker = (gw->cfg.max_handshakes + gw->n_workers - 1) / gw->n_workers;
    uint32_t per_address = gw->cfg.max_handshakes_per_address;
    broker_unlock();
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                out_of_descriptors(w, ls, errno);
            return;
        }
        char host[INET6_ADDRSTRLEN] = "?", port[6] = "?", peer[CONN_PEER_MAX];
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(peer, sizeof(peer), "%s:%s", host, port);
        if (gw->shutting_down || (max_connections && gw->n_conns >= max_connections)) {
            gw->metrics.connections_refused++;
            log_event(LOG_WARN, "connection_refused", "peer=%s reason=%s", peer,
                      gw->shutting_down ? "shutting_down" : "max_connections");
            close(fd);
            continue;
        }
        uint32_t slot = 0;
        if (ls->tls) {
            /* bounded handshakes in progress: per worker, and per source address so that one
             * address fills its own share, not the gateway */
            slot = handshake_limit_slot((struct sockaddr *)&ss, sl);
            static const char *const reasons[] = {"too_many_in_progress",
                                                  "too_many_from_address"};
            int refused = w->handshakes >= per_worker                ? 0
                          : !handshake_limit_enter(slot, per_address) ? 1
                                                                      : -1;
            if (refused >= 0) {
                const char *why = reasons[refused];
                gw->metrics.handshakes_refused++;
                static struct log_limit limits[2];
                LOG_LIMITED(&limits[refused], LOG_WARN, "handshake_refused",
                            "peer=%s reason=%s max_handshakes=%u max_handshakes_per_address=%u",
                            peer, why, gw->cfg.max_handshakes, per_address);
                close(fd);
                continue;
            }
        }
        conn_accept(w, ls, fd, peer, slot, connect_timeout);
    }
}

/*
 * Opens one worker's socket of a listener. Worker 0 binds the configured port; the others bind
 * the port worker 0 got (which differs for port 0), all with SO_REUSEPORT.
 */
static int open_listener(struct worker *w, size_t index, uint16_t port_override, char *err,
                         size_t errlen)
{
    struct gateway *gw = w->gw;
    const struct listener_config *lc = &gw->cfg.listeners[index];
    struct listener *ls = &w->listeners[index];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", port_override ? port_override : lc->port);
    int rc = getaddrinfo(lc->host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "listener %s: %s", lc->address, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        /* Linux hands these to every accepted socket: no setsockopt() per connect */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        const struct config *c = &gw->cfg;
        int idle = (int)c->tcp_keepalive_idle, intvl = (int)c->tcp_keepalive_interval,
            cnt = (int)c->tcp_keepalive_count, user_ms = (int)c->tcp_user_timeout * 1000;
        if (idle)
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        if (intvl)
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        if (cnt)
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
        if (user_ms)
            setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof(user_ms));
        /* MQTT and TLS clients speak first: the kernel hands a connection over once its first
         * bytes (ClientHello, CONNECT) are there, so conn_accept reads them at once, and a
         * client that connects and says nothing holds no handshake slot here until then
         * (tcp(7); it is accepted after about this many seconds anyway, and connect_timeout
         * runs from there) */
        int defer = (int)c->connect_timeout;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "listener %s: %s", lc->address, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    ls->w = w;
    ls->cfg = lc;
    ls->fd = fd;
    ls->tls = gw->tls[index];
    if (loop_io_add(w->loop, &ls->io, fd, EPOLLIN, on_accept) != 0) {
        snprintf(err, errlen, "listener %s: epoll: %s", lc->address, strerror(errno));
        close(fd);
        ls->fd = -1;
        return -1;
    }
    return 0;
}

static uint16_t bound_port(int fd, char *host, size_t hostlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char port[8] = "0";
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    getnameinfo((struct sockaddr *)&ss, sl, host, (socklen_t)hostlen, port, sizeof(port),
                NI_NUMERICHOST | NI_NUMERICSERV);
    return (uint16_t)atoi(port);
}

static void close_listeners(struct worker *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        conn_listener_release(&w->listeners[i]);
        loop_timer_cancel(w->loop, &w->listeners[i].resume);
        if (w->listeners[i].fd >= 0) {
            loop_io_remove(w->loop, &w->listeners[i].io);
            close(w->listeners[i].fd);
            w->listeners[i].fd = -1;
        }
    }
}

/* Re-checks this worker's live device connections against the registry: removed or revoked
 * devices are disconnected (0x98 administrative action), others get their current ACL. */
/* A set of device ids, shared read-only by the workers that re-check against it (refs under
 * the broker lock). Sorted, for bsearch. */
struct idset {
    unsigned refs;
    size_t n;
    char **ids;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool idset_has(const struct idset *s, const char *id)
{
    return s->n > 0 && bsearch(&id, s->ids, s->n, sizeof(*s->ids), cmp_str) != NULL;
}

static void idset_unref(struct idset *s)
{
    BROKER_LOCK_HELD();
    if (!s || --s->refs > 0)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->ids[i]);
    free(s->ids);
    free(s);
}

struct id_list {
    char **ids;
    size_t n, cap;
    bool overflow;
};

#define RECHECK_IDS_MAX 4096 /* beyond this many changed ids, every connection is re-checked */

static int collect_id(const char *id, void *arg)
{
    struct id_list *l = arg;
    if (l->n == RECHECK_IDS_MAX) {
        l->overflow = true;
        return 0; /* read on, so the log position moves past them */
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **grown = realloc(l->ids, cap * sizeof(*grown));
        if (!grown) {
            l->overflow = true;
            return 0;
        }
        l->ids = grown;
        l->cap = cap;
    }
    if (!(l->ids[l->n] = strdup(id)))
        l->overflow = true;
    else
        l->n++;
    return 0;
}

/* The ids changed since worker 0 last looked (NULL: re-check everything). */
static struct idset *changed_ids(struct gateway *gw)
{
    struct id_list l = {0};
    int64_t last = gw->change_seq;
    pthread_mutex_lock(&gw->reg_lock);
    int rc = registry_changes_since(gw->reg, gw->change_seq, &last, collect_id, &l);
    pthread_mutex_unlock(&gw->reg_lock);
    struct idset *s = NULL;
    if (rc == REG_OK && !l.overflow && (s = calloc(1, sizeof(*s)))) {
        if (l.n > 1)
            qsort(l.ids, l.n, sizeof(*l.ids), cmp_str);
        s->ids = l.ids;
        s->n = l.n;
        l.ids = NULL;
        l.n = 0;
    }
    if (rc == REG_OK)
        gw->change_seq = last;
    for (size_t i = 0; i < l.n; i++)
        free(l.ids[i]);
    free(l.ids);
    return s;
}

static void recheck_connections(struct worker *w, const struct idset *only)
{
    struct gateway *gw = w->gw;
    size_t looked_up = 0;
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        /* attesting connections too: a device revoked mid-exchange does not get in */
        if (!c->tls || (c->state != CONN_CONNECTED && c->state != CONN_AUTHENTICATING))
            continue;
        if (only && !idset_has(only, c->who.id))
            continue; /* unchanged in the registry: no SQLite read for it */
        looked_up++;
        struct device d;
        const char *why = NULL;
        if (lookup_device(w->gw, c->who.id, &d, &why) != 0) {
            if (strcmp(why, "registry_unavailable") == 0)
                continue; /* a read failure is not a revocation */
            char id[LOG_SAFE_MAX];
            log_event(LOG_WARN, "device_disconnected", "id=%s reason=%s",
                      log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)), why);
            proto_end(c, CONN_END(MQTT_RC_ADMIN_ACTION, strcmp(why, "revoked") == 0
                                                            ? "device revoked"
                                                            : "device removed"));
            continue;
        }
        /* a new PSK for the identity: the session made with the old one ends */
        uint8_t fp[PSK_FP_LEN];
        tls_psk_fingerprint(d.psk, d.psk_len, fp);
        if (memcmp(fp, c->psk_fp, PSK_FP_LEN) != 0) {
            device_clear(&d);
            char id[LOG_SAFE_MAX];
            log_event(LOG_WARN, "device_disconnected", "id=%s reason=psk_changed",
                      log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)));
            proto_end(c, CONN_END(MQTT_RC_ADMIN_ACTION, "device credentials changed"));
            continue;
        }
        struct principal fresh = {0};
        if (acl_principal_init(&fresh, &d, &gw->cfg) == 0) {
            broker_lock();
            acl_principal_clear(&c->who);
            c->who = fresh;
            broker_unlock();
        }
        device_clear(&d);
    }
    log_event(LOG_DEBUG, "registry_recheck", "worker=%u scope=%s ids=%zu looked_up=%zu", w->index,
              only ? "changed" : "all", only ? only->n : (size_t)0, looked_up);
}

/* Sets a flag on every worker and wakes them (their housekeeping acts on it). */
/* Sets a flag on every worker and wakes them; a re-check covers the ids in `only`, or every
 * connection when only is NULL (a worker with a re-check already pending does everything). */
static void tell_workers_ids(struct gateway *gw, bool stop, bool recheck, struct idset *only)
{
    broker_lock();
    for (unsigned i = 0; i < gw->n_workers; i++) {
        struct worker *w = &gw->workers[i];
        w->stop_requested |= stop;
        if (recheck) {
            if (w->recheck_requested || !only) {
                idset_unref(w->recheck_ids);
                w->recheck_ids = NULL;
            } else {
                only->refs++;
                w->recheck_ids = only;
            }
            w->recheck_requested = true;
        }
        worker_wake(w);
    }
    broker_unlock();
}

static void tell_workers(struct gateway *gw, bool stop, bool recheck)
{
    tell_workers_ids(gw, stop, recheck, NULL);
}

/* The counters as one event=stats line, and the attestation refusals by reason. */
static void log_stats(struct gateway *gw)
{
    metrics_log(&gw->metrics, gw->n_conns, gw->n_sessions, gw->n_retained);
    attest_log_stats(gw);
    cloud_log_stats(gw);
}

static void notify_status(struct gateway *gw, const char *first);
static void reload_config(struct gateway *gw);

static void reload(struct gateway *gw)
{
    notify_send("RELOADING=1");
    reload_config(gw);
    http_reload(gw);
    notify_status(gw, "READY=1");
}

static void reload_config(struct gateway *gw)
{
    if (!gw->cfg.path[0]) {
        log_event(LOG_INFO, "reload", "config=none");
        tell_workers(gw, false, true);
        return;
    }
    struct config next;
    config_defaults(&next);
    char err[512];
    if (config_load(&next, gw->cfg.path, err, sizeof(err)) != 0) {
        log_event(LOG_ERROR, "reload_failed", "detail=\"%s\" action=kept_old_config", err);
        config_free(&next);
        return;
    }
    /* listeners apply at the next start: a TLS setting that start would refuse (an unknown
     * cipher) is reported now, not found at the next restart */
    for (size_t i = 0; i < next.n_listeners; i++) {
        if (next.listeners[i].type != LISTENER_TLS_PSK)
            continue;
        SSL_CTX *probe = tls_server_ctx(&next, &next.listeners[i], proto_admit, err, sizeof(err));
        if (!probe) {
            log_event(LOG_ERROR, "reload_failed", "detail=\"%s\" action=kept_old_config", err);
            config_free(&next);
            return;
        }
        SSL_CTX_free(probe);
    }
    /* listeners, workers and the registry path need a restart; everything else applies now */
    broker_lock();
    config_free(&gw->cfg);
    /* what a flag set stays as the flag set it */
    if (!(gw->cfg.from_flags & CONFIG_FLAG_LOG_LEVEL))
        gw->cfg.log_level = next.log_level;
    if (!(gw->cfg.from_flags & CONFIG_FLAG_ATTESTATION_DEFAULT))
        gw->cfg.attestation_default = next.attestation_default;
    if (!(gw->cfg.from_flags & CONFIG_FLAG_ALLOW_ANONYMOUS))
        gw->cfg.allow_anonymous = next.allow_anonymous;
    gw->cfg.attest = next.attest;
    gw->cfg.anonymous_acl_pub = next.anonymous_acl_pub;
    gw->cfg.anonymous_acl_sub = next.anonymous_acl_sub;
    gw->cfg.max_packet_size = next.max_packet_size;
    gw->cfg.receive_maximum = next.receive_maximum;
    gw->cfg.topic_alias_maximum = next.topic_alias_maximum;
    gw->cfg.topic_aliases_out = next.topic_aliases_out;
    gw->cfg.sys_interval = next.sys_interval;
    gw->cfg.max_keepalive = next.max_keepalive;
    gw->cfg.max_session_expiry = next.max_session_expiry;
    gw->cfg.max_queued_messages = next.max_queued_messages;
    gw->cfg.max_queued_bytes = next.max_queued_bytes;
    gw->cfg.max_handshakes = next.max_handshakes;
    gw->cfg.max_handshakes_per_address = next.max_handshakes_per_address;
    gw->cfg.max_topic_length = next.max_topic_length;
    gw->cfg.max_subscriptions_per_client = next.max_subscriptions_per_client;
    gw->cfg.max_topic_levels = next.max_topic_levels;
    gw->cfg.max_retained_bytes = next.max_retained_bytes;
    gw->cfg.max_inflight_messages = next.max_inflight_messages;
    gw->cfg.connect_timeout = next.connect_timeout;
    gw->cfg.max_connections = next.max_connections;
    gw->cfg.stats_interval = next.stats_interval;
    struct cloud_config next_cloud = next.cloud;
    log_set_level((enum log_level)gw->cfg.log_level);
    broker_unlock();
    cloud_reload(gw, &next_cloud);
    log_event(LOG_INFO, "reload", "config=%s", gw->cfg.path);
    tell_workers(gw, false, true);
}

static void shutdown_gateway(struct gateway *gw)
{
    if (gw->shutting_down)
        return;
    gw->shutting_down = true;
    notify_send("STOPPING=1");
    log_event(LOG_INFO, "shutdown", "connections=%zu", (size_t)gw->n_conns);
    tell_workers(gw, true, false);
}

static void on_signal(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    (void)events;
    struct signalfd_siginfo si;
    struct gateway *gw = worker_current()->gw;
    while (read(io->fd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            shutdown_gateway(gw);
            break;
        case SIGHUP:
            reload(gw);
            break;
        case SIGUSR1:
            broker_lock();
            log_stats(gw);
            broker_unlock();
            break;
        }
    }
}

static void on_wake(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    (void)events;
    uint64_t v;
    ssize_t n = read(io->fd, &v, sizeof(v)); /* the work happens in housekeeping */
    (void)n;
}

static void stats_tick(struct loop *l, struct loop_timer *t)
{
    struct gateway *gw = container_of(t, struct gateway, stats_timer);
    broker_lock();
    log_stats(gw);
    broker_unlock();
    if (gw->cfg.stats_interval)
        loop_timer_start(l, t, (uint64_t)gw->cfg.stats_interval * 1000u, stats_tick);
}

/* STATUS= (what `systemctl status` shows), after `first` ("READY=1", or NULL). */
static void notify_status(struct gateway *gw, const char *first)
{
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "%s%sSTATUS=connections=%zu", first ? first : "",
                     first ? "\n" : "", (size_t)atomic_load(&gw->n_conns));
    broker_lock();
    n += snprintf(msg + n, sizeof(msg) - (size_t)n, " sessions=%zu retained=%zu",
                  gw->n_sessions, gw->n_retained);
    broker_unlock();
    if (gw->spool) {
        uint64_t records, bytes;
        spool_get_depth(gw->spool, &records, &bytes, NULL);
        snprintf(msg + n, sizeof(msg) - (size_t)n, " spool_records=%llu spool_bytes=%llu",
                 (unsigned long long)records, (unsigned long long)bytes);
    }
    notify_send(msg);
    gw->notify_status_ms = clock_mono_ms();
}

/* Whether every worker's loop turned since the last look: worker 0 runs this, so it is;
 * another one is woken each time and must have come round by the next. A worker stuck in a
 * loop or a lock stops the pings, and the service manager restarts the gateway. */
static bool workers_alive(struct gateway *gw)
{
    bool alive = true;
    for (unsigned i = 1; i < gw->n_workers; i++) {
        struct worker *w = &gw->workers[i];
        uint64_t beat = atomic_load_explicit(&w->heartbeat, memory_order_relaxed);
        if (beat == w->heartbeat_seen) {
            static struct log_limit limit;
            LOG_LIMITED(&limit, LOG_ERROR, "worker_stuck", "worker=%u detail=\"%s\"", i,
                        "its loop has not turned since the last watchdog interval");
            alive = false;
        }
        w->heartbeat_seen = beat;
        broker_lock();
        worker_wake(w);
        broker_unlock();
    }
    return alive;
}

#define NOTIFY_STATUS_MS 5000

static void notify_tick(struct loop *l, struct loop_timer *t)
{
    struct gateway *gw = container_of(t, struct gateway, notify_timer);
    uint64_t wd_ms = notify_watchdog_usec() / 1000;
    if (wd_ms && workers_alive(gw))
        notify_send("WATCHDOG=1");
    if (clock_mono_ms() - gw->notify_status_ms >= NOTIFY_STATUS_MS)
        notify_status(gw, NULL);
    uint64_t next = wd_ms ? wd_ms / 2 : NOTIFY_STATUS_MS;
    if (next > NOTIFY_STATUS_MS)
        next = NOTIFY_STATUS_MS;
    loop_timer_start(l, t, next ? next : 1, notify_tick);
}

/* Where the path points: the device's file id, or false if there is no file. */
static bool registry_file_id(const char *path, dev_t *dev, ino_t *ino)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return true;
}

/*
 * The registry file behind the path (docs/operations.md, "The registry file"). SQLite keeps
 * the file it opened; a `psagw device` command writes to whatever the path names. So when the
 * path leads to another file (replaced by a restore or a copy), the daemon opens that one and
 * re-checks every connection against it; when it leads nowhere (deleted or moved), new devices
 * are refused until it is back, since a revocation written meanwhile would go to a new file the
 * daemon does not read. Worker 0, once a second.
 */
static void watch_registry_file(struct gateway *gw)
{
    const char *path = gw->cfg.registry;
    dev_t dev;
    ino_t ino;
    if (!registry_file_id(path, &dev, &ino)) {
        if (!gw->registry_lost)
            log_event(LOG_ERROR, "registry_missing",
                      "path=%s action=refusing_new_devices detail=\"the registry file was "
                      "deleted or moved; restore it (connected devices stay)\"",
                      path);
        gw->registry_lost = true;
        return;
    }
    if (dev == gw->registry_dev && ino == gw->registry_ino) {
        if (gw->registry_lost) {
            gw->registry_lost = false;
            log_event(LOG_INFO, "registry_restored", "path=%s", path);
            tell_workers(gw, false, true);
        }
        return;
    }
    struct registry *fresh = NULL;
    char err[512];
    if (registry_open(path, false, &fresh, err, sizeof(err)) != REG_OK) {
        if (!gw->registry_lost)
            log_event(LOG_ERROR, "registry_unusable",
                      "path=%s action=refusing_new_devices detail=\"%s\"", path, err);
        gw->registry_lost = true;
        return;
    }
    pthread_mutex_lock(&gw->reg_lock);
    struct registry *old = gw->reg;
    gw->reg = fresh;
    gw->registry_version = registry_data_version(fresh);
    gw->change_seq = registry_change_seq(fresh);
    pthread_mutex_unlock(&gw->reg_lock);
    registry_close(old);
    gw->registry_dev = dev;
    gw->registry_ino = ino;
    gw->registry_lost = false;
    log_event(LOG_WARN, "registry_reopened",
              "path=%s reason=replaced action=recheck_all_connections", path);
    attest_registry_changed(gw);
    tell_workers(gw, false, true); /* every connection, against the new file */
}

/* After a burst of connections went away (a connect storm, stalled handshakes reaped), the
 * allocator keeps what they used; handing it back to the system keeps RSS near what is in use. */
static void give_memory_back(struct gateway *gw)
{
    static size_t peak;
    size_t now = gw->n_conns;
    if (now > peak) {
        peak = now;
    } else if (peak - now >= 256 && now < peak / 2) {
        malloc_trim(0);
        peak = now;
    }
}

static void worker_tick(struct loop *l, struct loop_timer *t)
{
    struct worker *w = container_of(t, struct worker, tick_timer);
    struct gateway *gw = w->gw;
    watch_registry_file(gw);
    give_memory_back(gw);
    broker_lock();
    broker_sweep(gw);
    broker_unlock();
    pthread_mutex_lock(&gw->reg_lock);
    int64_t v = registry_data_version(gw->reg);
    pthread_mutex_unlock(&gw->reg_lock);
    if (v != gw->registry_version) {
        attest_registry_changed(gw);
        struct idset *changed = changed_ids(gw); /* NULL: too many, or unreadable: all */
        if (changed)
            changed->refs = 1; /* ours, until the workers hold theirs */
        tell_workers_ids(gw, false, true, changed);
        if (changed) {
            broker_lock();
            idset_unref(changed);
            broker_unlock();
        }
    }
    gw->registry_version = v;
    attest_flush_history(gw); /* our own commits do not move data_version */
    if (gw->cfg.sys_interval && ++gw->sys_ticks >= gw->cfg.sys_interval) {
        gw->sys_ticks = 0;
        sys_topics_publish(gw);
    }
    loop_timer_start(l, t, 1000, worker_tick);
}

static void before_sleep(struct loop *l, void *arg)
{
    struct worker *w = arg;
    atomic_fetch_add_explicit(&w->heartbeat, 1, memory_order_relaxed);
    conn_worker_housekeeping(w);
    broker_lock();
    bool stop = w->stop_requested, recheck = w->recheck_requested;
    struct idset *only = w->recheck_ids;
    w->recheck_requested = false;
    w->recheck_ids = NULL;
    broker_unlock();
    if (recheck)
        recheck_connections(w, only);
    if (only) {
        broker_lock();
        idset_unref(only);
        broker_unlock();
    }
    if (stop) {
        close_listeners(w);
        while (w->conns)
            proto_end(w->conns, CONN_END(MQTT_RC_SERVER_SHUTTING_DOWN, "gateway shutting down"));
        conn_worker_housekeeping(w);
        loop_stop(l);
    }
}

#define FD_RESERVED 64 /* descriptors kept for listeners, the registry, the spool, logs */

/* The soft limit of open files goes up to the hard one; the log says how many devices that
 * lets in at once. */
static void raise_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    unsigned long long devices = rl.rlim_cur > FD_RESERVED ? rl.rlim_cur - FD_RESERVED : 0;
    if (cfg->max_connections && rl.rlim_cur < (rlim_t)cfg->max_connections + FD_RESERVED)
        log_event(LOG_WARN, "fd_limit",
                  "open_files=%llu devices_max=%llu max_connections=%u detail=\"raise the hard "
                  "limit (ulimit -Hn / LimitNOFILE)\"",
                  (unsigned long long)rl.rlim_cur, devices, cfg->max_connections);
    else
        log_event(LOG_INFO, "fd_limit", "open_files=%llu devices_max=%llu",
                  (unsigned long long)rl.rlim_cur,
                  cfg->max_connections && cfg->max_connections < devices
                      ? (unsigned long long)cfg->max_connections
                      : devices);
}

static int worker_init(struct gateway *gw, struct worker *w, unsigned index, char *err,
                       size_t errlen)
{
    w->gw = gw;
    w->index = index;
    for (size_t i = 0; i < CONFIG_MAX_LISTENERS; i++)
        w->listeners[i].fd = -1;
    w->wake_io.fd = -1;
    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    w->loop = loop_new();
    if (!w->loop) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0 || loop_io_add(w->loop, &w->wake_io, efd, EPOLLIN, on_wake) != 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -1;
    }
    loop_set_before_sleep(w->loop, before_sleep, w);
    if (index == 0) /* once-a-second work: session sweep, registry watch */
        loop_timer_start(w->loop, &w->tick_timer, 1000, worker_tick);
    return 0;
}

/* The CPUs this process may run on (its affinity: taskset, systemd's CPUAffinity=, a container's
 * cpuset), as nproc counts them: one worker each by default. All online CPUs when the affinity
 * cannot be read. A worker per online CPU on a gateway confined to two of sixteen would only
 * take turns on those two. */
static unsigned usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int gateway_init(struct gateway *gw, const struct config *cfg, char *err, size_t errlen)
{
    memset(gw, 0, sizeof(*gw));
    gw->started_ms = clock_mono_ms();
    signal_io.fd = -1;
    gw->cfg = *cfg;
    log_set_level((enum log_level)cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(cfg);
    conn_set_handlers(&proto_handlers);
    pthread_mutex_init(&gw->reg_lock, NULL);
    registry_process_setup();
    if (private_file_check(cfg->registry, "registry", err, errlen) != 0 ||
        registry_open(cfg->registry, true, &gw->reg, err, errlen) != REG_OK)
        return -1;
    gw->registry_version = registry_data_version(gw->reg);
    gw->change_seq = registry_change_seq(gw->reg);
    if (!registry_file_id(cfg->registry, &gw->registry_dev, &gw->registry_ino)) {
        snprintf(err, errlen, "registry %s: gone right after it was opened", cfg->registry);
        return -1;
    }
    static const struct attest_callbacks attest_cb = {.verdict = cloud_attest_verdict};
    if (attest_init(gw, &attest_cb, err, errlen) != 0)
        return -1;
    gw->subs_root = topic_tree_new();
    gw->retained_root = topic_tree_new();
    gw->n_workers = cfg->workers ? cfg->workers : usable_cpus();
    gw->workers = calloc(gw->n_workers, sizeof(*gw->workers));
    if (!gw->subs_root || !gw->retained_root || !gw->workers) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < gw->cfg.n_listeners; i++) {
        if (gw->cfg.listeners[i].type == LISTENER_TLS_PSK &&
            !(gw->tls[i] = tls_server_ctx(&gw->cfg, &gw->cfg.listeners[i], proto_admit, err, errlen)))
            return -1;
    }
    /* signals are blocked before any thread starts, so only worker 0's signalfd sees them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (unsigned i = 0; i < gw->n_workers; i++)
        if (worker_init(gw, &gw->workers[i], i, err, errlen) != 0)
            return -1;
    for (size_t li = 0; li < gw->cfg.n_listeners; li++) {
        const struct listener_config *lc = &gw->cfg.listeners[li];
        if (open_listener(&gw->workers[0], li, 0, err, errlen) != 0)
            return -1;
        char host[INET6_ADDRSTRLEN] = "?";
        uint16_t port = bound_port(gw->workers[0].listeners[li].fd, host, sizeof(host));
        for (unsigned i = 1; i < gw->n_workers; i++)
            if (open_listener(&gw->workers[i], li, port, err, errlen) != 0)
                return -1;
        for (unsigned i = 0; i < gw->n_workers; i++)
            gw->workers[i].n_listeners = li + 1;
        log_event(LOG_INFO, "listening",
                  "address=%s port=%u type=%s tls13=%d max_record_size=%u workers=%u", host, port,
                  lc->type == LISTENER_PLAIN ? "plain" : "tls-psk", lc->tls13,
                  lc->max_record_size, gw->n_workers);
        if (lc->type == LISTENER_TLS_PSK && lc->allow_null_cipher)
            log_event(LOG_WARN, "null_cipher_enabled",
                      "listener=%s detail=\"PSK-NULL-SHA256 gives integrity only, no "
                      "encryption\"",
                      lc->address);
        if (lc->type == LISTENER_PLAIN)
            log_event(LOG_WARN, "plain_listener", "listener=%s anonymous=%s", lc->address,
                      gw->cfg.allow_anonymous ? "allowed" : "refused");
    }
    if (cloud_init(gw, err, errlen) != 0)
        return -1;
    if (http_start(gw, err, errlen) != 0)
        return -1;
    struct worker *w0 = &gw->workers[0];
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_io_add(w0->loop, &signal_io, sfd, EPOLLIN, on_signal) != 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        return -1;
    }
    if (gw->cfg.stats_interval)
        loop_timer_start(w0->loop, &gw->stats_timer, (uint64_t)gw->cfg.stats_interval * 1000u,
                         stats_tick);
    log_event(LOG_INFO, "started", "version=%s registry=%s attestation_default=%s "
                                   "allow_anonymous=%d workers=%u config=%s",
              PSAGW_VERSION, cfg->registry, device_policy_name(cfg->attestation_default),
              cfg->allow_anonymous, gw->n_workers, cfg->path[0] ? cfg->path : "none");
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    worker_set_current(w);
    char name[16];
    snprintf(name, sizeof(name), "psagw-w%u", w->index);
    pthread_setname_np(pthread_self(), name);
    if (loop_run(w->loop) != 0)
        log_event(LOG_ERROR, "worker_failed", "worker=%u detail=\"epoll failed\"", w->index);
    tls_rec_thread_done();
    return NULL;
}

int gateway_run(struct gateway *gw)
{
    unsigned started = 1;
    for (unsigned i = 1; i < gw->n_workers; i++) {
        if (pthread_create(&gw->workers[i].thread, NULL, worker_main, &gw->workers[i]) != 0) {
            log_event(LOG_ERROR, "worker_failed", "worker=%u detail=\"thread not started\"", i);
            shutdown_gateway(gw);
            break;
        }
        started++;
    }
    atomic_store(&gw->serving, !gw->shutting_down);
    if (notify_init() && !gw->shutting_down) {
        /* listening, the spool recovered (gateway_init), the workers running: ready */
        for (unsigned i = 1; i < started; i++)
            gw->workers[i].heartbeat_seen = UINT64_MAX; /* nothing seen yet */
        notify_status(gw, "READY=1");
        loop_timer_start(gw->workers[0].loop, &gw->notify_timer, 1, notify_tick);
    }
    worker_main(&gw->workers[0]);
    atomic_store(&gw->serving, false);
    notify_done();
    for (unsigned i = 1; i < started; i++)
        pthread_join(gw->workers[i].thread, NULL);
    worker_set_current(NULL);
    log_stats(gw);
    log_event(LOG_INFO, "stopped", NULL);
    return 0;
}

void gateway_free(struct gateway *gw)
{
    http_stop(gw); /* first: its thread reads what the rest of this frees */
    cloud_stop(gw); /* commits what devices sent last, before sessions go */
    for (unsigned i = 0; gw->workers && i < gw->n_workers; i++) {
        struct worker *w = &gw->workers[i];
        if (!w->gw)
            continue; /* gateway_init stopped before this worker */
        worker_set_current(w);
        while (w->conns)
            proto_end(w->conns, CONN_END(CONN_END_QUIET, NULL));
        conn_worker_housekeeping(w);
        close_listeners(w);
        if (w->wake_io.fd >= 0)
            close(w->wake_io.fd);
        if (w->spare_fd >= 0)
            close(w->spare_fd);
        loop_free(w->loop);
        broker_lock();
        idset_unref(w->recheck_ids); /* a re-check still pending at exit */
        w->recheck_ids = NULL;
        broker_unlock();
    }
    attest_free(gw); /* writes the verdicts still queued */
    cloud_free(gw);
    registry_close(gw->reg);
    worker_set_current(NULL);
    session_destroy_all(gw);
    topic_tree_free(gw->subs_root);
    topic_tree_free(gw->retained_root);
    for (size_t i = 0; i < CONFIG_MAX_LISTENERS; i++)
        SSL_CTX_free(gw->tls[i]);
    if (signal_io.fd >= 0)
        close(signal_io.fd);
    signal_io.fd = -1;
    free(gw->workers);
    pthread_mutex_destroy(&gw->reg_lock);
    config_free(&gw->cfg);
}
