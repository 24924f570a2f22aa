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
  compare /work/main/studies/runs/hp "$HERE"
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

# finetune hp-learned-128-512 (seed 0, original status: finished)
stage finetune hp-learned-128-512
$EFFX finetune -exp hp-learned-128-512
$EFFX eval -exp hp-learned-128-512 -split test -ckpt best
$EFFX eval -exp hp-learned-128-512 -split validation -ckpt best
# finetune hp-learned-256-1024 (seed 0, original status: finished)
stage finetune hp-learned-256-1024
$EFFX finetune -exp hp-learned-256-1024
$EFFX eval -exp hp-learned-256-1024 -split test -ckpt best
$EFFX eval -exp hp-learned-256-1024 -split validation -ckpt best
# finetune hp-relative-128-512 (seed 0, original status: finished)
stage finetune hp-relative-128-512
$EFFX finetune -exp hp-relative-128-512
$EFFX eval -exp hp-relative-128-512 -split test -ckpt best
$EFFX eval -exp hp-relative-128-512 -split validation -ckpt best
# finetune hp-relative-256-1024 (seed 0, original status: finished)
stage finetune hp-relative-256-1024
$EFFX finetune -exp hp-relative-256-1024
$EFFX eval -exp hp-relative-256-1024 -split test -ckpt best
$EFFX eval -exp hp-relative-256-1024 -split validation -ckpt best
# finetune hp-rope-128-512 (seed 0, original status: finished)
stage finetune hp-rope-128-512
$EFFX finetune -exp hp-rope-128-512
$EFFX eval -exp hp-rope-128-512 -split test -ckpt best
$EFFX eval -exp hp-rope-128-512 -split validation -ckpt best
# finetune hp-rope-256-1024 (seed 0, original status: finished)
stage finetune hp-rope-256-1024
$EFFX finetune -exp hp-rope-256-1024
$EFFX eval -exp hp-rope-256-1024 -split test -ckpt best
$EFFX eval -exp hp-rope-256-1024 -split validation -ckpt best
# finetune hp-sin-128-512 (seed 0, original status: finished)
stage finetune hp-sin-128-512
$EFFX finetune -exp hp-sin-128-512
$EFFX eval -exp hp-sin-128-512 -split test -ckpt best
$EFFX eval -exp hp-sin-128-512 -split validation -ckpt best
# finetune hp-sin-256-1024 (seed 0, original status: finished)
stage finetune hp-sin-256-1024
$EFFX finetune -exp hp-sin-256-1024
$EFFX eval -exp hp-sin-256-1024 -split test -ckpt best
$EFFX eval -exp hp-sin-256-1024 -split validation -ckpt best
# baseline hp-tfidf-5142a9 (original status: finished)
$EFFX baseline -exp hp-tfidf-5142a9 --config "$HERE/configs/baseline/hp-tfidf-5142a9/config.yaml"
compare "$ROOT" "$ROOT/report"
