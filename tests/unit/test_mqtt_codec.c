/*
 * Unit tests of the shared MQTT codec: every packet type in both protocol versions, every
 * property, the Remaining Length boundaries, and malformed or truncated input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "psagw/mqtt.h"

#define B(s) ((struct mqtt_bytes){(const uint8_t *)(s), sizeof(s) - 1})

static uint8_t buf[4096];

static size_t enc_check(int rc, const size_t *n)
{
    assert_int_equal(rc, MQTT_OK);
    return *n;
}

static void assert_bytes(struct mqtt_bytes a, struct mqtt_bytes b)
{
    assert_int_equal(a.len, b.len);
    if (a.len)
        assert_memory_equal(a.data, b.data, a.len);
}

/* Every prefix of a valid packet must be refused, and must never be read past. */
static void assert_truncations_refused(const uint8_t *pkt, size_t len, uint8_t version)
{
    for (size_t k = 0; k < len; k++) {
        uint8_t *copy = malloc(k ? k : 1); /* exact size so ASan sees any overread */
        memcpy(copy, pkt, k);
        struct mqtt_packet p;
        assert_int_not_equal(mqtt_decode(copy, k, version, &p), MQTT_OK);
        free(copy);
    }
}

/* The same packet with one byte fewer declared than sent (trailing garbage) is malformed. */
static void assert_decodes_exactly(const uint8_t *pkt, size_t len, uint8_t version,
                                   struct mqtt_packet *out)
{
    uint8_t *copy = malloc(len);
    memcpy(copy, pkt, len);
    assert_int_equal(mqtt_decode(copy, len, version, out), MQTT_OK);
    free(copy);
    assert_int_equal(mqtt_decode(pkt, len, version, out), MQTT_OK);
    assert_truncations_refused(pkt, len, version);
}

static void connect_roundtrip_v311_all_fields(void **state)
{
    (void)state;
    struct mqtt_connect c = {.version = MQTT_V311,
                             .clean_start = true,
                             .keep_alive = 60,
                             .client_id = B("dev-1"),
                             .will = true,
                             .will_qos = 1,
                             .will_retain = true,
                             .will_topic = B("status/dev-1"),
                             .will_payload = B("offline"),
                             .has_username = true,
                             .username = B("user"),
                             .has_password = true,
                             .password = B("pw")};
    size_t n = 0;
    n = enc_check(mqtt_encode_connect(buf, sizeof(buf), &c, &n), &n);
    struct mqtt_packet p;
    assert_decodes_exactly(buf, n, 0, &p);
    assert_int_equal(p.type, MQTT_CONNECT);
    const struct mqtt_connect *d = &p.u.connect;
    assert_int_equal(d->version, MQTT_V311);
    assert_true(d->clean_start);
    assert_int_equal(d->keep_alive, 60);
    assert_bytes(d->client_id, c.client_id);
    assert_true(d->will);
    assert_int_equal(d->will_qos, 1);
    assert_true(d->will_retain);
    assert_bytes(d->will_topic, c.will_topic);
    assert_bytes(d->will_payload, c.will_payload);
    assert_bytes(d->username, c.username);
    assert_bytes(d->password, c.password);
}

static void connect_roundtrip_v5_every_connect_and_will_property(void **state)
{
    (void)state;
    /* user properties travel in `raw`: build a block holding two of them */
    static const uint8_t user_block[] = {0x26, 0, 1, 'a', 0, 1, 'b', 0x26, 0, 1, 'c', 0, 0};
    struct mqtt_connect c = {.version = MQTT_V5, .clean_start = false, .keep_alive = 30,
                             .client_id = B("dev-2"), .will = true, .will_qos = 0,
                             .will_topic = B("status/dev-2"), .will_payload = B("gone")};
    struct mqtt_props *p = &c.props;
    mqtt_props_set(p, MQTT_PROP_SESSION_EXPIRY);
    p->session_expiry = 3600;
    mqtt_props_set(p, MQTT_PROP_RECEIVE_MAX);
    p->receive_max = 20;
    mqtt_props_set(p, MQTT_PROP_MAX_PACKET_SIZE);
    p->max_packet_size = 65536;
    mqtt_props_set(p, MQTT_PROP_TOPIC_ALIAS_MAX);
    p->topic_alias_max = 10;
    mqtt_props_set(p, MQTT_PROP_REQUEST_RESPONSE_INFO);
    p->request_response_info = 1;
    mqtt_props_set(p, MQTT_PROP_REQUEST_PROBLEM_INFO);
    p->request_problem_info = 0;
    mqtt_props_set(p, MQTT_PROP_AUTH_METHOD);
    p->auth_method = B("PSA-IAT");
    mqtt_props_set(p, MQTT_PROP_AUTH_DATA);
    p->auth_data = B("\x01\x02");
    p->raw = (struct mqtt_bytes){user_block, sizeof(user_block)};
    mqtt_props_set(p, MQTT_PROP_USER_PROPERTY);
    struct mqtt_props *w = &c.will_props;
    mqtt_props_set(w, MQTT_PROP_WILL_DELAY);
    w->will_delay = 5;
    mqtt_props_set(w, MQTT_PROP_PAYLOAD_FORMAT);
    w->payload_format = 1;
    mqtt_props_set(w, MQTT_PROP_MESSAGE_EXPIRY);
    w->message_expiry = 100;
    mqtt_props_set(w, MQTT_PROP_CONTENT_TYPE);
    w->content_type = B("text/plain");
    mqtt_props_set(w, MQTT_PROP_RESPONSE_TOPIC);
    w->response_topic = B("r/t");
    mqtt_props_set(w, MQTT_PROP_CORRELATION_DATA);
    w->correlation_data = B("cd");

    size_t n = 0;
    n = enc_check(mqtt_encode_connect(buf, sizeof(buf), &c, &n), &n);
    struct mqtt_packet pkt;
    assert_decodes_exactly(buf, n, 0, &pkt);
    const struct mqtt_connect *d = &pkt.u.connect;
    assert_int_equal(d->version, MQTT_V5);
    assert_false(d->clean_start);
    assert_int_equal(d->props.present, c.props.present);
    assert_int_equal(d->props.session_expiry, 3600);
    assert_int_equal(d->props.receive_max, 20);
    assert_int_equal(d->props.max_packet_size, 65536);
    assert_int_equal(d->props.topic_alias_max, 10);
    assert_int_equal(d->props.request_response_info, 1);
    assert_bytes(d->props.auth_method, B("PSA-IAT"));
    assert_bytes(d->props.auth_data, B("\x01\x02"));
    assert_int_equal(d->props.n_user, 2);
    struct mqtt_bytes k, v;
    size_t off = 0;
    assert_true(mqtt_props_next_user(&d->props, &off, &k, &v));
    assert_bytes(k, B("a"));
    assert_bytes(v, B("b"));
    assert_true(mqtt_props_next_user(&d->props, &off, &k, &v));
    assert_bytes(k, B("c"));
    assert_int_equal(v.len, 0);
    assert_false(mqtt_props_next_user(&d->props, &off, &k, &v));
    assert_int_equal(d->will_props.present, c.will_props.present);
    assert_int_equal(d->will_props.will_delay, 5);
    assert_int_equal(d->will_props.message_expiry, 100);
    assert_bytes(d->will_props.content_type, B("text/plain"));
    assert_bytes(d->will_props.response_topic, B("r/t"));
    assert_bytes(d->will_props.correlation_data, B("cd"));
}

static void connack_roundtrip_v5_every_connack_property(void **state)
{
    (void)state;
    struct mqtt_connack c = {.session_present = true, .reason = MQTT_RC_SUCCESS};
    struct mqtt_props *p = &c.props;
    mqtt_props_set(p, MQTT_PROP_SESSION_EXPIRY);
    p->session_expiry = 7;
    mqtt_props_set(p, MQTT_PROP_ASSIGNED_CLIENT_ID);
    p->assigned_client_id = B("auto-1");
    mqtt_props_set(p, MQTT_PROP_SERVER_KEEP_ALIVE);
    p->server_keep_alive = 120;
    mqtt_props_set(p, MQTT_PROP_AUTH_METHOD);
    p->auth_method = B("PSA-IAT");
    mqtt_props_set(p, MQTT_PROP_AUTH_DATA);
    p->auth_data = B("x");
    mqtt_props_set(p, MQTT_PROP_RESPONSE_INFO);
    p->response_info = B("resp/");
    mqtt_props_set(p, MQTT_PROP_SERVER_REFERENCE);
    p->server_reference = B("other:8883");
    mqtt_props_set(p, MQTT_PROP_REASON_STRING);
    p->reason_string = B("welcome");
    mqtt_props_set(p, MQTT_PROP_RECEIVE_MAX);
    p->receive_max = 100;
    mqtt_props_set(p, MQTT_PROP_TOPIC_ALIAS_MAX);
    p->topic_alias_max = 16;
    mqtt_props_set(p, MQTT_PROP_MAX_QOS);
    p->max_qos = 1;
    mqtt_props_set(p, MQTT_PROP_RETAIN_AVAILABLE);
    p->retain_available = 1;
    mqtt_props_set(p, MQTT_PROP_MAX_PACKET_SIZE);
    p->max_packet_size = 1 << 20;
    mqtt_props_set(p, MQTT_PROP_WILDCARD_SUB_AVAILABLE);
    p->wildcard_sub_available = 1;
    mqtt_props_set(p, MQTT_PROP_SUB_ID_AVAILABLE);
    p->sub_id_available = 1;
    mqtt_props_set(p, MQTT_PROP_SHARED_SUB_AVAILABLE);
    p->shared_sub_available = 0;
    size_t n = 0;
    n = enc_check(mqtt_encode_connack(buf, sizeof(buf), MQTT_V5, &c, &n), &n);
    struct mqtt_packet pkt;
    assert_decodes_exactly(buf, n, MQTT_V5, &pkt);
    const struct mqtt_connack *d = &pkt.u.connack;
    assert_true(d->session_present);
    assert_int_equal(d->props.present, c.props.present);
    assert_int_equal(d->props.server_keep_alive, 120);
    assert_int_equal(d->props.receive_max, 100);
    assert_int_equal(d->props.topic_alias_max, 16);
    assert_int_equal(d->props.max_qos, 1);
    assert_int_equal(d->props.max_packet_size, 1 << 20);
    assert_bytes(d->props.assigned_client_id, B("auto-1"));
    assert_bytes(d->props.server_reference, B("other:8883"));
    assert_bytes(d->props.reason_string, B("welcome"));
    assert_bytes(d->props.response_info, B("resp/"));
}

static void connack_v311_is_four_bytes(void **state)
{
    (void)state;
    struct mqtt_connack c = {.session_present = false, .reason = MQTT_V3_NOT_AUTHORIZED};
    size_t n = 0;
    n = enc_check(mqtt_encode_connack(buf, sizeof(buf), MQTT_V311, &c, &n), &n);
    static const uint8_t want[] = {0x20, 0x02, 0x00, 0x05};
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(buf, want, n);
    struct mqtt_packet pkt;
    assert_decodes_exactly(buf, n, MQTT_V311, &pkt);
    assert_int_equal(pkt.u.connack.reason, MQTT_V3_NOT_AUTHORIZED);
}

static void publish_roundtrip_both_versions_every_qos(void **state)
{
    (void)state;
    for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
        for (uint8_t qos = 0; qos <= 2; qos++) {
            struct mqtt_publish p = {.dup = qos > 0, .qos = qos, .retain = true,
                                     .topic = B("sensors/dev-1/env"),
                                     .packet_id = qos ? 0x1234 : 0, .payload = B("\x00\x01hi")};
            size_t n = 0;
            n = enc_check(mqtt_encode_publish(buf, sizeof(buf), version, &p, &n), &n);
            struct mqtt_packet pkt;
            assert_decodes_exactly(buf, n, version, &pkt);
            assert_int_equal(pkt.type, MQTT_PUBLISH);
            assert_int_equal(pkt.u.publish.qos, qos);
            assert_int_equal(pkt.u.publish.dup, qos > 0);
            assert_true(pkt.u.publish.retain);
            assert_int_equal(pkt.u.publish.packet_id, p.packet_id);
            assert_bytes(pkt.u.publish.topic, p.topic);
            assert_bytes(pkt.u.publish.payload, p.payload);
        }
    }
}

static void publish_roundtrip_v5_every_publish_property(void **state)
{
    (void)state;
    static const uint8_t user_block[] = {0x26, 0, 2, 'k', '1', 0, 2, 'v', '1'};
    struct mqtt_publish p = {.qos = 1, .topic = B("t"), .packet_id = 9, .payload = B("{}")};
    struct mqtt_props *pr = &p.props;
    mqtt_props_set(pr, MQTT_PROP_PAYLOAD_FORMAT);
    pr->payload_format = 1;
    mqtt_props_set(pr, MQTT_PROP_MESSAGE_EXPIRY);
    pr->message_expiry = 60;
    mqtt_props_set(pr, MQTT_PROP_CONTENT_TYPE);
    pr->content_type = B("application/json");
    mqtt_props_set(pr, MQTT_PROP_RESPONSE_TOPIC);
    pr->response_topic = B("reply/here");
    mqtt_props_set(pr, MQTT_PROP_CORRELATION_DATA);
    pr->correlation_data = B("\x00\xff");
    mqtt_props_set(pr, MQTT_PROP_SUBSCRIPTION_ID);
    pr->n_sub_ids = 3;
    pr->sub_ids[0] = 1;
    pr->sub_ids[1] = 16384;
    pr->sub_ids[2] = MQTT_MAX_REMAINING;
    mqtt_props_set(pr, MQTT_PROP_TOPIC_ALIAS);
    pr->topic_alias = 3;
    pr->raw = (struct mqtt_bytes){user_block, sizeof(user_block)};
    mqtt_props_set(pr, MQTT_PROP_USER_PROPERTY);
    size_t n = 0;
    n = enc_check(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p, &n), &n);
    struct mqtt_packet pkt;
    assert_decodes_exactly(buf, n, MQTT_V5, &pkt);
    const struct mqtt_props *d = &pkt.u.publish.props;
    assert_int_equal(d->present, pr->present);
    assert_int_equal(d->payload_format, 1);
    assert_int_equal(d->message_expiry, 60);
    assert_bytes(d->content_type, B("application/json"));
    assert_bytes(d->response_topic, B("reply/here"));
    assert_bytes(d->correlation_data, B("\x00\xff"));
    assert_int_equal(d->n_sub_ids, 3);
    assert_int_equal(d->sub_ids[1], 16384);
    assert_int_equal(d->sub_ids[2], MQTT_MAX_REMAINING);
    assert_int_equal(d->topic_alias, 3);
    assert_int_equal(d->n_user, 1);
}

static void acks_roundtrip_both_versions(void **state)
{
    (void)state;
    for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
        for (uint8_t type = MQTT_PUBACK; type <= MQTT_PUBCOMP; type++) {
            struct mqtt_ack a = {.packet_id = 77, .reason = 0};
            size_t n = 0;
            n = enc_check(mqtt_encode_ack(buf, sizeof(buf), version, type, &a, &n), &n);
            assert_int_equal(n, 4); /* success without properties: the short form */
            assert_int_equal(buf[0], type << 4 | (type == MQTT_PUBREL ? 2 : 0));
            struct mqtt_packet pkt;
            assert_decodes_exactly(buf, n, version, &pkt);
            assert_int_equal(pkt.type, type);
            assert_int_equal(pkt.u.ack.packet_id, 77);
            if (version == MQTT_V5) {
                a.reason = MQTT_RC_NOT_AUTHORIZED;
                mqtt_props_set(&a.props, MQTT_PROP_REASON_STRING);
                a.props.reason_string = B("acl");
                n = enc_check(mqtt_encode_ack(buf, sizeof(buf), version, type, &a, &n), &n);
                assert_decodes_exactly(buf, n, version, &pkt);
                assert_int_equal(pkt.u.ack.reason, MQTT_RC_NOT_AUTHORIZED);
                assert_bytes(pkt.u.ack.props.reason_string, B("acl"));
                /* reason code alone, no property length (3.4.2.1) */
                static const uint8_t short_form[] = {0x40, 0x03, 0x00, 0x05, 0x10};
                assert_int_equal(mqtt_decode(short_form, sizeof(short_form), MQTT_V5, &pkt),
                                 MQTT_OK);
                assert_int_equal(pkt.u.ack.reason, 0x10);
            }
        }
    }
}

static void subscribe_and_suback_roundtrip_both_versions(void **state)
{
    (void)state;
    for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
        struct mqtt_sub_entry e[3] = {
            {B("sensors/#"), 1},
            {B("cmd/+/set"), 0},
            {B("status/x"), (uint8_t)(version == MQTT_V5 ? 1 | MQTT_SUBOPT_NO_LOCAL |
                                                               MQTT_SUBOPT_RETAIN_AS_PUBLISHED |
                                                               2 << MQTT_SUBOPT_RETAIN_HANDLING_SHIFT
                                                         : 2)},
        };
        struct mqtt_props props = {0};
        if (version == MQTT_V5) {
            mqtt_props_set(&props, MQTT_PROP_SUBSCRIPTION_ID);
            props.n_sub_ids = 1;
            props.sub_ids[0] = 42;
        }
        size_t n = 0;
        n = enc_check(mqtt_encode_subscribe(buf, sizeof(buf), version, 5, &props, e, 3, &n), &n);
        struct mqtt_packet pkt;
        assert_decodes_exactly(buf, n, version, &pkt);
        assert_int_equal(pkt.type, MQTT_SUBSCRIBE);
        assert_int_equal(pkt.u.subscribe.count, 3);
        if (version == MQTT_V5)
            assert_int_equal(pkt.u.subscribe.props.sub_ids[0], 42);
        size_t off = 0;
        struct mqtt_sub_entry got;
        for (int i = 0; i < 3; i++) {
            assert_true(mqtt_subscribe_next(&pkt.u.subscribe, version, &off, &got));
            assert_bytes(got.filter, e[i].filter);
            assert_int_equal(got.options, e[i].options);
        }
        assert_false(mqtt_subscribe_next(&pkt.u.subscribe, version, &off, &got));

        uint8_t reasons[3] = {1, 0, 0x80};
        n = enc_check(mqtt_encode_suback(buf, sizeof(buf), version, MQTT_SUBACK, 5, NULL, reasons,
                                         3, &n),
                      &n);
        assert_decodes_exactly(buf, n, version, &pkt);
        assert_int_equal(pkt.u.suback.packet_id, 5);
        assert_int_equal(pkt.u.suback.reasons.len, 3);
        assert_memory_equal(pkt.u.suback.reasons.data, reasons, 3);

        struct mqtt_bytes filters[2] = {B("a/b"), B("c/#")};
        n = enc_check(mqtt_encode_unsubscribe(buf, sizeof(buf), version, 6, NULL, filters, 2, &n),
                      &n);
        assert_decodes_exactly(buf, n, version, &pkt);
        assert_int_equal(pkt.type, MQTT_UNSUBSCRIBE);
        assert_int_equal(pkt.u.subscribe.count, 2);
        struct mqtt_bytes f;
        off = 0;
        assert_true(mqtt_unsubscribe_next(&pkt.u.subscribe, &off, &f));
        assert_bytes(f, filters[0]);
        assert_true(mqtt_unsubscribe_next(&pkt.u.subscribe, &off, &f));
        assert_bytes(f, filters[1]);
        assert_false(mqtt_unsubscribe_next(&pkt.u.subscribe, &off, &f));

        uint8_t unsub_reasons[2] = {0, MQTT_RC_NO_SUBSCRIPTION_EXISTED};
        n = enc_check(mqtt_encode_suback(buf, sizeof(buf), version, MQTT_UNSUBACK, 6, NULL,
                                         unsub_reasons, 2, &n),
                      &n);
        assert_int_equal(n, version == MQTT_V5 ? 7 : 4);
        assert_decodes_exactly(buf, n, version, &pkt);
        assert_int_equal(pkt.type, MQTT_UNSUBACK);
    }
}

static void ping_disconnect_auth_roundtrip(void **state)
{
    (void)state;
    size_t n = 0;
    struct mqtt_packet pkt;
    for (uint8_t type = MQTT_PINGREQ; type <= MQTT_PINGRESP; type++) {
        n = enc_check(mqtt_encode_ping(buf, sizeof(buf), type, &n), &n);
        assert_int_equal(n, 2);
        assert_decodes_exactly(buf, n, MQTT_V311, &pkt);
        assert_int_equal(pkt.type, type);
    }
    n = enc_check(mqtt_encode_reason(buf, sizeof(buf), MQTT_V311, MQTT_DISCONNECT, 0, NULL, &n), &n);
    assert_int_equal(n, 2);
    assert_decodes_exactly(buf, n, MQTT_V311, &pkt);

    struct mqtt_props props = {0};
    mqtt_props_set(&props, MQTT_PROP_REASON_STRING);
    props.reason_string = B("bye");
    mqtt_props_set(&props, MQTT_PROP_SESSION_EXPIRY);
    props.session_expiry = 0;
    mqtt_props_set(&props, MQTT_PROP_SERVER_REFERENCE);
    props.server_reference = B("elsewhere");
    n = enc_check(mqtt_encode_reason(buf, sizeof(buf), MQTT_V5, MQTT_DISCONNECT,
                                     MQTT_RC_SESSION_TAKEN_OVER, &props, &n),
                  &n);
    assert_decodes_exactly(buf, n, MQTT_V5, &pkt);
    assert_int_equal(pkt.u.reason.reason, MQTT_RC_SESSION_TAKEN_OVER);
    assert_bytes(pkt.u.reason.props.reason_string, B("bye"));

    struct mqtt_props ap = {0};
    mqtt_props_set(&ap, MQTT_PROP_AUTH_METHOD);
    ap.auth_method = B("PSA-IAT");
    mqtt_props_set(&ap, MQTT_PROP_AUTH_DATA);
    uint8_t nonce[32];
    memset(nonce, 0xab, sizeof(nonce));
    ap.auth_data = (struct mqtt_bytes){nonce, sizeof(nonce)};
    n = enc_check(mqtt_encode_reason(buf, sizeof(buf), MQTT_V5, MQTT_AUTH,
                                     MQTT_RC_CONTINUE_AUTH, &ap, &n),
                  &n);
    assert_decodes_exactly(buf, n, MQTT_V5, &pkt);
    assert_int_equal(pkt.type, MQTT_AUTH);
    assert_int_equal(pkt.u.reason.reason, MQTT_RC_CONTINUE_AUTH);
    assert_bytes(pkt.u.reason.props.auth_data, ap.auth_data);
    /* AUTH does not exist in 3.1.1 */
    assert_int_equal(mqtt_decode(buf, n, MQTT_V311, &pkt), MQTT_ERR_MALFORMED);
    assert_int_equal(mqtt_encode_reason(buf, sizeof(buf), MQTT_V311, MQTT_AUTH, 0, NULL, &n),
                     MQTT_ERR_ARG);
    /* the empty AUTH means success (3.15.2.1) */
    static const uint8_t empty_auth[] = {0xf0, 0x00};
    assert_int_equal(mqtt_decode(empty_auth, 2, MQTT_V5, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.reason.reason, 0);
    /* AUTH with a reason it cannot have */
    static const uint8_t bad_auth[] = {0xf0, 0x01, 0x87};
    assert_int_equal(mqtt_decode(bad_auth, 3, MQTT_V5, &pkt), MQTT_ERR_PROTOCOL);
}

/* A PUBLISH whose Remaining Length is exactly `rem`. */
static void publish_with_remaining(size_t rem, uint8_t version)
{
    const size_t topic_part = 2 + 1 + (version == MQTT_V5 ? 1 : 0); /* "t", empty props */
    size_t payload_len = rem - topic_part;
    uint8_t *payload = calloc(payload_len ? payload_len : 1, 1);
    struct mqtt_publish p = {.qos = 0, .topic = B("t"), .payload = {payload, payload_len}};
    size_t need = 0;
    assert_int_equal(mqtt_encode_publish(NULL, 0, version, &p, &need), MQTT_ERR_NOSPACE);
    size_t hdr = rem < 128 ? 2 : rem < 16384 ? 3 : rem < 2097152 ? 4 : 5;
    assert_int_equal(need, hdr + rem);
    uint8_t *out = malloc(need);
    size_t n = 0;
    assert_int_equal(mqtt_encode_publish(out, need, version, &p, &n), MQTT_OK);
    uint8_t first;
    uint32_t got_rem;
    size_t hlen;
    assert_int_equal(mqtt_fixed_header(out, n, &first, &got_rem, &hlen), MQTT_OK);
    assert_int_equal(got_rem, rem);
    assert_int_equal(hlen, hdr);
    struct mqtt_packet pkt;
    assert_int_equal(mqtt_decode(out, n, version, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.publish.payload.len, payload_len);
    /* one byte short of the declared length */
    assert_int_equal(mqtt_decode(out, n - 1, version, &pkt), MQTT_ERR_MALFORMED);
    /* the header alone, cut before its last length byte */
    assert_int_equal(mqtt_fixed_header(out, hlen - 1, &first, &got_rem, &hlen),
                     MQTT_ERR_INCOMPLETE);
    free(out);
    free(payload);
}

static void remaining_length_boundaries(void **state)
{
    (void)state;
    static const size_t lengths[] = {5, 127, 128, 16383, 16384, 2097151, 2097152};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        publish_with_remaining(lengths[i], MQTT_V311);
        publish_with_remaining(lengths[i], MQTT_V5);
    }
    /* zero: PINGREQ */
    static const uint8_t ping[] = {0xc0, 0x00};
    struct mqtt_packet pkt;
    assert_int_equal(mqtt_decode(ping, 2, MQTT_V5, &pkt), MQTT_OK);
    /* the maximum, 268435455 = ff ff ff 7f, and one past it (a fifth byte) */
    static const uint8_t max_hdr[] = {0x30, 0xff, 0xff, 0xff, 0x7f};
    uint8_t first;
    uint32_t rem;
    size_t hlen;
    assert_int_equal(mqtt_fixed_header(max_hdr, sizeof(max_hdr), &first, &rem, &hlen), MQTT_OK);
    assert_int_equal(rem, MQTT_MAX_REMAINING);
    assert_int_equal(hlen, 5);
    static const uint8_t over_hdr[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(mqtt_fixed_header(over_hdr, sizeof(over_hdr), &first, &rem, &hlen),
                     MQTT_ERR_MALFORMED);
    /* the encoder sizes a maximum packet without a buffer, and refuses one byte more */
    static uint8_t dummy;
    struct mqtt_publish p = {.qos = 0, .topic = B("t"),
                             .payload = {&dummy, MQTT_MAX_REMAINING - 3}};
    size_t need = 0;
    assert_int_equal(mqtt_encode_publish(NULL, 0, MQTT_V311, &p, &need), MQTT_ERR_NOSPACE);
    assert_int_equal(need, (size_t)MQTT_MAX_REMAINING + 5);
    p.payload.len++;
    assert_int_equal(mqtt_encode_publish(NULL, 0, MQTT_V311, &p, &need), MQTT_ERR_ARG);
}

static void expect_decode(const uint8_t *pkt, size_t len, uint8_t version, int want)
{
    struct mqtt_packet p;
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, pkt, len);
    assert_int_equal(mqtt_decode(copy, len, version, &p), want);
    free(copy);
}

#define EXPECT(version, want, ...)                                                                \
    do {                                                                                          \
        static const uint8_t pkt_[] = {__VA_ARGS__};                                              \
        expect_decode(pkt_, sizeof(pkt_), version, want);                                         \
    } while (0)

static void malformed_packets_are_refused(void **state)
{
    (void)state;
    /* reserved type 0 */
    EXPECT(MQTT_V5, MQTT_ERR_MALFORMED, 0x00, 0x00);
    /* wrong fixed-header flags: SUBSCRIBE must have 0010, PINGREQ 0000 */
    EXPECT(MQTT_V5, MQTT_ERR_MALFORMED, 0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61);
    EXPECT(MQTT_V5, MQTT_ERR_MALFORMED, 0xc1, 0x00);
    /* PUBLISH QoS 3, and DUP with QoS 0 */
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01);
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x38, 0x03, 0x00, 0x01, 't');
    /* PUBLISH QoS 1 with packet id 0 */
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00);
    /* topic with invalid UTF-8, with U+0000, with a surrogate, overlong */
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x30, 0x03, 0x00, 0x01, 0xff);
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x30, 0x03, 0x00, 0x01, 0x00);
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x30, 0x05, 0x00, 0x03, 0xed, 0xa0, 0x80);
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x30, 0x04, 0x00, 0x02, 0xc0, 0x80);
    /* string length beyond the packet */
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x30, 0x03, 0x00, 0x09, 't');
    /* CONNECT: reserved flag set; will QoS 3; will QoS without will flag */
    EXPECT(0, MQTT_ERR_MALFORMED, 0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x01, 0, 60, 0, 0);
    EXPECT(0, MQTT_ERR_MALFORMED, 0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x1c, 0, 60, 0, 0);
    EXPECT(0, MQTT_ERR_MALFORMED, 0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x08, 0, 60, 0, 0);
    /* CONNECT 3.1.1: password without user name */
    EXPECT(0, MQTT_ERR_MALFORMED, 0x10, 0x0e, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x40, 0, 60, 0, 0, 0,
           0);
    /* CONNECT: other protocol name; MQTT 3.1 and level 6 are unsupported versions */
    EXPECT(0, MQTT_ERR_MALFORMED, 0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'X', 4, 0x02, 0, 60, 0, 0);
    EXPECT(0, MQTT_ERR_VERSION, 0x10, 0x0e, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 60, 0,
           0);
    EXPECT(0, MQTT_ERR_VERSION, 0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 6, 0x02, 0, 60, 0, 0);
    /* CONNECT with trailing bytes */
    EXPECT(0, MQTT_ERR_MALFORMED, 0x10, 0x0d, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 0,
           0xee);
    /* SUBSCRIBE with no entries: protocol error; options reserved bits; QoS 3 */
    EXPECT(MQTT_V311, MQTT_ERR_PROTOCOL, 0x82, 0x02, 0x00, 0x01);
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04);
    EXPECT(MQTT_V5, MQTT_ERR_MALFORMED, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40);
    EXPECT(MQTT_V5, MQTT_ERR_MALFORMED, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03);
    EXPECT(MQTT_V5, MQTT_ERR_PROTOCOL, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30);
    /* 3.1.1 DISCONNECT with a body; 3.1.1 PUBACK with a reason byte */
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0xe0, 0x01, 0x00);
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x40, 0x03, 0x00, 0x01, 0x00);
    /* PUBREL with flags 0000 */
    EXPECT(MQTT_V311, MQTT_ERR_MALFORMED, 0x60, 0x02, 0x00, 0x01);
}

static void bad_properties_are_refused(void **state)
{
    (void)state;
    /* property not allowed in the packet: Topic Alias (0x23) in DISCONNECT */
    EXPECT(MQTT_V5, MQTT_ERR_PROTOCOL, 0xe0, 0x05, 0x00, 0x03, 0x23, 0x00, 0x01);
    /* repeated property: two Reason Strings */
    EXPECT(MQTT_V5, MQTT_ERR_PROTOCOL, 0xe0, 0x08, 0x00, 0x06, 0x1f, 0x00, 0x00, 0x1f, 0x00,
           0x00);
    /* two User Properties are fine */
    EXPECT(MQTT_V5, MQTT_OK, 0xe0, 0x0c, 0x00, 0x0a, 0x26, 0x00, 0x00, 0x00, 0x00, 0x26, 0x00,
           0x00, 0x00, 0x00);
    /* unknown property identifier */
    EXPECT(MQTT_V5, MQTT_ERR_MALFORMED, 0xe0, 0x04, 0x00, 0x02, 0x7f, 0x00);
    /* property block longer than the packet */
    EXPECT(MQTT_V5, MQTT_ERR_MALFORMED, 0xe0, 0x03, 0x00, 0x09, 0x1f);
    /* property value cut short */
    EXPECT(MQTT_V5, MQTT_ERR_MALFORMED, 0xe0, 0x04, 0x00, 0x02, 0x11, 0x00);
    /* Receive Maximum 0 and Maximum Packet Size 0 in CONNECT */
    EXPECT(0, MQTT_ERR_PROTOCOL, 0x10, 0x10, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 3, 0x21, 0,
           0, 0, 0);
    EXPECT(0, MQTT_ERR_PROTOCOL, 0x10, 0x12, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 5, 0x27, 0,
           0, 0, 0, 0, 0);
    /* Payload Format Indicator 2 */
    EXPECT(MQTT_V5, MQTT_ERR_PROTOCOL, 0x30, 0x06, 0x00, 0x01, 't', 0x02, 0x01, 0x02);
    /* Subscription Identifier 0, and two of them in a SUBSCRIBE */
    EXPECT(MQTT_V5, MQTT_ERR_PROTOCOL, 0x82, 0x09, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 'a',
           0x00);
    EXPECT(MQTT_V5, MQTT_ERR_PROTOCOL, 0x82, 0x0b, 0x00, 0x01, 0x04, 0x0b, 0x01, 0x0b, 0x02, 0x00,
           0x01, 'a', 0x00);
    /* a Will property in the CONNECT's own properties */
    EXPECT(0, MQTT_ERR_PROTOCOL, 0x10, 0x12, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 5, 0x18, 0,
           0, 0, 1, 0, 0);
}

static void topic_matching_follows_section_4_7(void **state)
{
    (void)state;
#define M(f, t) mqtt_topic_matches((const uint8_t *)(f), strlen(f), (const uint8_t *)(t), strlen(t))
    assert_true(M("a/b/c", "a/b/c"));
    assert_false(M("a/b/c", "a/b"));
    assert_false(M("a/b", "a/b/c"));
    assert_true(M("a/+/c", "a/b/c"));
    assert_true(M("a/+/c", "a//c"));
    assert_false(M("a/+", "a/b/c"));
    assert_true(M("a/#", "a"));
    assert_true(M("a/#", "a/b/c"));
    assert_true(M("#", "a/b"));
    assert_true(M("+/+", "/x"));
    assert_true(M("+", ""));
    assert_false(M("+", "a/b"));
    assert_true(M("sensors/+/env", "sensors/dev-1/env"));
    assert_false(M("#", "$SYS/x"));
    assert_false(M("+/x", "$SYS/x"));
    assert_true(M("$SYS/#", "$SYS/x"));
    assert_false(M("ab", "a"));
    assert_false(M("a", "ab"));
#undef M
#define F(s) mqtt_topic_filter_valid((const uint8_t *)(s), strlen(s))
    assert_true(F("#"));
    assert_true(F("a/+/b/#"));
    assert_true(F("+"));
    assert_false(F(""));
    assert_false(F("a#"));
    assert_false(F("a/#/b"));
    assert_false(F("a+/b"));
#undef F
#define T(s) mqtt_topic_name_valid((const uint8_t *)(s), strlen(s))
    assert_true(T("a/b"));
    assert_false(T("a/+"));
    assert_false(T("#"));
    assert_false(T(""));
#undef T
}

static void encoder_reports_needed_size(void **state)
{
    (void)state;
    struct mqtt_publish p = {.qos = 1, .topic = B("t"), .packet_id = 1, .payload = B("abc")};
    size_t need = 0;
    uint8_t small[4];
    assert_int_equal(mqtt_encode_publish(small, sizeof(small), MQTT_V311, &p, &need),
                     MQTT_ERR_NOSPACE);
    assert_int_equal(need, 2 + 2 + 1 + 2 + 3);
    /* a string longer than 65535 bytes cannot be encoded */
    static uint8_t big[70000];
    p.topic = (struct mqtt_bytes){big, sizeof(big)};
    assert_int_equal(mqtt_encode_publish(NULL, 0, MQTT_V311, &p, &need), MQTT_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_roundtrip_v311_all_fields),
        cmocka_unit_test(connect_roundtrip_v5_every_connect_and_will_property),
        cmocka_unit_test(connack_roundtrip_v5_every_connack_property),
        cmocka_unit_test(connack_v311_is_four_bytes),
        cmocka_unit_test(publish_roundtrip_both_versions_every_qos),
        cmocka_unit_test(publish_roundtrip_v5_every_publish_property),
        cmocka_unit_test(acks_roundtrip_both_versions),
        cmocka_unit_test(subscribe_and_suback_roundtrip_both_versions),
        cmocka_unit_test(ping_disconnect_auth_roundtrip),
        cmocka_unit_test(remaining_length_boundaries),
        cmocka_unit_test(malformed_packets_are_refused),
        cmocka_unit_test(bad_properties_are_refused),
        cmocka_unit_test(topic_matching_follows_section_4_7),
        cmocka_unit_test(encoder_reports_needed_size),
    };
    return cmocka_run_group_tests_name("mqtt_codec", tests, NULL, NULL);
}
