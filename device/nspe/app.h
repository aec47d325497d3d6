/* app.h: the device applications (app.c), shared by the emulator and the firmware build. */
#ifndef PSADEV_APP_H
#define PSADEV_APP_H

#include <signal.h>
#include <stdbool.h>

#include "nspe.h"

struct app_cfg {
    char host[256], port[16];
    long interval_ms; /* sensor: between readings */
    long count;       /* stop after this many readings sent / shown; 0: run until *stop */
    int qos;
    bool integrity_only;
};

/* m->id names the device. Both return when *stop becomes non-zero or count is reached;
 * lost connections are retried with jittered exponential backoff meanwhile. */
int app_sensor_run(const struct app_cfg *cfg, struct mqtt_client *m, volatile sig_atomic_t *stop);
int app_monitor_run(const struct app_cfg *cfg, struct mqtt_client *m, volatile sig_atomic_t *stop);

#endif
