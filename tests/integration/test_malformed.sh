#!/usr/bin/env bash
# Malformed, truncated, oversized and out-of-order input on the plain and TLS listeners: the
# gateway answers with the right reason (or closes), logs it, and keeps serving others.
. "$(dirname "$0")/lib.sh"

add_device dev-1 sensor $PSK_A
add_device mon-1 monitor $PSK_B
start_gateway --allow-anonymous

# raw bytes to the plain listener; prints what came back, hex
raw() {
  exec 3<>/dev/tcp/127.0.0.1/$PLAIN_PORT
  printf "$1" >&3
  timeout 2 cat <&3 | od -An -tx1 | tr -d ' \n' || true
  exec 3<&- 3>&- || true
}
CONNECT5='\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x03abc'
CONNECT3='\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03abc'

out=$(raw '\x30\x03\x00\x01t')
[ -z "$out" ] || fail "PUBLISH before CONNECT got an answer: $out"
expect_log "event=protocol_error .*first packet is PUBLISH"
out=$(raw "$CONNECT5"'\x82\x03\x00\x01\x00')
echo "$out" | grep -q "e0.*82" || fail "empty SUBSCRIBE: expected DISCONNECT 0x82, got $out"
out=$(raw "$CONNECT5"'\x30\x03\x00\x05t')
echo "$out" | grep -q "e0.*81" || fail "bad string length: expected DISCONNECT 0x81, got $out"
out=$(raw "$CONNECT5"'\x30\xff\xff\xff\xff\x01')
echo "$out" | grep -q "e0.*81" || fail "5-byte length: expected DISCONNECT 0x81, got $out"
out=$(raw "$CONNECT5"'\x30\xff\xff\xff\x7f')
echo "$out" | grep -q "e0.*95" || fail "oversized packet: expected DISCONNECT 0x95, got $out"
out=$(raw "$CONNECT5""$CONNECT5")
echo "$out" | grep -q "e0.*82" || fail "second CONNECT: expected DISCONNECT 0x82, got $out"
out=$(raw '\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00')
[ "$out" = "20020001" ] || fail "unsupported version: expected CONNACK 1, got $out"
out=$(raw "$CONNECT3"'\x30\x03\x00\x05t')
echo "$out" | grep -q "^20020000$" || fail "3.1.1 malformed: expected close after CONNACK, got $out"
out=$(raw "$CONNECT5"'\x30\x07\x00\x01t\x03\x23\x00\x40')
echo "$out" | grep -q "e0.*94" || fail "topic alias out of range: expected 0x94, got $out"
expect_log "event=malformed_packet"
ok "malformed and out-of-order packets: DISCONNECT 0x81/0x82/0x94/0x95 or close, as the spec says"

# keep-alive: a client that asked for 1 s and then stays silent is dropped after 1.5 s with
# DISCONNECT 0x8D (MQTT 5 section 3.1.2.10)
exec 3<>/dev/tcp/127.0.0.1/$PLAIN_PORT
printf '\x10\x10\x00\x04MQTT\x05\x02\x00\x01\x00\x00\x03kal' >&3
out=$(timeout 4 cat <&3 | od -An -tx1 | tr -d ' \n' || true)
exec 3<&- 3>&- || true
echo "$out" | grep -q "^20.*e0[0-9a-f][0-9a-f]8d" || fail "keep-alive: expected CONNACK then DISCONNECT 0x8D, got $out"
expect_log "event=disconnect .*id=kal reason=keep_alive_timeout"
ok "a silent client is disconnected after 1.5 x its keep-alive with 0x8D"

# garbage instead of a TLS handshake, and a handshake cut off half way
printf 'GET / HTTP/1.1\r\n\r\n' | timeout 2 bash -c "cat > /dev/tcp/127.0.0.1/$PSK_PORT" || true
expect_log "event=tls_handshake_failed"
ok "garbage on the TLS listener fails the handshake"

# a client that sends nothing is dropped at the connect deadline (default 10 s is too long
# for a test, so a slow client is left open and the others must still be served meanwhile)
exec 4<>/dev/tcp/127.0.0.1/$PSK_PORT
sub_bg $WORK/m mon-1 $PSK_B -t 'sensors/#'
pub dev-1 $PSK_A -t sensors/dev-1/x -m still-serving
wait_for $WORK/m still-serving || fail "a silent client blocked the gateway"
exec 4<&-
ok "a silent client does not block others"
gateway_alive

# a flood of handshakes with unknown identities: every one counted, the log bounded (one line per
# reason per 10 s with the count left out)
before=$(grep -c 'event=tls_psk_refused' "$GW_LOG" || true)
for i in $(seq 1 30); do
  mosquitto_pub -h 127.0.0.1 -p "$PSK_PORT" --psk $PSK_A --psk-identity "nobody-$i" -i "nobody-$i" \
    -t x -m x >/dev/null 2>&1 || true
done
after=$(grep -c 'event=tls_psk_refused' "$GW_LOG" || true)
[ $((after - before)) -le 2 ] || fail "$((after - before)) tls_psk_refused lines for 30 unknown identities"
kill -USR1 "$GW_PID"
expect_log "event=stats .*psk_unknown_identity=[3-9][0-9]"
ok "30 unknown identities: all counted, $((after - before)) log line(s)"
