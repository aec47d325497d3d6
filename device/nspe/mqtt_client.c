/*
 * mqtt_client.c: the device's MQTT 5 client on the shared codec, with the PSA-IAT exchange of
 * docs/design/wire.md section 3: CONNECT carries the method, the gateway's AUTH carries the nonce, which
 * goes to the SPE's attestation service; the token it returns goes back in AUTH 0x18.
 */
#include <stdio.h>
#include <string.h>

#include "psagw/mqtt.h"

#include "../platform/platform.h"
#include "nspe.h"

#define METHOD "PSA-IAT"

static int send_packet(struct mqtt_client *c, const uint8_t *buf, size_t len)
{
    c->last_tx_ms = plat_mono_ms();
    return tls_write_all(c->tls, buf, len);
}

/* Removes len bytes at offset `at` of c->in. */
static void consume_at(struct mqtt_client *c, size_t at, size_t len)
{
    memmove(c->in + at, c->in + at + len, c->in_len - at - len);
    c->in_len -= len;
}

static void consume(struct mqtt_client *c, size_t len)
{
    consume_at(c, 0, len);
}

/* Reads until one whole packet is in c->in at offset `at`; returns 1 (its length in *len),
 * 0 on timeout, -1 on close. */
static int read_packet_at(struct mqtt_client *c, size_t at, int timeout_ms, size_t *len)
{
    for (;;) {
        uint8_t first;
        uint32_t rem;
        size_t hlen;
        if (c->in_len > at) {
            int rc = mqtt_fixed_header(c->in + at, c->in_len - at, &first, &rem, &hlen);
            if (rc == MQTT_OK && c->in_len - at >= hlen + rem) {
                *len = hlen + rem;
                return 1;
            }
            if ((rc != MQTT_OK && rc != MQTT_ERR_INCOMPLETE) ||
                (rc == MQTT_OK && at + hlen + rem > sizeof(c->in)))
                return -1;
        }
        int n = tls_read(c->tls, c->in + c->in_len, sizeof(c->in) - c->in_len, timeout_ms);
        if (n == -2)
            return 0;
        if (n <= 0)
            return -1;
        c->in_len += (size_t)n;
    }
}

/* Drops the packet mqtt_client_poll returned last time (the caller is done with it). */
static void release_pending(struct mqtt_client *c)
{
    if (c->pending) {
        consume(c, c->pending);
        c->pending = 0;
    }
}

static int read_packet(struct mqtt_client *c, int timeout_ms, size_t *len)
{
    release_pending(c);
    return read_packet_at(c, 0, timeout_ms, len);
}


static void keep_reason(struct mqtt_client *c, const struct mqtt_props *p)
{
    c->reason_string[0] = '\0';
    if (mqtt_props_has(p, MQTT_PROP_REASON_STRING))
        snprintf(c->reason_string, sizeof(c->reason_string), "%.*s",
                 (int)p->reason_string.len, (const char *)p->reason_string.data);
}

/* Answers a challenge: the nonce goes to the SPE, the token comes back. Not inlined (nor is
 * send_connect): on a device their buffers must not sit on the stack together. */
static __attribute__((noinline)) int answer_challenge(struct mqtt_client *c, const struct mqtt_props *p)
{
    uint8_t token[PSA_INITIAL_ATTEST_MAX_TOKEN_SIZE];
    size_t token_len = 0;
    if (!mqtt_props_has(p, MQTT_PROP_AUTH_DATA))
        return -1;
    psa_status_t st = psa_initial_attest_get_token(p->auth_data.data, p->auth_data.len, token,
                                                   sizeof(token), &token_len);
    if (st != PSA_SUCCESS) {
        snprintf(c->reason_string, sizeof(c->reason_string),
                 "the SPE could not make a token (PSA error %d)", (int)st);
        return -1;
    }
    struct mqtt_props props = {0};
    mqtt_props_set(&props, MQTT_PROP_AUTH_METHOD);
    props.auth_method = (struct mqtt_bytes){(const uint8_t *)METHOD, strlen(METHOD)};
    mqtt_props_set(&props, MQTT_PROP_AUTH_DATA);
    props.auth_data = (struct mqtt_bytes){token, token_len};
    uint8_t buf[PSA_INITIAL_ATTEST_MAX_TOKEN_SIZE + 64];
    size_t n = 0;
    if (mqtt_encode_reason(buf, sizeof(buf), MQTT_V5, MQTT_AUTH, MQTT_RC_CONTINUE_AUTH, &props,
                           &n) != MQTT_OK)
        return -1;
    return send_packet(c, buf, n);
}

static __attribute__((noinline)) int send_connect(struct mqtt_client *c, bool attest,
                                                   uint16_t keep_alive)
{
    struct mqtt_connect con = {.version = MQTT_V5, .clean_start = true, .keep_alive = keep_alive};
    con.client_id = (struct mqtt_bytes){(const uint8_t *)c->id, strlen(c->id)};
    if (attest) {
        mqtt_props_set(&con.props, MQTT_PROP_AUTH_METHOD);
        con.props.auth_method = (struct mqtt_bytes){(const uint8_t *)METHOD, strlen(METHOD)};
    }
    /* what the receive buffer can take while it also holds deferred PUBLISHes (poll): the
     * gateway sends nothing bigger (MQTT 5 Maximum Packet Size, [MQTT-3.1.2-24]) */
    mqtt_props_set(&con.props, MQTT_PROP_MAX_PACKET_SIZE);
    con.props.max_packet_size = (uint32_t)sizeof(c->in) / 2;
    uint8_t buf[512];
    size_t n = 0;
    if (mqtt_encode_connect(buf, sizeof(buf), &con, &n) != MQTT_OK)
        return -1;
    return send_packet(c, buf, n);
}

int mqtt_client_connect(struct mqtt_client *c, bool attest, uint16_t keep_alive)
{
    c->connack_reason = 0xff;
    c->attested = false;
    c->keep_alive = keep_alive;
    c->next_pid = 1;
    if (send_connect(c, attest, keep_alive) != 0)
        return -1;
    for (;;) {
        size_t len;
        if (read_packet(c, 30000, &len) <= 0)
            return -1;
        struct mqtt_packet p;
        if (mqtt_decode(c->in, len, MQTT_V5, &p) != MQTT_OK) {
            consume(c, len);
            return -1;
        }
        uint8_t type = c->in[0] >> 4;
        if (type == MQTT_AUTH && p.u.reason.reason == MQTT_RC_CONTINUE_AUTH) {
            int rc = answer_challenge(c, &p.u.reason.props);
            consume(c, len);
            if (rc != 0)
                return -1;
            continue;
        }
        if (type != MQTT_CONNACK) {
            consume(c, len);
            return -1;
        }
        c->connack_reason = p.u.connack.reason;
        keep_reason(c, &p.u.connack.props);
        consume(c, len);
        c->attested = attest && c->connack_reason == 0;
        return c->connack_reason == 0 ? 0 : -1;
    }
}

int mqtt_client_publish(struct mqtt_client *c, const char *topic, const uint8_t *payload,
                        size_t len, int qos)
{
    struct mqtt_publish p = {.qos = (uint8_t)qos};
    p.topic = (struct mqtt_bytes){(const uint8_t *)topic, strlen(topic)};
    p.payload = (struct mqtt_bytes){payload, len};
    if (qos) {
        if (c->next_pid == 0)
            c->next_pid = 1; /* packet id 0 is not allowed */
        p.packet_id = c->next_pid++;
    }
    uint8_t buf[MQTT_CLIENT_MAX_PUBLISH];
    size_t n = 0;
    if (mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p, &n) != MQTT_OK)
        return -1;
    if (send_packet(c, buf, n) != 0)
        return -1;
    if (qos == 0)
        return 0;
    release_pending(c);
    for (;;) { /* wait for the PUBACK of this packet id */
        size_t plen, at = c->deferred;
        if (read_packet_at(c, at, 30000, &plen) <= 0)
            return -1;
        uint8_t type = c->in[at] >> 4;
        struct mqtt_packet a;
        int rc = mqtt_decode(c->in + at, plen, MQTT_V5, &a);
        if (rc == MQTT_OK && type == MQTT_PUBACK && a.u.ack.packet_id == p.packet_id) {
            int reason = a.u.ack.reason;
            keep_reason(c, &a.u.ack.props);
            consume_at(c, at, plen);
            return reason < 0x80 ? 0 : -1;
        }
        if (rc == MQTT_OK && type == MQTT_DISCONNECT) {
            keep_reason(c, &a.u.reason.props);
            consume_at(c, at, plen);
            return -1;
        }
        if (rc == MQTT_OK && type == MQTT_PUBLISH && at + plen <= sizeof(c->in) / 2) {
            c->deferred += plen; /* a command meanwhile: kept for the next poll */
            continue;
        }
        consume_at(c, at, plen); /* anything else meanwhile (or no room) is dropped */
    }
}

int mqtt_client_subscribe(struct mqtt_client *c, const char *filter, int qos)
{
    struct mqtt_sub_entry s = {.options = (uint8_t)qos};
    s.filter = (struct mqtt_bytes){(const uint8_t *)filter, strlen(filter)};
    uint8_t buf[512];
    size_t n = 0;
    if (c->next_pid == 0)
        c->next_pid = 1;
    uint16_t pid = c->next_pid++;
    if (mqtt_encode_subscribe(buf, sizeof(buf), MQTT_V5, pid, NULL, &s, 1, &n) != MQTT_OK)
        return -1;
    return send_packet(c, buf, n);
}

int mqtt_client_poll(struct mqtt_client *c, int timeout_ms, const uint8_t **topic,
                     size_t *topic_len, const uint8_t **payload, size_t *payload_len)
{
    /* MQTT 3.1.2.10: something must reach the gateway within the keep-alive; ping at half */
    if (c->keep_alive) {
        uint64_t due = c->last_tx_ms + (uint64_t)c->keep_alive * 500u, now = plat_mono_ms();
        if (now >= due) {
            static const uint8_t ping[] = {0xc0, 0x00};
            if (send_packet(c, ping, sizeof(ping)) != 0)
                return -1;
            due = now + (uint64_t)c->keep_alive * 500u;
        }
        if (timeout_ms < 0 || (uint64_t)timeout_ms > due - now)
            timeout_ms = (int)(due - now);
    }
    size_t len;
    int rc = read_packet(c, c->deferred ? 0 : timeout_ms, &len);
    if (rc <= 0)
        return rc;
    if (c->deferred) /* the packet at the start is one that waited */
        c->deferred = c->deferred > len ? c->deferred - len : 0;
    uint8_t type = c->in[0] >> 4;
    struct mqtt_packet p;
    if (mqtt_decode(c->in, len, MQTT_V5, &p) != MQTT_OK)
        return -1;
    if (type == MQTT_PUBLISH) {
        *topic = p.u.publish.topic.data;
        *topic_len = p.u.publish.topic.len;
        *payload = p.u.publish.payload.data;
        *payload_len = p.u.publish.payload.len;
        if (p.u.publish.qos == 1) {
            uint8_t ack[8];
            size_t n = 0;
            struct mqtt_ack a = {.packet_id = p.u.publish.packet_id};
            if (mqtt_encode_ack(ack, sizeof(ack), MQTT_V5, MQTT_PUBACK, &a, &n) == MQTT_OK)
                send_packet(c, ack, n);
        }
    } else if (type == MQTT_DISCONNECT) {
        keep_reason(c, &p.u.reason.props);
    }
    c->pending = len;
    return type;
}

void mqtt_client_disconnect(struct mqtt_client *c)
{
    static const uint8_t disc[] = {0xe0, 0x00};
    send_packet(c, disc, sizeof(disc));
}
