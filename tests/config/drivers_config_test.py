#!/usr/bin/env python3
"""drivers-config profiles on the virtual devices of this machine, wrong
values against the devices' limits, and live capture with rte_pdump.

Cases:
  profiles   every profile that runs here, on its device, in tap and in
             tx/rx: net_pcap (tap), net_tap (tap), net_af_packet (rx, tx),
             net_memif (rx, tx; on hugepages), net_virtio_user (tap, on a
             vhost-user socket served by dpdk-testpmd's net_vhost). Each run
             is `--config host.ini --print-config`: the printed settings
             must be the profile's (read here with configparser, [port] then
             the mode's section), a device section of the host file must
             win, and the printed file read back with --config must print
             the same settings again.
  badvalues  one line naming file, section, key and the allowed range, and
             a non-zero exit: a value the profile's documented limits refuse
             (before EAL starts, status 2) and one only the device refuses
             (af_packet's queue count, checked against rte_eth_dev_info,
             status 1); a missing host file.
  capture    dpdk-dumpcap (a secondary process, same --file-prefix) captures
             a running tap (net_pcap, a capture looped) and a running rx
             (af_packet on a veth, pinged from a network namespace); tshark
             reads both captures: the tap's frames are the capture file's
             frames, the rx's hold the echo requests and rx's replies.
             dpdk-proc-info and dpdk-telemetry.py list the tap's port.

Every process runs under a deadline; waits are for conditions. Exit 0 pass,
1 fail, 77 skip (not root).

usage: drivers_config_test.py DPDK_MILLIPEDE CASE
"""
import atexit
import configparser
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from rig import FAILS, check, log, skip, telemetry, wait_until  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/app/dpdk-millipede"
CASE = sys.argv[2] if len(sys.argv) > 2 else "profiles"
PROFILES = os.path.join(HERE, "..", "..", "drivers-config")
PCAPS = os.path.join(HERE, "..", "..", "..", "shared", "pcaps")
TAG = f"dc{os.getpid() % 100000}"
WORK = tempfile.mkdtemp(prefix="drivers_config_")
NOHUGE = ["--no-pci", "--no-huge", "-m", "256", "--log-level=*:error"]
HUGE = ["--no-pci", "-m", "256", "--log-level=*:error"]
PREFIXES, LINKS, NETNS, PROCS = [], [], [], []


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()
    for link in LINKS:
        subprocess.run(["ip", "link", "del", link], stderr=subprocess.DEVNULL)
    for ns in NETNS:
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    for prefix in PREFIXES:
        for f in glob.glob(f"/dev/hugepages/{prefix}map_*") + glob.glob(f"/dev/hugepages/{prefix}*"):
            try:
                os.unlink(f)
            except OSError:
                pass
        shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
    shutil.rmtree(WORK, ignore_errors=True)


atexit.register(cleanup)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, lambda *_: sys.exit(1))


def prefix(name):
    p = f"{TAG}{name}"
    PREFIXES.append(p)
    return p


def write(name, text):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def run(cmd, timeout=90, stdin=subprocess.DEVNULL):
    return subprocess.run(["timeout", "-s", "KILL", str(timeout)] + cmd, stdin=stdin, capture_output=True, text=True)


def app(eal, pfx, mode_args, timeout=90):
    return run([BIN] + eal + ["--file-prefix", pfx, "--"] + mode_args, timeout)


def ini(text):
    """A host file (or the printed settings) as {section: {key: value}}."""
    c = configparser.ConfigParser(comment_prefixes=(";",), inline_comment_prefixes=(";",), interpolation=None)
    c.optionxform = str
    c.read_string(text)
    return {s: dict(c[s]) for s in c.sections()}


def comments(text, section):
    """{key: comment} of the printed section."""
    out, inside = {}, False
    for line in text.splitlines():
        if line.startswith("["):
            inside = line.strip() == f"[{section}]"
        elif inside and " = " in line and " ; " in line:
            kv, comment = line.split(" ; ", 1)
            out[kv.split(" = ")[0]] = comment
    return out


def profile_settings(name, mode):
    """The profile's [port] with its mode section over it, as this test reads it."""
    with open(os.path.join(PROFILES, name + ".ini")) as f:
        p = ini(f.read())
    s = dict(p["port"])
    s.update(p.get(mode, {}))
    return s


def veth_pair():
    a, b = f"{TAG}a", f"{TAG}b"
    r = subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], capture_output=True, text=True)
    if r.returncode != 0:
        skip(f"cannot create a veth pair: {r.stderr.strip()}")
    LINKS.append(a)
    for d in (a, b):
        subprocess.run(["ip", "link", "set", d, "up"], check=True)
    return a, b


# The keys whose printed value is what the device holds and which each
# profile sets the same way on every virtual device here.
COMPARED = ["rx_desc", "tx_desc", "mbufs", "mempool_cache", "tso", "lro", "rss_hash", "flow_control"]


def check_profile_run(what, r, section, profile, mode):
    if not check(r.returncode == 0, f"{what}: --print-config exits 0", r.stderr[-2000:]):
        return None
    printed = ini(r.stdout)
    if not check(section in printed, f"{what}: a [{section}] section is printed", r.stdout):
        return None
    got = printed[section]
    want = profile_settings(profile, mode)
    check(got.get("profile") == profile, f"{what}: profile {profile} chosen by driver", got.get("profile"))
    for k in COMPARED:
        check(got.get(k) == want[k], f"{what}: {k} = {want[k]} as the profile sets it", f"printed {got.get(k)}")
    check(int(got["rx_queues"]) <= int(want["rx_queues"]) and int(got["tx_queues"]) <= int(want["tx_queues"]),
          f"{what}: queues within the profile's rx_queues / tx_queues", got)
    notes = comments(r.stdout, section)
    check(f"{profile}.ini [" in notes.get("rx_desc", ""), f"{what}: rx_desc's comment names the profile file",
          notes.get("rx_desc"))
    return r.stdout


def round_trip(what, eal, pfx, mode_args, first):
    """The printed settings, read back as a host file, print the same values."""
    path = write(f"printed_{pfx}.ini", first)
    r = app(eal, pfx, mode_args + ["--config", path, "--print-config"])
    if check(r.returncode == 0, f"{what}: the printed settings load as a host file", r.stderr[-2000:]):
        check(ini(r.stdout) == ini(first), f"{what}: ... and print the same settings", first, r.stdout)


MODE_ARGS = {"tap": ["tap"], "rx": ["rx", "8834", "--ip", "0=10.0.0.2/24"],
             "tx": ["tx", "10.0.0.2", "8834", "--ip", "0=10.0.0.1/24"]}


def profile_runs(profile, port, eal, modes, host, extra=()):
    """The port in each mode: the profile's settings printed, and read back."""
    ran = True
    for mode in modes:
        what, p = f"{port} {mode}", prefix(port + mode)
        args = MODE_ARGS[mode] + list(extra)
        out = check_profile_run(what, app(eal, p, args + ["--config", host, "--print-config"]), port, profile, mode)
        if out:
            round_trip(what, eal, p, args, out)
        ran &= bool(out)
    return ran


def case_profiles():
    host = write("host.ini", "[default]\nprofile = auto\n")
    ran = []

    # net_pcap, tap mode, --no-huge.
    capture = os.path.join(PCAPS, "dns_fragmented.pcap")
    if not os.path.exists(capture):
        check(False, f"{capture} is present (tests need ../shared/pcaps)")
        return
    eal = NOHUGE + ["-l", "0", "--vdev", f"net_pcap0,rx_pcap={capture}"]
    # (--capture-reader net_pcap: a regular pcap file is otherwise read
    # memory-mapped, without a net_pcap port to configure.)
    if profile_runs("net_pcap", "net_pcap0", eal, ["tap"], host, extra=["--capture-reader", "net_pcap"]):
        ran.append("net_pcap")
    # A device section over [default] over the profile.
    p = prefix("over")
    over = write("over.ini", "[default]\nprofile = auto\nmbufs = 12000\n[net_pcap0]\nrx_desc = 512\n")
    r = app(eal, p, ["tap", "--capture-reader", "net_pcap", "--config", over, "--print-config"])
    if check(r.returncode == 0, "net_pcap tap with overrides: exits 0", r.stderr):
        got, notes = ini(r.stdout)["net_pcap0"], comments(r.stdout, "net_pcap0")
        check(got["rx_desc"] == "512" and notes["rx_desc"].startswith(f"{over} [net_pcap0] rx_desc = 512"),
              "net_pcap tap: the device's section wins, and the comment says where from", got, notes)
        check(got["mbufs"] == "12000" and notes["mbufs"].startswith(f"{over} [default] mbufs = 12000"),
              "net_pcap tap: [default] wins over the profile", got, notes)
        check("pool tap_pool: 12000 mbufs" in notes["mbufs"], "net_pcap tap: the pool holds the configured mbufs",
              notes["mbufs"])

    # net_tap, tap mode (a TAP interface of the kernel).
    eal = NOHUGE + ["-l", "0", "--vdev", f"net_tap0,iface={TAG}tap"]
    if profile_runs("net_tap", "net_tap0", eal, ["tap"], host):
        ran.append("net_tap")

    # net_af_packet, rx and tx, on a veth pair.
    a, _ = veth_pair()
    eal = NOHUGE + ["-l", "0", "--vdev", f"net_af_packet0,iface={a}"]
    if profile_runs("net_af_packet", "net_af_packet0", eal, ["rx", "tx"], host):
        ran.append("net_af_packet")

    # net_memif, rx and tx, on hugepages (memif's regions are shared memory).
    sock = os.path.join(WORK, "memif.sock")
    eal = HUGE + ["-l", "0", "--vdev", f"net_memif0,role=server,socket={sock}"]
    if profile_runs("net_memif", "net_memif0", eal, ["rx", "tx"], host):
        ran.append("net_memif")

    # net_virtio_user on a vhost-user socket: dpdk-testpmd serves it with
    # DPDK's net_vhost, idle at its prompt (no forwarding lcore polls).
    testpmd = shutil.which("dpdk-testpmd")
    if not testpmd:
        log("note: virtio-user not run: dpdk-testpmd (Debian's dpdk package) is absent")
    else:
        vsock = os.path.join(WORK, "vhost.sock")
        vp = prefix("vhost")
        backend = subprocess.Popen(["timeout", "-s", "KILL", "120", testpmd, "-l", "0-1", "--no-pci", "-m", "256",
                                    "--file-prefix", vp, "--log-level=*:error",
                                    "--vdev", f"net_vhost0,iface={vsock},queues=2", "--", "-i",
                                    "--total-num-mbufs=2048"],
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        PROCS.append(backend)
        if check(wait_until(lambda: os.path.exists(vsock), 60), "vhost-user back end listens"):
            eal = HUGE + ["-l", "0", "--single-file-segments",
                          "--vdev", f"net_virtio_user0,path={vsock},queues=2,queue_size=256"]
            if profile_runs("virtio-user", "net_virtio_user0", eal, ["tap"], host):
                ran.append("net_virtio_user")
        backend.stdin.close()
        backend.kill()
        backend.wait()
    log("profiles run on their devices: " + ", ".join(ran))


def one_line_error(what, r, status, want_start, want_in=()):
    lines = [l for l in r.stderr.splitlines() if l.startswith("dpdk-millipede")]
    check(r.returncode == status, f"{what}: exit status {status}", f"status {r.returncode}", r.stderr[-2000:])
    if check(len(lines) == 1, f"{what}: one line", r.stderr[-2000:]):
        line = lines[0]
        check(line.startswith(want_start) and all(w in line for w in want_in), f"{what}: the line says it",
              f"got:  {line}", f"want: {want_start}... {want_in}")


def case_badvalues():
    capture = os.path.join(PCAPS, "dns_fragmented.pcap")
    eal = NOHUGE + ["-l", "0", "--vdev", f"net_pcap0,rx_pcap={capture}"]
    # Refused by the profile's documented limits, once the port's driver is
    # known (after EAL probed it): status 1.
    bad = write("bad_profile.ini", "[default]\nprofile = auto\n[net_pcap0]\nprofile = net_pcap\nrx_queues = 17\n")
    r = app(eal, prefix("bad1"), ["tap", "--capture-reader", "net_pcap", "--config", bad])
    one_line_error("rx_queues beyond net_pcap's documented 16", r, 1,
                   f"dpdk-millipede tap: {bad} [net_pcap0] rx_queues = 17: allowed 1-16 (net_pcap's documented limits")
    # What the file alone shows is wrong: before EAL starts, status 2.
    bad = write("bad_key.ini", "[default]\nrx_descriptors = 1024\n")
    r = app(eal, prefix("bad2"), ["tap", "--config", bad])
    one_line_error("an unknown key", r, 2, f"dpdk-millipede tap: {bad} [default] rx_descriptors: unknown key")
    r = app(eal, prefix("bad3"), ["tap", "--config", os.path.join(WORK, "absent.ini")])
    one_line_error("a missing host file", r, 2, f"dpdk-millipede tap: cannot read {WORK}/absent.ini")

    # Refused only by the device: af_packet opened one queue pair (qpairs=1),
    # within the profile's 16.
    a, _ = veth_pair()
    eal = NOHUGE + ["-l", "0", "--vdev", f"net_af_packet0,iface={a},qpairs=1"]
    bad = write("bad_device.ini", "[net_af_packet0]\ntx_queues = 2\n")
    for mode, args in (("rx", ["rx", "8834", "--ip", "0=10.0.0.2/24"]),
                       ("tx", ["tx", "10.0.0.2", "8834", "--ip", "0=10.0.0.1/24", "--connect-timeout", "5"])):
        r = app(eal, prefix("bad4" + mode), args + ["--config", bad])
        one_line_error(f"{mode}: tx_queues beyond the device's one queue", r, 1,
                       f"dpdk-millipede {mode}: {bad} [net_af_packet0] tx_queues = 2: port 0 (net_af_packet0, "
                       "net_af_packet) allows 1-1")
    # MTU beyond what the device receives (af_packet: 1518-byte frames).
    bad = write("bad_mtu.ini", "[default]\nprofile = net_af_packet\n[net_af_packet0]\nmtu = 1400\n")
    r = app(eal, prefix("bad5"), ["rx", "8834", "--ip", "0=10.0.0.2/24", "--config", bad, "--print-config"])
    check(r.returncode == 0 and ini(r.stdout)["net_af_packet0"]["mtu"] == "1400",
          "an MTU within the device's range is set", r.stdout, r.stderr)
    bad = write("bad_mtu2.ini", "[default]\nprofile = net_af_packet\n[net_af_packet0]\nmtu = 9000\n")
    r = app(eal, prefix("bad6"), ["rx", "8834", "--ip", "0=10.0.0.2/24", "--config", bad])
    one_line_error("an MTU beyond net_af_packet's documented limit", r, 1,
                   f"dpdk-millipede rx: {bad} [net_af_packet0] mtu = 9000: allowed 68-1500")


def tshark_fields(path, *fields, extra=()):
    r = run(["tshark", "-r", path, "-T", "fields", *extra] + sum([["-e", f] for f in fields], []), 120)
    return [l.split("\t") for l in r.stdout.splitlines()], r


def case_capture():
    for tool in ("dpdk-dumpcap", "tshark", "dpdk-proc-info", "dpdk-telemetry.py"):
        if not shutil.which(tool):
            check(False, f"{tool} is installed (Debian's dpdk and tshark packages)")
            return
    # A short path: a secondary process gets the vdev's arguments from the
    # primary through a fixed-size field, which a long path overruns.
    capture = os.path.join(WORK, "c.pcap")
    shutil.copy(os.path.join(PCAPS, "dns_fragmented.pcap"), capture)
    host = write("host.ini", "[default]\nprofile = auto\n")

    # 1. A running tap on a looped capture (infinite_rx), hugepages so that
    # secondary processes share its memory.
    p = prefix("captap")
    tap = subprocess.Popen(["timeout", "-s", "KILL", "200", BIN] + HUGE +
                           ["-l", "0-1", "--file-prefix", p, "--vdev", f"net_pcap0,rx_pcap={capture},infinite_rx=1",
                            "--", "tap", "--no-dpi", "--duration", "150", "--config", host],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    PROCS.append(tap)

    def tap_ports():
        try:
            return telemetry(p, "/ethdev/list") == [0] and telemetry(p, "/millipede/tap/stats")
        except (OSError, ValueError, KeyError):
            return None
    if not check(wait_until(tap_ports, 60), "tap runs (its telemetry lists port 0)", tap.poll()):
        return
    out = os.path.join(WORK, "tap.pcapng")
    r = run(["dpdk-dumpcap", f"--file-prefix={p}", "-i", "net_pcap0", "-c", "200", "-w", out, "-q"], 90)
    check(r.returncode == 0, "dpdk-dumpcap captures 200 packets from the running tap", r.stdout, r.stderr)
    md5 = ["-o", "frame.generate_md5_hash:TRUE"]
    got, tr = tshark_fields(out, "frame.md5_hash", extra=md5)
    source, _ = tshark_fields(capture, "frame.md5_hash", extra=md5)
    source = {x[0] for x in source}
    # -c stops at the burst that reaches 200.
    check(len(got) >= 200, "tshark reads the 200 frames or more from the capture", tr.stderr, len(got))
    check(got and all(g[0] in source for g in got), "every captured frame is a frame of the replayed file",
          [g for g in got if g[0] not in source][:3])

    # Line-buffered: what it printed survives even if the deadline kills it.
    r = run(["stdbuf", "-oL", "dpdk-proc-info", f"--file-prefix={p}", "--", "-p", "1", "--stats"], 60)
    rx_line = [l for l in r.stdout.splitlines() if "RX-packets" in l]
    check(rx_line and int(rx_line[0].split()[1]) > 0, "dpdk-proc-info shows port 0 and its received packets",
          f"status {r.returncode}", r.stdout[-1500:], r.stderr[-1500:])
    r = subprocess.run(["timeout", "-s", "KILL", "60", "dpdk-telemetry.py", "-f", p],
                       input="/ethdev/list\n/ethdev/info,0\n", capture_output=True, text=True)
    check('"/ethdev/list": [\n    0\n  ]' in r.stdout or '"/ethdev/list": [0]' in r.stdout,
          "dpdk-telemetry.py lists port 0", r.stdout[-1500:], r.stderr[-1500:])
    check('"name": "net_pcap0"' in r.stdout, "dpdk-telemetry.py names it net_pcap0", r.stdout[-1500:])
    tap.send_signal(signal.SIGTERM)
    try:
        tap.wait(60)
    except subprocess.TimeoutExpired:
        pass
    check(tap.returncode == 0, "the tap ends with status 0 after the captures", tap.returncode,
          tap.stderr.read()[-2000:] if tap.stderr else "")

    # 2. A running rx on af_packet; the kernel side of the veth, in its own
    # namespace, pings rx's address; rx answers ARP and ICMP itself.
    a, b = veth_pair()
    ns = f"{TAG}ns"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    NETNS.append(ns)
    subprocess.run(["ip", "link", "set", a, "netns", ns], check=True)
    nx = ["ip", "netns", "exec", ns]
    subprocess.run(nx + ["ip", "addr", "add", "10.9.0.1/24", "dev", a], check=True)
    subprocess.run(nx + ["ip", "link", "set", a, "up"], check=True)
    subprocess.run(nx + ["sysctl", "-qw", f"net.ipv6.conf.{a}.disable_ipv6=1"], capture_output=True)
    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{b}.disable_ipv6=1"], capture_output=True)
    p = prefix("caprx")
    rx = subprocess.Popen(["timeout", "-s", "KILL", "200", BIN] + HUGE +
                          ["-l", "0", "--file-prefix", p, "--vdev", f"net_af_packet0,iface={b}",
                           "--", "rx", "8834", "--ip", "0=10.9.0.2/24", "--wait", "150", "--config", host],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    PROCS.append(rx)

    def rx_up():
        try:
            return telemetry(p, "/ethdev/list") == [0]
        except (OSError, ValueError, KeyError):
            return None
    if not check(wait_until(rx_up, 60), "rx runs (its telemetry lists port 0)", rx.poll()):
        return
    out = os.path.join(WORK, "rx.pcapng")
    dumpcap = subprocess.Popen(["timeout", "-s", "KILL", "90", "dpdk-dumpcap", f"--file-prefix={p}", "-i",
                                "net_af_packet0", "-c", "8", "-w", out],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    PROCS.append(dumpcap)
    # Echo requests from the namespace, one every 0.3 s, until dumpcap has
    # its 8 packets (ARP and ICMP both ways) and ends. (A raw socket: Debian's
    # minimal images have no ping.)
    pinger = ("import socket,struct,sys,time\n"
              "s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP);s.settimeout(0.3)\n"
              "def ck(b):\n"
              " t=sum(struct.unpack('!%dH'%(len(b)//2),b));t=(t>>16)+(t&0xffff);t+=t>>16;return ~t&0xffff\n"
              "replies=0\n"
              "for seq in range(200):\n"
              " h=struct.pack('!BBHHH',8,0,0,7,seq)+b'millipede!';h=h[:2]+struct.pack('!H',ck(h))+h[4:]\n"
              " s.sendto(h,('10.9.0.2',0))\n"
              " try:\n"
              "  d=s.recv(2048);replies+=d[20]==0\n"
              " except socket.timeout: pass\n"
              " time.sleep(0.3)\n"
              " if open(sys.argv[1]).read()!='': break\n"
              "print(replies)\n")
    flag = write("dumpcap_done", "")
    pinging = subprocess.Popen(["timeout", "-s", "KILL", "90"] + nx + ["python3", "-c", pinger, flag],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    PROCS.append(pinging)
    try:
        said = dumpcap.communicate(timeout=90)[0]
    except subprocess.TimeoutExpired:
        dumpcap.kill()
        said = dumpcap.communicate()[0]
    write("dumpcap_done", "done")
    replies = pinging.communicate(timeout=60)[0].strip()
    check(dumpcap.returncode == 0, "dpdk-dumpcap captures 8 packets from the running rx", said)
    check(replies not in ("", "0"), "rx answers the echo requests", replies, pinging.stderr)
    got, tr = tshark_fields(out, "ip.src", "icmp.type")
    got = [tuple(g) for g in got]
    check(("10.9.0.1", "8") in got and ("10.9.0.2", "0") in got,
          "the capture holds echo requests received and rx's replies sent", got, tr.stderr)
    rx.send_signal(signal.SIGTERM)
    try:
        rx.wait(60)
    except subprocess.TimeoutExpired:
        pass


def main():
    if os.geteuid() != 0:
        skip("needs root (veth pairs, TAP interfaces, hugepages)")
    {"profiles": case_profiles, "badvalues": case_badvalues, "capture": case_capture}[CASE]()
    log(f"{CASE}: {'FAIL ' + str(len(FAILS)) if FAILS else 'PASS'}")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
