#!/usr/bin/env bash
# Builds the benchmarks (Release) and runs tinyattn and the PyTorch reference side by side.
# Needs the peer's packages for the comparison: tools/install_deps.sh --peer. Options: see run_bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release -DTINYATTN_BUILD_BENCH=ON >/dev/null  # ON again after tools/run_tests.sh (it leaves them out)
cmake --build --preset release --target bench_experiment bench_scaling -j "$(nproc)" >/dev/null
exec /usr/bin/python3 bench/run_bench.py "$@"
