"""Every registered attention works inside ``torch.compile(model)`` (Inductor on CPU): same output
and gradients as eager, and a training-mode step runs.

The Reformer types keep their attention eager (``torch.compiler.disable``); before that, compiling
a model with them failed in Dynamo (frozen attrs records) and then in Inductor (an internal
``KeyError``). Inductor on CPU needs a C++ compiler; without one the test is skipped.
"""
from __future__ import annotations

import shutil

import pytest
import torch

import effx
from effx.config import AttentionSpec, ModelConfig, PositionalSpec

pytestmark = [pytest.mark.slow,  # an Inductor compile per attention type
              pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                                 reason="torch.compile (Inductor, CPU) needs a C++ compiler")]

ATTENTIONS = effx.load_registry().names("attention")


def tiny_model(attention: str, positional: str) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq_len=128,
                      attention=AttentionSpec(attention, {}), positional=PositionalSpec(positional))
    return effx.build_model(cfg, {"type": "classification", "num_classes": 3})


def output_and_grads(fn, model, ids, kpm) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = fn(ids, kpm)  # (B, C)
    out.square().sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_compiled_model_matches_eager(attention):
    torch._dynamo.reset()
    model = tiny_model(attention, "rope")
    ids = torch.randint(5, 300, (2, 128), generator=torch.Generator().manual_seed(1))  # (B, N)
    kpm = torch.ones(2, 128, dtype=torch.bool)
    kpm[1, 100:] = False  # padding goes through the compiled path too
    compiled = torch.compile(model)
    model.eval()  # no dropout, fixed Reformer rotations: eager and compiled see the same function
    out_e, grads_e = output_and_grads(model, model, ids, kpm)
    out_c, grads_c = output_and_grads(compiled, model, ids, kpm)
    torch.testing.assert_close(out_c, out_e, rtol=1e-4, atol=1e-5)
    assert len(grads_c) == len(grads_e) > 0
    for g_c, g_e in zip(grads_c, grads_e):
        torch.testing.assert_close(g_c, g_e, rtol=1e-3, atol=1e-5)
    model.train()  # dropout, feature / rotation redraws, step counters
    loss = compiled(ids, kpm).logsumexp(-1).mean()
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
