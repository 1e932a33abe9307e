#!/usr/bin/env bash
# Builds minmax (Release) and times a 64-seed sweep against 64 sequential runs, mpirun -np 1 and 2, and
# the PyTorch peer (tools/install_deps.sh --peer). Options: see run_sweep_bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release -DTINYATTN_BUILD_BENCH=ON >/dev/null  # ON again after tools/run_tests.sh (it leaves them out)
cmake --build --preset release --target minmax -j "$(nproc)" >/dev/null
exec /usr/bin/python3 bench/run_sweep_bench.py "$@"
