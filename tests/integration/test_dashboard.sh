#!/usr/bin/env bash
# The dashboard in a real browser (headless Chromium through Selenium): a gateway with the
# demo's kind of devices (psadev: two sensors publishing, a monitor, one device in a debug
# lifecycle that attestation refuses) serves it; the browser sees the device table fill, the
# refusal with its reason and a sensor's chart gain points, and keeps a screenshot
# (DASHBOARD_SCREENSHOT, default in the test's directory; `make dashboard-shot` updates
# docs/dashboard.png). Skipped (77) where Chromium or its driver are missing.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
SHOT=${DASHBOARD_SCREENSHOT:-$WORK/dashboard.png}

openssl rand -hex 32 > $WORK/group.key
provision() { # id role [args]
  local id=$1 role=$2; shift 2
  "$PSADEV" provision --id $id --role $role --state $WORK/$id --group-key-file $WORK/group.key \
    --manifest $WORK/$id.json "$@" > /dev/null
  "$PSAGW" device import $WORK/$id.json --registry "$REG" > /dev/null
}
provision sensor-1 sensor
provision sensor-2 sensor
provision monitor-1 monitor
provision sensor-3 sensor --lifecycle non_psa_rot_debug
openssl rand -hex 32 > $WORK/token
chmod 600 $WORK/token
cat > $WORK/gw.conf <<CONF
registry = "$REG";
listeners = ( { address = "127.0.0.1:0"; } );
http = { listen = "127.0.0.1:0"; token_file = "$WORK/token"; };
# sensor-1's records go up as JSON: the gateway opens them with the group key, so the dashboard
# charts its readings; sensor-2's go up as they are (its chart is its message rate). The cloud
# itself is not there: the messages wait in the spool, which is what a dead cloud looks like.
cloud = {
  host = "127.0.0.1"; port = 1; client_id = "dash-gw";
  ca_file = "$WORK/none.pem"; cert_file = "$WORK/none.pem"; key_file = "$WORK/none.key";
  group_key_file = "$WORK/group.key";
  routes = ( { match = "sensors/sensor-1/#"; topic = "psagw/{gateway}/{id}/{rest}"; payload = "json"; },
             { match = "sensors/+/#"; topic = "psagw/{gateway}/{id}/{rest}"; } );
  spool = { path = "$WORK/spool.db"; };
};
CONF
: > $GW_LOG
launch_gateway --config $WORK/gw.conf
HTTP=$(grep 'event=http_listening' $GW_LOG | sed 's/.* port=\([0-9]*\).*/\1/')
"$PSADEV" monitor --state $WORK/monitor-1 --gateway 127.0.0.1:$PSK_PORT > $WORK/monitor.out 2>&1 &
CHILDREN+=($!)
for s in sensor-1 sensor-2; do
  "$PSADEV" sensor --state $WORK/$s --gateway 127.0.0.1:$PSK_PORT --interval 500 > $WORK/$s.out 2>&1 &
  CHILDREN+=($!)
done
"$PSADEV" connect --state $WORK/sensor-3 --gateway 127.0.0.1:$PSK_PORT > $WORK/s3.out 2>&1 || true
expect_log "event=attestation .*id=sensor-3 verdict=refused"

# what the dashboard reads, with a cloud that is not there: the spool fills and ages, the
# limiter's gauges are there, the refused device was last seen at its attestation
TOKEN=$(cat $WORK/token)
sleep 2
curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$HTTP/metrics > $WORK/metrics.txt
if command -v promtool >/dev/null; then
  promtool check metrics < $WORK/metrics.txt > $WORK/promtool.out 2>&1 \
    || fail "promtool (with a cloud section): $(cat $WORK/promtool.out)"
fi
age=$(awk '$1 == "psagw_spool_oldest_age_seconds" {print $2}' $WORK/metrics.txt)
awk -v a="$age" 'BEGIN{exit !(a > 0.5)}' || fail "spool oldest age: '$age'"
grep -q '^psagw_spool_records [1-9]' $WORK/metrics.txt || fail "spool records"
grep -q '^psagw_uplink_rate_limit_publishes ' $WORK/metrics.txt || fail "rate limit gauge"
grep -q '^psagw_uplink_connected 0' $WORK/metrics.txt || fail "uplink state"
curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$HTTP/api/devices/sensor-3 \
  | grep -q '"last_seen_ms":[0-9]' || fail "sensor-3 has no last_seen_ms"
curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$HTTP/api/spool \
  | grep -q '"oldest_age_s":[1-9]\|"oldest_age_s":0\.[0-9]*[1-9]' || fail "/api/spool oldest age"
curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$HTTP/api/readings \
  | grep -q '"sensor-1":\[\[' || fail "no readings for sensor-1"
ok "with the cloud down: spool depth and its oldest record's age ($age s), the limiter's gauges, the refused device's last-seen time, sensor-1's opened readings"

if [ ! -x /usr/bin/chromedriver ] || ! $PY -c 'import selenium' 2>/dev/null; then
  echo "SKIP: chromium-driver or python3-selenium missing: the browser part does not run"; exit 77
fi
[ "${SANITIZED:-0}" = 1 ] && { echo "SKIP: the browser part runs on the plain build"; exit 77; }
$PY "$(dirname "$0")/dashboard_browser.py" "http://127.0.0.1:$HTTP/#token=$(cat $WORK/token)" \
  "$SHOT" sensor-1 sensor-3 lifecycle sensor-1 || fail "the dashboard in the browser"
[ -s "$SHOT" ] || fail "no screenshot"
gateway_alive
ok "the dashboard in headless Chromium: devices, a refusal with its reason, a live sensor chart"
