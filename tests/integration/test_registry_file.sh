#!/usr/bin/env bash
# The registry file under a running daemon (docs/operations.md, "The registry file"): moved
# away, new devices are refused (connected ones stay) and it is logged once; moved back, all is
# as before; replaced by another file (a restore, a copy), the daemon opens the new one and
# re-checks every connection against it, so a device revoked in the new file is disconnected.
# The CLI does not quietly create a fresh registry where a configuration names a missing one.
. "$(dirname "$0")/lib.sh"

add_device mon-1 monitor $PSK_B --attestation off
add_device sen-1 sensor $PSK_A --attestation off
printf 'registry = "%s";\nlisteners = ( { address = "127.0.0.1:0"; } );\nattestation_default = "optional";\n' \
  "$REG" >"$WORK/psagw.conf"
: >"$GW_LOG"
launch_gateway --config "$WORK/psagw.conf" --workers 2 --log-level debug
sub_bg "$WORK/sub.out" mon-1 $PSK_B -t 'sensors/#' -V mqttv5

# moved away: refused, logged once, the live connection stays
mv "$REG" "$WORK/registry.moved"
mv "$REG-wal" "$WORK/registry.moved-wal" 2>/dev/null || true
mv "$REG-shm" "$WORK/registry.moved-shm" 2>/dev/null || true
expect_log "event=registry_missing path=$REG action=refusing_new_devices" 5
pub sen-1 $PSK_A -t sensors/sen-1/env -m x >/dev/null 2>&1 && fail "a device got in with the registry gone"
expect_log "event=tls_psk_refused .*identity=sen-1 reason=registry_unavailable"
sleep 1.5
[ "$(grep -c 'event=registry_missing' "$GW_LOG")" -eq 1 ] || fail "registry_missing logged more than once"
kill -0 "$SUB_PID" 2>/dev/null || fail "the connected monitor was dropped"
ok "registry moved away: new devices refused (registry_unavailable), logged once, connections kept"

# the CLI will not start an empty registry there behind the daemon's back
if "$PSAGW" device add x-1 --role sensor --generate-psk --config "$WORK/psagw.conf" >"$WORK/cli.out" 2>&1; then
  fail "the CLI created a registry where the configuration names a missing one"
fi
grep -q "does not exist.*--create" "$WORK/cli.out" || fail "CLI message: $(cat "$WORK/cli.out")"
[ ! -e "$REG" ] || fail "the CLI left a file at $REG"
ok "psagw device add --config refuses to create the missing registry without --create"

# moved back: as before
mv "$WORK/registry.moved" "$REG"
mv "$WORK/registry.moved-wal" "$REG-wal" 2>/dev/null || true
mv "$WORK/registry.moved-shm" "$REG-shm" 2>/dev/null || true
expect_log "event=registry_restored path=$REG" 5
pub sen-1 $PSK_A -t sensors/sen-1/env -m back -q 1 || fail "sen-1 refused after the registry came back"
ok "registry moved back: devices admitted again"

# replaced by a copy in which mon-1 is revoked: the daemon follows the path and applies it
cp "$REG" "$WORK/copy.db"
sqlite3 "$WORK/copy.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null 2>&1 || true
"$PSAGW" device revoke mon-1 --registry "$WORK/copy.db" >/dev/null
chmod 600 "$WORK/copy.db"
mv "$WORK/copy.db" "$REG"
expect_log "event=registry_reopened path=$REG reason=replaced" 5
expect_log "event=device_disconnected id=mon-1 reason=revoked" 5
pub sen-1 $PSK_A -t sensors/sen-1/env -m new -q 1 || fail "sen-1 refused after the registry was replaced"
# and later changes to the new file are seen
"$PSAGW" device revoke sen-1 --registry "$REG" >/dev/null
sleep 1.5
pub sen-1 $PSK_A -t sensors/sen-1/env -m x >/dev/null 2>&1 && fail "a device revoked in the new file got in"
gateway_alive
ok "registry replaced: the new file is opened, a device revoked in it is disconnected, later changes apply"

"$PSAGW" device add x-1 --role sensor --generate-psk --config "$WORK/psagw.conf" >/dev/null ||
  fail "the CLI refused an existing registry"
rm -f "$WORK/new.db"
printf 'registry = "%s";\n' "$WORK/new.db" >"$WORK/new.conf"
"$PSAGW" device add x-2 --role sensor --generate-psk --config "$WORK/new.conf" --create >/dev/null ||
  fail "--create did not create the registry"
ok "the CLI uses an existing registry as before, and creates one with --create"
stop_gateway
