#!/usr/bin/env bash
# The firmware device end to end (docs/firmware.md): TF-M v2.1.6 Profile Small with BL2 and the
# project's sensor partition on QEMU mps2-an521, its non-secure application on TF-M's NS
# interface, the host modem (psadev-fw run) in front of the unchanged gateway. Checks:
#   - the factory step: the record in the device's NV memory, the manifest (0600) the gateway
#     imports (PSK, IAK, instance ID, the build's reference values);
#   - the device attests with TF-M's own token, accepted against the reference values, and its
#     sealed readings are opened by an emulated monitor (psadev) holding the group key;
#   - it reconnects and attests again after the gateway restarts;
#   - its sequence numbers survive a power cycle (ITS on the NV memory): no replay refusal;
#   - a firmware whose NS image changed after the reference values were taken is refused
#     (measurement), a device left in a debug lifecycle is refused (lifecycle);
#   - TF-M refuses to export the PSK to the NS side; an NS read of secure memory faults, and
#     the secure side reports the SecureFault after the reset.
# Needs: the firmware images (FW_IMAGES, scripts/build-firmware.sh), psadev-fw, psadev, psagw.
. "$(dirname "$0")/../integration/lib.sh"
PSADEV=${PSADEV:?PSADEV must point at the psadev binary}
PSADEV_FW=${PSADEV_FW:?PSADEV_FW must point at the psadev-fw binary}
FW_IMAGES=${FW_IMAGES:?FW_IMAGES must name the firmware build images folder}
[ -f "$FW_IMAGES/tfm_s_ns_signed.bin" ] || fail "no firmware images in $FW_IMAGES (scripts/build-firmware.sh)"
command -v qemu-system-arm >/dev/null || fail "qemu-system-arm is missing (scripts/bootstrap.sh)"

GROUP_KEY=$(openssl rand -hex 32)
printf '%s' "$GROUP_KEY" > $WORK/group.key
fw_provision() { # id role [more psadev-fw provision args] (images: FW_IMAGES unless IMAGES set)
  local id=$1 role=$2; shift 2
  "$PSADEV_FW" provision --nv "$WORK/$id.nv" --id "$id" --role "$role" --group-key $WORK/group.key \
    --images "${IMAGES:-$FW_IMAGES}" --manifest "$WORK/$id.json" "$@" >/dev/null
}
fw_run() { # id out [psadev-fw run args]: in the background, pid in FW_PID
  local id=$1 out=$2; shift 2
  "$PSADEV_FW" run --nv "$WORK/$id.nv" --images "${IMAGES:-$FW_IMAGES}" \
    --gateway 127.0.0.1:$PSK_PORT "$@" > "$out" 2>&1 &
  FW_PID=$!
  CHILDREN+=($FW_PID)
}
fw_stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# ---- the factory step, the registry --------------------------------------------------------
fw_provision fw-s1 sensor
[ "$(stat -c %a $WORK/fw-s1.json)" = 600 ] || fail "manifest is not 0600"
[ "$(stat -c %s $WORK/fw-s1.nv)" = 16777216 ] || fail "the NV memory is not 16 MiB"
psk=$(sed -n 's/.*"psk": "\([0-9a-f]*\)".*/\1/p' $WORK/fw-s1.json)
[ ${#psk} = 32 ] || fail "no PSK in the manifest"
xxd -p $WORK/fw-s1.nv | tr -d '\n' | grep -q "$psk" && fail "the TLS PSK is stored as such in the device"
grep -q '"type": "NSPE"' $WORK/fw-s1.json && grep -q '"type": "SPE"' $WORK/fw-s1.json ||
  fail "the manifest lacks the SPE/NSPE measurements: $(cat $WORK/fw-s1.json)"
"$PSAGW" device import $WORK/fw-s1.json --registry "$REG" | grep -q "imported fw-s1" || fail "manifest import"
"$PSADEV" provision --id mon-1 --role monitor --state $WORK/dev-mon-1 \
  --group-key-file $WORK/group.key --manifest $WORK/mon-1.json >/dev/null
"$PSAGW" device import $WORK/mon-1.json --registry "$REG" >/dev/null
cat > $WORK/gw.conf <<CONF
registry = "$REG";
attestation = { default = "required"; require_known_implementation = true;
                require_known_measurements = true; };
anonymous_acl = { publish = [ "cmd/#" ]; subscribe = [ ]; };
CONF
start_gateway --config $WORK/gw.conf --attestation-default required --allow-anonymous
truncate -s 16M $WORK/blank.nv
"$PSADEV_FW" run --nv $WORK/blank.nv --images "$FW_IMAGES" --gateway 127.0.0.1:1 > $WORK/blank.out 2>&1 &&
  fail "a device without a factory record was started"
grep -q "not a provisioned device" $WORK/blank.out || fail "no clear refusal: $(cat $WORK/blank.out)"
"$PSADEV_FW" provision --nv $WORK/fw-s1.nv --id again --role sensor > $WORK/again.out 2>&1 &&
  fail "a provisioned device was provisioned again"
grep -q "already holds a provisioned device" $WORK/again.out || fail "no clear refusal: $(cat $WORK/again.out)"
ok "factory step: record in NV memory, manifest (0600) imported with the build's SPE/NSPE reference values; no second factory step, no start without one"

# ---- attest, publish, a monitor opens the readings -----------------------------------------
"$PSADEV" monitor --state $WORK/dev-mon-1 --gateway 127.0.0.1:$PSK_PORT > $WORK/monitor.out 2>&1 &
mon_pid=$!
CHILDREN+=($mon_pid)
expect_log "event=subscribe id=mon-1 filter=sensors/# "
t0=$(date +%s%N)
fw_run fw-s1 $WORK/fw1.out
wait_for $WORK/fw1.out "connected id=fw-s1 .*attested=1" 30 || fail "firmware did not attest: $(cat $WORK/fw1.out)"
t_att=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_log "event=attestation .*id=fw-s1 verdict=accepted .*profile=legacy lifecycle=secured client_id=-1006632960"
# Mbed TLS on the Cortex-M33, its PSK in the SPE: the gateway's own TLS 1.2 handshake
expect_log "event=tls_handshake .*identity=fw-s1 version=TLSv1.2 cipher=PSK-AES128-CCM.* handshake=psagw record_layer=psagw"
wait_for $WORK/monitor.out "reading device=fw-s1 seq=2 " 30 || fail "monitor: $(cat $WORK/monitor.out)"
grep -q "refused replay\|refused record" $WORK/monitor.out && fail "monitor refused a reading: $(cat $WORK/monitor.out)"
mosquitto_pub -h 127.0.0.1 -p $PLAIN_PORT -i operator -q 1 -t cmd/fw-s1/interval -m 700 ||
  fail "cannot publish the command"
wait_for $WORK/fw1.out "command interval_ms=700" 15 || fail "the firmware did not get its command: $(tail -3 $WORK/fw1.out)"
ok "TF-M token accepted (legacy profile, secured, NS client id, reference values) in $t_att ms from power-on; sealed readings opened by the monitor; a command (cmd/fw-s1/interval) obeyed"

# ---- the gateway restarts: the device reconnects and attests again --------------------------
stop_gateway >/dev/null
grep -q "connection lost" $WORK/fw1.out || wait_for $WORK/fw1.out "connection lost" 10 || fail "firmware did not see the close"
launch_gateway --registry "$REG" --listen 127.0.0.1:$PSK_PORT --workers 2 --log-level debug \
  --config $WORK/gw.conf --attestation-default required --allow-anonymous
for _ in $(seq 1 900); do
  [ "$(grep -c "event=attestation .*id=fw-s1 verdict=accepted" $GW_LOG)" -ge 2 ] && break
  sleep 0.1
done
n=$(grep -c "event=attestation .*id=fw-s1 verdict=accepted" $GW_LOG)
[ "$n" -ge 2 ] || fail "no second attestation after the restart: $(tail -5 $WORK/fw1.out)"
ok "after a gateway restart the firmware reconnects (jittered backoff) and attests again"

# ---- power cycle: sequence numbers continue (ITS in the NV memory) --------------------------
last=$(grep -o "reading device=fw-s1 seq=[0-9]*" $WORK/monitor.out | tail -1 | sed 's/.*seq=//')
fw_stop $FW_PID
fw_run fw-s1 $WORK/fw1b.out
wait_for $WORK/fw1b.out "published .* n=2" 30 || fail "no publish after the power cycle: $(cat $WORK/fw1b.out)"
sleep 0.5
grep -q "refused replay device=fw-s1" $WORK/monitor.out && fail "a reading after the power cycle was a replay: $(tail -3 $WORK/monitor.out)"
after=$(grep -o "reading device=fw-s1 seq=[0-9]*" $WORK/monitor.out | tail -1 | sed 's/.*seq=//')
[ "$after" -gt "$last" ] || fail "sequence did not advance across the power cycle ($last -> $after)"
fw_stop $FW_PID
ok "after a power cycle the readings continue at seq $after (> $last): ITS and the NV seed persist"

# ---- an NS image changed after the reference values were taken ------------------------------
SIGN=$(dirname "$FW_IMAGES")/spe/api_ns/image_signing
[ -d "$SIGN" ] || fail "no image signing tools beside $FW_IMAGES"
mkdir -p $WORK/tampered
cp "$FW_IMAGES"/bl2.axf "$FW_IMAGES"/tfm_s_signed.bin $WORK/tampered/
# the same application with one log string changed, signed with the build's NS key: BL2 boots
# it, and measures it
sed 's/psagw firmware: TF-M/psagw firmwarE: TF-M/' "$(dirname "$FW_IMAGES")/ns/bin/tfm_ns.bin" > $WORK/tampered/tfm_ns.bin
cmp -s $WORK/tampered/tfm_ns.bin "$(dirname "$FW_IMAGES")/ns/bin/tfm_ns.bin" && fail "the NS image did not change"
(cd $SIGN/scripts && /usr/bin/python3 wrapper/wrapper.py --version 0.0.0 \
   --layout ../layout_files/signing_layout_ns.o --key ../keys/image_ns_signing_private_key.pem \
   --public-key-format hash --align 1 --pad --pad-header -H 0x400 -s 1 -L 128 \
   -d "(0, 0.0.0+0)" --overwrite-only --measured-boot-record \
   $WORK/tampered/tfm_ns.bin $WORK/tampered/tfm_ns_signed.bin >/dev/null &&
 /usr/bin/python3 assemble.py --layout ../layout_files/signing_layout_s.o \
   --secure $WORK/tampered/tfm_s_signed.bin --non_secure $WORK/tampered/tfm_ns_signed.bin \
   --output $WORK/tampered/tfm_s_ns_signed.bin) || fail "cannot sign the changed NS image"
# the device and the registry know the genuine build; the board runs the changed one
fw_provision fw-t sensor
"$PSAGW" device import $WORK/fw-t.json --registry "$REG" >/dev/null
IMAGES=$WORK/tampered fw_run fw-t $WORK/fwt.out
wait_for $GW_LOG "event=attestation .*id=fw-t verdict=refused" 30 || fail "changed NS image not refused: $(tail -5 $WORK/fwt.out)"
expect_log "event=attestation .*id=fw-t verdict=refused result=unknown_measurement"
wait_for $WORK/fwt.out "psagw firmwarE" 5 || fail "the changed image did not run"
fw_stop $FW_PID
ok "an NS image changed after the reference values were taken boots (validly signed) and is refused: unknown measurement"

# ---- debug lifecycle ------------------------------------------------------------------------
fw_provision fw-dbg sensor --lifecycle recoverable_psa_rot_debug
"$PSAGW" device import $WORK/fw-dbg.json --registry "$REG" >/dev/null
fw_run fw-dbg $WORK/fwd.out
wait_for $GW_LOG "event=attestation .*id=fw-dbg verdict=refused" 30 || fail "debug device not refused: $(tail -5 $WORK/fwd.out)"
expect_log "event=attestation .*id=fw-dbg verdict=refused .*lifecycle=recoverable_psa_rot_debug"
fw_stop $FW_PID
ok "a firmware device in a debug lifecycle (RECOVERABLE_PSA_ROT_DEBUG) is refused"

# ---- isolation: the PSK cannot be exported, secure memory cannot be read -------------------
fw_run fw-s1 $WORK/fws.out --selftest
wait_for $WORK/fws.out "selftest: psa_export_key(TLS PSK) refused by TF-M" 30 || fail "export not refused: $(cat $WORK/fws.out)"
# TF-M's token, as its bytes came out of the device, through the gateway's verifier offline
sed -n 's/.*selftest: token \([0-9a-f]*\)$/\1/p' $WORK/fws.out | tr -d '\n' > $WORK/tfm-token.hex
[ -s $WORK/tfm-token.hex ] || fail "no token in the self-test output"
iak=$(sed -n 's/.*"iak": "\([0-9a-f]*\)".*/\1/p' $WORK/fw-s1.json)
sed -n '/"refvals"/,$p' $WORK/fw-s1.json | sed '1s/.*"refvals": //; $d' > $WORK/refvals.json
"$PSAGW" iat verify --key-hex "$iak" --nonce 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
  --refvals $WORK/refvals.json $WORK/tfm-token.hex > $WORK/verify.out 2>&1 ||
  fail "the verifier refused TF-M's token: $(cat $WORK/verify.out)"
"$PSAGW" iat verify --key-hex "$iak" --nonce 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1e \
  $WORK/tfm-token.hex >/dev/null 2>&1 && fail "the verifier accepted TF-M's token for another nonce"
wait_for $WORK/fws.out "secure side: the last reset followed SecureFault" 30 || fail "no SecureFault report: $(cat $WORK/fws.out)"
grep -q "AUVIOL" $WORK/fws.out || fail "the report does not name the violation: $(grep secure $WORK/fws.out)"
grep -q "selftest: FAILED" $WORK/fws.out && fail "the NS side read secure memory"
wait_for $WORK/fws.out "connected id=fw-s1 .*attested=1" 30 || fail "no attest after the fault reset"
fw_stop $FW_PID
ok "TF-M's token ($(( $(wc -c < $WORK/tfm-token.hex) / 2 )) bytes) verifies offline against the IAK and the reference values, and not for another nonce"
ok "TF-M refuses to export the PSK; an NS read of secure memory is a SecureFault the secure side reports after the reset"
