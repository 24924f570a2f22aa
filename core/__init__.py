"""effx: cost-efficient transformer text classifiers with pluggable attention.

The public surface is small: the hook marker, the component base classes, and the
load/build functions. Everything else is private and may change.
"""
from __future__ import annotations

if __name__ == "core":  # the source folder imported from the repo root: a second, incompatible copy
    raise ImportError("`import core` loads effx's source folder as a second copy of the package; "
                      "use `import effx` (install it with `pip install -e .` from the repo root)")

__version__ = "0.1.0"

# The public names load on first use (PEP 562), so ``import effx.errors`` - and with it every
# ``effx --help`` - does not pay for importing torch.
_LAZY = {
    **dict.fromkeys(("Attention", "AttentionCapabilities", "AttentionContext", "EmptyConfig", "Head", "HeadContext",
                     "Metric", "PositionalContext", "PositionalEncoding", "PositionMode", "RelativeBias"),
                    "components"),
    **dict.fromkeys(("CapabilityError", "ConfigError", "EffxError", "PluginError", "SequenceTooLongError"), "errors"),
    "hookimpl": "hookspecs",
    "load_registry": "plugins",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'effx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def build_model(*args, **kwargs):
    """Build an :class:`effx.model.EffxModel` from a ``ModelConfig`` and a head spec (see effx.model)."""
    from .model.build import build_model as _build

    return _build(*args, **kwargs)


__all__ = [
    "__version__",
    "hookimpl",
    "Attention",
    "AttentionCapabilities",
    "AttentionContext",
    "PositionalEncoding",
    "PositionalContext",
    "PositionMode",
    "RelativeBias",
    "Head",
    "HeadContext",
    "Metric",
    "EmptyConfig",
    "EffxError",
    "ConfigError",
    "PluginError",
    "CapabilityError",
    "SequenceTooLongError",
    "load_registry",
    "build_model",
]
