/*
 * cmd_iat.c: `psagw iat verify|show|create`, the attestation token tools.
 *
 * verify checks a token the way the gateway does (docs/design/token.md section 4) and prints the verdict
 * and the claims; exit 0 = accepted, 1 = refused (the reason on stderr and in the JSON),
 * 2 = usage or I/O error. show decodes without verifying and says so. create mints a token
 * from JSON claims, for tests and for developers of device firmware.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hex.h"
#include "iat_json.h"
#include "refval_set.h"

#define TOKEN_FILE_MAX 65536

struct iat_opts {
    const char *key_hex, *key_file, *nonce_hex, *profile, *lifecycle, *refvals, *claims;
    const char *alg, *out;
    bool json, hex_out;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: psagw iat verify --key-hex HEX|--key-file F --nonce HEX\n"
            "                        [--profile auto|legacy|psa2] [--lifecycle secured|secured+debug]\n"
            "                        [--refvals FILE.json] [--json] TOKEN_FILE\n"
            "       psagw iat show [--json] TOKEN_FILE\n"
            "       psagw iat create --key-hex HEX|--key-file F --nonce HEX --claims FILE.json\n"
            "                        [--profile legacy|psa2] [--alg hmac256|hmac384|hmac512]\n"
            "                        [--out FILE] [--hex]\n"
            "TOKEN_FILE '-' reads stdin; raw CBOR or hex are both accepted.\n"
            "verify exits 0 if the token is accepted, 1 if refused, 2 on usage or I/O errors.\n");
}

/* Reads a token file: raw CBOR, or hex text (whitespace ignored). */
static int read_token(const char *path, uint8_t *out, size_t cap, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "psagw iat: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    static uint8_t buf[TOKEN_FILE_MAX + 1];
    size_t n = fread(buf, 1, sizeof(buf), f);
    if (f != stdin)
        fclose(f);
    if (n > TOKEN_FILE_MAX) {
        fprintf(stderr, "psagw iat: %s is larger than %d bytes\n", path, TOKEN_FILE_MAX);
        return -1;
    }
    bool is_hex = n > 0;
    size_t digits = 0;
    for (size_t i = 0; i < n && is_hex; i++) {
        if (isxdigit(buf[i]))
            digits++;
        else if (!isspace(buf[i]))
            is_hex = false;
    }
    if (is_hex && digits % 2 == 0 && digits > 0) {
        size_t k = 0; /* drop the whitespace, then it is plain hex */
        for (size_t i = 0; i < n; i++)
            if (isxdigit(buf[i]))
                buf[k++] = buf[i];
        buf[k] = '\0';
        int len_hex = hex_parse((const char *)buf, out, cap);
        if (len_hex < 0) {
            fprintf(stderr, "psagw iat: %s is too large\n", path);
            return -1;
        }
        *len = (size_t)len_hex;
        return 0;
    }
    if (n > cap) {
        fprintf(stderr, "psagw iat: %s is too large\n", path);
        return -1;
    }
    memcpy(out, buf, n);
    *len = n;
    return 0;
}

static int load_key(const struct iat_opts *o, uint8_t *key, size_t *len)
{
    if (!!o->key_hex == !!o->key_file) {
        fprintf(stderr, "psagw iat: give --key-hex HEX or --key-file FILE\n");
        return -1;
    }
    int n = o->key_hex ? hex_parse(o->key_hex, key, 64)
                       : hex_read_key_file("psagw iat", o->key_file, key, 64);
    if (n <= 0) {
        if (o->key_hex)
            fprintf(stderr, "psagw iat: --key-hex must be 1..64 bytes of hex\n");
        return -1;
    }
    *len = (size_t)n;
    return 0;
}

static int parse_profile(const char *s, enum iat_profile *p)
{
    int v = s ? device_profile_parse(s) : IAT_PROFILE_AUTO;
    if (v < 0) {
        fprintf(stderr, "psagw iat: --profile must be auto, legacy or psa2\n");
        return -1;
    }
    *p = (enum iat_profile)v;
    return 0;
}

static void print_result(const struct iat_token *t, enum iat_result r, bool verified,
                         bool claims_valid, bool json, const char *reason)
{
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "verdict", json_string(!verified ? "unverified"
                                                      : r == IAT_OK ? "accepted"
                                                                    : "refused"));
        json_object_set_new(o, "result", json_string(iat_result_name(r)));
        json_object_set_new(o, "reason", json_string(reason));
        json_object_set_new(o, "verified", json_boolean(verified && r == IAT_OK));
        if (t->alg)
            json_object_set_new(o, "alg", json_integer(t->alg));
        if (claims_valid)
            json_object_set_new(o, "claims", iat_claims_to_json(t));
        json_dumpf(o, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(o);
        return;
    }
    if (!verified)
        printf("verdict: UNVERIFIED (the MAC and the policy were not checked)%s%s\n",
               r == IAT_OK ? "" : "; decoding stopped: ", r == IAT_OK ? "" : reason);
    else
        printf("verdict: %s%s%s\n", r == IAT_OK ? "accepted" : "refused",
               r == IAT_OK ? "" : ": ", r == IAT_OK ? "" : reason);
    if (t->alg)
        printf("alg: %d (HMAC-SHA%zu)\n", t->alg, iat_alg_mac_size(t->alg) * 8);
    if (claims_valid) {
        char *s = iat_claims_json(t, true);
        printf("claims%s:\n%s\n", verified && r == IAT_OK ? "" : " (unverified)", s ? s : "?");
        free(s);
    }
}

static int iat_verify_cmd(const struct iat_opts *o, const char *path)
{
    uint8_t key[64], nonce[64];
    size_t key_len;
    enum iat_profile profile;
    if (load_key(o, key, &key_len) != 0 || parse_profile(o->profile, &profile) != 0)
        return 2;
    int nlen = o->nonce_hex ? hex_parse(o->nonce_hex, nonce, sizeof(nonce)) : -1;
    if (nlen <= 0) {
        fprintf(stderr, "psagw iat verify: --nonce HEX (the challenge the token answers) is "
                        "required\n");
        return 2;
    }
    uint32_t lcs = IAT_LC_BIT(IAT_LC_SECURED);
    if (o->lifecycle && strcmp(o->lifecycle, "secured+debug") == 0)
        lcs |= IAT_LC_BIT(IAT_LC_NON_PSA_ROT_DEBUG);
    else if (o->lifecycle && strcmp(o->lifecycle, "secured") != 0) {
        fprintf(stderr, "psagw iat verify: --lifecycle must be secured or secured+debug\n");
        return 2;
    }
    struct refval_set *rs = refval_set_new();
    if (!rs)
        return 2;
    struct iat_refvals rv = refval_set_matcher(rs);
    if (o->refvals) {
        json_error_t jerr;
        char err[256];
        json_t *doc = json_load_file(o->refvals, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc) {
            fprintf(stderr, "psagw iat verify: %s:%d: %s\n", o->refvals, jerr.line, jerr.text);
            refval_set_free(rs);
            return 2;
        }
        const json_t *obj = json_object_get(doc, "refvals") ? json_object_get(doc, "refvals")
                                                             : doc;
        int rc = iat_json_refvals(obj, refval_set_add, rs, err, sizeof(err));
        json_decref(doc);
        if (rc != 0) {
            fprintf(stderr, "psagw iat verify: %s: %s\n", o->refvals, err);
            refval_set_free(rs);
            return 2;
        }
    }
    static uint8_t token[TOKEN_FILE_MAX];
    size_t len;
    if (read_token(path, token, sizeof(token), &len) != 0) {
        refval_set_free(rs);
        return 2;
    }
    struct iat_key k = {.raw = key, .raw_len = key_len};
    struct iat_policy pol = {
        .key = &k,
        .nonce = nonce,
        .nonce_len = (size_t)nlen,
        .profile = profile,
        .lifecycle_mask = lcs,
        .refvals = o->refvals ? &rv : NULL,
        .check_implementation = rs->n_impl > 0,
        .require_known_measurements = rs->n_meas > 0,
    };
    struct iat_token t;
    enum iat_result r = iat_verify(token, len, &pol, &t);
    OPENSSL_cleanse(key, sizeof(key));
    char reason[200];
    iat_reason(&t, r, reason, sizeof(reason));
    print_result(&t, r, true, r == IAT_OK || r >= IAT_ERR_CLAIMS_CBOR, o->json, reason);
    if (r != IAT_OK)
        fprintf(stderr, "psagw iat verify: refused: %s\n", reason);
    refval_set_free(rs);
    return r == IAT_OK ? 0 : 1;
}

static int iat_show_cmd(const struct iat_opts *o, const char *path)
{
    enum iat_profile profile;
    if (parse_profile(o->profile, &profile) != 0)
        return 2;
    static uint8_t token[TOKEN_FILE_MAX];
    size_t len;
    if (read_token(path, token, sizeof(token), &len) != 0)
        return 2;
    struct iat_token t;
    enum iat_result r = iat_decode_unverified(token, len, profile, &t);
    char reason[200];
    iat_reason(&t, r, reason, sizeof(reason));
    bool claims = r == IAT_OK || r >= IAT_ERR_CLAIMS_CBOR;
    print_result(&t, r, false, claims, o->json, reason);
    if (r != IAT_OK)
        fprintf(stderr, "psagw iat show: %s\n", reason);
    return r == IAT_OK ? 0 : 1;
}

static int iat_create_cmd(const struct iat_opts *o)
{
    uint8_t key[64], nonce[64], iid[IAT_INSTANCE_ID_SIZE];
    size_t key_len;
    if (load_key(o, key, &key_len) != 0)
        return 2;
    int nlen = o->nonce_hex ? hex_parse(o->nonce_hex, nonce, sizeof(nonce)) : -1;
    if (nlen <= 0 || !o->claims) {
        fprintf(stderr, "psagw iat create: --nonce HEX and --claims FILE.json are required\n");
        return 2;
    }
    json_error_t jerr;
    json_t *doc = strcmp(o->claims, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
                                              : json_load_file(o->claims, JSON_REJECT_DUPLICATES,
                                                               &jerr);
    if (!doc) {
        fprintf(stderr, "psagw iat create: %s:%d: %s\n", o->claims, jerr.line, jerr.text);
        return 2;
    }
    struct iat_claims c;
    struct iat_claims_store store = {0};
    char err[256];
    /* the claims file may be `psagw iat show --json` output: take its "claims" member */
    const json_t *obj = json_object_get(doc, "claims") ? json_object_get(doc, "claims") : doc;
    if (iat_claims_from_json(obj, &c, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "psagw iat create: %s: %s\n", o->claims, err);
        json_decref(doc);
        iat_claims_store_free(&store);
        return 2;
    }
    json_decref(doc);
    enum iat_profile profile = c.profile;
    if (o->profile) {
        int p = device_profile_parse(o->profile);
        if (p != IAT_PROFILE_LEGACY && p != IAT_PROFILE_PSA2) {
            fprintf(stderr, "psagw iat create: --profile must be legacy or psa2\n");
            iat_claims_store_free(&store);
            return 2;
        }
        profile = (enum iat_profile)p;
    }
    c.nonce = (struct iat_bytes){nonce, (size_t)nlen};
    c.present |= 1u << IAT_CLAIM_NONCE;
    if (!(c.present & (1u << IAT_CLAIM_INSTANCE_ID))) {
        /* the instance ID follows from the key: 0x01 || SHA-256(SHA-256(IAK)) */
        iat_instance_id(key, key_len, iid);
        c.instance_id = (struct iat_bytes){iid, sizeof(iid)};
        c.present |= 1u << IAT_CLAIM_INSTANCE_ID;
    }
    int alg = key_len == 48 ? IAT_ALG_HMAC384 : key_len == 64 ? IAT_ALG_HMAC512 : IAT_ALG_HMAC256;
    if (o->alg) {
        alg = strcmp(o->alg, "hmac256") == 0   ? IAT_ALG_HMAC256
              : strcmp(o->alg, "hmac384") == 0 ? IAT_ALG_HMAC384
              : strcmp(o->alg, "hmac512") == 0 ? IAT_ALG_HMAC512
                                               : 0;
        if (!alg) {
            fprintf(stderr, "psagw iat create: --alg must be hmac256, hmac384 or hmac512\n");
            iat_claims_store_free(&store);
            return 2;
        }
    }
    struct iat_key k = {.raw = key, .raw_len = key_len};
    static uint8_t token[IAT_MAX_TOKEN_SIZE];
    size_t len = 0;
    enum iat_result r =
        iat_encode(&c, profile, alg, &k, NULL, 0, NULL, 0, token, sizeof(token), &len);
    OPENSSL_cleanse(key, sizeof(key));
    iat_claims_store_free(&store);
    if (r != IAT_OK) {
        fprintf(stderr, "psagw iat create: %s%s\n", iat_result_str(r),
                r == IAT_ERR_ARG ? " (a claim this profile has no key for?)" : "");
        return 2;
    }
    FILE *f = o->out ? fopen(o->out, "wb") : stdout;
    if (!f) {
        fprintf(stderr, "psagw iat create: cannot write %s: %s\n", o->out, strerror(errno));
        return 2;
    }
    if (o->hex_out) {
        for (size_t i = 0; i < len; i++)
            fprintf(f, "%02x", token[i]);
        fprintf(f, "\n");
    } else {
        fwrite(token, 1, len, f);
    }
    if (f != stdout)
        fclose(f);
    return 0;
}

int cmd_iat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key-hex", required_argument, NULL, 'k'}, {"key-file", required_argument, NULL, 'K'},
        {"nonce", required_argument, NULL, 'n'},   {"profile", required_argument, NULL, 'p'},
        {"lifecycle", required_argument, NULL, 'l'}, {"refvals", required_argument, NULL, 'r'},
        {"claims", required_argument, NULL, 'c'},  {"alg", required_argument, NULL, 'a'},
        {"out", required_argument, NULL, 'o'},     {"json", no_argument, NULL, 'j'},
        {"hex", no_argument, NULL, 'x'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    struct iat_opts o = {0};
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'k': o.key_hex = optarg; break;
        case 'K': o.key_file = optarg; break;
        case 'n': o.nonce_hex = optarg; break;
        case 'p': o.profile = optarg; break;
        case 'l': o.lifecycle = optarg; break;
        case 'r': o.refvals = optarg; break;
        case 'c': o.claims = optarg; break;
        case 'a': o.alg = optarg; break;
        case 'o': o.out = optarg; break;
        case 'j': o.json = true; break;
        case 'x': o.hex_out = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int nargs = argc - optind;
    if (strcmp(sub, "verify") == 0 && nargs == 1)
        return iat_verify_cmd(&o, argv[optind]);
    if (strcmp(sub, "show") == 0 && nargs == 1)
        return iat_show_cmd(&o, argv[optind]);
    if (strcmp(sub, "create") == 0 && nargs == 0)
        return iat_create_cmd(&o);
    usage(stderr);
    return 2;
}
