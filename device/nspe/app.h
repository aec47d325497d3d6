/* app.h: the device applications (app.c), shared by the emulator and the firmware build. */
#ifndef PSADEV_APP_H
#define PSADEV_APP_H

#include <signal.h>
#include <stdbool.h>

#include "../platform/sensor_ipc.h"
#include "nspe.h"

struct app_cfg {
    char host[256], port[16];
    long interval_ms; /* sensor: between readings */
    long count;       /* stop after this many readings sent / shown; 0: run until *stop */
    int qos;
    bool integrity_only;
};

#ifndef APP_RECORD_MAX
#define APP_RECORD_MAX 512 /* a sealed reading (RECORD_MAX_SIZE; the firmware's fit in less) */
#endif

/* The sensor partition, as the applications call it: over the emulator's IPC to psadev-spe
 * (sensor_client.c) or through TF-M's psa_call on the firmware (device/firmware/ns/). */
psa_status_t sensor_seal_reading(const char *topic, bool integrity_only, uint8_t *record,
                                 size_t cap, size_t *len);
psa_status_t sensor_open_record(const uint8_t *topic, size_t topic_len, const uint8_t *record,
                                size_t len, struct sensor_reading *r);

/* m->id names the device. Both return when *stop becomes non-zero or count is reached;
 * lost connections are retried with jittered exponential backoff meanwhile. */
int app_sensor_run(const struct app_cfg *cfg, struct mqtt_client *m, volatile sig_atomic_t *stop);
int app_monitor_run(const struct app_cfg *cfg, struct mqtt_client *m, volatile sig_atomic_t *stop);

#endif
