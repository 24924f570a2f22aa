#!/usr/bin/env bash
# Quality benchmark: the template's default configuration on real AG News (32,024-row train subset,
# validation carved from it by the seed -> full 7,600-row test set), with and without MLM
# pretraining, against TF-IDF+LR on exactly the same split, and the validation curve against wall
# time (pretraining included). Everything runs through `effx sweep studies/recipe/pretraining.yaml`.
#   bash scripts/quality_agnews.sh [OUT_DIR]          # OUT_DIR defaults to runs/quality_agnews
# Run it on an idle machine: the 30-minute budget is wall-clock. The data path is the spec's
# (../shared/data/agnews, see its DATA.md). Re-running resumes and skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/quality_agnews}
export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled
mkdir -p "$OUT"; OUT=$(realpath "$OUT")
{ echo "start $(date -u +%FT%TZ) $(uptime)"; nproc; lscpu | grep -m1 'Model name'; } | tee -a "$OUT/machine.txt"
# (user + sys) / wall of the sweep and its children: 2.0 means both cores were ours throughout
TIMEFORMAT='sweep wall_s %R user_s %U sys_s %S'
exec 3>&2
{ time effx sweep studies/recipe/pretraining.yaml --root "$OUT" 2>&3; } 2>> "$OUT/machine.txt"
echo "end $(date -u +%FT%TZ) $(uptime)" | tee -a "$OUT/machine.txt"
effx eval -compare "$OUT" --split test --out "$OUT/report" --root "$OUT"
python scripts/quality_curve.py "$OUT"
