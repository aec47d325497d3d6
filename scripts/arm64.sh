#!/usr/bin/env bash
# The gateway on 64-bit Arm Linux (docs/arm64.md): cross-build with Debian's
# gcc-aarch64-linux-gnu and the arm64 multiarch -dev packages, and run the tests with the arm64
# binaries under qemu-user on this machine.
#
#   scripts/arm64.sh deps     installs the cross toolchain, qemu-user and the arm64 libraries
#   scripts/arm64.sh build    cross-builds the gateway, psadev and the tests into build-arm64
#   scripts/arm64.sh test     the unit tests (CTest, qemu-aarch64 as the emulator), then
#                             integration tests with the arm64 psagw, against this machine's
#                             clients (mosquitto_pub/sub, and the x86 tools from build/)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_ARM64:-build-arm64}
NATIVE=${BUILD_NATIVE:-build}
# the integration tests run with the arm64 gateway: TLS-PSK (both record layers), attestation,
# pub/sub, the MQTT conformance checks, the cloud spool and the device emulator against it
TESTS=${ARM64_TESTS:-"handshakes pubsub attestation record_layer mqtt_conformance cloud_spool cloud device mqtt5 revocation malformed topic_limits http systemd"}

SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
deps() {
  local pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user crossbuild-essential-arm64
              libssl-dev:arm64 libsqlite3-dev:arm64 libconfig-dev:arm64 libjansson-dev:arm64
              libcmocka-dev:arm64 libmicrohttpd-dev:arm64)
  local missing=()
  dpkg --print-foreign-architectures | grep -qx arm64 || { $SUDO dpkg --add-architecture arm64; missing=(update); }
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "arm64: installing ${missing[*]/update/}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null
}

build() {
  cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" -- --no-print-directory
  mkdir -p "$BUILD/qemu"
  printf '#!/bin/sh\nexec qemu-aarch64 %s "$@"\n' "$(pwd)/$BUILD/gateway/psagw" > "$BUILD/qemu/psagw"
  chmod +x "$BUILD/qemu/psagw"
  file "$BUILD/gateway/psagw" | grep -q 'ARM aarch64' || { echo "arm64: not an aarch64 binary"; exit 1; }
}

run_tests() {
  echo "arm64: unit tests under qemu-aarch64"
  (cd "$BUILD" && ctest -R '^unit\.' --output-on-failure -j "$(nproc)")
  local failed=() t
  for t in $TESTS; do
    local t0=$SECONDS log="$BUILD/integration-$t.log"
    if PSAGW="$(pwd)/$BUILD/qemu/psagw" LOADGEN="$(pwd)/$NATIVE/bench/loadgen" \
       IAT_CLIENT="$(pwd)/$NATIVE/tests/iat_client" PSADEV="$(pwd)/$NATIVE/device/psadev" \
       TLS_EDGE_CLIENT="$(pwd)/$NATIVE/tests/tls_edge_client" VECTORS="$(pwd)/tests/vectors" \
       SANITIZED=0 timeout 600 bash "tests/integration/test_$t.sh" > "$log" 2>&1; then
      echo "arm64: integration.$t passed ($(grep -c '^ok' "$log") checks, $((SECONDS - t0)) s)"
    else
      echo "arm64: integration.$t FAILED ($log):"; tail -15 "$log"; failed+=("$t")
    fi
  done
  [ ${#failed[@]} -eq 0 ] || { echo "arm64: failed: ${failed[*]}"; exit 1; }
}

case "${1:-}" in
  deps) deps ;;
  build) deps; build ;;
  test) run_tests ;;
  *) echo "usage: scripts/arm64.sh deps|build|test"; exit 2 ;;
esac
