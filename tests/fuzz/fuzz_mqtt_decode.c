/*
 * libFuzzer target for the MQTT decoder: the first byte picks the protocol version, the rest
 * is one packet. Every packet that decodes is walked (entries, user properties) and, for the
 * packets the gateway re-encodes, encoded again and decoded again: the second decode must
 * succeed and agree, or the fuzzer aborts. Built with -fsanitize=fuzzer,address,undefined.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "psagw/mqtt.h"

static void walk_user(const struct mqtt_props *p)
{
    struct mqtt_bytes k, v;
    size_t off = 0, n = 0;
    while (mqtt_props_next_user(p, &off, &k, &v))
        n++;
    if (n != p->n_user)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t version = (data[0] & 1) ? MQTT_V5 : MQTT_V311;
    const uint8_t *pkt = data + 1;
    size_t len = size - 1;

    uint8_t first;
    uint32_t rem;
    size_t hlen;
    if (mqtt_fixed_header(pkt, len, &first, &rem, &hlen) == MQTT_OK && hlen + rem < len)
        len = hlen + rem; /* decode exactly one packet */

    struct mqtt_packet p;
    if (mqtt_decode(pkt, len, version, &p) != MQTT_OK)
        return 0;
    static uint8_t out[1 << 16];
    size_t n = 0;
    struct mqtt_packet again;
    switch (p.type) {
    case MQTT_CONNECT:
        walk_user(&p.u.connect.props);
        if (mqtt_encode_connect(out, sizeof(out), &p.u.connect, &n) == MQTT_OK) {
            if (mqtt_decode(out, n, 0, &again) != MQTT_OK ||
                again.u.connect.client_id.len != p.u.connect.client_id.len)
                abort();
        }
        break;
    case MQTT_PUBLISH:
        walk_user(&p.u.publish.props);
        if (mqtt_encode_publish(out, sizeof(out), version, &p.u.publish, &n) == MQTT_OK) {
            if (mqtt_decode(out, n, version, &again) != MQTT_OK ||
                again.u.publish.payload.len != p.u.publish.payload.len ||
                again.u.publish.props.n_user != p.u.publish.props.n_user)
                abort();
        }
        mqtt_topic_name_valid(p.u.publish.topic.data, p.u.publish.topic.len);
        break;
    case MQTT_SUBSCRIBE: {
        size_t off = 0, count = 0;
        struct mqtt_sub_entry e;
        while (mqtt_subscribe_next(&p.u.subscribe, version, &off, &e)) {
            count++;
            if (mqtt_topic_filter_valid(e.filter.data, e.filter.len))
                mqtt_topic_matches(e.filter.data, e.filter.len, (const uint8_t *)"a/b/c", 5);
        }
        if (count != p.u.subscribe.count)
            abort();
        break;
    }
    case MQTT_UNSUBSCRIBE: {
        size_t off = 0, count = 0;
        struct mqtt_bytes f;
        while (mqtt_unsubscribe_next(&p.u.subscribe, &off, &f))
            count++;
        if (count != p.u.subscribe.count)
            abort();
        break;
    }
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        walk_user(&p.u.reason.props);
        if (mqtt_encode_reason(out, sizeof(out), version, p.type, p.u.reason.reason,
                               &p.u.reason.props, &n) == MQTT_OK &&
            mqtt_decode(out, n, version, &again) != MQTT_OK)
            abort();
        break;
    default:
        break;
    }
    return 0;
}
