/*
 * cmd_device.c: `psagw device ...`, the registry's command-line interface.
 *
 * Every change is checked before the registry is touched and made in one transaction, so a
 * bad input leaves the registry as it was. Keys are never printed, except a PSK that
 * --generate-psk has just made, once, on standard output, so it can be provisioned.
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "hex.h"
#include "iat_json.h"
#include "config.h"
#include "registry.h"

struct device_opts {
    const char *registry;
    const char *config;
    const char *role;
    const char *psk_hex;
    const char *psk_file;
    bool generate_psk;
    const char *attestation;
    const char *iak_hex;
    const char *iak_file;
    const char *iat_profile;
    bool create; /* --create: make the registry even where a configuration names it */
    char *acl_pub; /* newline-joined, owned */
    char *acl_sub;
};

static int append_pattern(char **list, const char *p)
{
    if (!*p || strchr(p, '\n') ||
        !mqtt_topic_filter_valid((const uint8_t *)p, strlen(p))) {
        fprintf(stderr, "psagw device: '%s' is not a valid topic pattern\n", p);
        return -1;
    }
    size_t old = *list ? strlen(*list) : 0;
    char *n = realloc(*list, old + strlen(p) + 2);
    if (!n)
        return -1;
    if (old)
        n[old++] = '\n';
    strcpy(n + old, p);
    *list = n;
    return 0;
}

/* --iak HEX or --iak-file F into d->iak (neither: no IAK). */
static int load_iak(const struct device_opts *o, const char *who, struct device *d)
{
    int n = 0;
    if (o->iak_hex && o->iak_file) {
        fprintf(stderr, "%s: give --iak or --iak-file, not both\n", who);
        return -1;
    }
    if (o->iak_hex)
        n = hex_parse(o->iak_hex, d->iak, sizeof(d->iak));
    else if (o->iak_file)
        n = hex_read_key_file(who, o->iak_file, d->iak, sizeof(d->iak));
    if (n < 0 || (n != 0 && n != 32 && n != 48 && n != 64)) {
        fprintf(stderr, "%s: the IAK must be 32, 48 or 64 bytes (HMAC-SHA256/384/512)\n", who);
        return -1;
    }
    d->iak_len = (size_t)n;
    return 0;
}

static int read_psk_file(const char *path, uint8_t *psk, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "psagw device: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[300] = "";
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    int n = ok ? hex_parse(line, psk, DEVICE_PSK_MAX) : -1;
    OPENSSL_cleanse(line, sizeof(line));
    if (n < 0) {
        fprintf(stderr, "psagw device: %s must hold the PSK as hex on its first line (%d..%d "
                        "bytes)\n",
                path, DEVICE_PSK_MIN, DEVICE_PSK_MAX);
        return -1;
    }
    *len = (size_t)n;
    return 0;
}

/* --registry, else the config file's registry, else the default path; *from_config says
 * whether a configuration file named it (one a daemon may be running with). */
static int resolve_registry(const char *registry, const char *config, const char *who, char *out,
                            size_t cap, bool *from_config)
{
    *from_config = false;
    if (registry) {
        snprintf(out, cap, "%s", registry);
        return 0;
    }
    struct config cfg;
    config_defaults(&cfg);
    const char *path = config;
    if (!path && access(CONFIG_DEFAULT_PATH, R_OK) == 0)
        path = CONFIG_DEFAULT_PATH;
    if (path) {
        char err[1024];
        if (config_load(&cfg, path, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", who, err);
            config_free(&cfg);
            return -1;
        }
    }
    snprintf(out, cap, "%s", cfg.registry);
    *from_config = path != NULL;
    config_free(&cfg);
    return 0;
}

struct registry *cli_open_registry(const char *registry, const char *config, bool create,
                                   bool create_asked, const char *who)
{
    char path[4096], err[1024];
    bool from_config = false;
    if (resolve_registry(registry, config, who, path, sizeof(path), &from_config) != 0)
        return NULL;
    if (create && from_config && !create_asked && access(path, F_OK) != 0 && errno == ENOENT) {
        /* a daemon running with this configuration would not see a registry made now: it
         * still has the old file open (docs/operations.md, "The registry file") */
        fprintf(stderr,
                "%s: the registry %s named by the configuration does not exist. If a gateway "
                "runs with that configuration, its registry was moved or deleted: restore it "
                "rather than starting an empty one. To create a new registry there, add "
                "--create.\n",
                who, path);
        return NULL;
    }
    if (create) {
        /* make the parent directory for the default location, private */
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            mkdir(dir, 0700);
        }
    }
    struct registry *r = NULL;
    if (registry_open(path, create, &r, err, sizeof(err)) != REG_OK) {
        fprintf(stderr, "%s: %s\n", who, err);
        return NULL;
    }
    return r;
}

static struct registry *open_registry(const struct device_opts *o, bool create)
{
    return cli_open_registry(o->registry, o->config, create, o->create, "psagw device");
}

static int device_add(struct device_opts *o, const char *id)
{
    struct device d = {0};
    if (strlen(id) > DEVICE_ID_MAX || !device_id_valid(id, strlen(id))) {
        fprintf(stderr,
                "psagw device add: '%s' is not a valid device id (1..%d printable ASCII, no "
                "space, '/', '+' or '#')\n",
                id, DEVICE_ID_MAX);
        return 1;
    }
    snprintf(d.id, sizeof(d.id), "%s", id);
    int role = o->role ? device_role_parse(o->role) : -1;
    if (role < 0) {
        fprintf(stderr, "psagw device add: --role sensor|monitor|custom is required\n");
        return 2;
    }
    d.role = (enum device_role)role;
    int pol = o->attestation ? device_policy_parse(o->attestation) : ATTEST_DEFAULT;
    if (pol < 0) {
        fprintf(stderr, "psagw device add: --attestation must be required, optional, off or "
                        "default\n");
        return 2;
    }
    d.attestation = (enum attest_policy)pol;
    int sources = (o->psk_hex != NULL) + (o->psk_file != NULL) + o->generate_psk;
    if (sources != 1) {
        fprintf(stderr, "psagw device add: give exactly one of --psk, --psk-file, "
                        "--generate-psk\n");
        return 2;
    }
    if (o->psk_hex) {
        int n = hex_parse(o->psk_hex, d.psk, sizeof(d.psk));
        if (n < 0) {
            fprintf(stderr, "psagw device add: --psk must be %d..%d bytes of hex\n",
                    DEVICE_PSK_MIN, DEVICE_PSK_MAX);
            return 1;
        }
        d.psk_len = (size_t)n;
    } else if (o->psk_file) {
        if (read_psk_file(o->psk_file, d.psk, &d.psk_len) != 0)
            return 1;
    } else {
        d.psk_len = 16;
        if (RAND_bytes(d.psk, (int)d.psk_len) != 1) {
            fprintf(stderr, "psagw device add: no randomness available\n");
            return 1;
        }
    }
    if (d.psk_len < DEVICE_PSK_MIN) {
        fprintf(stderr, "psagw device add: the PSK must be at least %d bytes, got %zu\n",
                DEVICE_PSK_MIN, d.psk_len);
        device_clear(&d);
        return 1;
    }
    if (load_iak(o, "psagw device add", &d) != 0) {
        device_clear(&d);
        return 1;
    }
    int prof = o->iat_profile ? device_profile_parse(o->iat_profile) : IAT_PROFILE_AUTO;
    if (prof < 0) {
        fprintf(stderr, "psagw device add: --iat-profile must be auto, legacy or psa2\n");
        device_clear(&d);
        return 2;
    }
    d.iat_profile = (enum iat_profile)prof;
    if (d.role == ROLE_CUSTOM && !o->acl_pub && !o->acl_sub)
        fprintf(stderr, "psagw device add: note: a custom device with no --acl-pub/--acl-sub "
                        "may not publish or subscribe anywhere\n");
    d.acl_pub = o->acl_pub;
    d.acl_sub = o->acl_sub;
    struct registry *r = open_registry(o, true);
    if (!r) {
        OPENSSL_cleanse(d.psk, sizeof(d.psk));
        OPENSSL_cleanse(d.iak, sizeof(d.iak));
        return 1;
    }
    int rc = registry_add(r, &d);
    if (rc != REG_OK) {
        fprintf(stderr, "psagw device add: %s\n", registry_error(r));
    } else {
        printf("added %s (role %s, attestation %s, %s)\n", d.id, device_role_name(d.role),
               device_policy_name(d.attestation), d.iak_len ? "IAK registered" : "no IAK");
        if (o->generate_psk) {
            printf("psk=");
            for (size_t i = 0; i < d.psk_len; i++)
                printf("%02x", d.psk[i]);
            printf("\n");
        }
    }
    OPENSSL_cleanse(d.psk, sizeof(d.psk));
    OPENSSL_cleanse(d.iak, sizeof(d.iak));
    registry_close(r);
    return rc == REG_OK ? 0 : 1;
}

/* `psagw device set-iak ID --iak HEX|--iak-file F`: registers or replaces a device's IAK. */
static int device_set_iak(struct device_opts *o, const char *id)
{
    struct device d = {0};
    if (!o->iak_hex && !o->iak_file) {
        fprintf(stderr, "psagw device set-iak: give --iak HEX or --iak-file FILE\n");
        return 2;
    }
    if (load_iak(o, "psagw device set-iak", &d) != 0)
        return 1;
    struct registry *r = open_registry(o, false);
    int rc = r ? registry_set_iak(r, id, d.iak, d.iak_len) : REG_DB;
    if (r && rc != REG_OK)
        fprintf(stderr, "psagw device set-iak: %s\n", registry_error(r));
    else if (r)
        printf("IAK of %s set (%zu bytes)\n", id, d.iak_len);
    if (r && rc == REG_OK && o->iat_profile) {
        int prof = device_profile_parse(o->iat_profile);
        rc = prof < 0 ? REG_INVALID : registry_set_iat_profile(r, id, (enum iat_profile)prof);
        if (rc != REG_OK)
            fprintf(stderr, "psagw device set-iak: bad --iat-profile\n");
    }
    device_clear(&d);
    registry_close(r);
    return rc == REG_OK ? 0 : 1;
}

static int print_row(const struct device *d, void *arg)
{
    (void)arg;
    printf("%-32s %-8s %-9s %s\n", d->id, device_role_name(d->role),
           device_policy_name(d->attestation), d->revoked ? "revoked" : "active");
    return 0;
}

static void print_time(const char *label, int64_t t)
{
    char buf[64];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%-12s %s\n", label, buf);
}

static void print_patterns(const char *label, const char *list)
{
    if (!list || !*list) {
        printf("%-12s (role default)\n", label);
        return;
    }
    for (const char *s = list; *s;) {
        const char *e = strchr(s, '\n');
        int len = e ? (int)(e - s) : (int)strlen(s);
        printf("%-12s %.*s\n", label, len, s);
        s += len + (e ? 1 : 0);
    }
}

static int print_verdict(const struct attest_record *a, void *arg)
{
    (void)arg;
    char when[64];
    time_t t = (time_t)(a->at_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%-12s %s at %s from %s: %s\n", "last_verdict", a->accepted ? "accepted" : "refused",
           when, a->peer ? a->peer : "?", a->reason);
    if (a->token_len) {
        /* the claims as the gateway saw them, decoded again from the stored token */
        struct iat_token tok;
        enum iat_result r = iat_decode_unverified(a->token, a->token_len, IAT_PROFILE_AUTO, &tok);
        char *json = r == IAT_OK || r >= IAT_ERR_CLAIMS_CBOR ? iat_claims_json(&tok, false) : NULL;
        printf("%-12s %s\n", "claims", json ? json : "(undecodable)");
        free(json);
    }
    return 1; /* only the newest */
}

static int device_show(struct registry *r, const char *id)
{
    struct device d;
    int rc = registry_get(r, id, &d);
    if (rc != REG_OK) {
        fprintf(stderr, "psagw device show: %s\n",
                rc == REG_NOT_FOUND ? "no such device" : registry_error(r));
        return 1;
    }
    printf("%-12s %s\n", "id", d.id);
    printf("%-12s %s\n", "role", device_role_name(d.role));
    printf("%-12s %s\n", "attestation", device_policy_name(d.attestation));
    printf("%-12s %s\n", "state", d.revoked ? "revoked" : "active");
    printf("%-12s %zu bytes (not shown)\n", "psk", d.psk_len);
    if (d.iak_len) {
        char hex[2 * IAT_INSTANCE_ID_SIZE + 1];
        printf("%-12s %zu bytes (not shown)\n", "iak", d.iak_len);
        printf("%-12s %s\n", "instance_id",
               hex_encode(d.instance_id, IAT_INSTANCE_ID_SIZE, hex, sizeof(hex)));
    } else {
        printf("%-12s none registered\n", "iak");
    }
    printf("%-12s %s\n", "iat_profile", iat_profile_name(d.iat_profile));
    print_patterns("acl_pub", d.acl_pub);
    print_patterns("acl_sub", d.acl_sub);
    print_time("created", d.created);
    print_time("updated", d.updated);
    device_clear(&d);
    if (registry_history_list(r, id, 1, print_verdict, NULL) != REG_OK)
        fprintf(stderr, "psagw device show: %s\n", registry_error(r));
    return 0;
}

static int add_refval(const struct refval *rv, void *arg)
{
    struct registry *r = arg;
    struct refval copy = *rv;
    int rc = registry_refval_add(r, &copy);
    return rc == REG_OK || rc == REG_EXISTS ? 0 : 1; /* the same build's values: fine twice */
}

/* A provisioning manifest (psadev provision --manifest): one device with its PSK, IAK and
 * expected instance ID, and the reference values of its build. All or nothing. */
static int import_manifest(struct device_opts *o, const char *path, json_t *doc)
{
    struct device d = {0};
    char err[256] = "";
    int pol = o->attestation ? device_policy_parse(o->attestation) : ATTEST_DEFAULT;
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *role = json_string_value(json_object_get(doc, "role"));
    const char *psk = json_string_value(json_object_get(doc, "psk"));
    const char *iak = json_string_value(json_object_get(doc, "iak"));
    const char *iid = json_string_value(json_object_get(doc, "instance_id"));
    int n = 0;
    if (pol < 0)
        snprintf(err, sizeof(err), "bad --attestation");
    else if (!id || !device_id_valid(id, strlen(id)))
        snprintf(err, sizeof(err), "\"id\" missing or not a valid device id");
    else if (!role || device_role_parse(role) < 0)
        snprintf(err, sizeof(err), "\"role\" must be sensor, monitor or custom");
    else if (!psk || (n = hex_parse(psk, d.psk, sizeof(d.psk))) < DEVICE_PSK_MIN)
        snprintf(err, sizeof(err), "\"psk\" must be %d..%d bytes of hex", DEVICE_PSK_MIN,
                 DEVICE_PSK_MAX);
    else if ((d.psk_len = (size_t)n),
             !iak || ((n = hex_parse(iak, d.iak, sizeof(d.iak))) != 32 && n != 48 && n != 64))
        snprintf(err, sizeof(err), "\"iak\" must be 32, 48 or 64 bytes of hex");
    if (err[0]) {
        fprintf(stderr, "psagw device import: %s: %s (nothing imported)\n", path, err);
        device_clear(&d);
        return 1;
    }
    d.iak_len = (size_t)n;
    /* the factory's instance ID must be the one this IAK gives, or the manifest is damaged */
    uint8_t want[IAT_INSTANCE_ID_SIZE], got[IAT_INSTANCE_ID_SIZE];
    if (iid && (hex_parse(iid, want, sizeof(want)) != IAT_INSTANCE_ID_SIZE ||
                iat_instance_id(d.iak, d.iak_len, got) != 0 || memcmp(want, got, sizeof(got)))) {
        fprintf(stderr, "psagw device import: %s: \"instance_id\" does not match the IAK "
                        "(nothing imported)\n", path);
        device_clear(&d);
        return 1;
    }
    snprintf(d.id, sizeof(d.id), "%s", id);
    d.role = (enum device_role)device_role_parse(role);
    d.attestation = (enum attest_policy)pol;
    struct registry *r = open_registry(o, true);
    if (!r) {
        device_clear(&d);
        return 1;
    }
    int ret = 1;
    if (registry_begin(r) != REG_OK) {
        fprintf(stderr, "psagw device import: %s\n", registry_error(r));
        goto out;
    }
    if (registry_add(r, &d) != REG_OK) {
        fprintf(stderr, "psagw device import: %s: %s (nothing imported)\n", path,
                registry_error(r));
        registry_rollback(r);
        goto out;
    }
    const json_t *rv = json_object_get(doc, "refvals");
    if (rv && iat_json_refvals(rv, add_refval, r, err, sizeof(err)) != 0) {
        fprintf(stderr, "psagw device import: %s: refvals: %s (nothing imported)\n", path, err);
        registry_rollback(r);
        goto out;
    }
    if (registry_commit(r) != REG_OK) {
        fprintf(stderr, "psagw device import: %s\n", registry_error(r));
        goto out;
    }
    printf("imported %s from %s (role %s, attestation %s, IAK registered%s)\n", d.id, path,
           device_role_name(d.role), device_policy_name(d.attestation),
           rv ? ", reference values added" : "");
    ret = 0;
out:
    device_clear(&d);
    registry_close(r);
    return ret;
}

/* mosquitto's psk_file: "identity:hexkey" per line; '#' comments and blank lines allowed.
 * A file starting with '{' is a provisioning manifest instead (import_manifest). */
static int device_import(struct device_opts *o, const char *path)
{
    if (strcmp(path, "-") != 0) {
        FILE *probe = fopen(path, "r");
        int ch = ' ';
        while (probe && (ch = fgetc(probe)) != EOF && (ch == ' ' || ch == '\n' || ch == '\t'))
            ;
        if (probe)
            fclose(probe);
        if (ch == '{') {
            json_error_t jerr;
            json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
            if (!doc) {
                fprintf(stderr, "psagw device import: %s:%d: %s\n", path, jerr.line, jerr.text);
                return 1;
            }
            int rc = import_manifest(o, path, doc);
            json_decref(doc);
            return rc;
        }
    }
    int role = device_role_parse(o->role ? o->role : "sensor");
    int pol = o->attestation ? device_policy_parse(o->attestation) : ATTEST_DEFAULT;
    if (role < 0 || pol < 0) {
        fprintf(stderr, "psagw device import: bad --role or --attestation\n");
        return 2;
    }
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "psagw device import: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct registry *r = open_registry(o, true);
    if (!r) {
        if (f != stdin)
            fclose(f);
        return 1;
    }
    int ret = 1, lineno = 0, count = 0;
    char line[1024];
    if (registry_begin(r) != REG_OK) {
        fprintf(stderr, "psagw device import: %s\n", registry_error(r));
        goto out;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "psagw device import: %s:%d: line too long\n", path, lineno);
            goto fail;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        char *colon = strrchr(line, ':');
        if (!colon) {
            fprintf(stderr, "psagw device import: %s:%d: expected identity:hexkey\n", path,
                    lineno);
            goto fail;
        }
        *colon = '\0';
        struct device d = {0};
        if (!device_id_valid(line, strlen(line))) {
            fprintf(stderr, "psagw device import: %s:%d: invalid identity\n", path, lineno);
            goto fail;
        }
        memcpy(d.id, line, strlen(line) + 1); /* valid ids are at most DEVICE_ID_MAX long */
        int n = hex_parse(colon + 1, d.psk, sizeof(d.psk));
        if (n < DEVICE_PSK_MIN) {
            fprintf(stderr, "psagw device import: %s:%d: key for %s must be %d..%d bytes of "
                            "hex\n",
                    path, lineno, d.id, DEVICE_PSK_MIN, DEVICE_PSK_MAX);
            OPENSSL_cleanse(d.psk, sizeof(d.psk));
            goto fail;
        }
        d.psk_len = (size_t)n;
        d.role = (enum device_role)role;
        d.attestation = (enum attest_policy)pol;
        int rc = registry_add(r, &d);
        OPENSSL_cleanse(d.psk, sizeof(d.psk));
        if (rc != REG_OK) {
            fprintf(stderr, "psagw device import: %s:%d: %s\n", path, lineno, registry_error(r));
            goto fail;
        }
        count++;
    }
    if (ferror(f)) {
        fprintf(stderr, "psagw device import: reading %s failed\n", path);
        goto fail;
    }
    if (registry_commit(r) != REG_OK) {
        fprintf(stderr, "psagw device import: %s\n", registry_error(r));
        goto fail;
    }
    printf("imported %d device%s from %s (role %s, attestation %s)\n", count,
           count == 1 ? "" : "s", path, device_role_name((enum device_role)role),
           device_policy_name((enum attest_policy)pol));
    ret = 0;
    goto out;
fail:
    registry_rollback(r);
    fprintf(stderr, "psagw device import: nothing imported, the registry is unchanged\n");
out:
    OPENSSL_cleanse(line, sizeof(line));
    registry_close(r);
    if (f != stdin)
        fclose(f);
    return ret;
}

int cmd_device(int argc, char **argv)
{
    static const struct option opts[] = {
        {"registry", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, 'c'},
        {"role", required_argument, NULL, 'o'},
        {"psk", required_argument, NULL, 'k'},
        {"psk-file", required_argument, NULL, 'f'},
        {"generate-psk", no_argument, NULL, 'g'},
        {"attestation", required_argument, NULL, 'a'},
        {"acl-pub", required_argument, NULL, 'P'},
        {"acl-sub", required_argument, NULL, 'S'},
        {"iak", required_argument, NULL, 'i'},
        {"iak-file", required_argument, NULL, 'I'},
        {"iat-profile", required_argument, NULL, 'p'},
        {"create", no_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: psagw device add|list|show|remove|revoke|unrevoke|import|set-iak ...\n");
        return 2;
    }
    const char *sub = argv[1];
    struct device_opts o = {0};
    int opt, ret = 2;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            o.registry = optarg;
            break;
        case 'c':
            o.config = optarg;
            break;
        case 'C':
            o.create = true;
            break;
        case 'o':
            o.role = optarg;
            break;
        case 'k':
            o.psk_hex = optarg;
            break;
        case 'f':
            o.psk_file = optarg;
            break;
        case 'g':
            o.generate_psk = true;
            break;
        case 'a':
            o.attestation = optarg;
            break;
        case 'i':
            o.iak_hex = optarg;
            break;
        case 'I':
            o.iak_file = optarg;
            break;
        case 'p':
            o.iat_profile = optarg;
            break;
        case 'P':
            if (append_pattern(&o.acl_pub, optarg) != 0)
                goto out;
            break;
        case 'S':
            if (append_pattern(&o.acl_sub, optarg) != 0)
                goto out;
            break;
        default:
            goto out;
        }
    }
    int nargs = argc - optind;
    const char *arg = nargs > 0 ? argv[optind] : NULL;
    bool needs_arg = strcmp(sub, "list") != 0;
    if ((needs_arg && nargs != 1) || (!needs_arg && nargs != 0)) {
        fprintf(stderr, "psagw device %s: %s\n", sub,
                needs_arg ? "expects exactly one argument" : "takes no argument");
        goto out;
    }
    if (strcmp(sub, "add") == 0) {
        ret = device_add(&o, arg);
        goto out;
    }
    if (strcmp(sub, "import") == 0) {
        ret = device_import(&o, arg);
        goto out;
    }
    if (strcmp(sub, "set-iak") == 0) {
        ret = device_set_iak(&o, arg);
        goto out;
    }
    bool known = strcmp(sub, "list") == 0 || strcmp(sub, "show") == 0 ||
                 strcmp(sub, "remove") == 0 || strcmp(sub, "revoke") == 0 ||
                 strcmp(sub, "unrevoke") == 0;
    if (!known) {
        fprintf(stderr, "psagw device: unknown subcommand '%s'\n", sub);
        goto out;
    }
    struct registry *r = open_registry(&o, false);
    if (!r) {
        ret = 1;
        goto out;
    }
    int rc = REG_OK;
    if (strcmp(sub, "list") == 0) {
        printf("%-32s %-8s %-9s %s\n", "ID", "ROLE", "ATTEST", "STATE");
        rc = registry_list(r, print_row, NULL);
    } else if (strcmp(sub, "show") == 0) {
        ret = device_show(r, arg);
        registry_close(r);
        goto out;
    } else if (strcmp(sub, "remove") == 0) {
        rc = registry_remove(r, arg);
        if (rc == REG_OK)
            printf("removed %s\n", arg);
    } else {
        bool revoke = strcmp(sub, "revoke") == 0;
        rc = registry_set_revoked(r, arg, revoke);
        if (rc == REG_OK)
            printf("%s %s\n", revoke ? "revoked" : "unrevoked", arg);
    }
    if (rc != REG_OK)
        fprintf(stderr, "psagw device %s: %s\n", sub, registry_error(r));
    registry_close(r);
    ret = rc == REG_OK ? 0 : 1;
out:
    free(o.acl_pub);
    free(o.acl_sub);
    return ret;
}
