#!/usr/bin/env bash
# The main job: an evolutionary merge (PS, then PS+DFS) of the bundled models for the "mix" task,
# ending with the final table on the held-out test split (parents, best uniform merge, evolved PS,
# evolved PS+DFS, with 95% intervals) and the run's report (runs/demo/report.html). The run lives in
# runs/demo: run this again after an interruption and it resumes where it stopped (a finished run
# just prints its table again).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
./build/cli/evomerge evolve examples/evolve/mix_ps_dfs.yml --run runs/demo
echo
echo "outputs: runs/demo/results.md, runs/demo/ps_best.yml (mergekit recipe), runs/demo/ps_best_model/,"
echo "         runs/demo/dfs_best_model/ (standard Llama folder), runs/demo/run.db (docs/run-store.md)"
# The run's report: one self-contained HTML page (fitness by generation, the winning recipe, the
# layer path, the final comparison with its paired difference); open it in any browser.
./build/cli/evomerge -q report --run runs/demo
