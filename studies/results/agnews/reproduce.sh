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
  compare /work/main/studies/runs/agnews "$HERE"
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

# finetune agnews-s0-performer_favor (seed 0, original status: finished)
stage pretrain agnews-pre-performer_favor
$EFFX pretrain -exp agnews-pre-performer_favor
stage finetune agnews-s0-performer_favor
$EFFX finetune -exp agnews-s0-performer_favor -pretrain agnews-pre-performer_favor -ckpt best
$EFFX eval -exp agnews-s0-performer_favor -split test -ckpt best
$EFFX eval -exp agnews-s0-performer_favor -split validation -ckpt best
# finetune agnews-s0-performer_favor_pp (seed 0, original status: finished)
stage pretrain agnews-pre-performer_favor_pp
$EFFX pretrain -exp agnews-pre-performer_favor_pp
stage finetune agnews-s0-performer_favor_pp
$EFFX finetune -exp agnews-s0-performer_favor_pp -pretrain agnews-pre-performer_favor_pp -ckpt best
$EFFX eval -exp agnews-s0-performer_favor_pp -split test -ckpt best
$EFFX eval -exp agnews-s0-performer_favor_pp -split validation -ckpt best
# finetune agnews-s0-reformer_balanced (seed 0, original status: finished)
stage pretrain agnews-pre-reformer_balanced
$EFFX pretrain -exp agnews-pre-reformer_balanced
stage finetune agnews-s0-reformer_balanced
$EFFX finetune -exp agnews-s0-reformer_balanced -pretrain agnews-pre-reformer_balanced -ckpt best
$EFFX eval -exp agnews-s0-reformer_balanced -split test -ckpt best
$EFFX eval -exp agnews-s0-reformer_balanced -split validation -ckpt best
# finetune agnews-s0-reformer_lsh (seed 0, original status: finished)
stage pretrain agnews-pre-reformer_lsh
$EFFX pretrain -exp agnews-pre-reformer_lsh
stage finetune agnews-s0-reformer_lsh
$EFFX finetune -exp agnews-s0-reformer_lsh -pretrain agnews-pre-reformer_lsh -ckpt best
$EFFX eval -exp agnews-s0-reformer_lsh -split test -ckpt best
$EFFX eval -exp agnews-s0-reformer_lsh -split validation -ckpt best
# finetune agnews-s0-sdpa (seed 0, original status: finished)
stage pretrain agnews-pre-sdpa
$EFFX pretrain -exp agnews-pre-sdpa
stage finetune agnews-s0-sdpa
$EFFX finetune -exp agnews-s0-sdpa -pretrain agnews-pre-sdpa -ckpt best
$EFFX eval -exp agnews-s0-sdpa -split test -ckpt best
$EFFX eval -exp agnews-s0-sdpa -split validation -ckpt best
# finetune agnews-s1-performer_favor (seed 1, original status: finished)
stage finetune agnews-s1-performer_favor
$EFFX finetune -exp agnews-s1-performer_favor -pretrain agnews-pre-performer_favor -ckpt best
$EFFX eval -exp agnews-s1-performer_favor -split test -ckpt best
$EFFX eval -exp agnews-s1-performer_favor -split validation -ckpt best
# finetune agnews-s1-performer_favor_pp (seed 1, original status: finished)
stage finetune agnews-s1-performer_favor_pp
$EFFX finetune -exp agnews-s1-performer_favor_pp -pretrain agnews-pre-performer_favor_pp -ckpt best
$EFFX eval -exp agnews-s1-performer_favor_pp -split test -ckpt best
$EFFX eval -exp agnews-s1-performer_favor_pp -split validation -ckpt best
# finetune agnews-s1-reformer_balanced (seed 1, original status: finished)
stage finetune agnews-s1-reformer_balanced
$EFFX finetune -exp agnews-s1-reformer_balanced -pretrain agnews-pre-reformer_balanced -ckpt best
$EFFX eval -exp agnews-s1-reformer_balanced -split test -ckpt best
$EFFX eval -exp agnews-s1-reformer_balanced -split validation -ckpt best
# finetune agnews-s1-reformer_lsh (seed 1, original status: finished)
stage finetune agnews-s1-reformer_lsh
$EFFX finetune -exp agnews-s1-reformer_lsh -pretrain agnews-pre-reformer_lsh -ckpt best
$EFFX eval -exp agnews-s1-reformer_lsh -split test -ckpt best
$EFFX eval -exp agnews-s1-reformer_lsh -split validation -ckpt best
# finetune agnews-s1-sdpa (seed 1, original status: finished)
stage finetune agnews-s1-sdpa
$EFFX finetune -exp agnews-s1-sdpa -pretrain agnews-pre-sdpa -ckpt best
$EFFX eval -exp agnews-s1-sdpa -split test -ckpt best
$EFFX eval -exp agnews-s1-sdpa -split validation -ckpt best
# finetune agnews-s2-performer_favor (seed 2, original status: finished)
stage finetune agnews-s2-performer_favor
$EFFX finetune -exp agnews-s2-performer_favor -pretrain agnews-pre-performer_favor -ckpt best
$EFFX eval -exp agnews-s2-performer_favor -split test -ckpt best
$EFFX eval -exp agnews-s2-performer_favor -split validation -ckpt best
# finetune agnews-s2-performer_favor_pp (seed 2, original status: finished)
stage finetune agnews-s2-performer_favor_pp
$EFFX finetune -exp agnews-s2-performer_favor_pp -pretrain agnews-pre-performer_favor_pp -ckpt best
$EFFX eval -exp agnews-s2-performer_favor_pp -split test -ckpt best
$EFFX eval -exp agnews-s2-performer_favor_pp -split validation -ckpt best
# finetune agnews-s2-reformer_balanced (seed 2, original status: finished)
stage finetune agnews-s2-reformer_balanced
$EFFX finetune -exp agnews-s2-reformer_balanced -pretrain agnews-pre-reformer_balanced -ckpt best
$EFFX eval -exp agnews-s2-reformer_balanced -split test -ckpt best
$EFFX eval -exp agnews-s2-reformer_balanced -split validation -ckpt best
# finetune agnews-s2-reformer_lsh (seed 2, original status: finished)
stage finetune agnews-s2-reformer_lsh
$EFFX finetune -exp agnews-s2-reformer_lsh -pretrain agnews-pre-reformer_lsh -ckpt best
$EFFX eval -exp agnews-s2-reformer_lsh -split test -ckpt best
$EFFX eval -exp agnews-s2-reformer_lsh -split validation -ckpt best
# finetune agnews-s2-sdpa (seed 2, original status: finished)
stage finetune agnews-s2-sdpa
$EFFX finetune -exp agnews-s2-sdpa -pretrain agnews-pre-sdpa -ckpt best
$EFFX eval -exp agnews-s2-sdpa -split test -ckpt best
$EFFX eval -exp agnews-s2-sdpa -split validation -ckpt best
# baseline agnews-tfidf-3fc0f1 (original status: finished)
$EFFX baseline -exp agnews-tfidf-3fc0f1 --config "$HERE/configs/baseline/agnews-tfidf-3fc0f1/config.yaml"
# baseline agnews-tfidf-80d636 (original status: finished)
$EFFX baseline -exp agnews-tfidf-80d636 --config "$HERE/configs/baseline/agnews-tfidf-80d636/config.yaml"
# baseline agnews-tfidf-c6397a (original status: finished)
$EFFX baseline -exp agnews-tfidf-c6397a --config "$HERE/configs/baseline/agnews-tfidf-c6397a/config.yaml"
compare "$ROOT" "$ROOT/report"
