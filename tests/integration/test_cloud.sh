#!/usr/bin/env bash
# The cloud uplink against a real mosquitto with TLS and require_certificate true: sensor data
# up with the right topic and payload, commands down to the right device only, attestation
# verdicts up, the cloud's rate limit kept and the backlog drained, and bad cloud configs
# (missing cert, wrong key, unreachable host, template over AWS limits) reported clearly while
# the gateway goes on serving and spooling.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cloud_lib.sh"
IAT_CLIENT=${IAT_CLIENT:?IAT_CLIENT must point at the iat_client binary}
IAK=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f

make_certs
start_cloud
start_observer
add_device s1 sensor $PSK_A --attestation off
add_device s2 sensor $PSK_B --attestation off
add_device a1 sensor $PSK_C --iak $IAK --attestation required

# ---- psagw cloud check: what the uplink checks, offline
write_config 'max_publish_rate = 0;'
"$PSAGW" cloud check --config "$GW_CONF" >/dev/null || fail "cloud check refused a good config"
write_config 'routes = ( { match = "sensors/+/#"; topic = "a/b/c/d/e/f/g/{id}/{rest}"; } );'
out=$("$PSAGW" cloud check --config "$GW_CONF" 2>&1) && fail "cloud check took 8 slashes"
echo "$out" | grep -q "has 8 slashes; AWS IoT allows at most 7" || fail "slash message: $out"
write_config 'attest_topic = "$aws/things/{id}";'
out=$("$PSAGW" cloud check --config "$GW_CONF" 2>&1) && fail "cloud check took a \$ topic"
echo "$out" | grep -q "starts with '\$'" || fail "dollar message: $out"
long=$(printf 'x%.0s' $(seq 1 200))
write_config "routes = ( { match = \"sensors/#\"; topic = \"$long/{id}\"; } );"
out=$("$PSAGW" cloud check --config "$GW_CONF" 2>&1) && fail "cloud check took a 330-byte topic"
echo "$out" | grep -q "AWS IoT allows 256" || fail "length message: $out"
write_config 'max_payload = 200000;'
out=$("$PSAGW" cloud check --config "$GW_CONF" 2>&1) && fail "a payload limit over 128 KiB was taken"
echo "$out" | grep -q "max_payload: must be in 1..131072" || fail "payload message: $out"
ok "psagw cloud check refuses templates and limits beyond AWS IoT's"

# ---- SNI, the server name checked, ALPN: what openssl s_server sees of the uplink's handshake
tls_probe() { # s_server-args... ; then the cloud keys as write_config lines
  local port out=$WORK/s_server.out
  port=$(free_port)
  (sleep 4 | timeout 5 openssl s_server -accept "$port" -naccept 1 -cert "$CLOUD_DIR/server.pem" \
     -key "$CLOUD_DIR/server.key" -Verify 1 -CAfile "$CLOUD_DIR/ca.pem" $1 >"$out" 2>&1 &)
  sleep 0.3
  shift
  : >"$GW_LOG"
  write_config "port = $port;" "$@"
  "$PSAGW" serve --config "$GW_CONF" --attestation-default optional 2>>"$GW_LOG" &
  local pid=$!
  sleep 2
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
tls_probe "-servername localhost -cert2 $CLOUD_DIR/server.pem -key2 $CLOUD_DIR/server.key" \
  'host = "127.0.0.1";' 'sni = "localhost";'
grep -q 'Hostname in TLS extension: "localhost"' "$WORK/s_server.out" || fail "SNI not sent: $(cat "$WORK/s_server.out")"
grep -q "subject=CN = gw1" "$WORK/s_server.out" || fail "client certificate not presented"
tls_probe "-alpn x-amzn-mqtt-ca" 'alpn = "x-amzn-mqtt-ca";'
grep -q "ALPN protocols advertised by the client: x-amzn-mqtt-ca" "$WORK/s_server.out" || fail "ALPN not offered"
tls_probe "" 'sni = "wrong.example";'
grep -q 'event=cloud_disconnected .*server certificate not accepted: hostname mismatch' "$GW_LOG" ||
  fail "a server certificate for another name was accepted: $(grep cloud_ "$GW_LOG")"
ok "the uplink sends SNI and ALPN, presents its certificate, and checks the server's name"

# ---- data up, commands down, verdicts up
write_config 'max_publish_rate = 0;'
: >"$GW_LOG"
GW_EXTRA=--allow-anonymous start_gateway_conf
expect_log "event=cloud_connected" 10
# an anonymous local tool using a device's name stays local
mosquitto_pub -h 127.0.0.1 -p "$PLAIN_PORT" -i s1 -q 1 -t sensors/s1/seq -m anonymous || fail "anonymous publish"
"$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_A s1 5 0 >"$WORK/s1.acks" || fail "seqpub s1"
wait_observed " psagw/gw1/sensors/s1/seq s1:" 5 || fail "sensor data did not reach the cloud"
[ "$(awk '$2 == "psagw/gw1/sensors/s1/seq" {print $3}' "$OBS_OUT" | tr '\n' ' ')" = "s1:1 s1:2 s1:3 s1:4 s1:5 " ] ||
  fail "cloud got $(cat "$OBS_OUT")"
ok "QoS 1 sensor data arrives at the cloud on psagw/gw1/sensors/<id>/<rest>, in order; an anonymous client's does not"

# a binary record passes through byte for byte
head -c 300 /dev/urandom >"$WORK/record.bin"
mosquitto_sub -h localhost -p "$CLOUD_PORT" --cafile "$CLOUD_DIR/ca.pem" --cert "$CLOUD_DIR/observer.pem" \
  --key "$CLOUD_DIR/observer.key" -i binobs -q 1 -C 1 -W 10 -t psagw/gw1/sensors/s1/rec >"$WORK/record.out" &
binobs=$!
wait_for "$CLOUD_DIR/mosquitto.log" "Received SUBSCRIBE from binobs" 5 || fail "binary observer"
pub s1 $PSK_A -q 1 -t sensors/s1/rec -f "$WORK/record.bin"
wait $binobs || fail "binary record did not arrive"
head -c 300 "$WORK/record.out" | cmp -s - "$WORK/record.bin" || fail "the record changed on its way up"
ok "a binary record goes up exactly as sent"

sub_bg "$WORK/cmd_s1.txt" s1 $PSK_A -q 1 -t 'cmd/s1/#' -v
s1_sub=$SUB_PID
sub_bg "$WORK/cmd_s2.txt" s2 $PSK_B -q 1 -t 'cmd/s2/#' -v
expect_log "event=cloud_subscribed" 5
cloud_pub psagw/gw1/cmd/s1/interval 5
wait_for "$WORK/cmd_s1.txt" "cmd/s1/interval 5" 5 || fail "command did not reach s1"
cloud_pub psagw/gw1/cmd/s2/reset now
wait_for "$WORK/cmd_s2.txt" "cmd/s2/reset now" 5 || fail "command did not reach s2"
sleep 0.3
grep -q reset "$WORK/cmd_s1.txt" && fail "s1 got s2's command"
grep -q interval "$WORK/cmd_s2.txt" && fail "s2 got s1's command"
cloud_pub psagw/gw1/cmd/nobody/x 1
expect_log "event=command_dropped id=nobody .*reason=no_session"
kill "$s1_sub"
ok "commands from psagw/gw1/cmd/<id>/# reach cmd/<id>/# of that device and no other"

"$IAT_CLIENT" --port "$PSK_PORT" --id a1 --psk $PSK_C --iak $IAK >/dev/null || fail "attesting client refused"
wait_observed " psagw/gw1/attest/a1 " 1 || fail "no verdict at the cloud"
v=$(grep -a " psagw/gw1/attest/a1 " "$OBS_OUT" | head -1 | cut -d' ' -f3-)
echo "$v" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["device"]=="a1" and d["verdict"]=="accepted" and "claims" in d, d' ||
  fail "verdict JSON: $v in $(cat "$OBS_OUT")"
"$IAT_CLIENT" --port "$PSK_PORT" --id a1 --psk $PSK_C --iak $IAK --mode wrong-key >/dev/null 2>&1 && fail "wrong key accepted"
wait_observed '"verdict":"refused"' 1 || fail "no refusal at the cloud"
ok "attestation verdicts go up as JSON on psagw/gw1/attest/<id>"

# the spool is empty once the cloud acknowledged everything
for _ in $(seq 1 50); do
  "$PSAGW" spool stats --spool "$SPOOL" | grep -q "depth:       0 records" && break
  sleep 0.1
done
"$PSAGW" spool stats --spool "$SPOOL" | grep -q "depth:       0 records" || fail "spool not drained: $("$PSAGW" spool stats --spool "$SPOOL")"
stop_gateway || fail "gateway exit"

# ---- rate limit: 20 publishes/s measured at the cloud, and the backlog drains
: >"$GW_LOG"
write_config 'max_publish_rate = 20;'
stop_cloud
start_gateway_conf
"$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_B s2 100 0 >"$WORK/s2.acks" || fail "seqpub s2"
[ "$(grep -c acked "$WORK/s2.acks")" -eq 100 ] || fail "not every message acknowledged while the cloud was down"
"$PSAGW" spool stats --spool "$SPOOL" | grep -q "depth:       100 records" || fail "spool depth: $("$PSAGW" spool stats --spool "$SPOOL")"
# the gateway restarts on its spool, after the observer is back (so that what the observer
# sees is the gateway's pace, not its own reconnection)
stop_gateway || fail "gateway exit"
subs=$(grep -c "Received SUBSCRIBE from observer" "$CLOUD_DIR/mosquitto.log")
start_cloud "$CLOUD_PORT"
for _ in $(seq 1 100); do
  [ "$(grep -c "Received SUBSCRIBE from observer" "$CLOUD_DIR/mosquitto.log")" -gt "$subs" ] && break
  sleep 0.1
done
start_gateway_conf
expect_log "event=spool_open path=$SPOOL records=100"
wait_observed " psagw/gw1/sensors/s2/seq " 100 15 || fail "backlog did not drain: $(observed_count ' psagw/gw1/sensors/s2/seq ')/100"
awk '$2 == "psagw/gw1/sensors/s2/seq" {print $1}' "$OBS_OUT" | sort -n >"$WORK/times"
# the gateway keeps at most 20 sends in any second; the observer sees arrivals, which a busy
# machine (the sanitizer builds) can delay by tens of milliseconds, bunching two batches: so
# any 0.9 s of arrivals, allowing 100 ms of delivery jitter
max=$(awk '{ t[NR] = $1 } END { m = 0; j = 1; for (i = 1; i <= NR; i++) { while (t[i] - t[j] >= 0.9) j++; if (i - j + 1 > m) m = i - j + 1 } print m }' "$WORK/times")
span=$(awk 'NR == 1 { a = $1 } { b = $1 } END { printf "%.1f", b - a }' "$WORK/times")
[ "$max" -le 20 ] || fail "$max publishes within 0.9 s at the cloud (limit 20/s): $(cat "$WORK/times" | tr "\n" " ")"
[ "$max" -ge 15 ] || fail "only $max publishes per second: the limit is not used"
check_acked_arrived "$WORK/s2.acks" s2
ok "limit 20/s: at most $max publishes arrived in any 0.9 s at the cloud, 100 drained in ${span}s"
stop_gateway || fail "gateway exit"

# ---- bytes/s limit, and the uplink speaking MQTT 3.1.1
: >"$GW_LOG"
write_config 'max_publish_rate = 0;' 'max_bytes_rate = 1000;' 'protocol = "mqtt311";'
start_gateway_conf
expect_log "event=cloud_connected" 10
LOADGEN_PAD=100 "$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_B s2 24 0 >"$WORK/s2b.acks" || fail "seqpub s2 (bytes)"
wait_observed " psagw/gw1/sensors/s2/seq s2:[0-9]*:p" 24 15 || fail "bytes-limited messages did not all arrive"
# each message: topic (24 bytes) + payload (100) = 124 bytes; 1000 B/s allows 8 per second
awk '$2 == "psagw/gw1/sensors/s2/seq" && $3 ~ /:p/ {print $1}' "$OBS_OUT" | sort -n >"$WORK/btimes"
maxb=$(awk '{ t[NR] = $1 } END { m = 0; j = 1; for (i = 1; i <= NR; i++) { while (t[i] - t[j] >= 0.9) j++; if (i - j + 1 > m) m = i - j + 1 } print m }' "$WORK/btimes")
[ "$maxb" -le 8 ] || fail "$maxb messages of 124 bytes within one second (limit 1000 B/s)"
[ "$maxb" -ge 6 ] || fail "only $maxb per second: the byte limit is not used"
ok "limit 1000 B/s: at most $maxb x 124 bytes in any second at the cloud, over MQTT 3.1.1"
stop_gateway || fail "gateway exit"

# ---- payload = "json": the gateway opens records with the group key
PSADEV=${PSADEV:?PSADEV must point at the psadev binary}
openssl rand -hex 32 >"$WORK/group.key"
"$PSADEV" provision --id sj --role sensor --state "$WORK/dev-sj" --group-key-file "$WORK/group.key" \
  --manifest "$WORK/sj.json" >/dev/null
"$PSAGW" device import "$WORK/sj.json" --registry "$REG" >/dev/null
: >"$GW_LOG"
write_config 'max_publish_rate = 0;' "group_key_file = \"$WORK/group.key\";" \
  'routes = ( { match = "sensors/+/#"; topic = "psagw/{gateway}/json/{id}/{rest}"; payload = "json"; } );'
start_gateway_conf
expect_log "event=cloud_connected" 10
printf '# temperature_c humidity_pct\n21.50 40.25\n-3.75 80.50\n' >"$WORK/readings.txt"
"$PSADEV" sensor --state "$WORK/dev-sj" --gateway 127.0.0.1:$PSK_PORT --interval 100 --count 2 \
  --readings "$WORK/readings.txt" >"$WORK/sj.out" 2>&1 || fail "sensor sj: $(cat "$WORK/sj.out")"
"$PSADEV" sensor --state "$WORK/dev-sj" --gateway 127.0.0.1:$PSK_PORT --interval 100 --count 1 \
  --integrity-only --readings "$WORK/readings.txt" >>"$WORK/sj.out" 2>&1 || fail "sensor sj (mac)"
wait_observed " psagw/gw1/json/sj/env " 3 || fail "no JSON readings at the cloud: $(grep -a json "$OBS_OUT")"
grep -a " psagw/gw1/json/sj/env " "$OBS_OUT" | cut -d' ' -f3- >"$WORK/sj.json.out"
/usr/bin/python3 - "$WORK/sj.json.out" <<'PY' || fail "JSON readings: $(cat "$WORK/sj.json.out")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["temperature_c"] for r in rows] == [21.5, -3.75, 21.5], rows
assert [r["humidity_pct"] for r in rows] == [40.25, 80.5, 40.25], rows
assert all(r["device"] == "sj" for r in rows) and rows[0]["seq"] < rows[1]["seq"] < rows[2]["seq"], rows
assert [r["protection"] for r in rows] == ["cose_encrypt0", "cose_encrypt0", "cose_mac0"], rows
PY
# a record that does not open is refused at the PUBLISH, never acknowledged
out=$(pub s1 $PSK_A -V 5 -q 1 -t sensors/s1/env -m 'not a record' 2>&1) || true
expect_log 'event=cloud_refused_publish id=s1 topic=sensors/s1/env bytes=12 reason="not a well-formed record'
grep -a -q " psagw/gw1/json/s1/" "$OBS_OUT" && fail "a forged record went up"
# a device sealing with another group key: its records do not verify
openssl rand -hex 32 >"$WORK/other-group.key"
"$PSADEV" provision --id sk --role sensor --state "$WORK/dev-sk" --group-key-file "$WORK/other-group.key" \
  --manifest "$WORK/sk.json" >/dev/null
"$PSAGW" device import "$WORK/sk.json" --registry "$REG" >/dev/null
"$PSADEV" sensor --state "$WORK/dev-sk" --gateway 127.0.0.1:$PSK_PORT --interval 100 --count 1 >"$WORK/sk.out" 2>&1 &
sk_pid=$!
expect_log 'event=cloud_refused_publish id=sk topic=sensors/sk/env bytes=[0-9]* reason="record does not verify with the group key'
wait_for "$WORK/sk.out" "publish failed: record does not verify with the group key" 5 || fail "the device was not told: $(cat "$WORK/sk.out")"
kill $sk_pid 2>/dev/null || true
grep -a -q " psagw/gw1/json/sk/" "$OBS_OUT" && fail "a record under another group key went up"
ok "payload = \"json\": records (encrypted and MAC-only) go up decoded; one that does not open is refused (0x99)"
stop_gateway || fail "gateway exit"

# ---- bad configs: clear message, devices still served, spooled until the cloud is back
bad_config() { # description expected-log-pattern config-lines...
  local what=$1 pat=$2; shift 2
  : >"$GW_LOG"
  write_config "$@"
  start_gateway_conf
  expect_log "$pat" 10
  local before
  before=$("$PSAGW" spool stats --spool "$SPOOL" | sed -n 's/^depth: *\([0-9]*\).*/\1/p')
  "$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_A s1 3 0 >/dev/null || fail "$what: device not served"
  local after
  after=$("$PSAGW" spool stats --spool "$SPOOL" | sed -n 's/^depth: *\([0-9]*\).*/\1/p')
  [ "$after" -eq $((before + 3)) ] || fail "$what: spool depth $before -> $after"
  gateway_alive
  ok "$what: '$pat' logged, devices served, messages spooled"
}
bad_config "missing client certificate" "event=cloud_config_error detail=\"cloud.cert_file $WORK/nope.pem: cannot load: No such file or directory" \
  "cert_file = \"$WORK/nope.pem\";"
# fixed by a SIGHUP once the file is there: the backlog goes up
cp "$CLOUD_DIR/gw1.pem" "$WORK/nope.pem"
kill -HUP "$GW_PID"
expect_log "event=cloud_connected" 10
wait_observed " psagw/gw1/sensors/s1/seq s1:3" 2 15 || fail "spooled messages did not go up after the fix"
ok "after the fix and SIGHUP the spooled messages reach the cloud"
stop_gateway || fail "gateway exit"
bad_config "wrong key" "is not the private key of cloud.cert_file" "key_file = \"$CLOUD_DIR/other.key\";"
stop_gateway || fail "gateway exit"
dead_port=$(free_port)
bad_config "unreachable host" "event=cloud_disconnected host=localhost port=$dead_port" "port = $dead_port;"
stop_gateway || fail "gateway exit"
bad_config "template over the limits" "has 8 slashes; AWS IoT allows at most 7" \
  'routes = ( { match = "sensors/+/#"; topic = "a/b/c/d/e/f/g/{id}/{rest}"; } );'
stop_gateway || fail "gateway exit"
