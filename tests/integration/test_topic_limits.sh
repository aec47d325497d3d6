#!/usr/bin/env bash
# Topic size limits (docs/configuration.md, mqtt.max_topic_length / max_topic_levels /
# max_retained_bytes / max_subscriptions_per_client): a topic or filter over them costs a tree node per level, so it is refused
# with the reason code MQTT 5 has for it, counted, and logged once per interval; the gateway
# goes on serving.
. "$(dirname "$0")/lib.sh"

add_device s1 sensor $PSK_A --attestation off
add_device m1 monitor $PSK_B --attestation off
printf 'registry = "%s";\nlisteners = ( { address = "127.0.0.1:0"; } );\nmqtt = { max_topic_length = 64; max_topic_levels = 8; max_subscriptions_per_client = 3; };\n' \
  "$REG" >"$WORK/psagw.conf"
: >"$GW_LOG"
launch_gateway --config "$WORK/psagw.conf" --log-level debug --attestation-default optional

long="sensors/s1/$(head -c 80 /dev/zero | tr '\0' 'x')"
deep="sensors/s1/a/b/c/d/e/f/g"
for t in "$long" "$deep"; do
  out=$(pub s1 $PSK_A -V mqttv5 -q 1 -t "$t" -m x 2>&1 || true)
  echo "$out" | grep -qi 'topic name invalid' || fail "MQTT 5 publish to a ${#t}-byte topic: '$out'"
done
pub s1 $PSK_A -V mqttv5 -q 1 -t sensors/s1/env -m fine || fail "a topic within the limits was refused"
ok "MQTT 5: a topic over max_topic_length or max_topic_levels gets PUBACK 0x90; within them, served"

out=$(timeout 5 mosquitto_sub -h 127.0.0.1 -p "$PSK_PORT" --psk $PSK_B --psk-identity m1 -i m1 -V mqttv5 \
  -t "sensors/a/b/c/d/e/f/g/#" -C 1 -W 2 2>&1 || true)
echo "$out" | grep -qi 'denied\|invalid' || fail "subscribe to a 10-level filter: '$out'"
ok "a filter over the limits gets SUBACK 0x8F"

timeout 5 mosquitto_sub -h 127.0.0.1 -p "$PSK_PORT" --psk $PSK_B --psk-identity m1 -i m1 -V mqttv5 \
  -t status/a -t status/b -t status/c -t status/d -C 1 -W 2 >/dev/null 2>&1 || true
expect_log "event=subscribe id=m1 filter=status/c result=0x00"
expect_log "event=subscribe id=m1 filter=status/d result=0x97"
ok "max_subscriptions_per_client 3: the fourth filter gets SUBACK 0x97 (quota exceeded)"

pub s1 $PSK_A -V mqttv5 -q 1 -t sensors/s1/env -m x --will-topic "$long" --will-payload gone \
  >/dev/null 2>&1 && fail "a will topic over the limits was accepted"
expect_log "event=connect_refused .*reason=topic_name_invalid detail=\"will topic over"
ok "a will topic over the limits gets CONNACK 0x90"

pub s1 $PSK_A -V mqttv311 -q 1 -t "$long" -m x >/dev/null 2>&1 || true
gateway_alive
kill -USR1 "$GW_PID"
expect_log "event=stats .*topics_refused=[4-9]"
[ "$(grep -c 'event=topic_refused' "$GW_LOG")" -le 1 ] || fail "topic_refused logged per message"
ok "3.1.1 over the limits: the connection ends; all counted (topics_refused), logged once per interval"
stop_gateway
