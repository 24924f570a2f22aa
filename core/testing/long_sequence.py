"""One encoder training step at a long input length, in a fresh interpreter: its time, its peak
resident memory and whether every gradient is finite. For plugins that claim long-sequence support::

    from effx.testing import long_sequence_step
    row = long_sequence_step("my_attention", n=16384)
    assert row["finite"] and row["step_peak_mib"] < 4096

The model is one layer (d_model 256, 4 heads, d_ff 1024, batch 1, no dropout); the last ``padded``
positions are padding, so the masked path runs at full length. A fresh process makes the peak
(``ru_maxrss``) that of this step alone. Time is for information, never a pass criterion.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time


def _step(att_type: str, n: int, positional: str, padded: int) -> dict:
    import torch

    import effx
    from effx import AttentionSpec, ModelConfig, PositionalSpec

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=1000, d_model=256, n_layers=1, n_heads=4, d_ff=1024, dropout=0.0, max_seq_len=n,
                      attention=AttentionSpec(att_type), positional=PositionalSpec(positional))
    model = effx.build_model(cfg, {"type": "classification", "num_classes": 2}).train()
    ids = torch.randint(5, 1000, (1, n))  # (1, N)
    kpm = torch.ones(1, n, dtype=torch.bool)
    kpm[0, n - padded:] = False
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    logits = model(ids, kpm)  # (1, 2)
    logits.square().sum().backward()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return {"type": att_type, "n": n, "seconds": seconds, "peak_rss_mib": peak, "step_peak_mib": peak - base,
            "finite": bool(torch.isfinite(logits).all()) and all(bool(torch.isfinite(g).all()) for g in grads),
            "nonzero": bool(model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0)}


def long_sequence_step(att_type: str, positional: str, n: int = 16384, padded: int = 1000,
                       timeout: float = 600) -> dict:
    """Run :func:`_step` (positional encoding ``positional``, a registered name) in a fresh interpreter and
    return its row (``seconds``, ``peak_rss_mib``, ``step_peak_mib``, ``finite``, ``nonzero``);
    raises ``AssertionError`` with the child's stderr if it fails."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    res = subprocess.run([sys.executable, "-m", "effx.testing.long_sequence", att_type, str(n), positional, str(padded)],
                         capture_output=True, text=True, env=env, timeout=timeout)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    name, length, pos, pad = sys.argv[1:5]
    print(json.dumps(_step(name, int(length), pos, int(pad))))
