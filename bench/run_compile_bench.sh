#!/usr/bin/env bash
# Times the compilation of each translation unit that instantiates one configuration, and of each example
# program's units, one job at a time with the Release build's own commands (bench/run_compile_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
# The benchmarks ON again after tools/run_tests.sh (it leaves them out); compile_commands.json for the commands.
cmake --preset release -DTINYATTN_BUILD_BENCH=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
exec /usr/bin/python3 bench/run_compile_bench.py "$@"
