#!/usr/bin/env bash
# psagw's own TLS record layer (gateway/src/net/tls_record.c) with real clients: after a TLS 1.2
# AEAD or a TLS 1.3 handshake the gateway frees OpenSSL's connection state and protects records
# itself. mosquitto_pub/mosquitto_sub (OpenSSL clients) move a 100 KB message (many records,
# split across reads) and small ones through it for each suite; a CBC suite stays on OpenSSL's
# record layer, as does a listener with record_layer = "openssl". A client that sends a record
# with a broken tag is refused with an alert, and the gateway logs why; a CONNECT that arrives in
# the same segment as the client's Finished is answered.
. "$(dirname "$0")/lib.sh"

add_device dev-1 sensor $PSK_A
add_device mon-1 monitor $PSK_B
add_device dev-2 sensor $PSK_C
# mosquitto's clients ignore --tls-version with --psk and take TLS 1.3 where offered: the
# first listener offers TLS 1.2 only, the second 1.3 as well
cat > $WORK/gw.conf <<CONF
registry = "$REG";
log_level = "debug";
attestation_default = "optional";
workers = 1;
listeners = ( { address = "127.0.0.1:0"; tls13 = false; }, { address = "127.0.0.1:0"; } );
CONF
: > $GW_LOG
launch_gateway --config $WORK/gw.conf
PORT12=$PSK_PORT
PORT13=$(grep 'event=listening' $GW_LOG | grep 'type=tls-psk' | sed -n 2p | sed 's/.* port=\([0-9]*\).*/\1/')

head -c 75000 /dev/urandom | base64 -w0 > $WORK/big
check_suite() { # tls_version cipher expected_layer [negotiated cipher] [port]
  local v=$1 c=$2 layer=$3 n got_c=${4:-$2}
  PSK_PORT=$PORT12
  [ "$v" = tlsv1.3 ] && PSK_PORT=$PORT13
  [ -n "${5:-}" ] && PSK_PORT=$5
  n=$(grep -c "identity=mon-1 version=.*cipher=$got_c .*record_layer=$layer" $GW_LOG || true)
  sub_bg $WORK/got mon-1 $PSK_B --tls-version $v --ciphers "$c" -t 'sensors/dev-1/big' -C 2
  pub dev-1 $PSK_A --tls-version $v --ciphers "$c" -q 1 -t sensors/dev-1/big -f $WORK/big \
    || fail "$v $c: publish failed"
  pub dev-1 $PSK_A --tls-version $v --ciphers "$c" -q 0 -t sensors/dev-1/big -m small-$c \
    || fail "$v $c: small publish failed"
  wait "$SUB_PID" || fail "$v $c: subscriber did not get both messages"
  head -1 $WORK/got | tr -d '\n' | cmp -s - $WORK/big || fail "$v $c: the 100 KB message arrived changed"
  sed -n 2p $WORK/got | grep -qx "small-$c" || fail "$v $c: small message: $(sed -n 2p $WORK/got)"
  [ "$(grep -c "identity=mon-1 version=.*cipher=$got_c .*record_layer=$layer" $GW_LOG)" -gt "$n" ] \
    || fail "$v $c: not on the $layer record layer"
  ok "$v $c: 100 KB and small messages both ways, record layer $layer"
}
# a flood of records without data (TLS 1.3 KeyUpdates, as fast as a client can make them)
# while a legitimate device publishes, on one worker so they share it: psagw's record layer ends
# the flood after TLS_REC_EMPTY_MAX; OpenSSL's layer does not limit KeyUpdates
# (docs/tls-record-layer.md) and the read budget per wake-up keeps the worker shared. The
# device's time is printed, not judged.
check_flood() { # layer port13 expect_ended
  local layer=$1 port=$2 want=$3
  "$TLS_EDGE_CLIENT" keyupdates 127.0.0.1 $port dev-1 $PSK_A 20000 > $WORK/flood-$layer 2>&1 &
  local flood=$! t0 t1
  sleep 0.2
  t0=$(date +%s%N)
  PSK_PORT=$port pub dev-2 $PSK_C -q 1 -t sensors/dev-2/x -m during-flood \
    || fail "$layer layer: a device could not publish during the flood"
  t1=$(date +%s%N)
  wait $flood || fail "$layer layer: flood client: $(cat $WORK/flood-$layer)"
  grep -q "server_ended=$want" $WORK/flood-$layer \
    || fail "$layer layer: the flood: $(cat $WORK/flood-$layer), want server_ended=$want"
  gateway_alive
  ok "$layer layer: KeyUpdate flood ($(sed 's/ .*//' $WORK/flood-$layer)) server_ended=$want; a device's connect + QoS 1 publish during it took $(( (t1 - t0) / 1000000 )) ms"
}
check_suite tlsv1.2 PSK-AES128-CCM psagw
check_suite tlsv1.2 PSK-AES128-CCM8 psagw
check_suite tlsv1.2 PSK-AES128-GCM-SHA256 psagw
check_suite tlsv1.2 ECDHE-PSK-CHACHA20-POLY1305 psagw
check_suite tlsv1.2 ECDHE-PSK-AES128-CBC-SHA256 openssl
check_suite tlsv1.3 PSK-AES128-GCM-SHA256 psagw TLS_AES_128_GCM_SHA256
# the listener that offers TLS 1.3 keeps TLS 1.2 handshakes on a context without OpenSSL's keylog
# callback and moves TLS 1.3 ones to its twin with it (net/tls.c): both in turn on one worker,
# whose reused SSL objects go from one context to the other and back, each on our record layer
# and answering a CONNECT (openssl s_client: mosquitto's clients take TLS 1.3 where offered)
on_port13() { # openssl version flag, version as logged
  local n
  n=$(grep -c "identity=dev-1 version=$2 .*record_layer=psagw" $GW_LOG || true)
  (printf '\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05dev-1'; sleep 0.5) |
    timeout 5 openssl s_client -connect 127.0.0.1:$PORT13 $1 -psk $PSK_A -psk_identity dev-1 \
      -quiet 2>/dev/null | od -An -tx1 | tr -d ' \n' > $WORK/connack || true
  [ "$(cat $WORK/connack)" = 20020000 ] || fail "$2 on the TLS 1.3 listener: CONNACK $(cat $WORK/connack)"
  [ "$(grep -c "identity=dev-1 version=$2 .*record_layer=psagw" $GW_LOG)" -gt "$n" ] \
    || fail "$2 on the TLS 1.3 listener: not on the psagw record layer"
}
on_port13 "-tls1_2 -cipher PSK-AES128-GCM-SHA256" TLSv1.2
on_port13 "-tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256" TLSv1.3
on_port13 "-tls1_2 -cipher PSK-AES128-CCM8" TLSv1.2
ok "the TLS 1.3 listener: TLS 1.2, 1.3 and 1.2 again in turn, each on the psagw record layer with a CONNACK"

# a record with a broken tag: the gateway answers with a bad_record_mac alert and says so
"$TLS_EDGE_CLIENT" tamper 127.0.0.1 $PORT12 dev-1 $PSK_A > $WORK/tamper 2>&1 \
  || fail "tamper client: $(cat $WORK/tamper)"
grep -q "alert=bad record mac" $WORK/tamper || fail "no bad_record_mac alert: $(cat $WORK/tamper)"
grep -q "bytes_after_alert=0" $WORK/tamper || fail "bytes followed the fatal alert: $(cat $WORK/tamper)"
expect_log "event=tls_record_error peer=127.0.0.1:[0-9]* id=dev-1 reason=bad_record_mac"
gateway_alive
ok "a tampered record is refused with a bad_record_mac alert, logged, and nothing follows it"

# the client's last flight and its CONNECT in one segment: the gateway's first read after the
# handshake already holds the CONNECT (TLS 1.3, where the client finishes first, and a resumed
# TLS 1.2 session)
for v in 13 12; do
  port=$PORT12; [ $v = 13 ] && port=$PORT13
  out=$("$TLS_EDGE_CLIENT" together$v 127.0.0.1 $port dev-1 $PSK_A 2>&1) \
    || fail "TLS 1.$((v - 10)) Finished + CONNECT together: $out"
  echo "$out" | grep -q "connack=0x00" || fail "TLS 1.$((v - 10)) Finished + CONNECT: $out"
  ok "TLS 1.$((v - 10)): a CONNECT in the same segment as the client's Finished is answered"
done
# a device on a slow link: every byte of its handshake in a segment of its own, 1 ms apart;
# the gateway gathers the ClientHello and still runs its own handshake (docs/tls-handshake.md)
own() { grep -c "identity=dev-1 version=TLSv1.2 cipher=PSK-AES128-CCM resumed=0 handshake=psagw" $GW_LOG || true; }
before=$(own)
out=$("$TLS_EDGE_CLIENT" dribble12 127.0.0.1 $PORT12 dev-1 $PSK_A 2>&1) || fail "dribbled handshake: $out"
echo "$out" | grep -q "connack=0x00" || fail "dribbled handshake: $out"
[ "$(own)" -eq $((before + 1)) ] || fail "the dribbled handshake was not the gateway's own"
ok "a handshake arriving a byte a segment: the ClientHello is gathered and the gateway's own handshake runs"
check_flood psagw $PORT13 1
expect_log "event=tls_record_error peer=127.0.0.1:[0-9]* id=dev-1 reason=unexpected_message"
stop_gateway

# record_layer = "openssl": the same AEAD suite stays with OpenSSL
cat > $WORK/openssl.conf <<CONF
registry = "$REG";
log_level = "debug";
attestation_default = "optional";
workers = 1;
listeners = ( { address = "127.0.0.1:0"; tls13 = false; record_layer = "openssl"; },
              { address = "127.0.0.1:0"; record_layer = "openssl"; } );
CONF
: > $GW_LOG
launch_gateway --config $WORK/openssl.conf
PORT12=$PSK_PORT
PORT13=$(grep 'event=listening' $GW_LOG | grep 'type=tls-psk' | sed -n 2p | sed 's/.* port=\([0-9]*\).*/\1/')
check_suite tlsv1.2 PSK-AES128-CCM openssl
# the same tampered record against OpenSSL's record layer: the same alert, the same silence
"$TLS_EDGE_CLIENT" tamper 127.0.0.1 $PORT12 dev-1 $PSK_A > $WORK/tamper-openssl 2>&1 \
  || fail "tamper client (openssl layer): $(cat $WORK/tamper-openssl)"
grep -q "alert=bad record mac" $WORK/tamper-openssl || fail "openssl layer: $(cat $WORK/tamper-openssl)"
grep -q "bytes_after_alert=0" $WORK/tamper-openssl || fail "openssl layer: $(cat $WORK/tamper-openssl)"
ok "record_layer = \"openssl\": the same bad_record_mac and nothing after it"
check_flood openssl $PORT13 0
stop_gateway
printf 'listeners = ( { address = "127.0.0.1:0"; record_layer = "mine"; } );\n' > $WORK/bad.conf
out=$("$PSAGW" serve --config $WORK/bad.conf 2>&1 || true)
echo "$out" | grep -q 'bad.conf:1: record_layer: must be "psagw" or "openssl"' \
  || fail "bad record_layer: $out"
ok "record_layer = \"openssl\" keeps OpenSSL's record layer; a wrong value is refused"
