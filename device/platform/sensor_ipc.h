/*
 * sensor_ipc.h: the sensor partition's calls (IPC_SVC_SENSOR), shared by the NSPE application
 * and the SPE service (spe/sensor_partition.c).
 */
#ifndef PSADEV_SENSOR_IPC_H
#define PSADEV_SENSOR_IPC_H

#include <stdint.h>

#define SENSOR_FN_READ 1 /* in: topic [, u8 1 = integrity only]; out: the sealed record */
#define SENSOR_FN_OPEN 2 /* in: topic, record; out: struct sensor_reading */

/* What OPEN returns: PSA_SUCCESS (accepted), PSA_ERROR_ALREADY_EXISTS (a replay: seq not above
 * last_seq; the reading is filled in to say which), PSA_ERROR_INVALID_SIGNATURE (does not
 * authenticate for this topic), PSA_ERROR_INVALID_ARGUMENT (not a record). */
struct sensor_reading {
    char device[129];
    uint64_t seq;
    uint64_t time_ms;
    int32_t temp_centi;
    uint32_t rh_centi;
    uint64_t last_seq;
};

#endif
