#!/usr/bin/env bash
# Every test: the GoogleTest suites and the ISA compile matrix through ctest, the portable build's
# kernel tests and the native-vs-portable merge byte comparison (scripts/portability-check.sh),
# then the bounded fuzz runs (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
bash scripts/portability-check.sh build build-portable
if [ -x scripts/fuzz.sh ]; then bash scripts/fuzz.sh; fi
