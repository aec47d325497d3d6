# lib.sh: helpers shared by the benchmark scripts (run.sh, cloud.sh, soak.sh).
TICK=$(getconf CLK_TCK)
# server CPU time so far (utime + stime, in clock ticks) of a process
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# a loopback TCP port free right now
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# waits (up to 10 s) until something accepts on 127.0.0.1:PORT
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
