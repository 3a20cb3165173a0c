#!/usr/bin/env bash
# tools/bench/compress.sh - `compress` against gzip -1 | socat and zstd -1 | socat, one JSON object.
#
#   tools/bench/compress.sh [repeats]          (default 1)
#
# Two compressible inputs, each made once and read once beforehand (page cache):
#   text   BENCH_TEXT_BYTES (default 64 MiB) of plain-text files from
#          /usr/share/common-licenses and /usr/share/doc (no .gz, no NUL in
#          the first MiB; sorted path order), concatenated and repeated
#   tar    the first BENCH_TAR_BYTES (default 256 MiB) of `tar cf - -C / usr/share`
# Systems, each from the sender's start until both ends exited, the receiver
# listening first:
#   millipede_compress  dpdk-millipede tx `compress` -> 2 memif links, 4 legs -> rx > /dev/null
#                       (--compress-threads BENCH_COMPRESS_THREADS, default 1, both sides)
#   millipede_raw       the same without `compress`
#   gzip1_socat         gzip -1 | socat -u STDIN TCP:127.0.0.1 -> socat -u TCP-LISTEN STDOUT | gzip -dc > /dev/null
#   zstd1_socat         the same with zstd -1 / zstd -dc
# A run counts only with exit 0 on both ends (dpdk-millipede: rx verified
# length and CRC-64 of the original bytes; gzip/zstd: their own checks).
# The JSON: per input and system, the runs' seconds, MB/s of original bytes,
# the ratio (original / bytes that crossed: dpdk-millipede's tx "compress:"
# line, payload only, without chunk headers; gzip/zstd: their output size),
# CPU seconds of each side (wait4, children included), the load average,
# and the commands. The machine may be shared: see "load" in the JSON.
#
# Environment: BENCH_BIN (build/app/dpdk-millipede), BENCH_TEXT_BYTES, BENCH_TAR_BYTES,
# BENCH_COMPRESS_THREADS, BENCH_RX_LCORES (0@0), BENCH_TX_LCORES (0@1), BENCH_SYSTEMS
# (space-separated subset of the four names).
set -uo pipefail
source "$(dirname "$0")/../lib/setup.sh"
cd "$MILLIPEDE_ROOT"

repeats=${1:-1}
case "$repeats" in ''|*[!0-9]*|0) echo "usage: $0 [repeats >= 1]" >&2; exit 2;; esac
if [ "$(id -u)" -ne 0 ]; then echo "$0: needs root (hugepages for memif)" >&2; exit 1; fi
for tool in socat gzip zstd tar; do
  command -v "$tool" >/dev/null || { echo "$0: needs $tool (apt-get install $tool)" >&2; exit 1; }
done
reserve_hugepages 512
free_pages=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "$MILLIPEDE_HUGEPAGES" != 1 ] || [ "${free_pages:-0}" -lt 260 ]; then
  echo "$0: memif needs 260 free 2 MiB hugepages (have ${free_pages:-0})" >&2
  exit 1
fi
bin=${BENCH_BIN:-$MILLIPEDE_ROOT/build/app/dpdk-millipede}
[ -x "$bin" ] || { echo "$0: no $bin (build it first)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/millipede-zbench.XXXXXX")
tag="mpz$$"
cleanup() {
  rm -rf "$work"
  rm -f /dev/hugepages/"${tag}"* 2>/dev/null
  rm -rf /var/run/dpdk/"${tag}"* 2>/dev/null
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

BENCH_BIN=$bin BENCH_WORK=$work BENCH_TAG=$tag BENCH_REPEATS=$repeats \
  python3 "$MILLIPEDE_ROOT/tools/bench/compress_bench.py"
