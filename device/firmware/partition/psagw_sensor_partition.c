/*
 * psagw_sensor_partition.c: the sensor secure partition as a TF-M partition (SFN model): the
 * service entry around device/spe/sensor_core.c, which does the work and which the emulator's
 * partition shares (same record format, common/record, docs/wire.md section 4; same rules).
 *
 * The group key is a TF-M builtin key only this partition may use (psagw_builtin_keys.c); the
 * device's id and role come from the factory record; its sequence reservations and a monitor's
 * replay state live in TF-M's ITS, on the device's non-volatile memory. QEMU has no sensor:
 * readings are emulated, a slow random walk from a per-device start. The board has no clock
 * either: the time in a reading is the non-secure side's (the modem's), as that side says it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "psa/crypto.h"
#include "psa/service.h"
#include "psa_manifest/psagw_sensor.h"
#include "psagw_secure.h"
#include "psagw_sensor_api.h"
#include "sensor_core.h"

#define REPLAY_SLOTS 64u /* devices a monitor tracks (one ITS object each) */

static struct {
    struct sensor_core core;
    uint32_t role;
    bool ready;
} sp;

psa_status_t psagw_sensor_init(void)
{
    const struct psagw_factory_record *f = psagw_factory();
    if (!f)
        return PSA_SUCCESS; /* no service without a factory record: every call says so */
    memcpy(sp.core.id, f->device_id, sizeof(sp.core.id) - 1);
    sp.core.id[sizeof(sp.core.id) - 1] = '\0';
    sp.role = f->role;
    sp.core.sensor = f->role == PSAGW_ROLE_SENSOR;
    sp.core.group_key = PSAGW_KEY_ID_GROUP;
    sp.core.replay_slots = REPLAY_SLOTS;
    sensor_core_boot(&sp.core);
    sp.ready = true;
    return PSA_SUCCESS;
}

/* ---- the service -------------------------------------------------------------------------- */

/* Reads input vector i (whole) into buf; its length, or -1 when it does not fit. */
static int read_in(const psa_msg_t *msg, int i, void *buf, size_t cap)
{
    size_t n = msg->in_size[i];
    if (n > cap)
        return -1;
    return n && psa_read(msg->handle, (uint32_t)i, buf, n) != n ? -1 : (int)n;
}

static psa_status_t do_read(const psa_msg_t *msg, const char *topic)
{
    static uint8_t out[RECORD_MAX_SIZE];
    uint8_t mode = 0;
    uint64_t now = 0;
    if (read_in(msg, 1, &mode, 1) < 0 ||
        (msg->in_size[2] && read_in(msg, 2, &now, sizeof(now)) != (int)sizeof(now)))
        return PSA_ERROR_INVALID_ARGUMENT;
    int32_t t;
    uint32_t rh;
    sensor_core_emulate(&sp.core, &t, &rh);
    size_t len = 0;
    psa_status_t st = sensor_core_seal(&sp.core, topic, mode == 1, now, t, rh, out,
                                       sizeof(out), &len);
    if (st != PSA_SUCCESS)
        return st;
    if (msg->out_size[0] < len)
        return PSA_ERROR_BUFFER_TOO_SMALL;
    psa_write(msg->handle, 0, out, len);
    return PSA_SUCCESS;
}

static psa_status_t do_open(const psa_msg_t *msg, const char *topic)
{
    static uint8_t in[RECORD_MAX_SIZE];
    if (sp.core.sensor)
        return PSA_ERROR_NOT_PERMITTED;
    int n = read_in(msg, 1, in, sizeof(in));
    if (n <= 0 || msg->out_size[0] < sizeof(struct sensor_reading))
        return PSA_ERROR_INVALID_ARGUMENT;
    struct sensor_reading rd;
    psa_status_t st = sensor_core_open(&sp.core, topic, in, (size_t)n, &rd);
    if (st == PSA_SUCCESS || st == PSA_ERROR_ALREADY_EXISTS)
        psa_write(msg->handle, 0, &rd, sizeof(rd));
    return st;
}

psa_status_t psagw_sensor_service_sfn(const psa_msg_t *msg)
{
    if (!sp.ready)
        return PSA_ERROR_BAD_STATE; /* not provisioned */
    if (msg->type == SENSOR_FN_INFO) {
        struct psagw_device_info info;
        memset(&info, 0, sizeof(info));
        memcpy(info.id, sp.core.id, sizeof(info.id));
        info.role = sp.role;
        volatile struct psagw_fault_record *f =
            (volatile struct psagw_fault_record *)(uintptr_t)PSAGW_FAULT_ADDR;
        if (f->magic == PSAGW_FAULT_MAGIC) {
            info.faults = f->count;
            info.fault_pending = f->pending;
            info.cfsr = f->cfsr;
            info.hfsr = f->hfsr;
            info.sfsr = f->sfsr;
            info.sfar = f->sfar;
            f->pending = 0;
        }
        if (msg->out_size[0] < sizeof(info))
            return PSA_ERROR_BUFFER_TOO_SMALL;
        psa_write(msg->handle, 0, &info, sizeof(info));
        return PSA_SUCCESS;
    }
    char topic[256];
    int n = read_in(msg, 0, topic, sizeof(topic) - 1);
    if (n <= 0)
        return PSA_ERROR_INVALID_ARGUMENT;
    topic[n] = '\0';
    if (strlen(topic) != (size_t)n)
        return PSA_ERROR_INVALID_ARGUMENT;
    if (msg->type == SENSOR_FN_READ)
        return do_read(msg, topic);
    if (msg->type == SENSOR_FN_OPEN)
        return do_open(msg, topic);
    return PSA_ERROR_NOT_SUPPORTED;
}
