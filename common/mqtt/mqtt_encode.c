/*
 * mqtt_encode.c: writes MQTT 3.1.1 and 5.0 packets into caller-owned buffers.
 *
 * Each packet is produced in two passes over the same body writer: the first, with no buffer,
 * counts the bytes (the Remaining Length must precede the body); the second writes them. So a
 * packet's size is always known exactly before anything is written, and the caller can ask for
 * it with a NULL buffer.
 */
#include "psagw/mqtt.h"

#include <string.h>

struct wr {
    uint8_t *p;
    size_t cap;
    size_t pos;
    int err;
};

static void wr_raw(struct wr *w, const void *src, size_t n)
{
    if (w->p && n && w->pos + n <= w->cap)
        memcpy(w->p + w->pos, src, n);
    w->pos += n;
}

static void wr_u8(struct wr *w, uint8_t v)
{
    wr_raw(w, &v, 1);
}

static void wr_u16(struct wr *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    wr_raw(w, b, 2);
}

static void wr_u32(struct wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    wr_raw(w, b, 4);
}

static size_t varint_len(uint32_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static void wr_varint(struct wr *w, uint32_t v)
{
    if (v > MQTT_MAX_REMAINING) {
        w->err = MQTT_ERR_ARG;
        return;
    }
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        if (v)
            b |= 0x80;
        wr_u8(w, b);
    } while (v);
}

static void wr_bin(struct wr *w, struct mqtt_bytes b)
{
    if (b.len > 0xffff) {
        w->err = MQTT_ERR_ARG;
        return;
    }
    wr_u16(w, (uint16_t)b.len);
    wr_raw(w, b.data, b.len);
}

/* Copies the user properties found in a raw property block, skipping everything else. */
static void wr_user_props(struct wr *w, const struct mqtt_props *p)
{
    struct mqtt_bytes k, v;
    size_t off = 0;
    while (mqtt_props_next_user(p, &off, &k, &v)) {
        wr_u8(w, MQTT_PROP_USER_PROPERTY);
        wr_bin(w, k);
        wr_bin(w, v);
    }
}

static void wr_props_body(struct wr *w, const struct mqtt_props *p)
{
#define HAS(id) mqtt_props_has(p, id)
    if (HAS(MQTT_PROP_PAYLOAD_FORMAT)) {
        wr_u8(w, MQTT_PROP_PAYLOAD_FORMAT);
        wr_u8(w, p->payload_format);
    }
    if (HAS(MQTT_PROP_MESSAGE_EXPIRY)) {
        wr_u8(w, MQTT_PROP_MESSAGE_EXPIRY);
        wr_u32(w, p->message_expiry);
    }
    if (HAS(MQTT_PROP_CONTENT_TYPE)) {
        wr_u8(w, MQTT_PROP_CONTENT_TYPE);
        wr_bin(w, p->content_type);
    }
    if (HAS(MQTT_PROP_RESPONSE_TOPIC)) {
        wr_u8(w, MQTT_PROP_RESPONSE_TOPIC);
        wr_bin(w, p->response_topic);
    }
    if (HAS(MQTT_PROP_CORRELATION_DATA)) {
        wr_u8(w, MQTT_PROP_CORRELATION_DATA);
        wr_bin(w, p->correlation_data);
    }
    if (HAS(MQTT_PROP_SUBSCRIPTION_ID)) {
        for (uint8_t i = 0; i < p->n_sub_ids && i < MQTT_MAX_SUB_IDS; i++) {
            wr_u8(w, MQTT_PROP_SUBSCRIPTION_ID);
            wr_varint(w, p->sub_ids[i]);
        }
    }
    if (HAS(MQTT_PROP_SESSION_EXPIRY)) {
        wr_u8(w, MQTT_PROP_SESSION_EXPIRY);
        wr_u32(w, p->session_expiry);
    }
    if (HAS(MQTT_PROP_ASSIGNED_CLIENT_ID)) {
        wr_u8(w, MQTT_PROP_ASSIGNED_CLIENT_ID);
        wr_bin(w, p->assigned_client_id);
    }
    if (HAS(MQTT_PROP_SERVER_KEEP_ALIVE)) {
        wr_u8(w, MQTT_PROP_SERVER_KEEP_ALIVE);
        wr_u16(w, p->server_keep_alive);
    }
    if (HAS(MQTT_PROP_AUTH_METHOD)) {
        wr_u8(w, MQTT_PROP_AUTH_METHOD);
        wr_bin(w, p->auth_method);
    }
    if (HAS(MQTT_PROP_AUTH_DATA)) {
        wr_u8(w, MQTT_PROP_AUTH_DATA);
        wr_bin(w, p->auth_data);
    }
    if (HAS(MQTT_PROP_REQUEST_PROBLEM_INFO)) {
        wr_u8(w, MQTT_PROP_REQUEST_PROBLEM_INFO);
        wr_u8(w, p->request_problem_info);
    }
    if (HAS(MQTT_PROP_WILL_DELAY)) {
        wr_u8(w, MQTT_PROP_WILL_DELAY);
        wr_u32(w, p->will_delay);
    }
    if (HAS(MQTT_PROP_REQUEST_RESPONSE_INFO)) {
        wr_u8(w, MQTT_PROP_REQUEST_RESPONSE_INFO);
        wr_u8(w, p->request_response_info);
    }
    if (HAS(MQTT_PROP_RESPONSE_INFO)) {
        wr_u8(w, MQTT_PROP_RESPONSE_INFO);
        wr_bin(w, p->response_info);
    }
    if (HAS(MQTT_PROP_SERVER_REFERENCE)) {
        wr_u8(w, MQTT_PROP_SERVER_REFERENCE);
        wr_bin(w, p->server_reference);
    }
    if (HAS(MQTT_PROP_REASON_STRING)) {
        wr_u8(w, MQTT_PROP_REASON_STRING);
        wr_bin(w, p->reason_string);
    }
    if (HAS(MQTT_PROP_RECEIVE_MAX)) {
        wr_u8(w, MQTT_PROP_RECEIVE_MAX);
        wr_u16(w, p->receive_max);
    }
    if (HAS(MQTT_PROP_TOPIC_ALIAS_MAX)) {
        wr_u8(w, MQTT_PROP_TOPIC_ALIAS_MAX);
        wr_u16(w, p->topic_alias_max);
    }
    if (HAS(MQTT_PROP_TOPIC_ALIAS)) {
        wr_u8(w, MQTT_PROP_TOPIC_ALIAS);
        wr_u16(w, p->topic_alias);
    }
    if (HAS(MQTT_PROP_MAX_QOS)) {
        wr_u8(w, MQTT_PROP_MAX_QOS);
        wr_u8(w, p->max_qos);
    }
    if (HAS(MQTT_PROP_RETAIN_AVAILABLE)) {
        wr_u8(w, MQTT_PROP_RETAIN_AVAILABLE);
        wr_u8(w, p->retain_available);
    }
    if (HAS(MQTT_PROP_MAX_PACKET_SIZE)) {
        wr_u8(w, MQTT_PROP_MAX_PACKET_SIZE);
        wr_u32(w, p->max_packet_size);
    }
    if (HAS(MQTT_PROP_WILDCARD_SUB_AVAILABLE)) {
        wr_u8(w, MQTT_PROP_WILDCARD_SUB_AVAILABLE);
        wr_u8(w, p->wildcard_sub_available);
    }
    if (HAS(MQTT_PROP_SUB_ID_AVAILABLE)) {
        wr_u8(w, MQTT_PROP_SUB_ID_AVAILABLE);
        wr_u8(w, p->sub_id_available);
    }
    if (HAS(MQTT_PROP_SHARED_SUB_AVAILABLE)) {
        wr_u8(w, MQTT_PROP_SHARED_SUB_AVAILABLE);
        wr_u8(w, p->shared_sub_available);
    }
#undef HAS
    if (p->raw.len)
        wr_user_props(w, p);
}

/* A property block: its length, then the properties. NULL means an empty block. */
static void wr_props(struct wr *w, const struct mqtt_props *p)
{
    if (!p) {
        wr_u8(w, 0);
        return;
    }
    struct wr count = {NULL, 0, 0, MQTT_OK};
    wr_props_body(&count, p);
    if (count.err) {
        w->err = count.err;
        return;
    }
    wr_varint(w, (uint32_t)(count.pos > MQTT_MAX_REMAINING ? MQTT_MAX_REMAINING + 1 : count.pos));
    wr_props_body(w, p);
}

typedef void (*body_fn)(struct wr *w, const void *ctx);

/* Writes the fixed header and the body, after counting the body. */
static int emit(uint8_t *buf, size_t cap, uint8_t first, body_fn body, const void *ctx,
                size_t *out_len)
{
    struct wr count = {NULL, 0, 0, MQTT_OK};
    body(&count, ctx);
    if (count.err)
        return count.err;
    if (count.pos > MQTT_MAX_REMAINING)
        return MQTT_ERR_ARG;
    size_t total = 1 + varint_len((uint32_t)count.pos) + count.pos;
    *out_len = total;
    if (!buf || total > cap)
        return MQTT_ERR_NOSPACE;
    struct wr w = {buf, cap, 0, MQTT_OK};
    wr_u8(&w, first);
    wr_varint(&w, (uint32_t)count.pos);
    body(&w, ctx);
    return w.err;
}

static void body_connect(struct wr *w, const void *ctx)
{
    const struct mqtt_connect *c = ctx;
    static const uint8_t name[] = {'M', 'Q', 'T', 'T'};
    wr_bin(w, (struct mqtt_bytes){name, 4});
    wr_u8(w, c->version);
    uint8_t flags = (uint8_t)((c->clean_start ? 0x02 : 0) |
                              (c->will ? 0x04 | (c->will_qos & 3) << 3 : 0) |
                              (c->will && c->will_retain ? 0x20 : 0) |
                              (c->has_password ? 0x40 : 0) | (c->has_username ? 0x80 : 0));
    wr_u8(w, flags);
    wr_u16(w, c->keep_alive);
    if (c->version == MQTT_V5)
        wr_props(w, &c->props);
    wr_bin(w, c->client_id);
    if (c->will) {
        if (c->version == MQTT_V5)
            wr_props(w, &c->will_props);
        wr_bin(w, c->will_topic);
        wr_bin(w, c->will_payload);
    }
    if (c->has_username)
        wr_bin(w, c->username);
    if (c->has_password)
        wr_bin(w, c->password);
}

int mqtt_encode_connect(uint8_t *buf, size_t cap, const struct mqtt_connect *c, size_t *out_len)
{
    if (c->version != MQTT_V311 && c->version != MQTT_V5)
        return MQTT_ERR_ARG;
    return emit(buf, cap, MQTT_CONNECT << 4, body_connect, c, out_len);
}

struct versioned {
    uint8_t version;
    const void *pkt;
};

static void body_connack(struct wr *w, const void *ctx)
{
    const struct versioned *v = ctx;
    const struct mqtt_connack *c = v->pkt;
    wr_u8(w, c->session_present ? 1 : 0);
    wr_u8(w, c->reason);
    if (v->version == MQTT_V5)
        wr_props(w, &c->props);
}

int mqtt_encode_connack(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_connack *c,
                        size_t *out_len)
{
    struct versioned v = {version, c};
    return emit(buf, cap, MQTT_CONNACK << 4, body_connack, &v, out_len);
}

static void body_publish(struct wr *w, const void *ctx)
{
    const struct versioned *v = ctx;
    const struct mqtt_publish *p = v->pkt;
    wr_bin(w, p->topic);
    if (p->qos > 0)
        wr_u16(w, p->packet_id);
    if (v->version == MQTT_V5)
        wr_props(w, &p->props);
    wr_raw(w, p->payload.data, p->payload.len);
}

int mqtt_encode_publish(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_publish *p,
                        size_t *out_len)
{
    if (p->qos > 2 || (p->qos > 0 && p->packet_id == 0))
        return MQTT_ERR_ARG;
    struct versioned v = {version, p};
    uint8_t first = (uint8_t)(MQTT_PUBLISH << 4 | (p->dup ? 0x08 : 0) | p->qos << 1 |
                              (p->retain ? 1 : 0));
    return emit(buf, cap, first, body_publish, &v, out_len);
}

static bool props_empty(const struct mqtt_props *p)
{
    return !p || (p->present == 0 && p->raw.len == 0);
}

static void body_ack(struct wr *w, const void *ctx)
{
    const struct versioned *v = ctx;
    const struct mqtt_ack *a = v->pkt;
    wr_u16(w, a->packet_id);
    if (v->version != MQTT_V5)
        return;
    /* 3.4.2.1: leave out a success reason with no properties (the shortest form). */
    if (a->reason == MQTT_RC_SUCCESS && props_empty(&a->props))
        return;
    wr_u8(w, a->reason);
    if (!props_empty(&a->props))
        wr_props(w, &a->props);
}

int mqtt_encode_ack(uint8_t *buf, size_t cap, uint8_t version, uint8_t type,
                    const struct mqtt_ack *a, size_t *out_len)
{
    if (type < MQTT_PUBACK || type > MQTT_PUBCOMP || a->packet_id == 0)
        return MQTT_ERR_ARG;
    struct versioned v = {version, a};
    uint8_t first = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0));
    return emit(buf, cap, first, body_ack, &v, out_len);
}

struct sub_ctx {
    uint8_t version;
    uint16_t packet_id;
    const struct mqtt_props *props;
    const struct mqtt_sub_entry *entries;
    const struct mqtt_bytes *filters;
    const uint8_t *reasons;
    size_t n;
};

static void body_subscribe(struct wr *w, const void *ctx)
{
    const struct sub_ctx *s = ctx;
    wr_u16(w, s->packet_id);
    if (s->version == MQTT_V5)
        wr_props(w, s->props);
    for (size_t i = 0; i < s->n; i++) {
        if (s->entries) {
            wr_bin(w, s->entries[i].filter);
            wr_u8(w, s->entries[i].options);
        } else {
            wr_bin(w, s->filters[i]);
        }
    }
}

int mqtt_encode_subscribe(uint8_t *buf, size_t cap, uint8_t version, uint16_t packet_id,
                          const struct mqtt_props *props, const struct mqtt_sub_entry *entries,
                          size_t n, size_t *out_len)
{
    if (n == 0 || packet_id == 0)
        return MQTT_ERR_ARG;
    struct sub_ctx s = {version, packet_id, props, entries, NULL, NULL, n};
    return emit(buf, cap, MQTT_SUBSCRIBE << 4 | 2, body_subscribe, &s, out_len);
}

int mqtt_encode_unsubscribe(uint8_t *buf, size_t cap, uint8_t version, uint16_t packet_id,
                            const struct mqtt_props *props, const struct mqtt_bytes *filters,
                            size_t n, size_t *out_len)
{
    if (n == 0 || packet_id == 0)
        return MQTT_ERR_ARG;
    struct sub_ctx s = {version, packet_id, props, NULL, filters, NULL, n};
    return emit(buf, cap, MQTT_UNSUBSCRIBE << 4 | 2, body_subscribe, &s, out_len);
}

static void body_suback(struct wr *w, const void *ctx)
{
    const struct sub_ctx *s = ctx;
    wr_u16(w, s->packet_id);
    if (s->version == MQTT_V5)
        wr_props(w, s->props);
    wr_raw(w, s->reasons, s->n);
}

int mqtt_encode_suback(uint8_t *buf, size_t cap, uint8_t version, uint8_t type,
                       uint16_t packet_id, const struct mqtt_props *props, const uint8_t *reasons,
                       size_t n, size_t *out_len)
{
    if (type != MQTT_SUBACK && type != MQTT_UNSUBACK)
        return MQTT_ERR_ARG;
    if (type == MQTT_UNSUBACK && version == MQTT_V311)
        n = 0; /* 3.1.1 UNSUBACK has no payload */
    struct sub_ctx s = {version, packet_id, props, NULL, NULL, reasons, n};
    return emit(buf, cap, (uint8_t)(type << 4), body_suback, &s, out_len);
}

static void body_empty(struct wr *w, const void *ctx)
{
    (void)w;
    (void)ctx;
}

int mqtt_encode_ping(uint8_t *buf, size_t cap, uint8_t type, size_t *out_len)
{
    if (type != MQTT_PINGREQ && type != MQTT_PINGRESP)
        return MQTT_ERR_ARG;
    return emit(buf, cap, (uint8_t)(type << 4), body_empty, NULL, out_len);
}

struct reason_ctx {
    uint8_t reason;
    const struct mqtt_props *props;
};

static void body_reason(struct wr *w, const void *ctx)
{
    const struct reason_ctx *r = ctx;
    /* 3.14.2.1 / 3.15.2.1: a success reason with no properties may be left out entirely. */
    if (r->reason == MQTT_RC_SUCCESS && props_empty(r->props))
        return;
    wr_u8(w, r->reason);
    if (!props_empty(r->props))
        wr_props(w, r->props);
}

int mqtt_encode_reason(uint8_t *buf, size_t cap, uint8_t version, uint8_t type, uint8_t reason,
                       const struct mqtt_props *props, size_t *out_len)
{
    if (type != MQTT_DISCONNECT && type != MQTT_AUTH)
        return MQTT_ERR_ARG;
    if (type == MQTT_AUTH && version != MQTT_V5)
        return MQTT_ERR_ARG;
    if (version != MQTT_V5)
        return emit(buf, cap, (uint8_t)(type << 4), body_empty, NULL, out_len);
    struct reason_ctx r = {reason, props};
    return emit(buf, cap, (uint8_t)(type << 4), body_reason, &r, out_len);
}

const char *mqtt_type_name(uint8_t type)
{
    static const char *const names[16] = {
        "RESERVED",  "CONNECT", "CONNACK",     "PUBLISH",  "PUBACK",  "PUBREC",
        "PUBREL",    "PUBCOMP", "SUBSCRIBE",   "SUBACK",   "UNSUBSCRIBE",
        "UNSUBACK",  "PINGREQ", "PINGRESP",    "DISCONNECT", "AUTH",
    };
    return names[type & 0x0f];
}

const char *mqtt_reason_name(uint8_t reason)
{
    switch (reason) {
    case 0x00: return "success";
    case 0x01: return "granted_qos1";
    case 0x02: return "granted_qos2";
    case 0x04: return "disconnect_with_will";
    case 0x10: return "no_matching_subscribers";
    case 0x11: return "no_subscription_existed";
    case 0x18: return "continue_authentication";
    case 0x19: return "re_authenticate";
    case 0x80: return "unspecified_error";
    case 0x81: return "malformed_packet";
    case 0x82: return "protocol_error";
    case 0x83: return "implementation_specific_error";
    case 0x84: return "unsupported_protocol_version";
    case 0x85: return "client_identifier_not_valid";
    case 0x86: return "bad_user_name_or_password";
    case 0x87: return "not_authorized";
    case 0x88: return "server_unavailable";
    case 0x89: return "server_busy";
    case 0x8A: return "banned";
    case 0x8B: return "server_shutting_down";
    case 0x8C: return "bad_authentication_method";
    case 0x8D: return "keep_alive_timeout";
    case 0x8E: return "session_taken_over";
    case 0x8F: return "topic_filter_invalid";
    case 0x90: return "topic_name_invalid";
    case 0x91: return "packet_identifier_in_use";
    case 0x92: return "packet_identifier_not_found";
    case 0x93: return "receive_maximum_exceeded";
    case 0x94: return "topic_alias_invalid";
    case 0x95: return "packet_too_large";
    case 0x97: return "quota_exceeded";
    case 0x98: return "administrative_action";
    case 0x99: return "payload_format_invalid";
    case 0x9A: return "retain_not_supported";
    case 0x9B: return "qos_not_supported";
    case 0x9E: return "shared_subscriptions_not_supported";
    case 0xA1: return "subscription_identifiers_not_supported";
    case 0xA2: return "wildcard_subscriptions_not_supported";
    default: return "unknown";
    }
}
