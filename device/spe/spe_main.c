/*
 * spe_main.c: psadev-spe, the emulated device's secure side, in its own process.
 *
 *   psadev-spe serve --state DIR --fd N [--profile legacy|psa2] [--readings FILE]
 *       boots: opens the key store in DIR, measures its own executable and its parent's (the
 *       NSPE) the way a bootloader measures images, then serves psa_call requests on fd N
 *       until the NSPE closes the channel.
 *   psadev-spe provision --id ID --role sensor|monitor --state DIR [--lifecycle NAME|HEX]
 *       [--group-key-file F] [--manifest OUT.json] --nspe PATH
 *       the factory step: creates the PSK, the IAK and the group key inside the new device's
 *       key store and writes the manifest (0600) an operator imports into the gateway.
 *
 * Nothing the NSPE sends is trusted: the IPC layer bounds every length, the services check
 * every handle and key id, and the caller's identity comes from the channel.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "psa/internal_trusted_storage.h"
#include "spe.h"

int spe_measure_file(const char *path, uint8_t out[32])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    psa_hash_operation_t op = psa_hash_operation_init();
    uint8_t buf[16384];
    size_t n, len = 0;
    int rc = psa_hash_setup(&op, PSA_ALG_SHA_256) == PSA_SUCCESS ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        rc = psa_hash_update(&op, buf, n) == PSA_SUCCESS ? 0 : -1;
    fclose(f);
    if (rc == 0 && psa_hash_finish(&op, out, 32, &len) != PSA_SUCCESS)
        rc = -1;
    psa_hash_abort(&op);
    return rc;
}

static int32_t dispatch(void *ctx, uint32_t service, int32_t type, const struct ipc_invec *in,
                        size_t n_in, struct ipc_outvec *out, size_t n_out)
{
    (void)ctx;
    switch (service) {
    case IPC_SVC_CRYPTO:
        return crypto_service(type, in, n_in, out, n_out);
    case IPC_SVC_ATTEST:
        return attest_service(SPE_OWNER_NSPE, type, in, n_in, out, n_out);
    case IPC_SVC_SENSOR:
        return sensor_service(type, in, n_in, out, n_out);
    default:
        return PSA_ERROR_NOT_SUPPORTED;
    }
}

static int load_info(struct spe_device_info *info)
{
    size_t n = 0;
    return psa_its_get(SPE_UID_DEVICE_INFO, 0, sizeof(*info), info, &n) == PSA_SUCCESS &&
                   n == sizeof(*info)
               ? 0
               : -1;
}

static int cmd_serve(const char *state, int fd, enum iat_profile profile, const char *readings)
{
    if (its_init(state) != 0 || psa_crypto_init() != PSA_SUCCESS) {
        fprintf(stderr, "psadev-spe: cannot open the key store in %s\n", state);
        return 1;
    }
    struct spe_device_info info;
    if (load_info(&info) != 0) {
        fprintf(stderr, "psadev-spe: %s holds no provisioned device (psadev provision)\n", state);
        return 1;
    }
    uint8_t meas_spe[32], meas_nspe[32];
    char nspe_exe[64];
    snprintf(nspe_exe, sizeof(nspe_exe), "/proc/%d/exe", (int)getppid());
    if (spe_measure_file("/proc/self/exe", meas_spe) != 0 ||
        spe_measure_file(nspe_exe, meas_nspe) != 0) {
        fprintf(stderr, "psadev-spe: cannot measure the images\n");
        return 1;
    }
    attest_service_boot(&info, meas_spe, meas_nspe, profile);
    sensor_partition_boot(&info, readings);
    for (;;) {
        int rc = ipc_serve_one(fd, dispatch, NULL);
        if (rc == 1)
            return 0; /* the NSPE is gone */
        if (rc < 0) {
            fprintf(stderr, "psadev-spe: malformed request from the NSPE, channel closed\n");
            return 1;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: psadev-spe serve|provision ... (see spe_main.c)\n");
        return 2;
    }
    static const struct option opts[] = {
        {"state", 1, NULL, 's'}, {"fd", 1, NULL, 'f'}, {"profile", 1, NULL, 'p'},
        {"id", 1, NULL, 'i'},    {"role", 1, NULL, 'r'}, {"lifecycle", 1, NULL, 'l'},
        {"group-key-file", 1, NULL, 'g'}, {"manifest", 1, NULL, 'm'}, {"nspe", 1, NULL, 'n'},
        {"readings", 1, NULL, 'R'},
        {NULL, 0, NULL, 0}};
    const char *state = NULL, *id = NULL, *role = NULL, *lifecycle = NULL, *group = NULL;
    const char *manifest = NULL, *nspe = NULL, *readings = NULL;
    int fd = -1;
    enum iat_profile profile = IAT_PROFILE_LEGACY;
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'f': fd = atoi(optarg); break;
        case 'p': profile = strcmp(optarg, "psa2") == 0 ? IAT_PROFILE_PSA2 : IAT_PROFILE_LEGACY; break;
        case 'i': id = optarg; break;
        case 'r': role = optarg; break;
        case 'l': lifecycle = optarg; break;
        case 'g': group = optarg; break;
        case 'm': manifest = optarg; break;
        case 'n': nspe = optarg; break;
        case 'R': readings = optarg; break;
        default: return 2;
        }
    }
    if (!state) {
        fprintf(stderr, "psadev-spe: --state DIR is required\n");
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0 && fd >= 0)
        return cmd_serve(state, fd, profile, readings);
    if (strcmp(argv[1], "provision") == 0)
        return spe_provision(state, id, role, lifecycle, group, manifest, nspe);
    fprintf(stderr, "psadev-spe: bad arguments\n");
    return 2;
}
