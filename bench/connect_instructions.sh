#!/usr/bin/env bash
# User-space instructions per TLS-PSK connect (TCP, TLS 1.2 PSK-AES128-CCM handshake, MQTT
# CONNECT/CONNACK, DISCONNECT, close) under callgrind: psagw with its own TLS handshake, the
# same with PSA-IAT attestation (MQTT 5, AUTH challenge, token, verdict), psagw with OpenSSL's
# handshake (listener handshake = "openssl"), and bench/connect_floor (a bare OpenSSL server). Instruction counts do not drift with this VM's speed the way times do, so code
# changes on the connect path are compared with this (docs/performance.md); time ratios come
# from bench/run.sh.
#
# Usage: bench/connect_instructions.sh [BUILD_DIR]   env: N (300 connects per server)
# Each figure is (instructions with N connects - instructions with none) / N.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:-build}" && pwd)
PSAGW=$BUILD/gateway/psagw
LOADGEN=$BUILD/bench/loadgen
FLOOR=$BUILD/bench/connect_floor
N=${N:-300}
PSK=00112233445566778899aabbccddeeff
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/psagw-cg.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT

bench_registry "$PSAGW" "$DIR/registry.db" "$N" $PSK "$DIR/psk_file"

# instructions SERVER N: the server's total user-space instructions for N connects
instructions() {
  local server=$1 n=$2 port out=$DIR/cg.out pid
  port=$(free_port)
  rm -f "$out"
  case $server in
  floor) valgrind --tool=callgrind --callgrind-out-file="$out" "$FLOOR" "$port" $PSK \
           >/dev/null 2>&1 & ;;
  *)
    local handshake=psagw attest=off
    [ "$server" = openssl ] && handshake=openssl
    [ "$server" = attested ] && attest=required
    printf 'registry = "%s";\nlog_level = "error";\nstats_interval = 0;\nworkers = 1;\n' \
      "$DIR/registry.db" > "$DIR/psagw.conf"
    printf 'listeners = ({ address = "127.0.0.1:%s"; handshake = "%s"; });\n' "$port" \
      "$handshake" >> "$DIR/psagw.conf"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$PSAGW" serve \
      --config "$DIR/psagw.conf" --attestation-default $attest >/dev/null 2>&1 & ;;
  esac
  pid=$!
  for _ in $(seq 1 600); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  if [ "$n" -gt 0 ] && [ "$server" = attested ]; then
    LOADGEN_IAK=$IAK "$LOADGEN" connect 127.0.0.1 "$port" $PSK bench "$n" >/dev/null
  elif [ "$n" -gt 0 ]; then
    "$LOADGEN" connect 127.0.0.1 "$port" $PSK bench "$n" >/dev/null
  fi
  kill -TERM $pid
  wait $pid 2>/dev/null || true
  # the probe connection of the wait above is in both runs and cancels out
  awk '/^summary:/ {print $2}' "$out"
}

printf '%-34s %12s\n' "server" "instr/connect"
for s in psagw attested openssl floor; do
  base=$(instructions $s 0)
  with=$(instructions $s "$N")
  case $s in
  psagw) name="psagw (own TLS 1.2 handshake)" ;;
  attested) name="psagw, with PSA-IAT attestation" ;;
  openssl) name="psagw (handshake = \"openssl\")" ;;
  floor) name="connect_floor (bare OpenSSL)" ;;
  esac
  printf '%-34s %12s\n' "$name" "$(awk -v a="$base" -v b="$with" -v n="$N" 'BEGIN{printf "%.0f", (b - a) / n}')"
done
