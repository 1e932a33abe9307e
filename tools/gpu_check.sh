#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: builds the CUDA flavour with nvcc, runs the test suite
# on the GPU (every typed test over the CPU backend and the Thrust backend on CUDA, the slow 750-epoch
# runs included), then the benchmark: the whole reference experiment on the GPU and on the CPU, and
# the PyTorch reference on the GPU (and briefly on the CPU) side by side. Prints what it measured.
#
#   tools/gpu_check.sh [--deps DIR] [--arch sm_90] [--peer PATH] [--out DIR] [--no-peer-cpu]
#
# Builds with nvcc directly (no CMake package lookup), so a bare GPU machine needs only the CUDA
# toolkit, g++ and the header-only dependencies: Eigen 3.4, doctest and nlohmann-json, found in
# /usr/include or in --deps DIR (DIR/eigen3, DIR/doctest, DIR/nlohmann).
set -uo pipefail
cd "$(dirname "$0")/.."
deps=/usr/include
arch=sm_90
peer=../shared/peers/torch_minmax.py
out=build/gpu
peer_cpu=1
while (($#)); do
  case "$1" in
    --deps) deps=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --peer) peer=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-peer-cpu) peer_cpu=0; shift ;;
    *) echo "gpu_check: unknown option '$1' (--deps, --arch, --peer, --out)" >&2; exit 2 ;;
  esac
done
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
[[ -x $nvcc ]] || { echo "gpu_check: nvcc not found" >&2; exit 1; }
mkdir -p "$out"
includes=(-Iinclude -Itests -isystem "$deps/eigen3" -isystem "$deps")
cuda_flags=(-std=c++17 -O3 -arch="$arch" -diag-suppress=20012,20015 -Xcompiler=-fopenmp,-fno-trapping-math,-O3
            -DTINYATTN_HAVE_THRUST=1 -DTINYATTN_HAVE_CUDA=1 "-DTINYATTN_TEST_DATA_DIR=\"$PWD/tests/data\"")
echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$nvcc" --version | tail -1
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"

echo "== build ($(date +%T))"
start=$(date +%s)
objects=()
pids=()
for src in tests/cuda/cuda_main.cu tests/core/*.cpp; do
  obj="$out/$(basename "${src%.*}").o"
  objects+=("$obj")
  "$nvcc" "${cuda_flags[@]}" "${includes[@]}" -x cu -c "$src" -o "$obj" &
  pids+=($!)
done
"$nvcc" "${cuda_flags[@]}" "${includes[@]}" bench/bench_experiment.cu -o "$out/bench_experiment_cuda" -lgomp &
pids+=($!)
g++ -std=c++17 -O3 -march=native -fno-trapping-math -fopenmp "${includes[@]}" bench/bench_experiment.cpp \
  -o "$out/bench_experiment_cpu" &
pids+=($!)
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
((failed == 0)) || { echo "gpu_check: build failed" >&2; exit 1; }
"$nvcc" -arch="$arch" "${objects[@]}" -o "$out/tinyattn_cuda_tests" -lgomp || exit 1
echo "built in $(($(date +%s) - start)) s"

echo "== tests on the GPU ($(date +%T))"
"$out/tinyattn_cuda_tests" --duration=true 2>&1 | grep -E "MESSAGE: (max|seed|train loss)|^\[doctest\]|ERROR|FAILED|tinyattn CUDA" | head -60
status=${PIPESTATUS[0]}
echo "test exit status: $status"

echo "== benchmark: reference experiment, 750 epochs, test evaluation every epoch ($(date +%T))"
for i in 1 2 3 4 5; do "$out/bench_experiment_cuda" --epochs 750; done
"$out/bench_experiment_cuda" --epochs 750 --phases 1
"$out/bench_experiment_cpu" --epochs 750
"$out/bench_experiment_cpu" --epochs 750 --threads 1
if [[ -f $peer ]]; then
  python3 "$peer" --epochs 750 --device cuda --json --threads "$(nproc)" || true
  if ((peer_cpu)); then
    python3 "$peer" --epochs 50 --json --threads "$(nproc)" || true
    python3 "$peer" --epochs 50 --json --threads 1 || true
  fi
else
  echo "peer not found at $peer"
fi
echo "== done ($(date +%T)), tests exit status $status"
exit "$status"
