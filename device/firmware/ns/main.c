/*
 * main.c: the firmware's non-secure application on TF-M (docs/firmware.md). It runs the same
 * application code as the emulator (device/nspe/app.c: the sensor or the monitor, MQTT 5 with
 * the PSA-IAT exchange, TLS-PSK by key id, commands, keep-alive, jittered reconnect) on TF-M's
 * NS interface: every PSA call goes through TF-M's veneers to its crypto, ITS and attestation
 * partitions and to our sensor partition. The device's identity (its id, which is also its
 * PSK identity, and its role) comes from the secure side, where the factory put it.
 *
 * Bare metal (no RTOS): one thread, so TF-M's NS interface dispatch is a direct call.
 */
#include <signal.h>
#include <string.h>

#include "app.h"
#include "platform.h"
#include "psa/crypto.h"
#include "psagw_fw.h"
#include "psagw_sensor_api.h"
#include "tfm_ns_interface.h"

psa_status_t sensor_device_info(struct psagw_device_info *info);

int32_t tfm_ns_interface_dispatch(veneer_fn fn, uint32_t arg0, uint32_t arg1, uint32_t arg2,
                                  uint32_t arg3)
{
    return fn(arg0, arg1, arg2, arg3);
}

static volatile sig_atomic_t never;

static const char *fault_name(const struct psagw_device_info *i)
{
    if (i->sfsr)
        return "SecureFault";
    if (i->cfsr & 0xFF00u)
        return "BusFault";
    if (i->cfsr & 0xFFu)
        return "MemManage fault";
    if (i->cfsr >> 16)
        return "UsageFault";
    return i->hfsr ? "HardFault" : "a fatal error";
}

/* The isolation self-test the modem asks for (psadev-fw run --selftest): what the hardware and
 * TF-M must refuse the non-secure side. The second check does not return: the secure side
 * stops the system on the fault, records it, and reports it after the reset. */
static __attribute__((noinline)) void selftest(void)
{
    /* TF-M's token for a known challenge (0x00..0x1f), for the verifier to check offline */
    uint8_t token[PSA_INITIAL_ATTEST_MAX_TOKEN_SIZE]; /* on the stack: main is shallow here */
    uint8_t challenge[32];
    size_t tlen = 0;
    for (unsigned i = 0; i < sizeof(challenge); i++)
        challenge[i] = (uint8_t)i;
    psa_status_t st = psa_initial_attest_get_token(challenge, sizeof(challenge), token,
                                                   sizeof(token), &tlen);
    fw_log("selftest: token for challenge 000102..1f: PSA status %ld, %u bytes", (long)st,
           (unsigned)tlen);
    for (size_t off = 0; st == PSA_SUCCESS && off < tlen; off += 64) {
        char hex[129];
        size_t k = tlen - off < 64 ? tlen - off : 64;
        for (size_t i = 0; i < k; i++) {
            static const char d[] = "0123456789abcdef";
            hex[2 * i] = d[token[off + i] >> 4];
            hex[2 * i + 1] = d[token[off + i] & 15];
        }
        hex[2 * k] = '\0';
        fw_log("selftest: token %s", hex);
    }
    uint8_t buf[32];
    size_t n = 0;
    st = psa_export_key(NSPE_PSK_KEY_ID, buf, sizeof(buf), &n);
    fw_log("selftest: psa_export_key(TLS PSK) %s (PSA error %ld)",
           st == PSA_ERROR_NOT_PERMITTED ? "refused by TF-M" : "NOT REFUSED", (long)st);
    volatile const uint32_t *secret = (volatile const uint32_t *)(uintptr_t)PSAGW_FACTORY_ADDR;
    fw_log("selftest: reading the factory record (secure memory, 0x%08lx) from the non-secure "
           "side", (unsigned long)PSAGW_FACTORY_ADDR);
    uint32_t v = *secret;
    fw_log("selftest: FAILED: the non-secure side read 0x%08lx from secure memory",
           (unsigned long)v);
}

int main(void)
{
    static struct mqtt_client m;
    /* where to is the modem's business (psadev-fw run --gateway): these only name it in messages */
    static struct app_cfg cfg = {.host = "gateway", .port = "modem", .interval_ms = 2000, .qos = 1};
    struct psagw_device_info info;

    fw_platform_init();
    psa_status_t st = sensor_device_info(&info);
    fw_link_hello(st == PSA_SUCCESS ? info.id : "(unprovisioned)");
    fw_log("psagw firmware: TF-M PSA framework %lu, device %s, role %s",
           (unsigned long)psa_framework_version(), st == PSA_SUCCESS ? info.id : "-",
           st != PSA_SUCCESS                    ? "-"
           : info.role == PSAGW_ROLE_MONITOR ? "monitor"
                                                : "sensor");
    if (st == PSA_SUCCESS && info.fault_pending)
        fw_log("secure side: the last reset followed %s (fault %lu since the factory): "
               "SFSR=0x%08lx SFAR=0x%08lx CFSR=0x%08lx HFSR=0x%08lx%s", fault_name(&info),
               (unsigned long)info.faults, (unsigned long)info.sfsr, (unsigned long)info.sfar,
               (unsigned long)info.cfsr, (unsigned long)info.hfsr,
               info.sfsr & 0x8u ? " (AUVIOL: a non-secure access to secure memory)" : "");
    if (st == PSA_SUCCESS && fw_link_selftest_requested())
        selftest();
    if (st != PSA_SUCCESS) {
        fw_log("the secure side has no factory record (PSA error %ld): provision the device "
               "(psadev-fw provision)", (long)st);
        for (;;)
            __asm volatile("wfi");
    }
    memcpy(m.id, info.id, sizeof(m.id) - 1);
    if (info.role == PSAGW_ROLE_MONITOR)
        app_monitor_run(&cfg, &m, &never);
    else
        app_sensor_run(&cfg, &m, &never);
    for (;;)
        __asm volatile("wfi");
}
