"""The exact reference the Reformer plugin declares for fidelity measurements."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import effx
from effx_reformer import ReformerBalanced, ReformerLSH
from effx_reformer.peer import REFORMER_PYTORCH
from effx_reformer.reference import SHARED_QK_REFERENCE, shared_qk_reference


def dense_shared_qk(q, v):
    """Shared-QK attention written out densely: keys = unit queries, self score -5e4."""
    s = q @ F.normalize(q, dim=-1).transpose(-2, -1) / q.shape[-1] ** 0.5  # (B, H, N, N)
    s = s.masked_fill(torch.eye(q.shape[-2], dtype=torch.bool), -5e4)
    return s.softmax(-1) @ v  # (B, H, N, Dh)


def test_shared_qk_reference_matches_dense_shared_qk_attention():
    gen = torch.Generator().manual_seed(0)
    q, v = torch.randn(2, 2, 32, 8, generator=gen), torch.randn(2, 2, 32, 8, generator=gen)
    rows = torch.tensor([0, 5, 31])
    torch.testing.assert_close(shared_qk_reference(q, v, rows), dense_shared_qk(q, v)[:, :, rows])


def test_exact_reference_follows_shared_qk():
    ctx = effx.AttentionContext(n_heads=2, head_dim=8, max_seq_len=32)
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 32, 8, generator=gen) for _ in range(3))
    rows = torch.arange(32)
    for cls in (ReformerLSH, ReformerBalanced):
        out, name = cls(cls.Config(shared_qk=True), ctx).exact_reference(q, k, v, rows)
        assert name == SHARED_QK_REFERENCE
        torch.testing.assert_close(out, dense_shared_qk(q, v))
        out, name = cls(cls.Config(shared_qk=False), ctx).exact_reference(q, k, v, rows)
        assert name == "softmax(QK^T)V"
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))


def test_the_peer_is_measured_against_shared_qk_attention():
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 1, 16, 8, generator=gen) for _ in range(3))
    out, name = REFORMER_PYTORCH.reference(q, k, v, torch.arange(16))
    assert name == SHARED_QK_REFERENCE
    torch.testing.assert_close(out, dense_shared_qk(q, v))
    assert REFORMER_PYTORCH in ReformerLSH.bench_peers and REFORMER_PYTORCH.seq_multiple == 128
