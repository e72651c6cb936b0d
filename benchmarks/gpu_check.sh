#!/usr/bin/env bash
# The GPU measurements of issue 24 in ONE run (docs/benchmarks.md, "GPU: still to be measured").
# Needs torch with CUDA only (no mlflow, no optuna). About 7 minutes expected on an H200 (at
# most 10:15 by the per-command timeouts, which sum to 615 s), most of it
# the per-seed loop (a), which is timed on 8 seeds per variant and scaled (--baseline-seeds),
# and compilation with HARNESS_COMPILE=1. Every command has its own timeout, so one that hangs
# costs its slot, not the run; the output goes to stdout and to $OUT/gpu_check/ (or /tmp).
#
#   bash benchmarks/gpu_check.sh            # python from $PYTHON, else python3
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOG=${OUT:-/tmp}/gpu_check
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1

run() {  # run NAME SECONDS COMMAND...: one measurement, its output kept under $LOG/NAME.txt
  local name=$1 secs=$2
  shift 2
  echo "=== $name ($(date -u +%H:%M:%S), limit ${secs} s): $*"
  timeout "$secs" "$@" 2>&1 | grep -v '^USDT' | tee "$LOG/$name.txt"
  echo "=== $name: exit ${PIPESTATUS[0]}"
}

nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv 2>&1 | tee "$LOG/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

# 1. Runs per hour against the per-seed loop (target >= 20 at 64 seeds), 400 steps.
run throughput_64 75 env HARNESS_COMPILE=0 "$PY" benchmarks/throughput.py --device cuda --seeds 64 --steps 400 --baseline-seeds 8
run throughput_64_compiled 105 env HARNESS_COMPILE=1 "$PY" benchmarks/throughput.py --device cuda --seeds 64 --steps 400 --baseline-seeds 8

# 2. What one step launches and whether it syncs: eager, then captured (CUDA graphs; the same
# shapes as throughput_64_compiled, so inductor's on-disk cache serves most of the compile).
run profile_eager 45 env HARNESS_COMPILE=0 "$PY" benchmarks/profile_step.py --device cuda --seeds 64 --steps 64 --warmup 16 --top 10
run profile_compiled 60 env HARNESS_COMPILE=1 "$PY" benchmarks/profile_step.py --device cuda --seeds 64 --steps 64 --warmup 16 --top 10

# 3. Bigger blocks: 256 seeds per variant in one block.
run throughput_256 60 env HARNESS_COMPILE=0 "$PY" benchmarks/throughput.py --device cuda --seeds 256 --steps 400 --baseline-seeds 8
run throughput_256_compiled 90 env HARNESS_COMPILE=1 "$PY" benchmarks/throughput.py --device cuda --seeds 256 --steps 400 --baseline-seeds 8

# 4. Tuning: 64 trials per variant in one block against one at a time (100 steps each).
run tuning 90 env HARNESS_COMPILE=0 "$PY" benchmarks/tuning.py --device cuda --trials 64 --block 64 --steps 100 --repeats 1
run tuning_compiled 90 env HARNESS_COMPILE=1 "$PY" benchmarks/tuning.py --device cuda --trials 64 --block 64 --steps 100 --repeats 1

echo "=== ratios"
grep -H '^ratio' "$LOG"/*.txt
grep -H 'per training step\|CUDA kernels\|host syncs\|sync debug mode\|wall time' "$LOG"/profile_*.txt
