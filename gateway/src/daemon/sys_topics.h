/*
 * sys_topics.h: the broker's state as retained `$SYS/` messages for MQTT-native tools, the
 * subset of mosquitto's `$SYS/broker/...` tree that applies, plus `$SYS/psagw/...` for
 * attestation, the spool and the uplink (docs/observability.md). Published every
 * mqtt.sys_interval seconds from worker 0. `$SYS` topics match no filter that starts with a
 * wildcard, so only a client whose ACL names them (a custom role with `$SYS/#`, or the
 * anonymous ACL) can subscribe.
 */
#ifndef PSAGW_SYS_TOPICS_H
#define PSAGW_SYS_TOPICS_H

#include "context.h"

/* Publishes every $SYS topic now (takes the broker lock). */
void sys_topics_publish(struct gateway *gw);

#endif
