"""The PyPI Reformer (reformer-pytorch) that ``effx bench`` times beside the effx Reformers.

``reformer_pytorch.LSHAttention(bucket_size=64, n_hashes=4)`` (Kitaev et al., 2020), an optional
install (``pip install "./plugins/attention_reformer[bench]"``), never a dependency of this plugin.
It shares queries and keys (it reads ``q`` only), so its fidelity is measured against exact
shared-QK attention; it needs N divisible by 2 * bucket_size.
"""
from __future__ import annotations

import effx

from .reference import SHARED_QK_REFERENCE, shared_qk_reference

BUCKET_SIZE = 64


def build(spec: dict):
    """``(fn, module)`` for the bench: ``fn(q, k, v)`` on ``[B, H, N, Dh]``."""
    from reformer_pytorch import LSHAttention

    module = LSHAttention(bucket_size=BUCKET_SIZE, n_hashes=4, causal=False).to(spec["device"])

    def run(q, k, v):
        b, h, n, d = q.shape
        out, _, _ = module(q.reshape(b * h, n, d), v.reshape(b * h, n, d))  # (B*H, N, Dh)
        return out.reshape(b, h, n, d)

    return run, module


def reference(q, k, v, rows):
    return shared_qk_reference(q, v, rows), SHARED_QK_REFERENCE  # (B, H, S, Dh)


REFORMER_PYTORCH = effx.BenchPeer("reformer-pytorch", "reformer_pytorch", build, version="1.4.4",
                                  speedup_target=1.5, seq_multiple=2 * BUCKET_SIZE, reference=reference)
