/*
 * psadev.c: one emulated TF-M Profile Small device; this process is its NSPE.
 *
 *   psadev provision --id ID --role sensor|monitor --state DIR [--lifecycle STATE]
 *                    [--group-key-file F] [--manifest OUT.json]
 *   psadev connect --state DIR --gateway HOST:PORT [--no-attest] [--publish TOPIC MESSAGE]
 *                  [--suite ccm|ccm8] [--profile legacy|psa2] [--hold-ms N] [--stats]
 *       connects, attests, optionally publishes one message (QoS 1), stays --hold-ms, leaves.
 *   psadev sensor --state DIR --gateway HOST:PORT [--interval MS] [--qos 0|1] [--count N]
 *                 [--integrity-only] [--readings FILE]
 *       connects, attests, and publishes a protected reading (sealed by the SPE's sensor
 *       partition; from FILE's "temperature_c humidity_pct" lines, looped, if given) on
 *       sensors/<id>/env every interval; obeys cmd/<id>/interval (payload: the
 *       new interval in ms); reconnects with jittered exponential backoff.
 *   psadev monitor --state DIR --gateway HOST:PORT [--count N]
 *       connects, attests, subscribes to sensors/#, has its SPE open each record (refusing
 *       replays) and prints one line per reading.
 *   psadev selftest --state DIR
 *       checks from the NSPE side that the SPE keeps its secrets: the PSK cannot be exported,
 *       the IAK and the group key cannot even be named, no persistent key can be created.
 *
 * Each run starts the device's SPE (psadev-spe, next to this binary) as a separate process
 * joined by a socketpair; every psa_* call of this process, the TLS stack's included, goes
 * there. The NSPE learns its id from DIR/nspe.conf (written at provisioning, not secret).
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../platform/ipc.h"
#include "../platform/sensor_ipc.h"
#include "mbedtls/platform.h"

#include "app.h"
#include "nspe.h"

static pid_t spe_pid = -1;

/* Mbed TLS's heap, counted: the peak is what one TLS session needs (docs/footprint.md). */
static size_t heap_now, heap_peak;

static void *counting_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    size_t *p = calloc(1, n * size + sizeof(size_t));
    if (!p)
        return NULL;
    p[0] = n * size;
    heap_now += n * size;
    if (heap_now > heap_peak)
        heap_peak = heap_now;
    return p + 1;
}

static void counting_free(void *ptr)
{
    if (!ptr)
        return;
    size_t *p = (size_t *)ptr - 1;
    heap_now -= p[0];
    free(p);
}

static void spe_path(char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(out, cap, "%s/psadev-spe", dirname(self));
}

/* Starts the SPE for DIR and binds the PSA client to it. */
static const char *spe_readings; /* the sensor's readings file, if any (psadev sensor) */

static int start_spe(const char *state, const char *profile)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    char exe[PATH_MAX + 16];
    spe_path(exe, sizeof(exe));
    spe_pid = fork();
    if (spe_pid < 0)
        return -1;
    if (spe_pid == 0) {
        close(sv[0]);
        int fd = dup(sv[1]); /* without CLOEXEC, for the SPE */
        char fdstr[16];
        snprintf(fdstr, sizeof(fdstr), "%d", fd);
        if (spe_readings)
            execl(exe, exe, "serve", "--state", state, "--fd", fdstr, "--profile",
                  profile ? profile : "legacy", "--readings", spe_readings, (char *)NULL);
        else
            execl(exe, exe, "serve", "--state", state, "--fd", fdstr, "--profile",
                  profile ? profile : "legacy", (char *)NULL);
        fprintf(stderr, "psadev: cannot start %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    close(sv[1]);
    psa_client_bind(sv[0]);
    psa_status_t st = psa_crypto_init();
    if (st != PSA_SUCCESS) {
        fprintf(stderr, "psadev: the SPE did not start (PSA error %d)\n", (int)st);
        return -1;
    }
    return 0;
}

static void stop_spe(void)
{
    if (spe_pid > 0) {
        close(psa_client_fd()); /* the SPE exits when its channel closes */
        waitpid(spe_pid, NULL, 0);
        spe_pid = -1;
    }
}

static int read_id(const char *state, char *id, size_t cap)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/nspe.conf", state);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    int rc = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "id=", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            size_t n = strlen(line + 3);
            if (n > 0 && n < cap) {
                memcpy(id, line + 3, n + 1);
                rc = 0;
            }
        }
    }
    fclose(f);
    return rc;
}

static int split_hostport(const char *hp, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp || !colon[1] || (size_t)(colon - hp) >= hcap)
        return -1;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    snprintf(port, pcap, "%s", colon + 1);
    return 0;
}

static int cmd_provision(int argc, char **argv)
{
    char exe[PATH_MAX + 16], self[PATH_MAX];
    spe_path(exe, sizeof(exe));
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    const char *state = NULL, *id = NULL, *role = NULL;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--state") == 0)
            state = argv[i + 1];
        else if (strcmp(argv[i], "--id") == 0)
            id = argv[i + 1];
        else if (strcmp(argv[i], "--role") == 0)
            role = argv[i + 1];
    }
    /* the factory step runs in the SPE image; the NSPE image is measured for the manifest */
    char *args[32];
    int k = 0;
    args[k++] = exe;
    args[k++] = "provision";
    for (int i = 1; i < argc && k < 28; i++)
        args[k++] = argv[i];
    args[k++] = "--nspe";
    args[k++] = self;
    args[k] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        execv(exe, args);
        fprintf(stderr, "psadev: cannot start %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    int status = 1;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    /* the NSPE's own, non-secret configuration: who it is */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/nspe.conf", state);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "psadev provision: cannot write %s\n", path);
        return 1;
    }
    fprintf(f, "id=%s\nrole=%s\n", id, role);
    fclose(f);
    return 0;
}

static int cmd_connect(int argc, char **argv)
{
    static const struct option opts[] = {{"state", 1, NULL, 's'},   {"gateway", 1, NULL, 'g'},
                                         {"no-attest", 0, NULL, 'n'}, {"publish", 1, NULL, 'p'},
                                         {"profile", 1, NULL, 'P'}, {"suite", 1, NULL, 'S'},
                                         {"hold-ms", 1, NULL, 'h'}, {"stats", 0, NULL, 'T'},
                                         {NULL, 0, NULL, 0}};
    const char *state = NULL, *gateway = NULL, *topic = NULL, *message = NULL, *profile = NULL;
    const char *suite = NULL;
    long hold_ms = 0;
    bool stats = false;
    bool attest = true;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'g': gateway = optarg; break;
        case 'n': attest = false; break;
        case 'P': profile = optarg; break;
        case 'S':
            if (strcmp(optarg, "ccm") != 0 && strcmp(optarg, "ccm8") != 0)
                return 2;
            suite = optarg;
            break;
        case 'h': hold_ms = atol(optarg); break;
        case 'T': stats = true; break;
        case 'p':
            if (optind >= argc)
                return 2;
            topic = optarg;
            message = argv[optind++];
            break;
        default: return 2;
        }
    }
    char host[256], port[16];
    struct mqtt_client m = {0};
    if (!state || !gateway || split_hostport(gateway, host, sizeof(host), port, sizeof(port))) {
        fprintf(stderr, "psadev connect: --state DIR --gateway HOST:PORT are required\n");
        return 2;
    }
    if (read_id(state, m.id, sizeof(m.id)) != 0) {
        fprintf(stderr, "psadev: %s/nspe.conf missing: provision the device first\n", state);
        return 1;
    }
    if (start_spe(state, profile) != 0)
        return 1;
    char err[256];
    int ret = 1;
    m.tls = tls_connect(host, port, m.id, suite, err, sizeof(err));
    if (!m.tls) {
        fprintf(stderr, "psadev: %s\n", err);
        goto out;
    }
    printf("tls id=%s cipher=%s\n", m.id, tls_cipher(m.tls));
    if (mqtt_client_connect(&m, attest, 60) != 0) {
        printf("refused connack=0x%02x reason=\"%s\"\n", m.connack_reason, m.reason_string);
        goto out;
    }
    printf("connected attested=%d\n", m.attested);
    if (topic) {
        if (mqtt_client_publish(&m, topic, (const uint8_t *)message, strlen(message), 1) != 0) {
            printf("publish refused reason=\"%s\"\n", m.reason_string);
            goto out;
        }
        printf("published topic=%s\n", topic);
    }
    if (hold_ms > 0) {
        printf("holding pid=%d\n", (int)getpid());
        const uint8_t *t, *pl;
        size_t tl, pll;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            long used = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
            if (used >= hold_ms)
                break;
            int type = mqtt_client_poll(&m, (int)(hold_ms - used), &t, &tl, &pl, &pll);
            if (type < 0 || type == 14 /* DISCONNECT */) {
                printf("disconnected reason=\"%s\"\n", m.reason_string);
                goto out;
            }
        }
    }
    mqtt_client_disconnect(&m);
    ret = 0;
out:
    tls_close(m.tls);
    stop_spe();
    if (stats)
        printf("stats heap_peak_bytes=%zu heap_at_exit=%zu mqtt_client_bytes=%zu\n", heap_peak,
               heap_now, sizeof(m));
    return ret;
}

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}


struct app_opts {
    const char *state, *gateway, *profile;
    struct app_cfg app;
};

static int app_opts_parse(int argc, char **argv, struct app_opts *o)
{
    static const struct option opts[] = {
        {"state", 1, NULL, 's'},     {"gateway", 1, NULL, 'g'}, {"interval", 1, NULL, 'i'},
        {"qos", 1, NULL, 'q'},       {"count", 1, NULL, 'c'},   {"integrity-only", 0, NULL, 'm'},
        {"profile", 1, NULL, 'P'},   {"readings", 1, NULL, 'R'}, {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof(*o));
    o->app.interval_ms = 1000;
    o->app.qos = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': o->state = optarg; break;
        case 'g': o->gateway = optarg; break;
        case 'i': o->app.interval_ms = atol(optarg); break;
        case 'q': o->app.qos = atoi(optarg); break;
        case 'c': o->app.count = atol(optarg); break;
        case 'm': o->app.integrity_only = true; break;
        case 'P': o->profile = optarg; break;
        case 'R': spe_readings = optarg; break;
        default: return -1;
        }
    }
    if (!o->state || !o->gateway ||
        split_hostport(o->gateway, o->app.host, sizeof(o->app.host), o->app.port,
                       sizeof(o->app.port)) != 0 ||
        o->app.interval_ms < 10 || (o->app.qos != 0 && o->app.qos != 1))
        return -1;
    return 0;
}

static int cmd_app(int argc, char **argv, bool sensor)
{
    struct app_opts o;
    struct mqtt_client m = {0};
    if (app_opts_parse(argc, argv, &o) != 0) {
        fprintf(stderr, sensor ? "psadev sensor: --state DIR --gateway HOST:PORT [--interval MS] "
                                 "[--qos 0|1] [--count N] [--integrity-only] [--readings FILE]\n"
                               : "psadev monitor: --state DIR --gateway HOST:PORT [--count N]\n");
        return 2;
    }
    if (read_id(o.state, m.id, sizeof(m.id)) != 0) {
        fprintf(stderr, "psadev: %s/nspe.conf missing: provision the device first\n", o.state);
        return 1;
    }
    if (start_spe(o.state, o.profile) != 0)
        return 1;
    int rc = sensor ? app_sensor_run(&o.app, &m, &stopping) : app_monitor_run(&o.app, &m, &stopping);
    stop_spe();
    return rc;
}

static int cmd_selftest(int argc, char **argv)
{
    const char *state = argc >= 3 && strcmp(argv[1], "--state") == 0 ? argv[2] : NULL;
    if (!state) {
        fprintf(stderr, "psadev selftest: --state DIR is required\n");
        return 2;
    }
    if (start_spe(state, NULL) != 0)
        return 1;
    int bad = 0;
    uint8_t buf[64], mac[32];
    size_t n = 0;
    psa_status_t st = psa_export_key(NSPE_PSK_KEY_ID, buf, sizeof(buf), &n);
    printf("export PSK: %s (%d)\n", st == PSA_SUCCESS ? "EXPORTED" : "refused", (int)st);
    bad += st == PSA_SUCCESS;
    psa_key_attributes_t a = psa_key_attributes_init();
    st = psa_get_key_attributes(NSPE_PSK_KEY_ID, &a);
    printf("PSK attributes: %s usage=0x%x\n", st == PSA_SUCCESS ? "visible" : "missing",
           (unsigned)psa_get_key_usage_flags(&a));
    bad += st != PSA_SUCCESS || (psa_get_key_usage_flags(&a) & PSA_KEY_USAGE_EXPORT);
    static const struct {
        const char *name;
        uint32_t id;
    } others[] = {{"IAK", 0x5002u}, {"group key", 0x5003u}};
    for (size_t i = 0; i < 2; i++) {
        st = psa_mac_compute(others[i].id, PSA_ALG_HMAC(PSA_ALG_SHA_256), buf, 16, mac,
                             sizeof(mac), &n);
        printf("use %s: %s (%d)\n", others[i].name, st == PSA_SUCCESS ? "USED" : "refused",
               (int)st);
        bad += st == PSA_SUCCESS;
        st = psa_export_key(others[i].id, buf, sizeof(buf), &n);
        printf("export %s: %s (%d)\n", others[i].name, st == PSA_SUCCESS ? "EXPORTED" : "refused",
               (int)st);
        bad += st == PSA_SUCCESS;
    }
    psa_set_key_lifetime(&a, PSA_KEY_LIFETIME_PERSISTENT);
    psa_set_key_id(&a, 0x5009u);
    psa_set_key_type(&a, PSA_KEY_TYPE_RAW_DATA);
    psa_set_key_usage_flags(&a, PSA_KEY_USAGE_EXPORT);
    psa_set_key_algorithm(&a, 0);
    mbedtls_svc_key_id_t k;
    st = psa_import_key(&a, buf, 16, &k);
    printf("create persistent key: %s (%d)\n", st == PSA_SUCCESS ? "CREATED" : "refused", (int)st);
    bad += st == PSA_SUCCESS;
    stop_spe();
    printf("%s\n", bad ? "selftest FAILED" : "selftest passed");
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    mbedtls_platform_set_calloc_free(counting_calloc, counting_free);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: psadev provision|connect|sensor|monitor|selftest ... (see device/nspe/psadev.c)\n");
        return 2;
    }
    if (strcmp(argv[1], "provision") == 0)
        return cmd_provision(argc - 1, argv + 1);
    if (strcmp(argv[1], "connect") == 0)
        return cmd_connect(argc - 1, argv + 1);
    if (strcmp(argv[1], "selftest") == 0)
        return cmd_selftest(argc - 1, argv + 1);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (strcmp(argv[1], "sensor") == 0)
        return cmd_app(argc - 1, argv + 1, true);
    if (strcmp(argv[1], "monitor") == 0)
        return cmd_app(argc - 1, argv + 1, false);
    fprintf(stderr, "psadev: unknown command '%s'\n", argv[1]);
    return 2;
}
