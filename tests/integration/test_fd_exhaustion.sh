#!/usr/bin/env bash
# Running out of file descriptors (docs/operations.md): with a hard limit of 64 open files and
# more connections than that, the gateway neither spins nor floods its log: each worker rests
# its listener a moment, accepts-and-closes with a spare descriptor, logs once per interval with
# the count; and once the connections go, a legitimate device gets in without a restart. The
# soft limit is raised to the hard one at start, and the log says how many devices that allows.
. "$(dirname "$0")/lib.sh"

add_device s1 sensor $PSK_A --attestation off
: >"$GW_LOG"
# a hard limit of 64 for the gateway alone (the soft one below it, to see it raised)
PSAGW_REAL=$PSAGW
PSAGW=$WORK/psagw-limited
printf '#!/bin/sh\nexec prlimit --nofile=48:64 -- %s "$@"\n' "$PSAGW_REAL" >"$PSAGW"
chmod +x "$PSAGW"
launch_gateway --registry "$REG" --listen 127.0.0.1:0 --workers 2 --log-level info \
  --attestation-default optional

  grep -q 'event=fd_limit open_files=64 ' "$GW_LOG" || fail "soft limit not raised: $(grep fd_limit "$GW_LOG")"
ok "the soft limit of open files is raised to the hard one ($(grep -o 'open_files=[0-9]*' "$GW_LOG" | head -1))"

# 150 TCP connections that say nothing, held open: the listener defers accept until a
# client's first bytes (TCP_DEFER_ACCEPT), so they wait in the kernel and hold no descriptor
hold() { # MODE: silent | one-byte
/usr/bin/python3 - "$PSK_PORT" "$1" >"$WORK/holder.out" 2>&1 <<'PY' &
import socket, sys, time
socks = []
for i in range(150):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
        if sys.argv[2] == "one-byte":
            s.send(b"\x16")  # the first byte of a TLS record, then nothing
        socks.append(s)
    except OSError as e:
        pass
print("held", len(socks), flush=True)
time.sleep(6)
PY
}
hold silent
holder=$!
CHILDREN+=($holder)
sleep 1
pub s1 $PSK_A -t sensors/s1/env -m through -q 1 || fail "a device could not connect beside 150 silent connections"
grep -q "event=accept_failed" "$GW_LOG" && fail "silent connections took descriptors: $(grep accept_failed "$GW_LOG" | head -1)"
ok "150 silent connections wait in the kernel (deferred accept): a device connects meanwhile"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true

# 150 connections that start a handshake (one byte) and stop there: more than 64 descriptors
hold one-byte
holder=$!
CHILDREN+=($holder)
expect_log "event=accept_failed .*reason=too_many_open_files" 10
ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
t0=$(ticks)
lines0=$(wc -l <"$GW_LOG")
sleep 2
t1=$(ticks)
lines1=$(wc -l <"$GW_LOG")
hz=$(getconf CLK_TCK)
cpu_pct=$(( (t1 - t0) * 100 / (2 * hz) ))
[ "$cpu_pct" -le 30 ] || fail "the gateway used ${cpu_pct}% CPU while out of descriptors"
[ $((lines1 - lines0)) -le 10 ] || fail "$((lines1 - lines0)) log lines in 2 s while out of descriptors"
gateway_alive
ok "out of descriptors: ${cpu_pct}% CPU, $((lines1 - lines0)) log lines in 2 s (no spin, no flood)"

wait "$holder" 2>/dev/null || true
sleep 1
pub s1 $PSK_A -t sensors/s1/env -m back -q 1 || fail "a device could not connect once descriptors were free"
kill -USR1 "$GW_PID"
expect_log "event=stats .*accept_fd_exhausted=[1-9]"
ok "descriptors free again: a device connects without a restart; accept_fd_exhausted counted"
stop_gateway
