#!/usr/bin/env python3
"""Flow counts on real captures, checked against tshark (an oracle no one here wrote).

For every capture in the shared pcaps folder, `dpdk-millipede tap` reads the
file through DPDK's net_pcap vdev and must find as many TCP and UDP flows as
tshark lists conversations. Tunnels are not decapsulated by the classifier,
so tshark runs with the tunnel dissectors off (one --disable-protocol flag
per protocol: a comma list is silently ignored). The deliberately malformed
captures (fuzz-*) must run to the end with every packet accounted for:
classified, or rejected under a named reason.

The flow records (one per flow, written by the workers after nDPI) must
count as many TCP and UDP flows, and their Community IDs (computed once per
flow) must equal the set tshark's own Community ID dissector computes for
the TCP and UDP packets.

Each capture also runs with four logical workers, the busy policy and
migration, where the three correctness counters must be zero.

usage: pcap_oracle.py DPDK_MILLIPEDE PCAP_DIR
Exit 77 (skip) when the folder is absent; 1 on any mismatch.
"""
import json
import os
import shutil
import subprocess
import sys

TUNNEL_FLAGS = ["--disable-protocol", "gre", "--disable-protocol", "capwap",
                "--disable-protocol", "capwap.data", "--disable-protocol", "gtp"]


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


def tshark_community_ids(path):
    out = subprocess.run(["tshark", "-r", path, "--enable-protocol", "communityid", "-Y", "tcp || udp",
                          "-T", "fields", "-e", "communityid"] + TUNNEL_FLAGS,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return {l.strip() for l in out.splitlines() if l.strip()}


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


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    app, folder = sys.argv[1], sys.argv[2]
    if not os.path.isdir(folder):
        print(f"SKIP: capture folder {folder} is absent (it holds the shared real captures)")
        return 77
    if not shutil.which("tshark"):
        print("FAIL: tshark is not installed (tools/test.sh installs it)")
        return 1
    captures = sorted(f for f in os.listdir(folder) if f.endswith((".pcap", ".pcapng")))
    failures = []
    print(f"{'capture':28} {'tshark tcp/udp':>15} {'ours tcp/udp':>13}  rejects")
    for i, name in enumerate(captures):
        path = os.path.join(folder, name)
        try:
            ours = run_tap(app, path, f"{i}a", ["-l", "0"], ["--flows-out", "-"])
            pinned = run_tap(app, path, f"{i}b", ["-l", "0"],
                             ["--workers", "4", "--policy", "busy", "--migrate"])
        except Exception as e:  # a crash or a hang is a failure of this capture
            failures.append(f"{name}: dpdk-millipede failed: {e}")
            continue
        rejects = sum(ours["rejects"].values())
        accounted = ours["classified"] + rejects + sum(ours["drops"].values())
        reasons = ",".join(f"{k}={v}" for k, v in sorted(ours["rejects"].items())) or "-"
        malformed = name.startswith("fuzz-")
        if malformed:
            theirs_text = "(malformed)"
        else:
            theirs = tshark_conversations(path)
            theirs_text = f"{theirs['tcp']}/{theirs['udp']}"
            for proto, number in (("tcp", 6), ("udp", 17)):
                if ours["flows"][proto] != theirs[proto]:
                    failures.append(f"{name}: {proto} flows {ours['flows'][proto]} != tshark {theirs[proto]}")
                # The records themselves, as a user would count them.
                recorded = sum(1 for r in ours["records"]
                               if r["ip_proto"] == number and not r.get("unjoined_fragments"))
                if recorded != theirs[proto]:
                    failures.append(f"{name}: {recorded} {proto} flow records != tshark {theirs[proto]}")
            our_ids = {r["community_id"] for r in ours["records"]
                       if r["ip_proto"] in (6, 17) and not r.get("unjoined_fragments")}
            their_ids = tshark_community_ids(path)
            if our_ids != their_ids:
                failures.append(f"{name}: community IDs differ: only ours {sorted(our_ids - their_ids)[:3]}, "
                                f"only tshark {sorted(their_ids - our_ids)[:3]}")
        print(f"{name:28} {theirs_text:>15} {ours['flows']['tcp']:>6}/{ours['flows']['udp']:<6}  {reasons}")
        if accounted != ours["packets"]:
            failures.append(f"{name}: {ours['packets']} packets but {accounted} accounted for")
        if malformed and rejects == 0:
            failures.append(f"{name}: a malformed capture produced no rejects")
        if pinned["flows"] != ours["flows"]:
            failures.append(f"{name}: flows differ with 4 workers: {pinned['flows']} vs {ours['flows']}")
        for counter, value in pinned["correctness"].items():
            if value:
                failures.append(f"{name}: {counter} = {value} with 4 workers (busy, migrate)")
        if len(ours["records"]) != sum(ours["flows"].values()):
            failures.append(f"{name}: {len(ours['records'])} flow records for {sum(ours['flows'].values())} flows")
        ended = sum(ours["flows_ended"].values())
        created = sum(ours["flows"].values())
        if ended != created:
            failures.append(f"{name}: {created} flows created but {ended} ended (flush at end of input)")
    print()
    for f in failures:
        print("FAIL:", f)
    print(f"{len(captures) - len({f.split(':')[0] for f in failures})} of {len(captures)} captures agree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
