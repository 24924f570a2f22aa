"""Correctness of ``performer_favor`` and ``performer_favor_pp`` against independent float64
references (exact softmax attention and the textbook estimator written from the papers' formulas).

Every test uses fixed seeds; nothing is timed.
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.utils.checkpoint import checkpoint

import effx
from effx.config import structure
from effx_performer import PerformerAttention, PerformerPlusPlusAttention
from effx_performer import favor as favor_module
from effx_performer.features import KEY_DIMS, QUERY_DIMS, positive_features, row_term
from effx_performer.favor import linear_attention, ratio
from effx_performer.favor_pp import mean_pair_sq_distance, optimal_a
from effx_performer.fused import FavorLinear

TYPES = [PerformerAttention, PerformerPlusPlusAttention]
DEFAULT_EPS = PerformerAttention.Config().feature_eps


# ---------------------------------------------------------------- float64 references


def exact_attention(q, k, v, mask=None):
    """``softmax(q k^T / sqrt(d)) v`` in float64; ``mask [.., N, N]`` bool True = attend."""
    q, k, v = q.double(), k.double(), v.double()
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, N, N)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v


def favor_kernel(q, k, w, a=0.0, eps=0.0, kpm=None):
    """Unnormalised FAVOR+/OPRF kernel matrix ``[B, H, N, N]`` in float64, from the formula
    ``f(w, x) = D exp(A |w|^2 + B w.x - |x|^2 / 2) + eps``, ``B = sqrt(1 - 4A)``,
    ``D = (1 - 4A)^(d/4)``, ``x = q d^(-1/4)``; ``a`` is a float or a ``[B, H]`` tensor. No
    stabiliser: whatever effx divides out must cancel exactly (``kpm`` is unused: a padded key's
    column is removed by the caller's mask)."""
    d = q.shape[-1]
    x, y, w = q.double() * d**-0.25, k.double() * d**-0.25, w.double()
    a = torch.as_tensor(a, dtype=torch.float64)
    a = a[..., None, None] if a.dim() else a  # (B, H, 1, 1)
    bcoef = torch.sqrt(1 - 4 * a)
    off = a * w.square().sum(-1) + 0.25 * d * torch.log1p(-4 * a)  # (B|1, H|1, 1, M)
    lq, lk = off + bcoef * (x @ w.t()), off + bcoef * (y @ w.t())  # (B, H, N, M)
    fq = torch.exp(lq - x.square().sum(-1, keepdim=True) / 2) + eps  # (B, H, N, M)
    fk = torch.exp(lk - y.square().sum(-1, keepdim=True) / 2) + eps
    return fq @ fk.transpose(-2, -1)  # (B, H, N, N)


def kernel_attention(kernel, v, mask=None):
    """Normalise a (masked) kernel matrix into attention output; all-masked rows give 0."""
    if mask is not None:
        kernel = kernel.masked_fill(~mask, 0.0)
    den = kernel.sum(-1, keepdim=True)
    return torch.where(den > 0, (kernel @ v.double()) / den.clamp_min(1e-300), 0.0)


def relative_error(out, ref) -> float:
    return ((out.double() - ref).norm() / ref.norm()).item()


def make(cls, m=256, *, seed=0, interval=0, heads=2, dh=16, **kw):
    cfg = cls.Config(nb_features=m, redraw_interval=interval, **kw)
    return cls(cfg, effx.AttentionContext(heads, dh, 4096, seed=seed)).eval()


def qkv(b, h, n, d, *, scale=1.0, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, h, n, d, generator=g) * s).to(dtype) for s in (scale, scale, 1.0)]


def pair_mean(x, y, kpm=None):
    """Brute-force ``mean_{i,j} |x_i + y_j|^2`` over real tokens, ``[B, H]``."""
    d2 = (x[..., :, None, :] + y[..., None, :, :]).square().sum(-1)  # (B, H, N, N)
    if kpm is None:
        return d2.mean((-2, -1))
    w = (kpm[:, None, :, None] & kpm[:, None, None, :]).double()
    return (d2 * w).sum((-2, -1)) / w.sum((-2, -1))


def pp_a(q, k, kpm=None):
    d = q.shape[-1]
    return optimal_a(pair_mean(q.double() * d**-0.25, k.double() * d**-0.25, kpm), d)


# ---------------------------------------------------------------- approximation quality
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_error_falls_as_nb_features_grows(cls):
    """The unbiased estimator (eps 0) converges; the default eps adds a bias that more features do
    not remove (see test_default_eps_beats_uniform_where_unbiased_does_not)."""
    q, k, v = qkv(1, 2, 128, 32, scale=0.5, seed=11)
    ref = exact_attention(q, k, v)
    errs = {}
    for m in (64, 256, 1024):
        errs[m] = sum(relative_error(make(cls, m, seed=s, dh=32, feature_eps=0.0)(q, k, v), ref) for s in range(3)) / 3
    assert errs[64] > errs[256] > errs[1024], errs
    assert errs[1024] < 0.5 * errs[64], errs


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_default_eps_beats_uniform_where_unbiased_does_not(cls):
    """Dh 64, q, k std 0.5, default 256 features: the unbiased estimator is worse than outputting
    mean(v) (0.39 / 0.34 vs 0.23 in docs/approx_error_performer.md); the default eps is better."""
    q, k, v = qkv(1, 2, 512, 64, scale=0.5, seed=17)
    ref = exact_attention(q, k, v)
    uniform = relative_error(v.double().mean(-2, keepdim=True).expand_as(ref), ref)
    default = relative_error(make(cls, 256, heads=2, dh=64)(q, k, v), ref)
    unbiased = relative_error(make(cls, 256, heads=2, dh=64, feature_eps=0.0)(q, k, v), ref)
    assert unbiased > uniform > default, (unbiased, uniform, default)


@pytest.mark.parametrize("eps", [0.0, 1e-4, 1e-2, 1.0], ids=lambda e: f"eps{e}")
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_equals_textbook_estimator(cls, eps):
    """Equals ``(f + eps)`` features computed without any stabiliser: whatever is divided out cancels."""
    q, k, v = qkv(2, 2, 50, 16, scale=0.7, seed=1)
    att = make(cls, 128, seed=3, feature_eps=eps)
    a = pp_a(q, k) if cls is PerformerPlusPlusAttention else 0.0
    ref = kernel_attention(favor_kernel(q, k, att.projection, a, eps), v)
    assert relative_error(att(q, k, v), ref) < 1e-5
    if eps:  # it matters at this scale: the unbiased estimator differs by far more than 1e-5
        assert relative_error(make(cls, 128, seed=3, feature_eps=0.0)(q, k, v), ref) > 1e-5  # eps is felt


def performer_pytorch_output(q, k, v, projection):
    """performer-pytorch 1.1.4 ``FastAttention`` (softmax kernel) with a given projection, float64."""
    fast = pytest.importorskip("performer_pytorch").FastAttention(q.shape[-1], nb_features=projection.shape[0])
    fast.projection_matrix.copy_(projection)
    return fast.double()(q.double(), k.double(), v.double())


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_beats_uniform_attention_where_it_can(cls):
    """q, k ~ N(0, 0.5^2) at Dh = 64, N = 512: with 1024 features the estimator beats outputting
    mean(v) for every query (docs/approx_error_performer.md: below uniform at 1024 features); at N(0, 1)
    no feature count up to 1024 does (README), and eps no longer hides that behind uniform output."""
    q, k, v = qkv(1, 4, 512, 64, scale=0.5, seed=0)
    ref = exact_attention(q, k, v)
    uniform = relative_error(v.double().mean(-2, keepdim=True).expand_as(ref), ref)
    err = sum(relative_error(make(c, 1024, heads=4, dh=64, seed=s)(q, k, v), ref) for s in range(2) for c in [cls]) / 2
    assert err < uniform, (err, uniform)


@pytest.mark.parametrize("eps", [0.0, 0.05])
def test_fused_core_gradients_match_autograd(eps):
    g = torch.Generator().manual_seed(0)
    b, h, n, a, m, e, d, sq = 2, 2, 7, 5, 6, 4, 4, 0.3
    xq, yk = (torch.randn(b, h, n, c, generator=g, dtype=torch.double, requires_grad=True) for c in (a, a + 1))
    wq, wk = torch.randn(m, a, generator=g, dtype=torch.double), torch.randn(b, h, m, a + 1, dtype=torch.double)
    v = torch.randn(b, h, n, e, generator=g, dtype=torch.double, requires_grad=True)
    args = (xq, yk, v)

    def ext(t):
        return torch.cat([t, torch.ones_like(t[..., :1])], -1)

    def fused(x, y, vv):
        return FavorLinear.apply(x, wq, y, wk, ext(vv), eps, sq, d)

    def plain(x, y, vv):
        qp = positive_features(x, wq, row_term(x[..., :d], sq), QUERY_DIMS, eps)
        kp = positive_features(y, wk, row_term(y[..., :d], sq), KEY_DIMS, eps)
        return ratio(linear_attention(qp, kp, ext(vv)))

    if not eps:  # with eps the maxima no longer cancel; like the reference they carry no gradient
        assert torch.autograd.gradcheck(fused, args)
    w_out = torch.randn(b, h, n, e, generator=g, dtype=torch.double)
    torch.testing.assert_close(fused(*args), plain(*args))
    for g1, g2 in zip(torch.autograd.grad((fused(*args) * w_out).sum(), args),
                      torch.autograd.grad((plain(*args) * w_out).sum(), args)):
        torch.testing.assert_close(g1, g2)


# ---------------------------------------------------------------- masks
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_padding_is_exact(cls):
    """Padded keys (filled with huge garbage) change nothing: real positions equal the output on
    the unpadded sequence, with the same features."""
    q, k, v = qkv(2, 2, 40, 16, scale=0.8, seed=2)
    kpm = torch.ones(2, 40, dtype=torch.bool)
    kpm[1, 25:] = False
    for t in (q, k, v):
        t[1, :, 25:] = 300.0 * torch.randn_like(t[1, :, 25:])
    att = make(cls, 64, seed=5)
    out = att(q, k, v, key_padding_mask=kpm)
    alone = att(q[1:, :, :25], k[1:, :, :25], v[1:, :, :25])
    torch.testing.assert_close(out[1, :, :25], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[0], att(q[:1], k[:1], v[:1])[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_all_padded_row_is_zero_with_finite_gradients(cls):
    q, k, v = (t.requires_grad_() for t in qkv(2, 2, 12, 16, seed=3))
    kpm = torch.ones(2, 12, dtype=torch.bool)
    kpm[0] = False
    out = make(cls, 32)(q, k, v, key_padding_mask=kpm)
    assert out[0].abs().max() == 0 and out[1].abs().min() > 0
    out.square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_dense_mask_fallback_equals_kernel_reference_and_warns_once(cls, monkeypatch):
    monkeypatch.setattr(favor_module, "_WARNED", set())
    q, k, v = qkv(2, 2, 30, 16, scale=0.7, seed=4)
    mask = torch.rand(2, 2, 30, 30, generator=torch.Generator().manual_seed(1)) > 0.5  # (B, H, N, N)
    mask[0, 1, 7] = False  # a query that may attend nothing
    kpm = torch.ones(2, 30, dtype=torch.bool)
    kpm[1, 20:] = False
    att = make(cls, 64, seed=6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = att(q, k, v, attn_mask=mask)
        both = att(q, k, v, key_padding_mask=kpm, attn_mask=mask)
    quadratic = [w for w in caught if "quadratic" in str(w.message)]
    assert len(quadratic) == 1 and "MiB" in str(quadratic[0].message)
    kern = favor_kernel(q, k, att.projection, eps=DEFAULT_EPS)  # A = 0 under a dense mask, for both types
    torch.testing.assert_close(out.double(), kernel_attention(kern, v, mask), atol=1e-5, rtol=1e-4)
    full = mask & kpm[:, None, None, :]
    kern = favor_kernel(q, k, att.projection, eps=DEFAULT_EPS, kpm=kpm)  # padded keys never set the max
    torch.testing.assert_close(both.double(), kernel_attention(kern, v, full), atol=1e-5, rtol=1e-4)
    assert out[0, 1, 7].abs().max() == 0


# ---------------------------------------------------------------- relative position (FFT)
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
@pytest.mark.parametrize("n", [37, 64])
def test_fft_relative_bias_equals_quadratic_reference(cls, n):
    q, k, v = qkv(2, 2, n, 16, scale=0.6, seed=5)
    table = (torch.randn(2, 2 * n - 1, generator=torch.Generator().manual_seed(2)) * 2).requires_grad_()
    kpm = torch.ones(2, n, dtype=torch.bool)
    kpm[0, n - 9:] = False
    att = make(cls, 32, seed=7)
    out = att(q, k, v, key_padding_mask=kpm, rel_bias=effx.RelativeBias(table, n))
    a = pp_a(q, k, kpm) if cls is PerformerPlusPlusAttention else 0.0
    table64 = table.detach().double().requires_grad_()
    kern = favor_kernel(q, k, att.projection, a, DEFAULT_EPS, kpm) * torch.exp(effx.RelativeBias(table64, n).dense())
    ref = kernel_attention(kern, v, kpm[:, None, None, :])
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=1e-4)
    w_out = torch.randn(ref.shape, dtype=torch.double, generator=torch.Generator().manual_seed(3))
    (g_fft,) = torch.autograd.grad((out.double() * w_out).sum(), table)
    (g_ref,) = torch.autograd.grad((ref * w_out).sum(), table64)
    torch.testing.assert_close(g_fft.double(), g_ref, atol=1e-5, rtol=1e-3)


# ---------------------------------------------------------------- numerics
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_no_nan_or_inf_under_autocast_with_large_norms(cls, dtype):
    n = 64
    q, k, v = qkv(2, 2, n, 16, scale=60.0, seed=6)  # |q|, |k| ~ 240: q.k / sqrt(d) ~ 1e4
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    kpm = torch.ones(2, n, dtype=torch.bool)
    kpm[1, 40:] = False
    table = torch.randn(2, 2 * n - 1) * 20
    att = make(cls, 64).train()
    with torch.autocast("cpu", dtype=dtype):
        outs = [att(q, k, v), att(q, k, v, key_padding_mask=kpm),
                att(q, k, v, rel_bias=effx.RelativeBias(table, n)),
                att(q.to(dtype), k.to(dtype), v.to(dtype), key_padding_mask=kpm)]
    assert outs[3].dtype == dtype
    for out in outs:
        assert torch.isfinite(out.float()).all()
    sum(o.float().square().sum() for o in outs).backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    # the large-norm output is still an average of values: inside their range per head
    assert outs[0].float().abs().max() <= v.abs().max() * (1 + 1e-2)


# ---------------------------------------------------------------- feature redraws
def test_redraw_interval_and_reproducibility():
    q, k, v = qkv(1, 2, 10, 16)
    att, twin = make(PerformerAttention, 32, seed=9, interval=2), make(PerformerAttention, 32, seed=9, interval=2)
    att.train()
    seen = []
    for _ in range(5):
        att(q, k, v)
        seen.append(att.projection.clone())
    assert int(att.step) == 5
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[0], twin.projection)
    assert not torch.equal(seen[1], seen[2]) and torch.equal(seen[2], seen[3])
    assert not torch.equal(seen[3], seen[4])
    assert torch.equal(seen[2], twin.draw(1)) and torch.equal(seen[4], twin.draw(2))
    other = make(PerformerAttention, 32, seed=10)
    assert not torch.equal(other.projection, twin.projection)
    att.eval()
    att(q, k, v)
    assert int(att.step) == 5 and torch.equal(att.projection, seen[4])
    never = make(PerformerAttention, 32, seed=9, interval=0).train()
    for _ in range(3):
        never(q, k, v)
    assert torch.equal(never.projection, twin.projection)


def test_checkpoint_resumes_the_feature_schedule_exactly():
    q, k, v = qkv(1, 2, 10, 16)
    a = make(PerformerAttention, 32, seed=4, interval=2).train()
    for _ in range(3):
        a(q, k, v)
    b = make(PerformerAttention, 32, seed=4, interval=2).train()
    b.load_state_dict(a.state_dict())
    for _ in range(4):
        torch.testing.assert_close(a(q, k, v), b(q, k, v), rtol=0, atol=0)
        assert torch.equal(a.projection, b.projection) and int(a.step) == int(b.step)


def test_gradient_checkpoint_recompute_is_not_a_step():
    q, k, v = (t.requires_grad_() for t in qkv(1, 2, 10, 16, seed=8))
    plain, ckpt = (make(PerformerAttention, 32, seed=2, interval=1).train() for _ in range(2))
    grads = []
    for att, wrap in ((plain, False), (ckpt, True)):
        for _ in range(2):  # interval 1: the second forward redraws
            out = checkpoint(att, q, k, v, use_reentrant=False) if wrap else att(q, k, v)
            grads.append(torch.autograd.grad(out.square().sum(), (q, k, v)))
    assert int(plain.step) == int(ckpt.step) == 2
    for g1, g2 in zip(grads[:2], grads[2:]):
        for a, b in zip(g1, g2):
            torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- ReLU kernel
def test_relu_kernel_matches_reference_and_masks_exactly():
    q, k, v = qkv(2, 2, 30, 16, seed=12)
    kpm = torch.ones(2, 30, dtype=torch.bool)
    kpm[0, 22:] = False
    att = make(PerformerAttention, 64, kernel="relu")
    w = att.projection.double() * 16**-0.25
    fq, fk = (torch.relu(t.double() @ w.t()) + 1e-3 for t in (q, k))
    ref = kernel_attention(fq @ fk.transpose(-2, -1), v, kpm[:, None, None, :])
    torch.testing.assert_close(att(q, k, v, key_padding_mask=kpm).double(), ref, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- FAVOR++ specifics
@pytest.mark.parametrize("d", [16, 64])
@pytest.mark.parametrize("s", [0.0, 0.5, 3.0, 40.0])
def test_optimal_a_minimises_the_second_moment(d, s):
    a_star = float(optimal_a(torch.tensor(s, dtype=torch.double), d))
    grid = torch.linspace(-3.0, 0.124, 200_001, dtype=torch.double)
    log_m2 = d * torch.log(1 - 4 * grid) - d / 2 * torch.log(1 - 8 * grid) + 2 * s * (1 - 4 * grid) / (1 - 8 * grid)
    assert a_star == pytest.approx(float(grid[log_m2.argmin()]), abs=2e-5)
    assert (a_star == 0.0) == (s == 0.0)


def test_mean_pair_statistic_is_linear_time_exact():
    x, y, _ = qkv(2, 2, 20, 8, seed=13)
    kpm = torch.ones(2, 20, dtype=torch.bool)
    kpm[1, 12:] = False
    torch.testing.assert_close(mean_pair_sq_distance(x, y, None).double(), pair_mean(x.double(), y.double()), rtol=1e-5, atol=0)
    torch.testing.assert_close(mean_pair_sq_distance(x, y, kpm).double(), pair_mean(x.double(), y.double(), kpm), rtol=1e-5, atol=0)


def test_favor_pp_lowers_error_at_equal_features():
    """The paper's claim is about the unbiased estimators (eps 0): lower variance at equal features."""
    q, k, v = qkv(1, 2, 128, 32, scale=0.5, seed=14)
    ref = exact_attention(q, k, v)
    for m in (64, 256):
        plus = [relative_error(make(PerformerAttention, m, seed=s, dh=32, feature_eps=0.0)(q, k, v), ref) for s in range(8)]
        pp = [relative_error(make(PerformerPlusPlusAttention, m, seed=s, dh=32, feature_eps=0.0)(q, k, v), ref)
              for s in range(8)]
        assert sum(pp) < 0.9 * sum(plus), (m, sum(pp) / 8, sum(plus) / 8)


# ---------------------------------------------------------------- plugin surface
def test_registered_with_typed_configs():
    reg = effx.load_registry()
    for cls in TYPES:
        entry = reg.get("attention", cls.name)
        assert entry.cls is cls and entry.dist == "effx-attention-performer"
        assert cls.Config().nb_features == 256 and not cls.exact
    with pytest.raises(effx.ConfigError, match="nb_features"):
        structure({"nb_features": 0}, PerformerAttention.Config, root="model.attention.config")
    with pytest.raises(effx.ConfigError, match="kernel"):
        structure({"kernel": "relu"}, PerformerPlusPlusAttention.Config, root="model.attention.config")


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_integer_masks_and_half_module(cls):
    """0/1 integer masks mean the same as bool ones; a ``.half()`` module still computes in fp32."""
    q, k, v = (t.half() for t in qkv(2, 2, 10, 16, seed=15))
    kpm = torch.ones(2, 10, dtype=torch.long)
    kpm[1, 6:] = 0
    att = make(cls, 32).half()
    out = att(q, k, v, key_padding_mask=kpm)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, att(q, k, v, key_padding_mask=kpm.bool()), rtol=0, atol=0)
    torch.testing.assert_close(out[1, :, :6], att(q[1:, :, :6], k[1:, :, :6], v[1:, :, :6])[0], rtol=0, atol=1e-3)


def test_stacked_layers_share_work_buffers_safely():
    """Two layers run forward, then backward: recomputed features must not see each other's data."""
    from effx_performer.features import values_with_ones

    q, k, v = (t.requires_grad_() for t in qkv(2, 2, 20, 16, scale=0.7, seed=16))
    l1, l2 = make(PerformerAttention, 32, seed=1), make(PerformerAttention, 48, seed=2)

    def reference(att, q, k, v):  # plain autograd composition, no work buffers
        (xq, wq), (yk, wk) = att.operands(q, k, None, dense=False)
        eps, sq = att.config.feature_eps, q.shape[-1] ** -0.5
        qp = positive_features(xq, wq, row_term(q, sq), QUERY_DIMS, eps)
        kp = positive_features(yk, wk, row_term(k, sq), KEY_DIMS, eps)
        return ratio(linear_attention(qp, kp, values_with_ones(v, None)))

    fused = l2(l1(q, k, v), k * 0.5, v)
    plain = reference(l2, reference(l1, q, k, v), k * 0.5, v)
    torch.testing.assert_close(fused, plain)
    w_out = torch.randn(fused.shape, generator=torch.Generator().manual_seed(4))
    for g1, g2 in zip(torch.autograd.grad((fused * w_out).sum(), (q, k, v)),
                      torch.autograd.grad((plain * w_out).sum(), (q, k, v))):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)
