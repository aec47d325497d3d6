/*
 * iat_client: a small MQTT 5 client over TLS-PSK that attests with PSA-IAT, for the
 * integration tests (the real device is the emulator, psadev). It speaks through the shared
 * codec and mints tokens with the shared token library, the way a TF-M device would, and it
 * can misbehave on purpose: a wrong key, a replayed token, a late token, a wrong method.
 *
 *   iat_client --port P --id ID --psk HEX --iak HEX [options]
 *
 * It prints one line per event ("connack reason=0x00 ...", "auth reason=0x00",
 * "disconnect reason=0x87 reason_string=...") and exits 0 if the gateway accepted it (and,
 * with --reauth, every re-attestation), 1 if it was refused, 2 on a usage or I/O error.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "psagw/iat.h"
#include "psagw/mqtt.h"

struct opts {
    const char *host;
    int port;
    const char *id;
    uint8_t psk[64];
    size_t psk_len;
    uint8_t iak[64];
    size_t iak_len;
    const char *mode;       /* good, wrong-key, garbage, none, wrong-method, nonce31, nonce65 */
    const char *save_token; /* write the token sent to this file */
    const char *replay;     /* send this file's token instead of a fresh one */
    unsigned delay_ms;      /* wait before answering the challenge */
    uint32_t lifecycle;
    enum iat_profile profile;
    int alg;
    unsigned reauth;        /* re-attest this many times after CONNACK */
    unsigned reauth_gap_ms;
    unsigned hold_ms;       /* stay connected this long (reading) before DISCONNECT */
    bool no_method;         /* CONNECT without an authentication method */
    const char *publish_topic;
    const char *publish_msg;
    uint8_t measurement[32];
    bool has_measurement;
};

static const unsigned char *g_psk;
static size_t g_psk_len;
static const char *g_identity;

static unsigned int psk_cb(SSL *ssl, const char *hint, char *identity, unsigned int max_id,
                           unsigned char *psk, unsigned int max_psk)
{
    (void)ssl;
    (void)hint;
    if (strlen(g_identity) + 1 > max_id || g_psk_len > max_psk)
        return 0;
    strcpy(identity, g_identity);
    memcpy(psk, g_psk, g_psk_len);
    return (unsigned int)g_psk_len;
}

static int hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s);
    if (n % 2 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return (int)(n / 2);
}

static void die(const char *what)
{
    fprintf(stderr, "iat_client: %s\n", what);
    exit(2);
}

static void send_all(SSL *ssl, const uint8_t *buf, size_t len)
{
    if (SSL_write(ssl, buf, (int)len) != (int)len)
        die("write failed");
}

/* Reads one whole packet into buf; returns its length, 0 when the peer closed. */
static size_t read_packet(SSL *ssl, uint8_t *buf, size_t cap)
{
    size_t have = 0;
    for (;;) {
        uint8_t first;
        uint32_t rem;
        size_t hlen;
        if (have > 0) {
            int rc = mqtt_fixed_header(buf, have, &first, &rem, &hlen);
            if (rc == MQTT_OK && have >= hlen + rem)
                return hlen + rem;
            if (rc != MQTT_OK && rc != MQTT_ERR_INCOMPLETE)
                die("bad packet from the gateway");
            if (rc == MQTT_OK && hlen + rem > cap)
                die("packet too large");
        }
        int n = SSL_read(ssl, buf + have, 1); /* byte by byte: never read past one packet */
        if (n <= 0)
            return 0;
        have += (size_t)n;
    }
}

static void print_props(const struct mqtt_props *p)
{
    if (mqtt_props_has(p, MQTT_PROP_REASON_STRING))
        printf(" reason_string=\"%.*s\"", (int)p->reason_string.len, p->reason_string.data);
    if (mqtt_props_has(p, MQTT_PROP_AUTH_METHOD))
        printf(" method=%.*s", (int)p->auth_method.len, p->auth_method.data);
    struct mqtt_bytes k, v;
    size_t off = 0;
    while (mqtt_props_next_user(p, &off, &k, &v))
        printf(" user:%.*s=%.*s", (int)k.len, k.data, (int)v.len, v.data);
}

static size_t make_token(const struct opts *o, const uint8_t *nonce, size_t nonce_len,
                         uint8_t *out, size_t cap)
{
    uint8_t boot_seed[32], impl[32], iid[IAT_INSTANCE_ID_SIZE], signer[32], meas_nspe[32];
    RAND_bytes(boot_seed, sizeof boot_seed);
    memset(impl, 0xaa, sizeof impl);
    memset(signer, 0x5e, sizeof signer);
    memset(meas_nspe, 0x22, sizeof meas_nspe);
    if (iat_instance_id(o->iak, o->iak_len, iid) != 0)
        die("cannot derive the instance ID");
    struct iat_claims c = {0};
    c.nonce = (struct iat_bytes){nonce, nonce_len};
    c.boot_seed = (struct iat_bytes){boot_seed, sizeof boot_seed};
    c.instance_id = (struct iat_bytes){iid, sizeof iid};
    c.implementation_id = (struct iat_bytes){impl, sizeof impl};
    c.client_id = -1;
    c.lifecycle = o->lifecycle;
    c.sw_count = 1;
    c.sw[0].type = (struct iat_bytes){(const uint8_t *)"NSPE", 4};
    c.sw[0].value = (struct iat_bytes){o->has_measurement ? o->measurement : meas_nspe, 32};
    c.sw[0].signer_id = (struct iat_bytes){signer, sizeof signer};
    c.sw[0].present = 1u << IAT_SW_TYPE | 1u << IAT_SW_VALUE | 1u << IAT_SW_SIGNER_ID;
    const char *pn = o->profile == IAT_PROFILE_PSA2 ? IAT_PROFILE_STR_PSA2_2023
                                                    : IAT_PROFILE_STR_LEGACY;
    c.profile_name = (struct iat_bytes){(const uint8_t *)pn, strlen(pn)};
    c.present = 1u << IAT_CLAIM_NONCE | 1u << IAT_CLAIM_BOOT_SEED | 1u << IAT_CLAIM_INSTANCE_ID |
                1u << IAT_CLAIM_IMPLEMENTATION_ID | 1u << IAT_CLAIM_CLIENT_ID |
                1u << IAT_CLAIM_LIFECYCLE | 1u << IAT_CLAIM_SW_COMPONENTS |
                1u << IAT_CLAIM_PROFILE;
    uint8_t key_bytes[64];
    memcpy(key_bytes, o->iak, o->iak_len);
    if (strcmp(o->mode, "wrong-key") == 0)
        key_bytes[0] ^= 0x01;
    struct iat_key key = {.raw = key_bytes, .raw_len = o->iak_len};
    size_t len = 0;
    if (iat_encode(&c, o->profile, o->alg, &key, NULL, 0, NULL, 0, out, cap, &len) != IAT_OK)
        die("cannot create the token");
    return len;
}

/* Answers one challenge (AUTH 0x18 with the nonce) with AUTH 0x18 and a token. */
static void answer(SSL *ssl, const struct opts *o, const struct mqtt_props *challenge_props)
{
    uint8_t token[1024], nonce[65];
    size_t token_len;
    size_t nlen = challenge_props->auth_data.len;
    if (nlen > 64)
        die("nonce too long");
    memcpy(nonce, challenge_props->auth_data.data, nlen);
    if (strcmp(o->mode, "nonce31") == 0)
        nlen = 31;
    else if (strcmp(o->mode, "nonce65") == 0)
        nonce[nlen++] = 0x42;
    if (o->delay_ms)
        usleep(o->delay_ms * 1000u);
    if (o->replay) {
        FILE *f = fopen(o->replay, "rb");
        if (!f)
            die("cannot read the token to replay");
        token_len = fread(token, 1, sizeof token, f);
        fclose(f);
    } else if (strcmp(o->mode, "garbage") == 0) {
        static const uint8_t junk[] = {0xd1, 0x84, 0x43, 0xa1, 0x01, 0x05, 0xa0, 0x41};
        memcpy(token, junk, sizeof junk);
        token_len = sizeof junk;
    } else {
        token_len = make_token(o, nonce, nlen, token, sizeof token);
    }
    if (o->save_token) {
        FILE *f = fopen(o->save_token, "wb");
        if (!f || fwrite(token, 1, token_len, f) != token_len)
            die("cannot save the token");
        fclose(f);
    }
    struct mqtt_props props = {0};
    mqtt_props_set(&props, MQTT_PROP_AUTH_METHOD);
    props.auth_method = (struct mqtt_bytes){(const uint8_t *)"PSA-IAT", 7};
    if (strcmp(o->mode, "none") != 0) {
        mqtt_props_set(&props, MQTT_PROP_AUTH_DATA);
        props.auth_data = (struct mqtt_bytes){token, token_len};
    }
    uint8_t buf[2048];
    size_t n = 0;
    if (mqtt_encode_reason(buf, sizeof buf, MQTT_V5, MQTT_AUTH, MQTT_RC_CONTINUE_AUTH, &props,
                           &n) != MQTT_OK)
        die("encode AUTH");
    send_all(ssl, buf, n);
}

/* Reads packets until one of `type` arrives (answering challenges on the way). Returns the
 * reason of the awaited packet, or -1 if the gateway closed or disconnected first. */
static int await(SSL *ssl, const struct opts *o, uint8_t type)
{
    uint8_t buf[4096];
    for (;;) {
        size_t n = read_packet(ssl, buf, sizeof buf);
        if (n == 0) {
            printf("closed\n");
            return -1;
        }
        struct mqtt_packet p;
        if (mqtt_decode(buf, n, MQTT_V5, &p) != MQTT_OK)
            die("undecodable packet from the gateway");
        uint8_t t = buf[0] >> 4;
        if (t == MQTT_AUTH && p.u.reason.reason == MQTT_RC_CONTINUE_AUTH) {
            printf("challenge nonce_len=%zu\n", p.u.reason.props.auth_data.len);
            answer(ssl, o, &p.u.reason.props);
            continue;
        }
        if (t == MQTT_CONNACK) {
            printf("connack reason=0x%02x", p.u.connack.reason);
            print_props(&p.u.connack.props);
            printf("\n");
            if (p.u.connack.reason >= 0x80) {
                /* a refusal: the gateway must close the connection now */
                printf("%s\n", read_packet(ssl, buf, sizeof buf) == 0 ? "closed" : "not closed");
            }
            if (type == MQTT_CONNACK)
                return p.u.connack.reason;
            continue;
        }
        if (t == MQTT_AUTH) {
            printf("auth reason=0x%02x", p.u.reason.reason);
            print_props(&p.u.reason.props);
            printf("\n");
            if (type == MQTT_AUTH)
                return p.u.reason.reason;
            continue;
        }
        if (t == MQTT_DISCONNECT) {
            printf("disconnect reason=0x%02x", p.u.reason.reason);
            print_props(&p.u.reason.props);
            printf("\n");
            return -1;
        }
        if (t == MQTT_PUBACK && type == MQTT_PUBACK)
            return p.u.ack.reason;
        if (t == MQTT_PINGRESP && type == MQTT_PINGRESP)
            return 0;
        /* anything else (PUBLISH, PINGRESP) is not what the tests look at */
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: iat_client --port P --id ID --psk HEX --iak HEX [--host H]\n"
                    "  [--mode good|wrong-key|garbage|none|wrong-method|nonce31|nonce65]\n"
                    "  [--save-token F] [--replay F] [--delay-ms N] [--lifecycle N]\n"
                    "  [--profile legacy|psa2] [--alg 5|6|7] [--reauth N] [--reauth-gap-ms N]\n"
                    "  [--hold-ms N] [--no-method] [--publish TOPIC MSG] [--measurement HEX]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o = {.host = "127.0.0.1", .mode = "good", .lifecycle = IAT_LC_SECURED,
                     .profile = IAT_PROFILE_LEGACY, .alg = IAT_ALG_HMAC256};
    static const struct option lo[] = {
        {"host", 1, NULL, 'H'},     {"port", 1, NULL, 'p'},       {"id", 1, NULL, 'i'},
        {"psk", 1, NULL, 'k'},      {"iak", 1, NULL, 'a'},        {"mode", 1, NULL, 'm'},
        {"save-token", 1, NULL, 's'}, {"replay", 1, NULL, 'r'},   {"delay-ms", 1, NULL, 'd'},
        {"lifecycle", 1, NULL, 'l'}, {"profile", 1, NULL, 'P'},   {"alg", 1, NULL, 'A'},
        {"reauth", 1, NULL, 'R'},   {"reauth-gap-ms", 1, NULL, 'g'}, {"hold-ms", 1, NULL, 'h'},
        {"no-method", 0, NULL, 'n'}, {"publish", 1, NULL, 'u'},   {"measurement", 1, NULL, 'M'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'H': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 'i': o.id = optarg; break;
        case 'k': { int n = hex(optarg, o.psk, sizeof o.psk); if (n <= 0) usage(); o.psk_len = (size_t)n; break; }
        case 'a': { int n = hex(optarg, o.iak, sizeof o.iak); if (n <= 0) usage(); o.iak_len = (size_t)n; break; }
        case 'm': o.mode = optarg; break;
        case 's': o.save_token = optarg; break;
        case 'r': o.replay = optarg; break;
        case 'd': o.delay_ms = (unsigned)atoi(optarg); break;
        case 'l': o.lifecycle = (uint32_t)strtoul(optarg, NULL, 0); break;
        case 'P': o.profile = strcmp(optarg, "psa2") == 0 ? IAT_PROFILE_PSA2 : IAT_PROFILE_LEGACY; break;
        case 'A': o.alg = atoi(optarg); break;
        case 'R': o.reauth = (unsigned)atoi(optarg); break;
        case 'g': o.reauth_gap_ms = (unsigned)atoi(optarg); break;
        case 'h': o.hold_ms = (unsigned)atoi(optarg); break;
        case 'n': o.no_method = true; break;
        case 'u':
            if (optind >= argc)
                usage();
            o.publish_topic = optarg;
            o.publish_msg = argv[optind++];
            break;
        case 'M': if (hex(optarg, o.measurement, 32) != 32) usage(); o.has_measurement = true; break;
        default: usage();
        }
    }
    if (!o.port || !o.id || !o.psk_len || (!o.iak_len && !o.no_method))
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0); /* tests watch the output while it runs */
    if (!o.iak_len)
        o.iak_len = 32;

    g_psk = o.psk;
    g_psk_len = o.psk_len;
    g_identity = o.id;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, "PSK-AES128-CCM:PSK-AES128-GCM-SHA256");
    SSL_CTX_set_psk_client_callback(ctx, psk_cb);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    inet_pton(AF_INET, o.host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("cannot connect");
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1)
        die("TLS handshake failed");

    struct mqtt_connect con = {.version = MQTT_V5, .clean_start = true, .keep_alive = 60};
    con.client_id = (struct mqtt_bytes){(const uint8_t *)o.id, strlen(o.id)};
    if (!o.no_method) {
        const char *method = strcmp(o.mode, "wrong-method") == 0 ? "SCRAM-SHA-1" : "PSA-IAT";
        mqtt_props_set(&con.props, MQTT_PROP_AUTH_METHOD);
        con.props.auth_method = (struct mqtt_bytes){(const uint8_t *)method, strlen(method)};
    }
    uint8_t buf[2048];
    size_t n = 0;
    if (mqtt_encode_connect(buf, sizeof buf, &con, &n) != MQTT_OK)
        die("encode CONNECT");
    send_all(ssl, buf, n);
    int rc = await(ssl, &o, MQTT_CONNACK);
    int status = rc == 0 ? 0 : 1;
    for (unsigned i = 0; status == 0 && i < o.reauth; i++) {
        if (o.reauth_gap_ms)
            usleep(o.reauth_gap_ms * 1000u);
        struct mqtt_props props = {0};
        mqtt_props_set(&props, MQTT_PROP_AUTH_METHOD);
        props.auth_method = (struct mqtt_bytes){(const uint8_t *)"PSA-IAT", 7};
        if (mqtt_encode_reason(buf, sizeof buf, MQTT_V5, MQTT_AUTH, MQTT_RC_REAUTHENTICATE,
                               &props, &n) != MQTT_OK)
            die("encode AUTH");
        send_all(ssl, buf, n);
        printf("reauth %u\n", i + 1);
        if (await(ssl, &o, MQTT_AUTH) != 0)
            status = 1;
    }
    if (status == 0 && o.publish_topic) {
        struct mqtt_publish p = {.qos = 1, .packet_id = 1};
        p.topic = (struct mqtt_bytes){(const uint8_t *)o.publish_topic, strlen(o.publish_topic)};
        p.payload = (struct mqtt_bytes){(const uint8_t *)o.publish_msg, strlen(o.publish_msg)};
        if (mqtt_encode_publish(buf, sizeof buf, MQTT_V5, &p, &n) != MQTT_OK)
            die("encode PUBLISH");
        send_all(ssl, buf, n);
        int r = await(ssl, &o, MQTT_PUBACK);
        printf("puback reason=0x%02x\n", r < 0 ? 0xff : r);
        if (r != 0)
            status = 1;
    }
    if (status == 0 && o.hold_ms) {
        /* stay connected and show what the gateway says meanwhile (e.g. re-attestation due):
         * a DISCONNECT or a close within the time is a failure */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            long used = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
            if (used >= (long)o.hold_ms)
                break;
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (!SSL_pending(ssl) && poll(&pfd, 1, (int)(o.hold_ms - (unsigned)used)) == 0)
                break;
            if (await(ssl, &o, MQTT_PINGRESP) < 0) {
                status = 1;
                break;
            }
        }
    }
    if (status == 0) {
        static const uint8_t disc[] = {0xe0, 0x00};
        send_all(ssl, disc, sizeof disc);
    }
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    return status;
}
