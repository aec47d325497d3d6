#!/usr/bin/env bash
# Cross-builds the device code for Cortex-M33 (arm-none-eabi-gcc -Os, --gc-sections, newlib
# nano) and prints flash and static RAM per component (docs/design/targets.md, docs/footprint.md):
#   the NSPE image: Mbed TLS (pure PSA client, TLS 1.2 PSK), the MQTT 5 client and codec, the
#     PSA client shims and TLS glue, the application; the network stack, RTOS and TF-M's NS
#     interface are stubs (device/platform/cm33), so they are not counted;
#   our SPE services: initial attestation and the sensor partition with the token, CBOR and
#     record code they use (not Mbed TLS's crypto core, not TF-M's SPM or storage).
# Usage: scripts/footprint.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-footprint}
MB=third_party/mbedtls
command -v arm-none-eabi-gcc >/dev/null || { echo "footprint: arm-none-eabi-gcc missing (scripts/bootstrap.sh)" >&2; exit 1; }
[ -f $MB/include/mbedtls/build_info.h ] || { echo "footprint: $MB missing (scripts/bootstrap.sh)" >&2; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"
CC=arm-none-eabi-gcc
CFLAGS=(-mcpu=cortex-m33 -mthumb -mfloat-abi=soft -Os -std=c11 -ffunction-sections -fdata-sections
        -fno-common -fstack-usage -Icommon/include -Idevice/config -I$MB/include -I$MB/library)

compile() { # component config files...
  local comp=$1 cfg=$2; shift 2
  mkdir -p "$OUT/$comp"
  for f in "$@"; do
    $CC "${CFLAGS[@]}" "-DMBEDTLS_CONFIG_FILE=\"$cfg\"" -w -c "$f" -o "$OUT/$comp/$(basename "${f%.c}").o"
  done
  arm-none-eabi-ar rcs "$OUT/lib$comp.a" "$OUT/$comp"/*.o
}

# NSPE image
compile nspe_mbedtls mbedtls_nspe_config.h $MB/library/*.c
compile nspe_mqtt mbedtls_nspe_config.h common/mqtt/mqtt_decode.c common/mqtt/mqtt_encode.c device/nspe/mqtt_client.c
compile nspe_psa mbedtls_nspe_config.h device/nspe/psa_client.c device/nspe/attest_client.c device/nspe/tls_client.c
compile nspe_app mbedtls_nspe_config.h device/nspe/app.c device/nspe/sensor_client.c device/nspe/firmware_main.c
compile nspe_stubs mbedtls_nspe_config.h device/platform/cm33/platform_stubs.c
$CC "${CFLAGS[@]}" -Wl,--gc-sections -specs=nano.specs -specs=nosys.specs -Wl,-Map=$OUT/nspe.map \
  -o $OUT/nspe.elf -Wl,--start-group $OUT/libnspe_app.a $OUT/libnspe_psa.a $OUT/libnspe_mqtt.a \
  $OUT/libnspe_mbedtls.a $OUT/libnspe_stubs.a -Wl,--end-group

# our SPE services, kept alive by their entry points; PSA Crypto and ITS are the platform's
SPE_CFLAGS=(-Idevice/spe/include)
mkdir -p $OUT/spe_services
for f in device/spe/attest_service.c device/spe/sensor_partition.c device/spe/sensor_core.c device/spe/iat_crypto_psa.c \
         common/iat/iat.c common/cbor/cbor.c common/record/record.c; do
  $CC "${CFLAGS[@]}" "${SPE_CFLAGS[@]}" '-DMBEDTLS_CONFIG_FILE="mbedtls_spe_config.h"' -w \
    -c "$f" -o "$OUT/spe_services/$(basename "${f%.c}").o"
done
arm-none-eabi-ar rcs $OUT/libspe_services.a $OUT/spe_services/*.o
cat > $OUT/spe_entry.c <<'C'
/* Calls the services' entry points so --gc-sections keeps exactly what they reach. */
#include <stddef.h>
#include <stdint.h>
struct spe_device_info;
struct ipc_invec;
struct ipc_outvec;
void attest_service_boot(const struct spe_device_info *, const uint8_t *, const uint8_t *, int);
int32_t attest_service(int32_t, int32_t, const struct ipc_invec *, size_t, struct ipc_outvec *, size_t);
void sensor_partition_boot(const struct spe_device_info *, const char *);
int32_t sensor_service(int32_t, const struct ipc_invec *, size_t, struct ipc_outvec *, size_t);
int main(void)
{
    attest_service_boot(NULL, NULL, NULL, 0);
    sensor_partition_boot(NULL, NULL);
    return (int)attest_service(0, 0, NULL, 0, NULL, 0) + (int)sensor_service(0, NULL, 0, NULL, 0);
}
C
# The PSA functions and ITS come from TF-M's SPM; stub them to complete the link only.
cat > $OUT/spe_platform_stubs.c <<'C'
#include <stddef.h>
#include <stdint.h>
#define STUB(name) int32_t name(void); int32_t name(void) { return -134; }
STUB(psa_mac_compute) STUB(psa_hash_compute) STUB(psa_import_key) STUB(psa_destroy_key)
STUB(psa_aead_encrypt) STUB(psa_aead_decrypt) STUB(psa_generate_random)
STUB(psa_its_get) STUB(psa_its_set) STUB(mbedtls_platform_zeroize) STUB(plat_wall_ms)
C
$CC "${CFLAGS[@]}" -w -c $OUT/spe_entry.c -o $OUT/spe_entry.o
$CC "${CFLAGS[@]}" -w -c $OUT/spe_platform_stubs.c -o $OUT/spe_platform_stubs.o
$CC "${CFLAGS[@]}" -Wl,--gc-sections -specs=nano.specs -specs=nosys.specs -Wl,-Map=$OUT/spe.map \
  -o $OUT/spe_services.elf $OUT/spe_entry.o $OUT/libspe_services.a $OUT/spe_platform_stubs.o

# Sizes per component from the link maps: the input sections kept, summed per archive.
sizes() { # map archive-name-pattern -> "flash ram"
  awk -v pat="$2" '
    function hex(s,   i, c, v) {
      v = 0; s = tolower(s); sub(/^0x/, "", s)
      for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + c }
      return v
    }
    /^Linker script and memory map/ { kept = 1 }   # before it: the discarded sections
    kept && /^ \.(text|rodata|data|bss|ARM\.exidx|ARM\.extab)/ {
      name = $1
      if (NF >= 4) { size = hex($3); file = $4 }
      else { getline; size = hex($2); file = $3 }
      if (file !~ pat) next
      if (name ~ /^\.(bss|tbss)/) ram += size
      else if (name ~ /^\.data/) { ram += size; flash += size }
      else flash += size
    }
    END { printf "%d %d\n", flash, ram }' "$1"
}
row() { printf '  %-44s %9s %9s\n' "$1" "$2" "$3"; }
echo "footprint: Cortex-M33, arm-none-eabi-gcc $($CC -dumpversion) -Os --gc-sections, newlib nano"
echo
row "component" "flash B" "RAM B"
total_f=0; total_r=0
for c in nspe_mbedtls:"Mbed TLS 3.6 (PSA client, TLS 1.2 PSK)" nspe_mqtt:"MQTT 5 client + codec" \
         nspe_psa:"PSA crypto/attestation client, TLS glue" nspe_app:"application (sensor)"; do
  read -r f r < <(sizes $OUT/nspe.map "lib${c%%:*}\\.a")
  row "${c#*:}" $f $r
  total_f=$((total_f + f)); total_r=$((total_r + r))
done
row "NSPE total (our code + Mbed TLS; target <= 24576 / static)" $total_f $total_r
read -r f r < <(sizes $OUT/nspe.map "libc_nano|libg_nano|libgcc|libnosys")
row "  + C library (newlib nano, libgcc)" $f $r
read -r f r < <(sizes $OUT/spe.map "libspe_services\\.a")
row "SPE services: attestation + sensor partition (target <= 6144)" $f $r
echo
echo "(RAM here is static data + bss; the heap peak of a TLS session is measured on the host"
echo " by psadev connect --stats, see docs/footprint.md)"
