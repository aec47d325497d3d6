/*
 * main.c: the `psagw` command: `serve` runs the daemon, `device ...` manages the registry.
 * Exit codes: 0 success, 1 the operation failed (the message says why), 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gateway.h"
#include "log.h"

static void usage(FILE *f)
{
    fprintf(f,
            "psagw %s: secure IoT gateway for TF-M Profile Small devices (TLS-PSK, MQTT)\n"
            "\n"
            "usage:\n"
            "  psagw serve [--config FILE] [--listen ADDR:PORT]... [--listen-plain ADDR:PORT]...\n"
            "              [--allow-anonymous] [--registry FILE]\n"
            "              [--attestation-default required|optional|off] [--log-level LEVEL]\n"
            "              [--workers N] [--http ADDR:PORT --http-token-file FILE]\n"
            "  psagw device add ID --role sensor|monitor|custom\n"
            "              [--psk HEX | --psk-file FILE | --generate-psk]\n"
            "              [--attestation required|optional|off|default]\n"
            "              [--iak HEX | --iak-file FILE] [--iat-profile auto|legacy|psa2]\n"
            "              [--acl-pub PATTERN]... [--acl-sub PATTERN]...\n"
            "  psagw device list | show ID | remove ID | revoke ID | unrevoke ID\n"
            "  psagw device set-iak ID --iak HEX | --iak-file FILE [--iat-profile P]\n"
            "  psagw device import FILE [--role R] [--attestation A]   (mosquitto psk_file)\n"
            "  psagw refval add --implementation HEX | --measurement HEX [--signer-id HEX]\n"
            "              [--type T] [--label TEXT]\n"
            "  psagw refval list [--json] | remove ID | import FILE.json\n"
            "  psagw iat verify --key-hex HEX|--key-file F --nonce HEX [--profile P]\n"
            "              [--lifecycle secured|secured+debug] [--refvals F] [--json] TOKEN\n"
            "  psagw iat show [--json] TOKEN\n"
            "  psagw iat create --key-hex HEX|--key-file F --nonce HEX --claims F.json\n"
            "              [--profile legacy|psa2] [--alg hmac256|hmac384|hmac512] [--hex]\n"
            "  psagw spool stats [--spool FILE | --config FILE] [--json]\n"
            "  psagw cloud check [--config FILE]\n"
            "  psagw status [--config FILE] [--http ADDR:PORT] [--token-file FILE] [--json]\n"
            "  psagw version\n"
            "\n"
            "Every device and refval subcommand takes --registry FILE and --config FILE; the registry is\n"
            "the one named by --registry, else by the config file (default %s),\n"
            "else %s.\n",
            PSAGW_VERSION, CONFIG_DEFAULT_PATH, CONFIG_DEFAULT_REGISTRY);
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"listen-plain", required_argument, NULL, 'p'},
        {"allow-anonymous", no_argument, NULL, 'a'},
        {"registry", required_argument, NULL, 'r'},
        {"attestation-default", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'v'},
        {"workers", required_argument, NULL, 'w'},
        {"http", required_argument, NULL, 'H'},
        {"http-token-file", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *registry = NULL, *policy = NULL, *level = NULL;
    const char *workers = NULL, *http = NULL, *http_token = NULL;
    const char *listen[CONFIG_MAX_LISTENERS], *plain[CONFIG_MAX_LISTENERS];
    size_t n_listen = 0, n_plain = 0;
    bool anonymous = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:l:p:ar:t:v:w:H:T:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
        case 'p':
            if (n_listen + n_plain >= CONFIG_MAX_LISTENERS) {
                fprintf(stderr, "psagw serve: at most %d listeners\n", CONFIG_MAX_LISTENERS);
                return 2;
            }
            if (o == 'l')
                listen[n_listen++] = optarg;
            else
                plain[n_plain++] = optarg;
            break;
        case 'a':
            anonymous = true;
            break;
        case 'r':
            registry = optarg;
            break;
        case 't':
            policy = optarg;
            break;
        case 'v':
            level = optarg;
            break;
        case 'w':
            workers = optarg;
            break;
        case 'H':
            http = optarg;
            break;
        case 'T':
            http_token = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "psagw serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    struct config cfg;
    config_defaults(&cfg);
    char err[1024];
    if (config_path && config_load(&cfg, config_path, err, sizeof(err)) != 0) {
        fprintf(stderr, "psagw serve: %s\n", err);
        return 1;
    }
    /* flags override the file; listeners given on the command line replace the file's */
    if (n_listen + n_plain > 0)
        cfg.n_listeners = 0;
    for (size_t i = 0; i < n_listen; i++)
        if (config_add_listener(&cfg, listen[i], LISTENER_TLS_PSK, err, sizeof(err)) != 0)
            goto bad;
    for (size_t i = 0; i < n_plain; i++)
        if (config_add_listener(&cfg, plain[i], LISTENER_PLAIN, err, sizeof(err)) != 0)
            goto bad;
    if (anonymous) {
        cfg.allow_anonymous = true;
        cfg.from_flags |= CONFIG_FLAG_ALLOW_ANONYMOUS;
    }
    if (registry)
        snprintf(cfg.registry, sizeof(cfg.registry), "%s", registry);
    if (policy) {
        int p = device_policy_parse(policy);
        if (p <= ATTEST_DEFAULT) {
            snprintf(err, sizeof(err),
                     "--attestation-default must be required, optional or off, not '%s'", policy);
            goto bad;
        }
        cfg.attestation_default = (enum attest_policy)p;
        cfg.from_flags |= CONFIG_FLAG_ATTESTATION_DEFAULT;
    }
    if (level) {
        int lv = log_level_parse(level);
        if (lv < 0) {
            snprintf(err, sizeof(err), "--log-level must be debug, info, warn or error");
            goto bad;
        }
        cfg.log_level = lv;
        cfg.from_flags |= CONFIG_FLAG_LOG_LEVEL;
    }
    if (workers) {
        char *end;
        long n = strtol(workers, &end, 10);
        if (*end || n < 0 || n > 256) {
            snprintf(err, sizeof(err), "--workers must be 0..256 (0: one per CPU)");
            goto bad;
        }
        cfg.workers = (uint32_t)n;
    }
    if (http)
        snprintf(cfg.http_listen, sizeof(cfg.http_listen), "%s", http);
    if (http_token)
        snprintf(cfg.http_token_file, sizeof(cfg.http_token_file), "%s", http_token);
    if (config_finish(&cfg, err, sizeof(err)) != 0)
        goto bad;

    struct gateway *gw = calloc(1, sizeof(*gw));
    if (!gw || gateway_init(gw, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "psagw serve: %s\n", gw ? err : "out of memory");
        log_event(LOG_ERROR, "start_failed", "detail=\"%s\"", gw ? err : "out of memory");
        if (gw)
            gateway_free(gw);
        free(gw);
        return 1;
    }
    int rc = gateway_run(gw);
    gateway_free(gw);
    free(gw);
    return rc == 0 ? 0 : 1;
bad:
    fprintf(stderr, "psagw serve: %s\n", err);
    config_free(&cfg);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "refval") == 0)
        return cmd_refval(argc - 1, argv + 1);
    if (strcmp(cmd, "iat") == 0)
        return cmd_iat(argc - 1, argv + 1);
    if (strcmp(cmd, "spool") == 0)
        return cmd_spool(argc - 1, argv + 1);
    if (strcmp(cmd, "cloud") == 0)
        return cmd_cloud(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(cmd, "device") == 0)
        return cmd_device(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("psagw %s\n", PSAGW_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "psagw: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
