#!/bin/sh
# CPU time (user + sys) of evomerge merge against the streaming bound (cat the three inputs, cp one
# output-sized file), page cache warm; for a loaded machine, where wall times mean nothing.
#   bench/merge_cpu_time.sh BUILD DIR      (DIR from bench/merge_make_models.py; METHODS to pick)
B=$1; D=$2
for m in linear ties dare_ties; do
  if [ "$m" = linear ]; then
    printf 'merge_method: linear\nmodels:\n  - {model: %s/base, parameters: {weight: 0.4}}\n  - {model: %s/m1, parameters: {weight: 0.3}}\n  - {model: %s/m2, parameters: {weight: 0.3}}\n' "$D" "$D" "$D" > "$D/$m.yml"
  else
    printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n  - {model: %s/m1, parameters: {weight: 0.5, density: 0.5}}\n  - {model: %s/m2, parameters: {weight: 0.5, density: 0.5}}\n' "$m" "$D" "$D" "$D" > "$D/$m.yml"
  fi
done
cat "$D"/*/model.safetensors > /dev/null
uptime
/usr/bin/time -f "bound cat: wall %e user %U sys %S" cat "$D"/base/model.safetensors "$D"/m1/model.safetensors "$D"/m2/model.safetensors > /dev/null
/usr/bin/time -f "bound cp: wall %e user %U sys %S" cp "$D"/base/model.safetensors "$D"/bound_copy
rm -f "$D"/bound_copy
for m in ${METHODS:-linear ties dare_ties}; do
  /usr/bin/time -f "evomerge $m: wall %e user %U sys %S rss %M KB" $B/cli/evomerge -q merge "$D/$m.yml" "$D/out_$m" --force
  if [ -n "$KEEP" ]; then mv "$D/out_$m" "$D/out_${m}_$KEEP"; else rm -rf "$D/out_$m"; fi
done
