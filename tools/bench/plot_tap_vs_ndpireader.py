#!/usr/bin/python3
"""Plots passes of tools/bench/tap_vs_ndpireader.sh: each pass's wall time
per run, ndpiReader against tap, side by side.

    plot_tap_vs_ndpireader.py OUT.json OUT.png LABEL=PASS.jsonl...

Each PASS.jsonl is the script's output (one JSON line per run, then the
summary line). OUT.json collects the passes as they are, under their labels.
"""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt


def load(path):
    runs, summary = [], None
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        if d.get("summary"):
            summary = d
        else:
            runs.append(d)
    if summary is None:
        sys.exit(f"{path}: no summary line (did the pass finish?)")
    return {"runs": runs, "summary": summary}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out_json, out_png = sys.argv[1], sys.argv[2]
    passes = {}
    for arg in sys.argv[3:]:
        label, _, path = arg.partition("=")
        if not path:
            sys.exit(f"{arg}: expected LABEL=PASS.jsonl")
        passes[label] = load(path)
    json.dump(passes, open(out_json, "w"), indent=1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = 0
    ticks, names = [], []
    for label, p in passes.items():
        for tool, colour in (("ndpiReader", "tab:gray"), ("dpdk-millipede tap", "tab:blue")):
            walls = [r["wall_s"] * 1000 for r in p["runs"] if r["tool"] == tool]
            ax.scatter([x] * len(walls), walls, color=colour, s=18, label=tool if x < 2 else None)
            ax.hlines(sorted(walls)[len(walls) // 2], x - 0.3, x + 0.3, color=colour)
            ticks.append(x)
            names.append(("ndpiReader" if tool == "ndpiReader" else "tap") + "\n" + label)
            x += 1
        x += 0.5
    ax.set_xticks(ticks)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("wall time, ms (line: median)")
    ax.set_ylim(bottom=0)
    ax.set_title("587,400-packet capture: ndpiReader vs dpdk-millipede tap (1 worker)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


if __name__ == "__main__":
    main()
