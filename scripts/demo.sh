#!/usr/bin/env bash
# The main job on the bundled models. (Becomes the PS+DFS evolution demo once `evolve` lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
./build/cli/evomerge inspect examples/models/base
