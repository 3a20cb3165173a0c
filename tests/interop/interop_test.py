#!/usr/bin/env python3
"""tests/interop: dpdk-millipede against the Linux kernel's TCP.

Two network namespaces per run (unique names): the kernel peer's (plain
kernel sockets: kernel_peer.py, which speaks the viamillipede and the native
wire formats without any part of dpdk-millipede) and dpdk-millipede's, joined
by veth pairs; dpdk-millipede opens its ends through DPDK's af_packet vdev
(case `tap`: DPDK's net_tap, the kernel peer on the tap interface). Every
transfer is captured with dumpcap on the kernel side of the link and read
back with tshark (IP and TCP checksum validation on): malformed frames and
bad checksums fail, TCP analysis flags are counted per flag, printed, and
decide the transfer's named outcome (docs/interop.md, "Outcomes of a
transfer"); each case checks its one accepted outcome literally, or names
which of its valid ones happened. Every process runs under
`timeout -s KILL`; the namespaces go on every exit path; every wait is for a
condition, with a deadline.

usage: interop_test.py DPDK_MILLIPEDE CASE [--keep-pcaps DIR]
Exit 0 pass, 1 fail (also: tshark, dumpcap or ethtool missing), 77 skip (no
root, or namespaces / veth pairs cannot be created).
"""
import atexit
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import rig  # noqa: E402
from rig import FAILS, check, log, quiet_iface, same_file, skip  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "kernel_peer.py")
BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/dpdk-millipede"
CASE = sys.argv[2] if len(sys.argv) > 2 else "list"
KEEP = sys.argv[sys.argv.index("--keep-pcaps") + 1] if "--keep-pcaps" in sys.argv else None
TAG = f"mi{os.getpid() % 100000}"
NS_K, NS_D = f"{TAG}k", f"{TAG}d"  # the kernel peer's, dpdk-millipede's
MADE_NS = []
PROCS = []
# MILLIPEDE_TEST_WORKERS=N (N >= 2): dpdk-millipede runs N worker lcores
# (control, rx+session and N workers, all on CPU 0 as -l 0 is), so the
# connections spread over workers; 1 (default): the single-lcore layout.
WORKERS = int(os.environ.get("MILLIPEDE_TEST_WORKERS", "1"))
LCORES = ["-l", "0"] if WORKERS <= 1 else ["--lcores", ",".join(f"{i}@0" for i in range(WORKERS + 2))]
EAL = ["--no-pci", "--no-huge", "-m", "512", *LCORES]
PORT = 8834
MiB = 1 << 20
TMP = tempfile.mkdtemp(prefix="mpinterop")


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
    while MADE_NS:
        subprocess.run(["ip", "netns", "del", MADE_NS.pop()], stderr=subprocess.DEVNULL)
    shutil.rmtree(TMP, ignore_errors=True)


atexit.register(cleanup)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, lambda *_: sys.exit(1))


def run(cmd, check=False, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r


def nx(ns):
    return ["ip", "netns", "exec", ns]


# ---------------------------------------------------------------- topology


class Link:
    """One veth pair: .k (kernel side, in NS_K) and .d (DPDK side, in NS_D)."""

    def __init__(self, i):
        third = os.getpid() % 250
        self.k, self.d = f"{TAG}k{i}", f"{TAG}d{i}"
        self.k_ip, self.d_ip = f"10.{91 + i}.{third}.1", f"10.{91 + i}.{third}.2"
        self.prefix = 24  # of d_ip in --ip (64 once use_ipv6() made the link IPv6)
        self.k_mac = self.d_mac = None


def mac_of(ns, dev):
    r = run(["ip", "-n", ns, "-j", "link", "show", dev], check=True)
    return json.loads(r.stdout)[0]["address"]


def make_namespaces():
    if os.geteuid() != 0:
        skip("needs root to create network namespaces and veth pairs")
    for tool, pkg in (("tshark", "tshark"), ("dumpcap", "wireshark-common"), ("ethtool", "ethtool")):
        if not shutil.which(tool):  # a missing test dependency is a failure, not a skip
            log(f"FAIL: {tool} is not installed (apt-get install {pkg})")
            sys.exit(1)
    for ns in (NS_K, NS_D):
        r = run(["ip", "netns", "add", ns])
        if r.returncode != 0:
            skip(f"cannot create a network namespace: {r.stderr.strip()}")
        MADE_NS.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])


def make_links(n):
    make_namespaces()
    links = []
    for i in range(n):
        L = Link(i)
        r = run(["ip", "link", "add", L.k, "netns", NS_K, "type", "veth", "peer", "name", L.d, "netns", NS_D])
        if r.returncode != 0:
            skip(f"cannot create a veth pair: {r.stderr.strip()}")
        for ns, dev in ((NS_K, L.k), (NS_D, L.d)):
            quiet_iface(ns, dev)
            run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        run(["ip", "-n", NS_K, "addr", "add", f"{L.k_ip}/24", "dev", L.k], check=True)
        L.k_mac, L.d_mac = mac_of(NS_K, L.k), mac_of(NS_D, L.d)
        links.append(L)
    return links


def set_sysctls(values):
    for k, v in values.items():
        run(nx(NS_K) + ["sysctl", "-qw", f"net.ipv4.{k}={v}"], check=True)


# ---------------------------------------------------------------- processes


class Proc:
    """A process in a namespace under `timeout -s KILL`, output collected."""

    def __init__(self, ns, argv, limit, stdin=subprocess.DEVNULL, stdout=None, name="proc"):
        self.name = name
        self.out_q = queue.Queue()
        self.err_lines = []
        self.out_lines = []
        cmd = nx(ns) + ["timeout", "-s", "KILL", str(limit)] + argv
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(cmd, stdin=stdin, stdout=stdout if stdout is not None else subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True)
        PROCS.append(self.p)
        self.readers = [threading.Thread(target=self._read, args=(self.p.stderr, self.err_lines, None), daemon=True)]
        if stdout is None:
            self.readers.append(threading.Thread(target=self._read, args=(self.p.stdout, self.out_lines, self.out_q),
                                                 daemon=True))
        for t in self.readers:
            t.start()

    @staticmethod
    def _read(f, lines, q):
        for raw in iter(f.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if q is not None:
                q.put(line)
        if q is not None:
            q.put(None)

    def wait_line(self, want, limit):
        end = time.monotonic() + limit
        while True:
            try:
                line = self.out_q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:
                return False
            if line.startswith(want):
                return True

    def wait(self):
        rc = self.p.wait()
        for t in self.readers:
            t.join(5)
        self.secs = time.monotonic() - self.t0
        self.rc = rc
        return rc

    @property
    def err(self):
        return "\n".join(self.err_lines)

    def peer_summary(self):
        for line in self.out_lines:
            if line.startswith("PEER "):
                return json.loads(line[5:])
        return {"rc": self.rc, "error": "no summary line (killed?)"}


def dpdk(args, limit, vdevs, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, name="dpdk"):
    return Proc(NS_D, [BIN, *EAL, "--file-prefix", f"{TAG}dp", *vdevs, "--", *args], limit, stdin=stdin,
                stdout=stdout, name=name)


def af_packet(links):
    return [x for i, L in enumerate(links) for x in ("--vdev", f"net_af_packet{i},iface={L.d},framecnt=4096")]


def ip_words(links):
    return [x for i, L in enumerate(links) for x in ("--ip", f"{i}={L.d_ip}/{L.prefix}")]


def use_ipv6(links):
    """Makes the links IPv6: the kernel side gets fd00:<n>:<pid>::1/64 at
    once (no duplicate address detection: accept_dad=0 and nodad), and
    k_ip/d_ip become IPv6 addresses, so the transfer helpers, ping and
    --ip work unchanged. The DPDK side's kernel interface stays without
    IPv6 (dpdk-millipede answers for d_ip through af_packet)."""
    third = os.getpid() % 250
    for i, L in enumerate(links):
        for key, val in (("accept_dad", 0), ("disable_ipv6", 0)):
            run(nx(NS_K) + ["sysctl", "-qw", f"net.ipv6.conf.{L.k}.{key}={val}"], check=True)
        L.k_ip, L.d_ip, L.prefix = f"fd00:{91 + i}:{third}::1", f"fd00:{91 + i}:{third}::2", 64
        run(["ip", "-n", NS_K, "addr", "add", f"{L.k_ip}/64", "dev", L.k, "nodad"], check=True)
    return links


def peer(ns, args, limit, name="kernel peer"):
    # On the CPU of dpdk-millipede's lcore (-l 0): a veth delivers frames in
    # the order they were queued only per CPU, so a kernel sender whose
    # segments leave from two CPUs (its thread on one, ACK-clocked sends in
    # the softirq of the other) reaches dpdk-millipede out of order, and the
    # resulting SACKs and retransmissions would be the rig's, not TCP's.
    return Proc(ns, ["taskset", "-c", "0", "python3", PEER, *args, "--timeout", str(limit - 5)], limit, name=name)


def ping(ns, addr, count=3, until_up=False, limit=15):
    """ICMP echo from the kernel (kernel_peer.py ping: a raw socket)."""
    p = peer(ns, ["ping", "--to", f"{addr}:0", "--count", str(count)] + (["--until-up"] if until_up else []), limit,
             name="ping")
    p.wait()
    return p.rc == 0, p.peer_summary()


def wait_reachable(ns, addr, limit=15):
    """dpdk-millipede answers ping once its loop runs (ARP resolves first)."""
    return ping(ns, addr, until_up=True, limit=limit)[0]


def echo_story(c, ping_summary):
    """What the capture saw of the pings, for a failed wait_reachable: how
    many requests and replies crossed the interface, and how late each reply
    came after its request (the ping waits 200 ms for each before it sends
    the next, and takes only the reply to the latest)."""
    sent = {}
    late = []
    for t, kind, seq in c.get("echo_log", []):
        if kind == "request":
            sent.setdefault(seq, t)
        elif seq in sent:
            late.append(round((t - sent[seq]) * 1000, 1))
    return (f"ping {ping_summary}; capture: {c['echo_requests']} echo requests, {c['echo_replies']} replies, "
            f"reply delays ms (first 10): {late[:10]}, max {max(late) if late else None}")


def dpdk_counters(err):
    """The counters dpdk-millipede prints with `verbose 2`."""
    c = {}
    for line in err.splitlines():
        m = re.search(r"port (\d+): rx (\d+) tx (\d+) tx_drops (\d+) tcp_in (\d+)", line)
        if m:
            p = int(m.group(1))
            c[f"port{p}_rx"], c[f"port{p}_tx"], c[f"port{p}_tx_drops"] = map(int, m.group(2, 3, 4))
        m = re.search(r"port 0: rx \d+ tx \d+ tx_drops \d+ tcp_in (\d+)", line)
        if m:
            c["tcp_in"] = int(m.group(1))
        for k in ("injected_rx_drops", "injected_tx_drops", "bad_segments", "bad_tcp", "bad_ip", "resent", "legs_lost", "connects", "recycled"):
            m = re.search(rf"\b{k} (\d+)", line)
            if m:
                c[k] = int(m.group(1))
    return c


# ---------------------------------------------------------------- captures


def iface_frames(ns, iface):
    """Frames the kernel counted through an interface, both directions (None
    once the interface is gone: net_tap's goes with dpdk-millipede)."""
    r = run(["ip", "-n", ns, "-j", "-s", "link", "show", iface])
    if r.returncode != 0:
        return None
    st = json.loads(r.stdout)[0]["stats64"]
    return st["rx"]["packets"] + st["tx"]["packets"]


class Capture:
    """dumpcap on an interface, started and confirmed before a transfer.

    Complete by construction: stop() waits (bounded) until dumpcap has taken
    every frame the interface carried since the capture started (the
    kernel's counters against dumpcap's live "Packets: N"), then stops it;
    check_capture() fails a capture that still has fewer."""

    def __init__(self, ns, iface, label):
        self.path = os.path.join(TMP, f"{label}.pcapng")
        self.ns, self.iface = ns, iface
        self.err_text = ""
        self.lock = threading.Lock()
        cmd = nx(ns) + ["timeout", "-s", "KILL", "600", "dumpcap", "-i", iface, "-B", "128", "-w", self.path]
        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  start_new_session=True)
        PROCS.append(self.p)
        # dumpcap reports its count as "\rPackets: N": read raw, not by line.
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if "Capturing on" in self.text() and os.path.exists(self.path):
                self.frames_before = iface_frames(ns, iface)
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"dumpcap did not start on {iface}: {self.text()}")

    def _read(self):
        while True:
            b = os.read(self.p.stderr.fileno(), 4096)
            if not b:
                return
            with self.lock:
                self.err_text += b.decode(errors="replace")

    def text(self):
        with self.lock:
            return self.err_text

    def live_count(self):
        m = re.findall(r"Packets(?: captured)?: (\d+)", self.text())
        return int(m[-1]) if m else 0

    def stop(self):
        now = iface_frames(self.ns, self.iface)
        end = time.monotonic() + 10
        if now is None:
            # The interface went away (net_tap, with dpdk-millipede): no frame
            # can cross it any more, and dumpcap ends by itself once it has
            # read what it got. Completeness then rests on dropped == 0 and on
            # every connection's handshake being in the file (check_capture).
            self.crossed = None
            while self.p.poll() is None and time.monotonic() < end:
                time.sleep(0.05)  # polling for dumpcap's exit, with a deadline
        else:
            self.crossed = now - self.frames_before
            while self.live_count() < self.crossed and time.monotonic() < end:
                time.sleep(0.05)  # polling dumpcap's own count, with a deadline
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        self.reader.join(5)
        self.err = self.text()
        # "Packets received/dropped on interface 'x': 123/0 (pcap:0/dumpcap:0/flushed:0/ps_ifdrop:0)"
        m = re.search(r"received/dropped on interface '[^']*': (\d+)/(\d+)", self.err)
        self.captured, self.dropped = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        return self


FLAGS = ["retransmission", "fast_retransmission", "spurious_retransmission", "out_of_order", "lost_segment",
         "ack_lost_segment", "duplicate_ack", "zero_window", "zero_window_probe", "zero_window_probe_ack",
         "window_full", "window_update", "keep_alive", "keep_alive_ack", "reused_ports"]
SHORT = {"retransmission": "retr", "fast_retransmission": "fast_retr", "spurious_retransmission": "spur_retr",
         "out_of_order": "ooo", "lost_segment": "lost_seg", "ack_lost_segment": "ack_lost", "duplicate_ack": "dup_ack",
         "zero_window": "zero_win", "zero_window_probe": "zwp", "zero_window_probe_ack": "zwp_ack",
         "window_full": "win_full", "window_update": "win_upd", "keep_alive": "ka", "keep_alive_ack": "ka_ack",
         "reused_ports": "reused"}

# Flags a correct TCP can raise on a loss-free path (tshark's heuristics
# describe flow control there, not errors):
ALLOW_NO_LOSS = {
    "window_update": "a receiver reopening its window after the application read: normal flow control",
    "window_full": "the sender filled the receiver's advertised window: flow control doing its job "
                   "(dpdk-millipede's 64 KiB tx receive buffer, a kernel window during slow start)",
    "zero_window": "a receiver whose application is slower than the network closes its window "
                   "(dpdk-millipede rx back-pressure: reorder window full / stdout slow; a busy Python peer)",
    "zero_window_probe": "the sender's persist timer probing a closed window (RFC 9293 3.8.6.1)",
    "zero_window_probe_ack": "the receiver answering a window probe",
}
# ...and with loss injected on dpdk-millipede's own rx/tx path, in addition:
ALLOW_LOSS = {
    "retransmission": "segments dropped by --drop-rx/--drop-tx are sent again",
    "fast_retransmission": "three duplicate ACKs / SACK after a dropped segment",
    "spurious_retransmission": "an ACK dropped by --drop-tx makes the sender re-send data that had arrived",
    "out_of_order": "tshark's name for a retransmission sent within one RTT of the original",
    "duplicate_ack": "the receiver of a gap acknowledges every later segment again (with SACK blocks)",
    "lost_segment": "a segment dropped by --drop-tx before the capture point leaves a gap in the capture",
}
LOSS_FLAGS = ("retransmission", "fast_retransmission", "spurious_retransmission", "out_of_order", "duplicate_ack",
              "lost_segment")


# A re-send counts as timer-driven (not loss) only after the receiving side
# was silent at least this long: Linux's tail loss probe fires after
# 2 SRTT + TCP_TIMEOUT_MIN (2 jiffies: 2 ms at HZ=1000), its RTO after
# >= 200 ms; dpdk-millipede's RTO after >= 100 ms.
SILENCE_S = 0.002
# How long after a timer-driven re-send the same sender's further re-sends
# on that connection count as its go-back retransmission (RFC 6298 5.4: the
# flight is sent again as ACKs come back): a few RTTs here, well under one
# of dpdk-millipede's 100 ms minimum RTOs.
EPISODE_S = 0.050
FAIL_DIR = os.path.join(os.path.dirname(os.path.abspath(BIN)), "..", "meson-logs", "interop-failures")


def analyse(cap, k_mac, d_mac):
    fields = ["frame.time_relative", "tcp.stream", "tcp.seq_raw", "tcp.seq", "tcp.ack", "tcp.payload",
              "tcp.completeness", "tcp.analysis.rto", "eth.src", "_ws.malformed", "ip.checksum.status", "tcp.checksum.status", "icmp.checksum.status",
              "tcp.checksum", "tcp.checksum_calculated", "tcp.flags.syn", "tcp.flags.reset", "tcp.flags.fin", "tcp.len", "tcp.options.sack_perm",
              "tcp.options.timestamp.tsval", "tcp.options.wscale.shift", "tcp.options.sack_le", "arp.opcode",
              "icmp.type", "_ws.expert.message", "icmpv6.type", "icmpv6.checksum.status", "tcp.options.mss_val",
              "icmp.seq", "icmpv6.echo.sequence_number"] + \
        [f"tcp.analysis.{f}" for f in FLAGS]
    # The payload is random bytes: decoded as data, so that no heuristic
    # dissector (Thrift, say) mistakes a chunk for its protocol and calls the
    # frame malformed. TCP, IP and Ethernet are still fully checked.
    cmd = ["tshark", "-r", cap.path, "-n", "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
           "-d", f"tcp.port=={PORT},data",
           "-o", "tcp.analyze_sequence_numbers:TRUE", "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"tshark failed: {r.stderr.strip()}")
    c = {f: 0 for f in FLAGS}
    c.update(frames=0, from_kernel=0, from_dpdk=0, malformed=0, bad_ip_csum=0, bad_tcp_csum=0, bad_icmp_csum=0,
             unverified_tcp_csum=0, rst_from_kernel=0, rst_from_dpdk=0, fin=0, syn_sack_perm_kernel=0,
             syn_ts_kernel=0, syn_ws_kernel=0, syn_sack_perm_dpdk=0, syn_ts_dpdk=0, syn_ws_dpdk=0,
             ts_after_syn_dpdk=0, sack_blocks_dpdk=0, sack_blocks_kernel=0, arp_requests_kernel=0,
             arp_replies_dpdk=0, echo_requests=0, echo_replies=0, tcp_from_kernel=0, tcp_from_dpdk=0,
             nd_ns_kernel=0, nd_na_kernel=0, nd_ns_dpdk=0, nd_na_dpdk=0,
             retr_min_rto_ms=None, dpdk_max_silence_ms=0.0, echo_log=[])
    c["resends_after_silence"] = 0  # re-sends >= SILENCE_S after the other side's last frame on the connection
    c["resends_without_silence"] = 0
    last = {"kernel": None, "dpdk": None}
    last_on_stream = {}  # (tcp.stream, side) -> time of that side's last frame on the connection
    episode = {}  # (tcp.stream, sender) -> end of the recovery episode a timer-driven re-send started
    c["resends_in_episode"] = 0
    c["resends"] = []  # (frame, sender, stream, ms since the receiver's last frame on it, ms since any of its frames)
    last_dpdk = None
    c["flag_frames"] = {f: [] for f in FLAGS}
    last_data = {}  # tcp.stream -> (end seq, length) of the last data segment from dpdk-millipede
    kernel_acks = []  # (tcp.stream, ack, FIN?) of the kernel's segments, in order
    c["vm_headers_kernel"] = c["vm_headers_kernel_padded"] = 0
    c["completeness"] = {}  # tcp.stream -> tshark's conversation completeness bits (1 SYN, 2 SYN-ACK, ...)
    for n, line in enumerate(r.stdout.splitlines(), 1):
        v = dict(zip(fields, line.split("\t")))
        c["frames"] += 1
        src = v["eth.src"].lower()
        side = "kernel" if src == k_mac else "dpdk" if src == d_mac else "other"
        if side != "other":
            c[f"from_{side}"] += 1
            if v["tcp.len"]:
                c[f"tcp_from_{side}"] += 1
        t = float(v["frame.time_relative"] or 0)
        fin = v["tcp.flags.fin"] in ("1", "True")
        if v["tcp.stream"] and v["tcp.completeness"]:
            c["completeness"][v["tcp.stream"]] = c["completeness"].get(v["tcp.stream"], 0) | int(v["tcp.completeness"], 0)
        if v["tcp.stream"] and v["tcp.seq"]:
            ln = int(v["tcp.len"] or 0)
            if side == "dpdk" and ln:
                last_data[v["tcp.stream"]] = (int(v["tcp.seq"]) + ln, ln)
            elif side == "kernel" and v["tcp.ack"]:
                kernel_acks.append((v["tcp.stream"], int(v["tcp.ack"]), fin))
            # A viamillipede header alone in a segment (the kernel peer
            # writes headers with a send of their own): its opcode padding.
            pl = v["tcp.payload"].replace(":", "")
            if side == "kernel" and ln == 40 and pl.startswith("5a5a5a5aa5a5a5a5"):
                c["vm_headers_kernel"] += 1
                c["vm_headers_kernel_padded"] += pl[72:80] != "00000000"
        if side == "dpdk":
            if last_dpdk is not None:
                c["dpdk_max_silence_ms"] = max(c["dpdk_max_silence_ms"], round((t - last_dpdk) * 1000, 1))
            last_dpdk = t
        if side != "other":
            if any(v[f"tcp.analysis.{f}"] for f in ("retransmission", "fast_retransmission", "spurious_retransmission",
                                                     "out_of_order")):
                # A sender's timer runs per connection: what matters is how
                # long the receiver had been silent on this connection (with
                # 8 connections it may well be ACKing the other seven).
                other = last["dpdk" if side == "kernel" else "kernel"]
                same = last_on_stream.get((v["tcp.stream"], "dpdk" if side == "kernel" else "kernel"))
                gap = t - same if same is not None else 0.0
                if len(c["resends"]) < 10:
                    c["resends"].append((n, side, v["tcp.stream"], round(gap * 1000, 2),
                                         None if other is None else round((t - other) * 1000, 2)))
                # After a timer fired, go-back retransmission re-sends the
                # rest of the flight right behind the receiver's duplicate
                # ACKs: those belong to the episode the silence started.
                key = (v["tcp.stream"], side)
                if gap >= SILENCE_S:
                    c["resend_min_silence_ms"] = round(min(c.get("resend_min_silence_ms", 1e9), gap * 1000), 2)
                    c["resends_after_silence"] += 1
                    episode[key] = t + EPISODE_S
                elif t <= episode.get(key, -1.0):
                    c["resends_in_episode"] += 1
                else:
                    c["resend_min_silence_ms"] = round(min(c.get("resend_min_silence_ms", 1e9), gap * 1000), 2)
                    c["resends_without_silence"] += 1
            last[side] = t
            last_on_stream[(v["tcp.stream"], side)] = t
        if v["tcp.analysis.rto"]:
            ms = round(float(v["tcp.analysis.rto"]) * 1000, 1)
            c["retr_min_rto_ms"] = ms if c["retr_min_rto_ms"] is None else min(c["retr_min_rto_ms"], ms)
        if v["_ws.malformed"]:
            c["malformed"] += 1
            c.setdefault("bad_frames", []).append((n, side, "malformed"))
        # 0xffff where the sum folds to 0x0000: the same value in one's
        # complement (RFC 1624 section 3; Linux's csum_fold can emit it), and
        # receivers accept it, but tshark calls it bad. Counted, not failed.
        if v["tcp.checksum.status"] == "0" and v["tcp.checksum"].lower() == "0xffff" and \
                v["tcp.checksum_calculated"].lower() == "0x0000":
            v["tcp.checksum.status"] = "1"
            c["tcp_csum_ffff"] = c.get("tcp_csum_ffff", 0) + 1
        for k in ("ip", "tcp", "icmp", "icmpv6"):
            if v[f"{k}.checksum.status"] == "0":
                c.setdefault("bad_frames", []).append((n, side, f"bad {k} checksum"))
        # checksum.status: 0 bad, 1 good, 2 unverified
        if v["ip.checksum.status"] == "0":
            c["bad_ip_csum"] += 1
        if v["tcp.checksum.status"] == "0":
            c["bad_tcp_csum"] += 1
        if v["tcp.checksum.status"] == "2":
            c["unverified_tcp_csum"] += 1
        if v["icmp.checksum.status"] == "0" or v["icmpv6.checksum.status"] == "0":
            c["bad_icmp_csum"] += 1
        # IPv6: Neighbour Solicitation (135) / Advertisement (136) per side,
        # echo request (128) / reply (129) with the ICMP ones.
        if v["icmpv6.type"] in ("135", "136") and side != "other":
            c[f"nd_{'ns' if v['icmpv6.type'] == '135' else 'na'}_{side}"] += 1
        if v["icmpv6.type"] == "128":
            c["echo_requests"] += 1
            c["echo_log"].append((t, "request", v["icmpv6.echo.sequence_number"]))
        if v["icmpv6.type"] == "129":
            c["echo_replies"] += 1
            c["echo_log"].append((t, "reply", v["icmpv6.echo.sequence_number"]))
        if v["tcp.analysis.duplicate_ack"] and side == "dpdk" and v["tcp.options.sack_le"]:
            c["dupack_sack_dpdk"] = c.get("dupack_sack_dpdk", 0) + 1
        if side != "other" and any(v[f"tcp.analysis.{f}"] for f in LOSS_FLAGS):
            c.setdefault("loss_flag_frames", []).append((t, side))
        for f in FLAGS:
            if v[f"tcp.analysis.{f}"]:
                c[f] += 1
                if len(c["flag_frames"][f]) < 5:
                    c["flag_frames"][f].append(n)
        if v["tcp.flags.reset"] in ("1", "True"):
            c[f"rst_from_{side}"] = c.get(f"rst_from_{side}", 0) + 1
            c.setdefault(f"rst_conns_{side}", set()).add(v["tcp.stream"])
        if v["tcp.flags.fin"] in ("1", "True"):
            c["fin"] += 1
        if v["tcp.flags.syn"] in ("1", "True") and side != "other":
            c[f"syn_sack_perm_{side}"] += bool(v["tcp.options.sack_perm"])
            c[f"syn_ts_{side}"] += bool(v["tcp.options.timestamp.tsval"])
            c[f"syn_ws_{side}"] += bool(v["tcp.options.wscale.shift"])
            if v["tcp.options.mss_val"]:
                c.setdefault(f"syn_mss_{side}", set()).add(int(v["tcp.options.mss_val"]))
        elif side == "dpdk" and v["tcp.options.timestamp.tsval"]:
            c["ts_after_syn_dpdk"] += 1
        if v["tcp.options.sack_le"] and side != "other":
            c[f"sack_blocks_{side}"] += 1
        if v["arp.opcode"] == "1" and side == "kernel":
            c["arp_requests_kernel"] += 1
        if v["arp.opcode"] == "2" and side == "dpdk":
            c["arp_replies_dpdk"] += 1
        if v["icmp.type"] == "8":
            c["echo_requests"] += 1
            c["echo_log"].append((t, "request", v["icmp.seq"]))
        if v["icmp.type"] == "0":
            c["echo_replies"] += 1
            c["echo_log"].append((t, "reply", v["icmp.seq"]))
    c["last_dpdk_t"] = last_dpdk
    # viamillipede: which of the kernel's segments first acknowledged the end
    # header (the 40-byte segment that ends dpdk-millipede's data on its
    # connection; compat sends it alone, after every chunk was acknowledged).
    c["end_ack"] = None
    for stream, (end, ln) in last_data.items():
        if ln != 40:
            continue
        first = next(((fin_) for st_, ack, fin_ in kernel_acks if st_ == stream and ack >= end), None)
        if first is not None:
            c["end_ack"] = "the FIN" if first else "a pure ACK before the FIN"
    return c


# ---------------------------------------------------------------- checks

TABLE = []


def path_loss(c, counters):
    """Frames lost between the capture point and dpdk-millipede, from the
    capture's counts and dpdk-millipede's own counters (verbose 2)."""
    if not counters or "tcp_in" not in counters:
        return None
    to_dpdk = c["tcp_from_kernel"] - counters["tcp_in"] - counters.get("injected_rx_drops", 0)
    from_dpdk = counters.get("port0_tx", 0) - c["from_dpdk"]
    return max(0, to_dpdk) + max(0, from_dpdk)


def check_capture(name, cap, c, loss, extra_allow=None, counters=None, rst=None, receiver_exits=False):
    """Malformed / checksums fail; analysis flags beyond the allowlist fail.
    RSTs: `rst` None: none at all (dpdk-millipede's compat legs close with
    FIN, native ones are only reset in the cases that provoke it); "kernel":
    the case makes the kernel peer abort one connection, so every RST comes
    from the kernel, on that one connection (its answers to segments still
    in flight count), and none from dpdk-millipede."""
    fails_before = len(FAILS)
    rk, rd = c.get("rst_from_kernel", 0), c.get("rst_from_dpdk", 0)
    if rst is None:
        check(rk + rd == 0, f"{name}: no RST (kernel {rk}, dpdk-millipede {rd})")
    else:
        conns = c.get("rst_conns_kernel", set())
        check(rk >= 1 and rd == 0 and len(conns) == 1,
              f"{name}: RSTs only from the kernel on the one connection it aborted (kernel {rk} on "
              f"{len(conns)} connection(s), dpdk-millipede {rd})")
    allow = dict(ALLOW_NO_LOSS)
    if loss:
        allow.update(ALLOW_LOSS)
    pl = path_loss(c, counters)
    c["path_loss"] = pl
    if not loss and any(c[f] for f in LOSS_FLAGS):
        # No loss injected, yet a sender re-sent: explained only by loss on
        # the test rig's path (measured: captured frames vs dpdk-millipede's
        # counters), by a sender's timer (tail loss probe or RTO) firing
        # while the receiver was silent on that connection, descheduled on
        # this shared 2-core machine (every re-send >= SILENCE_S after the
        # receiver's last frame on its connection, nothing lost), or by
        # reordering on the veth (dpdk-millipede's SACKed duplicate ACKs).
        resends = c["resends_after_silence"] + c["resends_without_silence"] + c["resends_in_episode"]
        outcome = None
        late = c.get("loss_flag_frames", [])
        if receiver_exits and late and c["last_dpdk_t"] is not None and \
                all(side == "kernel" and t > c["last_dpdk_t"] for t, side in late):
            outcome = "re-sent to an exited receiver"
            why = (f"every loss-type flag ({len(late)} frames) is on a kernel segment sent after dpdk-millipede's last "
                   f"frame: the case makes dpdk-millipede rx give up and exit while the kernel still sends")
        elif pl:
            outcome = "rig loss"
            why = f"{pl} frames lost between the capture point and dpdk-millipede (af_packet ring / veth)"
        elif pl == 0 and resends and c["resends_without_silence"] == 0 and c["duplicate_ack"] <= 2 * resends + 2:
            outcome = "timer re-sends"
            why = (f"nothing was lost (every captured frame reached its receiver) and each of the {resends} re-sends "
                   f"came >= {c['resend_min_silence_ms']} ms after the receiving side's last frame on that connection "
                   f"or within {EPISODE_S * 1000:.0f} ms after such a one on it ({c['resends_in_episode']}: the go-back "
                   f"retransmission that follows a timer): timer-driven "
                   f"(Linux's tail loss probe, RFC 8985, after 2 SRTT + 2 ms; RTOs) while the receiver was "
                   f"descheduled on this shared 2-core machine (dpdk-millipede silent up to "
                   f"{c['dpdk_max_silence_ms']} ms); the duplicate ACKs answer the duplicates")
        elif pl == 0 and c["duplicate_ack"] and c.get("dupack_sack_dpdk", 0) == c["duplicate_ack"] and \
                c["lost_segment"] == 0:
            outcome = "veth reordering"
            why = (f"nothing was lost (every captured frame reached dpdk-millipede) and each of the "
                   f"{c['duplicate_ack']} duplicate ACKs is dpdk-millipede's, with a SACK block for data beyond a "
                   f"hole: frames arrived in another order than the capture shows them (a veth delivers in order "
                   f"only per CPU) and the kernel's retransmissions answer that reordering")
        else:
            why = None
        if why:
            log(f"     {name}: loss-type flags without injected loss, explained: {why}")
            allow.update({f: why for f in LOSS_FLAGS})
            c["explained"] = why
            c["outcome"] = outcome
    if "outcome" not in c:
        c["outcome"] = "injected loss" if loss and any(c[f] for f in LOSS_FLAGS) else "clean"
    log(f"     {name}: outcome: {c['outcome']}")
    allow.update(extra_allow or {})
    crossed_ok = cap.crossed is None or (cap.captured is not None and cap.captured >= cap.crossed and
                                         c["frames"] >= cap.crossed)
    half = sorted(k for k, v in c["completeness"].items() if v & 3 != 3)
    check(cap.dropped == 0 and crossed_ok and not half,
          f"{name}: capture complete ({cap.captured} frames captured, {c['frames']} in the file, "
          f"{'-' if cap.crossed is None else cap.crossed} crossed the interface, dropped {cap.dropped}; "
          f"{len(c['completeness'])} connections, {len(half)} without their handshake)")
    check(c["malformed"] == 0, f"{name}: zero malformed frames ({c['malformed']})")
    check(c["bad_ip_csum"] == 0 and c["bad_tcp_csum"] == 0 and c["bad_icmp_csum"] == 0,
          f"{name}: zero bad IP/TCP/ICMP checksums (ip {c['bad_ip_csum']}, tcp {c['bad_tcp_csum']}, "
          f"icmp {c['bad_icmp_csum']}; unverified tcp {c['unverified_tcp_csum']})",
          f"frames (number, sender): {c.get('bad_frames', [])[:10]}")
    bad = {f: c[f] for f in FLAGS if c[f] and f not in allow}
    check(not bad, f"{name}: TCP analysis flags within the allowlist" + (f" (not allowed: {bad})" if bad else ""),
          *[f"{f}: first frames {c['flag_frames'][f]}" for f in bad],
          *([f"re-sends (frame, sender, connection, ms since the receiver's last frame on that connection, "
             f"ms since its last frame on any): {c['resends']}"] if bad and c["resends"] else []))
    row = {"name": name, "outcome": c["outcome"], "frames": c["frames"], "malformed": c["malformed"],
           "bad_csum": c["bad_ip_csum"] + c["bad_tcp_csum"] + c["bad_icmp_csum"],
           "rst": c.get("rst_from_kernel", 0) + c.get("rst_from_dpdk", 0), "path_loss": pl,
           "max_silence_ms": c["dpdk_max_silence_ms"]}
    row.update({SHORT[f]: c[f] for f in FLAGS})
    if counters:
        row["drops_injected"] = counters.get("injected_rx_drops", 0) + counters.get("injected_tx_drops", 0)
        log(f"     dpdk-millipede counters {name}: {counters}")
    TABLE.append(row)
    log(f"     tshark {name}: " + " ".join(f"{k}={v}" for k, v in row.items() if k != "name"))
    if len(FAILS) > fails_before:
        # Keep the evidence: the capture of a failed check survives the run.
        os.makedirs(FAIL_DIR, exist_ok=True)
        dst = os.path.join(FAIL_DIR, f"{TAG}-{name}.pcapng")
        shutil.copy(cap.path, dst)
        log(f"     capture kept: {os.path.normpath(dst)}")


def fmt(v):
    return "-" if v is None else str(v)


def print_table():
    if not TABLE:
        return
    cols = ["outcome", "frames", "malformed", "bad_csum", "rst"] + [SHORT[f] for f in FLAGS] + ["drops_injected", "path_loss",
                                                                                      "max_silence_ms"]
    w = max(len(r["name"]) for r in TABLE)
    wid = {c: 15 if c == "outcome" else 9 for c in cols}
    print(f"{'transfer':<{w}} " + " ".join(f"{c:>{wid[c]}}" for c in cols))
    for r in TABLE:
        print(f"{r['name']:<{w}} " + " ".join(f"{fmt(r.get(c)):>{wid[c]}}" for c in cols))
    sys.stdout.flush()


def random_file(n):
    return rig.random_file(n, prefix="in", dir=TMP)


# ---------------------------------------------------------------- transfers


def kernel_to_dpdk(links, name, size, conns, codec="viamillipede", peer_args=(), dpdk_words=(), loss=False,
                   limit=120, expect_ok=True, extra_allow=None, vdevs=None, peer_ns=None, cap_iface=None,
                   k_mac=None, d_mac=None, rst=None):
    """The kernel peer sends (kernel_peer.py send); dpdk-millipede rx receives."""
    L = links[0]
    src = random_file(size)
    out = os.path.join(TMP, f"out-{name}")
    cap = Capture(peer_ns or NS_K, cap_iface or L.k, name)
    words = ["rx", str(PORT), *ip_words(links), "verbose", "2", "--wait", "20", "--stall-timeout", "15",
             *dpdk_words]
    if codec == "viamillipede":
        words += ["--compat", "viamillipede"]
    with open(out, "wb") as o:
        rx = dpdk(words, limit, vdevs or af_packet(links), stdout=o, name="dpdk rx")
    ready, ping_summ = ping(peer_ns or NS_K, L.d_ip, until_up=True)
    t0 = time.monotonic()
    kp = peer(peer_ns or NS_K, ["send", "--codec", codec, "--to", f"{L.d_ip}:{PORT}", "--conns", str(conns),
                                "--input", src, *peer_args], limit - 10)
    kp.wait()
    rx.wait()
    dt = time.monotonic() - t0
    cap.stop()
    summ = kp.peer_summary()
    counters = dpdk_counters(rx.err)
    exact = same_file(src, out)
    if expect_ok:
        check(rx.rc == 0 and kp.rc == 0 and exact,
              f"{name}: kernel -> dpdk-millipede rx, {size} bytes, {conns} connection(s), {codec}: byte-exact "
              f"({dt:.1f} s, {size / MiB / max(dt, 1e-3):.1f} MiB/s)",
              f"dpdk rx rc={rx.rc}: {rx.err}", f"kernel peer rc={kp.rc}: {kp.err}", f"summary {summ}",
              f"output {os.path.getsize(out)} bytes, same={exact}")
    c = analyse(cap, k_mac or L.k_mac, d_mac or L.d_mac)
    check(ready, f"{name}: dpdk-millipede answered ping before the transfer", echo_story(c, ping_summ))
    check_capture(name, cap, c, loss, extra_allow, counters, rst, receiver_exits=not expect_ok)
    res = dict(rx=rx, peer=kp, summary=summ, capture=c, counters=counters, secs=dt, exact=exact)
    os.unlink(src)
    os.unlink(out)
    if not KEEP:
        os.unlink(cap.path)
    else:
        shutil.copy(cap.path, KEEP)
    return res


def dpdk_to_kernel(links, name, size, conns, codec="viamillipede", peer_args=(), dpdk_words=(), loss=False,
                   limit=120, expect_ok=True, extra_allow=None, vdevs=None, peer_ns=None, cap_iface=None,
                   k_mac=None, d_mac=None, k_ip=None, rst=None):
    """dpdk-millipede tx sends; the kernel peer receives (kernel_peer.py recv)."""
    L = links[0]
    src = random_file(size)
    out = os.path.join(TMP, f"out-{name}")
    cap = Capture(peer_ns or NS_K, cap_iface or L.k, name)
    kp = peer(peer_ns or NS_K, ["recv", "--codec", codec, "--listen", f"{k_ip or L.k_ip}:{PORT}", "--output", out,
                                *peer_args], limit - 5)
    if not kp.wait_line("LISTENING", 15):
        raise RuntimeError(f"kernel peer did not listen: {kp.err}")
    words = ["tx", k_ip or L.k_ip, str(PORT), "threads", str(conns), *ip_words(links), "verbose", "2",
             "--connect-timeout", "10", "--stall-timeout", "15", *dpdk_words]
    if codec == "viamillipede":
        words += ["--compat", "viamillipede"]
    t0 = time.monotonic()
    with open(src, "rb") as i:
        tx = dpdk(words, limit - 10, vdevs or af_packet(links), stdin=i, name="dpdk tx")
        tx.wait()
    kp.wait()
    dt = time.monotonic() - t0
    cap.stop()
    summ = kp.peer_summary()
    counters = dpdk_counters(tx.err)
    exact = os.path.exists(out) and same_file(src, out)
    if expect_ok:
        check(tx.rc == 0 and kp.rc == 0 and exact,
              f"{name}: dpdk-millipede tx -> kernel, {size} bytes, {conns} connection(s), {codec}: byte-exact "
              f"({dt:.1f} s, {size / MiB / max(dt, 1e-3):.1f} MiB/s)",
              f"dpdk tx rc={tx.rc}: {tx.err}", f"kernel peer rc={kp.rc}: {kp.err}", f"summary {summ}",
              f"same={exact}")
    c = analyse(cap, k_mac or L.k_mac, d_mac or L.d_mac)
    check_capture(name, cap, c, loss, extra_allow, counters, rst)
    res = dict(tx=tx, peer=kp, summary=summ, capture=c, counters=counters, secs=dt, exact=exact)
    os.unlink(src)
    if os.path.exists(out):
        os.unlink(out)
    if not KEEP:
        os.unlink(cap.path)
    else:
        shutil.copy(cap.path, KEEP)
    return res


SIZES = (0, 1, 64 * MiB)


def case_compat_rx_1():
    links = make_links(1)
    for n in SIZES:
        kernel_to_dpdk(links, f"compat-rx-1x{n}", n, 1)


def case_compat_rx_8():
    links = make_links(1)
    for n in SIZES:
        kernel_to_dpdk(links, f"compat-rx-8x{n}", n, 8)


def case_compat_tx_1():
    links = make_links(1)
    for n in SIZES:
        dpdk_to_kernel(links, f"compat-tx-1x{n}", n, 1)


def case_compat_tx_8():
    links = make_links(1)
    for n in SIZES:
        dpdk_to_kernel(links, f"compat-tx-8x{n}", n, 8)


def case_compat_duplex():
    """Full duplex in viamillipede's format, as stock v0.89 runs it with rx
    and tx in one invocation: dpdk-millipede `rx PORT tx HOST PORT --compat
    viamillipede` sends its stdin to a kernel receiver while a kernel sender
    sends another file to it, both at once over the one veth. Both files
    byte-exact, all three processes exit 0. (No capture here: each
    direction's wire behaviour is what compat_rx_* and compat_tx_* check.)"""
    links = make_links(1)
    L = links[0]
    size_out, size_in = 8 * MiB + 11, 6 * MiB + 5
    src_d, src_k = random_file(size_out), random_file(size_in)
    out_k, out_d = os.path.join(TMP, "out-duplex-k"), os.path.join(TMP, "out-duplex-d")
    kr = peer(NS_K, ["recv", "--codec", "viamillipede", "--listen", f"{L.k_ip}:{PORT}", "--output", out_k], 110)
    if not kr.wait_line("LISTENING", 15):
        raise RuntimeError(f"kernel peer did not listen: {kr.err}")
    words = ["rx", str(PORT), "tx", L.k_ip, str(PORT), "threads", "4", *ip_words(links), "verbose", "2",
             "--compat", "viamillipede", "--connect-timeout", "10", "--wait", "20", "--stall-timeout", "15"]
    t0 = time.monotonic()
    with open(src_d, "rb") as i, open(out_d, "wb") as o:
        d = dpdk(words, 110, af_packet(links), stdin=i, stdout=o, name="dpdk duplex")
    ready = wait_reachable(NS_K, L.d_ip)
    ks = peer(NS_K, ["send", "--codec", "viamillipede", "--to", f"{L.d_ip}:{PORT}", "--conns", "3",
                     "--input", src_k], 100, name="kernel sender")
    ks.wait()
    kr.wait()
    d.wait()
    dt = time.monotonic() - t0
    to_kernel = os.path.exists(out_k) and same_file(src_d, out_k)
    from_kernel = same_file(src_k, out_d)
    check(ready and d.rc == 0 and kr.rc == 0 and ks.rc == 0 and to_kernel and from_kernel,
          f"compat_duplex: dpdk-millipede rx+tx --compat viamillipede: {size_out} bytes to the kernel and "
          f"{size_in} from it at once, both byte-exact ({dt:.1f} s)",
          f"dpdk rc={d.rc}: {d.err}", f"kernel receiver rc={kr.rc}: {kr.err}", f"kernel sender rc={ks.rc}: {ks.err}",
          f"to kernel same={to_kernel}, from kernel same={from_kernel}, reachable={ready}")
    for f in (src_d, src_k, out_k, out_d):
        if os.path.exists(f):
            os.unlink(f)


# ---------------------------------------------------------------- stock viamillipede's ways


def case_compat_2018_rx():
    """A 2018-era sender (viamillipede v0.6 to v0.81): the opcode is a C int
    and the 4 bytes of struct padding after it carry stack garbage (the
    kernel peer sends what v0.6 was seen to send). rx takes the opcode from
    the low 32 bits. Stock's `checksums` word on both ends: every chunk
    carries viamillipede's checksum and rx verifies it."""
    links = make_links(1)
    for conns in (1, 4):
        for n in (0, 1, 8 * MiB + 3):
            name = f"compat-2018-rx-{conns}x{n}"
            r = kernel_to_dpdk(links, name, n, conns, peer_args=["--layout", "2018", "--checksums"],
                               dpdk_words=["checksums"])
            c = r["capture"]
            check(c["vm_headers_kernel"] >= 1 and c["vm_headers_kernel_padded"] == c["vm_headers_kernel"],
                  f"{name}: every header the kernel sent had garbage in its padding "
                  f"({c['vm_headers_kernel_padded']} of {c['vm_headers_kernel']} headers seen alone in a segment)")


def case_compat_checksums_tx():
    """tx with stock's `checksums` word to receivers of both header layouts:
    v0.89's compares the opcode's 8 bytes (the padding must be zero), the
    2018 ones compare the int. Each verifies the checksum of every chunk of
    4 bytes or more: 8 MiB + 3 bytes in 1 MiB chunks is 8 checked chunks
    (the 3-byte one is not checked, docs/wire.md 3.1)."""
    links = make_links(1)
    for layout in ("0.89", "2018"):
        for conns in (1, 4):
            name = f"compat-checksums-tx-{layout}-{conns}"
            r = dpdk_to_kernel(links, name, 8 * MiB + 3, conns, peer_args=["--layout", layout, "--checksums"],
                               dpdk_words=["checksums"])
            summ = r["summary"]
            check(summ.get("checksums_checked") == 8 and summ.get("padding_nonzero") == 0,
                  f"{name}: the receiver verified 8 checksums ({summ.get('checksums_checked')}) and saw zero "
                  f"padding in every header ({summ.get('padding_nonzero')} not zero)")


def case_compat_stock_end():
    """A stock receiver exits as soon as it has written the end record: its
    kernel closes every connection at once, and its ACK of the end header
    goes either alone just before the FIN (--end-ack quick: TCP_QUICKACK) or
    in the FIN itself (--end-ack delayed: the delayed-ACK timer had not fired
    when the process exited). dpdk-millipede's tx used to treat that FIN as
    a lost leg and fail after its connect timeout (issue 12). Three runs of
    each, 1 and 4 connections (4: with the 2018 receiver's layout)."""
    links = make_links(1)
    seen = {"quick": {}, "delayed": {}}
    for mode in ("quick", "delayed"):
        for conns in (1, 4):
            for i in range(3):
                name = f"stock-end-{mode}-{conns}-{i}"
                layout = ["--layout", "2018"] if conns == 4 else []
                r = dpdk_to_kernel(links, name, 4 * MiB + 1, conns,
                                   peer_args=["--exit-after-end", "--end-ack", mode, *layout])
                k = r["counters"]
                check(k.get("legs_lost") == 0 and k.get("connects") == conns and k.get("resent") == 0,
                      f"{name}: no leg lost, no reconnection, nothing re-sent ({k})")
                how = r["capture"]["end_ack"]
                log(f"     {name}: the kernel acknowledged the end header with {how}")
                check(how is not None, f"{name}: the end header's acknowledgement is in the capture")
                seen[mode][how] = seen[mode].get(how, 0) + 1
    log(f"     how the end header was acknowledged: {seen}")
    check(seen["quick"].get("a pure ACK before the FIN", 0) >= 1,
          f"stock-end: with TCP_QUICKACK a pure ACK preceded the FIN at least once ({seen['quick']})")
    check(seen["delayed"].get("the FIN", 0) >= 1,
          f"stock-end: with delayed ACKs the FIN carried the ACK at least once ({seen['delayed']})")


def case_compat_chaos_tx():
    """`chaos 4` in compat mode against a receiver that, like stock rx, ends
    on a reset connection: every fourth chunk, a leg is closed with FIN once
    what it carried was acknowledged, reconnected, and only the chunk it cut
    goes again. No RST, no duplicate chunk, one reconnection per break."""
    links = make_links(1)
    name = "compat-chaos-tx"
    r = dpdk_to_kernel(links, name, 16 * MiB, 4, dpdk_words=["chaos", "4", "--chunk", "256K"],
                       peer_args=["--reset-fatal"])
    breaks = len(lines_with(r["tx"].err, "chaos: closing leg"))
    summ = r["summary"]
    check(breaks >= 8, f"{name}: chaos closed {breaks} legs (>= 8 of the 64 chunks' 16 chances)", r["tx"].err)
    check(summ.get("connections") == 4 + breaks and summ.get("duplicates") == 0 and
          summ.get("partial_discarded", 0) <= breaks,
          f"{name}: {summ.get('connections')} connections (4 + one per break), {summ.get('duplicates')} duplicate "
          f"chunks, {summ.get('partial_discarded')} partial chunks discarded", summ)


# Every word of stock viamillipede's parsers (v0.89: viamillipede.c main();
# the 2018 snapshot: the same loop with fewer words), as its README and
# usage text use them, and what dpdk-millipede does with it: "accept" (same
# meaning) or the hint its refusal must give.
STOCK_WORDS = [
    (["tx", "10.0.0.2", "12323"], "accept"),
    (["rx", "12323"], "accept"),
    (["tx", "10.0.0.2", "12323", "threads", "16"], "accept"),
    (["tx", "10.0.0.2", "12323", "checksums"], "accept"),
    (["rx", "12323", "checksums"], "accept"),
    (["tx", "10.0.0.2", "12323", "checksum"], "accept"),  # ours; stock ignores it
    (["tx", "10.0.0.2", "12334", "chaos", "1731"], "accept"),
    (["rx", "8834", "verbose", "5"], "accept"),
    (["tx", "10.0.0.2", "12334", "checkphrase", "wat!"], "accept"),
    (["tx", "10.0.0.2", "3434", "prbs", "0xd00f"], "accept"),
    (["tx", "10.0.0.2", "3434", "leglimit", "50"], "accept"),
    (["tx", "10.0.0.2", "12323", "charmode"], "accept"),
    (["tx", "10.0.0.2", "12323", "delayus", "50"], "accept"),
    (["rx", "12323", "charmode"], "give it to tx"),
    (["rx", "12323", "delayus", "50"], "give them to tx"),
    (["tx", "10.0.0.2", "12323", "delayus", "50", "--rate", "1M"], "give one"),
    (["tx", "10.0.0.2", "4545", "terminate", "8022"], "accept"),  # input from one connection
    (["rx", "5555", "initiate", "localhost", "22"], "accept"),     # output to one connection
    (["rx", "5555", "terminate", "8022"], "feeds a sender"),
    (["tx", "10.0.0.2", "4545", "initiate", "localhost", "22"], "takes a receiver's output"),
    (["rx", "7788", "tx", "10.0.0.3", "9900", "terminate", "8022"], "accept"),  # the tunnel
    (["rx", "7788", "tx", "10.0.0.3", "9900", "initiate", "localhost", "22", "--compat", "viamillipede"],
     "accept"),
    (["rx", "12323", "threads", "3"], "leave it out on rx"),
    (["tx", "10.0.0.2", "12323", "prbs", "0x5aa5", "--compat", "viamillipede", "--ip", "0=10.0.0.1/24"],
     "send a file"),
    # Both in one invocation: stock v0.89 runs a full-duplex pipe (stdin out
    # over tx, what arrives on rx to stdout); so does dpdk-millipede.
    (["rx", "7788", "tx", "10.0.0.3", "9900"], "accept"),
    (["tx", "10.0.0.3", "9900", "rx", "7788", "--compat", "viamillipede"], "accept"),
]


def case_words():
    """Stock viamillipede's command words: each is accepted with its meaning
    (parsing then stops only at the missing --ip) or refused in one line,
    exit status 2, saying what to use instead. No EAL is started."""
    for words, want in STOCK_WORDS:
        r = run([BIN, "--", *words], timeout=20)
        lines = r.stderr.strip().splitlines()
        what = " ".join(words)
        if want == "accept":
            check(r.returncode == 2 and len(lines) == 1 and "no address" in lines[0],
                  f"words: '{what}' accepted (the parse ends at the missing --ip)", r.stderr)
        else:
            check(r.returncode == 2 and len(lines) == 1 and want in lines[0],
                  f"words: '{what}' refused in one line saying what to do ('{want}')", r.stderr)


SYSCTL_VARIANTS = [
    ("sack-off", {"tcp_sack": 0}),
    ("ts-off", {"tcp_timestamps": 0}),
    ("wscale-off", {"tcp_window_scaling": 0}),
    ("all-off", {"tcp_sack": 0, "tcp_timestamps": 0, "tcp_window_scaling": 0}),
]
ON = {"tcp_sack": 1, "tcp_timestamps": 1, "tcp_window_scaling": 1}


def check_options_off(name, c, off, we_are_client):
    """The capture shows the kernel did not offer the option and
    dpdk-millipede did not use it."""
    if "tcp_sack" in off:
        check(c["syn_sack_perm_kernel"] == 0 and c["sack_blocks_dpdk"] == 0,
              f"{name}: no SACK-permitted from the kernel, no SACK blocks from dpdk-millipede "
              f"({c['syn_sack_perm_kernel']}, {c['sack_blocks_dpdk']})")
        if not we_are_client:
            check(c["syn_sack_perm_dpdk"] == 0, f"{name}: our SYN-ACK does not offer SACK to a peer that did not")
    if "tcp_timestamps" in off:
        check(c["syn_ts_kernel"] == 0 and c["ts_after_syn_dpdk"] == 0,
              f"{name}: no timestamps from the kernel's SYN, none on dpdk-millipede's later segments "
              f"({c['syn_ts_kernel']}, {c['ts_after_syn_dpdk']})")
    if "tcp_window_scaling" in off:
        check(c["syn_ws_kernel"] == 0, f"{name}: no window scale option from the kernel ({c['syn_ws_kernel']})")
        if not we_are_client:
            check(c["syn_ws_dpdk"] == 0, f"{name}: our SYN-ACK carries no window scale (RFC 7323 1.3)")


def sysctl_case(direction):
    links = make_links(1)
    for label, off in SYSCTL_VARIANTS:
        set_sysctls({**ON, **off})
        name = f"sysctl-{direction}-{label}"
        if direction == "rx":
            r = kernel_to_dpdk(links, name, 8 * MiB, 4)
        else:
            r = dpdk_to_kernel(links, name, 8 * MiB, 4)
        check_options_off(name, r["capture"], off, direction == "tx")
    set_sysctls(ON)


def case_sysctl_rx():
    sysctl_case("rx")


def case_sysctl_tx():
    sysctl_case("tx")


DROP = ["--drop-rx", "1", "--drop-tx", "1", "--drop-seed", "7"]


def case_loss_rx():
    links = make_links(1)
    r = kernel_to_dpdk(links, "loss-rx", 16 * MiB, 4, dpdk_words=DROP, loss=True)
    c, k = r["capture"], r["counters"]
    check(k.get("injected_rx_drops", 0) > 0 and k.get("injected_tx_drops", 0) > 0,
          f"loss-rx: drops injected (rx {k.get('injected_rx_drops')}, tx {k.get('injected_tx_drops')})")
    check(c["retransmission"] + c["fast_retransmission"] + c["out_of_order"] > 0,
          "loss-rx: the kernel retransmitted to us (seen in the capture)")


def case_loss_tx():
    links = make_links(1)
    r = dpdk_to_kernel(links, "loss-tx", 16 * MiB, 4, dpdk_words=DROP, loss=True)
    c, k = r["capture"], r["counters"]
    check(k.get("injected_rx_drops", 0) > 0 and k.get("injected_tx_drops", 0) > 0,
          f"loss-tx: drops injected (rx {k.get('injected_rx_drops')}, tx {k.get('injected_tx_drops')})")
    check(c["retransmission"] + c["fast_retransmission"] + c["out_of_order"] > 0,
          "loss-tx: dpdk-millipede retransmitted to the kernel (seen in the capture)")


def case_heavy_loss_tx():
    """4 % loss each way: legs are declared dead with chunks written but not
    acknowledged; viamillipede has no acks, so only TCP's say what arrived.
    Found three bugs (docs/interop.md): chunks freed before delivery (tx
    exited 0 with two missing), a re-sent chunk waiting for a leg to die,
    and an abort RST below the peer's window after a go-back retransmit,
    which left the kernel reading a dead connection for its 20 s timeout."""
    links = make_links(1)
    r = dpdk_to_kernel(links, "heavy-loss-tx", 16 * MiB, 4, dpdk_words=["--drop-rx", "4", "--drop-tx", "4",
                                                                        "--drop-seed", "8"], loss=True,
                       extra_allow={"keep_alive": "a leg idle for 2 s while re-sent chunks travel on others "
                                                  "probes its peer (RFC 1122 4.2.3.6)",
                                    "keep_alive_ack": "the kernel answering those probes"})
    k = r["counters"]
    # How many legs die depends on which frames the drops hit: reported, not required.
    log(f"     heavy-loss-tx: legs lost {k.get('legs_lost')}, chunks re-sent {k.get('resent')}, idle legs recycled "
        f"{k.get('recycled')}")
    # When the receiver had the whole stream (from the peer's own log): a
    # re-sent chunk must not wait for some leg to die. How long the peer then
    # keeps reading a connection whose RST was lost (its 20 s timeout) is
    # the peer's business: a RST is sent once, and 4 % of them are dropped.
    m = re.search(r"kernel_peer \+([0-9.]+)s: stream complete", r["peer"].err)
    got = float(m.group(1)) if m else None
    check(got is not None and got < 15, f"heavy-loss-tx: the receiver had every byte after "
          f"{'-' if got is None else f'{got:.1f}'} s (< 15 s)", r["peer"].err)


def lines_with(text, needle):
    return [l for l in text.splitlines() if needle in l]


def break_rx_case(kind):
    """The kernel sender ends one connection mid-chunk (FIN or RST)."""
    links = make_links(1)
    what = "closed by the sender mid-stream" if kind == "fin" else "connection reset"
    # (a) a viamillipede-like sender re-sends the chunk on a fresh connection:
    # dpdk-millipede reports the leg and completes byte-exact.
    name = f"{kind}-rx-resend"
    r = kernel_to_dpdk(links, name, 8 * MiB, 4,
                       peer_args=["--break", kind, "--break-chunk", "3", "--break-at", "100000", "--resend"],
                       rst="kernel" if kind == "rst" else None)
    hits = lines_with(r["rx"].err, what)
    check(len(hits) == 1, f"{name}: dpdk-millipede rx reports the broken leg once ('{what}')", r["rx"].err)
    check(r["summary"].get("connections") == 5, f"{name}: the sender used a fresh 5th connection",
          r["summary"])
    # (b) nobody re-sends: rx must say so and give up within its stall bound.
    name = f"{kind}-rx-noresend"
    t0 = time.monotonic()
    r = kernel_to_dpdk(links, name, 8 * MiB, 2, expect_ok=False, limit=60,
                       peer_args=["--break", kind, "--break-chunk", "3", "--break-at", "100000"],
                       dpdk_words=["--stall-timeout", "3"], rst="kernel" if kind == "rst" else None)
    dt = time.monotonic() - t0
    err = r["rx"].err
    check(r["rx"].rc == 1 and lines_with(err, what) and lines_with(err, "no progress for 3 s") and dt < 30,
          f"{name}: without a re-send dpdk-millipede rx fails clearly in bounded time ({dt:.1f} s, rc {r['rx'].rc})",
          err)


def case_fin_rx():
    break_rx_case("fin")


def case_rst_rx():
    break_rx_case("rst")


def break_tx_case(kind):
    """The kernel receiver ends one connection mid-chunk (FIN or RST):
    dpdk-millipede tx re-sends that chunk on a fresh connection (compat) and
    completes; the kernel receiver gets every byte."""
    links = make_links(1)
    what = "the receiver closed the connection mid-stream" if kind == "fin" else "connection reset"
    for conns in (4, 1):
        name = f"{kind}-tx-{conns}"
        # --rcvbuf 64K: at most ~128 KiB unread in the kernel + 256 KiB in
        # dpdk-millipede's send ring, less than a 1 MiB chunk, so the broken
        # chunk is never fully handed over (compat has no acks, docs/wire.md 3.2).
        r = dpdk_to_kernel(links, name, 8 * MiB, conns, dpdk_words=["verbose", "2"],
                           peer_args=["--break", kind, "--break-chunk", "2", "--break-at", "1000", "--rcvbuf",
                                      "65536"], rst="kernel" if kind == "rst" else None)
        err = r["tx"].err
        check(len(lines_with(err, what)) == 1, f"{name}: dpdk-millipede tx reports the broken leg once ('{what}')",
              err)
        # With one leg the chunk can only go again on a reconnection; with
        # four, on the reconnected leg or on one that had carried no chunk yet.
        # Which connection carried the broken chunk again: three valid
        # outcomes. A leg that had carried no chunk yet (four legs: one of
        # the first connections, the chunk its first); the broken leg's own
        # reconnection (after its 100 ms back-off); or an idle leg with
        # everything delivered, recycled for it at once (tx's `recycled`
        # counter says 1). The broken leg reconnects once if the stream
        # lasts beyond its back-off: legs + 0 or 1 + recycled connections.
        # A fourth: no leg was idle and every one waited on the receiver
        # (it waits for chunk 2) for force_recycle_us, so one was closed
        # anyway and its own unfinished chunk went again too (docs/wire.md
        # 3.2): `recycled` and `resent` then count that second chunk as well.
        summ, recycled = r["summary"], r["counters"].get("recycled", -1)
        resent = r["counters"].get("resent", -1)
        on = {int(k): v for k, v in summ.get("chunks_on", {}).items()}
        carrier = next((k for k, v in on.items() if 2 in v), None)
        if carrier is not None and carrier < conns and on[carrier][0] == 2:
            how = "a leg that had carried no chunk yet took it"
        elif carrier is not None and carrier >= conns and recycled == 0:
            how = "the broken leg's reconnection took it"
        elif carrier is not None and carrier >= conns and recycled == 1:
            how = "an idle leg was recycled for it"
        elif carrier is not None and carrier >= conns and recycled >= 2 and resent == recycled:
            how = "a busy leg was recycled after every leg waited on the receiver; its chunk went again too"
        else:
            how = None
        log(f"     {name}: outcome: {how} (connection {carrier}, chunks per connection {on})")
        n = summ.get("connections", 0)
        check(how is not None and summ.get("partial_discarded") == 1 and summ.get("duplicates") == 0 and
              conns + recycled <= n <= conns + 1 + recycled,
              f"{name}: the broken chunk went again on a fresh connection: {how} ({n} connections for {conns} "
              f"legs, {recycled} recycled, {summ.get('partial_discarded')} partial chunk discarded, "
              f"{summ.get('duplicates')} duplicates)")


def case_fin_tx():
    break_tx_case("fin")


def case_rst_tx():
    break_tx_case("rst")


def case_ping_arp():
    """ARP and ICMP echo from the kernel to each of two DPDK ports."""
    links = make_links(2)
    caps = [Capture(NS_K, L.k, f"ping{i}") for i, L in enumerate(links)]
    out = os.path.join(TMP, "out-ping")
    with open(out, "wb") as o:
        rx = dpdk(["rx", str(PORT), *ip_words(links), "verbose", "2", "--wait", "30", "--compat", "viamillipede"],
                  60, af_packet(links), stdout=o, name="dpdk rx")
    for i, L in enumerate(links):
        check(wait_reachable(NS_K, L.d_ip), f"port {i}: dpdk-millipede is up")
        # Forget the neighbour, so the next ping must resolve it with ARP.
        run(["ip", "-n", NS_K, "neigh", "flush", "dev", L.k])
        ok, summ = ping(NS_K, L.d_ip, count=3)
        check(ok and summ.get("replies") == 3, f"port {i} ({L.d_ip}): 3 of 3 echo requests answered {summ}")
        r = run(["ip", "-n", NS_K, "-j", "neigh", "show", L.d_ip, "dev", L.k])
        ent = json.loads(r.stdout or "[]")
        mac = ent[0].get("lladdr") if ent else None
        check(mac == L.d_mac, f"port {i}: ARP resolved {L.d_ip} to the DPDK port's MAC {L.d_mac} ({ent})")
    # End rx cleanly: one byte through port 1.
    src = random_file(1)
    kp = peer(NS_K, ["send", "--to", f"{links[1].d_ip}:{PORT}", "--conns", "1", "--input", src], 30)
    kp.wait()
    rx.wait()
    check(rx.rc == 0 and kp.rc == 0 and same_file(src, out), "1 byte through port 1 after the pings",
          rx.err, kp.err)
    counters = dpdk_counters(rx.err)
    for i, (cap, L) in enumerate(zip(caps, links)):
        cap.stop()
        c = analyse(cap, L.k_mac, L.d_mac)
        check(c["arp_replies_dpdk"] >= 1 and c["echo_replies"] >= 3 and c["echo_requests"] == c["echo_replies"],
              f"port {i}: capture: {c['arp_replies_dpdk']} ARP replies from the DPDK port, "
              f"{c['echo_replies']}/{c['echo_requests']} echo replies/requests")
        check_capture(f"ping-arp-port{i}", cap, c, False, counters=counters if i == 0 else None)


INJECT_ND = r"""
import socket, struct, sys
iface, src_mac, dst_ip = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), socket.inet_pton(socket.AF_INET6, sys.argv[3])
src_ip = socket.inet_pton(socket.AF_INET6, sys.argv[4])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
def ns(target, hop_limit=255, good=True):
    group = b"\xff\x02" + bytes(9) + b"\x01\xff" + target[13:]
    msg = b"\x87\0\0\0" + bytes(4) + target + b"\x01\x01" + src_mac
    c = csum(src_ip + group + struct.pack("!I3xB", len(msg), 58) + msg) ^ (0 if good else 0x5555)
    msg = msg[:2] + struct.pack("!H", c) + msg[4:]
    ip = struct.pack("!IHBB", 0x60000000, len(msg), 58, hop_limit) + src_ip + group + msg
    return b"\x33\x33" + group[12:] + src_mac + b"\x86\xdd" + ip
other = dst_ip[:15] + bytes([dst_ip[15] ^ 0x40])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
for f in (ns(dst_ip, hop_limit=64), ns(dst_ip, good=False), ns(other)):
    s.send(f)
"""


def inject_nd(L):
    """Three solicitations from the kernel's interface (a packet socket):
    for our address with hop limit 64 (RFC 4861 7.1.1: not 255, so maybe
    from off-link), for our address with a wrong checksum, and a valid one
    for another address on the link."""
    run(nx(NS_K) + ["python3", "-c", INJECT_ND, L.k, L.k_mac, L.d_ip, L.k_ip], check=True)


def check_misdelivered(name, err):
    """The flow table keys an IPv6 address by a hash (net::ipv6_key): the rx
    lcore's key of a segment and the worker's key of its connection must
    agree, or segments reach the wrong worker (with several workers:
    MILLIPEDE_TEST_WORKERS)."""
    counts = [int(x) for x in re.findall(r"\bmisdelivered (\d+)", err)]
    check(counts and not any(counts), f"{name}: no segment reached a worker that does not own its connection "
          f"(misdelivered per worker {counts})", err)


def case_ipv6():
    """IPv6 on the wire against the kernel: Neighbour Discovery both ways
    (the kernel solicits dpdk-millipede's address, dpdk-millipede solicits
    the kernel's), ICMPv6 echo, and native transfers each way over IPv6,
    byte-exact, with clean captures (checksums verified by tshark)."""
    links = use_ipv6(make_links(1))
    L = links[0]
    # The kernel resolves us (its NS, our NA) and pings; then forgets us and
    # must resolve again.
    cap = Capture(NS_K, L.k, "ipv6-nd-ping")
    out = os.path.join(TMP, "out-ipv6-ping")
    with open(out, "wb") as o:
        rx = dpdk(["rx", str(PORT), *ip_words(links), "verbose", "2", "--wait", "30"], 60, af_packet(links),
                  stdout=o, name="dpdk rx")
    check(wait_reachable(NS_K, L.d_ip), f"dpdk-millipede answers ICMPv6 echo at {L.d_ip}")
    run(["ip", "-n", NS_K, "-6", "neigh", "flush", "dev", L.k])
    ok, summ = ping(NS_K, L.d_ip, count=3)
    check(ok and summ.get("replies") == 3, f"{L.d_ip}: 3 of 3 ICMPv6 echo requests answered {summ}")
    r = run(["ip", "-n", NS_K, "-j", "-6", "neigh", "show", L.d_ip, "dev", L.k])
    ent = json.loads(r.stdout or "[]")
    mac = ent[0].get("lladdr") if ent else None
    check(mac == L.d_mac, f"Neighbour Discovery resolved {L.d_ip} to the DPDK port's MAC {L.d_mac} ({ent})")
    # Malformed Neighbour Discovery is counted by reason, and a well-formed
    # solicitation for another host's address is not counted at all.
    inject_nd(L)
    src = random_file(1)
    kp = peer(NS_K, ["send", "--codec", "native", "--to", f"{L.d_ip}:{PORT}", "--conns", "1", "--input", src], 30)
    kp.wait()
    rx.wait()
    check(rx.rc == 0 and kp.rc == 0 and same_file(src, out), "1 byte over IPv6 after the pings", rx.err, kp.err)
    owner = next((x for x in rx.err.splitlines() if "nd_solicits" in x), "")
    drops = re.search(r"\bmalformed (\d+)", rx.err)
    check("nd_bad_hop_limit 1" in owner and "nd_bad_checksum 1" in owner and len(re.findall(r" nd_bad_", owner)) == 2
          and drops and int(drops.group(1)) == 2,
          f"malformed ND counted by reason (hop limit 64, bad checksum), the well-formed one for another "
          f"address not at all: '{owner.split(': owner: ')[-1]}', malformed {drops.group(1) if drops else None}",
          rx.err)
    cap.stop()
    c = analyse(cap, L.k_mac, L.d_mac)
    check(c["nd_ns_kernel"] >= 2 and c["nd_na_dpdk"] >= 2 and c["echo_replies"] >= 4 and
          c["echo_requests"] == c["echo_replies"],
          f"capture: kernel solicited {c['nd_ns_kernel']}x, dpdk-millipede advertised {c['nd_na_dpdk']}x, "
          f"{c['echo_replies']}/{c['echo_requests']} ICMPv6 echo replies/requests")
    # RFC 4861 7.2.6: when its port came up, dpdk-millipede advertised its
    # address unsolicited (to all-nodes, S clear), as IPv4 sends a gratuitous ARP.
    r = subprocess.run(["tshark", "-r", cap.path, "-n", "-Y",
                        f"icmpv6.type == 136 && eth.src == {L.d_mac} && ipv6.dst == ff02::1 && "
                        f"icmpv6.nd.na.flag.s == 0 && icmpv6.nd.na.target_address == {L.d_ip}",
                        "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, timeout=60)
    check(len(r.stdout.split()) >= 1, f"capture: an unsolicited advertisement of {L.d_ip} to ff02::1 "
          f"(frames {r.stdout.split()})", r.stderr)
    # The one bad ICMPv6 checksum in the capture is the solicitation
    # inject_nd() sent with a wrong one on purpose, from the kernel's side.
    bad = [f for f in c.get("bad_frames", []) if f[2] == "bad icmpv6 checksum"]
    check(c["bad_icmp_csum"] == 1 and len(bad) == 1 and bad[0][1] == "kernel",
          f"capture: the only bad ICMPv6 checksum is the injected solicitation's ({bad})")
    c["bad_icmp_csum"] = 0
    check_capture("ipv6-nd-ping", cap, c, False, counters=dpdk_counters(rx.err))
    os.unlink(out)
    # Transfers: kernel -> dpdk-millipede rx, dpdk-millipede tx -> kernel (it
    # solicits the kernel's address first).
    for conns in (1, 4):
        r = kernel_to_dpdk(links, f"ipv6-rx-{conns}", 3 * MiB + 5, conns, codec="native",
                           peer_args=["--chunk", str(256 << 10)])
        # The veth's MTU is 1500: 1500 - 40 (IPv6) - 20 (TCP), where IPv4 offers 1460.
        mss = r["capture"].get("syn_mss_dpdk")
        check(mss == {1440}, f"ipv6-rx-{conns}: dpdk-millipede's SYN-ACKs offer MSS 1440 (MTU - 60): {mss}")
        check_misdelivered(f"ipv6-rx-{conns}", r["rx"].err)
        r = dpdk_to_kernel(links, f"ipv6-tx-{conns}", 3 * MiB + 5, conns, codec="native",
                           dpdk_words=["--chunk", "256K"])
        check_misdelivered(f"ipv6-tx-{conns}", r["tx"].err)
        c = r["capture"]
        check(c["nd_ns_dpdk"] >= 1 and c["nd_na_kernel"] >= 1,
              f"ipv6-tx-{conns}: dpdk-millipede solicited the kernel ({c['nd_ns_dpdk']}x), the kernel advertised "
              f"({c['nd_na_kernel']}x)")
    # The stock viamillipede framing over IPv6 too.
    kernel_to_dpdk(links, "ipv6-rx-compat", 1 * MiB, 2)


def native_case(direction):
    links = make_links(1)
    xfer = kernel_to_dpdk if direction == "rx" else dpdk_to_kernel
    for conns in (1, 4):
        for n in (0, 1, 3 * MiB + 5):
            kw = {"peer_args": ["--chunk", str(256 << 10)]} if direction == "rx" else \
                {"dpdk_words": ["--chunk", "256K"]}
            xfer(links, f"native-{direction}-{conns}x{n}", n, conns, codec="native", **kw)
    # A connection reset mid-chunk: its unacknowledged chunks go again on the
    # other connections and the end is still verified.
    name = f"native-{direction}-rst"
    if direction == "rx":
        r = xfer(links, name, 3 * MiB + 5, 4, codec="native",
                 peer_args=["--chunk", str(256 << 10), "--break", "rst", "--break-chunk", "5", "--break-at", "1000"],
                 rst="kernel")
        check(len(lines_with(r["rx"].err, "connection reset")) == 1, f"{name}: dpdk-millipede rx reports the reset",
              r["rx"].err)
        check(r["summary"].get("chunks_resent", 0) >= 1, f"{name}: the kernel sender re-sent on other legs",
              r["summary"])
    else:
        r = xfer(links, name, 3 * MiB + 5, 4, codec="native", dpdk_words=["--chunk", "256K"],
                 peer_args=["--break", "rst", "--break-chunk", "5", "--break-at", "1000"], rst="kernel")
        check(len(lines_with(r["tx"].err, "connection reset")) == 1, f"{name}: dpdk-millipede tx reports the reset",
              r["tx"].err)
        check(r["counters"].get("resent", 0) >= 1, f"{name}: dpdk-millipede re-sent chunks ({r['counters']})")


def case_native_rx():
    native_case("rx")


def case_native_tx():
    native_case("tx")


def case_tap():
    """Through DPDK's net_tap: the kernel peer on the tap interface, in
    dpdk-millipede's namespace. The capture starts before the interface has
    its address (so before any connection) and, for tx, before
    dpdk-millipede has a byte of input: it sees every frame of the transfer."""
    make_namespaces()
    third = os.getpid() % 250
    tap, k_ip, d_ip = f"{TAG}t0", f"10.99.{third}.1", f"10.99.{third}.2"
    vdevs = ["--vdev", f"net_tap0,iface={tap}"]

    def appear():
        """The tap interface appears when the DPDK port starts; it gets a MAC
        of its own (net_tap gives it the DPDK port's: dpdk-millipede copes
        with that, a frame to its MAC is never its own echo, but the capture
        tells the sides apart by source MAC), no address yet."""
        end = time.monotonic() + 15
        while time.monotonic() < end:  # the port is started: net_tap set the interface up
            r = run(["ip", "-n", NS_D, "-j", "link", "show", tap])
            if r.returncode == 0 and "UP" in json.loads(r.stdout)[0]["flags"]:
                break
            time.sleep(0.05)
        quiet_iface(NS_D, tap)
        want = f"02:6b:{third:02x}:00:00:01"
        while time.monotonic() < end and mac_of(NS_D, tap) != want:
            run(["ip", "-n", NS_D, "link", "set", tap, "address", want])
            time.sleep(0.2)  # (a retry with a deadline: the starting port may set its MAC back)
        return mac_of(NS_D, tap)

    def address():
        run(["ip", "-n", NS_D, "addr", "add", f"{k_ip}/24", "dev", tap], check=True)
        run(["ip", "-n", NS_D, "link", "set", tap, "up"], check=True)

    for direction in ("rx", "tx"):
        name = f"tap-{direction}"
        src = random_file(8 * MiB)
        out = os.path.join(TMP, f"out-{name}")
        feeder = None
        if direction == "rx":
            with open(out, "wb") as o:
                p = dpdk(["rx", str(PORT), "--ip", f"0={d_ip}/24", "verbose", "2", "--wait", "20", "--compat",
                          "viamillipede"], 60, vdevs, stdout=o, name="dpdk rx")
            k_mac = appear()
            cap = Capture(NS_D, tap, name)
            address()
            ready = wait_reachable(NS_D, d_ip)
            kp = peer(NS_D, ["send", "--to", f"{d_ip}:{PORT}", "--conns", "2", "--input", src], 50)
        else:
            kp = peer(NS_D, ["recv", "--listen", f"0.0.0.0:{PORT}", "--output", out], 55)
            kp.wait_line("LISTENING", 15)
            p = dpdk(["tx", k_ip, str(PORT), "threads", "2", "--ip", f"0={d_ip}/24", "verbose", "2",
                      "--connect-timeout", "15", "--compat", "viamillipede"], 60, vdevs, stdin=subprocess.PIPE,
                     name="dpdk tx")
            k_mac = appear()
            cap = Capture(NS_D, tap, name)
            address()

            def feed(pipe=p.p.stdin):
                with open(src, "rb") as i:
                    shutil.copyfileobj(i, pipe)
                pipe.close()

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            ready = True
        kp.wait()
        p.wait()
        if feeder:
            feeder.join(5)
        cap.stop()
        exact = os.path.exists(out) and same_file(src, out)
        check(ready and p.rc == 0 and kp.rc == 0 and exact, f"{name}: 8 MiB over net_tap, 2 connections, byte-exact",
              f"dpdk rc={p.rc}: {p.err}", f"peer rc={kp.rc}: {kp.err}")
        # The DPDK port's MAC: the source of frames that are not the kernel's.
        r = subprocess.run(["tshark", "-r", cap.path, "-n", "-T", "fields", "-e", "eth.src"], capture_output=True,
                           text=True)
        macs = {m for m in r.stdout.split() if m != k_mac}
        d_mac = macs.pop() if len(macs) == 1 else None
        c = analyse(cap, k_mac, d_mac)
        if KEEP:
            shutil.copy(cap.path, KEEP)
        check_capture(name, cap, c, False, None, dpdk_counters(p.err))


CASES = {k[5:]: v for k, v in list(globals().items()) if k.startswith("case_")}

if __name__ == "__main__":
    if CASE not in CASES:
        log(f"unknown case {CASE}; cases: {' '.join(CASES)}")
        sys.exit(2)
    if not os.access(BIN, os.X_OK):
        log(f"no binary {BIN}")
        sys.exit(1)
    t0 = time.monotonic()
    try:
        CASES[CASE]()
    except RuntimeError as e:
        check(False, f"{CASE}: {e}")
    finally:
        print_table()
        cleanup()
    log(f"{CASE}: {'FAIL' if FAILS else 'PASS'} in {time.monotonic() - t0:.1f} s"
        + (f" ({len(FAILS)} failed: {'; '.join(FAILS)})" if FAILS else ""))
    sys.exit(1 if FAILS else 0)
