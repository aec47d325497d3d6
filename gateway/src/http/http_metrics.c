/*
 * http_metrics.c: /metrics in the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/): one HELP and TYPE line per
 * family, counters named *_total, base units (seconds, bytes), histograms as cumulative
 * _bucket{le=...} series with _sum and _count. `promtool check metrics` passes on it
 * (tests/integration/test_http.sh).
 */
#include <stdatomic.h>

#include "attest.h"
#include "broker_lock.h"
#include "clock.h"
#include "http_render.h"
#include "spool.h"
#include "pacing.h"
#include "uplink.h"

static void family(struct http_buf *b, const char *name, const char *type, const char *help)
{
    http_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct http_buf *b, const char *name, const char *help, double v)
{
    family(b, name, "gauge", help);
    http_buf_printf(b, "%s %.17g\n", name, v);
}

static void counter(struct http_buf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "counter", help);
    http_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void histogram(struct http_buf *b, const char *name, const char *help,
                      struct histogram *h)
{
    family(b, name, "histogram", help);
    uint64_t cum = 0;
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        http_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
                        (double)histogram_bounds_us[i] / 1e6, (unsigned long long)cum);
    }
    cum += atomic_load_explicit(&h->counts[HISTOGRAM_BUCKETS], memory_order_relaxed);
    http_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    http_buf_printf(b, "%s_sum %.6f\n%s_count %llu\n", name,
                    (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6, name,
                    (unsigned long long)cum);
}

void http_metrics_render(struct gateway *gw, struct http_buf *b)
{
    struct metrics *m = &gw->metrics;
    family(b, "psagw_build_info", "gauge", "the running version (always 1)");
    http_buf_printf(b, "psagw_build_info{version=\"%s\"} 1\n", PSAGW_VERSION);
    gauge(b, "psagw_uptime_seconds", "seconds since the gateway started",
          (double)(clock_mono_ms() - gw->started_ms) / 1000.0);

    /* every counter of the stats line */
    char name[96];
#define X(field, help)                                                                            \
    snprintf(name, sizeof(name), "psagw_" #field "_total");                                      \
    counter(b, name, help, atomic_load_explicit(&m->field, memory_order_relaxed));
    METRICS_FIELDS(X)
#undef X

    /* the broker's state, copied under its lock */
    broker_lock();
    size_t sessions = gw->n_sessions, retained = gw->n_retained;
    uint64_t retained_bytes = gw->retained_bytes;
    broker_unlock();
    gauge(b, "psagw_connections", "client connections open (any state)",
          (double)atomic_load(&gw->n_conns));
    gauge(b, "psagw_sessions", "MQTT sessions (connected or waiting offline)", (double)sessions);
    gauge(b, "psagw_retained_messages", "retained messages kept", (double)retained);
    gauge(b, "psagw_retained_bytes", "topic and payload bytes of the retained messages",
          (double)retained_bytes);

    family(b, "psagw_tls_handshake_failures_total", "counter",
           "TLS-PSK handshakes that failed, by reason");
    uint64_t unknown = m->psk_unknown_identity, revoked = m->psk_revoked,
             failed = m->tls_handshakes_failed;
    uint64_t other = failed > unknown + revoked ? failed - unknown - revoked : 0;
    http_buf_printf(b,
                    "psagw_tls_handshake_failures_total{reason=\"unknown_identity\"} %llu\n"
                    "psagw_tls_handshake_failures_total{reason=\"revoked\"} %llu\n"
                    "psagw_tls_handshake_failures_total{reason=\"other\"} %llu\n",
                    (unsigned long long)unknown, (unsigned long long)revoked,
                    (unsigned long long)other);

    family(b, "psagw_attestation_verdicts_total", "counter",
           "attestation verdicts, by result (accepted, or why a token was refused)");
    http_buf_printf(b, "psagw_attestation_verdicts_total{result=\"accepted\"} %llu\n",
                    (unsigned long long)m->attestations_accepted);
    for (int r = 1; r < IAT_RESULT_COUNT_; r++)
        http_buf_printf(b, "psagw_attestation_verdicts_total{result=\"%s\"} %llu\n",
                        iat_result_name((enum iat_result)r),
                        (unsigned long long)attest_refused_count(gw, (enum iat_result)r));

    if (gw->spool) {
        uint64_t records = 0, bytes = 0;
        int64_t oldest = 0;
        spool_get_depth(gw->spool, &records, &bytes, &oldest);
        gauge(b, "psagw_spool_records", "messages in the spool, not yet acknowledged by the cloud",
              (double)records);
        gauge(b, "psagw_spool_bytes", "topic and payload bytes of those messages", (double)bytes);
        int64_t now = (int64_t)clock_wall_ms();
        gauge(b, "psagw_spool_oldest_age_seconds",
              "how long the oldest message in the spool has waited for the cloud (0: empty)",
              oldest && now > oldest ? (double)(now - oldest) / 1000.0 : 0);
        gauge(b, "psagw_spool_disk_full", "1 while the spool's disk is full",
              spool_disk_full(gw->spool) ? 1 : 0);
    }
    if (gw->uplink) {
        struct uplink_stats st;
        uplink_get_stats(gw->uplink, &st);
        if (clock_mono_us() - st.window_at_us > PACING_WINDOW_US)
            st.window_publishes = st.window_bytes = 0; /* nothing sent since */
        gauge(b, "psagw_uplink_connected", "1 while the cloud connection is up",
              st.connected ? 1 : 0);
        gauge(b, "psagw_uplink_inflight", "messages sent to the cloud and not yet acknowledged",
              (double)st.inflight);
        gauge(b, "psagw_uplink_rate_publishes",
              "publishes to the cloud in the last rate window (about a second)",
              (double)st.window_publishes);
        gauge(b, "psagw_uplink_rate_limit_publishes",
              "cloud.max_publish_rate: the most allowed in a window (0: no limit)",
              (double)gw->cfg.cloud.max_publish_rate);
        gauge(b, "psagw_uplink_rate_bytes", "bytes sent to the cloud in the last rate window",
              (double)st.window_bytes);
        gauge(b, "psagw_uplink_rate_limit_bytes",
              "cloud.max_bytes_rate: the most allowed in a window (0: no limit)",
              (double)gw->cfg.cloud.max_bytes_rate);
        counter(b, "psagw_uplink_published_total", "PUBLISHes sent to the cloud (resends too)",
                st.published);
        counter(b, "psagw_uplink_acked_total", "messages the cloud acknowledged", st.acked);
        counter(b, "psagw_uplink_rejected_total", "messages the cloud refused with a reason code",
                st.rejected);
        counter(b, "psagw_uplink_connects_total", "cloud connections established", st.connects);
        counter(b, "psagw_uplink_failures_total", "cloud connection attempts or connections that "
                "failed", st.failures);
    }

    histogram(b, "psagw_connect_latency_seconds",
              "TCP accept to CONNACK (TLS handshake and attestation included)",
              &m->connect_latency);
    histogram(b, "psagw_puback_latency_seconds",
              "a QoS 1/2 PUBLISH read to its PUBACK/PUBREC queued (the spool's commit included "
              "when it goes to the cloud)",
              &m->puback_latency);
    histogram(b, "psagw_spool_commit_seconds", "one spool transaction's COMMIT (the disk sync)",
              &m->spool_commit);
    histogram(b, "psagw_cloud_puback_latency_seconds",
              "a message sent to the cloud to the cloud's PUBACK", &m->cloud_puback);
}
