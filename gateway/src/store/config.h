/*
 * config.h: the gateway's configuration: defaults, the libconfig file, command-line overrides,
 * and validation. Every key is documented in docs/configuration.md.
 */
#ifndef PSAGW_CONFIG_H
#define PSAGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

#define CONFIG_MAX_LISTENERS 16
#define CONFIG_DEFAULT_PATH "/etc/psagw/psagw.conf"
#define CONFIG_DEFAULT_REGISTRY "/var/lib/psagw/registry.db"

/* TLS 1.2 PSK suites in docs/design/wire.md section 1's order (OpenSSL names). */
#define CONFIG_DEFAULT_CIPHERS                                                                    \
    "PSK-AES128-CCM:PSK-AES128-CCM8:PSK-AES128-GCM-SHA256:ECDHE-PSK-AES128-CBC-SHA256:"           \
    "ECDHE-PSK-CHACHA20-POLY1305"
#define CONFIG_NULL_CIPHERS "PSK-NULL-SHA256"
#define CONFIG_DEFAULT_CIPHERSUITES "TLS_AES_128_CCM_SHA256:TLS_AES_128_GCM_SHA256"

enum listener_type { LISTENER_TLS_PSK = 0, LISTENER_PLAIN = 1 };

struct listener_config {
    char address[128]; /* as written, for logs */
    char host[64];
    uint16_t port;
    enum listener_type type;
    bool tls13;                /* offer TLS 1.3 external PSK as well as TLS 1.2 */
    bool allow_null_cipher;    /* add PSK-NULL-SHA256 (integrity only); logged as a warning */
    bool allow_non_loopback;   /* plain listeners bind loopback only unless this is set */
    uint32_t max_record_size;  /* largest TLS record payload we send (512..16384) */
    bool own_record_layer;     /* TLS 1.2 AEAD: records by tls_record.c after the handshake */
    bool own_handshake;        /* TLS 1.2 PSK AEAD: the handshake by tls12_psk.c (with the above) */
    char ciphers[512];         /* TLS 1.2 cipher list */
    char ciphersuites[256];    /* TLS 1.3 cipher suites */
};

/* Attestation policy beyond the per-device required/optional/off (docs/attestation.md). */
struct attest_config {
    uint32_t nonce_size;        /* 32, 48 or 64 */
    uint32_t deadline;          /* seconds from challenge to token */
    uint32_t lifecycle_mask;    /* IAT_LC_BIT()s accepted */
    uint32_t profile_mask;      /* bit per enum iat_profile accepted (LEGACY, PSA2) */
    uint32_t alg_mask;          /* bit per COSE alg accepted (5, 6, 7) */
    bool require_known_implementation;
    bool require_known_measurements;
    uint32_t reattest_interval; /* seconds; 0: fresh evidence is never demanded */
    uint32_t history_per_device;
};

/* The cloud uplink and its durable spool (docs/design/wire.md sections 5 and 6, docs/cloud.md). */
#define CLOUD_MAX_ROUTES 8
#define CLOUD_TEMPLATE_MAX 256
#define CONFIG_DEFAULT_SPOOL "/var/lib/psagw/spool.db"

enum cloud_payload { CLOUD_PAYLOAD_RECORD = 0, CLOUD_PAYLOAD_JSON = 1 };
enum spool_when_full { SPOOL_FULL_BLOCK = 0, SPOOL_FULL_DROP_OLDEST = 1 };

struct cloud_route {
    char match[CLOUD_TEMPLATE_MAX]; /* an MQTT filter on device topics; a trailing '#' is {rest} */
    char topic[CLOUD_TEMPLATE_MAX]; /* the cloud topic: {gateway}, {id}, {rest} */
    enum cloud_payload payload;
};

struct cloud_config {
    bool enabled; /* a `cloud` group is present */
    char host[256];
    uint16_t port;
    char ca_file[1024];
    char cert_file[1024];
    char key_file[1024];
    char sni[256];       /* "" : the host */
    char alpn[64];       /* "" : x-amzn-mqtt-ca on port 443, none otherwise */
    char client_id[128]; /* the thing name */
    char gateway[128];   /* {gateway} in topics; "" : the client id */
    uint8_t mqtt_version; /* 4 (3.1.1) or 5 */
    uint16_t keepalive;
    uint32_t max_publish_rate; /* publishes per second; 0: no limit */
    uint32_t max_bytes_rate;   /* payload + topic bytes per second; 0: no limit */
    uint32_t max_payload;      /* AWS IoT: 128 KiB */
    uint32_t max_inflight;     /* QoS 1 publishes awaiting the cloud's PUBACK */
    uint32_t reconnect_min, reconnect_max; /* seconds, jittered exponential backoff */
    struct cloud_route routes[CLOUD_MAX_ROUTES];
    size_t n_routes;
    char command_topic[CLOUD_TEMPLATE_MAX]; /* "" : no commands */
    char attest_topic[CLOUD_TEMPLATE_MAX];  /* "" : verdicts are not sent up */
    char group_key_file[1024]; /* for payload = "json" */
    char spool[1024];
    uint64_t spool_max_bytes;
    uint64_t spool_memory_max; /* queued in memory while the spool is full, then refused */
    enum spool_when_full spool_when_full;
};

/* Settings a command-line flag gave: a reload of the file keeps them (flags win). */
#define CONFIG_FLAG_LOG_LEVEL 1u
#define CONFIG_FLAG_ATTESTATION_DEFAULT 2u
#define CONFIG_FLAG_ALLOW_ANONYMOUS 4u

struct config {
    char path[4096]; /* the file read, "" if none */
    unsigned from_flags;
    char registry[4096];
    int log_level;
    enum attest_policy attestation_default;
    struct attest_config attest;
    bool allow_anonymous;
    char *anonymous_acl_pub; /* newline-separated patterns, NULL if none; owned */
    char *anonymous_acl_sub;
    struct listener_config listeners[CONFIG_MAX_LISTENERS];
    size_t n_listeners;
    uint32_t max_packet_size;
    uint16_t receive_maximum;
    uint16_t topic_alias_maximum;
    bool topic_aliases_out; /* use aliases towards clients that allow them */
    uint32_t sys_interval;  /* seconds between $SYS/ publications; 0: none */
    uint16_t max_keepalive;
    uint32_t max_session_expiry;
    uint32_t max_queued_messages;
    uint64_t max_queued_bytes; /* per session: topics and payloads queued or in flight */
    uint32_t max_topic_length; /* bytes of a topic name or filter */
    uint32_t max_subscriptions_per_client;
    uint32_t max_topic_levels; /* levels ('/' + 1) of a topic name or filter */
    uint64_t max_retained_bytes; /* topics and payloads of every retained message together */
    uint16_t max_inflight_messages;
    uint32_t connect_timeout;
    uint32_t max_connections;
    uint32_t ticket_lifetime;
    uint32_t max_handshakes;             /* TLS handshakes in progress, the whole gateway */
    uint32_t max_handshakes_per_address; /* the same from one source address */
    /* device sockets: TCP keep-alive finds a peer that vanished without a word (a 3.1.1 client
     * with keep-alive 0 would otherwise be held forever), TCP_USER_TIMEOUT one that stopped
     * acknowledging what we send; seconds, 0 = the system's default */
    uint32_t tcp_keepalive_idle, tcp_keepalive_interval, tcp_keepalive_count;
    uint32_t tcp_user_timeout;
    uint32_t stats_interval;
    uint32_t workers; /* event loops (threads); 0: one per online CPU */
    struct cloud_config cloud;
    /* http: the operator's endpoint (metrics, health, API); off while http_listen is "" */
    char http_listen[128];
    char http_token_file[4096];
    uint32_t http_max_connections;
    uint32_t http_max_connections_per_address;
    uint32_t http_requests_per_second; /* per source address */
};

/* Fills *c with the defaults (no listeners yet). */
void config_defaults(struct config *c);
/* Reads `path` over the defaults. On error returns -1 with "FILE:LINE: key: what" in err. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);
/* Adds a listener from "ADDR:PORT" ([v6]:port allowed). */
int config_add_listener(struct config *c, const char *addr, enum listener_type type, char *err,
                        size_t errlen);
/* Final checks once file and flags are merged; adds the default listener if there is none. */
int config_finish(struct config *c, char *err, size_t errlen);
void config_free(struct config *c);

#endif
