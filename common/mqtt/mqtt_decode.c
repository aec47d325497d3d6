/*
 * mqtt_decode.c: parses MQTT 3.1.1 and 5.0 packets in place.
 *
 * Input is hostile. Every read goes through `struct rd`, whose functions check the remaining
 * length before touching a byte and latch an error; the packet decoders then check that the
 * whole Remaining Length was consumed (trailing bytes are malformed). Malformed (0x81) and
 * protocol error (0x82) are kept apart as section 4.13 asks; where the specification leaves the
 * choice to us, the code says which and why.
 */
#include "psagw/mqtt.h"

#include <string.h>

struct rd {
    const uint8_t *p;
    size_t len;
    size_t pos;
    int err; /* first error, MQTT_OK while none */
};

static void rd_fail(struct rd *r, int err)
{
    if (r->err == MQTT_OK)
        r->err = err;
    r->pos = r->len; /* stop every later read */
}

static size_t rd_left(const struct rd *r)
{
    return r->len - r->pos;
}

static uint8_t rd_u8(struct rd *r)
{
    if (rd_left(r) < 1) {
        rd_fail(r, MQTT_ERR_MALFORMED);
        return 0;
    }
    return r->p[r->pos++];
}

static uint16_t rd_u16(struct rd *r)
{
    if (rd_left(r) < 2) {
        rd_fail(r, MQTT_ERR_MALFORMED);
        return 0;
    }
    uint16_t v = (uint16_t)(r->p[r->pos] << 8 | r->p[r->pos + 1]);
    r->pos += 2;
    return v;
}

static uint32_t rd_u32(struct rd *r)
{
    if (rd_left(r) < 4) {
        rd_fail(r, MQTT_ERR_MALFORMED);
        return 0;
    }
    const uint8_t *b = r->p + r->pos;
    r->pos += 4;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Variable Byte Integer (section 1.5.5): at most 4 bytes. */
static uint32_t rd_varint(struct rd *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t b = rd_u8(r);
        if (r->err)
            return 0;
        v |= (uint32_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            return v;
    }
    rd_fail(r, MQTT_ERR_MALFORMED);
    return 0;
}

static struct mqtt_bytes rd_take(struct rd *r, size_t n)
{
    struct mqtt_bytes b = {NULL, 0};
    if (rd_left(r) < n) {
        rd_fail(r, MQTT_ERR_MALFORMED);
        return b;
    }
    b.data = r->p + r->pos;
    b.len = n;
    r->pos += n;
    return b;
}

/* Binary Data (section 1.5.6): two-byte length, then the bytes. */
static struct mqtt_bytes rd_bin(struct rd *r)
{
    uint16_t n = rd_u16(r);
    return rd_take(r, n);
}

/* UTF-8 Encoded String (section 1.5.4); an ill-formed string is a malformed packet. */
static struct mqtt_bytes rd_str(struct rd *r)
{
    struct mqtt_bytes s = rd_bin(r);
    if (!r->err && !mqtt_utf8_valid(s.data, s.len))
        rd_fail(r, MQTT_ERR_MALFORMED);
    return s;
}

bool mqtt_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t n;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            cp = c & 0x1f;
            n = 1;
        } else if ((c & 0xf0) == 0xe0) {
            cp = c & 0x0f;
            n = 2;
        } else if ((c & 0xf8) == 0xf0) {
            cp = c & 0x07;
            n = 3;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        /* overlong forms, surrogates, beyond Unicode */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
            return false;
        if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += n + 1;
    }
    return true;
}

bool mqtt_topic_name_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || !mqtt_utf8_valid(s, len))
        return false;
    return memchr(s, '+', len) == NULL && memchr(s, '#', len) == NULL;
}

bool mqtt_topic_filter_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || !mqtt_utf8_valid(s, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        bool level_start = i == 0 || s[i - 1] == '/';
        bool level_end = i + 1 == len || s[i + 1] == '/';
        if (s[i] == '+' && !(level_start && level_end))
            return false;
        if (s[i] == '#' && !(level_start && i + 1 == len))
            return false;
    }
    return true;
}

bool mqtt_topic_matches(const uint8_t *f, size_t flen, const uint8_t *t, size_t tlen)
{
    size_t fi = 0, ti = 0;
    /* Section 4.7.2: a filter starting with a wildcard does not match a '$' topic. */
    if (tlen > 0 && t[0] == '$' && flen > 0 && (f[0] == '+' || f[0] == '#'))
        return false;
    for (;;) {
        if (fi < flen && f[fi] == '#')
            return true; /* matches this level and all below, and the parent ("a/#" ~ "a") */
        if (fi < flen && f[fi] == '+') {
            fi++;
            while (ti < tlen && t[ti] != '/')
                ti++;
        } else {
            while (fi < flen && ti < tlen && f[fi] != '/' && t[ti] != '/') {
                if (f[fi] != t[ti])
                    return false;
                fi++;
                ti++;
            }
            if ((fi < flen && f[fi] != '/') || (ti < tlen && t[ti] != '/'))
                return false;
        }
        /* both are now at a '/' or at their end */
        if (fi == flen && ti == tlen)
            return true;
        if (ti == tlen) {
            /* topic ended: only "/#" may remain in the filter */
            return flen - fi == 2 && f[fi] == '/' && f[fi + 1] == '#';
        }
        if (fi == flen)
            return false;
        fi++; /* skip '/' */
        ti++;
    }
}

int mqtt_fixed_header(const uint8_t *buf, size_t len, uint8_t *first, uint32_t *remaining,
                      size_t *header_len)
{
    if (len < 2)
        return MQTT_ERR_INCOMPLETE;
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (1 + i >= len)
            return MQTT_ERR_INCOMPLETE;
        uint8_t b = buf[1 + i];
        v |= (uint32_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *first = buf[0];
            *remaining = v;
            *header_len = 2 + i;
            return MQTT_OK;
        }
    }
    return MQTT_ERR_MALFORMED;
}

/* Property tables (section 2.2.2.2): where each property may appear, and its value type. */
#define IN(t) (1u << (t))
#define IN_WILL 1u /* bit 0: the Will Properties of a CONNECT */

enum prop_type { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_STR, PT_BIN, PT_PAIR };

struct prop_info {
    uint8_t type;
    uint16_t where;
};

#define ALL_PACKETS                                                                               \
    (IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_PUBLISH) | IN_WILL | IN(MQTT_PUBACK) |         \
     IN(MQTT_PUBREC) | IN(MQTT_PUBREL) | IN(MQTT_PUBCOMP) | IN(MQTT_SUBSCRIBE) |                  \
     IN(MQTT_SUBACK) | IN(MQTT_UNSUBSCRIBE) | IN(MQTT_UNSUBACK) | IN(MQTT_DISCONNECT) |           \
     IN(MQTT_AUTH))

static const struct prop_info prop_table[0x2B] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = {PT_BYTE, IN(MQTT_PUBLISH) | IN_WILL},
    [MQTT_PROP_MESSAGE_EXPIRY] = {PT_U32, IN(MQTT_PUBLISH) | IN_WILL},
    [MQTT_PROP_CONTENT_TYPE] = {PT_STR, IN(MQTT_PUBLISH) | IN_WILL},
    [MQTT_PROP_RESPONSE_TOPIC] = {PT_STR, IN(MQTT_PUBLISH) | IN_WILL},
    [MQTT_PROP_CORRELATION_DATA] = {PT_BIN, IN(MQTT_PUBLISH) | IN_WILL},
    [MQTT_PROP_SUBSCRIPTION_ID] = {PT_VARINT, IN(MQTT_PUBLISH) | IN(MQTT_SUBSCRIBE)},
    [MQTT_PROP_SESSION_EXPIRY] = {PT_U32,
                                  IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_DISCONNECT)},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {PT_STR, IN(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {PT_U16, IN(MQTT_CONNACK)},
    [MQTT_PROP_AUTH_METHOD] = {PT_STR, IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_AUTH)},
    [MQTT_PROP_AUTH_DATA] = {PT_BIN, IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_AUTH)},
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {PT_BYTE, IN(MQTT_CONNECT)},
    [MQTT_PROP_WILL_DELAY] = {PT_U32, IN_WILL},
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {PT_BYTE, IN(MQTT_CONNECT)},
    [MQTT_PROP_RESPONSE_INFO] = {PT_STR, IN(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_REFERENCE] = {PT_STR, IN(MQTT_CONNACK) | IN(MQTT_DISCONNECT)},
    [MQTT_PROP_REASON_STRING] = {PT_STR, IN(MQTT_CONNACK) | IN(MQTT_PUBACK) | IN(MQTT_PUBREC) |
                                             IN(MQTT_PUBREL) | IN(MQTT_PUBCOMP) |
                                             IN(MQTT_SUBACK) | IN(MQTT_UNSUBACK) |
                                             IN(MQTT_DISCONNECT) | IN(MQTT_AUTH)},
    [MQTT_PROP_RECEIVE_MAX] = {PT_U16, IN(MQTT_CONNECT) | IN(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS_MAX] = {PT_U16, IN(MQTT_CONNECT) | IN(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS] = {PT_U16, IN(MQTT_PUBLISH)},
    [MQTT_PROP_MAX_QOS] = {PT_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_RETAIN_AVAILABLE] = {PT_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_USER_PROPERTY] = {PT_PAIR, ALL_PACKETS},
    [MQTT_PROP_MAX_PACKET_SIZE] = {PT_U32, IN(MQTT_CONNECT) | IN(MQTT_CONNACK)},
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {PT_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {PT_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {PT_BYTE, IN(MQTT_CONNACK)},
};

/*
 * Reads a property block (length, then properties) for packet `where` (IN(type) or IN_WILL).
 * A property that does not belong in this packet, a repeated one, or a value out of range is a
 * protocol error (section 2.2.2.2); a truncated one is malformed.
 */
static void rd_props(struct rd *r, uint16_t where, struct mqtt_props *p)
{
    memset(p, 0, sizeof(*p));
    uint32_t n = rd_varint(r);
    if (r->err)
        return;
    if (n > rd_left(r)) {
        rd_fail(r, MQTT_ERR_MALFORMED);
        return;
    }
    struct rd in = {r->p + r->pos, n, 0, MQTT_OK};
    p->raw.data = in.p;
    p->raw.len = n;
    r->pos += n;

    while (rd_left(&in) > 0 && !in.err) {
        uint32_t id = rd_varint(&in);
        if (in.err)
            break;
        if (id >= sizeof(prop_table) / sizeof(prop_table[0]) || prop_table[id].type == PT_NONE) {
            rd_fail(&in, MQTT_ERR_MALFORMED); /* unknown identifier: cannot even skip it */
            break;
        }
        if (!(prop_table[id].where & where)) {
            rd_fail(&in, MQTT_ERR_PROTOCOL);
            break;
        }
        bool repeatable = id == MQTT_PROP_USER_PROPERTY ||
                          (id == MQTT_PROP_SUBSCRIPTION_ID && where == IN(MQTT_PUBLISH));
        if (!repeatable && mqtt_props_has(p, (enum mqtt_prop_id)id)) {
            rd_fail(&in, MQTT_ERR_PROTOCOL);
            break;
        }
        mqtt_props_set(p, (enum mqtt_prop_id)id);
        switch (id) {
        case MQTT_PROP_PAYLOAD_FORMAT:
            p->payload_format = rd_u8(&in);
            break;
        case MQTT_PROP_REQUEST_PROBLEM_INFO:
            p->request_problem_info = rd_u8(&in);
            break;
        case MQTT_PROP_REQUEST_RESPONSE_INFO:
            p->request_response_info = rd_u8(&in);
            break;
        case MQTT_PROP_MAX_QOS:
            p->max_qos = rd_u8(&in);
            break;
        case MQTT_PROP_RETAIN_AVAILABLE:
            p->retain_available = rd_u8(&in);
            break;
        case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
            p->wildcard_sub_available = rd_u8(&in);
            break;
        case MQTT_PROP_SUB_ID_AVAILABLE:
            p->sub_id_available = rd_u8(&in);
            break;
        case MQTT_PROP_SHARED_SUB_AVAILABLE:
            p->shared_sub_available = rd_u8(&in);
            break;
        case MQTT_PROP_SERVER_KEEP_ALIVE:
            p->server_keep_alive = rd_u16(&in);
            break;
        case MQTT_PROP_RECEIVE_MAX:
            p->receive_max = rd_u16(&in);
            if (!in.err && p->receive_max == 0)
                rd_fail(&in, MQTT_ERR_PROTOCOL);
            break;
        case MQTT_PROP_TOPIC_ALIAS_MAX:
            p->topic_alias_max = rd_u16(&in);
            break;
        case MQTT_PROP_TOPIC_ALIAS:
            p->topic_alias = rd_u16(&in);
            break;
        case MQTT_PROP_MESSAGE_EXPIRY:
            p->message_expiry = rd_u32(&in);
            break;
        case MQTT_PROP_SESSION_EXPIRY:
            p->session_expiry = rd_u32(&in);
            break;
        case MQTT_PROP_WILL_DELAY:
            p->will_delay = rd_u32(&in);
            break;
        case MQTT_PROP_MAX_PACKET_SIZE:
            p->max_packet_size = rd_u32(&in);
            if (!in.err && p->max_packet_size == 0)
                rd_fail(&in, MQTT_ERR_PROTOCOL);
            break;
        case MQTT_PROP_SUBSCRIPTION_ID: {
            uint32_t v = rd_varint(&in);
            if (!in.err && v == 0)
                rd_fail(&in, MQTT_ERR_PROTOCOL);
            if (!in.err && p->n_sub_ids < MQTT_MAX_SUB_IDS)
                p->sub_ids[p->n_sub_ids++] = v;
            break;
        }
        case MQTT_PROP_CONTENT_TYPE:
            p->content_type = rd_str(&in);
            break;
        case MQTT_PROP_RESPONSE_TOPIC:
            p->response_topic = rd_str(&in);
            break;
        case MQTT_PROP_ASSIGNED_CLIENT_ID:
            p->assigned_client_id = rd_str(&in);
            break;
        case MQTT_PROP_AUTH_METHOD:
            p->auth_method = rd_str(&in);
            break;
        case MQTT_PROP_RESPONSE_INFO:
            p->response_info = rd_str(&in);
            break;
        case MQTT_PROP_SERVER_REFERENCE:
            p->server_reference = rd_str(&in);
            break;
        case MQTT_PROP_REASON_STRING:
            p->reason_string = rd_str(&in);
            break;
        case MQTT_PROP_CORRELATION_DATA:
            p->correlation_data = rd_bin(&in);
            break;
        case MQTT_PROP_AUTH_DATA:
            p->auth_data = rd_bin(&in);
            break;
        case MQTT_PROP_USER_PROPERTY:
            rd_str(&in);
            rd_str(&in);
            p->n_user++;
            break;
        }
        /* every byte property is a boolean, or Maximum QoS (0 or 1): others are errors */
        if (!in.err && prop_table[id].type == PT_BYTE && in.p[in.pos - 1] > 1)
            rd_fail(&in, MQTT_ERR_PROTOCOL);
    }
    if (in.err)
        rd_fail(r, in.err);
}

bool mqtt_props_next_user(const struct mqtt_props *p, size_t *off, struct mqtt_bytes *key,
                          struct mqtt_bytes *value)
{
    struct rd r = {p->raw.data, p->raw.len, *off, MQTT_OK};
    while (rd_left(&r) > 0) {
        uint32_t id = rd_varint(&r);
        if (r.err || id >= sizeof(prop_table) / sizeof(prop_table[0]))
            return false;
        switch (prop_table[id].type) {
        case PT_BYTE:
            rd_u8(&r);
            break;
        case PT_U16:
            rd_u16(&r);
            break;
        case PT_U32:
            rd_u32(&r);
            break;
        case PT_VARINT:
            rd_varint(&r);
            break;
        case PT_STR:
        case PT_BIN:
            rd_bin(&r);
            break;
        case PT_PAIR:
            *key = rd_bin(&r);
            *value = rd_bin(&r);
            if (r.err)
                return false;
            *off = r.pos;
            return true;
        default:
            return false;
        }
        if (r.err)
            return false;
    }
    *off = r.pos;
    return false;
}

static int finish(struct rd *r)
{
    if (r->err)
        return r->err;
    return rd_left(r) == 0 ? MQTT_OK : MQTT_ERR_MALFORMED;
}

static int decode_connect(struct rd *r, struct mqtt_connect *c)
{
    memset(c, 0, sizeof(*c));
    struct mqtt_bytes name = rd_bin(r);
    uint8_t level = rd_u8(r);
    if (r->err)
        return r->err;
    if (name.len == 6 && memcmp(name.data, "MQIsdp", 6) == 0)
        return MQTT_ERR_VERSION; /* MQTT 3.1 */
    if (name.len != 4 || memcmp(name.data, "MQTT", 4) != 0)
        return MQTT_ERR_MALFORMED;
    if (level != MQTT_V311 && level != MQTT_V5)
        return MQTT_ERR_VERSION;
    c->version = level;
    uint8_t flags = rd_u8(r);
    c->keep_alive = rd_u16(r);
    if (r->err)
        return r->err;
    if (flags & 0x01)
        return MQTT_ERR_MALFORMED; /* reserved flag (3.1.2.3) */
    c->clean_start = flags & 0x02;
    c->will = flags & 0x04;
    c->will_qos = (flags >> 3) & 3;
    c->will_retain = flags & 0x20;
    c->has_password = flags & 0x40;
    c->has_username = flags & 0x80;
    if (c->will_qos == 3)
        return MQTT_ERR_MALFORMED;
    if (!c->will && (c->will_qos != 0 || c->will_retain))
        return MQTT_ERR_MALFORMED;
    /* 3.1.1 section 3.1.2.9: a password needs a user name; MQTT 5 dropped that rule. */
    if (level == MQTT_V311 && c->has_password && !c->has_username)
        return MQTT_ERR_MALFORMED;
    if (level == MQTT_V5)
        rd_props(r, IN(MQTT_CONNECT), &c->props);
    c->client_id = rd_str(r);
    if (c->will) {
        if (level == MQTT_V5)
            rd_props(r, IN_WILL, &c->will_props);
        c->will_topic = rd_str(r);
        c->will_payload = rd_bin(r);
    }
    if (c->has_username)
        c->username = rd_str(r);
    if (c->has_password)
        c->password = rd_bin(r);
    return finish(r);
}

static int decode_connack(struct rd *r, uint8_t version, struct mqtt_connack *c)
{
    memset(c, 0, sizeof(*c));
    uint8_t ack = rd_u8(r);
    c->reason = rd_u8(r);
    if (r->err)
        return r->err;
    if (ack & 0xfe)
        return MQTT_ERR_MALFORMED;
    c->session_present = ack & 1;
    if (version == MQTT_V5)
        rd_props(r, IN(MQTT_CONNACK), &c->props);
    return finish(r);
}

static int decode_publish(struct rd *r, uint8_t version, uint8_t flags, struct mqtt_publish *p)
{
    memset(p, 0, sizeof(*p));
    p->dup = flags & 0x08;
    p->qos = (flags >> 1) & 3;
    p->retain = flags & 0x01;
    if (p->qos == 3)
        return MQTT_ERR_MALFORMED;
    if (p->qos == 0 && p->dup)
        return MQTT_ERR_MALFORMED; /* 3.3.1.1 */
    p->topic = rd_str(r);
    if (p->qos > 0) {
        p->packet_id = rd_u16(r);
        if (!r->err && p->packet_id == 0)
            return MQTT_ERR_MALFORMED;
    }
    if (version == MQTT_V5)
        rd_props(r, IN(MQTT_PUBLISH), &p->props);
    if (r->err)
        return r->err;
    p->payload = rd_take(r, rd_left(r));
    return finish(r);
}

static int decode_ack(struct rd *r, uint8_t version, uint8_t type, struct mqtt_ack *a)
{
    memset(a, 0, sizeof(*a));
    a->packet_id = rd_u16(r);
    if (r->err)
        return r->err;
    if (a->packet_id == 0)
        return MQTT_ERR_MALFORMED;
    /* 3.4.2.1: a reason code and properties may be left out when they are 0 / empty. */
    if (version == MQTT_V5 && rd_left(r) > 0) {
        a->reason = rd_u8(r);
        if (rd_left(r) > 0)
            rd_props(r, IN(type), &a->props);
    }
    return finish(r);
}

static int decode_subscribe(struct rd *r, uint8_t version, uint8_t type, struct mqtt_subscribe *s)
{
    memset(s, 0, sizeof(*s));
    s->packet_id = rd_u16(r);
    if (!r->err && s->packet_id == 0)
        return MQTT_ERR_MALFORMED;
    if (version == MQTT_V5)
        rd_props(r, IN(type), &s->props);
    if (r->err)
        return r->err;
    s->entries.data = r->p + r->pos;
    s->entries.len = rd_left(r);
    while (rd_left(r) > 0 && !r->err) {
        rd_str(r);
        if (type == MQTT_SUBSCRIBE) {
            uint8_t o = rd_u8(r);
            if (r->err)
                break;
            if ((o & MQTT_SUBOPT_QOS_MASK) == 3)
                return MQTT_ERR_MALFORMED;
            if (version == MQTT_V311 && (o & 0xfc))
                return MQTT_ERR_MALFORMED; /* 3.1.1 section 3.8.3.1 */
            if (version == MQTT_V5 && (o & 0xc0))
                return MQTT_ERR_MALFORMED;
            if (version == MQTT_V5 && (o >> MQTT_SUBOPT_RETAIN_HANDLING_SHIFT & 3) == 3)
                return MQTT_ERR_PROTOCOL;
        }
        s->count++;
    }
    if (r->err)
        return r->err;
    if (s->count == 0)
        return MQTT_ERR_PROTOCOL; /* 3.8.3: at least one topic filter */
    return MQTT_OK;
}

static int decode_suback(struct rd *r, uint8_t version, uint8_t type, struct mqtt_suback *s)
{
    memset(s, 0, sizeof(*s));
    s->packet_id = rd_u16(r);
    if (version == MQTT_V5)
        rd_props(r, IN(type), &s->props);
    if (r->err)
        return r->err;
    s->reasons = rd_take(r, rd_left(r));
    if (type == MQTT_SUBACK && s->reasons.len == 0)
        return MQTT_ERR_PROTOCOL;
    if (type == MQTT_UNSUBACK && version == MQTT_V311 && s->reasons.len != 0)
        return MQTT_ERR_MALFORMED;
    return finish(r);
}

static int decode_reason(struct rd *r, uint8_t version, uint8_t type,
                         struct mqtt_reason_packet *d)
{
    memset(d, 0, sizeof(*d));
    if (version != MQTT_V5)
        return finish(r); /* 3.1.1 DISCONNECT has no variable header */
    if (rd_left(r) > 0) {
        d->reason = rd_u8(r);
        if (rd_left(r) > 0)
            rd_props(r, IN(type), &d->props);
    }
    if (type == MQTT_AUTH && !r->err &&
        d->reason != MQTT_RC_SUCCESS && d->reason != MQTT_RC_CONTINUE_AUTH &&
        d->reason != MQTT_RC_REAUTHENTICATE)
        return MQTT_ERR_PROTOCOL;
    return finish(r);
}

/* Required fixed-header flags per type (section 2.1.3); PUBLISH is checked on its own. */
static const int8_t required_flags[16] = {
    -1, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0,
};

int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, struct mqtt_packet *pkt)
{
    uint8_t first;
    uint32_t remaining;
    size_t hlen;
    int rc = mqtt_fixed_header(buf, len, &first, &remaining, &hlen);
    if (rc == MQTT_ERR_INCOMPLETE)
        return MQTT_ERR_MALFORMED; /* the caller promised a whole packet */
    if (rc != MQTT_OK)
        return rc;
    if ((size_t)remaining != len - hlen)
        return MQTT_ERR_MALFORMED;

    memset(pkt, 0, sizeof(*pkt));
    pkt->type = first >> 4;
    pkt->flags = first & 0x0f;
    if (pkt->type == 0)
        return MQTT_ERR_MALFORMED;
    if (pkt->type != MQTT_PUBLISH && pkt->flags != required_flags[pkt->type])
        return MQTT_ERR_MALFORMED;
    if (pkt->type == MQTT_AUTH && version != MQTT_V5)
        return MQTT_ERR_MALFORMED; /* reserved type 15 in 3.1.1 */

    struct rd r = {buf + hlen, remaining, 0, MQTT_OK};
    switch (pkt->type) {
    case MQTT_CONNECT:
        return decode_connect(&r, &pkt->u.connect);
    case MQTT_CONNACK:
        return decode_connack(&r, version, &pkt->u.connack);
    case MQTT_PUBLISH:
        return decode_publish(&r, version, pkt->flags, &pkt->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return decode_ack(&r, version, pkt->type, &pkt->u.ack);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return decode_subscribe(&r, version, pkt->type, &pkt->u.subscribe);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return decode_suback(&r, version, pkt->type, &pkt->u.suback);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return finish(&r);
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return decode_reason(&r, version, pkt->type, &pkt->u.reason);
    }
    return MQTT_ERR_MALFORMED;
}

bool mqtt_subscribe_next(const struct mqtt_subscribe *s, uint8_t version, size_t *off,
                         struct mqtt_sub_entry *entry)
{
    (void)version;
    struct rd r = {s->entries.data, s->entries.len, *off, MQTT_OK};
    if (rd_left(&r) == 0)
        return false;
    entry->filter = rd_bin(&r);
    entry->options = rd_u8(&r);
    if (r.err)
        return false;
    *off = r.pos;
    return true;
}

bool mqtt_unsubscribe_next(const struct mqtt_subscribe *s, size_t *off, struct mqtt_bytes *filter)
{
    struct rd r = {s->entries.data, s->entries.len, *off, MQTT_OK};
    if (rd_left(&r) == 0)
        return false;
    *filter = rd_bin(&r);
    if (r.err)
        return false;
    *off = r.pos;
    return true;
}
