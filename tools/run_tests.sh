#!/usr/bin/env bash
# Everything CI checks, from a fresh Debian 12 machine (no GPU needed), in one command:
#   1. Release build, the whole ctest suite (incl. the slow 750-epoch runs on every backend, the CLI,
#      packaging and compile-fail tests); the CUDA flavour is compiled with nvcc when nvcc exists
#   2. the test suite again under AddressSanitizer + UndefinedBehaviorSanitizer (Debug, g++)
#   3. the CPU backend's tests under ThreadSanitizer (clang, LLVM OpenMP with its Archer race checker)
#   4. the safetensors reader under libFuzzer for FUZZ_SECONDS (default 60)
# Steps can be picked: tools/run_tests.sh release asan tsan fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
steps=("$@")
((${#steps[@]})) || steps=(release asan tsan fuzz)
tools/install_deps.sh
jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1
started=$(date +%s)
for step in "${steps[@]}"; do
  echo "=== $step ($(($(date +%s) - started)) s) ==="
  case "$step" in
    release)
      cmake --preset release
      cmake --build --preset release -j "$jobs"
      ctest --preset release -j "$jobs"
      ;;
    asan)
      cmake --preset asan
      cmake --build --preset asan -j "$jobs"
      ctest --preset asan -j "$jobs"
      ;;
    tsan)
      cmake --preset tsan
      cmake --build --preset tsan -j "$jobs" --target tinyattn_core_tests
      cmake --build --preset tsan -j "$jobs" --target tsan_planted_race
      # Archer (LLVM OpenMP's TSan support) makes OpenMP's own synchronisation visible to TSan; the
      # uninstrumented OpenMP runtime itself is left out. tsan.reports_a_planted_race proves a race is seen.
      OMP_TOOL_LIBRARIES=/usr/lib/llvm-14/lib/libarcher.so OMP_NUM_THREADS=2 \
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ignore_noninstrumented_modules=1" \
        ctest --preset tsan -j 1
      ;;
    fuzz)
      tests/fuzz/run_fuzz.sh "${FUZZ_SECONDS:-60}"
      ;;
    *)
      echo "run_tests: unknown step '$step' (release, asan, tsan, fuzz)" >&2
      exit 2
      ;;
  esac
done
echo "=== all passed ($(($(date +%s) - started)) s) ==="
