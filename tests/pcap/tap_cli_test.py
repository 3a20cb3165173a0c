#!/usr/bin/env python3
"""tap's command line and signals, before, during and after EAL start-up.

1. `tap --help` prints the usage and exits 0, and bad options exit 2 with
   one line on stderr, without initialising EAL: no runtime directory
   (/var/run/dpdk/PREFIX) appears, and EAL options that EAL itself would
   refuse are never looked at.
2. A capture file that does not exist gives "no such capture FILE" (one
   line, exit 2); a file that is not a capture says so.
3. SIGUSR1 while EAL is starting: the capture is a FIFO, which net_pcap
   opens while EAL probes devices, so once this test's write end is open the
   process is provably inside rte_eal_init. Signals sent then must not end
   it: after the capture is written into the FIFO the run completes with
   status 0 and counts every packet.
4. SIGUSR1 at every moment: from the moment the handler is installed
   (/proc/PID/status SigCgt) until the process exits, SIGUSR1 keeps
   arriving; the run must end with status 0 and its summary.

usage: tap_cli_test.py DPDK_MILLIPEDE PCAP_DIR
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from rig import wait_for  # noqa: E402

SIGUSR1_BIT = 1 << (signal.SIGUSR1 - 1)


def runtime_dir(prefix):
    return f"/var/run/dpdk/{prefix}"




def catches_usr1(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16) & SIGUSR1_BIT
    except FileNotFoundError:
        return False
    return False


def eal_args(prefix, capture):
    return ["--no-huge", "--no-pci", "-m", "512", "--log-level=lib.eal:error", "--file-prefix", prefix,
            "-l", "0", "--vdev", f"net_pcap0,rx_pcap={capture}"]


class Test:
    def __init__(self, app, folder):
        self.app, self.folder = app, folder
        self.failures = []
        self.n = 0

    def prefix(self):
        self.n += 1
        return f"tapcli_{os.getpid()}_{self.n}"

    def check(self, ok, message):
        print(("ok   " if ok else "FAIL ") + message)
        if not ok:
            self.failures.append(message)

    def no_eal(self, args, expect_status, expect_stdout=None, expect_line=None):
        """Runs without EAL ever starting: status, one stderr line, no runtime dir."""
        prefix = self.prefix()
        # An EAL option EAL would refuse: reaching rte_eal_init would fail with status 1.
        cmd = [self.app, "--file-prefix", prefix, "--no-such-eal-option", "--"] + args
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        what = " ".join(args)
        self.check(p.returncode == expect_status, f"`{what}`: status {p.returncode}, expected {expect_status}")
        self.check(not os.path.exists(runtime_dir(prefix)), f"`{what}`: EAL did not start (no {runtime_dir(prefix)})")
        if expect_stdout:
            self.check(expect_stdout in p.stdout, f"`{what}`: stdout has {expect_stdout!r}")
        if expect_line is not None:
            lines = p.stderr.splitlines()
            self.check(len(lines) == 1 and lines[0].startswith("dpdk-millipede tap: ") and expect_line in lines[0],
                       f"`{what}`: one stderr line with {expect_line!r}: {lines}")

    def options(self):
        self.no_eal(["tap", "--help"], 0, expect_stdout="usage: dpdk-millipede [EAL options] -- tap")
        self.no_eal(["tap", "--workers", "3", "-h"], 0, expect_stdout="--check-order")
        for args, text in ((["--bogus"], "unknown tap option '--bogus'"), (["--workers", "0"], "--workers"),
                           (["--workers"], "--workers"), (["--policy", "fastest"], "--policy"),
                           (["--ring-size", "1000"], "power of two"), (["--idle-timeout", "tcp=x"], "--idle-timeout"),
                           (["--stats-interval", "-1"], "--stats-interval"), (["--mbufs", "10"], "--mbufs"),
                           (["--flows-out"], "--flows-out")):
            self.no_eal(["tap"] + args, 2, expect_line=text)

    def captures(self):
        missing = "/nonexistent/dir/capture.pcap"
        for form in ([f"--vdev", f"net_pcap0,rx_pcap={missing}"], [f"--vdev=net_pcap0,rx_pcap={missing},infinite_rx=1"]):
            prefix = self.prefix()
            p = subprocess.run([self.app, "--no-huge", "--no-pci", "--file-prefix", prefix] + form + ["--", "tap"],
                               capture_output=True, text=True, timeout=60)
            lines = p.stderr.splitlines()
            self.check(p.returncode == 2 and lines == [f"dpdk-millipede tap: no such capture {missing}"],
                       f"missing capture ({form[-1][:24]}...): status {p.returncode}, stderr {lines}")
            self.check(not os.path.exists(runtime_dir(prefix)), "missing capture: EAL did not start")
        with tempfile.NamedTemporaryFile("w", suffix=".pcap") as f:
            f.write("not a capture\n")
            f.flush()
            p = subprocess.run([self.app, "--no-pci", "--vdev", f"net_pcap0,rx_pcap={f.name}", "--", "tap"],
                               capture_output=True, text=True, timeout=60)
            lines = p.stderr.splitlines()
            self.check(p.returncode == 2 and lines == [f"dpdk-millipede tap: capture {f.name} is not a pcap or pcapng file"],
                       f"a file that is not a capture: status {p.returncode}, stderr {lines}")

    def usr1_during_eal_start(self):
        capture = os.path.join(self.folder, "http.pcapng")
        with open(capture, "rb") as f:
            content = f.read()
        with tempfile.TemporaryDirectory() as tmp:
            fifo = os.path.join(tmp, "capture.pcapng")
            os.mkfifo(fifo)
            prefix = self.prefix()
            p = subprocess.Popen([self.app] + eal_args(prefix, fifo) + ["--", "tap", "--summary", "-"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                def open_writer():
                    if p.poll() is not None:
                        raise RuntimeError(f"tap exited before opening the capture: {p.returncode}")
                    try:
                        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                    except OSError:  # ENXIO: no reader yet
                        return None
                fd = wait_for("net_pcap to open the FIFO", open_writer, 60)
                os.set_blocking(fd, True)
                # net_pcap's probe is now blocked reading the capture header.
                in_eal = os.path.isdir(runtime_dir(prefix))
                no_telemetry_yet = not os.path.exists(os.path.join(runtime_dir(prefix), "dpdk_telemetry.v2"))
                self.check(in_eal and no_telemetry_yet,
                           "the FIFO was opened inside rte_eal_init (runtime dir there, telemetry not yet)")
                for _ in range(3):
                    p.send_signal(signal.SIGUSR1)
                os.write(fd, content)  # the pipe holds it all: a few KB
                os.close(fd)
                out, err = p.communicate(timeout=120)
            except Exception as e:
                p.kill()
                out, err = p.communicate()
                self.check(False, f"SIGUSR1 during EAL start-up: {type(e).__name__}: {e}")
                return
        self.check(p.returncode == 0, f"SIGUSR1 during EAL start-up: exit status {p.returncode} (0 expected; "
                                      f"-10 is death by SIGUSR1): {err.strip()[-300:]}")
        summary = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        packets = summary[-1]["packets"] if summary else None
        self.check(packets == 10, f"SIGUSR1 during EAL start-up: the run counted {packets} packets of http.pcapng's 10")
        self.check(any(l.startswith("tap: ") for l in err.splitlines()), "SIGUSR1 during EAL start-up: figures on stderr")

    def usr1_always(self):
        capture = os.path.join(self.folder, "whatsapp.pcap")
        prefix = self.prefix()
        p = subprocess.Popen([self.app] + eal_args(prefix, capture) + ["--", "tap", "--summary", "-"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out_chunks, err_chunks = [], []
        readers = [threading.Thread(target=lambda: out_chunks.append(p.stdout.read())),
                   threading.Thread(target=lambda: err_chunks.append(p.stderr.read()))]
        for r in readers:
            r.start()
        sent = 0
        try:
            wait_for("the SIGUSR1 handler", lambda: catches_usr1(p.pid) or p.poll() is not None, 60)
            deadline = time.monotonic() + 120
            while p.poll() is None and time.monotonic() < deadline:
                try:
                    p.send_signal(signal.SIGUSR1)
                    sent += 1
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=0.002)  # paces the signals; returns as soon as the process ends
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if p.poll() is None:
                p.kill()
            p.wait(60)
            for r in readers:
                r.join(60)
        out, err = "".join(out_chunks), "".join(err_chunks)
        self.check(sent > 0 and p.returncode == 0,
                   f"SIGUSR1 throughout the run ({sent} sent): exit status {p.returncode}: {err.strip()[-300:]}")
        summary = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        self.check(bool(summary) and summary[-1]["packets"] > 0, "SIGUSR1 throughout the run: the summary was written")
        lines = [l for l in err.splitlines() if l.startswith("tap: ")]
        # The final line, and at least one answer while the loop ran (the
        # signals that came during start-up are answered by its first round).
        self.check(len(lines) >= 2, f"SIGUSR1 throughout the run: {len(lines)} figures lines, at least 2 expected")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    t = Test(sys.argv[1], sys.argv[2])
    t.options()
    t.captures()
    if not os.path.isdir(t.folder):
        print(f"FAIL: {t.folder} is absent (the signal tests replay its captures)")
        return 1
    t.usr1_during_eal_start()
    t.usr1_always()
    print("OK" if not t.failures else f"{len(t.failures)} failure(s)")
    return 1 if t.failures else 0


if __name__ == "__main__":
    sys.exit(main())
