#!/usr/bin/env bash
# tools/demo.sh - the main job, end to end, on a fresh Debian 12 machine.
#
# Today the main job is the flow classifier: real captures are replayed
# through DPDK's net_pcap device into `dpdk-millipede tap`, which pins every
# flow to one of four workers (busy policy, migration on) and proves order
# and pinning with its correctness counters. (When the transport lands, this
# script moves a pipe instead.)
#
# usage: tools/demo.sh [CAPTURE.pcap ...]   (default: every capture in ../shared/pcaps)
set -uo pipefail
source "$(dirname "$0")/lib/setup.sh"
cd "$MILLIPEDE_ROOT"

install_packages || { echo "FAIL could not install the Debian packages"; exit 1; }
reserve_hugepages 512
log "building into build/"
if ! { build_into build -Dbuildtype=release && timeout 2400 ninja -C build >/dev/null; }; then
  echo "FAIL build"
  exit 1
fi

captures=("$@")
if [ ${#captures[@]} -eq 0 ]; then
  shopt -s nullglob
  captures=("$MILLIPEDE_ROOT"/../shared/pcaps/*.pcap "$MILLIPEDE_ROOT"/../shared/pcaps/*.pcapng)
fi
if [ ${#captures[@]} -eq 0 ]; then
  echo "FAIL no capture: give one, e.g. tools/demo.sh traffic.pcap"
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
  json=$(timeout -s KILL 120 build/app/dpdk-millipede "${eal[@]}" --vdev "net_pcap0,rx_pcap=$c" -- \
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
