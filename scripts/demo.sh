#!/usr/bin/env bash
# The end-to-end demo, run by `make demo`: provisions a few devices in a fresh registry, starts
# psagw on loopback, and drives it with real mosquitto clients over TLS-PSK: a monitor that
# prints what the sensors publish, sensors publishing readings, and the refusals a gateway
# must make (a spoofed topic, a wrong key, a revoked device). Stops everything by itself.
#
# Until the device emulator (issue 4) exists, the devices are mosquitto_pub/mosquitto_sub, and
# the attesting device is the test client (tests/tools/iat_client), which mints its PSA-IAT
# tokens with the same token library a device's secure side uses. mosquitto clients cannot
# attest, so the demo gateway runs with --attestation-default optional and only sensor-3 is
# registered with attestation required.
# Options: --keep keeps the gateway running until Ctrl-C; --seconds N sets how long the
# sensors publish (default 10).
set -euo pipefail

BUILD=${1:-build}
shift || true
KEEP=0
SECONDS_TO_RUN=10
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) KEEP=1 ;;
    --seconds) SECONDS_TO_RUN=$2; shift ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

PSAGW=$(cd "$BUILD" && pwd)/gateway/psagw
IAT_CLIENT=$(cd "$BUILD" && pwd)/tests/iat_client
[ -x "$PSAGW" ] || { echo "demo: $PSAGW not built (run make build)" >&2; exit 1; }
DIR=$(mktemp -d /tmp/psagw-demo.XXXXXX)
REG=$DIR/registry.db
LOG=$DIR/gateway.log
PIDS=()
GW=
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ -n "$GW" ]; then kill -TERM "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
psk_of() { "$PSAGW" device add "$1" --role "$2" --generate-psk --registry "$REG" | sed -n 's/^psk=//p'; }

say "Provisioning devices into a fresh registry ($REG, mode 0600)"
S1=$(psk_of sensor-1 sensor)
S2=$(psk_of sensor-2 sensor)
M1=$(psk_of monitor-1 monitor)
IAK3=$(openssl rand -hex 32) # sensor-3's attestation key; in real life it never leaves the device
S3=$("$PSAGW" device add sensor-3 --role sensor --generate-psk --attestation required \
  --iak-file <(printf '%s' "$IAK3") --registry "$REG" | sed -n 's/^psk=//p')
"$PSAGW" device list --registry "$REG"

say "Starting the gateway (TLS-PSK listener on a free loopback port)"
"$PSAGW" serve --registry "$REG" --listen 127.0.0.1:0 --log-level info \
  --attestation-default optional 2>"$LOG" &
GW=$!
for _ in $(seq 1 100); do grep -q "event=started" "$LOG" && break; sleep 0.05; done
PORT=$(grep 'event=listening' "$LOG" | head -1 | sed 's/.* port=\([0-9]*\).*/\1/')
echo "psagw pid $GW listening on 127.0.0.1:$PORT"
# Followers end by themselves when the gateway exits (tail --pid), so no stage of these
# pipelines outlives the demo.
tail --pid="$GW" -n +1 -f "$LOG" \
  | grep --line-buffered -E "event=(connect|connect_refused|acl_denied|tls_psk_refused|tls_handshake_failed|device_disconnected|disconnect|attestation) " \
  | sed -u -E 's/ (implementation_id|instance_id|client_id|exchange_us)=[^ ]*//g' \
  | sed -u 's/^/  [gateway] /' &

say "monitor-1 subscribes to sensors/# and status/# (MQTT 5, TLS-PSK)"
: > "$DIR/monitor.out" # exists before tail opens it (tail -f gives up on a missing file)
mosquitto_sub -h 127.0.0.1 -p "$PORT" --psk "$M1" --psk-identity monitor-1 -i monitor-1 \
  -V mqttv5 -t 'sensors/#' -t 'status/#' -v >>"$DIR/monitor.out" 2>&1 &
PIDS+=($!)
tail --pid="$GW" -n +1 -f "$DIR/monitor.out" | sed -u 's/^/  [monitor-1] /' &
sleep 0.5

say "Sensors publish a reading every second for ${SECONDS_TO_RUN} s (QoS 1)"
publish_loop() { # id psk
  local id=$1 psk=$2 t=2150 h=4100 i=0
  mosquitto_pub -h 127.0.0.1 -p "$PORT" --psk "$psk" --psk-identity "$id" -i "$id" -q 1 -r \
    -t "status/$id" -m online
  while [ $i -lt "$SECONDS_TO_RUN" ]; do
    t=$((t + RANDOM % 21 - 10)); h=$((h + RANDOM % 41 - 20))
    mosquitto_pub -h 127.0.0.1 -p "$PORT" --psk "$psk" --psk-identity "$id" -i "$id" -q 1 \
      -t "sensors/$id/env" -m "$(printf '{"seq":%d,"temp_c":%d.%02d,"rh":%d.%02d}' \
        $i $((t / 100)) $((t % 100)) $((h / 100)) $((h % 100)))"
    i=$((i + 1))
    sleep 1
  done
}
publish_loop sensor-1 "$S1" &
PIDS+=($!)
P1=$!
publish_loop sensor-2 "$S2" &
PIDS+=($!)
P2=$!
sleep 2

say "sensor-1 tries to publish as sensor-2 (ACL: a sensor publishes only under sensors/<its id>/)"
mosquitto_pub -h 127.0.0.1 -p "$PORT" --psk "$S1" --psk-identity sensor-1 -i sensor-1 -q 1 \
  -V mqttv5 -t sensors/sensor-2/env -m spoofed 2>&1 | sed 's/^/  [sensor-1] /' || true
sleep 0.5

say "An intruder claims to be sensor-1 with the wrong key"
mosquitto_pub -h 127.0.0.1 -p "$PORT" --psk 000102030405060708090a0b0c0d0e0f \
  --psk-identity sensor-1 -i sensor-1 -t sensors/sensor-1/env -m fake 2>&1 \
  | sed 's/^/  [intruder] /' || true
sleep 0.5

say "sensor-1 asks to speak as another client id"
mosquitto_pub -h 127.0.0.1 -p "$PORT" --psk "$S1" --psk-identity sensor-1 -i monitor-1 \
  -V mqttv5 -t sensors/sensor-1/env -m other-id 2>&1 | sed 's/^/  [sensor-1] /' || true
sleep 1

say "sensor-3 attests: MQTT 5 AUTH with PSA-IAT (nonce from the gateway, token MACed with its IAK)"
"$IAT_CLIENT" --port "$PORT" --id sensor-3 --psk "$S3" --iak "$IAK3" \
  --publish sensors/sensor-3/env '{"seq":0,"temp_c":21.7,"rh":40.2}' 2>&1 | sed 's/^/  [sensor-3] /' || true
sleep 0.3

say "sensor-3 with a debug lifecycle (NON_PSA_ROT_DEBUG) is refused"
"$IAT_CLIENT" --port "$PORT" --id sensor-3 --psk "$S3" --iak "$IAK3" --lifecycle 0x4000 2>&1 \
  | sed 's/^/  [sensor-3] /' || true
sleep 0.3

say "A recorded token is replayed against a fresh challenge"
"$IAT_CLIENT" --port "$PORT" --id sensor-3 --psk "$S3" --iak "$IAK3" --save-token "$DIR/t.cbor" >/dev/null 2>&1 || true
"$IAT_CLIENT" --port "$PORT" --id sensor-3 --psk "$S3" --iak "$IAK3" --replay "$DIR/t.cbor" 2>&1 \
  | sed 's/^/  [replayer] /' || true
sleep 0.3

say "sensor-3 connects like a plain MQTT client, without attesting"
mosquitto_pub -h 127.0.0.1 -p "$PORT" --psk "$S3" --psk-identity sensor-3 -i sensor-3 \
  -V mqttv5 -t sensors/sensor-3/env -m unattested 2>&1 | sed 's/^/  [sensor-3] /' || true
sleep 0.5

say "The operator sees sensor-3's last verdict"
sleep 1
"$PSAGW" device show sensor-3 --registry "$REG" | grep -E '^(id|iak|instance_id|last_verdict)' | sed 's/^/  /'

say "The operator revokes sensor-2 while it runs"
"$PSAGW" device revoke sensor-2 --registry "$REG"
wait "$P1" 2>/dev/null || true
wait "$P2" 2>/dev/null || true

if [ "$KEEP" = 1 ]; then
  say "Gateway keeps running on 127.0.0.1:$PORT (Ctrl-C to stop). sensor-1's key: $S1"
  wait "$GW"
fi

say "Stopping the gateway (SIGTERM)"
kill -TERM "$GW"
wait "$GW" || true
GW=
sleep 0.3
say "Summary (from the gateway's own counters)"
grep 'event=stats' "$LOG" | tail -1 | tr ' ' '\n' \
  | grep -E '^(mqtt_connects_ok|mqtt_connects_refused|tls_handshakes_failed|psk_revoked|publishes_in|publishes_out|acl_denied_publish|revoked_disconnects|attestations_accepted|attestations_refused)=' \
  | sed 's/^/  /'
echo
echo "Demo complete. Full gateway log was at $LOG (removed on exit)."
