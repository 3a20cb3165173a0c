#!/usr/bin/env bash
# tools/bench/transport.sh - dpdk-millipede tx/rx against socat, one JSON object.
#
#   tools/bench/transport.sh [repeats]          (default 3)
#
# Moves BENCH_BYTES (default 1 GiB) of random data from one pre-generated file
# (read once beforehand, so it is in the page cache) to /dev/null:
#   millipede_memif      dpdk-millipede tx -> 2 memif links -> rx, BENCH_THREADS legs,
#                        one lcore per side (tx zero-copy memif client, 16 KiB slots)
#   millipede_memif_wW_lL  the matrix (BENCH_MATRIX): W worker lcores, L legs
#   socat                socat -u STDIN TCP:127.0.0.1 -> socat -u TCP-LISTEN STDOUT
#                        (one loopback TCP connection, socat's default 8 KiB buffer)
#   socat_b1m            the same with socat -b 1048576 (a tuned baseline)
#   millipede_af_packet  (secondary, BENCH_AF_PACKET=1) two veth pairs in two
#                        network namespaces, DPDK's af_packet vdev
# One repetition runs every system once; repetition r starts with the r-th
# system of the list above and wraps around, so no system always runs first.
# Each time runs from the start of the sender until both sender and receiver
# have exited (the receiver is started first and is listening). A run counts
# only with exit status 0 on both sides (dpdk-millipede: the receiver verified
# length and CRC64; socat: no error). The JSON has every run, the medians,
# the ratio socat / millipede (> 1 means dpdk-millipede is faster), each
# process's CPU time (user/sys, from wait4), CPU seconds per GiB, peak RSS,
# dpdk-millipede's own copies per byte on each side, its start-up (EAL ready)
# and its transfer-only throughput (from its timeline line), how evenly the
# legs spread over the workers, the lcore map, the load average and CPU steal
# during the runs, the kernel and the exact commands. target_met: the tuned
# baseline (socat -b 1 MiB) over dpdk-millipede memif >= 1.0.
#
# Environment: BENCH_BYTES (1073741824), BENCH_THREADS (4), BENCH_CHUNK (app
# default), BENCH_BUILD_DIR (build-bench), BENCH_RX_LCORES (0@0),
# BENCH_TX_LCORES (0@1), BENCH_AF_PACKET (1; 0 skips it), BENCH_SOCAT_B1M (1),
# BENCH_EXTRA_TX / BENCH_EXTRA_RX (extra words for dpdk-millipede tx / rx),
# BENCH_MEMIF_ZC (1, default: memif zero-copy on the tx side, with --single-file-segments),
# BENCH_MEMIF_BSIZE (16384: memif slot size; 0 keeps the PMD's 2048),
# BENCH_EAL_MEM (EAL memory options, default none: hugepages as needed; "-m 256" was the default until 2026-12-04),
# BENCH_MATRIX ("1:1 1:4 1:16 2:1 2:4 2:16": workers:legs runs over memif; empty: none),
# BENCH_RX_LCORES_W2 / BENCH_TX_LCORES_W2 (the --lcores for 2 workers),
# BENCH_INPUT (an existing input file instead of BENCH_BYTES of fresh random data),
# BENCH_NO_BUILD (1: use the binary as it is; the JSON records its source state),
# BENCH_NICE (default -20, applied alike to every process of every system: the
# machine is shared with other builds; 0 runs at normal priority).
set -uo pipefail
source "$(dirname "$0")/../lib/setup.sh"
cd "$MILLIPEDE_ROOT"

repeats=${1:-3}
case "$repeats" in ''|*[!0-9]*|0) echo "usage: $0 [repeats >= 1]" >&2; exit 2;; esac
bytes=${BENCH_BYTES:-1073741824}
build_dir=${BENCH_BUILD_DIR:-build-bench}
if [ "$(id -u)" -ne 0 ]; then echo "$0: needs root (hugepages, network namespaces)" >&2; exit 1; fi

install_packages || { echo "$0: could not install the Debian packages" >&2; exit 1; }
reserve_hugepages 512
free_pages=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "$MILLIPEDE_HUGEPAGES" != 1 ] || [ "${free_pages:-0}" -lt 300 ]; then
  echo "$0: memif needs 300 free 2 MiB hugepages (have ${free_pages:-0})" >&2
  exit 1
fi
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  log "building into $build_dir/"
  if ! { build_into "$build_dir" -Dbuildtype=release && timeout 2400 ninja -C "$build_dir" app/dpdk-millipede >/dev/null; }; then
    echo "$0: build failed" >&2
    exit 1
  fi
fi
[ -x "$build_dir/app/dpdk-millipede" ] || { echo "$0: no $build_dir/app/dpdk-millipede" >&2; exit 1; }

tag="mpb$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/millipede-bench.XXXXXX")
sockdir="/run/millipede-bench-$$"
mkdir -p "$sockdir"
cleanup() {
  ip netns del "${tag}tx" 2>/dev/null
  ip netns del "${tag}rx" 2>/dev/null
  rm -rf "$work" "$sockdir"
  rm -f /dev/hugepages/"${tag}"* 2>/dev/null
  rm -rf /var/run/dpdk/"${tag}"* 2>/dev/null
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ "${BENCH_AF_PACKET:-1}" = 1 ]; then
  ip netns add "${tag}tx" && ip netns add "${tag}rx" || { echo "$0: cannot create network namespaces" >&2; exit 1; }
  for i in 0 1; do
    ip link add "${tag}a$i" netns "${tag}tx" type veth peer name "${tag}b$i" netns "${tag}rx" ||
      { echo "$0: cannot create a veth pair" >&2; exit 1; }
    for pair in "${tag}tx ${tag}a$i" "${tag}rx ${tag}b$i"; do
      set -- $pair
      ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1" 2>/dev/null
      ip netns exec "$1" ethtool -K "$2" gro off gso off tso off tx off rx off >/dev/null 2>&1
      ip -n "$1" link set "$2" up
    done
  done
fi

input="$work/in"
if [ -n "${BENCH_INPUT:-}" ]; then
  input=$BENCH_INPUT # an existing file: its size is the transfer
  bytes=$(stat -c %s "$input") || exit 1
else
  log "making $bytes bytes of random input in $input"
  head -c "$bytes" /dev/urandom >"$input" || { echo "$0: cannot write $input" >&2; exit 1; }
  # Written back now, so that the kernel's writeback of the fresh file does
  # not share the first runs' CPUs.
  sync "$input"
fi
# Into the page cache, and read twice: the second read of a page moves it
# from the inactive to the active LRU list (folio_mark_accessed), which would
# otherwise be the first timed run's work (its transfer took about 100 ms
# longer than the same row's later runs, whichever system ran first).
cat "$input" >/dev/null && cat "$input" >/dev/null

BENCH_INFILE=$input BENCH_TAG=$tag BENCH_WORK=$work BENCH_SOCK=$sockdir BENCH_BIN="$(cd "$build_dir" && pwd)/app/dpdk-millipede" \
BENCH_REPEATS=$repeats BENCH_BYTES=$bytes python3 "$MILLIPEDE_ROOT/tools/bench/transport_bench.py"
