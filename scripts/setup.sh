#!/usr/bin/env bash
# One-step set-up for a fresh Debian 12 machine (run as root, or with sudo available):
# installs the Debian packages evomerge needs (only the missing ones; silent when all are there),
# configures and builds a release tree in build/, then
#   --demo : runs the main job on the bundled models
#   --test : runs every test (unit tests, golden files, bad-input catalogue, bounded fuzz run)
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:---build}"
packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libeigen3-dev libopenblas-dev libopenblas0-pthread libhwy-dev nlohmann-json3-dev libyaml-cpp-dev
  libcli11-dev libfmt-dev libonig-dev libicu-dev zlib1g-dev libsqlite3-dev libopenmpi-dev openmpi-bin
  libgtest-dev libgmock-dev libbenchmark-dev python3 python3-yaml
  python3-torch  # tools/fixtures: the PyTorch reference outputs (arch_reference.py, reference.py)
  libdnnl-dev  # oneDNN: the AMX GEMM kernel (src/infer/gemm_amx.cpp); 1.6 TFLOP/s a core on bf16
  # the report's end-to-end test renders the run report in headless Chromium, driven by Node
  chromium nodejs
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

jobs=$(nproc)
echo "setup: building in build/ with $jobs jobs (log: build/build.log)"
launcher=()
# A compiler cache where the machine has one (developers' rebuilds; CI builds without it).
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
# Quiet on success; on failure show the end of the log (a pipe through grep would hide ninja's status).
if ! ninja -C build -j"$jobs" >build/build.log 2>&1; then
  echo "setup: build failed (full log: build/build.log)" >&2
  grep -E 'error|FAILED' build/build.log | head -n 40 >&2 || true
  tail -n 20 build/build.log >&2
  exit 1
fi
test -x build/cli/evomerge

case "$mode" in
  --build) ;;
  --demo) exec bash scripts/demo.sh ;;
  --test) exec bash scripts/test.sh ;;
  *) echo "usage: scripts/setup.sh [--build|--demo|--test]" >&2; exit 2 ;;
esac
