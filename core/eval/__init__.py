"""Evaluation, prediction, the TF-IDF+LR baseline, sweeps and comparison reports (docs/REPORTS.md).

* :func:`evaluate` - ``effx eval -exp FT``: metrics, inference tokens/s and peak memory -> ``eval.json``;
* :func:`predict_file` - ``effx predict``: labels and class probabilities for new texts;
* :func:`run_baseline` - ``effx baseline``: TF-IDF (word 1-2-grams) + logistic regression on the same split;
* :func:`run_sweep` - ``effx sweep SPEC``: grid/list of experiments, K processes at a time, resumable;
* :func:`build_report` - ``effx eval -compare DIR``: results.csv, rankings, PASS_WNF, plots, HTML, reproduce.sh.
"""
from __future__ import annotations

from .baseline import BaselineConfig, make_config, run_baseline
from ..metrics import score
from .evaluate import evaluate
from .predict import PredictSummary, predict_file, read_texts
from .report import Report, build_report
from .sweep import SweepSpec, load_spec, plan, run_sweep
from .thresholds import Thresholds, load_thresholds

__all__ = [
    "evaluate", "score", "predict_file", "read_texts", "PredictSummary", "BaselineConfig", "make_config",
    "run_baseline", "SweepSpec", "load_spec", "plan", "run_sweep", "build_report", "Report", "Thresholds",
    "load_thresholds",
]
