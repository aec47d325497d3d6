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

# a changed PSK (written by another tool) ends the session made with the old key; a change
# to another device's entry leaves this one alone (only changed ids are re-checked)
add_device keyed monitor $PSK_A
add_device bystander monitor $PSK_C
sub_bg $WORK/keyed keyed $PSK_A -t 'status/#'
sub_bg $WORK/bystander bystander $PSK_C -t 'status/#'
sqlite3 $REG "UPDATE devices SET psk = x'$PSK_B' WHERE id = 'keyed'"
expect_log "event=device_disconnected id=keyed reason=psk_changed"
expect_log "event=registry_recheck worker=. scope=changed ids=1 looked_up=1"
pub late $PSK_A -t status/late -m still-on -q 1 || true
wait_for $WORK/bystander still-on || fail "a device whose entry did not change lost its connection"
grep -q "event=device_disconnected id=bystander" "$GW_LOG" && fail "bystander was disconnected"
ok "a changed PSK ends the live session; unchanged devices are not touched"
gateway_alive
stop_gateway

# SIGHUP re-reads the config file: a new limit applies to the next connection; a broken file is
# refused with the old configuration kept, and no connection is dropped either way
add_device mon-2 monitor $PSK_C
printf 'registry = "%s";\nmqtt = { max_packet_size = 1048576; };\n' "$REG" > $WORK/r.conf
start_gateway --config $WORK/r.conf
sub_bg $WORK/keep mon-2 $PSK_C -t 'sensors/#'
printf 'registry = "%s";\nmqtt = { max_packet_size = 200; };\n' "$REG" > $WORK/r.conf
kill -HUP $GW_PID
expect_log "event=reload config=$WORK/r.conf"
big=$(head -c 500 /dev/zero | tr '\0' x)
pub late $PSK_A -V mqttv311 -t sensors/late/big -m "$big" >/dev/null 2>&1 || true
expect_log "event=packet_too_large .*max=200"
ok "SIGHUP applies a changed config value"
printf 'registry = "%s";\nmqtt = { max_packet_size = "lots"; };\n' "$REG" > $WORK/r.conf
kill -HUP $GW_PID
expect_log "event=reload_failed .*r.conf:2: max_packet_size: must be an integer.*action=kept_old_config"
pub late $PSK_A -t sensors/late/x -m still-here
wait_for $WORK/keep still-here || fail "subscriber lost over the reloads"
ok "a broken config on SIGHUP is refused, the old one kept, connections kept"
gateway_alive
