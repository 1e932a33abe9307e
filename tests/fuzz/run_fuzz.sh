#!/usr/bin/env bash
# Fuzzes the safetensors reader with libFuzzer (+ ASan, UBSan).
#
# Usage: tests/fuzz/run_fuzz.sh [seconds]        (default 60)
# Environment: BUILD_DIR (default <repo>/build-fuzz), JOBS (parallel fuzzing processes, default 1).
#
# Configures tests/fuzz standalone with clang, builds fuzz_safetensors, fuzzes a copy of the seed
# corpus (the committed corpus is never modified) for the given time, prints the executions count
# and exits non-zero on a finding. A crashing input is saved as <BUILD_DIR>/artifacts/crash-*:
# fix the reader, then keep the input under tests/data/fuzz_regressions/.
set -euo pipefail

seconds="${1:-60}"
jobs="${JOBS:-1}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$repo/build-fuzz}"

CC=clang CXX=clang++ cmake -S "$repo/tests/fuzz" -B "$build" -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" --target fuzz_safetensors -j"$(nproc)" >/dev/null

work="$build/corpus-work"
artifacts="$build/artifacts"
mkdir -p "$work" "$artifacts"
cp "$repo"/tests/fuzz/corpus/safetensors/* "$work"/
if compgen -G "$repo/tests/data/fuzz_regressions/*" >/dev/null; then
  cp "$repo"/tests/data/fuzz_regressions/* "$work"/
fi

log="$build/fuzz.log"
parallel=()
if [ "$jobs" -gt 1 ]; then
  # Each job writes fuzz-<n>.log into the current directory: the build directory (cd below).
  parallel=(-jobs="$jobs" -workers="$jobs")
  rm -f "$build"/fuzz-*.log
fi
status=0
(cd "$build" && ./fuzz_safetensors -max_len=65536 -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=2048 -dict="$repo/tests/fuzz/safetensors.dict" -artifact_prefix="$artifacts/" \
  -print_final_stats=1 "${parallel[@]}" "$work") >"$log" 2>&1 || status=$?

if [ "$jobs" -gt 1 ]; then
  executions=$(cat "$build"/fuzz-*.log | awk '/stat::number_of_executed_units/ {sum += $2} END {print sum + 0}')
  cat "$build"/fuzz-*.log >>"$log"
else
  executions=$(awk '/stat::number_of_executed_units/ {sum += $2} END {print sum + 0}' "$log")
fi
echo "fuzz_safetensors: ${executions} executions in ${seconds} s over $(ls "$work" | wc -l) corpus inputs (log: $log)"
if [ "$status" -ne 0 ]; then
  echo "fuzz_safetensors: FINDING (exit status $status); inputs in $artifacts:" >&2
  ls -1 "$artifacts" >&2 || true
  grep -m1 -A20 -E "ERROR: (AddressSanitizer|libFuzzer|UndefinedBehaviorSanitizer)|runtime error|invariant failed|uncaught|deadly" "$log" >&2 || tail -30 "$log" >&2
fi
exit "$status"
