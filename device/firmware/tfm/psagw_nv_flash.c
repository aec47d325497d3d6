/*
 * psagw_nv_flash.c: TF-M's storage areas on the device's non-volatile memory.
 *
 * TF-M's an521 platform emulates its flash on SSRAM1, which QEMU loads from the image files at
 * every start: ITS, the OTP and the NV counters would be blank after each power cycle. BL2 and
 * the secure image are linked with -Wl,--wrap=Driver_FLASH0 (device/firmware/tfm/CMakeLists.txt),
 * so every flash access goes through this driver instead: offsets below PSAGW_NV_FLASH_SPLIT
 * (the BL2 and image slots) are passed to the platform's own driver, the others (protected
 * storage, ITS, OTP and NV counters, at the offsets TF-M's flash layout gives them) are
 * served from the PSRAM QEMU maps from the device's file (psagw_factory.h). The semantics are
 * the platform driver's: byte program unit, 4 KiB sectors, erased value 0xFF.
 */
#include <stdint.h>
#include <string.h>

#include "Driver_Flash.h"
#include "psagw_factory.h"

extern ARM_DRIVER_FLASH __real_Driver_FLASH0;

#define SECTOR_SIZE 0x1000u
#define FLASH_SIZE 0x00400000u
#define ERASED 0xFFu

static uint8_t *nv(uint32_t addr)
{
    return (uint8_t *)(uintptr_t)(PSAGW_NV_BASE + addr);
}

/* 1 when [addr, addr + cnt) lies in the NV part, 0 when in the image part, -1 when it crosses
 * the split or leaves the flash */
static int where(uint32_t addr, uint32_t cnt)
{
    if (addr >= FLASH_SIZE || cnt > FLASH_SIZE - addr)
        return -1;
    if (addr >= PSAGW_NV_FLASH_SPLIT)
        return 1;
    return addr + cnt <= PSAGW_NV_FLASH_SPLIT ? 0 : -1;
}

static ARM_DRIVER_VERSION get_version(void)
{
    return __real_Driver_FLASH0.GetVersion();
}

static ARM_FLASH_CAPABILITIES get_capabilities(void)
{
    return __real_Driver_FLASH0.GetCapabilities();
}

static int32_t initialize(ARM_Flash_SignalEvent_t cb)
{
    return __real_Driver_FLASH0.Initialize(cb);
}

static int32_t uninitialize(void)
{
    return __real_Driver_FLASH0.Uninitialize();
}

static int32_t power_control(ARM_POWER_STATE state)
{
    return __real_Driver_FLASH0.PowerControl(state);
}

static int32_t read_data(uint32_t addr, void *data, uint32_t cnt)
{
    switch (where(addr, cnt)) {
    case 0:
        return __real_Driver_FLASH0.ReadData(addr, data, cnt);
    case 1:
        memcpy(data, nv(addr), cnt);
        return (int32_t)cnt;
    default:
        return ARM_DRIVER_ERROR_PARAMETER;
    }
}

static int32_t program_data(uint32_t addr, const void *data, uint32_t cnt)
{
    switch (where(addr, cnt)) {
    case 0:
        return __real_Driver_FLASH0.ProgramData(addr, data, cnt);
    case 1:
        /* as the platform's driver does (a plain copy, not NOR's bit clearing) */
        memcpy(nv(addr), data, cnt);
        return (int32_t)cnt;
    default:
        return ARM_DRIVER_ERROR_PARAMETER;
    }
}

static int32_t erase_sector(uint32_t addr)
{
    if (addr % SECTOR_SIZE)
        return ARM_DRIVER_ERROR_PARAMETER;
    switch (where(addr, SECTOR_SIZE)) {
    case 0:
        return __real_Driver_FLASH0.EraseSector(addr);
    case 1:
        memset(nv(addr), ERASED, SECTOR_SIZE);
        return ARM_DRIVER_OK;
    default:
        return ARM_DRIVER_ERROR_PARAMETER;
    }
}

static int32_t erase_chip(void)
{
    return ARM_DRIVER_ERROR_UNSUPPORTED; /* it would erase the images and the device's storage */
}

static ARM_FLASH_STATUS get_status(void)
{
    return __real_Driver_FLASH0.GetStatus();
}

static ARM_FLASH_INFO *get_info(void)
{
    return __real_Driver_FLASH0.GetInfo();
}

ARM_DRIVER_FLASH __wrap_Driver_FLASH0 = {
    get_version, get_capabilities, initialize, uninitialize, power_control, read_data,
    program_data, erase_sector, erase_chip, get_status, get_info,
};
