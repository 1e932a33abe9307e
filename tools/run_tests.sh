#!/usr/bin/env bash
# Everything CI checks, from a fresh Debian 12 machine (no GPU needed), in one command:
#   0. the layout of every C++ file against .clang-format (tools/check_format.sh; seconds)
#   1. Release build, the whole ctest suite (incl. the slow 750-epoch runs, the programs and their CLI,
#      packaging and compile-fail tests); with a GPU (nvidia-smi sees one) the CUDA test suite too. The
#      benchmarks (bench/) are not built here: CI's time goes to tests (bench/run_*.sh build them)
#   2. the library's tests again under AddressSanitizer + UndefinedBehaviorSanitizer (Debug -O1, g++):
#      core, IO and plot, less the 750-epoch runs (labelled slow) and the numerical-agreement suites
#      (parity with PyTorch, finite differences, peer weights), and without the example programs, whose
#      CLI tests run whole trainings (minutes each there) of the engine code these tests run; the model's
#      tests over the CPU backend, the Thrust backend's through its primitives' tests
#   3. the engine, training and primitives tests under ThreadSanitizer (clang, LLVM OpenMP with its
#      Archer race checker), over the CPU backend and the Thrust backend's primitives, as in step 2
#   4. the safetensors reader under libFuzzer for FUZZ_SECONDS (default 60)
# On request (not by default, to keep CI within its time): cuda-compile — without a GPU, nvcc compiles
# the CUDA flavour of minmax (tools/gpu_check.sh builds and runs the CUDA suite on a GPU machine).
# Steps can be picked: tools/run_tests.sh format release asan tsan fuzz cuda-compile
set -euo pipefail
cd "$(dirname "$0")/.."
steps=("$@")
((${#steps[@]})) || steps=(format release asan tsan fuzz)
tools/install_deps.sh
jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1
gpu=OFF
if command -v nvcc >/dev/null && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then gpu=ON; fi
started=$(date +%s)
for step in "${steps[@]}"; do
  echo "=== $step ($(($(date +%s) - started)) s) ==="
  case "$step" in
    format)
      tools/check_format.sh
      ;;
    release)
      cmake --preset release -DTINYATTN_CUDA=$gpu -DTINYATTN_BUILD_BENCH=OFF
      cmake --build --preset release -j "$jobs"
      ctest --preset release -j "$jobs"
      ;;
    cuda-compile)
      if [[ $gpu == OFF ]] && command -v nvcc >/dev/null; then
        cmake --preset cuda
        cmake --build --preset cuda -j "$jobs" --target minmax-cuda
      else
        echo "(skipped: $([[ $gpu == ON ]] && echo 'the release step built and ran the CUDA suite' || echo 'no nvcc'))"
      fi
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
      echo "run_tests: unknown step '$step' (format, release, cuda-compile, asan, tsan, fuzz)" >&2
      exit 2
      ;;
  esac
done
echo "=== all passed ($(($(date +%s) - started)) s) ==="
