#!/usr/bin/env bash
# Firmware devices under QEMU (docs/firmware.md): N TF-M Profile Small devices (default 8)
# powered on together against one gateway (attestation required, reference values known).
# Prints, per device and summarised:
#   boot to attested   host time from starting psadev-fw (QEMU, BL2, TF-M, the NS application)
#                      to the device's "connected ... attested=1" line
#   handshake_ms       the device's own clock (QEMU's SysTick follows host time): TCP through
#                      the modem and the TLS-PSK handshake; connect_ms: MQTT CONNECT, the PSA-IAT
#                      exchange (TF-M's token) and CONNACK
#   QEMU RSS and CPU   each QEMU process while its device publishes every 2 s, and what that
#                      makes the devices one host can run (memory and CPU bound, this machine)
# Usage: bench/firmware.sh [BUILD] [N]     (BUILD default build; the firmware in build-fw/images)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
N=${2:-8}
PSAGW=$BUILD/gateway/psagw
PSADEV_FW=$BUILD/device/psadev-fw
IMAGES=$PWD/build-fw/images
[ -x "$PSADEV_FW" ] && [ -f "$IMAGES/tfm_s_ns_signed.bin" ] || { echo "bench/firmware: make build firmware first" >&2; exit 1; }
W=$(mktemp -d /tmp/psagw-fwbench.XXXXXX)
PIDS=()
GW=
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -n "$GW" ] && kill "$GW" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

for i in $(seq 1 "$N"); do
  "$PSADEV_FW" provision --nv "$W/d$i.nv" --id "fwb-$i" --role sensor --images "$IMAGES" \
    --manifest "$W/d$i.json" >/dev/null
  "$PSAGW" device import "$W/d$i.json" --registry "$W/reg.db" >/dev/null
done
cat > "$W/gw.conf" <<CONF
registry = "$W/reg.db";
attestation = { default = "required"; require_known_implementation = true;
                require_known_measurements = true; };
CONF
"$PSAGW" serve --config "$W/gw.conf" --listen 127.0.0.1:0 --attestation-default required 2> "$W/gw.log" &
GW=$!
for _ in $(seq 1 100); do grep -q "event=started" "$W/gw.log" && break; sleep 0.05; done
PORT=$(grep 'event=listening' "$W/gw.log" | head -1 | sed 's/.* port=\([0-9]*\).*/\1/')

declare -A T0
for i in $(seq 1 "$N"); do
  T0[$i]=$(date +%s%N)
  "$PSADEV_FW" run --nv "$W/d$i.nv" --images "$IMAGES" --gateway 127.0.0.1:$PORT > "$W/d$i.out" 2>&1 &
  PIDS+=($!)
done
declare -A TA
for _ in $(seq 1 600); do
  done_all=1
  for i in $(seq 1 "$N"); do
    if [ -z "${TA[$i]:-}" ]; then
      if grep -q "attested=1" "$W/d$i.out" 2>/dev/null; then TA[$i]=$(date +%s%N); else done_all=0; fi
    fi
  done
  [ $done_all = 1 ] && break
  sleep 0.05
done

printf '%-8s %18s %13s %11s\n' device boot_to_attested handshake_ms connect_ms
boots=() hs=() cs=()
for i in $(seq 1 "$N"); do
  [ -n "${TA[$i]:-}" ] || { echo "fwb-$i did not attest: $(tail -3 "$W/d$i.out")"; exit 1; }
  b=$(( (TA[$i] - T0[$i]) / 1000000 ))
  h=$(grep -o 'handshake_ms=[0-9]*' "$W/d$i.out" | head -1 | cut -d= -f2)
  c=$(grep -o 'connect_ms=[0-9]*' "$W/d$i.out" | head -1 | cut -d= -f2)
  boots+=($b) hs+=($h) cs+=($c)
  printf 'fwb-%-4s %15s ms %13s %11s\n' "$i" "$b" "$h" "$c"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
maxof() { printf '%s\n' "$@" | sort -n | tail -1; }

# each QEMU while its device publishes: RSS and CPU over 10 s
qemus=$(pgrep -f "qemu-system-arm -M mps2-an521 .*$W/" || true)
declare -A C0
hz=$(getconf CLK_TCK)
for q in $qemus; do C0[$q]=$(awk '{print $14 + $15}' /proc/$q/stat); done
sleep 10
rss_sum=0 cpu_sum=0 nq=0
for q in $qemus; do
  c1=$(awk '{print $14 + $15}' /proc/$q/stat)
  cpu_sum=$(( cpu_sum + c1 - C0[$q] ))
  rss_sum=$(( rss_sum + $(awk '/VmRSS/ {print $2}' /proc/$q/status) ))
  nq=$((nq + 1))
done
rss_kb=$(( rss_sum / nq ))
cpu_pct=$(awk -v t=$cpu_sum -v n=$nq -v hz=$hz 'BEGIN {printf "%.2f", 100 * t / hz / 10 / n}')
mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
cores=$(nproc)
echo
echo "$N firmware devices powered on together, one gateway, attestation required:"
echo "  boot to attested: median $(median "${boots[@]}") ms, max $(maxof "${boots[@]}") ms (host clock)"
echo "  TLS-PSK handshake through the modem: median $(median "${hs[@]}") ms; CONNECT + PSA-IAT + CONNACK: median $(median "${cs[@]}") ms (device clock)"
echo "  each QEMU publishing every 2 s: RSS $((rss_kb / 1024)) MiB, CPU ${cpu_pct}% of a core"
awk -v m=$mem_kb -v r=$rss_kb -v c=$cores -v p=$cpu_pct 'BEGIN {
  mem = int(m / r); cpu = (p > 0) ? int(c * 100 / p) : 0;
  printf "  devices per host (this machine, %d cores, %d GiB): memory allows %d, CPU %d\n",
    c, m / 1048576, mem, cpu }'
