#!/usr/bin/env python3
"""`tap --replay-pps N`: a paced, looped replay offers N packets per second.

Two runs of 3 s, with 2 lcores (control | rx + both workers), through both
capture inputs:
  a. whatsapp.pcap (679 packets) through the memory-mapped reader at
     20,000 pps: the file must loop (passes > 1);
  b. quic.pcap as a net_pcap port with infinite_rx=1 at 50,000 pps.
A port that is not a capture (net_null) is refused with status 2 and one
line, and bad values of N exit 2 with one line before EAL starts.
Each run must show:
  - the rate: offered / replay seconds within 1 % of N (the pacer's
    arithmetic), and received / seconds within 3 % of N (what the
    classifier actually took: fails if pacing is off, runs free, or the
    lcore fell behind by more than 2 % of the packets, counted as missed);
  - uniform pacing, not a rush: the stats lines every 0.5 s (the main
    lcore's clock, 10 ms checks) each add N x interval within 20 %;
  - the counts add up: offered = received + missed; received = the
    classifier's packets = classified + rejects + drops; per worker,
    dispatched = processed + ring drops; nothing unavailable from a looped
    input; the mmap reader's packets = received (run a).
The tolerances are stated above; a 2-CPU machine shared with builds can
deschedule the rx lcore, which then shows as `missed`, so the received
check allows 2 % of them.

usage: tap_replay_test.py DPDK_MILLIPEDE PCAP_DIR
"""
import json
import os
import re
import subprocess
import sys

DURATION = 3.0
INTERVAL = 0.5


class Test:
    def __init__(self, app, folder):
        self.app, self.folder = app, folder
        self.failures = []

    def check(self, ok, message):
        print(("ok   " if ok else "FAIL ") + message)
        if not ok:
            self.failures.append(message)

    def run(self, name, vdev, pps):
        prefix = f"tapreplay_{os.getpid()}_{name}"
        cmd = [self.app, "--no-huge", "--no-pci", "-m", "512", "--log-level=lib.eal:error", "--file-prefix", prefix,
               "-l", "0-1", "--vdev", vdev, "--", "tap", "--workers", "2", "--replay-pps", str(pps),
               "--duration", str(DURATION), "--stats-interval", str(INTERVAL), "--summary", "-"]
        print("$ " + " ".join(cmd))
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            self.check(False, f"{name}: exit status {p.returncode}: {p.stderr.strip()[-400:]}")
            return
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        if not lines:
            self.check(False, f"{name}: no summary on stdout")
            return
        s = json.loads(lines[-1])
        r = s.get("replay")
        if r is None:
            self.check(False, f"{name}: the summary has no replay object")
            return
        print(f"   replay {r}")
        secs = r["seconds"]
        self.check(abs(secs - DURATION) < 0.25, f"{name}: the replay ran {secs:.3f} s of --duration {DURATION}")
        offered_rate = r["offered"] / secs
        received_rate = r["received"] / secs
        self.check(abs(offered_rate / pps - 1) <= 0.01,
                   f"{name}: offered {offered_rate:.0f} pps, within 1 % of {pps}")
        self.check(abs(received_rate / pps - 1) <= 0.03,
                   f"{name}: received {received_rate:.0f} pps, within 3 % of {pps}")
        self.check(r["missed"] <= 0.02 * r["offered"],
                   f"{name}: missed {r['missed']} of {r['offered']} offered (at most 2 %)")
        self.check(r["offered"] == r["received"] + r["missed"], f"{name}: offered = received + missed")
        self.check(r["unavailable"] == 0, f"{name}: a looped input always had packets (unavailable {r['unavailable']})")
        rejects = sum(s["rejects"].values())
        drops = sum(s["drops"].values())
        self.check(s["packets"] == r["received"], f"{name}: classifier packets {s['packets']} = received {r['received']}")
        self.check(s["packets"] == s["classified"] + rejects + drops,
                   f"{name}: packets {s['packets']} = processed {s['classified']} + rejects {rejects} + drops {drops}")
        for w, x in enumerate(s["per_worker"]):
            self.check(x["dispatched"] == x["processed"] + x["ring_drops"],
                       f"{name}: worker {w}: dispatched {x['dispatched']} = processed {x['processed']} "
                       f"+ ring drops {x['ring_drops']}")
        if name == "mmap":
            self.check(r["passes"] > 1, f"{name}: the capture looped ({r['passes']} passes)")
            self.check(s["mmap_packets"] == r["received"], f"{name}: the mmap reader gave every packet received")
        # Pacing over time: the stats lines (every INTERVAL s) add N x INTERVAL each.
        counts = [int(m.group(1)) for m in re.finditer(r"^tap: (\d+) pkts", p.stderr, re.M)]
        steps = [b - a for a, b in zip(counts, counts[1:])][:-1]  # the last line is the final one
        want = pps * INTERVAL
        self.check(len(steps) >= 3 and all(abs(d / want - 1) <= 0.2 for d in steps),
                   f"{name}: packets per {INTERVAL} s interval {steps}, each within 20 % of {want:.0f}")

    def bad_values(self):
        for value in ("0", "-5", "1.5", "x", "100000001"):
            prefix = f"tapreplay_{os.getpid()}_bad"
            p = subprocess.run([self.app, "--file-prefix", prefix, "--no-such-eal-option", "--", "tap",
                                "--replay-pps", value], capture_output=True, text=True, timeout=60)
            lines = p.stderr.splitlines()
            self.check(p.returncode == 2 and len(lines) == 1 and "--replay-pps needs packets per second" in lines[0],
                       f"--replay-pps {value}: status {p.returncode}, one line: {lines}")

    def nic_port_refused(self):
        """A port that is not a capture (net_null stands for a NIC): status 2, one line."""
        prefix = f"tapreplay_{os.getpid()}_null"
        p = subprocess.run([self.app, "--no-huge", "--no-pci", "-m", "512", "--log-level=lib.eal:error",
                            "--file-prefix", prefix, "-l", "0", "--vdev", "net_null0", "--", "tap",
                            "--replay-pps", "1000", "--duration", "1"], capture_output=True, text=True, timeout=60)
        lines = [l for l in p.stderr.splitlines() if l.startswith("dpdk-millipede tap:")]
        self.check(p.returncode == 2 and len(lines) == 1 and "--replay-pps replays captures" in lines[0],
                   f"--replay-pps on a port that is not a capture: status {p.returncode}, {lines}")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    t = Test(sys.argv[1], sys.argv[2])
    t.bad_values()
    t.nic_port_refused()
    if not os.path.isdir(t.folder):
        print(f"FAIL: {t.folder} is absent (the replays need its captures)")
        return 1
    t.run("mmap", f"net_pcap0,rx_pcap={os.path.join(t.folder, 'whatsapp.pcap')}", 20000)
    t.run("net_pcap", f"net_pcap0,rx_pcap={os.path.join(t.folder, 'quic.pcap')},infinite_rx=1", 50000)
    print("OK" if not t.failures else f"{len(t.failures)} failure(s)")
    return 1 if t.failures else 0


if __name__ == "__main__":
    sys.exit(main())
