"""Atomic file writes (temporary file in the same folder, then ``os.replace``) and small readers."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_bytes, write_text  # noqa: F401  (the eval package's writers)


def _json_safe(x: Any) -> Any:
    """NaN/Inf are not JSON; store them as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(_json_safe(data), indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, df: pd.DataFrame) -> Path:
    return write_text(path, df.to_csv(index=False))


def read_json(path: str | Path) -> Any | None:
    """Parsed JSON, or None if the file is missing or unreadable (a crashed run may leave either)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
