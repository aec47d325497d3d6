#!/usr/bin/env bash
# The device emulator against the gateway, end to end: psadev (NSPE: Mbed TLS as a pure PSA
# client) with its own psadev-spe (PSA crypto core, key store, attestation service) as two
# processes, provisioned on the fly, imported into the gateway from its manifest, attesting
# over MQTT 5 AUTH. Checks the refusals a gateway owes (wrong PSK, wrong IAK, debug lifecycle,
# modified NSPE image), each TLS suite the device offers, and that the NSPE process never holds
# the device's secrets.
. "$(dirname "$0")/lib.sh"
PSADEV=${PSADEV:?PSADEV must point at the psadev binary}

GROUP_KEY=$(openssl rand -hex 32)
printf '%s' "$GROUP_KEY" > $WORK/group.key
provision() { # id role [more psadev provision args]
  local id=$1 role=$2; shift 2
  "$PSADEV" provision --id "$id" --role "$role" --state "$WORK/dev-$id" \
    --group-key-file $WORK/group.key --manifest "$WORK/$id.json" "$@" >/dev/null
}
manifest_field() { sed -n "s/.*\"$2\": \"\\([0-9a-fx]*\\)\".*/\\1/p" "$WORK/$1.json" | head -1; }
connect() { # id [psadev connect args...]: output in $WORK/out
  local id=$1; shift
  local rc=0
  "$PSADEV" connect --state "$WORK/dev-$id" --gateway 127.0.0.1:$PSK_PORT "$@" >$WORK/out 2>&1 || rc=$?
  return $rc
}

provision sensor-a sensor
[ "$(stat -c %a $WORK/sensor-a.json)" = 600 ] || fail "manifest is not 0600"
grep -rqi "$(manifest_field sensor-a psk)" $WORK/dev-sensor-a/nspe.conf && fail "nspe.conf holds the PSK"
"$PSAGW" device import $WORK/sensor-a.json --registry "$REG" | grep -q "imported sensor-a" || fail "manifest import"
cat > $WORK/gw.conf <<CONF
registry = "$REG";
attestation = { default = "required"; require_known_implementation = true;
                require_known_measurements = true; };
CONF
start_gateway --config $WORK/gw.conf --attestation-default required --allow-anonymous
ok "provisioned in the SPE store; the manifest (0600) imports device, IAK and reference values"

connect sensor-a --publish sensors/sensor-a/env hello || fail "attested device refused: $(cat $WORK/out)"
grep -q "connected attested=1" $WORK/out || fail "not attested: $(cat $WORK/out)"
grep -q "published topic=sensors/sensor-a/env" $WORK/out || fail "publish: $(cat $WORK/out)"
expect_log "event=attestation .*id=sensor-a verdict=accepted .*lifecycle=secured"
# Mbed TLS's TLS 1.2 PSK client (the devices' stack) is run by the gateway's own handshake
expect_log "event=tls_handshake .*identity=sensor-a version=TLSv1.2 cipher=PSK-AES128-CCM resumed=0 handshake=psagw record_layer=psagw"
ok "the emulated device attests (token from its SPE, IAK by key id) and publishes"

# protected records: two sensors (one integrity-only) and a monitor, all emulated devices
provision mon-1 monitor
provision sensor-e sensor
for d in mon-1 sensor-e; do "$PSAGW" device import $WORK/$d.json --registry "$REG" >/dev/null; done
"$PSADEV" monitor --state $WORK/dev-mon-1 --gateway 127.0.0.1:$PSK_PORT > $WORK/monitor.out 2>&1 &
mon_pid=$!
expect_log "event=subscribe id=mon-1 filter=sensors/# "
# an eavesdropper on the gateway's plain listener records what sensor-a sends
mosquitto_sub -h 127.0.0.1 -p $PLAIN_PORT -t sensors/sensor-a/env -C 1 -N > $WORK/rec.bin &
spy=$!
expect_log "event=subscribe id=auto-.* filter=sensors/sensor-a/env "
"$PSADEV" sensor --state $WORK/dev-sensor-a --gateway 127.0.0.1:$PSK_PORT --interval 100 --count 3 >$WORK/s-a.out 2>&1 ||
  fail "sensor-a: $(cat $WORK/s-a.out)"
printf '# temperature_c humidity_pct\n21.50 40.25\n-3.75 80.50\n' > $WORK/readings.txt
"$PSADEV" sensor --state $WORK/dev-sensor-e --gateway 127.0.0.1:$PSK_PORT --interval 100 --count 2 \
  --integrity-only --readings $WORK/readings.txt >$WORK/s-e.out 2>&1 || fail "sensor-e: $(cat $WORK/s-e.out)"
wait $spy
wait_for $WORK/monitor.out "reading device=sensor-a seq=2 " || fail "monitor: $(cat $WORK/monitor.out)"
wait_for $WORK/monitor.out "reading device=sensor-e seq=1 temp_c=-3.75 rh=80.50" ||
  fail "monitor (integrity-only, readings from a file): $(cat $WORK/monitor.out)"
grep -q "temp_c=" $WORK/monitor.out || fail "no readings"
head -c 8 $WORK/rec.bin | xxd -p | grep -q '^d083' || fail "the record on the wire is not a COSE_Encrypt0"
grep -q 'sensor-a' $WORK/rec.bin || fail "kid missing"
grep -q 'temp' $WORK/rec.bin && fail "plaintext on the wire"
ok "sensors' SPEs seal readings (COSE_Encrypt0 / COSE_Mac0), the monitor's SPE opens them"
mosquitto_pub -h 127.0.0.1 -p $PLAIN_PORT -t sensors/sensor-a/env -f $WORK/rec.bin
wait_for $WORK/monitor.out "refused replay device=sensor-a seq=0 last_seq=2" || fail "replay: $(cat $WORK/monitor.out)"
mosquitto_pub -h 127.0.0.1 -p $PLAIN_PORT -t sensors/sensor-x/env -f $WORK/rec.bin
wait_for $WORK/monitor.out "refused record topic=sensors/sensor-x/env reason=authentication failed" ||
  fail "moved record: $(cat $WORK/monitor.out)"
printf '\xd0\x83\x43' | mosquitto_pub -h 127.0.0.1 -p $PLAIN_PORT -t sensors/junk/env -s
wait_for $WORK/monitor.out "refused record topic=sensors/junk/env reason=not a well-formed record" ||
  fail "junk: $(cat $WORK/monitor.out)"
# a command from the operator reaches the sensor and changes its interval
subs_before=$(grep -c "event=subscribe id=sensor-e filter=cmd/sensor-e/# " "$GW_LOG" || true)
"$PSADEV" sensor --state $WORK/dev-sensor-e --gateway 127.0.0.1:$PSK_PORT --interval 400 \
  --count 8 >$WORK/s-cmd.out 2>&1 &
cmd_pid=$!
for _ in $(seq 1 100); do
  [ "$(grep -c "event=subscribe id=sensor-e filter=cmd/sensor-e/# " "$GW_LOG" || true)" -gt "$subs_before" ] && break
  sleep 0.05
done
mosquitto_pub -h 127.0.0.1 -p $PLAIN_PORT -t cmd/sensor-e/interval -m 50
wait $cmd_pid || fail "sensor with a command: $(cat $WORK/s-cmd.out)"
grep -q "command interval_ms=50" $WORK/s-cmd.out || fail "command not obeyed: $(cat $WORK/s-cmd.out)"
[ "$(grep -c '^published' $WORK/s-cmd.out)" = 8 ] || fail "readings lost around a command: $(cat $WORK/s-cmd.out)"
ok "an operator command on cmd/<id>/interval changes the sensor's interval"
# seq never repeats, across restarts: the next run starts after the reserved block
"$PSADEV" sensor --state $WORK/dev-sensor-a --gateway 127.0.0.1:$PSK_PORT --count 1 >/dev/null 2>&1
wait_for $WORK/monitor.out "reading device=sensor-a seq=64 " || fail "seq after restart: $(cat $WORK/monitor.out)"
kill $mon_pid; wait $mon_pid || true
ok "the monitor refuses a replayed record, a record moved to another topic, and junk; seq survives restarts"

for s in ccm ccm8; do
  connect sensor-a --suite $s || fail "suite $s: $(cat $WORK/out)"
done
expect_log "identity=sensor-a version=TLSv1.2 cipher=PSK-AES128-CCM "
expect_log "identity=sensor-a version=TLSv1.2 cipher=PSK-AES128-CCM8 "
connect sensor-a --profile psa2 || fail "PSA 2.0 token refused: $(cat $WORK/out)"
ok "Mbed TLS (device) against OpenSSL (gateway): PSK-AES128-CCM and CCM_8; both token profiles"

# wrong PSK: the gateway holds another key for this identity
provision sensor-b sensor
"$PSAGW" device add sensor-b --role sensor --psk "$(openssl rand -hex 16)" \
  --iak "$(manifest_field sensor-b iak)" --registry "$REG" >/dev/null
connect sensor-b && fail "wrong PSK admitted"
grep -q "handshake with 127.0.0.1:$PSK_PORT failed" $WORK/out || fail "wrong PSK: $(cat $WORK/out)"
expect_log "event=tls_handshake_failed .*reason=decryption_failed_or_bad_record_mac"
# wrong IAK: the right PSK, but the gateway knows another IAK
provision sensor-c sensor
"$PSAGW" device add sensor-c --role sensor --psk "$(manifest_field sensor-c psk)" \
  --iak "$(openssl rand -hex 32)" --registry "$REG" >/dev/null
connect sensor-c && fail "wrong IAK admitted"
grep -q 'refused connack=0x87 reason="attestation refused: MAC mismatch"' $WORK/out || fail "wrong IAK: $(cat $WORK/out)"
ok "wrong PSK fails the handshake; wrong IAK: 0x87 MAC mismatch"

provision sensor-d sensor --lifecycle non_psa_rot_debug
"$PSAGW" device import $WORK/sensor-d.json --registry "$REG" >/dev/null
connect sensor-d && fail "debug device admitted"
grep -q 'reason="attestation refused: lifecycle non_psa_rot_debug (0x4000) not acceptable"' $WORK/out ||
  fail "debug lifecycle: $(cat $WORK/out)"
ok "a device in NON_PSA_ROT_DEBUG is refused with the reason"

# a modified NSPE image: same device, same keys, one byte more in the binary
mkdir $WORK/tampered
cp "$PSADEV" "$(dirname "$PSADEV")/psadev-spe" $WORK/tampered/
printf 'x' >> $WORK/tampered/psadev
rc=0; $WORK/tampered/psadev connect --state $WORK/dev-sensor-a --gateway 127.0.0.1:$PSK_PORT >$WORK/out 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "modified NSPE admitted"
grep -q 'reason="attestation refused: unknown software measurement (software component 1)"' $WORK/out ||
  fail "modified NSPE: $(cat $WORK/out)"
ok "a modified NSPE binary is measured by the SPE and refused: unknown software measurement"

# isolation: the NSPE's memory, read while its session is live, holds none of the secrets
"$PSADEV" selftest --state $WORK/dev-sensor-a > $WORK/selftest || fail "selftest: $(cat $WORK/selftest)"
grep -q "export PSK: refused" $WORK/selftest || fail "PSK export not refused"
if [ "${SANITIZED:-0}" = 1 ]; then
  echo "note: memory scan skipped in this sanitizer build (the plain build runs it)"
  ok "PSK export refused from the NSPE"
  gateway_alive
  exit 0
fi
"$PSADEV" connect --state $WORK/dev-sensor-a --gateway 127.0.0.1:$PSK_PORT --hold-ms 4000 >$WORK/hold 2>&1 &
hold_pid=$!
wait_for $WORK/hold "holding pid=" 10 || fail "no live session: $(cat $WORK/hold)"
pid=$(sed -n 's/holding pid=\([0-9]*\)/\1/p' $WORK/hold)
: > $WORK/mem.hex
while read -r range perms _; do
  case $perms in rw*) ;; *) continue ;; esac
  start=$((16#${range%-*})); end=$((16#${range#*-}))
  # sanitizer builds reserve terabytes of shadow memory: heap and stack are far smaller
  [ $((end - start)) -le $((256 * 1024 * 1024)) ] || continue
  dd if=/proc/$pid/mem bs=4096 skip=$((start / 4096)) count=$(((end - start) / 4096)) 2>/dev/null \
    | xxd -p | tr -d '\n' >> $WORK/mem.hex || true
done < /proc/$pid/maps
[ -s $WORK/mem.hex ] || fail "could not read the NSPE's memory"
grep -q "$(printf 'sensor-a' | xxd -p)" $WORK/mem.hex || fail "scan found not even the device id (scan broken)"
for k in psk iak; do
  grep -qi "$(manifest_field sensor-a $k)" $WORK/mem.hex && fail "the NSPE's memory holds the $k"
done
grep -qi "$GROUP_KEY" $WORK/mem.hex && fail "the NSPE's memory holds the group key"
wait $hold_pid || fail "the held session ended badly: $(cat $WORK/hold)"
ok "NSPE memory during a live session holds neither PSK, IAK nor group key; export refused"
gateway_alive
