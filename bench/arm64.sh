#!/usr/bin/env bash
# psagw and mosquitto, both built for arm64 (psagw: build-arm64, scripts/arm64.sh; mosquitto:
# Debian's arm64 package, unpacked), both run under qemu-user on this machine, in one run: the
# idle-memory and message workloads of bench/run.sh, as ratios (docs/arm64.md). Emulation
# makes absolute times meaningless; the two servers pay the same translation cost, so the
# ratios say how psagw compares on the gateway's class of hardware.
#
# Usage: bench/arm64.sh   env: IDLE (2000), MESSAGES (5000 per publisher), PUBLISHERS (10)
set -euo pipefail
cd "$(dirname "$0")/.."
ARM=${BUILD_ARM64:-build-arm64}
[ -x "$ARM/qemu/psagw" ] || scripts/arm64.sh build
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
# mosquitto's arm64 build and the arm64 libraries it links (multiarch: beside the amd64 ones)
MQ_DIR=$ARM/mosquitto
if [ ! -x "$MQ_DIR/root/usr/sbin/mosquitto" ]; then
  $SUDO apt-get install -y -q --no-install-recommends libcjson1:arm64 libdlt2:arm64 \
    libwrap0:arm64 libsystemd0:arm64 libcap2:arm64 libssl3:arm64 >/dev/null
  rm -rf "$MQ_DIR"; mkdir -p "$MQ_DIR"
  (cd "$MQ_DIR" && apt-get download mosquitto:arm64 >/dev/null && dpkg -x mosquitto_*_arm64.deb root)
fi
printf '#!/bin/sh\nexec qemu-aarch64 %s "$@"\n' "$(pwd)/$MQ_DIR/root/usr/sbin/mosquitto" > "$MQ_DIR/mosquitto"
chmod +x "$MQ_DIR/mosquitto"
echo "arm64 under qemu-user ($(qemu-aarch64 --version | head -1)): psagw $(qemu-aarch64 "$ARM/gateway/psagw" version | cut -d' ' -f2), $("$MQ_DIR/mosquitto" -h 2>/dev/null | head -1)"
PSAGW_RUN="$(pwd)/$ARM/qemu/psagw" MOSQUITTO="$(pwd)/$MQ_DIR/mosquitto" ROUTING_AND_IDLE_ONLY=1 \
  IDLE=${IDLE:-2000} MESSAGES=${MESSAGES:-5000} PUBLISHERS=${PUBLISHERS:-10} \
  bench/run.sh "${BUILD:-build}"
