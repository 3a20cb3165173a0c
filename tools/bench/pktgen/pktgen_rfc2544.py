#!/usr/bin/env python3
"""The RFC 2544 search of tools/bench/rfc2544.py driven through Pktgen-DPDK.

Pktgen runs with -G (Lua over TCP, port 22022) and -f tap-setup.lua (the
flow set-up and the trial function, tap_trial_line). For each frame size and
flow count this script sets the flows up, then searches NDR and PDR with the
same search() as the memif runs: each trial sends a fixed number of packets
from both ports at a percentage of the link rate, and the loss is counted
from the tap's own counters (rte_telemetry /millipede/tap/stats, through
the tap's telemetry socket on this host or `--tap-ssh HOST`), or, with
--loopback (ports cabled 0 <-> 1, no tap: calibrates the generator), from
Pktgen's receive counters.

Written from Pktgen-DPDK's documentation (Lua API: pktgen.set, pktgen.range.*,
pktgen.start/stop, pktgen.portStats; socket support: -G); Pktgen is not
packaged in Debian 12 and was not available where this was written, so this
path has not been run (docs/benchmarks.md says so). tap_rfc2544.sh --pktgen
refuses clearly when `pktgen` is not on PATH.

usage: pktgen_rfc2544.py [--host 127.0.0.1] [--port 22022] [--tap-prefix rte]
                         [--tap-ssh HOST] [--loopback] [--link-gbps 100]
                         [--sizes "64 512 1518"] [--flows "1000 100000 1000000"]
                         [--trial-seconds 10] [--out DIR]
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import rfc2544  # noqa: E402  (tools/bench/rfc2544.py: search, plot)


class Pktgen:
    """Lua chunks over Pktgen's socket; print() output comes back."""

    def __init__(self, host, port, timeout_s=30):
        self.addr = (host, port)
        self.timeout_s = timeout_s

    def lua(self, code, expect=None, timeout_s=None):
        # One connection per chunk: Pktgen runs what it received when the
        # sender shuts its side down, and answers with the chunk's output.
        with socket.create_connection(self.addr, timeout=self.timeout_s) as s:
            s.sendall(code.encode())
            s.shutdown(socket.SHUT_WR)
            s.settimeout(timeout_s or self.timeout_s)
            out = b""
            while True:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                if not b:
                    break
                out += b
                if expect and re.search(expect.encode(), out):
                    break
        return out.decode(errors="replace")


def tap_counters(prefix, ssh_host):
    if ssh_host:
        # DPDK's own client on the DUT host; one query, JSON back.
        r = subprocess.run(["ssh", ssh_host, f"echo /millipede/tap/stats | dpdk-telemetry.py -f {prefix}"],
                           capture_output=True, text=True, timeout=30)
        m = re.search(r'\{"/millipede/tap/stats".*\}', r.stdout)
        if not m:
            raise RuntimeError(f"no tap counters from {ssh_host}: {r.stdout[-300:]} {r.stderr[-300:]}")
        return json.loads(m.group(0))["/millipede/tap/stats"]
    t = rfc2544.Telemetry(prefix)
    try:
        return t.query("/millipede/tap/stats")
    finally:
        t.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=22022)
    ap.add_argument("--tap-prefix", default="rte", help="the tap's EAL --file-prefix (telemetry socket)")
    ap.add_argument("--tap-ssh", default=None, help="the tap runs on this host (ssh, dpdk-telemetry.py)")
    ap.add_argument("--loopback", action="store_true", help="count Pktgen's own receive (ports cabled 0<->1)")
    ap.add_argument("--link-gbps", type=float, default=100.0, help="per port")
    ap.add_argument("--sizes", default="64 512 1518")
    ap.add_argument("--flows", default="1000 100000 1000000")
    ap.add_argument("--trial-seconds", type=float, default=10.0)
    ap.add_argument("--resolution", type=float, default=0.005)
    ap.add_argument("--max-trials", type=int, default=16)
    ap.add_argument("--out", default="build/rfc2544-pktgen")
    a = ap.parse_args()

    pg = Pktgen(a.host, a.port)
    try:
        pg.lua('print("PKTGEN_ALIVE")', expect="PKTGEN_ALIVE", timeout_s=10)
    except OSError as e:
        sys.exit(f"pktgen_rfc2544.py: no Pktgen Lua socket at {a.host}:{a.port} ({e}); start pktgen with -G "
                 "and -f tools/bench/pktgen/tap-setup.lua (tools/bench/pktgen/tap-2x100g.cfg)")
    os.makedirs(a.out, exist_ok=True)
    results = {"conditions": {"generator": "pktgen", "link_gbps_per_port": a.link_gbps, "ports": 2,
                              "loopback": a.loopback, "trial_seconds": a.trial_seconds,
                              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())},
               "curves": [], "testpmd": [], "errors": []}
    for size in [int(s) for s in a.sizes.split()]:
        line_pps = a.link_gbps * 1e9 / ((size + 20) * 8)      # per port
        for flows in [int(f) for f in a.flows.split()]:
            label = f"pktgen-{size}B-{flows}flows"
            out = pg.lua(f"TAP_SETUP_NO_DEFAULT = true\nprint('FLOWS ' .. tap_setup({size}, {flows}))",
                         expect=r"FLOWS \d+")
            m = re.search(r"FLOWS (\d+)", out)
            if not m:
                results["errors"].append({"label": label, "error": f"tap_setup failed: {out[-300:]}"})
                continue
            real_flows = int(m.group(1))

            def trial(rate_pps):
                # rate_pps is the total of both ports; each port sends half.
                per_port = rate_pps / 2
                pct = min(100.0, 100.0 * per_port / line_pps)
                count = max(1, int(per_port * a.trial_seconds))
                before = None if a.loopback else tap_counters(a.tap_prefix, a.tap_ssh)
                o = pg.lua(f"tap_trial_line({pct:.4f}, {count}, {int(a.trial_seconds * 1000)})",
                           expect=r"TAPTRIAL .*\n", timeout_s=a.trial_seconds + 60)
                mm = re.search(r"TAPTRIAL opackets=(\d+),(\d+) ipackets=(\d+),(\d+)", o)
                if not mm:
                    raise RuntimeError(f"no trial result from pktgen: {o[-300:]}")
                o0, o1, i0, i1 = map(int, mm.groups())
                offered = o0 + o1
                if a.loopback:
                    received = i0 + i1
                else:
                    time.sleep(0.2)
                    after = tap_counters(a.tap_prefix, a.tap_ssh)
                    received = after["worker_packets"] - before["worker_packets"]
                lost = max(offered - received, 0)
                return {"rate": offered / a.trial_seconds, "target_pps": rate_pps, "pct_of_line": pct,
                        "offered": offered, "received": received, "lost": lost,
                        "loss_ratio": lost / offered if offered else 1.0}

            res = rfc2544.search(trial, 2 * line_pps, resolution=a.resolution, max_trials=a.max_trials,
                                 log=rfc2544.log)
            res.update({"label": label, "generator": "pktgen", "size": str(size), "flows": real_flows,
                        "trial_seconds": a.trial_seconds})
            for t in ("ndr", "pdr"):
                res[t]["mpps"] = round(res[t]["rate_pps"] / 1e6, 4)
                res[t]["gbps_l1"] = round(res[t]["rate_pps"] * (size + 20) * 8 / 1e9, 3)
            results["curves"].append(res)
            rfc2544.log(f"{label}: NDR {res['ndr']['mpps']} Mpps, PDR {res['pdr']['mpps']} Mpps")
    path = os.path.join(a.out, "rfc2544.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    rfc2544.plot(results, a.out, path)
    print(json.dumps(rfc2544.summary_table(results)))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
