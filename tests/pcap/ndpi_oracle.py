#!/usr/bin/env python3
"""L7 protocols of tap's flow records, checked against Debian's ndpiReader.

For every capture given (the shared pcaps folder; generated ones), `dpdk-millipede tap` reads the
file through DPDK's net_pcap vdev on three lcores (RX/classifier, two
logical workers on one worker lcore, busy policy with migration, so
inspection state also moves between workers) and writes its flow records.
`ndpiReader -i FILE -v 2` (nDPI 4.2, the same library, a program no one
here wrote) lists its flows with the protocol it found. Flows are matched
by IP protocol and unordered endpoint pair (address, port); where either
side has several flows on one pair (ndpiReader ends a flow after 30 s idle,
tap starts a new TCP flow on a new SYN), the protocol labels are matched as
multisets. Every difference is printed with its likely reason.

The run fails when a capture agrees less than REQUIRED says (every
well-formed capture 100 %; the two deliberately malformed ones the shares
README.md and docs/tap.md state, 88 % and 77 %), when fewer than OVERALL
(98 %) of all flows agree, or when any capture's run fails, drops a record,
or leaves a flow without one. These are the figures the README claims.

usage: ndpi_oracle.py DPDK_MILLIPEDE PATH...   (capture files or folders of them)
Exit 77 (skip) when the shared folder is absent; 1 on failure.
"""
import collections
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys

# Agreement each capture must reach; any capture not named: 1.0 (every flow).
# The malformed captures hold headers that tap rejects by name and
# ndpiReader accepts (or the reverse), and fragments without their first.
REQUIRED = {"fuzz-2006-06-26-2594.pcap": 0.88, "fuzz-2020-02-16-11740.pcap": 0.77}
OVERALL = 0.98
IP_PROTOS = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPV6": 58, "VRRP": 112, "IGMP": 2}
LINE = re.compile(r"^\s+\d+\s+(\S+) \[?([0-9A-Fa-f:.]+)\]?:(\d+) (?:<->|->) \[?([0-9A-Fa-f:.]+)\]?:(\d+) "
                  r".*?\[proto: [0-9.]+/([^\]]+)\](?:.*?\[Confidence: ([^\]]+)\])?")


def norm(addr):
    return str(ipaddress.ip_address(addr))


def flow_key(proto, a, pa, b, pb):
    return (proto, frozenset([(norm(a), int(pa)), (norm(b), int(pb))]))


def ndpireader_flows(path):
    out = subprocess.run(["ndpiReader", "-i", path, "-v", "2"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    flows = collections.defaultdict(list)
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        proto_text, a, pa, b, pb, label, confidence = m.groups()
        proto = IP_PROTOS.get(proto_text, None)
        if proto is None:
            proto = int(proto_text)
        flows[flow_key(proto, a, pa, b, pb)].append((label, confidence or ""))
    return flows


def run_tap(app, path, tag):
    cmd = [app, "--no-huge", "--no-pci", "-m", "512", "--log-level=lib.eal:error",
           "--file-prefix", f"ndpioracle_{os.getpid()}_{tag}", "--lcores", "0@0,1@(0-1),2@(0-1)",
           "--vdev", f"net_pcap0,rx_pcap={path}", "--",
           "tap", "--workers", "2", "--policy", "busy", "--migrate", "--flows-out", "-", "--summary", "-"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[-500:]}")
    docs = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    summary = docs[-1]
    records = [d for d in docs[:-1] if "community_id" in d]
    return summary, records


def reason(name, ours, theirs, key):
    """The likely cause of one difference, from what both tools say."""
    proto, ends = key
    if not theirs:
        if ours and ours.get("unjoined_fragments"):
            return "IP fragments whose first fragment is not in the capture: ndpiReader skips later fragments"
        if name.startswith("fuzz-"):
            return "malformed header that ndpiReader drops and tap's parser accepts"
        return "no ndpiReader flow on this 5-tuple"
    if ours is None:
        if name.startswith("fuzz-"):
            return ("malformed header that tap rejects by name (see the summary's rejects, e.g. "
                    "udp_bad_length, ipv4_bad_total_len) and ndpiReader accepts")
        return "ndpiReader has more flows on this 5-tuple (it ends a flow after 30 s idle; tap's timeouts are longer)"
    label, confidence = theirs
    if ours.get("l7_guessed") and confidence != "DPI":
        return f"both guessed from ports/addresses, differently (ndpiReader confidence: {confidence})"
    if ours.get("l7_guessed"):
        return "ndpiReader detected by DPI, tap gave up and guessed (different packets reached nDPI)"
    if confidence and confidence != "DPI":
        return f"tap detected by DPI, ndpiReader by {confidence}"
    return "both by DPI, different result (packet order or flow split differs)"


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    app, paths = sys.argv[1], sys.argv[2:]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        print(f"SKIP: capture folder {missing[0]} is absent (it holds the shared real captures)")
        return 77
    if not shutil.which("ndpiReader"):
        print("FAIL: ndpiReader is not installed (package libndpi-bin; tools/test.sh installs it)")
        return 1
    captures = []
    for p in paths:
        if os.path.isdir(p):
            captures += [os.path.join(p, f) for f in sorted(os.listdir(p)) if f.endswith((".pcap", ".pcapng"))]
        else:
            captures.append(p)
    failures, differences = [], []
    total = agree_total = 0
    print(f"{'capture':28} {'flows':>6} {'agree':>6} {'share':>7} {'needed':>7}  ours=ndpiReader examples")
    for i, path in enumerate(captures):
        name = os.path.basename(path)
        try:
            summary, records = run_tap(app, path, i)
            theirs = ndpireader_flows(path)
        except Exception as e:  # a crash or a hang is a failure of this capture
            failures.append(f"{name}: {e}")
            continue
        flows = sum(summary["flows"].values())
        if len(records) != flows:
            failures.append(f"{name}: {len(records)} records for {flows} flows")
        if summary["records"]["dropped"] or summary["dpi"]["flow_states_exhausted"]:
            failures.append(f"{name}: records dropped {summary['records']['dropped']}, "
                            f"flows without state {summary['dpi']['flow_states_exhausted']}")
        for counter, value in summary["correctness"].items():
            if value:
                failures.append(f"{name}: {counter} = {value}")
        ours = collections.defaultdict(list)
        for r in records:
            ours[flow_key(r["ip_proto"], r["src"], r["sport"], r["dst"], r["dport"])].append(r)
        n = agree = 0
        examples = collections.Counter()
        for key in set(ours) | set(theirs):
            mine = list(ours.get(key, []))
            other = list(theirs.get(key, []))
            n += max(len(mine), len(other))
            # Pair equal labels first (multiset intersection), then the rest in order.
            for r in list(mine):
                match = next((t for t in other if t[0] == r["l7"]), None)
                if match:
                    agree += 1
                    examples[r["l7"]] += 1
                    mine.remove(r)
                    other.remove(match)
            for j in range(max(len(mine), len(other))):
                r = mine[j] if j < len(mine) else None
                t = other[j] if j < len(other) else None
                ends = " <-> ".join(f"{a}:{p}" for a, p in sorted(key[1]))
                differences.append(f"{name}: proto {key[0]} {ends}: tap {r['l7'] if r else '(no flow)'} "
                                   f"vs ndpiReader {t[0] if t else '(no flow)'}: {reason(name, r, t, key)}")
        total += n
        agree_total += agree
        share = agree / n if n else 1.0
        needed = REQUIRED.get(name, 1.0)
        top = ", ".join(f"{k} x{v}" for k, v in examples.most_common(3))
        print(f"{name:28} {n:>6} {agree:>6} {100 * share:6.1f}% {100 * needed:6.0f}%  {top}")
        if share < needed:
            failures.append(f"{name}: {agree} of {n} flows agree = {100 * share:.1f}% < {100 * needed:.0f}%")
    print()
    print(f"differences ({len(differences)}):")
    for d in differences:
        print("  " + d)
    overall = agree_total / total if total else 0.0
    print(f"\noverall: {agree_total} of {total} flows agree with ndpiReader = {100 * overall:.1f}% "
          f"(required {100 * OVERALL:.0f}%)")
    if overall < OVERALL:
        failures.append(f"overall agreement {100 * overall:.1f}% < {100 * OVERALL:.0f}%")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
