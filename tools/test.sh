#!/usr/bin/env bash
# tools/test.sh - the project's test command (CI runs it through .ci/run).
#
# On a fresh Debian 12 machine, as root: installs the missing packages,
# builds into build/, runs every suite (unit, sim, then eal, pcap,
# transport, interop), builds and runs the unit, sim and EAL suites once more
# under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/), and runs
# every libFuzzer target briefly from its seed corpus (tools/fuzz.sh).
#
# Counting: every test and every fuzz target is passed, failed or skipped.
# A skip counts as skipped only when the test is listed, with its reason, in
# tests/allowed_skips.txt; any other skip counts as failed (and is printed
# with the reason the test gave). A test that never ran (meson killed by the
# outer limit, or ended early) counts as failed; so does a non-zero exit of
# meson that no test explains, and a build that fails. The last line is
# "N passed, N failed, N skipped"; the exit status is 0 only with 0 failed.
#
# Time: each `meson test` run is bounded by the sum of its tests' own
# timeouts (meson introspect --tests) plus slack, and the whole run by
# MILLIPEDE_TEST_BUDGET seconds (default 4800 = 80 min, inside CI's 90), so
# the last line is printed even when something hangs. docs/development.md
# lists how long each stage takes.
#
# Environment:
#   SUITES="unit sim eal pcap transport interop package appliance"
#                                suites of the release run (package: meson
#                                install, the man page, the .deb in an
#                                mmdebstrap chroot; appliance: the image
#                                booted under QEMU, tests/appliance)
#   ASAN_SUITES="unit sim eal"   suites of the sanitizer run
#   SKIP_ASAN=1, SKIP_FUZZ=1     leave those stages out
#   FUZZ_SECONDS=20              per fuzz target
#   MILLIPEDE_TEST_BUDGET=4800   seconds for the whole run
#   MILLIPEDE_DPDK_LOCK=/tmp/millipede-dpdk.lock  held while suites that
#                                start DPDK run ("" = no lock); on a shared
#                                machine it keeps runs from competing
set -uo pipefail
source "$(dirname "$0")/lib/setup.sh"
cd "$MILLIPEDE_ROOT" || exit 1

t_start=$(date +%s)
budget=${MILLIPEDE_TEST_BUDGET:-4800}
lock=${MILLIPEDE_DPDK_LOCK-/tmp/millipede-dpdk.lock}
allowed=tests/allowed_skips.txt
tally="python3 tools/lib/meson_tally.py"

passed=0
failed=0
skipped=0
failures=()
stage_times=()

fail_stage() { failed=$((failed + 1)); failures+=("$1"); log "FAILED: $1"; }
remaining() { echo $((budget - ($(date +%s) - t_start))); }
record_time() { stage_times+=("$1: $2 s"); log "$1 took $2 s"; }

finish() {
  log "stage times: $(IFS=';'; echo "${stage_times[*]}") (total $(( $(date +%s) - t_start )) s)"
  for f in "${failures[@]}"; do log "failed: $f"; done
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
  exit
}

# DPDK suites: is any of these suites one that starts DPDK processes?
needs_dpdk() {
  local s
  for s in "$@"; do case $s in eal | pcap | transport | interop) return 0 ;; esac; done
  return 1
}

# run_suites LABEL BUILD_DIR MULTIPLIER SUITE... : one bounded `meson test`
# run, tallied from its testlog.json.
run_suites() {
  local label=$1 dir=$2 mult=$3
  shift 3
  local suites=("$@") limit ntests left fd=""
  if ! read -r limit ntests < <($tally limit "$dir" "$mult" "${suites[@]}"); then
    fail_stage "$label: cannot derive the time limit from the tests' timeouts"
    return
  fi
  if [ -z "${no_run:-}" ] && [ -n "$lock" ] && needs_dpdk "${suites[@]}"; then
    # Before the limit is computed: waiting for the lock uses up budget.
    exec {fd}>>"$lock"
    log "$label: waiting for the DPDK lock $lock"
    flock "$fd"
  fi
  left=$(( $(remaining) - 30 ))
  if [ -n "${no_run:-}" ]; then
    log "$label: $no_run; its $ntests tests do not run"
    limit=0
  elif [ "$left" -lt 60 ]; then
    log "$label: no time left in the budget ($budget s); its $ntests tests do not run"
    limit=0
  elif [ "$left" -lt "$limit" ]; then
    log "$label: $ntests tests, limit $limit s from their timeouts, cut to the $left s left in the budget"
    limit=$left
  else
    log "$label: $ntests tests, limit $limit s (the sum of their timeouts x $mult, plus slack)"
  fi
  local meson_args=(-C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier "$mult")
  local s
  for s in "${suites[@]}"; do meson_args+=(--suite "$s"); done
  rm -f "$dir/meson-logs/testlog.json"
  local status=0 t0
  if [ "$limit" -gt 0 ]; then
    t0=$(date +%s)
    # SIGTERM at the limit: meson stops its running tests and writes its
    # log; SIGKILL 30 s later if it does not. The lock's fd stays with us.
    # meson's report goes to stderr: stdout carries only the final line.
    if [ -n "$fd" ]; then
      timeout -k 30 "$limit" meson test "${meson_args[@]}" {fd}>&- >&2
    else
      timeout -k 30 "$limit" meson test "${meson_args[@]}" >&2
    fi
    status=$?
    [ "$status" -eq 124 ] && log "$label: killed by the outer limit of $limit s"
    record_time "$label" $(( $(date +%s) - t0 ))
  else
    status=1
  fi
  if [ -n "$fd" ]; then exec {fd}>&-; fi
  local counts p f k
  counts=$($tally tally "$dir" "$label" "$status" "$allowed" "${suites[@]}")
  read -r p f k <<<"$counts"
  if [ -z "${k:-}" ]; then
    fail_stage "$label: the test log could not be read"
    return
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + k))
  [ "$f" -gt 0 ] && failures+=("$label: $f of $ntests tests")
  log "$label: $p passed, $f failed, $k skipped"
}

# build LABEL DIR MESON_OPTION... : configure and build, timed and bounded.
build() {
  local label=$1 dir=$2
  shift 2
  local t0 left
  t0=$(date +%s)
  left=$(( $(remaining) - 60 ))
  if [ "$left" -lt 60 ]; then
    fail_stage "$label: no time left in the budget"
    return 1
  fi
  [ "$left" -gt 2400 ] && left=2400
  log "$label: building into $dir/"
  if build_into "$dir" "$@" && timeout "$left" ninja -C "$dir" >"$dir/ninja-output.log" 2>&1; then
    record_time "$label" $(( $(date +%s) - t0 ))
    return 0
  fi
  tail -40 "$dir/ninja-output.log" >&2 2>/dev/null
  fail_stage "$label"
  return 1
}

t0=$(date +%s)
install_packages || { fail_stage "packages"; finish; }
reserve_hugepages 512
record_time "packages" $(( $(date +%s) - t0 ))

if ! $tally check-allowed "$allowed"; then
  fail_stage "$allowed is malformed"
fi

# split_suites SUITE...: pure (no EAL) suites in $pure, DPDK ones in $dpdk.
split_suites() {
  pure=() dpdk=()
  local s
  for s in "$@"; do
    if needs_dpdk "$s"; then dpdk+=("$s"); else pure+=("$s"); fi
  done
}

# package and appliance are bounded like every suite, by their tests'
# timeouts (deb_chroot 1500 s, appliance_boot 900 s); package runs first
# (pure), so the appliance reuses its .deb.
read -r -a suites <<<"${SUITES:-unit sim eal pcap transport interop package appliance}"
no_run=""
build "build" build -Dbuildtype=release || no_run="the build failed"
# Pure suites first, without the DPDK lock; then the DPDK ones, holding it.
# After a failed build they are still tallied: each counts as never run.
split_suites "${suites[@]}"
[ ${#pure[@]} -gt 0 ] && run_suites "tests ${pure[*]}" build 1 "${pure[@]}"
[ ${#dpdk[@]} -gt 0 ] && run_suites "tests ${dpdk[*]}" build 1 "${dpdk[@]}"

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  read -r -a asan_suites <<<"${ASAN_SUITES:-unit sim eal}"
  no_run=""
  build "build-asan" build-asan -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbenchmarks=disabled || no_run="the build failed"
  # halt_on_error: any UBSan report fails the test, not just a line in a log.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  export MILLIPEDE_SIM_SEEDS=${MILLIPEDE_SIM_SEEDS_ASAN:-200}
  split_suites "${asan_suites[@]}"
  [ ${#pure[@]} -gt 0 ] && run_suites "asan ${pure[*]}" build-asan 3 "${pure[@]}"
  [ ${#dpdk[@]} -gt 0 ] && run_suites "asan ${dpdk[*]}" build-asan 3 "${dpdk[@]}"
  unset ASAN_OPTIONS UBSAN_OPTIONS MILLIPEDE_SIM_SEEDS
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  fuzz_seconds=${FUZZ_SECONDS:-20}
  ntargets=$(ls tests/fuzz/*_fuzz.cpp | wc -l)
  # fuzz.sh: build (bounded by 1800 s) + ceil(targets / 2) rounds of at most
  # fuzz_seconds + 120 s each (its per-target limit).
  need=$(( 1800 + (ntargets + 1) / 2 * (fuzz_seconds + 120) ))
  left=$(( $(remaining) - 30 ))
  if [ "$left" -lt 120 ]; then
    failed=$((failed + ntargets))
    failures+=("fuzz: no time left in the budget; $ntargets targets did not run")
    log "FAILED: fuzz: no time left in the budget; $ntargets targets did not run"
  else
    [ "$left" -lt "$need" ] && need=$left
    results=$(mktemp)
    t0=$(date +%s)
    FUZZ_JOBS=2 FUZZ_FRESH=1 FUZZ_RESULTS="$results" timeout -k 30 "$need" tools/fuzz.sh "$fuzz_seconds" >&2
    record_time "fuzz (build + $ntargets targets x $fuzz_seconds s, 2 at a time)" $(( $(date +%s) - t0 ))
    for f in tests/fuzz/*_fuzz.cpp; do
      n=$(basename "$f" _fuzz.cpp)
      line=$(grep -P "^\Q$n\E\t" "$results" | head -1)
      verdict=$(cut -f2 <<<"$line")
      if [ "$verdict" = ok ]; then
        passed=$((passed + 1))
      else
        fail_stage "fuzz $n: ${line:-never ran (tools/fuzz.sh was stopped before it)}"
      fi
    done
    rm -f "$results"
  fi
fi

finish
