#!/usr/bin/python3
"""Attacks on a running dpdk-millipede rx, from the kernel side of a veth
(tests/transport runs this inside the sender's network namespace, on the
veth end the sender's af_packet port also uses). Needs Debian's python3-scapy.

usage:
  attack.py flood IFACE DST_MAC DST_IP DPORT COUNT SEED
      SYNs from random sources (half on DST_IP's /24, half anywhere), random
      ports and sequence numbers, never answered: a half-open flood. At least
      COUNT, and on until a line (or EOF) on stdin. Prints "sent N" every
      10000 and "done N SECONDS" at the end.
  attack.py forge IFACE DST_MAC DST_IP DPORT PCAP
      PCAP is a capture of IFACE from the transfer's start, stopped while the
      transfer is idle. For one established connection per attack it reads
      the receiver's RCV.NXT (its last acknowledgement) and SND.NXT, sends a
      forged RST and (on another connection) a forged SYN, 5 copies each,
      with the sequence number RCV.NXT + 1000 (inside the receiver's window,
      not RCV.NXT), and sniffs what the receiver sends on those connections.
      Prints one JSON object: per attack, what was sent and the segments the
      receiver sent on that connection within 0.5 s.

Frames are built once with scapy and then patched (addresses, ports,
sequence numbers; checksums updated as RFC 1624 says), because scapy takes
~300 us to build each frame and the flood must be fast enough to matter.
"""
import json
import random
import select
import socket
import struct
import sys
import threading
import time

from scapy.all import IP, TCP, AsyncSniffer, Ether, raw, rdpcap  # noqa: E402


def csum_update(csum, old, new):
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') over 16-bit words."""
    s = (~csum & 0xFFFF)
    for i in range(0, len(old), 2):
        o = (old[i] << 8) | old[i + 1]
        n = (new[i] << 8) | new[i + 1]
        s += (~o & 0xFFFF) + n
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def flood(iface, dst_mac, dst_ip, dport, count, seed):
    rng = random.Random(seed)
    tmpl = bytearray(raw(Ether(dst=dst_mac, src="02:00:00:00:00:01") /
                         IP(src="0.0.0.0", dst=dst_ip, ttl=64, id=0) /
                         TCP(sport=0, dport=dport, flags="S", seq=0, window=64240,
                             options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)),
                                      ("NOP", None), ("WScale", 7)])))
    ip_off, tcp_off = 14, 34
    ip_csum = struct.unpack_from("!H", tmpl, ip_off + 10)[0]
    tcp_csum = struct.unpack_from("!H", tmpl, tcp_off + 16)[0]
    subnet = socket.inet_aton(dst_ip)[:3]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    # What the template holds where each frame differs (src, and sport,
    # dport, seq): the incremental update needs the old words exactly.
    old_src, old_ports_seq = bytes(tmpl[ip_off + 12:ip_off + 16]), bytes(tmpl[tcp_off:tcp_off + 8])
    t0 = time.monotonic()
    i = 0
    while True:
        if i % 2:
            src = subnet + bytes([rng.randrange(3, 255)])
        else:
            src = struct.pack("!I", rng.randrange(0x01000000, 0xE0000000))
        ports_seq = struct.pack("!HHI", rng.randrange(1024, 65536), dport, rng.getrandbits(32))
        f = bytearray(tmpl)
        f[ip_off + 12:ip_off + 16] = src
        f[tcp_off:tcp_off + 8] = ports_seq
        struct.pack_into("!H", f, ip_off + 10, csum_update(ip_csum, old_src, src))
        struct.pack_into("!H", f, tcp_off + 16, csum_update(tcp_csum, old_src + old_ports_seq, src + ports_seq))
        while True:
            try:
                s.send(f)
                break
            except BlockingIOError:  # the veth's queue is full: try again
                pass
            except OSError as e:
                if e.errno != 105:  # ENOBUFS
                    raise
        if (i + 1) % 10000 == 0:
            print(f"sent {i + 1}", flush=True)
        # At least COUNT; then on until stdin says "stop" (or ends).
        if i + 1 >= count and (i + 1) % 1000 == 0 and select.select([sys.stdin], [], [], 0)[0]:
            break
        i += 1
    print(f"done {i + 1} {time.monotonic() - t0:.2f}", flush=True)


def later(a, b):
    """The later of two sequence numbers (RFC 9293 3.4 arithmetic); a may be None."""
    if a is None:
        return b
    return b if 0 < ((b - a) & 0xFFFFFFFF) < 0x80000000 else a


def connections(pcap, dst_ip, dport):
    """Per connection: the sender's address and port, the receiver's SND.NXT,
    its last acknowledgement (RCV.NXT on an idle connection) and the
    timestamps it sent, from the receiver's segments in the capture. (DPDK's
    af_packet port sends past the kernel's packet taps, qdisc bypass: a
    capture on the sender's veth end holds only what the receiver sent.)"""
    conns = {}
    for p in rdpcap(pcap):
        if IP not in p or TCP not in p or p[IP].src != dst_ip or p[TCP].sport != dport:
            continue
        ip, t = p[IP], p[TCP]
        plen = ip.len - ip.ihl * 4 - t.dataofs * 4
        flags = int(t.flags)
        c = conns.setdefault(t.dport, {"src": ip.dst, "sport": t.dport})
        # later(): a keep-alive probe's sequence number is one below SND.NXT
        c["rx_snd_nxt"] = later(c.get("rx_snd_nxt"), (t.seq + plen + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF)
        c["rcv_nxt"] = later(c.get("rcv_nxt"), t.ack)
        c["closed"] = c.get("closed", False) or bool(flags & 0x05)  # FIN or RST
        for name, val in t.options:
            if name == "Timestamp":
                c["ts"] = val  # (receiver's TSval, its echo of the sender's)
    return [c for c in conns.values() if not c["closed"]]


FORGED_PER_ATTACK = 5


def forge(iface, dst_mac, dst_ip, dport, pcap):
    conns = connections(pcap, dst_ip, dport)
    result = {"connections": len(conns), "forged_per_attack": FORGED_PER_ATTACK, "attacks": []}
    if len(conns) < 2:
        print(json.dumps(result))
        return
    seen = []  # what the receiver sends on every connection to it
    ready = threading.Event()
    sniffer = AsyncSniffer(iface=iface, filter=f"tcp and src host {dst_ip} and src port {dport}", store=False,
                           prn=lambda p: seen.append(p), started_callback=ready.set)
    sniffer.start()
    if not ready.wait(10):
        sys.exit("the sniffer did not start")
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    sent = []
    for c, kind in zip(conns[:2], ("RST", "SYN")):
        seq = (c["rcv_nxt"] + 1000) & 0xFFFFFFFF  # in the window, not RCV.NXT
        # The SYN carries a timestamp newer than the receiver's TS.Recent (PAWS
        # would drop it unseen otherwise); the RST none (RFC 7323 5.2).
        opts = [("Timestamp", ((c["ts"][1] + 1) & 0xFFFFFFFF, c["ts"][0]))] if kind == "SYN" and "ts" in c else []
        f = raw(Ether(dst=dst_mac) / IP(src=c["src"], dst=dst_ip) / TCP(
            sport=c["sport"], dport=dport, flags="R" if kind == "RST" else "S", seq=seq, window=1000, options=opts))
        at = time.time()
        # Several copies: a keep-alive exchange can put one ACK like a
        # challenge ACK on the wire, never this many within a moment.
        for _ in range(FORGED_PER_ATTACK):
            s.send(f)
        sent.append({"kind": kind, "sport": c["sport"], "seq": seq, "rcv_nxt": c["rcv_nxt"],
                     "rx_snd_nxt": c["rx_snd_nxt"], "at": at})

    def answers(a):
        """What the receiver sent on a's connection within 0.5 s of the forgery."""
        out = []
        for p in list(seen):
            t = p[TCP]
            if t.dport != a["sport"] or not a["at"] - 0.001 <= float(p.time) <= a["at"] + 0.5:
                continue
            out.append({"flags": str(t.flags), "seq": t.seq, "ack": t.ack,
                        "len": p[IP].len - p[IP].ihl * 4 - t.dataofs * 4})
        return out

    # Until every forgery has as many answers as copies sent, or 2 s.
    end = time.monotonic() + 2
    while time.monotonic() < end and not all(len(answers(a)) >= FORGED_PER_ATTACK for a in sent):
        time.sleep(0.01)
    sniffer.stop()
    for a in sent:
        a["answers"] = answers(a)
        result["attacks"].append(a)
    print(json.dumps(result))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "flood":
        flood(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
    elif cmd == "forge":
        forge(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit(f"unknown command {cmd}")
