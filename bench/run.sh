#!/usr/bin/env bash
# psagw vs mosquitto 2.0, same machine, same client, same run (docs/design/targets.md). Prints, for each
# server and as a ratio: server CPU per connect (TCP + TLS-PSK + CONNECT/CONNACK + close),
# resident memory per idle connection, server CPU per QoS 0, 1 and 2 message from 10
# publishers to 1 subscriber and per QoS 1 message to a shared subscription group of 3, and
# wall-clock rates. Server CPU is utime+stime from
# /proc/PID/stat before and after each workload, so the load generator does not blur it.
#
# Usage: bench/run.sh [BUILD_DIR]   env: SERVER_CPUS, HELPER_CPUS (bench/lib.sh), LAT_LEVELS ("25 50 80": QoS 1 PUBACK latency at these
# percentages of the lower of the two servers' maximum, open loop; "" skips), CONNECTS (2000),
# CONNECT_ROUNDS (5: the connects go in turns across the servers and the floor), ROUNDS (2: the
# message workloads go in turns across the two servers), STORM_ROUNDS (4: the storms, warm and
# on servers just started, likewise; each storm is one sample of a noisy wall time), IDLE (10000), MESSAGES (20000 per
# publisher), PUBLISHERS (10); PSAGW_RUN and MOSQUITTO: the servers to run (other builds, e.g.
# arm64 ones under qemu-user: bench/arm64.sh); ROUTING_AND_IDLE_ONLY=1: only the idle-memory and
# message workloads
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BUILD=${1:-build}
PSAGW=$(cd "$BUILD" && pwd)/gateway/psagw
PSAGW_RUN=${PSAGW_RUN:-$PSAGW}
MOSQUITTO=${MOSQUITTO:-mosquitto}
ROUTING_AND_IDLE_ONLY=${ROUTING_AND_IDLE_ONLY:-0}
LOADGEN=$(cd "$BUILD" && pwd)/bench/loadgen
CONNECTS=${CONNECTS:-2000}
IDLE=${IDLE:-10000}
MESSAGES=${MESSAGES:-20000}
LAT_LEVELS=${LAT_LEVELS-25 50 80}
PUBLISHERS=${PUBLISHERS:-10}
PSK=00112233445566778899aabbccddeeff
DIR=$(mktemp -d "${TMPDIR:-/tmp}/psagw-bench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((IDLE + 100)) ]; then
  IDLE=$(( $(ulimit -n) - 200 ))
  echo "note: open-file limit $(ulimit -n); idle connections lowered to $IDLE"
fi
PAGE=$(getconf PAGESIZE)
rss_kb() { awk '{print $2 * '"$PAGE"' / 1024}' "/proc/$1/statm"; }

# identities: bench00000.. (publishers and idle clients), benchsub (subscriber)
total=$(( IDLE > CONNECTS ? IDLE : CONNECTS ))
bench_registry "$PSAGW" "$DIR/registry.db" "$total" $PSK "$DIR/psk_file"
for sub in benchsub benchsub0 benchsub1 benchsub2; do
  "$PSAGW" device add $sub --role monitor --psk $PSK --registry "$DIR/registry.db" >/dev/null
  printf '%s:%s\n' $sub "$PSK" >> "$DIR/psk_file"
done
# mosquitto started as root drops to its own user, which must read these bench-only keys
chmod 755 "$DIR"
chmod 644 "$DIR/psk_file"

start_psagw() { # port [attestation default] [registry]
  local port=$1 reg=${3:-$DIR/registry.db}
  # the same queue limits as the mosquitto configuration below
  # the storms come from one address (loopback): lift the per-address handshake bound, which
  # mosquitto does not have either; and no byte bound on queues (mosquitto's default: none)
  printf 'registry = "%s";\nlog_level = "error";\nstats_interval = 0;\nmqtt = { max_queued_messages = 1000000; max_queued_bytes = 2147483647; max_inflight_messages = 20; };\ntls = { max_handshakes = 100000; max_handshakes_per_address = 65535; };\n' \
    "$reg" > "$DIR/psagw.$port.conf"
  "${ON_SERVER[@]}" "$PSAGW_RUN" serve --config "$DIR/psagw.$port.conf" --listen 127.0.0.1:$port --attestation-default "${2:-off}" \
    >/dev/null 2>"$DIR/psagw.$port.log" &
  echo $!
}
start_mosquitto() { # port [max_inflight_messages]
  local port=$1 inflight=${2:-20}
  cat > "$DIR/mosquitto.conf" <<CONF
per_listener_settings false
persistence false
log_dest none
max_queued_messages 1000000
max_inflight_messages $inflight
listener $port 127.0.0.1
psk_hint psagw-bench
psk_file $DIR/psk_file
use_identity_as_username true
set_tcp_nodelay true
CONF
  "${ON_SERVER[@]}" $MOSQUITTO -c "$DIR/mosquitto.conf" >/dev/null 2>"$DIR/mosquitto.log" &
  echo $!
}

declare -A R
# idle_memory NAME PID PORT KEY: resident memory per idle connection with $IDLE devices
# connected (R[NAME.KEY], and the server's RSS then in R[NAME.rss_mb])
idle_memory() {
  local name=$1 pid=$2 port=$3 key=$4 r0 r1
  r0=$(rss_kb $pid)
  rm -f "$DIR/hold.$name"
  mkfifo "$DIR/hold.$name"
  "${ON_HELPER[@]}" "$LOADGEN" idle 127.0.0.1 $port $PSK bench $IDLE < "$DIR/hold.$name" > "$DIR/idle.$name" &
  local lg=$!
  exec 7>"$DIR/hold.$name"
  for _ in $(seq 1 1200); do grep -q ready "$DIR/idle.$name" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$DIR/idle.$name" || { echo "idle clients did not connect: $(cat $DIR/idle.$name)"; exit 1; }
  sleep 1
  r1=$(rss_kb $pid)
  exec 7>&-
  wait $lg || true
  R[$name.$key]=$(awk -v a=$r0 -v b=$r1 -v n=$IDLE 'BEGIN{printf "%.2f", (b - a) / n}')
  R[$name.rss_mb]=$(awk -v b=$r1 'BEGIN{printf "%.1f", b / 1024}')
}

# storm NAME PID PORT [IAK]: IDLE devices connect at once from 8 client threads; adds the wall
# time and the server's CPU to the NAME's sums (STORM_S, STORM_CPU, STORM_FAILED)
declare -A STORM_S STORM_CPU STORM_FAILED STORM_N
storm() {
  local name=$1 pid=$2 port=$3 c0 c1 out
  c0=$(cpu_ticks $pid)
  out=$(LOADGEN_IAK=${4:-} "${ON_HELPER[@]}" "$LOADGEN" storm 127.0.0.1 $port $PSK bench $IDLE 8) || true
  c1=$(cpu_ticks $pid)
  STORM_S[$name]=$(awk -v a=${STORM_S[$name]:-0} -v b="$(echo "$out" | sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p')" 'BEGIN{print a + b}')
  STORM_CPU[$name]=$(( ${STORM_CPU[$name]:-0} + c1 - c0 ))
  local failed
  failed=$(echo "$out" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
  STORM_FAILED[$name]=$(( ${STORM_FAILED[$name]:-0} + ${failed:-$IDLE} ))
  STORM_N[$name]=$(( ${STORM_N[$name]:-0} + 1 ))
  sleep 1
}
storm_results() { # name -> R[name.storm_*] (the mean of its storms)
  local n=${STORM_N[$1]:-0}
  [ "$n" -gt 0 ] || return 0
  R[$1.storm_s]=$(awk -v s=${STORM_S[$1]} -v n=$n 'BEGIN{printf "%.3f", s / n}')
  R[$1.storm_failed]=${STORM_FAILED[$1]}
  R[$1.storm_cpu_us]=$(awk -v d=${STORM_CPU[$1]} -v t=$TICK -v n=$((IDLE * n)) 'BEGIN{printf "%.1f", d / t * 1e6 / n}')
}

# pubsub NAME PID PORT WORKLOAD MESSAGES: one run of a message workload (0, 1, 2: QoS from
# PUBLISHERS publishers to 1 subscriber; sw1: QoS 1 with publishers that wait for each PUBACK;
# sh1: QoS 1 to a shared subscription group of 3), added to NAME's sums for that workload
declare -A PS_CPU PS_GOT PS_SENT PS_WALL PS_SPLIT
pubsub() {
  local name=$1 pid=$2 port=$3 q=$4 msgs=$5 c0 c1 out qos shared= window=
  qos=${q#sh}
  qos=${qos#sw}
  [ "$q" = sh1 ] && shared=3
  [ "$q" = sw1 ] && window=1 # stop-and-wait: each publisher waits for its PUBACK
  c0=$(cpu_ticks $pid)
  out=$(LOADGEN_SHARED=$shared LOADGEN_WINDOW=$window "${ON_HELPER[@]}" "$LOADGEN" pubsub 127.0.0.1 $port $PSK bench benchsub $PUBLISHERS $msgs $qos) || true
  c1=$(cpu_ticks $pid)
  local k=$name.$q got
  got=$(echo "$out" | sed -n 's/.*received=\([0-9]*\).*/\1/p')
  PS_CPU[$k]=$(( ${PS_CPU[$k]:-0} + c1 - c0 ))
  PS_GOT[$k]=$(( ${PS_GOT[$k]:-0} + ${got:-0} ))
  PS_SENT[$k]=$(( ${PS_SENT[$k]:-0} + PUBLISHERS * msgs ))
  PS_WALL[$k]=$(awk -v a=${PS_WALL[$k]:-0} -v b="$(echo "$out" | sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p')" 'BEGIN{print a + b}')
  if [ -n "$shared" ]; then
    PS_SPLIT[$k]=$(echo "$out" | grep -o 'sub[0-9]=[0-9]*' | sed 's/.*=//' | paste -sd/)
  fi
}
pubsub_results() { # name workload -> R[name.q<workload>_*]
  local k=$1.$2
  [ -n "${PS_SENT[$k]:-}" ] || return 0
  R[$1.q$2_us]=$(awk -v d=${PS_CPU[$k]} -v t=$TICK -v n=${PS_GOT[$k]} 'BEGIN{ if (n > 0) printf "%.2f", d / t * 1e6 / n; else print "n/a"}')
  R[$1.q$2_rate]=$(awk -v g=${PS_GOT[$k]} -v w=${PS_WALL[$k]} 'BEGIN{ if (w > 0) printf "%.0f", g / w}')
  R[$1.q$2_got]="${PS_GOT[$k]}/${PS_SENT[$k]}"
  [ -n "${PS_SPLIT[$k]:-}" ] && R[$1.q$2_split]=${PS_SPLIT[$k]}
  return 0
}

echo "$CPU_NOTE"
echo "psagw bench: $(nproc) cores, connects=$CONNECTS idle=$IDLE publishers=$PUBLISHERS messages/publisher=$MESSAGES, payload 64 B, TLS 1.2 PSK, MQTT 3.1.1"
echo
echo "attestation token verification, one core (target >= 300,000 tokens/s):"
"$(dirname "$LOADGEN")/iat_bench" 2 | sed 's/^/  /'
echo
if [ "$ROUTING_AND_IDLE_ONLY" != 1 ]; then
# Connects, interleaved: psagw, psagw with PSA-IAT attestation (MQTT 5 CONNECT + AUTH challenge
# + token + verify), mosquitto and the floor (bench/connect_floor.c: a one-thread blocking
# OpenSSL server doing the handshake, a fixed CONNACK and the close, nothing else) take
# CONNECTS / CONNECT_ROUNDS connects each in turn, CONNECT_ROUNDS times, after 100 each to warm
# up: this machine's speed drifts by up to a third between minutes, and turns put that drift on
# all four alike, which the ratios need
CONNECT_ROUNDS=${CONNECT_ROUNDS:-5}
declare -A CPID CPORT CCPU CWALL
CPORT[psagw]=$(free_port); CPID[psagw]=$(start_psagw ${CPORT[psagw]})
# its own copy of the registry: its attestation history commits would otherwise empty the
# other psagw's SQLite page cache once a second
cp "$DIR/registry.db" "$DIR/registry-attest.db"
CPORT[attest]=$(free_port); CPID[attest]=$(start_psagw ${CPORT[attest]} required "$DIR/registry-attest.db")
CPORT[mosquitto]=$(free_port); CPID[mosquitto]=$(start_mosquitto ${CPORT[mosquitto]})
CPORT[floor]=$(free_port)
"${ON_SERVER[@]}" "$(dirname "$LOADGEN")/connect_floor" ${CPORT[floor]} $PSK > "$DIR/floor.out" & CPID[floor]=$!
for k in psagw attest mosquitto floor; do PIDS+=(${CPID[$k]}); wait_port ${CPORT[$k]}; CCPU[$k]=0; CWALL[$k]=0; done
connects() { # server n -> loadgen's output line
  if [ "$1" = attest ]; then LOADGEN_IAK=$IAK "${ON_HELPER[@]}" "$LOADGEN" connect 127.0.0.1 ${CPORT[$1]} $PSK bench $2
  else "${ON_HELPER[@]}" "$LOADGEN" connect 127.0.0.1 ${CPORT[$1]} $PSK bench $2; fi
}
for k in psagw attest mosquitto floor; do connects $k 100 > /dev/null; done
per_round=$(( (CONNECTS + CONNECT_ROUNDS - 1) / CONNECT_ROUNDS ))
order=(psagw attest mosquitto floor)
for r in $(seq 1 $CONNECT_ROUNDS); do
  for i in 0 1 2 3; do
    k=${order[$(( (i + r) % 4 ))]}
    c0=$(cpu_ticks ${CPID[$k]})
    out=$(connects $k $per_round)
    c1=$(cpu_ticks ${CPID[$k]})
    CCPU[$k]=$(( CCPU[$k] + c1 - c0 ))
    CWALL[$k]=$(awk -v a=${CWALL[$k]} -v b="$(echo "$out" | sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p')" 'BEGIN{print a + b}')
    fails=$(echo "$out" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
    [ "$k" = attest ] && R[psagw.attest_failed]=$(( ${R[psagw.attest_failed]:-0} + ${fails:-0} ))
  done
done
n_conn=$(( per_round * CONNECT_ROUNDS ))
us_per() { awk -v d=${CCPU[$1]} -v t=$TICK -v n=$n_conn 'BEGIN{printf "%.1f", d / t * 1e6 / n}'; }
R[psagw.connect_us]=$(us_per psagw)
R[mosquitto.connect_us]=$(us_per mosquitto)
R[psagw.attest_connect_us]=$(us_per attest)
FLOOR_US=$(us_per floor)
for k in psagw mosquitto; do
  R[$k.connect_rate]=$(awk -v w=${CWALL[$k]} -v n=$n_conn 'BEGIN{ if (w > 0) printf "%.0f", n / w}')
done
for k in psagw attest mosquitto floor; do kill ${CPID[$k]} 2>/dev/null || true; wait ${CPID[$k]} 2>/dev/null || true; done
fi

# Idle memory: each server started afresh, IDLE devices connected and holding
P1=$(free_port); GW=$(start_psagw $P1); PIDS+=($GW); wait_port $P1
idle_memory psagw $GW $P1 idle_kb
kill $GW; wait $GW 2>/dev/null || true
P2=$(free_port); MQ=$(start_mosquitto $P2); PIDS+=($MQ); wait_port $P2
idle_memory mosquitto $MQ $P2 idle_kb
kill $MQ; wait $MQ 2>/dev/null || true
if [ "$ROUTING_AND_IDLE_ONLY" != 1 ]; then
# the same with devices on TLS 1.3 (external PSK, TLS_AES_128_GCM_SHA256)
export LOADGEN_TLS13=1
P5=$(free_port); GW=$(start_psagw $P5); PIDS+=($GW); wait_port $P5
rss_keep=${R[psagw.rss_mb]}; idle_memory psagw $GW $P5 idle13_kb; R[psagw.rss_mb]=$rss_keep
kill $GW; wait $GW 2>/dev/null || true
P6=$(free_port); MQ=$(start_mosquitto $P6); PIDS+=($MQ); wait_port $P6
rss_keep=${R[mosquitto.rss_mb]}; idle_memory mosquitto $MQ $P6 idle13_kb; R[mosquitto.rss_mb]=$rss_keep
kill $MQ; wait $MQ 2>/dev/null || true
unset LOADGEN_TLS13
fi

# Storms and message workloads in turns, like the connects: both servers run side by side (the
# one not working is idle) and each workload goes ROUNDS times to each (a storm STORM_ROUNDS
# times), the order alternating, MESSAGES split across the rounds; times and CPU are summed. mosquitto 2.0.11 stops delivering
# QoS 2 to a subscriber once its in-flight quota is in use (it delivered 64 of 100 messages and
# then nothing, here; in-flight quota fixes came in 2.0.13): its QoS 2 turns go to a second
# mosquitto with the in-flight bound lifted, psagw keeps 20
ROUNDS=${ROUNDS:-2}
STORM_ROUNDS=${STORM_ROUNDS:-4}
P1=$(free_port); GW=$(start_psagw $P1); PIDS+=($GW); wait_port $P1
P2=$(free_port); MQ=$(start_mosquitto $P2); PIDS+=($MQ); wait_port $P2
P7=$(free_port); MQ2=$(start_mosquitto $P7 0); PIDS+=($MQ2); wait_port $P7
turns() { # r -> the two servers' names, in this round's order
  if [ $(( $1 % 2 )) = 1 ]; then echo psagw mosquitto; else echo mosquitto psagw; fi
}
if [ "$ROUTING_AND_IDLE_ONLY" != 1 ]; then
  for r in $(seq 1 $STORM_ROUNDS); do
    for name in $(turns $r); do
      if [ $name = psagw ]; then storm psagw $GW $P1; else storm mosquitto $MQ $P2; fi
    done
  done
  storm_results psagw
  storm_results mosquitto
fi
per_round=$(( (MESSAGES + ROUNDS - 1) / ROUNDS ))
for q in 0 1 sw1 2 sh1; do
  for r in $(seq 1 $ROUNDS); do
    for name in $(turns $r); do
      if [ $name = psagw ]; then pubsub psagw $GW $P1 $q $per_round
      elif [ $q = 2 ]; then pubsub mosquitto $MQ2 $P7 $q $per_round
      else pubsub mosquitto $MQ $P2 $q $per_round; fi
    done
  done
  pubsub_results psagw $q
  pubsub_results mosquitto $q
done
kill $GW $MQ $MQ2 2>/dev/null || true
wait $GW $MQ $MQ2 2>/dev/null || true

if [ "$ROUTING_AND_IDLE_ONLY" != 1 ]; then
# the storm again on servers just started, as when every device reconnects at once after a
# restart of the gateway: nothing warm (registry pages, the allocator's free lists, TLS object
# pools); in turns, a fresh server each time
for r in $(seq 1 $STORM_ROUNDS); do
  for name in $(turns $r); do
    PR=$(free_port)
    if [ $name = psagw ]; then SR=$(start_psagw $PR); else SR=$(start_mosquitto $PR); fi
    PIDS+=($SR); wait_port $PR
    storm ${name}_restart $SR $PR
    kill $SR; wait $SR 2>/dev/null || true
  done
done
for name in psagw mosquitto; do
  storm_results ${name}_restart
  R[$name.restart_storm_s]=${R[${name}_restart.storm_s]}
  R[$name.restart_storm_failed]=${R[${name}_restart.storm_failed]}
  R[$name.restart_storm_cpu_us]=${R[${name}_restart.storm_cpu_us]}
done

# the storm with PSA-IAT attestation (psagw only)
P3=$(free_port); GW=$(start_psagw $P3 required); PIDS+=($GW); wait_port $P3
storm attest $GW $P3 $IAK
storm_results attest
R[psagw.attest_storm_s]=${R[attest.storm_s]}
R[psagw.attest_storm_failed]=${R[attest.storm_failed]}
R[psagw.attest_storm_cpu_us]=${R[attest.storm_cpu_us]}
kill $GW; wait $GW 2>/dev/null || true
for k in attest_connect_us attest_failed attest_storm_s attest_storm_failed attest_storm_cpu_us; do
  R[mosquitto.$k]="n/a"
done

# QoS 1 PUBACK latency on the local path (no cloud) at fixed offered loads, open loop (each
# message due at its scheduled time, latency counted from then): each server's maximum rate
# first (window 32), then LAT_LEVELS percent of the lower of the two, the same load for both
if [ -n "$LAT_LEVELS" ]; then
  lat_server() { # name -> pid and port in LS_PID, LS_PORT
    LS_PORT=$(free_port)
    if [ "$1" = psagw ]; then LS_PID=$(start_psagw $LS_PORT); else LS_PID=$(start_mosquitto $LS_PORT); fi
    PIDS+=($LS_PID); wait_port $LS_PORT
  }
  for name in psagw mosquitto; do
    lat_server $name
    out=$("${ON_HELPER[@]}" "$LOADGEN" ackbench 127.0.0.1 $LS_PORT $PSK bench $PUBLISHERS 5000 32) || true
    R[$name.ack_max]=$(echo "$out" | sed -n 's/.*rate_per_s=\([0-9]*\).*/\1/p')
    kill $LS_PID; wait $LS_PID 2>/dev/null || true
  done
  LAT_BASE=$(awk -v a="${R[psagw.ack_max]:-0}" -v b="${R[mosquitto.ack_max]:-0}" 'BEGIN{print (a < b ? a : b)}')
  for pct in $LAT_LEVELS; do
    per=$(awk -v r=$LAT_BASE -v p=$pct -v n=$PUBLISHERS 'BEGIN{printf "%.1f", r * p / 100 / n}')
    msgs=$(awk -v r=$per 'BEGIN{m = int(r * 4); print (m < 50 ? 50 : m)}')
    for name in psagw mosquitto; do
      lat_server $name
      out=$(LOADGEN_RATE=$per "${ON_HELPER[@]}" "$LOADGEN" ackbench 127.0.0.1 $LS_PORT $PSK bench $PUBLISHERS $msgs 1) || true
      R[$name.lat${pct}_p50]=$(echo "$out" | sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p')
      R[$name.lat${pct}_p99]=$(echo "$out" | sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p')
      kill $LS_PID; wait $LS_PID 2>/dev/null || true
    done
  done
fi
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a+0 > 0 && b+0 > 0) printf "%.3f", a / b; else print "n/a"}'; }
# the targets are ratios in this run (issue 16): psagw / mosquitto unless the row says
# otherwise; "met" compares the ratio printed with the target
met() { # ratio target -> yes / no / ""
  case "$2" in
    "<= "*) awk -v r="$1" -v t="${2#<= }" 'BEGIN{ if (r == "n/a" || r == "") print ""; else print (r + 0 <= t + 0 ? "yes" : "no")}' ;;
    ">= "*) awk -v r="$1" -v t="${2#>= }" 'BEGIN{ if (r == "n/a" || r == "") print ""; else print (r + 0 >= t + 0 ? "yes" : "no")}' ;;
    *) echo "" ;;
  esac
}
line() { printf '%-48s %12s %12s %8s %8s %4s\n' "$1" "$2" "$3" "$4" "$5" "$(met "$4" "$5")"; }
printf '\n%-48s %12s %12s %8s %8s %4s\n' "figure" "psagw" "mosquitto" "ratio" "target" "met"
row() { # a workload this run did not do (ROUTING_AND_IDLE_ONLY) is left out
  [ -z "${R[psagw.$2]:-}" ] && [ -z "${R[mosquitto.$2]:-}" ] && return 0
  line "$1" "${R[psagw.$2]:-n/a}" "${R[mosquitto.$2]:-n/a}" "$(ratio "${R[psagw.$2]:-}" "${R[mosquitto.$2]:-}")" "$3"
}
row "server CPU per connect (us)" connect_us "<= 0.7"
row "connects per second (client-bound)" connect_rate ""
[ -n "${FLOOR_US:-}" ] && [ -n "${R[psagw.connect_us]:-}" ] &&
  line "  the floor (us); ratio: psagw / floor" "$FLOOR_US" "" "$(ratio "${R[psagw.connect_us]}" "$FLOOR_US")" "<= 1.05"
[ -n "${R[psagw.attest_connect_us]:-}" ] &&
  line "server CPU per connect with PSA-IAT (us) [2]" "${R[psagw.attest_connect_us]}" "n/a" \
    "$(ratio "${R[psagw.attest_connect_us]}" "${R[psagw.connect_us]}")" "<= 1.15"
row "attested connects failed" attest_failed "0"
row "attested storm: $IDLE devices at once (s)" attest_storm_s ""
row "attested storm: failed connections" attest_storm_failed "0"
row "attested storm: server CPU per connect (us)" attest_storm_cpu_us ""
row "RSS per idle connection (KB)" idle_kb "<= 0.11"
row "  the same, devices on TLS 1.3 (KB)" idle13_kb ""
row "server RSS with idle connections (MB)" rss_mb ""
row "connect storm: $IDLE devices at once (s)" storm_s "<= 0.6"
row "connect storm: failed connections" storm_failed "0"
row "connect storm: server CPU per connect (us)" storm_cpu_us ""
row "connect storm on servers just started: $IDLE devices (s)" restart_storm_s "<= 0.6"
row "  just started: failed connections" restart_storm_failed "0"
row "  just started: server CPU per connect (us)" restart_storm_cpu_us ""
row "server CPU per QoS 0 message (us)" q0_us "<= 0.12"
row "QoS 0 messages/s delivered" q0_rate ""
row "QoS 0 delivered/sent" q0_got ""
row "server CPU per QoS 1 message, window 32 (us)" q1_us ""
row "QoS 1 messages/s delivered" q1_rate ""
row "QoS 1 delivered/sent" q1_got ""
row "server CPU per QoS 1 message, stop-and-wait (us)" qsw1_us "<= 0.3"
row "stop-and-wait QoS 1 messages/s delivered" qsw1_rate ""
row "stop-and-wait QoS 1 delivered/sent" qsw1_got ""
row "server CPU per QoS 2 message (us) [1]" q2_us ""
row "QoS 2 messages/s delivered" q2_rate ""
row "QoS 2 delivered/sent" q2_got ""
row "server CPU per QoS 1 message, shared by 3 (us)" qsh1_us ""
row "shared QoS 1 messages/s delivered" qsh1_rate ""
row "shared QoS 1 delivered/sent" qsh1_got ""
line "shared QoS 1 split across the 3 members" "${R[psagw.qsh1_split]:-}" "${R[mosquitto.qsh1_split]:-}" "" ""
if [ -n "${LAT_BASE:-}" ]; then
  row "QoS 1 PUBACKs/s at most, window 32 (local)" ack_max ""
  for pct in $LAT_LEVELS; do
    row "PUBACK p50 at $pct% of $LAT_BASE/s (ms)" lat${pct}_p50 ""
    row "PUBACK p99 at $pct% of $LAT_BASE/s (ms)" lat${pct}_p99 ""
  done
fi
echo
echo "ratio = psagw / mosquitto (below 1: psagw uses less), both measured in this run; targets"
echo "from issue 16 (docs/performance.md); met: the ratio of this run against its target."
echo "[1] mosquitto with max_inflight_messages 0 (unlimited): 2.0.11 stalls on QoS 2 with 20; psagw with 20."
echo "[2] ratio: attested / plain connect of psagw in this run."
