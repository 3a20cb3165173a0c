#!/usr/bin/env python3
"""Writes a capture of many concurrent UDP flows for tools/bench/tap.sh (FLOWS=N).

Each flow is one 60-byte request and one reply (IPv4, UDP, 18 bytes of
payload), all requests first, then all replies, so a looped replay
(net_pcap infinite_rx=1) keeps N flows open at once: per-flow state then
lives in memory, not in cache, as on a busy mirror port. Deterministic
(flow i: 10.x.y.z, x.y.z = i, port 1024 + i % 60000, to 172.16.0.1:4000).

usage: many_flows_pcap.py OUT.pcap FLOWS
"""
import struct
import sys


def checksum(header):
    s = sum(struct.unpack("!10H", header))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst))
    ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    return eth + bytes(ip) + udp


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    out, flows = sys.argv[1], int(sys.argv[2])
    server = bytes([172, 16, 0, 1])
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # pcap, microseconds, Ethernet
        t = 0
        for direction in (0, 1):
            for i in range(flows):
                client = bytes([10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])
                sport = 1024 + i % 60000
                payload = struct.pack("!I", i) + b"millipede-bench"[: 14]
                pkt = frame(client, server, sport, 4000, payload) if direction == 0 else \
                    frame(server, client, 4000, sport, payload)
                f.write(struct.pack("<IIII", 1_700_000_000 + t // 1_000_000, t % 1_000_000, len(pkt), len(pkt)))
                f.write(pkt)
                t += 10
    return 0


if __name__ == "__main__":
    sys.exit(main())
