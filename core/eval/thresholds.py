"""PASS_WNF acceptance thresholds (SPEC WNF-1/WNF-2), loaded strictly from YAML.

The defaults live in ``thresholds.yaml`` next to this module; users copy and edit that file and pass
it with ``effx eval -compare DIR --thresholds FILE``. Missing keys keep their default, unknown keys
are an error naming the dotted path.
"""
from __future__ import annotations

from pathlib import Path

import attrs

from ..config import load_yaml, structure

DEFAULT_PATH = Path(__file__).with_name("thresholds.yaml")


@attrs.frozen
class QualityThresholds:
    sdpa_min_gain_over_baseline_pp: float = 5.0
    efficient_min_gain_over_baseline_pp: float = 3.0
    efficient_max_drop_vs_sdpa_pp: float = 1.0


@attrs.frozen
class CostThreshold:
    """Pass if time/epoch <= SDPA * (1 - min_time_reduction) OR memory <= SDPA * (1 - min_memory_reduction)."""

    min_time_reduction: float = 0.2
    min_memory_reduction: float = 0.3


@attrs.frozen
class CostThresholds:
    performer: CostThreshold = CostThreshold(0.20, 0.30)
    reformer: CostThreshold = CostThreshold(0.15, 0.25)


@attrs.frozen
class StabilityThresholds:
    min_seeds: int = 3
    max_spread_pp: float = 1.0
    allow_failed_runs: bool = False


@attrs.frozen
class Thresholds:
    quality: QualityThresholds = QualityThresholds()
    cost: CostThresholds = CostThresholds()
    stability: StabilityThresholds = StabilityThresholds()


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """Read thresholds from ``path`` (default: the packaged ``thresholds.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_PATH
    return structure(load_yaml(path), Thresholds, root=f"{path.name}")
