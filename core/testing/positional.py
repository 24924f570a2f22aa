"""Positional-encoding conformance checks for each mode."""
from __future__ import annotations

from typing import Callable

import torch

from ..components import PositionalContext, PositionMode, RelativeBias
from ..errors import SequenceTooLongError

CTX = PositionalContext(d_model=32, n_heads=4, head_dim=8, max_seq_len=64)


def make(cls, config=None):
    pos = cls(config if config is not None else cls.Config(), CTX)
    pos.reset_plugin_parameters()  # as effx.build_model does after its weight initialisation
    return pos.eval()


def check_output(cls, config=None) -> None:
    """Each mode returns its documented shape, finite values, and a gradient path if learned."""
    pos, n = make(cls, config), 20
    if cls.mode is PositionMode.ADDITIVE:
        out = pos.embed(n, torch.device("cpu"))
        assert out.shape == (n, CTX.d_model), f"{cls.name}: embed shape {tuple(out.shape)}"
        assert len({tuple(r.tolist()) for r in out}) == n, f"{cls.name}: positions not distinguishable"
    elif cls.mode is PositionMode.ROTARY:
        x = torch.randn(2, CTX.n_heads, n, CTX.head_dim)
        out = pos.rotate(x)
        assert out.shape == x.shape, f"{cls.name}: rotate changed the shape"
        assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5), f"{cls.name}: rotation changed norms"
    else:
        rel = pos.relative_bias(n)
        assert isinstance(rel, RelativeBias) and rel.table.shape == (CTX.n_heads, 2 * n - 1), f"{cls.name}: table shape"
        out = rel.table
    assert torch.isfinite(out).all(), f"{cls.name}: non-finite output"


def check_max_length(cls, config=None) -> None:
    """Absolute and rotary encodings refuse lengths past max_seq_len with SequenceTooLongError."""
    pos, n = make(cls, config), CTX.max_seq_len + 1
    try:
        if cls.mode is PositionMode.ADDITIVE:
            pos.embed(n, torch.device("cpu"))
        elif cls.mode is PositionMode.ROTARY:
            pos.rotate(torch.randn(1, CTX.n_heads, n, CTX.head_dim))
        else:
            return  # relative bias is defined for any length
    except SequenceTooLongError as exc:
        assert str(CTX.max_seq_len) in str(exc), f"{cls.name}: message does not name the limit"
        return
    raise AssertionError(f"{cls.name}: accepted length {n} > max_seq_len {CTX.max_seq_len}")


def check_relative_property(cls, config=None) -> None:
    """Rotary: q_i . k_j depends only on i - j. Relative: dense bias is Toeplitz."""
    pos = make(cls, config)
    if cls.mode is PositionMode.ROTARY:
        n = 12
        q = torch.randn(CTX.head_dim).expand(1, 1, n, -1).contiguous()  # same vector at every position
        k = torch.randn(CTX.head_dim).expand(1, 1, n, -1).contiguous()
        s = pos.rotate(q)[0, 0] @ pos.rotate(k)[0, 0].T  # (N, N)
        for off in range(-3, 4):
            d = torch.diagonal(s, off)
            assert torch.allclose(d, d[0].expand_as(d), atol=1e-4), f"{cls.name}: score depends on position, not offset"
    elif cls.mode is PositionMode.RELATIVE_BIAS:
        dense = pos.relative_bias(10).dense()  # (H, N, N)
        for off in range(-4, 5):
            d = torch.diagonal(dense, off, dim1=-2, dim2=-1)
            assert torch.allclose(d, d[..., :1].expand_as(d)), f"{cls.name}: bias not a function of i - j"


def positional_checks() -> list[Callable]:
    return [check_output, check_max_length, check_relative_property]


def run_positional_checks(cls, config=None) -> None:
    for check in positional_checks():
        check(cls, config)
