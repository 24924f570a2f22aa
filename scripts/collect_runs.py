"""Copy the small files of every ended run under a sweep root into a folder that is committed.

    python scripts/collect_runs.py runs/study studies/runs/agnews [--prefix agnews-] [--commit "message"]

Only runs whose status.json says finished or failed are copied (a running one is left for the next
call), and only their small text files: configs, metrics.csv, eval.json, status.json, run_info.json,
events.jsonl, labels.json, sweep.json and logs/train.log (never checkpoints, head weights, tokenizers
or W&B folders). With --prefix, only runs whose name starts with it (a sweep's runs are named
after its spec's `name:`, so several sweeps can share one root). `effx eval -compare DEST` reads the copy as it
would read the original root. With --commit, the copied files are committed with that message.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

SMALL = ("config.yaml", "resolved_config.yaml", "metrics.csv", "eval.json", "status.json", "run_info.json",
         "events.jsonl", "labels.json", "sweep.json", "logs/train.log")


def ended(run: Path) -> bool:
    try:
        return json.loads((run / "status.json").read_text()).get("status") in ("finished", "failed")
    except (OSError, ValueError):
        return False


def collect(src: Path, dest: Path, prefix: str = "") -> list[Path]:
    copied = []
    for run in sorted(p for kind in ("pretrain", "finetune", "baseline") for p in (src / kind).glob(f"{prefix}*")):
        if not ended(run):
            continue
        for name in SMALL:
            if (run / name).is_file():
                target = dest / run.relative_to(src) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(run / name, target)
                copied.append(target)
    return copied


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Copy the small files of ended runs into a committed folder.")
    parser.add_argument("src", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--prefix", default="", help="only runs whose name starts with this")
    parser.add_argument("--commit", metavar="MESSAGE", help="commit the copied files with this message")
    args = parser.parse_args(argv)
    copied = collect(args.src, args.dest, args.prefix)
    print(f"{len(copied)} files of ended runs copied from {args.src} to {args.dest}")
    if args.commit and copied:
        subprocess.run(["git", "add", "-f", str(args.dest)], check=True)
        subprocess.run(["git", "commit", "-q", "-m", args.commit, "--", str(args.dest)], check=False)


if __name__ == "__main__":
    main(sys.argv[1:])
