/*
 * psadev-fw: the host side of a firmware device (TF-M Profile Small on QEMU mps2-an521,
 * docs/firmware.md):
 *
 *   psadev-fw provision --nv FILE --id ID --role sensor|monitor [--lifecycle STATE]
 *                       [--group-key FILE] [--images DIR] [--manifest FILE]
 *       the factory step: a new device's secrets, drawn here, go into its factory record in the
 *       device's non-volatile memory file (never into an image); the manifest (0600) hands the
 *       gateway's registry its PSK, IAK, instance ID, lifecycle and the build's reference values
 *       in the shape `psagw device import` and `psagw refval import` read.
 *   psadev-fw refvals --images DIR
 *       the reference values of a firmware build as JSON (SW components measured by BL2, the
 *       implementation ID): what the build's images/refvals.json holds.
 *   psadev-fw run --nv FILE --images DIR --gateway HOST:PORT [--selftest]
 *       boots the device under QEMU and is its UART modem (modem_link.h): opens TCP connections
 *       to the gateway when the firmware asks, relays their bytes, tells it when they close,
 *       and prints the firmware's log lines. --selftest asks the firmware, once, for its
 *       isolation self-test (the PSK cannot be exported; a non-secure read of secure memory
 *       faults, and the secure side reports it after the reset). Stops (and stops QEMU) on
 *       SIGINT/SIGTERM, or when QEMU exits; the exit status says which.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/sha.h>

#include "modem_link.h"
#include "psagw_factory.h"
#include "psagw_key_ids.h"

#define PROG "psadev-fw"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " provision --nv FILE --id ID --role sensor|monitor [--lifecycle STATE]\n"
            "                         [--group-key FILE] [--images DIR] [--manifest FILE]\n"
            "       " PROG " refvals --images DIR\n"
            "       " PROG " run --nv FILE --images DIR --gateway HOST:PORT [--selftest]\n"
            "STATE: secured (default), non_psa_rot_debug, recoverable_psa_rot_debug,\n"
            "       psa_rot_provisioning\n");
}

static void hex(FILE *f, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", b[i]);
}

static int random_bytes(uint8_t *b, size_t n)
{
    while (n) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- reference values from a build's signed images ---------------------------------------- */

/* MCUboot's image format (bootutil/image.h): a header, the image, the protected TLVs (magic
 * 0x6908), the unprotected ones (magic 0x6907). IMAGE_TLV_SHA256 is the hash BL2 checks and
 * records as the measurement; IMAGE_TLV_BOOT_RECORD (protected) is the CBOR boot record
 * imgtool wrote (--measured-boot-record): SW type, version and signer ID, which TF-M puts in
 * the token's SW components claim with the measured value. */
#define IMAGE_MAGIC 0x96f3b83du
#define TLV_PROT_MAGIC 0x6908u
#define TLV_MAGIC 0x6907u
#define TLV_SHA256 0x10u
#define TLV_BOOT_RECORD 0x60u

struct sw_component {
    char type[32], version[32];
    uint8_t measurement[32], signer_id[64];
    size_t signer_len;
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* A minimal CBOR walk over the boot record map: {1..: tstr / bstr}. Only what the record
 * holds (definite lengths, small ints, text and byte strings). */
static int cbor_head(const uint8_t *p, size_t n, size_t *off, int *major, uint64_t *val)
{
    if (*off >= n)
        return -1;
    uint8_t b = p[(*off)++];
    *major = b >> 5;
    uint8_t ai = b & 31;
    if (ai < 24) {
        *val = ai;
        return 0;
    }
    int len = ai == 24 ? 1 : ai == 25 ? 2 : ai == 26 ? 4 : ai == 27 ? 8 : -1;
    if (len < 0 || *off + (size_t)len > n)
        return -1;
    *val = 0;
    for (int i = 0; i < len; i++)
        *val = *val << 8 | p[(*off)++];
    return 0;
}

static int parse_boot_record(const uint8_t *p, size_t n, struct sw_component *c)
{
    size_t off = 0;
    int major;
    uint64_t count, key, len;
    if (cbor_head(p, n, &off, &major, &count) != 0 || major != 5)
        return -1;
    for (uint64_t i = 0; i < count; i++) {
        if (cbor_head(p, n, &off, &major, &key) != 0 || major != 0)
            return -1;
        if (cbor_head(p, n, &off, &major, &len) != 0 || (major != 2 && major != 3) ||
            off + len > n)
            return -1;
        const uint8_t *v = p + off;
        off += len;
        if (key == 1 && major == 3 && len < sizeof(c->type)) { /* measurement type */
            memcpy(c->type, v, len);
            c->type[len] = '\0';
        } else if (key == 4 && major == 3 && len < sizeof(c->version)) {
            memcpy(c->version, v, len);
            c->version[len] = '\0';
        } else if (key == 5 && major == 2 && len <= sizeof(c->signer_id)) {
            memcpy(c->signer_id, v, len);
            c->signer_len = len;
        }
    }
    return c->type[0] && c->signer_len ? 0 : -1;
}

static int image_component(const uint8_t *img, size_t n, struct sw_component *c)
{
    memset(c, 0, sizeof(*c));
    if (n < 32 || le32(img) != IMAGE_MAGIC)
        return -1;
    size_t hdr = le16(img + 8), prot = le16(img + 10), size = le32(img + 12);
    size_t off = hdr + size;
    bool have_hash = false, have_record = false;
    for (int area = 0; area < 2; area++) {
        if (area == 0 && prot == 0)
            continue;
        if (off + 4 > n)
            return -1;
        uint16_t magic = le16(img + off), total = le16(img + off + 2);
        if (magic != (area ? TLV_MAGIC : TLV_PROT_MAGIC) || off + total > n)
            return -1;
        size_t end = off + total;
        off += 4;
        while (off + 4 <= end) {
            uint16_t type = le16(img + off), len = le16(img + off + 2);
            const uint8_t *v = img + off + 4;
            if (off + 4 + len > end)
                return -1;
            if (type == TLV_SHA256 && len == 32) {
                memcpy(c->measurement, v, 32);
                have_hash = true;
            } else if (type == TLV_BOOT_RECORD) {
                have_record = parse_boot_record(v, len, c) == 0;
            }
            off += 4 + (size_t)len;
        }
        off = end;
    }
    return have_hash && have_record ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* The firmware's implementation ID: SHA-256 of this text, a name for "psagw firmware on TF-M
 * v2.1.6 Profile Small, an521"; the factory writes it into every such device. */
static void implementation_id(uint8_t out[32])
{
    static const char name[] = "psagw firmware: TF-M v2.1.6 Profile Small, mps2-an521, v1";
    SHA256((const uint8_t *)name, sizeof(name) - 1, out);
}

/* Writes the refvals JSON object (the members `psagw refval import` reads) to f. */
static int write_refvals(FILE *f, const char *images, const char *indent)
{
    static const char *files[2] = {"tfm_s_signed.bin", "tfm_ns_signed.bin"};
    struct sw_component c[2];
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", images, files[i]);
        size_t n = 0;
        uint8_t *img = read_file(path, &n);
        if (!img) {
            fprintf(stderr, PROG ": cannot read %s: %s\n", path, strerror(errno));
            return -1;
        }
        int rc = image_component(img, n, &c[i]);
        free(img);
        if (rc != 0) {
            fprintf(stderr, PROG ": %s is not a signed MCUboot image with a boot record\n",
                    path);
            return -1;
        }
    }
    uint8_t impl[32];
    implementation_id(impl);
    fprintf(f, "{\n%s  \"implementation_ids\": [ { \"value\": \"", indent);
    hex(f, impl, sizeof(impl));
    fprintf(f, "\", \"label\": \"psagw firmware, TF-M Profile Small on an521\" } ],\n");
    fprintf(f, "%s  \"measurements\": [\n", indent);
    for (int i = 0; i < 2; i++) {
        fprintf(f, "%s    { \"type\": \"%s\", \"value\": \"", indent, c[i].type);
        hex(f, c[i].measurement, 32);
        fprintf(f, "\", \"signer_id\": \"");
        hex(f, c[i].signer_id, c[i].signer_len);
        fprintf(f, "\", \"label\": \"psagw firmware %s %s\" }%s\n", c[i].type, c[i].version,
                i ? "" : ",");
    }
    fprintf(f, "%s  ]\n%s}", indent, indent);
    return 0;
}

static int cmd_refvals(int argc, char **argv)
{
    const char *images = NULL;
    static const struct option opts[] = {{"images", required_argument, NULL, 'i'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'i')
            images = optarg;
        else {
            usage(o == 'h' ? stdout : stderr);
            return o == 'h' ? 0 : 2;
        }
    }
    if (!images) {
        usage(stderr);
        return 2;
    }
    if (write_refvals(stdout, images, "") != 0)
        return 1;
    printf("\n");
    return 0;
}

/* ---- the factory step -------------------------------------------------------------------- */

static int parse_lifecycle(const char *s, uint32_t *out)
{
    static const struct {
        const char *name;
        uint32_t v;
    } names[] = {{"secured", 0x3000},
                 {"non_psa_rot_debug", 0x4000},
                 {"recoverable_psa_rot_debug", 0x5000},
                 {"psa_rot_provisioning", 0x2000}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].v;
            return 0;
        }
    return -1;
}

static int read_key_file(const char *path, uint8_t *out, size_t want)
{
    size_t n = 0;
    uint8_t *b = read_file(path, &n);
    if (!b)
        return -1;
    int rc = -1;
    if (n == want) {
        memcpy(out, b, want);
        rc = 0;
    } else {
        while (n && (b[n - 1] == '\n' || b[n - 1] == '\r'))
            n--;
        if (n == 2 * want) {
            rc = 0;
            for (size_t i = 0; i < want && rc == 0; i++) {
                unsigned v;
                char two[3] = {(char)b[2 * i], (char)b[2 * i + 1], 0};
                if (sscanf(two, "%2x", &v) != 1)
                    rc = -1;
                out[i] = (uint8_t)v;
            }
        }
    }
    OPENSSL_cleanse(b, n);
    free(b);
    return rc;
}

/* The PSK the gateway registers: TF-M hands the non-secure caller of a DERIVE builtin key a key
 * derived for it, HKDF-SHA256(salt empty, IKM = the key, info = the caller's client id as
 * int32 little-endian) of the key's length (tfm_builtin_key_loader.c, psagw_key_ids.h). */
static int tls_psk(const uint8_t *secret, size_t n, uint8_t *out, size_t out_len)
{
    int32_t user = PSAGW_NS_CLIENT_ID;
    uint8_t info[4] = {(uint8_t)user, (uint8_t)(user >> 8), (uint8_t)(user >> 16),
                       (uint8_t)((uint32_t)user >> 24)};
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t len = out_len;
    int ok = ctx && EVP_PKEY_derive_init(ctx) > 0 &&
             EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set1_hkdf_key(ctx, secret, (int)n) > 0 &&
             EVP_PKEY_CTX_add1_hkdf_info(ctx, info, sizeof(info)) > 0 &&
             EVP_PKEY_derive(ctx, out, &len) > 0 && len == out_len;
    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : -1;
}

static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > PSAGW_DEVICE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~' || id[i] == '/' || id[i] == '+' || id[i] == '#' ||
            id[i] == '"' || id[i] == '\\')
            return 0;
    return 1;
}

static int cmd_provision(int argc, char **argv)
{
    const char *nv = NULL, *id = NULL, *role = NULL, *lifecycle = "secured", *group = NULL,
               *images = NULL, *manifest = NULL;
    static const struct option opts[] = {{"nv", required_argument, NULL, 'n'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"lifecycle", required_argument, NULL, 'l'},
                                         {"group-key", required_argument, NULL, 'g'},
                                         {"images", required_argument, NULL, 'I'},
                                         {"manifest", required_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'n': nv = optarg; break;
        case 'i': id = optarg; break;
        case 'r': role = optarg; break;
        case 'l': lifecycle = optarg; break;
        case 'g': group = optarg; break;
        case 'I': images = optarg; break;
        case 'm': manifest = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    struct psagw_factory_record r;
    memset(&r, 0, sizeof(r));
    if (!nv || !id || !role) {
        usage(stderr);
        return 2;
    }
    if (!valid_id(id)) {
        fprintf(stderr, PROG " provision: --id must be 1..%u printable characters without "
                        "spaces, quotes, '/', '+' or '#'\n", PSAGW_DEVICE_ID_MAX);
        return 2;
    }
    if (strcmp(role, "sensor") != 0 && strcmp(role, "monitor") != 0) {
        fprintf(stderr, PROG " provision: --role must be sensor or monitor\n");
        return 2;
    }
    if (parse_lifecycle(lifecycle, &r.lifecycle) != 0) {
        fprintf(stderr, PROG " provision: --lifecycle must be secured, non_psa_rot_debug, "
                        "recoverable_psa_rot_debug or psa_rot_provisioning\n");
        return 2;
    }
    if (manifest && !images) {
        fprintf(stderr, PROG " provision: --manifest needs --images (the build whose reference "
                        "values it carries)\n");
        return 2;
    }
    int fd = open(nv, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, PROG " provision: cannot open %s: %s\n", nv, strerror(errno));
        return 1;
    }
    struct stat st;
    uint32_t magic = 0;
    if (fstat(fd, &st) == 0 && st.st_size >= (off_t)PSAGW_FACTORY_OFFSET + 4 &&
        pread(fd, &magic, 4, PSAGW_FACTORY_OFFSET) == 4 && magic == PSAGW_FACTORY_MAGIC) {
        fprintf(stderr, PROG " provision: %s already holds a provisioned device\n", nv);
        close(fd);
        return 1;
    }
    int ret = 1;
    uint8_t psk[16];
    r.magic = PSAGW_FACTORY_MAGIC;
    r.version = PSAGW_FACTORY_VERSION;
    r.size = sizeof(r);
    r.role = strcmp(role, "sensor") == 0 ? PSAGW_ROLE_SENSOR : PSAGW_ROLE_MONITOR;
    snprintf(r.device_id, sizeof(r.device_id), "%s", id);
    implementation_id(r.implementation_id);
    if (random_bytes(r.huk, sizeof(r.huk)) != 0 || random_bytes(r.iak, sizeof(r.iak)) != 0 ||
        random_bytes(r.psk, sizeof(r.psk)) != 0 ||
        random_bytes(r.boot_seed, sizeof(r.boot_seed)) != 0 ||
        random_bytes(r.entropy_seed, sizeof(r.entropy_seed)) != 0) {
        fprintf(stderr, PROG " provision: no randomness: %s\n", strerror(errno));
        goto out;
    }
    if (group ? read_key_file(group, r.group_key, sizeof(r.group_key)) != 0
              : random_bytes(r.group_key, sizeof(r.group_key)) != 0) {
        fprintf(stderr, PROG " provision: %s must hold the 32-byte group key (raw or hex)\n",
                group);
        goto out;
    }
    r.crc32 = psagw_crc32(&r, offsetof(struct psagw_factory_record, crc32));
    if (tls_psk(r.psk, sizeof(r.psk), psk, sizeof(psk)) != 0) {
        fprintf(stderr, PROG " provision: cannot derive the TLS PSK\n");
        goto out;
    }

    /* A fresh device's memory: the storage areas erased (flash reads 0xFF), the record. */
    if (ftruncate(fd, PSAGW_NV_SIZE) != 0) {
        fprintf(stderr, PROG " provision: cannot size %s: %s\n", nv, strerror(errno));
        goto out;
    }
    static uint8_t erased[0x10000];
    memset(erased, 0xFF, sizeof(erased));
    for (uint32_t off = PSAGW_NV_FLASH_SPLIT; off < 0x00400000u; off += sizeof(erased))
        if (pwrite(fd, erased, sizeof(erased), off) != (ssize_t)sizeof(erased)) {
            fprintf(stderr, PROG " provision: cannot write %s: %s\n", nv, strerror(errno));
            goto out;
        }
    if (pwrite(fd, &r, sizeof(r), PSAGW_FACTORY_OFFSET) != (ssize_t)sizeof(r) || fsync(fd) != 0) {
        fprintf(stderr, PROG " provision: cannot write %s: %s\n", nv, strerror(errno));
        goto out;
    }

    if (manifest) {
        int mfd = open(manifest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        FILE *f = mfd >= 0 ? fdopen(mfd, "w") : NULL;
        if (!f) {
            fprintf(stderr, PROG " provision: cannot write %s: %s\n", manifest, strerror(errno));
            if (mfd >= 0)
                close(mfd);
            goto out;
        }
        fchmod(mfd, 0600);
        uint8_t h[32], instance[33];
        instance[0] = 0x01; /* instance ID = 0x01 || SHA-256(SHA-256(IAK)) (docs/attestation.md) */
        SHA256(r.iak, sizeof(r.iak), h);
        SHA256(h, sizeof(h), instance + 1);
        fprintf(f, "{\n  \"id\": \"%s\",\n  \"role\": \"%s\",\n  \"psk\": \"", id, role);
        hex(f, psk, sizeof(psk));
        fprintf(f, "\",\n  \"iak\": \"");
        hex(f, r.iak, sizeof(r.iak));
        fprintf(f, "\",\n  \"instance_id\": \"");
        hex(f, instance, sizeof(instance));
        fprintf(f, "\",\n  \"lifecycle\": \"0x%04x\",\n  \"refvals\": ", (unsigned)r.lifecycle);
        int rc = write_refvals(f, images, "  ");
        fprintf(f, "\n}\n");
        if (fclose(f) != 0 || rc != 0) {
            fprintf(stderr, PROG " provision: cannot write %s\n", manifest);
            unlink(manifest);
            goto out;
        }
    }
    printf("provisioned %s (%s, lifecycle 0x%04x) in %s%s%s\n", id, role, (unsigned)r.lifecycle,
           nv, manifest ? "; manifest " : "", manifest ? manifest : "");
    ret = 0;
out:
    OPENSSL_cleanse(&r, sizeof(r));
    OPENSSL_cleanse(psk, sizeof(psk));
    close(fd);
    return ret;
}

/* ---- the modem ---------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct modem {
    int uart;                 /* QEMU's UART0 chardev connection */
    uint8_t out[256 * 1024];  /* frames for the firmware, waiting for the UART to take them */
    size_t out_len;
    uint8_t frame[4 + 2 * MODEM_MAX_PAYLOAD]; /* decoding */
    size_t frame_len;
    bool esc, overflow;
    int tcp;                  /* the connection to the gateway, or -1 */
    bool connecting;
    uint8_t conn;             /* the firmware's number for it */
    const char *gw_host, *gw_port;
    char device[PSAGW_DEVICE_ID_MAX + 1];
    unsigned long opens, refusals, boots;
    bool selftest; /* still to ask for */
};

static void queue_byte(struct modem *m, uint8_t b)
{
    if (m->out_len < sizeof(m->out))
        m->out[m->out_len++] = b;
}

static void queue_escaped(struct modem *m, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == SLIP_END) {
            queue_byte(m, SLIP_ESC);
            queue_byte(m, SLIP_ESC_END);
        } else if (p[i] == SLIP_ESC) {
            queue_byte(m, SLIP_ESC);
            queue_byte(m, SLIP_ESC_ESC);
        } else {
            queue_byte(m, p[i]);
        }
    }
}

static void send_frame(struct modem *m, uint8_t type, uint8_t conn, const void *payload, size_t n)
{
    uint8_t head[2] = {type, conn};
    uint16_t crc = modem_crc16_update(modem_crc16(head, 2), payload, n);
    uint8_t tail[2] = {(uint8_t)(crc >> 8), (uint8_t)crc};
    queue_byte(m, SLIP_END);
    queue_escaped(m, head, 2);
    queue_escaped(m, payload, n);
    queue_escaped(m, tail, 2);
    queue_byte(m, SLIP_END);
}

static void tcp_close(struct modem *m)
{
    if (m->tcp >= 0)
        close(m->tcp);
    m->tcp = -1;
    m->connecting = false;
}

static void refuse(struct modem *m, const char *why)
{
    m->refusals++;
    tcp_close(m);
    send_frame(m, MODEM_REFUSED, m->conn, why, strlen(why));
}

static void tcp_open(struct modem *m)
{
    tcp_close(m);
    m->opens++;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(m->gw_host, m->gw_port, &hints, &ai);
    if (rc != 0) {
        refuse(m, gai_strerror(rc));
        return;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        refuse(m, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        refuse(m, strerror(errno));
        return;
    }
    m->tcp = fd;
    m->connecting = rc != 0;
    if (!m->connecting)
        send_frame(m, MODEM_OPENED, m->conn, NULL, 0);
}

static void handle_frame(struct modem *m)
{
    const uint8_t *f = m->frame;
    size_t n = m->frame_len;
    if (n < 4 || modem_crc16(f, n - 2) != (uint16_t)(f[n - 2] << 8 | f[n - 1]))
        return; /* a torn or corrupted frame (boot noise): dropped */
    uint8_t type = f[0], conn = f[1];
    const uint8_t *p = f + 2;
    size_t len = n - 4;
    switch (type) {
    case MODEM_HELLO: {
        const char *sp = memchr(p, ' ', len);
        size_t idl = sp ? len - (size_t)((const uint8_t *)sp + 1 - p) : 0;
        if (idl > PSAGW_DEVICE_ID_MAX)
            idl = PSAGW_DEVICE_ID_MAX;
        memcpy(m->device, sp ? sp + 1 : "", idl);
        m->device[idl] = '\0';
        m->boots++;
        printf("[modem] firmware up (boot %lu): %.*s\n", m->boots, (int)len, (const char *)p);
        if (m->selftest) {
            send_frame(m, MODEM_SELFTEST, 0, NULL, 0);
            m->selftest = false;
        }
        uint64_t t = wall_ms();
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(t >> (8 * i));
        send_frame(m, MODEM_TIME, 0, le, sizeof(le));
        break;
    }
    case MODEM_OPEN:
        m->conn = conn;
        tcp_open(m);
        break;
    case MODEM_SEND:
        if (conn != m->conn || m->tcp < 0 || m->connecting)
            break; /* stale, or the connection is gone: the firmware hears CLOSED */
        while (len > 0) {
            ssize_t w = send(m->tcp, p, len, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                struct pollfd pf = {m->tcp, POLLOUT, 0};
                if (poll(&pf, 1, 10000) > 0)
                    continue;
            }
            if (w <= 0) {
                const char *why = w < 0 ? strerror(errno) : "write failed";
                tcp_close(m);
                send_frame(m, MODEM_CLOSED, m->conn, why, strlen(why));
                break;
            }
            p += w;
            len -= (size_t)w;
        }
        break;
    case MODEM_CLOSE:
        if (conn == m->conn)
            tcp_close(m);
        break;
    case MODEM_LOG:
        printf("[%s] %.*s\n", m->device[0] ? m->device : "firmware", (int)len, (const char *)p);
        break;
    default:
        break;
    }
}

static void uart_input(struct modem *m, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
        if (c == SLIP_END) {
            if (m->frame_len && !m->overflow)
                handle_frame(m);
            m->frame_len = 0;
            m->esc = m->overflow = false;
        } else if (c == SLIP_ESC) {
            m->esc = true;
        } else {
            if (m->esc) {
                c = c == SLIP_ESC_END ? SLIP_END : c == SLIP_ESC_ESC ? SLIP_ESC : c;
                m->esc = false;
            }
            if (m->frame_len < sizeof(m->frame))
                m->frame[m->frame_len++] = c;
            else
                m->overflow = true;
        }
    }
}

/* Prints what QEMU says on stderr, but for the two lines every run has: mps2-an521 always has a
 * LAN9118 the firmware does not use ("nic lan9118.0 has no peer"), and the modem stops QEMU
 * with SIGTERM ("terminating on signal 15"). Returns 0 at the end of QEMU's stderr. */
static int qemu_messages(int fd)
{
    static char line[1024];
    static size_t len;
    ssize_t r;
    while ((r = read(fd, line + len, sizeof(line) - 1 - len)) > 0) {
        len += (size_t)r;
        char *nl;
        while ((nl = memchr(line, '\n', len)) != NULL || len == sizeof(line) - 1) {
            size_t l = nl ? (size_t)(nl - line) : len;
            line[l] = '\0';
            if (!strstr(line, "has no peer") && !strstr(line, "terminating on signal"))
                printf("[qemu] %s\n", line);
            size_t used = nl ? l + 1 : len;
            memmove(line, line + used, len - used);
            len -= used;
        }
    }
    return r == 0 ? 0 : 1;
}

static int split_host_port(const char *s, char *host, size_t hl, char *port, size_t pl)
{
    const char *c = strrchr(s, ':');
    if (!c || c == s || !c[1] || (size_t)(c - s) >= hl || strlen(c + 1) >= pl)
        return -1;
    memcpy(host, s, (size_t)(c - s));
    host[c - s] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    snprintf(port, pl, "%s", c + 1);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    const char *nv = NULL, *images = NULL, *gateway = NULL;
    bool want_selftest = false;
    static const struct option opts[] = {{"nv", required_argument, NULL, 'n'},
                                         {"images", required_argument, NULL, 'i'},
                                         {"gateway", required_argument, NULL, 'g'},
                                         {"selftest", no_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'n': nv = optarg; break;
        case 'i': images = optarg; break;
        case 'g': gateway = optarg; break;
        case 's': want_selftest = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    char host[256], port[32];
    if (!nv || !images || !gateway) {
        usage(stderr);
        return 2;
    }
    if (split_host_port(gateway, host, sizeof(host), port, sizeof(port)) != 0) {
        fprintf(stderr, PROG " run: --gateway must be HOST:PORT\n");
        return 2;
    }
    char bl2[4096], image[4096];
    snprintf(bl2, sizeof(bl2), "%s/bl2.axf", images);
    snprintf(image, sizeof(image), "%s/tfm_s_ns_signed.bin", images);
    if (access(bl2, R_OK) != 0 || access(image, R_OK) != 0) {
        fprintf(stderr, PROG " run: %s must hold bl2.axf and tfm_s_ns_signed.bin "
                        "(scripts/build-firmware.sh)\n", images);
        return 2;
    }
    /* TF-M does not boot without a factory record, and a Release build says nothing of it */
    struct stat st;
    uint32_t magic = 0;
    int nfd = open(nv, O_RDONLY | O_CLOEXEC);
    if (nfd < 0 || fstat(nfd, &st) != 0 || st.st_size != (off_t)PSAGW_NV_SIZE ||
        pread(nfd, &magic, sizeof(magic), PSAGW_FACTORY_OFFSET) != (ssize_t)sizeof(magic) ||
        magic != PSAGW_FACTORY_MAGIC) {
        fprintf(stderr, PROG " run: %s is not a provisioned device's memory (psadev-fw "
                        "provision makes one)\n", nv);
        if (nfd >= 0)
            close(nfd);
        return 2;
    }
    close(nfd);

    /* QEMU connects its UART0 to a socket of ours */
    char dir[] = "/tmp/psadev-fw.XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, PROG " run: %s\n", strerror(errno));
        return 1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/uart0", dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1) != 0) {
        fprintf(stderr, PROG " run: cannot listen on %s: %s\n", sa.sun_path, strerror(errno));
        return 1;
    }

    struct sigaction act = {.sa_handler = on_signal};
    sigaction(SIGINT, &act, NULL);
    sigaction(SIGTERM, &act, NULL);
    signal(SIGPIPE, SIG_IGN);

    char mem[4200], loader[4200], chardev[300];
    snprintf(mem, sizeof(mem), "memory-backend-file,id=nv,size=%u,mem-path=%s,share=on",
             (unsigned)PSAGW_NV_SIZE, nv);
    snprintf(loader, sizeof(loader), "loader,file=%s,addr=0x10080000,force-raw=on", image);
    snprintf(chardev, sizeof(chardev), "socket,id=modem,path=%s,reconnect=1", sa.sun_path);
    const char *qemu = getenv("QEMU") ? getenv("QEMU") : "qemu-system-arm";
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) {
        fprintf(stderr, PROG " run: pipe: %s\n", strerror(errno));
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(errpipe[1], 2); /* QEMU's messages pass through the modem (qemu_messages) */
        execlp(qemu, qemu, "-M", "mps2-an521", "-display", "none", "-monitor", "none",
               "-nodefaults", "-object", mem, "-machine", "memory-backend=nv", "-kernel", bl2,
               "-device", loader, "-nic", "none", "-chardev", chardev, "-serial",
               "chardev:modem", (char *)NULL);
        fprintf(stderr, PROG " run: cannot start %s: %s\n", qemu, strerror(errno));
        _exit(127);
    }
    if (pid < 0) {
        fprintf(stderr, PROG " run: fork: %s\n", strerror(errno));
        return 1;
    }
    close(errpipe[1]);
    int qerr = errpipe[0];
    fcntl(qerr, F_SETFL, O_NONBLOCK);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("[modem] QEMU pid %d, device memory %s, gateway %s:%s\n", (int)pid, nv, host, port);

    static struct modem m;
    m.uart = -1;
    m.tcp = -1;
    m.gw_host = host;
    m.gw_port = port;
    m.selftest = want_selftest;
    int ret = 0, status = 0;
    bool qemu_gone = false;
    while (!stop_signal) {
        int w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            qemu_gone = true;
            break;
        }
        struct pollfd pf[4];
        int n = 0, iu = -1, it = -1, iq = -1;
        pf[n] = (struct pollfd){lfd, POLLIN, 0};
        n++;
        if (qerr >= 0) {
            iq = n;
            pf[n++] = (struct pollfd){qerr, POLLIN, 0};
        }
        if (m.uart >= 0) {
            iu = n;
            pf[n++] = (struct pollfd){m.uart, (short)(POLLIN | (m.out_len ? POLLOUT : 0)), 0};
        }
        /* the gateway's bytes are read only while there is room to queue them */
        if (m.tcp >= 0 && (m.connecting || m.out_len + 2 * MODEM_RX_CHUNK + 16 < sizeof(m.out))) {
            it = n;
            pf[n++] = (struct pollfd){m.tcp, m.connecting ? POLLOUT : POLLIN, 0};
        }
        if (poll(pf, (nfds_t)n, 200) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (iq >= 0 && (pf[iq].revents & (POLLIN | POLLHUP)))
            if (qemu_messages(qerr) == 0) {
                close(qerr);
                qerr = -1;
            }
        if (pf[0].revents & POLLIN) {
            int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c >= 0) {
                if (m.uart >= 0)
                    close(m.uart);
                m.uart = c;
                m.out_len = m.frame_len = 0;
                tcp_close(&m);
            }
            continue;
        }
        if (iu >= 0 && (pf[iu].revents & (POLLIN | POLLHUP | POLLERR))) {
            uint8_t buf[4096];
            ssize_t r = read(m.uart, buf, sizeof(buf));
            if (r > 0) {
                uart_input(&m, buf, (size_t)r);
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(m.uart); /* QEMU went away or reconnects */
                m.uart = -1;
                tcp_close(&m);
                continue;
            }
        }
        if (iu >= 0 && m.uart >= 0 && (pf[iu].revents & POLLOUT) && m.out_len) {
            ssize_t r = write(m.uart, m.out, m.out_len);
            if (r > 0) {
                memmove(m.out, m.out + r, m.out_len - (size_t)r);
                m.out_len -= (size_t)r;
            }
        }
        if (it >= 0 && m.tcp >= 0 && pf[it].revents) {
            if (m.connecting) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(m.tcp, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    refuse(&m, strerror(err));
                } else {
                    m.connecting = false;
                    send_frame(&m, MODEM_OPENED, m.conn, NULL, 0);
                }
            } else {
                uint8_t buf[MODEM_RX_CHUNK];
                ssize_t r = recv(m.tcp, buf, sizeof(buf), 0);
                if (r > 0) {
                    send_frame(&m, MODEM_RECV, m.conn, buf, (size_t)r);
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    const char *why = r == 0 ? "closed by the gateway" : strerror(errno);
                    tcp_close(&m);
                    send_frame(&m, MODEM_CLOSED, m.conn, why, strlen(why));
                }
            }
        }
    }
    if (!qemu_gone) {
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
        printf("[modem] stopped (signal %d); device %s booted %lu times, made %lu connections, "
               "%lu refused\n", (int)stop_signal, m.device, m.boots, m.opens, m.refusals);
    } else {
        printf("[modem] QEMU exited (%s %d)\n", WIFEXITED(status) ? "status" : "signal",
               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        ret = 1;
    }
    tcp_close(&m);
    if (qerr >= 0) {
        qemu_messages(qerr);
        close(qerr);
    }
    if (m.uart >= 0)
        close(m.uart);
    close(lfd);
    unlink(sa.sun_path);
    rmdir(dir);
    return ret;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    argv[1] = argv[0];
    if (strcmp(cmd, "provision") == 0)
        return cmd_provision(argc - 1, argv + 1);
    if (strcmp(cmd, "refvals") == 0)
        return cmd_refvals(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, PROG ": unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
