/*
 * conn.c: one client connection: socket, TLS, input framing, output buffering, deadlines, close.
 *
 * Threads: a connection belongs to one worker, whose thread alone reads its socket, runs its
 * SSL and its timers. Packets are decoded outside the broker lock and handled under it. Output
 * is appended to `out` under the lock by whichever worker routes to the connection; the owner
 * swaps `out` for an empty buffer under the lock and encrypts and writes it outside (so TLS work
 * runs in parallel). Another worker that queues output, or must close the connection (session
 * takeover), puts it on the owner's remote list and wakes the owner through its eventfd.
 *
 * TLS: the handshake runs in OpenSSL over memory BIOs (this file moves the bytes and lets
 * tls_record.h follow them); then, for TLS 1.2 AEAD suites and TLS 1.3, our record layer takes
 * the keys and the SSL is freed (docs/tls-record-layer.md). Other suites keep the SSL.
 *
 * Reads go into the worker's scratch buffers and complete packets are handled straight from
 * them; only the tail of a packet (or a TLS record) still arriving is copied into the
 * connection's own buffer. Output is written before the loop sleeps, so a burst of deliveries
 * becomes one TLS record where it fits. Buffers are freed when empty: an idle device costs its
 * socket, its record layer's keys and this struct.
 */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_lock.h"
#include "conn.h"
#include "handshake_limit.h"
#include "log.h"
#include "tls.h"

static void conn_io(struct loop *l, struct loop_io *io, uint32_t events);
static void run_teardowns(struct worker *w);

static const struct conn_handlers *handlers;

void conn_set_handlers(const struct conn_handlers *h)
{
    handlers = h;
}

static void connect_deadline(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct conn *c = container_of(t, struct conn, timer);
    const char *state = c->state == CONN_TLS_HANDSHAKE     ? "tls_handshake"
                        : c->state == CONN_AUTHENTICATING ? "authenticating"
                                                          : "wait_connect";
    /* once per 10 s per state: connections that never finish are an attacker's cheapest tool */
    static struct log_limit limits[4];
    LOG_LIMITED(log_limit_for(limits, 4, state), LOG_INFO, "connect_timeout", "peer=%s state=%s",
                c->peer, state);
    conn_close(c, -1, NULL);
}

/* The handshake ended (done, failed, or the connection closed during it). */
static void handshake_over(struct conn *c)
{
    if (!c->in_handshake_limit)
        return;
    c->in_handshake_limit = false;
    c->w->handshakes--;
    handshake_limit_leave(c->addr_slot);
}

/* Frees what a TLS connection holds only during its handshake. */
static void handshake_free(struct conn *c)
{
    if (!c->hs)
        return;
    tls12_psk_free(c->hs->own);
    free(c->hs->hello);
    tls_rec_handshake_clear(&c->hs->rec);
    SSL_CTX_free(c->hs->ctx); /* our reference */
    free(c->hs);
    c->hs = NULL;
}

/*
 * An SSL object for a handshake OpenSSL runs with ctx: one kept from an earlier connection of
 * the worker's listener with that context (SSL_clear'd, its BIOs emptied), or a new one. The
 * handshake runs over memory BIOs: we move the bytes, and follow them record by record so our
 * record layer can take over with the right sequence numbers. SSL_new is the dearer part of a
 * connect's allocations (OpenSSL 3 copies the context's settings, certificates and cipher lists
 * into each one).
 */
static SSL *ssl_for(struct worker *w, SSL_CTX *ctx)
{
    for (size_t i = 0; i < w->n_listeners; i++)
        if (w->listeners[i].tls == ctx && w->listeners[i].n_ssl_pool > 0)
            return w->listeners[i].ssl_pool[--w->listeners[i].n_ssl_pool];
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (!ssl || !rb || !wb) {
        BIO_free(rb);
        BIO_free(wb);
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_mem_eof_return(rb, -1); /* empty: "retry", not end of file */
    SSL_set_bio(ssl, rb, wb);
    SSL_set_read_ahead(ssl, 0); /* OpenSSL stops at the last handshake record */
    SSL_set_accept_state(ssl);
    return ssl;
}

/* Keeps ssl for the next connection on the worker's listener with its context, after a
 * handshake that completed (anything else is freed; so is an SSL whose context no listener has
 * any more, after a reload): SSL_clear forgets the session and the keys, BIO_reset the
 * buffered bytes. */
static void ssl_done(struct worker *w, SSL *ssl)
{
    struct listener *l = NULL;
    SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
    for (size_t i = 0; i < w->n_listeners && !l; i++)
        if (w->listeners[i].tls && (w->listeners[i].tls == ctx ||
                                    tls_twin_ctx(w->listeners[i].tls) == ctx))
            l = &w->listeners[i];
    if (l && l->n_ssl_pool < LISTENER_SSL_POOL && SSL_clear(ssl) == 1 &&
        BIO_reset(SSL_get_rbio(ssl)) == 1 && BIO_reset(SSL_get_wbio(ssl)) == 1) {
        SSL_set_ex_data(ssl, tls_conn_index(), NULL);
        SSL_set_accept_state(ssl);
        l->ssl_pool[l->n_ssl_pool++] = ssl;
        return;
    }
    SSL_free(ssl);
}

void conn_listener_release(struct listener *l)
{
    while (l->n_ssl_pool > 0)
        SSL_free(l->ssl_pool[--l->n_ssl_pool]);
}

void conn_accept(struct worker *w, struct listener *l, int fd, const char *peer,
                 uint32_t addr_slot, uint32_t connect_timeout)
{
    struct gateway *gw = w->gw;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        if (l->tls)
            handshake_limit_leave(addr_slot);
        return;
    }
    /* TCP_NODELAY and SO_KEEPALIVE come from the listening socket (gateway.c) */
    c->w = w;
    c->gw = gw;
    c->kill_reason = -1;
    c->listener = l->cfg;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->io.fd = fd;
    if (l->tls) {
        c->tls = true;
        c->hs = calloc(1, sizeof(*c->hs));
        if (!c->hs || !SSL_CTX_up_ref(l->tls)) {
            free(c->hs);
            close(fd);
            free(c);
            handshake_limit_leave(addr_slot);
            return;
        }
        c->hs->ctx = l->tls;
        c->state = CONN_TLS_HANDSHAKE;
        c->in_handshake_limit = true;
        c->addr_slot = addr_slot;
        w->handshakes++;
    } else {
        c->state = CONN_WAIT_CONNECT;
    }
    if (loop_io_add(w->loop, &c->io, fd, EPOLLIN, conn_io) != 0) {
        log_event(LOG_ERROR, "accept_failed", "peer=%s reason=epoll detail=\"%s\"", peer,
                  strerror(errno));
        handshake_over(c);
        handshake_free(c);
        close(fd);
        free(c);
        return;
    }
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    gw->n_conns++;
    c->gen = ++gw->conn_gen;
    gw->metrics.connections_accepted++;
    c->last_rx_ms = loop_now_ms(w->loop);
    c->accepted_us = loop_now_us(w->loop);
    loop_timer_start(w->loop, &c->timer, (uint64_t)connect_timeout * 1000u, connect_deadline);
    /* the listener defers accept until the client's first bytes arrive (TCP_DEFER_ACCEPT,
     * gateway.c): read them now rather than after another epoll_wait */
    conn_io(w->loop, &c->io, EPOLLIN);
}

static void want(struct conn *c, uint32_t events)
{
    if (c->read_paused || c->out_paused)
        events &= ~(uint32_t)EPOLLIN;
    if (c->state != CONN_CLOSED)
        loop_io_modify(c->w->loop, &c->io, events);
}

/* Queues c on its owner's remote list and wakes the owner (broker lock held). */
static void remote_request(struct conn *c)
{
    BROKER_LOCK_HELD();
    if (!c->remote_pending) {
        c->remote_pending = true;
        c->next_remote = c->w->remote_list;
        c->w->remote_list = c;
    }
    worker_wake(c->w);
}

/* Output was queued: the owner writes it before it sleeps (caller: owner, or broker lock). */
static void schedule_flush(struct conn *c)
{
    assert(broker_lock_held() || worker_current() == c->w);
    if (c->state == CONN_CLOSED)
        return;
    if (worker_current() != c->w) {
        remote_request(c);
        return;
    }
    if (c->flush_pending)
        return;
    c->flush_pending = true;
    c->next_flush = c->w->flush_list;
    c->w->flush_list = c;
}

/* Makes room for `extra` bytes after the `used` ones of a growable buffer. */
static int grow(uint8_t **buf, size_t *cap, size_t used, size_t extra, size_t initial)
{
    if (used + extra <= *cap)
        return 0;
    size_t n = *cap ? *cap : initial;
    while (n < used + extra)
        n *= 2;
    uint8_t *b = realloc(*buf, n);
    if (!b)
        return -1;
    *buf = b;
    *cap = n;
    return 0;
}

uint8_t *conn_out_reserve(struct conn *c, size_t n)
{
    BROKER_LOCK_HELD();
    if (grow(&c->out, &c->out_cap, c->out_len, n, 512) != 0)
        return NULL;
    return c->out + c->out_len;
}

bool conn_out_full(struct conn *c)
{
    BROKER_LOCK_HELD();
    if (c->out_len < CONN_OUT_MAX)
        return false;
    c->out_throttled = true;
    return true;
}

void conn_out_commit(struct conn *c, size_t n)
{
    c->out_len += n;
    schedule_flush(c);
}

static bool output_pending(const struct conn *c)
{
    return c->wbuf_off < c->wbuf_len || c->tx_off < c->tx_len;
}

/* Writes p[*off..n) to the socket, advancing *off: 1 when all is written, 0 when the socket
 * is full, -1 on error. */
static int send_from(int fd, const uint8_t *p, size_t n, size_t *off)
{
    while (*off < n) {
        ssize_t k = send(fd, p + *off, n - *off, MSG_NOSIGNAL);
        if (k > 0) {
            *off += (size_t)k;
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        return -1;
    }
    return 1;
}

/* Sends the protected bytes kept in tx: 1 all sent, 0 the socket is full, -1 error. */
static int send_tx(struct conn *c)
{
    int rc = send_from(c->io.fd, c->tx, c->tx_len, &c->tx_off);
    if (rc <= 0)
        return rc;
    free(c->tx);
    c->tx = NULL;
    c->tx_len = c->tx_off = c->tx_cap = 0;
    return 1;
}

/* Sends protected bytes p[0..n) after those already waiting; what the socket does not take is
 * kept in tx. Returns 1 all sent, 0 some kept, -1 error. */
static int send_raw(struct conn *c, const uint8_t *p, size_t n)
{
    size_t sent = 0;
    if (c->tx_off == c->tx_len) {
        int rc = send_from(c->io.fd, p, n, &sent);
        if (rc != 0)
            return rc;
    }
    if (c->tx_off > 0) {
        memmove(c->tx, c->tx + c->tx_off, c->tx_len - c->tx_off);
        c->tx_len -= c->tx_off;
        c->tx_off = 0;
    }
    if (grow(&c->tx, &c->tx_cap, c->tx_len, n - sent, 4096) != 0)
        return -1;
    memcpy(c->tx + c->tx_len, p + sent, n - sent);
    c->tx_len += n - sent;
    return 0;
}

/* Moves what OpenSSL wrote into its memory BIO onto the wire: 1 all sent, 0 some kept, -1. */
static int ssl_drain(struct conn *c)
{
    BIO *wb = SSL_get_wbio(c->ssl);
    uint8_t *buf = c->w->tls_out;
    int rc = c->tx_off < c->tx_len ? send_tx(c) : 1;
    int n;
    if (rc < 0)
        return -1;
    while ((n = BIO_read(wb, buf, (int)TLS_OUT_CAP)) > 0) {
        if (c->hs)
            tls_rec_wire_feed(&c->hs->rec.out, buf, (size_t)n);
        if ((rc = send_raw(c, buf, (size_t)n)) < 0)
            return -1;
    }
    return rc;
}

/* A fatal alert (or close_notify) from our record layer, best effort. */
static void send_alert(struct conn *c, uint8_t description)
{
    uint8_t rec[TLS_REC_OVERHEAD + 2];
    size_t n = tls_rec_alert(c->rec, description, rec, sizeof(rec));
    if (n)
        send_raw(c, rec, n);
}

/* Plaintext handed to OpenSSL per SSL_write, so that its output fits tls_out */
#define SSL_WRITE_STEP (2 * TLS_REC_MAX_PLAIN)

/* Writes wbuf; returns 1 when all of it is written, 0 when the socket is full, -1 on error. */
static int write_some(struct conn *c)
{
    int rc = c->tx_off < c->tx_len ? send_tx(c) : 1;
    if (rc <= 0)
        return rc;
    while (c->wbuf_off < c->wbuf_len) {
        size_t left = c->wbuf_len - c->wbuf_off;
        if (c->rec) {
            size_t taken = 0;
            size_t n = tls_rec_seal(c->rec, c->wbuf + c->wbuf_off, left, c->w->tls_out, TLS_OUT_CAP,
                                    &taken);
            if (n == 0)
                return -1;
            c->wbuf_off += taken;
            if ((rc = send_raw(c, c->w->tls_out, n)) <= 0)
                return rc;
            continue;
        }
        if (c->ssl) {
            ERR_clear_error();
            int n = SSL_write(c->ssl, c->wbuf + c->wbuf_off,
                              (int)(left > SSL_WRITE_STEP ? SSL_WRITE_STEP : left));
            if (n <= 0)
                return -1; /* a memory BIO takes everything: this is a real failure */
            c->wbuf_off += (size_t)n;
            if ((rc = ssl_drain(c)) <= 0)
                return rc;
            continue;
        }
        return send_from(c->io.fd, c->wbuf, c->wbuf_len, &c->wbuf_off);
    }
    return 1;
}

/* Takes what other code queued in `out` as the next buffer to write (owner thread). */
static bool take_output(struct conn *c)
{
    WORKER_OWNS(c->w);
    free(c->wbuf);
    broker_lock();
    c->wbuf = c->out;
    c->wbuf_len = c->out_len;
    c->wbuf_off = 0;
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    broker_unlock();
    if (c->wbuf_len == 0) {
        free(c->wbuf);
        c->wbuf = NULL;
        return false;
    }
    return true;
}

static void resume_reading(struct loop *l, struct loop_timer *t);

/* Writes queued output. Returns 0 when all is written or the socket is full, -1 on error. */
static int flush(struct conn *c)
{
    for (;;) {
        if (!output_pending(c) && !take_output(c)) {
            if (c->out_paused) {
                /* all written: its input is read again, what was kept first */
                c->out_paused = false;
                loop_timer_start(c->w->loop, &c->resume, 0, resume_reading);
            }
            want(c, EPOLLIN);
            /* everything written: deliveries held back for this connection may come now (the
             * flag is read without the lock: the common case costs nothing) */
            if (!c->out_throttled || !handlers || !handlers->drained)
                return 0;
            broker_lock();
            bool was = atomic_exchange(&c->out_throttled, false);
            if (was && c->state != CONN_CLOSED)
                handlers->drained(c);
            broker_unlock();
            run_teardowns(c->w);
            if (c->state == CONN_CLOSED)
                return 0;
            continue;
        }
        int rc = write_some(c);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            want(c, EPOLLIN | EPOLLOUT);
            return 0;
        }
    }
}

void conn_touch(struct conn *c)
{
    c->last_rx_ms = loop_now_ms(c->w->loop);
    c->rx_us = loop_now_us(c->w->loop); /* the wake-up that read it: no clock call per packet */
}

/* Unwritten output past which a connection's input is not read (out_paused). Deliveries alone
 * never get there: they wait once `out` holds CONN_OUT_MAX, so `out` and the buffer being written
 * hold at most twice that plus a message each. Only answers (PINGRESP, PUBACK...) to a client
 * that keeps asking and never reads them do: without this one such client grew the gateway by
 * 283 MB in 15 s of PINGREQs. */
static size_t unread_output_max(const struct conn *c)
{
    return 2 * (CONN_OUT_MAX + (size_t)c->gw->cfg.max_packet_size);
}

/* Handles every complete packet in buf[0..len) (broker lock held); returns bytes consumed. */
static size_t handle_buffer(struct conn *c, const uint8_t *buf, size_t len)
{
    BROKER_LOCK_HELD();
    size_t off = 0;
    while (off < len && c->state != CONN_CLOSED) {
        uint8_t first;
        uint32_t rem;
        size_t hlen;
        int rc = mqtt_fixed_header(buf + off, len - off, &first, &rem, &hlen);
        if (rc == MQTT_ERR_INCOMPLETE)
            break;
        if (rc != MQTT_OK) {
            handlers->unframed(c, CONN_END(MQTT_RC_MALFORMED, "bad remaining length"));
            break;
        }
        if ((uint64_t)rem + hlen > c->gw->cfg.max_packet_size) {
            static _Thread_local char detail[96];
            snprintf(detail, sizeof(detail),
                     "packet exceeds Maximum Packet Size: size=%llu max=%u",
                     (unsigned long long)rem + hlen, c->gw->cfg.max_packet_size);
            handlers->unframed(c, CONN_END(MQTT_RC_PACKET_TOO_LARGE, detail));
            break;
        }
        if (len - off < hlen + rem)
            break;
        if (c->out_len + (c->wbuf_len - c->wbuf_off) >= unread_output_max(c)) {
            /* the client does not read what we answer: stop reading what it asks */
            if (!c->out_paused)
                c->gw->metrics.output_backpressure++;
            c->out_paused = true;
            break;
        }
        if (c->spool_waiting >= c->gw->cfg.receive_maximum) {
            /* back-pressure: the spool has not made the earlier messages durable yet */
            if (!c->read_paused)
                c->gw->metrics.spool_backpressure++;
            c->read_paused = true;
            break;
        }
        conn_touch(c);
        handlers->packet(c, buf + off, hlen + rem);
        off += hlen + rem;
    }
    return off;
}

static size_t handle_locked(struct conn *c, const uint8_t *buf, size_t len)
{
    broker_lock();
    size_t used = handle_buffer(c, buf, len);
    broker_unlock();
    run_teardowns(c->w); /* c is closed but not freed: the caller may still look at it */
    return used;
}

static int keep_tail(struct conn *c, const uint8_t *data, size_t len)
{
    if (grow(&c->in, &c->in_cap, c->in_len, len, 1024) != 0)
        return -1;
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    return 0;
}

/* Keeps raw[0..n), a record still arriving, for the next read. */
static int keep_rx(struct conn *c, const uint8_t *raw, size_t n)
{
    if (n == 0)
        return 0;
    if (!(c->rx = malloc(n)))
        return -1;
    memcpy(c->rx, raw, n);
    c->rx_len = n;
    return 0;
}

/* Our record layer: opens the complete records kept from before (what came behind the
 * handshake, or a record that was still arriving) and what the socket has, and keeps a partial
 * one. The plaintext is put at *data (the worker's tls_in). Returns as read_some. */
#define READ_RECORDS_BUDGET 4 /* socket reads per wake-up that brought no data */

static ssize_t read_records(struct conn *c, uint8_t **data)
{
    uint8_t *buf = c->w->tls_in;
    size_t have = c->rx_len;
    if (c->peer_closed)
        return -1;
    if (have) {
        memcpy(buf, c->rx, have);
        free(c->rx);
        c->rx = NULL;
        c->rx_len = 0;
    }
    for (int reads = 0;; reads++) {
        if (have >= TLS_REC_HEADER) {
            size_t used = 0, plain = 0;
            uint8_t alert = 0;
            int rc = tls_rec_open(c->rec, buf, have, &used, &plain, &alert);
            if (rc == TLS_REC_ERROR) {
                char id[LOG_SAFE_MAX];
                c->gw->metrics.tls_record_errors++;
                /* once per 10 s per reason: a client can make these as fast as it connects */
                static struct log_limit limits[16];
                LOG_LIMITED(log_limit_for(limits, 16, tls_rec_alert_name(alert)), LOG_WARN,
                            "tls_record_error", "peer=%s id=%s reason=%s", c->peer,
                            c->who.id[0] ? log_safe(c->who.id, strlen(c->who.id), id, sizeof(id))
                                         : "-",
                            tls_rec_alert_name(alert));
                send_alert(c, alert);
                return -1;
            }
            uint8_t warning = tls_rec_take_warning(c->rec);
            if (warning) { /* a refused renegotiation: the connection goes on */
                uint8_t rec[TLS_REC_OVERHEAD + 2];
                size_t n = tls_rec_warning(c->rec, warning, rec, sizeof(rec));
                if (n && send_raw(c, rec, n) < 0)
                    return -1;
            }
            if (rc == TLS_REC_CLOSED)
                c->peer_closed = true;
            if (plain > 0) {
                if (!c->peer_closed && keep_rx(c, buf + used, have - used) != 0)
                    return -1;
                *data = buf;
                return (ssize_t)plain;
            }
            if (c->peer_closed)
                return -1;
            /* only part of a record (or a KeyUpdate, an ignored alert): read on */
            memmove(buf, buf + used, have - used);
            have -= used;
        }
        /* records without data kept coming (tls_record.h caps them in a row too): other
         * connections get the loop now; epoll reports the rest again */
        if (reads == READ_RECORDS_BUDGET)
            return keep_rx(c, buf, have) == 0 ? 0 : -1;
        ssize_t n = recv(c->io.fd, buf + have, TLS_IN_CAP - have, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return keep_rx(c, buf, have) == 0 ? 0 : -1;
        if (n <= 0)
            return -1; /* closed without close_notify, or failed */
        have += (size_t)n;
    }
}

/* OpenSSL's record layer over the memory BIOs (CBC and NULL suites, or a listener
 * with record_layer = "openssl"). */
static ssize_t read_ssl(struct conn *c, uint8_t **data)
{
    uint8_t *buf = c->w->scratch;
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf, READ_CHUNK);
        int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
        if (ssl_drain(c) < 0) /* TLS 1.3 tickets and key updates, close_notify replies */
            return -1;
        if (n > 0) {
            *data = buf;
            return n;
        }
        if (e != SSL_ERROR_WANT_READ)
            return -1;
        ssize_t k = recv(c->io.fd, c->w->tls_in, TLS_IN_CAP, 0);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        if (k <= 0 || BIO_write(SSL_get_rbio(c->ssl), c->w->tls_in, (int)k) != (int)k)
            return -1;
    }
}

/* Reads what is there. Returns >0 bytes at *data, 0 when nothing more now, -1 closed or
 * failed. */
static ssize_t read_some(struct conn *c, uint8_t **data)
{
    if (c->rec)
        return read_records(c, data);
    if (c->ssl)
        return read_ssl(c, data);
    *data = c->w->scratch;
    ssize_t n = recv(c->io.fd, *data, READ_CHUNK, 0);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return -1;
}

static void on_readable(struct conn *c);

static void resume_reading(struct loop *l, struct loop_timer *t)
{
    (void)l;
    on_readable(container_of(t, struct conn, resume));
}

/*
 * Reads and handles up to READ_ROUNDS chunks (16 KiB each), then lets other connections have
 * the loop. One: with 16, ten clients flooding QoS 0 held each loop turn so long that another
 * device's connect took 1.9-2.4 s (make abuse, slow_consumer); with 1, 0.23 s, and QoS 0 and
 * QoS 1 CPU per message did not move beyond the run-to-run noise (bench/run.sh). With
 * TLS read-ahead, OpenSSL may hold records it already took from the socket: epoll will not
 * report those, so a connection stopped by the cap with data left inside SSL is resumed by a
 * zero-delay timer instead.
 */
#define READ_ROUNDS 1

/* Handles what is kept in c->in (after a pause, before reading more). */
static void handle_kept(struct conn *c)
{
    size_t used = handle_locked(c, c->in, c->in_len);
    if (c->state == CONN_CLOSED)
        return;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (c->in_len == 0) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

static void on_readable(struct conn *c)
{
    if (c->read_paused || c->out_paused)
        return;
    if (c->in_len > 0) {
        handle_kept(c);
        if (c->state == CONN_CLOSED || c->read_paused || c->out_paused) {
            want(c, output_pending(c) ? EPOLLOUT : 0);
            return;
        }
    }
    for (int rounds = 0; c->state != CONN_CLOSED; rounds++) {
        if (c->read_paused || c->out_paused) {
            want(c, output_pending(c) ? EPOLLOUT : 0);
            return;
        }
        if (rounds == READ_ROUNDS) {
            if (c->ssl && (SSL_has_pending(c->ssl) || BIO_ctrl_pending(SSL_get_rbio(c->ssl))))
                loop_timer_start(c->w->loop, &c->resume, 0, resume_reading);
            return;
        }
        uint8_t *scratch;
        ssize_t n = read_some(c, &scratch);
        if (n == 0)
            return;
        if (n < 0) {
            conn_close(c, -1, NULL);
            return;
        }
        if (c->in_len == 0) {
            size_t used = handle_locked(c, scratch, (size_t)n);
            if (c->state != CONN_CLOSED && used < (size_t)n &&
                keep_tail(c, scratch + used, (size_t)n - used) != 0)
                conn_close(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
        } else {
            if (keep_tail(c, scratch, (size_t)n) != 0) {
                conn_close(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
                return;
            }
            handle_kept(c);
        }
    }
}

static const char *tls_failure_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "connection_closed";
}

/* The largest record payload we send: the listener's limit and the device's
 * max_fragment_length (RFC 6066: 1..4 = 2^9..2^12). */
static size_t max_send_plain(const struct conn *c)
{
    size_t max = c->listener->max_record_size;
    uint8_t mfl = SSL_SESSION_get_max_fragment_length(SSL_get_session(c->ssl));
    if (mfl >= TLSEXT_max_fragment_length_512 && mfl <= TLSEXT_max_fragment_length_4096 &&
        (size_t)256 << mfl < max)
        max = (size_t)256 << mfl;
    return max;
}

/* After a TLS 1.2 AEAD handshake our record layer takes over and the SSL is freed. */
static void take_over_records(struct conn *c)
{
    char *unread = NULL;
    long unread_len = BIO_get_mem_data(SSL_get_rbio(c->ssl), &unread);
    const char *why = "listener_record_layer_openssl";
    struct tls_rec *rec = NULL;
    if (c->listener->own_record_layer && unread_len >= 0 &&
        tls_rec_take(c->ssl, &c->hs->rec, (const uint8_t *)unread, (size_t)unread_len,
                     max_send_plain(c), &rec, &why) == TLS_REC_OK &&
        keep_rx(c, (const uint8_t *)unread, (size_t)unread_len) == 0) {
        ssl_done(c->w, c->ssl);
        c->ssl = NULL;
        c->rec = rec;
        c->gw->metrics.tls_record_layer_own++;
    } else {
        tls_rec_free(rec);
        log_event(LOG_DEBUG, "tls_record_layer", "peer=%s layer=openssl reason=%s", c->peer, why);
    }
    handshake_free(c);
}

/* OpenSSL reads the handshake as it comes; more than this waiting unread is not a handshake */
#define HANDSHAKE_UNREAD_MAX (4 * TLS_IN_CAP)

/* One read of what arrived into the worker's tls_in: its length, 0 when nothing is there yet,
 * -1 when the connection ended. One read per call: epoll is level-triggered and brings the
 * rest after this is handled. */
static ssize_t handshake_read(struct conn *c)
{
    ssize_t n = recv(c->io.fd, c->w->tls_in, TLS_IN_CAP, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return n > 0 ? n : -1;
}

/* Gives OpenSSL's read BIO (and the handshake's stream) p[0..n). Returns NULL, or why the
 * handshake cannot go on. */
static const char *openssl_input(struct conn *c, const uint8_t *p, size_t n)
{
    BIO *rb = SSL_get_rbio(c->ssl);
    if (BIO_ctrl_pending(rb) > HANDSHAKE_UNREAD_MAX)
        return "handshake_input_too_large";
    if (BIO_write(rb, p, (int)n) != (int)n)
        return "connection_closed";
    tls_rec_wire_feed(&c->hs->rec.in, p, n);
    return NULL;
}

/* A handshake that failed: counted, logged (once per 10 s per reason: a flood of bad handshakes
 * must not become a flood of log) and closed. */
static void handshake_failed(struct conn *c, const char *why)
{
    char words[96], reason[128], id[LOG_SAFE_MAX];
    snprintf(words, sizeof(words), "%s", why);
    for (char *sp = words; *sp; sp++)
        if (*sp == ' ')
            *sp = '_'; /* OpenSSL's "binder does not verify" -> one log token */
    log_safe(words, strlen(words), reason, sizeof(reason));
    c->gw->metrics.tls_handshakes_failed++;
    static struct log_limit limits[32];
    LOG_LIMITED(log_limit_for(limits, 32, reason), LOG_WARN, "tls_handshake_failed",
                "peer=%s identity=%s reason=%s", c->peer,
                c->have_identity ? log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)) : "-",
                reason);
    conn_close(c, -1, NULL);
}

/* A handshake that succeeded, with the record layer in place (or OpenSSL's kept): the MQTT
 * CONNECT is next. */
static void handshake_done(struct conn *c, bool ours)
{
    char id[LOG_SAFE_MAX];
    c->gw->metrics.tls_handshakes_ok++;
    if (c->resumed)
        c->gw->metrics.tls_resumed++;
    log_event(LOG_DEBUG, "tls_handshake",
              "peer=%s identity=%s version=%s cipher=%s resumed=%d handshake=%s record_layer=%s",
              c->peer, log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)), c->tls_version,
              c->tls_cipher, c->resumed, ours ? "psagw" : "openssl", c->rec ? "psagw" : "openssl");
    c->state = CONN_WAIT_CONNECT;
    want(c, output_pending(c) ? EPOLLIN | EPOLLOUT : EPOLLIN);
    /* the CONNECT may have come with the client's Finished (an abbreviated handshake: the
     * client's Finished is the last message). After our own full handshake the client waits
     * for our Finished, which just left: a read now would only say EAGAIN, unless records came
     * behind its Finished all the same */
    if (!ours || c->rx_len > 0)
        on_readable(c);
}

/* The PSK of an identity, for our own handshake (tls12_psk.h) */
static size_t own_find_psk(void *arg, const uint8_t *identity, size_t len, uint8_t *psk, size_t max)
{
    return tls_psk_for_identity(arg, identity, len, true, psk, max);
}

/* Our answer in our own handshake: 0, or -1 if the connection is gone. */
static int own_send(struct conn *c, const uint8_t *out, size_t n)
{
    return n == 0 || send_raw(c, out, n) >= 0 ? 0 : -1;
}

/* Ends our own handshake once tls12_psk_input said DONE or FAILED, with used bytes of tls_in[0..n)
 * taken by it. */
static void own_finish(struct conn *c, int rc, size_t used, size_t n)
{
    struct tls12_psk *own = c->hs->own;
    if (rc == TLS12_PSK_FAILED) {
        handshake_failed(c, c->psk_refusal ? c->psk_refusal : tls12_psk_why(own));
        return;
    }
    handshake_over(c);
    c->rec = tls12_psk_take_record(own);
    c->tls_version = "TLSv1.2";
    c->tls_cipher = tls12_psk_suite_name(own);
    c->gw->metrics.tls_handshakes_own++;
    c->gw->metrics.tls_record_layer_own++;
    handshake_free(c);
    /* records behind the client's Finished are the record layer's */
    if (keep_rx(c, c->w->tls_in + used, n - used) != 0) {
        handshake_failed(c, "out_of_memory");
        return;
    }
    handshake_done(c, true);
}

/* Our own TLS 1.2 handshake, after the ClientHello: the client's next bytes. */
static void own_handshake(struct conn *c)
{
    ssize_t n = c->tx_off < c->tx_len && send_tx(c) < 0 ? -1 : handshake_read(c);
    if (n < 0) {
        handshake_failed(c, "connection_closed");
        return;
    }
    uint8_t out[TLS12_PSK_OUT_MAX];
    size_t used = 0, out_len = 0;
    int rc = n == 0 ? TLS12_PSK_MORE
                    : tls12_psk_input(c->hs->own, own_find_psk, c, c->w->tls_in, (size_t)n, &used,
                                      out, sizeof(out), &out_len);
    if (own_send(c, out, out_len) != 0 && rc != TLS12_PSK_FAILED) {
        handshake_failed(c, "connection_closed");
        return;
    }
    if (rc == TLS12_PSK_MORE)
        want(c, output_pending(c) ? EPOLLIN | EPOLLOUT : EPOLLIN);
    else
        own_finish(c, rc, used, (size_t)n);
}

/* The most of a client's first record gathered while it arrives in pieces (a ClientHello is a
 * few hundred bytes; a larger first record goes to OpenSSL as it comes) */
#define HELLO_GATHER_MAX 2048

/* Whether p[0..n) is the start of a handshake record of at most HELLO_GATHER_MAX bytes that is
 * not all there yet: a device on a slow link may send its ClientHello in pieces */
static bool hello_incomplete(const uint8_t *p, size_t n)
{
    if (n == 0 || p[0] != TLS_REC_HANDSHAKE || (n >= 2 && p[1] != 3))
        return false;
    if (n < TLS_REC_HEADER)
        return true;
    size_t whole = TLS_REC_HEADER + ((size_t)p[3] << 8 | p[4]);
    return whole <= HELLO_GATHER_MAX && n < whole;
}

/* The client's first bytes, tls_in[0..n) (after any gathered in c->hs->hello): our own TLS 1.2
 * handshake takes the ones it can run (tls12_psk.h); the others go to OpenSSL. Returns NULL, or
 * why the handshake cannot go on. */
static const char *first_input(struct conn *c, size_t n)
{
    struct conn_handshake *hs = c->hs;
    const struct tls12_psk_config *own = tls_own_handshake(hs->ctx);
    const uint8_t *in = c->w->tls_in;
    size_t len = n;
    int rc = TLS12_PSK_DECLINED;
    uint8_t out[TLS12_PSK_OUT_MAX];
    size_t out_len = 0;
    if (own && (hs->hello_len || hello_incomplete(in, n))) {
        if (hs->hello_len + n > HELLO_GATHER_MAX)
            goto openssl; /* more than a hello: not ours */
        if (!hs->hello && !(hs->hello = malloc(HELLO_GATHER_MAX)))
            return "out_of_memory";
        memcpy(hs->hello + hs->hello_len, in, n);
        hs->hello_len += n;
        if (hello_incomplete(hs->hello, hs->hello_len)) {
            want(c, EPOLLIN);
            return NULL;
        }
        in = hs->hello;
        len = hs->hello_len;
        n = 0; /* all of tls_in is in hello now */
    }
    if (own)
        rc = tls12_psk_hello(own, in, len, &hs->own, out, sizeof(out), &out_len);
    if (rc == TLS12_PSK_FAILED)
        return "out_of_memory";
    if (rc == TLS12_PSK_MORE) {
        free(hs->hello);
        hs->hello = NULL;
        hs->hello_len = 0;
        if (own_send(c, out, out_len) != 0)
            return "connection_closed";
        want(c, output_pending(c) ? EPOLLIN | EPOLLOUT : EPOLLIN);
        return NULL;
    }
openssl:
    if (!(c->ssl = ssl_for(c->w, hs->ctx)))
        return "out_of_memory";
    SSL_set_ex_data(c->ssl, tls_conn_index(), c);
    /* what was gathered, then what this read brought (if not in it already) */
    const char *why = hs->hello_len ? openssl_input(c, hs->hello, hs->hello_len) : NULL;
    if (!why && n)
        why = openssl_input(c, c->w->tls_in, n);
    free(hs->hello);
    hs->hello = NULL;
    hs->hello_len = 0;
    return why;
}

/* OpenSSL's handshake, with what arrived given to it (input_ended: the input cannot go on). */
static void openssl_handshake(struct conn *c, const char *input_ended)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    int e = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, rc);
    int sent = ssl_drain(c); /* our next flight, or the alert of a failure */
    if (rc != 1 || sent < 0) {
        if (e == SSL_ERROR_WANT_READ && !input_ended && sent >= 0) {
            want(c, sent == 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
            return;
        }
        /* after a refused PSK, TLS 1.3 falls back to certificates and fails on that; the
         * refusal is the real reason */
        handshake_failed(c, c->psk_refusal ? c->psk_refusal
                            : input_ended  ? input_ended
                            : sent < 0     ? "connection_closed"
                                           : tls_failure_reason());
        return;
    }
    if (!c->have_identity) {
        c->gw->metrics.tls_handshakes_failed++;
        log_event(LOG_WARN, "tls_handshake_failed", "peer=%s reason=no_psk_identity", c->peer);
        conn_close(c, -1, NULL);
        return;
    }
    /* SSL_session_reused() is also true for a TLS 1.3 external PSK: the ticket callback set
     * c->resumed */
    handshake_over(c);
    c->tls_version = SSL_get_version(c->ssl);
    c->tls_cipher = SSL_get_cipher_name(c->ssl);
    take_over_records(c);
    handshake_done(c, false);
}

static void on_handshake(struct conn *c)
{
    if (c->hs->own) {
        own_handshake(c);
        return;
    }
    ssize_t n = handshake_read(c);
    const char *input_ended = n < 0 ? "connection_closed" : NULL;
    if (!c->ssl) { /* the client's first bytes (or more of a hello being gathered) */
        if (n > 0)
            input_ended = first_input(c, (size_t)n);
        if (!c->ssl) { /* ours, still gathering, or ended before OpenSSL had any of it */
            if (input_ended)
                handshake_failed(c, input_ended);
            return;
        }
    } else if (n > 0) {
        input_ended = openssl_input(c, c->w->tls_in, (size_t)n);
    }
    openssl_handshake(c, input_ended);
}

static void conn_io(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)l;
    struct conn *c = container_of(io, struct conn, io);
    if (c->state == CONN_CLOSED)
        return;
    if (c->state == CONN_TLS_HANDSHAKE) {
        on_handshake(c);
        return;
    }
    if ((events & EPOLLOUT) && flush(c) != 0) {
        conn_close(c, -1, NULL);
        return;
    }
    if ((c->read_paused || c->out_paused) && (events & (EPOLLERR | EPOLLHUP))) {
        conn_close(c, -1, NULL); /* gone while we were not reading */
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(c);
}

/* The part of a close that needs the broker lock: the layer above says goodbye and lets go,
 * the state no worker queues anything for, the log line. */
static void close_locked(struct conn *c, int reason, const char *detail)
{
    BROKER_LOCK_HELD();
    char id[LOG_SAFE_MAX];
    const char *who = c->who.id[0] ? log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)) : "-";
    bool was_connected = c->state == CONN_CONNECTED;
    if (handlers && handlers->closing)
        handlers->closing(c, reason, detail);
    c->state = CONN_CLOSED; /* from here on no worker queues anything for it */
    if (reason >= 0)
        log_event(reason >= 0x80 ? LOG_WARN : LOG_INFO, "disconnect",
                  "peer=%s id=%s reason=%s reason_code=0x%02x%s%s%s", c->peer, who,
                  mqtt_reason_name((uint8_t)reason), (unsigned)reason, detail ? " detail=\"" : "",
                  detail ? detail : "", detail ? "\"" : "");
    else if (was_connected)
        log_event(LOG_INFO, "disconnect", "peer=%s id=%s reason=connection_lost", c->peer, who);
}

/* The rest of a close, without the lock (owner thread): what is buffered goes out, the TLS
 * close, the socket and timers go, and the connection waits on the dead list to be freed. */
static void teardown(struct conn *c)
{
    BROKER_LOCK_NOT_HELD();
    struct worker *w = c->w;
    WORKER_OWNS(w);
    /* best effort: what is buffered (a CONNACK or DISCONNECT with the reason) goes out now;
     * after a fatal alert, either way, nothing may follow it, not even close_notify */
    bool failed = c->rec && tls_rec_failed(c->rec);
    if (failed && c->tx_off < c->tx_len)
        send_tx(c); /* records sealed before the failure, then the fatal alert itself */
    else if (!failed && (output_pending(c) || take_output(c)))
        while (write_some(c) > 0 && take_output(c))
            ;
    if (c->rec) {
        if (!failed)
            send_alert(c, TLS_ALERT_CLOSE_NOTIFY);
    } else if (c->ssl && SSL_is_init_finished(c->ssl)) {
        SSL_shutdown(c->ssl);
        ssl_drain(c);
    }
    handshake_over(c);
    loop_io_close(w->loop, &c->io);
    loop_timer_cancel(w->loop, &c->timer);
    loop_timer_cancel(w->loop, &c->resume);
    loop_timer_cancel(w->loop, &c->att_timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->gw->n_conns--;
    c->next_dead = w->dead_list;
    w->dead_list = c;
}

/* Tears down what was closed while the broker lock was held (owner thread, lock released). */
static void run_teardowns(struct worker *w)
{
    while (w->closing_list) {
        struct conn *c = w->closing_list;
        w->closing_list = c->next_dead;
        c->teardown_pending = false;
        teardown(c);
    }
}

void conn_close(struct conn *c, int reason, const char *detail)
{
    WORKER_OWNS(c->w);
    if (c->state == CONN_CLOSED) {
        if (c->teardown_pending && !broker_lock_held())
            run_teardowns(c->w);
        return;
    }
    if (broker_lock_held()) {
        close_locked(c, reason, detail);
        c->teardown_pending = true;
        c->next_dead = c->w->closing_list;
        c->w->closing_list = c;
        return;
    }
    broker_lock();
    close_locked(c, reason, detail);
    broker_unlock();
    teardown(c);
}

void conn_close_remote(struct conn *c, int reason)
{
    BROKER_LOCK_HELD();
    if (c->state == CONN_CLOSED)
        return;
    if (worker_current() == c->w) {
        conn_close(c, reason, NULL);
        return;
    }
    c->kill_reason = reason;
    remote_request(c);
}

void conn_resume_remote(struct conn *c)
{
    BROKER_LOCK_HELD();
    if (c->state == CONN_CLOSED || c->resume_requested)
        return;
    c->resume_requested = true;
    remote_request(c);
}

static const char *kill_reason_string(int reason)
{
    switch (reason) {
    case MQTT_RC_SESSION_TAKEN_OVER:
        return "another connection took over the session";
    case MQTT_RC_IMPL_SPECIFIC:
        return "out of memory";
    default:
        return NULL;
    }
}

static void free_dead(struct worker *w)
{
    if (!w->dead_list)
        return;
    /* a remote list entry may still name a conn closed since the list was last taken */
    broker_lock();
    for (struct conn **pp = &w->remote_list; *pp;) {
        if ((*pp)->state == CONN_CLOSED)
            *pp = (*pp)->next_remote;
        else
            pp = &(*pp)->next_remote;
    }
    broker_unlock();
    while (w->dead_list) {
        struct conn *c = w->dead_list;
        w->dead_list = c->next_dead;
        SSL_free(c->ssl);
        tls_rec_free(c->rec);
        handshake_free(c);
        free(c->rx);
        free(c->tx);
        if (handlers && handlers->release)
            handlers->release(c);
        if (c->aliases) {
            for (uint32_t i = 0; i <= c->alias_max; i++)
                free(c->aliases[i]);
            free(c->aliases);
        }
        topic_alias_free(c->aliases_out);
        free(c->in);
        free(c->out);
        free(c->wbuf);
        free(c);
    }
}

void conn_worker_housekeeping(struct worker *w)
{
    broker_lock();
    struct conn *remote = w->remote_list;
    w->remote_list = NULL;
    w->wake_sent = false;
    while (remote) {
        struct conn *c = remote;
        remote = c->next_remote;
        c->remote_pending = false;
        if (c->state == CONN_CLOSED)
            continue;
        if (c->kill_reason >= 0) {
            conn_close(c, c->kill_reason, kill_reason_string(c->kill_reason));
            continue;
        }
        if (c->resume_requested) {
            c->resume_requested = false;
            c->read_paused = false;
            want(c, EPOLLIN);
            loop_timer_start(w->loop, &c->resume, 0, resume_reading);
        }
        schedule_flush(c);
    }
    broker_unlock();
    run_teardowns(w);
    while (w->flush_list) {
        struct conn *c = w->flush_list;
        w->flush_list = c->next_flush;
        c->flush_pending = false;
        if (c->state != CONN_CLOSED && flush(c) != 0)
            conn_close(c, -1, NULL);
    }
    free_dead(w);
}
