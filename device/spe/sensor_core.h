/*
 * sensor_core.h: what the sensor secure partition does, on the PSA Crypto and ITS APIs only, so
 * the emulator's SPE (spe/sensor_partition.c) and the firmware's TF-M partition
 * (device/firmware/partition/psagw_sensor_partition.c) run the same code; each wraps it in its
 * own service entry (psa_call messages over a socket, or TF-M's SFN messages).
 *
 * - A sensor seals each reading for its topic (common/record: COSE_Encrypt0, or COSE_Mac0 when
 *   integrity only is asked) with its record key, HMAC-SHA256(group key, "psagw app key" ||
 *   device id), imported as a volatile key for one operation and destroyed.
 * - seq never repeats, across reboots too: blocks of SENSOR_SEQ_BLOCK numbers are reserved in
 *   ITS before any of them is used, so a crash skips the rest of a block (seq is the CCM nonce).
 * - A monitor opens records and refuses replays (seq not above the last one seen from that
 *   device, one ITS object per device).
 */
#ifndef PSADEV_SENSOR_CORE_H
#define PSADEV_SENSOR_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psa/crypto.h"
#include "psagw/record.h"
#include "../platform/sensor_ipc.h"

#define SENSOR_SEQ_BLOCK 64
#define SENSOR_UID_SEQ 0x1001u
#define SENSOR_UID_REPLAY_BASE 0x20000000u

struct sensor_core {
    /* set by the caller before sensor_core_boot */
    char id[RECORD_ID_MAX + 1];
    bool sensor;                        /* the role: sensor, or monitor */
    mbedtls_svc_key_id_t group_key;     /* HMAC-SHA256, usable for SIGN_MESSAGE */
    uint32_t replay_slots;              /* devices a monitor can track */
    /* the attributes of the partition's volatile keys need its owner set (emulator), or NULL */
    void (*set_owner)(psa_key_attributes_t *a);
    /* state */
    uint64_t next_seq, reserved_until;
    int32_t temp_centi, rh_centi;
};

/* Reads the reserved sequence from ITS (what was reserved before may have been used: the
 * sequence goes on after it) and sets the emulated sensor's start from the device id. */
void sensor_core_boot(struct sensor_core *s);

/* The next emulated reading: a slow random walk within plausible indoor bounds. */
void sensor_core_emulate(struct sensor_core *s, int32_t *temp_centi, uint32_t *rh_centi);

/* Seals a reading for topic into out; PSA_SUCCESS, or PSA_ERROR_NOT_PERMITTED (a monitor),
 * PSA_ERROR_STORAGE_FAILURE (no seq could be reserved), PSA_ERROR_BUFFER_TOO_SMALL,
 * PSA_ERROR_GENERIC_ERROR. */
psa_status_t sensor_core_seal(struct sensor_core *s, const char *topic, bool mac_only,
                              uint64_t time_ms, int32_t temp_centi, uint32_t rh_centi,
                              uint8_t *out, size_t cap, size_t *out_len);

/* Opens a record received on topic into *rd; PSA_SUCCESS (accepted), PSA_ERROR_ALREADY_EXISTS
 * (a replay: rd says which), PSA_ERROR_INVALID_SIGNATURE (does not authenticate for this topic),
 * PSA_ERROR_INVALID_ARGUMENT (not a record), PSA_ERROR_NOT_PERMITTED (a sensor),
 * PSA_ERROR_INSUFFICIENT_STORAGE / PSA_ERROR_STORAGE_FAILURE (replay state). */
psa_status_t sensor_core_open(struct sensor_core *s, const char *topic, const uint8_t *in,
                              size_t len, struct sensor_reading *rd);

#endif
