/*
 * http_api.c: the read-only JSON API (/api/...) and /readyz. No secret ever leaves: a device's
 * PSK and IAK are not shown, nor their lengths; "attestation_key" only says whether one is
 * registered. Tokens kept as evidence stay in the registry.
 *
 *   /api/devices?after=ID&limit=N   a page of devices (by id; N <= 500, 100 by default) with
 *                                   their connection and last verdict; "next" continues it
 *   /api/devices/ID                 one device, and its verdict history
 *   /api/verdicts                   the latest verdicts, newest first
 *   /api/spool                      the spool and the cloud link
 *   /api/refvals                    the attestation reference values
 *   /api/readings                   the last readings of each sensor whose records the gateway
 *                                   opens (cloud routes with payload = "json")
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "broker_lock.h"
#include "clock.h"
#include "hex.h"
#include "http_render.h"
#include "session.h"
#include "spool.h"
#include "uplink.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 500
#define HISTORY_SHOWN 20

static void put_json(struct http_buf *b, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (text)
        http_buf_printf(b, "%s\n", text);
    else
        b->oom = true;
    free(text);
    json_decref(doc);
}

static json_t *error_doc(const char *text)
{
    return json_pack("{s:s}", "error", text);
}

/* The registry's view of a device, copied while its lock is held. */
struct dev_row {
    char id[DEVICE_ID_MAX + 1];
    const char *role, *policy, *profile;
    bool revoked, has_iak;
    int64_t created, updated;
};

struct page {
    struct dev_row *rows;
    size_t n, cap;
};

static int take_row(const struct device *d, void *arg)
{
    struct page *p = arg;
    if (p->n == p->cap)
        return 1;
    struct dev_row *r = &p->rows[p->n++];
    snprintf(r->id, sizeof(r->id), "%s", d->id);
    r->role = device_role_name(d->role);
    r->policy = device_policy_name(d->attestation);
    r->profile = iat_profile_name(d->iat_profile);
    r->revoked = d->revoked;
    r->has_iak = d->iak_len > 0;
    r->created = d->created;
    r->updated = d->updated;
    return 0;
}

/* The recent verdicts, copied once per page (one hold of the broker lock, not one per device). */
struct recent_copy {
    struct attest_recent v[ATTEST_RECENT_MAX];
    size_t n; /* newest first */
};

static void copy_recent(const struct attest_recent *v, void *arg)
{
    struct recent_copy *rc = arg;
    rc->v[rc->n++] = *v;
}

static json_t *verdict_json(const struct attest_recent *v)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s}", "device", v->id, "verdict",
                     v->accepted ? "accepted" : "refused", "at_ms", (json_int_t)v->at_ms,
                     "result", v->result, "reason", v->reason, "peer", v->peer, "profile",
                     v->profile, "lifecycle", v->lifecycle);
}

/* The device's newest verdict among the recent ones, or NULL. */
static json_t *last_verdict(const struct recent_copy *rc, const char *id)
{
    for (size_t i = 0; i < rc->n; i++)
        if (strcmp(rc->v[i].id, id) == 0)
            return verdict_json(&rc->v[i]);
    return NULL;
}

/* The device's live state: its session and connection, copied under the broker lock. */
static json_t *device_json(struct gateway *gw, const struct dev_row *r,
                           const struct recent_copy *recent)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:I,s:I}", "id", r->id, "role", r->role,
                          "attestation_policy", r->policy, "iat_profile", r->profile,
                          "revoked", r->revoked, "attestation_key",
                          r->has_iak ? "registered" : "none", "created", (json_int_t)r->created,
                          "updated", (json_int_t)r->updated);
    if (!o)
        return NULL;
    broker_lock();
    struct session *s = session_find(gw, r->id, false);
    struct conn *c = s ? s->conn : NULL;
    json_t *live = json_object();
    if (live) {
        json_object_set_new(live, "session", json_boolean(s != NULL));
        json_object_set_new(live, "connected", json_boolean(c && c->state == CONN_CONNECTED));
        if (s) {
            json_object_set_new(live, "queued", json_integer(s->n_pending));
            json_object_set_new(live, "inflight", json_integer(s->n_inflight));
            json_object_set_new(live, "subscriptions", json_integer(s->n_subs));
            json_object_set_new(live, "publishes_in", json_integer((json_int_t)s->publishes_in));
        }
        if (c && c->state == CONN_CONNECTED) {
            json_object_set_new(live, "peer", json_string(c->peer));
            json_object_set_new(live, "mqtt", json_string(c->version == MQTT_V5 ? "5.0"
                                                                               : "3.1.1"));
            json_object_set_new(live, "tls", json_string(c->tls_version ? c->tls_version
                                                                        : "none"));
            if (c->tls_cipher)
                json_object_set_new(live, "cipher", json_string(c->tls_cipher));
            json_object_set_new(live, "attested", json_boolean(c->attested));
            json_object_set_new(live, "keep_alive", json_integer(c->keep_alive));
            json_object_set_new(live, "idle_ms",
                                json_integer((json_int_t)(clock_mono_ms() - c->last_rx_ms)));
            json_object_set_new(live, "last_seen_ms",
                                json_integer((json_int_t)clock_wall_ms() -
                                             (json_int_t)(clock_mono_ms() - c->last_rx_ms)));
        } else if (s && s->detached_ms) {
            json_object_set_new(live, "last_seen_ms", json_integer((json_int_t)s->detached_ms));
        }
    }
    broker_unlock();
    json_object_set_new(o, "live", live ? live : json_null());
    json_t *lv = last_verdict(recent, r->id);
    if (live && !json_object_get(live, "last_seen_ms") && lv)
        /* no session kept: its last attestation is the last time it was seen */
        json_object_set(live, "last_seen_ms", json_object_get(lv, "at_ms"));
    json_object_set_new(o, "last_verdict", lv ? lv : json_null());
    return o;
}

static int devices_page(struct gateway *gw, http_param_fn param, void *conn, struct http_buf *b)
{
    const char *after = param(conn, "after"), *lim = param(conn, "limit");
    long limit = lim ? strtol(lim, NULL, 10) : PAGE_DEFAULT;
    if (limit < 1 || limit > PAGE_MAX) {
        put_json(b, error_doc("limit must be 1..500"));
        return 400;
    }
    struct page p = {.rows = calloc((size_t)limit, sizeof(struct dev_row)), .cap = (size_t)limit};
    if (!p.rows) {
        b->oom = true;
        return 500;
    }
    int64_t total = 0;
    pthread_mutex_lock(&gw->reg_lock);
    int rc = registry_list_page(gw->reg, after, (unsigned)limit, take_row, &p);
    if (rc == REG_OK)
        rc = registry_count(gw->reg, &total);
    pthread_mutex_unlock(&gw->reg_lock);
    if (rc != REG_OK) {
        free(p.rows);
        put_json(b, error_doc("the registry cannot be read now"));
        return 503;
    }
    static struct recent_copy recent; /* the HTTP thread's alone */
    recent.n = 0;
    attest_recent_each(gw, copy_recent, &recent);
    json_t *list = json_array();
    for (size_t i = 0; i < p.n && list; i++)
        json_array_append_new(list, device_json(gw, &p.rows[i], &recent));
    json_t *doc = json_pack("{s:o,s:I,s:o}", "devices", list ? list : json_array(), "total",
                            (json_int_t)total, "next",
                            p.n == (size_t)limit ? json_string(p.rows[p.n - 1].id) : json_null());
    free(p.rows);
    put_json(b, doc);
    return 200;
}

static int take_history(const struct attest_record *rec, void *arg)
{
    json_array_append_new(arg, json_pack("{s:s,s:I,s:s,s:s,s:s}", "verdict",
                                         rec->accepted ? "accepted" : "refused", "at_ms",
                                         (json_int_t)rec->at_ms, "result",
                                         rec->result ? rec->result : "", "reason",
                                         rec->reason ? rec->reason : "", "peer",
                                         rec->peer ? rec->peer : ""));
    return 0;
}

static int one_device(struct gateway *gw, const char *id, struct http_buf *b)
{
    struct device d;
    struct dev_row row;
    memset(&row, 0, sizeof(row));
    struct page p = {.rows = &row, .cap = 1};
    json_t *history = json_array();
    pthread_mutex_lock(&gw->reg_lock);
    int rc = device_id_valid(id, strlen(id)) ? registry_get(gw->reg, id, &d) : REG_NOT_FOUND;
    if (rc == REG_OK) {
        take_row(&d, &p);
        device_clear(&d);
        registry_history_list(gw->reg, id, HISTORY_SHOWN, take_history, history);
    }
    pthread_mutex_unlock(&gw->reg_lock);
    if (rc != REG_OK) {
        json_decref(history);
        put_json(b, error_doc(rc == REG_NOT_FOUND ? "no such device" : "registry unreadable"));
        return rc == REG_NOT_FOUND ? 404 : 503;
    }
    static struct recent_copy recent;
    recent.n = 0;
    attest_recent_each(gw, copy_recent, &recent);
    json_t *o = device_json(gw, &p.rows[0], &recent);
    if (o)
        json_object_set_new(o, "history", history ? history : json_array());
    put_json(b, o);
    return 200;
}

static void take_recent(const struct attest_recent *v, void *arg)
{
    json_array_append_new(arg, verdict_json(v));
}

static int verdicts(struct gateway *gw, struct http_buf *b)
{
    json_t *list = json_array();
    if (list)
        attest_recent_each(gw, take_recent, list);
    put_json(b, json_pack("{s:o}", "verdicts", list ? list : json_array()));
    return 200;
}

static int spool_status(struct gateway *gw, struct http_buf *b)
{
    json_t *o = json_object();
    if (!o) {
        b->oom = true;
        return 500;
    }
    json_object_set_new(o, "cloud_configured", json_boolean(gw->cfg.cloud.enabled));
    if (gw->spool) {
        uint64_t records = 0, bytes = 0;
        int64_t oldest = 0;
        spool_get_depth(gw->spool, &records, &bytes, &oldest);
        int64_t now = (int64_t)clock_wall_ms();
        json_object_set_new(o, "spool", json_pack("{s:I,s:I,s:f,s:s,s:s}", "records",
                                                  (json_int_t)records, "bytes",
                                                  (json_int_t)bytes, "oldest_age_s",
                                                  oldest && now > oldest
                                                      ? (double)(now - oldest) / 1000.0
                                                      : 0.0,
                                                  "state", spool_state_name(gw->spool), "path",
                                                  gw->cfg.cloud.spool));
    }
    if (gw->uplink) {
        struct uplink_stats st;
        uplink_get_stats(gw->uplink, &st);
        json_object_set_new(o, "uplink",
                            json_pack("{s:s,s:i,s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:I}", "host",
                                      gw->cfg.cloud.host, "port", (int)gw->cfg.cloud.port,
                                      "client_id", gw->cfg.cloud.client_id, "connected",
                                      st.connected, "inflight", (json_int_t)st.inflight,
                                      "published", (json_int_t)st.published, "acked",
                                      (json_int_t)st.acked, "rejected", (json_int_t)st.rejected,
                                      "connects", (json_int_t)st.connects, "failures",
                                      (json_int_t)st.failures));
    }
    put_json(b, o);
    return 200;
}

static int take_refval(const struct refval *rv, void *arg)
{
    char value[129], signer[129];
    hex_encode(rv->value, rv->value_len, value, sizeof(value));
    hex_encode(rv->signer_id, rv->signer_len, signer, sizeof(signer));
    json_array_append_new(arg, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:I}", "id", (json_int_t)rv->id,
                                         "kind",
                                         rv->kind == REFVAL_IMPLEMENTATION ? "implementation"
                                                                           : "measurement",
                                         "value", value, "signer_id", signer, "type", rv->type,
                                         "label", rv->label, "created",
                                         (json_int_t)rv->created));
    return 0;
}

static int refvals(struct gateway *gw, struct http_buf *b)
{
    json_t *list = json_array();
    pthread_mutex_lock(&gw->reg_lock);
    int rc = list ? registry_refval_list(gw->reg, take_refval, list) : REG_DB;
    pthread_mutex_unlock(&gw->reg_lock);
    if (rc != REG_OK) {
        json_decref(list);
        put_json(b, error_doc("the registry cannot be read now"));
        return 503;
    }
    put_json(b, json_pack("{s:o}", "refvals", list));
    return 200;
}

#define READINGS_DEVICES_MAX 200

static int readings(struct gateway *gw, struct http_buf *b)
{
    json_t *all = json_object();
    if (!all) {
        b->oom = true;
        return 500;
    }
    static struct reading r[SESSION_READINGS]; /* the HTTP thread's alone */
    size_t devices = 0;
    broker_lock();
    for (size_t k = 0; k < gw->session_buckets && devices < READINGS_DEVICES_MAX; k++)
        for (struct session *s = gw->sessions[k]; s && devices < READINGS_DEVICES_MAX;
             s = s->hnext) {
            size_t n = session_readings(s, r, SESSION_READINGS);
            if (!n)
                continue;
            json_t *list = json_array();
            for (size_t i = 0; i < n && list; i++)
                json_array_append_new(list, json_pack("[I,f,f]", (json_int_t)r[i].time_ms,
                                                      (double)r[i].temperature_c,
                                                      (double)r[i].humidity_pct));
            if (list)
                json_object_set_new(all, s->id, list);
            devices++;
        }
    broker_unlock();
    put_json(b, json_pack("{s:o}", "readings", all));
    return 200;
}

int http_api_render(struct gateway *gw, const char *path, http_param_fn param, void *conn,
                    struct http_buf *b)
{
    if (strcmp(path, "/readings") == 0)
        return readings(gw, b);
    if (strcmp(path, "/devices") == 0)
        return devices_page(gw, param, conn, b);
    if (strncmp(path, "/devices/", 9) == 0 && path[9])
        return one_device(gw, path + 9, b);
    if (strcmp(path, "/verdicts") == 0)
        return verdicts(gw, b);
    if (strcmp(path, "/spool") == 0)
        return spool_status(gw, b);
    if (strcmp(path, "/refvals") == 0)
        return refvals(gw, b);
    put_json(b, error_doc("no such page"));
    return 404;
}

int http_ready_render(struct gateway *gw, struct http_buf *b)
{
    bool listening = atomic_load(&gw->serving);
    bool registry = gw->reg && !atomic_load(&gw->registry_lost);
    const char *spool = gw->spool ? spool_state_name(gw->spool) : "none";
    bool spool_ok = !gw->spool || strcmp(spool, "ok") == 0;
    const char *cloud = "none";
    if (gw->uplink) {
        struct uplink_stats st;
        uplink_get_stats(gw->uplink, &st);
        cloud = st.connected ? "connected" : "disconnected";
    }
    bool ready = listening && registry && spool_ok;
    /* the cloud link is reported, not required: devices are served and spooled without it */
    put_json(b, json_pack("{s:b,s:b,s:s,s:s,s:s}", "ready", ready, "listening", listening,
                          "registry", registry ? "ok" : "unavailable", "spool", spool, "cloud",
                          cloud));
    return ready ? 200 : 503;
}
