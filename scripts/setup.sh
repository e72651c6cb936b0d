#!/usr/bin/env bash
# Create .venv (if needed) and install the project into it. Idempotent and quick when done.
# torch is installed first, pinned to the CPU wheel this kind of machine carries, so that
# resolving the project's `torch` range never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.harness-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
log=.venv/setup.log
echo "setting up .venv (log: $log) ..."
"$VPY" -m pip install -q --upgrade pip >"$log" 2>&1 || true
if ! "$VPY" -c "import torch" 2>/dev/null; then
  "$VPY" -m pip install "torch==2.13.0" >>"$log" 2>&1 || { tail -20 "$log"; exit 1; }
fi
"$VPY" -m pip install -e ".[dev]" >>"$log" 2>&1 || { tail -20 "$log"; exit 1; }
"$VPY" -c "import torch, mlflow, optuna, harness, analysis" 
echo "$want" > "$stamp"
