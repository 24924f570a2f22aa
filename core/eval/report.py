"""``effx eval -compare DIR``: scan runs, aggregate seeds, check PASS_WNF, write tables, plots, HTML, script.

Outputs in the report folder: ``results.csv``, ``ranking_by_<metric>.csv``, ``ranking_by_cost.csv``,
``failed_runs.csv``, ``comparison.md``, ``quality_vs_time_per_epoch.png``, ``quality_vs_memory.png``,
``report.html``, ``thresholds.yaml`` (the thresholds used), ``reproduce.sh`` and ``configs/``.
"""
from __future__ import annotations

import os
from pathlib import Path

import attrs
import pandas as pd

from ..config import dump_yaml, to_dict
from ..errors import EffxError
from ._io import write_csv, write_text
from .families import declared_families
from .fmt import number
from .html import INTERNAL, Page, render_html
from .plots import write_plots
from .reproduce import write_reproduce
from .results import failed_table, results_table, single_seed_std_as_na
from .runs import load_runs
from .tables import comparison_markdown, rank_by_cost, rank_by_metric
from .thresholds import load_thresholds
from .time_to_target import add_time_to_target
from .wnf import add_pass_wnf

@attrs.frozen
class Report:
    out: Path
    results: pd.DataFrame
    failed: pd.DataFrame
    files: dict[str, Path]


def _context(results: pd.DataFrame, source: Path, split: str, metric: str) -> list[str]:
    lines = [f"Experiments scanned: {source}", f"Split: {split}; ranking metric: {metric}"]
    neural = results[results["kind"] != "baseline"] if not results.empty else results
    for group, part in neural.groupby("compare_group", sort=False):
        r = part.iloc[0]
        lines.append(f"Comparison group {group}: device {r['device']}, batch {number(r['batch_size'])}, "
                     f"seq_len {number(r['seq_len'])}, tokenizer vocab {number(r['tokenizer_vocab_size'])}")
    return lines


def _check_metric(runs, metric: str) -> None:
    from ..plugins import load_registry

    names = set(load_registry().names("metric")) | {m for r in runs for m in r.metrics}
    if metric not in names:
        raise EffxError(f"unknown metric '{metric}' for --metric; available: {', '.join(sorted(names))}")


def build_report(source: str | Path, out: str | Path | None = None, metric: str = "macro_F1",
                 split: str = "validation", thresholds: str | Path | None = None) -> Report:
    """Compare every finetune run and baseline under ``source``; write the report into ``out``."""
    source = Path(source)
    if not source.is_dir():
        raise EffxError(f"-compare {source}: not a folder; pass the folder holding finetune/ and baseline/")
    families = declared_families()
    th = load_thresholds(thresholds).resolved({f.label: f.cost_thresholds for f in families.values() if not f.exact})
    out = Path(out) if out is not None else source / "report"
    runs = load_runs(source, split, metric, exclude=out)
    if not runs:
        raise EffxError(f"no finetune or baseline experiments found under {source}; "
                        f"run `effx finetune` or `effx baseline` first")
    _check_metric(runs, metric)
    results = add_pass_wnf(results_table(runs, split), th, families=families)
    results = add_time_to_target(results, runs, th.quality.time_to_target_drop_pp)
    failed = failed_table(runs)
    files = _write_all(out, results, failed, runs, metric, split, source, th)
    return Report(out, results, failed, files)


def _write_all(out, results, failed, runs, metric, split, source, th) -> dict[str, Path]:
    public = results.drop(columns=INTERNAL)
    ranks = {f"ranking_by_{metric}": rank_by_metric(results, metric), "ranking_by_cost": rank_by_cost(results, metric)}
    files = {"results.csv": write_csv(out / "results.csv", single_seed_std_as_na(public)),
             "failed_runs.csv": write_csv(out / "failed_runs.csv", failed)}
    files.update({f"{k}.csv": write_csv(out / f"{k}.csv", single_seed_std_as_na(v)) for k, v in ranks.items()})
    md = comparison_markdown(results, failed, metric, th.quality.time_to_target_drop_pp)
    files["comparison.md"] = write_text(out / "comparison.md", md)
    files["thresholds.yaml"] = write_text(out / "thresholds.yaml", dump_yaml(to_dict(th)))
    plots = write_plots(results, metric, out)
    files.update({p.name: p for p in plots.values()})
    page = render_html(Page("effx comparison report", _context(results, source, split, metric), results, failed,
                            ranks, plots, th, metric))
    files["report.html"] = write_text(out / "report.html", page)
    files["reproduce.sh"] = write_reproduce(runs, out, source, metric, split, Path(os.getcwd()))
    return files
