#!/usr/bin/env bash
# Portability checks that need a second build (run by scripts/test.sh after ctest):
#  1. a portable build (-DEVOMERGE_NATIVE=OFF: baseline x86-64, run-time dispatch only) of the
#     kernel tests (tensor conversion, inference kernels, merge methods), run on this CPU;
#  2. every bundled example merge and the exact-tie configs of tests/data/portability merged by the
#     native build (build/) and by the portable one: the output folders must be byte-identical.
# Usage: scripts/portability-check.sh [NATIVE_BUILD_DIR] [PORTABLE_BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
native="${1:-build}"
portable="${2:-build-portable}"
test -x "$native/cli/evomerge" || { echo "portability: no native build in $native" >&2; exit 1; }

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
echo "portability: building the portable tree in $portable (log: $portable/build.log)"
cmake -S . -B "$portable" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEVOMERGE_NATIVE=OFF \
  -DEVOMERGE_BUILD_BENCH=OFF -DEVOMERGE_MPI=OFF "${launcher[@]}" >/dev/null
kernel_tests=(src/tensor/test_tensor src/infer/test_infer src/merge/test_merge)
if ! ninja -C "$portable" -j"$(nproc)" cli/evomerge "${kernel_tests[@]}" >"$portable/build.log" 2>&1; then
  echo "portability: portable build failed" >&2
  tail -n 30 "$portable/build.log" >&2
  exit 1
fi

for t in "${kernel_tests[@]}"; do
  "$portable/$t" --gtest_brief=1 >"$portable/$(basename "$t").log" 2>&1 || {
    echo "portability: $t failed in the portable build" >&2
    tail -n 30 "$portable/$(basename "$t").log" >&2
    exit 1
  }
  echo "portability: portable $(basename "$t"): $(grep -Eo '[0-9]+ tests? from [0-9]+ test suites? ran' "$portable/$(basename "$t").log" | tail -n 1), all passed"
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
compared=0
for cfg in examples/merges/*.yml tests/data/portability/*.yml; do
  # Same output name under two roots: the folder name is written into the model card.
  name=$(basename "$(dirname "$cfg")")-$(basename "$cfg" .yml)
  for build in native portable; do
    dir=$native; [ "$build" = portable ] && dir=$portable
    mkdir -p "$out/$build"
    if ! "$dir/cli/evomerge" -q merge "$cfg" "$out/$build/$name" >"$out/$build.log" 2>&1; then
      echo "portability: $cfg: the $build build failed to merge" >&2
      cat "$out/$build.log" >&2
      exit 1
    fi
  done
  if ! diff -r "$out/native/$name" "$out/portable/$name" >/dev/null; then
    echo "portability: $cfg: native and portable builds wrote different bytes" >&2
    diff -r "$out/native/$name" "$out/portable/$name" >&2 || true
    exit 1
  fi
  compared=$((compared + 1))
done
echo "portability: $compared merges byte-identical between the native and the portable build"
