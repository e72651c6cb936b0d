#!/usr/bin/env bash
# The main job: set up, run the shipped study on the embedded default store, write its report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh  # base dependencies only: what `harness run` and `harness report` need
H=${1:-iaf_tightens_bound}
start=$(date +%s)
.venv/bin/harness run "$H"
.venv/bin/harness report "$H"
echo "demo finished in $(( $(date +%s) - start )) s (study + report)"
