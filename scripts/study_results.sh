#!/usr/bin/env bash
# The study's committed results: `effx eval -compare` over the committed run files of each part
# (studies/runs/PART, small files only) into studies/results/PART (report.html, results.csv,
# comparison.md, plots, reproduce.sh), scored on the test split.
#   bash scripts/study_results.sh            rebuild every part that has runs
#   bash scripts/study_results.sh --check    rebuild into a temporary folder and diff results.csv
#                                            against the committed one (exit 1 on a difference)
set -euo pipefail
cd "$(dirname "$0")/.."
check=0; [ "${1:-}" = "--check" ] && check=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
status=0
for runs in studies/runs/*/; do
  part=$(basename "$runs")
  [ -d "$runs/finetune" ] || continue
  out=studies/results/$part
  [ $check = 1 ] && out=$tmp/$part
  effx eval -compare "$runs" --split test --out "$out" > "$tmp/$part.log" 2>&1 || { cat "$tmp/$part.log"; exit 1; }
  if [ $check = 1 ]; then
    if diff -q "$out/results.csv" "studies/results/$part/results.csv" >/dev/null; then
      echo "$part: results.csv reproduced"
    else
      echo "$part: results.csv differs from the committed one"; status=1
    fi
  else
    echo "$part: $out/results.csv"
  fi
done
exit $status
