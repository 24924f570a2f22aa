"""The metrics a run reports: every registered metric, each with its config from ``train.metrics``.

One list for training validation, ``effx eval``, the baseline and the comparison report: the
registry's metrics in registration order (the built-ins first, then each plugin's).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def metric_names(registry) -> list[str]:
    """Every registered metric, in registration order."""
    return list(registry.entries["metric"])


def build_metrics(registry, section: dict[str, Any] | None = None) -> dict[str, Any]:
    """``name -> Metric`` instance, configured from ``section`` (``train.metrics``; defaults if absent)."""
    from .config import metric_configs

    configs = metric_configs(section or {}, registry)
    return {name: registry.get("metric", name).cls(configs[name]) for name in metric_names(registry)}


def score(y_true: np.ndarray, probs: np.ndarray, registry=None, section: dict[str, Any] | None = None) -> dict[str, float]:
    """Every metric on ``(y_true [n], probs [n, C])``."""
    if registry is None:
        from .plugins import load_registry

        registry = load_registry()
    return {name: float(metric(y_true, probs)) for name, metric in build_metrics(registry, section).items()}
