#!/usr/bin/env bash
# The operator's HTTP endpoint (docs/observability.md) with curl: health without a token,
# everything else only with it (401 otherwise), /metrics in Prometheus' format (promtool check
# metrics) with counters and histograms that move as devices connect, are refused and publish,
# the JSON API paged and without secrets, the limits (size, rate, method, slow clients), a token
# file that is not private refused at start, and a new token taken on SIGHUP.
. "$(dirname "$0")/lib.sh"
CLIENT=${IAT_CLIENT:?IAT_CLIENT must point at the iat_client binary}
IAK=A9B454B26D6F90A4EA31193564CBA91FEC6F9A002A7DC0504B92A1937134585F
WRONG_IAK=$(printf '11%.0s' $(seq 32))

add_device dev-1 sensor $PSK_A --attestation off
add_device att-1 sensor $PSK_B --iak $IAK --attestation required
for i in 1 2 3 4 5; do add_device "page-$i" sensor $PSK_C --attestation off; done
add_device ops-1 custom $PSK_C --attestation off --acl-sub '$SYS/#'

openssl rand -hex 32 > $WORK/token
chmod 600 $WORK/token
TOKEN=$(cat $WORK/token)

# the token file must be private, and required
chmod 644 $WORK/token
out=$("$PSAGW" serve --registry "$REG" --listen 127.0.0.1:0 --http 127.0.0.1:0 \
  --http-token-file $WORK/token 2>&1 || true)
echo "$out" | grep -q "http token_file" || fail "a 0644 token file was accepted: $out"
chmod 600 $WORK/token
out=$("$PSAGW" serve --registry "$REG" --listen 127.0.0.1:0 --http 127.0.0.1:0 2>&1 || true)
echo "$out" | grep -q "token_file is required" || fail "--http without a token: $out"
ok "the endpoint refuses to start with a token file others can read, or without one"

cat > $WORK/gw.conf <<CONF
registry = "$REG";
log_level = "debug";
listeners = ( { address = "127.0.0.1:0"; } );
mqtt = { sys_interval = 1; };
http = { listen = "127.0.0.1:0"; token_file = "$WORK/token"; requests_per_second = 100;
         max_connections_per_address = 16; };
CONF
: > $GW_LOG
launch_gateway --config $WORK/gw.conf
HTTP=$(grep 'event=http_listening' $GW_LOG | sed 's/.* port=\([0-9]*\).*/\1/')
[ -n "$HTTP" ] || fail "no http_listening line"
URL=http://127.0.0.1:$HTTP
get() { curl -s -H "Authorization: Bearer $TOKEN" "$URL$1"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

[ "$(code $URL/healthz)" = 200 ] || fail "/healthz without a token"
curl -s $URL/healthz | grep -q '"status":"ok"' || fail "/healthz body"
for p in /metrics /readyz /api/devices /api/verdicts /api/spool /api/refvals; do
  [ "$(code $URL$p)" = 401 ] || fail "$p without a token: not 401"
  [ "$(code -H 'Authorization: Bearer wrong-token-0123456789' $URL$p)" = 401 ] || fail "$p with a wrong token"
  [ "$(code -H "Authorization: Bearer $TOKEN" $URL$p)" = 200 ] || fail "$p with the token"
done
expect_log "event=http_unauthorized peer=127.0.0.1"
ok "/healthz is open; /metrics, /readyz and /api/* answer 401 without the right bearer token and 200 with it"
curl -s -D $WORK/headers $URL/ > $WORK/page.html
grep -q '<title>psagw</title>' $WORK/page.html || fail "/ is not the dashboard"
grep -qi "^Content-Security-Policy: default-src 'none'" $WORK/headers || fail "no CSP: $(cat $WORK/headers)"
if grep -Eq '(src|href)="https?:|url\(https?:|fetch\("https?:|import .*https?:' $WORK/page.html; then
  fail "the dashboard loads something from elsewhere"
fi
ok "/ is the dashboard: a static page (no data in it, nothing loaded from elsewhere, a strict CSP); its data calls need the token"

get /readyz | grep -q '"ready":true,"listening":true,"registry":"ok","spool":"none","cloud":"none"' \
  || fail "/readyz: $(get /readyz)"
ok "/readyz: listening, registry open, no spool or cloud configured"

# counters and histograms move: a device connects and publishes, an unknown one is refused, a
# device with the wrong IAK is refused at attestation
pub dev-1 $PSK_A -q 1 -t sensors/dev-1/x -m one || fail "publish"
mosquitto_pub -h 127.0.0.1 -p $PSK_PORT --psk $PSK_A --psk-identity nobody -i nobody -t x -m y \
  >/dev/null 2>&1 || true
"$CLIENT" --port $PSK_PORT --id att-1 --psk $PSK_B --iak $WRONG_IAK > $WORK/att.out 2>&1 || true
"$CLIENT" --port $PSK_PORT --id att-1 --psk $PSK_B --iak $IAK > $WORK/att2.out 2>&1 \
  || fail "a good attestation failed: $(cat $WORK/att2.out)"
get /metrics > $WORK/metrics.txt
if command -v promtool >/dev/null; then
  promtool check metrics < $WORK/metrics.txt > $WORK/promtool.out 2>&1 \
    || fail "promtool check metrics: $(cat $WORK/promtool.out)"
  ok "promtool check metrics accepts /metrics ($(grep -c '^# TYPE' $WORK/metrics.txt) families)"
else
  echo "note: promtool not installed; the exposition format is not checked"
fi
metric() { grep -E "^$1 " $WORK/metrics.txt | awk '{print $2}'; }
[ "$(metric psagw_mqtt_connects_ok_total)" -ge 2 ] || fail "connects_ok: $(metric psagw_mqtt_connects_ok_total)"
[ "$(metric 'psagw_tls_handshake_failures_total\{reason="unknown_identity"\}')" -ge 1 ] || fail "unknown identity not counted"
[ "$(metric 'psagw_attestation_verdicts_total\{result="mac_mismatch"\}')" = 1 ] || fail "mac_mismatch: $(grep mac_mismatch $WORK/metrics.txt)"
[ "$(metric 'psagw_attestation_verdicts_total\{result="accepted"\}')" = 1 ] || fail "accepted verdicts"
[ "$(metric psagw_connect_latency_seconds_count)" -ge 2 ] || fail "connect latency not observed"
[ "$(metric psagw_puback_latency_seconds_count)" -ge 1 ] || fail "PUBACK latency not observed"
[ "$(metric psagw_publishes_in_total)" -ge 1 ] || fail "publishes_in"
grep -q '^psagw_connect_latency_seconds_bucket{le="+Inf"}' $WORK/metrics.txt || fail "no +Inf bucket"
ok "counters and histograms move: connects, an unknown identity, a refused and an accepted attestation, a publish and its PUBACK"

v=$(get /api/verdicts)
echo "$v" | grep -q '"device":"att-1","verdict":"refused".*"result":"mac_mismatch"' || fail "verdicts: $v"
echo "$v" | grep -q '"device":"att-1","verdict":"accepted"' || fail "no accepted verdict: $v"
ok "/api/verdicts lists the refusal with its reason and the acceptance, newest first"

# the same figures as $SYS/ topics, for a role whose ACL names them
timeout 5 mosquitto_sub -h 127.0.0.1 -p $PSK_PORT --psk $PSK_C --psk-identity ops-1 -i ops-1 \
  -t '$SYS/#' -v -W 4 > $WORK/sys.out 2>&1 || true
grep -qx '$SYS/broker/version psagw [0-9.]*' $WORK/sys.out || fail "\$SYS version: $(head -5 $WORK/sys.out)"
grep -q '^$SYS/broker/clients/connected [0-9]' $WORK/sys.out || fail "\$SYS clients"
grep -qx '$SYS/psagw/attestation/refused/mac_mismatch 1' $WORK/sys.out || fail "\$SYS refusals: $(grep attestation $WORK/sys.out)"
grep -q '^$SYS/broker/uptime [0-9]* seconds' $WORK/sys.out || fail "\$SYS uptime"
out=$(timeout 3 mosquitto_sub -h 127.0.0.1 -p $PSK_PORT --psk $PSK_A --psk-identity dev-1 -i dev-1 \
  -t '$SYS/#' -V mqttv5 -W 2 2>&1 || true)
expect_log "event=acl_denied action=subscribe id=dev-1 filter=\\\$SYS/#"
ok "\$SYS/broker/... and \$SYS/psagw/attestation/... published every sys_interval, retained, for a role whose ACL allows them; a sensor is refused"

# psagw status: the same, for a person, from the daemon's endpoint
st=$("$PSAGW" status --http 127.0.0.1:$HTTP --token-file $WORK/token) || fail "psagw status: $st"
echo "$st" | grep -q "^psagw .* at 127.0.0.1:$HTTP: READY (listening yes, registry ok" || fail "status: $st"
echo "$st" | grep -q "^devices: 8 registered" || fail "status devices: $st"
echo "$st" | grep -q "refused .* att-1: mac_mismatch" || fail "status refusals: $st"
"$PSAGW" status --http 127.0.0.1:$HTTP --token-file $WORK/token --json > $WORK/status.json \
  || fail "status --json"
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ready"]["ready"] and d["devices"]["total"] == 8' \
  $WORK/status.json || fail "status --json: $(head -c 300 $WORK/status.json)"
echo wrong-token-0123456789abcdef > $WORK/bad-token
out=$("$PSAGW" status --http 127.0.0.1:$HTTP --token-file $WORK/bad-token 2>&1) && fail "a wrong token"
echo "$out" | grep -q "refused the token (401)" || fail "wrong token: $out"
ok "psagw status summarises the running daemon (ready, devices, refusals), --json gives it all, a wrong token is said so"

# the device pages: 8 devices, 3 per page, followed to the end
after="" n=0 pages=0
while :; do
  page=$(get "/api/devices?limit=3${after:+&after=$after}")
  n=$((n + $(echo "$page" | grep -o '"id":"' | wc -l)))
  pages=$((pages + 1))
  next=$(echo "$page" | sed -n 's/.*"next":"\([^"]*\)".*/\1/p')
  [ -z "$next" ] && break
  after=$next
  [ $pages -lt 10 ] || fail "paging does not end"
done
[ "$n" = 8 ] && [ "$pages" = 3 ] || fail "paging: $n devices in $pages pages"
echo "$page" | grep -q '"total":8' || fail "total: $page"
# the verdicts reach the registry's history once a second (worker 0 writes them in one go)
for _ in $(seq 1 30); do
  one=$(get /api/devices/att-1)
  echo "$one" | grep -q '"history":\[{' && break
  sleep 0.1
done
echo "$one" | grep -q '"attestation_key":"registered"' || fail "device: $one"
echo "$one" | grep -q '"history":\[{"verdict":"accepted"' || fail "history: $one"
[ "$(code -H "Authorization: Bearer $TOKEN" $URL/api/devices/nobody)" = 404 ] || fail "unknown device"
[ "$(code -H "Authorization: Bearer $TOKEN" "$URL/api/devices?limit=9999")" = 400 ] || fail "limit"
all=$(get "/api/devices?limit=500"; get /api/devices/att-1; get /api/verdicts; get /api/spool; get /api/refvals; cat $WORK/metrics.txt)
for secret in $PSK_A $PSK_B $PSK_C $IAK; do
  if echo "$all" | grep -qi "$secret"; then fail "a key appeared in the API"; fi
done
if echo "$all" | grep -qi '"psk\|"iak\|key_len\|psk_len'; then fail "a key's field appeared in the API"; fi
ok "/api/devices pages by id (8 devices, 3 per page), one device with its history, 404 and 400; no PSK or IAK anywhere"

# limits: methods, size, rate, slow clients
[ "$(code -X POST -H "Authorization: Bearer $TOKEN" $URL/api/devices)" = 405 ] || fail "POST"
big=$(head -c 20000 /dev/zero | tr '\0' 'a')
c=$(code -H "X-Big: $big" $URL/healthz)
[ "$c" = 431 ] || [ "$c" = 413 ] || [ "$c" = 400 ] || fail "an oversized header got $c"
# the rate is per source address: a burst from 127.0.0.2 leaves 127.0.0.1's allowance alone
# (one curl with 16 requests at a time, the per-address connection limit: 300 curl processes
# took over 3 s on a busy machine, under the rate they were meant to exceed; curl's exit status
# says nothing here, the codes do)
burst=$(for _ in $(seq 1 300); do printf -- '-o /dev/null http://127.0.0.1:%s/healthz ' $HTTP; done)
# shellcheck disable=SC2086
codes=$( (curl -s -Z --parallel-max 16 -w '%{http_code}\n' --interface 127.0.0.2 $burst 2>/dev/null \
  || true) | sort | uniq -c | tr -s ' \n' ' ')
echo "$codes" | grep -q ' 429' || fail "no 429 in a burst of 300 (100/s allowed): $codes"
[ "$(code $URL/healthz)" = 200 ] || fail "another address was limited by that burst"
sleep 1.2
# slow clients: connections that send half a request and stop
for i in $(seq 1 10); do
  exec {fd}<>/dev/tcp/127.0.0.1/$HTTP
  printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n' >&$fd
  SLOW+=($fd)
done
[ "$(code -H "Authorization: Bearer $TOKEN" $URL/metrics)" = 200 ] || fail "a request beside 10 slow clients"
for fd in "${SLOW[@]}"; do exec {fd}>&-; done
gateway_alive
ok "POST 405, an oversized header refused ($c), 429 beyond the rate per address (${codes% }), served beside slow clients"

# a new token on SIGHUP
openssl rand -hex 32 > $WORK/token
NEW=$(cat $WORK/token)
kill -HUP $GW_PID
for _ in $(seq 1 50); do [ "$(code -H "Authorization: Bearer $NEW" $URL/metrics)" = 200 ] && break; sleep 0.1; done
[ "$(code -H "Authorization: Bearer $NEW" $URL/metrics)" = 200 ] || fail "the new token after SIGHUP"
[ "$(code -H "Authorization: Bearer $TOKEN" $URL/metrics)" = 401 ] || fail "the old token still works"
ok "SIGHUP takes the new token; the old one gets 401"
stop_gateway
