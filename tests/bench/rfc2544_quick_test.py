#!/usr/bin/env python3
"""A short real RFC 2544 search (tools/bench/rfc2544.py matrix --quick):
dpdk-millipede tap as memif server, millipede-pacer and dpdk-testpmd
(flowgen) as clients. Checks what the figures must satisfy whatever the
machine's load: the search ran and bounded itself, every packet a generator
handed to memif reached the tap (the generator's and the tap's counters
agree exactly), the pacer never offered more than asked, NDR <= PDR, the
NDR has a trial without loss and the PDR one within 0.1 %, and a plot was
written.

usage: rfc2544_quick_test.py BUILD_DIR      exit 0 pass, 1 fail
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def main():
    build = sys.argv[1]
    out = tempfile.mkdtemp(prefix="rfc2544q")
    try:
        cmd = [sys.executable, os.path.join(ROOT, "tools", "bench", "rfc2544.py"), "matrix", "--quick",
               "--build", build, "--out", out]
        print(" ".join(cmd), flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        sys.stderr.write(r.stderr[-3000:])
        check(r.returncode == 0, f"rfc2544.py --quick exits 0 (rc={r.returncode})")
        with open(os.path.join(out, "rfc2544.json")) as f:
            res = json.load(f)
        check(res["errors"] == [], f"no errors: {res['errors']}")
        check(len(res["curves"]) == 1 and len(res["testpmd"]) == 1, "one search and one testpmd run")
        for c in res["curves"]:
            tr = c["trials"]
            check(3 <= len(tr) <= c["max_trials"], f"{c['label']}: {len(tr)} trials, bounded by {c['max_trials']}")
            for t in tr + [c["learning_trial"], c["unpaced_trial"]]:
                check(t["sent"] == t["tap_rx"],
                      f"{c['label']} at {t['target_pps']:.0f} pps: the tap received every packet memif took "
                      f"({t['tap_rx']} of {t['sent']})")
                check(t["offered"] == t["sent"] + t["refused_by_memif"], "offered = sent + refused")
                check(t["tap_inspected"] + t["tap_ring_drops"] == t["tap_rx"] and t["unaccounted"] == 0,
                      "every received packet inspected or counted as a ring drop (none rejected)")
                check(t["settled"], "the tap's counters settled after the trial")
                if t["target_pps"] > 0:
                    check(t["rate"] <= t["target_pps"] * 1.01,
                          f"the pacer offered no more than asked ({t['rate']:.0f} <= {t['target_pps']:.0f})")
            n, p = c["ndr"], c["pdr"]
            check(n["rate_pps"] <= p["rate_pps"], f"NDR {n['mpps']} <= PDR {p['mpps']} Mpps")
            if n["rate_pps"] > 0:
                check(n["trial"] is not None and n["trial"]["loss_ratio"] == 0, "the NDR has a trial without loss")
            if p["rate_pps"] > 0:
                check(p["trial"] is not None and p["trial"]["loss_ratio"] <= 0.001, "the PDR trial lost <= 0.1 %")
            check(os.path.getsize(os.path.join(out, c["label"] + ".png")) > 1000, "the curve's PNG was written")
        for t in res["testpmd"]:
            # testpmd counts a burst as TX once it is in the memif ring; it
            # stops and leaves at the first byte on stdin, and a burst still
            # in the ring then is never read: the server's link goes down
            # with the client. So at most one burst (--burst=32) may be
            # missing, never more, and the tap never counts more than sent.
            missing = t["testpmd_tx"] - t["tap_rx"]
            check(0 <= missing <= 32,
                  f"{t['label']}: testpmd's TX-packets equal the tap's rx, but for at most the one burst still in "
                  f"the ring when testpmd left ({t['testpmd_tx']} / {t['tap_rx']})")
            check(t["tap_inspected"] > 0 and t["offered"] >= t["tap_inspected"], "testpmd run inspected packets")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
