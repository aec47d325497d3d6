/*
 * loadgen: drives TLS-PSK MQTT 3.1.1 connections against a broker, for bench/run.sh.
 *
 *   loadgen connect HOST PORT PSKHEX PREFIX N
 *       N times in a row: TCP + TLS-PSK handshake + CONNECT/CONNACK + DISCONNECT + close,
 *       identities PREFIX00000.. in turn.
 *   loadgen idle HOST PORT PSKHEX PREFIX N
 *       opens N connections (identities PREFIX00000..), prints "ready N" and holds them until
 *       standard input closes.
 *   loadgen storm HOST PORT PSKHEX PREFIX N THREADS
 *       N devices connect at once from THREADS threads (identities PREFIX00000..); prints the
 *       wall time until all are connected (CONNACK received), then closes them.
 *   loadgen pubsub HOST PORT PSKHEX PREFIX SUBID PUBLISHERS MESSAGES QOS
 *       one subscriber SUBID on sensors/#, PUBLISHERS publishers (PREFIX00000..) each sending
 *       MESSAGES 64-byte messages to sensors/<id>/bench at QOS 0, 1 or 2 (QoS 1 and 2 with a
 *       window of 32 unacknowledged exchanges, or LOADGEN_WINDOW; 1 is stop-and-wait: each
 *       publisher waits for its PUBACK before the next message, as small devices do); prints
 *       messages received and the wall time.
 *       With LOADGEN_SHARED=N, N subscribers SUBID0..SUBID<N-1> share $share/bench/sensors/#
 *       instead (and each one's count is printed).
 *
 *   loadgen seqpub HOST PORT PSKHEX ID COUNT INTERVAL_MS
 *       one device ID publishing COUNT QoS 1 messages "ID:SEQ" (SEQ 1..COUNT) to sensors/ID/seq,
 *       one at a time, INTERVAL_MS apart; prints "acked SEQ" when the PUBACK arrives. A lost
 *       connection is retried (for up to 60 s) and the unacknowledged message sent again with
 *       DUP, as a device does. For the durability tests: every acked SEQ must reach the cloud.
 *       LOADGEN_PAD=N pads each payload to N bytes ("ID:SEQ:ppp...").
 *   loadgen ackbench HOST PORT PSKHEX PREFIX PUBLISHERS MESSAGES WINDOW
 *       PUBLISHERS devices each send MESSAGES 64-byte QoS 1 messages to sensors/<id>/bench with
 *       up to WINDOW unacknowledged; prints messages/s and PUBACK latency p50/p99/max.
 *       With LOADGEN_RATE=R each device instead sends R messages a second on a fixed schedule
 *       (open loop: not held back by PUBACKs, WINDOW ignored) and the latency counts from each
 *       message's scheduled time, so a client that falls behind does not hide the delay. The
 *       open loop runs every device on one thread (non-blocking sockets, ppoll until the next
 *       message is due or a PUBACK arrives): a thread per device woke 20 times as often and
 *       took a third of two cores at 60,000 messages/s, CPU the servers under test then lacked.
 *
 * With LOADGEN_TLS13=1 the clients use TLS 1.3 with the external PSK (TLS_AES_128_GCM_SHA256).
 *
 * With LOADGEN_IAK=HEX in the environment every client connects with MQTT 5 and attests:
 * CONNECT with the authentication method PSA-IAT, then it answers the gateway's challenge
 * with a token (TF-M layout, legacy profile) MACed with that IAK, as a device's SPE would.
 *
 * The TLS side matches docs/design/targets.md: TLS 1.2, PSK-AES128-CCM8:PSK-AES128-CCM:PSK-AES128-GCM-SHA256.
 * It prints figures only; the server's CPU and memory are read by the runner from /proc.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "psagw/iat.h"
#include "psagw/mqtt.h"

#define ID_LEN 64

struct client {
    SSL *ssl;
    int fd;
    char id[ID_LEN];
    uint8_t in[8192];
    size_t in_len;
};

static const char *host, *port;
static uint8_t psk[64];
static size_t psk_len;
static SSL_CTX *ctx;

static __thread const char *current_identity;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static unsigned int psk_cb(SSL *ssl, const char *hint, char *identity, unsigned int max_id,
                           unsigned char *out, unsigned int max_psk)
{
    (void)ssl;
    (void)hint;
    snprintf(identity, max_id, "%s", current_identity);
    if (psk_len > max_psk)
        return 0;
    memcpy(out, psk, psk_len);
    return (unsigned int)psk_len;
}

static int tcp_connect(void)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        die("getaddrinfo");
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        freeaddrinfo(ai);
        close(fd);
        return -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static void send_all(struct client *c, const uint8_t *b, size_t n)
{
    while (n > 0) {
        int w = SSL_write(c->ssl, b, (int)n);
        if (w <= 0)
            die("SSL_write");
        b += w;
        n -= (size_t)w;
    }
}

/* Reads one whole packet; returns its type, with pkt and len pointing at it in c->in. */
static int read_packet(struct client *c, const uint8_t **pkt, size_t *len)
{
    for (;;) {
        uint8_t first;
        uint32_t rem;
        size_t hlen;
        if (c->in_len > 0 && mqtt_fixed_header(c->in, c->in_len, &first, &rem, &hlen) == MQTT_OK &&
            c->in_len >= hlen + rem) {
            *pkt = c->in;
            *len = hlen + rem;
            return first >> 4;
        }
        if (c->in_len == sizeof(c->in))
            die("packet too large for the bench client");
        int r = SSL_read(c->ssl, c->in + c->in_len, (int)(sizeof(c->in) - c->in_len));
        if (r <= 0)
            return -1;
        c->in_len += (size_t)r;
    }
}

static void consume(struct client *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

static uint8_t iak[64];
static size_t iak_len; /* 0: no attestation */
static uint8_t iak_instance_id[IAT_INSTANCE_ID_SIZE];

/* The token a device's SPE would return for this nonce. */
static size_t make_token(const uint8_t *nonce, size_t nonce_len, uint8_t *out, size_t cap)
{
    static const uint8_t boot_seed[32] = {1}, impl[32] = {2}, meas[32] = {3}, signer[32] = {4};
    struct iat_claims cl = {0};
    cl.nonce = (struct iat_bytes){nonce, nonce_len};
    cl.boot_seed = (struct iat_bytes){boot_seed, sizeof(boot_seed)};
    cl.instance_id = (struct iat_bytes){iak_instance_id, sizeof(iak_instance_id)};
    cl.implementation_id = (struct iat_bytes){impl, sizeof(impl)};
    cl.client_id = -1;
    cl.lifecycle = IAT_LC_SECURED;
    cl.sw_count = 2;
    for (int i = 0; i < 2; i++) {
        cl.sw[i].type = (struct iat_bytes){(const uint8_t *)(i ? "NSPE" : "SPE"), i ? 4u : 3u};
        cl.sw[i].value = (struct iat_bytes){meas, sizeof(meas)};
        cl.sw[i].signer_id = (struct iat_bytes){signer, sizeof(signer)};
        cl.sw[i].present = 1u << IAT_SW_TYPE | 1u << IAT_SW_VALUE | 1u << IAT_SW_SIGNER_ID;
    }
    cl.profile_name = (struct iat_bytes){(const uint8_t *)IAT_PROFILE_STR_LEGACY,
                                         strlen(IAT_PROFILE_STR_LEGACY)};
    cl.present = 1u << IAT_CLAIM_NONCE | 1u << IAT_CLAIM_BOOT_SEED | 1u << IAT_CLAIM_INSTANCE_ID |
                 1u << IAT_CLAIM_IMPLEMENTATION_ID | 1u << IAT_CLAIM_CLIENT_ID |
                 1u << IAT_CLAIM_LIFECYCLE | 1u << IAT_CLAIM_SW_COMPONENTS |
                 1u << IAT_CLAIM_PROFILE;
    struct iat_key key = {.raw = iak, .raw_len = iak_len};
    size_t len = 0;
    if (iat_encode(&cl, IAT_PROFILE_LEGACY, IAT_ALG_HMAC256, &key, NULL, 0, NULL, 0, out, cap,
                   &len) != IAT_OK)
        die("cannot create a token");
    return len;
}

/* CONNECT with PSA-IAT, answer the challenge; returns the CONNACK reason or -1. */
static int attest_connect(struct client *c)
{
    struct mqtt_connect cn = {.version = MQTT_V5, .clean_start = true, .keep_alive = 600,
                              .client_id = {(const uint8_t *)c->id, strlen(c->id)}};
    mqtt_props_set(&cn.props, MQTT_PROP_AUTH_METHOD);
    cn.props.auth_method = (struct mqtt_bytes){(const uint8_t *)"PSA-IAT", 7};
    uint8_t buf[1024];
    size_t n;
    if (mqtt_encode_connect(buf, sizeof(buf), &cn, &n) != MQTT_OK)
        die("encode CONNECT");
    send_all(c, buf, n);
    for (;;) {
        const uint8_t *p;
        size_t len;
        int type = read_packet(c, &p, &len);
        struct mqtt_packet pk;
        if (type < 0 || mqtt_decode(p, len, MQTT_V5, &pk) != MQTT_OK)
            return -1;
        if (type == MQTT_CONNACK) {
            int reason = pk.u.connack.reason;
            consume(c, len);
            return reason;
        }
        if (type != MQTT_AUTH)
            return -1;
        uint8_t token[1024], nonce[64];
        size_t nlen = pk.u.reason.props.auth_data.len;
        if (nlen > sizeof(nonce))
            return -1;
        memcpy(nonce, pk.u.reason.props.auth_data.data, nlen);
        consume(c, len);
        struct mqtt_props props = {0};
        mqtt_props_set(&props, MQTT_PROP_AUTH_METHOD);
        props.auth_method = (struct mqtt_bytes){(const uint8_t *)"PSA-IAT", 7};
        mqtt_props_set(&props, MQTT_PROP_AUTH_DATA);
        props.auth_data = (struct mqtt_bytes){token, make_token(nonce, nlen, token, sizeof(token))};
        if (mqtt_encode_reason(buf, sizeof(buf), MQTT_V5, MQTT_AUTH, MQTT_RC_CONTINUE_AUTH,
                               &props, &n) != MQTT_OK)
            die("encode AUTH");
        send_all(c, buf, n);
    }
}

static int client_open(struct client *c, const char *id)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->fd = tcp_connect();
    if (c->fd < 0)
        return -1;
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    current_identity = c->id;
    if (SSL_connect(c->ssl) != 1)
        return -1;
    if (iak_len)
        return attest_connect(c) == 0 ? 0 : -1;
    struct mqtt_connect cn = {.version = MQTT_V311, .clean_start = true, .keep_alive = 600,
                              .client_id = {(const uint8_t *)c->id, strlen(c->id)}};
    uint8_t buf[256];
    size_t n;
    if (mqtt_encode_connect(buf, sizeof(buf), &cn, &n) != MQTT_OK)
        die("encode CONNECT");
    send_all(c, buf, n);
    const uint8_t *p;
    size_t len;
    if (read_packet(c, &p, &len) != MQTT_CONNACK || p[3] != 0)
        return -1;
    consume(c, len);
    return 0;
}

static void client_close(struct client *c)
{
    static const uint8_t disconnect[] = {0xe0, 0x00};
    if (c->ssl) {
        SSL_write(c->ssl, disconnect, sizeof(disconnect));
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
}

static void make_id(char *out, const char *prefix, long i)
{
    snprintf(out, ID_LEN, "%s%05ld", prefix, i);
}

static int run_connect(const char *prefix, long n)
{
    double t0 = now_s();
    long failed = 0;
    for (long i = 0; i < n; i++) {
        struct client c;
        char id[ID_LEN];
        make_id(id, prefix, i);
        if (client_open(&c, id) != 0)
            failed++;
        client_close(&c);
    }
    double dt = now_s() - t0;
    printf("connects=%ld failed=%ld wall_s=%.3f rate_per_s=%.0f\n", n, failed, dt,
           (double)n / dt);
    return failed ? 1 : 0;
}

static int run_idle(const char *prefix, long n)
{
    struct client *cs = calloc((size_t)n, sizeof(*cs));
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        char id[ID_LEN];
        make_id(id, prefix, i);
        if (client_open(&cs[i], id) != 0) {
            fprintf(stderr, "loadgen: connection %ld failed\n", i);
            return 1;
        }
        /* the TLS library's buffers are not the server's concern */
    }
    printf("ready %ld wall_s=%.3f\n", n, now_s() - t0);
    fflush(stdout);
    char b[16];
    while (read(0, b, sizeof(b)) > 0)
        ;
    for (long i = 0; i < n; i++)
        client_close(&cs[i]);
    free(cs);
    return 0;
}

struct storm_job {
    const char *prefix;
    long from, to;
    struct client *cs;
    long failed;
};

static void *storm_thread(void *arg)
{
    struct storm_job *j = arg;
    for (long i = j->from; i < j->to; i++) {
        char id[ID_LEN];
        make_id(id, j->prefix, i);
        if (client_open(&j->cs[i], id) != 0)
            j->failed++;
    }
    return NULL;
}

static int run_storm(const char *prefix, long n, int threads)
{
    struct client *cs = calloc((size_t)n, sizeof(*cs));
    pthread_t th[64];
    struct storm_job jobs[64];
    if (threads < 1 || threads > 64)
        threads = 8;
    double t0 = now_s();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct storm_job){prefix, n * t / threads, n * (t + 1) / threads, cs, 0};
        pthread_create(&th[t], NULL, storm_thread, &jobs[t]);
    }
    long failed = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        failed += jobs[t].failed;
    }
    double dt = now_s() - t0;
    printf("storm=%ld failed=%ld wall_s=%.3f rate_per_s=%.0f\n", n, failed, dt, (double)n / dt);
    fflush(stdout);
    for (long i = 0; i < n; i++)
        client_close(&cs[i]);
    free(cs);
    return failed ? 1 : 0;
}

struct pub_job {
    char id[ID_LEN];
    long messages;
    int qos;
};

/* Sends one acknowledgement packet (PUBACK, PUBREC, PUBREL, PUBCOMP). */
static void send_ack(struct client *c, uint8_t type, uint16_t packet_id)
{
    struct mqtt_ack a = {.packet_id = packet_id};
    uint8_t ack[8];
    size_t n;
    mqtt_encode_ack(ack, sizeof(ack), MQTT_V311, type, &a, &n);
    send_all(c, ack, n);
}

/* Reads acknowledgements until at most `keep` exchanges are outstanding: a PUBACK (QoS 1) or
 * PUBCOMP (QoS 2) ends one; a PUBREC is answered with its PUBREL. */
static void await_acks(struct client *c, long *outstanding, long keep)
{
    while (*outstanding > keep) {
        const uint8_t *pk;
        size_t len;
        int type = read_packet(c, &pk, &len);
        if (type == MQTT_PUBREC)
            send_ack(c, MQTT_PUBREL, (uint16_t)(pk[2] << 8 | pk[3]));
        else if (type == MQTT_PUBACK || type == MQTT_PUBCOMP)
            (*outstanding)--;
        else
            die("publisher expected PUBACK, PUBREC or PUBCOMP");
        consume(c, len);
    }
}

static long pub_window = 32; /* LOADGEN_WINDOW */

static void *publisher(void *arg)
{
    struct pub_job *j = arg;
    struct client c;
    if (client_open(&c, j->id) != 0)
        die("publisher connect");
    char topic[128];
    snprintf(topic, sizeof(topic), "sensors/%s/bench", j->id);
    uint8_t payload[64];
    memset(payload, 'x', sizeof(payload));
    uint8_t buf[256];
    long outstanding = 0;
    uint16_t pid = 0;
    for (long i = 0; i < j->messages; i++) {
        struct mqtt_publish p = {.qos = (uint8_t)j->qos,
                                 .topic = {(const uint8_t *)topic, strlen(topic)},
                                 .payload = {payload, sizeof(payload)}};
        if (j->qos) {
            if (++pid == 0)
                pid = 1;
            p.packet_id = pid;
        }
        size_t n;
        mqtt_encode_publish(buf, sizeof(buf), MQTT_V311, &p, &n);
        send_all(&c, buf, n);
        if (j->qos && ++outstanding >= pub_window)
            await_acks(&c, &outstanding, pub_window - 1);
    }
    await_acks(&c, &outstanding, 0);
    client_close(&c);
    return NULL;
}

/* One subscriber: acknowledges what it gets (PUBACK; PUBREC then PUBCOMP for QoS 2) and counts
 * it into *total until that reaches want or its socket is shut down. */
struct sub_job {
    struct client c;
    _Atomic long *total;
    long want;
    long got;
    _Atomic bool done;
};

static void *subscriber(void *arg)
{
    struct sub_job *j = arg;
    const uint8_t *pk;
    size_t len;
    while (atomic_load(j->total) < j->want) {
        int type = read_packet(&j->c, &pk, &len);
        if (type < 0)
            break;
        if (type == MQTT_PUBLISH) {
            j->got++;
            atomic_fetch_add(j->total, 1);
            struct mqtt_packet p;
            if (mqtt_decode(pk, len, MQTT_V311, &p) == MQTT_OK && p.u.publish.qos > 0)
                send_ack(&j->c, p.u.publish.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC,
                         p.u.publish.packet_id);
        } else if (type == MQTT_PUBREL) {
            send_ack(&j->c, MQTT_PUBCOMP, (uint16_t)(pk[2] << 8 | pk[3]));
        }
        consume(&j->c, len);
    }
    atomic_store(&j->done, true);
    return NULL;
}

/* LOADGEN_SHARED=N: N subscribers SUBID0.. in one shared subscription group instead of one. */
static int run_pubsub(const char *prefix, const char *sub_id, int pubs, long messages, int qos)
{
    const char *shared = getenv("LOADGEN_SHARED");
    const char *w = getenv("LOADGEN_WINDOW");
    if (w && atol(w) >= 1 && atol(w) <= 65535)
        pub_window = atol(w);
    int n_subs = shared ? atoi(shared) : 1;
    if (n_subs < 1 || n_subs > 16)
        n_subs = 1;
    const char *filter = shared ? "$share/bench/sensors/#" : "sensors/#";
    static struct sub_job subs[16];
    _Atomic long total = 0;
    long want = (long)pubs * messages;
    for (int i = 0; i < n_subs; i++) {
        char id[ID_LEN];
        snprintf(id, sizeof(id), shared ? "%s%d" : "%s", sub_id, i);
        struct sub_job *j = &subs[i];
        if (client_open(&j->c, id) != 0)
            die("subscriber connect");
        j->total = &total;
        j->want = want;
        j->got = 0;
        atomic_store(&j->done, false);
        struct mqtt_sub_entry e = {{(const uint8_t *)filter, strlen(filter)}, (uint8_t)qos};
        uint8_t buf[256];
        size_t n;
        mqtt_encode_subscribe(buf, sizeof(buf), MQTT_V311, 1, NULL, &e, 1, &n);
        send_all(&j->c, buf, n);
        const uint8_t *pk;
        size_t len;
        if (read_packet(&j->c, &pk, &len) != MQTT_SUBACK || pk[len - 1] != qos)
            die("expected SUBACK granting the QoS asked");
        consume(&j->c, len);
        /* a receive timeout ends the run if messages were lost */
        struct timeval tv = {10, 0};
        setsockopt(j->c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    pthread_t th[64], sth[16];
    struct pub_job jobs[64];
    if (pubs > 64)
        pubs = 64;
    double t0 = now_s();
    for (int i = 0; i < n_subs; i++)
        pthread_create(&sth[i], NULL, subscriber, &subs[i]);
    for (int i = 0; i < pubs; i++) {
        make_id(jobs[i].id, prefix, i);
        jobs[i].messages = messages;
        jobs[i].qos = qos;
        pthread_create(&th[i], NULL, publisher, &jobs[i]);
    }
    /* done when every message arrived, or when every subscriber gave up (a timeout) */
    for (;;) {
        int running = 0;
        for (int i = 0; i < n_subs; i++)
            running += !atomic_load(&subs[i].done);
        if (atomic_load(&total) >= want || running == 0)
            break;
        usleep(200);
    }
    double dt = now_s() - t0;
    long got = atomic_load(&total);
    for (int i = 0; i < n_subs; i++) {
        shutdown(subs[i].c.fd, SHUT_RD); /* wakes one still waiting in a read */
        pthread_join(sth[i], NULL);
    }
    for (int i = 0; i < pubs; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < n_subs; i++)
        client_close(&subs[i].c);
    printf("qos=%d sent=%ld received=%ld wall_s=%.3f rate_per_s=%.0f", qos, want, got, dt,
           (double)got / dt);
    if (n_subs > 1)
        for (int i = 0; i < n_subs; i++)
            printf(" sub%d=%ld", i, subs[i].got);
    printf("\n");
    return got == want ? 0 : 1;
}

/* ---- seqpub: a device that must not lose what it saw acknowledged ---- */

static int try_send(struct client *c, const uint8_t *b, size_t n)
{
    while (n > 0) {
        int w = SSL_write(c->ssl, b, (int)n);
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int run_seqpub(const char *id, long count, long interval_ms)
{
    size_t pad = getenv("LOADGEN_PAD") ? (size_t)atol(getenv("LOADGEN_PAD")) : 0;
    struct client c = {.fd = -1};
    bool connected = false;
    char topic[128];
    snprintf(topic, sizeof(topic), "sensors/%s/seq", id);
    uint16_t pid = 0;
    bool resend = false;
    double give_up = 0;
    for (long seq = 1; seq <= count;) {
        if (!connected) {
            if (client_open(&c, id) == 0) {
                connected = true;
                struct timeval tv = {5, 0};
                setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                give_up = 0;
            } else {
                client_close(&c);
                if (give_up == 0)
                    give_up = now_s() + 60;
                if (now_s() > give_up) {
                    fprintf(stderr, "loadgen seqpub: cannot reconnect for 60 s\n");
                    return 1;
                }
                usleep(200000);
                continue;
            }
        }
        static char payload[200000];
        int plen = snprintf(payload, 160, "%s:%ld", id, seq);
        if (pad > (size_t)plen + 1 && pad < sizeof(payload)) {
            /* LOADGEN_PAD=N: "ID:SEQ:" and filler up to N bytes */
            payload[plen] = ':';
            memset(payload + plen + 1, 'p', pad - (size_t)plen - 1);
            plen = (int)pad;
        }
        if (++pid == 0)
            pid = 1;
        struct mqtt_publish p = {.qos = 1, .packet_id = pid, .dup = resend,
                                 .topic = {(const uint8_t *)topic, strlen(topic)},
                                 .payload = {(const uint8_t *)payload, (size_t)plen}};
        static uint8_t buf[200512];
        size_t n;
        mqtt_encode_publish(buf, sizeof(buf), MQTT_V311, &p, &n);
        const uint8_t *pk;
        size_t len;
        int type = -1;
        if (try_send(&c, buf, n) == 0) {
            while ((type = read_packet(&c, &pk, &len)) >= 0 && type != MQTT_PUBACK)
                consume(&c, len);
        }
        if (type != MQTT_PUBACK) {
            printf("disconnected at %ld\n", seq);
            fflush(stdout);
            client_close(&c);
            connected = false;
            resend = true;
            continue; /* the same seq again, on a new connection */
        }
        uint16_t got = (uint16_t)(pk[2] << 8 | pk[3]);
        consume(&c, len);
        if (got != pid) {
            fprintf(stderr, "loadgen seqpub: PUBACK for %u, expected %u\n", got, pid);
            return 1;
        }
        printf("acked %ld\n", seq);
        fflush(stdout);
        resend = false;
        seq++;
        if (interval_ms > 0)
            usleep((useconds_t)interval_ms * 1000);
    }
    client_close(&c);
    return 0;
}

/* ---- ackbench: QoS 1 throughput and PUBACK latency ---- */

struct ack_job {
    char id[ID_LEN];
    long messages;
    int window;
    double rate; /* > 0: open loop, messages per second */
    double *lat; /* seconds, one per message */
};

static void *ack_publisher(void *arg)
{
    struct ack_job *j = arg;
    struct client c;
    if (client_open(&c, j->id) != 0)
        die("ackbench connect");
    char topic[128];
    snprintf(topic, sizeof(topic), "sensors/%s/bench", j->id);
    uint8_t payload[64];
    memset(payload, 'x', sizeof(payload));
    double *sent_at = calloc(65536, sizeof(double));
    long *seq_of = calloc(65536, sizeof(long));
    uint8_t buf[256];
    long sent = 0, acked = 0;
    uint16_t pid = 0;
    long window = j->window;
    while (acked < j->messages) {
        while (sent < j->messages && sent - acked < window) {
            if (++pid == 0)
                pid = 1;
            struct mqtt_publish p = {.qos = 1, .packet_id = pid,
                                     .topic = {(const uint8_t *)topic, strlen(topic)},
                                     .payload = {payload, sizeof(payload)}};
            size_t n;
            mqtt_encode_publish(buf, sizeof(buf), MQTT_V311, &p, &n);
            sent_at[pid] = now_s();
            seq_of[pid] = sent;
            send_all(&c, buf, n);
            sent++;
        }
        const uint8_t *pk;
        size_t len;
        if (read_packet(&c, &pk, &len) != MQTT_PUBACK)
            die("ackbench expected PUBACK");
        uint16_t got = (uint16_t)(pk[2] << 8 | pk[3]);
        consume(&c, len);
        j->lat[seq_of[got]] = now_s() - sent_at[got];
        acked++;
    }
    client_close(&c);
    free(sent_at);
    free(seq_of);
    return NULL;
}

/* The open loop (LOADGEN_RATE): every device on this one thread. */
struct open_pub {
    struct client c;
    char topic[128];
    double *sent_at; /* by packet id */
    long *seq_of;
    long sent, acked;
    uint16_t pid;
    double next; /* when its next message is due */
    double *lat;
};

/* Reads what has arrived on p without blocking and records each PUBACK's latency. */
static void open_read(struct open_pub *p)
{
    for (;;) {
        if (p->c.in_len == sizeof(p->c.in))
            die("packet too large for the bench client");
        int r = SSL_read(p->c.ssl, p->c.in + p->c.in_len, (int)(sizeof(p->c.in) - p->c.in_len));
        if (r <= 0) {
            int e = SSL_get_error(p->c.ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;
            die("ackbench: connection lost");
        }
        p->c.in_len += (size_t)r;
    }
    double now = now_s();
    for (;;) {
        uint8_t first;
        uint32_t rem;
        size_t hlen;
        if (p->c.in_len == 0 ||
            mqtt_fixed_header(p->c.in, p->c.in_len, &first, &rem, &hlen) != MQTT_OK ||
            p->c.in_len < hlen + rem)
            break;
        if (first >> 4 != MQTT_PUBACK || rem < 2)
            die("ackbench expected PUBACK");
        uint16_t got = (uint16_t)(p->c.in[hlen] << 8 | p->c.in[hlen + 1]);
        p->lat[p->seq_of[got]] = now - p->sent_at[got];
        p->acked++;
        consume(&p->c, hlen + rem);
    }
}

static void open_send(struct open_pub *p)
{
    if (++p->pid == 0)
        p->pid = 1;
    static uint8_t payload[64];
    if (!payload[0])
        memset(payload, 'x', sizeof(payload));
    struct mqtt_publish m = {.qos = 1, .packet_id = p->pid,
                             .topic = {(const uint8_t *)p->topic, strlen(p->topic)},
                             .payload = {payload, sizeof(payload)}};
    uint8_t buf[256];
    size_t n;
    mqtt_encode_publish(buf, sizeof(buf), MQTT_V311, &m, &n);
    p->sent_at[p->pid] = p->next;
    p->seq_of[p->pid] = p->sent;
    for (size_t off = 0; off < n;) {
        int w = SSL_write(p->c.ssl, buf + off, (int)(n - off));
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        int e = SSL_get_error(p->c.ssl, w);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
            die("ackbench: SSL_write");
        struct pollfd pfd = {.fd = p->c.fd, .events = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN};
        poll(&pfd, 1, 100);
        if (e == SSL_ERROR_WANT_READ)
            open_read(p);
    }
    p->sent++;
}

static void run_open_loop(struct ack_job *jobs, int pubs, long messages, double rate)
{
    struct open_pub *ps = calloc((size_t)pubs, sizeof(*ps));
    struct pollfd *pfd = calloc((size_t)pubs, sizeof(*pfd));
    if (!ps || !pfd)
        die("out of memory");
    for (int i = 0; i < pubs; i++) {
        struct open_pub *p = &ps[i];
        if (client_open(&p->c, jobs[i].id) != 0)
            die("ackbench connect");
        snprintf(p->topic, sizeof(p->topic), "sensors/%s/bench", jobs[i].id);
        p->sent_at = calloc(65536, sizeof(double));
        p->seq_of = calloc(65536, sizeof(long));
        p->lat = jobs[i].lat;
        fcntl(p->c.fd, F_SETFL, fcntl(p->c.fd, F_GETFL) | O_NONBLOCK);
        pfd[i] = (struct pollfd){.fd = p->c.fd, .events = POLLIN};
    }
    /* the devices' schedules spread evenly over one interval */
    double interval = 1.0 / rate, t0 = now_s();
    for (int i = 0; i < pubs; i++)
        ps[i].next = t0 + interval * i / pubs;
    long done = 0, total = (long)pubs * messages;
    while (done < total) {
        double now = now_s(), due = now + 1.0;
        for (int i = 0; i < pubs; i++) {
            struct open_pub *p = &ps[i];
            while (p->sent < messages && p->next <= now) {
                open_send(p);
                p->next += interval;
            }
            if (p->sent < messages && p->next < due)
                due = p->next;
        }
        double left = due - now_s();
        if (left < 0)
            left = 0;
        struct timespec ts = {.tv_sec = (time_t)left,
                              .tv_nsec = (long)((left - (double)(time_t)left) * 1e9)};
        int ready = ppoll(pfd, (nfds_t)pubs, &ts, NULL);
        done = 0;
        for (int i = 0; i < pubs; i++) {
            if ((ready > 0 && pfd[i].revents) || SSL_pending(ps[i].c.ssl) > 0)
                open_read(&ps[i]);
            done += ps[i].acked;
        }
    }
    for (int i = 0; i < pubs; i++) {
        client_close(&ps[i].c);
        free(ps[i].sent_at);
        free(ps[i].seq_of);
    }
    free(ps);
    free(pfd);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_ackbench(const char *prefix, int pubs, long messages, int window)
{
    if (pubs > 256)
        pubs = 256;
    pthread_t th[256];
    struct ack_job *jobs = calloc((size_t)pubs, sizeof(*jobs));
    double *lat = calloc((size_t)pubs * (size_t)messages, sizeof(double));
    double t0 = now_s();
    double rate = getenv("LOADGEN_RATE") ? atof(getenv("LOADGEN_RATE")) : 0;
    for (int i = 0; i < pubs; i++) {
        make_id(jobs[i].id, prefix, i);
        jobs[i].messages = messages;
        jobs[i].window = window;
        jobs[i].rate = rate;
        jobs[i].lat = lat + (size_t)i * (size_t)messages;
        if (rate <= 0)
            pthread_create(&th[i], NULL, ack_publisher, &jobs[i]);
    }
    if (rate > 0)
        run_open_loop(jobs, pubs, messages, rate);
    for (int i = 0; i < pubs && rate <= 0; i++)
        pthread_join(th[i], NULL);
    double dt = now_s() - t0;
    size_t total = (size_t)pubs * (size_t)messages;
    qsort(lat, total, sizeof(double), cmp_double);
    printf("acked=%zu wall_s=%.3f rate_per_s=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", total,
           dt, (double)total / dt, lat[total / 2] * 1e3, lat[total * 99 / 100] * 1e3,
           lat[total - 1] * 1e3);
    free(lat);
    free(jobs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: see the comment at the top of bench/loadgen.c\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a gateway killed mid-write is an error to handle, not death */
    const char *mode = argv[1];
    host = argv[2];
    port = argv[3];
    const char *hex = argv[4];
    psk_len = strlen(hex) / 2;
    if (psk_len > sizeof(psk))
        die("PSK too long");
    for (size_t i = 0; i < psk_len; i++)
        sscanf(hex + 2 * i, "%2hhx", &psk[i]);
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* LOADGEN_TLS13=1: TLS 1.3 with the external PSK instead (TLS_AES_128_GCM_SHA256) */
    SSL_CTX_set_max_proto_version(ctx, getenv("LOADGEN_TLS13") ? TLS1_3_VERSION : TLS1_2_VERSION);
    if (getenv("LOADGEN_TLS13"))
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    if (!SSL_CTX_set_cipher_list(ctx, "PSK-AES128-CCM8:PSK-AES128-CCM:PSK-AES128-GCM-SHA256"))
        die("cipher list");
    SSL_CTX_set_psk_client_callback(ctx, psk_cb);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    const char *iak_hex = getenv("LOADGEN_IAK");
    if (iak_hex && *iak_hex) {
        iak_len = strlen(iak_hex) / 2;
        if (iak_len != 32 && iak_len != 48 && iak_len != 64)
            die("LOADGEN_IAK must be 32, 48 or 64 bytes of hex");
        for (size_t i = 0; i < iak_len; i++)
            sscanf(iak_hex + 2 * i, "%2hhx", &iak[i]);
        if (iat_instance_id(iak, iak_len, iak_instance_id) != 0)
            die("instance ID");
    }
    const char *prefix = argv[5];
    if (strcmp(mode, "connect") == 0)
        return run_connect(prefix, atol(argv[6]));
    if (strcmp(mode, "idle") == 0)
        return run_idle(prefix, atol(argv[6]));
    if (strcmp(mode, "storm") == 0 && argc == 8)
        return run_storm(prefix, atol(argv[6]), atoi(argv[7]));
    if (strcmp(mode, "pubsub") == 0 && argc == 10)
        return run_pubsub(prefix, argv[6], atoi(argv[7]), atol(argv[8]), atoi(argv[9]));
    if (strcmp(mode, "seqpub") == 0 && argc == 8)
        return run_seqpub(prefix, atol(argv[6]), atol(argv[7]));
    if (strcmp(mode, "ackbench") == 0 && argc == 9)
        return run_ackbench(prefix, atoi(argv[6]), atol(argv[7]), atoi(argv[8]));
    fprintf(stderr, "loadgen: bad arguments\n");
    return 2;
}
