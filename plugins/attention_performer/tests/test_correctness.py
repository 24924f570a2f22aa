"""Properties a user relies on without knowing it: masked keys never leak, one large key never wipes
a head, the gradient is the derivative of the forward (float64 gradcheck on every code path)."""
from __future__ import annotations

import warnings

import pytest
import torch

import effx
from effx import ConfigError
from effx_performer import fused
from effx_performer.favor import PerformerAttention
from effx_performer.favor_pp import PerformerPlusPlusAttention

TYPES = [PerformerAttention, PerformerPlusPlusAttention]


def make(cls, *, m=64, dh=8, heads=2, dtype=torch.float32, **kw):
    att = cls(cls.Config(nb_features=m, redraw_interval=0, **kw), effx.AttentionContext(heads, dh, 512, seed=1))
    return att.to(dtype).eval()


def qkv(n=20, dh=8, std=0.5, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(2, 2, n, dh, generator=g, dtype=torch.float64) * s).to(dtype) for s in (std, std, 1.0)]


def rel(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("eps", [0.0, 1e-4])
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_padded_keys_of_any_magnitude_change_nothing(cls, eps):
    q, k, v = qkv()
    kpm = torch.ones(2, 20, dtype=torch.bool)
    kpm[1, 12:] = False
    att = make(cls, feature_eps=eps)
    out = att(q, k, v, key_padding_mask=kpm)
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 12:] = 1e3 * torch.randn_like(k2[1, :, 12:])
    v2[1, :, 12:] = 1e3
    out2 = att(q, k2, v2, key_padding_mask=kpm)
    assert rel(out2[1, :, :12], out[1, :, :12]) < 1e-6
    assert (out2[1, :, :12].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_dense_mask_hides_keys_whatever_their_norm(cls):
    """Keys hidden from a query by attn_mask (for every query, or for that query only) never change it."""
    q, k, v = qkv()
    mask = torch.ones(20, 20, dtype=torch.bool)
    mask[:, 15:] = False  # keys 15.. hidden from everyone
    mask[:5, 10:15] = False  # keys 10..14 hidden from queries 0..4
    att = make(cls)
    with warnings.catch_warnings():  # the quadratic-fallback warning is given once per process
        warnings.simplefilter("ignore", RuntimeWarning)
        out = att(q, k, v, attn_mask=mask)
    k2, v2 = k.clone(), v.clone()
    k2[..., 10:, :] *= 300.0
    v2[..., 10:, :] += 50.0
    out2 = att(q, k2, v2, attn_mask=mask)
    assert rel(out2[..., :5, :], out[..., :5, :]) < 1e-6
    assert (out2.abs().sum(-1) > 0).all()


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_one_large_key_does_not_wipe_the_head(cls):
    """One key of std 10 among keys of std 0.3 (no mask, eps 0): no row may become zero."""
    q, k, v = qkv(n=64, dh=16, std=0.3)
    k[:, :, 7] = 10.0 * torch.randn_like(k[:, :, 7])
    out = make(cls, dh=16, feature_eps=0.0)(q, k, v)
    assert torch.isfinite(out).all()
    assert (out.abs().sum(-1) > 1e-6).all(), (out.abs().sum(-1) <= 1e-6).float().mean()


def test_all_true_mask_is_no_mask():
    q, k, v = qkv()
    att = make(PerformerPlusPlusAttention)
    full = torch.ones(20, 20, dtype=torch.bool)
    assert rel(att(q, k, v, attn_mask=full), att(q, k, v)) < 1e-7


def test_attention_dropout_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="attention_dropout: 0"):
        PerformerAttention(PerformerAttention.Config(), effx.AttentionContext(2, 8, 64, dropout=0.1))


PATHS = {  # name -> (config overrides, forward kwargs builder)
    "fused-default": ({}, lambda n: {}),
    "fused-eps0": ({"feature_eps": 0.0}, lambda n: {}),
    "fused-padding": ({}, lambda n: {"key_padding_mask": torch.arange(n)[None, :] < torch.tensor([[n], [n - 5]])}),
    "dense-mask": ({}, lambda n: {"attn_mask": torch.rand(n, n, generator=torch.Generator().manual_seed(0)) > 0.3}),
    "relative-bias": ({}, lambda n: {"rel_bias": effx.RelativeBias(torch.randn(2, 2 * n - 1, dtype=torch.float64), n)}),
    "relu-kernel": ({"kernel": "relu"}, lambda n: {}),
}


SLOW_PATHS = {"relative-bias", "fused-eps0", "fused-padding"}  # float64 gradchecks of tens of seconds and more


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PATHS else p for p in PATHS])
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_gradcheck_float64(cls, path):
    overrides, kwargs = PATHS[path]
    if cls is PerformerPlusPlusAttention and "kernel" in overrides:
        pytest.skip("FAVOR++ is defined for the softmax kernel only")
    att = make(cls, m=8, dh=4, dtype=torch.float64, **overrides)
    q, k, v = (t.requires_grad_() for t in qkv(n=6, dh=4, std=0.6, dtype=torch.float64))
    extra = kwargs(6)
    # float64 inputs are computed in float64, so finite differences are meaningful
    assert torch.autograd.gradcheck(lambda a, b, c: att(a, b, c, **extra), (q, k, v), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.slow  # float64 gradcheck through the block path: minutes
@pytest.mark.parametrize("eps", [0.0, 1.0])
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_fused_blocks_and_online_key_stabiliser(cls, eps, monkeypatch):
    """The fused core splits each head into row blocks and finds the key stabiliser online: keys
    whose norms grow along the sequence raise the running maximum block after block (the
    accumulated sums are rescaled). Values and gradients equal the one-block computation, padded
    trailing blocks change nothing, and float64 gradcheck passes through the block path."""
    n = 50
    q, k, v = qkv(n=n, dh=8, std=0.5, dtype=torch.float64)
    k = k * torch.linspace(0.2, 2.0, n, dtype=torch.float64)[:, None]  # later blocks hold larger keys
    kpm = torch.ones(2, n, dtype=torch.bool)
    kpm[1, 30:] = False  # the last blocks of batch row 1 are all padding
    att = make(cls, m=16, dh=8, dtype=torch.float64, feature_eps=eps)
    w_out = torch.randn(2, 2, n, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def run(rows):
        monkeypatch.setattr(fused, "BLOCK_ELEMENTS", rows * 16)
        a, b, c = (t.clone().requires_grad_() for t in (q, k, v))
        out = att(a, b, c, key_padding_mask=kpm)
        return out, torch.autograd.grad((out * w_out).sum(), (a, b, c))

    one, g_one = run(1 << 20)
    many, g_many = run(16)  # 16-row blocks: 4 blocks per head
    torch.testing.assert_close(many, one, rtol=1e-12, atol=1e-12)
    for g1, g2 in zip(g_many, g_one):
        torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)
    alone = att(q[1:, :, :30], k[1:, :, :30], v[1:, :, :30])
    torch.testing.assert_close(many[1:, :, :30], alone, rtol=1e-12, atol=1e-12)
    args = tuple(t[:, :, :40].clone().requires_grad_() for t in (q, k, v))
    assert torch.autograd.gradcheck(lambda a, b, c: att(a, b, c, key_padding_mask=kpm[:, :40]), args,
                                    eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_relative_bias_changes_each_head_as_exact_attention_does(cls):
    """A per-head, asymmetric bias moves each head's output as the dense bias moves exact attention,
    within the class's stated ``rel_bias_tolerance`` (head 0's bias applied to every head would not)."""
    n, h, d = 32, 2, 16
    g = torch.Generator().manual_seed(3)
    q, k = (torch.randn(2, h, n, d, generator=g) * 0.5 for _ in range(2))
    v = torch.randn(2, h, n, d, generator=g)
    table = torch.randn(h, 2 * n - 1, generator=g)
    att = cls(cls.Config(), effx.AttentionContext(h, d, 256, seed=0)).eval()

    def exact(bias=None):
        s = q.double() @ k.double().transpose(-2, -1) / d**0.5 + (0 if bias is None else bias.double())
        return torch.softmax(s, -1) @ v.double()

    with torch.no_grad():
        base = att(q, k, v).double()
        moved = att(q, k, v, rel_bias=effx.RelativeBias(table, n)).double() - base
        wrong = att(q, k, v, rel_bias=effx.RelativeBias(table[:1].expand(h, -1), n)).double() - base
    ref = exact(effx.RelativeBias(table, n).dense()) - exact()
    assert rel(moved, ref) < cls.rel_bias_tolerance
    assert rel(wrong, ref) > cls.rel_bias_tolerance
