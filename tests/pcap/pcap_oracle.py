#!/usr/bin/env python3
"""Flows, packets and bytes of real captures, checked against tshark (an oracle no one here wrote).

For every capture, `dpdk-millipede tap` reads the file through DPDK's
net_pcap vdev and its flow records are compared with what tshark dissects
from the same file:

- Flow counts: as many TCP and UDP flows (summary and records) as tshark
  lists conversations.
- Per flow, per direction: packets and bytes. tshark's frames are grouped
  into flows the way the classifier keys them (IP protocol and the two
  endpoints; ports for TCP, UDP and SCTP; address pairs for ICMP and
  everything else; non-first IP fragments joined to their first fragment's
  flow) and their captured lengths summed per sending endpoint; the records
  of a flow key (TCP reuses a 5-tuple after a FIN) are summed the same way.
  The outer header decides: an ICMP error that quotes a TCP/UDP header
  belongs to the ICMP flow (tshark's `tcp || udp` matches the quoted header
  too, which is why frames are classified from frame.protocols here).
- Community IDs: the set of TCP/UDP/SCTP flows' IDs equals tshark's
  Community ID dissector's set over the frames whose outer protocol is TCP,
  UDP or SCTP; every ICMP record's ID is one tshark computes for an ICMP frame.
- Rejects: a well-formed capture has none, except `not_ip`, whose count must
  equal tshark's frames without an IP header.

Tunnels are not decapsulated by the classifier, so tshark runs with the
tunnel dissectors off (one --disable-protocol flag per protocol: a comma
list is silently ignored) and IP reassembly off. The deliberately malformed
captures (fuzz-*) must run to the end with every packet accounted for:
classified, or rejected under a named reason, and some rejected.

Each capture also runs with four logical workers, the busy policy,
migration and --check-order: the same flows, and the three correctness
counters must be reported (checked) and zero. The default run must report
the order checker off.

usage: pcap_oracle.py DPDK_MILLIPEDE PATH...   (capture files or folders of them)
Exit 77 (skip) when the shared folder is absent; 1 on any mismatch.
"""
import collections
import ipaddress
import json
import os
import shutil
import subprocess
import sys

TUNNEL_FLAGS = ["--disable-protocol", "gre", "--disable-protocol", "capwap",
                "--disable-protocol", "capwap.data", "--disable-protocol", "gtp"]
TSHARK_OPTS = TUNNEL_FLAGS + ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
FIELDS = ["frame.cap_len", "frame.protocols", "ip.src", "ip.dst", "ip.proto", "ip.id", "ip.frag_offset",
          "ip.flags.mf", "ipv6.src", "ipv6.dst", "ipv6.nxt", "ipv6.fraghdr.offset", "ipv6.fraghdr.more",
          "ipv6.fraghdr.ident", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "sctp.srcport",
          "sctp.dstport", "communityid"]
L4_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58}
PORTED = {6, 17, 132}
# IP protocols tshark names in frame.protocols, for IPv6 frames whose upper
# layer is none of the above (ipv6.nxt is the first header's next header).
OTHER_NUMBERS = {"gre": 47, "esp": 50, "ah": 51, "ospf": 89, "vrrp": 112, "igmp": 2, "pim": 103, "l2tp": 115}


def is_set(text):
    return text in ("1", "True", "true")


def norm(addr):
    return str(ipaddress.ip_address(addr))


def tshark_conversations(path):
    out = subprocess.run(["tshark", "-r", path, "-q", "-z", "conv,tcp", "-z", "conv,udp"] + TUNNEL_FLAGS,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    counts = {"tcp": 0, "udp": 0}
    section = None
    for line in out.splitlines():
        if "TCP Conversations" in line:
            section = "tcp"
        elif "UDP Conversations" in line:
            section = "udp"
        elif "<->" in line and section:
            counts[section] += 1
    return counts


class TsharkFlows:
    """tshark's frames grouped into flows as the classifier keys them."""

    def __init__(self, path):
        out = subprocess.run(["tshark", "-r", path, "--enable-protocol", "communityid", "-T", "fields",
                              "-E", "separator=\t", "-E", "occurrence=f"] +
                             [a for f in FIELDS for a in ("-e", f)] + TSHARK_OPTS,
                             capture_output=True, text=True, timeout=120, check=True).stdout
        self.flows = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0]))
        self.non_ip = 0
        self.ported_ids = set()  # Community IDs of TCP/UDP/SCTP frames
        self.icmp_ids = set()
        self.unjoined = 0  # non-first fragments whose first fragment came later or never
        first_fragments = {}  # (version, src, dst, id, proto) -> (key, first fragment's source endpoint)
        for line in out.splitlines():
            v = dict(zip(FIELDS, line.split("\t")))
            size = int(v["frame.cap_len"])
            tokens = v["frame.protocols"].split(":")
            outer = next((i for i, t in enumerate(tokens) if t in ("ip", "ipv6")), None)
            if outer is None:
                self.non_ip += 1
                continue
            v6 = tokens[outer] == "ipv6"
            src, dst = norm(v["ipv6.src" if v6 else "ip.src"]), norm(v["ipv6.dst" if v6 else "ip.dst"])
            upper = next((t for t in tokens[outer + 1:] if not t.startswith("ipv6.")), "")
            # Fragments: the offset-0 fragment carries the L4 header, the rest join its flow.
            if v6:
                fragmented = v["ipv6.fraghdr.ident"] != "" and (is_set(v["ipv6.fraghdr.more"]) or
                                                                 v["ipv6.fraghdr.offset"] not in ("", "0"))
                later = fragmented and v["ipv6.fraghdr.offset"] not in ("", "0")
                frag_id = (6, src, dst, v["ipv6.fraghdr.ident"])
            else:
                later = v["ip.frag_offset"] not in ("", "0")
                fragmented = later or is_set(v["ip.flags.mf"])
                frag_id = (4, src, dst, v["ip.id"], v["ip.proto"])
            if later:
                joined = first_fragments.get(frag_id)
                if joined is None:
                    self.unjoined += 1
                    continue
                key, (first_src, first_port), other_port = joined
                endpoint = (src, first_port if src == first_src else other_port)
                self.add(key, endpoint, size)
                continue
            if upper in L4_NUMBERS:
                proto = L4_NUMBERS[upper]
            elif v6:
                proto = OTHER_NUMBERS.get(upper, int(v["ipv6.nxt"] or 0))
            else:
                proto = int(v["ip.proto"])
            sport = dport = 0
            if proto in PORTED:
                sport, dport = int(v[f"{upper}.srcport"]), int(v[f"{upper}.dstport"])
            key = (proto, frozenset([(src, sport), (dst, dport)]))
            self.add(key, (src, sport), size)
            if fragmented:
                first_fragments[frag_id] = (key, (src, sport), dport)
            cid = v["communityid"]
            if cid and proto in PORTED:
                self.ported_ids.add(cid)
            elif cid and proto in (1, 58):
                self.icmp_ids.add(cid)

    def add(self, key, endpoint, size):
        figures = self.flows[key][endpoint]
        figures[0] += 1
        figures[1] += size


def record_flows(records):
    """Our records grouped the same way: per flow key, per sending endpoint."""
    flows = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0]))
    for r in records:
        if r.get("unjoined_fragments"):
            continue
        proto = r["ip_proto"]
        ported = proto in PORTED
        a = (norm(r["src"]), r["sport"] if ported else 0)
        b = (norm(r["dst"]), r["dport"] if ported else 0)
        key = (proto, frozenset([a, b]))
        for endpoint, packets, size in ((a, r["c2s_packets"], r["c2s_bytes"]), (b, r["s2c_packets"], r["s2c_bytes"])):
            if packets or size:
                flows[key][endpoint][0] += packets
                flows[key][endpoint][1] += size
    return flows


def describe(key):
    proto, ends = key
    return f"proto {proto} " + " <-> ".join(f"{a}:{p}" for a, p in sorted(ends))


def compare_flows(name, ours, theirs, failures):
    """Per flow and direction: packets and bytes. Returns the flows compared."""
    mismatches = []
    for key in sorted(set(ours) | set(theirs), key=describe):
        mine = {e: tuple(v) for e, v in ours.get(key, {}).items()}
        other = {e: tuple(v) for e, v in theirs.get(key, {}).items()}
        if mine != other:
            def show(d):
                return ", ".join(f"from {a}:{p} {n} pkts {b} B" for (a, p), (n, b) in sorted(d.items())) or "no flow"
            mismatches.append(f"{describe(key)}: tap {show(mine)}; tshark {show(other)}")
    for m in mismatches[:5]:
        failures.append(f"{name}: {m}")
    if len(mismatches) > 5:
        failures.append(f"{name}: ... and {len(mismatches) - 5} more flows differ in packets or bytes")
    return len(set(ours) | set(theirs))


def run_tap(app, path, tag, extra_eal, tap_args):
    cmd = [app, "--no-huge", "--no-pci", "-m", "512", "--log-level=lib.eal:error",
           "--file-prefix", f"pcaporacle_{os.getpid()}_{tag}",
           "--vdev", f"net_pcap0,rx_pcap={path}"] + extra_eal + ["--", "tap", "--summary", "-"] + tap_args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[-500:]}")
    docs = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    summary = docs[-1]
    summary["records"] = [d for d in docs[:-1] if "community_id" in d]
    return summary


def captures_in(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += [os.path.join(p, f) for f in sorted(os.listdir(p)) if f.endswith((".pcap", ".pcapng"))]
        else:
            out.append(p)
    return out


def check_capture(app, path, tag, failures):
    name = os.path.basename(path)
    ours = run_tap(app, path, f"{tag}a", ["-l", "0"], ["--flows-out", "-"])
    # The second run also reads through DPDK's net_pcap: both capture readers
    # must give the same flows (the first reads a pcap file memory-mapped).
    pinned = run_tap(app, path, f"{tag}b", ["-l", "0"],
                     ["--workers", "4", "--policy", "busy", "--migrate", "--check-order", "--flows-out", "-",
                      "--capture-reader", "net_pcap"])
    rejects = sum(ours["rejects"].values())
    accounted = ours["classified"] + rejects + sum(ours["drops"].values())
    reasons = ",".join(f"{k}={v}" for k, v in sorted(ours["rejects"].items())) or "-"
    malformed = name.startswith("fuzz-")
    compared = "-"
    if malformed:
        theirs_text = "(malformed)"
        if rejects == 0:
            failures.append(f"{name}: a malformed capture produced no rejects")
    else:
        theirs = tshark_conversations(path)
        theirs_text = f"{theirs['tcp']}/{theirs['udp']}"
        for proto, number in (("tcp", 6), ("udp", 17)):
            if ours["flows"][proto] != theirs[proto]:
                failures.append(f"{name}: {proto} flows {ours['flows'][proto]} != tshark {theirs[proto]}")
            # The records themselves, as a user would count them.
            recorded = sum(1 for r in ours["records"] if r["ip_proto"] == number and not r.get("unjoined_fragments"))
            if recorded != theirs[proto]:
                failures.append(f"{name}: {recorded} {proto} flow records != tshark {theirs[proto]}")
        frames = TsharkFlows(path)
        compared = compare_flows(name, record_flows(ours["records"]), frames.flows, failures)
        # The 4-worker run with migration (and net_pcap) must count every flow alike.
        if record_flows(pinned["records"]) != record_flows(ours["records"]):
            failures.append(f"{name}: per-flow packets or bytes differ with 4 workers (busy, migrate)")
        our_ids = {r["community_id"] for r in ours["records"]
                   if r["ip_proto"] in PORTED and not r.get("unjoined_fragments")}
        if our_ids != frames.ported_ids:
            failures.append(f"{name}: community IDs differ: only ours {sorted(our_ids - frames.ported_ids)[:3]}, "
                            f"only tshark {sorted(frames.ported_ids - our_ids)[:3]}")
        icmp_ids = {r["community_id"] for r in ours["records"] if r["ip_proto"] in (1, 58)}
        if not icmp_ids <= frames.icmp_ids:
            failures.append(f"{name}: ICMP community IDs tshark never computed: {sorted(icmp_ids - frames.icmp_ids)[:3]}")
        # A well-formed capture: nothing rejected but frames without IP.
        bad = {k: v for k, v in ours["rejects"].items() if k != "not_ip"}
        if bad:
            failures.append(f"{name}: well-formed frames rejected: {bad}")
        if ours["rejects"].get("not_ip", 0) != frames.non_ip:
            failures.append(f"{name}: {ours['rejects'].get('not_ip', 0)} frames rejected as not_ip, "
                            f"tshark finds {frames.non_ip} without an IP header")
        unjoined = ours["fragments"]["unjoined"]
        if unjoined != frames.unjoined:
            failures.append(f"{name}: {unjoined} fragments unjoined, tshark's order leaves {frames.unjoined}")
    print(f"{name:28} {theirs_text:>15} {ours['flows']['tcp']:>6}/{ours['flows']['udp']:<6} {compared!s:>6}  {reasons}")
    pcap_file = open(path, "rb").read(4) in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                                              b"\xa1\xb2\x3c\x4d")
    if ours["mmap_packets"] != (ours["packets"] if pcap_file else 0):
        failures.append(f"{name}: {ours['mmap_packets']} of {ours['packets']} packets through the mmap reader "
                        f"({'all' if pcap_file else 'none'} expected for this file)")
    if pinned["mmap_packets"] != 0:
        failures.append(f"{name}: --capture-reader net_pcap still read {pinned['mmap_packets']} packets mapped")
    if accounted != ours["packets"]:
        failures.append(f"{name}: {ours['packets']} packets but {accounted} accounted for")
    if pinned["flows"] != ours["flows"]:
        failures.append(f"{name}: flows differ with 4 workers: {pinned['flows']} vs {ours['flows']}")
    if ours["correctness"] != {"checked": False}:
        failures.append(f"{name}: the order checker ran without --check-order: {ours['correctness']}")
    if pinned["correctness"].get("checked") is not True:
        failures.append(f"{name}: --check-order did not check: {pinned['correctness']}")
    for counter, value in pinned["correctness"].items():
        if counter != "checked" and value:
            failures.append(f"{name}: {counter} = {value} with 4 workers (busy, migrate)")
    if len(ours["records"]) != sum(ours["flows"].values()):
        failures.append(f"{name}: {len(ours['records'])} flow records for {sum(ours['flows'].values())} flows")
    ended = sum(ours["flows_ended"].values())
    created = sum(ours["flows"].values())
    if ended != created:
        failures.append(f"{name}: {created} flows created but {ended} ended (flush at end of input)")


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    app, paths = sys.argv[1], sys.argv[2:]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        print(f"SKIP: capture folder {missing[0]} is absent (it holds the shared real captures)")
        return 77
    if not shutil.which("tshark"):
        print("FAIL: tshark is not installed (tools/test.sh installs it)")
        return 1
    captures = captures_in(paths)
    if not captures:
        print(f"FAIL: no captures in {paths}")
        return 1
    failures = []
    print(f"{'capture':28} {'tshark tcp/udp':>15} {'ours tcp/udp':>13} {'flows':>6}  rejects")
    for i, path in enumerate(captures):
        try:
            check_capture(app, path, i, failures)
        except Exception as e:  # a crash or a hang is a failure of this capture
            failures.append(f"{os.path.basename(path)}: {type(e).__name__}: {e}")
    print()
    for f in failures:
        print("FAIL:", f)
    failed = {f.split(":")[0] for f in failures}
    print(f"{len(captures) - len(failed)} of {len(captures)} captures agree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
