"""Attention families: the report's group labels and their roles, from what attention classes declare.

An attention class's family is its ``family`` attribute, else its own ``name`` - so a third-party
attention that declares nothing is a family of its own, compared and held to the cost rules like
any other. An exact family (its class has ``exact = True``) is the quality and cost reference of the
others. A run whose attention is not installed when the report is made is its own, non-exact family.
"""
from __future__ import annotations

from typing import Mapping

import attrs

BASELINE_FAMILY = "TF-IDF+LR"
BASELINE_TYPE = "tfidf_logreg"


@attrs.frozen
class Family:
    label: str
    exact: bool = False
    cost_thresholds: Mapping[str, float] = attrs.field(factory=dict)


def declared_families(registry=None) -> dict[str, Family]:
    """``label -> Family`` for every installed attention (the first class of a family decides)."""
    if registry is None:
        from ..plugins import load_registry

        registry = load_registry()
    out: dict[str, Family] = {}
    for entry in registry.entries["attention"].values():
        cls = entry.cls
        label = cls.family_name()
        out.setdefault(label, Family(label, bool(cls.exact), dict(cls.cost_thresholds)))
    return out


def family_of(attention_type: str, kind: str = "finetune", registry=None) -> str:
    """The family label of a run: the baseline's, the attention class's, or the type itself."""
    if kind == "baseline":
        return BASELINE_FAMILY
    if registry is None:
        from ..plugins import load_registry

        registry = load_registry()
    entry = registry.entries["attention"].get(str(attention_type))
    return entry.cls.family_name() if entry is not None else str(attention_type)


def rank(label: str, families: Mapping[str, Family]) -> int:
    """Report order: exact families first, then the others, the baseline last."""
    if label == BASELINE_FAMILY:
        return 2
    fam = families.get(label)
    return 0 if fam is not None and fam.exact else 1


def versus_title(families) -> str:
    """``"A vs B vs TF-IDF+LR"`` over the families of a report, in report order, the baseline last."""
    names = [f for f in dict.fromkeys(families) if f != BASELINE_FAMILY]
    return " vs ".join([*names, BASELINE_FAMILY]) if names else BASELINE_FAMILY
