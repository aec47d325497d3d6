#!/usr/bin/env bash
# TCP keep-alive on device sockets (docs/configuration.md, `tcp`): a device that vanishes
# without a word (power cut, cable pulled) must not be held forever, even an MQTT 3.1.1 client
# that asked for no MQTT keep-alive. The configured idle time reaches every accepted socket:
# the kernel's keep-alive timer on the gateway's side of a live connection shows it (ss).
. "$(dirname "$0")/lib.sh"

add_device s1 sensor $PSK_A --attestation off
printf 'registry = "%s";\nlisteners = ( { address = "127.0.0.1:0"; } );\ntcp = { keepalive_idle = 7; keepalive_interval = 3; keepalive_count = 2; user_timeout = 20; };\n' \
  "$REG" >"$WORK/psagw.conf"
: >"$GW_LOG"
launch_gateway --config "$WORK/psagw.conf" --log-level debug --attestation-default optional
# a device connection (an MQTT 3.1.1 client with keep-alive 0 would have only this; mosquitto_sub
# cannot ask for 0, but the timer is the same on every accepted socket)
mosquitto_sub -h 127.0.0.1 -p "$PSK_PORT" --psk $PSK_A --psk-identity s1 -i s1 -V mqttv311 \
  -t cmd/s1/x >/dev/null 2>&1 &
CHILDREN+=($!)
expect_log "event=connect .*id=s1 "
# ss shows one timer per socket: while data just sent is unacknowledged it is the
# retransmission timer, so look again until the keep-alive one shows
keepalive_timer() {
  local t=""
  for _ in $(seq 1 30); do
    t=$(ss -tno state established "( sport = :$PSK_PORT )" | grep -o 'timer:(keepalive,[^,]*' | head -1 || true)
    [ -n "$t" ] && break
    sleep 0.1
  done
  echo "$t"
}
timer=$(keepalive_timer)
[ -n "$timer" ] || fail "no keep-alive timer on the gateway's socket: $(ss -tno state established "( sport = :$PSK_PORT )")"
secs=$(echo "$timer" | sed 's/timer:(keepalive,//; s/sec//; s/ms//')
awk -v s="$secs" 'BEGIN { exit !(s + 0 > 0 && s + 0 <= 7) }' ||
  fail "keep-alive timer '$timer', want at most the configured 7 s"
ok "device sockets are watched by TCP keep-alive ($timer), as configured"
stop_gateway

# the defaults: 120 s idle
printf 'registry = "%s";\nlisteners = ( { address = "127.0.0.1:0"; } );\n' "$REG" >"$WORK/default.conf"
: >"$GW_LOG"
launch_gateway --config "$WORK/default.conf" --log-level debug --attestation-default optional
mosquitto_sub -h 127.0.0.1 -p "$PSK_PORT" --psk $PSK_A --psk-identity s1 -i s1 -V mqttv311 \
  -t cmd/s1/x >/dev/null 2>&1 &
CHILDREN+=($!)
expect_log "event=connect .*id=s1 "
timer=$(keepalive_timer)
echo "$timer" | grep -Eq 'keepalive,(1min|[0-9]+sec)' || fail "default keep-alive timer: '$timer'"
ok "by default, TCP keep-alive after 120 s idle ($timer)"
stop_gateway
