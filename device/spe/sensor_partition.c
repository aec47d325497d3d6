/*
 * sensor_partition.c: the emulator's sensor secure partition (docs/design/wire.md section 4):
 * its service entry over the psa_call channel around sensor_core.c, which does the work (and
 * which the firmware's TF-M partition shares).
 *
 * On a sensor it reads the (emulated) temperature/humidity sensor, or a readings file standing
 * in for a sensor peripheral only the SPE can reach, and returns each reading already sealed
 * for its topic, so the reading is protected from inside the secure side to the monitor's
 * secure side. On a monitor it opens records and refuses replays.
 */
#include <stdio.h>
#include <string.h>

#include "../platform/platform.h"
#include "sensor_core.h"
#include "spe.h"

#define REPLAY_SLOTS 4096u

static struct {
    struct sensor_core core;
#ifdef PSADEV_EMULATOR
    FILE *readings; /* lines "temperature_c humidity_pct", replayed in a loop; NULL: emulate */
#endif
    bool ready;
} sp;

/* The partition's volatile keys belong to it (the emulated crypto service scopes key ids by
 * owner, as TF-M's does). */
static void set_owner(psa_key_attributes_t *a)
{
    a->MBEDTLS_PRIVATE(id) = mbedtls_svc_key_id_make(SPE_OWNER_SENSOR, 0);
}

void sensor_partition_boot(const struct spe_device_info *info, const char *readings_file)
{
    snprintf(sp.core.id, sizeof(sp.core.id), "%s", info->id);
    sp.core.sensor = strcmp(info->role, "sensor") == 0;
    sp.core.group_key = mbedtls_svc_key_id_make(SPE_OWNER_SENSOR, SPE_KEY_GROUP);
    sp.core.replay_slots = REPLAY_SLOTS;
    sp.core.set_owner = set_owner;
#ifdef PSADEV_EMULATOR
    sp.readings = readings_file ? fopen(readings_file, "r") : NULL;
    if (readings_file && !sp.readings)
        fprintf(stderr, "psadev-spe: cannot read %s; emulating the sensor instead\n",
                readings_file);
#else
    (void)readings_file;
#endif
    sensor_core_boot(&sp.core);
    sp.ready = true;
}

#ifdef PSADEV_EMULATOR
/* The next line of the readings file, from the top again at its end; 0 if one was read. */
static int read_file_line(int32_t *temp_centi, uint32_t *rh_centi)
{
    char line[128];
    for (int pass = 0; pass < 2; pass++) {
        while (fgets(line, sizeof(line), sp.readings)) {
            double t, h;
            if (line[0] == '#' || sscanf(line, "%lf %lf", &t, &h) != 2 || t < -100 || t > 200 ||
                h < 0 || h > 100)
                continue;
            *temp_centi = (int32_t)(t * 100.0 + (t < 0 ? -0.5 : 0.5));
            *rh_centi = (uint32_t)(h * 100.0 + 0.5);
            return 0;
        }
        rewind(sp.readings);
    }
    return -1;
}
#endif

int32_t sensor_service(int32_t type, const struct ipc_invec *in, size_t n_in,
                       struct ipc_outvec *out, size_t n_out)
{
    char topic[256];
    if (!sp.ready || n_in < 1 || n_out < 1 || in[0].len == 0 || in[0].len >= sizeof(topic))
        return PSA_ERROR_INVALID_ARGUMENT;
    memcpy(topic, in[0].base, in[0].len);
    topic[in[0].len] = '\0';
    if (strlen(topic) != in[0].len)
        return PSA_ERROR_INVALID_ARGUMENT;

    if (type == SENSOR_FN_READ) {
        bool mac_only = n_in >= 2 && in[1].len == 1 && ((const uint8_t *)in[1].base)[0] == 1;
        int32_t t;
        uint32_t rh;
#ifdef PSADEV_EMULATOR
        if (!sp.readings || read_file_line(&t, &rh) != 0)
#endif
            sensor_core_emulate(&sp.core, &t, &rh);
        size_t len = 0;
        psa_status_t st = sensor_core_seal(&sp.core, topic, mac_only, plat_wall_ms(), t, rh,
                                           out[0].base, out[0].len, &len);
        out[0].len = st == PSA_SUCCESS ? len : 0;
        return st;
    }
    if (type == SENSOR_FN_OPEN) {
        if (n_in < 2 || out[0].len < sizeof(struct sensor_reading))
            return sp.core.sensor ? PSA_ERROR_NOT_PERMITTED : PSA_ERROR_INVALID_ARGUMENT;
        struct sensor_reading rd;
        psa_status_t st = sensor_core_open(&sp.core, topic, in[1].base, in[1].len, &rd);
        if (st == PSA_SUCCESS || st == PSA_ERROR_ALREADY_EXISTS) {
            memcpy(out[0].base, &rd, sizeof(rd));
            out[0].len = sizeof(rd);
        }
        return st;
    }
    return PSA_ERROR_NOT_SUPPORTED;
}
