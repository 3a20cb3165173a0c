#!/usr/bin/env bash
# tools/test.sh - the project's test command (CI runs it through .ci/run).
#
# On a fresh Debian 12 machine, as root: installs the missing packages,
# builds into build/, runs every suite with a time bound per test (unit,
# eal, pcap, sim, transport, interop), builds and runs the unit and EAL suites once more under
# AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/), builds the
# libFuzzer targets with clang (build-fuzz/) and runs each briefly.
# Ends with one line: "N passed, N failed".
#
# Environment: FUZZ_SECONDS (per target, default 20), SKIP_ASAN=1, SKIP_FUZZ=1.
set -uo pipefail
source "$(dirname "$0")/lib/setup.sh"
cd "$MILLIPEDE_ROOT"

passed=0
failed=0
failures=()

fail_stage() { failed=$((failed + 1)); failures+=("$1"); log "FAILED: $1"; }

# Adds the results of one `meson test` run from its testlog.json.
tally_meson() {
  local dir=$1 label=$2 log="$1/meson-logs/testlog.json"
  [ -f "$log" ] || { fail_stage "$label: no test log"; return; }
  local counts
  counts=$(python3 - "$log" "$label" <<'PY'
import json, sys
ok = bad = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    r = t["result"]
    if r in ("OK", "EXPECTEDFAIL", "SKIP"):
        ok += 1
    else:
        bad += 1
        print(f"{sys.argv[2]}: {t['name']} {r}", file=sys.stderr)
print(ok, bad)
PY
  )
  local ok bad
  read -r ok bad <<<"$counts"
  passed=$((passed + ok))
  failed=$((failed + bad))
  [ "$bad" -gt 0 ] && failures+=("$label: $bad test(s)")
}

install_packages || { echo "0 passed, 1 failed"; exit 1; }
reserve_hugepages 512

log "build (release) into build/"
if ! { build_into build -Dbuildtype=release && timeout 2400 ninja -C build; }; then
  fail_stage "build"
  echo "$passed passed, $failed failed"
  exit 1
fi

log "tests: unit, eal, pcap, sim, transport, interop"
timeout 3600 meson test -C build --no-rebuild --print-errorlogs \
  --suite unit --suite eal --suite pcap --suite sim --suite transport --suite interop
tally_meson build "release"

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  log "build with ASan+UBSan into build-asan/"
  if build_into build-asan -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
       -Dbenchmarks=disabled && timeout 2400 ninja -C build-asan; then
    log "tests under ASan+UBSan: unit, eal, sim (fewer seeds)"
    # halt_on_error: any UBSan report fails the test, not just a line in a log.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    MILLIPEDE_SIM_SEEDS=${MILLIPEDE_SIM_SEEDS_ASAN:-200} \
      timeout 3000 meson test -C build-asan --no-rebuild --print-errorlogs --suite unit --suite eal --suite sim \
        --timeout-multiplier 3
    tally_meson build-asan "asan"
  else
    fail_stage "build-asan"
  fi
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  log "build libFuzzer targets with clang into build-fuzz/"
  targets=(net_parse_fuzz tcp_segment_fuzz stripe_native_fuzz stripe_compat_fuzz)
  if CXX=clang++ build_into build-fuzz -Dfuzz=true -Dtests=disabled -Dbenchmarks=disabled -Dndpi=disabled \
       -Dbuildtype=debugoptimized &&
     timeout 1800 ninja -C build-fuzz "${targets[@]/#/tests/fuzz/}"; then
    for t in "${targets[@]}"; do
      corpus=$(mktemp -d)
      log "fuzz $t for ${FUZZ_SECONDS:-20} s"
      if timeout $(( ${FUZZ_SECONDS:-20} + 120 )) "build-fuzz/tests/fuzz/$t" -max_total_time="${FUZZ_SECONDS:-20}" \
           -max_len=4096 -rss_limit_mb=2048 "$corpus" >"build-fuzz/$t.log" 2>&1; then
        passed=$((passed + 1))
        log "fuzz $t: $(grep -E '^#[0-9]+.*DONE' "build-fuzz/$t.log" | tail -1)"
      else
        tail -30 "build-fuzz/$t.log" >&2
        fail_stage "fuzz $t"
      fi
      rm -rf "$corpus"
    done
  else
    fail_stage "build-fuzz"
  fi
fi

for f in "${failures[@]}"; do log "failed: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
