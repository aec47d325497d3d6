/*
 * sensor_client.c: the firmware's calls to the sensor partition, through TF-M's psa_call on
 * the service's stateless handle (psagw_sensor_api.h). The emulator's are in
 * device/nspe/sensor_client.c.
 */
#include <string.h>

#include "app.h"
#include "platform.h"
#include "psa/client.h"
#include "psa_manifest/sid.h"
#include "psagw_sensor_api.h"

psa_status_t sensor_seal_reading(const char *topic, bool integrity_only, uint8_t *record,
                                 size_t cap, size_t *len)
{
    uint8_t mode = integrity_only ? 1 : 0;
    uint64_t now = plat_wall_ms();
    psa_invec in[3] = {{topic, strlen(topic)}, {&mode, 1}, {&now, sizeof(now)}};
    psa_outvec out[1] = {{record, cap}};
    psa_status_t st = psa_call(PSAGW_SENSOR_SERVICE_HANDLE, SENSOR_FN_READ, in, 3, out, 1);
    *len = st == PSA_SUCCESS ? out[0].len : 0;
    return st;
}

psa_status_t sensor_open_record(const uint8_t *topic, size_t topic_len, const uint8_t *record,
                                size_t len, struct sensor_reading *r)
{
    psa_invec in[2] = {{topic, topic_len}, {record, len}};
    psa_outvec out[1] = {{r, sizeof(*r)}};
    return psa_call(PSAGW_SENSOR_SERVICE_HANDLE, SENSOR_FN_OPEN, in, 2, out, 1);
}

psa_status_t sensor_device_info(struct psagw_device_info *info)
{
    psa_outvec out[1] = {{info, sizeof(*info)}};
    memset(info, 0, sizeof(*info));
    return psa_call(PSAGW_SENSOR_SERVICE_HANDLE, SENSOR_FN_INFO, NULL, 0, out, 1);
}
