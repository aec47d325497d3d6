/*
 * msg.c: a message as routed (msg.h): one allocation holding the topic, the payload and the
 * properties a subscriber must get, shared by every queue that holds it.
 */
#include <stdlib.h>
#include <string.h>

#include "msg.h"

struct msg *msg_new(const char *topic, size_t topic_len, const uint8_t *payload, size_t payload_len,
                    uint8_t qos, bool retain, const struct mqtt_props *props, uint64_t now_ms)
{
    size_t raw_len = props ? props->raw.len : 0;
    struct msg *m = malloc(sizeof(*m) + topic_len + 1 + payload_len + raw_len);
    if (!m)
        return NULL;
    memset(m, 0, sizeof(*m));
    m->refs = 1;
    m->qos = qos;
    m->retain = retain;
    m->topic = (char *)(m + 1);
    memcpy(m->topic, topic, topic_len);
    m->topic[topic_len] = '\0';
    m->topic_len = topic_len;
    m->payload = (uint8_t *)m->topic + topic_len + 1;
    if (payload_len)
        memcpy(m->payload, payload, payload_len);
    m->payload_len = payload_len;
    if (props && raw_len) {
        /* keep the properties a subscriber must get (section 3.3.2.3), re-pointed into our
         * copy of the raw block */
        uint8_t *raw = m->payload + payload_len;
        memcpy(raw, props->raw.data, raw_len);
        const uint8_t *base = props->raw.data;
#define REBASE(f)                                                                                  \
    (struct mqtt_bytes)                                                                            \
    {                                                                                              \
        (f).len ? raw + ((f).data - base) : NULL, (f).len                                          \
    }
        struct mqtt_props *p = &m->props;
        static const enum mqtt_prop_id kept[] = {MQTT_PROP_PAYLOAD_FORMAT, MQTT_PROP_CONTENT_TYPE,
                                                 MQTT_PROP_RESPONSE_TOPIC,
                                                 MQTT_PROP_CORRELATION_DATA};
        for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
            if (mqtt_props_has(props, kept[i]))
                mqtt_props_set(p, kept[i]);
        p->payload_format = props->payload_format;
        p->content_type = REBASE(props->content_type);
        p->response_topic = REBASE(props->response_topic);
        p->correlation_data = REBASE(props->correlation_data);
        p->raw = (struct mqtt_bytes){raw, raw_len}; /* user properties pass through */
#undef REBASE
        if (mqtt_props_has(props, MQTT_PROP_MESSAGE_EXPIRY))
            m->expires_at_ms = now_ms + (uint64_t)props->message_expiry * 1000u;
    }
    return m;
}

void msg_ref(struct msg *m)
{
    m->refs++;
}

void msg_unref(struct msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}
