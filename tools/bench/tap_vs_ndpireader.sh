#!/bin/sh
# Reading a capture file: Debian's ndpiReader (nDPI's own reader, one
# thread) against `dpdk-millipede tap` with one worker, on the same file and
# machine (issue 14 part 6). The file is tools/bench/tap.sh's seven captures
# appended 150 times (mergecap -a, pcap format: 587,400 packets), written
# once into $BUILD. Runs alternate (ndpiReader, tap, ndpiReader, ...) so
# that both see the same machine; each run is timed from fork to exit (wall
# time, EAL start-up and teardown included for tap; ndpiReader prints its
# usual report, without -q, which prints nothing). Prints one JSON line
# per run, then one summary line with the medians:
#
#   tools/bench/tap_vs_ndpireader.sh [runs]     # default 5 of each
#
# Environment: BUILD (default build), PCAPS (default ../shared/pcaps),
# REPEAT (default 150), LCORES (default 0-1: the main lcore controls, lcore
# 1 reads, classifies and runs the one worker), READER (tap's
# --capture-reader, default mmap; net_pcap for the libpcap path), NICE
# (default 0), EXTRA (more tap options, e.g. "--flow-capacity 65536
# --dpi-flows 4096": smaller tables than the defaults, sized for a mirror
# port, cost less to set up), MEM (EAL memory options; default: none when 512
# 2 MiB hugepages are free, so EAL takes hugepages as tap's allocations need
# them, as a user's tap without -m does; else "--no-huge -m 1024").
# "-m 512" (this script's earlier default) makes EAL reserve and clear all
# 512 MiB first: 0.40-0.42 s wall against 0.35-0.36 s without it here.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PCAPS=${PCAPS:-../shared/pcaps}
REPEAT=${REPEAT:-150}
LCORES=${LCORES:-0-1}
READER=${READER:-mmap}
NICE=${NICE:-0}
EXTRA=${EXTRA:-}
RUNS=${1:-5}
CAPTURES="whatsapp.pcap quic.pcap dropbox.pcap tor.pcap bittorrent.pcap teamviewer.pcap openvpn.pcap"
PREFIX=benchvs$$

[ -d "$BUILD" ] || meson setup "$BUILD" -Dbuildtype=release >&2
ninja -C "$BUILD" app/dpdk-millipede >&2
command -v ndpiReader >/dev/null || { echo "tap_vs_ndpireader.sh: ndpiReader missing (apt-get install libndpi-bin)" >&2; exit 2; }
command -v mergecap >/dev/null || { echo "tap_vs_ndpireader.sh: mergecap missing (apt-get install wireshark-common)" >&2; exit 2; }

FILE="$BUILD/tap-vs-ndpireader-x$REPEAT.pcap"
if [ ! -f "$FILE" ]; then
    set --
    for c in $CAPTURES; do
        [ -f "$PCAPS/$c" ] || { echo "tap_vs_ndpireader.sh: no capture $PCAPS/$c" >&2; exit 2; }
    done
    args=""
    i=0
    while [ $i -lt "$REPEAT" ]; do
        for c in $CAPTURES; do args="$args $PCAPS/$c"; done
        i=$((i + 1))
    done
    # shellcheck disable=SC2086
    mergecap -a -F pcap -w "$FILE.tmp" $args
    mv "$FILE.tmp" "$FILE"
fi

if [ -z "${MEM+set}" ]; then
  MEM="--no-huge -m 1024"
  free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
  if [ "${free:-0}" -ge 512 ] && grep -q hugetlbfs /proc/mounts; then MEM=""; fi
fi
cleanup() { rm -f /dev/hugepages/"$PREFIX"* 2>/dev/null || true; }
trap cleanup EXIT

# Warm the page cache: both read the file from memory, as they would a
# capture just written.
cat "$FILE" >/dev/null

python3 - "$RUNS" "$FILE" "$BUILD/app/dpdk-millipede" "$LCORES" "$PREFIX" "$MEM" "$READER" "$NICE" "$EXTRA" <<'PY'
import json, os, re, statistics, subprocess, sys, time
runs, path, app, lcores, prefix, mem, reader, nice, extra = sys.argv[1:10]
runs = int(runs)
nice_cmd = ["nice", "-n", nice]

def timed(cmd):
    t0 = time.monotonic()
    p = subprocess.run(nice_cmd + cmd, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"tap_vs_ndpireader.sh: {cmd[0]} exited {p.returncode}: {p.stderr.strip()[-400:]}")
    return wall, p

def ndpireader():
    # Not -q: quiet mode prints nothing, not even its throughput.
    wall, p = timed(["ndpiReader", "-i", path])
    text = p.stdout + p.stderr
    def figure(label):
        m = re.search(label + r":\s*([\d.,]+)\s*([KM]?)", text)
        if not m:
            return None
        v = float(m.group(1).replace(",", ""))
        return v * {"": 1, "K": 1e3, "M": 1e6}[m.group(2)]
    proc = re.search(r"Packet Processing Time:\s*(\d+)\s*msec", text)
    total = re.search(r"of (\d+) packets total", text)
    return {"tool": "ndpiReader", "wall_s": round(wall, 4), "packets": int(total.group(1)) if total else None,
            "processing_s": int(proc.group(1)) / 1000 if proc else None,
            "reported_pps": figure("nDPI throughput")}

def tap():
    cmd = [app, "--lcores", lcores, "--file-prefix", prefix, "--no-pci", "--log-level=lib.eal:error"] + mem.split() + \
          ["--vdev", f"net_pcap0,rx_pcap={path}", "--", "tap", "--workers", "1", "--capture-reader", reader,
           "--exit-on-idle", "50", "--summary", "-"] + extra.split()
    wall, p = timed(cmd)
    s = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
    return {"tool": "dpdk-millipede tap", "reader": reader, "wall_s": round(wall, 4), "run_s": round(s["seconds"], 4),
            "packets": s["packets"], "run_mpps": round(s["packets"] / s["seconds"] / 1e6, 3),
            "dpi_packets": s["dpi"]["packets"], "ring_drops": s["drops"]["ring_full"],
            "l7": {k: s["dpi"][k] for k in ("detected", "guessed", "unknown")}}

results = {"ndpiReader": [], "tap": []}
for i in range(runs):
    for name, fn in (("ndpiReader", ndpireader), ("tap", tap)):
        r = fn()
        r["run"] = i
        r["load_before"] = float(open("/proc/loadavg").read().split()[0])
        results[name].append(r)
        print(json.dumps(r), flush=True)
        for f in os.listdir("/dev/hugepages") if os.path.isdir("/dev/hugepages") else []:
            if f.startswith(prefix):
                try: os.remove(os.path.join("/dev/hugepages", f))
                except OSError: pass
med = lambda rs, k: statistics.median(r[k] for r in rs)
n_wall, t_wall = med(results["ndpiReader"], "wall_s"), med(results["tap"], "wall_s")
print(json.dumps({
    "summary": True, "file": os.path.basename(path), "file_bytes": os.path.getsize(path),
    "packets": results["tap"][0]["packets"], "runs": runs, "lcores": lcores, "reader": reader, "memory": mem, "extra": extra,
    "ndpireader_wall_s_median": n_wall, "tap_wall_s_median": t_wall,
    "tap_run_s_median": med(results["tap"], "run_s"),
    "ndpireader_processing_s_median": statistics.median(r["processing_s"] or 0 for r in results["ndpiReader"]),
    "ndpireader_reported_pps_median": statistics.median(r["reported_pps"] or 0 for r in results["ndpiReader"]),
    "ratio_ndpireader_wall_over_tap_wall": round(n_wall / t_wall, 3),
    "target_met": t_wall < n_wall}))
PY
