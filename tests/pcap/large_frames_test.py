#!/usr/bin/env python3
"""Frames longer than one mbuf, through tap, against tshark and ndpiReader.

make_large_frames.py (scapy) writes two captures into a temporary folder:
9,000-byte jumbo frames and 65,535-byte GRO/TSO datagrams (see its
docstring). Then:

- pcap_oracle.py on both: per flow and direction, packets and bytes equal
  tshark's, no well-formed frame rejected, Community IDs equal (the jumbo
  capture also holds an ICMP port unreachable quoting a UDP header);
- ndpi_oracle.py on the jumbo capture: every flow's L7 label equals
  ndpiReader's, among them HTTP.NetFlix, which nDPI finds only from a Host
  header 6 KB into the request, i.e. only when the worker hands it the
  whole chained frame. The 64 KiB capture is not given to ndpiReader: it
  keeps packet lengths in 16 bits and miscounts or drops those frames.

usage: large_frames_test.py DPDK_MILLIPEDE
Needs scapy (Debian: python3-scapy, which tools/test.sh installs); Debian's
python3 is used when the interpreter running this has no scapy.
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def scapy_python():
    for exe in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(exe) and subprocess.run([exe, "-c", "import scapy.all"], capture_output=True,
                                                  timeout=120).returncode == 0:
            return exe
    return None


def run(cmd, timeout):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    print(p.stdout, end="")
    if p.stderr.strip():
        print(p.stderr.strip()[-2000:])
    return p.returncode


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    app = sys.argv[1]
    exe = scapy_python()
    if not exe:
        print("FAIL: scapy is not installed for this python nor for /usr/bin/python3 "
              "(apt-get install python3-scapy; tools/test.sh installs it)")
        return 1
    with tempfile.TemporaryDirectory(prefix="millipede_large_frames_") as out:
        if run([exe, os.path.join(HERE, "make_large_frames.py"), out], 300) != 0:
            print("FAIL: make_large_frames.py failed")
            return 1
        failures = []
        print("== pcap_oracle: packets and bytes per flow against tshark")
        if run([sys.executable, os.path.join(HERE, "pcap_oracle.py"), app, out], 600) != 0:
            failures.append("pcap_oracle")
        print("== ndpi_oracle: L7 labels against ndpiReader")
        if run([sys.executable, os.path.join(HERE, "ndpi_oracle.py"), app, os.path.join(out, "jumbo_9000.pcap")],
               300) != 0:
            failures.append("ndpi_oracle")
    for f in failures:
        print(f"FAIL: {f} on the generated captures")
    print("OK" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
