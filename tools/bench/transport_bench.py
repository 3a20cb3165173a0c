#!/usr/bin/env python3
"""The runs of tools/bench/transport.sh (which sets up the machine, the input
and the environment, then calls this): dpdk-millipede tx/rx over memif (and
af_packet) against socat over loopback TCP. Prints one JSON object."""
import json, os, platform, re, shlex, statistics, subprocess, sys, time

env = os.environ
tag, work, sockdir, binary = env["BENCH_TAG"], env["BENCH_WORK"], env["BENCH_SOCK"], env["BENCH_BIN"]
repeats, nbytes = int(env["BENCH_REPEATS"]), int(env["BENCH_BYTES"])
threads = env.get("BENCH_THREADS", "4")
rx_lc, tx_lc = env.get("BENCH_RX_LCORES", "0@0"), env.get("BENCH_TX_LCORES", "0@1")
# Two workers on two CPUs: control and rx+session share the side's CPU, the
# workers float over both (lcores.h: 3+ lcores give control, rx+session, workers).
rx_lc_w2 = env.get("BENCH_RX_LCORES_W2", "0@0,1@0,2@(0-1),3@(0-1)")
tx_lc_w2 = env.get("BENCH_TX_LCORES_W2", "0@1,1@1,2@(0-1),3@(0-1)")
chunk = env.get("BENCH_CHUNK", "")
extra_tx = shlex.split(env.get("BENCH_EXTRA_TX", ""))
extra_rx = shlex.split(env.get("BENCH_EXTRA_RX", ""))
memif_zc = env.get("BENCH_MEMIF_ZC", "1") == "1"
memif_bsize = int(env.get("BENCH_MEMIF_BSIZE", "16384"))
# EAL memory options for every dpdk-millipede process. None by default: EAL
# takes hugepages as the run's allocations need them, as a user's command
# without -m does; "-m 256" (the earlier default) makes each process reserve
# and clear 256 MiB before it starts (30-40 ms here).
eal_mem = shlex.split(env.get("BENCH_EAL_MEM", ""))
# "W:L": W worker lcores, L legs; "WL:L": W logical workers on the one lcore per side.
def matrix_entry(m):
    w, l = m.split(":")
    logical = w.upper().endswith("L")
    return int(w.rstrip("lL")), int(l), logical


matrix = [matrix_entry(m) for m in env.get("BENCH_MATRIX", "1:1 1:4 1:16 2:1 2:4 2:16 2L:4 2L:16").split()]
infile = env["BENCH_INFILE"]
limit = str(120 + nbytes // 2_000_000)  # seconds; generous (1 GiB at a few MB/s)
nice = env.get("BENCH_NICE", "-20")
nice_cmd = ["nice", "-n", nice] if nice not in ("", "0") else []
GIB = float(1 << 30)


def log(*a):
    print(time.strftime("[%H:%M:%S]"), *a, file=sys.stderr, flush=True)


def cpu_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[7]  # total, steal


def wait_rusage(p, within=None):
    """Reap p with its resource usage; after `within` seconds, kill it first."""
    deadline = None if within is None else time.time() + within
    while True:
        pid, status, ru = os.wait4(p.pid, 0 if deadline is None else os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, ru
        if time.time() > deadline:
            p.kill()
            deadline = None
        else:
            time.sleep(0.05)


def cleanup_prefix(prefix):
    subprocess.run(f"rm -f /dev/hugepages/{prefix}* ; rm -rf /var/run/dpdk/{prefix}", shell=True)


def millipede_cmds(link, run_id, workers, legs, logical=False):
    eal = ["--no-pci"] + eal_mem + ["--log-level=lib.eal:error"]
    # One leg has one destination (tx refuses fewer legs than destinations): port 1 idles.
    dests = ["tx", "10.0.0.2", "8834"] + (["tx", "10.0.1.2", "8834"] if legs > 1 else [])
    words_tx = dests + ["threads", str(legs), "--ip", "0=10.0.0.1/24", "--ip", "1=10.0.1.1/24", "verbose", "2"]
    words_rx = ["rx", "8834", "--ip", "0=10.0.0.2/24", "--ip", "1=10.0.1.2/24", "verbose", "2"]
    lc_rx, lc_tx = (rx_lc, tx_lc) if workers == 1 or logical else (rx_lc_w2, tx_lc_w2)
    if workers > 1:
        words_tx += ["--workers", str(workers)]
        words_rx += ["--workers", str(workers)]
    if chunk:
        words_tx += ["--chunk", chunk]
    words_tx += extra_tx
    words_rx += extra_rx
    pre_rx, pre_tx, pre_tx_eal = [], [], []
    if link == "memif":
        d = os.path.join(sockdir, run_id)
        os.makedirs(d, exist_ok=True)
        opt = f",bsize={memif_bsize}" if memif_bsize else ""
        vrx = ["--vdev", f"net_memif0,role=server,socket={d}/m0.sock,id=0,socket-abstract=no{opt}",
               "--vdev", f"net_memif1,role=server,socket={d}/m1.sock,id=0,socket-abstract=no{opt}"]
        vtx = ["--vdev", f"net_memif0,role=client,socket={d}/m0.sock,id=0,socket-abstract=no{opt}",
               "--vdev", f"net_memif1,role=client,socket={d}/m1.sock,id=0,socket-abstract=no{opt}"]
        ready = [f"{d}/m0.sock", f"{d}/m1.sock"]
        if memif_zc:  # tx (the client) maps its mbufs into the rings: no copy
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
    rx = pre_rx + nice_cmd + ["timeout", "-s", "KILL", limit, binary] + eal + ["--file-prefix", prx, "--lcores", lc_rx] + vrx + ["--"] + words_rx
    tx = pre_tx + nice_cmd + ["timeout", "-s", "KILL", limit, binary] + eal + pre_tx_eal + ["--file-prefix", ptx, "--lcores", lc_tx] + vtx + ["--"] + words_tx
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


def counters(text, side):
    """What dpdk-millipede's `verbose 2` lines say about one side of a run."""
    c = {}
    c["arp_requests"] = sum(int(x) for x in re.findall(r"arp_req (\d+)", text))
    c["tx_drops"] = sum(int(x) for x in re.findall(r" tx_drops (\d+)", text))
    m = re.search(r"complete: .*\(([0-9.]+) s\)", text)
    if m:
        c["own_seconds"] = float(m.group(1))
    for key, pat in (("legs_lost", r"legs_lost (\d+)"), ("chunks_resent", r"resent (\d+)")):
        m = re.search(pat, text)
        if m:
            c[key] = int(m.group(1))
    m = re.search(r"own copies per byte ([0-9.]+)", text)
    if m:
        c["own_copies_per_byte"] = float(m.group(1))
    m = re.search(r"timeline: EAL ready (\d+) ms, set-up done (\d+) ms, transfer over (\d+) ms, exit (\d+) ms", text)
    if m:
        eal, setup, over, end = (int(x) for x in m.groups())
        c["timeline_ms"] = {"eal_ready": eal, "setup_done": setup, "transfer_over": over, "exit": end}
        if over > setup:
            c["transfer_only_mb_per_s"] = round(nbytes / ((over - setup) / 1000.0) / 1e6, 1)
    # Legs per worker: tx counts its connects, rx its accepted connections.
    per_worker = [int(n) for n in re.findall(r"worker \d+ \(lcore \d+\):.* %s (\d+)" % ("connects" if side == "tx" else "accepted"), text)]
    if per_worker:
        c["legs_per_worker"] = per_worker
        mean = sum(per_worker) / len(per_worker)
        c["legs_spread_max_over_mean"] = round(max(per_worker) / mean, 3) if mean else None
    c["eal_invalid_memory_lines"] = text.count("Invalid memory")
    return c


def usage(ru):
    return {"user": round(ru.ru_utime, 3), "sys": round(ru.ru_stime, 3), "max_rss_mib": round(ru.ru_maxrss / 1024.0, 1)}


def one_run(system, run_id):
    errs = (os.path.join(work, f"{run_id}.rx.err"), os.path.join(work, f"{run_id}.tx.err"))
    prefixes = ()
    if system.startswith("millipede_"):
        link, workers, legs, logical = SYSTEMS[system]
        rx, tx, ready, prefixes = millipede_cmds(link, run_id, workers, legs, logical)
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
        tx_rc, tx_ru = wait_rusage(ptx)
        # A failed sender never ends the stream: do not wait out rx's limit.
        rx_rc, rx_ru = wait_rusage(prx, None if tx_rc == 0 else 20)
        t1 = time.time()
    for p in prefixes:
        cleanup_prefix(p)
    texts = [open(f, errors="replace").read() for f in errs]
    tx_u, rx_u = usage(tx_ru), usage(rx_ru)
    cpu = tx_u["user"] + tx_u["sys"] + rx_u["user"] + rx_u["sys"]
    r = {"seconds": round(t1 - t0, 3), "ok": tx_rc == 0 and rx_rc == 0, "exit": [tx_rc, rx_rc],
         "cpu_s": {"tx_user": tx_u["user"], "tx_sys": tx_u["sys"], "rx_user": rx_u["user"], "rx_sys": rx_u["sys"]},
         "cpu_s_per_gib": {"tx": round((tx_u["user"] + tx_u["sys"]) * GIB / nbytes, 3),
                           "rx": round((rx_u["user"] + rx_u["sys"]) * GIB / nbytes, 3),
                           "both": round(cpu * GIB / nbytes, 3)},
         "max_rss_mib": {"tx": tx_u["max_rss_mib"], "rx": rx_u["max_rss_mib"]}}
    if system.startswith("millipede_"):
        r["tx"] = counters(texts[1], "tx")
        r["rx"] = counters(texts[0], "rx")
    if not r["ok"]:
        r["stderr_tail"] = [t.strip().splitlines()[-3:] for t in texts]
    return r, rx, tx


SYSTEMS = {"millipede_memif": ("memif", 1, int(threads), False)}
for w, l, logical in matrix:
    SYSTEMS.setdefault(f"millipede_memif_w{w}{'logical' if logical else ''}_l{l}", ("memif", w, l, logical))
systems = list(SYSTEMS)
systems.append("socat")
if env.get("BENCH_SOCAT_B1M", "1") == "1":
    systems.append("socat_b1m")
if env.get("BENCH_AF_PACKET", "1") == "1":
    SYSTEMS["millipede_af_packet"] = ("af_packet", 1, int(threads), False)
    systems.append("millipede_af_packet")

results = {s: {"runs": []} for s in systems}
load_before = os.getloadavg()
tot0, st0 = cpu_ticks()
n = 0
for rep in range(repeats):
    # Each repetition starts one system later, so that no system always runs
    # first (after a pause) or right after the same neighbour: on the 2-vCPU
    # VM the system that always ran first took 0.871, 0.58 and 0.733 s, while
    # the same configuration later in each pass took 0.559-0.569 s.
    for s in systems[rep % len(systems):] + systems[:rep % len(systems)]:
        n += 1
        run_id = f"r{n}"
        r, rx, tx = one_run(s, run_id)
        results[s]["runs"].append(r)
        results[s]["command_rx"] = " ".join(shlex.quote(x) for x in rx) + " > /dev/null"
        results[s]["command_tx"] = " ".join(shlex.quote(x) for x in tx) + " < INPUT"
        log(f"{s} run {rep + 1}/{repeats}: {r['seconds']} s{'' if r['ok'] else ' FAILED ' + json.dumps(r['exit'])}")
tot1, st1 = cpu_ticks()
load_after = os.getloadavg()


def median_of(runs, get):
    v = [x for x in (get(r) for r in runs if r["ok"]) if x is not None]
    return round(statistics.median(v), 3) if v else None


for s in systems:
    runs = results[s]["runs"]
    ok = [r["seconds"] for r in runs if r["ok"]]
    res = results[s]
    res["ok_runs"] = len(ok)
    res["median_s"] = round(statistics.median(ok), 3) if ok else None
    res["mb_per_s"] = round(nbytes / statistics.median(ok) / 1e6, 1) if ok else None
    res["seconds_all"] = [r["seconds"] for r in runs]
    res["median_cpu_s_per_gib"] = {k: median_of(runs, lambda r, k=k: r["cpu_s_per_gib"][k]) for k in ("tx", "rx", "both")}
    res["median_max_rss_mib"] = {k: median_of(runs, lambda r, k=k: r["max_rss_mib"][k]) for k in ("tx", "rx")}
    if s.startswith("millipede_"):
        link, workers, legs, logical = SYSTEMS[s]
        res.update({"link": link, "workers": workers, "legs": legs, "logical_workers": logical})
        # 2 ARP requests (one per port) is the normal start; more means a
        # request was dropped before the link was up and re-sent after the
        # neighbour cache's 1 s retry interval: about 1 s of that run.
        res["runs_with_arp_retry"] = sum(1 for r in runs if r["tx"]["arp_requests"] > 2)
        for side in ("tx", "rx"):
            res[f"{side}_own_copies_per_byte"] = median_of(runs, lambda r, side=side: r[side].get("own_copies_per_byte"))
            res[f"{side}_eal_ready_ms"] = median_of(runs, lambda r, side=side: r[side].get("timeline_ms", {}).get("eal_ready"))
            res[f"{side}_legs_spread_max_over_mean"] = median_of(runs, lambda r, side=side: r[side].get("legs_spread_max_over_mean"))
        res["transfer_only_mb_per_s"] = median_of(runs, lambda r: r["tx"].get("transfer_only_mb_per_s"))


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


def run_text(cmd, line=0):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.splitlines()[line].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return ""


def git(*a):
    try:
        return subprocess.run(["git", *a], capture_output=True, text=True, timeout=30).stdout.rstrip("\n")
    except (OSError, subprocess.SubprocessError):
        return ""


st = os.stat(binary)
source = {"head": git("rev-parse", "--short", "HEAD").strip(),
          "uncommitted": [l[3:] for l in git("status", "--porcelain", "--untracked-files=no").splitlines()],
          "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(st.st_mtime))}

matrix_rows = [{"system": s, "workers": SYSTEMS[s][1], "legs": SYSTEMS[s][2], "logical": SYSTEMS[s][3],
                "median_s": results[s]["median_s"],
                "mb_per_s": results[s]["mb_per_s"],
                "legs_spread_max_over_mean": max(filter(None, [results[s]["tx_legs_spread_max_over_mean"],
                                                               results[s]["rx_legs_spread_max_over_mean"]]), default=None)}
               for s in systems if s.startswith("millipede_memif_w")]


def two_workers_not_slower():
    """Per leg count, 2 workers' median time is within 5 % of 1 worker's or
    better; keys "lcores L" (2 worker lcores) and "logical L" (2 logical
    workers on one lcore)."""
    by = {(r["workers"], r["legs"], r["logical"]): r["median_s"] for r in matrix_rows}
    verdicts = {}
    for (w, l, logical), t in by.items():
        if w == 2 and by.get((1, l, False)) and t:
            verdicts[f"{'logical' if logical else 'lcores'} {l}"] = t <= by[(1, l, False)] * 1.05
    return verdicts


# Fewer legs than workers cannot spread evenly (1 leg on 2 workers is 2.0 by arithmetic).
spreads = [r["legs_spread_max_over_mean"] for r in matrix_rows
           if r["legs_spread_max_over_mean"] is not None and r["workers"] > 1 and r["legs"] >= r["workers"]]
b1m_ratio = ratio("socat_b1m", "millipede_memif")
out = {
    "bench": "transport",
    "bytes": nbytes,
    "repeats": repeats,
    "input": "random bytes, pre-generated file read once into the page cache; stdin of the sender",
    "sink": "/dev/null (stdout of the receiver)",
    "timing": "wall time from the start of the sender until sender and receiver have both exited "
              "(includes dpdk-millipede's EAL start-up; transfer_only_mb_per_s excludes it)",
    "ratio_socat_over_millipede_memif": ratio("socat", "millipede_memif"),
    "ratio_socat_b1m_over_millipede_memif": b1m_ratio,
    "target": "socat -b 1048576 / dpdk-millipede (memif) >= 1.0 (median of the repeats)",
    "target_met": (b1m_ratio or 0) >= 1.0,
    "matrix": matrix_rows,
    "legs_spread_max_over_mean_worst": max(spreads) if spreads else None,
    "legs_spread_target_met": all(x <= 1.25 for x in spreads) if spreads else None,
    "two_workers_not_slower_by_legs": two_workers_not_slower(),
    "systems": results,
    "conditions": {
        "kernel": platform.release(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "dpdk": run_text(["pkg-config", "--modversion", "libdpdk"]),
        "socat": run_text(["socat", "-V"], 1),
        "lcores": {"rx": rx_lc, "tx": tx_lc, "rx_2_workers": rx_lc_w2, "tx_2_workers": tx_lc_w2,
                   "logical_workers": "the 1-worker lcores, with --workers W on both sides",
                   "note": "the stdin/stdout threads run on the CPUs of the port's NUMA node"},
        "threads_legs": int(threads),
        "nice": nice,
        "chunk": chunk or "app default (1M)",
        "memif_zero_copy_tx": memif_zc,
        "memif_bsize": memif_bsize or "PMD default (2048)",
        "extra_tx": extra_tx, "extra_rx": extra_rx,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpu_steal_pct_during": round(100.0 * (st1 - st0) / max(1, tot1 - tot0), 1),
        "hugepages_2m_total": int(open("/proc/sys/vm/nr_hugepages").read()),
        "eal_mem": eal_mem,
        "rss_note": "max_rss_mib is ru_maxrss: hugepage memory is not in it",
        "source": source,
    },
}
print(json.dumps(out))
