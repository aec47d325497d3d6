# lib.sh: shared helpers for the integration tests. Each test script sources it, starts a real
# psagw on loopback ports picked at run time (port 0, read back from the "listening" log
# line), drives it with real independent clients, and stops everything on exit.
set -euo pipefail

PSAGW=${PSAGW:?PSAGW must point at the psagw binary}
LOADGEN=${LOADGEN:-$(dirname "$PSAGW")/../bench/loadgen}
WORK=$(mktemp -d /tmp/psagw-test.XXXXXX)
REG=$WORK/registry.db
GW_LOG=$WORK/gateway.log
GW_PID=
PSK_PORT=
PLAIN_PORT=
CHILDREN=()

cleanup() {
  local rc=$?
  if declare -F test_cleanup >/dev/null; then test_cleanup || true; fi
  for p in "${CHILDREN[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  pkill -P $$ 2>/dev/null || true # anything else this script started
  if [ -n "$GW_PID" ]; then kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi
  if [ $rc -ne 0 ] && [ -f "$GW_LOG" ]; then
    echo "---- gateway log ($GW_LOG)"; tail -n 60 "$GW_LOG"
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# start_gateway [extra psagw serve args...]: a TLS-PSK and a plain listener on loopback, two
# workers whatever the machine, so clients land on different workers and the cross-worker
# paths (delivery, takeover, revocation) are exercised.
start_gateway() {
  : > "$GW_LOG"
  launch_gateway --registry "$REG" --listen 127.0.0.1:0 --listen-plain 127.0.0.1:0 \
    --workers 2 --log-level debug --attestation-default optional "$@"
}

# launch_gateway [psagw serve args...]: starts psagw (log appended to $GW_LOG), waits for this
# run's event=started and reads PSK_PORT and PLAIN_PORT from this run's listening lines.
launch_gateway() {
  local from
  from=$(( $(wc -l 2>/dev/null < "$GW_LOG" || echo 0) + 1 ))
  "$PSAGW" serve "$@" 2>>"$GW_LOG" &
  GW_PID=$!
  for _ in $(seq 1 100); do
    tail -n +"$from" "$GW_LOG" | grep -q "event=started" && break
    kill -0 "$GW_PID" 2>/dev/null || fail "gateway did not start: $(tail -n +"$from" "$GW_LOG")"
    sleep 0.05
  done
  tail -n +"$from" "$GW_LOG" | grep -q "event=started" || fail "gateway did not start in time"
  PSK_PORT=$(tail -n +"$from" "$GW_LOG" | grep 'event=listening' | grep 'type=tls-psk' | head -1 | sed 's/.* port=\([0-9]*\).*/\1/')
  PLAIN_PORT=$(tail -n +"$from" "$GW_LOG" | grep 'event=listening' | grep 'type=plain' | head -1 | sed 's/.* port=\([0-9]*\).*/\1/' || true)
}

# stop_gateway: SIGTERM, and the exit status. A gateway that has not ended 30 s later is a
# failure of its own: its threads' stacks go to the log (gdb), then it is killed.
stop_gateway() {
  kill -TERM "$GW_PID"
  local rc=0
  for _ in $(seq 1 300); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$GW_PID" 2>/dev/null; then
    echo "---- the gateway did not stop within 30 s of SIGTERM; its threads:" >>"$GW_LOG"
    gdb -p "$GW_PID" -batch -ex 'thread apply all bt 12' >>"$GW_LOG" 2>&1 || true
    kill -KILL "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
    fail "the gateway did not stop within 30 s of SIGTERM (stacks in the log)"
  fi
  wait "$GW_PID" || rc=$?
  GW_PID=
  return $rc
}

add_device() { # id role hexpsk [more args]
  local id=$1 role=$2 psk=$3; shift 3
  "$PSAGW" device add "$id" --role "$role" --psk "$psk" --registry "$REG" "$@" >/dev/null
}

# pub ID PSK [mosquitto_pub args...]
pub() {
  local id=$1 psk=$2; shift 2
  mosquitto_pub -h 127.0.0.1 -p "$PSK_PORT" --psk "$psk" --psk-identity "$id" -i "$id" "$@"
}

# sub_bg OUTFILE ID PSK [mosquitto_sub args...]: background subscriber, waits until subscribed.
sub_bg() {
  local out=$1 id=$2 psk=$3; shift 3
  local before
  before=$(grep -c "event=subscribe id=$id " "$GW_LOG" || true)
  mosquitto_sub -h 127.0.0.1 -p "$PSK_PORT" --psk "$psk" --psk-identity "$id" -i "$id" "$@" >"$out" 2>&1 &
  CHILDREN+=($!)
  SUB_PID=$!
  for _ in $(seq 1 100); do
    [ "$(grep -c "event=subscribe id=$id " "$GW_LOG" || true)" -gt "$before" ] && return 0
    sleep 0.05
  done
  fail "subscriber $id did not subscribe"
}

# wait_for FILE PATTERN [seconds]
wait_for() {
  local f=$1 pat=$2 t=${3:-5}
  for _ in $(seq 1 $((t * 20))); do
    grep -q -- "$pat" "$f" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

expect_log() { wait_for "$GW_LOG" "$1" "${2:-5}" || fail "gateway log has no '$1'"; }

gateway_alive() { kill -0 "$GW_PID" 2>/dev/null || fail "gateway died"; }

PSK_A=00112233445566778899aabbccddeeff
PSK_B=ffeeddccbbaa99887766554433221100
PSK_C=0f1e2d3c4b5a69788796a5b4c3d2e1f0
