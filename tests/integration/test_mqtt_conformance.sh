#!/usr/bin/env bash
# MQTT conformance, statement by statement (docs/mqtt.md): paho-mqtt (Debian's
# python3-paho-mqtt, 3.1.1 and 5) and a raw client over the plain loopback listener
# (tests/integration/mqtt_conformance.py); mosquitto_pub/mosquitto_sub over TLS-PSK for QoS
# 0/1/2 in both versions and for shared subscriptions under load, with a member killed halfway.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
$PY -c 'import paho.mqtt.client' 2>/dev/null || { echo "SKIP: python3-paho-mqtt missing"; exit 77; }
CONFORMANCE="$(dirname "$0")/mqtt_conformance.py"

add_device dev-1 sensor $PSK_A
add_device mon-1 monitor $PSK_B
add_device mon-2 monitor $PSK_C
add_device mon-3 monitor 00000000000000000000000000000003

write_conf() { # max_keepalive
  cat > $WORK/gw.conf <<CONF
registry = "$REG";
log_level = "debug";
attestation_default = "optional";
allow_anonymous = true;
# '#' does not match topics that start with '$' ([MQTT-4.7.2-1]), in the ACL as in routing
anonymous_acl = { publish = [ "#", "\$test/#" ]; subscribe = [ "#", "\$test/#" ]; };
workers = 2;
listeners = ( { address = "127.0.0.1:0"; },
              { address = "127.0.0.1:0"; type = "plain"; } );
mqtt = { max_keepalive = $1; max_queued_messages = 100000; };
CONF
}
write_conf 3600
: > $GW_LOG
launch_gateway --config $WORK/gw.conf

$PY "$CONFORMANCE" $PLAIN_PORT main || fail "conformance checks (plain listener)"

# TLS-PSK, mosquitto's clients: every QoS pair in both versions, delivered at the lower QoS
for v in mqttv311 mqttv5; do
  for sq in 0 1 2; do
    sub_bg $WORK/q-$v-$sq mon-1 $PSK_B -V $v -q $sq -t "sensors/dev-1/q$sq" -C 3 -v
    for pq in 0 1 2; do
      pub dev-1 $PSK_A -V $v -q $pq -t "sensors/dev-1/q$sq" -m "p$pq" || fail "$v publish QoS $pq"
    done
    wait "$SUB_PID" || fail "$v subscription QoS $sq: not all three messages"
    [ "$(sort $WORK/q-$v-$sq | tr '\n' ' ')" = "sensors/dev-1/q$sq p0 sensors/dev-1/q$sq p1 sensors/dev-1/q$sq p2 " ] \
      || fail "$v QoS $sq: $(cat $WORK/q-$v-$sq)"
  done
done
expect_log "event=subscribe id=mon-1 filter=sensors/dev-1/q2 result=0x02"
ok "TLS-PSK, mosquitto_pub/sub 3.1.1 and 5: publish QoS 0/1/2 x subscription QoS 0/1/2, each delivered once (SUBACK grants QoS 2)"

# shared subscription under load: 3 members, 30,000 QoS 1 messages, each to exactly one. For
# the run where one member is killed, that member is a paho client on the plain listener: paho
# writes a message down before it sends the PUBACK (mosquitto_sub acknowledges first and prints
# after, so a kill between the two would lose a message the gateway rightly counts as received)
paho_member() { # outfile
  $PY -u -c '
import sys, paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions
out = open(sys.argv[2], "w")
def on_message(c, u, m):
    out.write(m.payload.decode() + "\n"); out.flush()
def on_connect(c, u, f, rc, p=None):
    c.subscribe("$share/load/sensors/dev-1/load", options=SubscribeOptions(qos=1))
def on_subscribe(c, u, mid, g, p=None):
    print("subscribed", flush=True)
c = mqtt.Client("paho-member", protocol=mqtt.MQTTv5)
c.on_message, c.on_connect, c.on_subscribe = on_message, on_connect, on_subscribe
c.connect("127.0.0.1", int(sys.argv[1]))
c.loop_forever()' $PLAIN_PORT "$1" > $WORK/paho-member.log 2>&1 &
  SUB_PID=$!
  CHILDREN+=($!)
  wait_for $WORK/paho-member.log subscribed || fail "the paho member did not subscribe"
}
shared_run() { # tag kill(0/1)
  local tag=$1 kill_one=$2 pids=() i
  for i in 1 2 3; do
    local psk=$PSK_B; [ $i = 3 ] && psk=00000000000000000000000000000003
    if [ $i = 2 ] && [ "$kill_one" = 1 ]; then
      paho_member $WORK/sh-$tag-2
    elif [ $i = 2 ]; then
      sub_bg $WORK/sh-$tag-$i mon-2 $PSK_C -V mqttv5 -q 1 -t '$share/load/sensors/dev-1/load'
    else
      sub_bg $WORK/sh-$tag-$i mon-$i $psk -V mqttv5 -q 1 -t '$share/load/sensors/dev-1/load'
    fi
    pids+=("$SUB_PID")
  done
  seq 1 30000 | sed "s/^/$tag-/" | pub dev-1 $PSK_A -V mqttv5 -q 1 -t sensors/dev-1/load -l &
  local pub_pid=$!
  if [ "$kill_one" = 1 ]; then
    for _ in $(seq 1 400); do [ "$(wc -l < $WORK/sh-$tag-2)" -ge 3000 ] && break; sleep 0.025; done
    # stopped before it is killed: what the gateway sends it meanwhile stays unacknowledged, so
    # there is always something to hand over (killed outright, a member caught between two
    # messages had none, and under qemu-user that happened)
    kill -STOP "${pids[1]}"
    sleep 0.3
    kill -9 "${pids[1]}"
  fi
  wait $pub_pid || fail "$tag: the publisher failed"
  for _ in $(seq 1 200); do
    [ "$(cat $WORK/sh-$tag-* | sort -u | wc -l)" -ge 30000 ] && break; sleep 0.05
  done
  sleep 0.3
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  local uniq total
  uniq=$(cat $WORK/sh-$tag-* | sort -u | wc -l)
  total=$(cat $WORK/sh-$tag-* | wc -l)
  [ "$uniq" = 30000 ] || fail "$tag: $uniq of 30000 messages arrived"
  echo "$tag: member counts $(wc -l < $WORK/sh-$tag-1) $(wc -l < $WORK/sh-$tag-2) $(wc -l < $WORK/sh-$tag-3), $total deliveries"
  SHARED_TOTAL=$total
}
shared_run all 0
[ "$SHARED_TOTAL" = 30000 ] || fail "shared: $SHARED_TOTAL deliveries for 30000 messages"
for i in 1 2 3; do
  [ "$(wc -l < $WORK/sh-all-$i)" -ge 3000 ] || fail "member $i got $(wc -l < $WORK/sh-all-$i)"
done
ok "TLS-PSK shared subscription: 30,000 QoS 1 messages to a group of 3, each delivered exactly once, every member served"
shared_run kill 1
kill -USR1 $GW_PID
expect_log "event=stats .*shared_handed_over=[1-9]"
handed=$(grep 'event=stats' $GW_LOG | tail -1 | grep -o 'shared_handed_over=[0-9]*')
ok "shared subscription (TLS-PSK and plain members): a member killed halfway loses nothing at QoS 1; what it had not acknowledged went to the others ($handed)"

# sessions across a gateway restart: what is promised is that CONNACK says they are gone
$PY "$CONFORMANCE" $PLAIN_PORT restart-before || fail "before the restart"
stop_gateway || true
launch_gateway --config $WORK/gw.conf
$PY "$CONFORMANCE" $PLAIN_PORT restart-after || fail "after the restart"
stop_gateway || true

# Server Keep Alive with a short max_keepalive
write_conf 2
launch_gateway --config $WORK/gw.conf
$PY "$CONFORMANCE" $PLAIN_PORT keepalive || fail "keep alive"
stop_gateway || true
