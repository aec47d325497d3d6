/*
 * nspe.h: the emulated device's non-secure side: the PSA client channel, the attestation
 * client, the TLS-PSK connection (Mbed TLS, PSK by key id) and the MQTT 5 client with the
 * PSA-IAT exchange. Portable C over a thin platform layer (sockets here, lwIP on a board).
 */
#ifndef PSADEV_NSPE_H
#define PSADEV_NSPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psa/crypto.h"

/* The socket to the SPE that every psa_* call of this process goes through. */
void psa_client_bind(int fd);
int psa_client_fd(void);

/* docs/design/token.md section 1 (the SPE implements them). */
#define PSA_INITIAL_ATTEST_CHALLENGE_SIZE_32 (32u)
#define PSA_INITIAL_ATTEST_CHALLENGE_SIZE_48 (48u)
#define PSA_INITIAL_ATTEST_CHALLENGE_SIZE_64 (64u)
#define PSA_INITIAL_ATTEST_MAX_TOKEN_SIZE (0x250u)
psa_status_t psa_initial_attest_get_token(const uint8_t *auth_challenge, size_t challenge_size,
                                          uint8_t *token_buf, size_t token_buf_size,
                                          size_t *token_size);
psa_status_t psa_initial_attest_get_token_size(size_t challenge_size, size_t *token_size);

/* The PSK's key id in the SPE (owned by this NSPE, usable for TLS derivation only). */
#ifndef NSPE_PSK_KEY_ID
#define NSPE_PSK_KEY_ID 0x5001u
#endif

/* tls_client.c: a TLS 1.2 PSK connection; the PSK is used by key id. */
struct tls_conn;
/* Connects to host:port offering the PSK suites (suite NULL: CCM and CCM_8; "ccm" or "ccm8":
 * that one only); returns NULL with a message in err. */
struct tls_conn *tls_connect(const char *host, const char *port, const char *identity,
                             const char *suite, char *err, size_t errlen);
/* 0 on success, -1 on error or close. */
int tls_write_all(struct tls_conn *t, const uint8_t *buf, size_t len);
/* Bytes read (> 0), 0 on orderly close, -1 on error, -2 on timeout (timeout_ms >= 0). */
int tls_read(struct tls_conn *t, uint8_t *buf, size_t cap, int timeout_ms);
const char *tls_cipher(struct tls_conn *t);
void tls_close(struct tls_conn *t);

/* mqtt_client.c: MQTT 5 over a tls_conn, attesting with PSA-IAT when connecting. */
#ifndef MQTT_CLIENT_IN_SIZE
#define MQTT_CLIENT_IN_SIZE 2048 /* the receive buffer (the firmware: less) */
#endif
#ifndef MQTT_CLIENT_MAX_PUBLISH
#define MQTT_CLIENT_MAX_PUBLISH 1536 /* bytes of an encoded PUBLISH (the firmware: less) */
#endif
struct mqtt_client {
    struct tls_conn *tls;
    char id[129];
    uint8_t in[MQTT_CLIENT_IN_SIZE];
    size_t in_len;
    size_t pending; /* bytes of the packet mqtt_client_poll returned last, still in `in` */
    size_t deferred; /* PUBLISHes that came while a publish waited for its PUBACK: at the start
                      * of `in` (after `pending`), returned by the next polls */
    uint16_t next_pid;
    uint16_t keep_alive;  /* seconds, as sent in CONNECT */
    uint64_t last_tx_ms;  /* when we last sent anything (PINGREQ is due at keep_alive / 2) */
    uint8_t connack_reason;
    char reason_string[256];
    bool attested;
};
/* CONNECT (with Authentication Method PSA-IAT if attest) and the AUTH exchange up to
 * CONNACK. Returns 0 when accepted; otherwise -1 with c->connack_reason / reason_string. */
int mqtt_client_connect(struct mqtt_client *c, bool attest, uint16_t keep_alive);
int mqtt_client_publish(struct mqtt_client *c, const char *topic, const uint8_t *payload,
                        size_t len, int qos);
int mqtt_client_subscribe(struct mqtt_client *c, const char *filter, int qos);
/* Waits up to timeout_ms for one packet; returns its type, 0 on timeout, -1 on close/error.
 * A PUBLISH is returned in topic and payload (pointing into c->in until the next call). */
int mqtt_client_poll(struct mqtt_client *c, int timeout_ms, const uint8_t **topic,
                     size_t *topic_len, const uint8_t **payload, size_t *payload_len);
void mqtt_client_disconnect(struct mqtt_client *c);

#endif
