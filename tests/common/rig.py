"""What tests/transport and tests/interop share: output and checks, input
files and their digests, and veth ends that behave like a wire.

Imported by putting this folder on sys.path (the scripts run as
`python3 tests/<suite>/<script>.py ...`, from meson or by hand)."""
import hashlib
import os
import subprocess
import sys
import tempfile

FAILS = []  # what failed, in order; the script's exit status is 1 when not empty


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def skip(why):
    """Exit 77 (meson's skip): only for what this machine cannot do."""
    log(f"SKIP: {why}")
    sys.exit(77)


def check(cond, what, *details):
    """One line per check; the details follow a failure, indented."""
    if cond:
        log(f"ok   {what}")
    else:
        log(f"FAIL {what}")
        for d in details:
            log("     " + str(d).strip().replace("\n", "\n     "))
        FAILS.append(what)
    return cond


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def same_file(a, b):
    return os.path.getsize(a) == os.path.getsize(b) and sha(a) == sha(b)


def random_file(n, prefix="mpin", dir=None):
    """n random bytes in a new file (the caller removes it)."""
    fd, path = tempfile.mkstemp(prefix=prefix, dir=dir)
    with os.fdopen(fd, "wb") as f:
        left = n
        while left:
            k = min(left, 1 << 20)
            f.write(os.urandom(k))
            left -= k
    return path


def quiet_iface(ns, dev):
    """No IPv6 chatter, no offloads: the kernel hands frames over one by one
    as a wire would (no GRO/GSO merging) and computes every checksum itself
    (so captures can verify them)."""
    nx = ["ip", "netns", "exec", ns]
    subprocess.run(nx + ["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], capture_output=True)
    subprocess.run(nx + ["ethtool", "-K", dev, "gro", "off", "gso", "off", "tso", "off", "tx", "off", "rx", "off"],
                   capture_output=True)


def wait_until(cond, deadline_s, poll_s=0.02):
    """Polls cond() until it returns a true value or deadline_s seconds
    passed; returns that value (or the last false one). The poll interval
    only spaces the checks: the wait ends on the condition, not on a clock."""
    import time
    end = time.monotonic() + deadline_s
    while True:
        v = cond()
        if v or time.monotonic() >= end:
            return v
        time.sleep(poll_s)


def wait_for(what, cond, timeout, poll_s=0.01):
    """Like wait_until, but a wait that runs out raises TimeoutError naming
    `what`, for tests where the wait itself is the failure."""
    v = wait_until(cond, timeout, poll_s)
    if not v:
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
    return v


def telemetry_at(path, cmd, timeout=5):
    """One command on the DPDK telemetry socket at `path`; the parsed value
    of its reply."""
    import json
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(timeout)
        s.connect(path)
        json.loads(s.recv(1 << 16))  # the greeting
        s.send(cmd.encode())
        return json.loads(s.recv(1 << 20))[cmd.split(",")[0]]


def telemetry(prefix, cmd, timeout=5):
    """One command on a DPDK process's telemetry socket (--file-prefix
    `prefix`); the parsed value of its reply."""
    return telemetry_at(f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2", cmd, timeout)


def sanitizer_reports(err):
    """The lines of an AddressSanitizer / UndefinedBehaviorSanitizer report
    in a process's stderr (empty when clean, and always with a release build)."""
    keys = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")
    return [l for l in err.splitlines() if any(k in l for k in keys)]


def system_texts():
    """The system's licence and documentation texts (plain-text files only,
    at most 1 MiB of each, in a fixed order): compressible input that every
    Debian host has (base-files installs /usr/share/common-licenses)."""
    texts = []
    for root in ("/usr/share/common-licenses", "/usr/share/doc"):
        for d, _, files in sorted(os.walk(root)):
            for f in sorted(files):
                fp = os.path.join(d, f)
                if os.path.islink(fp) or f.endswith(".gz") or not os.path.isfile(fp):
                    continue
                with open(fp, "rb") as fh:
                    b = fh.read(1 << 20)
                if b and b"\0" not in b:
                    texts.append(b)
    return texts


def write_repeated(out, blob, size):
    """Writes `blob` repeated (the last copy cut) up to `size` bytes."""
    left = size
    while left > 0:
        out.write(blob[:left])
        left -= min(left, len(blob))
