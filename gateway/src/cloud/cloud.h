/*
 * cloud.h: where the broker meets the spool and the uplink (docs/cloud.md): device messages
 * on a cloud route go to the spool, their acks leave once durable, commands come back down.
 */
#ifndef PSAGW_CLOUD_H
#define PSAGW_CLOUD_H

#include <stddef.h>

#include "attest.h"
#include "config.h"
#include "conn.h"
#include "context.h"
#include "psagw/mqtt.h"

int cloud_init(struct gateway *gw, char *err, size_t errlen);
void cloud_stop(struct gateway *gw); /* at shutdown, after the workers */
void cloud_free(struct gateway *gw);
void cloud_reload(struct gateway *gw, const struct cloud_config *next);
/* The cloud route a device topic takes (with the levels for {rest}), or NULL (broker lock). */
const struct cloud_route *cloud_route(struct gateway *gw, const char *topic, size_t len,
                                      const char **rest, size_t *rest_len);
/* Takes a PUBLISH for the cloud `route`, or (route NULL) just its ack when earlier acks of the
 * connection still wait for the spool. Returns 0 when the ack will be sent by the spool, -1
 * after refusing the message (a negative ack sent, or *end says why the connection must end).
 * Broker lock held. */
int cloud_take_publish(struct conn *c, const struct mqtt_publish *p,
                       const struct cloud_route *route, const char *rest, size_t rest_len,
                       struct conn_end *end);
/* An attestation verdict, spooled as JSON for attest_topic (an attest_callbacks.verdict). */
void cloud_attest_verdict(struct gateway *gw, const struct attest_verdict *v);
void cloud_log_stats(struct gateway *gw);

#endif
