"""Training: ``effx init`` / ``effx pretrain`` / ``effx finetune`` as library functions.

* :func:`init_experiment` writes ``pretrain/NAME/config.yaml`` (or ``finetune/FT/config.yaml``);
* :func:`run_pretrain` / :func:`run_finetune` train, checkpoint, log and resume;
* :func:`load_for_inference` rebuilds a trained model for eval / predict;
* :func:`experiment_dir` says where an experiment lives (``--root`` / ``EFFX_ROOT`` / cwd).

See docs/GUIDE.md for the walk-through and the files every run writes.
"""
from __future__ import annotations

from .checkpoint import CheckpointError
from .experiment import init_experiment
from .inference import Inference, load_for_inference
from .loop import Interrupted, TrainingFailed
from .paths import experiment_dir, resolve_root
from .run import RunResult, run_finetune, run_pretrain

__all__ = [
    "init_experiment", "run_pretrain", "run_finetune", "load_for_inference", "Inference", "experiment_dir",
    "resolve_root", "RunResult", "CheckpointError", "TrainingFailed", "Interrupted",
]
