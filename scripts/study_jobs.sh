#!/usr/bin/env bash
# Runs study jobs one after another, each `effx sweep SPEC --job JOB` pinned to one core with one
# thread, and commits the small files of every ended run (scripts/collect_runs.py) after each job and
# every 2 minutes. Between jobs it waits while runs/PAUSE exists (a window for benchmarks on an idle
# machine). Run it from a checkout nobody edits while it runs (e.g. a `git worktree`): a job imports
# the code of the tree it starts from. Commits land in that tree: put the worktree on a branch
# (`git worktree add -b study ../study`) and merge it.
#   CORE=0 nohup bash scripts/study_jobs.sh studies/agnews.yaml studies/runs/agnews JOB... > runs/study.log 2>&1 &
# JOB names: `effx sweep SPEC --list`. Runs go to ${EFFX_ROOT:-runs/study}; re-running resumes.
set -u
cd "$(dirname "$0")/.."
SPEC=$1 DEST=$2; shift 2
ROOT=${EFFX_ROOT:-runs/study}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline
NAME=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$SPEC")
collect() { python scripts/collect_runs.py "$ROOT" "$DEST" --prefix "$NAME-" --commit "study: runs finished so far ($1) - small files under $DEST"; }
( while sleep 120; do collect watch > /dev/null 2>&1; done ) &
WATCH=$!
trap 'kill $WATCH 2>/dev/null' EXIT
for job in "$@"; do
  while [ -e runs/PAUSE ]; do sleep 10; done
  echo "$(date -Is) start $job at $(git rev-parse --short HEAD); $(uptime)"
  taskset -c "${CORE:-0}" effx sweep "$SPEC" --root "$ROOT" --job "$job"
  echo "$(date -Is) end $job rc=$?; $(uptime)"
  collect "$job"
done
