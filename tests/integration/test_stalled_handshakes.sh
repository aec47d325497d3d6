#!/usr/bin/env bash
# Stalled handshakes (docs/configuration.md, tls.max_handshakes_per_address): 200 connections
# from one address that send part of a ClientHello and stop would each hold tens of KB of
# OpenSSL state until the connect deadline. Only max_handshakes_per_address of them are taken
# (the rest are closed at once, counted and logged once per interval); a device from another
# address is served meanwhile; and once the stalled ones are reaped the memory goes back.
. "$(dirname "$0")/lib.sh"

add_device s1 sensor $PSK_A --attestation off
printf 'registry = "%s";\nlisteners = ( { address = "0.0.0.0:0"; } );\ntls = { max_handshakes_per_address = 20; };\nmqtt = { connect_timeout = 3; };\n' \
  "$REG" >"$WORK/psagw.conf"
: >"$GW_LOG"
launch_gateway --config "$WORK/psagw.conf" --workers 2 --log-level info --attestation-default optional

# 200 connections from 127.0.0.2, each sends the first 31 bytes of a ClientHello, then nothing
/usr/bin/python3 - "$PSK_PORT" >"$WORK/stall.out" 2>&1 <<'PY' &
import socket, sys, time
hello = bytes.fromhex("16030100c8010000c40303") + bytes(20)   # 31 bytes of a ClientHello
held = []
for i in range(200):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
        s.sendall(hello)
        held.append(s)
    except OSError:
        pass
time.sleep(1.5)
open_now = 0
for s in held:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            continue          # closed by the gateway
    except BlockingIOError:
        pass
    except OSError:
        continue
    open_now += 1
print("open", open_now, flush=True)
time.sleep(4)
PY
stall=$!
CHILDREN+=($stall)
for _ in $(seq 1 50); do grep -q '^open' "$WORK/stall.out" && break; sleep 0.1; done
held=$(sed -n 's/^open //p' "$WORK/stall.out")
[ -n "$held" ] && [ "$held" -le 20 ] || fail "stalled handshakes held open from one address: '$held' (max 20)"
expect_log "event=handshake_refused peer=127.0.0.2:[0-9]* reason=too_many_from_address"
[ "$(grep -c 'event=handshake_refused' "$GW_LOG")" -le 2 ] || fail "handshake_refused logged per connection"
ok "200 stalled handshakes from one address: $held held, the rest closed at once, logged once"

pub s1 $PSK_A -t sensors/s1/env -m served -q 1 || fail "a device from another address was not served"
ok "a device from another address is served meanwhile"

wait "$stall" 2>/dev/null || true
kill -USR1 "$GW_PID"
expect_log "event=stats .*handshakes_refused=1[0-9][0-9]"
pub s1 $PSK_A -t sensors/s1/env -m after -q 1 || fail "no device served after the stalled ones went"
ok "every refusal counted (handshakes_refused); devices still served afterwards"
stop_gateway
