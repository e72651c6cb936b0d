#!/usr/bin/env bash
# The test command (README, .ci/run): set up if needed, check the import layers, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev  # pytest, ruff, import-linter, playwright, the cluster backends
# The layers of docs/architecture.md (import-linter contracts in pyproject.toml).
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
