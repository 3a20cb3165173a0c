#!/usr/bin/python3
"""Plot tools/bench/transport.sh's JSON: throughput against legs, one line per
worker count, with socat's two loopback baselines as horizontal lines.

    tools/bench/plot_transport.py RESULT.json OUT.png   (Debian's python3 + python3-matplotlib)
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1]) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{sys.argv[0]}: cannot read {sys.argv[1]}: {e}", file=sys.stderr)
        return 1
    rows = d.get("matrix") or []
    if not rows:
        print(f"{sys.argv[0]}: {sys.argv[1]} has no matrix (run with BENCH_MATRIX set)", file=sys.stderr)
        return 1
    systems = d["systems"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for workers, logical in sorted({(r["workers"], r.get("logical", False)) for r in rows}):
        mine = [r for r in rows if r["workers"] == workers and r.get("logical", False) == logical]
        what = f"{workers} worker{'s' if workers > 1 else ''}" + (" on 1 lcore (logical)" if logical else
                                                                 " lcores" if workers > 1 else "")
        pts = sorted((r["legs"], r["mb_per_s"]) for r in mine if r["mb_per_s"])
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"dpdk-millipede memif, {what} (wall)")
        only = sorted((r["legs"], systems[r["system"]].get("transfer_only_mb_per_s")) for r in mine)
        only = [p for p in only if p[1]]
        if only:
            ax.plot([p[0] for p in only], [p[1] for p in only], marker="x", linestyle="--",
                    label=f"the same, {what}, transfer only (no EAL start)")
    for name, style in (("socat", ":"), ("socat_b1m", "-.")):
        v = systems.get(name, {}).get("mb_per_s")
        if v:
            ax.axhline(v, linestyle=style, color="grey", label=f"{name.replace('_b1m', ' -b 1048576')}, loopback TCP")
    ax.set_xscale("log", base=2)
    legs = sorted({r["legs"] for r in rows})
    ax.set_xticks(legs, [str(x) for x in legs])
    ax.set_xlabel("legs (TCP connections)")
    ax.set_ylabel("MB/s (median of the runs)")
    ax.set_title(f"{d['bytes'] / 2**30:.2f} GiB stdin -> stdout, {d['conditions']['cpus']} vCPUs, "
                 f"{d['repeats']} repeats")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
