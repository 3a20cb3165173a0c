#!/usr/bin/env python3
"""Writes test captures whose frames are longer than one mbuf (2,048 bytes).

DPDK's net_pcap chains such a frame over several mbufs. The frames are what a
jumbo-MTU mirror port (9,000-byte MTU) or a capture taken with GRO/TSO on
(IP datagrams of up to 65,535 bytes) delivers. Built with scapy, checksums
and all, so tshark and ndpiReader read them as real traffic:

  jumbo_9000.pcap  MTU 9000: an IPv4 HTTP exchange whose request carries the
                   Host header after 6 KB of cookie (so nDPI names the site
                   only when it sees the whole payload, not the first mbuf),
                   IPv6 UDP in both directions, and a 9 KB UDP datagram to a
                   closed port answered by an ICMP port unreachable that
                   quotes its IP and UDP headers.
  gro_65535.pcap   the largest datagrams: IPv4 TCP (total length 65,535),
                   IPv6 TCP and UDP (payload length 65,535, a 65,589-byte
                   frame) and a VLAN-tagged IPv4 UDP datagram.

usage: make_large_frames.py OUTDIR      (prints the files written)
Needs scapy (Debian: python3-scapy).
"""
import os
import sys

from scapy.all import Dot1Q, Ether, ICMP, IP, IPv6, Raw, TCP, UDP, wrpcap

# libpcap truncates records longer than the file's snapshot length, and
# scapy's default is 65,535: the 64 KiB frames need more.
SNAPLEN = 262144
T0 = 1_700_000_000.0


def eth(**kw):
    # Explicit addresses: scapy would otherwise try ARP-less resolution and warn.
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **kw)


class Capture:
    def __init__(self):
        self.packets = []

    def add(self, pkt):
        pkt.time = T0 + len(self.packets) * 0.001
        self.packets.append(pkt)


def tcp_exchange(cap, l3, a, b, sport, dport, c2s, s2c, l2=None):
    """A whole TCP connection: handshake, data segments each way, FIN both ways."""
    def frame(src, dst, sp, dp, **kw):
        hdr = l2() if l2 else Ether(src="02:00:00:00:00:01" if src == a else "02:00:00:00:00:02",
                                    dst="02:00:00:00:00:02" if src == a else "02:00:00:00:00:01")
        return hdr / l3(src=src, dst=dst) / TCP(sport=sp, dport=dp, **kw)

    seq_a, seq_b = 1000, 5000
    cap.add(frame(a, b, sport, dport, flags="S", seq=seq_a))
    cap.add(frame(b, a, dport, sport, flags="SA", seq=seq_b, ack=seq_a + 1))
    seq_a += 1
    seq_b += 1
    cap.add(frame(a, b, sport, dport, flags="A", seq=seq_a, ack=seq_b))
    for payload in c2s:
        cap.add(frame(a, b, sport, dport, flags="PA", seq=seq_a, ack=seq_b) / Raw(payload))
        seq_a += len(payload)
        cap.add(frame(b, a, dport, sport, flags="A", seq=seq_b, ack=seq_a))
    for payload in s2c:
        cap.add(frame(b, a, dport, sport, flags="PA", seq=seq_b, ack=seq_a) / Raw(payload))
        seq_b += len(payload)
        cap.add(frame(a, b, sport, dport, flags="A", seq=seq_a, ack=seq_b))
    cap.add(frame(a, b, sport, dport, flags="FA", seq=seq_a, ack=seq_b))
    cap.add(frame(b, a, dport, sport, flags="FA", seq=seq_b, ack=seq_a + 1))
    cap.add(frame(a, b, sport, dport, flags="A", seq=seq_a + 1, ack=seq_b + 1))


def fill(n, seed):
    return bytes((seed + i * 7) & 0xFF for i in range(n))


def jumbo_9000():
    cap = Capture()
    mtu = 9000
    # HTTP: request line, a 6 KB cookie, then Host (nDPI's HTTP dissector
    # names the site from Host; past the first 2 KiB only in a whole frame).
    request = (b"GET /browse HTTP/1.1\r\nCookie: session=" + b"x" * 6000 + b"\r\n"
               b"Host: www.netflix.com\r\nUser-Agent: millipede-test\r\nAccept: */*\r\n\r\n")
    assert 2048 < len(request) <= mtu - 40
    response_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 26880\r\n\r\n"
    body = response_head + fill(3 * (mtu - 40) - len(response_head), 3)
    s2c = [body[i:i + mtu - 40] for i in range(0, len(body), mtu - 40)]
    tcp_exchange(cap, IP, "10.1.0.1", "10.1.0.2", 40000, 80, [request], s2c)
    # IPv6 UDP, both directions, full 9,000-byte datagrams.
    for i in range(3):
        for src, dst, sp, dp in (("2001:db8::1", "2001:db8::2", 5000, 6000), ("2001:db8::2", "2001:db8::1", 6000, 5000)):
            cap.add(eth() / IPv6(src=src, dst=dst) / UDP(sport=sp, dport=dp) / Raw(fill(mtu - 48, i)))
    # A 9 KB datagram to a closed port, and the ICMP error that quotes it
    # (as Linux does: the start of the datagram, within 576 bytes).
    probe = IP(src="10.1.0.1", dst="10.1.0.3") / UDP(sport=41000, dport=33434) / Raw(fill(mtu - 28, 9))
    cap.add(eth() / probe)
    cap.add(eth() / IP(src="10.1.0.3", dst="10.1.0.1") / ICMP(type=3, code=3) / Raw(bytes(probe)[:548]))
    return cap


def gro_65535():
    cap = Capture()
    # IPv4: total length 65,535 = 20 + 20 + 65,495.
    tcp_exchange(cap, IP, "10.2.0.1", "10.2.0.2", 42000, 5001, [fill(65495, 1), fill(65495, 2)], [fill(65495, 3)])
    # IPv6: payload length 65,535 = 20 + 65,515 (a 65,589-byte frame).
    tcp_exchange(cap, IPv6, "2001:db8:2::1", "2001:db8:2::2", 42001, 5201, [fill(65515, 4)], [fill(65515, 5)])
    for i in range(2):
        cap.add(eth() / IPv6(src="2001:db8:2::1", dst="2001:db8:2::2") / UDP(sport=7000, dport=7001) /
                Raw(fill(65527, 6 + i)))
    cap.add(eth() / Dot1Q(vlan=42) / IP(src="10.2.0.5", dst="10.2.0.6") / UDP(sport=7002, dport=7003) /
            Raw(fill(65507, 8)))
    return cap


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, build in (("jumbo_9000.pcap", jumbo_9000), ("gro_65535.pcap", gro_65535)):
        path = os.path.join(out, name)
        wrpcap(path, build().packets, snaplen=SNAPLEN)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
