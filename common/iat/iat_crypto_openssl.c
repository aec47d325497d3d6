/*
 * iat_crypto_openssl.c: the token library's crypto backend on OpenSSL 3 (gateway and tools).
 *
 * HMAC runs through EVP_MAC. Fetching an algorithm is the expensive part of OpenSSL 3, so the
 * MAC and digest are fetched once per process and each thread keeps one keyed-per-call
 * context per digest; re-keying a context is then all a verification pays for setup.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "psagw/iat_crypto.h"

struct thread_ctx {
    EVP_MAC_CTX *mac[3]; /* HMAC-SHA256, -SHA384, -SHA512 */
    bool keyed[3];       /* the context holds a key (a call with key NULL reuses it) */
    EVP_MD_CTX *md;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t tls_key;
static EVP_MAC *hmac;
static EVP_MD *sha256;

static void thread_ctx_free(void *p)
{
    struct thread_ctx *t = p;
    for (int i = 0; i < 3; i++)
        EVP_MAC_CTX_free(t->mac[i]);
    EVP_MD_CTX_free(t->md);
    free(t);
}

static void init_once(void)
{
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    pthread_key_create(&tls_key, thread_ctx_free);
}

static struct thread_ctx *thread_ctx(void)
{
    pthread_once(&once, init_once);
    if (!hmac || !sha256)
        return NULL;
    struct thread_ctx *t = pthread_getspecific(tls_key);
    if (t)
        return t;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    static const char *const digests[3] = {"SHA256", "SHA384", "SHA512"};
    for (int i = 0; i < 3; i++) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digests[i], 0),
            OSSL_PARAM_construct_end(),
        };
        t->mac[i] = EVP_MAC_CTX_new(hmac);
        if (!t->mac[i] || !EVP_MAC_CTX_set_params(t->mac[i], params)) {
            thread_ctx_free(t);
            return NULL;
        }
    }
    t->md = EVP_MD_CTX_new();
    if (!t->md) {
        thread_ctx_free(t);
        return NULL;
    }
    pthread_setspecific(tls_key, t);
    return t;
}

int iat_crypto_hmac(int alg, const struct iat_key *key, const struct iat_iov *iov, size_t n,
                    uint8_t out[IAT_MAX_MAC_SIZE], size_t *out_len)
{
    struct thread_ctx *t = thread_ctx();
    if (!t || (key && (!key->raw || key->raw_len == 0)))
        return -1;
    if (alg < IAT_ALG_HMAC256 || alg > IAT_ALG_HMAC512)
        return -1;
    int h = alg - IAT_ALG_HMAC256;
    if (!key && !t->keyed[h])
        return -1; /* no previous key to reuse */
    EVP_MAC_CTX *ctx = t->mac[h];
    /* key NULL: OpenSSL's HMAC starts again from the key already set up */
    t->keyed[h] = false;
    if (!EVP_MAC_init(ctx, key ? key->raw : NULL, key ? key->raw_len : 0, NULL))
        return -1;
    t->keyed[h] = true;
    for (size_t i = 0; i < n; i++)
        if (iov[i].len && !EVP_MAC_update(ctx, iov[i].p, iov[i].len))
            return -1;
    if (!EVP_MAC_final(ctx, out, out_len, IAT_MAX_MAC_SIZE))
        return -1;
    return 0;
}

int iat_crypto_sha256(const uint8_t *in, size_t len, uint8_t out[32])
{
    struct thread_ctx *t = thread_ctx();
    unsigned int n = 0;
    if (!t || !EVP_DigestInit_ex(t->md, sha256, NULL) || !EVP_DigestUpdate(t->md, in, len) ||
        !EVP_DigestFinal_ex(t->md, out, &n))
        return -1;
    return n == 32 ? 0 : -1;
}
