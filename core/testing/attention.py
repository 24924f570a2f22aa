"""Attention conformance checks: shape, masks, fully-masked rows, gradients, dtype, batch independence."""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..components import AttentionContext, PositionMode, RelativeBias

B, H, DH = 2, 2, 16


def make(cls, config=None, *, seed: int = 0, max_seq_len: int = 256):
    """Instantiate an attention in eval mode with a tiny context."""
    config = config if config is not None else cls.Config()
    att = cls(config, AttentionContext(n_heads=H, head_dim=DH, max_seq_len=max_seq_len, dropout=0.0, seed=seed))
    return att.eval()


def qkv(n: int, seed: int = 0, dtype=torch.float32, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(B, H, n, DH, generator=g) * scale).to(dtype) for _ in range(3)]  # 3 x (B, H, N, Dh)


def _close(a: torch.Tensor, b: torch.Tensor, what: str, tol: float = 1e-4) -> None:
    err = (a.float() - b.float()).abs().max().item()
    ref = b.float().abs().max().item() + 1e-6
    assert err <= tol * max(1.0, ref), f"{what}: max abs difference {err:.3g} (tolerance {tol:.1g})"


def check_shape_and_lengths(cls, config=None) -> None:
    """Output is [B, H, N, Dh], finite, for lengths that divide nothing in particular."""
    att = make(cls, config)
    for n in (1, 7, 33, 100):
        q, k, v = qkv(n)
        out = att(q, k, v)
        assert out.shape == (B, H, n, DH), f"{cls.name}: output shape {tuple(out.shape)} for N={n}"
        assert torch.isfinite(out).all(), f"{cls.name}: non-finite output for N={n}"


def padding(n: int, real: tuple[int, ...]) -> torch.Tensor:
    mask = torch.zeros(B, n, dtype=torch.bool)
    for b, r in enumerate(real):
        mask[b, :r] = True
    return mask  # (B, N) True = token


def check_padding_invariance(cls, config=None) -> None:
    """Changing q/k/v content at padded positions leaves outputs at real positions unchanged."""
    if not cls.capabilities.key_padding_mask:
        return
    att, n = make(cls, config), 50
    q, k, v = qkv(n)
    kpm = padding(n, (50, 31))
    out1 = att(q, k, v, key_padding_mask=kpm)
    pad = ~kpm[:, None, :, None]  # (B, 1, N, 1)
    q2, k2, v2 = (t + pad * 5.0 * torch.randn_like(t) for t in (q, k, v))
    out2 = att(q2, k2, v2, key_padding_mask=kpm)
    real = kpm[:, None, :, None].expand_as(out1)
    _close(out1[real], out2[real], f"{cls.name}: padded keys changed outputs at real positions")


def check_dense_mask_invariance(cls, config=None) -> None:
    """Values of keys hidden from a query by attn_mask do not reach that query."""
    if not cls.capabilities.attn_mask:
        return
    att, n = make(cls, config), 40
    q, k, v = qkv(n, seed=1)
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(n, n, generator=g) > 0.3  # (N, N)
    hidden_keys, blind = torch.arange(0, n, 3), torch.arange(1, n, 2)
    mask[blind[:, None], hidden_keys[None, :]] = False
    mask[torch.arange(n), torch.arange(n)] = True
    mask[blind[:, None], hidden_keys[None, :]] = False
    out1 = att(q, k, v, attn_mask=mask)
    v2 = v.clone()
    v2[:, :, hidden_keys] += 5.0 * torch.randn_like(v2[:, :, hidden_keys])
    out2 = att(q, k, v2, attn_mask=mask)
    _close(out1[:, :, blind], out2[:, :, blind], f"{cls.name}: values of masked keys reached blind queries")
    for shape in ((1, n, n), (B, n, n), (B, H, n, n)):
        out = att(q, k, v, attn_mask=mask.expand(shape))
        _close(out, out1, f"{cls.name}: attn_mask of shape {shape} gives a different result")


def check_fully_masked_rows(cls, config=None) -> None:
    """A query row whose keys are all masked gives zeros and finite gradients."""
    if not cls.capabilities.attn_mask:
        return
    att, n = make(cls, config), 24
    q, k, v = (t.requires_grad_() for t in qkv(n, seed=2))
    mask = torch.ones(n, n, dtype=torch.bool)
    mask[5] = False
    out = att(q, k, v, attn_mask=mask)
    assert torch.isfinite(out).all(), f"{cls.name}: non-finite output with a fully-masked row"
    assert out[:, :, 5].abs().max() == 0, f"{cls.name}: fully-masked row is not zero"
    out.square().sum().backward()
    for t in (q, k, v):  # k may get no gradient when an attention shares QK
        assert t.grad is None or torch.isfinite(t.grad).all(), f"{cls.name}: non-finite gradient with a fully-masked row"


def check_gradients(cls, config=None) -> None:
    """Gradients reach q, k (unless shared-QK ignores k) and v, and are finite."""
    att = make(cls, config).train()
    q, k, v = (t.requires_grad_() for t in qkv(33, seed=4))
    kpm = padding(33, (33, 20))
    att(q, k, v, key_padding_mask=kpm if cls.capabilities.key_padding_mask else None).sum().backward()
    for name, t in (("q", q), ("v", v), ("k", k)):
        assert t.grad is not None or name == "k", f"{cls.name}: no gradient for {name}"
        if t.grad is not None:
            assert torch.isfinite(t.grad).all(), f"{cls.name}: non-finite gradient for {name}"
    assert q.grad.abs().sum() > 0 and v.grad.abs().sum() > 0, f"{cls.name}: zero gradient"


def check_dtypes(cls, config=None) -> None:
    """bf16 inputs give a finite bf16 output; fp32 under bf16 autocast stays finite at large norms."""
    att = make(cls, config)
    q, k, v = qkv(40, seed=5, dtype=torch.bfloat16)
    out = att(q, k, v)
    assert out.dtype == torch.bfloat16, f"{cls.name}: bf16 input gave {out.dtype}"
    assert torch.isfinite(out.float()).all(), f"{cls.name}: non-finite bf16 output"
    q, k, v = qkv(40, seed=6, scale=8.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = att(q, k, v)
    assert torch.isfinite(out.float()).all(), f"{cls.name}: non-finite output under bf16 autocast"


def check_batch_independence(cls, config=None) -> None:
    """Example b's output does not depend on the other examples of the batch (eval mode)."""
    att = make(cls, config)
    q, k, v = qkv(30, seed=7)
    out = att(q, k, v)
    q2, k2, v2 = (t.clone() for t in (q, k, v))
    for t in (q2, k2, v2):
        t[1] = torch.randn_like(t[1])
    _close(att(q2, k2, v2)[0], out[0], f"{cls.name}: batch element 0 depends on element 1")


def check_relative_bias(cls, config=None) -> None:
    """A relative bias that is +big toward one offset moves exact attention to that key."""
    if PositionMode.RELATIVE_BIAS not in cls.capabilities.positional:
        return
    att, n = make(cls, config), 16
    q, k, v = qkv(n, seed=8, scale=0.1)
    table = torch.zeros(H, 2 * n - 1)
    table[:, (1) + n - 1] = 30.0  # i - j = 1: attend the previous token
    out = att(q, k, v, rel_bias=RelativeBias(table, n))
    assert torch.isfinite(out).all(), f"{cls.name}: non-finite output with a relative bias"
    if cls.exact:
        _close(out[:, :, 1:], v[:, :, :-1], f"{cls.name}: relative bias not applied as b(i - j)", tol=1e-3)


def check_matches_exact(cls, config=None) -> None:
    """Exact attentions must equal softmax(QK^T/sqrt(d)) V."""
    if not cls.exact:
        return
    att = make(cls, config)
    q, k, v = qkv(20, seed=9)
    ref = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(DH), dim=-1) @ v
    _close(att(q, k, v), ref, f"{cls.name}: differs from softmax attention", tol=1e-5)


def attention_checks() -> list[Callable]:
    from .properties import property_checks

    return [check_shape_and_lengths, check_padding_invariance, check_dense_mask_invariance,
            check_fully_masked_rows, check_gradients, check_dtypes, check_batch_independence,
            check_relative_bias, check_matches_exact, *property_checks()]


def run_attention_checks(cls, config=None) -> None:
    for check in attention_checks():
        check(cls, config)
