/*
 * firmware_main.c: the NSPE image's entry point for the Cortex-M33 footprint build: the sensor
 * application with its configuration compiled in, as a FreeRTOS task would run it. The
 * emulator's entry point is psadev.c instead.
 */
#include <signal.h>

#include "app.h"

#ifndef FW_GATEWAY_HOST
#define FW_GATEWAY_HOST "gateway.local"
#endif
#ifndef FW_DEVICE_ID
#define FW_DEVICE_ID "sensor-1"
#endif

static volatile sig_atomic_t never;

int main(void)
{
    static const struct app_cfg cfg = {
        .host = FW_GATEWAY_HOST, .port = "8883", .interval_ms = 10000, .qos = 1};
    static struct mqtt_client m = {.id = FW_DEVICE_ID};
    if (psa_crypto_init() != PSA_SUCCESS)
        return 1;
    return app_sensor_run(&cfg, &m, &never);
}
