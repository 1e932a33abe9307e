#!/usr/bin/env bash
# Installs what tinyattn needs from Debian 12 packages, only what is missing. Uses sudo when not root.
#   tools/install_deps.sh            build, tests, examples, plots
#   tools/install_deps.sh --peer     also the PyTorch reference for side-by-side benchmarks
set -euo pipefail
packages=(build-essential cmake g++ pkg-config
          libeigen3-dev doctest-dev nlohmann-json3-dev libthrust-dev
          libgnuplot-iostream-dev libboost-iostreams-dev libboost-filesystem-dev libboost-system-dev gnuplot-nox
          clang libclang-rt-14-dev libomp-14-dev    # clang: libFuzzer and the TSan build (with LLVM's OpenMP)
          clang-format                              # tools/check_format.sh (clang-format 14)
          libopenmpi-dev openmpi-bin)               # mpirun -np N minmax sweep (tests run it with N = 1, 2, 3)
if [[ "${1:-}" == "--peer" ]]; then
  packages+=(python3-torch python3-numpy libopenblas0-pthread)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install_deps: everything is installed"
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install_deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
