#!/bin/sh
# CPU time (user + sys) of evomerge merge against the streaming bound (cat the three inputs, cp one
# output-sized file), page cache warm; for a loaded machine, where wall times mean nothing.
#   bench/merge_cpu_time.sh BUILD DIR [OTHER_BUILD ...]
# DIR from bench/merge_make_models.py; METHODS to pick (default: linear ties dare_ties); ROUNDS
# repetitions (default 1). With OTHER_BUILDs, each method runs on every build in turn, round by round
# (old and new interleaved in the same minutes), and the outputs are compared byte for byte.
B=$1; D=$2; shift 2
for m in linear ties dare_ties dare_linear; do
  if [ "$m" = linear ]; then
    printf 'merge_method: linear\nmodels:\n  - {model: %s/base, parameters: {weight: 0.4}}\n  - {model: %s/m1, parameters: {weight: 0.3}}\n  - {model: %s/m2, parameters: {weight: 0.3}}\n' "$D" "$D" "$D" > "$D/$m.yml"
  else
    printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n  - {model: %s/m1, parameters: {weight: 0.5, density: 0.5}}\n  - {model: %s/m2, parameters: {weight: 0.5, density: 0.5}}\n' "$m" "$D" "$D" "$D" > "$D/$m.yml"
  fi
done
cat "$D"/*/model.safetensors > /dev/null
uptime
r=0
while [ "$r" -lt "${ROUNDS:-1}" ]; do
  r=$((r + 1))
  /usr/bin/time -f "bound cat: wall %e user %U sys %S" cat "$D"/base/model.safetensors "$D"/m1/model.safetensors "$D"/m2/model.safetensors > /dev/null
  /usr/bin/time -f "bound cp: wall %e user %U sys %S" cp "$D"/base/model.safetensors "$D"/bound_copy
  rm -f "$D"/bound_copy
  for m in ${METHODS:-linear ties dare_ties}; do
    i=0
    for build in "$B" "$@"; do
      i=$((i + 1))
      /usr/bin/time -f "evomerge $m ($build): wall %e user %U sys %S rss %M KB" "$build"/cli/evomerge -q merge "$D/$m.yml" "$D/out_${m}_$i" --force
      if [ "$i" -gt 1 ] && ! cmp -s "$D/out_${m}_1/model.safetensors" "$D/out_${m}_$i/model.safetensors"; then
        echo "evomerge $m: $build wrote different bytes from $B" >&2
      fi
    done
    if [ -n "$KEEP" ]; then mv "$D/out_${m}_1" "$D/out_${m}_$KEEP"; fi
    rm -rf "$D"/out_"${m}"_[0-9]*
  done
done
uptime
