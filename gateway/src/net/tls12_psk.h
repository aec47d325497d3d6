/*
 * tls12_psk.h: psagw's own server side of a full TLS 1.2 PSK handshake (RFC 5246 7.3-7.4,
 * RFC 4279 section 2) for the plain PSK suites with an AEAD cipher and the SHA-256 PRF, which
 * is what Profile Small devices run (docs/tls-handshake.md).
 *
 * OpenSSL's handshake was 78 % of the gateway's user-space work per connect, most of it
 * generic machinery (state machine, extension tables, session objects, allocations) around a
 * handful of HMACs; this one does the exchange the devices use and nothing else. Whatever it
 * does not run is declined before a byte is answered, and OpenSSL runs that handshake from the
 * same bytes: TLS 1.3 offered (on a listener that has it), a session ticket offered (on a
 * listener that issues them), a preferred suite not in our set (ECDHE-PSK, CBC, NULL), a
 * ClientHello not alone in one record, anything malformed (OpenSSL then sends the alert it
 * always did).
 *
 * The module only parses and builds bytes: the caller moves them (net/conn.c) and finds the
 * PSK of an identity (net/tls.c, the registry). On success the connection's record layer
 * (tls_record.h) has both sequence numbers past the Finished messages.
 */
#ifndef PSAGW_TLS12_PSK_H
#define PSAGW_TLS12_PSK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls_record.h"

#define TLS12_PSK_MAX_SUITES 32

/* A listener's side of the negotiation, fixed when its TLS context is built. */
struct tls12_psk_config {
    uint16_t suites[TLS12_PSK_MAX_SUITES]; /* its TLS 1.2 suites, most preferred first */
    size_t n_suites;
    bool tls13;       /* it offers TLS 1.3: declined here, and the downgrade sentinel */
    bool tickets;     /* it issues session tickets: a client that wants one goes to OpenSSL */
    size_t max_plain; /* largest record payload it sends */
};

/* The PSK for identity[0..len) (not NUL-terminated; may hold anything) into psk[0..max): its
 * length, or 0 to refuse the identity (an unknown_psk_identity alert follows). */
typedef size_t (*tls12_psk_find_fn)(void *arg, const uint8_t *identity, size_t len, uint8_t *psk,
                                    size_t max);

enum tls12_psk_result {
    TLS12_PSK_DECLINED = 0, /* not ours: give the same bytes to OpenSSL */
    TLS12_PSK_MORE = 1,     /* send what is in out, wait for more input */
    TLS12_PSK_DONE = 2,     /* send what is in out; the record layer is ready */
    TLS12_PSK_FAILED = -1,  /* send what is in out (a fatal alert, if any), then close */
};

struct tls12_psk; /* one handshake in progress, about 1 KB */

/* What a handshake's largest flight of ours takes: the ServerHello flight, or ChangeCipherSpec +
 * Finished, or an alert */
#define TLS12_PSK_OUT_MAX 128

/*
 * The first bytes from a client, in[0..len). TLS12_PSK_DECLINED: leave them to OpenSSL (no
 * state is kept). TLS12_PSK_MORE: the handshake is ours, *hs is set and our flight is
 * out[0..*out_len) (cap >= TLS12_PSK_OUT_MAX). TLS12_PSK_FAILED: out of memory.
 */
int tls12_psk_hello(const struct tls12_psk_config *cfg, const uint8_t *in, size_t len,
                    struct tls12_psk **hs, uint8_t *out, size_t cap, size_t *out_len);

/*
 * The client's next bytes, in[0..len) (changed in place). A record still arriving is kept
 * inside; *used is the bytes taken, which stop after the client's Finished (any later bytes are
 * records for the record layer). Our answer is out[0..*out_len) (cap >= TLS12_PSK_OUT_MAX).
 * TLS12_PSK_FAILED: tls12_psk_why() names the reason (a log token) and *out holds the alert,
 * if one is owed.
 */
int tls12_psk_input(struct tls12_psk *hs, tls12_psk_find_fn find, void *arg, uint8_t *in,
                    size_t len, size_t *used, uint8_t *out, size_t cap, size_t *out_len);

/* After TLS12_PSK_DONE: the record layer (the caller frees it), OpenSSL's name of the suite.
 * NULL before. */
struct tls_rec *tls12_psk_take_record(struct tls12_psk *hs);
const char *tls12_psk_suite_name(const struct tls12_psk *hs);
/* Why the handshake failed (a log token), or NULL. */
const char *tls12_psk_why(const struct tls12_psk *hs);
/* Wipes and frees; NULL is fine. */
void tls12_psk_free(struct tls12_psk *hs);

#endif
