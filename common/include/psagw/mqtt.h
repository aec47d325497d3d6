/*
 * mqtt.h: the MQTT 3.1.1 / 5.0 packet codec shared by the gateway and the device.
 *
 * The codec never allocates. The decoder works in place: every string, binary field and
 * property it returns points into the caller's buffer, so the buffer must outlive the decoded
 * packet. Every length is checked against the buffer before it is used; the decoder never
 * reads past `len`. The encoders write into a caller-owned buffer and, when it is too small,
 * return MQTT_ERR_NOSPACE with the size they need in *out_len.
 *
 * References: MQTT Version 3.1.1 (OASIS Standard, 2014), MQTT Version 5.0 (OASIS Standard,
 * 2019). Section numbers in comments refer to MQTT 5.0 unless they say otherwise.
 */
#ifndef PSAGW_MQTT_H
#define PSAGW_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQTT_V311 4
#define MQTT_V5 5

/* Largest Remaining Length a 4-byte Variable Byte Integer can carry (section 1.5.5). */
#define MQTT_MAX_REMAINING 268435455u
/* Largest whole packet: 1 byte of type, 4 of length, the rest. */
#define MQTT_MAX_PACKET (MQTT_MAX_REMAINING + 5u)
/* A PUBLISH to a subscriber may carry one Subscription Identifier per matching subscription. */
#define MQTT_MAX_SUB_IDS 8

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* Codec results. Negative values are errors. */
enum mqtt_err {
    MQTT_OK = 0,
    MQTT_ERR_INCOMPLETE = -1, /* more bytes are needed (fixed header only) */
    MQTT_ERR_MALFORMED = -2,  /* violates the encoding rules: MQTT 5 reason 0x81 */
    MQTT_ERR_PROTOCOL = -3,   /* well-formed but not allowed: MQTT 5 reason 0x82 */
    MQTT_ERR_VERSION = -4,    /* CONNECT with a protocol we do not speak: CONNACK 0x84 / 0x01 */
    MQTT_ERR_NOSPACE = -5,    /* encoder: buffer too small, *out_len holds the size needed */
    MQTT_ERR_ARG = -6,        /* encoder: a field is out of range (e.g. string over 65535) */
};

/* MQTT 5 reason codes used by the gateway (section 2.4). */
enum mqtt_reason {
    MQTT_RC_SUCCESS = 0x00,
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTH = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPL_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_INVALID = 0x85,
    MQTT_RC_BAD_USER_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMIN_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,
    MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1.1 CONNACK return codes (3.1.1 section 3.2.2.3). */
enum mqtt_v3_connack {
    MQTT_V3_ACCEPTED = 0,
    MQTT_V3_BAD_VERSION = 1,
    MQTT_V3_ID_REJECTED = 2,
    MQTT_V3_UNAVAILABLE = 3,
    MQTT_V3_BAD_USER_OR_PASSWORD = 4,
    MQTT_V3_NOT_AUTHORIZED = 5,
};

/* Property identifiers (section 2.2.2.2). */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
    MQTT_PROP_SESSION_EXPIRY = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQTT_PROP_AUTH_METHOD = 0x15,
    MQTT_PROP_AUTH_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQTT_PROP_WILL_DELAY = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQTT_PROP_RESPONSE_INFO = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAX = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAX = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAX_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER_PROPERTY = 0x26,
    MQTT_PROP_MAX_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* A run of bytes inside some buffer: a UTF-8 string, binary data, or a raw field. */
struct mqtt_bytes {
    const uint8_t *data;
    size_t len;
};

/*
 * The properties of one packet (MQTT 5 only; always empty in 3.1.1).
 * `present` has bit (1 << id) set for each property that is there. User properties are not
 * copied out: `raw` spans the whole property block as received, and mqtt_props_next_user()
 * walks the user properties in it. When encoding, the user properties found in `raw` (if it is
 * set) are written out as they are, which is how the gateway passes them through unchanged.
 */
struct mqtt_props {
    uint64_t present;
    uint8_t payload_format;
    uint8_t request_problem_info;
    uint8_t request_response_info;
    uint8_t max_qos;
    uint8_t retain_available;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    uint16_t server_keep_alive;
    uint16_t receive_max;
    uint16_t topic_alias_max;
    uint16_t topic_alias;
    uint32_t message_expiry;
    uint32_t session_expiry;
    uint32_t will_delay;
    uint32_t max_packet_size;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS];
    uint8_t n_sub_ids;
    uint16_t n_user;
    struct mqtt_bytes content_type;
    struct mqtt_bytes response_topic;
    struct mqtt_bytes correlation_data;
    struct mqtt_bytes assigned_client_id;
    struct mqtt_bytes auth_method;
    struct mqtt_bytes auth_data;
    struct mqtt_bytes response_info;
    struct mqtt_bytes server_reference;
    struct mqtt_bytes reason_string;
    struct mqtt_bytes raw;
};

static inline bool mqtt_props_has(const struct mqtt_props *p, enum mqtt_prop_id id)
{
    return (p->present >> id) & 1u;
}

static inline void mqtt_props_set(struct mqtt_props *p, enum mqtt_prop_id id)
{
    p->present |= (uint64_t)1 << id;
}

struct mqtt_connect {
    uint8_t version; /* MQTT_V311 or MQTT_V5 */
    bool clean_start;
    uint16_t keep_alive;
    struct mqtt_bytes client_id;
    bool will;
    uint8_t will_qos;
    bool will_retain;
    struct mqtt_props will_props;
    struct mqtt_bytes will_topic;
    struct mqtt_bytes will_payload;
    bool has_username;
    bool has_password;
    struct mqtt_bytes username;
    struct mqtt_bytes password;
    struct mqtt_props props;
};

struct mqtt_connack {
    bool session_present;
    uint8_t reason; /* MQTT 5 reason code, or the 3.1.1 return code */
    struct mqtt_props props;
};

struct mqtt_publish {
    bool dup;
    uint8_t qos;
    bool retain;
    struct mqtt_bytes topic;
    uint16_t packet_id; /* QoS 1 and 2 only */
    struct mqtt_props props;
    struct mqtt_bytes payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t reason;
    struct mqtt_props props;
};

/* Subscription options byte (section 3.8.3.1). */
#define MQTT_SUBOPT_QOS_MASK 0x03u
#define MQTT_SUBOPT_NO_LOCAL 0x04u
#define MQTT_SUBOPT_RETAIN_AS_PUBLISHED 0x08u
#define MQTT_SUBOPT_RETAIN_HANDLING_SHIFT 4

struct mqtt_sub_entry {
    struct mqtt_bytes filter;
    uint8_t options;
};

/* SUBSCRIBE and UNSUBSCRIBE: the entries stay encoded; walk them with the _next functions. */
struct mqtt_subscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    struct mqtt_bytes entries;
    size_t count;
};

/* SUBACK and UNSUBACK: one reason code per entry. */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_props props;
    struct mqtt_bytes reasons;
};

/* DISCONNECT and AUTH. */
struct mqtt_reason_packet {
    uint8_t reason;
    struct mqtt_props props;
};

struct mqtt_packet {
    uint8_t type;  /* enum mqtt_type */
    uint8_t flags; /* low nibble of the first byte */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;
        struct mqtt_subscribe subscribe; /* also UNSUBSCRIBE */
        struct mqtt_suback suback;       /* also UNSUBACK */
        struct mqtt_reason_packet reason; /* DISCONNECT, AUTH */
    } u;
};

/*
 * Reads the fixed header at buf[0..len). On MQTT_OK sets *first (type << 4 | flags),
 * *remaining (the Remaining Length) and *header_len (1 + the length's bytes).
 * MQTT_ERR_INCOMPLETE: buf ends inside the header. MQTT_ERR_MALFORMED: the length takes more
 * than 4 bytes (section 1.5.5).
 */
int mqtt_fixed_header(const uint8_t *buf, size_t len, uint8_t *first, uint32_t *remaining,
                      size_t *header_len);

/*
 * Decodes one whole packet: buf[0..len) must be exactly the fixed header and the remaining
 * length it announces. `version` is the connection's protocol version (ignored for CONNECT,
 * whose own version is returned in pkt->u.connect.version). Returns MQTT_OK or a negative
 * enum mqtt_err. All pointers in *pkt point into buf.
 */
int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, struct mqtt_packet *pkt);

/* Walk SUBSCRIBE entries: *off starts at 0; returns false after the last entry. */
bool mqtt_subscribe_next(const struct mqtt_subscribe *s, uint8_t version, size_t *off,
                         struct mqtt_sub_entry *entry);
/* Walk UNSUBSCRIBE filters the same way. */
bool mqtt_unsubscribe_next(const struct mqtt_subscribe *s, size_t *off, struct mqtt_bytes *filter);
/* Walk the user properties of a decoded property block: *off starts at 0. */
bool mqtt_props_next_user(const struct mqtt_props *p, size_t *off, struct mqtt_bytes *key,
                          struct mqtt_bytes *value);

/* True if s is well-formed UTF-8 as MQTT requires (section 1.5.4): no U+0000, no surrogates. */
bool mqtt_utf8_valid(const uint8_t *s, size_t len);
/* Topic name (PUBLISH): non-empty (unless an alias supplies it), valid UTF-8, no '+' or '#'. */
bool mqtt_topic_name_valid(const uint8_t *s, size_t len);
/* Topic filter (SUBSCRIBE): non-empty; '+' fills a whole level; '#' only as the last level. */
bool mqtt_topic_filter_valid(const uint8_t *s, size_t len);
/* Does topic name `topic` match filter `filter` (section 4.7)? '$' topics are not matched by a
 * leading wildcard. */
bool mqtt_topic_matches(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen);

/*
 * Encoders. Each writes one complete packet into buf[0..cap) and sets *out_len to its size.
 * If cap is too small nothing useful is written, MQTT_ERR_NOSPACE is returned and *out_len
 * holds the size needed (so a NULL buf with cap 0 asks for the size).
 */
int mqtt_encode_connect(uint8_t *buf, size_t cap, const struct mqtt_connect *c, size_t *out_len);
int mqtt_encode_connack(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_connack *c,
                        size_t *out_len);
int mqtt_encode_publish(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_publish *p,
                        size_t *out_len);
/* type: MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL or MQTT_PUBCOMP. */
int mqtt_encode_ack(uint8_t *buf, size_t cap, uint8_t version, uint8_t type,
                    const struct mqtt_ack *a, size_t *out_len);
int mqtt_encode_subscribe(uint8_t *buf, size_t cap, uint8_t version, uint16_t packet_id,
                          const struct mqtt_props *props, const struct mqtt_sub_entry *entries,
                          size_t n, size_t *out_len);
int mqtt_encode_unsubscribe(uint8_t *buf, size_t cap, uint8_t version, uint16_t packet_id,
                            const struct mqtt_props *props, const struct mqtt_bytes *filters,
                            size_t n, size_t *out_len);
/* type: MQTT_SUBACK or MQTT_UNSUBACK (3.1.1 UNSUBACK carries no reason codes). */
int mqtt_encode_suback(uint8_t *buf, size_t cap, uint8_t version, uint8_t type,
                       uint16_t packet_id, const struct mqtt_props *props, const uint8_t *reasons,
                       size_t n, size_t *out_len);
/* type: MQTT_PINGREQ or MQTT_PINGRESP. */
int mqtt_encode_ping(uint8_t *buf, size_t cap, uint8_t type, size_t *out_len);
/* type: MQTT_DISCONNECT or MQTT_AUTH (AUTH: MQTT 5 only). */
int mqtt_encode_reason(uint8_t *buf, size_t cap, uint8_t version, uint8_t type, uint8_t reason,
                       const struct mqtt_props *props, size_t *out_len);

/* Human-readable names, for logs. */
const char *mqtt_type_name(uint8_t type);
const char *mqtt_reason_name(uint8_t reason);

#endif
