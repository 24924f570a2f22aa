"""effx: cost-efficient transformer text classifiers with pluggable attention.

The public plugin API is what ``__all__`` lists - the hook marker, the component base classes and
what they declare, the mask convention helpers, the config validators, the config classes, the
errors, and the load/build functions - plus the conformance suite :mod:`effx.testing`. Plugins and
their tests import only these; every other module is private and may change.
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
    **dict.fromkeys(("BenchPeer", "ImplVariant"), "components"),
    **dict.fromkeys(("as_bool", "attn_mask_4d", "combine", "fully_masked_rows"), "masks"),
    **dict.fromkeys(("BoundsError", "at_least", "between", "each", "greater_than"), "bounds"),
    **dict.fromkeys(("AttentionSpec", "ComponentSpec", "HeadSpec", "ModelConfig", "PositionalSpec", "structure"),
                    "config"),
    "hookimpl": "hookspecs",
    "load_registry": "plugins",
    "build_model": "model.build",
}
_SUBMODULES = ("testing",)  # public subpackages, imported on first use as well


def __getattr__(name: str):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'effx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


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
    "ImplVariant",
    "BenchPeer",
    "as_bool",
    "attn_mask_4d",
    "combine",
    "fully_masked_rows",
    "at_least",
    "between",
    "each",
    "greater_than",
    "ModelConfig",
    "ComponentSpec",
    "AttentionSpec",
    "PositionalSpec",
    "HeadSpec",
    "structure",
    "EffxError",
    "ConfigError",
    "PluginError",
    "CapabilityError",
    "SequenceTooLongError",
    "BoundsError",
    "load_registry",
    "build_model",
    "testing",
]
