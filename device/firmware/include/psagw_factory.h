/*
 * psagw_factory.h: the firmware device's factory record and non-volatile memory map, shared by
 * the secure side (device/firmware/tfm/) and the host tool that writes it (psadev-fw
 * provision, device/firmware/host/).
 *
 * QEMU's mps2-an521 has no persistent flash: TF-M's "flash" is SSRAM1, which QEMU fills from
 * the image files at every start. Its 16 MiB PSRAM at 0x80000000 is the machine's RAM backend,
 * which QEMU can map from a file (-object memory-backend-file,share=on), so it survives a
 * restart and a kill. That file is the device's non-volatile memory:
 *
 *   0x80000000 + FLASH offset  TF-M's storage areas (protected storage, ITS, OTP and NV
 *                              counters) at the same offsets as in TF-M's an521 flash layout:
 *                              psagw_nv_flash.c sends every flash access at or above
 *                              PSAGW_NV_FLASH_SPLIT here, the image slots stay in SSRAM1
 *   PSAGW_FACTORY_ADDR         this record, written once by the factory step; the secure side
 *                              reads it (provisioning, the PSK, the group key, the device id)
 *
 * The PSRAM has no MPC, and TF-M's SAU setup leaves 0x80000000 Secure (no SAU region covers
 * it): the non-secure image cannot read the record (tests/firmware checks it faults).
 */
#ifndef PSAGW_FACTORY_H
#define PSAGW_FACTORY_H

#include <stddef.h>
#include <stdint.h>

#define PSAGW_NV_BASE 0x80000000u
#define PSAGW_NV_SIZE 0x01000000u        /* the QEMU memory backend's size: 16 MiB */
#define PSAGW_NV_FLASH_SPLIT 0x00300000u /* flash offsets from here live in the NV memory */
#define PSAGW_FACTORY_OFFSET 0x00F00000u
#define PSAGW_FACTORY_ADDR (PSAGW_NV_BASE + PSAGW_FACTORY_OFFSET)

#define PSAGW_FAULT_OFFSET 0x00F01000u
#define PSAGW_FAULT_ADDR (PSAGW_NV_BASE + PSAGW_FAULT_OFFSET)

#define PSAGW_FACTORY_MAGIC 0x57464750u /* "PGFW" little-endian */
#define PSAGW_FAULT_MAGIC 0x544C4146u   /* "FALT" */
#define PSAGW_FACTORY_VERSION 1u
#define PSAGW_DEVICE_ID_MAX 128u

/* role */
#define PSAGW_ROLE_SENSOR 1u
#define PSAGW_ROLE_MONITOR 2u

/* CRC-32 (IEEE 802.3, as zlib's crc32) */
static inline uint32_t psagw_crc32(const void *data, size_t n)
{
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

/* Every field little-endian; crc32 (psagw_crc32) covers the bytes before it. */
struct psagw_factory_record {
    uint32_t magic;
    uint32_t version;
    uint32_t size;      /* sizeof(struct psagw_factory_record) */
    uint32_t role;      /* PSAGW_ROLE_* */
    uint32_t lifecycle; /* what the token reports: 0x3000 secured, 0x4000/0x5000 debug states,
                         * 0x2000 provisioning left unfinished (PSA lifecycle, IAT.md) */
    uint8_t huk[32];
    uint8_t iak[32];          /* HMAC-SHA256 initial attestation key */
    uint8_t psk[16];          /* TLS-PSK, used by key id from the non-secure side */
    uint8_t group_key[32];    /* the sensor records' group key (record keys derive from it) */
    uint8_t boot_seed[32];
    uint8_t implementation_id[32];
    uint8_t entropy_seed[64]; /* seeds TF-M's DRBG (NV seed): QEMU has no TRNG */
    char device_id[PSAGW_DEVICE_ID_MAX + 4]; /* NUL-terminated; also the PSK identity */
    uint32_t crc32;
};

/* What the secure side records when TF-M stops the system on a fault (tfm_core_panic: a fault
 * in the secure state, or one the non-secure side caused in it, such as a SecureFault for a
 * non-secure access to secure memory). It survives the reset that follows; the sensor
 * partition reports it once (SENSOR_FN_INFO) and marks it reported. */
struct psagw_fault_record {
    uint32_t magic;
    uint32_t count;    /* faults since the factory */
    uint32_t pending;  /* 1 until reported */
    uint32_t cfsr, hfsr, sfsr, sfar, bfar;
};

#endif
