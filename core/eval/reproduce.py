"""Write ``reproduce.sh``: re-run every experiment in a report from its saved config, then rebuild it.

The saved configs are copied next to the script (``configs/<kind>/<name>/config.yaml``) so the script
does not depend on the original folders. It re-creates the experiments in a fresh root
(``$REPRO_ROOT``, default ``<report>/reproduced``): pretraining, finetuning, the evaluations recorded in
each ``eval.json``, the baselines, and finally ``effx eval -compare`` into ``$REPRO_ROOT/report``.
Pretraining re-uses its original trained tokenizer (WordPiece training may break count ties
differently from run to run). Runs that failed originally are re-run too (their failure is part of
the report) and may fail again without stopping the script. ``./reproduce.sh --report-only`` rebuilds the report from the original
folders without training.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from ..config import dump_yaml, parse_yaml
from ._io import read_json, write_text
from .runs import Run

SAVED_TOKENIZER = "original_tokenizer.json"
HEADER = """#!/usr/bin/env bash
# Re-runs every experiment of this report from its saved config, then rebuilds the report.
#   ./reproduce.sh                 re-train into $REPRO_ROOT (default: <this folder>/reproduced)
#                                  and write the new report to $REPRO_ROOT/report
#   ./reproduce.sh --report-only   rebuild this report from the original experiment folders
# Environment: EFFX (command, default: effx), REPRO_ROOT, REPRO_CWD (folder relative data paths
# are resolved from; default: where the report was built).
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
EFFX="${{EFFX:-effx}}"
ROOT="${{REPRO_ROOT:-$HERE/reproduced}}"
ORIG_CWD={cwd}
cd "${{REPRO_CWD:-$ORIG_CWD}}"

{threads}compare() {{  # compare SOURCE_DIR OUT_DIR
  $EFFX eval -compare "$1" --metric {metric} --split {split} --thresholds "$HERE/thresholds.yaml" --out "$2"
}}
if [ "${{1:-}}" = "--report-only" ]; then
  compare {source} "$HERE"
  exit 0
fi
export EFFX_ROOT="$ROOT"
stage() {{  # stage KIND NAME: put the saved config (and tokenizer) into a fresh experiment folder
  rm -rf "$ROOT/$1/$2" && mkdir -p "$ROOT/$1/$2"
  cp "$HERE/configs/$1/$2/config.yaml" "$ROOT/$1/$2/config.yaml"
  if [ -f "$HERE/configs/$1/$2/tokenizer.json" ]; then
    cp "$HERE/configs/$1/$2/tokenizer.json" "$ROOT/$1/$2/{saved}"
  fi
}}
may_fail() {{  # for runs that failed originally: their failure is re-created, not fatal
  "$@" || echo "reproduce.sh: '$*' failed (the original run failed too)" >&2
}}
"""


def _q(x: object) -> str:
    return shlex.quote(str(x))


def _checkpoint_arg(ref: object, pre: str) -> str:
    """best/last stay symbolic; a file path is re-pointed into the reproduced pretraining folder."""
    text = str(ref or "best")
    if text in ("best", "last"):
        return text
    if Path(text).name in ("ckpt_best.pt", "ckpt_last.pt"):
        return Path(text).stem.removeprefix("ckpt_")
    return f'"$ROOT/pretrain/{pre}/{Path(text).name}"'


def _absolute(section: dict, keys: tuple[str, ...], root: Path) -> None:
    """Make relative paths absolute (``section[key]`` may be a path or a list of paths / {path} entries)."""
    for key in (k for k in keys if k in section):
        value = section[key]
        if isinstance(value, list):
            section[key] = [{**v, "path": _absolute_path(v.get("path"), root)} if isinstance(v, dict)
                            else _absolute_path(v, root) for v in value]
        else:
            section[key] = _absolute_path(value, root)


def _absolute_path(value, root: Path):
    if isinstance(value, str) and not Path(value).expanduser().is_absolute() and (root / value).exists():
        return str((root / value).resolve())
    return value


def _stage_config(run_dir: Path, kind: str, name: str, out: Path) -> None:
    """Copy the saved config; relative data paths (relative to the original root) become absolute.

    A pretraining also keeps its trained tokenizer: WordPiece training may break count ties
    differently from run to run (tokenizers#1794), so the re-run loads the original vocabulary
    (``tokenizer.path``) instead of training a new one.
    """
    data = parse_yaml((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    root, dest = run_dir.parent.parent, out / "configs" / kind / name
    if isinstance(data.get("data"), dict):
        _absolute(data["data"], ("train", "validation", "test"), root)
    note = f"# saved config of {kind}/{name} from {run_dir} (data paths made absolute)\n"
    tok = data.get("tokenizer")
    if isinstance(tok, dict) and (run_dir / "tokenizer.json").is_file():  # pretraining, or finetune from scratch
        if tok.get("path"):
            _absolute(tok, ("path",), root)
        else:
            write_text(dest / "tokenizer.json", (run_dir / "tokenizer.json").read_text(encoding="utf-8"))
            tok["path"] = f"{kind}/{name}/{SAVED_TOKENIZER}"  # relative to the reproduction root
            note += "# tokenizer.path: the tokenizer this pretraining trained, reused (see reproduce.sh)\n"
    write_text(dest / "config.yaml", note + dump_yaml(data))


def _eval_lines(run: Run, prefix: str) -> list[str]:
    results = (read_json(run.path / "eval.json") or {}).get("results") or {}
    lines = []
    for split, res in sorted(results.items()):
        ckpt = Path(str((res or {}).get("checkpoint_arg") or "best"))
        arg = ckpt.name if str(ckpt) not in ("best", "last") else str(ckpt)
        arg = arg if arg in ("best", "last") else f'"$ROOT/finetune/{run.name}/{arg}"'
        lines.append(f"{prefix}$EFFX eval -exp {_q(run.name)} -split {_q(split)} -ckpt {arg}")
    return lines


def finetune_lines(run: Run, out: Path, staged: set[str]) -> list[str]:
    prefix = "" if run.ok else "may_fail "
    pre = str(run.config.get("pretrain.name") or "")
    pre_dir = Path(str(run.config.get("pretrain.path") or run.path.parent.parent / "pretrain" / pre))
    lines = [f"# finetune {run.name} (seed {run.seed}, original status: {run.status})"]
    if pre and pre not in staged and (pre_dir / "config.yaml").exists():
        _stage_config(pre_dir, "pretrain", pre, out)
        staged.add(pre)
        lines += [f"stage pretrain {_q(pre)}", f"$EFFX pretrain -exp {_q(pre)}"]
    _stage_config(run.path, "finetune", run.name, out)
    source = f" -pretrain {_q(pre)} -ckpt {_checkpoint_arg(run.config.get('pretrain.checkpoint'), pre)}" if pre else ""
    lines += [f"stage finetune {_q(run.name)}", f"{prefix}$EFFX finetune -exp {_q(run.name)}{source}"]
    return lines + _eval_lines(run, prefix)


def baseline_lines(run: Run, out: Path) -> list[str]:
    _stage_config(run.path, "baseline", run.name, out)
    prefix = "" if run.ok else "may_fail "
    return [f"# baseline {run.name} (original status: {run.status})",
            f'{prefix}$EFFX baseline -exp {_q(run.name)} --config "$HERE/configs/baseline/{run.name}/config.yaml"']


def thread_line(runs: list[Run]) -> str:
    """CPU float sums depend on the thread count: re-use the one the runs were trained with, if recorded."""
    seen = {(read_json(r.path / "sweep.json") or {}).get("omp_num_threads") for r in runs if r.kind == "finetune"}
    seen.discard(None)
    if len(seen) != 1:
        return ""
    return ("# the runs were trained with this many CPU threads; the same count gives the same numbers on CPU\n"
            f'export OMP_NUM_THREADS="${{OMP_NUM_THREADS:-{int(seen.pop())}}}"\n')


def write_reproduce(runs: list[Run], out: Path, source: Path, metric: str, split: str, cwd: Path) -> Path:
    """Write ``out/reproduce.sh`` (executable) and the saved configs it uses."""
    staged: set[str] = set()
    body: list[str] = []
    for run in sorted(runs, key=lambda r: (r.kind != "finetune", r.name)):
        if not (run.path / "config.yaml").exists():
            body.append(f"# {run.name}: no config.yaml saved, cannot be re-run")
            continue
        body += finetune_lines(run, out, staged) if run.kind == "finetune" else baseline_lines(run, out)
    body.append('compare "$ROOT" "$ROOT/report"')
    head = HEADER.format(cwd=_q(cwd.resolve()), metric=_q(metric), split=_q(split), source=_q(source.resolve()),
                       threads=thread_line(runs), saved=SAVED_TOKENIZER)
    return write_text(out / "reproduce.sh", head + "\n" + "\n".join(body) + "\n", chmod=0o755)
