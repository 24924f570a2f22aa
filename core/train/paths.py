"""Where experiments live: ``<root>/pretrain/NAME`` and ``<root>/finetune/NAME``.

``root`` is, in order: the ``root`` argument (CLI ``--root``), the ``EFFX_ROOT`` environment
variable, the current directory. Relative data paths in a config are resolved against ``root``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ConfigError

KINDS = ("pretrain", "finetune")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The experiments root: ``root`` argument, else ``$EFFX_ROOT``, else the current directory."""
    chosen = root if root not in (None, "") else os.environ.get("EFFX_ROOT") or os.getcwd()
    path = Path(chosen).expanduser().resolve()
    if path.exists() and not path.is_dir():
        where = "--root" if root not in (None, "") else "EFFX_ROOT"
        raise ConfigError(f"{where} {path} is a file, not a folder; point {where} at the folder that holds "
                          f"pretrain/ and finetune/")
    return path


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"invalid experiment name {name!r}; use letters, digits, '.', '_' or '-' (no slashes, spaces or "
            f"control characters such as a newline)"
        )
    return name


def experiment_dir(kind: str, name: str, root: str | os.PathLike | None = None) -> Path:
    """``<root>/<kind>/<name>`` for ``kind`` in ``pretrain`` / ``finetune`` (not created here)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown experiment kind {kind!r}; expected one of {', '.join(KINDS)}")
    return resolve_root(root) / kind / check_name(name)


def require_experiment(kind: str, name: str, root=None) -> Path:
    path = experiment_dir(kind, name, root)
    if not (path / "config.yaml").exists():
        flag = " --finetune" if kind == "finetune" else ""
        raise ConfigError(f"no experiment {kind}/{name} under {path.parent.parent} "
                          f"(missing {path / 'config.yaml'}); create it with `effx init -exp {name}{flag}`")
    return path


def resolve_data_path(value, root: Path):
    """A config data path made absolute (relative paths are relative to ``root``); also every path of a
    list of paths / ``{path, ...}`` entries (``data.train`` may be one)."""
    from ..data.sources import map_paths

    def absolute(v: str) -> str:
        p = Path(v).expanduser()
        return str(p if p.is_absolute() else (root / p))

    return map_paths(value, absolute)
