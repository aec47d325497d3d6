#!/usr/bin/env bash
# psagw iat verify|show|create and psagw refval: exit codes, messages, JSON, RFC 9783's example.
. "$(dirname "$0")/lib.sh"
VEC=${VECTORS:?VECTORS must point at tests/vectors}

RFC_KEY=de038b34aca125768c5e3357ab8d06b367b9ab0d7e8be124edca47fe033a5bb7a93d307ff229aa36ff246c1295964facf71ab7aa6ec4fd6102b7b3983255ad92
RFC_NONCE=$(printf '01%.0s' $(seq 32))
IAK=A9B454B26D6F90A4EA31193564CBA91FEC6F9A002A7DC0504B92A1937134585F
NONCE=$(printf 'c3%.0s' $(seq 32))
iat() { "$PSAGW" iat "$@"; }
rc_of() { local rc=0; "$@" >$WORK/stdout 2>$WORK/stderr || rc=$?; echo $rc; }

# --- verify -----------------------------------------------------------------------------------
[ "$(rc_of iat verify --key-hex $RFC_KEY --nonce $RFC_NONCE $VEC/rfc9783-mac0.hex)" = 0 ] ||
  fail "RFC 9783 example not accepted: $(cat $WORK/stderr)"
grep -q '^verdict: accepted' $WORK/stdout || fail "no verdict line"
grep -q '"certification_reference": "1234567890123-12345"' $WORK/stdout || fail "claims not shown"
xxd -r -p $VEC/rfc9783-mac0.hex > $WORK/rfc.cbor
[ "$(rc_of iat verify --key-hex $RFC_KEY --nonce $RFC_NONCE --json - < $WORK/rfc.cbor)" = 0 ] ||
  fail "raw CBOR on stdin not accepted"
grep -q '"verdict": "accepted"' $WORK/stdout || fail "JSON verdict missing"
ok "RFC 9783's Mac0 example verifies (hex file and raw CBOR on stdin, text and JSON)"

[ "$(rc_of iat verify --key-hex $RFC_KEY --nonce $NONCE --json $VEC/rfc9783-mac0.hex)" = 1 ] ||
  fail "wrong nonce not refused"
grep -q '"result": "nonce_mismatch"' $WORK/stdout || fail "JSON lacks the reason"
grep -q 'refused: nonce mismatch' $WORK/stderr || fail "stderr lacks the reason"
[ "$(rc_of iat verify --key-hex $IAK --nonce $RFC_NONCE $VEC/rfc9783-mac0.hex)" = 1 ] || fail "wrong key"
grep -q 'MAC mismatch' $WORK/stderr || fail "wrong key: $(cat $WORK/stderr)"
grep -q 'claims' $WORK/stdout && fail "claims shown although the MAC is wrong"
[ "$(rc_of iat verify --key-hex $RFC_KEY --nonce $RFC_NONCE --profile legacy $VEC/rfc9783-mac0.hex)" = 1 ] ||
  fail "pinned legacy profile accepted a PSA 2.0 token"
ok "refusals exit 1 with the reason on stderr and in the JSON"

[ "$(rc_of iat verify --key-hex $RFC_KEY $VEC/rfc9783-mac0.hex)" = 2 ] || fail "missing --nonce"
grep -q -- '--nonce' $WORK/stderr || fail "missing --nonce not explained"
[ "$(rc_of iat verify --key-hex zz --nonce $NONCE $VEC/rfc9783-mac0.hex)" = 2 ] || fail "bad key hex"
[ "$(rc_of iat verify --key-hex $RFC_KEY --nonce $NONCE $WORK/missing)" = 2 ] || fail "missing file"
grep -q 'cannot read' $WORK/stderr || fail "missing file not explained"
[ "$(rc_of iat frobnicate)" = 2 ] || fail "unknown subcommand"
ok "usage and I/O errors exit 2 with a message"

# --- show ---------------------------------------------------------------------------------
[ "$(rc_of iat show $VEC/rfc9783-mac0.hex)" = 0 ] || fail "show failed"
grep -q 'UNVERIFIED' $WORK/stdout || fail "show does not say the claims are unverified"
[ "$(rc_of iat show --json $VEC/rfc9783-mac0.hex)" = 0 ] || fail "show --json failed"
grep -q '"verdict": "unverified"' $WORK/stdout || fail "show --json not marked unverified"
head -c 40 $WORK/rfc.cbor > $WORK/cut.cbor
[ "$(rc_of iat show $WORK/cut.cbor)" = 1 ] || fail "a truncated token shown as fine"
ok "show decodes without verifying and says so; a truncated token exits 1"

# --- create -------------------------------------------------------------------------------
cat > $WORK/claims.json <<JSON
{ "profile": "legacy", "boot_seed": "$(printf '5b%.0s' $(seq 32))",
  "implementation_id": "$(printf 'aa%.0s' $(seq 32))", "client_id": -1,
  "lifecycle": "secured", "profile_name": "PSA_IOT_PROFILE_1",
  "sw_components": [ { "measurement_type": "NSPE", "version": "1.0.0",
    "measurement_value": "$(printf '22%.0s' $(seq 32))", "signer_id": "$(printf '5e%.0s' $(seq 32))" } ] }
JSON
[ "$(rc_of iat create --key-hex $IAK --nonce $NONCE --claims $WORK/claims.json --out $WORK/tok.cbor)" = 0 ] ||
  fail "create failed: $(cat $WORK/stderr)"
[ "$(head -c 2 $WORK/tok.cbor | xxd -p)" = "d184" ] || fail "not a tagged COSE_Mac0"
[ "$(rc_of iat verify --key-hex $IAK --nonce $NONCE $WORK/tok.cbor)" = 0 ] || fail "created token refused: $(cat $WORK/stderr)"
grep -q '"instance_id": "01bfe8a99b25d95ca842256bef147a5922b69fbc78faa9ef9f94113d182aaf7c6f"' $WORK/stdout ||
  fail "instance ID not derived from the IAK"
printf '%s' "$IAK" > $WORK/iak.hex
iat show --json $WORK/tok.cbor > $WORK/shown.json
[ "$(rc_of iat create --key-file $WORK/iak.hex --nonce $RFC_NONCE --claims $WORK/shown.json --hex --out $WORK/tok2.hex)" = 0 ] ||
  fail "create from show --json output failed: $(cat $WORK/stderr)"
[ "$(rc_of iat verify --key-file $WORK/iak.hex --nonce $RFC_NONCE $WORK/tok2.hex)" = 0 ] || fail "round trip"
ok "create mints a TF-M layout token that verifies; show --json output feeds create again"

sed 's/"secured"/"non_psa_rot_debug"/' $WORK/claims.json > $WORK/debug.json
iat create --key-hex $IAK --nonce $NONCE --claims $WORK/debug.json --out $WORK/dbg.cbor
[ "$(rc_of iat verify --key-hex $IAK --nonce $NONCE $WORK/dbg.cbor)" = 1 ] || fail "debug token accepted"
[ "$(rc_of iat verify --key-hex $IAK --nonce $NONCE --lifecycle secured+debug $WORK/dbg.cbor)" = 0 ] ||
  fail "debug token refused with --lifecycle secured+debug"
cat > $WORK/refvals.json <<JSON
{ "measurements": [ { "value": "$(printf '77%.0s' $(seq 32))", "type": "NSPE" } ] }
JSON
[ "$(rc_of iat verify --key-hex $IAK --nonce $NONCE --refvals $WORK/refvals.json $WORK/tok.cbor)" = 1 ] ||
  fail "unknown measurement accepted"
grep -q 'unknown software measurement' $WORK/stderr || fail "$(cat $WORK/stderr)"
echo '{ "claims": 1 }' > $WORK/bad.json
[ "$(rc_of iat create --key-hex $IAK --nonce $NONCE --claims $WORK/bad.json)" = 2 ] || fail "bad claims"
echo '{ "lifecycle": "sleepy" }' > $WORK/bad.json
[ "$(rc_of iat create --key-hex $IAK --nonce $NONCE --claims $WORK/bad.json)" = 2 ] || fail "bad lifecycle"
grep -q '"lifecycle" must be' $WORK/stderr || fail "bad lifecycle not explained: $(cat $WORK/stderr)"
ok "--lifecycle and --refvals policies; bad claims files are explained"

# --- refval -------------------------------------------------------------------------------
rv() { "$PSAGW" refval "$@" --registry "$REG"; }
"$PSAGW" device add anyone --role sensor --generate-psk --registry "$REG" >/dev/null
rv add --implementation $(printf 'aa%.0s' $(seq 32)) --label "rev A" | grep -q "added reference value 1" || fail "refval add"
[ "$(rc_of rv add --measurement 1234)" = 1 ] || fail "a short measurement accepted"
grep -q 'at least 32 bytes' $WORK/stderr || fail "short measurement not explained"
[ "$(rc_of rv add --implementation $(printf 'aa%.0s' $(seq 32)))" = 1 ] || fail "duplicate accepted"
cat > $WORK/import.json <<JSON
{ "measurements": [ { "value": "$(printf '11%.0s' $(seq 32))", "signer_id": "$(printf '5e%.0s' $(seq 32))", "type": "SPE" },
                    { "value": "nothex" } ] }
JSON
[ "$(rc_of rv import $WORK/import.json)" = 1 ] || fail "a bad import accepted"
grep -q 'measurements\[1\]: value must be hex.*nothing imported' $WORK/stderr || fail "$(cat $WORK/stderr)"
[ "$(rv list | grep -c measurement)" = 0 ] || fail "a failed import left entries behind"
cat > $WORK/import.json <<JSON
{ "measurements": [ { "value": "$(printf '11%.0s' $(seq 32))", "signer_id": "$(printf '5e%.0s' $(seq 32))", "type": "SPE" } ] }
JSON
rv import $WORK/import.json | grep -q "imported 1 reference values" || fail "import"
rv import $WORK/import.json | grep -q "imported 0 reference values (1 already registered)" || fail "re-import"
rv list --json > $WORK/list.json
grep -q '"type": "SPE"' $WORK/list.json || fail "list --json"
rv remove 1 | grep -q "removed reference value 1" || fail "remove"
[ "$(rc_of rv remove 1)" = 1 ] || fail "removing twice"
ok "refval add/import/list/remove: validated, all-or-nothing imports, idempotent re-import"
