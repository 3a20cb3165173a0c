#!/usr/bin/env python3
"""Kernel TCP peers for the tunnel case of transport_test.py, run inside a
network namespace with `ip netns exec`.

  tunnel_peer.py echo PORT       echo server on 127.0.0.1:PORT: echoes every
                                 byte; on EOF shuts its write side (half-close)
  tunnel_peer.py client PORT SIZE SEED RATE
                                 connects to 127.0.0.1:PORT, sends SIZE bytes of
                                 a seeded random stream at RATE bytes/s, shuts
                                 its write side, reads the echo until EOF and
                                 prints one JSON line: bytes sent and received,
                                 whether they are equal and whether EOF came
                                 after the whole echo.
  tunnel_peer.py rtt PORT N      N round trips of one byte (a keystroke and its
                                 echo); prints JSON: the median and largest in ms
  tunnel_peer.py hold PORT       one byte there and back, prints "ready", then
                                 waits (60 s at most) for what happens to the
                                 connection; prints JSON: "reset", "eof" or "timeout"
  tunnel_peer.py send PORT SIZE SEED
                                 connects to 127.0.0.1:PORT (retrying for 60 s:
                                 the process accepts before its EAL starts), sends
                                 SIZE seeded random bytes, closes; prints the sha256
  tunnel_peer.py sink PORT       accepts ONE connection on 127.0.0.1:PORT, reads it
                                 to EOF; prints JSON: bytes and sha256
The connecting commands (client, rtt, hold, send) take PORT or HOST:PORT
(HOST an IPv4 address; 127.0.0.1 when not given).
Every wait is bounded (socket timeouts of 60 s)."""
import hashlib
import json
import random
import socket
import sys
import threading
import time


def echo(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    print("listening", flush=True)

    def serve(c):
        c.settimeout(120)
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)
            while c.recv(65536):
                pass
        except OSError:
            pass
        c.close()

    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def client(port, size, seed, rate):
    data = random.Random(seed).randbytes(size)
    s = socket.create_connection(port, timeout=60)
    got = bytearray()
    state = {"eof": False, "error": ""}

    def reader():
        try:
            while True:
                b = s.recv(1 << 20)
                if not b:
                    state["eof"] = True
                    break
                got.extend(b)
        except OSError as e:
            state["error"] = repr(e)

    t = threading.Thread(target=reader)
    t.start()
    t0 = time.time()
    sent = 0
    block = 32768
    try:
        while sent < size:
            n = s.send(data[sent:sent + block])
            sent += n
            ahead = sent / rate - (time.time() - t0)
            if ahead > 0:
                time.sleep(ahead)
        s.shutdown(socket.SHUT_WR)  # half-close: the echo must still come back
    except OSError as e:
        state["error"] = repr(e)
    t.join(120)
    s.close()
    print(json.dumps({"sent": sent, "got": len(got), "equal": bytes(got) == data, "eof": state["eof"],
                      "error": state["error"], "seconds": round(time.time() - t0, 2)}), flush=True)


def send(port, size, seed):
    data = random.Random(seed).randbytes(size)
    deadline = time.time() + 60
    while True:
        try:
            s = socket.create_connection(port, timeout=60)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    s.sendall(data)
    s.close()
    print(hashlib.sha256(data).hexdigest(), flush=True)


def rtt(port, n):
    s = socket.create_connection(port, timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for i in range(n):
        t = time.perf_counter()
        s.sendall(b"k")
        if s.recv(1) != b"k":
            break
        times.append((time.perf_counter() - t) * 1000)
    s.close()
    times.sort()
    print(json.dumps({"n": len(times), "median_ms": round(times[len(times) // 2], 3) if times else None,
                      "max_ms": round(times[-1], 3) if times else None}), flush=True)


def hold(port):
    s = socket.create_connection(port, timeout=60)
    s.sendall(b"k")
    if s.recv(1) != b"k":
        print(json.dumps({"result": "no echo"}), flush=True)
        return
    print("ready", flush=True)
    try:
        b = s.recv(1)
        result = "eof" if not b else "data"
    except ConnectionResetError:
        result = "reset"
    except socket.timeout:
        result = "timeout"
    print(json.dumps({"result": result}), flush=True)


def sink(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    print("listening", flush=True)
    srv.settimeout(120)
    c, _ = srv.accept()
    c.settimeout(60)
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    print(json.dumps({"bytes": n, "sha": h.hexdigest()}), flush=True)


if __name__ == "__main__":
    def where(arg):
        host, _, port = arg.rpartition(":")
        return (host or "127.0.0.1", int(port))

    if sys.argv[1] == "echo":
        echo(int(sys.argv[2]))
    elif sys.argv[1] == "send":
        send(where(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "rtt":
        rtt(where(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "hold":
        hold(where(sys.argv[2]))
    elif sys.argv[1] == "sink":
        sink(int(sys.argv[2]))
    else:
        client(where(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
