"""Number formatting shared by the Markdown and HTML reports: fixed precision, ``–`` for no value,
``n.a.`` for the spread of a one-seed configuration."""
from __future__ import annotations

import math

import pandas as pd

DASH = "–"


def missing(x) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def number(x, digits: int = 4) -> str:
    """``0.8698`` / ``11,203`` (digits=0) / ``–``; integers and text unchanged."""
    if missing(x):
        return DASH
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def std_text(std, n_seeds, digits: int = 4) -> str:
    """The sample std over seeds; ``n.a.`` with one seed (the spread of one value is unknown)."""
    if not missing(n_seeds) and int(n_seeds) == 1:
        return "n.a."
    return number(std, digits)


def mean_std(mean, std, n_seeds, digits: int = 4) -> str:
    return DASH if missing(mean) else f"{number(mean, digits)} ± {std_text(std, n_seeds, digits)}"


def points(a, b) -> str:
    """``a - b`` in percentage points, signed."""
    return DASH if missing(a) or missing(b) else f"{(a - b) * 100:+.2f}"
