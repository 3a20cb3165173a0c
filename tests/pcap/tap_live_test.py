#!/usr/bin/env python3
"""A live tap: figures on SIGUSR1 and through rte_telemetry.

Runs `dpdk-millipede tap` on a capture replayed in a loop (net_pcap
infinite_rx=1, so the input never ends by itself) with two logical workers
and --check-order. The test connects to DPDK's telemetry socket
(/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2, SOCK_SEQPACKET) and asks
/millipede/tap/stats and /millipede/tap/workers until the workers have
received packets and nDPI has inspected some, and checks their JSON. It
then stops the process for 60 ms (SIGSTOP, SIGCONT) and waits for the
receive loop's gap counters (rx_gaps_*) to show it, sends SIGUSR1 and
waits for the figures line on stderr, then SIGTERM, and waits for the
exit. Every wait is for a condition, with a deadline; the one timed step
is the 60 ms stop itself. The run must end with status 0, exactly two figures lines (SIGUSR1
and exit), every flow recorded once, the order checker on and its
counters zero.

usage: tap_live_test.py DPDK_MILLIPEDE PCAP_DIR
"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from rig import telemetry_at, wait_for  # noqa: E402






def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    app, folder = sys.argv[1], sys.argv[2]
    capture = os.path.join(folder, "whatsapp.pcap")
    if not os.path.exists(capture):
        print(f"FAIL: {capture} is absent (tests need ../shared/pcaps)")
        return 1
    prefix = f"taplive_{os.getpid()}"
    sock = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
    # --duration only bounds a run the test failed to stop.
    cmd = [app, "--no-huge", "--no-pci", "-m", "512", "--log-level=lib.eal:error", "--file-prefix", prefix,
           "--lcores", "0@0,1@(0-1),2@(0-1)", "--vdev", f"net_pcap0,rx_pcap={capture},infinite_rx=1", "--",
           "tap", "--workers", "2", "--check-order", "--duration", "300", "--flows-out", "-", "--summary", "-"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines = queue.Queue()
    err_all, out_chunks = [], []

    def read_err():
        for line in p.stderr:
            err_all.append(line)
            err_lines.put(line)

    readers = [threading.Thread(target=read_err), threading.Thread(target=lambda: out_chunks.append(p.stdout.read()))]
    for r in readers:
        r.start()

    def figures_line(timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = err_lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no figures line on stderr within {timeout} s")
            if line.startswith("tap: "):
                return line

    failures = []
    try:
        wait_for("the telemetry socket", lambda: os.path.exists(sock) or p.poll() is not None, 60)

        def traffic_seen():
            if p.poll() is not None:
                raise RuntimeError(f"tap exited early with status {p.returncode}")
            s = telemetry_at(sock, "/millipede/tap/stats")  # null until the run has registered
            if not s or not (s["rx_packets"] > 0 and s["worker_packets"] > 0 and s["flows_started"] > 0):
                return None
            w = telemetry_at(sock, "/millipede/tap/workers")
            return (s, w) if sum(w["dpi_packets"]) > 0 else None

        stats, workers = wait_for("packets received, processed and inspected (/millipede/tap/*)", traffic_seen, 60)
        print("stats:", json.dumps(stats))
        print("workers:", json.dumps(workers))
        if stats["workers"] != 2:
            failures.append(f"telemetry says {stats['workers']} workers, expected 2")
        for key in ("packets", "bytes", "flows_started", "flows_ended", "dpi_packets", "ring_drops",
                    "records_dropped", "busy_permille"):
            if len(workers.get(key, [])) != 2:
                failures.append(f"/millipede/tap/workers: {key} is not a 2-worker array: {workers.get(key)}")
        if sum(workers["packets"]) <= 0 or sum(workers["dpi_packets"]) <= 0:
            failures.append("workers have inspected nothing")
        if sum(workers["packets"]) > telemetry_at(sock, "/millipede/tap/stats")["rx_packets"]:
            failures.append("workers processed more packets than were received")
        # The receive loop's unpolled spells: a process stopped for 60 ms
        # leaves its queues unpolled at least that long, and the counters
        # say so (the stop itself is the stimulus; the check waits).
        before = telemetry_at(sock, "/millipede/tap/stats")
        p.send_signal(signal.SIGSTOP)
        time.sleep(0.06)
        p.send_signal(signal.SIGCONT)

        def gap_counted():
            s = telemetry_at(sock, "/millipede/tap/stats")
            return s if s["rx_gaps_over_10ms"] > before["rx_gaps_over_10ms"] else None

        after = wait_for("a gap over 10 ms in /millipede/tap/stats after SIGSTOP", gap_counted, 30)
        print("rx gaps:", {k: after[k] for k in after if k.startswith("rx_gap")})
        if after["rx_gap_longest_us"] < 55000:
            failures.append(f"longest rx gap {after['rx_gap_longest_us']} us after a 60 ms stop")
        if not after["rx_gaps_over_100us"] >= after["rx_gaps_over_1ms"] >= after["rx_gaps_over_10ms"]:
            failures.append(f"rx gap buckets do not nest: {after}")
        p.send_signal(signal.SIGUSR1)
        print("on SIGUSR1:", figures_line(60).strip())
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    except Exception as e:
        failures.append(f"{type(e).__name__}: {e}")
        p.kill()
        p.wait(60)
    for r in readers:
        r.join(60)
    out, err = "".join(out_chunks), "".join(err_all)
    if p.returncode != 0:
        failures.append(f"exit status {p.returncode}: {err.strip()[-400:]}")
    lines = [l for l in err.splitlines() if l.startswith("tap: ")]
    # One line for SIGUSR1, one at exit (no --stats-interval).
    if len(lines) != 2:
        failures.append(f"{len(lines)} figures lines on stderr, expected 2 (SIGUSR1 + exit): {lines}")
    docs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    if docs:
        summary, records = docs[-1], docs[:-1]
        flows = sum(summary["flows"].values())
        print(f"summary: {summary['packets']} packets, {flows} flows, {len(records)} records, "
              f"dpi {summary['dpi']}, correctness {summary['correctness']}")
        if len(records) != flows:
            failures.append(f"{len(records)} records for {flows} flows")
        if summary.get("rx_gaps", {}).get("over_10ms", 0) < 1:
            failures.append(f"the summary's rx_gaps misses the stop: {summary.get('rx_gaps')}")
        if summary["records"]["dropped"]:
            failures.append(f"{summary['records']['dropped']} records dropped")
        if summary["correctness"].get("checked") is not True:
            failures.append(f"--check-order did not check: {summary['correctness']}")
        for counter, value in summary["correctness"].items():
            if counter != "checked" and value:
                failures.append(f"{counter} = {value}")
        if not any(r.get("l7") == "WhatsApp" for r in records):
            failures.append("no WhatsApp flow among the records")
    else:
        failures.append("no summary on stdout")
    for f in failures:
        print("FAIL:", f)
    print("OK" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
