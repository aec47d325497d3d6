#!/usr/bin/env bash
# The durability promise (docs/design/wire.md section 6) with real components: devices publish QoS 1
# (loadgen seqpub prints each SEQ the gateway acknowledged), and every acknowledged message
# must reach the cloud mosquitto (TLS, require_certificate), in order per device, through
#   1. a cloud outage, with the gateway also SIGKILLed while the cloud is down;
#   2. a SIGKILL of the gateway while devices publish and the uplink sends.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cloud_lib.sh"

make_certs
start_cloud
start_observer
add_device s1 sensor $PSK_A --attestation off
add_device s2 sensor $PSK_B --attestation off
GW_PORT=$(free_port)
write_config 'max_publish_rate = 0;'

restart_gateway_log() { mv "$GW_LOG" "$GW_LOG.$(date +%s%N)"; : >"$GW_LOG"; }

# ---- 1. outage: the cloud stops, devices go on, the gateway is even killed meanwhile
start_gateway_conf
expect_log "event=cloud_connected" 10
stop_cloud
expect_log "event=cloud_disconnected" 10
"$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_A s1 40 10 >"$WORK/o1.acks" &
p1=$!
"$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_B s2 40 10 >"$WORK/o2.acks" &
p2=$!
wait $p1 || fail "s1 publisher"
wait $p2 || fail "s2 publisher"
[ "$(grep -c '^acked' "$WORK/o1.acks")" -eq 40 ] && [ "$(grep -c '^acked' "$WORK/o2.acks")" -eq 40 ] ||
  fail "devices not acknowledged while the cloud was down"
stats=$("$PSAGW" spool stats --spool "$SPOOL")
echo "$stats" | grep -q "depth:       80 records" || fail "spool while the cloud is down: $stats"
echo "$stats" | grep -q "oldest age:  [0-9]" || fail "no oldest age: $stats"
"$PSAGW" spool stats --spool "$SPOOL" --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["depth"]==80 and d["drops"]==0 and d["bytes"]>0, d' ||
  fail "spool stats --json"
echo "$stats" | grep -q "^uplink:      disconnected (localhost:$CLOUD_PORT)" || fail "uplink state: $stats"
echo "$stats" | grep -q -E "^last error:  (TCP connect to localhost:$CLOUD_PORT: Connection refused|read: connection closed by the cloud)" || fail "last error: $stats"
ok "cloud down: 80 messages acknowledged and spooled ($(echo "$stats" | grep bytes: | tr -s ' ')); spool stats shows the uplink down and why"
kill -KILL "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; GW_PID=
restart_gateway_log
start_gateway_conf
expect_log "event=spool_open path=$SPOOL records=80"
start_cloud "$CLOUD_PORT"
wait_observed " psagw/gw1/sensors/s1/seq " 40 20 || fail "s1 backlog: $(observed_count ' psagw/gw1/sensors/s1/seq ')/40"
wait_observed " psagw/gw1/sensors/s2/seq " 40 20 || fail "s2 backlog: $(observed_count ' psagw/gw1/sensors/s2/seq ')/40"
check_acked_arrived "$WORK/o1.acks" s1
check_acked_arrived "$WORK/o2.acks" s2
ok "outage + SIGKILL while the cloud was down: all 80 acknowledged messages arrived, in order per device"
"$PSAGW" spool stats --spool "$SPOOL" --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["uplink"]["state"]=="connected", d' ||
  fail "spool stats --json: uplink not connected: $("$PSAGW" spool stats --spool "$SPOOL" --json)"
# the command subscription is made again on the new connection
sub_bg "$WORK/cmd_s2.txt" s2 $PSK_B -q 1 -t 'cmd/s2/#' -v
cloud_pub psagw/gw1/cmd/s2/after-outage yes
wait_for "$WORK/cmd_s2.txt" "cmd/s2/after-outage yes" 5 || fail "no command after the cloud came back"
kill $SUB_PID
ok "after reconnecting, commands from the cloud are delivered again (resubscribed)"
for _ in $(seq 1 50); do
  "$PSAGW" spool stats --spool "$SPOOL" | grep -q "depth:       0 records" && break
  sleep 0.1
done
"$PSAGW" spool stats --spool "$SPOOL" | grep -q "depth:       0 records" || fail "spool not emptied after the cloud acknowledged"

# ---- 2. SIGKILL under load, with the cloud up
add_device s3 sensor $PSK_C --attestation off
"$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_A s1 300 2 >"$WORK/k1.acks" 2>"$WORK/k1.err" &
p1=$!
"$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_C s3 300 2 >"$WORK/k3.acks" 2>"$WORK/k3.err" &
p3=$!
for _ in $(seq 1 100); do
  [ "$(grep -c '^acked' "$WORK/k1.acks")" -ge 60 ] && break
  sleep 0.05
done
kill -KILL "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; GW_PID=
at1=$(grep -c '^acked' "$WORK/k1.acks"); at3=$(grep -c '^acked' "$WORK/k3.acks")
sleep 0.5
restart_gateway_log
start_gateway_conf
wait $p1 || fail "s1 publisher did not finish: $(tail -3 "$WORK/k1.err")"
wait $p3 || fail "s3 publisher did not finish: $(tail -3 "$WORK/k3.err")"
grep -q '^disconnected' "$WORK/k1.acks" || fail "the kill did not hit s1 while it published"
# s1 sends s1:1..40 again from the first phase, so the check counts this phase's seqs only
n1=$(grep -c '^acked' "$WORK/k1.acks"); n3=$(grep -c '^acked' "$WORK/k3.acks")
[ "$n1" -eq 300 ] && [ "$n3" -eq 300 ] || fail "acknowledged: s1 $n1, s3 $n3 of 300"
wait_observed " psagw/gw1/sensors/s3/seq s3:300\$" 1 20 || fail "s3's last message did not arrive"
wait_observed " psagw/gw1/sensors/s1/seq s1:300\$" 1 20 || fail "s1's last message did not arrive"
check_acked_arrived "$WORK/k3.acks" s3
# s1's first phase (1..40) is already in the file: check this phase's acked seqs are there
missing=0
for seq in $(sed -n 's/^acked //p' "$WORK/k1.acks"); do
  grep -a -q " psagw/gw1/sensors/s1/seq s1:$seq\$" "$OBS_OUT" || missing=$((missing + 1))
done
[ "$missing" -eq 0 ] || fail "$missing acknowledged messages of s1 lost across the SIGKILL"
dups=$(grep -a -c " psagw/gw1/sensors/s[13]/seq " "$OBS_OUT")
ok "SIGKILL under load (after $at1 + $at3 acks): all 600 acknowledged messages arrived ($dups deliveries counting s1's first 40 and duplicates)"
stop_gateway || fail "gateway exit"
