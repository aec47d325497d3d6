#!/usr/bin/env bash
# Reliability soak (docs/design/targets.md, "Reliability figures"): devices publish QoS 1 the whole time
# (loadgen seqpub: each prints every SEQ the gateway acknowledged) while idle devices hold
# their connections, and the run goes through
#   0. a steady rate for STEADY seconds (default 120; 1800 for the 30-minute figure), printing
#      the spool's database and WAL sizes every 10 s (both must stay bounded),
#   1. the cloud broker stopped for OUTAGE seconds (default 120),
#   2. the gateway SIGKILLed under load and restarted,
#   3. STORM devices reconnecting at once (default 10,000),
#   4. clients sending garbage, oversized packets and one byte a second,
#   5. the spool's disk full for DISKFULL seconds (default 20; the spool is on a 64 MiB tmpfs
#      when this machine lets the soak mount one, else the phase is skipped);
# then checks that every acknowledged message reached the cloud and prints the figures.
# Not a test (it takes minutes): `make soak`, or bench/soak.sh [BUILD_DIR].
#
# env: DEVICES (20 publishing), INTERVAL_MS (50), IDLE (1000 held connections), OUTAGE (120 s),
#      STORM (10000), STEADY (120 s), DISKFULL (20 s)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BUILD=${1:-build}
PSAGW=$(cd "$BUILD" && pwd)/gateway/psagw
LOADGEN=$(cd "$BUILD" && pwd)/bench/loadgen
DEVICES=${DEVICES:-20}
INTERVAL_MS=${INTERVAL_MS:-50}
IDLE=${IDLE:-1000}
OUTAGE=${OUTAGE:-120}
STORM=${STORM:-10000}
STEADY=${STEADY:-120}
DISKFULL=${DISKFULL:-20}
PSK=00112233445566778899aabbccddeeff
DIR=$(mktemp -d "${TMPDIR:-/tmp}/psagw-soak.XXXXXX")
PIDS=()
GW=
CLOUD=
cleanup() {
  for p in "${PIDS[@]:-}" $GW $CLOUD; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  umount -l "$DIR/disk" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
conns() { grep 'event=stats' "$DIR/gw.log" | tail -1 | sed -n 's/.*event=stats connections=\([0-9]*\).*/\1/p'; }

C=$DIR/certs
"$(dirname "$0")/../scripts/cloud-certs.sh" "$C" gw observer
CLOUD_PORT=$(free_port)
cat >"$DIR/cloud.conf" <<EOF
user $(id -un)
listener $CLOUD_PORT 127.0.0.1
cafile $C/ca.pem
certfile $C/server.pem
keyfile $C/server.key
require_certificate true
use_identity_as_username true
persistence true
persistence_location $DIR/
autosave_interval 5
max_queued_messages 10000000
set_tcp_nodelay true
log_dest none
EOF
start_cloud() { mosquitto -c "$DIR/cloud.conf" 2>/dev/null & CLOUD=$!; wait_port $CLOUD_PORT; }

total=$(( STORM > IDLE ? STORM : IDLE ))
: >"$DIR/psk_file"
for i in $(seq 0 $((total - 1))); do printf 'soak%05d:%s\n' "$i" "$PSK"; done >>"$DIR/psk_file"
for i in $(seq 0 $((DEVICES - 1))); do printf 'pub%03d:%s\n' "$i" "$PSK"; done >>"$DIR/psk_file"
"$PSAGW" device import "$DIR/psk_file" --role sensor --attestation off --registry "$DIR/registry.db" >/dev/null
SPOOL_DIR=$DIR
mkdir -p "$DIR/disk"
if mount -t tmpfs -o size=64m psagw-soak-disk "$DIR/disk" 2>/dev/null; then
  SPOOL_DIR=$DIR/disk
else
  DISKFULL=0
fi
SPOOL=$SPOOL_DIR/spool.db
GW_PORT=$(free_port)
cat >"$DIR/psagw.conf" <<EOF
registry = "$DIR/registry.db";
stats_interval = 5;
# the storm comes from one address (loopback)
tls = { max_handshakes = 100000; max_handshakes_per_address = 65535; };
listeners = ( { address = "127.0.0.1:$GW_PORT"; } );
cloud = {
  host = "localhost"; port = $CLOUD_PORT; client_id = "soakgw";
  ca_file = "$C/ca.pem"; cert_file = "$C/gw.pem"; key_file = "$C/gw.key";
  max_publish_rate = 0; max_bytes_rate = 0; reconnect_min = 1; reconnect_max = 5;
  spool = { path = "$SPOOL"; };
};
EOF
start_gw() { "$PSAGW" serve --config "$DIR/psagw.conf" --attestation-default off 2>>"$DIR/gw.log" & GW=$!; wait_port $GW_PORT; }

start_cloud
mosquitto_sub -h localhost -p $CLOUD_PORT --cafile "$C/ca.pem" --cert "$C/observer.pem" --key "$C/observer.key" \
  -i soak-observer -c -q 1 -t 'psagw/#' -F '%t %p' --nodelay >"$DIR/cloud.out" 2>/dev/null &
PIDS+=($!)
sleep 0.5
start_gw
say "gateway pid $GW, cloud on $CLOUD_PORT; $DEVICES devices publish every ${INTERVAL_MS} ms, $IDLE idle"
mkfifo "$DIR/hold"
"$LOADGEN" idle 127.0.0.1 $GW_PORT $PSK soak $IDLE <"$DIR/hold" >"$DIR/idle.out" 2>&1 &
PIDS+=($!)
exec 7>"$DIR/hold"
for i in $(seq 0 $((DEVICES - 1))); do
  id=$(printf 'pub%03d' "$i")
  "$LOADGEN" seqpub 127.0.0.1 $GW_PORT $PSK "$id" 100000000 "$INTERVAL_MS" >"$DIR/$id.acks" 2>"$DIR/$id.err" &
  PUB_PIDS+=($!)
done
sleep 10

say "0. a steady rate for ${STEADY} s: the spool's files (bytes)"
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
wal_max=0 db_max=0
for t in $(seq 10 10 "$STEADY"); do
  sleep 10
  w=$(size "$SPOOL-wal") d=$(size "$SPOOL")
  [ "$w" -gt "$wal_max" ] && wal_max=$w
  [ "$d" -gt "$db_max" ] && db_max=$d
  say "   t=${t}s database=$d wal=$w acked_so_far=$(cat "$DIR"/pub*.acks | grep -c '^acked' || true)"
done

kill -TERM $CLOUD; wait $CLOUD 2>/dev/null || true; CLOUD=
sleep "$OUTAGE"
depth=$("$PSAGW" spool stats --spool "$SPOOL" | sed -n 's/^depth: *\([0-9]*\).*/\1/p')
say "   spool depth after the outage: $depth records; connections held: $(conns)"
start_cloud
sleep 15

say "2. SIGKILL of the gateway under load"
kill -KILL $GW; wait $GW 2>/dev/null || true
sleep 1
start_gw
sleep 15
say "   restarted; connections: $(conns)"

say "3. $STORM devices connect at once"
storm=$("$LOADGEN" storm 127.0.0.1 $GW_PORT $PSK soak "$STORM" 8 || true)
say "   $storm"

say "4. garbage, an oversized packet, a client sending one byte a second"
( head -c 65536 /dev/urandom >/dev/tcp/127.0.0.1/$GW_PORT ) 2>/dev/null || true
head -c 2000000 /dev/zero >"$DIR/big.bin"
mosquitto_pub -h 127.0.0.1 -p $GW_PORT --psk $PSK --psk-identity pub000x -i pub000x -q 1 \
  -t sensors/x/y -f "$DIR/big.bin" >/dev/null 2>&1 || true
( exec 3<>/dev/tcp/127.0.0.1/$GW_PORT; for _ in $(seq 1 8); do printf '\x16' >&3; sleep 1; done ) 2>/dev/null || true
sleep 5
kill -0 $GW || { say "FAILED: the gateway died"; exit 1; }

if [ "$DISKFULL" -gt 0 ]; then
  say "5. the spool's disk full for ${DISKFULL} s (the cloud stopped, a filler takes the space)"
  kill -TERM $CLOUD; wait $CLOUD 2>/dev/null || true; CLOUD=
  free_kb=$(df -k --output=avail "$SPOOL_DIR" | tail -1)
  dd if=/dev/zero of="$SPOOL_DIR/filler" bs=1k count=$((free_kb > 128 ? free_kb - 128 : 0)) 2>/dev/null || true
  sleep "$DISKFULL"
  say "   $(grep -c 'event=spool_full state=disk_full' "$DIR/gw.log" || true) disk_full lines; $("$PSAGW" spool stats --spool "$SPOOL" | grep '^state' || true)"
  rm -f "$SPOOL_DIR/filler"
  start_cloud
  sleep 10
  kill -0 $GW || { say "FAILED: the gateway died"; exit 1; }
fi

say "stopping the publishers; waiting for the cloud to have everything"
for p in "${PUB_PIDS[@]}"; do kill $p 2>/dev/null || true; done
wait "${PUB_PIDS[@]}" 2>/dev/null || true
for _ in $(seq 1 120); do
  d=$("$PSAGW" spool stats --spool "$SPOOL" | sed -n 's/^depth: *\([0-9]*\).*/\1/p')
  [ "$d" = 0 ] && break
  sleep 1
done
sleep 2
acked=0 missing=0
for i in $(seq 0 $((DEVICES - 1))); do
  id=$(printf 'pub%03d' "$i")
  sed -n 's/^acked //p' "$DIR/$id.acks" | sort -n >"$DIR/$id.want"
  awk -v t="psagw/soakgw/sensors/$id/seq" '$1 == t { split($2, a, ":"); print a[2] }' "$DIR/cloud.out" |
    sort -n -u >"$DIR/$id.got"
  acked=$((acked + $(wc -l <"$DIR/$id.want")))
  missing=$((missing + $(comm -23 "$DIR/$id.want" "$DIR/$id.got" | wc -l)))
done
delivered=$(grep -c '^psagw/soakgw/sensors/' "$DIR/cloud.out" || true)
echo
echo "soak: steady ${STEADY} s, outage ${OUTAGE} s, SIGKILL + restart, storm of $STORM, bad clients, disk full ${DISKFULL} s; $DEVICES publishers, $IDLE idle"
echo "  spool files during the steady phase:     database <= $db_max bytes, WAL <= $wal_max bytes"
echo "  messages acknowledged to devices:        $acked"
echo "  acknowledged but missing at the cloud:   $missing"
echo "  deliveries at the cloud (with duplicates): $delivered"
echo "  spool depth at the outage's end:         $depth"
echo "  gateway alive at the end:                yes"
grep 'event=cloud_stats' "$DIR/gw.log" | tail -1 | tr ' ' '\n' | grep -E '^(spool_drops|failures|connects)=' | sed 's/^/  /'
[ "$missing" -eq 0 ]
