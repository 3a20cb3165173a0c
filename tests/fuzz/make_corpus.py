#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer targets: tests/fuzz/corpus/<target>/.

    python3 tests/fuzz/make_corpus.py            # rewrite every corpus
    python3 tests/fuzz/make_corpus.py --check    # exit 1 if a committed file differs

Each seed is a small, well-formed input of the kind the target parses (plus a
few near misses and the reproducers of bugs the fuzzers found), so that a
short run starts past the first length and magic checks instead of spending
its seconds discovering them. Everything is built here from the formats'
definitions (RFC 826, 791, 792, 793, 8200; docs/wire.md); nothing is
downloaded. The output is deterministic: re-running changes no file.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

OUR_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
OUR_IP = bytes([10, 0, 0, 1])
PEER_IP = bytes([10, 0, 0, 2])


# ------------------------------------------------------------ checksums --
def inet_sum(data):
    """RFC 1071 checksum of data (the value to store)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def crc32c(data):
    """CRC32C (Castagnoli), reflected, init/xorout all ones."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def crc64_xz(data):
    """CRC-64/XZ: ECMA-182 polynomial, reflected, init/xorout all ones."""
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xC96C5795D7870F42 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFFFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
assert crc64_xz(b"123456789") == 0x995DC9BBDF1939FA


# ------------------------------------------------------------- packets --
def eth(payload, ethertype, vlans=(), dst=OUR_MAC, src=PEER_MAC, pad=True):
    hdr = dst + src
    for tpid, tci in vlans:
        hdr += struct.pack("!HH", tpid, tci)
    frame = hdr + struct.pack("!H", ethertype) + payload
    if pad and len(frame) < 60:
        frame += bytes(60 - len(frame))
    return frame


def ipv4(proto, payload, src=PEER_IP, dst=OUR_IP, options=b"", frag=0, ident=1, ttl=64, good_checksum=True):
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), ident, frag, ttl, proto, 0, src, dst)
    hdr += options
    if good_checksum:
        hdr = hdr[:10] + struct.pack("!H", inet_sum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(next_header, payload, src=b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02",
         dst=b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"):
    return struct.pack("!IHBB", 0x60000000, len(payload), next_header, 64) + src + dst + payload


def tcp(sport, dport, seq, ack, flags, payload=b"", options=b"", window=65535):
    off = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, window, 0, 0) + options + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_echo(ident, seq, data, typ=8, code=0):
    msg = struct.pack("!BBHHH", typ, code, 0, ident, seq) + data
    return msg[:2] + struct.pack("!H", inet_sum(msg)) + msg[4:]


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + spa + tha + tpa


VLAN = [(0x8100, 100)]
QINQ = [(0x88A8, 10), (0x8100, 20)]
MSS = b"\x02\x04\x05\xb4"
SACK_OK = b"\x04\x02"
WSCALE = b"\x01\x03\x03\x07"
TS = b"\x01\x01\x08\x0a" + struct.pack("!II", 1000, 0)
TCP_SYN, TCP_ACK, TCP_PSH, TCP_FIN, TCP_RST = 0x02, 0x10, 0x08, 0x01, 0x04


def net_parse():
    p = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    yield "ipv4_tcp_syn", eth(ipv4(6, tcp(40000, 80, 1, 0, TCP_SYN, options=MSS + SACK_OK + TS + WSCALE)), 0x0800)
    yield "ipv4_tcp_data", eth(ipv4(6, tcp(40000, 80, 2, 5, TCP_ACK | TCP_PSH, p)), 0x0800)
    yield "ipv4_udp_dns", eth(ipv4(17, udp(5353, 53, b"\x12\x34\x01\x00\x00\x01" + bytes(6))), 0x0800)
    yield "ipv4_icmp", eth(ipv4(1, icmp_echo(7, 1, b"ping")), 0x0800)
    yield "ipv4_options", eth(ipv4(17, udp(1, 2, b"x"), options=b"\x94\x04\x00\x00"), 0x0800)
    yield "ipv4_first_fragment", eth(ipv4(17, udp(1, 2, bytes(32)), frag=0x2000), 0x0800)
    yield "ipv4_later_fragment", eth(ipv4(17, bytes(16), frag=0x0004), 0x0800)
    yield "ipv4_sctp", eth(ipv4(132, struct.pack("!HHII", 5000, 5001, 0, 0)), 0x0800)
    yield "vlan_ipv4_tcp", eth(ipv4(6, tcp(1, 2, 3, 4, TCP_ACK)), 0x0800, VLAN)
    yield "qinq_ipv4_udp", eth(ipv4(17, udp(1, 2, b"q")), 0x0800, QINQ)
    yield "ipv6_tcp", eth(ipv6(6, tcp(40000, 443, 1, 0, TCP_SYN, options=MSS)), 0x86DD)
    yield "ipv6_udp", eth(ipv6(17, udp(1, 2, b"six")), 0x86DD)
    hop_by_hop = struct.pack("!BB", 17, 0) + bytes(6)
    yield "ipv6_hop_by_hop_udp", eth(ipv6(0, hop_by_hop + udp(1, 2, b"h")), 0x86DD)
    frag6 = struct.pack("!BBHI", 6, 0, 1, 99)  # first fragment, more follow
    yield "ipv6_fragment_tcp", eth(ipv6(44, frag6 + tcp(1, 2, 3, 4, TCP_ACK)), 0x86DD)
    yield "ipv6_icmpv6", eth(ipv6(58, b"\x80\x00\x00\x00\x00\x01\x00\x01"), 0x86DD)
    # A Neighbour Solicitation (RFC 4861 4.3) with its source link-layer option.
    yield "ipv6_nd_solicitation", eth(ipv6(58, b"\x87\0\0\0" + bytes(4) + b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"
                                           + b"\x01\x01" + PEER_MAC), 0x86DD)
    yield "arp_not_ip", eth(arp(1, PEER_MAC, PEER_IP, bytes(6), OUR_IP), 0x0806)


def arp_seeds():
    yield "request", eth(arp(1, PEER_MAC, PEER_IP, bytes(6), OUR_IP), 0x0806, dst=b"\xff" * 6)
    yield "reply", eth(arp(2, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP), 0x0806)
    yield "gratuitous", eth(arp(1, PEER_MAC, PEER_IP, bytes(6), PEER_IP), 0x0806, dst=b"\xff" * 6)
    yield "probe", eth(arp(1, PEER_MAC, bytes(4), bytes(6), OUR_IP), 0x0806, dst=b"\xff" * 6)
    yield "request_unpadded", eth(arp(1, PEER_MAC, PEER_IP, bytes(6), OUR_IP), 0x0806, pad=False)
    yield "vlan_request", eth(arp(1, PEER_MAC, PEER_IP, bytes(6), OUR_IP), 0x0806, VLAN, dst=b"\xff" * 6)
    yield "qinq_request", eth(arp(1, PEER_MAC, PEER_IP, bytes(6), OUR_IP), 0x0806, QINQ, dst=b"\xff" * 6)
    yield "bad_opcode", eth(arp(3, PEER_MAC, PEER_IP, bytes(6), OUR_IP), 0x0806)
    yield "multicast_sender", eth(arp(1, b"\x01\x00\x5e\x00\x00\x01", PEER_IP, bytes(6), OUR_IP), 0x0806)


def icmp_echo_seeds():
    # Byte 0 is the harness's control byte: 0 = checksums as given (the seeds
    # carry correct ones), 3 = the harness rewrites both before the call.
    def seed(frame, ctl=0):
        return bytes([ctl]) + frame
    yield "ping_56", seed(eth(ipv4(1, icmp_echo(0x1234, 1, bytes(range(56)))), 0x0800))
    yield "ping_empty", seed(eth(ipv4(1, icmp_echo(1, 2, b"")), 0x0800))
    yield "ping_odd_length", seed(eth(ipv4(1, icmp_echo(1, 3, b"abc")), 0x0800))
    # Reproducer of the all-zero echo whose reply had checksum 0x0000.
    yield "ping_all_zero", seed(eth(ipv4(1, icmp_echo(0, 0, b"")), 0x0800))
    yield "ping_vlan", seed(eth(ipv4(1, icmp_echo(9, 9, b"tagged")), 0x0800, VLAN))
    yield "ping_qinq", seed(eth(ipv4(1, icmp_echo(9, 10, b"double")), 0x0800, QINQ))
    yield "ping_ip_options", seed(eth(ipv4(1, icmp_echo(5, 5, b"rr"), options=b"\x07\x07\x04" + bytes(5)), 0x0800))
    yield "ping_1472", seed(eth(ipv4(1, icmp_echo(2, 2, bytes(1472))), 0x0800))
    yield "ping_fixed_by_harness", seed(eth(ipv4(1, icmp_echo(3, 3, b"x"), good_checksum=False), 0x0800), 3)
    yield "echo_reply_not_request", seed(eth(ipv4(1, icmp_echo(1, 1, b"", typ=0)), 0x0800))
    yield "ping_not_for_us", seed(eth(ipv4(1, icmp_echo(1, 1, b""), dst=PEER_IP), 0x0800))
    yield "ping_fragment", seed(eth(ipv4(1, icmp_echo(1, 1, bytes(16)), frag=0x2000), 0x0800))


OUR_IP6 = b"\xfd" + bytes(14) + b"\x01"   # fd00::1, what ipv6_nd_fuzz answers for
PEER_IP6 = b"\xfd" + bytes(14) + b"\x02"  # fd00::2


def icmp6(src, dst, msg, hop_limit=255):
    """IPv6 + ICMPv6 with the RFC 4443 2.3 checksum (pseudo-header, RFC 8200 8.1)."""
    pseudo = src + dst + struct.pack("!IxxxB", len(msg), 58)
    msg = msg[:2] + b"\0\0" + msg[4:]
    msg = msg[:2] + struct.pack("!H", inet_sum(pseudo + msg)) + msg[4:]
    return struct.pack("!IHBB", 0x60000000, len(msg), 58, hop_limit) + src + dst + msg


def ipv6_nd_seeds():
    # Byte 0 is the harness's control byte: 0 = as given (the seeds carry
    # correct checksums and hop limits), 1 = the harness rewrites the ICMPv6
    # checksum, 2 = it sets the hop limit to 255.
    def seed(frame, ctl=0):
        return bytes([ctl]) + frame
    group = b"\xff\x02" + bytes(9) + b"\x01\xff" + OUR_IP6[13:]
    group_mac = b"\x33\x33" + group[12:]
    sllao = b"\x01\x01" + PEER_MAC
    ns = b"\x87\0\0\0" + bytes(4) + OUR_IP6
    yield "ns", seed(eth(icmp6(PEER_IP6, group, ns + sllao), 0x86DD, dst=group_mac))
    yield "ns_unicast_no_option", seed(eth(icmp6(PEER_IP6, OUR_IP6, ns), 0x86DD))
    yield "ns_dad", seed(eth(icmp6(bytes(16), group, ns), 0x86DD, dst=group_mac))
    yield "ns_nonce_option", seed(eth(icmp6(PEER_IP6, group, ns + sllao + b"\x0e\x01" + bytes(6)), 0x86DD,
                                      dst=group_mac))
    na = b"\x88\0\0\0\x60\0\0\0" + PEER_IP6 + b"\x02\x01" + PEER_MAC
    yield "na_solicited", seed(eth(icmp6(PEER_IP6, OUR_IP6, na), 0x86DD))
    yield "ns_hop_limit_64", seed(eth(icmp6(PEER_IP6, group, ns + sllao, hop_limit=64), 0x86DD, dst=group_mac))
    yield "ns_fixed_by_harness", seed(eth(icmp6(PEER_IP6, group, ns + sllao)[:-1] + b"\xff", 0x86DD,
                                          dst=group_mac), 3)
    # Reproducer: a solicitation from a multicast source was taken, and the
    # advertisement answering it (S set, to that group) was invalid.
    yield "ns_multicast_source", seed(eth(icmp6(b"\xff\x02" + bytes(13) + b"\x01", group, ns + sllao), 0x86DD,
                                          dst=group_mac))
    echo = struct.pack("!BBHHH", 128, 0, 0, 0x1234, 1) + bytes(range(56))
    yield "echo", seed(eth(icmp6(PEER_IP6, OUR_IP6, echo, hop_limit=64), 0x86DD))
    yield "echo_empty", seed(eth(icmp6(PEER_IP6, OUR_IP6, echo[:8], hop_limit=64), 0x86DD))
    yield "echo_not_for_us", seed(eth(icmp6(PEER_IP6, PEER_IP6, echo, hop_limit=64), 0x86DD))


def addr_parse_seeds():
    for name, text in [
        ("ipv4", "10.0.0.1"), ("ipv4_max", "255.255.255.255"), ("mac_colons", "02:00:00:ab:CD:ef"),
        ("mac_dashes", "02-00-00-00-00-09"), ("ip_option", "0=10.0.0.1/24"), ("ip_option_32", "3=192.168.7.9/32"),
        ("ip_option_31", "1=10.0.0.0/31"), ("ip_option_port_max", "1023=172.16.0.1/12"),
        ("ip_option_network", "0=10.0.0.0/24"), ("neigh", "10.0.0.2=02:00:00:00:00:02"),
        ("neigh_multicast", "10.0.0.2=01:00:5e:00:00:01"), ("leading_zero", "0=010.0.0.1/24"),
        ("ip_option_ipv6", "0=fd00::1/64"), ("ip_option_ipv6_link_local", "0=fe80::1/64"),
        ("ip_option_ipv6_128", "2=2001:db8::5/128"),
        # Reproducer: inet_pton stops at a NUL, so "fd00::1\0junk" read as fd00::1.
        ("ipv6_nul", "0=fd00::1\0junk/64"),
        # Reproducer: a newline in the value split the one-line error in two.
        ("newline", "\n"),
    ]:
        yield name, text.encode()


def transport_options_seeds():
    def words(*w):
        return b"\0".join(x.encode() for x in w)
    ip = ["--ip", "0=10.0.0.1/24"]
    yield "tx", words("tx", "10.0.0.2", "8834", *ip)
    yield "rx", words("rx", "8834", *ip)
    yield "tx_two_dests", words("tx", "10.0.0.2", "8834", "tx", "10.0.1.2", "8834", "threads", "8", *ip,
                                "--ip", "1=10.0.1.1/24")
    yield "tx_words", words("tx", "10.0.0.2", "8834", "checksum", "chaos", "5", "verbose", "2", "checkphrase",
                            "abcd", "prbs", "7", "leglimit", "100", *ip)
    yield "tx_options", words("tx", "10.0.0.2", "8834", *ip, "--neigh", "10.0.0.2=02:00:00:00:00:02", "--compat",
                              "viamillipede", "--size", "64M", "--chunk", "256K", "--progress",
                              "--connect-timeout", "2.5", "--stall-timeout", "10", "--mtu", "9000", "--no-offload")
    yield "rx_options", words("rx", "8834", *ip, "--wait", "30", "--no-progress", "--drop-rx", "0.5", "--drop-tx",
                              "1.25", "--drop-seed", "42")
    yield "tx_ipv6", words("tx", "fd00::2", "8834", "--ip", "0=fd00::1/64")
    yield "rx_mixed_families", words("rx", "8834", "--ip", "0=fd00::1/64", *ip)
    yield "help", words("rx", "--help")
    yield "tx_and_rx", words("tx", "10.0.0.2", "8834", "rx", "8834", *ip)
    yield "rx_sender_word", words("rx", "8834", "threads", "2", *ip)
    yield "tunnel_terminate", words("rx", "8834", "tx", "10.0.0.2", "8834", "terminate", "2222", *ip)
    yield "tunnel_initiate", words("tx", "10.0.0.2", "8834", "rx", "8834", "initiate", "localhost", "22", *ip)
    yield "unknown_word", words("rx", "8834", "--frobnicate", *ip)
    # Reproducer: timeouts under 1 us became 0, which means "no limit".
    yield "timeouts_under_1us", words("rx", "8834", *ip, "--stall-timeout", "1e-7", "--connect-timeout",
                                      "0.0000000001", "--wait", "1e-12")


def tcp_segment_seeds():
    # Byte 0: bit 0 SACK, bit 1 timestamps. Then [length, 2 bytes][segment]...
    # A source port with the top bits set makes the harness aim the segment's
    # seq (0x80) and ack (0x40) at the live connection.
    def stream(opts, *segments):
        out = bytes([opts])
        for s in segments:
            out += struct.pack("!H", len(s)) + s
        return out
    aim = 0xC000
    data = tcp(aim, 80, 0, 0, TCP_ACK | TCP_PSH, b"hello, world")
    yield "data", stream(0, data)
    yield "data_fin", stream(0, data, tcp(aim, 80, 12, 0, TCP_ACK | TCP_FIN))
    yield "sack_blocks", stream(1, tcp(aim, 80, 100, 0, TCP_ACK, b"out of order"),
                                tcp(aim, 80, 0, 0, TCP_ACK, options=b"\x01\x01\x05\x0a" + struct.pack("!II", 1, 2)))
    yield "timestamps", stream(2, tcp(aim, 80, 0, 0, TCP_ACK, b"ts", options=b"\x01\x01\x08\x0a" +
                                      struct.pack("!II", 5, 1)))
    yield "rst_in_window", stream(3, tcp(aim, 80, 10, 0, TCP_RST))
    yield "syn_in_window", stream(3, tcp(aim, 80, 10, 0, TCP_SYN, options=MSS + SACK_OK + WSCALE))
    yield "new_syn_to_listener", stream(0, tcp(0x1234, 80, 77, 0, TCP_SYN, options=MSS + SACK_OK + TS + WSCALE))


def stripe_native_seeds():
    # Byte 0 is the harness's fragment size (0: one byte at a time).
    def prefix(typ, b5=0, b6=0, b7=0):
        return struct.pack("<I", 0x44504C4D) + bytes([typ, b5, b6, b7])
    def chunk(seq, offset, payload, flags=0, crc=None):
        c = crc32c(payload) if crc is None else crc
        return prefix(ord("C"), flags) + struct.pack("<QQII", seq, offset, len(payload), c) + payload
    def end(stream_bytes, chunks):
        return prefix(ord("E")) + struct.pack("<QQQ", chunks, len(stream_bytes), crc64_xz(stream_bytes))
    a, b = b"first chunk of the stream", b"second one"
    # To the receiver (after the harness's own hello): chunks, then the end.
    yield "rx_two_chunks_end", bytes([64]) + chunk(0, 0, a) + chunk(1, len(a), b) + end(a + b, 2)
    yield "rx_out_of_order", bytes([7]) + chunk(1, len(a), b) + chunk(0, 0, a, flags=1) + end(a + b, 2)
    yield "rx_bad_crc", bytes([0]) + chunk(0, 0, a, crc=0x12345678)
    yield "rx_empty_end", bytes([32]) + end(b"", 0)
    hello = prefix(ord("H"), 1) + struct.pack("<QII", 0x1122334455667788, 0, 3) + b"yoes" + struct.pack("<I", 4096)
    yield "hello", bytes([32]) + hello
    # To the sender: what a receiver answers.
    reply = prefix(ord("h"), 1, 0, 1) + struct.pack("<II", 3, 8)
    ack = prefix(ord("A")) + struct.pack("<QQ", 2, 0b101)
    resend = prefix(ord("R"), 1) + struct.pack("<QII", 1, 5, 6)
    end_ack = prefix(ord("e"), 0) + struct.pack("<QQQ", 4, 200, 0)
    yield "tx_reply_ack_resend_endack", bytes([24]) + reply + ack + resend + end_ack
    # key FILE (docs/wire.md 2.22): a hello with features bit 4, its 'K'
    # proof, an encrypted chunk (flags bit 3, ciphertext || 16-byte tag);
    # and the receiver's accepting reply followed by its 'k' proof.
    proof = struct.pack("<Q", 1) + bytes(range(16))
    keyed_hello = prefix(ord("H"), 1) + struct.pack("<QII", 0x1122334455667788, 0, 0x13) + b"yoes" + \
        struct.pack("<I", 4096)
    yield "key_hello_proof_chunk", bytes([16]) + keyed_hello + prefix(ord("K")) + proof + \
        chunk(0, 0, a + bytes(16), flags=8)
    yield "tx_key_reply_proof", bytes([8]) + prefix(ord("h"), 1, 0, 1) + struct.pack("<II", 0x13, 8) + \
        prefix(ord("k")) + proof


def codec_inflate_seeds():
    # A compressed chunk payload (docs/wire.md 2.20): original length, CRC32C
    # of the original bytes, raw deflate. Stored and fixed-Huffman blocks
    # are built by hand (RFC 1951 3.2.4, 3.2.6), so no zlib version changes
    # the seeds.
    def stored(data, final=True):
        return bytes([1 if final else 0]) + struct.pack("<HH", len(data), len(data) ^ 0xFFFF) + data
    def payload(data, stream, length=None, crc=None):
        return struct.pack("<II", len(data) if length is None else length,
                           crc32c(data) if crc is None else crc) + stream
    text = b"stripe leg chunk window ack " * 8
    yield "stored", payload(text, stored(text))
    yield "two_stored_blocks", payload(text, stored(text[:50], False) + stored(text[50:]))
    yield "bad_crc", payload(text, stored(text), crc=0x12345678)
    yield "longer_than_said", payload(text, stored(text), length=len(text) - 1)
    yield "shorter_than_said", payload(text, stored(text), length=len(text) + 1)
    yield "empty_fixed_block", payload(b"x", bytes([0x03, 0x00]))  # BFINAL, fixed Huffman, end of block
    yield "length_bomb", payload(text, stored(text), length=0xFFFFFFFF)
    yield "trailing_bytes", payload(text, stored(text) + b"\0")


def stripe_compat_seeds():
    # viamillipede's 40-byte header: preamble, leg_id (our chunk seq), size,
    # checksum (0: off), opcode 0xcafe (more) / 0xdead (end).
    def header(seq, size, op=0xCAFE, checksum=0):
        return struct.pack("<QQQQQ", 0xA5A5A5A55A5A5A5A, seq, size, checksum, op)
    a, b = b"viamillipede leg zero", b"leg one"
    yield "two_chunks_end", bytes([64]) + header(0, len(a)) + a + header(1, len(b)) + b + header(2, 0, 0xDEAD)
    yield "out_of_order", bytes([5]) + header(1, len(b)) + b + header(0, len(a)) + a + header(2, 0, 0xDEAD)
    yield "end_only", bytes([40]) + header(0, 0, 0xDEAD)
    yield "bad_preamble", bytes([0]) + b"\x5a" * 40


def tunnel_mux_seeds():
    # lib/tunnel mux.h: first byte = fragment size; records of an 8-byte
    # header (type, 0, length u16 LE, stream u32 LE) and the payload.
    def rec(t, stream, payload=b""):
        return struct.pack("<BBHI", ord(t), 0, len(payload), stream) + payload
    hello = rec("H", 0, b"MPTN\x01\x01")
    yield "session", bytes([7]) + hello + rec("O", 1) + rec("D", 1, b"ssh-2.0") + rec("O", 2) + \
        rec("D", 2, b"x" * 3000) + rec("F", 1) + rec("R", 2) + rec("B", 0)
    yield "big_data", bytes([255]) + hello + rec("O", 9) + rec("D", 9, bytes(range(256)) * 64)
    yield "no_hello", bytes([1]) + rec("D", 1, b"abc")
    yield "bad_length", bytes([3]) + hello + struct.pack("<BBHI", ord("D"), 0, 0xFFFF, 1)


TARGETS = {
    "net_parse": net_parse,
    "arp": arp_seeds,
    "icmp_echo": icmp_echo_seeds,
    "ipv6_nd": ipv6_nd_seeds,
    "addr_parse": addr_parse_seeds,
    "transport_options": transport_options_seeds,
    "tcp_segment": tcp_segment_seeds,
    "stripe_native": stripe_native_seeds,
    "stripe_compat": stripe_compat_seeds,
    "codec_inflate": codec_inflate_seeds,
    "tunnel_mux": tunnel_mux_seeds,
}


def main():
    check = "--check" in sys.argv[1:]
    differ = []
    for target, make in TARGETS.items():
        d = os.path.join(CORPUS, target)
        seeds = dict(make())
        if check:
            have = set(os.listdir(d)) if os.path.isdir(d) else set()
            if have != set(seeds):
                differ.append(f"{target}: files {sorted(have ^ set(seeds))}")
            for name, data in seeds.items():
                p = os.path.join(d, name)
                if os.path.isfile(p) and open(p, "rb").read() != data:
                    differ.append(f"{target}/{name}")
            continue
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):
            if old not in seeds:
                os.remove(os.path.join(d, old))
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")
    if differ:
        print("corpus differs from make_corpus.py:\n  " + "\n  ".join(differ), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
