/*
 * cloud_client.h: the uplink's MQTT client, on the shared codec and OpenSSL.
 *
 * It replaced libmosquitto in the uplink (docs/performance.md has both measured): libmosquitto
 * 2.0 writes every PUBLISH with its own SSL_write (one TLS record and one syscall each), reads
 * each PUBACK with several small reads, looks PUBACKs up in a list, and its asynchronous TLS
 * connect does not notice a refused connection. This client queues packets in one buffer and
 * writes them as large TLS records, reads with read-ahead, and reports connection failures
 * with their cause. One thread uses it (the uplink's); nothing here locks.
 */
#ifndef PSAGW_CLOUD_CLIENT_H
#define PSAGW_CLOUD_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct cloud_client;

struct cloud_client_cb {
    /* the cloud's PUBACK for a PUBLISH (reason: MQTT 5 reason code, 0 for 3.1.1) */
    void (*on_puback)(void *arg, uint16_t packet_id, uint8_t reason);
    /* a PUBLISH from the cloud (QoS 1 is acknowledged by the client after this returns) */
    void (*on_message)(void *arg, const char *topic, size_t topic_len, const uint8_t *payload,
                       size_t len, uint8_t qos);
    void (*on_suback)(void *arg, uint8_t reason);
    void *arg;
};

/*
 * Connects: TCP, TLS (ctx; SNI and the name checked are `sni` or `host`), MQTT CONNECT with a
 * clean session, CONNACK, then SUBSCRIBE to cmd_filter (if any) with QoS 1. Blocks for at most
 * timeout_ms, or until stop_fd becomes readable. NULL with the reason in err on failure.
 */
struct cloud_client *cloud_client_connect(const struct cloud_config *cfg, SSL_CTX *ctx,
                                          const char *cmd_filter,
                                          const struct cloud_client_cb *cb, int stop_fd,
                                          int timeout_ms, char *err, size_t errlen);
/* The cloud's Receive Maximum (65535 if it set none) and Maximum Packet Size (0: none). */
uint16_t cloud_client_receive_max(const struct cloud_client *c);
uint32_t cloud_client_max_packet(const struct cloud_client *c);
/* Queues a QoS 1 PUBLISH; it is written by cloud_client_flush. -1: larger than the cloud
 * accepts (err says so) or out of memory. */
int cloud_client_publish(struct cloud_client *c, uint16_t packet_id, const char *topic,
                         size_t topic_len, const uint8_t *payload, size_t len);
int cloud_client_fd(const struct cloud_client *c);
bool cloud_client_want_write(const struct cloud_client *c);
/* Writes what is queued (as far as the socket takes it). 0, or -1 when the connection failed. */
int cloud_client_flush(struct cloud_client *c);
/* Reads what arrived and calls the callbacks. 0, or -1 when the connection ended. */
int cloud_client_read(struct cloud_client *c);
/* Keep-alive: sends PINGREQ when due; -1 if the cloud stopped answering. Returns in *next_ms
 * the milliseconds until it wants to be called again. */
int cloud_client_tick(struct cloud_client *c, uint64_t now_ms, uint64_t *next_ms);
/* Why the connection failed (after a -1). */
const char *cloud_client_error(const struct cloud_client *c);
/* Ends the connection (with DISCONNECT if graceful) and frees the client. */
void cloud_client_close(struct cloud_client *c, bool graceful);

#endif
