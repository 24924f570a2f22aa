#!/usr/bin/env bash
# Fault injection against real `effx pretrain` runs (scripts/faults.py): 10 random kill -9s, a bit flip,
# a truncation, two writers, signals at start-up, a full disk and a read-only folder. Writes the table
# with the command, commit and load to docs/bench/faults.md (FAULTS_OUT to change). Run as root for the
# tmpfs cases. Usage: scripts/faults.sh [--kills 10] [--seed 0]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${FAULTS_OUT:-docs/bench/faults.md}
mkdir -p "$(dirname "$out")"
(
  echo "# Fault injection: kill -9, corruption, one writer, signals, disk full, read-only"
  echo
  echo "Command: \`scripts/faults.sh $*\` (nice -n 10) at commit $(git rev-parse --short HEAD), started $(date -u +%FT%TZ)."
  echo "Model: 2 layers, d_model 64, fp32, CPU, 40 steps, a checkpoint every step; the reference is an"
  echo "uninterrupted run of the same config. \`uptime\` before: $(uptime)"
  echo
  nice -n 10 python scripts/faults.py "$@"
  rc=$?
  echo
  echo "\`uptime\` after: $(uptime)"
  exit $rc
) > "$out.tmp"
rc=$?
mv "$out.tmp" "$out"
cat "$out"
exit $rc
