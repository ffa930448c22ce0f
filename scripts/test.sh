#!/usr/bin/env bash
# Every test: the GoogleTest suites through ctest, then the bounded fuzz runs (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
if [ -x scripts/fuzz.sh ]; then bash scripts/fuzz.sh; fi
