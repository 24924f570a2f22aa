"""Which component a config gets when it names none: the plugins declare it, core knows no names.

A component class declares ``default_rank`` (an int; lower wins; None = never a default). A config
without ``model.attention`` gets the installed attention of lowest rank; one without
``model.positional`` gets the lowest-rank positional encoding that its attention supports. The
choice does not prefer encodings an attention applies exactly: two configs that differ only in
``model.attention.type`` then differ only in the attention (and are compared in one report group)
wherever both support the first-ranked encoding.
"""
from __future__ import annotations

from .errors import ConfigError


def _ranked(kind: str, registry) -> list:
    """The classes of ``kind`` that declare a ``default_rank``, lowest rank first (then by name)."""
    entries = [e for e in registry.entries[kind].values() if e.cls.default_rank is not None]
    return [e.cls for e in sorted(entries, key=lambda e: (e.cls.default_rank, e.name))]


def _none_declared(kind: str, path: str, registry) -> ConfigError:
    installed = ", ".join(registry.names(kind)) or "none"
    return ConfigError(f"{path}: no installed {kind} plugin declares itself a default; set {path}.type "
                       f"(installed: {installed})")


def default_attention(registry=None) -> str:
    """Name of the attention a config gets when it names none."""
    from .plugins import load_registry

    registry = registry or load_registry()
    ranked = _ranked("attention", registry)
    if not ranked:
        raise _none_declared("attention", "model.attention", registry)
    return ranked[0].name


def default_positional(attention: str, registry=None) -> str:
    """Name of the positional encoding a config with attention ``attention`` gets when it names none."""
    from .plugins import load_registry

    registry = registry or load_registry()
    att_cls = registry.get("attention", attention, "model.attention.type").cls
    supported = [c for c in _ranked("positional", registry) if c.mode in att_cls.capabilities.positional]
    if not supported:
        raise _none_declared("positional", "model.positional", registry)
    return supported[0].name
