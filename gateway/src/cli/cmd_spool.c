/*
 * cmd_spool.c: `psagw spool stats` (what the durable spool holds, read from its file while the
 * daemon runs: SQLite WAL lets a reader in beside the writer) and `psagw cloud check` (the
 * cloud config checked as the uplink would: templates against AWS IoT's limits, certificate
 * files, key matching certificate; nothing is sent).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "config.h"
#include "spool.h"
#include "uplink.h"

/* The config named by --config, else the default file if it exists, else the defaults. */
static int load_config(const char *path, struct config *cfg, const char *who)
{
    config_defaults(cfg);
    if (!path && access(CONFIG_DEFAULT_PATH, R_OK) == 0)
        path = CONFIG_DEFAULT_PATH;
    if (!path)
        return 0;
    char err[1024];
    if (config_load(cfg, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", who, err);
        return -1;
    }
    return 0;
}

/* The uplink's status file (<spool>.uplink, written by the daemon every few seconds), or NULL. */
static json_t *uplink_status(const char *spool)
{
    char path[1100];
    snprintf(path, sizeof(path), "%s.uplink", spool);
    return json_load_file(path, 0, NULL);
}

static void print_uplink(const json_t *u, int64_t now)
{
    const char *state = json_string_value(json_object_get(u, "state"));
    const char *host = json_string_value(json_object_get(u, "host"));
    const char *err = json_string_value(json_object_get(u, "last_error"));
    json_int_t port = json_integer_value(json_object_get(u, "port"));
    json_int_t since = json_integer_value(json_object_get(u, "since_ms"));
    json_int_t updated = json_integer_value(json_object_get(u, "updated_ms"));
    printf("uplink:      %s (%s:%lld) for %.0f s\n", state ? state : "?", host ? host : "?",
           (long long)port, since ? (double)(now - since) / 1000.0 : 0.0);
    if (err && *err)
        printf("last error:  %s\n", err);
    printf("sent:        %lld acknowledged by the cloud, %lld in flight, %lld refused by it\n",
           (long long)json_integer_value(json_object_get(u, "acked")),
           (long long)json_integer_value(json_object_get(u, "inflight")),
           (long long)json_integer_value(json_object_get(u, "rejected")));
    double age = (double)(now - updated) / 1000.0;
    if (age > 15 && strcmp(state ? state : "", "stopped") != 0)
        printf("note:        this status is %.0f s old: is the daemon running?\n", age);
}

static int spool_stats_cmd(int argc, char **argv)
{
    static const struct option opts[] = {{"spool", required_argument, NULL, 's'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"json", no_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    const char *spool = NULL, *config = NULL;
    bool json = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "s:c:j", opts, NULL)) != -1) {
        switch (o) {
        case 's':
            spool = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'j':
            json = true;
            break;
        default:
            fprintf(stderr, "usage: psagw spool stats [--spool FILE | --config FILE] [--json]\n");
            return 2;
        }
    }
    struct config cfg;
    if (load_config(config, &cfg, "psagw spool stats") != 0) {
        config_free(&cfg);
        return 1;
    }
    char path[1024];
    snprintf(path, sizeof(path), "%s", spool ? spool : cfg.cloud.spool);
    config_free(&cfg);
    struct spool_stats st;
    char err[1024];
    if (spool_file_stats(path, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "psagw spool stats: %s\n", err);
        return 1;
    }
    int64_t now = (int64_t)clock_wall_ms();
    double age = st.oldest_ms ? (double)(now - st.oldest_ms) / 1000.0 : 0.0;
    json_t *up = uplink_status(path);
    uint64_t free_bytes = 0, resume_at = 0;
    bool room_known = spool_disk_room(path, &free_bytes, &resume_at) == 0;
    /* the daemon's word (its status file, which it cannot rewrite on a full disk); a disk with
     * less than 1 MiB free is full whatever the last word was */
    const char *state = up ? json_string_value(json_object_get(up, "spool_state")) : NULL;
    if (room_known && free_bytes < (1u << 20))
        state = "disk_full";
    if (!state)
        state = "unknown";
    if (json) {
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:f, s:I, s:I, s:I}", "spool", path, "state",
                              state, "depth", (json_int_t)st.records, "bytes",
                              (json_int_t)st.bytes, "oldest_age_s", age, "drops",
                              (json_int_t)st.drops, "wal_bytes", (json_int_t)st.wal_bytes,
                              "db_bytes", (json_int_t)st.db_bytes);
        if (j && room_known)
            json_object_set_new(j, "disk_free_bytes", json_integer((json_int_t)free_bytes));
        if (j && up)
            json_object_set(j, "uplink", up);
        json_decref(up);
        char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(j);
        return text ? 0 : 1;
    }
    printf("spool:       %s\n", path);
    printf("depth:       %llu records\n", (unsigned long long)st.records);
    printf("bytes:       %llu\n", (unsigned long long)st.bytes);
    if (st.records)
        printf("oldest age:  %.1f s\n", age);
    else
        printf("oldest age:  - (empty)\n");
    printf("drops:       %llu\n", (unsigned long long)st.drops);
    printf("state:       %s\n", state);
    printf("files:       database %llu bytes, WAL %llu bytes\n", (unsigned long long)st.db_bytes,
           (unsigned long long)st.wal_bytes);
    if (room_known)
        printf("disk free:   %llu bytes%s\n", (unsigned long long)free_bytes,
               free_bytes < resume_at ? " (below the mark a full spool waits for)" : "");
    if (up)
        print_uplink(up, now);
    json_decref(up);
    return 0;
}

int cmd_spool(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "stats") == 0)
        return spool_stats_cmd(argc - 1, argv + 1);
    fprintf(stderr, "usage: psagw spool stats [--spool FILE | --config FILE] [--json]\n");
    return 2;
}

int cmd_cloud(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "usage: psagw cloud check [--config FILE]\n");
        return 2;
    }
    const char *config = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else {
            fprintf(stderr, "usage: psagw cloud check [--config FILE]\n");
            return 2;
        }
    }
    struct config cfg;
    if (load_config(config, &cfg, "psagw cloud check") != 0) {
        config_free(&cfg);
        return 1;
    }
    if (!cfg.cloud.enabled) {
        fprintf(stderr, "psagw cloud check: the config has no cloud section\n");
        config_free(&cfg);
        return 1;
    }
    char err[1024];
    int rc = uplink_check_config(&cfg.cloud, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "psagw cloud check: %s\n", err);
    else
        printf("cloud config OK: %s:%u as %s, %zu route(s), spool %s\n", cfg.cloud.host,
               cfg.cloud.port, cfg.cloud.client_id, cfg.cloud.n_routes, cfg.cloud.spool);
    config_free(&cfg);
    return rc == 0 ? 0 : 1;
}
