/*
 * tls_record.h: the TLS record layer psagw runs itself once OpenSSL has done the handshake,
 * for TLS 1.2 with an AEAD suite and for TLS 1.3 (docs/tls-record-layer.md).
 *
 * OpenSSL 3's per-connection state is about 11 KB (the SSL object alone is 7.6 KB), twice the
 * memory budget of an idle device. After the handshake a connection needs only its two traffic
 * keys, two IVs and two sequence numbers (and, in TLS 1.3, the two traffic secrets for key
 * updates): this module takes those from the finished handshake, the SSL is freed, and records
 * are protected here. TLS 1.2 (RFC 5246 6.3 key expansion, 6.2.3.3 AEAD records; RFC 5288 GCM,
 * RFC 6655 CCM and CCM_8, RFC 7905 ChaCha20-Poly1305) and TLS 1.3 (RFC 8446 sections 5 and 7:
 * records, traffic keys, KeyUpdate).
 *
 * What it needs to know is gathered while OpenSSL runs the handshake over memory BIOs, in a
 * struct tls_rec_handshake: the bytes each way pass through a record-header follower (TLS 1.2:
 * the records after ChangeCipherSpec are under the new keys, and the first carries OpenSSL's
 * explicit nonce); OpenSSL's keylog callback gives the TLS 1.3 application traffic secrets and
 * its message callback the records written under the server's.
 */
#ifndef PSAGW_TLS_RECORD_H
#define PSAGW_TLS_RECORD_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLS_REC_HEADER 5
#define TLS_REC_MAX_PLAIN 16384
/* RFC 5246 6.2.3: TLSCiphertext.length <= 2^14 + 2048 */
#define TLS_REC_MAX_CIPHERTEXT (TLS_REC_MAX_PLAIN + 2048)
/* header + explicit nonce (TLS 1.2) or content type (TLS 1.3) + tag: the most a record adds */
#define TLS_REC_OVERHEAD (TLS_REC_HEADER + 8 + 16)

#define TLS_REC_CHANGE_CIPHER_SPEC 20
#define TLS_REC_ALERT 21
#define TLS_REC_HANDSHAKE 22
#define TLS_REC_APPLICATION_DATA 23

/* Alert descriptions we send (RFC 5246 7.2) */
#define TLS_ALERT_CLOSE_NOTIFY 0
#define TLS_ALERT_UNEXPECTED_MESSAGE 10
#define TLS_ALERT_BAD_RECORD_MAC 20
#define TLS_ALERT_RECORD_OVERFLOW 22
#define TLS_ALERT_ILLEGAL_PARAMETER 47
#define TLS_ALERT_DECODE_ERROR 50
#define TLS_ALERT_PROTOCOL_VERSION 70
#define TLS_ALERT_INTERNAL_ERROR 80
#define TLS_ALERT_USER_CANCELED 90
#define TLS_ALERT_NO_RENEGOTIATION 100

/* One direction of a handshake's byte stream, followed record by record. */
struct tls_rec_wire {
    uint8_t hdr[TLS_REC_HEADER];
    uint8_t hdr_len;            /* bytes of the current header seen */
    uint32_t body_left;         /* bytes of the current record's body still to come */
    bool ccs;                   /* ChangeCipherSpec seen: later records use the new keys */
    uint64_t protected_records; /* records whose header came after the ChangeCipherSpec */
    uint8_t first_nonce[8];     /* the first 8 body bytes of the first protected record */
    uint8_t first_nonce_len;
};

/* Feeds bytes of one direction, in order. */
void tls_rec_wire_feed(struct tls_rec_wire *w, const uint8_t *p, size_t n);

#define TLS_REC_SECRET_MAX 48 /* SHA-384 */

/* What the record layer needs to know of one handshake; zero it before the handshake. */
struct tls_rec_handshake {
    struct tls_rec_wire in, out; /* every byte from and to the client, in order */
    uint8_t client_secret[TLS_REC_SECRET_MAX], server_secret[TLS_REC_SECRET_MAX];
    uint8_t client_secret_len, server_secret_len; /* TLS 1.3 application traffic secrets */
    uint64_t records_after_server_secret;         /* TLS 1.3: written under the server's */
};

/* For OpenSSL's keylog callback: keeps the TLS 1.3 application traffic secrets. */
void tls_rec_handshake_keylog(struct tls_rec_handshake *h, const char *line);
/* For OpenSSL's message callback (SSL_CTX_set_msg_callback): counts the record headers
 * written. */
void tls_rec_handshake_msg(struct tls_rec_handshake *h, int write_p, int content_type);
/* Wipes the secrets. */
void tls_rec_handshake_clear(struct tls_rec_handshake *h);

struct tls_rec; /* opaque: keys, IVs, sequence numbers; about 150 bytes */

enum tls_rec_result {
    TLS_REC_OK = 0,
    TLS_REC_UNSUPPORTED = -1, /* a CBC or NULL suite, or not understood: keep OpenSSL's */
    TLS_REC_ERROR = -2,       /* a record failed: the alert to send is in *alert */
    TLS_REC_CLOSED = -3,      /* the peer sent close_notify */
};

/*
 * Takes over the record layer of a server SSL whose handshake has just finished (read-ahead
 * off), with what was gathered during it and `unread`, the bytes received but not yet read by
 * OpenSSL. max_plain is the largest record payload to send (the listener's limit and the peer's
 * max_fragment_length). On TLS_REC_OK *out_rec is set (free with tls_rec_free) and the SSL may be
 * freed; `why` names an unsupported case.
 */
int tls_rec_take(SSL *ssl, const struct tls_rec_handshake *h, const uint8_t *unread,
                 size_t unread_len, size_t max_plain, struct tls_rec **out_rec, const char **why);

void tls_rec_free(struct tls_rec *r);

/*
 * Opens the complete records at buf[0..len) in place: their plaintext is moved to buf[0..),
 * *plain_len bytes, and *used is the raw bytes taken (a record still arriving is left after
 * them). Returns TLS_REC_OK, TLS_REC_CLOSED (close_notify; plaintext before it is still
 * returned) or TLS_REC_ERROR with the alert to send in *alert.
 */
int tls_rec_open(struct tls_rec *r, uint8_t *buf, size_t len, size_t *used, size_t *plain_len,
                 uint8_t *alert);

/*
 * Protects plaintext[0..len) as application data records into out[0..cap). Stops when out is
 * full; *taken is the plaintext consumed, the return value the bytes written (0 on a failure of
 * the cipher, which the caller treats as fatal: *taken is 0 then too). TLS 1.3: a KeyUpdate the
 * client asked for, or one of ours before a key's record limit, goes out first.
 */
size_t tls_rec_seal(struct tls_rec *r, const uint8_t *plaintext, size_t len, uint8_t *out,
                    size_t cap, size_t *taken);

/* The log name of an alert we send (tls_record_error reason=...). */
const char *tls_rec_alert_name(uint8_t description);

/* Writes an alert record (fatal unless close_notify) into out (cap >= TLS_REC_OVERHEAD + 2);
 * returns its length or 0. A fatal alert marks the record layer failed. */
size_t tls_rec_alert(struct tls_rec *r, uint8_t description, uint8_t *out, size_t cap);

/* Whether a fatal alert was sent or received: nothing more may be sent on the connection, not
 * even a close_notify (RFC 8446 6.2, RFC 5246 7.2.2). */
bool tls_rec_failed(const struct tls_rec *r);

/* A warning alert the last tls_rec_open owes the peer (TLS 1.2 no_renegotiation), cleared by
 * the call; 0 if none. tls_rec_warning writes it as a record, as tls_rec_alert does. */
uint8_t tls_rec_take_warning(struct tls_rec *r);
size_t tls_rec_warning(struct tls_rec *r, uint8_t description, uint8_t *out, size_t cap);

/* Records that carry no application data (empty records, warning alerts, TLS 1.3 KeyUpdates and
 * user_canceled, refused renegotiations) accepted in a row before the connection is ended with
 * unexpected_message, as OpenSSL's record layer does: such a flood costs the gateway work for
 * nothing. */
#define TLS_REC_EMPTY_MAX 32
/* Warning alerts (TLS 1.3: user_canceled) accepted in a row; the next is answered with
 * unexpected_message, as OpenSSL's record layer does (it allows four) */
#define TLS_REC_WARNINGS_MAX 4

/* For tests and tools: the other side of r (its read keys and sequence become the mirror's
 * write ones), to protect records of any content type that a real client would not send. Free
 * with tls_rec_free. */
struct tls_rec *tls_rec_peer(const struct tls_rec *r);
size_t tls_rec_seal_type(struct tls_rec *r, uint8_t type, const uint8_t *plaintext, size_t len,
                         uint8_t *out, size_t cap);

/* Frees the calling thread's cipher contexts (at the end of a worker thread). */
void tls_rec_thread_done(void);

/* How many of the calling thread's cipher contexts hold a connection's expanded key (tests:
 * none may outlive its connection, or a key update). */
unsigned tls_rec_thread_keys(void);

/* The largest record payload this connection sends. */
size_t tls_rec_max_plain(const struct tls_rec *r);

/* ---- for psagw's own TLS 1.2 PSK handshake (tls12_psk.h) ---- */

/* OpenSSL's name of a TLS 1.2 PSK suite (IANA number) this layer can run after our own
 * handshake (an AEAD cipher, the SHA-256 PRF), or NULL. */
const char *tls_rec_psk_suite12(uint16_t suite);
/* RFC 5246 section 5 with SHA-256: PRF(secret, label, a + b), len bytes at out; 0 or -1. */
int tls_rec_prf12(const uint8_t *secret, size_t secret_len, const char *label, const uint8_t *a,
                  size_t al, const uint8_t *b, size_t bl, uint8_t *out, size_t len);
/* A TLS 1.2 server record layer for `suite` from the master secret and both randoms, with both
 * sequence numbers at 0 (the records after each ChangeCipherSpec). TLS_REC_OK or
 * TLS_REC_UNSUPPORTED (a suite tls_rec_psk_suite12 does not name) or TLS_REC_ERROR. */
int tls_rec_new12(uint16_t suite, const uint8_t master[48], const uint8_t client_random[32],
                  const uint8_t server_random[32], size_t max_plain, struct tls_rec **out_rec);
/* Opens the one complete record rec[0..len) in place, of any content type: *type, and its
 * plaintext at *plain, *plain_len bytes. Returns 0 or the alert to send (the layer is failed
 * then). */
uint8_t tls_rec_open_record(struct tls_rec *r, uint8_t *rec, size_t len, uint8_t *type,
                            uint8_t **plain, size_t *plain_len);

#endif
