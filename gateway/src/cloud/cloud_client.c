/*
 * cloud_client.c: the uplink's MQTT client (see cloud_client.h).
 *
 * Connecting blocks the uplink thread (with a deadline, and the thread's stop eventfd
 * watched), which is what that thread is for; afterwards everything is non-blocking: packets
 * are encoded into `out` and written with SSL_write in records of up to 16 KB, input is read
 * with read-ahead and decoded in place by the shared codec.
 */
#include "clock.h"
#include "cloud_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "psagw/mqtt.h"

#define IN_MAX (2u << 20)       /* largest packet we accept from the cloud (commands) */
#define RECORD_CHUNK 16384
#define COMMAND_RECEIVE_MAX 64  /* our Receive Maximum for commands (MQTT 5) */

struct cloud_client {
    int fd;
    SSL *ssl;
    uint8_t version;
    uint16_t keep_alive; /* seconds; the server's if it set one */
    uint16_t recv_max;
    uint32_t max_packet;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    uint64_t last_tx_ms, ping_sent_ms;
    bool ping_outstanding;
    struct cloud_client_cb cb;
    char err[384];
};

/* Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 stop requested. */
static int wait_fd(int fd, short events, uint64_t deadline, int stop_fd)
{
    for (;;) {
        uint64_t now = clock_mono_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = stop_fd, .events = POLLIN}};
        int n = poll(p, stop_fd >= 0 ? 2 : 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (stop_fd >= 0 && (p[1].revents & POLLIN))
            return -1;
        if (n > 0)
            return 1;
    }
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : RECORD_CHUNK;
    while (n < need)
        n *= 2;
    uint8_t *b = realloc(*buf, n);
    if (!b)
        return -1;
    *buf = b;
    *cap = n;
    return 0;
}

/* Sets the error ("what: detail", or "what") and returns -1. */
static int fail(struct cloud_client *c, const char *what, const char *detail)
{
    snprintf(c->err, sizeof(c->err), "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    return -1;
}

/* The reason an SSL call failed, for the log. */
static const char *ssl_reason(struct cloud_client *c, int e, char *buf, size_t cap)
{
    unsigned long q = ERR_peek_last_error();
    if (q && ERR_GET_REASON(q) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        long v = SSL_get_verify_result(c->ssl);
        snprintf(buf, cap, "server certificate not accepted: %s",
                 X509_verify_cert_error_string(v));
    } else if (q) {
        char t[256];
        ERR_error_string_n(q, t, sizeof(t));
        snprintf(buf, cap, "%s", t);
    } else if (e == SSL_ERROR_SYSCALL) {
        snprintf(buf, cap, "%s", errno ? strerror(errno) : "connection closed by the cloud");
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(buf, cap, "connection closed by the cloud");
    } else {
        snprintf(buf, cap, "TLS error %d", e);
    }
    ERR_clear_error();
    return buf;
}

/* Appends an encoded packet: `enc` is called twice, for the size and then to write. */
#define QUEUE(c, call)                                                                           \
    do {                                                                                         \
        size_t need_ = 0;                                                                        \
        uint8_t *buf = NULL;                                                                     \
        size_t cap = 0;                                                                          \
        if ((call) != MQTT_ERR_NOSPACE)                                                          \
            return fail(c, "cannot encode a packet", NULL);                                    \
        if (grow(&(c)->out, &(c)->out_cap, (c)->out_len + need_) != 0)                           \
            return fail(c, "out of memory", NULL);                                             \
        buf = (c)->out + (c)->out_len;                                                           \
        cap = need_;                                                                             \
        if ((call) != MQTT_OK)                                                                   \
            return fail(c, "cannot encode a packet", NULL);                                    \
        (c)->out_len += need_;                                                                   \
    } while (0)

static int queue_connect(struct cloud_client *c, const struct cloud_config *cfg)
{
    struct mqtt_connect cn = {.version = c->version, .clean_start = true,
                              .keep_alive = cfg->keepalive,
                              .client_id = {(const uint8_t *)cfg->client_id,
                                            strlen(cfg->client_id)}};
    if (c->version == MQTT_V5) {
        mqtt_props_set(&cn.props, MQTT_PROP_RECEIVE_MAX);
        cn.props.receive_max = COMMAND_RECEIVE_MAX;
        mqtt_props_set(&cn.props, MQTT_PROP_MAX_PACKET_SIZE);
        cn.props.max_packet_size = IN_MAX;
    }
    QUEUE(c, mqtt_encode_connect(buf, cap, &cn, &need_));
    return 0;
}

static int queue_subscribe(struct cloud_client *c, const char *filter)
{
    struct mqtt_sub_entry e = {{(const uint8_t *)filter, strlen(filter)}, 1};
    QUEUE(c, mqtt_encode_subscribe(buf, cap, c->version, 1, NULL, &e, 1, &need_));
    return 0;
}

static int queue_ack(struct cloud_client *c, uint16_t packet_id)
{
    struct mqtt_ack a = {.packet_id = packet_id};
    QUEUE(c, mqtt_encode_ack(buf, cap, c->version, MQTT_PUBACK, &a, &need_));
    return 0;
}

static int queue_ping(struct cloud_client *c)
{
    QUEUE(c, mqtt_encode_ping(buf, cap, MQTT_PINGREQ, &need_));
    return 0;
}

int cloud_client_publish(struct cloud_client *c, uint16_t packet_id, const char *topic,
                         size_t topic_len, const uint8_t *payload, size_t len)
{
    struct mqtt_publish p = {.qos = 1, .packet_id = packet_id,
                             .topic = {(const uint8_t *)topic, topic_len},
                             .payload = {payload, len}};
    size_t before = c->out_len;
    QUEUE(c, mqtt_encode_publish(buf, cap, c->version, &p, &need_));
    if (c->max_packet && c->out_len - before > c->max_packet) {
        c->out_len = before;
        snprintf(c->err, sizeof(c->err), "PUBLISH of %zu bytes is over the cloud's Maximum "
                 "Packet Size %u", len, c->max_packet);
        return -1;
    }
    return 0;
}

int cloud_client_flush(struct cloud_client *c)
{
    char why[256];
    while (c->out_off < c->out_len) {
        size_t left = c->out_len - c->out_off;
        ERR_clear_error();
        int n = SSL_write(c->ssl, c->out + c->out_off, (int)(left > RECORD_CHUNK ? RECORD_CHUNK
                                                                                 : left));
        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_tx_ms = clock_mono_ms();
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
            return 0;
        return fail(c, "write", ssl_reason(c, e, why, sizeof(why)));
    }
    c->out_len = c->out_off = 0;
    if (c->out_cap > 8 * RECORD_CHUNK) { /* a burst is over: give the memory back */
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    return 0;
}

bool cloud_client_want_write(const struct cloud_client *c)
{
    return c->out_off < c->out_len;
}

static int dispatch(struct cloud_client *c, const uint8_t *buf, size_t len)
{
    struct mqtt_packet pk;
    if (mqtt_decode(buf, len, c->version, &pk) != MQTT_OK)
        return fail(c, "malformed packet from the cloud", NULL);
    switch (pk.type) {
    case MQTT_PUBACK:
        c->cb.on_puback(c->cb.arg, pk.u.ack.packet_id,
                        c->version == MQTT_V5 ? pk.u.ack.reason : 0);
        return 0;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *p = &pk.u.publish;
        if (p->qos > 1)
            return fail(c, "QoS 2 PUBLISH from the cloud on a QoS 1 subscription", NULL);
        if (p->topic.len == 0)
            return fail(c, "PUBLISH with a topic alias we did not allow", NULL);
        c->cb.on_message(c->cb.arg, (const char *)p->topic.data, p->topic.len, p->payload.data,
                         p->payload.len, p->qos);
        return p->qos == 1 ? queue_ack(c, p->packet_id) : 0;
    }
    case MQTT_SUBACK:
        c->cb.on_suback(c->cb.arg, pk.u.suback.reasons.len ? pk.u.suback.reasons.data[0] : 0x80);
        return 0;
    case MQTT_PINGRESP:
        c->ping_outstanding = false;
        return 0;
    case MQTT_DISCONNECT: {
        char why[256];
        const struct mqtt_bytes *rs = &pk.u.reason.props.reason_string;
        snprintf(why, sizeof(why), "%s (0x%02x)%s%.*s", mqtt_reason_name(pk.u.reason.reason),
                 pk.u.reason.reason, rs->len ? ": " : "", (int)(rs->len > 120 ? 120 : rs->len),
                 rs->len ? (const char *)rs->data : "");
        return fail(c, "the cloud disconnected", why);
    }
    default:
        return fail(c, "unexpected packet from the cloud", NULL);
    }
}

/* Decodes the complete packets in `in`. */
static int process(struct cloud_client *c)
{
    size_t off = 0;
    while (off < c->in_len) {
        uint8_t first;
        uint32_t rem;
        size_t hlen;
        int rc = mqtt_fixed_header(c->in + off, c->in_len - off, &first, &rem, &hlen);
        if (rc == MQTT_ERR_INCOMPLETE)
            break;
        if (rc != MQTT_OK || (uint64_t)rem + hlen > IN_MAX)
            return fail(c, "malformed or oversized packet from the cloud", NULL);
        if (c->in_len - off < hlen + rem)
            break;
        if (dispatch(c, c->in + off, hlen + rem) != 0)
            return -1;
        off += hlen + rem;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

int cloud_client_read(struct cloud_client *c)
{
    char why[256];
    for (;;) {
        if (grow(&c->in, &c->in_cap, c->in_len + RECORD_CHUNK) != 0)
            return fail(c, "out of memory", NULL);
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len));
        if (n > 0) {
            c->in_len += (size_t)n;
            if (process(c) != 0)
                return -1;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        return fail(c, "read", ssl_reason(c, e, why, sizeof(why)));
    }
}

int cloud_client_tick(struct cloud_client *c, uint64_t now_ms, uint64_t *next_ms)
{
    uint64_t ka = (uint64_t)c->keep_alive * 1000u;
    *next_ms = 1000;
    if (ka == 0)
        return 0;
    if (c->ping_outstanding) {
        if (now_ms - c->ping_sent_ms >= ka) {
            snprintf(c->err, sizeof(c->err), "no PINGRESP within the keep-alive (%u s)",
                     c->keep_alive);
            return -1;
        }
        *next_ms = ka - (now_ms - c->ping_sent_ms);
        return 0;
    }
    if (now_ms - c->last_tx_ms >= ka) {
        if (queue_ping(c) != 0)
            return -1;
        c->ping_outstanding = true;
        c->ping_sent_ms = now_ms;
        *next_ms = ka;
        return cloud_client_flush(c);
    }
    *next_ms = ka - (now_ms - c->last_tx_ms);
    return 0;
}

/* TCP connect to host:port with the deadline; the socket, or -1 with err. */
static int tcp_connect(struct cloud_client *c, const char *host, uint16_t port, uint64_t deadline,
                       int stop_fd)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0) {
        snprintf(c->err, sizeof(c->err), "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(c->err, sizeof(c->err), "no address for %s", host);
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        int s = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0)
            continue;
        int e = 0;
        if (connect(s, a->ai_addr, a->ai_addrlen) != 0) {
            e = errno;
            if (e == EINPROGRESS) {
                int w = wait_fd(s, POLLOUT, deadline, stop_fd);
                socklen_t l = sizeof(e);
                if (w < 0)
                    e = ECANCELED;
                else if (w == 0)
                    e = ETIMEDOUT;
                else if (getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l) != 0)
                    e = errno;
            }
        }
        if (e == 0) {
            fd = s;
            break;
        }
        close(s);
        snprintf(c->err, sizeof(c->err), "TCP connect to %s:%u: %s", host, port, strerror(e));
        if (e == ECANCELED)
            break;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* Connect phase: after an SSL call failed with error e, waits for what it wants. 0 to try
 * again; -1 (the error set, prefixed with `step`) on a real error, timeout or stop. */
static int wait_ssl(struct cloud_client *c, int e, uint64_t deadline, int stop_fd,
                    const char *step)
{
    char why[256];
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        return fail(c, step, ssl_reason(c, e, why, sizeof(why)));
    int w = wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, stop_fd);
    return w > 0 ? 0 : fail(c, step, w == 0 ? "timed out" : "stopped");
}

/* Writes `out` completely before the deadline (connect phase). */
static int flush_blocking(struct cloud_client *c, uint64_t deadline, int stop_fd)
{
    while (cloud_client_want_write(c)) {
        if (cloud_client_flush(c) != 0)
            return -1;
        if (cloud_client_want_write(c) && wait_fd(c->fd, POLLOUT, deadline, stop_fd) <= 0)
            return fail(c, "timed out sending CONNECT", NULL);
    }
    return 0;
}

struct cloud_client *cloud_client_connect(const struct cloud_config *cfg, SSL_CTX *ctx,
                                          const char *cmd_filter,
                                          const struct cloud_client_cb *cb, int stop_fd,
                                          int timeout_ms, char *err, size_t errlen)
{
    struct cloud_client *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = -1;
    c->cb = *cb;
    c->version = cfg->mqtt_version == 5 ? MQTT_V5 : MQTT_V311;
    c->keep_alive = cfg->keepalive;
    c->recv_max = 65535;
    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
    const char *name = *cfg->sni ? cfg->sni : cfg->host;
    char why[256];

    c->fd = tcp_connect(c, cfg->host, cfg->port, deadline, stop_fd);
    if (c->fd < 0)
        goto fail;
    c->ssl = SSL_new(ctx);
    if (!c->ssl) {
        fail(c, "TLS: out of memory", NULL);
        goto fail;
    }
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_read_ahead(c->ssl, 1);
    SSL_set_tlsext_host_name(c->ssl, name);
    SSL_set1_host(c->ssl, name);
    SSL_set_connect_state(c->ssl);
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(c->ssl, r);
        if (wait_ssl(c, e, deadline, stop_fd, "TLS handshake") != 0)
            goto fail;
    }
    if (queue_connect(c, cfg) != 0 || flush_blocking(c, deadline, stop_fd) != 0)
        goto fail;
    /* the CONNACK */
    for (;;) {
        if (grow(&c->in, &c->in_cap, c->in_len + RECORD_CHUNK) != 0) {
            fail(c, "out of memory", NULL);
            goto fail;
        }
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len));
        if (n > 0) {
            c->in_len += (size_t)n;
            uint8_t first;
            uint32_t rem;
            size_t hlen;
            int rc = mqtt_fixed_header(c->in, c->in_len, &first, &rem, &hlen);
            if (rc == MQTT_ERR_INCOMPLETE || (rc == MQTT_OK && c->in_len < hlen + rem))
                continue;
            struct mqtt_packet pk;
            if (rc != MQTT_OK || mqtt_decode(c->in, hlen + rem, c->version, &pk) != MQTT_OK ||
                pk.type != MQTT_CONNACK) {
                fail(c, "the cloud did not answer CONNECT with a CONNACK", NULL);
                goto fail;
            }
            const struct mqtt_connack *ca = &pk.u.connack;
            if (ca->reason != 0) {
                static const char *const v3[] = {"", "unacceptable protocol version",
                                                 "identifier rejected", "server unavailable",
                                                 "bad user name or password", "not authorized"};
                const struct mqtt_bytes *rs = &ca->props.reason_string;
                snprintf(why, sizeof(why), "%s (0x%02x)%s%.*s",
                         c->version == MQTT_V5 ? mqtt_reason_name(ca->reason)
                         : ca->reason < 6      ? v3[ca->reason]
                                               : "refused",
                         ca->reason, rs->len ? ": " : "", (int)(rs->len > 120 ? 120 : rs->len),
                         rs->len ? (const char *)rs->data : "");
                fail(c, "CONNACK refused", why);
                goto fail;
            }
            if (c->version == MQTT_V5) {
                if (mqtt_props_has(&ca->props, MQTT_PROP_RECEIVE_MAX) &&
                    ca->props.receive_max > 0) /* 0 is a protocol error: ignored */
                    c->recv_max = ca->props.receive_max;
                if (mqtt_props_has(&ca->props, MQTT_PROP_MAX_PACKET_SIZE))
                    c->max_packet = ca->props.max_packet_size;
                if (mqtt_props_has(&ca->props, MQTT_PROP_SERVER_KEEP_ALIVE))
                    c->keep_alive = ca->props.server_keep_alive;
            }
            memmove(c->in, c->in + hlen + rem, c->in_len - (hlen + rem));
            c->in_len -= hlen + rem;
            break;
        }
        int e = SSL_get_error(c->ssl, n);
        if (wait_ssl(c, e, deadline, stop_fd, "waiting for CONNACK") != 0)
            goto fail;
    }
    if (cmd_filter && *cmd_filter && queue_subscribe(c, cmd_filter) != 0)
        goto fail;
    if (process(c) != 0) /* anything that came right behind the CONNACK */
        goto fail;
    c->last_tx_ms = clock_mono_ms();
    return c;
fail:
    snprintf(err, errlen, "%s", c->err);
    cloud_client_close(c, false);
    return NULL;
}

uint16_t cloud_client_receive_max(const struct cloud_client *c)
{
    return c->recv_max;
}

uint32_t cloud_client_max_packet(const struct cloud_client *c)
{
    return c->max_packet;
}

int cloud_client_fd(const struct cloud_client *c)
{
    return c->fd;
}

const char *cloud_client_error(const struct cloud_client *c)
{
    return c->err;
}

void cloud_client_close(struct cloud_client *c, bool graceful)
{
    if (!c)
        return;
    if (graceful && c->ssl) {
        uint8_t d[4];
        size_t n = 0;
        if (mqtt_encode_reason(d, sizeof(d), c->version, MQTT_DISCONNECT, 0, NULL, &n) == MQTT_OK)
            SSL_write(c->ssl, d, (int)n);
        SSL_shutdown(c->ssl);
    }
    SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}
