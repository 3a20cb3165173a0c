#!/usr/bin/env bash
# tools/demo.sh - the main job, end to end, on a fresh Debian 12 machine.
#
#   tools/demo.sh                 move DEMO_BYTES (default 1 GiB) of random data
#                                 stdin -> dpdk-millipede tx -> 2 links -> rx -> stdout
#   tools/demo.sh tap [CAPTURES]  the flow classifier on real captures (../shared/pcaps)
#
# Transport: two dpdk-millipede processes (rx on CPU 0, tx on CPU 1), each
# with its own --file-prefix and one lcore, joined by two links:
#   memif      (default when 2 MiB hugepages are available) two shared-memory
#              packet interfaces, DPDK's net_memif vdev: rx is the server of
#              /run/millipede-demo-PID/m0.sock and m1.sock, tx the client;
#              each process takes -m 256 of hugepage memory.
#   af_packet  two network namespaces joined by two veth pairs that each
#              process opens through DPDK's af_packet vdev (--no-huge).
# DEMO_LINK=memif|af_packet forces one. The digests of input and output are
# compared; the last line is
#   OK <bytes> bytes in <seconds> s = <MB/s> MB/s      or      FAIL ...
# (the time runs from tx start until both processes exited; MB = 10^6 bytes).
#
# Environment: DEMO_BYTES (default 1073741824), DEMO_THREADS (TCP legs, default 4),
# DEMO_LINK (memif or af_packet; default memif when hugepages are available),
# DEMO_BUILD_DIR (default build).
set -uo pipefail
source "$(dirname "$0")/lib/setup.sh"
cd "$MILLIPEDE_ROOT"

mode=transport
if [ "${1:-}" = tap ]; then
  mode=tap
  shift
fi
build_dir=${DEMO_BUILD_DIR:-build}

install_packages || { echo "FAIL could not install the Debian packages"; exit 1; }
reserve_hugepages 512
log "building into $build_dir/"
if ! { build_into "$build_dir" -Dbuildtype=release && timeout 2400 ninja -C "$build_dir" >/dev/null; }; then
  echo "FAIL build"
  exit 1
fi
bin="$MILLIPEDE_ROOT/$build_dir/app/dpdk-millipede"

# ------------------------------------------------------------------- tap ----
# The flow classifier: real captures are replayed through DPDK's net_pcap
# device into `dpdk-millipede tap`, which pins every flow to one of four
# workers (busy policy, migration on) and proves order and pinning with its
# correctness counters.
if [ "$mode" = tap ]; then
  captures=("$@")
  if [ ${#captures[@]} -eq 0 ]; then
    shopt -s nullglob
    captures=("$MILLIPEDE_ROOT"/../shared/pcaps/*.pcap "$MILLIPEDE_ROOT"/../shared/pcaps/*.pcapng)
  fi
  if [ ${#captures[@]} -eq 0 ]; then
    echo "FAIL no capture: give one, e.g. tools/demo.sh tap traffic.pcap"
    exit 1
  fi

  eal=(--no-pci --log-level=lib.eal:error --file-prefix "demo_$$" --lcores '0@0,1@1,2@(0-1)')
  if [ "$MILLIPEDE_HUGEPAGES" = 1 ]; then eal+=(-m 256); else eal+=(--no-huge -m 512); fi

  total_packets=0
  total_flows=0
  bad=0
  start=$(date +%s.%N)
  printf '%-28s %8s %6s %6s %6s  %-26s %s\n' capture packets tcp udp other "per-worker packets" correctness
  for c in "${captures[@]}"; do
    if [ ! -r "$c" ]; then
      echo "FAIL cannot read $c"
      exit 1
    fi
    json=$(timeout -s KILL 120 "$bin" "${eal[@]}" --vdev "net_pcap0,rx_pcap=$c" -- \
             tap --workers 4 --policy busy --migrate --summary - 2>/dev/null | tail -1)
    line=$(python3 - "$json" "$(basename "$c")" <<'PY'
import json, sys
try:
    d = json.loads(sys.argv[1])
except Exception:
    print("ERR"); sys.exit()
f = d["flows"]; c = d["correctness"]
workers = "/".join(str(w["processed"]) for w in d["per_worker"])
ok = "ok" if not any(c.values()) else "VIOLATED " + json.dumps(c)
print(f'{sys.argv[2]:28} {d["packets"]:8} {f["tcp"]:6} {f["udp"]:6} {f["other"]:6}  {workers:26} {ok}'
      f'|{d["packets"]}|{f["tcp"] + f["udp"] + f["other"]}|{int(ok != "ok")}')
PY
    )
    if [ "$line" = ERR ]; then
      echo "FAIL dpdk-millipede tap did not finish on $c"
      exit 1
    fi
    IFS='|' read -r text packets flows violated <<<"$line"
    echo "$text"
    total_packets=$((total_packets + packets))
    total_flows=$((total_flows + flows))
    bad=$((bad + violated))
  done
  secs=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
  if [ "$bad" -ne 0 ]; then
    echo "FAIL order or pinning violated on $bad capture(s)"
    exit 1
  fi
  echo "OK $total_packets packets in $total_flows flows from ${#captures[@]} captures, every flow pinned and in order ($secs s)"
  exit 0
fi

# ------------------------------------------------------------- transport ----
bytes=${DEMO_BYTES:-1073741824}
threads=${DEMO_THREADS:-4}
case "$bytes" in ''|*[!0-9]*) echo "FAIL DEMO_BYTES must be a byte count, got '$bytes'"; exit 1;; esac
if [ "$(id -u)" -ne 0 ]; then
  echo "FAIL the transport demo needs root (hugepages or network namespaces)"
  exit 1
fi
free_pages=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
link=${DEMO_LINK:-}
if [ -z "$link" ]; then
  # memif: both processes map 256 MiB of hugepages (128 pages each).
  if [ "$MILLIPEDE_HUGEPAGES" = 1 ] && [ "${free_pages:-0}" -ge 256 ]; then link=memif; else link=af_packet; fi
fi
case "$link" in
  memif)
    if [ "$MILLIPEDE_HUGEPAGES" != 1 ] || [ "${free_pages:-0}" -lt 256 ]; then
      echo "FAIL DEMO_LINK=memif needs 256 free 2 MiB hugepages (have ${free_pages:-0})"
      exit 1
    fi;;
  af_packet) ;;
  *) echo "FAIL DEMO_LINK must be memif or af_packet, got '$link'"; exit 1;;
esac

tag="mpd$$"
ns_tx="${tag}tx"
ns_rx="${tag}rx"
sockdir="/run/millipede-demo-$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/millipede-demo.XXXXXX")
rx_pid=""
cleanup() {
  if [ -n "$rx_pid" ]; then
    # rx_pid is `timeout`: TERM is passed on to dpdk-millipede, which stops cleanly.
    kill -TERM "$rx_pid" 2>/dev/null && sleep 1
    kill -KILL "$rx_pid" 2>/dev/null
  fi
  if [ "$link" = af_packet ]; then
    ip netns del "$ns_tx" 2>/dev/null
    ip netns del "$ns_rx" 2>/dev/null
  fi
  rm -rf "$work" "$sockdir"
  # EAL leaves its hugepage files and run directory behind.
  rm -f /dev/hugepages/"${tag}rx"* /dev/hugepages/"${tag}tx"* 2>/dev/null
  rm -rf /var/run/dpdk/"${tag}rx" /var/run/dpdk/"${tag}tx" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ "$link" = memif ]; then
  # Filesystem sockets (socket-abstract=no) so that tx can wait for rx's.
  mkdir -p "$sockdir" || { echo "FAIL cannot create $sockdir"; exit 1; }
  eal=(--no-pci -m 256 --log-level=lib.eal:error)
  rx_dev=(--vdev "net_memif0,role=server,socket=$sockdir/m0.sock,id=0,socket-abstract=no"
          --vdev "net_memif1,role=server,socket=$sockdir/m1.sock,id=0,socket-abstract=no")
  tx_dev=(--vdev "net_memif0,role=client,socket=$sockdir/m0.sock,id=0,socket-abstract=no"
          --vdev "net_memif1,role=client,socket=$sockdir/m1.sock,id=0,socket-abstract=no")
  in_rx=()
  in_tx=()
else
  # Two namespaces, two veth pairs (one per "NIC port"). The kernel must stay
  # quiet on them (no IPv6, no offloads merging or splitting frames).
  ip netns add "$ns_tx" && ip netns add "$ns_rx" || { echo "FAIL cannot create network namespaces"; exit 1; }
  for i in 0 1; do
    ip link add "${tag}a$i" netns "$ns_tx" type veth peer name "${tag}b$i" netns "$ns_rx" ||
      { echo "FAIL cannot create a veth pair"; exit 1; }
    for pair in "$ns_tx ${tag}a$i" "$ns_rx ${tag}b$i"; do
      set -- $pair
      ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1" 2>/dev/null
      ip netns exec "$1" ethtool -K "$2" gro off gso off tso off tx off rx off >/dev/null 2>&1
      ip -n "$1" link set "$2" up
    done
  done
  eal=(--no-pci --no-huge -m 512)
  rx_dev=(--vdev "net_af_packet0,iface=${tag}b0,framecnt=4096" --vdev "net_af_packet1,iface=${tag}b1,framecnt=4096")
  tx_dev=(--vdev "net_af_packet0,iface=${tag}a0,framecnt=4096" --vdev "net_af_packet1,iface=${tag}a1,framecnt=4096")
  in_rx=(ip netns exec "$ns_rx")
  in_tx=(ip netns exec "$ns_tx")
fi

log "making $bytes bytes of random input"
head -c "$bytes" /dev/urandom >"$work/in" || { echo "FAIL cannot write $work/in"; exit 1; }
want=$(sha256sum <"$work/in" | cut -d' ' -f1)

# Generous bound: 1 GiB at a few MB/s would still finish.
limit=$(( 120 + bytes / 2000000 ))

log "link: $link x 2, $threads TCP legs"
"${in_rx[@]}" timeout -s KILL "$limit" "$bin" "${eal[@]}" --lcores 0@0 --file-prefix "${tag}rx" "${rx_dev[@]}" -- \
  rx 8834 --ip 0=10.81.0.2/24 --ip 1=10.81.1.2/24 >"$work/out" 2>"$work/rx.err" &
rx_pid=$!
if [ "$link" = memif ]; then
  # rx is the memif server: its sockets exist once its EAL has probed the devices.
  for _ in $(seq 300); do
    [ -S "$sockdir/m0.sock" ] && [ -S "$sockdir/m1.sock" ] && break
    kill -0 "$rx_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! [ -S "$sockdir/m0.sock" ] || ! [ -S "$sockdir/m1.sock" ]; then
    echo "FAIL rx did not create its memif sockets: $(tail -1 "$work/rx.err")"
    exit 1
  fi
else
  sleep 1
fi
start=$(date +%s.%N)
"${in_tx[@]}" timeout -s KILL "$limit" "$bin" "${eal[@]}" --lcores 0@1 --file-prefix "${tag}tx" "${tx_dev[@]}" -- \
  tx 10.81.0.2 8834 tx 10.81.1.2 8834 threads "$threads" --ip 0=10.81.0.1/24 --ip 1=10.81.1.1/24 \
  <"$work/in" 2>"$work/tx.err"
tx_rc=$?
wait "$rx_pid"
rx_rc=$?
rx_pid=""
end=$(date +%s.%N)

if [ "$tx_rc" -ne 0 ] || [ "$rx_rc" -ne 0 ]; then
  echo "tx (exit $tx_rc): $(tail -3 "$work/tx.err")" >&2
  echo "rx (exit $rx_rc): $(tail -3 "$work/rx.err")" >&2
  echo "FAIL tx exit $tx_rc, rx exit $rx_rc: $(tail -1 "$work/tx.err") / $(tail -1 "$work/rx.err")"
  exit 1
fi
got=$(sha256sum <"$work/out" | cut -d' ' -f1)
out_bytes=$(stat -c %s "$work/out")
if [ "$got" != "$want" ]; then
  echo "FAIL output differs: $out_bytes of $bytes bytes, sha256 $got, want $want"
  exit 1
fi
python3 - "$bytes" "$start" "$end" <<'PY'
import sys
n, t0, t1 = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
s = max(t1 - t0, 1e-9)
print(f"OK {n} bytes in {s:.2f} s = {n / s / 1e6:.1f} MB/s")
PY
