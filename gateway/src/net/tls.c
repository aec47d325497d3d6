/*
 * tls.c: the TLS-PSK server side (docs/design/wire.md section 1) on OpenSSL 3.
 *
 * - One PSK callback serves TLS 1.2 (RFC 4279) and TLS 1.3 external PSKs (RFC 8446; OpenSSL
 *   calls the 1.2-style callback for 1.3 too and builds the PSK session with a SHA-256 suite,
 *   which both of our TLS 1.3 suites use). psk_ke is allowed (SSL_OP_ALLOW_NO_DHE_KEX) as
 *   well as psk_dhe_ke, since Profile Small devices have no ECDH.
 * - The PSK is read from the registry on every full handshake, so an added, changed, revoked or
 *   removed device takes effect on its next connection.
 * - Resumption: stateless tickets only. Each ticket carries the device id and a fingerprint
 *   of the PSK it was issued under (SSL_SESSION_set1_ticket_appdata); on resumption the device
 *   must still be in the registry, not revoked, with the same PSK, or the ticket is ignored and
 *   a full handshake follows. This keeps the identity bound to the resumed session (mosquitto
 *   2.0 loses it and refuses resumed PSK clients).
 * - The largest record we send is per listener (SSL_CTX_set_max_send_fragment); a device's
 *   max_fragment_length extension (RFC 6066) is honoured by OpenSSL itself.
 * - With the listener's own record layer (the default), OpenSSL's keylog and message callbacks
 *   hand the TLS 1.3 traffic secrets and the count of records written to tls_record.c, which
 *   protects the records after the handshake; the secrets are never logged.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "psagw/iat_crypto.h"
#include "log.h"
#include "lookup.h"
#include "tls.h"

static int conn_index = -1;
/* the same for every listener; atomic, as a reload builds a context to check it */
static _Atomic tls_admit_fn admit_identity;

int tls_conn_index(void)
{
    return conn_index;
}

void tls_psk_fingerprint(const uint8_t *psk, size_t len, uint8_t fp[PSK_FP_LEN])
{
    uint8_t md[32] = {0};
    /* the token library's digest, fetched once (EVP_sha256() is looked up at every call) */
    iat_crypto_sha256(psk, len, md);
    memcpy(fp, md, PSK_FP_LEN);
    OPENSSL_cleanse(md, sizeof(md));
}

/* A refused identity, logged once per 10 s per reason with the count left out (the counters
 * have every one): unknown identities cost an attacker nothing to vary. */
static void log_refusal(const struct conn *c, const char *identity, size_t len, const char *why)
{
    static struct log_limit limits[16];
    char safe[LOG_SAFE_MAX];
    LOG_LIMITED(log_limit_for(limits, 16, why), LOG_WARN, "tls_psk_refused",
                "peer=%s identity=%s reason=%s", c->peer,
                log_safe(identity, len, safe, sizeof(safe)), why);
}

size_t tls_psk_for_identity(struct conn *c, const uint8_t *identity, size_t len, bool warn_invalid,
                            uint8_t *psk, size_t max)
{
    if (!device_id_valid((const char *)identity, len)) {
        if (warn_invalid) {
            c->psk_refusal = "invalid_identity";
            c->gw->metrics.psk_unknown_identity++;
            log_refusal(c, (const char *)identity, len, "invalid_identity");
        }
        return 0;
    }
    char id[DEVICE_ID_MAX + 1];
    memcpy(id, identity, len); /* device_id_valid: at most DEVICE_ID_MAX bytes, no NUL */
    id[len] = '\0';
    struct device d;
    const char *why = NULL;
    if (lookup_device(c->gw, id, &d, &why) != 0) {
        c->psk_refusal = why;
        if (strcmp(why, "revoked") == 0)
            c->gw->metrics.psk_revoked++;
        else
            c->gw->metrics.psk_unknown_identity++;
        log_refusal(c, id, len, why);
        return 0;
    }
    size_t n = 0;
    /* the principal (role, ACL) is built now, so CONNECT needs no second registry read */
    if (d.psk_len <= max && admit_identity(c, &d) == 0) {
        memcpy(psk, d.psk, d.psk_len);
        n = d.psk_len;
        tls_psk_fingerprint(d.psk, d.psk_len, c->psk_fp);
        c->have_identity = true;
    }
    device_clear(&d);
    return n;
}

static unsigned int psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk,
                                  unsigned int max_psk_len)
{
    struct conn *c = SSL_get_ex_data(ssl, conn_index);
    if (!c || !identity)
        return 0;
    /* In TLS 1.3 OpenSSL also offers ticket blobs here; only a 1.2 identity is worth a
     * warning. */
    return (unsigned int)tls_psk_for_identity(c, (const uint8_t *)identity, strlen(identity),
                                              SSL_version(ssl) != TLS1_3_VERSION, psk, max_psk_len);
}

static int ticket_gen_cb(SSL *ssl, void *arg)
{
    (void)arg;
    struct conn *c = SSL_get_ex_data(ssl, conn_index);
    SSL_SESSION *sess = SSL_get0_session(ssl);
    if (!c || !c->have_identity || !sess)
        return 1;
    uint8_t data[PSK_FP_LEN + DEVICE_ID_MAX];
    size_t idlen = strlen(c->who.id);
    memcpy(data, c->psk_fp, PSK_FP_LEN);
    memcpy(data + PSK_FP_LEN, c->who.id, idlen);
    return SSL_SESSION_set1_ticket_appdata(sess, data, PSK_FP_LEN + idlen);
}

static SSL_TICKET_RETURN ticket_dec_cb(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
                                       size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
    (void)keyname;
    (void)keyname_len;
    (void)arg;
    struct conn *c = SSL_get_ex_data(ssl, conn_index);
    if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW)
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    void *data = NULL;
    size_t len = 0;
    if (!c || !SSL_SESSION_get0_ticket_appdata(sess, &data, &len) || len <= PSK_FP_LEN ||
        len > PSK_FP_LEN + DEVICE_ID_MAX)
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    char id[DEVICE_ID_MAX + 1];
    memcpy(id, (uint8_t *)data + PSK_FP_LEN, len - PSK_FP_LEN);
    id[len - PSK_FP_LEN] = '\0';
    struct device d;
    const char *why = NULL;
    char safe[LOG_SAFE_MAX];
    if (lookup_device(c->gw, id, &d, &why) != 0) {
        log_event(LOG_WARN, "tls_resumption_refused", "peer=%s identity=%s reason=%s", c->peer,
                  log_safe(id, strlen(id), safe, sizeof(safe)), why);
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
    uint8_t fp[PSK_FP_LEN];
    tls_psk_fingerprint(d.psk, d.psk_len, fp);
    if (CRYPTO_memcmp(fp, data, PSK_FP_LEN) != 0) {
        device_clear(&d);
        log_event(LOG_INFO, "tls_resumption_refused", "peer=%s identity=%s reason=psk_changed",
                  c->peer, log_safe(id, strlen(id), safe, sizeof(safe)));
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
    int rc = admit_identity(c, &d);
    device_clear(&d);
    if (rc != 0)
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    memcpy(c->psk_fp, fp, PSK_FP_LEN);
    c->have_identity = true;
    c->resumed = true;
    return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
}

/* The TLS 1.3 application traffic secrets, for our record layer (tls_record.h); never logged */
static void keylog_cb(const SSL *ssl, const char *line)
{
    struct conn *c = SSL_get_ex_data(ssl, conn_index);
    if (c && c->hs)
        tls_rec_handshake_keylog(&c->hs->rec, line);
}

/* Counts the records OpenSSL writes (their headers), for the TLS 1.3 sequence numbers */
static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version;
    (void)buf;
    (void)len;
    (void)arg;
    struct conn *c = SSL_get_ex_data(ssl, conn_index);
    if (c && c->hs)
        tls_rec_handshake_msg(&c->hs->rec, write_p, content_type);
}

static void tls_error(char *err, size_t errlen, const char *what, const char *detail)
{
    unsigned long e = ERR_get_error();
    snprintf(err, errlen, "%s '%s': %s", what, detail, e ? ERR_reason_error_string(e) : "rejected");
    ERR_clear_error();
}

static SSL_CTX *new_ctx(const struct config *cfg, const struct listener_config *l, bool keylog,
                        char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_error(err, errlen, "cannot create TLS context for", l->address);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, l->tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    char ciphers[sizeof(l->ciphers) + 64];
    /* NULL suites sit below OpenSSL's default security level; lower it only when asked. */
    snprintf(ciphers, sizeof(ciphers), "%s%s", l->ciphers,
             l->allow_null_cipher ? ":" CONFIG_NULL_CIPHERS ":@SECLEVEL=0" : "");
    if (!SSL_CTX_set_cipher_list(ctx, ciphers)) {
        tls_error(err, errlen, "TLS 1.2 cipher list", l->ciphers);
        goto fail;
    }
    if (l->tls13 && !SSL_CTX_set_ciphersuites(ctx, l->ciphersuites)) {
        tls_error(err, errlen, "TLS 1.3 cipher suites", l->ciphersuites);
        goto fail;
    }
    if (!SSL_CTX_set1_groups_list(ctx, "X25519:P-256")) {
        tls_error(err, errlen, "ECDHE groups", "X25519:P-256");
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_ALLOW_NO_DHE_KEX | SSL_OP_NO_COMPRESSION);
    /* RELEASE_BUFFERS: an idle connection keeps no 16 KiB record buffers */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
    if (l->own_record_layer) {
        if (keylog)
            SSL_CTX_set_keylog_callback(ctx, keylog_cb);
        SSL_CTX_set_msg_callback(ctx, msg_cb);
    }
    /* read whole records at once: a handshake costs a third of the read() calls */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (cfg->ticket_lifetime == 0) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    } else {
        SSL_CTX_set_timeout(ctx, (long)cfg->ticket_lifetime);
        SSL_CTX_set_num_tickets(ctx, 1);
        SSL_CTX_set_session_ticket_cb(ctx, ticket_gen_cb, ticket_dec_cb, NULL);
    }
    if (!SSL_CTX_set_max_send_fragment(ctx, l->max_record_size)) {
        snprintf(err, errlen, "listener %s: max_record_size %u not accepted", l->address,
                 l->max_record_size);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Where a listener's context keeps its twin (below), and the twin its listener's context */
static int twin_index = -1, main_index = -1;

static void free_twin(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    SSL_CTX_free(ptr);
}

SSL_CTX *tls_twin_ctx(SSL_CTX *ctx)
{
    return ctx && twin_index >= 0 ? SSL_CTX_get_ex_data(ctx, twin_index) : NULL;
}

/* Does the ClientHello offer TLS 1.3 (supported_versions, RFC 8446 4.2.1)? */
static bool offers_tls13(SSL *s)
{
    const unsigned char *e;
    size_t len;
    if (SSL_client_hello_get0_ext(s, TLSEXT_TYPE_supported_versions, &e, &len) != 1 || len < 1)
        return false;
    size_t n = e[0] < len - 1 ? e[0] : len - 1;
    for (size_t i = 1; i + 1 <= n; i += 2)
        if (e[i] == 0x03 && e[i + 1] == 0x04)
            return true;
    return false;
}

/* The context the handshake goes on: the twin with the keylog callback when TLS 1.3 may be
 * chosen, the listener's own otherwise. OpenSSL formats every secret it hands a keylog
 * callback in hex with one sprintf a byte (~56,000 instructions, a tenth of a TLS 1.2 connect
 * in user space), and our record layer needs them only for TLS 1.3. */
static int hello_cb(SSL *s, int *alert, void *arg)
{
    (void)arg;
    SSL_CTX *cur = SSL_get_SSL_CTX(s), *main = SSL_CTX_get_ex_data(cur, main_index);
    if (!main)
        main = cur;
    SSL_CTX *want = offers_tls13(s) ? tls_twin_ctx(main) : main;
    if (want && want != cur && !SSL_set_SSL_CTX(s, want)) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Where a listener's context keeps the settings of our own TLS 1.2 handshake */
static int own_index = -1;

static void free_own(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    free(ptr);
}

const struct tls12_psk_config *tls_own_handshake(SSL_CTX *ctx)
{
    return ctx && own_index >= 0 ? SSL_CTX_get_ex_data(ctx, own_index) : NULL;
}

/* Our TLS 1.2 handshake's settings from the context OpenSSL would otherwise use: its TLS 1.2
 * suites in its order of preference (the listener's cipher list as OpenSSL parsed it). */
static int add_own_handshake(SSL_CTX *ctx, const struct config *cfg,
                             const struct listener_config *l)
{
    struct tls12_psk_config *own = calloc(1, sizeof(*own));
    STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    if (!own)
        return -1;
    for (int i = 0; list && i < sk_SSL_CIPHER_num(list); i++) {
        uint16_t id = SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(list, i));
        if (id >> 8 != 0x13 && own->n_suites < TLS12_PSK_MAX_SUITES) /* 0x13xx: TLS 1.3 */
            own->suites[own->n_suites++] = id;
    }
    own->tls13 = l->tls13;
    own->tickets = cfg->ticket_lifetime != 0;
    own->max_plain = l->max_record_size;
    if (!SSL_CTX_set_ex_data(ctx, own_index, own)) {
        free(own);
        return -1;
    }
    return 0;
}

SSL_CTX *tls_server_ctx(const struct config *cfg, const struct listener_config *l,
                        tls_admit_fn admit, char *err, size_t errlen)
{
    admit_identity = admit;
    if (conn_index < 0)
        conn_index = SSL_get_ex_new_index(0, "psagw conn", NULL, NULL, NULL);
    if (twin_index < 0) {
        twin_index = SSL_CTX_get_ex_new_index(0, "psagw twin", NULL, NULL, free_twin);
        main_index = SSL_CTX_get_ex_new_index(0, "psagw main", NULL, NULL, NULL);
        own_index = SSL_CTX_get_ex_new_index(0, "psagw own handshake", NULL, NULL, free_own);
    }
    SSL_CTX *ctx = new_ctx(cfg, l, false, err, errlen);
    if (ctx && l->own_record_layer && l->own_handshake && add_own_handshake(ctx, cfg, l) != 0) {
        snprintf(err, errlen, "listener %s: out of memory", l->address);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (!ctx || !l->own_record_layer || !l->tls13)
        return ctx;
    /* TLS 1.3 with our record layer needs the traffic secrets, which OpenSSL 3.0 gives only
     * to a keylog callback: a twin context with one, chosen per handshake (hello_cb) */
    SSL_CTX *twin = new_ctx(cfg, l, true, err, errlen);
    if (!twin || !SSL_CTX_set_ex_data(ctx, twin_index, twin)) {
        SSL_CTX_free(twin);
        SSL_CTX_free(ctx);
        if (twin)
            snprintf(err, errlen, "listener %s: cannot link its TLS contexts", l->address);
        return NULL;
    }
    SSL_CTX_set_ex_data(twin, main_index, ctx);
    SSL_CTX_set_client_hello_cb(ctx, hello_cb, NULL);
    SSL_CTX_set_client_hello_cb(twin, hello_cb, NULL);
    return ctx;
}
