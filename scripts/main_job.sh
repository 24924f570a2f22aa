#!/usr/bin/env bash
# effx main job: init -> pretrain (MLM) -> finetune (classification) -> eval on the shipped real
# AG News sample (core/data/sample/, 2,000 train / 500 validation / 500 test rows), then the product's
# own answer: effx against TF-IDF+LR (`effx baseline`) on the same split (`effx eval -compare`).
# Runs in a few minutes on 2 CPU cores; prints the metrics, the comparison and where every artefact is.
#
#   bash scripts/main_job.sh            # experiments under runs/main_job (or $EFFX_ROOT)
#
# Rerunning starts over (--force / --overwrite). W&B runs offline into each experiment's wandb/.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ROOT=${EFFX_ROOT:-$REPO/runs/main_job}
PRE=${PRE:-agnews_pre}
FT=${FT:-agnews_ft}
export HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1} HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export WANDB_SILENT=${WANDB_SILENT:-true} TOKENIZERS_PARALLELISM=false
SAMPLE=$REPO/core/data/sample
START=$(date +%s)

step() { printf '\n=== %s (%ss elapsed) ===\n' "$1" "$(( $(date +%s) - START ))"; }

step "1/5 effx init: pretrain/$PRE and finetune/$FT under $ROOT"
effx init -exp "$PRE" --root "$ROOT" --force \
  --set data.train="$SAMPLE/agnews_train.csv" --set data.validation="$SAMPLE/agnews_validation.csv" \
  --set data.test="$SAMPLE/agnews_test.csv" \
  --set model.vocab_size=4000 --set tokenizer.vocab_size=4000 \
  --set model.d_model=64 --set model.n_layers=2 --set model.n_heads=4 --set model.d_ff=256 \
  --set model.max_seq_len=64 --set data.max_length=64 \
  --set train.epochs=2 --set train.batch_size=32 --set train.optimizer.lr=0.003 \
  --set logging.progress_bar=false
effx init -exp "$FT" --finetune --root "$ROOT" --force \
  --set data.train="$SAMPLE/agnews_train.csv" --set data.validation="$SAMPLE/agnews_validation.csv" \
  --set data.test="$SAMPLE/agnews_test.csv" --set data.max_length=64 \
  --set train.epochs=6 --set train.batch_size=32 --set train.optimizer.lr=0.003 --set head.pooling=mean \
  --set logging.progress_bar=false

step "2/5 effx pretrain -exp $PRE (masked-language modelling)"
effx pretrain -exp "$PRE" --root "$ROOT" --overwrite

step "3/5 effx finetune -exp $FT -pretrain $PRE -ckpt best"
effx finetune -exp "$FT" -pretrain "$PRE" -ckpt best --root "$ROOT" --overwrite

step "4/5 effx eval -exp $FT (test split)"
effx eval -exp "$FT" --root "$ROOT"

step "5/5 effx baseline -like $FT, then effx eval -compare (effx vs TF-IDF+LR, same split)"
effx baseline -exp "${FT}_tfidf" -like "$FT" --root "$ROOT"
effx eval -compare "$ROOT" --split test --out "$ROOT/report" --root "$ROOT"

step "done"
echo "pretraining:  $ROOT/pretrain/$PRE   (config.yaml, metrics.csv, events.jsonl, ckpt_best.pt, logs/train.log)"
echo "finetuning:   $ROOT/finetune/$FT   (resolved_config.yaml, metrics.csv, head.pt, ckpt_best.pt, labels.json)"
echo "validation metrics per epoch (finetune):"
python - "$ROOT/finetune/$FT/metrics.csv" <<'PY'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["split"] == "validation":
        print(f"  step {r['step']:>4} epoch {r['epoch']}: loss {float(r['loss']):.4f} accuracy {float(r['accuracy']):.4f} "
              f"macro_F1 {float(r['macro_F1']):.4f} AUROC {float(r['AUROC']):.4f} time/epoch {r['time_per_epoch_s']}s")
PY
echo "comparison:   $ROOT/report/report.html   (comparison.md, results.csv; effx vs TF-IDF+LR on the test split)"
echo "total time: $(( $(date +%s) - START ))s"
