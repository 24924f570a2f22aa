#!/usr/bin/env bash
# Quality benchmark: the documented recipe on real AG News (32,024-row train subset -> full 7,600-row
# test set) against TF-IDF+LR on the same split, pretraining included, with the wall-time curve.
#   bash scripts/quality_agnews.sh [DATA_DIR] [OUT_DIR]
# DATA_DIR defaults to ../shared/data/agnews; OUT_DIR to runs/quality_agnews. Run it on an idle
# machine: the 30-minute budget is wall-clock. Set PRE_STEPS=0 for the no-pretraining arm.
set -euo pipefail
DATA=${1:-../shared/data/agnews}; OUT=${2:-runs/quality_agnews}
PRE_STEPS=${PRE_STEPS:-3000}; FT_EPOCHS=${FT_EPOCHS:-3}; SEED=${SEED:-0}
export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled
DATA=$(realpath "$DATA"); mkdir -p "$OUT"; OUT=$(realpath "$OUT")
MODEL=(--set model.d_model=256 --set model.n_heads=4 --set model.d_ff=1024 --set model.n_layers=2
       --set model.vocab_size=16000 --set tokenizer.vocab_size=16000 --set model.positional.type=learned)
COMMON=(--set seed=$SEED --set data.train=$DATA/train_subset.parquet --set data.test=$DATA/test.parquet
        --set train.dtype=bf16 --set logging.wandb.mode=disabled --set logging.progress_bar=false)
uptime | tee "$OUT/uptime_start.txt"
start=$(date +%s)
if [ "$PRE_STEPS" -gt 0 ]; then
  effx init -exp pre --root "$OUT" --force "${MODEL[@]}" "${COMMON[@]}" --set train.max_steps=$PRE_STEPS \
    --set train.epochs=100 --set train.optimizer.lr=0.001
  effx pretrain -exp pre --root "$OUT" --overwrite
  effx init -exp ft --finetune --root "$OUT" --force "${COMMON[@]}" --set head.pooling=mean \
    --set train.epochs=$FT_EPOCHS
  effx finetune -exp ft -pretrain pre --root "$OUT" --overwrite
else
  effx init -exp ft --finetune --no-pretrain --root "$OUT" --force "${MODEL[@]}" "${COMMON[@]}" \
    --set head.pooling=mean --set train.epochs=$FT_EPOCHS
  effx finetune -exp ft --root "$OUT" --overwrite
fi
effx eval -exp ft --root "$OUT"
echo "wall_s $(( $(date +%s) - start ))" | tee "$OUT/wall.txt"
effx baseline -exp tfidf -like ft --root "$OUT"
uptime | tee "$OUT/uptime_end.txt"
python scripts/quality_curve.py "$OUT"
