#!/usr/bin/env python3
"""tests/interop/kernel_peer.py: a viamillipede / millipede-native peer made of
plain Linux kernel sockets (Python 3 standard library only).

It needs no part of dpdk-millipede: the viamillipede format is implemented
from ../shared/DESIGN.md section 4 (and docs/wire.md section 3), the native
format only from docs/wire.md section 2, with CRC32C and CRC-64/XZ computed
here from their definitions (docs/wire.md section 1).

  kernel_peer.py send --codec viamillipede|native --to ADDR:PORT [--to ...]
                      --conns N --input FILE [--chunk BYTES] [options]
  kernel_peer.py recv --codec viamillipede|native --listen ADDR:PORT
                      --output FILE [options]

Faults, on one connection, deterministic: --break fin|rst --break-chunk S
--break-at P ends the connection that carries chunk S after P of its payload
bytes (send: after writing them; recv: after reading them) with a FIN
(shutdown, then draining until the peer closes) or a RST (SO_LINGER 0).
The chunk's partial payload is discarded by a receiver. A sender with
--resend then sends chunk S again on a fresh connection (viamillipede's own
retry: a worker reconnects and re-sends its buffer; native: every
unacknowledged chunk of the dead connection is re-queued on the others).

Stock viamillipede's behaviours on the wire (docs/interop.md):
--layout 2018|0.89 is the header's opcode field: v0.6 to v0.81 declare it a C
int followed by 4 bytes of struct padding that may hold stack garbage (send:
garbage there; recv: only the int is compared), v0.89 a u_long (send: zero
padding; recv: all 8 bytes compared, so non-zero padding is an error).
recv --exit-after-end exits the process as soon as the end record is written,
as stock rx does: the kernel closes every connection (FIN, or RST where
unread data is left) and the port. --end-ack quick|delayed sets TCP_QUICKACK
around every read, so that the kernel's ACK of the end header leaves at once
(before the FIN) or waits for the delayed-ACK timer (and rides in the FIN).
--reset-fatal ends the receiver (exit 1) on a connection reset, as stock rx
does (v0.89 exits, the 2018 versions assert).

Every wait is bounded: sockets time out after --io-timeout seconds and the
whole run is killed (exit 3) after --timeout seconds.
Prints one line "PEER {json summary}" on stdout; exit 0 on success, 1 on a
protocol or transfer failure, 3 on timeout.
"""
import argparse
import ipaddress
import fcntl
import json
import os
import queue
import random
import socket
import struct
import sys
import termios
import threading
import time

# --------------------------------------------------------------------------
# Checksums, from their definitions (docs/wire.md section 1).


def _reflected_table(poly_reflected):
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly_reflected if c & 1 else c >> 1
        t.append(c)
    return t


# Castagnoli 0x1EDC6F41, reflected = 0x82F63B78.
CRC32C_TABLE = _reflected_table(0x82F63B78)
# ECMA-182 0x42F0E1EBA9EA3693, reflected = 0xC96C5795D7870F42.
CRC64_TABLE = _reflected_table(0xC96C5795D7870F42)


def _crc_update(table, mask, crc, data):
    """Reflected table-driven CRC without pre/post inversion."""
    t = table
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc & mask


def crc32c(data, prev=0):
    """CRC32C of data, continuing from a previous final value."""
    return _crc_update(CRC32C_TABLE, 0xFFFFFFFF, prev ^ 0xFFFFFFFF, data) ^ 0xFFFFFFFF


def crc64xz(data, prev=0):
    """CRC-64/XZ, continuing from a previous final value (0 for an empty stream)."""
    m = 0xFFFFFFFFFFFFFFFF
    return _crc_update(CRC64_TABLE, m, prev ^ m, data) ^ m


assert crc32c(b"123456789") == 0xE3069283
assert crc64xz(b"123456789") == 0x995DC9BBDF1939FA
assert crc64xz(b"") == 0


def viamillipede_mix(seed, data):
    """viamillipede's mix() (docs/wire.md 3.1): acc is 32-bit and adds the
    first 8-byte word (zero-padded here) plus the cursor on every pass."""
    first = int.from_bytes(bytes(data[:8]).ljust(8, b"\0"), "little")
    acc = seed & 0xFFFFFFFF
    size = len(data)
    n = size // 8 + 1  # cursor = 0, 8, ... <= size
    acc = (acc + n * first + 8 * (n * (n - 1) // 2)) & 0xFFFFFFFF
    return acc


# --------------------------------------------------------------------------
# Common plumbing.

T0 = time.monotonic()
LOCK = threading.RLock()  # (re-entrant: exit_after_end logs with it held)
EVENTS = []  # human-readable events, also in the summary


def log(msg):
    line = f"kernel_peer +{time.monotonic() - T0:.3f}s: {msg}"
    with LOCK:
        EVENTS.append(line.split(": ", 1)[1])
    print(line, file=sys.stderr, flush=True)


def finish(rc, **summary):
    summary["rc"] = rc
    summary["seconds"] = round(time.monotonic() - T0, 3)
    summary["events"] = EVENTS[-40:]
    sys.stdout.write("PEER " + json.dumps(summary) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def watchdog(limit):
    def run():
        time.sleep(limit)
        log(f"timeout: still running after {limit} s, giving up")
        finish(3, error=f"timeout after {limit} s")

    threading.Thread(target=run, daemon=True).start()


class Closed(Exception):
    """The peer closed cleanly at a record boundary."""


class Broken(Exception):
    """The connection failed (reset, EOF inside a record, timeout)."""


def recv_exact(sock, n, boundary_ok=False):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:], n - got)
        except (ConnectionError, socket.timeout, OSError) as e:
            raise Broken(f"{type(e).__name__}: {e}") from None
        if k == 0:
            if got == 0 and boundary_ok:
                raise Closed()
            raise Broken(f"EOF after {got} of {n} bytes")
        got += k
    return bytes(buf)


def parse_hostport(s):
    """ADDR:PORT; an IPv6 ADDR as it is (the last ':' ends it) or in []."""
    h, p = s.rsplit(":", 1)
    return h.strip("[]"), int(p)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def break_fin(sock, why):
    """FIN (orderly half-close), then drain until the other side closes."""
    log(f"{why}: closing with FIN")
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        while sock.recv(65536):
            pass
        log(f"{why}: the other side closed too")
    except OSError as e:
        log(f"{why}: after our FIN: {type(e).__name__}: {e}")
    sock.close()


def wait_acked(sock, limit=10.0):
    """Until the kernel's send queue is empty (every byte written was
    acknowledged): an abort (RST) discards unsent data, and a viamillipede
    sender, which has no acknowledgements, could not know what it lost."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0] == 0:
            return True
        time.sleep(0.002)
    return False


def break_rst(sock, why):
    log(f"{why}: aborting with RST (SO_LINGER 0)")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def wait_eof(sock, limit):
    """After our FIN: read until the other side's FIN (True) or error/timeout."""
    try:
        sock.settimeout(limit)
        while True:
            b = sock.recv(65536)
            if not b:
                return "fin"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return type(e).__name__


# --------------------------------------------------------------------------
# viamillipede format (DESIGN.md section 4; docs/wire.md section 3).

VM_PREAMBLE = 0xA5A5A5A55A5A5A5A
VM_DATA, VM_END = 0xCAFE, 0xDEAD
VM_HDR = struct.Struct("<5Q")
VM_HDR_2018 = struct.Struct("<4QI4s")  # v0.6-v0.81: int opcode, then 4 bytes of struct padding
VM_MAX = 2 * 1024 * 1024
# What a 2018-era sender leaves in the padding: stack garbage (the first as
# captured from v0.6 on Linux, the second as issue 12 reports it).
VM_GARBAGE = (b"\xff\x7f\x00\x00", b"\xfd\x7f\x00\x00", b"\xff\xff\xff\xff", b"\x10\x32\x54\x76")


def vm_header(a, seq, size, cks, op):
    """A header in --layout's form."""
    if a.layout == "2018":
        return VM_HDR_2018.pack(VM_PREAMBLE, seq, size, cks, op, VM_GARBAGE[seq % len(VM_GARBAGE)])
    return VM_HDR.pack(VM_PREAMBLE, seq, size, cks, op)


def vm_parse(a, h):
    """(preamble, seq, size, checksum, opcode, padding) as --layout's receiver reads them."""
    pre, seq, size, cks, field = VM_HDR.unpack(h)
    if a.layout == "2018":
        return pre, seq, size, cks, field & 0xFFFFFFFF, field >> 32
    return pre, seq, size, cks, field, field >> 32


def chunks_of(data, size):
    return [(i, o, min(size, len(data) - o)) for i, o in enumerate(range(0, len(data), size))]


def vm_send(a, data):
    chunks = chunks_of(data, a.chunk)
    sums = {}
    if a.checksum:
        saved = 0xFF
        for seq, off, ln in chunks:
            saved = sums[seq] = viamillipede_mix(saved + seq, data[off:off + ln])
    nxt = [0]
    broke = [False]
    conns_made = [0]
    failures = []
    socks = []

    def connect(idx):
        host, port = a.to[idx % len(a.to)]
        s = socket.create_connection((host, port), timeout=a.io_timeout)
        s.settimeout(a.io_timeout)
        s.sendall(a.checkphrase.encode())
        ok = recv_exact(s, 2)
        if ok != b"ok":
            raise Broken(f"receiver answered {ok!r} instead of 'ok'")
        with LOCK:
            conns_made[0] += 1
            socks.append(s)
        return s

    def send_chunk(s, seq, off, ln, part=None):
        hdr = vm_header(a, seq, ln, sums.get(seq, 0), VM_DATA)
        payload = memoryview(data)[off:off + (ln if part is None else part)]
        s.sendall(hdr)
        if len(payload):
            s.sendall(payload)

    def worker(idx):
        try:
            s = connect(idx)
            while True:
                with LOCK:
                    if nxt[0] >= len(chunks):
                        break
                    seq, off, ln = chunks[nxt[0]]
                    nxt[0] += 1
                if a.break_kind and seq == a.break_chunk and not broke[0]:
                    broke[0] = True
                    part = min(a.break_at, ln)
                    send_chunk(s, seq, off, ln, part)
                    wait_acked(s)  # the receiver has every byte up to the cut
                    why = f"connection {idx}: chunk {seq} broken after {part} of {ln} payload bytes"
                    (break_fin if a.break_kind == "fin" else break_rst)(s, why)
                    with LOCK:
                        socks.remove(s)
                    if not a.resend:
                        log(f"connection {idx}: not re-sending chunk {seq} (no --resend); this worker stops")
                        return
                    s = connect(idx)
                    log(f"connection {idx}: fresh connection, re-sending chunk {seq}")
                send_chunk(s, seq, off, ln)
            per_conn[idx] = s
        except (Broken, OSError) as e:
            failures.append(f"connection {idx}: {e}")
            log(f"connection {idx}: failed: {e}")

    per_conn = [None] * a.conns
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        finish(1, error="; ".join(failures), chunks=len(chunks), connections=conns_made[0])
    if a.break_kind and not a.resend:
        # The stream has a hole: a stock sender would be stuck; so are we.
        # Keep the connections open until the receiver gives up (or --timeout).
        closes = [wait_eof(s, a.io_timeout) for s in socks]
        finish(1, error="chunk not re-sent (as asked); stream incomplete", receiver_closes=closes,
               chunks=len(chunks), connections=conns_made[0])
    end_sock = next(s for s in per_conn if s is not None)
    end_sock.sendall(vm_header(a, len(chunks), 0, 0, VM_END))
    log(f"all {len(chunks)} chunks and the end header written on {conns_made[0]} connections")
    for s in socks:
        s.shutdown(socket.SHUT_WR)
    closes = [wait_eof(s, a.io_timeout) for s in socks]
    for s in socks:
        s.close()
    ok = all(c == "fin" for c in closes)
    finish(0 if ok else 1, chunks=len(chunks), bytes=len(data), connections=conns_made[0],
           receiver_closes=closes, **({} if ok else {"error": "receiver did not close every connection with FIN"}))


class Reassembly:
    """Chunks in seq order into the output file; duplicates dropped and
    counted. on_deliver(seq, offset, payload) runs for each chunk as it is
    written, in order (digests, offset and checksum checks)."""

    def __init__(self, path, on_deliver=None):
        self.out = open(path, "wb")
        self.held = {}
        self.next = 0
        self.bytes = 0
        self.dups = 0
        self.end = None
        self.on_deliver = on_deliver
        self.cv = threading.Condition(LOCK)

    def put(self, seq, payload, offset=None):
        """Called with LOCK held. False for a duplicate."""
        if seq < self.next or seq in self.held:
            self.dups += 1
            return False
        self.held[seq] = (offset, payload)
        while self.next in self.held:
            off, p = self.held.pop(self.next)
            if self.on_deliver:
                self.on_deliver(self.next, off, p)
            self.out.write(p)
            self.bytes += len(p)
            self.next += 1
        self.cv.notify_all()
        return True

    def complete(self):
        return self.end is not None and self.next >= self.end


def listen_socket(a):
    ls = socket.socket(family_of(a.listen[0]), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if a.rcvbuf:
        # Small and fixed (no autotuning): bounds what a sender can have
        # handed over beyond what we read (see --break in the driver).
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    ls.bind(a.listen)
    ls.listen(64)
    ls.settimeout(0.2)
    print("LISTENING", flush=True)
    return ls


def accept_until(ls, done, serve, grace=0.5, peers=None):
    """Accepts and serves connections (a thread each) until done(), then
    for `grace` seconds more: a sender may still be opening connections it
    no longer needs (a short stream), and they deserve an answer, not the
    RST a closed listener would give them."""
    threads, peers = [], peers if peers is not None else []
    until = None
    while until is None or time.monotonic() < until:
        with LOCK:
            if until is None and done():
                until = time.monotonic() + grace
        try:
            s, peer = ls.accept()
        except socket.timeout:
            continue
        peers.append(peer)
        t = threading.Thread(target=serve, args=(len(peers) - 1, s), daemon=True)
        t.start()
        threads.append(t)
    return threads, peers


def set_quickack(s, on):
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1 if on else 0)


def vm_recv(a):
    ls = listen_socket(a)
    st = {"saved": 0xFF, "checked": 0, "bad_sums": [], "broke": False, "partial": 0, "padding_nonzero": 0,
          "end_conn": None, "end_headers": 0, "chunks_on": {}}
    errors = []
    closes = {}

    def summary():
        return dict(chunks=r.next, bytes=r.bytes, connections=len(peers), duplicates=r.dups,
                    partial_discarded=st["partial"], checksums_checked=st["checked"],
                    padding_nonzero=st["padding_nonzero"], end_headers=st["end_headers"], end_connection=st["end_conn"],
                    chunks_on=st["chunks_on"])  # connection (in accept order) -> the whole chunks it carried

    def exit_after_end():
        """Stock rx: exit(0) once the end record is written. LOCK held: no
        other thread writes the output meanwhile."""
        r.out.close()
        log(f"stream complete: {r.next} chunks, {r.bytes} bytes; exiting at once (--exit-after-end)")
        bad = [f"viamillipede checksum mismatch on chunks {st['bad_sums'][:10]}"] if st["bad_sums"] else []
        finish(1 if bad else 0, **summary(), **({"error": "; ".join(bad)} if bad else {}))

    def reset_fatal(idx, e):
        log(f"connection {idx}: {e}: a stock receiver ends here (--reset-fatal)")
        finish(1, error=f"connection {idx} reset ({e}): stock viamillipede rx exits (v0.89) or asserts (2018)",
               **summary())

    def on_deliver(seq, _off, payload):
        # viamillipede's chained checksum, in seq order (docs/wire.md 3.1).
        cks = sums.pop(seq, 0)
        if cks and len(payload) >= 4:
            want = viamillipede_mix(st["saved"] + seq, payload)
            st["checked"] += 1
            if want != cks:
                st["bad_sums"].append(seq)
        st["saved"] = cks

    sums = {}
    r = Reassembly(a.output, on_deliver)

    def serve(idx, s):
        s.settimeout(a.io_timeout)
        ack = a.end_ack and (lambda: set_quickack(s, a.end_ack == "quick"))
        try:
            ph = recv_exact(s, 4)
            if ph != a.checkphrase.encode():
                log(f"connection {idx}: wrong checkphrase {ph!r}; closing it")
                closes[idx] = "refused"
                s.close()
                return
            s.sendall(b"ok")
            while True:
                if ack:
                    ack()  # (TCP_QUICKACK does not stick: set it around every read)
                try:
                    h = recv_exact(s, VM_HDR.size, boundary_ok=True)
                except Closed:
                    closes[idx] = "fin"
                    break
                if ack:
                    ack()
                pre, seq, size, cks, op, pad = vm_parse(a, h)
                st["padding_nonzero"] += pad != 0
                if pre != VM_PREAMBLE or op not in (VM_DATA, VM_END) or size > VM_MAX or (op == VM_END and size):
                    raise ValueError(f"bad header: preamble {pre:#x} seq {seq} size {size} opcode {op:#x} "
                                     f"(layout {a.layout})")
                if op == VM_END:
                    with LOCK:
                        r.end = seq
                        st["end_headers"] += 1
                        st["end_conn"] = idx
                        log(f"connection {idx}: end header, {seq} chunks")
                        if a.exit_after_end and r.complete():
                            exit_after_end()
                    continue
                if a.break_kind and seq == a.break_chunk and not st["broke"]:
                    st["broke"] = True
                    part = min(a.break_at, size)
                    recv_exact(s, part)
                    st["partial"] += 1
                    closes[idx] = f"broken by us ({a.break_kind})"
                    (break_fin if a.break_kind == "fin" else break_rst)(
                        s, f"connection {idx}: chunk {seq} broken after reading {part} of {size} payload bytes")
                    return
                try:
                    payload = recv_exact(s, size)
                except Broken:
                    st["partial"] += 1
                    log(f"connection {idx}: failed inside chunk {seq}; its partial payload is discarded")
                    raise
                with LOCK:
                    if seq >= r.next and seq not in r.held:
                        sums[seq] = cks
                    st["chunks_on"].setdefault(idx, []).append(seq)
                    r.put(seq, payload)
                    if a.exit_after_end and r.complete():
                        exit_after_end()
        except Broken as e:
            if a.reset_fatal and "ConnectionResetError" in str(e):
                reset_fatal(idx, e)
            closes[idx] = f"broken: {e}"
            log(f"connection {idx}: {e}")
        except ValueError as e:
            errors.append(f"connection {idx}: {e}")
            closes[idx] = "protocol error"
            log(f"connection {idx}: {e}")
        s.close()

    peers = []
    threads, _ = accept_until(ls, r.complete, serve, peers=peers)
    log(f"stream complete: {r.next} chunks, {r.bytes} bytes")
    for t in threads:  # the sender closes every connection with FIN once done
        t.join(a.io_timeout)
    ls.close()
    r.out.close()
    if st["bad_sums"]:
        errors.append(f"viamillipede checksum mismatch on chunks {st['bad_sums'][:10]}")
    if a.checksum and r.next > 1 and st["checked"] == 0:
        errors.append("no chunk carried a viamillipede checksum")
    closes_l = [closes.get(i, "open") for i in range(len(peers))]
    if any(c == "open" for c in closes_l):
        errors.append("a connection was still open after the stream ended")
    finish(1 if errors else 0, **summary(), closes=closes_l, **({"error": "; ".join(errors)} if errors else {}))


# --------------------------------------------------------------------------
# Native format (docs/wire.md section 2), written from the document only.

MAGIC = b"MLPD"
N_HELLO = struct.Struct("<4scBHQII4sI")  # magic type version reserved session index features phrase chunk_bytes
N_REPLY = struct.Struct("<4scBBBII")     # magic type rversion status hversion features window
N_CHUNK = struct.Struct("<4scBHQQII")    # magic type flags reserved seq offset length crc32c
N_END = struct.Struct("<4sc3sQQQ")       # magic type reserved chunks bytes digest
N_ACK = struct.Struct("<4sc3sQQ")        # magic type reserved cumulative bitmap
N_RESEND = struct.Struct("<4scBHQII")    # magic type reason reserved seq crc_in_header crc_computed
N_ENDACK = struct.Struct("<4scBHQQQ")    # magic type status reserved chunks bytes digest
assert (N_HELLO.size, N_REPLY.size, N_CHUNK.size, N_END.size, N_ACK.size, N_RESEND.size, N_ENDACK.size) == \
    (32, 16, 32, 32, 24, 24, 32)
FEAT_CRC32C, FEAT_SACK = 1, 2
STATUS = {0: "accept", 1: "checkphrase mismatch", 2: "version mismatch", 3: "session mismatch", 4: "bad hello",
          5: "missing required feature"}
MAX_RESENDS = 3


def n_send(a, data):
    chunks = chunks_of(data, a.chunk)
    mv = memoryview(data)
    crcs = [crc32c(mv[o:o + ln]) for _, o, ln in chunks]
    digest = crc64xz(data)
    session = random.getrandbits(64) or 1
    cv = threading.Condition(LOCK)
    st = {"cum": 0, "held": set(), "next": 0, "window": None, "resend": [], "endack": None, "legs_lost": 0,
          "resend_requests": 0, "resent": 0, "crc_failures": {}, "broke": False, "connections": 0}
    live = {}  # connection number -> socket
    failures = []

    def fail(msg):
        with LOCK:
            failures.append(msg)
            cv.notify_all()

    def unacked(q):
        return q >= st["cum"] and q not in st["held"]

    def requeue(seqs):
        # LOCK held
        for q in seqs:
            if unacked(q) and q not in st["resend"]:
                st["resend"].append(q)
        st["resend"].sort()
        cv.notify_all()

    def hello(conn, index):
        host, port = a.to[index % len(a.to)]
        s = socket.create_connection((host, port), timeout=a.io_timeout)
        s.settimeout(a.io_timeout)
        s.sendall(N_HELLO.pack(MAGIC, b"H", 1, 0, session, index, FEAT_CRC32C | FEAT_SACK,
                               a.checkphrase.encode(), a.chunk))
        rep = recv_exact(s, N_REPLY.size)
        m, t, rv, status, hv, feat, window = N_REPLY.unpack(rep)
        if m != MAGIC or t != b"h":
            raise ValueError(f"connection {conn}: not a hello reply: {rep.hex()}")
        if status != 0:
            raise ValueError(f"connection {conn}: receiver refused the hello: {STATUS.get(status, status)} "
                             f"(receiver v{rv}, it saw v{hv})")
        if not feat & FEAT_CRC32C or window < 1:
            raise ValueError(f"connection {conn}: bad accept: features {feat:#x} window {window}")
        with LOCK:
            st["window"] = window if st["window"] is None else min(st["window"], window)
            st["connections"] += 1
            live[conn] = s
        return s

    def reader(conn, s, mine, dead):
        """Acks, resend requests and the end ack; anything else fails."""
        try:
            while True:
                try:
                    p = recv_exact(s, 8, boundary_ok=True)
                except Closed:
                    raise Broken("the receiver closed the connection") from None
                if p[:4] != MAGIC:
                    raise ValueError(f"connection {conn}: bad magic in {p.hex()}")
                t = p[4:5]
                if t == b"A":
                    _, _, rsv, cum, bitmap = N_ACK.unpack(p + recv_exact(s, N_ACK.size - 8))
                    if rsv != b"\0\0\0" or cum > len(chunks):
                        raise ValueError(f"connection {conn}: bad ack: cumulative {cum} reserved {rsv.hex()}")
                    with LOCK:
                        st["cum"] = max(st["cum"], cum)
                        st["held"] |= {cum + 1 + i for i in range(64) if bitmap >> i & 1}
                        st["held"] = {q for q in st["held"] if q >= st["cum"]}
                        cv.notify_all()
                elif t == b"R":
                    _, _, reason, rsv, seq, ch, cc = N_RESEND.unpack(p + recv_exact(s, N_RESEND.size - 8))
                    log(f"connection {conn}: resend request for chunk {seq} (reason {reason}, crc in header "
                        f"{ch:#x}, computed {cc:#x})")
                    with LOCK:
                        st["resend_requests"] += 1
                        n = st["crc_failures"][seq] = st["crc_failures"].get(seq, 0) + 1
                        if n > MAX_RESENDS:
                            raise ValueError(f"chunk {seq} failed CRC32C at the receiver {n} times; giving up")
                        requeue([seq])
                elif t == b"e":
                    _, _, status, rsv, c, b, d = N_ENDACK.unpack(p + recv_exact(s, N_ENDACK.size - 8))
                    with LOCK:
                        st["endack"] = (status, c, b, d)
                        cv.notify_all()
                    return
                else:
                    raise ValueError(f"connection {conn}: record type {t!r} is not allowed receiver -> sender")
        except (Broken, OSError) as e:
            with LOCK:
                if st["endack"] is None and not dead[0]:
                    dead[0] = f"{e}"
                    cv.notify_all()
        except ValueError as e:
            fail(str(e))

    def send_chunk(s, seq, resent, part=None):
        _, off, ln = chunks[seq]
        s.sendall(N_CHUNK.pack(MAGIC, b"C", 1 if resent else 0, 0, seq, off, ln, crcs[seq]))
        s.sendall(mv[off:off + (ln if part is None else part)])

    def worker(index):
        conn = index
        attempts = 0
        while True:
            try:
                s = hello(conn, index)
            except (OSError, Broken) as e:
                attempts += 1
                if attempts > 3:
                    fail(f"connection {conn}: cannot connect: {e}")
                    return
                time.sleep(0.2 * attempts)
                continue
            except ValueError as e:
                fail(str(e))
                return
            mine, dead = set(), [None]
            threading.Thread(target=reader, args=(conn, s, mine, dead), daemon=True).start()
            why = None
            while why is None:
                with LOCK:
                    while True:
                        if failures or st["endack"] is not None or st["cum"] >= len(chunks):
                            return  # the end record goes out from main()
                        if dead[0]:
                            why = dead[0]
                            break
                        seq, resent = None, False
                        while st["resend"] and seq is None:
                            q = st["resend"].pop(0)
                            if unacked(q):
                                seq, resent = q, True
                        if seq is None and st["next"] < len(chunks) and st["next"] < st["cum"] + st["window"]:
                            seq = st["next"]
                            st["next"] += 1
                        if seq is not None:
                            break
                        cv.wait(0.5)
                    if why:
                        break
                    mine.add(seq)
                    st["resent"] += resent
                    do_break = a.break_kind and seq == a.break_chunk and not st["broke"]
                    st["broke"] |= bool(do_break)
                try:
                    if do_break:
                        part = min(a.break_at, chunks[seq][2])
                        send_chunk(s, seq, resent, part)
                        wait_acked(s)
                        dead[0] = f"broken by us ({a.break_kind})"
                        (break_fin if a.break_kind == "fin" else break_rst)(
                            s, f"connection {conn}: chunk {seq} broken after {part} payload bytes")
                        why = dead[0]
                    else:
                        send_chunk(s, seq, resent)
                except OSError as e:
                    why = f"write failed: {e}"
            with LOCK:
                live.pop(conn, None)
                st["legs_lost"] += 1
                lost = sorted(q for q in mine if unacked(q))
                requeue(lost)
            log(f"connection {conn}: lost ({why}); unacknowledged chunks {lost} re-queued")
            s.close()
            if not a.resend:
                return
            conn += a.conns  # a fresh connection for this worker
            log(f"connection {conn}: reconnecting")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = dict(chunks=len(chunks), bytes=len(data), digest=f"{digest:#018x}", legs_lost=st["legs_lost"],
                   resend_requests=st["resend_requests"], chunks_resent=st["resent"], window=st["window"])
    if failures:
        finish(1, error="; ".join(failures), **summary)
    if st["cum"] < len(chunks):
        finish(1, error=f"only {st['cum']} of {len(chunks)} chunks acknowledged; no connection left", **summary)
    with LOCK:
        conns = sorted(live)
    if not conns:
        finish(1, error="no connection left for the end record", **summary)
    s = live[conns[0]]
    s.sendall(N_END.pack(MAGIC, b"E", b"\0\0\0", len(chunks), len(data), digest))
    with LOCK:
        cv.wait_for(lambda: st["endack"] is not None or failures, a.io_timeout)
    summary["connections"] = st["connections"]
    if st["endack"] is None:
        finish(1, error="no end ack", **summary)
    status, c, b, d = st["endack"]
    summary["end_ack"] = dict(status=status, chunks=c, bytes=b, digest=f"{d:#018x}")
    for k in conns:
        live[k].shutdown(socket.SHUT_WR)
    closes = [wait_eof(live[k], a.io_timeout) for k in conns]
    summary["receiver_closes"] = closes
    if status != 0 or (c, b, d) != (len(chunks), len(data), digest):
        finish(1, error=f"end ack status {status}: the receiver has {c} chunks, {b} bytes, digest {d:#x}; we sent "
               f"{len(chunks)}, {len(data)}, {digest:#x}", **summary)
    if any(c != "fin" for c in closes):
        finish(1, error="the receiver did not close every connection with FIN", **summary)
    finish(0, **summary)


def n_recv(a):
    ls = listen_socket(a)
    W = a.window
    st = {"session": None, "digest": 0, "bad_crc": 0, "acks": 0, "endack": None, "window_violations": 0,
          "broke": False, "refused": 0, "resent_flagged": 0}
    errors = []
    closes = {}

    def on_deliver(seq, off, payload):
        if off != r.bytes:
            errors.append(f"chunk {seq}: offset {off}, but {r.bytes} bytes precede it (offset_mismatch)")
        st["digest"] = crc64xz(payload, st["digest"])

    r = Reassembly(a.output, on_deliver)

    def ack_record():
        cum = r.next
        bitmap = sum(1 << i for i in range(64) if cum + 1 + i in r.held)
        return N_ACK.pack(MAGIC, b"A", b"\0\0\0", cum, bitmap)

    def serve(idx, s):
        s.settimeout(a.io_timeout)
        try:
            p = recv_exact(s, 8)
            if p[:5] != MAGIC + b"H":
                raise ValueError(f"first record is not a hello: {p.hex()}")
            if p[5] != 1:
                # Versioning rule: answer with both versions, read nothing more.
                s.sendall(N_REPLY.pack(MAGIC, b"h", 1, 2, p[5], 0, 0))
                raise ValueError(f"version mismatch: the sender speaks v{p[5]}")
            _, _, _, rsv, session, index, feat, phrase, cb = N_HELLO.unpack(p + recv_exact(s, 24))
            with LOCK:
                if phrase != a.checkphrase.encode():
                    status = 1
                elif rsv != 0 or not 1 <= cb <= 2 * 1024 * 1024:
                    status = 4
                elif not feat & FEAT_CRC32C:
                    status = 5
                elif st["session"] not in (None, session):
                    status = 3
                else:
                    status = 0
                    st["session"] = session
            s.sendall(N_REPLY.pack(MAGIC, b"h", 1, status, 1, feat & 3 if status == 0 else 0, W if status == 0 else 0))
            if status:
                st["refused"] += 1
                raise ValueError(f"hello refused: {STATUS[status]}")
            log(f"connection {idx}: hello: stream index {index}, session {session:#x}, features {feat:#x}, "
                f"chunk bytes {cb}")
            while True:
                try:
                    p = recv_exact(s, 8, boundary_ok=True)
                except Closed:
                    closes[idx] = "fin"
                    break
                if p[:4] != MAGIC:
                    raise ValueError(f"bad magic in {p.hex()}")
                t = p[4:5]
                if t == b"C":
                    _, _, flags, rsv, seq, off, ln, crc = N_CHUNK.unpack(p + recv_exact(s, 24))
                    if flags & ~1 or rsv:
                        raise ValueError(f"chunk {seq}: flags {flags:#x}, reserved {rsv:#x}")
                    if ln == 0 or ln > cb:
                        raise ValueError(f"chunk {seq}: length {ln} (empty_chunk / oversize_chunk)")
                    with LOCK:
                        if seq >= r.next + W:
                            st["window_violations"] += 1
                        if r.end is not None and seq >= r.end:
                            raise ValueError(f"chunk {seq} after the end record")
                        st["resent_flagged"] += flags & 1
                    if a.break_kind and seq == a.break_chunk and not st["broke"]:
                        st["broke"] = True
                        part = min(a.break_at, ln)
                        recv_exact(s, part)
                        closes[idx] = f"broken by us ({a.break_kind})"
                        (break_fin if a.break_kind == "fin" else break_rst)(
                            s, f"connection {idx}: chunk {seq} broken after reading {part} of {ln} payload bytes")
                        return
                    payload = recv_exact(s, ln)
                    calc = crc32c(payload)
                    with LOCK:
                        if calc != crc:
                            st["bad_crc"] += 1
                            rec = N_RESEND.pack(MAGIC, b"R", 1, 0, seq, crc, calc)
                        else:
                            r.put(seq, payload, off)
                            rec = ack_record()
                            st["acks"] += 1
                    s.sendall(rec)
                elif t == b"E":
                    _, _, rsv, nch, nby, dig = N_END.unpack(p + recv_exact(s, 24))
                    if rsv != b"\0\0\0":
                        raise ValueError("end record: reserved bytes set")
                    with LOCK:
                        r.end = nch
                        if not r.cv.wait_for(lambda: r.next >= nch, a.io_timeout):
                            raise ValueError(f"end record: chunks below {nch} never arrived")
                        status = 1 if r.next != nch else 2 if r.bytes != nby else 3 if st["digest"] != dig else 0
                        st["endack"] = status
                        rec = N_ENDACK.pack(MAGIC, b"e", status, 0, r.next, r.bytes, st["digest"])
                    log(f"connection {idx}: end record ({nch} chunks, {nby} bytes, digest {dig:#x}); "
                        f"end ack status {status}")
                    s.sendall(rec)
                else:
                    raise ValueError(f"record type {t!r} is not allowed sender -> receiver")
        except Broken as e:
            closes[idx] = f"broken: {e}"
            log(f"connection {idx}: {e}")
        except ValueError as e:
            errors.append(f"connection {idx}: {e}")
            closes[idx] = "protocol error"
            log(f"connection {idx}: {e}")
        s.close()

    threads, peers = accept_until(ls, lambda: st["endack"] is not None, serve)
    for t in threads:  # the sender closes with FIN after the end ack
        t.join(a.io_timeout)
    ls.close()
    r.out.close()
    closes_l = [closes.get(i, "open") for i in range(len(peers))]
    if st["window_violations"]:
        errors.append(f"{st['window_violations']} chunks beyond the reorder window")
    if st["endack"] != 0:
        errors.append(f"end ack status {st['endack']}")
    if any(c == "open" for c in closes_l):
        errors.append("a connection was still open after the end")
    finish(1 if errors else 0, chunks=r.next, bytes=r.bytes, digest=f"{st['digest']:#018x}", connections=len(peers),
           duplicates=r.dups, bad_crc=st["bad_crc"], acks=st["acks"], window=W,
           resent_flagged=st["resent_flagged"], refused=st["refused"], end_ack_status=st["endack"],
           closes=closes_l, **({"error": "; ".join(errors)} if errors else {}))


# --------------------------------------------------------------------------
# ICMP echo through the kernel's raw socket (no iputils dependency).


def inet_checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ping(a):
    """--count echo requests to --to's address; with --until-up, keep trying
    until the first reply (or --timeout). Replies must carry our identifier,
    sequence and payload, with a valid ICMP checksum."""
    addr = a.to[0][0]
    v6 = family_of(addr) == socket.AF_INET6
    # ICMPv6 (RFC 4443): echo request 128, reply 129; the kernel fills in and
    # verifies the checksum of a raw ICMPv6 socket (it covers a pseudo-header)
    # and hands over the message without its IPv6 header.
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) if v6 else \
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    req_type, rep_type = (128, 129) if v6 else (8, 0)
    s.settimeout(0.2)
    ident = os.getpid() & 0xFFFF
    replies, rtts, seq = 0, [], 0
    # Every request sent, by sequence number: a reply to an earlier one
    # still counts (as ping(8) counts it), so a reply that comes after the
    # next request left is reported late, not lost.
    outstanding = {}
    deadline = time.monotonic() + a.timeout - 1
    while time.monotonic() < deadline and (replies < a.count if not a.until_up else replies == 0):
        seq += 1
        payload = struct.pack("!d", time.monotonic()) + bytes(range(48))
        hdr = struct.pack("!BBHHH", req_type, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", req_type, 0, 0 if v6 else inet_checksum(hdr + payload), ident, seq) + payload
        s.sendto(pkt, (addr, 0))
        t0 = time.monotonic()
        outstanding[seq] = (t0, payload)
        while time.monotonic() - t0 < (0.2 if a.until_up else 1.0):
            try:
                data, src = s.recvfrom(2048)
            except socket.timeout:
                continue
            ihl = 0 if v6 else (data[0] & 0x0F) * 4
            icmp = data[ihl:]
            if ipaddress.ip_address(src[0]) != ipaddress.ip_address(addr) or len(icmp) < 8:
                continue
            typ, code, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
            if typ != rep_type or rid != ident or rseq not in outstanding:
                continue
            sent_at, sent_payload = outstanding[rseq]
            if (not v6 and inet_checksum(icmp) != 0) or icmp[8:] != sent_payload:
                log(f"echo reply {rseq}: bad checksum or payload")
                continue
            del outstanding[rseq]
            replies += 1
            rtts.append((time.monotonic() - sent_at) * 1000)
            if rseq == seq:
                break
        if not a.until_up and replies < a.count:
            time.sleep(0.2)
    ok = replies >= (1 if a.until_up else a.count)
    finish(0 if ok else 1, sent=seq, replies=replies, rtt_ms=[round(x, 3) for x in rtts])


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("send", "recv", "ping"))
    ap.add_argument("--codec", choices=("viamillipede", "native"), default="viamillipede")
    ap.add_argument("--to", action="append", type=parse_hostport, default=[], help="send: receiver ADDR:PORT")
    ap.add_argument("--conns", type=int, default=1, help="send: TCP connections")
    ap.add_argument("--input", help="send: the bytes to send")
    ap.add_argument("--listen", type=parse_hostport, help="recv: ADDR:PORT")
    ap.add_argument("--output", help="recv: where the stream goes")
    ap.add_argument("--chunk", type=int, default=1 << 20, help="send: chunk payload bytes (<= 2 MiB)")
    ap.add_argument("--checkphrase", default="yoes")
    ap.add_argument("--checksums", "--checksum", dest="checksum", action="store_true",
                    help="viamillipede checksums (send: compute them; recv: at least one chunk must carry one)")
    ap.add_argument("--layout", choices=("0.89", "2018"), default="0.89",
                    help="viamillipede header: opcode as u_long (0.89) or as int plus padding (2018)")
    ap.add_argument("--exit-after-end", action="store_true", help="recv: exit once the end record is written")
    ap.add_argument("--end-ack", choices=("quick", "delayed"),
                    help="recv: TCP_QUICKACK on (ACK at once) or off (delayed ACK) around every read")
    ap.add_argument("--reset-fatal", action="store_true", help="recv: a connection reset ends the receiver")
    ap.add_argument("--window", type=int, default=32, help="native recv: reorder window in chunks")
    ap.add_argument("--rcvbuf", type=int, default=0, help="recv: SO_RCVBUF of the listening socket")
    ap.add_argument("--break", dest="break_kind", choices=("fin", "rst"))
    ap.add_argument("--break-chunk", type=int, default=0)
    ap.add_argument("--break-at", type=int, default=1000)
    ap.add_argument("--resend", action="store_true", help="send: re-send the broken chunk on a fresh connection")
    ap.add_argument("--count", type=int, default=3, help="ping: echo requests that must be answered")
    ap.add_argument("--until-up", action="store_true", help="ping: until the first reply")
    ap.add_argument("--io-timeout", type=float, default=20)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    if len(a.checkphrase) != 4 or not 1 <= a.chunk <= VM_MAX:
        ap.error("checkphrase must be 4 characters, chunk 1..2 MiB")
    watchdog(a.timeout)
    try:
        if a.mode == "ping":
            ping(a)
        elif a.mode == "send":
            if not a.to or not a.input:
                ap.error("send needs --to and --input")
            with open(a.input, "rb") as f:
                data = f.read()
            (vm_send if a.codec == "viamillipede" else n_send)(a, data)
        else:
            if not a.listen or not a.output:
                ap.error("recv needs --listen and --output")
            (vm_recv if a.codec == "viamillipede" else n_recv)(a)
    except (OSError, Broken, ValueError) as e:
        log(f"failed: {type(e).__name__}: {e}")
        finish(1, error=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
