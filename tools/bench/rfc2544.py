#!/usr/bin/env python3
"""RFC 2544 throughput searches (NDR and PDR) against `dpdk-millipede tap`.

The search is a binary search of the offered rate, shared by every
generator: a trial offers a rate for a fixed time and reports how many
packets were offered and how many the tap inspected; loss ratio = 1 -
inspected / offered. NDR is the highest rate with no loss, PDR the highest
with at most 0.1 % loss (RFC 2544 section 26.1 names the first
"throughput"; the second is the usual partial-drop rate of RFC 2544 test
suites, e.g. FD.io CSIT's MLRsearch). Both are searched at once: every
trial narrows the bounds of both.

Generators (docs/benchmarks.md, "RFC 2544 searches"):
  pacer    build/tools/pacer/millipede-pacer over memif: paced synthetic UDP
           flows (64/512/1518 B, IMIX; 1k/100k/1M flows) or a capture.
  testpmd  dpdk-testpmd (Debian) over memif, flowgen / txonly multi-flow /
           io from net_pcap: unpaced (testpmd cannot pace a memif port),
           so one trial at the rate testpmd reaches, not a search.
  pktgen   Pktgen-DPDK through its Lua socket (-G) on a two-port host,
           when `pktgen` is on PATH (tools/bench/pktgen/).

Loss is counted from the tap's own counters (rte_telemetry
/millipede/tap/stats: rx_packets, worker_packets, ring_drops, read before
and after each trial once the counters stop moving) and the generator's
transmit counts (offered, taken by the port, refused by a full memif ring).

Usage (tools/bench/tap_rfc2544.sh wraps it):
  rfc2544.py matrix [--quick] [--out DIR] ...   the full matrix, JSON + PNGs
  rfc2544.py selftest                            the search on synthetic loss curves
  rfc2544.py plot RESULTS.json                   PNGs again from a results file
"""

import argparse
import contextlib
import fcntl
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NDR_LOSS = 0.0
PDR_LOSS = 0.001
# Simple IMIX (frame sizes on the wire): 7 x 64, 4 x 594, 1 x 1518.
IMIX_MEAN = (7 * 64 + 4 * 594 + 1518) / 12


def wire_bits_per_packet(size):
    """Layer-1 bits per frame: frame (FCS included) + preamble/SFD 8 + gap 12."""
    frame = IMIX_MEAN if size == "imix" else float(size)
    return (frame + 20) * 8


# ---------------------------------------------------------------- the search

class Bound:
    """Bounds of one target (a loss-ratio threshold) from the trials so far.

    lo: the highest rate that passed below hi; hi: the lowest rate that
    failed. A failure anywhere caps the target (a noisy pass above a failure
    is not believed), so the reported rate always has a passing trial."""

    def __init__(self, name, threshold):
        self.name, self.threshold = name, threshold

    def bounds(self, trials, max_rate):
        fails = [t["rate"] for t in trials if t["loss_ratio"] > self.threshold]
        hi = min(fails) if fails else None
        passes = [t["rate"] for t in trials
                  if t["loss_ratio"] <= self.threshold and (hi is None or t["rate"] < hi)]
        lo = max(passes) if passes else 0.0
        return lo, hi


def search(trial, max_rate, *, resolution=0.02, max_trials=12, min_rate=None,
           first_guess=None, time_budget_s=None, log=None):
    """Binary search of NDR and PDR.

    trial(rate) -> dict with at least "rate" (the rate actually offered),
    "loss_ratio"; it may add anything (it is kept in the result).
    max_rate: the highest rate to try (the generator's ceiling or the line).
    resolution: stop a target when hi - lo <= resolution * hi.
    max_trials, time_budget_s: hard bounds; a target not converged by then
    is reported with its bounds and converged=false.
    first_guess: an optional second trial rate (e.g. what the DUT received
    at the ceiling), which saves the first halvings.
    min_rate: the lowest rate probed (default max_rate / 1000); a target
    that fails even there is reported as 0 with hi = that rate.
    """
    min_rate = min_rate or max_rate / 1000.0
    targets = [Bound("ndr", NDR_LOSS), Bound("pdr", PDR_LOSS)]
    trials = []
    t0 = time.monotonic()

    def run(rate):
        r = trial(rate)
        r.setdefault("rate", rate)
        r["target_rate"] = rate
        trials.append(r)
        if log:
            gaps = r.get("tap_rx_gaps")
            log(f"  trial {len(trials)}: {rate / 1e6:.4f} Mpps -> offered {r['rate'] / 1e6:.4f} Mpps, "
                f"loss {100 * r['loss_ratio']:.4f} %"
                + (f", tap rx gaps >100us/>1ms/>10ms {gaps['over_100us']}/{gaps['over_1ms']}/{gaps['over_10ms']}"
                   if gaps else ""))
        return r

    def open_targets():
        out = []
        for tg in targets:
            lo, hi = tg.bounds(trials, max_rate)
            if hi is None:
                continue                       # passed at the ceiling: done
            if hi <= min_rate and lo == 0.0:
                continue                       # fails at the floor: done
            if hi - lo <= resolution * hi:
                continue
            out.append((tg, lo, hi))
        return out

    def budget_left():
        if len(trials) >= max_trials:
            return False
        if time_budget_s is not None and time.monotonic() - t0 >= time_budget_s:
            return False
        return True

    stuck = False
    run(max_rate)
    if first_guess and budget_left() and open_targets():
        g = min(max(first_guess, min_rate), max_rate)
        if not any(abs(g - t["target_rate"]) <= resolution * max_rate / 4 for t in trials):
            run(g)
    while budget_left():
        todo = open_targets()
        if not todo:
            break
        # The widest gap first (relative to its upper bound): both targets
        # profit from any trial, and PDR >= NDR always.
        tg, lo, hi = max(todo, key=lambda x: (x[2] - x[1]) / x[2])
        rate = (lo + hi) / 2 if lo > 0 else max(hi / 2, min_rate)
        if lo == 0 and hi <= min_rate * 2:
            rate = min_rate
        # A generator that falls short of the target offers less than asked,
        # the bounds do not move and the same rate comes up again: twice
        # is enough, the gap cannot be closed with this generator.
        if sum(1 for t in trials if abs(t["target_rate"] - rate) <= 1e-3 * rate) >= 2:
            stuck = True
            break
        run(rate)

    result = {"trials": trials, "max_rate": max_rate, "resolution": resolution,
              "max_trials": max_trials, "seconds": round(time.monotonic() - t0, 3),
              "generator_short": stuck}
    for tg in targets:
        lo, hi = tg.bounds(trials, max_rate)
        converged = hi is None or hi - lo <= resolution * hi or (lo == 0.0 and hi <= min_rate)
        best = [t for t in trials if t["rate"] == lo and t["loss_ratio"] <= tg.threshold]
        result[tg.name] = {
            "rate_pps": lo, "upper_bound_pps": hi, "loss_threshold": tg.threshold,
            "converged": converged,
            # The ceiling passed: the DUT is at least as fast as the generator.
            "generator_limited": hi is None,
            "trial": best[-1] if best else None,
        }
    return result


# ---------------------------------------------------------- DPDK processes

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Telemetry:
    """A client of DPDK's telemetry socket (dpdk_telemetry.v2, SOCK_SEQPACKET)."""

    def __init__(self, prefix, timeout_s=30):
        path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                self.sock.settimeout(5)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no telemetry socket {path} within {timeout_s} s")
                time.sleep(0.05)
        info = json.loads(self.sock.recv(4096).decode())
        self.max_len = int(info.get("max_output_len", 16384))

    def query(self, cmd):
        self.sock.send(cmd.encode())
        reply = json.loads(self.sock.recv(self.max_len + 1024).decode())
        return reply[cmd.split(",")[0]]

    def close(self):
        self.sock.close()


def hugepages_free():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
    return 0


@contextlib.contextmanager
def dpdk_slot(lock_path, quiet_file):
    """Waits (at most 40 min) while quiet_file exists, then holds lock_path:
    other engineers' DPDK runs and benchmarks do not overlap this one."""
    if quiet_file:
        deadline = time.monotonic() + 2400
        while os.path.exists(quiet_file) and time.monotonic() < deadline:
            time.sleep(5)
    if not lock_path:
        yield
        return
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Tap:
    """dpdk-millipede tap as the memif server, telemetry on."""

    def __init__(self, cfg, sockdir, label, extra=()):
        self.prefix = f"rfc2544tap{os.getpid()}"
        self.sock = os.path.join(sockdir, "memif.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock)
        self.summary = os.path.join(sockdir, f"summary-{label}.json")
        self.errpath = os.path.join(sockdir, f"tap-{label}.err")
        self.cmd = (cfg.nice + [cfg.tap_bin, "--lcores", cfg.tap_lcores, "--file-prefix", self.prefix,
                                "--no-pci", "--log-level=lib.eal:error"] + cfg.tap_mem +
                    ["--vdev", f"net_memif0,role=server,socket={self.sock},socket-abstract=no,id=0{cfg.memif_extra}",
                     "--", "tap", "--workers", str(cfg.tap_workers), "--summary", self.summary]
                    + cfg.tap_args + list(extra))
        self.err = open(self.errpath, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self.err,
                                     start_new_session=True)
        self.tel = None
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(self.sock):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tap exited ({self.proc.returncode}) before its memif socket: "
                                       + self.tail())
                if time.monotonic() > deadline:
                    raise RuntimeError("tap: no memif socket within 60 s")
                time.sleep(0.05)
            self.tel = Telemetry(self.prefix)
        except Exception:
            self.stop()
            raise

    def tail(self):
        with open(self.errpath) as f:
            return " | ".join(f.read().strip().splitlines()[-3:])

    def counters(self, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while True:
            s = self.tel.query("/millipede/tap/stats")
            if s is not None:   # null until the tap's run has started
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tap: no /millipede/tap/stats within {timeout_s} s: {self.tail()}")
            time.sleep(0.05)
        return {k: s[k] for k in ("rx_packets", "worker_packets", "ring_drops", "flows_active",
                                  "flows_started", "l7_detected", "l7_guessed", "l7_unknown",
                                  "rx_gaps_over_100us", "rx_gaps_over_1ms", "rx_gaps_over_10ms",
                                  "rx_gap_longest_us")}

    def settled_counters(self, quiet_s=0.1, limit_s=3.0):
        """The counters once rx and worker packets stop moving (what was in
        the memif ring and the worker rings at the end of a trial is then
        counted), waiting at most limit_s."""
        prev = self.counters()
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            cur = self.counters()
            if cur["rx_packets"] == prev["rx_packets"] and cur["worker_packets"] == prev["worker_packets"]:
                return cur, True
            prev = cur
        return prev, False

    def stop(self):
        if self.tel:
            self.tel.close()
            self.tel = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.err.close()
        for f in os.listdir("/dev/hugepages") if os.path.isdir("/dev/hugepages") else []:
            if f.startswith(self.prefix):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join("/dev/hugepages", f))

    def summary_json(self):
        try:
            with open(self.summary) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


class Pacer:
    """tools/pacer/millipede-pacer as the memif client; one line per command."""

    def __init__(self, cfg, tap, gen_args, mbufs=16383, extra_vdevs=()):
        self.prefix = f"rfc2544gen{os.getpid()}"
        self.cmd = (cfg.nice + [cfg.pacer_bin, "--lcores", cfg.gen_lcores, "--file-prefix", self.prefix,
                                "--no-pci", "--log-level=lib.eal:error", "--no-telemetry"] + cfg.gen_mem +
                    ["--vdev", f"net_memif0,role=client,socket={tap.sock},socket-abstract=no,id=0{cfg.memif_extra}"]
                    + list(extra_vdevs) + ["--", "--mbufs", str(mbufs)] + gen_args)
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)
        self.ready = self.read_line(90)
        if not self.ready.get("ready"):
            raise RuntimeError(f"pacer not ready: {self.ready}")

    def read_line(self, timeout_s):
        import select
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    break
                line = line.strip()
                if line.startswith("{"):
                    return json.loads(line)
            elif self.proc.poll() is not None:
                break
        err = ""
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().strip().replace("\n", " | ")
        raise RuntimeError(f"pacer gave no answer within {timeout_s} s (rc={self.proc.poll()}): {err}")

    def command(self, line, seconds):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.read_line(seconds + 30)

    def stop(self):
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for f in os.listdir("/dev/hugepages") if os.path.isdir("/dev/hugepages") else []:
            if f.startswith(self.prefix):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join("/dev/hugepages", f))


def tap_trial(tap, pacer, cmd, seconds):
    """One trial: tap counters, the pacer's command, tap counters once settled."""
    before = tap.counters()
    g = pacer.command(cmd, seconds)
    if "error" in g:
        raise RuntimeError(f"pacer: {g['error']}")
    after, settled = tap.settled_counters()
    d = {k: after[k] - before[k] for k in ("rx_packets", "worker_packets", "ring_drops")}
    offered = g["offered"]
    inspected = d["worker_packets"]
    # Handled = received and not dropped at a worker ring: inspected, or
    # rejected by the classifier (a capture's non-IP frames, which tap
    # counts by reason and drops by design: not a loss). Telemetry has no
    # rejects counter, so they are what the settled counters leave over.
    handled = d["rx_packets"] - d["ring_drops"]
    lost = max(offered - handled, 0)
    return {
        "rate": g["offered_pps"], "target_pps": g["target_pps"], "seconds": g["seconds"],
        "offered": offered, "sent": g["sent"], "refused_by_memif": g["refused"],
        "tap_rx": d["rx_packets"], "tap_inspected": inspected, "tap_ring_drops": d["ring_drops"],
        "lost": lost, "loss_ratio": lost / offered if offered else 1.0,
        # received but neither inspected nor dropped at a ring: rejected
        # (or not settled; 0 for the synthetic flows)
        "unaccounted": d["rx_packets"] - inspected - d["ring_drops"],
        "settled": settled, "generator_tokens_lost": g["tokens_lost"], "gen_no_mbuf": g["no_mbuf"],
        "flows_active": after["flows_active"],
        # How often the tap's receive loop left the memif ring unpolled
        # during the trial (docs/tap.md, "RX gaps"); the longest is since
        # the tap started, not per trial.
        "tap_rx_gaps": {k: after[f"rx_gaps_{k}"] - before[f"rx_gaps_{k}"] for k in ("over_100us", "over_1ms", "over_10ms")},
        "tap_rx_gap_longest_us_so_far": after["rx_gap_longest_us"],
    }


# ------------------------------------------------------------- the matrix

class Config:
    def __init__(self, a):
        self.tap_bin = os.path.join(a.build, "app", "dpdk-millipede")
        self.pacer_bin = os.path.join(a.build, "tools", "pacer", "millipede-pacer")
        self.nice = ["nice", "-n", str(a.nice)] if a.nice is not None else []
        self.tap_lcores, self.gen_lcores = a.tap_lcores, a.gen_lcores
        self.tap_workers = a.tap_workers
        self.tap_args = a.tap_args.split()
        huge = hugepages_free() >= 448 and os.path.isdir("/dev/hugepages")
        self.memory = "hugepages" if huge else "no-huge"
        self.tap_mem = ["-m", "448"] if huge else ["--no-huge", "-m", "512"]
        self.gen_mem = ["-m", "256"] if huge else ["--no-huge", "-m", "384"]
        # log2 of the memif ring's slots (DPDK's default 10: 1,024, a NIC's
        # descriptor ring); a larger ring absorbs longer stalls of the tap's poll.
        self.memif_extra = f",rsize={a.memif_rsize}" if a.memif_rsize else ""
        self.lock = a.lock
        self.quiet_file = a.quiet_file


def gen_mbufs_for_pcap(path):
    """net_pcap's infinite_rx keeps every packet of the file in the pool."""
    n = 0
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
            raise RuntimeError(f"{path}: not a pcap file (pcapng is not supported here)")
        le = magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
        f.read(20)
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            incl = int.from_bytes(h[8:12], "little" if le else "big")
            f.seek(incl, 1)
            n += 1
    return n


def run_curve(cfg, a, sockdir, curve):
    """One search: a fresh tap and pacer, a learning trial, then the search."""
    label = curve["label"]
    with dpdk_slot(cfg.lock, cfg.quiet_file):
        load = os.getloadavg()[0]
        log(f"curve {label}: load {load:.2f}")
        tap = Tap(cfg, sockdir, label, extra=curve.get("tap_extra", ()))
        pacer = None
        try:
            pacer = Pacer(cfg, tap, curve["gen_args"], mbufs=curve.get("mbufs", 16383),
                          extra_vdevs=curve.get("vdevs", ()))
            # Learning trial (RFC 2544 section 23): every flow once, so the
            # search measures the steady state and not flow set-up.
            flows = curve.get("flows") or 0
            learn_rate = min(a.learn_pps, 0.5 * a.rate_cap if a.rate_cap else a.learn_pps)
            learn_s = min(max(flows / learn_rate, 0.2), 5.0) if flows else 0.5
            learn = tap_trial(tap, pacer, f"trial {learn_rate:.0f} {learn_s:.3f}", learn_s)
            ceiling = tap_trial(tap, pacer, f"max {a.trial_seconds}", a.trial_seconds)
            # Unpaced, the pacer offers far more than memif takes (the rest is
            # refused at once, which costs nothing): the search starts at
            # 1.5 x what the tap drained under that backpressure, at most
            # what the generator offered, and guesses the drained rate next.
            drained = ceiling["tap_inspected"] / ceiling["seconds"] if ceiling["seconds"] else 0
            max_rate = min(ceiling["rate"], a.ceiling_factor * drained) if drained else ceiling["rate"]
            if a.rate_cap:
                max_rate = min(max_rate, a.rate_cap)
            guess = drained or None

            def trial(rate):
                return tap_trial(tap, pacer, f"trial {rate:.0f} {a.trial_seconds}", a.trial_seconds)

            res = search(trial, max_rate, resolution=a.resolution, max_trials=a.max_trials,
                         first_guess=guess, time_budget_s=a.curve_budget, log=log)
            res.update({"label": label, "generator": curve["generator"], "size": curve.get("size"),
                        "flows": curve.get("flows"), "capture": curve.get("capture"),
                        "trial_seconds": a.trial_seconds, "learning_trial": learn,
                        "unpaced_trial": ceiling, "load_before": load,
                        "tap_command": " ".join(tap.cmd), "generator_command": " ".join(pacer.cmd)})
        finally:
            if pacer:
                pacer.stop()
            tap.stop()
        summ = tap.summary_json()
        if summ:
            res["tap_summary"] = {k: summ.get(k) for k in ("packets", "classified", "drops", "rejects",
                                                           "dpi", "cycles_per_packet", "seconds")}
    for t in ("ndr", "pdr"):
        r = res[t]
        bits = wire_bits_per_packet(curve["size"]) if curve.get("size") else None
        r["mpps"] = round(r["rate_pps"] / 1e6, 4)
        if bits:
            r["gbps_l1"] = round(r["rate_pps"] * bits / 1e9, 3)
    log(f"curve {label}: NDR {res['ndr']['mpps']} Mpps{' (generator-limited)' if res['ndr']['generator_limited'] else ''}"
        f", PDR {res['pdr']['mpps']} Mpps, {len(res['trials'])} trials, {res['seconds']} s")
    return res


# --- testpmd: unpaced trials

def parse_testpmd_stats(text):
    """Per-port TX/RX counters from testpmd's forward statistics at exit."""
    ports = {}
    for m in re.finditer(r"Forward statistics for port (\d+)\s*-+\s*\n\s*RX-packets:\s*(\d+)\s+RX-dropped:\s*(\d+)"
                         r"\s+RX-total:\s*(\d+)\s*\n\s*TX-packets:\s*(\d+)\s+TX-dropped:\s*(\d+)", text):
        p = int(m.group(1))
        ports[p] = {"rx": int(m.group(2)), "rx_dropped": int(m.group(3)),
                    "tx": int(m.group(5)), "tx_dropped": int(m.group(6))}
    return ports


def run_testpmd(cfg, a, sockdir, run):
    """testpmd forwards/generates into the tap for trial_seconds, unpaced."""
    label = run["label"]
    with dpdk_slot(cfg.lock, cfg.quiet_file):
        load = os.getloadavg()[0]
        log(f"testpmd {label}: load {load:.2f}")
        tap = Tap(cfg, sockdir, label)
        prefix = f"rfc2544tpmd{os.getpid()}"
        memif = f"net_memif0,role=client,socket={tap.sock},socket-abstract=no,id=0{cfg.memif_extra}"
        vdevs = []
        for v in run.get("vdevs_before", ()):
            vdevs += ["--vdev", v]
        vdevs += ["--vdev", memif]
        tx_port = len(run.get("vdevs_before", ()))
        cmd = (cfg.nice + ["dpdk-testpmd", "--lcores", a.testpmd_lcores, "--file-prefix", prefix, "--no-pci",
                           "--log-level=lib.eal:error", "--no-telemetry"] + cfg.gen_mem + vdevs +
               ["--", "--nb-cores=1", "--burst=32", "--total-num-mbufs=" + str(run.get("mbufs", 16384)),
                "--no-lsc-interrupt"] + run["args"])
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, start_new_session=True)
            # testpmd starts forwarding by itself (non-interactive) and
            # stops, printing its statistics, at the first byte on stdin.
            before = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                c = tap.counters()
                if c["rx_packets"] > 0:
                    before = c
                    break
                if p.poll() is not None:
                    break
                time.sleep(0.02)
            if before is None:
                out = p.communicate(timeout=5)[0] if p.poll() is None else p.stdout.read()
                raise RuntimeError(f"testpmd {label}: no packet reached the tap: {out[-500:]}")
            t0 = time.monotonic()
            time.sleep(a.trial_seconds)
            mid = tap.counters()
            t1 = time.monotonic()
            out, _ = p.communicate(input="\n", timeout=60)
            after, settled = tap.settled_counters()
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            tap.stop()
            for f in os.listdir("/dev/hugepages") if os.path.isdir("/dev/hugepages") else []:
                if f.startswith(prefix):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join("/dev/hugepages", f))
    stats = parse_testpmd_stats(out)
    if tx_port not in stats:
        raise RuntimeError(f"testpmd {label}: no forward statistics in its output: {out[-800:]}")
    s = stats[tx_port]
    offered = s["tx"] + s["tx_dropped"]          # over testpmd's whole run
    inspected = after["worker_packets"]          # the tap saw only this testpmd
    handled = after["rx_packets"] - after["ring_drops"]   # inspected or rejected (see tap_trial)
    lost = max(offered - handled, 0)
    rate_window = (mid["worker_packets"] - before["worker_packets"]) / (t1 - t0)
    res = {"label": label, "generator": "testpmd", "mode": run["mode"], "size": run.get("size"),
           "flows": run.get("flows"), "capture": run.get("capture"),
           "testpmd_tx": s["tx"], "testpmd_tx_dropped": s["tx_dropped"], "offered": offered,
           "tap_rx": after["rx_packets"], "tap_inspected": inspected, "tap_ring_drops": after["ring_drops"],
           "tap_rejected": after["rx_packets"] - inspected - after["ring_drops"],
           "lost": lost, "loss_ratio": lost / offered if offered else 1.0, "settled": settled,
           "inspected_mpps_window": round(rate_window / 1e6, 4), "window_seconds": round(t1 - t0, 3),
           "load_before": load, "tap_command": " ".join(tap.cmd), "testpmd_command": " ".join(cmd)}
    log(f"testpmd {label}: tap inspected {res['inspected_mpps_window']} Mpps, "
        f"loss {100 * res['loss_ratio']:.2f} % (testpmd TX-dropped {s['tx_dropped']})")
    return res


def merged_capture(a):
    """One capture of tools/bench/tap.sh's seven, for the replay runs."""
    out = os.path.join(a.build, "rfc2544-mix.pcap")
    if not os.path.exists(out):
        files = [os.path.join(a.pcaps, c) for c in a.captures.split()]
        missing = [f for f in files if not os.path.exists(f)]
        if missing:
            raise RuntimeError(f"no capture {missing[0]}")
        subprocess.run(["mergecap", "-F", "pcap", "-a", "-w", out] + files, check=True)
    return out


def build_matrix(a):
    sizes = a.sizes.replace(",", " ").split()
    try:
        flows = [int(f) for f in a.flows.replace(",", " ").split()]
    except ValueError:
        raise SystemExit(f"rfc2544.py: --flows takes whole numbers, separated by spaces or commas: {a.flows!r}")
    curves = []
    for size in sizes:
        for n in flows:
            curves.append({"label": f"pacer-{size}B-{n}flows" if size != "imix" else f"pacer-imix-{n}flows",
                           "generator": "pacer", "size": size, "flows": n,
                           "gen_args": ["--flows", str(n), "--size", size]})
    if a.capture_curve:
        cap = merged_capture(a)
        n = gen_mbufs_for_pcap(cap)
        curves.append({"label": "pacer-capture", "generator": "pacer", "capture": cap, "size": None,
                       "flows": None, "mbufs": n + 16383,
                       "vdevs": ["--vdev", f"net_pcap0,rx_pcap={cap},infinite_rx=1"],
                       # the memif port is the first (port 0), the capture port 1
                       "gen_args": ["--port", "0", "--source-port", "1"]})
    runs = []
    fixed = [s for s in sizes if s != "imix"][:a.testpmd_sizes]   # testpmd sends one frame size
    for mode in a.testpmd_modes.split():
        if mode == "flowgen" and fixed:
            # every flow count at the first size, every size at the first flow count
            pairs = [(fixed[0], n) for n in flows] + [(s, flows[0]) for s in fixed[1:]]
            for size, n in pairs:
                runs.append({"label": f"testpmd-flowgen-{size}B-{n}flows", "mode": "flowgen",
                             "size": size, "flows": n,
                             "args": ["--forward-mode=flowgen", f"--flowgen-flows={n}",
                                      f"--txpkts={int(size) - 4}"]})
        elif mode == "txonly":
            for size in fixed[:1]:
                runs.append({"label": f"testpmd-txonly-multiflow-{size}B", "mode": "txonly", "size": size,
                             "flows": None,
                             "args": ["--forward-mode=txonly", "--txonly-multi-flow",
                                      f"--txpkts={int(size) - 4}"]})
        elif mode == "io":
            cap = merged_capture(a)
            n = gen_mbufs_for_pcap(cap)
            runs.append({"label": "testpmd-io-capture", "mode": "io", "capture": cap, "mbufs": n + 16384,
                         "vdevs_before": [f"net_pcap0,rx_pcap={cap},infinite_rx=1"],
                         "args": ["--forward-mode=io"]})
    return curves, runs


def matrix(a):
    cfg = Config(a)
    for b in (cfg.tap_bin, cfg.pacer_bin):
        if not os.access(b, os.X_OK):
            sys.exit(f"rfc2544.py: no {b} (build it: ninja -C {a.build})")
    os.makedirs(a.out, exist_ok=True)
    curves, runs = build_matrix(a)
    sockdir = tempfile.mkdtemp(prefix="rfc2544")
    t0 = time.monotonic()
    results = {"conditions": conditions(a, cfg), "curves": [], "testpmd": [], "errors": []}
    path = os.path.join(a.out, "rfc2544.json")

    def save():  # after every search: a run cut short keeps what it measured
        results["seconds"] = round(time.monotonic() - t0, 1)
        results["conditions"]["load_after"] = os.getloadavg()[0]
        with open(path + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(path + ".tmp", path)
    try:
        for c in curves:
            try:
                results["curves"].append(run_curve(cfg, a, sockdir, c))
            except Exception as e:  # one curve's failure is reported, the rest still run
                results["errors"].append({"label": c["label"], "error": str(e)})
                log(f"curve {c['label']} FAILED: {e}")
            save()
        for r in runs:
            try:
                results["testpmd"].append(run_testpmd(cfg, a, sockdir, r))
            except Exception as e:
                results["errors"].append({"label": r["label"], "error": str(e)})
                log(f"{r['label']} FAILED: {e}")
            save()
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
    save()
    log(f"wrote {path} ({results['seconds']} s)")
    plots = plot(results, a.out, path)
    print(json.dumps(summary_table(results)))
    for p in plots:
        log(f"plot {p}")
    return 1 if results["errors"] else 0


def conditions(a, cfg):
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {"cpu": cpu, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0],
            "commit": git.stdout.strip(), "memory": cfg.memory, "tap_lcores": a.tap_lcores,
            "generator_lcores": a.gen_lcores, "testpmd_lcores": a.testpmd_lcores,
            "tap_workers": a.tap_workers, "tap_args": a.tap_args, "nice": a.nice,
            "trial_seconds": a.trial_seconds, "resolution": a.resolution, "max_trials": a.max_trials,
            "link": "memif (tap = server, generator = client), socket-abstract=no",
            "memif_rsize": a.memif_rsize or 10,
            "quick": a.quick, "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def summary_table(results):
    rows = []
    for c in results["curves"]:
        rows.append({"label": c["label"], "ndr_mpps": c["ndr"]["mpps"], "pdr_mpps": c["pdr"]["mpps"],
                     "ndr_gbps_l1": c["ndr"].get("gbps_l1"), "pdr_gbps_l1": c["pdr"].get("gbps_l1"),
                     "ndr_generator_limited": c["ndr"]["generator_limited"],
                     "converged": c["ndr"]["converged"] and c["pdr"]["converged"],
                     "trials": len(c["trials"]), "ceiling_mpps": round(c["max_rate"] / 1e6, 4),
                     # what the tap inspected while the generator pushed unpaced
                     # (memif backpressure: the tap never idles, nothing is lost)
                     "drained_unpaced_mpps": round(c["unpaced_trial"]["tap_inspected"]
                                                   / max(c["unpaced_trial"]["seconds"], 1e-9) / 1e6, 4)
                     if c.get("unpaced_trial") else None})
    for r in results["testpmd"]:
        rows.append({"label": r["label"], "inspected_mpps": r["inspected_mpps_window"],
                     "loss_ratio": round(r["loss_ratio"], 5)})
    return {"rows": rows, "errors": results["errors"], "seconds": results.get("seconds")}


def plot(results, outdir, results_path=None):
    """One PNG per curve: loss ratio of every trial against the offered rate."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        # pyenv or venv pythons lack Debian's python3-matplotlib: try Debian's.
        sysp = "/usr/bin/python3"
        if results_path and os.path.realpath(sys.executable) != os.path.realpath(sysp) and os.path.exists(sysp):
            r = subprocess.run([sysp, os.path.abspath(__file__), "plot", results_path],
                               capture_output=True, text=True)
            if r.returncode == 0:
                return r.stdout.split()
        log("no matplotlib (Debian: apt-get install python3-matplotlib); no plots")
        return []
    out = []
    for c in results["curves"]:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        tr = sorted(c["trials"], key=lambda t: t["rate"])
        xs = [t["rate"] / 1e6 for t in tr]
        ys = [max(100 * t["loss_ratio"], 1e-4) for t in tr]
        ax.plot(xs, ys, "o-", color="tab:blue", label="trials (loss %)")
        for t, color in (("ndr", "tab:green"), ("pdr", "tab:orange")):
            r = c[t]["rate_pps"] / 1e6
            ax.axvline(r, color=color, linestyle="--", label=f"{t.upper()} {r:.3f} Mpps")
        ax.axhline(100 * PDR_LOSS, color="tab:orange", linestyle=":", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("offered rate (Mpps)")
        ax.set_ylabel("loss (% of offered, 1e-4 = none)")
        ax.set_title(f"{c['label']} ({c['trial_seconds']} s trials)")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        p = os.path.join(outdir, f"{c['label']}.png")
        fig.tight_layout()
        fig.savefig(p, dpi=90)
        plt.close(fig)
        out.append(p)
    return out


# --------------------------------------------------------------- self-test

def synthetic_dut(ndr, pdr, ceiling_loss=True):
    """A loss curve with a known NDR and PDR: no loss up to ndr, loss rising
    linearly to 0.1 % at pdr, then everything above what the DUT drains."""
    def loss(rate):
        if rate <= ndr:
            return 0.0
        if rate <= pdr:
            return PDR_LOSS * (rate - ndr) / (pdr - ndr)
        return PDR_LOSS + (rate - pdr) / rate
    return loss


def selftest():
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    def trial_of(loss):
        return lambda rate: {"rate": rate, "loss_ratio": loss(rate)}

    # 1. A DUT slower than the generator: both targets inside the resolution.
    for ndr, pdr, ceiling in ((2.0e6, 2.5e6, 10e6), (0.31e6, 0.33e6, 14.88e6), (5e6, 5e6 + 1, 6e6)):
        res = search(trial_of(synthetic_dut(ndr, pdr)), ceiling, resolution=0.01, max_trials=30)
        n, p = res["ndr"]["rate_pps"], res["pdr"]["rate_pps"]
        check(ndr * 0.99 <= n <= ndr and res["ndr"]["converged"],
              f"NDR {ndr / 1e6} Mpps found: {n / 1e6:.4f} ({len(res['trials'])} trials, ceiling {ceiling / 1e6})")
        check(pdr * 0.99 <= p <= pdr and res["pdr"]["converged"], f"PDR {pdr / 1e6} Mpps found: {p / 1e6:.4f}")
        check(all(t["loss_ratio"] == 0 for t in [res["ndr"]["trial"]]), "the NDR has a trial without loss")
        check(len(res["trials"]) <= 30, f"trials bounded: {len(res['trials'])} <= 30")
    # 2. The first guess (what the DUT drained at the ceiling) saves trials.
    dut = synthetic_dut(2.0e6, 2.5e6)
    plain = search(trial_of(dut), 10e6, resolution=0.02, max_trials=30)
    guided = search(trial_of(dut), 10e6, resolution=0.02, max_trials=30, first_guess=2.5e6 * 1.001)
    check(len(guided["trials"]) <= len(plain["trials"]),
          f"a first guess does not cost trials: {len(guided['trials'])} <= {len(plain['trials'])}")
    # 3. A DUT faster than the generator: passes at the ceiling, flagged.
    res = search(trial_of(synthetic_dut(20e6, 21e6)), 6e6)
    check(res["ndr"]["rate_pps"] == 6e6 and res["ndr"]["generator_limited"] and len(res["trials"]) == 1,
          "a DUT faster than the generator: NDR = ceiling, generator_limited, one trial")
    # 4. Bounds: max_trials and the time budget stop an unconverged search.
    res = search(trial_of(dut), 10e6, resolution=1e-9, max_trials=7)
    check(len(res["trials"]) == 7 and not res["ndr"]["converged"] and res["ndr"]["upper_bound_pps"] is not None
          and res["ndr"]["rate_pps"] <= 2.0e6 <= res["ndr"]["upper_bound_pps"],
          "max_trials stops the search; NDR reported with bounds around the truth")

    def slow(rate):
        time.sleep(0.05)
        return {"rate": rate, "loss_ratio": dut(rate)}
    t0 = time.monotonic()
    res = search(slow, 10e6, resolution=1e-9, max_trials=1000, time_budget_s=0.3)
    check(time.monotonic() - t0 < 1.0 and not res["pdr"]["converged"], "the time budget stops the search")
    # 4b. A generator that offers only 60 % of the target above 1 Mpps:
    # the search stops instead of repeating the same target.
    def short(rate):
        offered = rate if rate <= 1e6 else 0.6 * rate
        return {"rate": offered, "loss_ratio": dut(offered) if offered <= 1.9e6 else 0.01}
    res = search(short, 10e6, resolution=0.01, max_trials=30)
    check(res["generator_short"] and len(res["trials"]) < 30,
          f"a generator falling short stops the search ({len(res['trials'])} trials, generator_short)")
    # 5. Noise: a pass above a failure is not believed; the NDR stays at or
    # below the true one and always has a passing trial.
    import random
    rng = random.Random(7)

    def noisy(rate):
        l = dut(rate)
        if rng.random() < 0.2:
            l = 0.0 if rng.random() < 0.5 else l + 0.01
        return {"rate": rate, "loss_ratio": l}
    bad = 0
    for _ in range(50):
        res = search(noisy, 10e6, resolution=0.01, max_trials=20)
        t = res["ndr"]["trial"]
        if res["ndr"]["rate_pps"] > 0 and (t is None or t["loss_ratio"] != 0):
            bad += 1
    check(bad == 0, f"noisy: every reported NDR has a trial without loss ({bad} of 50 without)")
    # 6. A DUT that loses even at the floor.
    res = search(lambda r: {"rate": r, "loss_ratio": 0.5}, 10e6, max_trials=40)
    check(res["ndr"]["rate_pps"] == 0 and res["ndr"]["converged"], "a DUT losing everywhere: NDR 0, converged")
    # 7. testpmd's statistics parser on testpmd 22.11's exit output.
    sample = """
  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 0              RX-dropped: 0             RX-total: 0
  TX-packets: 1234567        TX-dropped: 89            TX-total: 1234656
  ----------------------------------------------------------------------------
"""
    st = parse_testpmd_stats(sample)
    check(st == {0: {"rx": 0, "rx_dropped": 0, "tx": 1234567, "tx_dropped": 89}}, f"testpmd stats parsed: {st}")
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failure(s)")
    return 1 if failures else 0


# -------------------------------------------------------------------- CLI

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("matrix", help="run the searches (pacer) and the testpmd runs")
    m.add_argument("--quick", action="store_true",
                   help="a few minutes: 64 B x 1k flows, 0.5 s trials, 10 %% resolution, <= 6 trials")
    m.add_argument("--build", default=os.path.join(ROOT, "build"))
    m.add_argument("--out", default=None, help="directory for rfc2544.json and the PNGs (default BUILD/rfc2544)")
    m.add_argument("--sizes", default="64 512 1518 imix")
    m.add_argument("--flows", default="1000 100000 1000000")
    m.add_argument("--trial-seconds", type=float, default=2.0)
    m.add_argument("--resolution", type=float, default=0.02)
    m.add_argument("--max-trials", type=int, default=10)
    m.add_argument("--curve-budget", type=float, default=40.0, help="seconds of trials per search at most")
    m.add_argument("--rate-cap", type=float, default=None, help="highest offered rate, pps")
    m.add_argument("--learn-pps", type=float, default=500000)
    m.add_argument("--ceiling-factor", type=float, default=1.5,
                   help="search ceiling = this x the rate the tap drained in the unpaced trial")
    m.add_argument("--no-capture-curve", dest="capture_curve", action="store_false")
    m.add_argument("--testpmd-modes", default="flowgen txonly io")
    m.add_argument("--testpmd-sizes", type=int, default=3, help="how many of --sizes testpmd runs")
    m.add_argument("--pcaps", default=os.path.join(ROOT, "..", "shared", "pcaps"))
    m.add_argument("--captures", default="whatsapp.pcap quic.pcap dropbox.pcap tor.pcap bittorrent.pcap "
                                         "teamviewer.pcap openvpn.pcap")
    m.add_argument("--tap-lcores", default="0@1,1@1",
                   help="tap: main lcore (sleeps) and the RX+classify+worker lcore, both on CPU 1")
    m.add_argument("--gen-lcores", default="0@0", help="the pacer's one lcore, on CPU 0")
    m.add_argument("--testpmd-lcores", default="0@0,1@0", help="testpmd: main (idle) + forwarding lcore on CPU 0")
    m.add_argument("--tap-workers", type=int, default=1)
    m.add_argument("--memif-rsize", type=int, default=None, help="log2 memif ring slots (DPDK default 10)")
    m.add_argument("--tap-args", default="--policy busy --busy-poll",
                   help="tap's own words; --busy-poll by default: an appliance's rx lcore has its core "
                        "to itself, and the idle back-off's sleeps leave the memif ring unpolled "
                        "(docs/benchmarks.md, RFC 2544 searches)")
    m.add_argument("--nice", type=int, default=-20)
    m.add_argument("--lock", default=os.environ.get("MILLIPEDE_DPDK_LOCK", "/tmp/millipede-dpdk.lock"),
                   help="held per search (empty: none); MILLIPEDE_DPDK_LOCK as tools/test.sh")
    m.add_argument("--quiet-file", default=os.environ.get("MILLIPEDE_QUIET_FILE", ""),
                   help="wait while this file exists before each search")
    s = sub.add_parser("selftest", help="the search against synthetic loss curves (no DPDK)")
    p = sub.add_parser("plot", help="PNGs from a results file")
    p.add_argument("results")
    a = ap.parse_args()
    if a.cmd == "selftest":
        return selftest()
    if a.cmd == "plot":
        with open(a.results) as f:
            print("\n".join(plot(json.load(f), os.path.dirname(os.path.abspath(a.results)))))
        return 0
    if a.quick:
        a.sizes, a.flows = "64", "1000"
        a.trial_seconds, a.resolution, a.max_trials, a.curve_budget = 0.5, 0.10, 6, 20.0
        a.testpmd_modes, a.testpmd_sizes = "flowgen", 1
        a.capture_curve = False
    a.out = a.out or os.path.join(a.build, "rfc2544")
    return matrix(a)


if __name__ == "__main__":
    sys.exit(main())
