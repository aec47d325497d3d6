/*
 * uplink.h: the gateway's connection to the cloud (docs/design/wire.md section 5): MQTT over TLS with an
 * X.509 client certificate (cloud_client.c on its own thread), draining the durable spool at the
 * cloud's allowed rate, and bringing commands down to devices.
 */
#ifndef PSAGW_UPLINK_H
#define PSAGW_UPLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "spool.h"

struct gateway;
struct uplink;

struct uplink_stats {
    bool connected;
    uint64_t published;   /* PUBLISHes sent (resends included) */
    uint64_t acked;       /* records the cloud acknowledged (then deleted from the spool) */
    uint64_t rejected;    /* the cloud answered with a failure reason code (MQTT 5) */
    uint64_t unroutable;  /* records no route maps any more (config changed): dropped */
    uint64_t connects;    /* successful CONNACKs */
    uint64_t failures;    /* connection attempts or connections that failed */
    uint64_t commands_in;
    uint64_t commands_delivered;
    uint64_t commands_dropped; /* no session for that device, or a bad topic */
    uint64_t inflight;
    uint64_t window_publishes; /* publishes in the last rate window (max_publish_rate's use) */
    uint64_t window_bytes;     /* their bytes (max_bytes_rate's use) */
    uint64_t window_at_us;     /* when those were counted (monotonic); older: none since */
};

/* The device topic under which attestation verdicts are spooled (devices cannot publish '$'
 * topics to the cloud: routes never match them). */
#define UPLINK_ATTEST_TOPIC "$psagw/attest"

struct uplink *uplink_new(struct gateway *gw, struct spool *sp, const struct cloud_config *cfg);
int uplink_start(struct uplink *u);
/* Wakes the thread: the spool has records. Any thread. */
void uplink_wake(struct uplink *u);
/* A new configuration (SIGHUP): the uplink reconnects with it. */
void uplink_reconfigure(struct uplink *u, const struct cloud_config *cfg);
void uplink_stop(struct uplink *u);
void uplink_free(struct uplink *u);
void uplink_get_stats(struct uplink *u, struct uplink_stats *st);

/* Checks everything of the cloud config that can be checked without the network: templates
 * against AWS IoT's limits, CA/cert/key files and that the key matches the certificate. */
int uplink_check_config(const struct cloud_config *cfg, char *err, size_t errlen);

/* The first route that takes this device topic (none for '$' topics), with the levels its
 * trailing '#' matched in rest/rest_len; NULL if none does. */
const struct cloud_route *uplink_route_for(const struct cloud_config *cfg, const char *topic,
                                           size_t len, const char **rest, size_t *rest_len);
/* The cloud topic of a route for a device and its rest; -1 with *why if it breaks a limit. */
int uplink_route_topic(const struct cloud_config *cfg, const struct cloud_route *route,
                       const char *device, const char *rest, size_t rest_len, char *out,
                       size_t cap, const char **why);
/* Maps a spooled device topic (or the verdict topic) to its cloud topic with the first route
 * that matches; -1 if none does (*why NULL) or the result breaks a limit (*why says which). */
int uplink_map_topic(const struct cloud_config *cfg, const char *device, const char *topic,
                     size_t topic_len, char *out, size_t cap, const char **why);

#endif
