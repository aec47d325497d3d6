/*
 * iat_crypto_openssl.c: the token library's crypto backend on OpenSSL (gateway and tools).
 *
 * HMAC (RFC 2104) is built here on OpenSSL's SHA-2 functions (SHA256_Update and kin) rather than
 * EVP_MAC: the gateway makes about 16 HMACs a connect (the TLS 1.2 PRF: master secret, key block,
 * both Finished) and one a token, all on short inputs, where OpenSSL 3's EVP layer (parameter
 * lookups, provider dispatch) cost more than the hashing: 500-750 ns an HMAC against 210-350 ns
 * (docs/performance.md, session 10). Each thread keeps, per digest, the hash states after the key's
 * inner and outer pad blocks, so an HMAC under the previous key (key NULL) starts from copies of
 * them; re-keying overwrites both. Those states are key material: the key schedules' callers
 * re-key with zeros when done (tls_record.c), and a thread's states are wiped when it ends.
 * OpenSSL 3 marks these functions deprecated, in favour of EVP, but builds them by default.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/opensslconf.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "psagw/iat_crypto.h"

#ifdef OPENSSL_NO_DEPRECATED_3_0
#error "iat_crypto_openssl.c needs OpenSSL's SHA-2 functions, which a no-deprecated OpenSSL leaves out"
#endif

union sha_ctx {
    SHA256_CTX s256;
    SHA512_CTX s512; /* SHA-384 too */
};

struct hmac_state {
    union sha_ctx inner, outer; /* after the key's ipad / opad block */
    bool keyed;
};

/* COSE alg 5, 6, 7 (index 0, 1, 2): HMAC-SHA256, -SHA384, -SHA512 */
static const size_t block_size[3] = {64, 128, 128}, digest_size[3] = {32, 48, 64};

static bool md_init(int h, union sha_ctx *c)
{
    return h == 0 ? SHA256_Init(&c->s256) : h == 1 ? SHA384_Init(&c->s512) : SHA512_Init(&c->s512);
}

static bool md_update(int h, union sha_ctx *c, const void *p, size_t n)
{
    return h == 0   ? SHA256_Update(&c->s256, p, n)
           : h == 1 ? SHA384_Update(&c->s512, p, n)
                    : SHA512_Update(&c->s512, p, n);
}

static bool md_final(int h, union sha_ctx *c, uint8_t *out)
{
    return h == 0   ? SHA256_Final(out, &c->s256)
           : h == 1 ? SHA384_Final(out, &c->s512)
                    : SHA512_Final(out, &c->s512);
}

/* Key material off the stack: glibc's explicit_bzero (a memset the compiler may not drop) costs
 * a third of OPENSSL_cleanse's byte loop on these 128-216 byte states, wiped ~50 times a
 * connect. */
static void wipe(void *p, size_t n)
{
    explicit_bzero(p, n);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t tls_key;

static void thread_states_free(void *p)
{
    OPENSSL_cleanse(p, 3 * sizeof(struct hmac_state));
    free(p);
}

static void init_once(void)
{
    pthread_key_create(&tls_key, thread_states_free);
}

/* This thread's HMAC states, one per digest (allocated on its first HMAC, freed at its end). */
static struct hmac_state *thread_states(void)
{
    pthread_once(&once, init_once);
    struct hmac_state *s = pthread_getspecific(tls_key);
    if (s)
        return s;
    s = calloc(3, sizeof(*s));
    if (s && pthread_setspecific(tls_key, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

/* RFC 2104 section 2: a key longer than the block is hashed first; then the inner and outer
 * hashes each start with the key, zero-padded to the block, XORed with 0x36 / 0x5c. */
static bool set_key(int h, struct hmac_state *s, const uint8_t *key, size_t len)
{
    size_t block = block_size[h];
    uint8_t k[128], pad[128];
    union sha_ctx t;
    bool ok = true;
    memset(k, 0, sizeof(k));
    if (len > block)
        ok = md_init(h, &t) && md_update(h, &t, key, len) && md_final(h, &t, k);
    else
        memcpy(k, key, len);
    for (size_t i = 0; i < block; i++)
        pad[i] = k[i] ^ 0x36;
    ok = ok && md_init(h, &s->inner) && md_update(h, &s->inner, pad, block);
    for (size_t i = 0; i < block; i++)
        pad[i] = k[i] ^ 0x5c;
    ok = ok && md_init(h, &s->outer) && md_update(h, &s->outer, pad, block);
    wipe(k, sizeof(k));
    wipe(pad, sizeof(pad));
    if (len > block)
        wipe(&t, sizeof(t));
    s->keyed = ok;
    return ok;
}

int iat_crypto_hmac(int alg, const struct iat_key *key, const struct iat_iov *iov, size_t n,
                    uint8_t out[IAT_MAX_MAC_SIZE], size_t *out_len)
{
    if (alg < IAT_ALG_HMAC256 || alg > IAT_ALG_HMAC512)
        return -1;
    if (key && (!key->raw || key->raw_len == 0))
        return -1;
    struct hmac_state *states = thread_states();
    if (!states)
        return -1;
    int h = alg - IAT_ALG_HMAC256;
    struct hmac_state *s = &states[h];
    if (key ? !set_key(h, s, key->raw, key->raw_len) : !s->keyed)
        return -1; /* key NULL: no previous key to reuse */
    union sha_ctx t = s->inner;
    uint8_t inner[64];
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++)
        if (iov[i].len)
            ok = md_update(h, &t, iov[i].p, iov[i].len);
    ok = ok && md_final(h, &t, inner);
    t = s->outer;
    ok = ok && md_update(h, &t, inner, digest_size[h]) && md_final(h, &t, out);
    wipe(inner, sizeof(inner));
    wipe(&t, sizeof(t));
    if (!ok)
        return -1;
    *out_len = digest_size[h];
    return 0;
}

int iat_crypto_sha256(const uint8_t *in, size_t len, uint8_t out[32])
{
    SHA256_CTX c;
    bool ok = SHA256_Init(&c) && SHA256_Update(&c, in, len) && SHA256_Final(out, &c);
    wipe(&c, sizeof(c));
    return ok ? 0 : -1;
}
