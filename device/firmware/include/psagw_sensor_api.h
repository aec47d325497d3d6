/*
 * psagw_sensor_api.h: the sensor partition's service as the firmware's non-secure side calls
 * it (psa_call on the PSAGW_SENSOR_SERVICE stateless handle). The call types and the reading
 * are the emulator's (device/platform/sensor_ipc.h); the firmware adds:
 *
 *   SENSOR_FN_READ  in[0] topic, in[1] u8 1 = integrity only (optional), in[2] u64 wall-clock
 *                   milliseconds from the non-secure side (optional; the board has no clock
 *                   of its own: the modem gives the time, see docs/firmware.md); out[0] record
 *   SENSOR_FN_INFO  out[0] struct psagw_device_info: who the factory made this device
 */
#ifndef PSAGW_SENSOR_API_H
#define PSAGW_SENSOR_API_H

#include <stdint.h>

#include "psagw_factory.h"
#include "sensor_ipc.h"

#define SENSOR_FN_INFO 3

struct psagw_device_info {
    char id[PSAGW_DEVICE_ID_MAX + 1];
    uint8_t pad[3];
    uint32_t role; /* PSAGW_ROLE_* */
    /* the secure side's fault record (psagw_factory.h): pending = 1 the first time it is
     * reported after the reset that followed the fault */
    uint32_t faults, fault_pending, cfsr, hfsr, sfsr, sfar;
};

#endif
