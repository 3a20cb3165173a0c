#!/usr/bin/env python3
"""The runs of tools/bench/compress.sh (which documents the systems, inputs
and environment); prints one JSON object on stdout, progress on stderr."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "common"))
from rig import system_texts, write_repeated  # noqa: E402

env = os.environ
binary = env["BENCH_BIN"]
work = env["BENCH_WORK"]
tag = env["BENCH_TAG"]
repeats = int(env.get("BENCH_REPEATS", "1"))
text_bytes = int(env.get("BENCH_TEXT_BYTES", str(64 << 20)))
tar_bytes = int(env.get("BENCH_TAR_BYTES", str(256 << 20)))
threads = env.get("BENCH_COMPRESS_THREADS", "1")
rx_lc, tx_lc = env.get("BENCH_RX_LCORES", "0@0"), env.get("BENCH_TX_LCORES", "0@1")
systems = env.get("BENCH_SYSTEMS", "millipede_compress millipede_raw gzip1_socat zstd1_socat").split()


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def make_text(path, size):
    texts = system_texts()
    blob = b"".join(texts)
    with open(path, "wb") as out:
        write_repeated(out, blob, size)
    return {"distinct_text_bytes": len(blob), "files": len(texts)}


def make_tar(path, size):
    with open(path, "wb") as out:
        tar = subprocess.Popen(["tar", "cf", "-", "-C", "/", "usr/share"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        left = size
        while left > 0:
            b = tar.stdout.read(min(left, 1 << 20))
            if not b:
                break
            out.write(b)
            left -= len(b)
        tar.kill()
        tar.wait()
    return {"bytes": os.path.getsize(path)}


def wait_rusage(p, within=None):
    deadline = None if within is None else time.time() + within
    while True:
        pid, status, ru = os.wait4(p.pid, 0 if deadline is None else os.WNOHANG)
        if pid == p.pid:
            return os.waitstatus_to_exitcode(status), ru
        if time.time() > deadline:
            p.kill()
            deadline = None
        else:
            time.sleep(0.05)


def listening(port):
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[1].endswith(":%04X" % port) and p[3] == "0A":
                return True
    return False


def millipede_cmds(run_id, compress):
    d = os.path.join(work, run_id)
    os.makedirs(d, exist_ok=True)
    opt = ",bsize=16384"
    vrx = sum((["--vdev", f"net_memif{i},role=server,socket={d}/m{i}.sock,id=0,socket-abstract=no{opt}"]
               for i in range(2)), [])
    vtx = sum((["--vdev", f"net_memif{i},role=client,socket={d}/m{i}.sock,id=0,socket-abstract=no{opt},zero-copy=yes"]
               for i in range(2)), [])
    eal = ["--no-pci", "-m", "256", "--log-level=lib.eal:error"]
    z = ["compress", "--compress-threads", threads] if compress else []
    words_tx = ["tx", "10.0.0.2", "8834", "tx", "10.0.1.2", "8834", "threads", "4", "--ip", "0=10.0.0.1/24",
                "--ip", "1=10.0.1.1/24", "verbose", "2"] + z
    words_rx = ["rx", "8834", "--ip", "0=10.0.0.2/24", "--ip", "1=10.0.1.2/24", "verbose", "2",
                "--compress-threads", threads]
    limit = "600"
    rx = ["timeout", "-s", "KILL", limit, binary] + eal + ["--file-prefix", f"{tag}{run_id}rx", "--lcores", rx_lc] + \
        vrx + ["--"] + words_rx
    tx = ["timeout", "-s", "KILL", limit, binary] + eal + ["--single-file-segments", "--file-prefix",
                                                           f"{tag}{run_id}tx", "--lcores", tx_lc] + vtx + ["--"] + words_tx
    return rx, tx, [f"{d}/m0.sock", f"{d}/m1.sock"]


def pipe_cmds(port, comp, decomp):
    rx = ["timeout", "-s", "KILL", "600", "bash", "-o", "pipefail", "-c",
          f"socat -u TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr STDOUT | {decomp} > /dev/null"]
    tx = ["timeout", "-s", "KILL", "600", "bash", "-o", "pipefail", "-c",
          f"{comp} | socat -u STDIN TCP:127.0.0.1:{port}"]
    return rx, tx


def one_run(system, infile, run_id):
    errs = (os.path.join(work, f"{run_id}.rx.err"), os.path.join(work, f"{run_id}.tx.err"))
    port = 20000 + (os.getpid() + int(run_id[1:])) % 20000
    ready = None
    if system.startswith("millipede"):
        rx, tx, ready = millipede_cmds(run_id, system == "millipede_compress")
    elif system == "gzip1_socat":
        rx, tx = pipe_cmds(port, "gzip -1 -c", "gzip -dc")
    else:
        rx, tx = pipe_cmds(port, "zstd -1 -c -q", "zstd -dc -q")
    with open(os.devnull, "wb") as null, open(errs[0], "wb") as e0, open(errs[1], "wb") as e1, \
            open(infile, "rb") as src:
        prx = subprocess.Popen(rx, stdout=null, stderr=e0, stdin=subprocess.DEVNULL)
        t_wait = time.time()
        while time.time() - t_wait < 30 and prx.poll() is None:
            if ready is None and listening(port):
                break
            if ready is not None and all(os.path.exists(p) for p in ready):
                break
            time.sleep(0.02)
        t0 = time.time()
        ptx = subprocess.Popen(tx, stdin=src, stdout=null, stderr=e1)
        tx_rc, tx_ru = wait_rusage(ptx)
        rx_rc, rx_ru = wait_rusage(prx, None if tx_rc == 0 else 20)
        t1 = time.time()
    if system.startswith("millipede"):
        subprocess.run(f"rm -f /dev/hugepages/{tag}{run_id}* ; rm -rf /var/run/dpdk/{tag}{run_id}*", shell=True)
    texts = [open(f, errors="replace").read() for f in errs]
    n = os.path.getsize(infile)
    r = {"seconds": round(t1 - t0, 3), "ok": tx_rc == 0 and rx_rc == 0, "exit": [tx_rc, rx_rc],
         "mb_per_s": round(n / (t1 - t0) / 1e6, 1),
         "cpu_s": {"tx": round(tx_ru.ru_utime + tx_ru.ru_stime, 2), "rx": round(rx_ru.ru_utime + rx_ru.ru_stime, 2)}}
    m = re.search(r"compress: (\d+) stream bytes as (\d+) payload bytes \(ratio ([\d.]+)\), (\d+) chunks, (\d+) of them",
                  texts[1])
    if m:
        r["ratio"] = float(m[3])
        r["chunks"], r["raw_chunks"] = int(m[4]), int(m[5])
    m = re.search(r"timeline: EAL ready (\d+) ms, set-up done (\d+) ms, transfer over (\d+) ms", texts[1])
    if m and int(m[3]) > int(m[2]):
        r["transfer_only_mb_per_s"] = round(n / ((int(m[3]) - int(m[2])) / 1000.0) / 1e6, 1)
    if not r["ok"]:
        r["stderr_tail"] = [t.strip().splitlines()[-3:] for t in texts]
    return r, tx, rx


def compressed_size(cmd, infile):
    with open(infile, "rb") as src:
        p = subprocess.run(cmd + " | wc -c", shell=True, stdin=src, capture_output=True, text=True, timeout=600)
    return int(p.stdout.strip())


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if v else None


inputs = {}
text_path, tar_path = os.path.join(work, "text"), os.path.join(work, "tar")
log(f"making the text corpus ({text_bytes} bytes)")
inputs["text"] = {"path": text_path, **make_text(text_path, text_bytes)}
log(f"making the tar of /usr/share ({tar_bytes} bytes at most)")
inputs["tar"] = {"path": tar_path, **make_tar(tar_path, tar_bytes)}
load_before = os.getloadavg()
result = {"inputs": {}, "systems": systems, "repeats": repeats, "compress_threads": int(threads),
          "lcores": {"rx": rx_lc, "tx": tx_lc}, "commands": {}}
run_no = 0
for name, meta in inputs.items():
    path = meta["path"]
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL)  # page cache
    n = os.path.getsize(path)
    entry = {"bytes": n, **{k: v for k, v in meta.items() if k != "path"}, "systems": {}}
    sizes = {"gzip1_socat": ("gzip -1 -c", None), "zstd1_socat": ("zstd -1 -c -q", None)}
    for system in systems:
        runs = []
        for _ in range(repeats):
            run_no += 1
            log(f"{name}: {system} (run {run_no})")
            r, tx, rx = one_run(system, path, f"r{run_no}")
            result["commands"][system] = {"tx": " ".join(tx), "rx": " ".join(rx)}
            runs.append(r)
            log(f"  {r['seconds']} s, {r['mb_per_s']} MB/s, ok {r['ok']}" + (f", ratio {r['ratio']}" if "ratio" in r else ""))
        ok = [r for r in runs if r["ok"]]
        s = {"runs": runs, "median_mb_per_s": median([r["mb_per_s"] for r in ok])}
        if system in sizes:
            c = compressed_size(sizes[system][0], path)
            s["ratio"] = round(n / c, 3)
            s["compressed_bytes"] = c
        elif ok and "ratio" in ok[0]:
            s["ratio"] = ok[0]["ratio"]
        elif system == "millipede_raw":
            s["ratio"] = 1.0
        entry["systems"][system] = s
    result["inputs"][name] = entry
result["load"] = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
result["machine"] = {"cpus": os.cpu_count(), "kernel": os.uname().release,
                     "note": "2 vCPUs shared with other engineers' builds and tests while this ran"}
print(json.dumps(result, indent=1))
