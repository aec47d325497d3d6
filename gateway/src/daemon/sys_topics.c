/* sys_topics.c: `$SYS/` topics (sys_topics.h). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "attest.h"
#include "broker_lock.h"
#include "clock.h"
#include "session.h"
#include "spool.h"
#include "sys_topics.h"
#include "uplink.h"

/* One retained message (broker lock held); `seconds` adds the unit mosquitto writes. */
static void put_unit(struct gateway *gw, const char *topic, unsigned long long v, bool seconds)
{
    char payload[64];
    int n = snprintf(payload, sizeof(payload), seconds ? "%llu seconds" : "%llu", v);
    struct msg *m = msg_new(topic, strlen(topic), (const uint8_t *)payload, (size_t)n, 0, true,
                            NULL, clock_mono_ms());
    if (!m)
        return;
    broker_publish(gw, m, NULL);
    msg_unref(m);
}

static void put(struct gateway *gw, const char *topic, unsigned long long v)
{
    put_unit(gw, topic, v, false);
}

void sys_topics_publish(struct gateway *gw)
{
    struct metrics *mt = &gw->metrics;
    uint64_t spool_records = 0, spool_bytes = 0;
    if (gw->spool)
        spool_get_depth(gw->spool, &spool_records, &spool_bytes, NULL);
    struct uplink_stats up = {0};
    if (gw->uplink)
        uplink_get_stats(gw->uplink, &up);
    broker_lock();
    unsigned long long connected = 0, subs = 0;
    for (size_t b = 0; b < gw->session_buckets; b++)
        for (struct session *s = gw->sessions[b]; s; s = s->hnext) {
            connected += s->conn != NULL;
            subs += s->n_subs;
        }
    /* mosquitto's names (mosquitto(8), "$SYS topics") where the meaning is the same */
    char version[64];
    snprintf(version, sizeof(version), "psagw %s", PSAGW_VERSION);
    struct msg *m = msg_new("$SYS/broker/version", 19, (const uint8_t *)version,
                            strlen(version), 0, true, NULL, clock_mono_ms());
    if (m) {
        broker_publish(gw, m, NULL);
        msg_unref(m);
    }
    put_unit(gw, "$SYS/broker/uptime",
             (unsigned long long)((clock_mono_ms() - gw->started_ms) / 1000), true);
    put(gw, "$SYS/broker/clients/connected", connected);
    put(gw, "$SYS/broker/clients/disconnected", (unsigned long long)gw->n_sessions - connected);
    put(gw, "$SYS/broker/clients/total", (unsigned long long)gw->n_sessions);
    put(gw, "$SYS/broker/messages/received", (unsigned long long)mt->publishes_in);
    put(gw, "$SYS/broker/messages/sent", (unsigned long long)mt->publishes_out);
    put(gw, "$SYS/broker/publish/messages/dropped", (unsigned long long)mt->messages_dropped_queue_full);
    put(gw, "$SYS/broker/retained messages/count", (unsigned long long)gw->n_retained);
    put(gw, "$SYS/broker/subscriptions/count", subs);
    /* psagw's own */
    put(gw, "$SYS/psagw/attestation/accepted", (unsigned long long)mt->attestations_accepted);
    put(gw, "$SYS/psagw/attestation/refused", (unsigned long long)mt->attestations_refused);
    for (int r = 1; r < IAT_RESULT_COUNT_; r++) {
        uint64_t v = attest_refused_count(gw, (enum iat_result)r);
        if (!v)
            continue;
        char topic[96];
        snprintf(topic, sizeof(topic), "$SYS/psagw/attestation/refused/%s",
                 iat_result_name((enum iat_result)r));
        put(gw, topic, (unsigned long long)v);
    }
    put(gw, "$SYS/psagw/tls/handshake_failures", (unsigned long long)mt->tls_handshakes_failed);
    if (gw->spool) {
        put(gw, "$SYS/psagw/spool/records", (unsigned long long)spool_records);
        put(gw, "$SYS/psagw/spool/bytes", (unsigned long long)spool_bytes);
    }
    if (gw->uplink) {
        put(gw, "$SYS/psagw/uplink/connected", (unsigned long long)up.connected);
        put(gw, "$SYS/psagw/uplink/acked", (unsigned long long)up.acked);
    }
    broker_unlock();
}
