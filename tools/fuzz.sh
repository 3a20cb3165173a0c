#!/usr/bin/env bash
# tools/fuzz.sh SECONDS - runs every libFuzzer target for SECONDS each.
#
# Builds the targets (clang, ASan+UBSan, into build-fuzz/), then runs each
# tests/fuzz/<name>_fuzz.cpp from its committed seed corpus
# (tests/fuzz/corpus/<name>/, read only) plus a work corpus that keeps what
# the run discovers (build-fuzz/fuzz/corpus/<name>/, so a later run goes on
# from there). Reports per target: executions, coverage (libFuzzer's cov =
# covered edges, ft = features), the work corpus size, and any crash, leak,
# timeout or UBSan report with the path of its reproducer. Exit status 0
# only when every target ran its time without a finding.
#
# Environment:
#   FUZZ_JOBS=N      targets run side by side (default 1; each uses one core)
#   FUZZ_FRESH=1     work corpus in a temporary folder, deleted afterwards
#                    (tools/test.sh: every run starts from the seeds alone)
#   FUZZ_TARGETS="a b"  only these (names without _fuzz)
#   FUZZ_RESULTS=F   also write one line per target to F:
#                    name<TAB>ok|finding|error<TAB>summary
#   FUZZ_NO_BUILD=1  use build-fuzz/ as it is
#
# A reproducer runs alone with: build-fuzz/tests/fuzz/<name>_fuzz <file>
# Keep it: add it to the seed corpus (tests/fuzz/make_corpus.py) and a
# GoogleTest regression case next to the parser's tests.
set -uo pipefail
source "$(dirname "$0")/lib/setup.sh"
cd "$MILLIPEDE_ROOT" || exit 1

usage() { echo "usage: tools/fuzz.sh SECONDS   (per target; e.g. 600)" >&2; exit 2; }
[ $# -eq 1 ] || usage
secs=$1
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 1 ] || usage

jobs=${FUZZ_JOBS:-1}
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "FUZZ_JOBS must be a number >= 1" >&2; exit 2; }

# Every tests/fuzz/<name>_fuzz.cpp is a target; one list for build and run.
all_targets=()
for f in tests/fuzz/*_fuzz.cpp; do
  n=$(basename "$f" _fuzz.cpp)
  all_targets+=("$n")
done
if [ -n "${FUZZ_TARGETS:-}" ]; then
  targets=()
  for n in $FUZZ_TARGETS; do
    [ -f "tests/fuzz/${n}_fuzz.cpp" ] || { echo "no fuzz target '$n' (have: ${all_targets[*]})" >&2; exit 2; }
    targets+=("$n")
  done
else
  targets=("${all_targets[@]}")
fi

for n in "${targets[@]}"; do
  [ -d "tests/fuzz/corpus/$n" ] || { echo "tests/fuzz/corpus/$n is missing (python3 tests/fuzz/make_corpus.py)" >&2; exit 2; }
done

results=${FUZZ_RESULTS:-}
[ -n "$results" ] && : >"$results"

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
  log "build libFuzzer targets with clang into build-fuzz/"
  if ! command -v clang++ >/dev/null; then
    log "clang++ is not installed (apt-get install clang libclang-rt-14-dev; tools/test.sh installs it)"
    exit 1
  fi
  bt0=$(date +%s)
  ninja_targets=()
  for n in "${targets[@]}"; do ninja_targets+=("tests/fuzz/${n}_fuzz"); done
  if ! CXX=clang++ build_into build-fuzz -Dfuzz=true -Dtests=disabled -Dbenchmarks=disabled -Dndpi=disabled \
         -Dbuildtype=debugoptimized ||
     ! timeout 1800 ninja -C build-fuzz "${ninja_targets[@]}" >build-fuzz/ninja-output.log 2>&1; then
    tail -30 build-fuzz/ninja-output.log >&2 2>/dev/null
    log "fuzz build failed"
    if [ -n "$results" ]; then
      for n in "${targets[@]}"; do printf '%s\terror\tbuild failed\n' "$n" >>"$results"; done
    fi
    exit 1
  fi
  log "fuzz build: $(( $(date +%s) - bt0 )) s"
fi

out=build-fuzz/fuzz
mkdir -p "$out/logs" "$out/artifacts"
tmp=""
if [ "${FUZZ_FRESH:-0}" = 1 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
fi

# Runs one target; its summary goes to $out/logs/<name>.result.
run_one() {
  local n=$1 bin="build-fuzz/tests/fuzz/$1_fuzz" logf="$out/logs/$1.log" work art
  if [ -n "$tmp" ]; then work="$tmp/$n"; else work="$out/corpus/$n"; fi
  art="$out/artifacts/$n/"
  mkdir -p "$work" "$art"
  rm -f "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-* "$art"/slow-unit-*
  if [ ! -x "$bin" ]; then
    printf 'error\t%s is not built\n' "$bin" >"$out/logs/$n.result"
    return
  fi
  # -timeout: one input running 25 s is a hang, reported like a crash.
  # halt_on_error: a UBSan report ends the run with a reproducer.
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    timeout -k 10 $((secs + 120)) "$bin" -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 -timeout=25 \
      -print_final_stats=1 -artifact_prefix="$art" "$work" "tests/fuzz/corpus/$n" >"$logf" 2>&1
  local rc=$?
  # The last status line ("#N DONE cov: C ft: F corp: K/B ...", or the
  # last progress line before a finding) carries the figures.
  local status execs cov ft corp
  status=$(grep -E '^#[0-9]+[[:space:]]' "$logf" | tail -1)
  execs=$(sed -nE 's/^stat::number_of_executed_units:[[:space:]]*([0-9]+).*/\1/p' "$logf" | tail -1)
  [ -n "$execs" ] || execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$status")
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$status")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$status")
  corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$status")
  local figures="execs ${execs:-?} cov ${cov:-?} ft ${ft:-?} corpus ${corp:-?}"
  local repro
  repro=$(ls -t "$art" 2>/dev/null | head -1)
  if [ "$rc" -eq 0 ] && [ -z "$repro" ]; then
    printf 'ok\t%s\n' "$figures" >"$out/logs/$n.result"
  elif [ -n "$repro" ]; then
    local why
    why=$(grep -m1 -E '^SUMMARY: |ERROR: libFuzzer: |runtime error: ' "$logf" | sed -E 's/^==[0-9]+== ?//')
    printf 'finding\t%s; %s; reproducer %s%s; log %s\n' "$figures" "${why:-exit status $rc}" "$art" "$repro" \
      "$logf" >"$out/logs/$n.result"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    printf 'error\t%s; killed after %s s without finishing; log %s\n' "$figures" "$((secs + 120))" "$logf" \
      >"$out/logs/$n.result"
  else
    printf 'error\t%s; exit status %s, no reproducer; log %s\n' "$figures" "$rc" "$logf" >"$out/logs/$n.result"
  fi
}

log "fuzz ${#targets[@]} targets for $secs s each, $jobs at a time"
running=0
for n in "${targets[@]}"; do
  rm -f "$out/logs/$n.result"
  run_one "$n" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

bad=0
printf '%-18s %-8s %s\n' target result details
for n in "${targets[@]}"; do
  r="$out/logs/$n.result"
  if [ -f "$r" ]; then
    IFS=$'\t' read -r verdict detail <"$r"
  else
    verdict=error detail="no result (the run did not finish)"
  fi
  printf '%-18s %-8s %s\n' "$n" "$verdict" "$detail"
  [ -n "$results" ] && printf '%s\t%s\t%s\n' "$n" "$verdict" "$detail" >>"$results"
  [ "$verdict" = ok ] || bad=$((bad + 1))
done
if [ "$bad" -gt 0 ]; then
  log "$bad of ${#targets[@]} fuzz targets failed; re-run a reproducer with build-fuzz/tests/fuzz/<name>_fuzz <file>"
  exit 1
fi
log "all ${#targets[@]} fuzz targets ran $secs s without a finding"
