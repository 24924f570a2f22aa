#!/usr/bin/env bash
# Re-runs every experiment of this report from its saved config, then rebuilds the report.
#   ./reproduce.sh                 re-train into $REPRO_ROOT (default: <this folder>/reproduced)
#                                  and write the new report to $REPRO_ROOT/report
#   ./reproduce.sh --report-only   rebuild this report from the original experiment folders
# Environment: EFFX (command, default: effx), REPRO_ROOT, REPRO_CWD (folder relative data paths
# are resolved from; default: where the report was built).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EFFX="${EFFX:-effx}"
ROOT="${REPRO_ROOT:-$HERE/reproduced}"
ORIG_CWD=/work/main
cd "${REPRO_CWD:-$ORIG_CWD}"

# the runs were trained with this many CPU threads; the same count gives the same numbers on CPU
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
compare() {  # compare SOURCE_DIR OUT_DIR
  $EFFX eval -compare "$1" --metric macro_F1 --split test --thresholds "$HERE/thresholds.yaml" --out "$2"
}
if [ "${1:-}" = "--report-only" ]; then
  compare /work/main/studies/runs/long "$HERE"
  exit 0
fi
export EFFX_ROOT="$ROOT"
stage() {  # stage KIND NAME: put the saved config (and tokenizer) into a fresh experiment folder
  rm -rf "$ROOT/$1/$2" && mkdir -p "$ROOT/$1/$2"
  cp "$HERE/configs/$1/$2/config.yaml" "$ROOT/$1/$2/config.yaml"
  if [ -f "$HERE/configs/$1/$2/tokenizer.json" ]; then
    cp "$HERE/configs/$1/$2/tokenizer.json" "$ROOT/$1/$2/original_tokenizer.json"
  fi
}
may_fail() {  # for runs that failed originally: their failure is re-created, not fatal
  "$@" || echo "reproduce.sh: '$*' failed (the original run failed too)" >&2
}

# finetune long-performer_favor-1024-1024 (seed 0, original status: finished)
stage finetune long-performer_favor-1024-1024
$EFFX finetune -exp long-performer_favor-1024-1024
$EFFX eval -exp long-performer_favor-1024-1024 -split test -ckpt best
$EFFX eval -exp long-performer_favor-1024-1024 -split validation -ckpt best
# finetune long-performer_favor-2048-2048 (seed 0, original status: finished)
stage finetune long-performer_favor-2048-2048
$EFFX finetune -exp long-performer_favor-2048-2048
$EFFX eval -exp long-performer_favor-2048-2048 -split test -ckpt best
$EFFX eval -exp long-performer_favor-2048-2048 -split validation -ckpt best
# finetune long-performer_favor_pp-1024-1024 (seed 0, original status: finished)
stage finetune long-performer_favor_pp-1024-1024
$EFFX finetune -exp long-performer_favor_pp-1024-1024
$EFFX eval -exp long-performer_favor_pp-1024-1024 -split test -ckpt best
$EFFX eval -exp long-performer_favor_pp-1024-1024 -split validation -ckpt best
# finetune long-reformer_balanced-1024-1024 (seed 0, original status: finished)
stage finetune long-reformer_balanced-1024-1024
$EFFX finetune -exp long-reformer_balanced-1024-1024
$EFFX eval -exp long-reformer_balanced-1024-1024 -split test -ckpt best
$EFFX eval -exp long-reformer_balanced-1024-1024 -split validation -ckpt best
# finetune long-reformer_balanced-2048-2048 (seed 0, original status: finished)
stage finetune long-reformer_balanced-2048-2048
$EFFX finetune -exp long-reformer_balanced-2048-2048
$EFFX eval -exp long-reformer_balanced-2048-2048 -split test -ckpt best
$EFFX eval -exp long-reformer_balanced-2048-2048 -split validation -ckpt best
# finetune long-reformer_lsh-1024-1024 (seed 0, original status: finished)
stage finetune long-reformer_lsh-1024-1024
$EFFX finetune -exp long-reformer_lsh-1024-1024
$EFFX eval -exp long-reformer_lsh-1024-1024 -split test -ckpt best
$EFFX eval -exp long-reformer_lsh-1024-1024 -split validation -ckpt best
# finetune long-reformer_lsh-2048-2048 (seed 0, original status: finished)
stage finetune long-reformer_lsh-2048-2048
$EFFX finetune -exp long-reformer_lsh-2048-2048
$EFFX eval -exp long-reformer_lsh-2048-2048 -split test -ckpt best
$EFFX eval -exp long-reformer_lsh-2048-2048 -split validation -ckpt best
# finetune long-sdpa-1024-1024 (seed 0, original status: finished)
stage finetune long-sdpa-1024-1024
$EFFX finetune -exp long-sdpa-1024-1024
$EFFX eval -exp long-sdpa-1024-1024 -split test -ckpt best
$EFFX eval -exp long-sdpa-1024-1024 -split validation -ckpt best
# finetune long-sdpa-2048-2048 (seed 0, original status: finished)
stage finetune long-sdpa-2048-2048
$EFFX finetune -exp long-sdpa-2048-2048
$EFFX eval -exp long-sdpa-2048-2048 -split test -ckpt best
$EFFX eval -exp long-sdpa-2048-2048 -split validation -ckpt best
# baseline long-tfidf-00e0dc (original status: finished)
$EFFX baseline -exp long-tfidf-00e0dc --config "$HERE/configs/baseline/long-tfidf-00e0dc/config.yaml"
# baseline long-tfidf-f428a9 (original status: finished)
$EFFX baseline -exp long-tfidf-f428a9 --config "$HERE/configs/baseline/long-tfidf-f428a9/config.yaml"
compare "$ROOT" "$ROOT/report"
