# cloud_lib.sh: the cloud side of the uplink tests, sourced after lib.sh. The "cloud" is a
# real mosquitto with TLS and require_certificate true, its CA, server and client
# certificates made here with openssl; an observer (mosquitto_sub with its own client
# certificate and a persistent session) records what arrives, one line per message:
# "UNIXTIME TOPIC PAYLOAD".

CLOUD_DIR=$WORK/cloud
CLOUD_PID=
CLOUD_PORT=
OBS_OUT=$WORK/observed.txt
OBS_PID=
GW_CONF=$WORK/psagw.conf
SPOOL=$WORK/spool.db

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# make_certs: ca, server (localhost / 127.0.0.1), gateway client gw1, observer, and a key that
# belongs to no certificate (for the wrong-key test).
make_certs() {
  "$(dirname "${BASH_SOURCE[0]}")/../../scripts/cloud-certs.sh" "$CLOUD_DIR" gw1 observer
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CLOUD_DIR/other.key" 2>/dev/null
}

# start_cloud [port]: the broker, with persistence so the observer's session and queue
# survive a restart of the cloud (the outage test).
start_cloud() {
  CLOUD_PORT=${1:-${CLOUD_PORT:-$(free_port)}}
  cat >"$CLOUD_DIR/mosquitto.conf" <<EOF
user $(id -un)
listener $CLOUD_PORT 127.0.0.1
cafile $CLOUD_DIR/ca.pem
certfile $CLOUD_DIR/server.pem
keyfile $CLOUD_DIR/server.key
require_certificate true
use_identity_as_username true
allow_anonymous true
persistence true
persistence_location $CLOUD_DIR/
autosave_interval 1
max_queued_messages 100000
set_tcp_nodelay true
log_dest file $CLOUD_DIR/mosquitto.log
log_type all
EOF
  mosquitto -c "$CLOUD_DIR/mosquitto.conf" 2>>"$CLOUD_DIR/mosquitto.err" &
  CLOUD_PID=$!
  CHILDREN+=($CLOUD_PID)
  for _ in $(seq 1 100); do
    grep -q "Opening ipv4 listen socket on port $CLOUD_PORT" "$CLOUD_DIR/mosquitto.log" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "cloud mosquitto did not start: $(cat "$CLOUD_DIR/mosquitto.err" "$CLOUD_DIR/mosquitto.log" 2>/dev/null | tail -5)"
}

stop_cloud() {
  [ -n "$CLOUD_PID" ] || return 0
  kill -TERM "$CLOUD_PID" 2>/dev/null || true
  wait "$CLOUD_PID" 2>/dev/null || true
  CLOUD_PID=
}

# start_observer: subscribes to psagw/# with a persistent session (QoS 1).
start_observer() {
  mosquitto_sub -h localhost -p "$CLOUD_PORT" --cafile "$CLOUD_DIR/ca.pem" \
    --cert "$CLOUD_DIR/observer.pem" --key "$CLOUD_DIR/observer.key" -i observer -c -q 1 --nodelay \
    -t 'psagw/#' -F '%U %t %p' >>"$OBS_OUT" 2>>"$WORK/observer.err" &
  OBS_PID=$!
  CHILDREN+=($OBS_PID)
  for _ in $(seq 1 100); do
    grep -q "Received SUBSCRIBE from observer" "$CLOUD_DIR/mosquitto.log" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "observer did not subscribe"
}

# cloud_pub TOPIC MESSAGE: a command from the cloud side.
cloud_pub() {
  mosquitto_pub -h localhost -p "$CLOUD_PORT" --cafile "$CLOUD_DIR/ca.pem" \
    --cert "$CLOUD_DIR/observer.pem" --key "$CLOUD_DIR/observer.key" -i commander -q 1 \
    -t "$1" -m "$2"
}

# write_config [extra cloud keys...]: a gateway config with the cloud section; each extra
# argument is one "key = value;" line inside `cloud`.
write_config() {
  local defaults=("host = \"localhost\";" "port = $CLOUD_PORT;" "ca_file = \"$CLOUD_DIR/ca.pem\";"
    "cert_file = \"$CLOUD_DIR/gw1.pem\";" "key_file = \"$CLOUD_DIR/gw1.key\";"
    "client_id = \"gw1\";" "reconnect_min = 1;" "reconnect_max = 2;")
  {
    echo "registry = \"$REG\";"
    echo "listeners = ( { address = \"127.0.0.1:${GW_PORT:-0}\"; },"
    echo "              { address = \"127.0.0.1:0\"; type = \"plain\"; } );"
    echo "cloud = {"
    for d in "${defaults[@]}"; do
      local key=${d%% *} overridden=0
      for line in "$@"; do [ "${line%% *}" = "$key" ] && overridden=1; done
      [ $overridden -eq 1 ] || echo "  $d"
    done
    for line in "$@"; do echo "  $line"; done
    echo "  spool = { path = \"$SPOOL\"; };"
    echo "};"
  } >"$GW_CONF"
}

# start_gateway_conf: the gateway on $GW_CONF (lib.sh's launch_gateway).
start_gateway_conf() {
  launch_gateway --config "$GW_CONF" --workers 2 --log-level debug \
    --attestation-default optional ${GW_EXTRA:-}
}

# observed_count PATTERN: lines the observer has that match.
observed_count() { grep -a -c -- "$1" "$OBS_OUT" 2>/dev/null || true; }

# wait_observed PATTERN N [seconds]
wait_observed() {
  local pat=$1 n=$2 t=${3:-10}
  for _ in $(seq 1 $((t * 10))); do
    [ "$(observed_count "$pat")" -ge "$n" ] && return 0
    sleep 0.1
  done
  return 1
}

# check_acked_arrived ACKFILE ID: every "acked SEQ" of device ID is at the cloud, and the first
# arrivals of ID's messages are in increasing order.
check_acked_arrived() {
  local acks=$1 id=$2 missing=0
  for seq in $(sed -n 's/^acked //p' "$acks"); do
    grep -a -q " psagw/gw1/sensors/$id/seq $id:$seq\$" "$OBS_OUT" || { missing=$((missing + 1)); echo "missing $id:$seq"; }
  done
  [ "$missing" -eq 0 ] || fail "$missing acknowledged messages of $id never reached the cloud"
  # order: the sequence of first occurrences must increase
  awk -v id="$id" '$2 == "psagw/gw1/sensors/" id "/seq" { split($3, a, ":"); s = a[2] + 0;
       if (!(s in seen)) { seen[s] = 1; if (s < last) { print "out of order: " s " after " last; bad = 1 } last = s } }
       END { exit bad }' "$OBS_OUT" || fail "messages of $id arrived out of order"
}
