#!/usr/bin/env bash
# Training and inference cost on real data, and the 16k layer against the PyPI peers: every figure of
# the real-token, bf16, HF-peer, inference, 16k-roofline and 16k-peer tables of docs/BENCHMARKS.md.
# Unattended; every figure goes to a file under OUT_DIR; the tables are printed from those files by
# benchmarks/cost_tables.py (run at the end, also into OUT_DIR/tables.md).
#
#   pip install --no-deps --target /tmp/cost-site transformers==5.24.0 safetensors typer \
#       performer-pytorch==1.1.4 reformer-pytorch==1.4.4 einops "local-attention<1.10" \
#       axial-positional-embedding "product-key-memory==0.1.10"    # peers, outside the system Python
#   PEER_SITE=/tmp/cost-site taskset -c 0 benchmarks/bench_cost.sh /work/shared/data docs/bench/cost
#
# Arguments: DATA_DIR (holding agnews/ and imdb/ parquet files) and OUT_DIR (default docs/bench/cost).
# Environment: PEER_SITE  folder with transformers / performer-pytorch / reformer-pytorch (prepended to
#                         PYTHONPATH for the peer rows only; a peer that does not import is skipped with one line)
#              THREADS    torch threads (default 1: one dedicated core, `taskset -c 0`)
#              L16_THREADS  threads of the layer16k part (default THREADS; docs/bench/cpu-layer, the reference
#                         of its peer ratios, ran with 2 - give 2 and `taskset -c 0,1` to compare like with like)
#              PARTS      subset of "tokens finetune hfstep infer layer16k" (default all)
#              QUICK=1    smoke run at tiny sizes (a minute or two; figures meaningless)
set -euo pipefail
DATA=${1:?usage: benchmarks/bench_cost.sh DATA_DIR [OUT_DIR]}
OUT=${2:-docs/bench/cost}
THREADS=${THREADS:-1}
QUICK=${QUICK:-0}
PEER_SITE=${PEER_SITE:-}
PARTS=" ${PARTS:-tokens finetune hfstep infer layer16k} "
export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
part() { [[ "$PARTS" == *" $1 "* ]]; }
for f in agnews/train_subset.parquet agnews/test.parquet imdb/train.parquet imdb/test.parquet; do
  [ -f "$DATA/$f" ] || { echo "bench_cost: $DATA/$f not found; give the folder holding agnews/ and imdb/" >&2; exit 2; }
done
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(dirname "$HERE")
DATA=$(realpath "$DATA"); mkdir -p "$OUT"; OUT=$(realpath -s --relative-base="$ROOT" "$OUT")
cd "$ROOT"  # the recorded commands name OUT relative to the repository when it lies inside it
script() { for d in scripts benchmarks; do [ -f "$ROOT/$d/$1" ] && { echo "$ROOT/$d/$1"; return; }; done
           echo "bench_cost: $1 not found under scripts/ or benchmarks/" >&2; return 1; }
peer_py() { PYTHONPATH="${PEER_SITE:+$PEER_SITE:}${PYTHONPATH:-}" "$@"; }
has_peer() { peer_py python -c "import $1" >/dev/null 2>&1; }

# ---- sizes (full run / QUICK smoke run)
if [ "$QUICK" = 1 ]; then
  TOK=(--texts 200 --n-batches 2 --repeats 1); AG_B=4; IM_B=2
  FT_STEPS=20; FT_EVAL=10; FT_TRAIN=400; FT_EVALN=100
  FT_MODEL=(--set model.d_model=64 --set model.n_heads=2 --set model.d_ff=128 --set model.n_layers=1)
  HF_REPS=1; INF_AG=(--texts 64 --batch 32); INF_IM=(--texts 16 --batch 8)
  L16=(--seq-lens 1024 --reps 1 --min-time-s 0)
else
  TOK=(--texts 3000 --n-batches ${TOK_BATCHES:-4} --repeats ${TOK_REPEATS:-3}); AG_B=32; IM_B=8
  FT_STEPS=${FT_STEPS:-300}; FT_EVAL=25; FT_TRAIN=8000; FT_EVALN=1000
  FT_MODEL=(--set model.d_model=128 --set model.n_heads=4 --set model.d_ff=512 --set model.n_layers=2)
  HF_REPS=5; INF_AG=(--texts 2000 --batch 64); INF_IM=(--texts 400 --batch 64)
  L16=(--seq-lens 16384 --reps 4)
fi

# ---- estimate (1 thread on an idle core of the project's Xeon, scaled from the committed
#      1-thread figures of docs/bench/tokens-agnews, hf-peer-ab.md and cpu-layer; +-50 %)
est() { part "$1" && echo "$2" || echo 0; }
if [ "$QUICK" = 1 ]; then total=$((3 * 60)); else  # QUICK: 9 min 9 s niced at load 19 on 2 shared cores
  nb=${TOK_BATCHES:-4}; rp=${TOK_REPEATS:-3}
  # tokens: ~27 s per step of all 5 modes x 3 types x both data sets (2 warm-up steps); finetune: ~0.25 s
  # per step and ~30 s of set-up per dtype; hfstep: 6 runs of 4 cells; layer16k: 4 rows, 5 runs each
  total=$(( $(est tokens $(( (nb * rp + 2) * 27 + 20 ))) + $(est finetune $(( FT_STEPS / 2 + 60 ))) \
          + $(est hfstep 60) + $(est infer 100) + $(est layer16k 110) ))
fi
echo "bench_cost: parts [${PARTS# }], threads $THREADS, QUICK=$QUICK -> about $((total / 60)) min $((total % 60)) s (estimate)"

stamp() {  # stamp DIR start|end: date, uptime, CPU and affinity beside the part's files
  mkdir -p "$1"
  { echo "$2 $(date -u +%FT%TZ)"; echo "uptime: $(uptime)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) usable cores)"
    echo "affinity: $(taskset -pc $$ 2>/dev/null | sed 's/.*: //')"; echo "threads: $THREADS"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo -dirty)"
  } >> "$1/uptime.txt"
}
FAILS=0
guard() {  # guard DIR CMD...: a failing part is recorded and the run goes on with the next part
  local dir=$1 rc=0; shift
  "$@" || rc=$?
  if [ $rc -ne 0 ]; then echo "failed: exit $rc" >> "$dir/uptime.txt"; FAILS=$((FAILS + 1))
    echo "bench_cost: FAILED ($dir, exit $rc); going on with the next part" >&2; fi
}
run() {  # run DIR CMD...: record the command, stamp, run
  local dir=$1; shift; mkdir -p "$dir"; : > "$dir/uptime.txt"
  printf '%q ' "$@" | sed "s#$ROOT/##g; s#^peer_py #PYTHONPATH=\$PEER_SITE #; s# \$##" > "$dir/command.txt"; echo >> "$dir/command.txt"
  stamp "$dir" start; echo "+ $(cat "$dir/command.txt")"; guard "$dir" "$@"; stamp "$dir" end
}
{ echo "# bench_cost started $(date -u +%FT%TZ) on $(hostname), QUICK=$QUICK"; uptime; echo "# busiest processes:"
  ps -eo pcpu,etime,comm --sort=-pcpu | head -8; } > "$OUT/load_start.txt"

# (i) real-token throughput: variable-length vs the same number of fixed-length full batches
part tokens && {
  run "$OUT/tokens-agnews" effx bench-tokens --data "$DATA/agnews/train_subset.parquet" --max-length 128 \
      --batch "$AG_B" "${TOK[@]}" --threads "$THREADS" --out "$OUT/tokens-agnews"
  run "$OUT/tokens-imdb" effx bench-tokens --data "$DATA/imdb/train.parquet" --max-length 512 \
      --batch "$IM_B" "${TOK[@]}" --threads "$THREADS" --out "$OUT/tokens-imdb"
}

# (ii) bf16 vs fp32, same seed: a short from-scratch AG News finetune through the product's CLI
finetune_one() {  # finetune_one DIR DTYPE
  local FT=$1 dt=$2 args t0
  args=(effx init -exp "ft-$dt" --finetune --no-pretrain --root "$FT" --force "${FT_MODEL[@]}"
        --set seed=0 --set data.train="$DATA/agnews/train_subset.parquet" --set data.max_length=128
        --set data.max_train_samples=$FT_TRAIN --set data.max_eval_samples=$FT_EVALN
        --set train.max_steps=$FT_STEPS --set train.epochs=100 --set train.eval_every_steps=$FT_EVAL
        --set train.dtype=$dt --set train.device=cpu --set train.optimizer.lr=0.001
        --set logging.wandb.mode=disabled --set logging.progress_bar=false)
  printf '%q ' "${args[@]}" | sed "s#$ROOT/##g" >> "$FT/command.txt"; echo >> "$FT/command.txt"
  "${args[@]}" || return
  echo "effx finetune -exp ft-$dt --root $FT --overwrite" | sed "s#$ROOT/##g" >> "$FT/command.txt"
  t0=$(date +%s.%N); effx finetune -exp "ft-$dt" --root "$FT" --overwrite || return
  echo "$(date +%s.%N) - $t0" | bc > "$FT/ft-$dt.wall_s"
}
part finetune && {
  FT="$OUT/finetune-bf16"; mkdir -p "$FT"; : > "$FT/uptime.txt"; stamp "$FT" start; : > "$FT/command.txt"
  for dt in fp32 bf16; do guard "$FT" finetune_one "$FT" "$dt"; done
  stamp "$FT" end
}

# (iii) the HF BertForSequenceClassification peer: training step, interleaved in one process
part hfstep && if has_peer transformers; then
  run "$OUT/hf-step" peer_py python "$(script hf_peer_ab.py)" --out "$OUT/hf-step/hf-peer-ab.md" \
      --reps "$HF_REPS" --threads "$THREADS"
else echo "bench_cost: skip hfstep: transformers does not import (PEER_SITE=${PEER_SITE:-unset})"; fi

# (iii) inference: effx's prediction path (effx predict / effx eval) vs HF forward on real test texts
part infer && if has_peer transformers; then
  run "$OUT/infer-agnews" peer_py python "$(script predict_hf_ab.py)" --data "$DATA/agnews/test.parquet" \
      --out "$OUT/infer-agnews/predict-hf-ab.md" --max-length 128 "${INF_AG[@]}" --threads "$THREADS"
  run "$OUT/infer-imdb" peer_py python "$(script predict_hf_ab.py)" --data "$DATA/imdb/test.parquet" \
      --out "$OUT/infer-imdb/predict-hf-ab.md" --max-length 512 "${INF_IM[@]}" --threads "$THREADS"
else echo "bench_cost: skip infer: transformers does not import (PEER_SITE=${PEER_SITE:-unset})"; fi

# (iv)+(v) attention layer fwd+bwd at 16k, B=1, 4 x 64, fp32: Performer against the matmul roofline
#          measured in the same run (machine.json), both against performer-pytorch / reformer-pytorch
part layer16k && {
  for p in performer_pytorch reformer_pytorch; do
    has_peer $p || echo "bench_cost: skip peer ${p//_/-}: it does not import (PEER_SITE=${PEER_SITE:-unset})"
  done
  THREADS=${L16_THREADS:-$THREADS} run "$OUT/layer16k" peer_py effx bench --mode layer --types performer_favor,reformer_lsh "${L16[@]}" \
      --threads "${L16_THREADS:-$THREADS}" --mem-cap-gib 6 --time-cap-s 60 --peers --out "$OUT/layer16k"
}

{ echo "# finished $(date -u +%FT%TZ)"; uptime; echo "# busiest processes:";
  ps -eo pcpu,etime,comm --sort=-pcpu | head -8; } > "$OUT/load_end.txt"
python benchmarks/cost_tables.py "$OUT" --plot --reference docs/bench/cpu-layer > "$OUT/tables.md"
echo "done: $OUT (tables: $OUT/tables.md); $FAILS part(s) failed"
[ "$FAILS" -eq 0 ]
