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
