"""The eval package's file writers (:mod:`effx.atomic`) and its tolerant JSON reader."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import write_bytes, write_csv, write_json, write_text  # noqa: F401  (the eval package's writers)


def read_json(path: str | Path) -> Any | None:
    """Parsed JSON, or None if the file is missing or unreadable (a crashed run may leave either)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
