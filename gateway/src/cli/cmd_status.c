/*
 * cmd_status.c: `psagw status [--config FILE] [--http ADDR:PORT] [--token-file FILE] [--json]`:
 * asks the running daemon, over its HTTP endpoint (docs/observability.md), how it is doing and
 * prints a summary for a person (or, with --json, what the endpoint said). The address and the
 * token come from the configuration's http group unless given.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "http.h"

#define REPLY_MAX (8u << 20)

/* GET path with the token; the body of a 2xx/503 reply in *body (malloc'd), the status
 * returned; -1 (with a message) when the daemon cannot be reached. */
static int http_get(const char *addr, const char *token, const char *path, char **body)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    char err[256];
    if (http_parse_address(addr, &ss, &sl, err, sizeof(err)) != 0) {
        fprintf(stderr, "psagw status: %s\n", err);
        return -1;
    }
    if ((ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                 : ((struct sockaddr_in6 *)&ss)->sin6_port) == 0) {
        fprintf(stderr, "psagw status: http address '%s' has no fixed port (give --http)\n",
                addr);
        return -1;
    }
    if (ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_addr.s_addr == INADDR_ANY)
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 0.0.0.0 */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {5, 0};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        fprintf(stderr, "psagw status: cannot reach the daemon's HTTP endpoint at %s: %s (is "
                "it running, with an http group?)\n", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     "Connection: close\r\n\r\n", path, addr, token);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        fprintf(stderr, "psagw status: %s: %s\n", addr, strerror(errno));
        return -1;
    }
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap + 1);
    ssize_t k;
    while (buf && (k = read(fd, buf + len, cap - len)) > 0) {
        len += (size_t)k;
        if (len == cap) {
            char *nb = cap < REPLY_MAX ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    if (!buf)
        return -1;
    buf[len] = '\0';
    int status = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !sep) {
        fprintf(stderr, "psagw status: %s answered something that is not HTTP\n", addr);
        free(buf);
        return -1;
    }
    memmove(buf, sep + 4, len - (size_t)(sep + 4 - buf) + 1);
    *body = buf;
    return status;
}

static json_t *get_json(const char *addr, const char *token, const char *path, int *status)
{
    char *body = NULL;
    *status = http_get(addr, token, path, &body);
    if (*status < 0)
        return NULL;
    if (*status == 401) {
        fprintf(stderr, "psagw status: the daemon refused the token (401): is it the one in "
                "http.token_file?\n");
        free(body);
        return NULL;
    }
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    if (!j)
        fprintf(stderr, "psagw status: %s: not JSON (HTTP %d)\n", path, *status);
    return j;
}

static long long num(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "?";
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"http", required_argument, NULL, 'H'},
        {"token-file", required_argument, NULL, 'T'}, {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *http = NULL, *token_file = NULL;
    bool as_json = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:H:T:j", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config_path = optarg; break;
        case 'H': http = optarg; break;
        case 'T': token_file = optarg; break;
        case 'j': as_json = true; break;
        default:
            fprintf(stderr, "usage: psagw status [--config FILE] [--http ADDR:PORT] "
                            "[--token-file FILE] [--json]\n");
            return 2;
        }
    }
    struct config cfg;
    config_defaults(&cfg);
    if (!config_path && access(CONFIG_DEFAULT_PATH, R_OK) == 0)
        config_path = CONFIG_DEFAULT_PATH;
    char err[1024];
    if (config_path && config_load(&cfg, config_path, err, sizeof(err)) != 0) {
        fprintf(stderr, "psagw status: %s\n", err);
        return 1;
    }
    if (!http)
        http = cfg.http_listen;
    if (!token_file)
        token_file = cfg.http_token_file;
    if (!http[0] || !token_file[0]) {
        fprintf(stderr, "psagw status: the daemon's HTTP endpoint is not configured (an http "
                "group with listen and token_file, or --http and --token-file)\n");
        config_free(&cfg);
        return 1;
    }
    char token[300] = "";
    FILE *f = fopen(token_file, "r");
    if (!f || !fgets(token, sizeof(token), f)) {
        fprintf(stderr, "psagw status: token file %s: %s\n", token_file,
                f ? "empty" : strerror(errno));
        if (f)
            fclose(f);
        config_free(&cfg);
        return 1;
    }
    fclose(f);
    token[strcspn(token, "\r\n")] = '\0';
    char addr[128];
    snprintf(addr, sizeof(addr), "%s", http);
    config_free(&cfg);

    int st_ready, st_dev, st_ver, st_spool;
    json_t *ready = get_json(addr, token, "/readyz", &st_ready);
    if (!ready)
        return 1;
    json_t *devices = get_json(addr, token, "/api/devices?limit=500", &st_dev);
    json_t *verdicts = get_json(addr, token, "/api/verdicts", &st_ver);
    json_t *spool = get_json(addr, token, "/api/spool", &st_spool);
    char *health = NULL;
    int st_health = http_get(addr, token, "/healthz", &health);
    json_t *healthz = st_health == 200 ? json_loads(health, 0, NULL) : NULL;
    free(health);
    int rc = json_is_true(json_object_get(ready, "ready")) ? 0 : 3;
    if (as_json) {
        json_t *all = json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?}", "health", healthz, "ready", ready,
                                "devices", devices, "verdicts", verdicts, "spool", spool);
        char *text = all ? json_dumps(all, JSON_INDENT(2)) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(all);
    } else {
        long long up = num(healthz, "uptime_s");
        printf("psagw %s at %s: %s (listening %s, registry %s, spool %s, cloud %s), up %lldh "
               "%02lldm\n",
               str(healthz, "version"), addr, rc == 0 ? "READY" : "NOT READY",
               json_is_true(json_object_get(ready, "listening")) ? "yes" : "no",
               str(ready, "registry"), str(ready, "spool"), str(ready, "cloud"), up / 3600,
               up / 60 % 60);
        size_t i;
        json_t *d;
        long long connected = 0, attested = 0, revoked = 0;
        json_array_foreach(json_object_get(devices, "devices"), i, d)
        {
            json_t *live = json_object_get(d, "live");
            connected += json_is_true(json_object_get(live, "connected"));
            attested += json_is_true(json_object_get(live, "attested"));
            revoked += json_is_true(json_object_get(d, "revoked"));
        }
        printf("devices: %lld registered, %lld connected, %lld of them attested, %lld revoked\n",
               num(devices, "total"), connected, attested, revoked);
        json_t *sp = json_object_get(spool, "spool"), *ul = json_object_get(spool, "uplink");
        if (sp)
            printf("spool: %lld records, %lld bytes (%s)\n", num(sp, "records"),
                   num(sp, "bytes"), str(sp, "state"));
        if (ul)
            printf("cloud: %s:%lld as %s, %s; %lld acknowledged, %lld in flight, %lld "
                   "failures\n",
                   str(ul, "host"), num(ul, "port"), str(ul, "client_id"),
                   json_is_true(json_object_get(ul, "connected")) ? "connected" : "DISCONNECTED",
                   num(ul, "acked"), num(ul, "inflight"), num(ul, "failures"));
        else
            printf("cloud: not configured\n");
        long long acc = 0, ref = 0;
        json_t *v;
        json_array_foreach(json_object_get(verdicts, "verdicts"), i, v)
        {
            if (strcmp(str(v, "verdict"), "accepted") == 0)
                acc++;
            else
                ref++;
        }
        printf("attestation (latest %zu verdicts): %lld accepted, %lld refused\n",
               json_array_size(json_object_get(verdicts, "verdicts")), acc, ref);
        int shown = 0;
        json_array_foreach(json_object_get(verdicts, "verdicts"), i, v)
        {
            if (strcmp(str(v, "verdict"), "refused") != 0 || shown >= 5)
                continue;
            time_t at = (time_t)(num(v, "at_ms") / 1000);
            struct tm tm;
            char when[32];
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&at, &tm));
            printf("  refused %s %s: %s (%s)\n", when, str(v, "device"), str(v, "result"),
                   str(v, "reason"));
            shown++;
        }
    }
    json_decref(ready);
    json_decref(devices);
    json_decref(verdicts);
    json_decref(spool);
    json_decref(healthz);
    return rc;
}
