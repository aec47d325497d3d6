#!/usr/bin/env bash
# psagw serve refuses to start on a configuration or environment it cannot use, and does so
# cleanly: exit status 1, one clear message on stderr, no crash (under ASan: no report either),
# nothing left listening. Each case stops gateway_init at a different point, so each exercises
# gateway_free on a half-built gateway.
source "$(dirname "$0")/lib.sh"

# expect_start_failure NAME EXPECTED_MESSAGE psagw-serve-args...
expect_start_failure() {
  local name=$1 want=$2
  shift 2
  local rc=0
  "$PSAGW" serve "$@" > "$WORK/out" 2> "$WORK/err" || rc=$?
  [ "$rc" -eq 1 ] || { cat "$WORK/err"; fail "$name: exit status $rc, want 1"; }
  grep -q "psagw serve: .*$want" "$WORK/err" || { cat "$WORK/err"; fail "$name: no '$want' on stderr"; }
  if grep -q -e 'AddressSanitizer' -e 'runtime error' -e 'ThreadSanitizer' "$WORK/err"; then
    cat "$WORK/err"; fail "$name: a sanitizer report"
  fi
  ok "$name: exit 1 with \"$want\""
}

conf() { # file listener-extra
  cat > "$1" <<CONF
registry = "$REG";
listeners = ( { address = "127.0.0.1:0"; type = "tls-psk"; $2 } );
CONF
}

conf "$WORK/cipher.conf" 'ciphers = "NO-SUCH-CIPHER";'
expect_start_failure "unknown TLS 1.2 cipher" "TLS 1.2 cipher list 'NO-SUCH-CIPHER'" \
  --config "$WORK/cipher.conf"

conf "$WORK/empty.conf" 'ciphers = "";'
expect_start_failure "empty TLS 1.2 cipher list" "TLS 1.2 cipher list ''" --config "$WORK/empty.conf"

conf "$WORK/suites.conf" 'ciphersuites = "TLS_NOPE";'
expect_start_failure "unknown TLS 1.3 suite" "TLS 1.3 cipher suites 'TLS_NOPE'" \
  --config "$WORK/suites.conf"

# a port in use: the second listener binds the first one's port (without SO_REUSEPORT sharing,
# since the holder is another process's plain socket)
exec 3> >(exec /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(60)' > "$WORK/port")
for _ in $(seq 1 50); do [ -s "$WORK/port" ] && break; sleep 0.05; done
busy=$(cat "$WORK/port")
[ -n "$busy" ] || fail "could not hold a port"
expect_start_failure "port in use" "listener 127.0.0.1:$busy: Address already in use" \
  --registry "$REG" --listen "127.0.0.1:$busy"

# a registry the daemon cannot open (a directory where the file should be)
mkdir -p "$WORK/registry-dir"
expect_start_failure "unusable registry" "registry-dir" \
  --registry "$WORK/registry-dir" --listen 127.0.0.1:0

# an explicitly empty listener list is a mistake, not a wish for the default public listener
printf 'registry = "%s";\nlisteners = ( );\n' "$REG" > "$WORK/empty-listeners.conf"
expect_start_failure "empty listener list" "listeners: must not be empty" --config "$WORK/empty-listeners.conf"

# the registry holds PSKs: a file others can read, or a directory anyone can write, is refused
mkdir -p "$WORK/open" "$WORK/shared"
"$PSAGW" device add d1 --role sensor --generate-psk --registry "$WORK/open/registry.db" >/dev/null
chmod 644 "$WORK/open/registry.db"
expect_start_failure "registry readable by others" "chmod 600" \
  --registry "$WORK/open/registry.db" --listen 127.0.0.1:0
chmod 777 "$WORK/shared"
expect_start_failure "registry in a directory anyone can write" "chmod o-w" \
  --registry "$WORK/shared/registry.db" --listen 127.0.0.1:0

# a registry on a read-only file system: the message says so, not "cannot create"
mkdir -p "$WORK/ro"
test_cleanup() { umount -l "$WORK/ro" 2>/dev/null || true; } # lib.sh's cleanup calls it
if mount -t tmpfs -o size=1m psagw-test-ro "$WORK/ro" 2>/dev/null; then
  "$PSAGW" device add d1 --role sensor --generate-psk --registry "$WORK/ro/registry.db" >/dev/null
  mount -o remount,ro "$WORK/ro"
  expect_start_failure "read-only registry" "cannot be read and written by this user" \
    --registry "$WORK/ro/registry.db" --listen 127.0.0.1:0
  umount -l "$WORK/ro"
else
  echo "skip: read-only registry (cannot mount a tmpfs here)"
fi

# an address that does not parse as a listener
expect_start_failure "bad listen address" "listen" --registry "$REG" --listen "999.1.1.1:0"

# a reload with a cipher the next start would refuse: reported now, the running config kept
conf "$WORK/reload.conf" 'ciphers = "PSK-AES128-CCM";'
: >"$GW_LOG"
launch_gateway --config "$WORK/reload.conf" --attestation-default off
add_device r1 sensor $PSK_A --attestation off
conf "$WORK/reload.conf" 'ciphers = "NO-SUCH-CIPHER";'
kill -HUP "$GW_PID"
expect_log "event=reload_failed detail=\"TLS 1.2 cipher list 'NO-SUCH-CIPHER'.*action=kept_old_config"
gateway_alive
pub r1 $PSK_A -t sensors/r1/env -m still-serving -q 1 || fail "not serving after a refused reload"
ok "SIGHUP with an unknown cipher: reload_failed, the running configuration kept"
stop_gateway
