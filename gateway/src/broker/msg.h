/*
 * msg.h: a message as the broker routes it: one allocation, shared by every queue that holds it
 * (reference counted under the broker lock).
 */
#ifndef PSAGW_MSG_H
#define PSAGW_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psagw/mqtt.h"

struct msg {
    uint32_t refs;
    uint8_t qos;
    bool retain;
    uint64_t expires_at_ms; /* 0: no Message Expiry Interval */
    size_t topic_len;
    size_t payload_len;
    char *topic;             /* NUL-terminated, inside this allocation */
    uint8_t *payload;        /* inside this allocation */
    struct mqtt_props props; /* forwarded properties; pointers into this allocation */
};

/* A copy of the message with one reference, or NULL; `props` (may be NULL) gives the properties
 * forwarded to subscribers (MQTT 5 section 3.3.2.3) and the Message Expiry, from now_ms. */
struct msg *msg_new(const char *topic, size_t topic_len, const uint8_t *payload, size_t payload_len,
                    uint8_t qos, bool retain, const struct mqtt_props *props, uint64_t now_ms);
void msg_ref(struct msg *m);
void msg_unref(struct msg *m); /* NULL is fine */

#endif
