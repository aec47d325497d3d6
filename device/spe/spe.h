/*
 * spe.h: the emulated secure processing environment: its services and their owners.
 *
 * Key owners (mbedtls_key_owner_id_t) follow TF-M's convention: non-secure clients are
 * negative (the NSPE is -1), secure partitions positive. A key belongs to exactly one owner
 * and only requests made in that owner's name can use it.
 */
#ifndef PSADEV_SPE_H
#define PSADEV_SPE_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#include "psa/crypto.h"
#include "psagw/iat.h"

#include "../platform/ipc.h"
#include "../platform/sensor_ipc.h"

#ifndef PSADEV_VERSION
#define PSADEV_VERSION "0.1.0"
#endif

/* Who signs this project's device images: the signer ID claimed for the SW components
 * (SHA-256 of "psagw device image signer v1"; a real platform would use its signing key). */
#define SPE_IMAGE_SIGNER_ID                                                                   \
    {0xca, 0x0c, 0xd0, 0xda, 0x74, 0xeb, 0xd7, 0x6a, 0x73, 0x7f, 0x70, 0x1d, 0x0a, 0xea, 0xd0,  \
     0xcf, 0xc0, 0x93, 0x4c, 0x1f, 0x62, 0x68, 0x78, 0x07, 0x7a, 0x0b, 0x5f, 0xc7, 0x3f, 0x3a,  \
     0xd1, 0xa9}

/* What provisioning stored about the device (ITS uid SPE_UID_DEVICE_INFO). */
struct spe_device_info {
    char id[129];
    char role[16];
    uint32_t lifecycle;
    uint8_t instance_id[IAT_INSTANCE_ID_SIZE];
    uint8_t implementation_id[32];
};
#define SPE_UID_DEVICE_INFO 0x1000u

/* Attestation service call types (IPC_SVC_ATTEST). */
#define ATTEST_FN_GET_TOKEN 1
#define ATTEST_FN_GET_TOKEN_SIZE 2

#define SPE_OWNER_NSPE (-1)
#define SPE_OWNER_ATTEST 0x100  /* initial attestation service: the IAK */
#define SPE_OWNER_SENSOR 0x101  /* sensor partition: the group application key */

/* Persistent key ids (PSA_KEY_ID_USER_MIN range) created at provisioning. */
#define SPE_KEY_PSK 0x5001u       /* owner NSPE: TLS-PSK, usable for derivation only */
#define SPE_KEY_IAK 0x5002u       /* owner ATTEST: HMAC key, never exported */
#define SPE_KEY_GROUP 0x5003u     /* owner SENSOR: application group key */

/* spe_main.c: SHA-256 of an image file, as a bootloader measures images. */
int spe_measure_file(const char *path, uint8_t out[32]);

/* its.c: files in the device's state directory. */
int its_init(const char *dir);

/* crypto_service.c */
int32_t crypto_service(int32_t type, const struct ipc_invec *in, size_t n_in,
                       struct ipc_outvec *out, size_t n_out);

/* sensor_partition.c */
void sensor_partition_boot(const struct spe_device_info *info, const char *readings_file);
int32_t sensor_service(int32_t type, const struct ipc_invec *in, size_t n_in,
                       struct ipc_outvec *out, size_t n_out);

/* provision.c */
int spe_provision(const char *state, const char *id, const char *role, const char *lifecycle,
                  const char *group_key_file, const char *manifest, const char *nspe);

/* attest_service.c */
void attest_service_boot(const struct spe_device_info *info, const uint8_t meas_spe[32],
                         const uint8_t meas_nspe[32], enum iat_profile profile);
int32_t attest_service(int32_t client_id, int32_t type, const struct ipc_invec *in, size_t n_in,
                       struct ipc_outvec *out, size_t n_out);

#endif
