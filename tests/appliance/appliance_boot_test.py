#!/usr/bin/env python3
"""The DPI tap appliance booted under QEMU records the same flows as the host binary.

usage: appliance_boot_test.py DPDK_MILLIPEDE SOURCE_DIR WORKDIR PCAP_DIR DEB_DIR

1. tools/appliance/build.sh builds the image (its .deb built into DEB_DIR,
   which the package suite shares; the image is reused while its inputs are
   unchanged).
2. QEMU boots a sparse copy of it (KVM when /dev/kvm works, TCG otherwise):
   q35, 2 vCPUs, 2 GiB, the disk on virtio-blk, a management virtio-net NIC
   (user networking) and the monitored virtio-net NIC on a host tap device.
   The image's own boot: extlinux, systemd, millipede-appliance-setup picks
   the second NIC, dpdk.service binds it to vfio-pci and reserves hugepages,
   dpdk-millipede-tap@tap0 starts.
3. The tap is ready when its DPDK driver configures the monitored NIC: the
   virtio PMD sets the NIC's receive filter (the tap turns promiscuous mode
   on when it starts the port), which QEMU reports as a NIC_RX_FILTER_CHANGED
   event over QMP; nothing else touches that NIC's filter (the kernel's
   virtio_net has it only until dpdk.service binds it to vfio-pci, and never
   brings it up). Until then the test waits, with a deadline, and fails early
   with the console's tail if the tap's unit fails. Packets that arrive while
   the tap sets up wait in the host tap device's queue (txqueuelen 10000,
   more than the captures hold): QEMU reads it only while the guest has
   receive buffers posted.
4. tcpreplay sends the captures from PCAP_DIR, one after another, into the
   host tap device at a fixed packet rate, and must send every packet.
5. ACPI power-off through QMP: systemd stops the tap with SIGTERM, which
   ends every open flow and flushes its record, then the VM powers off.
6. The records file /var/log/dpdk-millipede/tap0.flows.json is read from
   the disk (debugfs, read-only loop device) and compared with the records of
   the host binary run on each capture through DPDK's net_pcap device:
   the same flows (Community ID and 5-tuple), each with the same packets and
   bytes per direction and the same nDPI protocol.

Which captures: those whose frames all fit the NIC (Ethernet, at most 1514
bytes: the image's port has the default MTU; dns_fragmented and http_ipv6
carry larger frames). The host runs use idle timeouts and linger longer than
any capture, because the replay compresses the captures' hours into seconds:
a flow that a long pause in the capture would end by idle timeout on the
host is one flow on the appliance. A 5-tuple that two captures share would
be one flow on the appliance and two on the host; the test checks there is
none among the captures it replays (it leaves out a capture that shares
a flow with one before it, and says so).
"""
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import time

MTU_FRAME = 1514


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def run(cmd, timeout, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def wait_until(what, condition, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def kvm_works():
    """KVM when qemu can start a VM with it (nested virtualisation may be off)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    p = run(["qemu-system-x86_64", "-accel", "kvm", "-machine", "q35", "-m", "64", "-nodefaults",
             "-display", "none", "-S", "-monitor", "none", "-serial", "none", "-daemonize",
             "-pidfile", "/tmp/millipede-kvm-probe.pid"], timeout=30)
    if p.returncode != 0:
        return False
    try:
        os.kill(int(open("/tmp/millipede-kvm-probe.pid").read()), 15)
    except (OSError, ValueError):
        pass
    return True


def frame_sizes_ok(path):
    """Ethernet frames, none longer than MTU_FRAME (tshark reads pcap and pcapng)."""
    p = run(["tshark", "-r", path, "-T", "fields", "-e", "frame.len", "-e", "frame.encap_type"], timeout=120)
    if p.returncode != 0:
        return False, f"tshark cannot read it: {p.stderr.strip()[-200:]}"
    n = 0
    for line in p.stdout.splitlines():
        length, encap = line.split("\t")
        n += 1
        if encap != "1":
            return False, "not Ethernet"
        if int(length) > MTU_FRAME:
            return False, f"a {length}-byte frame"
    return n > 0, f"{n} frames"


def record_key(r):
    return (r["community_id"], r.get("ip_proto"), r.get("src"), r.get("sport"), r.get("dst"), r.get("dport"))


def record_value(r):
    return (r.get("c2s_packets"), r.get("c2s_bytes"), r.get("s2c_packets"), r.get("s2c_bytes"), r.get("l7"))


def read_records(text, label):
    out = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            fail(f"{label}: line {i + 1} is not JSON ({e}): {line[:200]}")
    return out


def host_records(binary, captures, work):
    """Records of the host binary per capture, net_pcap input, long timeouts."""
    records = {}
    for i, cap in enumerate(captures):
        out = os.path.join(work, f"host-{i}.json")
        cmd = [binary, "--no-pci", "--no-huge", "-m", "512", "-l", "0", "--file-prefix", f"appliance-ref-{os.getpid()}",
               "--vdev", f"net_pcap0,rx_pcap={cap}", "--", "tap", "--flows-out", out,
               "--idle-timeout", "10000000", "--linger", "10000000", "--flow-capacity", "131072"]
        p = run(cmd, timeout=300)
        if p.returncode != 0:
            fail(f"host run on {os.path.basename(cap)} exited {p.returncode}: {p.stderr.strip()[-400:]}")
        records[cap] = read_records(open(out).read(), f"host records of {os.path.basename(cap)}")
    return records


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self._read()  # greeting
        self.command("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name, **args):
        self.sock.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        while True:
            msg = self._read()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"QMP {name}: {msg['error']}")
            if "event" in msg:
                self.events.append(msg)


def console_tail(path, n=40):
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return "(no console log)"
    return "\n".join(lines[-n:])


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    binary, source, work, pcap_dir, deb_dir = (os.path.abspath(a) for a in sys.argv[1:])
    if not os.path.isdir(pcap_dir):
        # The captures are this test's input, as for the pcap suite: without
        # them it has nothing to compare, which is a failure, not a pass.
        fail(f"no captures in {pcap_dir} (../shared/pcaps, README.md)")
    if os.getuid() != 0:
        fail("needs root (mmdebstrap, loop devices, a tap device)")
    for tool in ("qemu-system-x86_64", "tcpreplay", "tshark", "debugfs", "losetup", "mmdebstrap"):
        if not shutil.which(tool):
            fail(f"{tool} is missing (tools/test.sh installs it: tools/lib/setup.sh)")
    os.makedirs(work, exist_ok=True)
    t0 = time.monotonic()

    # 1. The image.
    log("building the appliance image (tools/appliance/build.sh)")
    env = dict(os.environ, MILLIPEDE_DEB_DIR=deb_dir)
    p = subprocess.run([os.path.join(source, "tools/appliance/build.sh"), work], env=env, capture_output=True,
                       text=True, timeout=1500)
    sys.stdout.write(p.stderr)
    if p.returncode != 0:
        fail(f"build.sh exited {p.returncode}")
    image = p.stdout.strip().splitlines()[-1]
    log(f"image {image} ready after {time.monotonic() - t0:.0f} s")

    # The captures and the host's records.
    captures = []
    for name in sorted(os.listdir(pcap_dir)):
        if not name.endswith((".pcap", ".pcapng")):
            continue
        ok, why = frame_sizes_ok(os.path.join(pcap_dir, name))
        if ok:
            captures.append(os.path.join(pcap_dir, name))
        else:
            log(f"not replayed: {name} ({why})")
    host = host_records(binary, captures, work)
    owner = {}
    for cap in list(captures):
        keys = {record_key(r) for r in host[cap]}
        shared = [k for k in keys if k in owner]
        if shared:
            log(f"not replayed: {os.path.basename(cap)} (its flow {shared[0]} is in "
                f"{os.path.basename(owner[shared[0]])} too: one flow for the appliance, two for the host)")
            captures.remove(cap)
            del host[cap]
            continue
        owner.update((k, cap) for k in keys)
    if len(captures) < 5:
        fail(f"only {len(captures)} captures fit a 1514-byte frame and share no flow")
    expected = collections.Counter((record_key(r), record_value(r)) for recs in host.values() for r in recs)
    n_packets = sum(r["c2s_packets"] + r["s2c_packets"] for recs in host.values() for r in recs)
    log(f"host binary: {sum(expected.values())} records, {n_packets} packets in {len(captures)} captures")

    # 2. Boot a copy (the image stays as built, for the next run).
    disk = os.path.join(work, "run.img")
    console = os.path.join(work, "console.log")
    qmp_path = os.path.join(work, "qmp.sock")
    for f in (disk, console, qmp_path):
        if os.path.exists(f):
            os.unlink(f)
    subprocess.run(["cp", "--sparse=always", image, disk], check=True, timeout=300)
    # MILLIPEDE_APPLIANCE_ACCEL=tcg skips KVM (a host whose KVM cannot boot it).
    kvm = os.environ.get("MILLIPEDE_APPLIANCE_ACCEL", "kvm") != "tcg" and kvm_works()
    tap = f"mpapp{os.getpid() % 100000}"
    qemu = None
    loop = None
    try:
        subprocess.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"], check=True, timeout=30)
        # Nothing of the host's own goes out on it: no IPv6 (router
        # solicitations, MLD), no IPv4 address.
        with open(f"/proc/sys/net/ipv6/conf/{tap}/disable_ipv6", "w") as f:
            f.write("1\n")
        subprocess.run(["ip", "link", "set", tap, "txqueuelen", "10000", "up"], check=True, timeout=30)

        def boot(kvm):
            for f in (console, qmp_path):
                if os.path.exists(f):
                    os.unlink(f)
            # -arch-capabilities: nested KVM may refuse that MSR (QEMU then
            # aborts with "failed to set MSR 0x10a").
            accel = ["-accel", "kvm", "-cpu", "host,-arch-capabilities"] if kvm else ["-accel", "tcg", "-cpu", "max"]
            log(f"booting under qemu-system-x86_64 with {'KVM' if kvm else 'TCG (no usable KVM)'}")
            q = subprocess.Popen(
                ["qemu-system-x86_64", *accel, "-machine", "q35", "-smp", "2", "-m", "2048", "-nodefaults",
                 "-display", "none", "-no-reboot", "-serial", f"file:{console}",
                 "-qmp", f"unix:{qmp_path},server=on,wait=off",
                 "-drive", f"file={disk},if=virtio,format=raw",
                 "-netdev", "user,id=mgmt", "-device", "virtio-net-pci,netdev=mgmt,id=mgmtnic,addr=0x3",
                 "-netdev", f"tap,id=mon,ifname={tap},script=no,downscript=no",
                 "-device", "virtio-net-pci,netdev=mon,id=monnic,addr=0x4,mac=52:54:00:6d:70:02"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            wait_until("QEMU's QMP socket", lambda: os.path.exists(qmp_path) or q.poll() is not None, 60, 0.1)
            return q, (Qmp(qmp_path) if q.poll() is None else None)

        class KvmStalled(Exception):
            pass

        def tap_ready():
            if kvm and time.monotonic() - boot_start > 90 and "Linux version" not in open(console, errors="replace").read():
                # GRUB and then the kernel write to the serial port within
                # seconds under KVM; no kernel banner after 90 s means KVM
                # cannot run this guest (seen with nested KVM on a CI host:
                # GRUB's menu shows, the kernel never starts).
                raise KvmStalled("no kernel banner on the serial console 90 s after a KVM boot")
            if qemu.poll() is not None:
                raise RuntimeError(f"qemu exited {qemu.returncode}: {qemu.stdout.read()[-600:]}")
            text = open(console, errors="replace").read() if os.path.exists(console) else ""
            for bad in ("dpdk-millipede-tap@tap0.service: Failed", "dpdk-millipede-tap@tap0.service: Main process exited",
                        "Kernel panic", "Failed to start dpdk.service", "Assertion failed"):
                if bad in text:
                    raise RuntimeError(f"the appliance reports: {bad}")
            qmp.command("query-status")  # collects the events sent before its answer
            return any(e["event"] == "NIC_RX_FILTER_CHANGED" and e.get("data", {}).get("name") == "monnic"
                       for e in qmp.events)

        while True:
            ready_timeout, pps = (240, 1000) if kvm else (420, 200)
            qemu, qmp = boot(kvm)
            boot_start = time.monotonic()
            try:
                if qmp is None:
                    tap_ready()  # raises with qemu's message
                wait_until("the appliance's tap to configure the monitored NIC", tap_ready, ready_timeout)
                break
            except (TimeoutError, RuntimeError, ConnectionError, KvmStalled) as e:
                # KVM that fails once the vCPUs run (nested virtualisation)
                # ends QEMU or stalls it before the guest prints a line: TCG then.
                if kvm and (isinstance(e, KvmStalled) or (qemu.poll() is not None and not (
                        os.path.exists(console) and os.path.getsize(console)))):
                    log(f"KVM failed ({e}); booting again with TCG")
                    if qemu.poll() is None:
                        qemu.kill()
                        qemu.wait(timeout=30)
                    kvm = False
                    continue
                print(console_tail(console))
                fail(str(e))
        t_ready = time.monotonic() - t0
        log(f"the appliance's tap runs ({t_ready:.0f} s since the start of the test)")

        # 4. Replay.
        p = run(["tcpreplay", "-i", tap, "--pps", str(pps), *captures], timeout=600)
        sent = failed = None
        for line in p.stdout.splitlines():
            line = line.strip()
            if line.startswith("Successful packets:"):
                sent = int(line.split(":")[1])
            elif line.startswith("Failed packets:"):
                failed = int(line.split(":")[1])
        if p.returncode != 0 or failed != 0 or sent is None:
            fail(f"tcpreplay exited {p.returncode}, sent {sent}, failed {failed}: {p.stderr.strip()[-400:]}")
        log(f"tcpreplay: {sent} packets at {pps} packets/s")
        if sent != n_packets:
            log(f"note: the captures hold {sent} frames, the host's records count {n_packets} packets "
                f"(frames the tap rejects as malformed are in no record)")

        # 5. Power off; the tap flushes every flow on SIGTERM.
        qmp.command("system_powerdown")
        try:
            qemu.wait(timeout=180 if kvm else 600)
        except subprocess.TimeoutExpired:
            print(console_tail(console))
            fail("the VM did not power off after an ACPI power-down")
        if qemu.returncode != 0:
            print(console_tail(console))
            fail(f"qemu ended with status {qemu.returncode}, not by the guest's power-off")
        qemu = None
        log("the appliance powered off")

        # 6. The appliance's records, from its disk.
        p = run(["losetup", "-r", "-o", str(2048 * 512), "--show", "-f", disk], timeout=30)
        if p.returncode != 0:
            fail(f"losetup: {p.stderr.strip()}")
        loop = p.stdout.strip()
        p = run(["debugfs", "-R", "cat /var/log/dpdk-millipede/tap0.flows.json", loop], timeout=60)
        appliance = read_records(p.stdout, "the appliance's records")
        if not appliance:
            print(console_tail(console))
            fail(f"no records in the appliance's /var/log/dpdk-millipede/tap0.flows.json ({p.stderr.strip()[-300:]})")
    finally:
        if qemu is not None and qemu.poll() is None:
            qemu.kill()
            qemu.wait(timeout=30)
        subprocess.run(["ip", "link", "del", tap], capture_output=True, timeout=30)
        if loop:
            subprocess.run(["losetup", "-d", loop], timeout=30)

    stats = [l for l in open(console, errors="replace").read().splitlines() if "tap: " in l and " pkts" in l]
    if stats:
        log(f"the appliance's last stats line: {stats[-1].strip()[-300:]}")
    got = collections.Counter((record_key(r), record_value(r)) for r in appliance)
    missing = expected - got
    extra = got - expected
    for (k, v), n in list(missing.items())[:10]:
        print(f"only on the host: {k} packets/bytes c2s {v[0]}/{v[1]} s2c {v[2]}/{v[3]} l7 {v[4]} (x{n})")
    for (k, v), n in list(extra.items())[:10]:
        print(f"only on the appliance: {k} packets/bytes c2s {v[0]}/{v[1]} s2c {v[2]}/{v[3]} l7 {v[4]} (x{n})")
    if missing or extra:
        fail(f"{sum(missing.values())} of {sum(expected.values())} host records not on the appliance, "
             f"{sum(extra.values())} appliance records not on the host")
    os.unlink(disk)
    print(f"PASS: the appliance ({'KVM' if kvm else 'TCG'}) recorded the same {sum(got.values())} flows as the host "
          f"binary ({n_packets} packets, {len(captures)} captures), each with equal packets, bytes and nDPI "
          f"protocol; {time.monotonic() - t0:.0f} s in all")


main()
