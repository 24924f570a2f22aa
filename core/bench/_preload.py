"""Imported once by the bench's forkserver so every per-configuration process starts warm.

It imports torch, effx, every installed plugin and the installed PyPI peers the attentions declare;
it runs no tensor op, so the forked processes inherit no thread pools and no allocator state.
"""
from __future__ import annotations

import gc
import importlib.util

import torch  # noqa: F401
import torch.fx.experimental.symbolic_shapes  # noqa: F401  (imported lazily by the first backward: ~2 s of sympy)
import torch.nn.attention  # noqa: F401
import torch.utils.checkpoint  # noqa: F401

import effx
import effx.bench.worker  # noqa: F401
import effx.config  # noqa: F401
import effx.bench.workloads  # noqa: F401

for _entry in effx.load_registry().entries["attention"].values():
    for _peer in _entry.cls.bench_peers:
        if importlib.util.find_spec(_peer.module) is not None:
            importlib.import_module(_peer.module)
gc.freeze()  # the children's gc.collect() then skips the ~1e6 objects of torch and sympy
