#!/bin/sh
# RFC 2544 throughput of `dpdk-millipede tap`: binary searches of the offered
# rate for NDR (0 loss) and PDR (<= 0.1 % loss) per frame size and flow
# count, with a generator over memif (docs/benchmarks.md, "RFC 2544
# searches"). Writes $OUT/rfc2544.json, one PNG per search, and prints a
# one-line JSON table.
#
#   tools/bench/tap_rfc2544.sh            the full matrix (64/512/1518 B and IMIX x 1k/100k/1M
#                                         flows with the paced generator, a capture replayed,
#                                         and testpmd flowgen / txonly multi-flow / io; ~15-20 min)
#   tools/bench/tap_rfc2544.sh --quick    64 B x 1k flows, 0.5 s trials, 10 % resolution, one
#                                         testpmd run: proves the search end to end in ~1 min
#   tools/bench/tap_rfc2544.sh --pktgen   the same search through Pktgen-DPDK on a two-port
#                                         host (tools/bench/pktgen/README.md); says so and
#                                         exits 2 when `pktgen` is not on PATH
#   tools/bench/tap_rfc2544.sh selftest   the search on synthetic loss curves (no DPDK)
#
# Any further arguments go to tools/bench/rfc2544.py (`rfc2544.py matrix
# --help`: --sizes, --flows, --trial-seconds, --resolution, --max-trials, lcore
# maps, ...). Environment: BUILD (default build), OUT (default $BUILD/rfc2544),
# MILLIPEDE_DPDK_LOCK (held per search, as tools/test.sh; "" = none),
# MILLIPEDE_QUIET_FILE (wait while it exists before each search).
# Needs root, 2 MiB hugepages (falls back to --no-huge), dpdk-testpmd
# (Debian's dpdk package), python3-matplotlib for the plots.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
OUT=${OUT:-$BUILD/rfc2544}

case "${1:-}" in
selftest)
    exec python3 tools/bench/rfc2544.py selftest ;;
--pktgen)
    shift
    if ! command -v pktgen >/dev/null 2>&1; then
        echo "tap_rfc2544.sh: pktgen (Pktgen-DPDK) is not on PATH: it is not packaged in Debian 12;" \
             "build it from https://github.com/pktgen/Pktgen-DPDK (tools/bench/pktgen/README.md)" >&2
        exit 2
    fi
    exec python3 tools/bench/pktgen/pktgen_rfc2544.py "$@" ;;
esac

[ -d "$BUILD" ] || meson setup "$BUILD" -Dbuildtype=release >&2
ninja -C "$BUILD" app/dpdk-millipede tools/pacer/millipede-pacer >&2
command -v dpdk-testpmd >/dev/null 2>&1 || echo "tap_rfc2544.sh: no dpdk-testpmd (apt-get install dpdk); its runs will fail" >&2
exec python3 tools/bench/rfc2544.py matrix --build "$BUILD" --out "$OUT" "$@"
