#!/usr/bin/env bash
# The CUDA backend's device check (issue 13): builds with the CUDA toolkit, runs every GPU test
# (kernels against plain loops, the engine against the CPU backend, task scores of the bundled
# models on cpu and cuda) and the GPU benchmark, and prints a summary. Meant for one H200 in under
# 5 minutes; needs nvcc (CUDA 12+) and a GPU. Usage: scripts/gpu-check.sh [build-dir] [--quick]
#   --quick: the benchmark on a 4-layer model (seconds instead of minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-gpu}
QUICK=0
for a in "$@"; do [[ $a == --quick ]] && QUICK=1; done
JOBS=$(nproc)
log() { printf '\n== %s\n' "$*"; }
summary=()
step() {  # step NAME COMMAND...: runs it, records PASS/FAIL
  local name=$1; shift
  log "$name"
  if "$@"; then summary+=("PASS  $name"); else summary+=("FAIL  $name"); fi
}

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
step "configure (CUDA backend ON)" bash -c "cmake -S . -B '$BUILD' -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DEVOMERGE_BUILD_BENCH=OFF -DEVOMERGE_MPI=OFF ${CUDAARCHS:+-DEVOMERGE_CUDA_ARCHITECTURES=$CUDAARCHS} \
  | tee '$BUILD.configure.log' | grep -E 'CUDA backend'; grep -q 'CUDA backend ON' '$BUILD.configure.log'"
step "build" ninja -C "$BUILD" -j"$JOBS" test_infer test_infer_cuda evomerge_cli bench_gpu
step "kernel tests (test_infer_cuda)" "$BUILD/src/infer/test_infer_cuda" --gtest_brief=1
step "engine vs CPU (test_infer CudaEngine.*)" "$BUILD/src/infer/test_infer" --gtest_filter='CudaEngine.*' --gtest_brief=1
step "CPU engine tests unchanged (test_infer)" "$BUILD/src/infer/test_infer" --gtest_filter='-CudaEngine.*' --gtest_brief=1

# Task scores of the bundled models: identical JSON on cpu and cuda.
scores() {
  local ok=0
  for m in examples/models/large/math_en examples/models/large/ja_cmp; do
    for dev in cpu cuda; do
      "$BUILD/cli/evomerge" -q eval "$m" --task examples/tasks/mix.yaml --limit 100 --device $dev \
        --json --output "$BUILD/scores_$(basename $m)_$dev.jsonl" > "$BUILD/scores_$(basename $m)_$dev.json" || ok=1
    done
    if cmp -s "$BUILD/scores_$(basename $m)_cpu.jsonl" "$BUILD/scores_$(basename $m)_cuda.jsonl"; then
      echo "$m: identical answers and scores on cpu and cuda"
    else
      echo "$m: cpu and cuda differ:"; diff "$BUILD/scores_$(basename $m)_cpu.jsonl" "$BUILD/scores_$(basename $m)_cuda.jsonl" | head -5; ok=1
    fi
  done
  return $ok
}
step "task scores identical on the bundled models" scores
if [[ $QUICK == 1 ]]; then
  step "benchmark (4 layers)" bash -c "'$BUILD/src/infer/bench_gpu' --layers 4 | tee '$BUILD/bench_gpu.txt'"
else
  step "benchmark (Llama-3-8B shape)" bash -c "'$BUILD/src/infer/bench_gpu' | tee '$BUILD/bench_gpu.txt'"
fi

log "summary"
printf '%s\n' "${summary[@]}"
[[ -f $BUILD/bench_gpu.txt ]] && cat "$BUILD/bench_gpu.txt"
! printf '%s\n' "${summary[@]}" | grep -q '^FAIL'
