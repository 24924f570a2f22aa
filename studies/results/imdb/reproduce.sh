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
  compare /work/main/studies/runs/imdb "$HERE"
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

# finetune imdb-s0-reformer_lsh (seed 0, original status: failed)
stage pretrain imdb-pre-reformer_lsh
$EFFX pretrain -exp imdb-pre-reformer_lsh
stage finetune imdb-s0-reformer_lsh
may_fail $EFFX finetune -exp imdb-s0-reformer_lsh -pretrain imdb-pre-reformer_lsh -ckpt best
# finetune imdb-s0-sdpa (seed 0, original status: finished)
stage pretrain imdb-pre-sdpa
$EFFX pretrain -exp imdb-pre-sdpa
stage finetune imdb-s0-sdpa
$EFFX finetune -exp imdb-s0-sdpa -pretrain imdb-pre-sdpa -ckpt best
$EFFX eval -exp imdb-s0-sdpa -split test -ckpt best
$EFFX eval -exp imdb-s0-sdpa -split validation -ckpt best
# finetune imdb-s1-sdpa (seed 1, original status: finished)
stage finetune imdb-s1-sdpa
$EFFX finetune -exp imdb-s1-sdpa -pretrain imdb-pre-sdpa -ckpt best
$EFFX eval -exp imdb-s1-sdpa -split test -ckpt best
$EFFX eval -exp imdb-s1-sdpa -split validation -ckpt best
# finetune imdb-s2-sdpa (seed 2, original status: finished)
stage finetune imdb-s2-sdpa
$EFFX finetune -exp imdb-s2-sdpa -pretrain imdb-pre-sdpa -ckpt best
$EFFX eval -exp imdb-s2-sdpa -split test -ckpt best
$EFFX eval -exp imdb-s2-sdpa -split validation -ckpt best
# baseline imdb-tfidf-39a39e (original status: finished)
$EFFX baseline -exp imdb-tfidf-39a39e --config "$HERE/configs/baseline/imdb-tfidf-39a39e/config.yaml"
# baseline imdb-tfidf-748f9f (original status: finished)
$EFFX baseline -exp imdb-tfidf-748f9f --config "$HERE/configs/baseline/imdb-tfidf-748f9f/config.yaml"
# baseline imdb-tfidf-90577f (original status: finished)
$EFFX baseline -exp imdb-tfidf-90577f --config "$HERE/configs/baseline/imdb-tfidf-90577f/config.yaml"
compare "$ROOT" "$ROOT/report"
