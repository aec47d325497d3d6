/*
 * cloud.c: where the broker meets the spool and the uplink (docs/cloud.md).
 *
 * A PUBLISH from a device whose topic matches a cloud route is delivered to local subscribers
 * at once, and submitted to the spool; its PUBACK (PUBREC for QoS 2) is sent by the spool
 * thread once the record is durable (docs/design/wire.md section 6). While a connection has acks waiting
 * for the spool, its other acks queue behind them, so they leave in PUBLISH order. A
 * connection with receive_maximum acks waiting is not read until the spool catches up: the
 * device sees no PUBACK and then TCP flow control, never a silent drop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "broker_lock.h"
#include "clock.h"
#include "cloud.h"
#include "cloud_topic.h"
#include "iat_json.h"
#include "log.h"
#include "private_file.h"
#include "record_json.h"
#include "send.h"
#include "session.h"
#include "spool.h"
#include "uplink.h"

/* Spool thread, after a commit: release the acks (in submission order). */
static void on_durable(void *arg, const struct spool_item *list)
{
    struct gateway *gw = arg;
    broker_lock();
    for (const struct spool_item *it = list; it; it = it->next) {
        if (!it->has_ack)
            continue;
        struct session *s = session_find(gw, it->ack.client, it->ack.anonymous);
        struct conn *c = s ? s->conn : NULL;
        if (!c || c->gen != it->ack.conn_gen || c->state == CONN_CLOSED)
            continue; /* that connection is gone; the device sends it again (DUP) */
        if (c->spool_waiting > 0)
            c->spool_waiting--;
        send_ack(c, it->ack.type, it->ack.packet_id, it->ack.reason,
                 it->ack.reason ? "the gateway's spool disk is full; send again later" : NULL);
        histogram_observe(&gw->metrics.puback_latency, clock_mono_us() - it->ack.received_us);
        if (c->read_paused && c->spool_waiting < (gw->cfg.receive_maximum + 1u) / 2u)
            conn_resume_remote(c);
    }
    broker_unlock();
}

static void on_records(void *arg)
{
    struct gateway *gw = arg;
    if (gw->uplink)
        uplink_wake(gw->uplink);
}

static const struct spool_callbacks spool_cb = {on_durable, on_records, NULL};

int cloud_init(struct gateway *gw, char *err, size_t errlen)
{
    const struct cloud_config *k = &gw->cfg.cloud;
    if (!k->enabled)
        return 0;
    struct spool_callbacks cb = spool_cb;
    cb.arg = gw;
    if (*k->group_key_file) {
        gw->record_keys = calloc(1, sizeof(*gw->record_keys));
        if (!gw->record_keys ||
            record_keys_load(k->group_key_file, gw->record_keys, err, errlen) != 0)
            return -1;
    }
    if (private_file_check(k->spool, "spool", err, errlen) != 0)
        return -1;
    gw->spool = spool_open(k->spool, k->spool_max_bytes, k->spool_memory_max,
                           k->spool_when_full, &cb, err, errlen);
    if (!gw->spool)
        return -1;
    struct spool_stats st;
    spool_get_stats(gw->spool, &st);
    log_event(LOG_INFO, "spool_open", "path=%s records=%llu bytes=%llu max_bytes=%llu "
              "when_full=%s drops=%llu", k->spool, (unsigned long long)st.records,
              (unsigned long long)st.bytes, (unsigned long long)k->spool_max_bytes,
              k->spool_when_full == SPOOL_FULL_BLOCK ? "block" : "drop_oldest",
              (unsigned long long)st.drops);
    char why[768];
    gw->cloud_topics_ok = uplink_check_config(k, why, sizeof(why)) == 0;
    if (!gw->cloud_topics_ok)
        log_event(LOG_ERROR, "cloud_config_error", "detail=\"%s\" action=spooling (devices are "
                  "served; fix the config and send SIGHUP)", why);
    gw->uplink = uplink_new(gw, gw->spool, k);
    if (gw->spool)
        spool_set_commit_histogram(gw->spool, &gw->metrics.spool_commit);
    if (!gw->uplink || spool_start(gw->spool) != 0 || uplink_start(gw->uplink) != 0) {
        snprintf(err, errlen, "cloud: cannot start the spool or uplink thread");
        return -1;
    }
    return 0;
}

void cloud_stop(struct gateway *gw)
{
    /* the spool first: what devices sent last is committed (their acks may no longer go
     * out, which only means a resend); then the uplink */
    if (gw->spool)
        spool_stop(gw->spool);
    if (gw->uplink)
        uplink_stop(gw->uplink);
}

void cloud_free(struct gateway *gw)
{
    cloud_stop(gw);
    uplink_free(gw->uplink);
    gw->uplink = NULL;
    spool_close(gw->spool);
    gw->spool = NULL;
    if (gw->record_keys) {
        record_keys_wipe(gw->record_keys);
        free(gw->record_keys);
        gw->record_keys = NULL;
    }
}

void cloud_reload(struct gateway *gw, const struct cloud_config *next)
{
    if (!gw->spool) {
        if (next->enabled)
            log_event(LOG_WARN, "reload_partial", "detail=\"a cloud section was added; the "
                      "uplink starts with a restart\"");
        return;
    }
    if (!next->enabled) {
        log_event(LOG_WARN, "reload_partial", "detail=\"the cloud section was removed; the "
                  "uplink stops with a restart\"");
        return;
    }
    if (strcmp(next->spool, gw->cfg.cloud.spool) != 0)
        log_event(LOG_WARN, "reload_partial", "detail=\"cloud.spool.path changes with a "
                  "restart\" path=%s", gw->cfg.cloud.spool);
    char keep[sizeof(gw->cfg.cloud.spool)];
    snprintf(keep, sizeof(keep), "%s", gw->cfg.cloud.spool);
    char why[768];
    bool ok = uplink_check_config(next, why, sizeof(why)) == 0;
    struct record_keys *keys = NULL;
    if (*next->group_key_file) {
        keys = calloc(1, sizeof(*keys));
        if (keys && record_keys_load(next->group_key_file, keys, why, sizeof(why)) != 0) {
            log_event(LOG_ERROR, "reload_failed", "detail=\"%s\" action=kept_old_cloud_config",
                      why);
            free(keys);
            return;
        }
    }
    broker_lock();
    struct record_keys *old_keys = gw->record_keys;
    gw->record_keys = keys;
    gw->cfg.cloud = *next;
    snprintf(gw->cfg.cloud.spool, sizeof(gw->cfg.cloud.spool), "%s", keep);
    gw->cloud_topics_ok = ok;
    broker_unlock();
    if (old_keys) {
        record_keys_wipe(old_keys);
        free(old_keys);
    }
    if (!ok)
        log_event(LOG_ERROR, "cloud_config_error", "detail=\"%s\" action=spooling", why);
    spool_set_limits(gw->spool, next->spool_max_bytes, next->spool_memory_max,
                     next->spool_when_full);
    uplink_reconfigure(gw->uplink, &gw->cfg.cloud); /* with the spool path in use */
}

const struct cloud_route *cloud_route(struct gateway *gw, const char *topic, size_t len,
                                      const char **rest, size_t *rest_len)
{
    return gw->spool ? uplink_route_for(&gw->cfg.cloud, topic, len, rest, rest_len) : NULL;
}

/* Refuses a message the cloud would refuse: MQTT 5 gets a negative ack, 3.1.1 (which has none
 * for QoS 1) a closed connection, QoS 0 is dropped; all logged and counted. */
static int refuse(struct conn *c, const struct mqtt_publish *p, uint8_t reason, const char *why,
                  struct conn_end *end)
{
    c->gw->metrics.cloud_refused++;
    char id[LOG_SAFE_MAX], t[LOG_SAFE_MAX];
    log_event(LOG_WARN, "cloud_refused_publish", "id=%s topic=%s bytes=%zu reason=\"%s\"",
              log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)),
              log_safe((const char *)p->topic.data, p->topic.len, t, sizeof(t)), p->payload.len,
              why);
    if (p->qos == 0)
        return -1;
    if (c->version == MQTT_V5) {
        send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, reason, why);
        return -1;
    }
    *end = CONN_END(reason, why); /* 3.1.1 has no negative ack: the connection ends */
    return -1;
}

int cloud_take_publish(struct conn *c, const struct mqtt_publish *p,
                       const struct cloud_route *rt, const char *rest, size_t rest_len,
                       struct conn_end *end)
{
    BROKER_LOCK_HELD();
    *end = CONN_GO_ON;
    struct gateway *gw = c->gw;
    struct session *s = c->session;
    bool ack_only = rt == NULL;
    uint8_t refusal = 0;
    const uint8_t *payload = p->payload.data;
    size_t payload_len = p->payload.len;
    char json[512];
    if (!ack_only && spool_disk_full(gw->spool) && c->version == MQTT_V5) {
        /* the spool's disk is full (docs/cloud.md): an MQTT 5 device hears it at once, 0x97,
         * rather than waiting for an ack; the spool's own log line says why. Behind acks that
         * still wait, the refusal waits its turn (acks leave in PUBLISH order). */
        gw->metrics.cloud_refused++;
        if (p->qos == 0)
            return -1;
        if (c->spool_waiting == 0) {
            send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
                     MQTT_RC_QUOTA_EXCEEDED, "the gateway's spool disk is full; send again later");
            return -1;
        }
        ack_only = true;
        refusal = MQTT_RC_QUOTA_EXCEEDED;
    }
    if (!ack_only) {
        const struct cloud_config *k = &gw->cfg.cloud;
        if (p->payload.len > k->max_payload)
            return refuse(c, p, MQTT_RC_PACKET_TOO_LARGE,
                          "payload over the cloud's limit (cloud.max_payload)", end);
        char topic[AWS_TOPIC_MAX_BYTES * 2];
        const char *why = NULL;
        if (gw->cloud_topics_ok && uplink_route_topic(k, rt, s->id, rest, rest_len, topic,
                                                      sizeof(topic), &why) < 0)
            return refuse(c, p, MQTT_RC_TOPIC_NAME_INVALID, why ? why : "bad template", end);
        if (rt->payload == CLOUD_PAYLOAD_JSON) {
            why = "no group key";
            struct record opened;
            int n = gw->record_keys
                        ? record_to_json(gw->record_keys, s->id, (const char *)p->topic.data,
                                         p->topic.len, p->payload.data, p->payload.len, json,
                                         sizeof(json), &opened, &why)
                        : -1;
            if (n < 0)
                return refuse(c, p, MQTT_RC_PAYLOAD_FORMAT_INVALID, why, end);
            payload = (const uint8_t *)json;
            payload_len = (size_t)n;
            /* kept for the operator's view (the dashboard's chart of this sensor) */
            session_add_reading(s, (int64_t)opened.time_ms, (float)opened.temp_centi / 100.0f,
                                (float)opened.rh_centi / 100.0f);
        }
    }
    struct spool_item *it = spool_item_new(ack_only ? NULL : s->id,
                                           ack_only ? NULL : (const char *)p->topic.data,
                                           ack_only ? 0 : p->topic.len,
                                           ack_only ? NULL : payload,
                                           ack_only ? 0 : payload_len, s->id);
    if (!it) {
        *end = CONN_END(MQTT_RC_IMPL_SPECIFIC, "out of memory");
        return -1;
    }
    it->droppable = p->qos == 0;
    if (p->qos > 0) {
        it->has_ack = true;
        it->ack.anonymous = s->anonymous;
        it->ack.conn_gen = c->gen;
        it->ack.received_us = c->rx_us;
        it->ack.packet_id = p->packet_id;
        it->ack.type = p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
        it->ack.reason = refusal;
    }
    char id[LOG_SAFE_MAX];
    switch (spool_submit(gw->spool, it)) {
    case 0:
        /* the ack is released by the spool thread, which needs the broker lock held here */
        if (p->qos > 0)
            c->spool_waiting++;
        if (!ack_only)
            gw->metrics.cloud_spooled++;
        return refusal ? -1 : 0;
    case -1: {
        /* QoS 0 while the spool is full: counted (spool drops); logged once per interval */
        static struct log_limit limit;
        LOG_LIMITED(&limit, LOG_WARN, "spool_drop", "id=%s qos=0 reason=spool_full",
                    log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)));
        return 0;
    }
    default:
        /* spool full and its queue in memory too: the message is not acknowledged; closing
         * the connection makes the device send it again after it reconnects */
        gw->metrics.cloud_refused++;
        log_event(LOG_WARN, "spool_refused", "id=%s reason=spool_full_and_queue_full "
                  "action=disconnect", log_safe(c->who.id, strlen(c->who.id), id, sizeof(id)));
        *end = CONN_END(MQTT_RC_QUOTA_EXCEEDED, "the spool is full; send again later");
        return -1;
    }
}

/* The verdict as JSON (docs/design/wire.md section 5: psagw/<gateway>/attest/<id>): the
 * token's public claims (iat_json.c), never the key or the MAC. Built only when a cloud takes
 * verdicts. */
void cloud_attest_verdict(struct gateway *gw, const struct attest_verdict *v)
{
    if (!gw->spool || !*gw->cfg.cloud.attest_topic)
        return;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "device", v->device, "verdict",
                          v->result == IAT_OK ? "accepted" : "refused", "result",
                          iat_result_name(v->result), "reason", v->reason, "time_ms",
                          (json_int_t)clock_wall_ms());
    if (!o)
        return;
    if (v->tok) {
        json_t *claims = iat_claims_to_json(v->tok);
        if (claims)
            json_object_set_new(o, "claims", claims);
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        return;
    struct spool_item *it = spool_item_new(v->device, UPLINK_ATTEST_TOPIC,
                                           strlen(UPLINK_ATTEST_TOPIC), (const uint8_t *)text,
                                           strlen(text), NULL);
    free(text);
    if (it) {
        it->droppable = true; /* evidence stays in the registry's history either way */
        spool_submit(gw->spool, it);
    }
}

void cloud_log_stats(struct gateway *gw)
{
    if (!gw->spool)
        return;
    struct spool_stats st;
    struct uplink_stats us;
    spool_get_stats(gw->spool, &st);
    uplink_get_stats(gw->uplink, &us);
    log_event(LOG_INFO, "cloud_stats",
              "connected=%d spool_state=%s spool_records=%llu spool_bytes=%llu spool_drops=%llu "
              "spool_blocked=%d spool_disk_full_events=%llu spool_wal_bytes=%llu "
              "spool_db_bytes=%llu spool_checkpoints=%llu "
              "spool_written=%llu spool_commits=%llu spool_commit_avg_us=%llu spool_commit_max_us=%llu "
              "published=%llu acked=%llu rejected=%llu "
              "unroutable=%llu inflight=%llu connects=%llu failures=%llu commands_in=%llu "
              "commands_delivered=%llu commands_dropped=%llu",
              us.connected, st.disk_full ? "disk_full" : st.blocked ? "blocked" : "ok",
              (unsigned long long)st.records, (unsigned long long)st.bytes,
              (unsigned long long)st.drops, st.blocked, (unsigned long long)st.disk_full_events,
              (unsigned long long)st.wal_bytes, (unsigned long long)st.db_bytes,
              (unsigned long long)st.checkpoints, (unsigned long long)st.written,
              (unsigned long long)st.commits,
              (unsigned long long)(st.commits ? st.commit_us / st.commits : 0),
              (unsigned long long)st.commit_max_us, (unsigned long long)us.published,
              (unsigned long long)us.acked, (unsigned long long)us.rejected,
              (unsigned long long)us.unroutable, (unsigned long long)us.inflight,
              (unsigned long long)us.connects, (unsigned long long)us.failures,
              (unsigned long long)us.commands_in, (unsigned long long)us.commands_delivered,
              (unsigned long long)us.commands_dropped);
}
