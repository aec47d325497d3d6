# lib.sh: helpers shared by the benchmark scripts (run.sh, cloud.sh, soak.sh).
# server CPU time so far of a process, in units of 1/TICK s: the run time of its threads in
# nanoseconds (/proc/PID/task/*/schedstat), as microseconds; where the kernel has no
# schedstat, utime + stime in clock ticks (10 ms steps: too coarse for a few thousand connects)
if [ -r /proc/self/schedstat ]; then
  TICK=1000000
  cpu_ticks() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END{printf "%d\n", s / 1000}'; }
else
  TICK=$(getconf CLK_TCK)
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
fi
# a loopback TCP port free right now
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# waits (up to 10 s) until something accepts on 127.0.0.1:PORT
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
# bench_registry PSAGW DB N PSK PSK_FILE: a registry DB with N sensors bench00000.. under PSK (also
# written to PSK_FILE, for mosquitto's psk_file) and one IAK for all of them, in $IAK; the CLI sets
# it on the first and SQLite copies it to the rest, which is quicker than N CLI runs
bench_registry() {
  local psagw=$1 db=$2 n=$3 psk=$4 file=$5 i
  for i in $(seq 0 $((n - 1))); do printf 'bench%05d:%s\n' "$i" "$psk"; done > "$file"
  "$psagw" device import "$file" --role sensor --registry "$db" >/dev/null
  IAK=$(printf '5a%.0s' $(seq 32))
  "$psagw" device set-iak bench00000 --iak "$IAK" --registry "$db" >/dev/null
  sqlite3 "$db" "UPDATE devices SET iak = (SELECT iak FROM devices WHERE id = 'bench00000'),
    instance_id = (SELECT instance_id FROM devices WHERE id = 'bench00000')"
}
# Where the processes run (taskset CPU lists): SERVER_CPUS for the servers under test (psagw,
# mosquitto, the floor), HELPER_CPUS for the load generator and the helpers (cloud broker, its
# counter). By default, on a machine with 4 or more CPUs, the servers get the first half and the
# helpers the rest, so that the figures are the servers' own and not how they share cores with
# the load (issue 16's last targets: docs/performance.md, session 10); with fewer CPUs, or
# SERVER_CPUS= (empty), nothing is pinned. Use as "${ON_SERVER[@]}" CMD, "${ON_HELPER[@]}" CMD.
pin_setup() {
  local n
  n=$(nproc)
  if [ -z "${SERVER_CPUS+set}" ] && [ -z "${HELPER_CPUS+set}" ] && [ "$n" -ge 4 ]; then
    SERVER_CPUS="0-$((n / 2 - 1))"
    HELPER_CPUS="$((n / 2))-$((n - 1))"
  fi
  ON_SERVER=()
  ON_HELPER=()
  if [ -n "${SERVER_CPUS:-}${HELPER_CPUS:-}" ]; then
    command -v taskset >/dev/null || { echo "SERVER_CPUS/HELPER_CPUS need taskset (util-linux)" >&2; exit 1; }
    [ -n "${SERVER_CPUS:-}" ] && ON_SERVER=(taskset -c "$SERVER_CPUS")
    [ -n "${HELPER_CPUS:-}" ] && ON_HELPER=(taskset -c "$HELPER_CPUS")
    CPU_NOTE="servers on CPUs ${SERVER_CPUS:-any}, load generator and helpers on CPUs ${HELPER_CPUS:-any}"
  else
    CPU_NOTE="$n CPUs shared by the servers, the load generator and the helpers"
  fi
}
pin_setup
