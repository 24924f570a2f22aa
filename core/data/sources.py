"""The files behind one split: ``data.train`` (or validation / test) as a path, or a list of paths,
globs and ``{path, text_field, label_field, format}`` entries, expanded into one :class:`Source` per
file with the fields to read from it. Globs expand in sorted order; a pattern matching no file is a
one-line error naming the entry.
"""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Callable

import attrs

from ..config import DataConfig, DataFile
from ..errors import EffxError


@attrs.frozen
class Source:
    """One file to read: where it is configured (``key``), its builder format and its field names."""

    key: str  # data.train, or data.train[1] for an entry of a list
    path: str
    fmt: str  # auto, or the entry's format
    text_field: str | None  # None: the reader's default (data.text_field; "text" for plain text)
    label_field: str


def entries(value: Any) -> list[str | DataFile]:
    """A split's configured value as a list of entries (a single path is a list of one)."""
    if value is None:
        return []
    return [value] if isinstance(value, (str, DataFile)) else list(value)


def map_paths(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every path (same shape: a path, or a list of paths / entries)."""
    if value is None:
        return None
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, DataFile):
        return attrs.evolve(value, path=fn(value.path))
    return [map_paths(v, fn) for v in value]


def split_sources(value: Any, split: str, cfg: DataConfig) -> list[Source]:
    """Every file of ``data.<split>``, globs expanded."""
    items = entries(value)
    out: list[Source] = []
    for i, item in enumerate(items):
        key = f"data.{split}" if isinstance(value, (str, DataFile)) else f"data.{split}[{i}]"
        entry = item if isinstance(item, DataFile) else DataFile(path=item)
        for path in expand(entry.path, key):
            out.append(Source(key, path, entry.format or cfg.format, entry.text_field,
                              entry.label_field or cfg.label_field))
    return out


def expand(path: str, key: str) -> list[str]:
    """``[path]``, or the files a glob pattern matches (sorted); none is an error."""
    pattern = str(Path(path).expanduser())
    if not glob.has_magic(pattern):
        return [pattern]
    found = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not found:
        raise EffxError(f"{key}: no file matches {path}; fix the pattern (relative paths are relative to the "
                        f"experiments root)")
    return found
