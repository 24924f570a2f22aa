"""Pytest parameter lists over everything registered (import only under pytest)."""
from __future__ import annotations

import typing

import attrs


def config_variants(cls) -> list[tuple[str, object]]:
    """Default config plus, for every Literal field, each non-default choice (one at a time)."""
    cfg_cls = cls.Config
    attrs.resolve_types(cfg_cls)
    out = [("default", cfg_cls())]
    for f in attrs.fields(cfg_cls):
        if typing.get_origin(f.type) is typing.Literal:
            for choice in typing.get_args(f.type):
                if choice != f.default:
                    out.append((f"{f.name}={choice}", cfg_cls(**{f.name: choice})))
    return out


def attention_variants(registry=None) -> list:
    import pytest

    from ..plugins import load_registry

    reg = registry or load_registry()
    return [
        pytest.param(e.cls, cfg, id=f"{e.name}-{label}")
        for e in reg if e.kind == "attention"
        for label, cfg in config_variants(e.cls)
    ]


def positional_types(registry=None) -> list:
    import pytest

    from ..plugins import load_registry

    return [pytest.param(e.cls, id=e.name) for e in (registry or load_registry()) if e.kind == "positional"]
