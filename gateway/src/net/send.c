/*
 * send.c: encoding packets into a connection's output (send.h). Every function asks the codec
 * for the packet's size, reserves that room in the output buffer, encodes into it and commits
 * it; nothing else in the gateway touches an output buffer.
 */
#include <string.h>

#include "broker_lock.h"
#include "send.h"

/* An encoder call with the buffer and the size filled in by encode(). */
struct encoding {
    uint8_t *buf;
    size_t cap;
    size_t need;
};

/* After the size query `rc` (MQTT_ERR_NOSPACE with e->need set), reserve e->need bytes. */
static int reserve(struct conn *c, int rc, struct encoding *e)
{
    if (rc != MQTT_ERR_NOSPACE || c->state == CONN_CLOSED)
        return -1;
    if (!(e->buf = conn_out_reserve(c, e->need)))
        return -1;
    e->cap = e->need;
    return 0;
}

static int commit(struct conn *c, int rc, const struct encoding *e)
{
    if (rc != MQTT_OK)
        return -1;
    conn_out_commit(c, e->need);
    return 0;
}

int send_connack(struct conn *c, bool session_present, uint8_t reason,
                 const struct mqtt_props *props)
{
    struct mqtt_connack ca = {.session_present = session_present, .reason = reason};
    if (props)
        ca.props = *props;
    uint8_t v = c->version ? c->version : MQTT_V311;
    struct encoding e = {0};
    if (reserve(c, mqtt_encode_connack(NULL, 0, v, &ca, &e.need), &e) != 0)
        return -1;
    return commit(c, mqtt_encode_connack(e.buf, e.cap, v, &ca, &e.need), &e);
}

static void set_reason_string(struct mqtt_props *props, const char *s)
{
    mqtt_props_set(props, MQTT_PROP_REASON_STRING);
    props->reason_string = (struct mqtt_bytes){(const uint8_t *)s, strlen(s)};
}

int send_ack(struct conn *c, uint8_t type, uint16_t packet_id, uint8_t reason,
             const char *reason_string)
{
    struct mqtt_ack a = {.packet_id = packet_id, .reason = reason};
    if (reason_string && c->request_problem_info)
        set_reason_string(&a.props, reason_string);
    struct encoding e = {0};
    if (reserve(c, mqtt_encode_ack(NULL, 0, c->version, type, &a, &e.need), &e) != 0)
        return -1;
    return commit(c, mqtt_encode_ack(e.buf, e.cap, c->version, type, &a, &e.need), &e);
}

int send_publish(struct conn *c, const struct mqtt_publish *p)
{
    struct encoding e = {0};
    int rc = mqtt_encode_publish(NULL, 0, c->version, p, &e.need);
    if (rc == MQTT_ERR_NOSPACE && c->client_max_packet && e.need > c->client_max_packet)
        return 1;
    if (reserve(c, rc, &e) != 0)
        return -1;
    return commit(c, mqtt_encode_publish(e.buf, e.cap, c->version, p, &e.need), &e);
}

int send_suback(struct conn *c, uint8_t type, uint16_t packet_id, const uint8_t *reasons, size_t n)
{
    struct encoding e = {0};
    if (reserve(c,
                mqtt_encode_suback(NULL, 0, c->version, type, packet_id, NULL, reasons, n, &e.need),
                &e) != 0)
        return -1;
    return commit(
        c, mqtt_encode_suback(e.buf, e.cap, c->version, type, packet_id, NULL, reasons, n, &e.need),
        &e);
}

int send_suback_reserve(struct conn *c, uint16_t packet_id, size_t n, size_t *at)
{
    uint8_t zeros[SEND_MAX_SUBACK_CODES] = {0};
    if (n > sizeof(zeros))
        return -1;
    struct encoding e = {0};
    if (reserve(c,
                mqtt_encode_suback(NULL, 0, c->version, MQTT_SUBACK, packet_id, NULL, zeros, n,
                                   &e.need),
                &e) != 0)
        return -1;
    *at = c->out_len;
    conn_out_commit(c, e.need);
    return 0;
}

void send_suback_fill(struct conn *c, size_t at, uint16_t packet_id, const uint8_t *reasons,
                      size_t n)
{
    BROKER_LOCK_HELD();
    size_t need = 0;
    mqtt_encode_suback(NULL, 0, c->version, MQTT_SUBACK, packet_id, NULL, reasons, n, &need);
    if (at + need <= c->out_len)
        mqtt_encode_suback(c->out + at, need, c->version, MQTT_SUBACK, packet_id, NULL, reasons, n,
                           &need);
}

int send_reason(struct conn *c, uint8_t type, uint8_t reason, const struct mqtt_props *props)
{
    struct encoding e = {0};
    if (reserve(c, mqtt_encode_reason(NULL, 0, MQTT_V5, type, reason, props, &e.need), &e) != 0)
        return -1;
    return commit(c, mqtt_encode_reason(e.buf, e.cap, MQTT_V5, type, reason, props, &e.need), &e);
}

int send_pingresp(struct conn *c)
{
    struct encoding e = {0};
    if (reserve(c, mqtt_encode_ping(NULL, 0, MQTT_PINGRESP, &e.need), &e) != 0)
        return -1;
    return commit(c, mqtt_encode_ping(e.buf, e.cap, MQTT_PINGRESP, &e.need), &e);
}
