#!/bin/sh
# Builds bench-classifier and runs the standard configurations of
# docs/benchmarks.md ("Flow classifier"): hash, pending and busy+migrate over
# 8 workers, 1M flows, Zipf 1.0, 64-byte frames. Prints one JSON line per run.
#
#   tools/bench/classifier.sh [repeats] [extra bench options...]
#
# Environment: BUILD (default build), LCORES (default 0@0,1@1), PACKETS
# (trace length, default 4000000; 2000000 when only 512 hugepages are free),
# NICE (default -20: the runs compete with whatever else the machine does;
# set NICE=0 to run at normal priority).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
LCORES=${LCORES:-0@0,1@1}
NICE=${NICE:--20}
REPEATS=${1:-1}
[ $# -gt 0 ] && shift

[ -d "$BUILD" ] || meson setup "$BUILD" >&2
ninja -C "$BUILD" tools/bench-classifier >&2

# Hugepages: 2 GiB of 2 MiB pages if we may reserve them (root); otherwise
# fall back to anonymous memory (--no-huge -m), which is slower (4 KiB TLB).
MEM="--no-huge -m 3072"
if [ "$(id -u)" = 0 ]; then
    have=$(cat /proc/sys/vm/nr_hugepages)
    [ "$have" -ge 1024 ] || echo 1024 > /proc/sys/vm/nr_hugepages || true
    if ! grep -q hugetlbfs /proc/mounts; then
        mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages || true
    fi
fi
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
PACKETS=${PACKETS:-4000000}
if [ "${free:-0}" -ge 900 ] && grep -q hugetlbfs /proc/mounts; then
    MEM=""
elif [ "${free:-0}" -ge 500 ] && grep -q hugetlbfs /proc/mounts && [ "$PACKETS" -gt 2000000 ]; then
    # Half the trace on hugepages rather than all of it on 4 KiB pages: with
    # 4 KiB pages every flow-state miss is a TLB miss too (the random-access
    # probe: about 1,200 instead of 460 cycles on the shared VM).
    PACKETS=2000000
    MEM="-m 1000"
fi

run() {
    timeout -s KILL 600 nice -n "$NICE" "$BUILD/tools/bench-classifier" \
        --lcores "$LCORES" --file-prefix benchc --no-pci --log-level=lib.eal:error $MEM -- \
        --flows 1000000 --packets "$PACKETS" --zipf 1.0 --size 64 --workers 8 --rounds 5 "$@" 2>/dev/null | tail -n 1
    # The rte_distributor run skips rte_eal_cleanup() (its workers may still
    # hold the lock), and a killed run cleans nothing: free the hugepages here.
    rm -f /dev/hugepages/benchc* 2>/dev/null
    rm -rf /var/run/dpdk/benchc 2>/dev/null
}

i=0
while [ "$i" -lt "$REPEATS" ]; do
    run --policy hash "$@"
    run --policy pending "$@"
    run --policy busy --migrate "$@"
    i=$((i + 1))
done
