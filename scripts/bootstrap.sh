#!/usr/bin/env bash
# Installs every Debian package that psagw's build, tests, demo and benchmarks need.
# Idempotent: when everything is there it checks and returns in well under a second.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libssl-dev openssl libsqlite3-dev sqlite3 libconfig-dev libcbor-dev libjansson-dev
  libmicrohttpd-dev prometheus curl chromium chromium-driver python3-selenium
  libcmocka-dev mosquitto mosquitto-clients gnutls-bin
  procps iproute2 dpkg-dev debhelper lintian python3-minimal python3-paho-mqtt binutils util-linux gdb gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi
  # the TF-M firmware (scripts/build-firmware.sh) and its emulated board: TF-M's build steps
  # need jinja2 and yaml, BL2's image signing (MCUboot's imgtool) cbor2, click, cryptography
  # and intelhex; git makes TF-M's tree the repository its version step expects
  qemu-system-arm git python3-jinja2 python3-yaml python3-cbor2 python3-click python3-cryptography
  python3-intelhex xxd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

fetch_mbedtls() { "$(dirname "$0")/fetch-mbedtls.sh"; }

if [ ${#missing[@]} -eq 0 ]; then
  fetch_mbedtls
  exit 0
fi

echo "bootstrap: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts the mosquitto service on install; the tests and the demo run their own brokers
# on ports they pick, so a system broker on 1883 is only in the way.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true # only its promtool is used
fi
fetch_mbedtls
