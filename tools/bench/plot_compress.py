#!/usr/bin/python3
"""Plot tools/bench/compress.sh's JSON: per input, each system's median
throughput (wall, MB/s of original bytes) against its compression ratio,
with the min..max of its runs as an error bar.

usage: plot_compress.py RESULTS.json OUT.png
RESULTS.json is docs/compress_bench.json (a dict of passes, each as
compress.sh writes it) or one pass on its own."""
import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"millipede_compress": "dpdk-millipede compress", "millipede_raw": "dpdk-millipede, raw",
          "gzip1_socat": "gzip -1 | socat", "zstd1_socat": "zstd -1 | socat"}


def passes(doc):
    return [doc] if "inputs" in doc else [v for v in doc.values() if isinstance(v, dict) and "inputs" in v]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    points = {}  # (input, label) -> (ratio, [mb/s of ok runs])
    for p in passes(doc):
        suffix = f", {p.get('compress_threads', 1)} threads" if p.get("compress_threads", 1) != 1 else ""
        for inp, d in p["inputs"].items():
            for system, s in d.get("systems", {}).items():
                runs = [r["mb_per_s"] for r in s.get("runs", []) if r.get("ok")]
                if not runs:
                    continue
                label = LABELS.get(system, system) + (suffix if system == "millipede_compress" else "")
                ratio = s.get("ratio") or statistics.median([r.get("ratio", 1.0) for r in s["runs"]])
                points[(inp, label)] = (ratio, runs)
    if not points:
        sys.exit(f"{sys.argv[1]}: no successful runs to plot")
    inputs = sorted({k[0] for k in points})
    fig, axes = plt.subplots(1, len(inputs), figsize=(6 * len(inputs), 4.5), squeeze=False)
    for ax, inp in zip(axes[0], inputs):
        for (i, label), (ratio, runs) in sorted(points.items()):
            if i != inp:
                continue
            med = statistics.median(runs)
            ax.errorbar([ratio], [med], yerr=[[med - min(runs)], [max(runs) - med]], fmt="o", capsize=4,
                        label=f"{label} ({med:.0f} MB/s)")
        ax.set_title(f"{inp}: throughput against ratio (median, min..max)")
        ax.set_xlabel("compression ratio (original / bytes sent)")
        ax.set_ylabel("MB/s of original bytes, wall")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)
    print(f"wrote {sys.argv[2]} ({len(points)} points)")


if __name__ == "__main__":
    main()
