#!/usr/bin/env bash
# A/B of two psagw builds on the connect workload: both servers run side by side and take the
# connects in turns (the order alternating each round), so this VM's drift falls on both alike;
# prints each one's server CPU per connect and B/A. How session 10 measured each change to the
# connect path natively (bench/connect_instructions.sh counts instructions instead).
#
# Usage: bench/ab.sh BUILD_A_PSAGW BUILD_B_PSAGW   env: N (1000 connects a round), ROUNDS (8),
# MODE (off: plain TLS-PSK connects; required: each one attested with PSA-IAT)
# e.g.  cp build/gateway/psagw /tmp/psagw.before; (change, make build);
#       bench/ab.sh /tmp/psagw.before build/gateway/psagw
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ $# -eq 2 ] || { sed -n '7,10p' "$0" | sed 's/^# //' >&2; exit 2; }
BIN_A=$(readlink -f "$1")
BIN_B=$(readlink -f "$2")
LOADGEN=$(cd "$(dirname "$0")/../build/bench" && pwd)/loadgen
N=${N:-1000}
ROUNDS=${ROUNDS:-8}
MODE=${MODE:-off}
PSK=00112233445566778899aabbccddeeff
DIR=$(mktemp -d "${TMPDIR:-/tmp}/psagw-ab.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT

bench_registry "$BIN_A" "$DIR/a.db" "$N" $PSK "$DIR/psk_file"
cp "$DIR/a.db" "$DIR/b.db" # each its own registry: attestation history commits stay apart

start() { # name binary port -> pid
  printf 'registry = "%s";\nlog_level = "error";\nstats_interval = 0;\n' "$DIR/$1.db" > "$DIR/$1.conf"
  "${ON_SERVER[@]}" "$2" serve --config "$DIR/$1.conf" --listen 127.0.0.1:"$3" \
    --attestation-default "$MODE" >/dev/null 2>"$DIR/$1.log" &
  echo $!
}
connects() { # port n
  if [ "$MODE" = required ]; then
    LOADGEN_IAK=$IAK "${ON_HELPER[@]}" "$LOADGEN" connect 127.0.0.1 "$1" $PSK bench "$2" >/dev/null
  else
    "${ON_HELPER[@]}" "$LOADGEN" connect 127.0.0.1 "$1" $PSK bench "$2" >/dev/null
  fi
}
declare -A PORT PID CPU
for k in a b; do
  PORT[$k]=$(free_port)
  bin=$BIN_A; [ $k = b ] && bin=$BIN_B
  PID[$k]=$(start $k "$bin" ${PORT[$k]})
  PIDS+=(${PID[$k]})
  wait_port ${PORT[$k]} || { echo "server $k did not start: $(cat "$DIR/$k.log")" >&2; exit 1; }
  # warm-up, within the N registered devices
  connects ${PORT[$k]} $((N < 200 ? N : 200)) || { echo "connects to $k failed: $(tail -3 "$DIR/$k.log")" >&2; exit 1; }
  CPU[$k]=0
done
for r in $(seq 1 "$ROUNDS"); do
  order="a b"; [ $((r % 2)) = 0 ] && order="b a"
  for k in $order; do
    c0=$(cpu_ticks ${PID[$k]})
    connects ${PORT[$k]} "$N" || { echo "connects to $k failed: $(tail -3 "$DIR/$k.log")" >&2; exit 1; }
    c1=$(cpu_ticks ${PID[$k]})
    CPU[$k]=$((CPU[$k] + c1 - c0))
  done
done
echo "$CPU_NOTE; $ROUNDS rounds of $N connects each, MODE=$MODE"
awk -v a=${CPU[a]} -v b=${CPU[b]} -v n=$((N * ROUNDS)) -v t=$TICK -v A="$BIN_A" -v B="$BIN_B" 'BEGIN{
  printf "A %-50s %8.1f us a connect\nB %-50s %8.1f us a connect\nB/A %.3f\n", A, a / t * 1e6 / n, B, b / t * 1e6 / n, b / a }'
