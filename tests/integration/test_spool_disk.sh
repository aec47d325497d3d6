#!/usr/bin/env bash
# The spool on a full disk (docs/cloud.md, "A full disk"): on a 4 MiB tmpfs with the cloud down,
# acknowledgements stop once a commit fails (nothing unsaved is acknowledged); the state is
# logged once (and summarised, not repeated per retry); MQTT 5 devices get PUBACK 0x97; `psagw
# spool stats` says disk_full; the spool resumes by itself once space is freed, and every
# acknowledged message is in the file; SIGTERM on a full disk ends the daemon within 5 s.
# Needs a tmpfs mount (root); skipped (77) where that is not allowed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cloud_lib.sh"

DISK=$WORK/disk
mkdir -p "$DISK"
if ! mount -t tmpfs -o size=4m psagw-test-disk "$DISK" 2>/dev/null; then
  echo "skip: cannot mount a 4 MiB tmpfs here (needs root)"
  exit 77
fi
test_cleanup() { # lib.sh's cleanup calls it first
  if [ -n "$GW_PID" ]; then kill -KILL "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; GW_PID=; fi
  umount -l "$DISK" 2>/dev/null
}
SPOOL=$DISK/spool.db

make_certs
CLOUD_PORT=$(free_port) # no cloud listens: records stay in the spool
add_device s1 sensor $PSK_A --attestation off
add_device s2 sensor $PSK_B --attestation off
write_config 'max_publish_rate = 0;'
start_gateway_conf
depth() { "$PSAGW" spool stats --spool "$SPOOL" | sed -n 's/^depth: *\([0-9]*\).*/\1/p'; }
acked() { grep -c '^acked' "$1" || true; }

# leave about 700 KB free, then publish 20 KB messages (MQTT 3.1.1, QoS 1, one at a time)
dd if=/dev/zero of="$DISK/filler" bs=64k count=53 2>/dev/null || true
LOADGEN_PAD=20000 "$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_A s1 60 0 >"$WORK/a.acks" 2>"$WORK/a.err" &
pub_pid=$!
expect_log "event=spool_full state=disk_full" 20
sleep 1
n1=$(acked "$WORK/a.acks")
[ "$n1" -ge 5 ] && [ "$n1" -lt 60 ] || fail "acknowledged $n1 of 60 before the disk filled"
sleep 3
[ "$(acked "$WORK/a.acks")" -eq "$n1" ] || fail "acknowledged while the disk was full"
[ "$(grep -c 'event=spool_full state=disk_full' "$GW_LOG")" -eq 1 ] ||
  fail "the disk_full state was logged $(grep -c 'event=spool_full state=disk_full' "$GW_LOG") times in 4 s"
[ "$(grep -c "event=spool_error" "$GW_LOG")" -le 1 ] || { grep "event=spool_error" "$GW_LOG" | head -5; fail "spool_error logged per retry"; }
ok "disk full: $n1 acknowledged, then none; the state logged once"

# an MQTT 5 device hears it: PUBACK 0x97
out=$(mosquitto_pub -h 127.0.0.1 -p "$PSK_PORT" --psk "$PSK_B" --psk-identity s2 -i s2 -V mqttv5 -q 1 \
  -t sensors/s2/env -m reading 2>&1 || true)
echo "$out" | grep -qi 'quota exceeded' || fail "MQTT 5 publish on a full disk: '$out'"
ok "an MQTT 5 device gets PUBACK 0x97 (quota exceeded)"

"$PSAGW" spool stats --spool "$SPOOL" >"$WORK/stats.txt"
grep -q '^state: *disk_full' "$WORK/stats.txt" || fail "spool stats: $(cat "$WORK/stats.txt")"
ok "psagw spool stats says disk_full"

# space comes back: the spool resumes by itself and the publisher finishes
rm -f "$DISK/filler"
expect_log "event=spool_full state=resumed" 10
wait $pub_pid || fail "publisher did not finish after space came back: $(tail -3 "$WORK/a.err")"
[ "$(acked "$WORK/a.acks")" -eq 60 ] || fail "$(acked "$WORK/a.acks") of 60 acknowledged in the end"
[ "$(depth)" -ge 60 ] || fail "spool depth $(depth), acknowledged 60"
ok "space freed: resumed without a restart; all 60 acknowledged and in the spool"

# full again, then SIGTERM: the daemon ends within 5 s and keeps everything acknowledged
free_kb=$(df -k --output=avail "$DISK" | tail -1)
dd if=/dev/zero of="$DISK/filler" bs=1k count=$((free_kb > 300 ? free_kb - 300 : 0)) 2>/dev/null || true
# (more than the whole 4 MiB disk: the spool may hand WAL space back after df looked, and
# 40 messages once fitted in what that freed)
LOADGEN_PAD=20000 "$LOADGEN" seqpub 127.0.0.1 "$PSK_PORT" $PSK_A s1 400 0 >"$WORK/b.acks" 2>"$WORK/b.err" &
pub2=$!
# (up to 30 s: a loaded machine running the sanitizer builds writes slowly)
for _ in $(seq 1 300); do
  [ "$(grep -c 'event=spool_full state=disk_full' "$GW_LOG")" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c 'event=spool_full state=disk_full' "$GW_LOG")" -ge 2 ] || fail "the disk did not fill again"
n2=$(acked "$WORK/b.acks")
t0=$(date +%s%N)
kill -TERM "$GW_PID"
rc=0
wait "$GW_PID" || rc=$?
t1=$(date +%s%N)
GW_PID=
ms=$(( (t1 - t0) / 1000000 ))
[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM on a full disk"
[ "$ms" -le 5000 ] || fail "SIGTERM took $ms ms on a full disk"
kill "$pub2" 2>/dev/null || true
rm -f "$DISK/filler"
[ "$(depth)" -ge $((60 + n2)) ] || fail "spool depth $(depth) after the stop, acknowledged $((60 + n2))"
ok "SIGTERM on a full disk: stopped in $ms ms; all $((60 + n2)) acknowledged messages in the spool"
