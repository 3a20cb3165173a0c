#!/usr/bin/python3
"""The parity stall table and plot of docs/benchmarks.md ("Parity across
legs"): runs the simulator's parity-stall (tools/bench/parity_stall.cpp) on
each scenario with each queue-ahead rule, and plots the longest output stall
after the link cut and the goodput of every run.

usage: parity_stall.py run BUILD_DIR OUT.json     # e.g. build docs/parity_stall.json
       parity_stall.py plot IN.json OUT.png       # e.g. docs/parity_stall.json docs/parity_stall.png
       parity_stall.py table IN.json              # the markdown table of docs/benchmarks.md

The simulator runs on a virtual clock: the figures do not depend on the
machine's load. Plotting needs matplotlib (/usr/bin/python3 has it)."""
import json
import os
import subprocess
import sys

# (label, parity-stall arguments)
SCENARIOS = [
    ("64 KiB chunks, 1 ms", []),
    ("16 KiB chunks, 1 ms", ["--chunk", "16384"]),
    ("parity 2, 64 KiB, 1 ms", ["--k", "2"]),
    ("rx window 32, 64 KiB, 1 ms", ["--window", "32"]),
    ("64 KiB chunks, 25 ms", ["--delay-us", "25000"]),
    ("16 KiB chunks, 25 ms", ["--chunk", "16384", "--delay-us", "25000"]),
    # the same path with the legs' TCP buffers and the chunks in flight
    # raised, so that the links and not the buffers limit the rate
    ("64 KiB, 25 ms, 4 MiB TCP buffers", ["--delay-us", "25000", "--in-flight", "128", "--window", "128", "--mib", "64",
                                          "--tcp-buffer", "4194304"]),
]
RULES = ["auto", "off", "65536"]  # --queue-ahead of the parity run
GOAL_MS = 10


def run(build, out):
    binary = os.path.join(build, "tests", "sim", "parity-stall")
    doc = {"tool": "parity-stall", "simulated": True, "goal_ms": GOAL_MS, "scenarios": []}
    for label, args in SCENARIOS:
        sc = {"label": label, "args": args, "no_parity": None, "parity": {}}
        for rule in RULES:
            cmd = [binary, *args, "--queue-ahead", rule]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                sys.exit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()} {p.stdout[-400:]}")
            res = json.loads(p.stdout)
            sc["scenario"] = res["scenario"]
            sc["no_parity"] = res["runs"][0]
            sc["parity"][rule] = res["runs"][1]
            print(f"{label:28s} {rule:6s} stall {res['runs'][1]['longest_stall_after_cut_us'] / 1000:7.1f} ms "
                  f"goodput {res['runs'][1]['goodput_mbps']:6.1f} Mbit/s", file=sys.stderr)
        doc["scenarios"].append(sc)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def rule_name(rule):
    return {"auto": "auto (default)", "off": "off", "65536": "fixed 64 KiB"}.get(rule, rule)


def table(path):
    doc = json.load(open(path))
    print("| scenario | parity | queue-ahead | longest stall before the cut | longest stall after the cut | "
          "goodput | chunks re-sent | rebuilt | parity chunks sent | bound per leg at the end |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for sc in doc["scenarios"]:
        rows = [("0", "-", sc["no_parity"])] + [(str(sc["parity"][r]["parity"]), rule_name(r), sc["parity"][r])
                                                  for r in RULES]
        for parity, rule, r in rows:
            qa = r.get("queue_ahead") or {}
            bounds = qa.get("bound_bytes_at_end") or []
            live = [b for i, b in enumerate(bounds) if b is not None and i != 1]  # link 1 is the one cut
            lo, hi = (f"{min(live) / 1024:.0f}", f"{max(live) / 1024:.0f}") if live else ("", "")
            bound = "-" if not live else (f"{lo}-{hi} KiB" if lo != hi else f"{lo} KiB")
            stall = r["longest_stall_after_cut_us"] / 1000
            print(f"| {sc['label']} | {parity} | {rule} | {r['longest_stall_before_cut_us'] / 1000:.1f} ms | "
                  f"**{stall:.1f} ms** | {r['goodput_mbps']:.0f} Mbit/s | {r['chunks_resent']} | "
                  f"{r['chunks_rebuilt']} | {r['parity_chunks_sent']} | {bound} |")


def plot(path, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.load(open(path))
    scs = doc["scenarios"]
    series = [("no parity", lambda sc: sc["no_parity"], "#999999")] + [
        (f"parity, queue-ahead {rule_name(r)}", (lambda r: lambda sc: sc["parity"][r])(r), c)
        for r, c in zip(RULES, ["#1f77b4", "#d62728", "#2ca02c"])]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    width = 0.8 / len(series)
    xs = range(len(scs))
    for i, (name, get, colour) in enumerate(series):
        pos = [x - 0.4 + width * (i + 0.5) for x in xs]
        ax1.bar(pos, [get(sc)["longest_stall_after_cut_us"] / 1000 for sc in scs], width, label=name, color=colour)
        ax2.bar(pos, [get(sc)["goodput_mbps"] for sc in scs], width, label=name, color=colour)
    ax1.axhline(doc.get("goal_ms", GOAL_MS), color="black", linestyle="--", linewidth=1)
    ax1.text(len(scs) - 0.5, doc.get("goal_ms", GOAL_MS) * 1.08, "goal: 10 ms", ha="right", fontsize=8)
    ax1.set_yscale("log")
    ax1.set_ylabel("longest output stall after the link cut (ms, log)")
    ax2.set_ylabel("goodput (Mbit/s)")
    for ax in (ax1, ax2):
        ax.set_xticks(list(xs))
        ax.set_xticklabels([sc["label"] for sc in scs], rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle("Parity across legs: 4 legs of 100 Mbit/s (one-way delay as labelled), link 1 cut for good "
                 "after 4 MiB; simulated (virtual clock)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "plot":
        plot(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
