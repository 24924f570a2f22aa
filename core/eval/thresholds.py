"""PASS_WNF acceptance thresholds, loaded strictly from YAML.

The defaults live in ``thresholds.yaml`` next to this module; users copy and edit that file and pass
it with ``effx eval -compare DIR --thresholds FILE``. Missing keys keep their default, unknown keys
are an error naming the dotted path.

Cost rules are keyed by attention family (the ``family`` an attention class declares, else its
``name``). The rule for a non-exact family is, in order: its ``cost.<family>`` entry in the file,
else the ``cost_thresholds`` its attention class declares, else ``cost.default``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import attrs

from ..config import load_yaml, structure

DEFAULT_PATH = Path(__file__).with_name("thresholds.yaml")
DEFAULT_COST = "default"


@attrs.frozen
class QualityThresholds:
    """Quality rules in percentage points; ``time_to_target_drop_pp`` sets the time-to-target goal
    (TF-IDF+LR validation macro-F1 minus that many points), reported but not a PASS_WNF check."""

    exact_min_gain_over_baseline_pp: float = 5.0
    efficient_min_gain_over_baseline_pp: float = 3.0
    efficient_max_drop_vs_exact_pp: float = 1.0
    time_to_target_drop_pp: float = 2.0


@attrs.frozen
class CostThreshold:
    """Pass if time/epoch <= exact * (1 - min_time_reduction) OR memory <= exact * (1 - min_memory_reduction)."""

    min_time_reduction: float = 0.2
    min_memory_reduction: float = 0.3


@attrs.frozen
class StabilityThresholds:
    min_seeds: int = 3
    max_spread_pp: float = 1.0
    allow_failed_runs: bool = False


@attrs.frozen
class Thresholds:
    quality: QualityThresholds = QualityThresholds()
    cost: dict[str, CostThreshold] = attrs.field(factory=lambda: {DEFAULT_COST: CostThreshold()})
    stability: StabilityThresholds = StabilityThresholds()

    def cost_for(self, family: str, declared: Mapping[str, float] | None = None) -> CostThreshold:
        """The cost rule of ``family``: the file's entry, else the class-declared rule, else the default."""
        if family in self.cost:
            return self.cost[family]
        if declared:
            return structure(dict(declared), CostThreshold, root=f"{family}.cost_thresholds")
        return self.cost.get(DEFAULT_COST, CostThreshold())

    def resolved(self, declared: Mapping[str, Mapping[str, float]]) -> "Thresholds":
        """These thresholds with every family of ``declared`` (``family -> cost_thresholds``) given its
        effective rule, so the copy written beside a report states every rule that was applied."""
        cost = {**{fam: self.cost_for(fam, rule) for fam, rule in declared.items()}, **self.cost}
        return attrs.evolve(self, cost=cost)


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """Read thresholds from ``path`` (default: the packaged ``thresholds.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_PATH
    return structure(load_yaml(path), Thresholds, root=f"{path.name}")
