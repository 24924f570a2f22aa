"""Files effx ships inside its package (the experiment templates, the small AG News/IMDb sample).

They are package data, found through :mod:`importlib.resources`, so they resolve the same way from a
source checkout and from an installed wheel.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGE_ROOT = Path(str(files("effx"))).resolve()
TEMPLATES = PACKAGE_ROOT / "templates"
SAMPLE_DIR = PACKAGE_ROOT / "data" / "sample"


def shipped(relative: str | Path) -> Path:
    """A path inside the installed package, e.g. ``shipped("data/sample/agnews_train.csv")``."""
    return PACKAGE_ROOT / relative
