#!/usr/bin/env bash
# tools/bench/transport.sh - dpdk-millipede tx/rx against socat, one JSON object.
#
#   tools/bench/transport.sh [repeats]          (default 3)
#
# Moves BENCH_BYTES (default 1 GiB) of random data from one pre-generated file
# (read once beforehand, so it is in the page cache) to /dev/null:
#   millipede_memif      dpdk-millipede tx -> 2 memif links -> rx, BENCH_THREADS legs
#   socat                socat -u STDIN TCP:127.0.0.1 -> socat -u TCP-LISTEN STDOUT
#                        (one loopback TCP connection, socat's default 8 KiB buffer)
#   socat_b1m            the same with socat -b 1048576 (a tuned baseline)
#   millipede_af_packet  (secondary, BENCH_AF_PACKET=1) two veth pairs in two
#                        network namespaces, DPDK's af_packet vdev
# One repetition runs every system once, in that order; `repeats` repetitions.
# Each time runs from the start of the sender until both sender and receiver
# have exited (the receiver is started first and is listening). A run counts
# only with exit status 0 on both sides (dpdk-millipede: the receiver verified
# length and CRC64; socat: no error). The JSON has every run, the medians,
# the ratio socat / millipede (> 1 means dpdk-millipede is faster), each
# process's CPU time (user/sys, from wait4), the lcore map, the load average
# and CPU steal during the runs, the kernel and the exact commands.
#
# Environment: BENCH_BYTES (1073741824), BENCH_THREADS (4), BENCH_CHUNK (app
# default), BENCH_BUILD_DIR (build-bench), BENCH_RX_LCORES (0@0),
# BENCH_TX_LCORES (0@1), BENCH_AF_PACKET (1; 0 skips it), BENCH_SOCAT_B1M (1),
# BENCH_EXTRA_TX / BENCH_EXTRA_RX (extra words for dpdk-millipede tx / rx),
# BENCH_MEMIF_ZC (1: memif zero-copy on the tx side, with --single-file-segments),
# BENCH_INPUT (an existing input file instead of BENCH_BYTES of fresh random data),
# BENCH_NO_BUILD (1: use the binary as it is; the JSON records its source state),
# BENCH_NICE (default -20, applied alike to every process of every system: the
# machine is shared with other builds; 0 runs at normal priority).
set -uo pipefail
source "$(dirname "$0")/../lib/setup.sh"
cd "$MILLIPEDE_ROOT"

repeats=${1:-3}
case "$repeats" in ''|*[!0-9]*|0) echo "usage: $0 [repeats >= 1]" >&2; exit 2;; esac
bytes=${BENCH_BYTES:-1073741824}
build_dir=${BENCH_BUILD_DIR:-build-bench}
if [ "$(id -u)" -ne 0 ]; then echo "$0: needs root (hugepages, network namespaces)" >&2; exit 1; fi

install_packages || { echo "$0: could not install the Debian packages" >&2; exit 1; }
reserve_hugepages 512
free_pages=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "$MILLIPEDE_HUGEPAGES" != 1 ] || [ "${free_pages:-0}" -lt 256 ]; then
  echo "$0: memif needs 256 free 2 MiB hugepages (have ${free_pages:-0})" >&2
  exit 1
fi
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  log "building into $build_dir/"
  if ! { build_into "$build_dir" -Dbuildtype=release && timeout 2400 ninja -C "$build_dir" app/dpdk-millipede >/dev/null; }; then
    echo "$0: build failed" >&2
    exit 1
  fi
fi
[ -x "$build_dir/app/dpdk-millipede" ] || { echo "$0: no $build_dir/app/dpdk-millipede" >&2; exit 1; }

tag="mpb$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/millipede-bench.XXXXXX")
sockdir="/run/millipede-bench-$$"
mkdir -p "$sockdir"
cleanup() {
  ip netns del "${tag}tx" 2>/dev/null
  ip netns del "${tag}rx" 2>/dev/null
  rm -rf "$work" "$sockdir"
  rm -f /dev/hugepages/"${tag}"* 2>/dev/null
  rm -rf /var/run/dpdk/"${tag}"* 2>/dev/null
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ "${BENCH_AF_PACKET:-1}" = 1 ]; then
  ip netns add "${tag}tx" && ip netns add "${tag}rx" || { echo "$0: cannot create network namespaces" >&2; exit 1; }
  for i in 0 1; do
    ip link add "${tag}a$i" netns "${tag}tx" type veth peer name "${tag}b$i" netns "${tag}rx" ||
      { echo "$0: cannot create a veth pair" >&2; exit 1; }
    for pair in "${tag}tx ${tag}a$i" "${tag}rx ${tag}b$i"; do
      set -- $pair
      ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1" 2>/dev/null
      ip netns exec "$1" ethtool -K "$2" gro off gso off tso off tx off rx off >/dev/null 2>&1
      ip -n "$1" link set "$2" up
    done
  done
fi

input="$work/in"
if [ -n "${BENCH_INPUT:-}" ]; then
  input=$BENCH_INPUT # an existing file: its size is the transfer
  bytes=$(stat -c %s "$input") || exit 1
else
  log "making $bytes bytes of random input in $input"
  head -c "$bytes" /dev/urandom >"$input" || { echo "$0: cannot write $input" >&2; exit 1; }
fi
cat "$input" >/dev/null # into the page cache

BENCH_INFILE=$input BENCH_TAG=$tag BENCH_WORK=$work BENCH_SOCK=$sockdir BENCH_BIN="$MILLIPEDE_ROOT/$build_dir/app/dpdk-millipede" \
BENCH_REPEATS=$repeats BENCH_BYTES=$bytes python3 - <<'PY'
import json, os, platform, re, shlex, socket, statistics, subprocess, sys, time

env = os.environ
tag, work, sockdir, binary = env["BENCH_TAG"], env["BENCH_WORK"], env["BENCH_SOCK"], env["BENCH_BIN"]
repeats, nbytes = int(env["BENCH_REPEATS"]), int(env["BENCH_BYTES"])
threads = env.get("BENCH_THREADS", "4")
rx_lc, tx_lc = env.get("BENCH_RX_LCORES", "0@0"), env.get("BENCH_TX_LCORES", "0@1")
chunk = env.get("BENCH_CHUNK", "")
extra_tx = shlex.split(env.get("BENCH_EXTRA_TX", ""))
extra_rx = shlex.split(env.get("BENCH_EXTRA_RX", ""))
infile = env["BENCH_INFILE"]
limit = str(120 + nbytes // 2_000_000)  # seconds; generous (1 GiB at a few MB/s)
nice = env.get("BENCH_NICE", "-20")
nice_cmd = ["nice", "-n", nice] if nice not in ("", "0") else []

def log(*a):
    print(time.strftime("[%H:%M:%S]"), *a, file=sys.stderr, flush=True)

def cpu_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[7]  # total, steal

def wait_rusage(p):
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, ru.ru_utime, ru.ru_stime

def cleanup_prefix(prefix):
    subprocess.run(f"rm -f /dev/hugepages/{prefix}* ; rm -rf /var/run/dpdk/{prefix}", shell=True)

def millipede_cmds(link, run_id):
    eal = ["--no-pci", "-m", "256", "--log-level=lib.eal:error"]
    words_tx = ["tx", "10.0.0.2", "8834", "tx", "10.0.1.2", "8834", "threads", threads,
                "--ip", "0=10.0.0.1/24", "--ip", "1=10.0.1.1/24", "verbose", "2"]
    words_rx = ["rx", "8834", "--ip", "0=10.0.0.2/24", "--ip", "1=10.0.1.2/24", "verbose", "2"]
    if chunk:
        words_tx += ["--chunk", chunk]
    words_tx += extra_tx
    words_rx += extra_rx
    pre_rx, pre_tx, pre_tx_eal = [], [], []
    if link == "memif":
        d = os.path.join(sockdir, run_id)
        os.makedirs(d, exist_ok=True)
        vrx = ["--vdev", f"net_memif0,role=server,socket={d}/m0.sock,id=0,socket-abstract=no",
               "--vdev", f"net_memif1,role=server,socket={d}/m1.sock,id=0,socket-abstract=no"]
        vtx = ["--vdev", f"net_memif0,role=client,socket={d}/m0.sock,id=0,socket-abstract=no",
               "--vdev", f"net_memif1,role=client,socket={d}/m1.sock,id=0,socket-abstract=no"]
        ready = [f"{d}/m0.sock", f"{d}/m1.sock"]
        if env.get("BENCH_MEMIF_ZC", "0") == "1":  # tx (the client) maps its mbufs into the rings: no copy
            vtx = [v + ",zero-copy=yes" if v.startswith("net_memif") else v for v in vtx]
            pre_tx_eal.append("--single-file-segments")
    else:
        vrx = ["--vdev", f"net_af_packet0,iface={tag}b0,framecnt=4096",
               "--vdev", f"net_af_packet1,iface={tag}b1,framecnt=4096"]
        vtx = ["--vdev", f"net_af_packet0,iface={tag}a0,framecnt=4096",
               "--vdev", f"net_af_packet1,iface={tag}a1,framecnt=4096"]
        pre_rx, pre_tx = ["ip", "netns", "exec", f"{tag}rx"], ["ip", "netns", "exec", f"{tag}tx"]
        ready = []
    prx, ptx = f"{tag}{run_id}rx", f"{tag}{run_id}tx"
    rx = pre_rx + nice_cmd + ["timeout", "-s", "KILL", limit, binary] + eal + ["--file-prefix", prx, "--lcores", rx_lc] + vrx + ["--"] + words_rx
    tx = pre_tx + nice_cmd + ["timeout", "-s", "KILL", limit, binary] + eal + pre_tx_eal + ["--file-prefix", ptx, "--lcores", tx_lc] + vtx + ["--"] + words_tx
    return rx, tx, ready, (prx, ptx)

def listening(port):
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[1].endswith(":%04X" % port) and p[3] == "0A":
                return True
    return False

def socat_cmds(port, buf):
    b = ["-b", str(buf)] if buf else []
    rx = nice_cmd + ["timeout", "-s", "KILL", limit, "socat"] + b + ["-u", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", "STDOUT"]
    tx = nice_cmd + ["timeout", "-s", "KILL", limit, "socat"] + b + ["-u", "STDIN", f"TCP:127.0.0.1:{port}"]
    return rx, tx

def counters(text):
    c = {}
    m = re.findall(r"arp_req (\d+)", text)
    c["arp_requests"] = sum(int(x) for x in m)
    c["tx_drops"] = sum(int(x) for x in re.findall(r" tx_drops (\d+)", text))
    m = re.search(r"complete: .*\(([0-9.]+) s\)", text)
    if m:
        c["own_seconds"] = float(m.group(1))
    m = re.search(r"legs_lost (\d+)", text)
    if m:
        c["legs_lost"] = int(m.group(1))
    m = re.search(r"resent (\d+)", text)
    if m:
        c["chunks_resent"] = int(m.group(1))
    c["eal_invalid_memory_lines"] = text.count("Invalid memory")
    return c

def one_run(system, run_id):
    errs = (os.path.join(work, f"{run_id}.rx.err"), os.path.join(work, f"{run_id}.tx.err"))
    prefixes = ()
    if system.startswith("millipede_"):
        rx, tx, ready, prefixes = millipede_cmds(system.split("_", 1)[1], run_id)
    else:
        port = 20000 + (os.getpid() + int(run_id[1:])) % 20000
        rx, tx = socat_cmds(port, 1048576 if system == "socat_b1m" else 0)
        ready = None
    with open(os.devnull, "wb") as null, open(errs[0], "wb") as e0, open(errs[1], "wb") as e1, open(infile, "rb") as src:
        prx = subprocess.Popen(rx, stdout=null, stderr=e0, stdin=subprocess.DEVNULL)
        t_wait = time.time()
        while time.time() - t_wait < 30:
            if prx.poll() is not None:
                break
            if ready is None and listening(port):
                break
            if ready is not None and all(os.path.exists(p) for p in ready):
                break
            time.sleep(0.02)
        if ready == []:  # af_packet: no rendezvous; let rx reach its loop
            time.sleep(1.0)
        t0 = time.time()
        ptx = subprocess.Popen(tx, stdin=src, stdout=null, stderr=e1)
        tx_rc, tx_u, tx_s = wait_rusage(ptx)
        rx_rc, rx_u, rx_s = wait_rusage(prx)
        t1 = time.time()
    for p in prefixes:
        cleanup_prefix(p)
    texts = [open(f, errors="replace").read() for f in errs]
    r = {"seconds": round(t1 - t0, 3), "ok": tx_rc == 0 and rx_rc == 0, "exit": [tx_rc, rx_rc],
         "cpu_s": {"tx_user": round(tx_u, 3), "tx_sys": round(tx_s, 3), "rx_user": round(rx_u, 3), "rx_sys": round(rx_s, 3)}}
    if system.startswith("millipede_"):
        r["tx"] = counters(texts[1])
        r["rx"] = counters(texts[0])
    if not r["ok"]:
        r["stderr_tail"] = [t.strip().splitlines()[-3:] for t in texts]
    return r, rx, tx

systems = ["millipede_memif", "socat"]
if env.get("BENCH_SOCAT_B1M", "1") == "1":
    systems.append("socat_b1m")
if env.get("BENCH_AF_PACKET", "1") == "1":
    systems.append("millipede_af_packet")

results = {s: {"runs": []} for s in systems}
load_before = os.getloadavg()
tot0, st0 = cpu_ticks()
n = 0
for rep in range(repeats):
    for s in systems:
        n += 1
        run_id = f"r{n}"
        r, rx, tx = one_run(s, run_id)
        results[s]["runs"].append(r)
        results[s]["command_rx"] = " ".join(shlex.quote(x) for x in rx) + " > /dev/null"
        results[s]["command_tx"] = " ".join(shlex.quote(x) for x in tx) + " < INPUT"
        log(f"{s} run {rep + 1}/{repeats}: {r['seconds']} s{'' if r['ok'] else ' FAILED ' + json.dumps(r['exit'])}")
tot1, st1 = cpu_ticks()
load_after = os.getloadavg()

for s in systems:
    ok = [r["seconds"] for r in results[s]["runs"] if r["ok"]]
    results[s]["ok_runs"] = len(ok)
    results[s]["median_s"] = round(statistics.median(ok), 3) if ok else None
    results[s]["mb_per_s"] = round(nbytes / statistics.median(ok) / 1e6, 1) if ok else None
    results[s]["seconds_all"] = [r["seconds"] for r in results[s]["runs"]]
    if s.startswith("millipede_"):
        # 2 ARP requests (one per port) is the normal start; more means a
        # request was dropped before the link was up and re-sent after the
        # neighbour cache's 1 s retry interval: about 1 s of that run.
        results[s]["runs_with_arp_retry"] = sum(1 for r in results[s]["runs"] if r["tx"]["arp_requests"] > 2)

def ratio(base, sut):
    a, b = results.get(base, {}).get("median_s"), results.get(sut, {}).get("median_s")
    return round(a / b, 3) if a and b else None

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()

try:
    dpdk = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True, text=True).stdout.strip()
except OSError:
    dpdk = ""
try:
    socat_v = subprocess.run(["socat", "-V"], capture_output=True, text=True).stdout.splitlines()[1].strip()
except (OSError, IndexError):
    socat_v = ""

def git(*a):
    try:
        return subprocess.run(["git", *a], capture_output=True, text=True, timeout=30).stdout.rstrip("\n")
    except (OSError, subprocess.SubprocessError):
        return ""

st = os.stat(binary)
source = {"head": git("rev-parse", "--short", "HEAD").strip(),
          "uncommitted": [l[3:] for l in git("status", "--porcelain", "--untracked-files=no").splitlines()],
          "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(st.st_mtime))}

out = {
    "bench": "transport",
    "bytes": nbytes,
    "repeats": repeats,
    "input": "random bytes, pre-generated file read once into the page cache; stdin of the sender",
    "sink": "/dev/null (stdout of the receiver)",
    "timing": "wall time from the start of the sender until sender and receiver have both exited",
    "ratio_socat_over_millipede_memif": ratio("socat", "millipede_memif"),
    "ratio_socat_b1m_over_millipede_memif": ratio("socat_b1m", "millipede_memif"),
    "target": "dpdk-millipede (memif) >= 1.3x faster than socat",
    "target_met": (ratio("socat", "millipede_memif") or 0) >= 1.3,
    "systems": results,
    "conditions": {
        "kernel": platform.release(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "dpdk": dpdk,
        "socat": socat_v,
        "lcores": {"rx": rx_lc, "tx": tx_lc,
                   "note": "one lcore per process; the stdin/stdout thread inherits the lcore's CPU set"},
        "threads_legs": int(threads),
        "nice": nice,
        "chunk": chunk or "app default (1M)",
        "memif_zero_copy_tx": env.get("BENCH_MEMIF_ZC", "0") == "1",
        "extra_tx": extra_tx, "extra_rx": extra_rx,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpu_steal_pct_during": round(100.0 * (st1 - st0) / max(1, tot1 - tot0), 1),
        "hugepages_2m_total": int(open("/proc/sys/vm/nr_hugepages").read()),
        "source": source,
    },
}
print(json.dumps(out))
PY
