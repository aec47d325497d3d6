/*
 * end.c: ending a connection for a protocol reason (end.h). Each reason code the gateway ends a
 * connection with has one row: the event logged (with the peer, the device and the detail) and
 * the counter it moves. Codes without a row (0x87 not authorized, 0x97 quota exceeded, ...) were
 * logged and counted where they were decided (the ACL, the attestation verdict, the spool), so
 * they only get the disconnect line. A client's own DISCONNECT is not an error of ours.
 */
#include <stddef.h>
#include <string.h>

#include "end.h"
#include "log.h"

struct end_rule {
    uint8_t reason;
    const char *event;
    size_t counter; /* offset in struct metrics, or 0: none */
};

#define COUNTER(name) offsetof(struct metrics, name)

static const struct end_rule rules[] = {
    {MQTT_RC_MALFORMED, "malformed_packet", COUNTER(malformed_packets)},
    {MQTT_RC_PROTOCOL_ERROR, "protocol_error", COUNTER(protocol_errors)},
    {MQTT_RC_TOPIC_NAME_INVALID, "protocol_error", COUNTER(protocol_errors)},
    {MQTT_RC_RECEIVE_MAX_EXCEEDED, "protocol_error", COUNTER(protocol_errors)},
    {MQTT_RC_TOPIC_ALIAS_INVALID, "protocol_error", COUNTER(protocol_errors)},
    {MQTT_RC_PACKET_TOO_LARGE, "packet_too_large", COUNTER(packets_too_large)},
    {MQTT_RC_KEEP_ALIVE_TIMEOUT, "keepalive_timeout", COUNTER(keepalive_timeouts)},
    {MQTT_RC_IMPL_SPECIFIC, "internal_error", COUNTER(internal_errors)},
    {MQTT_RC_ADMIN_ACTION, NULL, COUNTER(revoked_disconnects)},
};

void proto_end(struct conn *c, struct conn_end why)
{
    if (why.reason == CONN_END_NONE)
        return;
    if (!why.by_client) {
        for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
            const struct end_rule *r = &rules[i];
            if (r->reason != why.reason)
                continue;
            if (r->counter)
                (*(_Atomic uint64_t *)((char *)&c->gw->metrics + r->counter))++;
            if (r->event) {
                char id[LOG_SAFE_MAX];
                log_event(
                    LOG_WARN, r->event, "peer=%s id=%s reason_code=0x%02x detail=\"%s\"", c->peer,
                    c->who.id[0] ? log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)) : "-",
                    (unsigned)why.reason, why.detail ? why.detail : "");
            }
            break;
        }
    }
    conn_close(c, why.reason, why.detail);
}
