/*
 * provision.c: the factory step. Creates a new device's secrets inside its SPE key store and
 * hands the operator a manifest.
 *
 * The PSK (16 bytes, TLS-PSK, owned by the NSPE but usable only for the TLS 1.2 PSK-to-MS
 * derivation), the IAK (32 bytes, HMAC-SHA256, owned by the attestation service) and the
 * group application key (owned by the sensor partition) become persistent PSA keys without
 * the EXPORT usage: after this step no API returns them. The manifest (0600) carries the PSK and
 * the IAK once, for the gateway's registry, with the expected instance ID and the reference
 * values of this build (implementation ID, SHA-256 of the SPE and NSPE images), in the JSON
 * shape `psagw device import` and `psagw refval import` read. Keys never appear on a command
 * line or in a log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mbedtls/platform_util.h"
#include "psa/internal_trusted_storage.h"
#include "spe.h"

/* SHA-256("psadev emulated platform v1"): this platform's implementation ID. */
static const uint8_t implementation_id[32] = {
    0x7e, 0xb7, 0x9c, 0xa3, 0xc7, 0xf5, 0x8f, 0x21, 0x58, 0x25, 0x58, 0x91, 0x53, 0xeb, 0x0c, 0x7a,
    0xa8, 0x07, 0xa9, 0x2f, 0xf0, 0x65, 0xc7, 0x52, 0xcb, 0x57, 0xe3, 0x5d, 0x9f, 0xdd, 0x0c, 0x42};

static int parse_lifecycle(const char *s, uint32_t *out)
{
    static const struct {
        const char *name;
        uint32_t v;
    } names[] = {{"secured", 0x3000},
                 {"non_psa_rot_debug", 0x4000},
                 {"recoverable_psa_rot_debug", 0x5000},
                 {"decommissioned", 0x6000},
                 {"psa_rot_provisioning", 0x2000},
                 {"assembly_and_test", 0x1000},
                 {"unknown", 0x0000}};
    if (!s) {
        *out = 0x3000;
        return 0;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].v;
            return 0;
        }
    char *end;
    unsigned long v = strtoul(s, &end, 0);
    if (*s && !*end && v <= 0xffff) {
        *out = (uint32_t)v;
        return 0;
    }
    return -1;
}

static int read_key_file(const char *path, uint8_t *out, size_t want)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char buf[256];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    int rc = -1;
    if (n == want) {
        memcpy(out, buf, want);
        rc = 0;
    } else {
        /* hex, with an optional trailing newline */
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        if (n == 2 * want) {
            rc = 0;
            for (size_t i = 0; i < want && rc == 0; i++) {
                unsigned v;
                if (sscanf(buf + 2 * i, "%2x", &v) != 1)
                    rc = -1;
                out[i] = (uint8_t)v;
            }
        }
    }
    memset(buf, 0, sizeof(buf));
    return rc;
}

static psa_status_t import_persistent(mbedtls_key_owner_id_t owner, uint32_t id,
                                      psa_key_type_t type, psa_key_usage_t usage,
                                      psa_algorithm_t alg, const uint8_t *key, size_t len)
{
    psa_key_attributes_t a = psa_key_attributes_init();
    psa_set_key_id(&a, mbedtls_svc_key_id_make(owner, id));
    psa_set_key_lifetime(&a, PSA_KEY_LIFETIME_PERSISTENT);
    psa_set_key_type(&a, type);
    psa_set_key_usage_flags(&a, usage);
    psa_set_key_algorithm(&a, alg);
    mbedtls_svc_key_id_t k;
    return psa_import_key(&a, key, len, &k);
}

static void hex(FILE *f, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", b[i]);
}

static bool id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '+' || c == '#' || c == '"' || c == '\\')
            return false;
    }
    return true;
}

int spe_provision(const char *state, const char *id, const char *role, const char *lifecycle,
                  const char *group_key_file, const char *manifest, const char *nspe)
{
    struct spe_device_info info;
    memset(&info, 0, sizeof(info));
    if (!id || !id_valid(id)) {
        fprintf(stderr, "psadev provision: --id must be 1..128 printable characters without "
                        "space, '/', '+', '#', quotes or backslash\n");
        return 2;
    }
    if (!role || (strcmp(role, "sensor") != 0 && strcmp(role, "monitor") != 0)) {
        fprintf(stderr, "psadev provision: --role sensor|monitor is required\n");
        return 2;
    }
    if (parse_lifecycle(lifecycle, &info.lifecycle) != 0) {
        fprintf(stderr, "psadev provision: --lifecycle must be a state name (secured, "
                        "non_psa_rot_debug, decommissioned, ...) or a number\n");
        return 2;
    }
    if (!nspe) {
        fprintf(stderr, "psadev provision: --nspe PATH (the NSPE image to measure) is required\n");
        return 2;
    }
    if (mkdir(state, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "psadev provision: cannot create %s: %s\n", state, strerror(errno));
        return 1;
    }
    if (its_init(state) != 0 || psa_crypto_init() != PSA_SUCCESS) {
        fprintf(stderr, "psadev provision: cannot open the key store in %s\n", state);
        return 1;
    }
    struct psa_storage_info_t si;
    if (psa_its_get_info(SPE_UID_DEVICE_INFO, &si) == PSA_SUCCESS) {
        fprintf(stderr, "psadev provision: %s already holds a provisioned device\n", state);
        return 1;
    }
    snprintf(info.id, sizeof(info.id), "%s", id);
    snprintf(info.role, sizeof(info.role), "%s", role);
    memcpy(info.implementation_id, implementation_id, sizeof(implementation_id));

    uint8_t psk[16], iak[32], group[32], h[32];
    size_t hn = 0;
    int ret = 1;
    if (psa_generate_random(psk, sizeof(psk)) != PSA_SUCCESS ||
        psa_generate_random(iak, sizeof(iak)) != PSA_SUCCESS)
        goto out;
    if (group_key_file) {
        if (read_key_file(group_key_file, group, sizeof(group)) != 0) {
            fprintf(stderr, "psadev provision: %s must hold the 32-byte group key (raw or hex)\n",
                    group_key_file);
            goto out;
        }
    } else if (psa_generate_random(group, sizeof(group)) != PSA_SUCCESS) {
        goto out;
    }
    /* instance ID = 0x01 || SHA-256(SHA-256(IAK)) */
    info.instance_id[0] = 0x01;
    if (psa_hash_compute(PSA_ALG_SHA_256, iak, sizeof(iak), h, sizeof(h), &hn) != PSA_SUCCESS ||
        psa_hash_compute(PSA_ALG_SHA_256, h, sizeof(h), info.instance_id + 1, 32, &hn) !=
            PSA_SUCCESS)
        goto out;
    psa_status_t st;
    if ((st = import_persistent(SPE_OWNER_NSPE, SPE_KEY_PSK, PSA_KEY_TYPE_DERIVE,
                                PSA_KEY_USAGE_DERIVE, PSA_ALG_TLS12_PSK_TO_MS(PSA_ALG_SHA_256),
                                psk, sizeof(psk))) != PSA_SUCCESS ||
        (st = import_persistent(SPE_OWNER_ATTEST, SPE_KEY_IAK, PSA_KEY_TYPE_HMAC,
                                PSA_KEY_USAGE_SIGN_MESSAGE | PSA_KEY_USAGE_VERIFY_MESSAGE,
                                PSA_ALG_HMAC(PSA_ALG_SHA_256), iak, sizeof(iak))) != PSA_SUCCESS ||
        (st = import_persistent(SPE_OWNER_SENSOR, SPE_KEY_GROUP, PSA_KEY_TYPE_HMAC,
                                PSA_KEY_USAGE_SIGN_MESSAGE, PSA_ALG_HMAC(PSA_ALG_SHA_256), group,
                                sizeof(group))) != PSA_SUCCESS) {
        fprintf(stderr, "psadev provision: cannot store the keys (PSA error %d)\n", (int)st);
        goto out;
    }
    if (psa_its_set(SPE_UID_DEVICE_INFO, sizeof(info), &info, PSA_STORAGE_FLAG_NONE) !=
        PSA_SUCCESS) {
        fprintf(stderr, "psadev provision: cannot store the device information\n");
        goto out;
    }
    if (manifest) {
        uint8_t meas_spe[32], meas_nspe[32];
        static const uint8_t signer[32] = SPE_IMAGE_SIGNER_ID;
        if (spe_measure_file("/proc/self/exe", meas_spe) != 0 ||
            spe_measure_file(nspe, meas_nspe) != 0) {
            fprintf(stderr, "psadev provision: cannot measure the images (%s)\n", nspe);
            goto out;
        }
        int fd = open(manifest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f) {
            fprintf(stderr, "psadev provision: cannot write %s: %s\n", manifest, strerror(errno));
            if (fd >= 0)
                close(fd);
            goto out;
        }
        fchmod(fd, 0600);
        fprintf(f, "{\n  \"id\": \"%s\",\n  \"role\": \"%s\",\n  \"psk\": \"", id, role);
        hex(f, psk, sizeof(psk));
        fprintf(f, "\",\n  \"iak\": \"");
        hex(f, iak, sizeof(iak));
        fprintf(f, "\",\n  \"instance_id\": \"");
        hex(f, info.instance_id, sizeof(info.instance_id));
        fprintf(f, "\",\n  \"lifecycle\": \"0x%04x\",\n  \"refvals\": {\n"
                   "    \"implementation_ids\": [ { \"value\": \"", (unsigned)info.lifecycle);
        hex(f, implementation_id, sizeof(implementation_id));
        fprintf(f, "\", \"label\": \"psadev emulated platform\" } ],\n    \"measurements\": [\n");
        for (int i = 0; i < 2; i++) {
            fprintf(f, "      { \"type\": \"%s\", \"value\": \"", i ? "NSPE" : "SPE");
            hex(f, i ? meas_nspe : meas_spe, 32);
            fprintf(f, "\", \"signer_id\": \"");
            hex(f, signer, sizeof(signer));
            fprintf(f, "\", \"label\": \"psadev %s %s\" }%s\n", PSADEV_VERSION, i ? "NSPE" : "SPE",
                    i ? "" : ",");
        }
        fprintf(f, "    ]\n  }\n}\n");
        if (fclose(f) != 0) {
            fprintf(stderr, "psadev provision: cannot write %s\n", manifest);
            goto out;
        }
    }
    printf("provisioned %s (%s, lifecycle 0x%04x) in %s%s%s\n", id, role,
           (unsigned)info.lifecycle, state, manifest ? "; manifest " : "",
           manifest ? manifest : "");
    ret = 0;
out:
    mbedtls_platform_zeroize(psk, sizeof(psk));
    mbedtls_platform_zeroize(iak, sizeof(iak));
    mbedtls_platform_zeroize(group, sizeof(group));
    return ret;
}
