#!/usr/bin/env bash
# Bounded fuzz runs of the parsers of outside files (safetensors file/header, shard index, config.json)
# under ASan + UBSan, in a separate clang build tree (build-fuzz/). Fails on any crash, leak, sanitizer
# report or timeout. Seeds: fuzz/corpus/<target>/ (committed); inputs the fuzzer finds go to
# build-fuzz/corpus/<target>/ and crash reproducers to build-fuzz/crash-<target>-*.
#   --long                 hours of fuzzing: 3600 s per target unless EVOMERGE_FUZZ_SECONDS says otherwise
#                          (the bounded default run is part of scripts/test.sh)
#   EVOMERGE_FUZZ_SECONDS  seconds per target (default 20)
#   EVOMERGE_FUZZ_TARGETS  space-separated subset (default: every fuzz/*_fuzz.cpp)
# Every finding becomes a regression test (docs/reliability.md lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

default_seconds=20
if [ "${1:-}" = "--long" ]; then default_seconds=3600; shift; fi
if [ $# -gt 0 ]; then echo "usage: scripts/fuzz.sh [--long]" >&2; exit 2; fi
seconds="${EVOMERGE_FUZZ_SECONDS:-$default_seconds}"
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found (scripts/setup.sh installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi
targets="${EVOMERGE_FUZZ_TARGETS:-$(for f in fuzz/*_fuzz.cpp; do basename "$f" _fuzz.cpp; done)}"

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DEVOMERGE_FUZZ=ON -DEVOMERGE_NATIVE=OFF \
  -DEVOMERGE_BUILD_TESTS=OFF -DEVOMERGE_BUILD_BENCH=OFF -DEVOMERGE_MPI=OFF >/dev/null
# shellcheck disable=SC2046
if ! ninja -C build-fuzz -j"$(nproc)" $(for t in $targets; do echo "fuzz_$t"; done) >build-fuzz/build.log 2>&1; then
  echo "fuzz: build failed (build-fuzz/build.log)" >&2
  tail -n 40 build-fuzz/build.log >&2
  exit 1
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
status=0
for t in $targets; do
  work="build-fuzz/corpus/$t"
  mkdir -p "$work"
  log="build-fuzz/fuzz-$t.log"
  # -rss_limit_mb / -malloc_limit_mb: a parser that allocates what a header claims fails here.
  if ./build-fuzz/fuzz/fuzz_"$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=256 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="build-fuzz/crash-$t-" "$work" "fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $t ok ($runs inputs in ${seconds}s)"
  else
    echo "fuzz: $t FAILED (log: $log)" >&2
    tail -n 40 "$log" >&2
    status=1
  fi
done
exit $status
