#!/usr/bin/env bash
# TLS-PSK handshakes from independent peers (openssl s_client, gnutls-cli) for every default
# suite of docs/design/wire.md section 1 and TLS 1.3; DHE-PSK and NULL refused unless the listener opts in.
. "$(dirname "$0")/lib.sh"

add_device dev-1 sensor $PSK_A
start_gateway

s_client12() { # cipher -> prints "Cipher is X" line
  timeout 5 openssl s_client -connect 127.0.0.1:$PSK_PORT -tls1_2 -cipher "$1:@SECLEVEL=0" \
    -psk $PSK_A -psk_identity dev-1 </dev/null 2>&1 | grep -m1 "Cipher is" || true
}
for c in PSK-AES128-CCM PSK-AES128-CCM8 PSK-AES128-GCM-SHA256 ECDHE-PSK-AES128-CBC-SHA256 \
         ECDHE-PSK-CHACHA20-POLY1305; do
  s_client12 $c | grep -q "Cipher is $c" || fail "openssl s_client could not use $c"
  ok "openssl s_client TLS 1.2 $c"
done
for cs in TLS_AES_128_CCM_SHA256 TLS_AES_128_GCM_SHA256; do
  timeout 5 openssl s_client -connect 127.0.0.1:$PSK_PORT -tls1_3 -ciphersuites $cs \
    -psk $PSK_A -psk_identity dev-1 </dev/null 2>&1 | grep -q "TLSv1.3, Cipher is $cs" \
    || fail "openssl s_client could not use TLS 1.3 $cs"
  ok "openssl s_client TLS 1.3 external PSK $cs"
done
for c in DHE-PSK-AES128-GCM-SHA256 PSK-NULL-SHA256; do
  s_client12 $c | grep -q "Cipher is (NONE)" || fail "$c was accepted by default"
  ok "$c refused by default"
done

gnutls() { # priority
  timeout 5 gnutls-cli --pskusername dev-1 --pskkey $PSK_A --priority "$1" -p $PSK_PORT \
    127.0.0.1 </dev/null 2>&1
}
for cipher in AES-128-CCM AES-128-CCM-8 AES-128-GCM; do
  gnutls "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+$cipher" \
    | grep -q "Description: (TLS1.2.*(PSK)-($cipher)" || fail "gnutls-cli PSK $cipher"
  ok "gnutls-cli TLS 1.2 PSK $cipher"
done
# gnutls-cli 3.7.9 itself crashes after an ECDHE-PSK handshake (client side, also against
# other servers), so the gateway's own log is what says the handshake completed.
before=$(grep -c "cipher=ECDHE-PSK-CHACHA20-POLY1305" $GW_LOG || true)
gnutls "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-PSK:-CIPHER-ALL:+CHACHA20-POLY1305" \
  >/dev/null 2>&1 || true
[ "$(grep -c "identity=dev-1 version=TLSv1.2 cipher=ECDHE-PSK-CHACHA20-POLY1305" $GW_LOG)" -gt "$before" ] \
  || fail "gnutls-cli ECDHE-PSK ChaCha20"
ok "gnutls-cli TLS 1.2 ECDHE-PSK ChaCha20-Poly1305"
gnutls "NORMAL:-VERS-ALL:+VERS-TLS1.3:+PSK:+ECDHE-PSK" | grep -q "Handshake was completed" \
  || fail "gnutls-cli TLS 1.3 PSK"
ok "gnutls-cli TLS 1.3 PSK"
# clients that want no session ticket get the gateway's own TLS 1.2 handshake
# (docs/tls-handshake.md): OpenSSL's and GnuTLS's, every suite, and the log says whose it was
for c in PSK-AES128-CCM PSK-AES128-CCM8 PSK-AES128-GCM-SHA256; do
  timeout 5 openssl s_client -connect 127.0.0.1:$PSK_PORT -tls1_2 -no_ticket -cipher "$c" \
    -psk $PSK_A -psk_identity dev-1 </dev/null 2>&1 | grep -q "Cipher is $c" \
    || fail "own handshake: openssl s_client $c"
  expect_log "identity=dev-1 version=TLSv1.2 cipher=$c resumed=0 handshake=psagw record_layer=psagw"
done
before=$(grep -c "handshake=psagw" $GW_LOG || true)
for cipher in AES-128-CCM AES-128-CCM-8 AES-128-GCM; do
  gnutls "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+$cipher:%NO_TICKETS" \
    | grep -q "Description: (TLS1.2.*(PSK)-($cipher)" || fail "own handshake: gnutls-cli $cipher"
done
[ "$(grep -c "handshake=psagw" $GW_LOG)" -eq $((before + 3)) ] || fail "gnutls-cli not on the own handshake"
timeout 5 openssl s_client -connect 127.0.0.1:$PSK_PORT -tls1_2 -no_ticket -cipher PSK-AES128-CCM \
  -psk $PSK_B -psk_identity dev-1 </dev/null 2>&1 | grep -q "Cipher is PSK-AES128-CCM" \
  && fail "own handshake: a wrong PSK completed"
expect_log "identity=dev-1 reason=decryption_failed_or_bad_record_mac"
ok "the gateway's own TLS 1.2 handshake: openssl s_client and gnutls-cli, each suite; a wrong PSK fails"
gnutls "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM" \
  | grep -q "Handshake was completed" || fail "baseline"
timeout 5 gnutls-cli --pskusername dev-1 --pskkey $PSK_B -p $PSK_PORT \
  --priority "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+PSK" 127.0.0.1 </dev/null 2>&1 \
  | grep -q "Handshake was completed" && fail "gnutls-cli with a wrong PSK completed"
ok "gnutls-cli with a wrong PSK fails"
stop_gateway
own=$(grep "event=stats" $GW_LOG | tail -1 | sed -n 's/.* tls_handshakes_own=\([0-9]*\).*/\1/p')
[ "${own:-0}" -ge 6 ] || fail "tls_handshakes_own=${own:-none} in the exit stats, want >= 6"
ok "the exit stats count the own handshakes (tls_handshakes_own=$own)"

# a listener that opts in to NULL (integrity only) accepts it and warns at start
cat > $WORK/null.conf <<CONF
registry = "$REG";
listeners = ( { address = "127.0.0.1:0"; type = "tls-psk"; allow_null_cipher = true;
                max_record_size = 1024; } );
CONF
: > $GW_LOG
"$PSAGW" serve --config $WORK/null.conf 2>>$GW_LOG &
GW_PID=$!
expect_log "event=started"
expect_log "event=null_cipher_enabled"
PSK_PORT=$(grep 'event=listening' $GW_LOG | head -1 | sed 's/.* port=\([0-9]*\).*/\1/')
s_client12 PSK-NULL-SHA256 | grep -q "Cipher is PSK-NULL-SHA256" || fail "opt-in NULL refused"
ok "PSK-NULL-SHA256 accepted only where enabled, with a warning"
grep -q "max_record_size=1024" $GW_LOG || fail "max_record_size not applied"
stop_gateway

# handshake = "openssl": OpenSSL runs every handshake of that listener
cat > $WORK/openssl.conf <<CONF
registry = "$REG";
listeners = ( { address = "127.0.0.1:0"; handshake = "openssl"; } );
CONF
: > $GW_LOG
launch_gateway --config $WORK/openssl.conf --log-level debug
timeout 5 openssl s_client -connect 127.0.0.1:$PSK_PORT -tls1_2 -no_ticket -cipher PSK-AES128-CCM \
  -psk $PSK_A -psk_identity dev-1 </dev/null 2>&1 | grep -q "Cipher is PSK-AES128-CCM" \
  || fail "handshake = openssl"
expect_log "cipher=PSK-AES128-CCM resumed=0 handshake=openssl record_layer=psagw"
ok "handshake = \"openssl\" leaves every handshake to OpenSSL"
stop_gateway
printf 'listeners = ( { address = "127.0.0.1:0"; record_layer = "openssl"; handshake = "psagw"; } );\n' > $WORK/bad0.conf
out=$("$PSAGW" serve --config $WORK/bad0.conf 2>&1 || true)
echo "$out" | grep -q 'bad0.conf:1: handshake: "psagw" needs record_layer = "psagw"' || fail "handshake needs record layer: $out"

# configuration errors name the file, the line and the key
printf 'registry = "x.db";\nlistenerz = ();\n' > $WORK/bad1.conf
out=$("$PSAGW" serve --config $WORK/bad1.conf 2>&1 || true)
echo "$out" | grep -q "bad1.conf:2: listenerz: unknown key" || fail "unknown key: $out"
printf 'mqtt = {\n  receive_maximum = 0;\n};\n' > $WORK/bad2.conf
out=$("$PSAGW" serve --config $WORK/bad2.conf 2>&1 || true)
echo "$out" | grep -q "bad2.conf:2: receive_maximum: must be in 1..65535" || fail "range: $out"
printf 'registry = "x.db"\nlog_level = 3;\n' > $WORK/bad3.conf
out=$("$PSAGW" serve --config $WORK/bad3.conf 2>&1 || true)
echo "$out" | grep -q "bad3.conf:2:" || fail "syntax error: $out"
out=$("$PSAGW" serve --registry $REG --listen-plain 0.0.0.0:0 2>&1 || true)
echo "$out" | grep -q "not on loopback" || fail "plain non-loopback listener allowed: $out"
ok "configuration errors name file, line and key"

# the shipped example configuration loads (flags replace its listeners and registry)
: > $GW_LOG
"$PSAGW" serve --config "$(dirname "$0")/../../etc/psagw.conf" --registry $REG \
  --listen 127.0.0.1:0 2>>$GW_LOG &
GW_PID=$!
expect_log "event=started"
stop_gateway || fail "example configuration: gateway did not stop cleanly"
ok "etc/psagw.conf is a valid configuration"
