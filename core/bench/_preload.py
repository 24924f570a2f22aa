"""Imported once by the bench's forkserver so every per-configuration process starts warm.

It imports torch, effx, every installed plugin and the optional PyPI peers; it runs no tensor op,
so the forked processes inherit no thread pools and no allocator state.
"""
from __future__ import annotations

import importlib.util

import torch  # noqa: F401

import effx

effx.load_registry()
for _peer in ("performer_pytorch", "reformer_pytorch"):
    if importlib.util.find_spec(_peer) is not None:
        importlib.import_module(_peer)
