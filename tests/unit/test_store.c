/*
 * Unit tests of the store layer (gateway/src/store/), linked with store and base only: the
 * config parser and its FILE:LINE errors, the registry and its device change log, and the spool's
 * group commit, its recovery after a restart, and after a torn write at the end of its WAL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "registry.h"
#include "spool.h"

static char dir[] = "/tmp/psagw-unit-store.XXXXXX";

static void path_in_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- config ---- */

static int load(const char *text, struct config *c, char *err, size_t errlen)
{
    char path[256];
    path_in_dir(path, sizeof(path), "psagw.conf");
    write_file(path, text);
    config_defaults(c);
    return config_load(c, path, err, errlen);
}

static void config_defaults_and_a_complete_file(void **state)
{
    (void)state;
    struct config c;
    char err[512] = "";
    assert_int_equal(
        load("registry = \"/tmp/r.db\";\n"
             "mqtt = { max_queued_messages = 77; receive_maximum = 9; };\n"
             "listeners = ( { address = \"127.0.0.1:8883\"; type = \"tls-psk\"; } );\n",
             &c, err, sizeof(err)),
        0);
    assert_string_equal(c.registry, "/tmp/r.db");
    assert_int_equal(c.max_queued_messages, 77);
    assert_int_equal(c.receive_maximum, 9);
    assert_int_equal(c.n_listeners, 1);
    assert_int_equal(c.listeners[0].port, 8883);
    assert_int_equal(c.max_inflight_messages, 20); /* a default the file did not change */
    assert_int_equal(config_finish(&c, err, sizeof(err)), 0);
    config_free(&c);
}

/* Each bad file is refused with FILE:LINE and what is wrong. */
static void config_errors_name_the_file_and_line(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want; /* in the message, after "psagw.conf:" */
    } bad[] = {
        {"registry = \"/tmp/r.db\";\nlog_level = \"loud\";\n", ":2: log_level"},
        {"\n\nmqtt = { receive_maximum = 0; };\n", ":3: "},
        {"mqtt = { no_such_key = 1; };\n", ":1: "},
        {"no_such_key = 1;\n", ":1: "},
        {"registry = \"/tmp/r.db\";\nmqtt = { receive_maximum = ; };\n", ":2: "}, /* syntax */
        {"listeners = { address = \"x\"; };\n", ":1: "},                          /* not a list */
        {"stats_interval = \"often\";\n", ":1: stats_interval"},                  /* wrong type */
        {"registry = \"/tmp/r.db\";\nlisteners = ( );\n", ":2: listeners: must not be empty"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct config c;
        char err[512] = "";
        if (load(bad[i].text, &c, err, sizeof(err)) != -1)
            fail_msg("case %zu was accepted", i);
        assert_non_null(strstr(err, "psagw.conf"));
        if (!strstr(err, bad[i].want))
            fail_msg("case %zu: '%s' has no '%s'", i, err, bad[i].want);
        config_free(&c);
    }
}

static void config_refuses_a_plain_listener_off_loopback(void **state)
{
    (void)state;
    struct config c;
    char err[512] = "";
    config_defaults(&c);
    assert_int_equal(config_add_listener(&c, "0.0.0.0:1883", LISTENER_PLAIN, err, sizeof(err)), 0);
    assert_int_equal(config_finish(&c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not on loopback"));
    config_free(&c);
    config_defaults(&c);
    assert_int_equal(config_add_listener(&c, "nonsense", LISTENER_TLS_PSK, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ADDR:PORT"));
    config_free(&c);
}

/* ---- registry ---- */

struct ids {
    char seen[16][DEVICE_ID_MAX + 1];
    size_t n;
};

static int collect_id(const char *id, void *arg)
{
    struct ids *l = arg;
    if (l->n < 16)
        snprintf(l->seen[l->n++], sizeof(l->seen[0]), "%s", id);
    return 0;
}

static bool has_id(const struct ids *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->seen[i], id) == 0)
            return true;
    return false;
}

static struct device device(const char *id)
{
    struct device d = {0};
    snprintf(d.id, sizeof(d.id), "%s", id);
    d.role = ROLE_SENSOR;
    d.psk_len = 16;
    memset(d.psk, 0x5a, d.psk_len);
    return d;
}

static void registry_change_log_names_each_changed_device(void **state)
{
    (void)state;
    char path[256], err[256];
    path_in_dir(path, sizeof(path), "registry.db");
    struct registry *r = NULL;
    assert_int_equal(registry_open(path, true, &r, err, sizeof(err)), REG_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* it holds PSKs */
    int64_t start = registry_change_seq(r);
    struct device a = device("dev-a"), b = device("dev-b");
    assert_int_equal(registry_add(r, &a), REG_OK);
    assert_int_equal(registry_add(r, &b), REG_OK);
    assert_int_equal(registry_add(r, &a), REG_EXISTS);
    int64_t after_adds = registry_change_seq(r);
    assert_true(after_adds > start);
    assert_int_equal(registry_set_revoked(r, "dev-b", true), REG_OK);
    struct ids l = {0};
    int64_t last = 0;
    assert_int_equal(registry_changes_since(r, after_adds, &last, collect_id, &l), REG_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.seen[0], "dev-b");
    assert_true(last > after_adds);
    memset(&l, 0, sizeof(l));
    assert_int_equal(registry_changes_since(r, start, &last, collect_id, &l), REG_OK);
    assert_true(has_id(&l, "dev-a") && has_id(&l, "dev-b"));
    /* nothing after the newest */
    memset(&l, 0, sizeof(l));
    assert_int_equal(registry_changes_since(r, last, &last, collect_id, &l), REG_OK);
    assert_int_equal(l.n, 0);
    struct device got;
    assert_int_equal(registry_get(r, "dev-b", &got), REG_OK);
    assert_true(got.revoked);
    device_clear(&got);
    assert_int_equal(registry_remove(r, "dev-a"), REG_OK);
    assert_int_equal(registry_get(r, "dev-a", &got), REG_NOT_FOUND);
    memset(&l, 0, sizeof(l));
    assert_int_equal(registry_changes_since(r, last, &last, collect_id, &l), REG_OK);
    assert_true(has_id(&l, "dev-a"));
    registry_close(r);
    /* a second open of the same file sees the same log */
    assert_int_equal(registry_open(path, false, &r, err, sizeof(err)), REG_OK);
    assert_int_equal(registry_change_seq(r), last);
    registry_close(r);
}

/* ---- spool ---- */

struct durable_log {
    unsigned acks;
    uint16_t ids[64];
};

static void on_durable(void *arg, const struct spool_item *list)
{
    struct durable_log *d = arg;
    for (const struct spool_item *it = list; it; it = it->next)
        if (it->has_ack && d->acks < 64)
            d->ids[d->acks++] = it->ack.packet_id;
}

static void on_records(void *arg)
{
    (void)arg;
}

static struct spool *open_spool(const char *path, struct durable_log *log)
{
    struct spool_callbacks cb = {on_durable, on_records, log};
    char err[256] = "";
    struct spool *sp =
        spool_open(path, 1u << 20, 1u << 20, SPOOL_FULL_BLOCK, &cb, err, sizeof(err));
    if (!sp)
        fail_msg("spool_open: %s", err);
    return sp;
}

static void submit(struct spool *sp, int i)
{
    char topic[32], payload[32];
    snprintf(topic, sizeof(topic), "sensors/dev-1/%d", i);
    snprintf(payload, sizeof(payload), "reading %d", i);
    struct spool_item *it =
        spool_item_new("dev-1", topic, strlen(topic), (uint8_t *)payload, strlen(payload), "dev-1");
    assert_non_null(it);
    it->has_ack = true;
    it->ack.packet_id = (uint16_t)(i + 1);
    it->ack.type = 4; /* PUBACK */
    assert_int_equal(spool_submit(sp, it), 0);
}

/* Takes records until `want` came or two seconds passed (the spool thread fills the hand-off
 * from the file on its own time). */
static size_t take_all(struct spool *sp, size_t want, uint64_t *first_seq, uint64_t *last_seq)
{
    size_t n = 0;
    for (int tries = 0; n < want && tries < 200; tries++) {
        struct spool_item *list = spool_take(sp, 1000);
        if (!list)
            usleep(10000);
        for (struct spool_item *it = list, *next; it; it = next) {
            next = it->next;
            if (n == 0 && first_seq)
                *first_seq = it->seq;
            if (last_seq)
                *last_seq = it->seq;
            n++;
            spool_item_free(it);
        }
    }
    return n;
}

static void spool_acks_only_after_commit_and_in_order(void **state)
{
    (void)state;
    char path[256];
    path_in_dir(path, sizeof(path), "order.spool");
    struct durable_log log = {0};
    struct spool *sp = open_spool(path, &log);
    assert_int_equal(spool_start(sp), 0);
    for (int i = 0; i < 50; i++)
        submit(sp, i);
    spool_stop(sp); /* commits what is pending */
    assert_int_equal(log.acks, 50);
    for (unsigned i = 0; i < log.acks; i++)
        assert_int_equal(log.ids[i], i + 1); /* PUBACK order is PUBLISH order */
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_int_equal(st.records, 50);
    assert_true(st.commits >= 1 && st.commits <= 50); /* grouped, never more than one each */
    spool_close(sp);
}

static void spool_records_survive_a_restart_until_done(void **state)
{
    (void)state;
    char path[256];
    path_in_dir(path, sizeof(path), "restart.spool");
    struct durable_log log = {0};
    struct spool *sp = open_spool(path, &log);
    assert_int_equal(spool_start(sp), 0);
    for (int i = 0; i < 10; i++)
        submit(sp, i);
    spool_stop(sp);
    spool_close(sp);
    /* reopened: the ten records are there, in order, for the uplink */
    sp = open_spool(path, &log);
    assert_int_equal(spool_start(sp), 0);
    uint64_t first = 0, last = 0;
    assert_int_equal(take_all(sp, 10, &first, &last), 10);
    assert_true(last > first);
    /* the cloud acknowledged the first four ("sensors/dev-1/N" and "reading N": 24 bytes each) */
    spool_done(sp, first + 3, 4, 4 * 24);
    /* deleted within DELETE_DELAY_MS (100 ms): the counters follow without reading the file */
    struct spool_stats live = {0};
    for (int tries = 0; tries < 100 && live.records != 6; tries++) {
        usleep(20000);
        spool_get_stats(sp, &live);
    }
    assert_int_equal(live.records, 6);
    assert_int_equal(live.bytes, 6 * 24);
    spool_stop(sp);
    spool_close(sp);
    sp = open_spool(path, &log);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_int_equal(st.records, 6);
    spool_close(sp);
}

/* Deliveries reported with other counts than the file holds (here: one record the uplink never
 * counted, as when the full spool dropped one it had in flight): the counters come from the file
 * again, exact, and the records after the reported one stay. */
static void spool_counters_stay_exact_when_reports_disagree(void **state)
{
    (void)state;
    char path[256];
    path_in_dir(path, sizeof(path), "counts.spool");
    struct durable_log log = {0};
    struct spool *sp = open_spool(path, &log);
    assert_int_equal(spool_start(sp), 0);
    for (int i = 0; i < 10; i++)
        submit(sp, i); /* 24 bytes each */
    uint64_t first = 0, last = 0;
    assert_int_equal(take_all(sp, 10, &first, &last), 10);
    spool_done(sp, first + 3, 3, 3 * 24); /* four records up to first + 3, three reported */
    struct spool_stats st = {0};
    for (int tries = 0; tries < 100 && st.records != 6; tries++) {
        usleep(20000);
        spool_get_stats(sp, &st);
    }
    assert_int_equal(st.records, 6);
    assert_int_equal(st.bytes, 6 * 24);
    spool_stop(sp);
    spool_close(sp);
}

/* A crash in the middle of a write leaves a torn frame at the end of the WAL: SQLite's recovery
 * drops the frame (its checksum fails), so everything committed before it is there, and the
 * spool opens without an error. */
static void spool_recovers_from_a_torn_wal_write(void **state)
{
    (void)state;
    char path[256], wal[300], copy[256], copy_wal[300];
    path_in_dir(path, sizeof(path), "torn.spool");
    snprintf(wal, sizeof(wal), "%s-wal", path);
    path_in_dir(copy, sizeof(copy), "torn-copy.spool");
    snprintf(copy_wal, sizeof(copy_wal), "%s-wal", copy);
    struct durable_log log = {0};
    struct spool *sp = open_spool(path, &log);
    assert_int_equal(spool_start(sp), 0);
    for (int i = 0; i < 10; i++) /* these ten reach the main file at the close */
        submit(sp, i);
    spool_stop(sp);
    spool_close(sp);
    sp = open_spool(path, &log);
    assert_int_equal(spool_start(sp), 0);
    for (int i = 10; i < 20; i++) /* these only the WAL */
        submit(sp, i);
    spool_stop(sp);
    /* the files as a crash right now would leave them (the spool still open: nothing
     * checkpointed or cleaned up by the close) */
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "cp %s %s && cp %s %s", path, copy, wal, copy_wal);
    assert_int_equal(system(cmd), 0);
    spool_close(sp);
    struct stat st;
    assert_int_equal(stat(copy_wal, &st), 0);
    assert_true(st.st_size > 4096);
    /* tear the last frame: garbage over its last 100 bytes */
    FILE *f = fopen(copy_wal, "r+");
    assert_non_null(f);
    fseek(f, -100, SEEK_END);
    for (int i = 0; i < 100; i++)
        fputc(0xA5, f);
    fclose(f);
    sp = open_spool(copy, &log);
    struct spool_stats s;
    spool_get_stats(sp, &s);
    /* the first ten, and of the last ten those committed before the torn frame's commit */
    assert_true(s.records >= 10);
    assert_true(s.records < 20);
    assert_int_equal(spool_start(sp), 0);
    assert_int_equal(take_all(sp, s.records, NULL, NULL), s.records);
    spool_stop(sp);
    spool_close(sp);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* With the cloud keeping up, records come and go all the time: the WAL must be checkpointed
 * and reset, so it stays within its budget instead of growing with every message (it grew to
 * 127 MB in 3 minutes at 475 msg/s before), and is truncated once the spool is empty. */
static void spool_wal_stays_bounded_and_is_truncated_when_empty(void **state)
{
    (void)state;
    char path[256], wal[300];
    path_in_dir(path, sizeof(path), "wal.spool");
    snprintf(wal, sizeof(wal), "%s-wal", path);
    struct durable_log log = {0};
    struct spool *sp = open_spool(path, &log);
    assert_int_equal(spool_start(sp), 0);
    static uint8_t payload[1024];
    off_t peak = 0;
    for (int round = 0; round < 40; round++) { /* 40 x 200 x 1 KiB: 8 MiB through the spool */
        for (int i = 0; i < 200; i++) {
            struct spool_item *it = spool_item_new("dev-1", "sensors/dev-1/env", 17, payload,
                                                   sizeof(payload), NULL);
            assert_non_null(it);
            assert_int_equal(spool_submit(sp, it), 0);
        }
        uint64_t first = 0, last = 0;
        assert_int_equal(take_all(sp, 200, &first, &last), 200);
        spool_done(sp, last, 200, 200 * (17 + sizeof(payload)));
        usleep(20000);
        off_t now = file_size(wal);
        if (now > peak)
            peak = now;
    }
    /* the budget (SPOOL_WAL_BUDGET, 4 MiB) and one group commit's worth over it */
    if (peak > (off_t)(SPOOL_WAL_BUDGET + (2u << 20)))
        fail_msg("the WAL reached %lld bytes", (long long)peak);
    /* empty and idle: truncated within a checkpoint period or two */
    off_t idle = 0;
    for (int i = 0; i < 100; i++) {
        usleep(20000);
        struct spool_stats st;
        spool_get_stats(sp, &st);
        idle = file_size(wal);
        if (st.records == 0 && idle == 0)
            break;
    }
    if (idle != 0)
        fail_msg("the WAL of an empty spool is still %lld bytes", (long long)idle);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_int_equal(st.wal_bytes, 0);
    spool_stop(sp);
    spool_close(sp);
}

static int setup_dir(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_defaults_and_a_complete_file),
        cmocka_unit_test(config_errors_name_the_file_and_line),
        cmocka_unit_test(config_refuses_a_plain_listener_off_loopback),
        cmocka_unit_test(registry_change_log_names_each_changed_device),
        cmocka_unit_test(spool_acks_only_after_commit_and_in_order),
        cmocka_unit_test(spool_records_survive_a_restart_until_done),
        cmocka_unit_test(spool_counters_stay_exact_when_reports_disagree),
        cmocka_unit_test(spool_recovers_from_a_torn_wal_write),
        cmocka_unit_test(spool_wal_stays_bounded_and_is_truncated_when_empty),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
