"""effx.bench: the cost benchmark of every attention (``effx bench``, ``effx bench-train``).

For every registered attention type (each ``impl`` choice separately) and each sequence length it
measures forward and forward+backward time, tokens/s and peak memory of (a) the attention layer
alone and (b) one encoder training step, plus the relative output error against exact attention,
with the peer implementations the attention plugins declare side by side when installed. Every
configuration runs in a fresh process (see :mod:`effx.bench.memory`).
"""
from __future__ import annotations

from .settings import BenchSettings
from .suite import run_bench

__all__ = ["BenchSettings", "run_bench"]
