#!/usr/bin/env bash
# The end-to-end demo, run by `make demo`: the whole system on loopback for about 30 s.
#
# Emulated TF-M Profile Small devices (psadev: each one an SPE process and an NSPE process) are
# provisioned on the fly, imported into a fresh gateway registry from their manifests, and run
# against psagw: two sensors whose secure partitions seal every reading, one monitor whose
# secure side opens them (its lines are shown live), a firmware device (TF-M Profile Small with
# BL2 on QEMU mps2-an521, docs/firmware.md) whose readings the monitor and the cloud receive
# alike, an operator command changing a sensor's
# interval, and the refusals a gateway owes: a device in a debug lifecycle, a device running a
# modified NSPE image, a wrong key, a replayed record. Stops everything and prints a summary.
#
# Options: --keep keeps everything running until Ctrl-C; --seconds N sets how long the sensors
# publish (default 20).
set -euo pipefail

BUILD=${1:-build}
shift || true
KEEP=0
SECONDS_TO_RUN=20
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) KEEP=1 ;;
    --seconds) SECONDS_TO_RUN=$2; shift ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

PSAGW=$(cd "$BUILD" && pwd)/gateway/psagw
PSADEV=$(cd "$BUILD" && pwd)/device/psadev
PSADEV_FW=$(cd "$BUILD" && pwd)/device/psadev-fw
FW_IMAGES=$(cd "$(dirname "$0")/.." && pwd)/build-fw/images
[ -f "$FW_IMAGES/tfm_s_ns_signed.bin" ] || { echo "demo: no firmware in $FW_IMAGES (run make firmware)" >&2; exit 1; }
for b in "$PSAGW" "$PSADEV" "$PSADEV_FW"; do
  [ -x "$b" ] || { echo "demo: $b not built (run make build)" >&2; exit 1; }
done
DIR=$(mktemp -d /tmp/psagw-demo.XXXXXX)
REG=$DIR/registry.db
LOG=$DIR/gateway.log
PIDS=()
GW=
CLOUD=
SIDE_PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}" "${SIDE_PIDS[@]:-}" $CLOUD; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ -n "$GW" ]; then kill -TERM "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
provision() { # id role [psadev provision args...]
  local id=$1 role=$2; shift 2
  "$PSADEV" provision --id "$id" --role "$role" --state "$DIR/$id" \
    --group-key-file "$DIR/group.key" --manifest "$DIR/$id.json" "$@" | sed 's/^/  /'
  "$PSAGW" device import "$DIR/$id.json" --registry "$REG" | sed 's/^/  /'
}

say "Provisioning four emulated devices (keys created inside each device's SPE store)"
openssl rand -hex 32 > "$DIR/group.key" # the application group key shared by sensors and monitors
provision sensor-1 sensor
provision sensor-2 sensor
provision monitor-1 monitor
provision sensor-3 sensor --lifecycle non_psa_rot_debug
say "Provisioning a firmware device: TF-M Profile Small on an emulated Cortex-M33 (QEMU mps2-an521)"
"$PSADEV_FW" provision --nv "$DIR/fw-sensor-1.nv" --id fw-sensor-1 --role sensor \
  --group-key "$DIR/group.key" --images "$FW_IMAGES" --manifest "$DIR/fw-sensor-1.json" | sed 's/^/  /'
"$PSAGW" device import "$DIR/fw-sensor-1.json" --registry "$REG" | sed 's/^/  /'
echo "  (its secrets went into its secure side's factory record, in the board's non-volatile memory;"
echo "   the manifest carries the reference values of this firmware build, measured by BL2)"
echo "  (each manifest carries the PSK and IAK once, mode 0600, for the gateway; the devices"
echo "   keep theirs inside the SPE, where no API returns them)"
"$PSAGW" device list --registry "$REG" | sed 's/^/  /'
"$PSAGW" refval list --registry "$REG" | sed 's/^/  /'

say "Starting the local cloud: mosquitto with TLS and client certificates (AWS IoT's stand-in)"
"$(dirname "$0")/cloud-certs.sh" "$DIR/cloud"
CLOUD_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$DIR/cloud/mosquitto.conf" <<CONF
user $(id -un)
listener $CLOUD_PORT 127.0.0.1
cafile $DIR/cloud/ca.pem
certfile $DIR/cloud/server.pem
keyfile $DIR/cloud/server.key
require_certificate true
use_identity_as_username true
persistence true
persistence_location $DIR/cloud/
log_dest none
CONF
start_cloud() {
  mosquitto -c "$DIR/cloud/mosquitto.conf" 2>/dev/null &
  CLOUD=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$CLOUD_PORT) 2>/dev/null && break; sleep 0.05; done
}
start_cloud
cloud_tls=(-h localhost -p "$CLOUD_PORT" --cafile "$DIR/cloud/ca.pem" --cert "$DIR/cloud/observer.pem"
           --key "$DIR/cloud/observer.key")
# what reaches the cloud: the topic and size of each record, verdicts in short
# (records are binary: their topic and size only; verdicts are JSON: the verdict and reason)
stdbuf -oL mosquitto_sub "${cloud_tls[@]}" -i cloud-observer -c -q 1 -t 'psagw/+/sensors/#' -F '%t %l' > "$DIR/cloud-records.out" 2>/dev/null &
OBSERVER=$!
stdbuf -oL mosquitto_sub "${cloud_tls[@]}" -i cloud-verdicts -c -q 1 -t 'psagw/+/attest/#' -F '%t %l %p' > "$DIR/cloud-verdicts.out" 2>/dev/null &
OBSERVER2=$!
SIDE_PIDS=($OBSERVER $OBSERVER2)
tail --pid="$OBSERVER" -q -n +1 -f "$DIR/cloud-records.out" "$DIR/cloud-verdicts.out" \
  | while IFS= read -r line; do
      topic=${line%% *}
      case $topic in
        */attest/*)
          v=${line#*\"verdict\":\"}; v=${v%%\"*}
          r=${line#*\"reason\":\"}; r=${r%%\"*}
          echo "  [cloud] $topic verdict=$v reason=\"$r\"" ;;
        *) rest=${line#* }; echo "  [cloud] $topic (${rest%% *} bytes, sealed record as sent)" ;;
      esac
    done &
SIDE_PIDS+=($!)
echo "  cloud broker on localhost:$CLOUD_PORT (require_certificate true); the gateway is thing demo-gw"

say "Starting the gateway: attestation required, known implementation and measurements only"
cat > "$DIR/psagw.conf" <<CONF
registry = "$REG";
cloud = {
  host = "localhost"; port = $CLOUD_PORT; client_id = "demo-gw";
  ca_file = "$DIR/cloud/ca.pem"; cert_file = "$DIR/cloud/gateway.pem";
  key_file = "$DIR/cloud/gateway.key";
  reconnect_min = 1; reconnect_max = 2;
  spool = { path = "$DIR/spool.db"; };
};
allow_anonymous = true;   # the plain loopback listener, for the operator's tools below
anonymous_acl = { publish = [ "cmd/#", "sensors/#" ]; subscribe = [ "sensors/#" ]; };
attestation = { default = "required"; require_known_implementation = true;
                require_known_measurements = true; };
http = { listen = "127.0.0.1:0"; token_file = "$DIR/http.token"; };   # the dashboard
CONF
openssl rand -hex 32 > "$DIR/http.token"
chmod 600 "$DIR/http.token"
"$PSAGW" serve --config "$DIR/psagw.conf" --listen 127.0.0.1:0 --listen-plain 127.0.0.1:0 \
  --log-level info 2>"$LOG" &
GW=$!
for _ in $(seq 1 100); do grep -q "event=started" "$LOG" && break; sleep 0.05; done
PORT=$(grep 'event=listening' "$LOG" | grep 'type=tls-psk' | head -1 | sed 's/.* port=\([0-9]*\).*/\1/')
PLAIN=$(grep 'event=listening' "$LOG" | grep 'type=plain' | head -1 | sed 's/.* port=\([0-9]*\).*/\1/')
echo "psagw pid $GW: TLS-PSK on 127.0.0.1:$PORT, plain (operator tools) on 127.0.0.1:$PLAIN"
HTTP=$(grep 'event=http_listening' "$LOG" | sed 's/.* port=\([0-9]*\).*/\1/')
echo "dashboard (open it in a browser while the demo runs): http://127.0.0.1:$HTTP/#token=$(cat "$DIR/http.token")"
# followers end by themselves when the gateway exits (tail --pid)
tail --pid="$GW" -n +1 -f "$LOG" \
  | grep --line-buffered -E "event=(attestation|connect_refused|tls_handshake_failed|acl_denied|cloud_connected|cloud_disconnected|command_delivered) " \
  | sed -u -E 's/^ts=[^ ]* //; s/ (implementation_id|instance_id|client_id|exchange_us|peer)=[^ ]*//g' \
  | sed -u 's/^/  [gateway] /' &

say "monitor-1 attests, subscribes to sensors/#, and has its SPE open every record"
"$PSADEV" monitor --state "$DIR/monitor-1" --gateway 127.0.0.1:$PORT > "$DIR/monitor.out" 2>&1 &
PIDS+=($!)
tail --pid="$GW" -n +1 -f "$DIR/monitor.out" | sed -u 's/^/  [monitor-1] /' &
for _ in $(seq 1 100); do grep -q "event=subscribe id=monitor-1" "$LOG" && break; sleep 0.05; done

say "sensor-1 and sensor-2 attest and publish a sealed reading every second for ${SECONDS_TO_RUN} s"
for s in sensor-1 sensor-2; do
  "$PSADEV" sensor --state "$DIR/$s" --gateway 127.0.0.1:$PORT --interval 1000 \
    > "$DIR/$s.out" 2>&1 &
  PIDS+=($!)
done
say "fw-sensor-1 boots (BL2, TF-M, the NS application), attests with TF-M's own token, publishes"
"$PSADEV_FW" run --nv "$DIR/fw-sensor-1.nv" --images "$FW_IMAGES" --gateway 127.0.0.1:$PORT \
  > "$DIR/fw-sensor-1.out" 2>&1 &
PIDS+=($!)
tail --pid="$GW" -n +1 -f "$DIR/fw-sensor-1.out" | grep --line-buffered -v "published topic\|nic lan9118" \
  | sed -u 's/^/  /' &
START=$(date +%s)
# an eavesdropper on the operator listener keeps one of sensor-1's records for later
mosquitto_sub -h 127.0.0.1 -p "$PLAIN" -t sensors/sensor-1/env -C 1 -N > "$DIR/recorded.bin" &
sleep 4

say "The cloud sets sensor-2's interval to 500 ms (psagw/demo-gw/cmd/sensor-2/interval)"
mosquitto_pub "${cloud_tls[@]}" -i cloud-operator -q 1 -t psagw/demo-gw/cmd/sensor-2/interval -m 500
sleep 2
grep -h "command" "$DIR/sensor-2.out" | sed 's/^/  [sensor-2] /' || true

say "sensor-3 runs in a debug lifecycle (NON_PSA_ROT_DEBUG): its token says so"
"$PSADEV" connect --state "$DIR/sensor-3" --gateway 127.0.0.1:$PORT 2>&1 \
  | sed 's/^/  [sensor-3] /' || true
sleep 0.5

say "sensor-1's keys, but a modified NSPE image (one byte appended to the binary)"
mkdir "$DIR/tampered"
cp "$PSADEV" "$(dirname "$PSADEV")/psadev-spe" "$DIR/tampered/"
printf 'x' >> "$DIR/tampered/psadev"
"$DIR/tampered/psadev" connect --state "$DIR/sensor-1" --gateway 127.0.0.1:$PORT 2>&1 \
  | sed 's/^/  [tampered] /' || true
sleep 0.5

say "An intruder claims to be sensor-2 with a key of its own (mosquitto_pub)"
mosquitto_pub -h 127.0.0.1 -p "$PORT" --psk "$(openssl rand -hex 16)" --psk-identity sensor-2 \
  -i sensor-2 -V mqttv5 -t sensors/sensor-2/env -m fake 2>&1 | sed 's/^/  [intruder] /' || true
sleep 0.5

say "The eavesdropper replays sensor-1's recorded reading"
if [ -s "$DIR/recorded.bin" ]; then
  mosquitto_pub -h 127.0.0.1 -p "$PLAIN" -t sensors/sensor-1/env -f "$DIR/recorded.bin"
  echo "  (the gateway forwards it; the monitor's SPE refuses it: see [monitor-1] above)"
fi
sleep 1

if [ "$KEEP" = 1 ]; then
  say "Everything keeps running (Ctrl-C to stop). Gateway 127.0.0.1:$PORT, log $LOG"
  echo "dashboard: http://127.0.0.1:$HTTP/#token=$(cat "$DIR/http.token")"
  wait "$GW"
fi
say "Cloud outage: the cloud broker stops for 4 s; the gateway keeps acknowledging into its spool"
kill -TERM "$CLOUD"; wait "$CLOUD" 2>/dev/null || true
sleep 4
"$PSAGW" spool stats --spool "$DIR/spool.db" | sed 's/^/  /'
start_cloud
echo "  cloud back: the backlog drains in order (at most 100 publishes/s, AWS IoT's limit)"
sleep 2
"$PSAGW" spool stats --spool "$DIR/spool.db" | sed 's/^/  /'
LEFT=$((SECONDS_TO_RUN - ($(date +%s) - START)))
[ $LEFT -gt 0 ] && sleep $LEFT

say "Stopping the devices and the gateway"
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PIDS=()
kill -TERM "$GW"
wait "$GW" || true
GW=
sleep 0.3

say "Summary"
printf '  monitor-1 readings accepted: %s (sensor-1: %s, sensor-2: %s, fw-sensor-1: %s), replays refused: %s\n' \
  "$(grep -c '^reading ' "$DIR/monitor.out" || true)" \
  "$(grep -c '^reading device=sensor-1 ' "$DIR/monitor.out" || true)" \
  "$(grep -c '^reading device=sensor-2 ' "$DIR/monitor.out" || true)" \
  "$(grep -c '^reading device=fw-sensor-1 ' "$DIR/monitor.out" || true)" \
  "$(grep -c '^refused replay' "$DIR/monitor.out" || true)"
printf '  fw-sensor-1 (TF-M firmware): %s attested connections, %s readings published\n' \
  "$(grep -c 'connected id=fw-sensor-1 .*attested=1' "$DIR/fw-sensor-1.out" || true)" \
  "$(grep -c 'published topic=sensors/fw-sensor-1/' "$DIR/fw-sensor-1.out" || true)"
grep 'event=stats' "$LOG" | tail -1 | tr ' ' '\n' \
  | grep -E '^(mqtt_connects_ok|mqtt_connects_refused|tls_handshakes_own|tls_handshakes_failed|publishes_in|publishes_out|attestations_accepted|attestations_refused)=' \
  | sed 's/^/  /'
grep 'event=attestation_refusals' "$LOG" | tail -1 | sed 's/.*event=attestation_refusals /  refusals by reason: /'
printf '  at the cloud: %s sensor records (fw-sensor-1: %s), %s attestation verdicts\n' \
  "$(grep -a -c '/sensors/' "$DIR/cloud-records.out" || true)" \
  "$(grep -a -c '/sensors/fw-sensor-1/' "$DIR/cloud-records.out" || true)" \
  "$(grep -a -c '/attest/' "$DIR/cloud-verdicts.out" || true)"
grep 'event=cloud_stats' "$LOG" | tail -1 | tr ' ' '\n' \
  | grep -E '^(spool_written|acked|spool_records|spool_drops|commands_delivered)=' | sed 's/^/  cloud: /'
echo
echo "Demo complete. Everything ran in $DIR (removed on exit)."
