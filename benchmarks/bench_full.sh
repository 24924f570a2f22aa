#!/usr/bin/env bash
# Produce every CPU figure of docs/BENCHMARKS.md: layer sweep with the PyPI peers, encoder
# training step (roofline, cost rules), long-sequence training, and a THP allocator A/B.
# About 20 minutes on the 2-core Xeon when the machine is otherwise idle (much longer under load).
#
#   pip install --no-build-isolation -e ".[bench]" -e ./plugins/attention_sdpa -e ./plugins/positional \
#       -e ./plugins/attention_performer -e ./plugins/attention_reformer
#   benchmarks/bench_full.sh [OUT_DIR]        # default docs/bench
#   PARTS="step train" benchmarks/bench_full.sh   # only some parts (layer step bf16 train fidelity thp breakeven)
set -euo pipefail
OUT=${1:-docs/bench}
THREADS=${THREADS:-2}
PARTS=" ${PARTS:-layer step bf16 train fidelity thp breakeven} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
mkdir -p "$OUT"
# the load around the run goes to the log (stderr), not into the results folder
{ echo "# started $(date -u +%FT%TZ)"; uptime; echo "# busiest processes:";
  ps -eo pcpu,etime,comm --sort=-pcpu | head -8; } >&2

# (a) attention layer alone, B=1, 4 heads x 64, fp32, N=512..16384, peers side by side
part layer && effx bench --mode layer --seq-lens 512,1024,2048,4096,8192,16384 --threads "$THREADS" --reps 2 \
    --mem-cap-gib 6 --time-cap-s 30 --peers --out "$OUT/cpu-layer"

# (b) one encoder training step: 4 layers, d_model 256, 16384 tokens per step (batch 32 at N=512)
part step && effx bench --mode step --seq-lens 512 --threads "$THREADS" --reps 5 --mem-cap-gib 6 --time-cap-s 60 \
    --no-peers --out "$OUT/cpu-step"

# (b2) the same step in bf16 autocast (AMX on this CPU) and, right after, in fp32: ratios from one run
part bf16 && effx bench --mode step --seq-lens 512 --threads "$THREADS" --reps 3 --mem-cap-gib 6 --time-cap-s 60 \
    --no-peers --dtype bf16 --out "$OUT/cpu-step-bf16" \
  && effx bench --mode step --seq-lens 512 --threads "$THREADS" --reps 3 --mem-cap-gib 6 --time-cap-s 60 \
    --no-peers --dtype fp32 --out "$OUT/cpu-step-bf16/fp32"

# (c) long-sequence training: checkpointing / accumulation at N=2048 B=4, one step at 4k/8k/16k in 4 GiB,
#     for the approximate attentions and fused sdpa (explicit sdpa needs O(N^2) memory: 1.8 GiB per layer at 4k)
part train && effx bench-train --types "sdpa[fused],performer_favor,performer_favor_pp,reformer_lsh,reformer_balanced" \
    --seq-lens 4096,8192,16384 --saver-len 2048 --saver-batch 4 --mem-cap-gib 4 \
    --time-cap-s 120 --threads "$THREADS" --out "$OUT/cpu-train"

# (d) fidelity in a more peaked-attention regime than q, k ~ N(0, 1): q, k ~ N(0, 0.5^2)
part fidelity && effx bench --mode layer --seq-lens 1024,4096 --qk-std 0.5 --threads "$THREADS" --reps 1 \
    --mem-cap-gib 6 --time-cap-s 30 --peers --out "$OUT/cpu-fidelity-qk0.5"

# (e) allocator A/B, back to back: the same layer rows without and with transparent huge pages for
#     large CPU allocations (THP_MEM_ALLOC_ENABLE, read by PyTorch's CPU allocator)
part thp && for thp in 0 1; do
  THP_MEM_ALLOC_ENABLE=$thp effx bench --mode layer --types "sdpa[fused],performer_favor,reformer_lsh" \
      --seq-lens 4096,8192 --threads "$THREADS" --reps 2 --mem-cap-gib 6 --time-cap-s 30 --no-peers \
      --out "$OUT/cpu-layer-thp$thp"
done

# (f) break-even against fused sdpa with more repetitions (small-N timings are the noisiest)
part breakeven && effx bench --mode layer --types "sdpa[fused],performer_favor,reformer_lsh" \
    --seq-lens 512,1024,2048,4096,8192 --threads "$THREADS" --reps 5 --mem-cap-gib 6 --time-cap-s 30 --peers \
    --out "$OUT/cpu-layer-breakeven"

{ echo "# finished $(date -u +%FT%TZ)"; uptime; echo "# busiest processes:";
  ps -eo pcpu,etime,comm --sort=-pcpu | head -8; } >&2
echo "done: $OUT"
