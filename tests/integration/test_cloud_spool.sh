#!/usr/bin/env bash
# The spool's size cap (docs/design/wire.md section 6): with when_full = "block" a full spool means no
# PUBACK, then flow control (the connection is not read), never a silent drop, and everything
# goes up once the cloud is back; with "drop_oldest" devices go on, and every drop is counted,
# logged and kept in the file.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cloud_lib.sh"

make_certs
start_cloud
start_observer
add_device s1 sensor $PSK_A --attestation off
for i in 0 1; do add_device "bp0000$i" sensor $PSK_B --attestation off; done
GW_PORT=$(free_port)
spool_config() { # when_full [more spool keys]
  write_config 'max_publish_rate = 0;'
  sed -i "s|spool = { path = \"$SPOOL\"; };|spool = { path = \"$SPOOL\"; max_bytes = 1048576; when_full = \"$1\"; ${2:-} };|" "$GW_CONF"
}
depth() { "$PSAGW" spool stats --spool "$SPOOL" | sed -n 's/^depth: *\([0-9]*\).*/\1/p'; }

# ---- block: 50 KB messages into a 1 MiB spool while the cloud is down
spool_config block
stop_cloud
start_gateway_conf
LOADGEN_PAD=50000 "$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_A s1 40 0 >"$WORK/b.acks" 2>"$WORK/b.err" &
pub_pid=$!
expect_log "event=spool_full state=blocking" 15
sleep 2
acked=$(grep -c '^acked' "$WORK/b.acks")
d=$(depth)
[ "$acked" -ge 15 ] && [ "$acked" -le 22 ] || fail "acknowledged $acked messages of 50 KB into a 1 MiB spool"
[ "$d" -eq "$acked" ] || fail "spool depth $d, acknowledged $acked"
sleep 2
[ "$(grep -c '^acked' "$WORK/b.acks")" -eq "$acked" ] || fail "acknowledged while the spool was full"
"$PSAGW" spool stats --spool "$SPOOL" | grep -q "drops:       0" || fail "drops while blocking"
ok "spool full (block): $acked of 40 acknowledged, then no PUBACK; nothing dropped"

# a pipelining client (3.1.1, 200 unacknowledged) is no longer read: flow control
"$LOADGEN" ackbench 127.0.0.1 "$PSK_PORT" $PSK_B bp 2 300 200 >"$WORK/ackbench.out" 2>&1 &
ab_pid=$!
sleep 2
kill -USR1 "$GW_PID"
expect_log "event=stats .*spool_backpressure=[1-9]"
gateway_alive
ok "a connection with receive_maximum acknowledgements waiting is not read (spool_backpressure counted)"

start_cloud "$CLOUD_PORT"
wait $pub_pid || fail "publisher did not finish after the cloud came back: $(tail -3 "$WORK/b.err")"
wait $ab_pid || fail "ackbench did not finish: $(cat "$WORK/ackbench.out")"
[ "$(grep -c '^acked' "$WORK/b.acks")" -eq 40 ] || fail "not all 40 acknowledged in the end"
expect_log "event=spool_full state=resumed" 10
wait_observed " psagw/gw1/sensors/s1/seq " 40 30 || fail "only $(observed_count ' psagw/gw1/sensors/s1/seq ')/40 arrived"
for seq in $(seq 1 40); do
  grep -a -q " psagw/gw1/sensors/s1/seq s1:$seq:" "$OBS_OUT" || fail "s1:$seq missing at the cloud"
done
wait_observed " psagw/gw1/sensors/bp0000[01]/bench " 600 30 || fail "ackbench messages: $(observed_count ' psagw/gw1/sensors/bp')/600"
ok "cloud back: the spool drains, the devices resume, all 40 + 600 messages arrive"
stop_gateway || fail "gateway exit"

# ---- block, with the queue in memory bounded too: a device whose message cannot even be
# queued is disconnected (0x97 in MQTT 5) and sends it again later; nothing acknowledged is lost
: >"$GW_LOG"
rm -f "$SPOOL" "$SPOOL-wal" "$SPOOL-shm"
spool_config block 'memory_max_bytes = 65536;'
stop_cloud
start_gateway_conf
LOADGEN_PAD=50000 "$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_A s1 30 0 >"$WORK/m.acks" 2>"$WORK/m.err" &
pub_pid=$!
expect_log "event=spool_refused id=s1 reason=spool_full_and_queue_full action=disconnect" 20
gateway_alive
start_cloud "$CLOUD_PORT"
wait $pub_pid || fail "publisher did not finish: $(tail -3 "$WORK/m.err")"
[ "$(grep -c '^acked' "$WORK/m.acks")" -eq 30 ] || fail "not all 30 acknowledged in the end"
for _ in $(seq 1 100); do [ "$(depth)" -eq 0 ] && break; sleep 0.1; done
[ "$(depth)" -eq 0 ] || fail "spool not drained"
ok "spool and its memory queue full: the device is disconnected and resends; all 30 delivered afterwards"
stop_gateway || fail "gateway exit"

# ---- drop_oldest: devices are never held back; drops are counted and kept
: >"$GW_LOG"
rm -f "$SPOOL" "$SPOOL-wal" "$SPOOL-shm"
spool_config drop_oldest
stop_cloud
start_gateway_conf
LOADGEN_PAD=50000 "$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_A s1 40 0 >"$WORK/d.acks" || fail "publisher held back under drop_oldest"
[ "$(grep -c '^acked' "$WORK/d.acks")" -eq 40 ] || fail "not all acknowledged under drop_oldest"
expect_log "event=spool_drop seq=1 reason=full policy=drop_oldest"
drops=$("$PSAGW" spool stats --spool "$SPOOL" | sed -n 's/^drops: *\([0-9]*\).*/\1/p')
d=$(depth)
[ "$drops" -ge 18 ] && [ $((drops + d)) -eq 40 ] || fail "drops $drops + depth $d != 40"
stop_gateway || fail "gateway exit"
drops2=$("$PSAGW" spool stats --spool "$SPOOL" | sed -n 's/^drops: *\([0-9]*\).*/\1/p')
[ "$drops2" -eq "$drops" ] || fail "the drop count was not kept in the file"
ok "spool full (drop_oldest): devices go on, $drops oldest records dropped, logged and counted in the file"
