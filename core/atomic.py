"""Atomic file writes: a temporary file in the same folder, fsync, then ``os.replace``.

A reader (or a resume after ``kill -9``) never sees a half-written file: either the old content or
the new one. Files get the permissions a plain ``open()`` would give them (``0o666`` less the umask);
a temporary file left by a killed process is named ``.<name>.<random>.tmp`` (see :func:`leftovers`).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Iterator


_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, chmod: int | None = None) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path``.

    ``chmod`` is the requested mode (default ``0o666``); like ``os.open``, the umask is taken off it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    text = "b" not in mode
    try:
        os.fchmod(fd, (0o666 if chmod is None else chmod) & ~umask())  # mkstemp creates 0600
        with os.fdopen(fd, mode, **({"encoding": "utf-8", "newline": ""} if text else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, chmod: int | None = None) -> Path:
    with atomic_open(path, "w", chmod=chmod) as fh:
        fh.write(text)
    return Path(path)


def _json_safe(x: Any) -> Any:
    """NaN/Inf are not JSON: they are stored as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def write_json(path: str | Path, data: Any) -> Path:
    """Indented JSON; NaN/Inf become null and any other value JSON lacks (a path, a dtype) its ``str``."""
    return write_text(path, json.dumps(_json_safe(data), indent=2, default=str) + "\n")


def write_csv(path: str | Path, df, float_format: str | None = None) -> Path:
    """A pandas DataFrame as CSV without the index (``float_format`` as in ``DataFrame.to_csv``)."""
    return write_text(path, df.to_csv(index=False, float_format=float_format))


def is_leftover(path: Path, prefixes: tuple[str, ...] = ()) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_open` (for a file whose name starts with
    one of ``prefixes``, if given)."""
    name = Path(path).name
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    return not prefixes or any(name.startswith(f".{p}") for p in prefixes)


def leftovers(folder: str | Path, prefixes: tuple[str, ...] = ()) -> list[Path]:
    """Temporary files a killed writer left in ``folder`` (see :func:`is_leftover`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and is_leftover(p, prefixes))


def append_text(path: str | Path, text: str) -> None:
    """Append ``text`` to ``path`` and flush (an OSError names ``path``)."""
    try:
        with open(path, "a", newline="", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
