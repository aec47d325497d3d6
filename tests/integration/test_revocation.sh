#!/usr/bin/env bash
# Registry changes reach a running gateway without a restart: a new device can connect at once,
# a revoked or removed device's live connection is closed, SIGHUP reloads without dropping others.
. "$(dirname "$0")/lib.sh"

add_device mon-1 monitor $PSK_B
start_gateway

add_device late sensor $PSK_A
pub late $PSK_A -t sensors/late/x -m hi || fail "device added after start could not connect"
ok "a device added while the gateway runs connects at once"

sub_bg $WORK/live mon-1 $PSK_B -t 'sensors/#' -V mqttv5
add_device other monitor $PSK_C
sub_bg $WORK/other other $PSK_C -t 'sensors/#'
"$PSAGW" device revoke mon-1 --registry $REG >/dev/null
expect_log "event=device_disconnected id=mon-1 reason=revoked"
for _ in $(seq 1 40); do kill -0 $SUB_PID 2>/dev/null || break; sleep 0.05; done
pub mon-1 $PSK_B -t status/mon-1 -m x >/dev/null 2>&1 && fail "revoked device connected"
expect_log "event=tls_psk_refused .*identity=mon-1 reason=revoked"
ok "revocation closes the live connection and refuses new ones"

kill -HUP $GW_PID
expect_log "event=reload"
pub late $PSK_A -t sensors/late/x -m after-hup -q 1
wait_for $WORK/other after-hup || fail "other subscriber lost its connection over SIGHUP"
ok "SIGHUP reloads without dropping connections"

"$PSAGW" device remove other --registry $REG >/dev/null
expect_log "event=device_disconnected id=other reason=unknown_identity"
ok "removing a device closes its connection"
gateway_alive
