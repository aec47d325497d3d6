/*
 * send.h: the one way a packet is encoded into a connection's output: one function per packet
 * shape, each encoding straight into the room conn_out_reserve() makes (the codec's encoders
 * are asked for the size first). Broker lock held, or the owner before the connection is
 * shared. Each returns 0, or -1 when the connection is closed or memory ran out.
 */
#ifndef PSAGW_SEND_H
#define PSAGW_SEND_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "psagw/mqtt.h"

#define SEND_MAX_SUBACK_CODES 256 /* filters in one SUBSCRIBE (proto/handle_subscribe.c) */

int send_connack(struct conn *c, bool session_present, uint8_t reason,
                 const struct mqtt_props *props);
/* PUBACK, PUBREC, PUBREL, PUBCOMP; reason_string only if the client asked for problem info */
int send_ack(struct conn *c, uint8_t type, uint16_t packet_id, uint8_t reason,
             const char *reason_string);
/* 1: not sent, larger than the client's Maximum Packet Size (MQTT 5 section 3.1.2.25) */
int send_publish(struct conn *c, const struct mqtt_publish *p);
/* SUBACK or UNSUBACK */
int send_suback(struct conn *c, uint8_t type, uint16_t packet_id, const uint8_t *reasons, size_t n);
/* A SUBACK that must precede what the subscription releases (its retained messages): its room
 * is taken now (*at: where), its reason codes written by send_suback_fill once known (the size
 * does not depend on them). Broker lock held from one to the other. */
int send_suback_reserve(struct conn *c, uint16_t packet_id, size_t n, size_t *at);
void send_suback_fill(struct conn *c, size_t at, uint16_t packet_id, const uint8_t *reasons,
                      size_t n);
/* DISCONNECT or AUTH (MQTT 5) with a reason code and properties */
int send_reason(struct conn *c, uint8_t type, uint8_t reason, const struct mqtt_props *props);
int send_pingresp(struct conn *c);

#endif
