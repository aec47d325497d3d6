#!/usr/bin/env bash
# PSA-IAT attestation end to end (docs/design/wire.md section 3): a real gateway, TLS-PSK, and an MQTT 5
# client that does the AUTH exchange with tokens from the shared library (tests/tools/
# iat_client), plus mosquitto_pub for the clients that cannot attest. Every refusal must come
# with the right CONNACK reason code and string, and a closed connection.
. "$(dirname "$0")/lib.sh"
CLIENT=${IAT_CLIENT:?IAT_CLIENT must point at the iat_client binary}

IAK=A9B454B26D6F90A4EA31193564CBA91FEC6F9A002A7DC0504B92A1937134585F # TF-M's test IAK
IAK48=$(printf '3c%.0s' $(seq 48))
NSPE=$(printf '22%.0s' $(seq 32))   # the test client's default NSPE measurement
SIGNER=$(printf '5e%.0s' $(seq 32)) # and its signer ID
IMPL=$(printf 'aa%.0s' $(seq 32))   # and its implementation ID

add_device dev-1 sensor $PSK_A --iak $IAK
add_device dev-2 sensor $PSK_B --iak $IAK48 --iat-profile psa2
add_device no-iak sensor $PSK_C
add_device opt-1 sensor $PSK_A --iak $IAK --attestation optional
add_device off-1 sensor $PSK_A --iak $IAK --attestation off

# configuration errors name file, line and key
printf 'registry = "%s";\nattestation = {\n  nonce_size = 33;\n};\n' "$REG" > $WORK/bad.conf
out=$("$PSAGW" serve --config $WORK/bad.conf 2>&1 || true)
echo "$out" | grep -q "bad.conf:3: nonce_size: must be 32, 48 or 64" || fail "bad nonce_size: $out"
printf 'registry = "%s";\nattestation = { lifecycles = [ "debug" ]; };\n' "$REG" > $WORK/bad.conf
out=$("$PSAGW" serve --config $WORK/bad.conf 2>&1 || true)
echo "$out" | grep -q 'bad.conf:2: lifecycles: must list "secured" and/or "non_psa_rot_debug"' || fail "bad lifecycles: $out"
printf 'attestation_default = "off";\nattestation = { default = "required"; };\n' > $WORK/bad.conf
out=$("$PSAGW" serve --config $WORK/bad.conf 2>&1 || true)
echo "$out" | grep -q "not both" || fail "two defaults: $out"
ok "attestation configuration errors name file, line and key"

cat > $WORK/gw.conf <<CONF
registry = "$REG";
attestation = { default = "required"; deadline = 2; };
CONF
start_gateway --config $WORK/gw.conf --attestation-default required

attest() { # id psk iak [client args...]: runs the client, output in $WORK/out
  local id=$1 psk=$2 iak=$3; shift 3
  local rc=0
  "$CLIENT" --port "$PSK_PORT" --id "$id" --psk "$psk" --iak "$iak" "$@" >$WORK/out 2>&1 || rc=$?
  return $rc
}
refused_with() { # code "reason string"
  grep -q "connack reason=$1 reason_string=\"$2\"" $WORK/out ||
    fail "expected CONNACK $1 \"$2\", got: $(cat $WORK/out)"
  grep -qx "closed" $WORK/out || fail "connection not closed after the refusal: $(cat $WORK/out)"
}

# --- accepted ---------------------------------------------------------------------------------
attest dev-1 $PSK_A $IAK --publish sensors/dev-1/env hello || fail "good token refused: $(cat $WORK/out)"
grep -q "challenge nonce_len=32" $WORK/out || fail "no 32-byte challenge"
grep -q "connack reason=0x00 method=PSA-IAT" $WORK/out || fail "CONNACK lacks the method"
grep -q "puback reason=0x00" $WORK/out || fail "attested device could not publish"
expect_log "event=attestation .*id=dev-1 verdict=accepted .*profile=legacy lifecycle=secured"
expect_log "event=connect .*id=dev-1 .*attested=1"
ok "a good legacy token is accepted, CONNACK carries the method, data flows"

attest dev-2 $PSK_B $IAK48 --profile psa2 --alg 6 || fail "PSA 2.0 / HMAC-384 refused: $(cat $WORK/out)"
attest dev-2 $PSK_B $IAK48 --profile legacy --alg 6 && fail "pinned profile not enforced"
refused_with 0x87 "attestation refused: profile not accepted"
ok "PSA 2.0 profile with HMAC-SHA384 accepted; a device pinned to psa2 refuses legacy"

# --- refusals, one per reason --------------------------------------------------------------
attest dev-1 $PSK_A $IAK --mode wrong-key && fail "wrong key accepted"
refused_with 0x87 "attestation refused: MAC mismatch"
ok "token MACed with another key: 0x87 MAC mismatch, closed"

attest dev-1 $PSK_A $IAK --save-token $WORK/old.cbor >/dev/null || fail "could not record a token"
attest dev-1 $PSK_A $IAK --replay $WORK/old.cbor && fail "replayed token accepted"
refused_with 0x87 "attestation refused: nonce mismatch"
ok "a replayed token (answer to an earlier nonce): 0x87 nonce mismatch, closed"

attest dev-1 $PSK_A $IAK --delay-ms 3000 && fail "late token accepted"
refused_with 0x87 "attestation deadline passed"
expect_log "event=attestation .*id=dev-1 verdict=refused result=timeout"
ok "a token after the deadline: 0x87 deadline passed, closed"

attest dev-1 $PSK_A $IAK --lifecycle 0x4000 && fail "debug lifecycle accepted"
refused_with 0x87 "attestation refused: lifecycle non_psa_rot_debug (0x4000) not acceptable"
attest dev-1 $PSK_A $IAK --lifecycle 0x6000 && fail "decommissioned device accepted"
refused_with 0x87 "attestation refused: lifecycle decommissioned (0x6000) not acceptable"
ok "debug and decommissioned lifecycles refused by the default policy"

attest dev-1 $PSK_A $IAK --mode nonce31 && fail "31-byte nonce accepted"
refused_with 0x87 "attestation refused: nonce is not 32, 48 or 64 bytes"
attest dev-1 $PSK_A $IAK --mode garbage && fail "garbage accepted"
grep -q "connack reason=0x87 reason_string=\"attestation refused: " $WORK/out || fail "garbage: $(cat $WORK/out)"
attest dev-1 $PSK_A $IAK --mode none && fail "AUTH without a token accepted"
grep -q "connack reason=0x87" $WORK/out || fail "no token: $(cat $WORK/out)"
ok "bad nonce size, malformed token and missing token refused"

attest dev-1 $PSK_A $IAK --mode wrong-method && fail "another method accepted"
refused_with 0x8c "authentication method not supported (only PSA-IAT)"
attest dev-1 $PSK_A $IAK --no-method && fail "MQTT 5 without attestation accepted"
refused_with 0x87 "attestation required (authentication method PSA-IAT)"
out=$(pub dev-1 $PSK_A -V mqttv311 -t sensors/dev-1/env -m x 2>&1) && fail "3.1.1 client admitted"
expect_log "event=connect_refused .*id=dev-1 .*attestation required (MQTT 5"
ok "another method 0x8C; MQTT 5 without the method and MQTT 3.1.1 refused when required"

attest no-iak $PSK_C $IAK && fail "device without IAK accepted"
refused_with 0x87 "attestation refused: no attestation key registered for this device"
ok "a device with no registered IAK cannot attest"

# --- policy per device ----------------------------------------------------------------------
pub opt-1 $PSK_A -V mqttv311 -t sensors/opt-1/env -m plain || fail "optional: plain client refused"
attest opt-1 $PSK_A $IAK || fail "optional: attesting client refused"
attest opt-1 $PSK_A $IAK --mode wrong-key && fail "optional: a bad token must still be refused"
pub off-1 $PSK_A -t sensors/off-1/env -m plain || fail "off: plain client refused"
attest off-1 $PSK_A $IAK || fail "off: a client offering the method refused"
grep -q "challenge" $WORK/out && fail "off: the device was challenged"
ok "optional admits plain clients but judges tokens; off does not challenge"

# --- re-authentication --------------------------------------------------------------------
attest dev-1 $PSK_A $IAK --reauth 2 || fail "re-attestation failed: $(cat $WORK/out)"
[ "$(grep -c 'auth reason=0x00 method=PSA-IAT' $WORK/out)" = 2 ] || fail "expected two AUTH 0x00: $(cat $WORK/out)"
ok "re-attestation with AUTH 0x19 on a live connection, twice"

# --- reference values ---------------------------------------------------------------------
"$PSAGW" refval add --registry "$REG" --implementation $IMPL --label "test board" >/dev/null
"$PSAGW" refval add --registry "$REG" --measurement $NSPE --signer-id $SIGNER --type NSPE >/dev/null
cat > $WORK/gw.conf <<CONF
registry = "$REG";
attestation = { default = "required"; deadline = 2; require_known_implementation = true;
                require_known_measurements = true; };
CONF
kill -HUP $GW_PID
expect_log "event=reload config=$WORK/gw.conf"
sleep 1.2 # reference values reload within a second of the registry change
attest dev-1 $PSK_A $IAK || fail "known measurement refused: $(cat $WORK/out)"
attest dev-1 $PSK_A $IAK --measurement $(printf '66%.0s' $(seq 32)) && fail "modified NSPE accepted"
refused_with 0x87 "attestation refused: unknown software measurement (software component 0)"
"$PSAGW" refval remove --registry "$REG" 1 >/dev/null
sleep 1.2
attest dev-1 $PSK_A $IAK && fail "unknown implementation accepted"
refused_with 0x87 "attestation refused: unknown implementation ID"
ok "reference values: unknown measurement and unknown implementation refused, live"

# --- verdicts: log, counters, history --------------------------------------------------------
sleep 1.2 # the history is written once a second
show=$("$PSAGW" device show dev-1 --registry "$REG")
echo "$show" | grep -q "last_verdict refused at .*: unknown implementation ID" || fail "device show: $show"
echo "$show" | grep -q '"lifecycle_state":"secured"' || fail "device show lacks the claims: $show"
echo "$show" | grep -qi "$IAK" && fail "device show leaks the IAK"
grep -qi "$IAK" "$GW_LOG" && fail "the log leaks the IAK"
kill -USR1 $GW_PID
expect_log "event=stats .*attestations_accepted=[1-9]"
expect_log "event=attestation_refusals .*mac_mismatch=2 .*nonce_mismatch=1"
gateway_alive
ok "verdicts logged without secrets, counted, and kept in the registry history"

# --- re-attestation interval ------------------------------------------------------------------
stop_gateway
cat > $WORK/gw.conf <<CONF
registry = "$REG";
attestation = { default = "required"; reattest_interval = 2; };
CONF
start_gateway --config $WORK/gw.conf
attest dev-2 $PSK_B $IAK48 --profile psa2 --hold-ms 3500 && fail "no re-attestation demanded"
grep -q "user:psa-iat-reattest-interval=2" $WORK/out || fail "CONNACK does not announce the interval"
grep -q 'disconnect reason=0x87 reason_string="re-attestation due"' $WORK/out || fail "$(cat $WORK/out)"
attest dev-2 $PSK_B $IAK48 --profile psa2 --reauth 3 --reauth-gap-ms 1200 || fail "re-attesting device dropped: $(cat $WORK/out)"
ok "re-attestation interval: announced in CONNACK, enforced with DISCONNECT 0x87"
stop_gateway

# 48-byte challenges, and a device registered without an IAK cannot be challenged
printf 'registry = "%s";\nattestation = { nonce_size = 48; };\n' "$REG" > $WORK/gw.conf
start_gateway --config $WORK/gw.conf
attest dev-1 $PSK_A $IAK || fail "48-byte challenge: $(cat $WORK/out)"
grep -q "challenge nonce_len=48" $WORK/out || fail "challenge is not 48 bytes: $(cat $WORK/out)"
# revoked after its handshake, while it holds the challenge: it must not get in
: > $WORK/out
( rc=0; attest dev-1 $PSK_A $IAK --delay-ms 2500 || rc=$?; echo "rc=$rc" >> $WORK/out ) &
wait_for $WORK/out "challenge" || fail "no challenge"
"$PSAGW" device revoke dev-1 --registry "$REG" >/dev/null
wait $!
grep -q "rc=0" $WORK/out && fail "a device revoked during its attestation got in: $(cat $WORK/out)"
expect_log "event=device_disconnected id=dev-1 reason=revoked"
ok "48-byte challenges; a device revoked mid-exchange is not admitted"
gateway_alive
