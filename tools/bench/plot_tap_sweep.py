#!/usr/bin/python3
"""Plots tools/bench/tap_sweep.py's JSON lines: ring drops per policy against
the offered load, one panel per worker count (median over the repeats, bars
from the lowest to the highest repeat), and prints the table docs/benchmarks.md
shows. Needs matplotlib (/usr/bin/python3 on Debian has it).

  /usr/bin/python3 tools/bench/plot_tap_sweep.py SWEEP.json [more.json ...] OUT.png
"""
import json
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

POLICIES = ["hash", "pending", "busy", "busy+migrate"]


def load(paths):
    runs = []
    for p in paths:
        with open(p) as f:
            runs += [json.loads(l) for l in f if l.strip()]
    return [r for r in runs if r.get("phase") == "sweep"]


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    runs = load(sys.argv[1:-1])
    out = sys.argv[-1]
    groups = defaultdict(list)  # (workers, policy, fraction) -> runs
    for r in runs:
        groups[(r["workers"], r["policy"], r["fraction"])].append(r)
    workers = sorted({k[0] for k in groups})
    fractions = sorted({k[2] for k in groups})
    fig, axes = plt.subplots(1, len(workers), figsize=(6 * len(workers), 4.2), sharey=True, squeeze=False)
    print("| workers | offered (of 1-worker drain) | policy | runs | ring drops, median [min-max] | "
          "missed (rx late), median | imbalance offered | migrations, median | load avg before |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ax, w in zip(axes[0], workers):
        for k, pol in enumerate(POLICIES):
            xs, med, lo, hi = [], [], [], []
            for frac in fractions:
                g = groups.get((w, pol, frac))
                if not g:
                    continue
                shares = [100 * r["drop_share"] for r in g]
                xs.append(100 * frac + (k - 1.5) * 0.6)
                m = statistics.median(shares)
                med.append(m)
                lo.append(m - min(shares))
                hi.append(max(shares) - m)
                missed = statistics.median(100 * r["missed"] / max(r["offered"], 1) for r in g)
                loads = [r["loadavg_before"][0] for r in g]
                pps = statistics.median(r["target_pps"] for r in g)
                print(f"| {w} | {100 * frac:.0f} % ({pps / 1e6:.2f} Mpps) | {pol} | {len(g)} | "
                      f"{m:.2f} % [{min(shares):.2f}-{max(shares):.2f}] | {missed:.2f} % | "
                      f"{statistics.median(r['imbalance_offered'] for r in g):.3f} | "
                      f"{statistics.median(r['migrations'] for r in g):.0f} | {min(loads):.1f}-{max(loads):.1f} |")
            ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=3, label=pol)
        ax.set_title(f"{w} worker{'s' if w > 1 else ''} on one worker lcore (CPU 0)")
        ax.set_xlabel("offered load, % of the 1-worker drain rate (tap --replay-pps)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("ring drops, % of packets received")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
