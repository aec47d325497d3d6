/*
 * metrics.h: the gateway's counters. Every logged event of interest has its counter here, with
 * a line saying what it counts; the daemon logs them all as one `event=stats` line every
 * stats_interval seconds, on SIGUSR1, and at exit, and the HTTP endpoint exports them
 * (`psagw_<name>_total`, http/http_metrics.c).
 */
#ifndef PSAGW_METRICS_H
#define PSAGW_METRICS_H

#include <stdint.h>

#include "histogram.h"

#define METRICS_FIELDS(X) \
    X(connections_accepted, "TCP connections accepted on the device listeners") \
    X(connections_refused, "connections closed at accept (max_connections reached)") \
    X(accept_fd_exhausted, "accepts that found no file descriptor left (accepted with the spare and closed)") \
    X(tls_handshakes_ok, "TLS-PSK handshakes completed") \
    X(tls_handshakes_failed, "TLS-PSK handshakes that failed (unknown or revoked identity, wrong key, protocol error, timeout)") \
    X(handshakes_refused, "connections closed because too many handshakes were in progress (tls.max_handshakes, per address)") \
    X(tls_resumed, "TLS handshakes that resumed a session with one of the gateway's tickets") \
    X(tls_handshakes_own, "TLS 1.2 PSK handshakes completed by the gateway's own code (docs/tls-handshake.md); OpenSSL ran the rest") \
    X(tls_record_layer_own, "connections whose TLS records the gateway protects itself after the handshake") \
    X(tls_record_errors, "connections ended by a bad TLS record after the handshake (fatal alert sent)") \
    X(psk_unknown_identity, "handshakes refused for a PSK identity not in the registry") \
    X(psk_revoked, "handshakes refused for a revoked device") \
    X(mqtt_connects_ok, "MQTT CONNECTs accepted (CONNACK 0x00)") \
    X(mqtt_connects_refused, "MQTT CONNECTs refused (CONNACK with an error, attestation failures included)") \
    X(sessions_taken_over, "sessions taken over by a newer connection with the same client id") \
    X(malformed_packets, "connections ended for a malformed MQTT packet") \
    X(protocol_errors, "connections ended for an MQTT protocol error") \
    X(packets_too_large, "connections ended for a packet above max_packet_size") \
    X(internal_errors, "connections ended for an internal error (out of memory)") \
    X(keepalive_timeouts, "connections ended because the client was silent past 1.5 times its keep-alive") \
    X(publishes_in, "PUBLISH packets received from clients") \
    X(publishes_out, "PUBLISH packets sent to clients") \
    X(acks_unknown, "PUBACK, PUBREC or PUBCOMP packets for no delivery in flight") \
    X(topic_alias_bytes_saved, "topic bytes not sent thanks to outbound topic aliases") \
    X(shared_handed_over, "unacknowledged shared-subscription messages handed to another member when a session ended") \
    X(shared_lost, "unacknowledged shared-subscription messages with no member left to take them") \
    X(acl_denied_publish, "PUBLISHes refused by the ACL") \
    X(acl_denied_subscribe, "subscriptions refused by the ACL") \
    X(topics_refused, "topic names or filters over max_topic_length or max_topic_levels") \
    X(subscriptions_refused, "subscriptions over max_subscriptions_per_client") \
    X(retained_refused, "retained messages not kept (max_retained_bytes)") \
    X(messages_dropped_queue_full, "deliveries dropped because a session's queue was full (messages or bytes)") \
    X(bytes_dropped_queue_full, "topic and payload bytes of those drops") \
    X(messages_dropped_too_large, "deliveries dropped as larger than the client's Maximum Packet Size") \
    X(messages_expired, "queued deliveries dropped when their Message Expiry Interval passed") \
    X(wills_published, "will messages published") \
    X(sessions_expired, "sessions ended by their expiry interval") \
    X(revoked_disconnects, "connections closed because their device was revoked or changed") \
    X(attestations_accepted, "attestation verdicts: accepted") \
    X(attestations_refused, "attestation verdicts: refused (the reasons: psagw_attestation_refusals_total)") \
    X(attestation_timeouts, "devices that did not send their token before the deadline") \
    X(reattestations, "periodic re-attestations completed") \
    X(cloud_spooled, "messages written to the spool for the cloud") \
    X(cloud_refused, "messages for the cloud refused (spool full or unusable)") \
    X(spool_backpressure, "times a connection's reading was paused while the spool caught up") \
    X(output_backpressure, "times a connection's reading was paused because it did not read our answers") \
    X(commands_down, "commands from the cloud delivered to a device") \
    X(http_requests, "HTTP requests answered with the bearer token") \
    X(http_unauthorized, "HTTP requests refused for a missing or wrong bearer token")

struct metrics {
#define X(name, help) _Atomic uint64_t name; /* incremented from every worker */
    METRICS_FIELDS(X)
#undef X
    /* latencies (exported as histograms) */
    struct histogram connect_latency;    /* TCP accept to CONNACK (TLS and attestation in it) */
    struct histogram puback_latency;     /* a QoS 1/2 PUBLISH read to its PUBACK/PUBREC queued */
    struct histogram spool_commit;       /* one spool transaction's COMMIT (the sync) */
    struct histogram cloud_puback;       /* a message sent to the cloud to the cloud's PUBACK */
};

/* Logs every counter and the gauges given, as one event=stats line. */
void metrics_log(const struct metrics *m, uint64_t connections, uint64_t sessions,
                 uint64_t retained);

#endif
