/*
 * proto.h: the MQTT protocol steps, one file each (handle_connect.c, handle_auth.c,
 * handle_publish.c, handle_subscribe.c, handle_control.c for the dispatch and the small
 * packets). proto_handlers is the table the connection layer calls.
 */
#ifndef PSAGW_PROTO_H
#define PSAGW_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "psagw/mqtt.h"
#include "registry.h"

/* What net/ calls: a packet, a closing connection, a connection's memory going. */
extern const struct conn_handlers proto_handlers;
/* What a TLS identity found in the registry gets: its ACL principal and attestation key (the
 * tls_admit_fn of net/tls.h). */
int proto_admit(struct conn *c, const struct device *d);

/* One packet (broker lock held): its step, then proto_end with what the step returned. */
void handle_packet(struct conn *c, const uint8_t *buf, size_t len);
/* The steps, called by handle_packet with the broker lock held. Each returns CONN_GO_ON, or why
 * the connection must end (a reply the step owed, such as a CONNACK refusal, is already sent). */
struct conn_end handle_connect(struct conn *c, const struct mqtt_connect *p, const uint8_t *raw,
                               size_t raw_len);
struct conn_end handle_publish(struct conn *c, struct mqtt_publish *p);
void handle_ack(struct conn *c, uint8_t type, const struct mqtt_ack *a);
void handle_pubrel(struct conn *c, const struct mqtt_ack *a);
struct conn_end handle_subscribe(struct conn *c, const struct mqtt_subscribe *s);
struct conn_end handle_unsubscribe(struct conn *c, const struct mqtt_subscribe *s);
struct conn_end handle_auth(struct conn *c, const struct mqtt_reason_packet *a);
struct conn_end handle_disconnect(struct conn *c, const struct mqtt_reason_packet *d);

/* handle_connect.c and handle_auth.c call each other (the CONNECT/AUTH exchange): */
/* The end of CONNECT once any authentication is done: session, CONNACK (handle_connect.c). */
struct conn_end connect_accept(struct conn *c, const struct mqtt_connect *p);
/* Refuses a CONNECT with a CONNACK reason (logged, counted); returns the quiet end that
 * follows (handle_connect.c). */
struct conn_end connect_refuse(struct conn *c, uint8_t reason, const char *why);
/* Starts the PSA-IAT challenge for a CONNECT that carries the method (handle_auth.c). */
struct conn_end auth_begin(struct conn *c, const uint8_t *raw, size_t len);
/* (Re)starts the re-attestation interval after a good verdict (handle_auth.c). */
void auth_arm_reattest(struct conn *c);

#endif
