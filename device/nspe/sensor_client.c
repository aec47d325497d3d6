/*
 * sensor_client.c: the emulator's calls to its sensor partition (psadev-spe), over the
 * psa_call channel (platform/ipc.c). The firmware's are in device/firmware/ns/sensor_client.c.
 */
#include <string.h>

#include "../platform/ipc.h"
#include "app.h"

psa_status_t sensor_seal_reading(const char *topic, bool integrity_only, uint8_t *record,
                                 size_t cap, size_t *len)
{
    uint8_t mode = integrity_only ? 1 : 0;
    struct ipc_invec in[2] = {{topic, strlen(topic)}, {&mode, 1}};
    struct ipc_outvec out[1] = {{record, cap}};
    psa_status_t st = ipc_call(psa_client_fd(), IPC_SVC_SENSOR, SENSOR_FN_READ, in, 2, out, 1);
    *len = st == PSA_SUCCESS ? out[0].len : 0;
    return st;
}

psa_status_t sensor_open_record(const uint8_t *topic, size_t topic_len, const uint8_t *record,
                                size_t len, struct sensor_reading *r)
{
    struct ipc_invec in[2] = {{topic, topic_len}, {record, len}};
    struct ipc_outvec out[1] = {{r, sizeof(*r)}};
    return ipc_call(psa_client_fd(), IPC_SVC_SENSOR, SENSOR_FN_OPEN, in, 2, out, 1);
}
