"""The plugin contract: every hook effx calls, and what it must return.

A plugin is any module or object with functions marked ``@effx.hookimpl`` whose names match the
specs below. Installed distributions expose their plugin through the entry-point group ``effx``::

    [project.entry-points.effx]
    my_attention = "my_package"

Each hook returns a list of component *classes* (never instances). The core owns the
name -> class registry; two classes with the same ``name`` in the same kind are an error that
names both distributions. Built-in heads and metrics register through these same hooks.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("effx")
hookimpl = pluggy.HookimplMarker("effx")


@hookspec
def effx_attention_types() -> list[type]:
    """Return :class:`effx.Attention` subclasses; called once when the registry is built."""


@hookspec
def effx_positional_types() -> list[type]:
    """Return :class:`effx.PositionalEncoding` subclasses; called once when the registry is built."""


@hookspec
def effx_head_types() -> list[type]:
    """Return :class:`effx.Head` subclasses; called once when the registry is built."""


@hookspec
def effx_metric_types() -> list[type]:
    """Return :class:`effx.Metric` subclasses; called once when the registry is built."""
