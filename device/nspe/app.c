/*
 * app.c: the device applications, portable: the sensor (publish sealed readings, obey
 * commands) and the monitor (open readings in the SPE, refuse replays). They use only the
 * PSA APIs, the TLS and MQTT clients and platform.h, so the same code runs in the emulator
 * and in the Cortex-M33 footprint build.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../platform/platform.h"
#include "app.h"

/* Sleeps up to ms, waking early when asked to stop. */
static void nap(uint64_t ms, volatile sig_atomic_t *stop)
{
    while (ms > 0 && !*stop) {
        uint32_t step = ms > 100 ? 100 : (uint32_t)ms;
        plat_sleep_ms(step);
        ms -= step;
    }
}

/* Connects and attests; on failure waits a jittered, growing backoff. 0 when connected. */
static int session_open(const struct app_cfg *o, struct mqtt_client *m, unsigned *backoff_ms,
                        volatile sig_atomic_t *stop)
{
    char err[256];
    m->in_len = 0;
    m->pending = 0;
    m->deferred = 0;
    uint64_t t0 = plat_mono_ms();
    m->tls = tls_connect(o->host, o->port, m->id, NULL, err, sizeof(err));
    uint64_t t1 = plat_mono_ms();
    if (m->tls && mqtt_client_connect(m, true, 60) == 0) {
        /* handshake_ms: TCP connect and TLS-PSK handshake; connect_ms: MQTT CONNECT, the
         * PSA-IAT exchange and CONNACK, as the device's clock sees them */
        printf("connected id=%s cipher=%s attested=%d handshake_ms=%lu connect_ms=%lu\n", m->id,
               tls_cipher(m->tls), m->attested, (unsigned long)(t1 - t0),
               (unsigned long)(plat_mono_ms() - t1));
        *backoff_ms = 1000;
        return 0;
    }
    if (m->tls)
        printf("refused connack=0x%02x reason=\"%s\"\n", m->connack_reason, m->reason_string);
    else
        printf("connect failed: %s\n", err);
    tls_close(m->tls);
    m->tls = NULL;
    /* full jitter (AWS architecture blog's "exponential backoff and jitter"), 1 s .. 60 s */
    uint8_t r[2];
    psa_generate_random(r, sizeof(r));
    unsigned wait = *backoff_ms / 2 + (unsigned)((r[0] << 8 | r[1]) % (*backoff_ms / 2 + 1));
    printf("retrying in %u ms\n", wait);
    nap(wait, stop);
    if (*backoff_ms < 60000)
        *backoff_ms *= 2;
    return -1;
}


int app_sensor_run(const struct app_cfg *cfg, struct mqtt_client *m, volatile sig_atomic_t *stop)
{
    struct app_cfg local = *cfg;
    struct app_cfg *o = &local;
    /* an id has at most 128 characters: the longest of these is 141 */
    char topic[160], cmd_filter[160], cmd_interval[160];
    snprintf(topic, sizeof(topic), "sensors/%s/env", m->id);
    snprintf(cmd_filter, sizeof(cmd_filter), "cmd/%s/#", m->id);
    snprintf(cmd_interval, sizeof(cmd_interval), "cmd/%s/interval", m->id);
    unsigned backoff = 1000;
    long sent = 0;
    int ret = 0;
    while (!*stop && (o->count == 0 || sent < o->count)) {
        if (!m->tls) {
            if (session_open(o, m, &backoff, stop) != 0)
                continue;
            mqtt_client_subscribe(m, cmd_filter, 1);
        }
        uint8_t record[APP_RECORD_MAX];
        size_t record_len = 0;
        psa_status_t st =
            sensor_seal_reading(topic, o->integrity_only, record, sizeof(record), &record_len);
        if (st != PSA_SUCCESS) {
            fprintf(stderr, "psadev sensor: the sensor partition failed (PSA error %d)\n", (int)st);
            ret = 1;
            break;
        }
        if (mqtt_client_publish(m, topic, record, record_len, o->qos) != 0) {
            printf("publish failed%s%s; reconnecting\n", m->reason_string[0] ? ": " : "",
                   m->reason_string);
            tls_close(m->tls);
            m->tls = NULL;
            continue;
        }
        sent++;
        printf("published topic=%s bytes=%zu qos=%d n=%ld\n", topic, record_len, o->qos, sent);
        /* wait for the next reading, serving commands meanwhile */
        uint64_t due = plat_mono_ms() + (uint64_t)o->interval_ms;
        while (!*stop && m->tls && plat_mono_ms() < due && (o->count == 0 || sent < o->count)) {
            const uint8_t *t, *pl;
            size_t tl, pll;
            int type = mqtt_client_poll(m, (int)(due - plat_mono_ms()), &t, &tl, &pl, &pll);
            if (type < 0 || type == 14) {
                printf("connection lost%s%s\n", m->reason_string[0] ? ": " : "", m->reason_string);
                tls_close(m->tls);
                m->tls = NULL;
                break;
            }
            if (type == 3 && tl == strlen(cmd_interval) && memcmp(t, cmd_interval, tl) == 0) {
                char v[32];
                size_t n = pll < sizeof(v) - 1 ? pll : sizeof(v) - 1;
                memcpy(v, pl, n);
                v[n] = '\0';
                long ms = atol(v);
                if (ms >= 10 && ms <= 86400000) {
                    o->interval_ms = ms;
                    due = plat_mono_ms() + (uint64_t)ms;
                    printf("command interval_ms=%ld\n", ms);
                } else {
                    printf("command refused: interval must be 10..86400000 ms\n");
                }
            }
        }
    }
    if (m->tls) {
        mqtt_client_disconnect(m);
        tls_close(m->tls);
        m->tls = NULL;
    }
    return ret;
}

int app_monitor_run(const struct app_cfg *cfg, struct mqtt_client *m, volatile sig_atomic_t *stop)
{
    const struct app_cfg *o = cfg;
    unsigned backoff = 1000;
    long shown = 0;
    while (!*stop && (o->count == 0 || shown < o->count)) {
        if (!m->tls) {
            if (session_open(o, m, &backoff, stop) != 0)
                continue;
            mqtt_client_subscribe(m, "sensors/#", 1);
        }
        const uint8_t *t, *pl;
        size_t tl, pll;
        int type = mqtt_client_poll(m, 500, &t, &tl, &pl, &pll);
        if (type < 0 || type == 14) {
            printf("connection lost%s%s\n", m->reason_string[0] ? ": " : "", m->reason_string);
            tls_close(m->tls);
            m->tls = NULL;
            continue;
        }
        if (type != 3)
            continue;
        struct sensor_reading r;
        memset(&r, 0, sizeof(r));
        psa_status_t st = sensor_open_record(t, tl, pl, pll, &r);
        if (st == PSA_SUCCESS) {
            uint64_t now = plat_wall_ms();
            /* integers only: a device's printf carries no floating point */
            int32_t tc = r.temp_centi;
            printf("reading device=%s seq=%llu temp_c=%s%ld.%02ld rh=%lu.%02lu age_ms=%lld\n",
                   r.device, (unsigned long long)r.seq, tc < 0 ? "-" : "",
                   (long)((tc < 0 ? -tc : tc) / 100), (long)((tc < 0 ? -tc : tc) % 100),
                   (unsigned long)(r.rh_centi / 100), (unsigned long)(r.rh_centi % 100),
                   (long long)(now - r.time_ms));
            shown++;
        } else if (st == PSA_ERROR_ALREADY_EXISTS) {
            printf("refused replay device=%s seq=%llu last_seq=%llu\n", r.device,
                   (unsigned long long)r.seq, (unsigned long long)r.last_seq);
        } else {
            printf("refused record topic=%.*s reason=%s\n", (int)tl, (const char *)t,
                   st == PSA_ERROR_INVALID_SIGNATURE ? "authentication failed"
                                                      : "not a well-formed record");
        }
    }
    if (m->tls) {
        mqtt_client_disconnect(m);
        tls_close(m->tls);
        m->tls = NULL;
    }
    return 0;
}
