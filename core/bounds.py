"""Valid ranges of numeric config fields, declared on the attrs field itself.

``attrs.field(default=256, validator=at_least(1))``; ``validator=optional(at_least(1))`` for an
``Optional`` field; ``between(0, 1, high_open=True)`` for ``[0, 1)``. A value out of range raises
:class:`BoundsError`, which :mod:`effx.config` reports as ``section.field: must be >= 1, got 0``.
Plugins use the same validators for their own ``Config`` classes.
"""
from __future__ import annotations

import math
from typing import Any

from attrs.validators import optional  # noqa: F401  (re-exported for Optional fields)

from .errors import ConfigError


class BoundsError(ValueError, ConfigError):
    """A config value outside its field's valid range (``field`` names the attribute)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _check(attribute, value: Any, ok: bool, rule: str) -> None:
    if isinstance(value, float) and math.isnan(value):
        ok = False
    if not ok:
        raise BoundsError(attribute.name, f"must be {rule}, got {value!r}")


def at_least(low: float):
    """``value >= low``."""
    def validate(_, attribute, value):
        _check(attribute, value, value >= low, f">= {low}")
    return validate


def greater_than(low: float):
    """``value > low``."""
    def validate(_, attribute, value):
        _check(attribute, value, value > low, f"> {low}")
    return validate


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """``value`` in the interval from ``low`` to ``high`` (closed unless ``*_open``)."""
    rule = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"

    def validate(_, attribute, value):
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        _check(attribute, value, above and below, rule)
    return validate


def each(inner):
    """Apply ``inner`` to every item of a tuple field (e.g. Adam's ``betas``)."""
    def validate(instance, attribute, value):
        for item in value:
            inner(instance, attribute, item)
    return validate
