#!/usr/bin/env python3
"""Interactive round trip through dpdk-millipede, against ssh on the same host.

    tools/bench/charmode_latency.py [--build DIR] [--lines N] [--out FILE.json]

A line goes into tx A's stdin, comes out of rx A, is piped into tx B (the
echo), and comes back out of rx B: two striped pipes over memif, four
processes (the way `viamillipede charmode` users build a two-way session,
one pipe each way). Measured with `charmode` and without it (the default
waits up to 2 ms for more input before a partial chunk leaves), and against
`ssh -T root@127.0.0.1 cat` to a private sshd on the loopback. Each system
gets --lines lines (64 bytes, one at a time, 5 ms apart, after 20 warm-up
lines); the JSON has p50, p90, p99 and max of the round trip in
microseconds, the lcore map and the exact commands. Needs root, Debian's
openssh-server (sshd is started on its own port with its own keys, and
stopped at the end) and 512 free hugepages.
"""
import argparse, json, os, platform, select, shlex, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(*a):
    print(time.strftime("[%H:%M:%S]"), *a, file=sys.stderr, flush=True)


def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def read_line(fd, buf, deadline):
    """Reads from fd until buf holds a newline; returns (line, rest) or (None, buf) at the deadline."""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, buf
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return None, buf
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line, rest


def echo_loop(wfd, rfd, lines, warmup=20, gap_s=0.005, timeout_s=10.0):
    """Writes numbered lines, waits for each to come back; returns RTTs in us."""
    rtts, buf = [], b""
    for i in range(warmup + lines):
        payload = (f"{i:08d} " + "x" * 54).encode()  # 63 bytes + newline
        t0 = time.monotonic()
        os.write(wfd, payload + b"\n")
        line, buf = read_line(rfd, buf, t0 + timeout_s)
        t1 = time.monotonic()
        if line is None:
            raise RuntimeError(f"line {i} did not come back within {timeout_s} s")
        if line != payload:
            raise RuntimeError(f"line {i} came back wrong: {line[:20]!r}")
        if i >= warmup:
            rtts.append((t1 - t0) * 1e6)
        time.sleep(gap_s)
    return rtts


def summary(rtts):
    return {"lines": len(rtts), "p50_us": round(pct(rtts, 50), 1), "p90_us": round(pct(rtts, 90), 1),
            "p99_us": round(pct(rtts, 99), 1), "max_us": round(max(rtts), 1),
            "mean_us": round(statistics.mean(rtts), 1)}


def run_millipede(binary, work, words, lines, tag):
    d = tempfile.mkdtemp(dir=work, prefix="sock")
    eal = ["--no-pci", "-m", "256", "--log-level=lib.eal:error"]

    def side(pair, role, lcores):
        sock = f"{d}/{pair}.sock"
        vdev = f"net_memif0,role={'server' if role == 'rx' else 'client'},socket={sock},id=0,socket-abstract=no"
        prefix = f"{tag}{pair}{role}"
        cmd = ["timeout", "-s", "KILL", "120", binary] + eal + ["--file-prefix", prefix, "--lcores", lcores,
                                                                "--vdev", vdev, "--"]
        if role == "rx":
            cmd += ["rx", "8834", "--ip", "0=10.0.0.2/24"]
        else:
            cmd += ["tx", "10.0.0.2", "8834", "threads", "2", "--ip", "0=10.0.0.1/24"] + words
        return cmd, sock, prefix

    rxa, sock_a, pa1 = side("a", "rx", "0@0")
    txa, _, pa2 = side("a", "tx", "0@1")
    rxb, sock_b, pb1 = side("b", "rx", "0@1")
    txb, _, pb2 = side("b", "tx", "0@0")
    procs = []
    try:
        p_rxb = subprocess.Popen(rxb, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(p_rxb)
        p_rxa = subprocess.Popen(rxa, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(p_rxa)
        deadline = time.monotonic() + 30
        while not (os.path.exists(sock_a) and os.path.exists(sock_b)):
            if time.monotonic() > deadline:
                raise RuntimeError("the receivers did not create their memif sockets within 30 s")
            time.sleep(0.02)
        p_txb = subprocess.Popen(txb, stdin=p_rxa.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p_txb)
        p_rxa.stdout.close()  # tx B holds it now
        p_txa = subprocess.Popen(txa, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p_txa)
        rtts = echo_loop(p_txa.stdin.fileno(), p_rxb.stdout.fileno(), lines)
        p_txa.stdin.close()
        rcs = []
        for p in (p_txa, p_rxa, p_txb, p_rxb):
            try:
                rcs.append(p.wait(timeout=60))
            except subprocess.TimeoutExpired:
                p.kill()
                rcs.append(None)
        if rcs != [0, 0, 0, 0]:
            raise RuntimeError(f"exit statuses tx A, rx A, tx B, rx B: {rcs}")
        cmds = {"rx_a": shlex.join(rxa) + " | tx_b", "tx_a": shlex.join(txa), "tx_b": shlex.join(txb),
                "rx_b": shlex.join(rxb)}
        return rtts, cmds
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for prefix in (pa1, pa2, pb1, pb2):
            subprocess.run(f"rm -f /dev/hugepages/{prefix}* ; rm -rf /var/run/dpdk/{prefix}", shell=True)
        shutil.rmtree(d, ignore_errors=True)


def run_ssh(work, lines):
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        raise RuntimeError("no sshd: apt-get install openssh-server")
    d = tempfile.mkdtemp(dir=work, prefix="ssh")
    hostkey, userkey = f"{d}/host_ed25519", f"{d}/user_ed25519"
    for k in (hostkey, userkey):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k], check=True)
    shutil.copy(f"{userkey}.pub", f"{d}/authorized_keys")
    os.makedirs("/run/sshd", exist_ok=True)
    port = 20000 + os.getpid() % 20000
    sshd_cmd = [sshd, "-D", "-e", "-f", "/dev/null", "-p", str(port), "-h", hostkey, "-o", "ListenAddress=127.0.0.1",
                "-o", "PermitRootLogin=yes", "-o", f"AuthorizedKeysFile={d}/authorized_keys", "-o", "StrictModes=no",
                "-o", "UsePAM=no", "-o", f"PidFile={d}/sshd.pid"]
    srv = subprocess.Popen(sshd_cmd, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout.strip() == "":
            if time.monotonic() > deadline or srv.poll() is not None:
                raise RuntimeError("sshd did not listen within 20 s")
            time.sleep(0.05)
        client = ["ssh", "-T", "-i", userkey, "-p", str(port), "-o", "StrictHostKeyChecking=no",
                  "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@127.0.0.1", "cat"]
        c = subprocess.Popen(client, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            rtts = echo_loop(c.stdin.fileno(), c.stdout.fileno(), lines)
        finally:
            c.stdin.close()
            try:
                c.wait(timeout=20)
            except subprocess.TimeoutExpired:
                c.kill()
        return rtts, {"sshd": shlex.join(sshd_cmd), "client": shlex.join(client)}
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--lines", type=int, default=500)
    ap.add_argument("--out", default="-")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print(f"{sys.argv[0]}: needs root (hugepages, sshd)", file=sys.stderr)
        return 1
    if a.lines < 10:
        print(f"{sys.argv[0]}: --lines must be at least 10", file=sys.stderr)
        return 2
    binary = os.path.join(ROOT, a.build, "app", "dpdk-millipede")
    if not os.access(binary, os.X_OK):
        print(f"{sys.argv[0]}: no {binary} (build it, or give --build)", file=sys.stderr)
        return 1
    free = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("HugePages_Free")))
    if free < 512:
        print(f"{sys.argv[0]}: needs 512 free 2 MiB hugepages, {free} free", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="mpcharm")
    tag = f"mpc{os.getpid()}"
    out = {"bench": "charmode_latency", "lines": a.lines, "line_bytes": 64, "gap_ms": 5, "systems": {},
           "method": "round trip: a line into tx A, out of rx A, piped into tx B, out of rx B "
                     "(two dpdk-millipede pipes over memif, 4 processes); ssh: ssh -T root@127.0.0.1 cat"}
    ok = True
    try:
        for name, fn in (("millipede_charmode", lambda: run_millipede(binary, work, ["charmode"], a.lines, tag + "c")),
                         ("millipede_default", lambda: run_millipede(binary, work, [], a.lines, tag + "d")),
                         ("ssh_loopback", lambda: run_ssh(work, a.lines))):
            try:
                rtts, cmds = fn()
                out["systems"][name] = {**summary(rtts), "commands": cmds}
                log(f"{name}: p50 {out['systems'][name]['p50_us']} us, p99 {out['systems'][name]['p99_us']} us")
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                ok = False
                out["systems"][name] = {"error": str(e)}
                log(f"{name}: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["conditions"] = {"kernel": platform.release(), "cpus": os.cpu_count(),
                         "lcores": "rx A 0@0, tx A 0@1, rx B 0@1, tx B 0@0 (4 processes on 2 CPUs)",
                         "loadavg": [round(x, 2) for x in os.getloadavg()]}
    text = json.dumps(out)
    if a.out == "-":
        print(text)
    else:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
