"""effx: cost-efficient transformer text classifiers with pluggable attention.

The public surface is small: the hook marker, the component base classes, and the
load/build functions. Everything else is private and may change.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .components import (  # noqa: E402
    Attention,
    AttentionCapabilities,
    AttentionContext,
    EmptyConfig,
    Head,
    HeadContext,
    Metric,
    PositionalContext,
    PositionalEncoding,
    PositionMode,
    RelativeBias,
)
from .errors import CapabilityError, ConfigError, EffxError, PluginError, SequenceTooLongError  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .plugins import load_registry  # noqa: E402


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
