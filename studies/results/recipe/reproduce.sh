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

compare() {  # compare SOURCE_DIR OUT_DIR
  $EFFX eval -compare "$1" --metric macro_F1 --split test --thresholds "$HERE/thresholds.yaml" --out "$2"
}
if [ "${1:-}" = "--report-only" ]; then
  compare /work/main/studies/runs/recipe "$HERE"
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

# finetune pos-learned (seed 0, original status: finished)
stage finetune pos-learned
$EFFX finetune -exp pos-learned
$EFFX eval -exp pos-learned -split test -ckpt best
$EFFX eval -exp pos-learned -split validation -ckpt best
# finetune pos-relative (seed 0, original status: finished)
stage finetune pos-relative
$EFFX finetune -exp pos-relative
$EFFX eval -exp pos-relative -split test -ckpt best
$EFFX eval -exp pos-relative -split validation -ckpt best
# finetune pos-rope (seed 0, original status: finished)
stage finetune pos-rope
$EFFX finetune -exp pos-rope
$EFFX eval -exp pos-rope -split test -ckpt best
$EFFX eval -exp pos-rope -split validation -ckpt best
# finetune pos-sin (seed 0, original status: finished)
stage finetune pos-sin
$EFFX finetune -exp pos-sin
$EFFX eval -exp pos-sin -split test -ckpt best
$EFFX eval -exp pos-sin -split validation -ckpt best
compare "$ROOT" "$ROOT/report"
