#!/bin/sh
# Packets per second through `dpdk-millipede tap` with nDPI, on a looped
# replay of real captures (net_pcap infinite_rx=1: each file is loaded into
# mbufs once and replayed forever), for 1 and 2 workers and each policy,
# with the order checker off and on (--check-order: the test instrument's
# cost shows in the workers' cycles per packet). Prints one JSON line per
# run (docs/benchmarks.md, "tap with nDPI").
#
#   tools/bench/tap.sh [seconds]          # default 10 s per run
#
# Environment: BUILD (default build-tap), BIN (a binary to run instead of
# building $BUILD's), LCORES (default 0@0,1@1,2@0:
# lcore 1 on CPU 1 receives and classifies, lcore 2 on CPU 0 runs every
# logical worker, the main lcore shares CPU 0 and mostly sleeps), PCAPS
# (default ../shared/pcaps), CAPTURES (file names, default a mix with an
# L7 verdict each; not http_ipv6.pcap: its frames exceed one mbuf, which
# net_pcap's infinite_rx refuses), NICE (default -20), WORKERS (default "1 2"), REPEATS (rounds over all
# configurations, default 1),
# POLICIES (default "hash pending busy busy+migrate"), CHECK_ORDER (default
# "off on": runs without and with --check-order, one after the other),
# FLOWS (instead of CAPTURES: a capture of that many concurrent UDP flows,
# written once by tools/bench/many_flows_pcap.py into $BUILD, so per-flow
# state is out of cache as on a busy mirror port), EXTRA (more tap options;
# EXTRA="--replay-pps N" offers every configuration the same N packets per
# second, and the line then has the replay's offered and missed packets;
# tools/bench/tap_sweep.py sweeps rates that way).
# Uses 2 MiB hugepages when 512 are free (its own --file-prefix, removed
# afterwards), else --no-huge.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-tap}
LCORES=${LCORES:-0@0,1@1,2@0}
PCAPS=${PCAPS:-../shared/pcaps}
CAPTURES=${CAPTURES:-"whatsapp.pcap quic.pcap dropbox.pcap tor.pcap bittorrent.pcap teamviewer.pcap openvpn.pcap"}
NICE=${NICE:--20}
WORKERS=${WORKERS:-"1 2"}
POLICIES=${POLICIES:-"hash pending busy busy+migrate"}
CHECK_ORDER=${CHECK_ORDER:-"off on"}
EXTRA=${EXTRA:-}
SECONDS_PER_RUN=${1:-10}
PREFIX=benchtap$$

# BIN: a dpdk-millipede binary to run as it is (e.g. one built from an
# earlier commit for an A/B comparison); default: build $BUILD's.
BIN=${BIN:-}
if [ -z "$BIN" ]; then
    [ -d "$BUILD" ] || meson setup "$BUILD" -Dbuildtype=release >&2
    ninja -C "$BUILD" app/dpdk-millipede >&2
    BIN="$BUILD/app/dpdk-millipede"
fi

VDEVS=""
i=0
FLOWS=${FLOWS:-}
if [ -n "$FLOWS" ]; then
    many="$BUILD/bench-flows-$FLOWS.pcap"
    [ -f "$many" ] || python3 tools/bench/many_flows_pcap.py "$many" "$FLOWS"
    PCAPS=$(dirname "$many")
    CAPTURES=$(basename "$many")
    # net_pcap's infinite_rx holds the whole file in the pool: 2 packets per flow.
    EXTRA="$EXTRA --mbufs $((2 * FLOWS + 8191 + 2 * 4096))"
fi
for c in $CAPTURES; do
    [ -f "$PCAPS/$c" ] || { echo "tap.sh: no capture $PCAPS/$c" >&2; exit 2; }
    VDEVS="$VDEVS --vdev net_pcap$i,rx_pcap=$PCAPS/$c,infinite_rx=1"
    i=$((i + 1))
done

MEM="--no-huge -m 1024"
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "${free:-0}" -ge 512 ] && grep -q hugetlbfs /proc/mounts; then MEM="-m 768"; fi
cleanup() { rm -f /dev/hugepages/"$PREFIX"* 2>/dev/null || true; }
trap cleanup EXIT

# REPEATS rounds, each over every configuration: on a shared machine the
# noise then spreads over all policies alike instead of favouring the ones
# that ran while it was quiet (docs/benchmarks.md: compare medians).
REPEATS=${REPEATS:-1}
rep=0
while [ "$rep" -lt "$REPEATS" ]; do
rep=$((rep + 1))
for w in $WORKERS; do
    for pol in $POLICIES; do
      for check in $CHECK_ORDER; do
        case $pol in
        *+migrate) args="--policy ${pol%+migrate} --migrate" ;;
        *) args="--policy $pol" ;;
        esac
        [ "$check" = on ] && args="$args --check-order"
        load=$(cut -d' ' -f1 /proc/loadavg)
        # shellcheck disable=SC2086
        out=$(timeout -s KILL $((SECONDS_PER_RUN + 120)) nice -n "$NICE" "$BIN" \
            --lcores "$LCORES" --file-prefix "$PREFIX" --no-pci --log-level=lib.eal:error $MEM $VDEVS -- \
            tap --workers "$w" $args --duration "$SECONDS_PER_RUN" --summary - $EXTRA 2>/dev/null | tail -n 1)
        cleanup
        printf '%s\n' "$out" | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
w = s["per_worker"]
offered = [x["dispatched"] for x in w]
done = [x["processed"] for x in w]
imb = lambda v: max(v) / (sum(v) / len(v)) if sum(v) else 0.0
print(json.dumps({
    "workers": s["workers"], "policy": s["policy"], "migrate": s["migrate"], "seconds": round(s["seconds"], 3),
    "rx_mpps": round(s["packets"] / s["seconds"] / 1e6, 3),
    "inspected_mpps": round(s["classified"] / s["seconds"] / 1e6, 3),
    "ring_drops": s["drops"]["ring_full"], "drop_share": round(s["drops"]["ring_full"] / max(s["packets"], 1), 4),
    "imbalance_offered": round(imb(offered), 3), "imbalance_processed": round(imb(done), 3),
    "busy_share": [x["busy_share"] for x in w], "dpi_packets": s["dpi"]["packets"],
    "flows": sum(s["flows"].values()), "migrations": s["migrations"],
    "check_order": s["correctness"]["checked"],
    "cycles_per_packet": s["cycles_per_packet"],
    "correctness": s["correctness"], "lcores": sys.argv[1], "load_before": float(sys.argv[2]),
    "memory": sys.argv[3],
    "replay": s.get("replay")}))
' "$LCORES" "$load" "$MEM"
      done
    done
done
done
