#!/usr/bin/env bash
# A subscriber that stops reading (docs/configuration.md, mqtt.max_queued_bytes): under a QoS 0
# flood the gateway holds at most CONN_OUT_MAX of output and max_queued_bytes of queue for it
# (it grew by 21 MB a second before), drops beyond that (counted, logged once per interval),
# and when the subscriber reads again its deliveries resume.
. "$(dirname "$0")/lib.sh"

add_device mon-1 monitor $PSK_B --attestation off
for i in 0 1 2 3 4; do add_device "pub$i" sensor $PSK_A --attestation off; done
printf 'registry = "%s";\nlisteners = ( { address = "127.0.0.1:0"; } );\nmqtt = { max_queued_bytes = 4194304; };\n' \
  "$REG" >"$WORK/psagw.conf"
: >"$GW_LOG"
launch_gateway --config "$WORK/psagw.conf" --workers 2 --log-level info --attestation-default optional
mosquitto_sub -h 127.0.0.1 -p "$PSK_PORT" --psk $PSK_B --psk-identity mon-1 -i mon-1 -t 'sensors/#' \
  >"$WORK/sub.out" 2>&1 &
SUB=$!
CHILDREN+=($SUB)
for _ in $(seq 1 100); do grep -q 'event=connect .*id=mon-1' "$GW_LOG" && break; sleep 0.05; done
sleep 0.5
kill -STOP $SUB
rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status")
PUBS=()
for i in 0 1 2 3 4; do
  (yes 'a reading of sixty-four bytes, give or take, from a sensor ......' |
    timeout 5 mosquitto_pub -h 127.0.0.1 -p "$PSK_PORT" --psk $PSK_A --psk-identity "pub$i" -i "pub$i" \
      -t "sensors/pub$i/env" -q 0 -l >/dev/null 2>&1 || true) &
  PUBS+=($!)
done
peak=0
for _ in $(seq 1 25); do
  sleep 0.2
  r=$(awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status")
  [ "$r" -gt "$peak" ] && peak=$r
done
wait "${PUBS[@]}"
grown=$(( (peak - rss0) / 1024 ))
# (a sanitizer build's allocator keeps freed memory in quarantine: RSS says nothing there)
[ "${SANITIZED:-0}" = 1 ] || [ "$grown" -le 40 ] ||
  fail "RSS grew by $grown MB for one subscriber that does not read"
kill -USR1 "$GW_PID"
expect_log "event=stats .*messages_dropped_queue_full=[1-9]"
[ "$(grep -c 'event=message_dropped' "$GW_LOG")" -le 2 ] ||
  fail "$(grep -c 'event=message_dropped' "$GW_LOG") message_dropped lines"
ok "a subscriber that stops reading under a QoS 0 flood: RSS grew by $grown MB, drops counted, logged once"

kill -CONT $SUB
# its queue (full) drains first; a new message gets through once there is room again
got=0
for i in $(seq 1 15); do
  pub pub0 $PSK_A -t sensors/pub0/env -m "marker-after-the-flood-$i" -q 1
  if wait_for "$WORK/sub.out" marker-after-the-flood 1; then got=1; break; fi
done
[ "$got" -eq 1 ] || fail "the subscriber got nothing new after it read again"
ok "reading again, the subscriber gets its deliveries, then new messages"

stop_gateway

# a client that asks (PINGREQ, as fast as it can) and never reads the answers: once the answers
# waiting for it are beyond what deliveries could queue, its input is not read until they are
# written; memory stays bounded and the others are served (it grew by 283 MB in 15 s before)
: >"$GW_LOG"
launch_gateway --config "$WORK/psagw.conf" --listen-plain 127.0.0.1:0 --allow-anonymous \
  --listen 127.0.0.1:0 --log-level info --attestation-default optional
rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status")
/usr/bin/python3 - "$PLAIN_PORT" > "$WORK/pingflood.out" 2>&1 <<'PY' &
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
body = b"\x00\x04MQTT\x04\x02\x00\x00" + struct.pack(">H", 5) + b"flood"
s.sendall(bytes([0x10, len(body)]) + body)
s.setblocking(False)
ping, sent, t0 = b"\xc0\x00" * 32768, 0, time.time()
while time.time() - t0 < 4:
    try:
        sent += s.send(ping)
    except BlockingIOError:
        time.sleep(0.001)
print("sent_mb=%.1f" % (sent / 1e6), flush=True)
time.sleep(2)  # still connected, still not reading
PY
FLOOD=$!
peak=$rss0
while kill -0 $FLOOD 2>/dev/null; do
  r=$(awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status")
  [ "$r" -gt "$peak" ] && peak=$r
  sleep 0.2
done
grown=$(( (peak - rss0) / 1024 ))
[ "${SANITIZED:-0}" = 1 ] || [ "$grown" -le 16 ] ||
  fail "RSS grew by $grown MB for a client that asks and does not read ($(cat $WORK/pingflood.out))"
mosquitto_pub -h 127.0.0.1 -p $PLAIN_PORT -i other -t x -m served -q 1 || fail "another client not served"
kill -USR1 "$GW_PID"
expect_log "event=stats .*output_backpressure=[1-9]"
ok "a client that floods PINGREQ and never reads: its input paused, RSS grew by $grown MB ($(cat $WORK/pingflood.out)), others served"
stop_gateway
