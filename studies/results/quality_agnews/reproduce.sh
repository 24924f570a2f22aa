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
  compare /work/main/studies/runs/quality_agnews "$HERE"
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

# finetune q-0-1 (seed 0, original status: finished)
stage finetune q-0-1
$EFFX finetune -exp q-0-1
$EFFX eval -exp q-0-1 -split test -ckpt best
$EFFX eval -exp q-0-1 -split validation -ckpt best
# finetune q-0-2 (seed 0, original status: finished)
stage finetune q-0-2
$EFFX finetune -exp q-0-2
$EFFX eval -exp q-0-2 -split test -ckpt best
$EFFX eval -exp q-0-2 -split validation -ckpt best
# finetune q-2-1 (seed 0, original status: finished)
stage finetune q-2-1
$EFFX finetune -exp q-2-1 -pretrain q-pre-2 -ckpt best
$EFFX eval -exp q-2-1 -split test -ckpt best
$EFFX eval -exp q-2-1 -split validation -ckpt best
# finetune q-2-2 (seed 0, original status: finished)
stage finetune q-2-2
$EFFX finetune -exp q-2-2 -pretrain q-pre-2 -ckpt best
$EFFX eval -exp q-2-2 -split test -ckpt best
$EFFX eval -exp q-2-2 -split validation -ckpt best
# finetune q-4-1 (seed 0, original status: finished)
stage finetune q-4-1
$EFFX finetune -exp q-4-1 -pretrain q-pre-4 -ckpt best
$EFFX eval -exp q-4-1 -split test -ckpt best
$EFFX eval -exp q-4-1 -split validation -ckpt best
# finetune q-4-2 (seed 0, original status: finished)
stage finetune q-4-2
$EFFX finetune -exp q-4-2 -pretrain q-pre-4 -ckpt best
$EFFX eval -exp q-4-2 -split test -ckpt best
$EFFX eval -exp q-4-2 -split validation -ckpt best
# baseline q-tfidf-5a57dd (original status: finished)
$EFFX baseline -exp q-tfidf-5a57dd --config "$HERE/configs/baseline/q-tfidf-5a57dd/config.yaml"
compare "$ROOT" "$ROOT/report"
