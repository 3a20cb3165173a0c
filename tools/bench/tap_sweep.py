#!/usr/bin/python3
"""Ring drops per balancer policy at the same offered loads (issue 14, part 3).

`dpdk-millipede tap --replay-pps N` offers exactly N packets per second, so
every policy sees the same load. First the 1-worker drain rate is measured
(unpaced runs, policy hash: what one worker lcore processes when the
classifier offers more than it can take), then each rate of the sweep (a
fraction of that drain rate) runs for every worker count and policy. The
configurations of a round run in an order rotated by the round, and rounds
repeat, so machine noise spreads over every policy alike.

Layout as tools/bench/tap.sh: `--lcores 0@0,1@1,2@0` (lcore 1 on CPU 1
receives and classifies, lcore 2 on CPU 0 runs every logical worker, the
main lcore shares CPU 0 and sleeps), the seven real captures of
../shared/pcaps as net_pcap ports with infinite_rx=1, nDPI on, no records,
`nice -n -20`, 2 MiB hugepages when 512 are free.

One JSON line per run to stdout and --out (appended): the configuration,
/proc/loadavg before the run, what the replay offered and received, the
ring drops and their share of the packets received, the workers'
processed rate, imbalance, migrations, busy shares, cycles per packet.

  /usr/bin/python3 tools/bench/tap_sweep.py --bin build/app/dpdk-millipede \\
      --seconds 4 --repeats 3 --fractions 0.5,0.8,0.95 --out sweep.json

Run it in a quiet window (docs/benchmarks.md): touch /tmp/millipede-quiet,
hold /tmp/millipede-dpdk.lock, remove the file afterwards.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

CAPTURES = "whatsapp.pcap quic.pcap dropbox.pcap tor.pcap bittorrent.pcap teamviewer.pcap openvpn.pcap".split()
POLICIES = ["hash", "pending", "busy", "busy+migrate"]
STATS_INTERVAL = 0.1  # s: the stats lines show when in the run the drops came
WORKER_FIELDS = re.compile(r"\| w(\d+) (\d+) pkts \d+ flows (\d+)% busy (\d+) drops")


def intervals(stderr):
    """Per stats line (every STATS_INTERVAL s): ring drops and each worker's busy %."""
    drops, busy, last = [], [], None
    for line in stderr.splitlines():
        if not line.startswith("tap: "):
            continue
        f = WORKER_FIELDS.findall(line)
        total = sum(int(x[3]) for x in f)
        drops.append(total - (last if last is not None else 0))
        busy.append([int(x[2]) for x in f])
        last = total
    return drops[:-1], busy[:-1]  # the last line is the final one, after the drain


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def cpu_ticks():
    """Per CPU: (steal, idle) USER_HZ ticks from /proc/stat: steal is time the
    hypervisor ran something else on this vCPU."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = line.split()
                out[v[0]] = (int(v[8]), int(v[4]))
    return out


def memory_args():
    free = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Free:"):
                free = int(line.split()[1])
    with open("/proc/mounts") as f:
        huge = "hugetlbfs" in f.read()
    return ["-m", "768"] if free >= 512 and huge else ["--no-huge", "-m", "1024"]


def run_tap(args, workers, policy, seconds, pps, prefix):
    pol = ["--policy", policy.split("+")[0]] + (["--migrate"] if policy.endswith("+migrate") else [])
    vdevs = []
    for i, c in enumerate(CAPTURES):
        vdevs += ["--vdev", f"net_pcap{i},rx_pcap={os.path.join(args.pcaps, c)},infinite_rx=1"]
    cmd = ["nice", "-n", str(args.nice), args.bin, "--lcores", args.lcores, "--file-prefix", prefix, "--no-pci",
           "--log-level=lib.eal:error"] + memory_args() + vdevs + [
        "--", "tap", "--workers", str(workers)] + pol + ["--duration", str(seconds), "--summary", "-",
                                                        "--stats-interval", str(STATS_INTERVAL)]
    if pps:
        cmd += ["--replay-pps", str(pps)]
    cmd += args.extra.split()
    load = loadavg()
    ticks = cpu_ticks()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    finally:
        for f in os.listdir("/dev/hugepages") if os.path.isdir("/dev/hugepages") else []:
            if f.startswith(prefix):
                try:
                    os.unlink(os.path.join("/dev/hugepages", f))
                except OSError:
                    pass
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)}: status {p.returncode}: {p.stderr.strip()[-400:]}")
    s = json.loads(lines[-1])
    w = s["per_worker"]
    imb = lambda v: max(v) / (sum(v) / len(v)) if sum(v) else 0.0
    r = s.get("replay", {})
    received = s["packets"]
    ticks_after = cpu_ticks()
    steal = {c: ticks_after[c][0] - ticks[c][0] for c in ticks}
    drops_per_interval, busy_per_interval = intervals(p.stderr)
    ranked = sorted(drops_per_interval, reverse=True)
    total_drops = max(sum(ranked), 1)
    return {
        "drops_per_interval": drops_per_interval, "busy_per_interval": busy_per_interval,
        # How bursty the loss was: the share of the drops in the worst 10 % of the intervals.
        "drops_in_worst_tenth": round(sum(ranked[:max(1, len(ranked) // 10)]) / total_drops, 3),
        "workers": workers, "policy": policy, "target_pps": pps, "seconds": round(s["seconds"], 3),
        "replay_seconds": round(r.get("seconds", s["seconds"]), 3),
        "offered": r.get("offered", received), "received": received, "missed": r.get("missed", 0),
        "unavailable": r.get("unavailable", 0),
        "offered_pps": round(r.get("offered", received) / r.get("seconds", s["seconds"])),
        "processed": s["classified"],
        "processed_mpps": round(s["classified"] / s["seconds"] / 1e6, 4),
        "ring_drops": s["drops"]["ring_full"],
        "drop_share": round(s["drops"]["ring_full"] / max(received, 1), 5),
        "per_worker_drops": [x["ring_drops"] for x in w],
        "imbalance_offered": round(imb([x["dispatched"] for x in w]), 3),
        "imbalance_processed": round(imb([x["processed"] for x in w]), 3),
        "busy_share": [x["busy_share"] for x in w], "dpi_packets": s["dpi"]["packets"],
        "flows": sum(s["flows"].values()), "migrations": s["migrations"],
        "cycles_per_packet": s["cycles_per_packet"], "loadavg_before": load, "loadavg_after": loadavg(),
        "steal_ticks": steal, "extra": args.extra, "lcores": args.lcores, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/app/dpdk-millipede")
    ap.add_argument("--pcaps", default="../shared/pcaps")
    ap.add_argument("--lcores", default="0@0,1@1,2@0")
    ap.add_argument("--nice", type=int, default=-20)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fractions", default="0.5,0.8,0.95")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--drain-pps", type=int, default=0, help="skip the calibration: the 1-worker drain rate")
    ap.add_argument("--calibrate-runs", type=int, default=3)
    ap.add_argument("--out", default="")
    ap.add_argument("--extra", default="", help="more tap options for every run, e.g. --busy-poll")
    args = ap.parse_args()
    for c in CAPTURES:
        if not os.path.isfile(os.path.join(args.pcaps, c)):
            sys.exit(f"tap_sweep.py: no capture {os.path.join(args.pcaps, c)}")
    out = open(args.out, "a") if args.out else None
    prefix = f"benchsweep{os.getpid()}"

    def emit(rec):
        line = json.dumps(rec)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    drain = args.drain_pps
    if not drain:
        rates = []
        for _ in range(args.calibrate_runs):
            rec = run_tap(args, 1, "hash", args.seconds, 0, prefix)
            rec["phase"] = "calibrate"
            emit(rec)
            rates.append(rec["processed"] / rec["seconds"])
        drain = int(statistics.median(rates))
    emit({"phase": "drain", "drain_pps": drain})
    configs = [(int(w), p) for w in args.workers.split(",") for p in args.policies.split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]
    for rep in range(args.repeats):
        for frac in fractions:
            k = rep % len(configs)
            for w, pol in configs[k:] + configs[:k]:
                rec = run_tap(args, w, pol, args.seconds, int(drain * frac), prefix)
                rec.update({"phase": "sweep", "repeat": rep, "fraction": frac, "drain_pps": drain})
                emit(rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
