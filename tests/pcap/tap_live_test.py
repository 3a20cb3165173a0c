#!/usr/bin/env python3
"""A live tap: figures on SIGUSR1 and through rte_telemetry.

Runs `dpdk-millipede tap` on a capture replayed in a loop (net_pcap
infinite_rx=1, so the input never ends by itself) for a few seconds, with
two logical workers. While it runs, the test connects to DPDK's telemetry
socket (/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2, SOCK_SEQPACKET),
asks /millipede/tap/stats and /millipede/tap/workers and checks their JSON,
then sends SIGUSR1 and checks that exactly one extra figures line reached
stderr. The run must end by itself (--duration) with status 0, every flow
recorded once, no correctness counter raised.

usage: tap_live_test.py DPDK_MILLIPEDE PCAP_DIR
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time


def telemetry(prefix, command):
    path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
    deadline = time.time() + 10
    while not os.path.exists(path):
        if time.time() > deadline:
            raise RuntimeError(f"no telemetry socket at {path}")
        time.sleep(0.05)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(5)
        s.connect(path)
        hello = json.loads(s.recv(4096).decode())
        s.send(command.encode())
        return json.loads(s.recv(hello["max_output_len"]).decode())


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
    cmd = [app, "--no-huge", "--no-pci", "-m", "512", "--log-level=lib.eal:error", "--file-prefix", prefix,
           "--lcores", "0@0,1@(0-1),2@(0-1)", "--vdev", f"net_pcap0,rx_pcap={capture},infinite_rx=1", "--",
           "tap", "--workers", "2", "--duration", "4", "--flows-out", "-", "--summary", "-"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    failures = []
    try:
        time.sleep(1.5)
        stats = telemetry(prefix, "/millipede/tap/stats")["/millipede/tap/stats"]
        workers = telemetry(prefix, "/millipede/tap/workers")["/millipede/tap/workers"]
        print("stats:", json.dumps(stats))
        print("workers:", json.dumps(workers))
        if stats["workers"] != 2:
            failures.append(f"telemetry says {stats['workers']} workers, expected 2")
        if stats["rx_packets"] <= 0 or stats["flows_started"] <= 0:
            failures.append("telemetry shows no traffic after 1.5 s of replay")
        for key in ("packets", "bytes", "flows_started", "flows_ended", "dpi_packets", "ring_drops",
                    "records_dropped", "busy_permille"):
            if len(workers.get(key, [])) != 2:
                failures.append(f"/millipede/tap/workers: {key} is not a 2-worker array: {workers.get(key)}")
        if sum(workers["packets"]) <= 0 or sum(workers["dpi_packets"]) <= 0:
            failures.append("workers have inspected nothing")
        if sum(workers["packets"]) > stats["rx_packets"]:
            failures.append("workers processed more packets than were received")
        p.send_signal(signal.SIGUSR1)
        out, err = p.communicate(timeout=60)
    except Exception as e:
        p.kill()
        out, err = p.communicate()
        failures.append(f"{type(e).__name__}: {e}")
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
              f"dpi {summary['dpi']}")
        if len(records) != flows:
            failures.append(f"{len(records)} records for {flows} flows")
        if summary["records"]["dropped"]:
            failures.append(f"{summary['records']['dropped']} records dropped")
        for counter, value in summary["correctness"].items():
            if value:
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
