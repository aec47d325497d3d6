/*
 * gateway.c: the daemon: listeners, signals, reload, periodic work, shutdown.
 *
 * Signals arrive through a signalfd in the event loop, so handlers run as ordinary events:
 * SIGTERM/SIGINT stop accepting and end every session with DISCONNECT 0x8B; SIGHUP re-reads the
 * config file and re-checks every live connection against the registry; SIGUSR1 logs the
 * counters. The registry is also watched once a second (SQLite's data_version), so a
 * `psagw device revoke` ends that device's live connection without a signal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"

static struct loop_io signal_io;
static struct gateway *signal_gw;

int gateway_lookup_device(struct gateway *gw, const char *id, struct device *d, const char **why)
{
    int rc = registry_get(gw->reg, id, d);
    if (rc == REG_NOT_FOUND) {
        *why = "unknown_identity";
        return -1;
    }
    if (rc != REG_OK) {
        log_event(LOG_ERROR, "registry_error", "detail=\"%s\"", registry_error(gw->reg));
        *why = "registry_unavailable";
        return -1;
    }
    if (d->revoked) {
        device_clear(d);
        *why = "revoked";
        return -1;
    }
    return 0;
}

static void on_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    (void)events;
    struct listener *ls = container_of(io, struct listener, io);
    struct gateway *gw = ls->gw;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                log_event(LOG_ERROR, "accept_failed", "listener=%s reason=too_many_open_files",
                          ls->cfg->address);
            return;
        }
        char host[INET6_ADDRSTRLEN] = "?", port[8] = "?", peer[64];
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(peer, sizeof(peer), "%s:%s", host, port);
        if (gw->shutting_down ||
            (gw->cfg.max_connections && gw->n_conns >= gw->cfg.max_connections)) {
            gw->metrics.connections_refused++;
            log_event(LOG_WARN, "connection_refused", "peer=%s reason=%s", peer,
                      gw->shutting_down ? "shutting_down" : "max_connections");
            close(fd);
            continue;
        }
        conn_accept(gw, ls, fd, peer);
    }
}

static int open_listener(struct gateway *gw, struct listener *ls, const struct listener_config *lc,
                         char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", lc->port);
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
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "listener %s: %s", lc->address, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    ls->gw = gw;
    ls->cfg = lc;
    ls->fd = fd;
    if (lc->type == LISTENER_TLS_PSK) {
        ls->tls = tls_server_ctx(gw, lc, err, errlen);
        if (!ls->tls) {
            close(fd);
            return -1;
        }
    }
    if (loop_io_add(gw->loop, &ls->io, fd, EPOLLIN, on_accept) != 0) {
        snprintf(err, errlen, "listener %s: epoll: %s", lc->address, strerror(errno));
        SSL_CTX_free(ls->tls);
        close(fd);
        return -1;
    }
    /* the bound port, for port 0 (tests pick ports this way) */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char host[INET6_ADDRSTRLEN], bport[8];
    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), bport, sizeof(bport),
                NI_NUMERICHOST | NI_NUMERICSERV);
    log_event(LOG_INFO, "listening", "address=%s port=%s type=%s tls13=%d max_record_size=%u",
              host, bport, lc->type == LISTENER_PLAIN ? "plain" : "tls-psk", lc->tls13,
              lc->max_record_size);
    if (lc->type == LISTENER_TLS_PSK && lc->allow_null_cipher)
        log_event(LOG_WARN, "null_cipher_enabled",
                  "listener=%s detail=\"PSK-NULL-SHA256 gives integrity only, no encryption\"",
                  lc->address);
    if (lc->type == LISTENER_PLAIN)
        log_event(LOG_WARN, "plain_listener", "listener=%s anonymous=%s", lc->address,
                  gw->cfg.allow_anonymous ? "allowed" : "refused");
    return 0;
}

/* Re-checks every live device connection against the registry: removed or revoked devices are
 * disconnected (0x98 administrative action), others get their current role and ACL. */
static void recheck_connections(struct gateway *gw)
{
    for (struct conn *c = gw->conns, *next; c; c = next) {
        next = c->next;
        if (!c->ssl || c->state != CONN_CONNECTED)
            continue;
        struct device d;
        const char *why = NULL;
        if (gateway_lookup_device(gw, c->who.id, &d, &why) != 0) {
            if (strcmp(why, "registry_unavailable") == 0)
                continue; /* a read failure is not a revocation */
            gw->metrics.revoked_disconnects++;
            char id[LOG_SAFE_MAX];
            log_event(LOG_WARN, "device_disconnected", "id=%s reason=%s",
                      log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)), why);
            conn_close(c, MQTT_RC_ADMIN_ACTION,
                       strcmp(why, "revoked") == 0 ? "device revoked" : "device removed");
            continue;
        }
        struct principal fresh = {0};
        if (acl_principal_init(&fresh, &d, &gw->cfg) == 0) {
            acl_principal_clear(&c->who);
            c->who = fresh;
        }
        device_clear(&d);
    }
}

static void reload(struct gateway *gw)
{
    if (!gw->cfg.path[0]) {
        log_event(LOG_INFO, "reload", "config=none");
        recheck_connections(gw);
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
    /* listeners and the registry path need a restart; everything else applies now */
    config_free(&gw->cfg);
    gw->cfg.log_level = next.log_level;
    gw->cfg.attestation_default = next.attestation_default;
    gw->cfg.allow_anonymous = next.allow_anonymous;
    gw->cfg.anonymous_acl_pub = next.anonymous_acl_pub;
    gw->cfg.anonymous_acl_sub = next.anonymous_acl_sub;
    gw->cfg.max_packet_size = next.max_packet_size;
    gw->cfg.receive_maximum = next.receive_maximum;
    gw->cfg.topic_alias_maximum = next.topic_alias_maximum;
    gw->cfg.max_keepalive = next.max_keepalive;
    gw->cfg.max_session_expiry = next.max_session_expiry;
    gw->cfg.max_queued_messages = next.max_queued_messages;
    gw->cfg.max_inflight_messages = next.max_inflight_messages;
    gw->cfg.connect_timeout = next.connect_timeout;
    gw->cfg.max_connections = next.max_connections;
    gw->cfg.stats_interval = next.stats_interval;
    log_set_level((enum log_level)gw->cfg.log_level);
    log_event(LOG_INFO, "reload", "config=%s", gw->cfg.path);
    recheck_connections(gw);
}

static void shutdown_gateway(struct gateway *gw)
{
    if (gw->shutting_down)
        return;
    gw->shutting_down = true;
    log_event(LOG_INFO, "shutdown", "connections=%zu", gw->n_conns);
    for (size_t i = 0; i < gw->n_listeners; i++) {
        loop_io_remove(gw->loop, &gw->listeners[i].io);
        close(gw->listeners[i].fd);
        gw->listeners[i].fd = -1;
    }
    while (gw->conns)
        conn_close(gw->conns, MQTT_RC_SERVER_SHUTTING_DOWN, "gateway shutting down");
    loop_stop(gw->loop);
}

static void on_signal(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    (void)events;
    struct signalfd_siginfo si;
    struct gateway *gw = signal_gw;
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
            metrics_log(&gw->metrics, gw->n_conns, gw->n_sessions, gw->n_retained);
            break;
        }
    }
}

static void stats_tick(struct loop *l, struct loop_timer *t)
{
    struct gateway *gw = container_of(t, struct gateway, stats_timer);
    metrics_log(&gw->metrics, gw->n_conns, gw->n_sessions, gw->n_retained);
    if (gw->cfg.stats_interval)
        loop_timer_start(l, t, (uint64_t)gw->cfg.stats_interval * 1000u, stats_tick);
}

static void registry_tick(struct loop *l, struct loop_timer *t)
{
    struct gateway *gw = container_of(t, struct gateway, tick_timer);
    broker_sweep(gw);
    int64_t v = registry_data_version(gw->reg);
    if (v != gw->registry_version)
        recheck_connections(gw);
    gw->registry_version = v;
    loop_timer_start(l, t, 1000, registry_tick);
}

static void before_sleep(struct loop *l, void *arg)
{
    (void)l;
    struct gateway *gw = arg;
    conn_flush_all(gw);
    conn_free_dead(gw);
}

static void raise_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = cfg->max_connections ? (rlim_t)cfg->max_connections + 64 : rl.rlim_max;
    if (want > rl.rlim_max)
        want = rl.rlim_max;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (cfg->max_connections && rl.rlim_cur < (rlim_t)cfg->max_connections + 64)
        log_event(LOG_WARN, "fd_limit", "open_files=%llu max_connections=%u "
                                        "detail=\"raise the hard limit (ulimit -Hn / LimitNOFILE)\"",
                  (unsigned long long)rl.rlim_cur, cfg->max_connections);
    else
        log_event(LOG_INFO, "fd_limit", "open_files=%llu", (unsigned long long)rl.rlim_cur);
}

int gateway_init(struct gateway *gw, const struct config *cfg, char *err, size_t errlen)
{
    memset(gw, 0, sizeof(*gw));
    gw->cfg = *cfg;
    log_set_level((enum log_level)cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(cfg);
    if (registry_open(cfg->registry, true, &gw->reg, err, errlen) != REG_OK)
        return -1;
    gw->loop = loop_new();
    gw->subs_root = tree_new();
    gw->retained_root = tree_new();
    if (!gw->loop || !gw->subs_root || !gw->retained_root) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < gw->cfg.n_listeners; i++) {
        if (open_listener(gw, &gw->listeners[i], &gw->cfg.listeners[i], err, errlen) != 0)
            return -1;
        gw->n_listeners++;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_io_add(gw->loop, &signal_io, sfd, EPOLLIN, on_signal) != 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        return -1;
    }
    signal_gw = gw;
    loop_set_before_sleep(gw->loop, before_sleep, gw);
    if (gw->cfg.stats_interval)
        loop_timer_start(gw->loop, &gw->stats_timer, (uint64_t)gw->cfg.stats_interval * 1000u,
                         stats_tick);
    gw->registry_version = registry_data_version(gw->reg);
    loop_timer_start(gw->loop, &gw->tick_timer, 1000, registry_tick);
    log_event(LOG_INFO, "started", "version=%s registry=%s attestation_default=%s "
                                   "allow_anonymous=%d config=%s",
              PSAGW_VERSION, cfg->registry, attest_policy_name(cfg->attestation_default),
              cfg->allow_anonymous, cfg->path[0] ? cfg->path : "none");
    return 0;
}

int gateway_run(struct gateway *gw)
{
    int rc = loop_run(gw->loop);
    conn_flush_all(gw);
    conn_free_dead(gw);
    metrics_log(&gw->metrics, gw->n_conns, gw->n_sessions, gw->n_retained);
    log_event(LOG_INFO, "stopped", NULL);
    return rc;
}

void gateway_free(struct gateway *gw)
{
    while (gw->conns)
        conn_close(gw->conns, -1, NULL);
    conn_free_dead(gw);
    for (size_t b = 0; b < gw->session_buckets; b++)
        while (gw->sessions && gw->sessions[b])
            session_destroy(gw, gw->sessions[b]);
    free(gw->sessions);
    tree_free(gw->subs_root);
    tree_free(gw->retained_root);
    for (size_t i = 0; i < gw->n_listeners; i++) {
        if (gw->listeners[i].fd >= 0)
            close(gw->listeners[i].fd);
        SSL_CTX_free(gw->listeners[i].tls);
    }
    if (signal_io.fd > 0)
        close(signal_io.fd);
    loop_free(gw->loop);
    registry_close(gw->reg);
    config_free(&gw->cfg);
}
