#!/usr/bin/env bash
# Device -> cloud, QoS 1, side by side in one run (docs/design/targets.md): psagw with its durable spool
# (every message committed to SQLite before its PUBACK) against mosquitto 2.0 with a bridge to
# the same cloud (no durability: it acknowledges from memory). The cloud is a local mosquitto
# with TLS and client certificates, as in the tests. Prints device-side messages/s and PUBACK
# latency p50/p99, the server's CPU per message, and when the cloud had everything.
#
# Usage: bench/cloud.sh [BUILD_DIR]   env: SERVER_CPUS, HELPER_CPUS (bench/lib.sh), PUBLISHERS (20), MESSAGES (10000 per publisher),
# WINDOW (32 unacknowledged per publisher), LOADGEN_RATE (messages/s per publisher: an open
# loop at a fixed offered load instead of WINDOW; latency counts from each message's scheduled
# time), SPOOL_DIR (where psagw's spool goes; default the run's directory on this disk: a
# tmpfs such as /dev/shm shows what the disk's fsync adds), HELPER_NICE (run the load generator,
# the cloud broker and its counter at this nice level, so the broker under test gets the CPU
# first on a machine they share), TMPDIR (where the run's directory goes), LOAD_LEVELS
# ("25 50 80": after the full-speed runs, psagw again at these percentages of the rate it
# reached, open loop, with PUBACK latency p50/p99/max beside the disk's own fdatasync latency
# measured by bench/fsync_probe in the spool's directory; "" skips it), LEVEL_SECONDS (4),
# ROUNDS (2: the full-speed runs go to psagw and to mosquitto in turns, a fresh server each time,
# the order alternating, MESSAGES split across the rounds: this VM's speed drifts by up to a
# third between minutes, and a ratio of two runs taken minutes apart measured the drift too)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BUILD=${1:-build}
PSAGW=$(cd "$BUILD" && pwd)/gateway/psagw
LOADGEN=$(cd "$BUILD" && pwd)/bench/loadgen
FSYNC_PROBE=$(cd "$BUILD" && pwd)/bench/fsync_probe
LOAD_LEVELS=${LOAD_LEVELS-25 50 80}
LEVEL_SECONDS=${LEVEL_SECONDS:-4}
PUBLISHERS=${PUBLISHERS:-20}
MESSAGES=${MESSAGES:-10000}
WINDOW=${WINDOW:-32}
ROUNDS=${ROUNDS:-2}
PSK=00112233445566778899aabbccddeeff
DIR=$(mktemp -d "${TMPDIR:-/tmp}/psagw-cloudbench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
PER_ROUND=$(( (MESSAGES + ROUNDS - 1) / ROUNDS ))
TOTAL=$((PUBLISHERS * PER_ROUND * ROUNDS))

# certificates for the cloud, the gateway (and bridge) and the counter
C=$DIR/certs
"$(dirname "$0")/../scripts/cloud-certs.sh" "$C" gw counter
chmod 755 "$DIR" "$C"; chmod 644 "$C"/*

CLOUD_PORT=$(free_port)
cat >"$DIR/cloud.conf" <<EOF
user $(id -un)
per_listener_settings false
persistence false
log_dest none
max_queued_messages 10000000
max_inflight_messages 1000
set_tcp_nodelay true
listener $CLOUD_PORT 127.0.0.1
cafile $C/ca.pem
certfile $C/server.pem
keyfile $C/server.key
require_certificate true
use_identity_as_username true
EOF
"${ON_HELPER[@]}" ${HELPER_NICE:+nice -n $HELPER_NICE} mosquitto -c "$DIR/cloud.conf" >/dev/null 2>&1 &
PIDS+=($!)
wait_port $CLOUD_PORT

# devices
: >"$DIR/psk_file"
for i in $(seq 0 $((PUBLISHERS - 1))); do printf 'cb%05d:%s\n' "$i" "$PSK"; done >>"$DIR/psk_file"
"$PSAGW" device import "$DIR/psk_file" --role sensor --attestation off --registry "$DIR/registry.db" >/dev/null
chmod 644 "$DIR/psk_file"

# counter: counts what reaches the cloud; prints the time the last one arrived
count_cloud() { # expected -> prints seconds from start until expected arrived (or "incomplete N")
  "${ON_HELPER[@]}" ${HELPER_NICE:+nice -n $HELPER_NICE} mosquitto_sub -h localhost -p $CLOUD_PORT --cafile "$C/ca.pem" --cert "$C/counter.pem" --key "$C/counter.key" \
    -q 1 -t 'psagw/#' -t 'bridge/#' -C "$1" -W 300 -F '%U' >"$DIR/counted" 2>/dev/null || true
}

declare -A R S
# run_one NAME PID PORT: one full-speed round; adds to NAME's sums in S (messages, wall time,
# CPU, the rounds' latency percentiles, what reached the cloud and when)
run_one() {
  local name=$1 pid=$2 port=$3 n=$((PUBLISHERS * PER_ROUND))
  count_cloud $n &
  local counter=$!
  sleep 0.5
  local c0 c1 out t0 got last
  t0=$(date +%s.%N)
  c0=$(cpu_ticks "$pid")
  out=$("${ON_HELPER[@]}" ${HELPER_NICE:+nice -n $HELPER_NICE} "$LOADGEN" ackbench 127.0.0.1 "$port" $PSK cb "$PUBLISHERS" "$PER_ROUND" "$WINDOW")
  c1=$(cpu_ticks "$pid")
  wait $counter || true
  got=$(wc -l <"$DIR/counted")
  last=$(tail -1 "$DIR/counted" 2>/dev/null || echo 0)
  S[$name.rounds]=$(( ${S[$name.rounds]:-0} + 1 ))
  S[$name.acked]=$(( ${S[$name.acked]:-0} + $(echo "$out" | sed -n 's/.*acked=\([0-9]*\).*/\1/p') ))
  S[$name.got]=$(( ${S[$name.got]:-0} + got ))
  S[$name.cpu]=$(( ${S[$name.cpu]:-0} + c1 - c0 ))
  local k
  for k in wall_s p50_ms p99_ms; do
    S[$name.$k]=$(awk -v a="${S[$name.$k]:-0}" -v b="$(echo "$out" | sed -n "s/.*$k=\([0-9.]*\).*/\1/p")" 'BEGIN{print a + b}')
  done
  # seconds from the round's start until the cloud had its last message (-1 once one round missed)
  S[$name.cloud_s]=$(awk -v s="${S[$name.cloud_s]:-0}" -v a="$t0" -v b="$last" 'BEGIN{ if (b > a && s >= 0) print s + b - a; else print -1}')
}
results() { # NAME -> R[NAME.*] from its rounds
  local name=$1 n=${S[$1.rounds]}
  R[$name.rate]=$(awk -v m=${S[$name.acked]} -v w=${S[$name.wall_s]} 'BEGIN{ if (w > 0) printf "%.0f", m / w}')
  R[$name.p50]=$(awk -v s=${S[$name.p50_ms]} -v n=$n 'BEGIN{printf "%.3f", s / n}')
  R[$name.p99]=$(awk -v s=${S[$name.p99_ms]} -v n=$n 'BEGIN{printf "%.3f", s / n}')
  R[$name.cpu_us]=$(awk -v d=${S[$name.cpu]} -v t=$TICK -v n=$TOTAL 'BEGIN{printf "%.1f", d / t * 1e6 / n}')
  R[$name.cloud]="${S[$name.got]}/$TOTAL"
  R[$name.cloud_s]=$(awk -v s=${S[$name.cloud_s]} -v n=$n 'BEGIN{ if (s > 0) printf "%.2f", s / n; else print "n/a"}')
}

# psagw: spool on this machine's disk, no rate limit (the cloud here has none)
GW_PORT=$(free_port)
cat >"$DIR/psagw.conf" <<EOF
registry = "$DIR/registry.db";
log_level = "info";
stats_interval = 0;
listeners = ( { address = "127.0.0.1:$GW_PORT"; } );
cloud = {
  host = "localhost"; port = $CLOUD_PORT; client_id = "gw";
  ca_file = "$C/ca.pem"; cert_file = "$C/gw.pem"; key_file = "$C/gw.key";
  max_publish_rate = 0; max_bytes_rate = 0; max_inflight = 100;
  spool = { path = "${SPOOL_DIR:-$DIR}/spool.db"; };
};
EOF
round_psagw() { # a fresh gateway and spool; its cloud_stats line is added to psagw.log
  rm -f "${SPOOL_DIR:-$DIR}"/spool.db*
  "${ON_SERVER[@]}" "$PSAGW" serve --config "$DIR/psagw.conf" --attestation-default off 2>"$DIR/psagw.round.log" &
  GW=$!; PIDS+=($GW); wait_port $GW_PORT
  sleep 1
  run_one psagw $GW $GW_PORT
  kill $GW; wait $GW 2>/dev/null || true
  grep 'event=cloud_stats' "$DIR/psagw.round.log" | tail -1 >> "$DIR/psagw.log" || true
}

# mosquitto with a bridge to the same cloud (what a mosquitto user would deploy)
MQ_PORT=$(free_port)
cat >"$DIR/mosquitto.conf" <<EOF
user $(id -un)
per_listener_settings false
persistence false
log_dest none
max_queued_messages 10000000
max_inflight_messages 20
set_tcp_nodelay true
listener $MQ_PORT 127.0.0.1
psk_hint psagw-bench
psk_file $DIR/psk_file
use_identity_as_username true
connection cloud
address localhost:$CLOUD_PORT
bridge_cafile $C/ca.pem
bridge_certfile $C/gw.pem
bridge_keyfile $C/gw.key
remote_clientid mqbridge
topic sensors/# out 1 "" bridge/
bridge_max_packet_size 0
max_inflight_messages 1000
EOF
round_mosquitto() {
  "${ON_SERVER[@]}" mosquitto -c "$DIR/mosquitto.conf" >/dev/null 2>"$DIR/mosquitto.err" &
  MQ=$!; PIDS+=($MQ); wait_port $MQ_PORT
  sleep 2
  run_one mosquitto $MQ $MQ_PORT
  kill $MQ; wait $MQ 2>/dev/null || true
}

: >"$DIR/psagw.log"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then round_psagw; round_mosquitto; else round_mosquitto; round_psagw; fi
done
results psagw
results mosquitto

# PUBACK latency at fixed offered loads below the maximum (open loop: each message is due at its
# scheduled time and its latency counts from then), beside the disk's fdatasync latency
LEVEL_ROWS=()
if [ -n "$LOAD_LEVELS" ] && [ -n "${R[psagw.rate]:-}" ]; then
  probe=$("$FSYNC_PROBE" "${SPOOL_DIR:-$DIR}" 400)
  FS_P50=$(echo "$probe" | sed 's/.*p50_us=\([0-9]*\).*/\1/')
  FS_P99=$(echo "$probe" | sed 's/.*p99_us=\([0-9]*\).*/\1/')
  # the same gateway with its metrics endpoint: the gateway's own view of each PUBLISH read to
  # its PUBACK queued (psagw_puback_latency_seconds), beside what the devices see
  HTTP_PORT=$(free_port)
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/http.token"
  chmod 600 "$DIR/http.token"
  { cat "$DIR/psagw.conf"
    printf 'http = { listen = "127.0.0.1:%s"; token_file = "%s"; };\n' "$HTTP_PORT" "$DIR/http.token"
  } > "$DIR/psagw-levels.conf"
  # quantile Q of a Prometheus histogram NAME in FILE, as the upper bound of its bucket (ms)
  hist_q() { awk -v n="$2" -v q="$3" '
    $1 ~ "^"n"_bucket" { split($1, a, "le=\""); split(a[2], b, "\""); le[++k] = b[1]; c[k] = $2 }
    END { t = c[k]; for (i = 1; i <= k; i++) if (c[i] >= q * t) { printf "%.3f", le[i] * 1000; exit } }' "$1"; }
  for pct in $LOAD_LEVELS; do
    rm -f "${SPOOL_DIR:-$DIR}"/spool.db*
    "${ON_SERVER[@]}" "$PSAGW" serve --config "$DIR/psagw-levels.conf" --attestation-default off 2>>"$DIR/psagw-levels.log" &
    GW=$!; PIDS+=($GW); wait_port $GW_PORT
    sleep 0.5
    per=$(awk -v r="${R[psagw.rate]}" -v p=$pct -v n=$PUBLISHERS 'BEGIN{printf "%.1f", r * p / 100 / n}')
    msgs=$(awk -v r=$per -v s=$LEVEL_SECONDS 'BEGIN{m = int(r * s); print (m < 50 ? 50 : m)}')
    out=$(LOADGEN_RATE=$per "${ON_HELPER[@]}" ${HELPER_NICE:+nice -n $HELPER_NICE} "$LOADGEN" ackbench 127.0.0.1 "$GW_PORT" $PSK cb "$PUBLISHERS" "$msgs" 1)
    curl -s -H "Authorization: Bearer $(cat "$DIR/http.token")" "http://127.0.0.1:$HTTP_PORT/metrics" > "$DIR/metrics.$pct" || true
    kill $GW; wait $GW 2>/dev/null || true
    g50=$(hist_q "$DIR/metrics.$pct" psagw_puback_latency_seconds 0.5)
    g99=$(hist_q "$DIR/metrics.$pct" psagw_puback_latency_seconds 0.99)
    c99=$(hist_q "$DIR/metrics.$pct" psagw_spool_commit_seconds 0.99)
    p50=$(echo "$out" | sed 's/.*p50_ms=\([0-9.]*\).*/\1/')
    p99=$(echo "$out" | sed 's/.*p99_ms=\([0-9.]*\).*/\1/')
    mx=$(echo "$out" | sed 's/.*max_ms=\([0-9.]*\).*/\1/')
    rate=$(echo "$out" | sed 's/.*rate_per_s=\([0-9]*\).*/\1/')
    LEVEL_ROWS+=("$(printf '%5s%% %10.0f %10s %10s %10s %10s %14s %10s %10s %10s' "$pct" \
      "$(awk -v r=$per -v n=$PUBLISHERS 'BEGIN{print r * n}')" "$rate" "$p50" "$p99" "$mx" \
      "$(awk -v a=$p99 -v f=$FS_P99 'BEGIN{ if (f > 0) printf "%.2f", a * 1000 / f; else print "n/a"}')" \
      "${g50:-n/a}" "${g99:-n/a}" "${c99:-n/a}")")
  done
fi
# the rounds' cloud_stats lines: commits and records summed, COMMIT's mean weighted by commits
SPOOL_LINE=$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  c += v["spool_commits"]; w += v["spool_written"]; t += v["spool_commit_avg_us"] * v["spool_commits"]
  if (v["spool_commit_max_us"] > mx) mx = v["spool_commit_max_us"] }
  END { printf "psagw spool: %d commits, %.1f messages per commit, COMMIT (sync) %.0f us on average, %d us at most",
        c, c ? w / c : 0, c ? t / c : 0, mx }' "$DIR/psagw.log")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a+0 > 0 && b+0 > 0) printf "%.3f", a / b; else print "n/a"}'; }
LOAD="window $WINDOW"
[ -n "${LOADGEN_RATE:-}" ] && LOAD="open loop, $LOADGEN_RATE messages/s each ($((PUBLISHERS * ${LOADGEN_RATE%.*})) offered)"
echo "device -> cloud, QoS 1: $PUBLISHERS devices x $((PER_ROUND * ROUNDS)) messages (64 B), $LOAD, $(nproc) cores,"
echo "$ROUNDS rounds in turns (rates: all messages / all rounds' time; latencies: the rounds' mean);"
echo "$CPU_NOTE"
[ -n "${SPOOL_DIR:-}" ] && echo "psagw's spool in $SPOOL_DIR"
echo "psagw: every message committed to its SQLite spool (WAL, synchronous=FULL) before the PUBACK;"
echo "mosquitto: bridge, acknowledges from memory (a crash loses what the cloud has not got)"
printf '\n%-44s %12s %12s %10s %12s\n' "figure" "psagw" "mosquitto" "ratio" "target"
row() { printf '%-44s %12s %12s %10s %12s\n' "$1" "${R[psagw.$2]}" "${R[mosquitto.$2]}" "$(ratio "${R[psagw.$2]}" "${R[mosquitto.$2]}")" "$3"; }
row "QoS 1 messages/s acknowledged to devices" rate ">= 3 (ratio)"
row "PUBACK latency p50 (ms)" p50 ""
row "PUBACK latency p99 (ms)" p99 ""
row "server CPU per message (us)" cpu_us ""
row "arrived at the cloud" cloud "all"
row "seconds until the cloud had all" cloud_s ""
echo
echo "$SPOOL_LINE"
if [ ${#LEVEL_ROWS[@]} -gt 0 ]; then
  echo
  echo "psagw's PUBACK latency under offered load (open loop, $PUBLISHERS devices, ${LEVEL_SECONDS} s each), against"
  echo "this disk's fdatasync of a 4 KiB append (bench/fsync_probe, same directory): p50 ${FS_P50} us, p99 ${FS_P99} us"
  echo "(gw: the gateway's own PUBLISH-read-to-PUBACK-queued, and COMMIT p99, from its /metrics"
  echo " histograms, as their bucket's upper bound)"
  printf '%6s %10s %10s %10s %10s %10s %14s %10s %10s %10s\n' "load" "offered/s" "acked/s" "p50 ms" "p99 ms" "max ms" "p99/fsync p99" "gw p50" "gw p99" "commit p99"
  for r in "${LEVEL_ROWS[@]}"; do echo "$r"; done
  echo "target (issue 16): p99 <= 3x the fsync p99 at 50% load"
fi
