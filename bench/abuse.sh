#!/usr/bin/env bash
# Abuse, side by side (docs/design/targets.md, "Under abuse"): each attack is replayed against a
# fresh psagw and a fresh mosquitto 2.0 with the same TLS-PSK devices and queue limits, and for
# each server it prints the peak RSS during the attack, the CPU it used, the log bytes it wrote,
# and a legitimate device's connect + publish time during the attack (worst of 3), beside the
# same device's time before the attack. Not a test (it prints figures): `make abuse`, or
# bench/abuse.sh [BUILD_DIR]. Takes a few minutes.
#
# The attacker connects from 127.0.0.2 where it can choose (python), from 127.0.0.1 otherwise;
# the legitimate device from 127.0.0.1. The attacks: a subscriber that stops reading under a
# QoS 0 flood; 2,000 handshakes stalled
# after 31 bytes; open files exhausted (both servers under a hard limit of 256); 50 retained
# messages on topics of 30,000 levels; 100,000 subscriptions from one client; a flood of TLS
# records that carry no data (TLS 1.3 KeyUpdates); 2,000 handshakes with unknown identities.
#
# env: SECONDS_PER_ATTACK (10), ATTACKS (a subset of the names below, space-separated)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BUILD=${1:-build}
PSAGW=$(cd "$BUILD" && pwd)/gateway/psagw
LOADGEN=$(cd "$BUILD" && pwd)/bench/loadgen
EDGE=$(cd "$BUILD" && pwd)/tests/tls_edge_client
DURATION=${SECONDS_PER_ATTACK:-10}
PSK=00112233445566778899aabbccddeeff
DIR=$(mktemp -d "${TMPDIR:-/tmp}/psagw-abuse.XXXXXX")
SERVER=
JOBS=()
cleanup() {
  for p in "${JOBS[@]:-}" $SERVER; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
PAGE_KB=$(( $(getconf PAGESIZE) / 1024 ))

# devices: legit (the one whose latency is measured), mon-1, pub0..pub9
: >"$DIR/psk_file"
for id in legit mon-1 pub0 pub1 pub2 pub3 pub4 pub5 pub6 pub7 pub8 pub9; do
  printf '%s:%s\n' "$id" "$PSK" >>"$DIR/psk_file"
done
grep -v '^mon-1' "$DIR/psk_file" >"$DIR/sensors"
"$PSAGW" device import "$DIR/sensors" --role sensor --attestation off --registry "$DIR/registry.db" >/dev/null
"$PSAGW" device add mon-1 --role monitor --psk $PSK --attestation off --registry "$DIR/registry.db" >/dev/null
chmod 755 "$DIR"
chmod 644 "$DIR/psk_file"

# start NAME TLSPORT PLAINPORT [prlimit args]: a fresh server; sets SERVER and LOG
start() {
  local name=$1 tport=$2 pport=$3
  shift 3
  LOG=$DIR/$name.log
  : >"$LOG"
  if [ "$name" = psagw ]; then
    printf 'registry = "%s";\nallow_anonymous = true;\nstats_interval = 0;\nlisteners = ( { address = "127.0.0.1:%s"; }, { address = "127.0.0.1:%s"; type = "plain"; } );\n' \
      "$DIR/registry.db" "$tport" "$pport" >"$DIR/psagw.conf"
    "$@" "$PSAGW" serve --config "$DIR/psagw.conf" 2>>"$LOG" &
  else
    cat >"$DIR/mosquitto.conf" <<CONF
per_listener_settings true
persistence false
log_dest stderr
listener $tport 127.0.0.1
psk_hint psagw-abuse
psk_file $DIR/psk_file
use_identity_as_username true
listener $pport 127.0.0.1
allow_anonymous true
CONF
    "$@" mosquitto -c "$DIR/mosquitto.conf" 2>>"$LOG" &
  fi
  SERVER=$!
  wait_port "$tport"
  wait_port "$pport"
}
stop() { kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$SERVER/status"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status"; }

# a legitimate device's connect + QoS 1 publish, in ms (9999: it failed)
legit_ms() {
  local t0 t1
  t0=$(date +%s%N)
  if timeout 10 mosquitto_pub -h 127.0.0.1 -p "$1" --psk $PSK --psk-identity legit -i legit -q 1 \
    -t sensors/legit/x -m ok >/dev/null 2>&1; then
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
  else
    echo 9999
  fi
}

# attack runners: each starts its load in the background (JOBS) against TLSPORT/PLAINPORT
attack_slow_consumer() {
  mosquitto_sub -h 127.0.0.1 -p "$1" --psk $PSK --psk-identity mon-1 -i mon-1 -t 'sensors/#' -q 0 \
    >/dev/null 2>&1 &
  local sub=$!
  JOBS+=($sub)
  sleep 1
  kill -STOP $sub
  for i in 0 1 2 3 4 5 6 7 8 9; do
    (yes 'a reading of sixty-four bytes, give or take, from a sensor ......' |
      timeout "$DURATION" mosquitto_pub -h 127.0.0.1 -p "$1" --psk $PSK --psk-identity pub$i -i pub$i \
        -t sensors/pub$i/env -q 0 -l >/dev/null 2>&1 || true) &
    JOBS+=($!)
  done
}
attack_stalled_handshakes() {
  /usr/bin/python3 - "$1" "$DURATION" <<'PY' >/dev/null 2>&1 &
import socket, sys, time
hello = bytes.fromhex("16030100c8010000c40303") + bytes(20)
held = []
for i in range(2000):
    try:   # from another address than the legitimate device's (127.0.0.2)
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1,
                                     source_address=("127.0.0.2", 0))
        s.sendall(hello)
        held.append(s)
    except OSError:
        pass
time.sleep(float(sys.argv[2]))
PY
  JOBS+=($!)
}
attack_descriptors() {
  /usr/bin/python3 - "$1" "$DURATION" <<'PY' >/dev/null 2>&1 &
import socket, sys, time
held = []
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5,
                                             source_address=("127.0.0.2", 0)))
    except OSError:
        time.sleep(0.01)
    if len(held) > 600:
        time.sleep(0.1)
PY
  JOBS+=($!)
}
# A raw MQTT 3.1.1 client for the attacks that need packets no client tool sends: connects to
# the plain listener (argv[1]) as argv[2]; `rl` encodes a Remaining Length.
MQTT_PY='import socket, sys
def rl(n):
    out = b""
    while True:
        b = n & 0x7F; n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
cid = sys.argv[2].encode()
body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
s.sendall(b"\x10" + rl(len(body)) + body)
s.recv(4)
'
attack_big_topics() {
  { echo "$MQTT_PY"; cat <<'PY'; } | /usr/bin/python3 - "$2" bigtopics >/dev/null 2>&1 &
for i in range(50):
    topic = (b"%d/" % i) + b"/".join([b"a"] * 30000)
    vh = len(topic).to_bytes(2, "big") + topic
    s.sendall(b"\x31" + rl(len(vh) + 1) + vh + b"x")   # QoS 0, retained
s.close()
PY
  JOBS+=($!)
}
attack_subscriptions() {
  { echo "$MQTT_PY"; cat <<'PY'; } | /usr/bin/python3 - "$2" subflood >/dev/null 2>&1 &
pid = 1
for base in range(0, 100000, 100):
    payload = b""
    for i in range(base, base + 100):
        f = b"flood/%d" % i
        payload += len(f).to_bytes(2, "big") + f + b"\x00"
    vh = pid.to_bytes(2, "big") + payload
    s.sendall(b"\x82" + rl(len(vh)) + vh)
    pid = pid % 65535 + 1
s.settimeout(30)
try:
    while s.recv(65536):
        pass
except OSError:
    pass
PY
  JOBS+=($!)
}
attack_empty_records() {
  for _ in 1 2 3 4; do
    (end=$(( $(date +%s) + DURATION )); while [ "$(date +%s)" -lt $end ]; do
      "$EDGE" keyupdates 127.0.0.1 "$1" pub0 $PSK 100000 >/dev/null 2>&1 || true; done) &
    JOBS+=($!)
  done
}
attack_unknown_identities() {
  ("$LOADGEN" storm 127.0.0.1 "$1" $PSK nobody 2000 8 >/dev/null 2>&1 || true) &
  JOBS+=($!)
}

ATTACKS=${ATTACKS:-"slow_consumer stalled_handshakes descriptors big_topics subscriptions empty_records unknown_identities"}
printf '%-20s %-9s %10s %10s %9s %10s %12s %12s\n' attack server peak_rss_mb rss_after_mb cpu_s \
  log_bytes idle_conn_ms attack_conn_ms
for attack in $ATTACKS; do
  for name in psagw mosquitto; do
    tport=$(free_port)
    pport=$(free_port)
    limit=()
    [ "$attack" = descriptors ] && limit=(prlimit --nofile=256:256 --)
    start "$name" "$tport" "$pport" "${limit[@]}"
    idle=$(legit_ms "$tport")
    echo 5 >"/proc/$SERVER/clear_refs" 2>/dev/null || true # resets VmHWM to the current RSS
    c0=$(cpu_ticks "$SERVER")
    l0=$(stat -c %s "$LOG")
    JOBS=()
    "attack_$attack" "$tport" "$pport"
    worst=0
    for _ in 1 2 3; do
      sleep $(( DURATION / 4 > 0 ? DURATION / 4 : 1 ))
      ms=$(legit_ms "$tport")
      [ "$ms" -gt "$worst" ] && worst=$ms
    done
    sleep 1
    peak=$(hwm_kb)
    c1=$(cpu_ticks "$SERVER")
    l1=$(stat -c %s "$LOG")
    for p in "${JOBS[@]:-}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    pkill -KILL -f -- " $tport( |\$)" 2>/dev/null || true # clients still at it (their port argument)
    pkill -KILL -f -- "-p $tport " 2>/dev/null || true
    wait "${JOBS[@]}" 2>/dev/null || true
    sleep 3 # connections end; memory comes back (or not)
    after=$(rss_kb)
    alive=yes
    kill -0 "$SERVER" 2>/dev/null || alive=no
    printf '%-20s %-9s %10s %10s %9s %10s %12s %12s%s\n' "$attack" "$name" \
      "$(awk -v k="$peak" 'BEGIN{printf "%.1f", k / 1024}')" \
      "$(awk -v k="$after" 'BEGIN{printf "%.1f", k / 1024}')" \
      "$(awk -v d=$((c1 - c0)) -v t="$TICK" 'BEGIN{printf "%.2f", d / t}')" \
      $((l1 - l0)) "$idle" "$worst" "$([ $alive = yes ] || echo '  (died)')"
    stop
  done
done
echo
echo "attack_conn_ms: a registered device's TLS-PSK connect + QoS 1 publish during the attack, the"
echo "worst of 3 (9999: it failed); idle_conn_ms the same before. log_bytes: what the server wrote"
echo "to its log during the attack (psagw at info level, mosquitto with its default log types)."
