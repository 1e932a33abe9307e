#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install what is missing, build (Release), then train
# the reference experiment and draw its figures. Arguments go to `minmax train` (default: the original
# experiment, files in minmax-out/).
#   tools/run_minmax.sh [--epochs N] [--seed S] [--out DIR] ...
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target minmax -j "$(nproc)"
exec build/release/examples/minmax train "$@"
