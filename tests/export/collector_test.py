#!/usr/bin/env python3
"""Tap's flow export read back by programs that collect it for a living.

IPFIX: Debian's nfcapd (nfdump 1.7) listens on a loopback UDP port; every
capture of the shared folder goes through `dpdk-millipede tap` with
`--flows-out -` (tap's JSON records) and `--ipfix 127.0.0.1:PORT`, each run
its own observation domain. nfcapd is then stopped (it closes its file) and
`nfdump -r FILE -o json` lists what it stored. Each JSON record must come back
as its uniflows (tap's default shape): the initiator's record, and the
responder's with source and destination swapped when it sent anything,
with the same protocol, addresses, ports (ICMP: type and code), first and
last time in milliseconds, packets, IP bytes and TCP flags. Compared as
multisets over the whole run, so a missing, extra or altered record fails,
and the summaries must report every record sent and none dropped.

eve.json: the same captures with `--flows-format eve`; every line is a
Suricata flow event (event_type "flow", flow_id, src_ip, src_port, dest_ip,
dest_port, proto, app_proto, flow.pkts_toserver/pkts_toclient/
bytes_toserver/bytes_toclient/start/end/state/reason, community_id, tcp
flags) of the right JSON type, and the events equal the JSON records of the
first run, field by field.

A full sink: a run whose collector socket cannot take the messages (a
datagram socket pair would need a test hook, so: a very small record ring,
--record-ring 64, against a capture with more flows) must end normally and
count what it dropped instead of stalling a worker; and a collector port
nobody listens on is counted as refused, never an error exit.

usage: collector_test.py DPDK_MILLIPEDE PCAPS_DIR
Exit 1 when the shared captures or nfdump are missing, or on any failure.
"""
import collections
import decimal
import glob
import ipaddress
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from rig import FAILS, check, log, telemetry, wait_until  # noqa: E402

SURICATA_PROTO = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 51: "AH", 58: "IPv6-ICMP",
                  132: "SCTP"}


# Suricata 7's app-layer protocol names (`suricata --list-app-layer-protos`).
SURICATA_APP_LAYERS = {"http", "http2", "ftp", "ftp-data", "smtp", "tls", "ssh", "imap", "pop3", "smb", "dcerpc",
                       "dns", "modbus", "enip", "dnp3", "nfs", "ntp", "tftp", "ike", "krb5", "dhcp", "snmp", "sip",
                       "rfb", "mqtt", "pgsql", "telnet", "rdp", "quic", "bittorrent-dht", "irc", "ldap"}


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_listening(port):
    """True when a socket is bound to UDP `port` (from /proc/net/udp)."""
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            local = line.split()[1]
            if int(local.split(":")[1], 16) == port:
                return True
    return False


def run_tap(app, capture, tag, extra):
    cmd = [app, "--no-huge", "--no-pci", "-m", "512", "--log-level=lib.eal:error", "--file-prefix",
           f"export_{os.getpid()}_{tag}", "-l", "0", "--vdev", f"net_pcap0,rx_pcap={capture}", "--",
           "tap", "--flows-out", "-"] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{os.path.basename(capture)}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    return p.stdout


def summary_of(path):
    with open(path) as f:
        return json.load(f)


def ms(seconds_text):
    """tap's "first_seen": seconds with six decimals, as exact milliseconds."""
    return int(decimal.Decimal(seconds_text) * 1000)


def expected_uniflows(rec):
    """The uniflow records nfdump must hold for one tap JSON record."""
    proto = rec["ip_proto"]
    icmp = proto in (1, 58)
    first, last = ms(rec["first_seen"]), ms(rec["last_seen"])
    src, dst = str(ipaddress.ip_address(rec["src"])), str(ipaddress.ip_address(rec["dst"]))
    if icmp:  # nfdump shows type.code as the destination "port", none as the source
        ports = (0, rec["icmp_type"] * 256 + rec["icmp_code"])
        rports = ports
    else:
        ports = (rec["sport"], rec["dport"])
        rports = (rec["dport"], rec["sport"])
    flags = (rec.get("c2s_tcp_flags", 0), rec.get("s2c_tcp_flags", 0))
    out = [(proto, src, ports[0], dst, ports[1], first, last, rec["c2s_packets"], rec["c2s_ip_bytes"], flags[0])]
    if rec["s2c_packets"]:
        out.append((proto, dst, rports[0], src, rports[1], first, last, rec["s2c_packets"], rec["s2c_ip_bytes"],
                    flags[1]))
    return out


def nfdump_records(folder):
    """Every record nfcapd stored, as `nfdump -o json` prints them (times in UTC)."""
    files = sorted(f for f in glob.glob(os.path.join(folder, "nfcapd.*")) if "current" not in f)
    if not files:
        raise RuntimeError(f"nfcapd left no file in {folder}: {os.listdir(folder)}")
    out = []
    env = dict(os.environ, TZ="UTC")
    for path in files:
        p = subprocess.run(["nfdump", "-r", path, "-o", "json"], capture_output=True, text=True, timeout=120,
                           check=True, env=env)
        out += json.loads(p.stdout)
    return [r for r in out if r.get("type") == "FLOW"]


TCP_FLAG_LETTERS = {"C": 0x80, "E": 0x40, "U": 0x20, "A": 0x10, "P": 0x08, "R": 0x04, "S": 0x02, "F": 0x01}


def tcp_flags(text):
    """nfdump's "CEUAPRSF" string, a dot for each flag not set, as bits."""
    bits = 0
    for ch in text:
        bits |= TCP_FLAG_LETTERS.get(ch, 0)
    return bits


def nf_key(d):
    """One nfdump record in the terms of expected_uniflows()."""
    src = d.get("src4_addr") or d.get("src6_addr")
    dst = d.get("dst4_addr") or d.get("dst6_addr")
    icmp = d["proto"] in (1, 58)
    if icmp:
        ports = (0, d["icmp_type"] * 256 + d["icmp_code"]) if "icmp_type" in d else (d["src_port"], d["dst_port"])
    else:
        ports = (d["src_port"], d["dst_port"])
    return (d["proto"], str(ipaddress.ip_address(src)), ports[0], str(ipaddress.ip_address(dst)), ports[1],
            d["first"], d["last"], d["in_packets"], d["in_bytes"], tcp_flags(d.get("tcp_flags", "")))


def nf_time(ms_value):
    import datetime
    t = datetime.datetime.fromtimestamp(ms_value // 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms_value % 1000:03d}"


def nfdump_terms(u):
    """An expected uniflow with its times as nfdump prints them."""
    proto, src, sp, dst, dp, first, last, pkts, byts, flags = u
    return (proto, src, sp, dst, dp, nf_time(first), nf_time(last), pkts, byts, flags)


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    total = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff


def write_icmp_capture(path):
    """ICMP and ICMPv6 echo exchanges (the shared captures hold none): a
    classic pcap written here, checksums right, 10 ms between packets."""
    mac_a, mac_b = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    frames = []
    for seq in range(3):
        for req in (True, False):
            a, b = (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
            src, dst = (a, b) if req else (b, a)
            icmp = struct.pack("!BBHHH", 8 if req else 0, 0, 0, 0x1234, seq) + b"millipede" * 4
            icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
            frames.append(((mac_b, mac_a) if req else (mac_a, mac_b), 0x0800, ip + icmp))
    for seq in range(2):
        for req in (True, False):
            a, b = ipaddress.ip_address("2001:db8::1").packed, ipaddress.ip_address("2001:db8::2").packed
            src, dst = (a, b) if req else (b, a)
            icmp = struct.pack("!BBHHH", 128 if req else 129, 0, 0, 0x4321, seq) + b"tap" * 8
            pseudo = src + dst + struct.pack("!I3xB", len(icmp), 58)
            icmp = icmp[:2] + struct.pack("!H", checksum(pseudo + icmp)) + icmp[4:]
            ip = struct.pack("!IHBB16s16s", 6 << 28, len(icmp), 58, 64, src, dst)
            frames.append(((mac_b, mac_a) if req else (mac_a, mac_b), 0x86dd, ip + icmp))
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, ((dmac, smac), etype, payload) in enumerate(frames):
            frame = dmac + smac + struct.pack("!H", etype) + payload
            t_us = 1_700_000_000_000_000 + i * 10_000
            f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)) + frame)


def check_ipfix(app, captures, tmp):
    port = free_udp_port()
    store = os.path.join(tmp, "nfcapd")
    os.mkdir(store)
    # -B: a collector sized for bursts, as nfcapd(1) advises for busy
    # exporters. tap exports a capture's records in one burst at its end;
    # with the kernel's default 208 KiB receive buffer and nfcapd waiting
    # for a CPU (CI on 2 cores), one run lost 504 of 2363 records there
    # (nfdump: "Sequence Errors: 1"), which is the collector's socket, not
    # the exporter (tap's summaries counted every message sent).
    nfcapd = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", store, "-t", "3600",
                               "-B", str(4 << 20)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    json_records = []
    sent = 0
    try:
        if not check(wait_until(lambda: udp_listening(port) or nfcapd.poll() is not None, 10) and
                     nfcapd.poll() is None, f"nfcapd listens on 127.0.0.1:{port}"):
            return []
        for i, cap in enumerate(captures):
            summary_path = os.path.join(tmp, f"ipfix{i}.json")
            out = run_tap(app, cap, f"ipfix{i}", ["--ipfix", f"127.0.0.1:{port}", "--ipfix-domain", str(i + 1),
                                                 "--summary", summary_path])
            recs = [json.loads(l, parse_float=decimal.Decimal) for l in out.splitlines() if l.startswith("{")]
            s = summary_of(summary_path)
            x = s["export"]["ipfix"]
            want = sum(len(expected_uniflows(r)) for r in recs)
            check(x["records"] == want and x["dropped_records"] == 0 and x["dropped_messages"] == 0 and
                  x["refused"] == 0 and x["shape"] == "uniflow" and x["domain"] == i + 1,
                  f"{os.path.basename(cap)}: {len(recs)} flows sent as {x['records']} IPFIX records in "
                  f"{x['messages']} messages, none dropped", x)
            sent += x["records"]
            json_records += recs
    finally:
        # SIGTERM: nfcapd writes its buffers, closes and renames its file.
        nfcapd.send_signal(signal.SIGTERM)
        try:
            log_text = nfcapd.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            nfcapd.kill()
            log_text = nfcapd.communicate()[0]
    rows = nfdump_records(store)
    check(len(rows) == sent, f"nfdump lists {len(rows)} records, tap sent {sent}", log_text[-2000:])
    got = collections.Counter(nf_key(d) for d in rows)
    want = collections.Counter()
    for r in json_records:
        for u in expected_uniflows(r):
            want[nfdump_terms(u)] += 1
    kinds = collections.Counter((r["ip_proto"], ":" in r["src"]) for r in json_records)
    check(all(kinds[k] for k in ((6, False), (17, False), (6, True), (17, True), (1, False), (58, True))),
          "the records cover TCP and UDP over IPv4 and IPv6, and ICMP: " +
          ", ".join(f"{p}/{'v6' if v6 else 'v4'}: {n}" for (p, v6), n in sorted(kinds.items())))
    missing, extra = want - got, got - want
    check(not missing and not extra, f"nfdump's {sum(got.values())} records equal the {sum(want.values())} "
          f"uniflows of tap's {len(json_records)} JSON records",
          "missing (from the JSON records): " + "\n".join(map(str, list(missing.items())[:8])),
          "extra (nfdump only): " + "\n".join(map(str, list(extra.items())[:8])))
    return json_records


def check_eve(app, captures, json_records):
    by_key = collections.defaultdict(list)
    for r in json_records:
        by_key[(r["community_id"], r["first_seen"])].append(r)
    events = 0
    bad = []
    ids = set()
    for i, cap in enumerate(captures):
        out = run_tap(app, cap, f"eve{i}", ["--flows-format", "eve"])
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            e = json.loads(line, parse_float=decimal.Decimal)
            events += 1
            problems = eve_problems(e)
            start = e["flow"]["start"]
            # The JSON record of the same flow: same Community ID, same start (to the microsecond).
            cands = [r for (cid, first), rs in by_key.items() if cid == e.get("community_id")
                     for r in rs if eve_time(first) == start]
            if len(cands) != 1:
                problems.append(f"{len(cands)} JSON records match it")
            else:
                problems += eve_vs_record(e, cands[0])
            ids.add(e.get("flow_id"))
            if problems:
                bad.append((os.path.basename(cap), problems, line.strip()[:300]))
    check(events == len(json_records), f"{events} eve flow events for {len(json_records)} JSON records")
    check(not bad, f"every eve event has Suricata's fields and types and equals its JSON record",
          *[f"{c}: {p}\n{l}" for c, p, l in bad[:6]])
    check(len(ids) == events, f"{len(ids)} distinct flow_id values among {events} events")


def eve_time(first_seen):
    import datetime
    d = decimal.Decimal(first_seen)
    secs = int(d)
    usec = int((d - secs) * 1000000)
    t = datetime.datetime.fromtimestamp(secs, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{usec:06d}+0000"


def eve_problems(e):
    """Suricata's eve.json flow event: field names and JSON types a SIEM reads."""
    p = []

    def need(obj, key, types, where=""):
        if key not in obj:
            p.append(f"no {where}{key}")
        elif not isinstance(obj[key], types) or isinstance(obj[key], bool) and bool not in (types if isinstance(
                types, tuple) else (types,)):
            p.append(f"{where}{key} is {type(obj[key]).__name__}")
    for k, t in (("timestamp", str), ("flow_id", int), ("event_type", str), ("src_ip", str), ("dest_ip", str),
                 ("proto", str), ("flow", dict), ("community_id", str)):
        need(e, k, t)
    if p:
        return p
    if e["event_type"] != "flow":
        p.append(f"event_type {e['event_type']}")
    if not 0 < e["flow_id"] < 2 ** 53:
        p.append("flow_id out of a JSON reader's exact range")
    f = e["flow"]
    for k in ("pkts_toserver", "pkts_toclient", "bytes_toserver", "bytes_toclient", "age"):
        need(f, k, int, "flow.")
    for k in ("start", "end", "state", "reason"):
        need(f, k, str, "flow.")
    need(f, "alerted", bool, "flow.")
    if e["proto"] in ("TCP", "UDP", "SCTP"):
        need(e, "src_port", int)
        need(e, "dest_port", int)
    if e["proto"] in ("ICMP", "IPv6-ICMP"):
        need(e, "icmp_type", int)
        need(e, "icmp_code", int)
    if e["proto"] == "TCP":
        need(e, "tcp", dict)
        if "tcp" in e:
            for k in ("tcp_flags", "tcp_flags_ts", "tcp_flags_tc"):
                need(e["tcp"], k, str, "tcp.")
    need(e, "app_proto", str)
    return p


def eve_vs_record(e, r):
    p = []
    f = e["flow"]
    pairs = [(e["src_ip"], str(ipaddress.ip_address(r["src"]))), (e["dest_ip"], str(ipaddress.ip_address(r["dst"]))),
             (e["proto"], SURICATA_PROTO.get(r["ip_proto"], str(r["ip_proto"]))),
             (f["pkts_toserver"], r["c2s_packets"]), (f["pkts_toclient"], r["s2c_packets"]),
             (f["bytes_toserver"], r["c2s_bytes"]), (f["bytes_toclient"], r["s2c_bytes"]),
             (f["start"], eve_time(r["first_seen"])), (f["end"], eve_time(r["last_seen"])),
             (e["timestamp"], eve_time(r["last_seen"]))]
    if "src_port" in e:
        pairs += [(e["src_port"], r["sport"]), (e["dest_port"], r["dport"])]
    if "icmp_type" in e:
        pairs += [(e["icmp_type"], r["icmp_type"]), (e["icmp_code"], r["icmp_code"])]
    if "ndpi" in e:
        pairs += [(e["ndpi"]["l7"], r["l7"]), (e["ndpi"]["master"], r["l7_master"]), (e["ndpi"]["app"], r["l7_app"]),
                  (e["ndpi"]["guessed"], r["l7_guessed"])]
    # app_proto: Suricata's app-layer name for the protocol when Suricata has
    # one, else nDPI's name in lower case; "failed" when nDPI named nothing.
    names = {n.lower() for n in (r["l7_master"], r["l7_app"]) if n != "Unknown"}
    if not names:
        pairs.append((e["app_proto"], "failed"))
    elif e["app_proto"] not in names | SURICATA_APP_LAYERS:
        p.append(f"app_proto {e['app_proto']!r} is neither Suricata's nor nDPI's name for {sorted(names)}")
    for got, want in pairs:
        if got != want:
            p.append(f"{got!r} != {want!r}")
    return p


def check_sinks(app, captures, tmp):
    """A collector nobody listens on, and a record ring too small: counted, never a stall or an error exit."""
    # The capture with the most flows (a port scan): a ring of 64 records
    # overflows when the writer thread is not scheduled in time.
    cap = next((c for c in captures if os.path.basename(c) == "synscan.pcap"), max(captures, key=os.path.getsize))
    port = free_udp_port()  # nothing bound: the kernel answers port unreachable
    summary_path = os.path.join(tmp, "refused.json")
    out = run_tap(app, cap, "refused", ["--ipfix", f"127.0.0.1:{port}", "--summary", summary_path])
    s = summary_of(summary_path)
    x = s["export"]["ipfix"]
    recs = [l for l in out.splitlines() if l.startswith("{")]
    check(x["refused"] > 0 and x["records"] + x["dropped_records"] > 0 and s["records"]["written"] == len(recs),
          f"nobody listening at :{port}: {x['refused']} refusals counted, the run ended normally", x)
    summary_path = os.path.join(tmp, "small_ring.json")
    run_tap(app, cap, "smallring", ["--record-ring", "64", "--summary", summary_path, "--ipfix",
                                    f"127.0.0.1:{port}"])
    s = summary_of(summary_path)
    r = s["records"]
    check(r["written"] + r["dropped"] == r["flows_ended"],
          f"record ring of 64: {r['written']} written + {r['dropped']} dropped = {r['flows_ended']} flows ended", r)


def check_telemetry(app, folder):
    """/millipede/tap/export answers while tap runs (a looped capture)."""
    port = free_udp_port()
    prefix = f"export_{os.getpid()}_tel"
    cmd = [app, "--no-huge", "--no-pci", "-m", "512", "--log-level=lib.eal:error", "--file-prefix", prefix, "-l", "0",
           "--vdev", f"net_pcap0,rx_pcap={os.path.join(folder, 'ftp.pcap')},infinite_rx=1", "--",
           "tap", "--duration", "60", "--ipfix", f"127.0.0.1:{port}"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = []
    try:
        def exported():
            if p.poll() is not None:
                raise RuntimeError(f"tap exited early: {p.returncode}: {p.stderr.read()[-500:]}")
            try:
                t = telemetry(prefix, "/millipede/tap/export")
            except (OSError, ValueError) as e:
                last.append(repr(e))
                return None
            last.append(t)
            return t if t and t.get("ipfix_records", 0) + t.get("ipfix_dropped_records", 0) > 0 else None
        t = wait_until(exported, 30, 0.2)
        check(t and t["ipfix_enabled"] == 1 and t["ipfix_collector"] == f"127.0.0.1:{port}" and
              t["records_written"] > 0 and "ipfix_refused" in t,
              "/millipede/tap/export reports the collector, records and refusals while tap runs", t, last[-3:])
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    check(p.returncode == 0, f"tap ends normally on SIGTERM: {p.returncode}")


def check_options(app):
    for args, text in ((["--ipfix"], "--ipfix needs HOST:PORT"), (["--ipfix", "collector"], "HOST:PORT"),
                       (["--ipfix", "127.0.0.1:0"], "port from 1 to 65535"),
                       (["--ipfix", "no-such-host.invalid:4739"], "cannot resolve no-such-host.invalid"),
                       (["--flows-format", "xml"], "--flows-format needs json or eve"),
                       (["--flows-format", "eve"], "--flows-format needs --flows-out"),
                       (["--ipfix-domain", "x"], "--ipfix-domain"), (["--ipfix-pen", "0"], "--ipfix-pen"),
                       (["--ipfix-template-interval", "0.5"], "--ipfix-template-interval")):
        p = subprocess.run([app, "--no-such-eal-option", "--", "tap"] + args, capture_output=True, text=True,
                           timeout=60)
        lines = p.stderr.splitlines()
        check(p.returncode == 2 and len(lines) == 1 and text in lines[0],
              f"`tap {' '.join(args)}`: status 2 before EAL, one line with {text!r}", p.returncode, lines)
    h = subprocess.run([app, "--", "tap", "--help"], capture_output=True, text=True, timeout=60).stdout
    for opt in ("--flows-format", "--ipfix ", "--ipfix-biflow", "--ipfix-domain", "--ipfix-pen",
                "--ipfix-template-interval"):
        check(opt in h, f"tap --help documents {opt.strip()}")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    app, folder = sys.argv[1], sys.argv[2]
    # The captures ship with the project and tools/test.sh installs nfdump:
    # either missing is a broken set-up to report, not a reason to pass
    # without the real collector.
    check(os.path.isdir(folder), f"the shared captures are at {folder}")
    for tool in ("nfcapd", "nfdump"):
        check(bool(shutil.which(tool)), f"{tool} is installed (Debian package nfdump; tools/test.sh installs it)")
    if FAILS:
        return 1
    # The well-formed captures (the fuzz ones add no kind of flow the others
    # lack), and one of ICMP echoes written here.
    captures = sorted(p for p in glob.glob(os.path.join(folder, "*.pcap*")) if "fuzz" not in os.path.basename(p))
    check_options(app)
    with tempfile.TemporaryDirectory() as tmp:
        icmp = os.path.join(tmp, "icmp_echo.pcap")
        write_icmp_capture(icmp)
        captures.append(icmp)
        records = check_ipfix(app, captures, tmp)
        if records:
            check_eve(app, captures, records)
        check_sinks(app, captures, tmp)
    check_telemetry(app, folder)
    if FAILS:
        log(f"{len(FAILS)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
