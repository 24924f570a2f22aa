"""The PyPI Performer (performer-pytorch) that ``effx bench`` times beside the effx Performers.

``performer_pytorch.FastAttention(nb_features=256)`` (Choromanski et al., 2021), an optional install
(``pip install ./plugins/attention_performer[bench]``), never a dependency of this plugin.
"""
from __future__ import annotations

import effx


def build(spec: dict):
    """``(fn, module)`` for the bench: ``fn(q, k, v)`` on ``[B, H, N, Dh]``."""
    from performer_pytorch import FastAttention

    module = FastAttention(dim_heads=spec["head_dim"], nb_features=256).to(spec["device"])
    return module, module


PERFORMER_PYTORCH = effx.BenchPeer("performer-pytorch", "performer_pytorch", build, version="1.1.4",
                                   speedup_target=1.3)
