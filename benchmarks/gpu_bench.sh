#!/usr/bin/env bash
# The cost bench on a CUDA GPU in bf16, including the flash kernel of fused sdpa (row
# "sdpa[flash]"), written beside the CPU results as docs/bench/gpu-<gpu name>/.
#
#   benchmarks/gpu_bench.sh [OUT_ROOT]      # default docs/bench
#
# PART_TIMEOUT_S (default 0 = none) bounds each of the three parts, LAYER_/STEP_/TRAIN_TIMEOUT_S one
# of them; a part that runs out is logged (its rows stay in the log) and the next one still runs
# (a lent GPU comes with a fixed time budget).
# Without a visible CUDA device it runs its CPU fallback: the same commands in --quick form on CPU
# in bf16 into a temporary folder, which checks the plumbing but measures nothing about GPUs.
set -uo pipefail
ROOT=${1:-docs/bench}
part() {  # part NAME CMD... : run one part under its time limit, log how it ended, never abort
  local name=$1; shift
  local var="${name^^}_TIMEOUT_S" t0=$SECONDS
  # SIGINT, not SIGTERM: Python then stops its forkserver and worker processes, which would
  # otherwise outlive the part and keep its output pipe open
  timeout -s INT -k 20 "${!var:-${PART_TIMEOUT_S:-0}}" "$@"; local rc=$?
  echo "part $name: rc=$rc after $((SECONDS - t0)) s"
}
GPU=$(python -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')")
if [ -z "$GPU" ]; then
  OUT=$(mktemp -d)/gpu-fallback-cpu
  echo "no CUDA device visible: CPU fallback (--quick, bf16) into $OUT"
  part layer effx bench --quick --device cpu --dtype bf16 --out "$OUT/bench"
  part train effx bench-train --quick --device cpu --dtype bf16 --out "$OUT/train"
  echo "done (fallback): $OUT"
  exit 0
fi
SLUG=$(echo "$GPU" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-$//')
OUT="$ROOT/gpu-$SLUG"
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
# (a) layer: B=1, 4 heads x 64, N=512..16384 (+32768), peers; (b) training step, 16384 tokens/step
part layer effx bench --device cuda --dtype bf16 --mode layer --seq-lens 512,1024,2048,4096,8192,16384,32768 \
    --reps 10 --mem-cap-gib 40 --time-cap-s 20 --peers --out "$OUT/layer"
part step effx bench --device cuda --dtype bf16 --mode step --seq-lens 512,2048,8192,16384 \
    --reps 5 --mem-cap-gib 40 --time-cap-s 20 --no-peers --out "$OUT/step"
# (c) long-sequence training within a 16 GiB budget (a V100-16GB class card)
part train effx bench-train --device cuda --dtype bf16 --seq-lens 4096,8192,16384 --saver-len 4096 --saver-batch 8 \
    --mem-cap-gib 16 --time-cap-s 60 --out "$OUT/train"
echo "done: $OUT"
