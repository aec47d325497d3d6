#!/usr/bin/env bash
# The Debian packages on this machine (make test-deb, after make deb): dpkg -i with dependencies
# from Debian, the user, directories and conffile the package promises, the installed daemon
# run as its unit runs it (user psagw, its state directory, the installed configuration, a
# notification socket), demo devices (psadev from psagw-tools) provisioned, imported into the
# installed registry and connecting with attestation, then dpkg -r, which must leave the
# registry. Root on Debian only: anywhere else it says why and skips (exit 0).
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
if [ "$(id -u)" -ne 0 ] || ! command -v dpkg >/dev/null; then
  echo "test-deb: skipped (needs root on Debian: it installs and removes packages)"
  exit 0
fi
# a machine where psagw is in use keeps it: this test installs, purges and deletes
# /var/lib/psagw, so it runs only where neither the package nor that directory is there
if dpkg-query -W -f='${Status}' psagw 2>/dev/null | grep -q "installed" || [ -e /var/lib/psagw ]; then
  echo "test-deb: skipped (psagw is installed here, or /var/lib/psagw exists: this test would remove them)"
  exit 0
fi
ARCH=$(dpkg --print-architecture)
VERSION=$(dpkg-parsechangelog -S Version)
DEBS=(build-deb/psagw_${VERSION}_$ARCH.deb build-deb/psagw-tools_${VERSION}_$ARCH.deb)
for d in "${DEBS[@]}"; do [ -f "$d" ] || fail "$d missing: run make deb"; done
WORK=$(mktemp -d /tmp/psagw-deb.XXXXXX)
chmod 755 "$WORK"
GW=
cleanup() {
  [ -n "$GW" ] && kill "$GW" 2>/dev/null || true
  dpkg --purge psagw-tools psagw >/dev/null 2>&1 || true
  rm -rf /var/lib/psagw "$WORK"
}
trap cleanup EXIT

apt-get install -y -q --no-install-recommends "./${DEBS[0]}" "./${DEBS[1]}" > "$WORK/install.log" 2>&1 \
  || { tail -20 "$WORK/install.log"; fail "the packages did not install"; }
ok "apt installs psagw and psagw-tools with their dependencies from Debian"
getent passwd psagw | grep -q ':/var/lib/psagw:' || fail "no system user psagw: $(getent passwd psagw)"
[ "$(stat -c '%U %a' /var/lib/psagw)" = "psagw 700" ] || fail "/var/lib/psagw: $(stat -c '%U %a' /var/lib/psagw)"
dpkg-query -W -f='${Conffiles}\n' psagw | grep -q '/etc/psagw/psagw.conf' || fail "psagw.conf is not a conffile"
[ -f /lib/systemd/system/psagw.service ] || fail "no unit"
man -w psagw >/dev/null && man -w 5 psagw.conf >/dev/null && man -w psadev >/dev/null || fail "man pages"
ok "user psagw, /var/lib/psagw 0700 its own, /etc/psagw/psagw.conf a conffile, the unit and man pages"

# the daemon as the unit runs it: its user, no privileges, umask 0077, the installed config
# (listeners on free loopback ports instead of 8883 and 1883, which this machine may use)
python3 "$(pwd)/tests/integration/notify_listen.py" "$WORK/notify" "$WORK/notify.log" &
NL=$!
for _ in $(seq 1 50); do [ -S "$WORK/notify" ] && break; sleep 0.1; done
chown psagw "$WORK/notify"
(umask 0077; cd /var/lib/psagw && exec setpriv --reuid=psagw --regid=psagw --init-groups \
  --no-new-privs --inh-caps=-all --bounding-set=-all \
  env NOTIFY_SOCKET="$WORK/notify" WATCHDOG_USEC=30000000 \
  /usr/bin/psagw serve --config /etc/psagw/psagw.conf --listen 127.0.0.1:0 \
  --listen-plain 127.0.0.1:0) 2> "$WORK/gw.log" &
GW=$!
for _ in $(seq 1 100); do grep -q 'READY=1' "$WORK/notify.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'READY=1' "$WORK/notify.log" || fail "no READY=1: $(cat $WORK/gw.log)"
PORT=$(grep 'event=listening' "$WORK/gw.log" | grep 'type=tls-psk' | head -1 | sed 's/.* port=\([0-9]*\).*/\1/')
[ "$(stat -c '%U %a' /var/lib/psagw/registry.db)" = "psagw 600" ] \
  || fail "registry: $(stat -c '%U %a' /var/lib/psagw/registry.db)"
ok "the installed daemon runs as psagw without privileges, says READY=1, made its registry 0600"

# demo devices: provisioned by psadev (psagw-tools), imported into the installed registry by
# the CLI as the daemon's user, connecting with TLS-PSK and attestation
openssl rand -hex 32 > "$WORK/group.key"
for dev in sensor-1:sensor monitor-1:monitor; do
  id=${dev%%:*}
  psadev provision --id "$id" --role "${dev#*:}" --state "$WORK/$id" \
    --group-key-file "$WORK/group.key" --manifest "$WORK/$id.json" > /dev/null
  chmod 644 "$WORK/$id.json"
  runuser -u psagw -- psagw device import "$WORK/$id.json" > /dev/null \
    || fail "import $id into the installed registry"
done
psadev monitor --state "$WORK/monitor-1" --gateway 127.0.0.1:$PORT --count 2 > "$WORK/monitor.out" 2>&1 &
MON=$!
for _ in $(seq 1 100); do grep -q 'event=subscribe id=monitor-1' "$WORK/gw.log" && break; sleep 0.1; done
psadev sensor --state "$WORK/sensor-1" --gateway 127.0.0.1:$PORT --interval 200 --count 2 \
  > "$WORK/sensor.out" 2>&1 || fail "sensor: $(tail -5 $WORK/sensor.out)"
wait $MON || fail "monitor: $(tail -5 $WORK/monitor.out)"
[ "$(grep -c '^reading device=sensor-1' "$WORK/monitor.out")" = 2 ] \
  || fail "the monitor did not open both readings: $(cat $WORK/monitor.out)"
grep -q 'event=connect .*id=sensor-1 .*attested=1' "$WORK/gw.log" \
  || fail "sensor-1 was not attested: $(grep sensor-1 $WORK/gw.log | tail -3)"
ok "demo devices (psadev) provisioned, imported, attested; the monitor opened the sensor's readings"

kill -TERM $GW; wait $GW || fail "the daemon did not stop cleanly"
GW=
grep -q 'STOPPING=1' "$WORK/notify.log" || fail "no STOPPING=1"
kill $NL 2>/dev/null || true
dpkg -r psagw-tools psagw > "$WORK/remove.log" 2>&1 || { cat "$WORK/remove.log"; fail "dpkg -r"; }
[ -f /var/lib/psagw/registry.db ] || fail "dpkg -r removed the registry"
[ ! -e /usr/bin/psagw ] || fail "dpkg -r left /usr/bin/psagw"
[ -f /etc/psagw/psagw.conf ] || fail "dpkg -r removed the conffile (only purge may)"
ok "dpkg -r removes the programs and keeps the registry and the configuration"
