#!/usr/bin/env bash
# The daemon under systemd: the unit file passes systemd-analyze verify and security; the
# notification protocol (READY, STATUS, WATCHDOG, RELOADING, STOPPING) against a stand-in for
# the manager's socket, as a path and as an abstract name (docs/packaging.md). This machine's
# PID 1 is not systemd, so the unit is checked offline and the daemon run by hand.
. "$(dirname "$0")/lib.sh"
UNIT="$(dirname "$0")/../../debian/psagw.service"
MANDIR="$(cd "$(dirname "$0")/../../man" && pwd)"

if command -v systemd-analyze >/dev/null; then
  sed "s|/usr/bin/psagw|$PSAGW|" "$UNIT" > $WORK/psagw.service
  out=$(MANPATH=$MANDIR systemd-analyze verify $WORK/psagw.service 2>&1) \
    || fail "systemd-analyze verify: $out"
  ok "systemd-analyze verify: the unit (with its man pages) has no error"
  sec=$(systemd-analyze security --offline=true --threshold=20 $WORK/psagw.service 2>&1) \
    || fail "systemd-analyze security: $(echo "$sec" | tail -3)"
  level=$(echo "$sec" | grep -o 'Overall exposure level for psagw.service: [0-9.]*' | grep -o '[0-9.]*$')
  [ -n "$level" ] || fail "no exposure level: $(echo "$sec" | tail -3)"
  awk -v l="$level" 'BEGIN{exit !(l <= 2.0)}' || fail "exposure level $level above 2.0"
  ok "systemd-analyze security --offline: exposure level $level (OK is below 4.0)"
else
  echo "note: systemd-analyze not installed; the unit file is not checked"
fi

add_device dev-1 sensor $PSK_A
listen_notify() { # socket name
  : > $WORK/notify.log
  $PY "$(dirname "$0")/notify_listen.py" "$1" $WORK/notify.log &
  CHILDREN+=($!)
  NOTIFY_PID=$!
  wait_for $WORK/notify.log listening || fail "notify listener did not start"
}
PY=/usr/bin/python3; [ -x $PY ] || PY=python3

for sock in $WORK/notify "@psagw-test-$$"; do
  listen_notify "$sock"
  NOTIFY_SOCKET=$sock WATCHDOG_USEC=1000000 start_gateway
  wait_for $WORK/notify.log 'READY=1|STATUS=connections=0 sessions=0' 5 \
    || fail "$sock: no READY=1 with STATUS: $(cat $WORK/notify.log)"
  ok "$sock: READY=1 with STATUS= once listening"
  # the watchdog: every half interval (0.5 s) from the event loop
  sleep 2.2
  n=$(grep -c 'WATCHDOG=1' $WORK/notify.log || true)
  [ "$n" -ge 3 ] && [ "$n" -le 6 ] || fail "$sock: $n WATCHDOG=1 in 2.2 s with WATCHDOG_USEC=1000000"
  ok "$sock: WATCHDOG=1 every half interval ($n in 2.2 s)"
  sub_bg $WORK/sub dev-1 $PSK_A -t 'cmd/dev-1/#'
  wait_for $WORK/notify.log 'STATUS=connections=1 sessions=1' 8 \
    || fail "$sock: STATUS did not count the connection: $(tail -3 $WORK/notify.log)"
  ok "$sock: STATUS= counts connections and sessions"
  kill -HUP $GW_PID
  wait_for $WORK/notify.log 'RELOADING=1' 5 || fail "$sock: no RELOADING=1"
  wait_for $WORK/notify.log 'READY=1|STATUS=connections=1' 5 || fail "$sock: no READY=1 after reload"
  ok "$sock: SIGHUP gives RELOADING=1, then READY=1"
  stop_gateway
  wait_for $WORK/notify.log 'STOPPING=1' 2 || fail "$sock: no STOPPING=1"
  ok "$sock: SIGTERM gives STOPPING=1"
  kill $NOTIFY_PID 2>/dev/null || true
done

# without a manager nothing is sent and nothing breaks; a socket that is not there is logged
# and the daemon runs on
NOTIFY_SOCKET=$WORK/nobody-listens start_gateway
expect_log "event=notify_failed"
gateway_alive
stop_gateway
ok "a NOTIFY_SOCKET nobody listens on is logged once; the daemon runs on"

# CPUAffinity= in a unit (like taskset, or a container's cpuset) confines the daemon: without
# `workers` it starts one worker per CPU it may run on, not one per online CPU
if command -v taskset >/dev/null; then
  from=$(( $(wc -l < "$GW_LOG") + 1 ))
  taskset -c 0 "$PSAGW" serve --registry "$REG" --listen 127.0.0.1:0 2>>"$GW_LOG" &
  GW_PID=$!
  for _ in $(seq 1 100); do
    tail -n +"$from" "$GW_LOG" | grep -q 'event=started' && break
    sleep 0.05
  done
  tail -n +"$from" "$GW_LOG" | grep 'event=started' | grep -q ' workers=1 ' \
    || fail "confined to one CPU: $(tail -n +"$from" "$GW_LOG" | grep 'event=started')"
  stop_gateway
  ok "confined to one CPU (taskset -c 0), the daemon starts one worker"
fi
