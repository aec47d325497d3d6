/*
 * metrics.h: the gateway's counters. Every logged event of interest has its counter here; the
 * daemon logs them all as one `event=stats` line every stats_interval seconds, on SIGUSR1,
 * and at exit.
 */
#ifndef PSAGW_METRICS_H
#define PSAGW_METRICS_H

#include <stdint.h>

#define METRICS_FIELDS(X)                                                                         \
    X(connections_accepted)                                                                       \
    X(connections_refused)                                                                        \
    X(accept_fd_exhausted)                                                                        \
    X(tls_handshakes_ok)                                                                          \
    X(tls_handshakes_failed)                                                                      \
    X(handshakes_refused)                                                                         \
    X(tls_resumed)                                                                                \
    X(tls_record_layer_own)                                                                       \
    X(tls_record_errors)                                                                          \
    X(psk_unknown_identity)                                                                       \
    X(psk_revoked)                                                                                \
    X(mqtt_connects_ok)                                                                           \
    X(mqtt_connects_refused)                                                                      \
    X(sessions_taken_over)                                                                        \
    X(malformed_packets)                                                                          \
    X(protocol_errors)                                                                            \
    X(packets_too_large)                                                                          \
    X(internal_errors)                                                                            \
    X(keepalive_timeouts)                                                                         \
    X(publishes_in)                                                                               \
    X(publishes_out)                                                                              \
    X(acks_unknown)                                                                               \
    X(topic_alias_bytes_saved)                                                                    \
    X(shared_handed_over)                                                                         \
    X(shared_lost)                                                                                \
    X(acl_denied_publish)                                                                         \
    X(acl_denied_subscribe)                                                                       \
    X(topics_refused)                                                                             \
    X(subscriptions_refused)                                                                      \
    X(retained_refused)                                                                           \
    X(messages_dropped_queue_full)                                                                \
    X(bytes_dropped_queue_full)                                                                   \
    X(messages_dropped_too_large)                                                                 \
    X(messages_expired)                                                                           \
    X(wills_published)                                                                            \
    X(sessions_expired)                                                                           \
    X(revoked_disconnects)                                                                        \
    X(attestations_accepted)                                                                      \
    X(attestations_refused)                                                                       \
    X(attestation_timeouts)                                                                       \
    X(reattestations)                                                                             \
    X(cloud_spooled)                                                                              \
    X(cloud_refused)                                                                              \
    X(spool_backpressure)                                                                         \
    X(commands_down)

struct metrics {
#define X(name) _Atomic uint64_t name; /* incremented from every worker */
    METRICS_FIELDS(X)
#undef X
};

/* Logs every counter and the gauges given, as one event=stats line. */
void metrics_log(const struct metrics *m, uint64_t connections, uint64_t sessions,
                 uint64_t retained);

#endif
