#!/usr/bin/python3
"""A stand-in for systemd's notification socket: binds a datagram socket (a path, or an
abstract name when it starts with '@') and appends every message to OUT, one line per message
("t=SECONDS MSG", its lines joined by '|'). For tests/integration/test_systemd.sh."""
import socket
import sys
import time

name, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + name[1:] if name.startswith("@") else name)
t0 = time.monotonic()
with open(out, "a", buffering=1) as f:
    f.write("listening\n")
    while True:
        msg = s.recv(4096).decode(errors="replace")
        f.write("t=%.3f %s\n" % (time.monotonic() - t0, msg.replace("\n", "|")))
