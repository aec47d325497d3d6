/*
 * uplink.c: the cloud connection (see uplink.h).
 *
 * One thread owns the connection (cloud_client.c, an MQTT client on the shared codec). Each
 * attempt builds a fresh SSL_CTX (CA, client certificate and key checked with OpenSSL first, so
 * a bad file gets a clear message; TLS 1.2+, the server name checked against `sni`, which is
 * also sent as SNI; ALPN `x-amzn-mqtt-ca` on port 443 for AWS IoT) and a clean session; after
 * CONNACK the command filter is subscribed again, then spooled records go in spool order:
 *
 *   - a window of records taken from the spool, each unsent, in flight (a packet id) or
 *     acknowledged; the window's head leaves (and is deleted from the spool)
 *     only once acknowledged, so a lost connection resends from the oldest unacknowledged one
 *     and per-device order holds (duplicates possible, loss not);
 *   - at most max_inflight unacknowledged, and the cloud's limits kept as sliding one-second
 *     windows (publishes/s and bytes/s) with a small margin, so that no one-second window seen
 *     at the cloud holds more than the limit;
 *   - reconnects after jittered exponential backoff (reconnect_min doubling to
 *     reconnect_max, each delay drawn from its upper half).
 */
#include "clock.h"
#include "cloud_client.h"
#include "cloud_topic.h"
#include "log.h"
#include "pacing.h"
#include "session.h"
#include "uplink.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define WINDOW_SPARE 256          /* records taken ahead of the in-flight ones */
#define CONNECT_TIMEOUT_MS 10000  /* TCP + TLS + CONNACK */

enum slot_state { SLOT_UNSENT, SLOT_INFLIGHT, SLOT_ACKED };

struct slot {
    struct spool_item *it;
    enum slot_state state;
    uint16_t pid;
    uint64_t sent_us; /* monotonic: when its PUBLISH went to the cloud */
};

enum up_state { UP_IDLE, UP_CONNECTING, UP_CONNECTED };

struct uplink {
    struct gateway *gw;
    struct spool *sp;
    pthread_t thread;
    bool running;
    int evfd;   /* wakes the thread: records ready, new config */
    int stopfd; /* ends the thread, also in the middle of a connection attempt */

    pthread_mutex_t mu; /* next_cfg, stats */
    struct cloud_config *next_cfg;
    bool stop;
    struct uplink_stats stats;

    /* the thread's own */
    struct cloud_config cfg;
    struct cloud_client *cc;
    SSL_CTX *ctx;
    enum up_state state;
    uint64_t attempt_at_ms;
    uint32_t backoff_s;
    char last_error[512];
    const char *status;      /* connected, connecting, disconnected, config_error */
    int64_t status_since_ms; /* wall clock */
    uint64_t status_written_ms;
    char cmd_filter[AWS_TOPIC_MAX_BYTES * 2];
    struct slot *win;  /* ring */
    size_t win_cap, win_head, win_n;
    size_t n_inflight;
    uint32_t inflight_limit; /* max_inflight, or less if the cloud's Receive Maximum is less */
    uint32_t *slot_of_pid; /* packet id -> ring index + 1 */
    uint16_t next_pid;
    uint64_t pause_until_us; /* the cloud said quota exceeded or busy */
    struct pacing_rate rate; /* recent publishes, for the cloud's limits */
    unsigned rng;
};


/* ---- topics ---- */

static const char *gateway_name(const struct cloud_config *cfg)
{
    return *cfg->gateway ? cfg->gateway : cfg->client_id;
}

const struct cloud_route *uplink_route_for(const struct cloud_config *cfg, const char *topic,
                                           size_t len, const char **rest, size_t *rest_len)
{
    if (len > 0 && topic[0] == '$')
        return NULL;
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cloud_route_match(cfg->routes[i].match, topic, len, rest, rest_len))
            return &cfg->routes[i];
    return NULL;
}

int uplink_route_topic(const struct cloud_config *cfg, const struct cloud_route *route,
                       const char *device, const char *rest, size_t rest_len, char *out,
                       size_t cap, const char **why)
{
    return cloud_topic_expand(route->topic, gateway_name(cfg), device, rest, rest_len, out, cap,
                              why);
}

int uplink_map_topic(const struct cloud_config *cfg, const char *device, const char *topic,
                     size_t topic_len, char *out, size_t cap, const char **why)
{
    *why = NULL;
    if (topic_len == strlen(UPLINK_ATTEST_TOPIC) &&
        memcmp(topic, UPLINK_ATTEST_TOPIC, topic_len) == 0) {
        if (!*cfg->attest_topic)
            return -1;
        return cloud_topic_expand(cfg->attest_topic, gateway_name(cfg), device, NULL, 0, out,
                                  cap, why);
    }
    const char *rest;
    size_t rest_len;
    const struct cloud_route *rt = uplink_route_for(cfg, topic, topic_len, &rest, &rest_len);
    return rt ? uplink_route_topic(cfg, rt, device, rest, rest_len, out, cap, why) : -1;
}

/* ---- TLS ---- */

static int ssl_error_text(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    char tmp[256] = "";
    if (e)
        ERR_error_string_n(e, tmp, sizeof(tmp));
    ERR_clear_error();
    return snprintf(buf, cap, "%s", *tmp ? tmp : "unknown error");
}

static SSL_CTX *make_ctx(const struct cloud_config *cfg, char *err, size_t errlen)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS context: out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (!*cfg->ca_file) {
        snprintf(err, errlen, "cloud.ca_file is not set (the CA that signed the cloud's server "
                 "certificate; AWS IoT: AmazonRootCA1.pem)");
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
        ssl_error_text(why, sizeof(why));
        snprintf(err, errlen, "cloud.ca_file %s: cannot load: %s", cfg->ca_file,
                 access(cfg->ca_file, R_OK) != 0 ? strerror(errno) : why);
        goto fail;
    }
    if (!*cfg->cert_file || !*cfg->key_file) {
        snprintf(err, errlen, "cloud.cert_file and cloud.key_file are both needed (the "
                 "gateway's X.509 client certificate and its private key)");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        ssl_error_text(why, sizeof(why));
        snprintf(err, errlen, "cloud.cert_file %s: cannot load: %s", cfg->cert_file,
                 access(cfg->cert_file, R_OK) != 0 ? strerror(errno) : why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            snprintf(err, errlen, "cloud.key_file %s is not the private key of cloud.cert_file "
                     "%s", cfg->key_file, cfg->cert_file);
            goto fail;
        }
        ssl_error_text(why, sizeof(why));
        snprintf(err, errlen, "cloud.key_file %s: cannot load: %s", cfg->key_file,
                 access(cfg->key_file, R_OK) != 0 ? strerror(errno) : why);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "cloud.key_file %s is not the private key of cloud.cert_file %s",
                 cfg->key_file, cfg->cert_file);
        goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    const char *name = *cfg->sni ? cfg->sni : cfg->host;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_host(param, name, 0) != 1) {
        snprintf(err, errlen, "cloud.sni '%s' is not a usable host name", name);
        goto fail;
    }
    const char *alpn = *cfg->alpn ? cfg->alpn : cfg->port == 443 ? "x-amzn-mqtt-ca" : "";
    if (*alpn) {
        unsigned char wire[65];
        size_t l = strlen(alpn);
        wire[0] = (unsigned char)l;
        memcpy(wire + 1, alpn, l);
        SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)l + 1);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int uplink_check_config(const struct cloud_config *cfg, char *err, size_t errlen)
{
    const char *g = gateway_name(cfg);
    char e[384];
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (cloud_template_check(cfg->routes[i].topic, CLOUD_TEMPLATE_UP, g, e, sizeof(e)) != 0) {
            snprintf(err, errlen, "cloud.routes[%zu]: %s", i, e);
            return -1;
        }
    }
    if (*cfg->attest_topic &&
        cloud_template_check(cfg->attest_topic, CLOUD_TEMPLATE_ATTEST, g, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "cloud.%s", e);
        return -1;
    }
    if (*cfg->command_topic &&
        cloud_template_check(cfg->command_topic, CLOUD_TEMPLATE_COMMAND, g, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "cloud.%s", e);
        return -1;
    }
    if (strlen(cfg->client_id) > 128) {
        snprintf(err, errlen, "cloud.client_id is over 128 bytes (AWS IoT's limit)");
        return -1;
    }
    SSL_CTX *ctx = make_ctx(cfg, err, errlen);
    if (!ctx)
        return -1;
    SSL_CTX_free(ctx);
    return 0;
}

static struct slot *slot_at(struct uplink *u, size_t i)
{
    return &u->win[(u->win_head + i) % u->win_cap];
}

static void window_fill(struct uplink *u)
{
    size_t room = u->win_cap - u->win_n;
    if (room == 0)
        return;
    struct spool_item *list = spool_take(u->sp, room);
    while (list) {
        struct spool_item *it = list;
        list = it->next;
        it->next = NULL;
        struct slot *s = slot_at(u, u->win_n++);
        s->it = it;
        s->state = SLOT_UNSENT;
        s->pid = 0;
    }
}

/* Acknowledged records leave the head of the window, in order, and are deleted from the spool. */
static void window_release(struct uplink *u)
{
    uint64_t last = 0, n = 0, bytes = 0;
    while (u->win_n > 0) {
        struct slot *s = slot_at(u, 0);
        if (s->state != SLOT_ACKED)
            break;
        last = s->it->seq;
        n++;
        bytes += s->it->topic_len + s->it->payload_len;
        spool_item_free(s->it);
        s->it = NULL;
        u->win_head = (u->win_head + 1) % u->win_cap;
        u->win_n--;
    }
    if (n)
        spool_done(u->sp, last, n, bytes);
}

static void stat_add(struct uplink *u, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&u->mu);
    *field += n;
    pthread_mutex_unlock(&u->mu);
}

/* ---- what the cloud sends (cloud_client callbacks, on the uplink thread) ---- */

static void on_suback(void *arg, uint8_t reason)
{
    struct uplink *u = arg;
    if (reason >= 0x80)
        log_event(LOG_ERROR, "cloud_subscribe_refused", "filter=%s reason_code=0x%02x",
                  u->cmd_filter, (unsigned)reason);
    else
        log_event(LOG_DEBUG, "cloud_subscribed", "filter=%s", u->cmd_filter);
}

static void on_puback(void *arg, uint16_t pid, uint8_t reason)
{
    struct uplink *u = arg;
    if (!u->slot_of_pid[pid])
        return;
    size_t ring = u->slot_of_pid[pid] - 1;
    u->slot_of_pid[pid] = 0;
    struct slot *s = &u->win[ring];
    if (s->state != SLOT_INFLIGHT || s->pid != pid)
        return;
    u->n_inflight--;
    histogram_observe(&u->gw->metrics.cloud_puback, clock_mono_us() - s->sent_us);
    if (reason == MQTT_RC_QUOTA_EXCEEDED || reason == MQTT_RC_SERVER_BUSY) {
        /* the cloud asks us to slow down: send it again later */
        s->state = SLOT_UNSENT;
        log_event(LOG_WARN, "cloud_throttled", "seq=%llu reason_code=0x%02x",
                  (unsigned long long)s->it->seq, (unsigned)reason);
        u->pause_until_us = clock_mono_us() + 1000000u;
        return;
    }
    s->state = SLOT_ACKED;
    if (reason >= 0x80) {
        char dev[LOG_SAFE_MAX];
        log_event(LOG_ERROR, "cloud_rejected", "seq=%llu device=%s reason=%s reason_code=0x%02x "
                  "action=dropped", (unsigned long long)s->it->seq,
                  log_safe(s->it->device, strlen(s->it->device), dev, sizeof(dev)),
                  mqtt_reason_name(reason), (unsigned)reason);
        stat_add(u, &u->stats.rejected, 1);
    } else {
        stat_add(u, &u->stats.acked, 1);
    }
}

static void on_message(void *arg, const char *topic, size_t tlen, const uint8_t *payload,
                       size_t len, uint8_t qos)
{
    struct uplink *u = arg;
    stat_add(u, &u->stats.commands_in, 1);
    char id[DEVICE_ID_MAX + 1];
    const char *rest;
    size_t rest_len;
    if (!cloud_command_parse(u->cmd_filter, topic, tlen, id, sizeof(id), &rest, &rest_len)) {
        char t[LOG_SAFE_MAX];
        log_event(LOG_WARN, "command_dropped", "topic=%s reason=not_a_device_topic",
                  log_safe(topic, tlen, t, sizeof(t)));
        stat_add(u, &u->stats.commands_dropped, 1);
        return;
    }
    int rc = broker_deliver_command(u->gw, id, rest, rest_len, payload, len, qos);
    stat_add(u, rc == 0 ? &u->stats.commands_delivered : &u->stats.commands_dropped, 1);
}

/* ---- the status file psagw spool stats shows ---- */


/* Writes <spool>.uplink (JSON, 0600, replaced atomically): the connection's state, since when,
 * the last error and the counters. Every state change, and every 5 s. */
static void write_status(struct uplink *u)
{
    char path[1100], tmp[1110], err[512];
    snprintf(path, sizeof(path), "%s.uplink", u->cfg.spool);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    size_t o = 0; /* the error text without quotes or backslashes, for JSON */
    for (const char *p = u->last_error; *p && o + 1 < sizeof(err); p++)
        err[o++] = *p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '\'' : *p;
    err[o] = '\0';
    struct uplink_stats st;
    uplink_get_stats(u, &st);
    mode_t old = umask(077);
    FILE *f = fopen(tmp, "w");
    umask(old);
    if (!f)
        return;
    fprintf(f,
            "{\"state\":\"%s\",\"host\":\"%s\",\"port\":%u,\"since_ms\":%lld,"
            "\"last_error\":\"%s\",\"backlog_in_memory\":%zu,\"inflight\":%zu,"
            "\"published\":%llu,\"acked\":%llu,\"rejected\":%llu,\"connects\":%llu,"
            "\"failures\":%llu,\"commands_delivered\":%llu,\"spool_state\":\"%s\","
            "\"updated_ms\":%lld}\n",
            u->status, u->cfg.host, u->cfg.port, (long long)u->status_since_ms, err, u->win_n,
            u->n_inflight, (unsigned long long)st.published, (unsigned long long)st.acked,
            (unsigned long long)st.rejected, (unsigned long long)st.connects,
            (unsigned long long)st.failures, (unsigned long long)st.commands_delivered,
            spool_state_name(u->sp), (long long)(int64_t)clock_wall_ms());
    if (fclose(f) == 0)
        rename(tmp, path);
    else
        unlink(tmp);
    u->status_written_ms = clock_mono_ms();
}

static void set_status(struct uplink *u, const char *status, const char *error)
{
    if (error)
        snprintf(u->last_error, sizeof(u->last_error), "%.*s", (int)sizeof(u->last_error) - 1, error);
    if (u->status != status) {
        u->status = status;
        u->status_since_ms = (int64_t)clock_wall_ms();
    }
    write_status(u);
}

/* ---- connection life ---- */

static void backoff(struct uplink *u)
{
    /* jittered exponential backoff (pacing.h) */
    uint64_t ms = pacing_backoff_ms(&u->backoff_s, u->cfg.reconnect_min, u->cfg.reconnect_max,
                                    &u->rng);
    u->attempt_at_ms = clock_mono_ms() + ms;
    pthread_mutex_lock(&u->mu);
    u->stats.failures++;
    pthread_mutex_unlock(&u->mu);
}

static void teardown(struct uplink *u, const char *reason)
{
    char why[512]; /* reason may point into the client freed below */
    snprintf(why, sizeof(why), "%s", reason);
    bool was_connected = u->state == UP_CONNECTED;
    if (u->cc) {
        cloud_client_close(u->cc, false);
        u->cc = NULL;
    }
    SSL_CTX_free(u->ctx);
    u->ctx = NULL;
    /* whatever was in flight is sent again on the next connection, oldest first */
    for (size_t i = 0; i < u->win_n; i++) {
        struct slot *s = slot_at(u, i);
        if (s->state == SLOT_INFLIGHT) {
            u->slot_of_pid[s->pid] = 0;
            s->state = SLOT_UNSENT;
        }
    }
    u->n_inflight = 0;
    u->state = UP_IDLE;
    pthread_mutex_lock(&u->mu);
    u->stats.connected = false;
    pthread_mutex_unlock(&u->mu);
    backoff(u);
    set_status(u, "disconnected", why);
    log_event(was_connected ? LOG_WARN : LOG_ERROR, "cloud_disconnected",
              "host=%s port=%u reason=\"%s\" retry_in_ms=%llu backlog=%zu", u->cfg.host,
              u->cfg.port, why, (unsigned long long)(u->attempt_at_ms - clock_mono_ms()), u->win_n);
}

static void attempt(struct uplink *u)
{
    char err[768];
    if (uplink_check_config(&u->cfg, err, sizeof(err)) != 0) {
        /* the devices go on being served and spooled; the next attempt re-reads the files */
        backoff(u);
        set_status(u, "config_error", err);
        log_event(LOG_ERROR, "cloud_config_error", "detail=\"%s\" action=spooling "
                  "retry_in_ms=%llu", err, (unsigned long long)(u->attempt_at_ms - clock_mono_ms()));
        return;
    }
    u->ctx = make_ctx(&u->cfg, err, sizeof(err));
    if (!u->ctx) {
        backoff(u);
        return;
    }
    cloud_command_filter(u->cfg.command_topic, gateway_name(&u->cfg), u->cmd_filter,
                         sizeof(u->cmd_filter));
    if (!*u->cfg.command_topic)
        u->cmd_filter[0] = '\0';
    u->state = UP_CONNECTING;
    set_status(u, "connecting", NULL);
    log_event(LOG_INFO, "cloud_connecting", "host=%s port=%u sni=%s client_id=%s protocol=%s",
              u->cfg.host, u->cfg.port, *u->cfg.sni ? u->cfg.sni : u->cfg.host,
              u->cfg.client_id, u->cfg.mqtt_version == 5 ? "mqtt5" : "mqtt311");
    static const struct cloud_client_cb cb_template = {on_puback, on_message, on_suback, NULL};
    struct cloud_client_cb cb = cb_template;
    cb.arg = u;
    u->cc = cloud_client_connect(&u->cfg, u->ctx, u->cmd_filter, &cb, u->stopfd,
                                 CONNECT_TIMEOUT_MS, err, sizeof(err));
    if (!u->cc) {
        teardown(u, err);
        return;
    }
    /* never more in flight than the cloud's Receive Maximum */
    u->inflight_limit = u->cfg.max_inflight;
    if (cloud_client_receive_max(u->cc) < u->inflight_limit)
        u->inflight_limit = cloud_client_receive_max(u->cc);
    u->state = UP_CONNECTED;
    u->backoff_s = 0;
    pthread_mutex_lock(&u->mu);
    u->stats.connected = true;
    u->stats.connects++;
    pthread_mutex_unlock(&u->mu);
    set_status(u, "connected", NULL);
    log_event(LOG_INFO, "cloud_connected", "host=%s port=%u client_id=%s commands=%s "
              "inflight_limit=%u backlog=%zu", u->cfg.host, u->cfg.port, u->cfg.client_id,
              *u->cmd_filter ? u->cmd_filter : "-", u->inflight_limit, u->win_n);
}

static uint16_t take_pid(struct uplink *u)
{
    for (;;) {
        if (++u->next_pid == 0)
            u->next_pid = 1;
        if (!u->slot_of_pid[u->next_pid])
            return u->next_pid;
    }
}

/* Queues unsent records from the oldest, within the window and the limits, and writes them.
 * Returns the microseconds until the rate limit lets the next one go (0: not limited now). */
static uint64_t pump(struct uplink *u)
{
    if (u->state != UP_CONNECTED)
        return 0;
    uint64_t t = clock_mono_us(), wait = 0;
    if (u->pause_until_us > t)
        return u->pause_until_us - t;
    for (size_t i = 0; i < u->win_n && u->n_inflight < u->inflight_limit; i++) {
        struct slot *s = slot_at(u, i);
        if (s->state != SLOT_UNSENT)
            continue;
        struct spool_item *it = s->it;
        char topic[AWS_TOPIC_MAX_BYTES * 2];
        const char *why;
        int tl = uplink_map_topic(&u->cfg, it->device, it->topic, it->topic_len, topic,
                                  sizeof(topic), &why);
        if (tl < 0) {
            char t1[LOG_SAFE_MAX], d1[LOG_SAFE_MAX];
            log_event(LOG_ERROR, "cloud_unroutable", "seq=%llu device=%s topic=%s reason=%s "
                      "action=dropped", (unsigned long long)it->seq,
                      log_safe(it->device, strlen(it->device), d1, sizeof(d1)),
                      log_safe(it->topic, it->topic_len, t1, sizeof(t1)),
                      why ? why : "no route matches it any more");
            s->state = SLOT_ACKED;
            stat_add(u, &u->stats.unroutable, 1);
            continue;
        }
        size_t bytes = (size_t)tl + it->payload_len;
        wait = pacing_wait(&u->rate, u->cfg.max_publish_rate, u->cfg.max_bytes_rate, bytes, t);
        if (wait)
            break;
        uint16_t pid = take_pid(u);
        if (cloud_client_publish(u->cc, pid, topic, (size_t)tl, it->payload, it->payload_len) !=
            0) {
            char d1[LOG_SAFE_MAX];
            log_event(LOG_ERROR, "cloud_unroutable", "seq=%llu device=%s reason=\"%s\" "
                      "action=dropped", (unsigned long long)it->seq,
                      log_safe(it->device, strlen(it->device), d1, sizeof(d1)),
                      cloud_client_error(u->cc));
            s->state = SLOT_ACKED;
            stat_add(u, &u->stats.unroutable, 1);
            continue;
        }
        if (u->cfg.max_publish_rate || u->cfg.max_bytes_rate)
            pacing_record(&u->rate, bytes, t);
        s->state = SLOT_INFLIGHT;
        s->pid = pid;
        s->sent_us = t;
        u->slot_of_pid[pid] = (uint32_t)((u->win_head + i) % u->win_cap) + 1;
        u->n_inflight++;
        stat_add(u, &u->stats.published, 1);
    }
    window_release(u);
    if (cloud_client_flush(u->cc) != 0)
        teardown(u, cloud_client_error(u->cc));
    pthread_mutex_lock(&u->mu);
    u->stats.inflight = u->n_inflight;
    u->stats.window_at_us = clock_mono_us();
    u->stats.window_publishes = pacing_in_window(&u->rate, u->stats.window_at_us,
                                                 &u->stats.window_bytes);
    pthread_mutex_unlock(&u->mu);
    return wait;
}

static void take_new_config(struct uplink *u)
{
    pthread_mutex_lock(&u->mu);
    struct cloud_config *n = u->next_cfg;
    u->next_cfg = NULL;
    pthread_mutex_unlock(&u->mu);
    if (!n)
        return;
    bool reconnect = strcmp(n->host, u->cfg.host) || n->port != u->cfg.port ||
                     strcmp(n->ca_file, u->cfg.ca_file) || strcmp(n->cert_file, u->cfg.cert_file) ||
                     strcmp(n->key_file, u->cfg.key_file) || strcmp(n->sni, u->cfg.sni) ||
                     strcmp(n->alpn, u->cfg.alpn) || strcmp(n->client_id, u->cfg.client_id) ||
                     strcmp(n->gateway, u->cfg.gateway) || n->mqtt_version != u->cfg.mqtt_version ||
                     n->keepalive != u->cfg.keepalive ||
                     strcmp(n->command_topic, u->cfg.command_topic) || u->state == UP_IDLE;
    u->cfg = *n;
    free(n);
    if (reconnect) {
        if (u->cc)
            teardown(u, "configuration changed");
        u->backoff_s = 0;
        u->attempt_at_ms = 0; /* now */
    }
}

static bool stopping(struct uplink *u)
{
    pthread_mutex_lock(&u->mu);
    bool stop = u->stop;
    pthread_mutex_unlock(&u->mu);
    return stop;
}

static void *uplink_thread(void *arg)
{
    struct uplink *u = arg;
    pthread_setname_np(pthread_self(), "psagw-uplink");
    set_status(u, "connecting", NULL);
    while (!stopping(u)) {
        take_new_config(u);
        window_fill(u);
        if (clock_mono_ms() - u->status_written_ms >= 5000)
            write_status(u);
        if (!u->cc && clock_mono_ms() >= u->attempt_at_ms)
            attempt(u);
        uint64_t wait_us = pump(u);
        uint64_t timeout_ms = 1000;
        struct pollfd p[3] = {{.fd = u->evfd, .events = POLLIN},
                              {.fd = u->stopfd, .events = POLLIN},
                              {.fd = -1}};
        if (u->cc) {
            uint64_t tick_ms;
            if (cloud_client_tick(u->cc, clock_mono_ms(), &tick_ms) != 0) {
                teardown(u, cloud_client_error(u->cc));
                continue;
            }
            timeout_ms = tick_ms;
            p[2].fd = cloud_client_fd(u->cc);
            p[2].events = POLLIN | (cloud_client_want_write(u->cc) ? POLLOUT : 0);
        } else {
            uint64_t t = clock_mono_ms();
            timeout_ms = u->attempt_at_ms > t ? u->attempt_at_ms - t : 0;
        }
        if (wait_us && wait_us / 1000u + 1 < timeout_ms)
            timeout_ms = wait_us / 1000u + 1;
        if (timeout_ms > 1000)
            timeout_ms = 1000;
        if (poll(p, 3, (int)timeout_ms) < 0 && errno != EINTR)
            break;
        uint64_t v;
        if ((p[0].revents & POLLIN) && read(u->evfd, &v, sizeof(v)) < 0)
            (void)0;
        if (u->cc && (p[2].revents & (POLLIN | POLLERR | POLLHUP)) &&
            cloud_client_read(u->cc) != 0) {
            teardown(u, cloud_client_error(u->cc));
            continue;
        }
        window_release(u);
        if (u->cc && (p[2].revents & POLLOUT) && cloud_client_flush(u->cc) != 0)
            teardown(u, cloud_client_error(u->cc));
    }
    if (u->cc) {
        cloud_client_flush(u->cc);
        cloud_client_close(u->cc, true);
        u->cc = NULL;
    }
    SSL_CTX_free(u->ctx);
    u->ctx = NULL;
    set_status(u, "stopped", NULL);
    return NULL;
}

struct uplink *uplink_new(struct gateway *gw, struct spool *sp, const struct cloud_config *cfg)
{
    struct uplink *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->gw = gw;
    u->sp = sp;
    u->cfg = *cfg;
    u->win_cap = cfg->max_inflight + WINDOW_SPARE;
    u->win = calloc(u->win_cap, sizeof(*u->win));
    u->slot_of_pid = calloc(65536, sizeof(*u->slot_of_pid));
    u->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    u->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    u->rng = (unsigned)clock_mono_us();
    pthread_mutex_init(&u->mu, NULL);
    if (!u->win || !u->slot_of_pid || u->evfd < 0 || u->stopfd < 0) {
        uplink_free(u);
        return NULL;
    }
    return u;
}

int uplink_start(struct uplink *u)
{
    if (pthread_create(&u->thread, NULL, uplink_thread, u) != 0)
        return -1;
    u->running = true;
    return 0;
}

void uplink_wake(struct uplink *u)
{
    uint64_t one = 1;
    if (write(u->evfd, &one, sizeof(one)) < 0)
        (void)0;
}

void uplink_reconfigure(struct uplink *u, const struct cloud_config *cfg)
{
    struct cloud_config *n = malloc(sizeof(*n));
    if (!n)
        return;
    *n = *cfg;
    pthread_mutex_lock(&u->mu);
    free(u->next_cfg);
    u->next_cfg = n;
    pthread_mutex_unlock(&u->mu);
    uplink_wake(u);
}

void uplink_stop(struct uplink *u)
{
    if (!u || !u->running)
        return;
    pthread_mutex_lock(&u->mu);
    u->stop = true;
    pthread_mutex_unlock(&u->mu);
    uint64_t one = 1;
    if (write(u->stopfd, &one, sizeof(one)) < 0)
        (void)0;
    pthread_join(u->thread, NULL);
    u->running = false;
}

void uplink_free(struct uplink *u)
{
    if (!u)
        return;
    uplink_stop(u);
    for (size_t i = 0; u->win && i < u->win_n; i++)
        spool_item_free(slot_at(u, i)->it);
    free(u->win);
    free(u->slot_of_pid);
    pacing_rate_free(&u->rate);
    free(u->next_cfg);
    if (u->evfd >= 0)
        close(u->evfd);
    if (u->stopfd >= 0)
        close(u->stopfd);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

void uplink_get_stats(struct uplink *u, struct uplink_stats *st)
{
    pthread_mutex_lock(&u->mu);
    *st = u->stats;
    pthread_mutex_unlock(&u->mu);
}
