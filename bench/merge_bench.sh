#!/bin/sh
# Merge benchmark (docs/benchmarks.md, "merge" section). Run from the repository root after
#   cmake -S . -B build -G Ninja -DEVOMERGE_BUILD_BENCH=ON && ninja -C build bench_merge evomerge_cli
# Generates three ~1.1 GB bf16 models once (about 3 minutes), then runs, one at a time:
#   1. bench_merge: streaming bound, linear / ties / dare_ties folder merges, in-memory dare_ties;
#   2. the CLI under /usr/bin/time for peak RSS;
#   3. the PyTorch peer (Debian's /usr/bin/python3 with python3-torch).
set -eu
BUILD=${BUILD:-build}
DIR=${EVOMERGE_MERGE_BENCH_DIR:-/tmp/evomerge-merge-bench}
export EVOMERGE_MERGE_BENCH_DIR="$DIR"
/usr/bin/python3 bench/merge_make_models.py "$DIR"
cat "$DIR"/*/model.safetensors > /dev/null   # same (warm page cache) start for everyone
"$BUILD"/bench/bench_merge
for m in linear ties dare_ties; do
  if [ "$m" = linear ]; then
    printf 'merge_method: linear\nmodels:\n  - {model: %s/base, parameters: {weight: 0.4}}\n  - {model: %s/m1, parameters: {weight: 0.3}}\n  - {model: %s/m2, parameters: {weight: 0.3}}\n' "$DIR" "$DIR" "$DIR" > "$DIR/$m.yml"
  else
    printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n  - {model: %s/m1, parameters: {weight: 0.5, density: 0.5}}\n  - {model: %s/m2, parameters: {weight: 0.5, density: 0.5}}\n' "$m" "$DIR" "$DIR" "$DIR" > "$DIR/$m.yml"
  fi
  /usr/bin/time -f "evomerge $m: wall %e s, user %U s, peak RSS %M KB" "$BUILD"/cli/evomerge -q merge "$DIR/$m.yml" "$DIR/out_$m" --force
  rm -rf "$DIR/out_$m"
done
for m in linear ties dare_ties; do
  /usr/bin/time -f "torch $m: wall %e s, peak RSS %M KB" /usr/bin/python3 bench/merge_torch.py "$DIR" "$m"
  rm -rf "$DIR/out_torch_$m"
done
