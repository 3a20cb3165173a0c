#!/usr/bin/env python3
"""tap --rx-shards: both directions of every flow on one shard, and the same records as one shard.

A veth pair; dpdk-millipede tap reads one end through net_af_packet with
qpairs=S (its queues' sockets form one PACKET_FANOUT_HASH group, whose
kernel hash is symmetric, docs/tap.md "Shards"), and tcpreplay sends real
captures of many TCP and UDP flows, both directions of each, into the other
end. The same traffic goes through a 1-shard run and a 2-shard run.

Each run waits for its conditions with deadlines: the telemetry socket
answering (the run loop is up), then, after the replay, the tap's rx_packets
(telemetry) reaching the count tcpreplay reports; then SIGTERM, which ends
every flow as end-of-input, and the exit. Nothing is timed.

Asserted, for the 2-shard run:
- every packet sent was received and classified (summary), none dropped;
- both shards classified flows and packets (per_shard);
- no flow was split: every flow record names one shard, and no flow key
  (Community ID) has records from two shards; a split flow would also show
  as two one-way records where one shard saw one two-way flow;
- the records equal the 1-shard run's: per Community ID, the multiset of
  (packets and bytes each way, L7 verdict, end reason).
The check of the records is run first on a made-up split (one two-way
record cut in two, one per shard) to show that it catches one. And a third
run is a negative control on real traffic: with FANOUT_LB_SHIM (LD_PRELOAD,
fanout_lb_shim.cpp) the kernel spreads packets round-robin instead of by
flow hash, and the same checks must then find split flows.

usage: tap_shards_test.py DPDK_MILLIPEDE PCAP_DIR [FANOUT_LB_SHIM]
Needs root (veth pair, af_packet) and tcpreplay; else it fails with why.
"""
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from rig import telemetry_at, wait_for  # noqa: E402

CAPTURES = ["bittorrent.pcap", "whatsapp.pcap", "dropbox.pcap", "quic.pcap", "http_ipv6.pcap", "tor.pcap",
            "ftp.pcap", "openvpn.pcap", "teamviewer.pcap"]




def telemetry(path, command):
    """The reply, or None while the socket is not up or the run has not
    registered its commands yet."""
    try:
        return telemetry_at(path, command)
    except (OSError, ValueError, KeyError):
        return None


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def split_flows(records):
    """Community IDs whose records came from more than one shard."""
    shards = collections.defaultdict(set)
    for r in records:
        shards[r["community_id"]].add(r.get("shard"))
    return sorted(k for k, v in shards.items() if len(v) > 1)


def flow_view(records):
    """Per Community ID, what the tap concluded, independent of shard and worker."""
    v = collections.defaultdict(list)
    for r in records:
        v[r["community_id"]].append((r["c2s_packets"], r["s2c_packets"], r["c2s_bytes"], r["s2c_bytes"],
                                     r.get("l7"), r["end"]))
    return {k: sorted(x) for k, x in v.items()}


def differences(one, two):
    a, b = flow_view(one), flow_view(two)
    out = [f"{k}: 1 shard {a.get(k)} vs 2 shards {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return out


def self_check(records):
    """The checks must catch a split flow: cut one two-way record in two, one per shard."""
    two_way = next((r for r in records if r["c2s_packets"] and r["s2c_packets"]), None)
    if two_way is None:
        return "no two-way flow to cut"
    fwd = dict(two_way, s2c_packets=0, s2c_bytes=0, shard=0)
    rev = dict(two_way, c2s_packets=two_way["s2c_packets"], c2s_bytes=two_way["s2c_bytes"], s2c_packets=0,
               s2c_bytes=0, shard=1)
    cut = [r for r in records if r is not two_way] + [fwd, rev]
    if not split_flows(cut) or not differences(records, cut):
        return "a made-up split flow went unnoticed"
    return None


def refusals(app, iface, capture, work):
    """Combinations that cannot keep a flow on one shard: one line on stderr, a non-zero status."""
    eal = [app, "--no-huge", "--no-pci", "-m", "256", "--log-level=lib.eal:error", "--file-prefix",
           f"tapshardsno_{os.getpid()}", "--lcores", "0@(0-1),1@(0-1),2@(0-1)"]
    host = os.path.join(work, "host.ini")
    with open(host, "w") as f:
        f.write("[net_null0]\nrss_key = default\n")
    cases = [
        ("a capture file", ["--vdev", f"net_pcap0,rx_pcap={capture}"], ["--rx-shards", "2"], 2,
         "a capture file is read as one queue"),
        ("af_packet with fewer qpairs", ["--vdev", f"net_af_packet0,iface={iface},qpairs=1"], ["--rx-shards", "2"], 2,
         "offers 1 RX queue (add qpairs=N"),
        ("af_packet with more qpairs", ["--vdev", f"net_af_packet0,iface={iface},qpairs=2"], ["--rx-shards", "1"], 2,
         "has qpairs=2 and the kernel spreads flows over all of them"),
        ("a host file's other RSS key", ["--vdev", "net_null0"], ["--rx-shards", "2", "--config", host], 1,
         "shards need rss_key = symmetric"),
        ("no shards", [], ["--rx-shards", "0"], 2, "--rx-shards needs a number from 1 to 16"),
    ]
    bad = []
    for what, vdev, opts, status, says in cases:
        r = subprocess.run(eal + vdev + ["--", "tap", *opts, "--duration", "5"], capture_output=True, text=True,
                           timeout=60)
        lines = [x for x in r.stderr.splitlines() if x.startswith("dpdk-millipede tap:")]
        ok = r.returncode == status and len(lines) == 1 and says in lines[0]
        print(("ok   " if ok else "FAIL ") + f"refused: {what}: status {r.returncode}, {lines}")
        if not ok:
            bad.append(f"{what}: status {r.returncode} (want {status}), stderr {r.stderr.strip()[-300:]}")
    return bad


def tap_run(app, iface, peer, shards, files, work, preload=None):
    tag = f"{shards}{'lb' if preload else ''}"
    prefix = f"tapshards{tag}_{os.getpid()}"
    sock = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
    flows, summary = os.path.join(work, f"flows{tag}.json"), os.path.join(work, f"summary{tag}.json")
    # Four lcores on the machine's CPUs: control | rx shard 0 | rx shard 1 |
    # worker lcore (two logical workers); with one shard: control | rx | two
    # worker lcores. --duration only bounds a run the test failed to stop.
    cmd = [app, "--no-huge", "--no-pci", "-m", "512", "--log-level=lib.eal:error", "--file-prefix", prefix,
           "--lcores", "0@(0-1),1@(0-1),2@(0-1),3@(0-1)",
           "--vdev", f"net_af_packet0,iface={iface},qpairs={shards},framecnt=8192", "--",
           "tap", "--rx-shards", str(shards), "--workers", "2", "--check-order", "--duration", "120",
           "--flows-out", flows, "--summary", summary]
    errf = open(os.path.join(work, f"stderr{tag}.txt"), "w+")
    env = dict(os.environ, LD_PRELOAD=preload) if preload else None
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, text=True, env=env)
    try:
        wait_for("the tap's telemetry", lambda: p.poll() is not None or telemetry(sock, "/millipede/tap/stats"), 60)
        if p.poll() is not None:
            errf.seek(0)
            raise RuntimeError(f"tap exited early ({p.returncode}): {errf.read().strip()}")
        # A modest rate: af_packet's fanout has ROLLOVER, so a full socket
        # ring would move packets to the other queue (docs/tap.md).
        r = subprocess.run(["tcpreplay", "-i", peer, "--pps", "4000", *files], capture_output=True, text=True,
                           timeout=90)
        m = re.search(r"Actual: (\d+) packets", r.stdout)
        if r.returncode != 0 or not m:
            raise RuntimeError(f"tcpreplay failed: {r.stdout.strip()} {r.stderr.strip()}")
        sent = int(m.group(1))
        wait_for(f"{sent} packets at the tap",
                   lambda: (telemetry(sock, "/millipede/tap/stats") or {}).get("rx_packets", 0) >= sent, 60)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    errf.seek(0)
    err = errf.read()
    if rc != 0:
        raise RuntimeError(f"tap exited {rc}: {err.strip()}")
    if not os.path.exists(summary):
        raise RuntimeError(f"tap wrote no summary: {err.strip()}")
    with open(flows) as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(summary) as f:
        summ = json.load(f)
    return sent, records, summ, err


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        return 2
    app, folder = sys.argv[1], sys.argv[2]
    shim = sys.argv[3] if len(sys.argv) == 4 else None
    files = [os.path.join(folder, c) for c in CAPTURES]
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        print(f"FAIL: {missing[0]} is absent (tests need ../shared/pcaps)")
        return 1
    if os.geteuid() != 0:
        print("FAIL: needs root to create a veth pair and open it with af_packet")
        return 1
    if not shutil.which("tcpreplay"):
        print("FAIL: tcpreplay is not installed (Debian package tcpreplay)")
        return 1
    iface, peer = f"tsh{os.getpid() % 100000}a", f"tsh{os.getpid() % 100000}b"
    r = run(["ip", "link", "add", iface, "type", "veth", "peer", "name", peer])
    if r.returncode != 0:
        print(f"FAIL: cannot create a veth pair: {r.stderr.strip()}")
        return 1
    failures = []
    try:
        for i in (iface, peer):
            # No IPv6 on the pair: the kernel's own router solicitations
            # would be flows of their own, different in each run.
            run(["sysctl", "-qw", f"net.ipv6.conf.{i}.disable_ipv6=1"])
            run(["ip", "link", "set", i, "up"])
        with tempfile.TemporaryDirectory() as work:
            failures += refusals(app, peer, files[0], work)
            sent1, rec1, sum1, _ = tap_run(app, iface, peer, 1, files, work)
            sent2, rec2, sum2, err2 = tap_run(app, iface, peer, 2, files, work)
            lb = tap_run(app, iface, peer, 2, files, work, preload=shim) if shim else None

        def check(ok, what):
            print(("ok   " if ok else "FAIL ") + what)
            if not ok:
                failures.append(what)

        why = self_check(rec1)
        check(why is None, f"the record checks catch a made-up split flow{'' if why is None else ': ' + why}")
        print(f"sent {sent1} / {sent2} packets; 1 shard: {len(rec1)} records; 2 shards: {len(rec2)} records; "
              f"per shard {sum2.get('per_shard')}")
        print(err2.strip().splitlines()[0] if err2.strip() else "(no layout line)")
        for n, s, sent in ((1, sum1, sent1), (2, sum2, sent2)):
            rejected = sum(s["rejects"].values())  # ARP and other non-IP frames of the captures
            check(s["packets"] == sent and s["classified"] + rejected == sent,
                  f"{n} shard(s): every packet sent was received and reached a worker or a reject reason "
                  f"({s['packets']} received, {s['classified']} at workers, {rejected} rejected, {sent} sent)")
            check(sum(s["drops"].values()) == 0, f"{n} shard(s): no drops ({s['drops']})")
            check(s["correctness"].get("split_flows", 0) == 0 and s["correctness"].get("order_inversions", 0) == 0,
                  f"{n} shard(s): the order checker saw no split flow or inversion ({s['correctness']})")
        per = sum2.get("per_shard", [])
        check(len(per) == 2 and all(x["flows"] > 0 and x["packets"] > 0 for x in per),
              f"both shards classified flows: {per}")
        check(all(r.get("shard") in (0, 1) for r in rec2), "every 2-shard record names its shard")
        two_way = sum(1 for r in rec2 if r["c2s_packets"] and r["s2c_packets"])
        check(two_way >= 30, f"the input has flows in both directions ({two_way} two-way flows, at least 30)")
        check(all("shard" not in r for r in rec1), "1-shard records carry no shard (unchanged format)")
        split = split_flows(rec2)
        check(not split, f"no flow split over shards ({len(split)}: {split[:3]})")
        diff = differences(rec1, rec2)
        check(not diff, f"records match the 1-shard run ({len(diff)} differ: {diff[:3]})")
        check(len(rec1) == len(rec2), f"as many records ({len(rec1)} and {len(rec2)})")
        if lb:
            _, rec_lb, _, _ = lb
            split_lb, diff_lb = split_flows(rec_lb), differences(rec1, rec_lb)
            check(len(split_lb) > 0 and len(diff_lb) > 0,
                  f"negative control: round-robin fanout (not symmetric) splits flows, and the checks see it "
                  f"({len(split_lb)} flows on both shards, {len(diff_lb)} differ from the 1-shard run)")
        else:
            print("note: no FANOUT_LB_SHIM given, negative control not run")
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as e:
        failures.append(str(e))
        print(f"FAIL: {e}")
    finally:
        run(["ip", "link", "del", iface])
    print("PASS" if not failures else f"FAILED: {len(failures)} check(s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
