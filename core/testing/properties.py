"""Properties every attention must hold, whatever it approximates (part of :mod:`effx.testing`).

* masked-key invariance - keys a query may not see never change that query's output;
* padding invariance - a document's output does not depend on how its batch is padded;
* gradient correctness - the backward is the derivative of the forward (float64 gradcheck);
* relative-bias fidelity - each head gets its own bias, as exact attention with the dense bias;
* robustness - a few large-norm keys or queries zero or NaN no row.
"""
from __future__ import annotations

import math

import torch

from ..components import AttentionContext, PositionMode, RelativeBias
from .attention import DH, H, make, padding, qkv

BIG = 1e3  # magnitude of the content written into hidden keys
# scales of the fresh content written into hidden keys: a moderate one too, since a stabiliser that
# includes -|k|^2/2 is set by moderate keys (about twice the others' norm), never by huge ones
HIDDEN_SCALES = (2.0, BIG)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def _assert_same(a, b, what: str, tol: float = 1e-5) -> None:
    err = _max_diff(a, b)
    assert err <= tol * max(1.0, b.double().abs().max().item()), f"{what}: outputs differ by {err:.3g}"


# Lengths well past a few chunks of a chunked or bucketed attention's default size, so that keys
# which take a chunk slot, or a chunk count that follows the length, change what a query compares.
LONG = 320
MAX_LEN = 1024


def check_masked_key_invariance(cls, config=None) -> None:
    """Masked-key invariance: k and v of any magnitude at positions excluded by key_padding_mask,
    or hidden by attn_mask from every query, change no output; a key hidden from one query never
    reaches it (its value never; its key content neither, unless the attention is content-routed)."""
    att, n = make(cls, config, max_seq_len=MAX_LEN), LONG
    q, k, v = qkv(n, seed=11)
    g = torch.Generator().manual_seed(12)
    if cls.capabilities.key_padding_mask:
        kpm = padding(n, (n, 190))
        hide = ~kpm[:, None, :, None]  # (B, 1, N, 1)
        base = att(q, k, v, key_padding_mask=kpm)
        for scale in HIDDEN_SCALES:
            k2, v2 = (torch.where(hide, scale * torch.randn(t.shape, generator=g), t) for t in (k, v))
            _assert_same(att(q, k2, v2, key_padding_mask=kpm), base,
                         f"{cls.name}: masked-key invariance (key_padding_mask) violated")
    if not cls.capabilities.attn_mask:
        return
    mask = torch.ones(n, n, dtype=torch.bool)
    mask[:, 100:140] = False  # keys 100..139 hidden from every query
    mask[:10, 20:30] = False  # keys 20..29 hidden from queries 0..9 only
    base = att(q, k, v, attn_mask=mask)
    for scale in HIDDEN_SCALES:
        k2, v2 = k.clone(), v.clone()
        k2[:, :, 100:140] = scale * torch.randn(k2[:, :, 100:140].shape, generator=g)
        v2[:, :, 100:140] = scale * torch.randn(v2[:, :, 100:140].shape, generator=g)
        _assert_same(att(q, k2, v2, attn_mask=mask), base,
                     f"{cls.name}: masked-key invariance (keys hidden by attn_mask from every query) violated")
    v2[:, :, 20:30] += BIG
    if not cls.content_routed:
        k2[:, :, 20:30] *= 30.0
    _assert_same(att(q, k2, v2, attn_mask=mask)[:, :, :10], base[:, :, :10],
                 f"{cls.name}: masked-key invariance (keys hidden from some queries) violated")


def check_padding_length_invariance(cls, config=None) -> None:
    """Padding invariance (eval): the outputs at a sequence's real positions are the same alone,
    padded to a longer length with arbitrary padding content, and batched with a longer partner."""
    if not cls.capabilities.key_padding_mask:
        return
    att = make(cls, config, max_seq_len=MAX_LEN)
    g = torch.Generator().manual_seed(14)
    for real, totals in ((70, (77, 150)), (LONG, (LONG + 20, 2 * LONG))):
        q, k, v = (t[:1] for t in qkv(real, seed=13))  # (1, H, real, Dh)
        alone = att(q, k, v)[0]
        for total in totals:
            garbage = [50.0 * torch.randn(2, H, total - real, DH, generator=g) for _ in range(3)]
            qq, kk, vv = (torch.cat([t.expand(2, -1, -1, -1), pad], 2) for t, pad in zip((q, k, v), garbage))
            qq[1], kk[1], vv[1] = (torch.randn(H, total, DH, generator=g) for _ in range(3))  # a longer partner
            kpm = padding(total, (real, total))
            out = att(qq, kk, vv, key_padding_mask=kpm)[0, :, :real]
            _assert_same(out, alone, f"{cls.name}: padding invariance violated (length {real} padded to {total})")


def _gradcheck_inputs(n: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(15)
    return [(torch.randn(1, 2, n, 4, generator=g, dtype=dtype) * 0.6).requires_grad_() for _ in range(3)]


def _gradcheck_paths(cls, n: int) -> list[dict]:
    """Keyword sets that select each masking / bias code path the class supports."""
    paths = [{}]
    if cls.capabilities.key_padding_mask:
        paths.append({"key_padding_mask": torch.tensor([[True] * (n - 2) + [False] * 2])})
    if cls.capabilities.attn_mask:
        mask = torch.rand(n, n, generator=torch.Generator().manual_seed(18)) > 0.4  # (N, N)
        paths.append({"attn_mask": mask | torch.eye(n, dtype=torch.bool)})  # no fully-masked row
    if PositionMode.RELATIVE_BIAS in cls.capabilities.positional:
        table = torch.randn(2, 2 * n - 1, generator=torch.Generator().manual_seed(19), dtype=torch.float64)
        paths.append({"rel_bias": RelativeBias(table, n)})  # (H, 2N-1) per-head, asymmetric
    return paths


def check_gradcheck(cls, config=None) -> None:
    """Gradient correctness: float64 gradcheck of every config the class lists in
    ``gradcheck_configs()``, without a mask and with each of a padding mask, a dense attention mask
    and a relative bias that the class supports (the backward must be the derivative of the
    forward on every path, custom autograd functions included)."""
    n = 7
    # the declared paths once (with the default config); any other variant is checked on its own
    configs = cls.gradcheck_configs() if config is None or config == cls.Config() else (config,)
    for cfg in configs:
        att = cls(cfg, AttentionContext(n_heads=2, head_dim=4, max_seq_len=64, dropout=0.0, seed=0)).double().eval()
        for kwargs in _gradcheck_paths(cls, n):
            ok = torch.autograd.gradcheck(lambda a, b, c: att(a, b, c, **kwargs), _gradcheck_inputs(n),  # noqa: B023
                                          eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=False)
            assert ok, f"{cls.name}: gradient correctness violated (gradcheck failed for {cfg}, {sorted(kwargs)})"


def _exact(q, k, v, dense_bias):
    s = q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1]) + dense_bias.double()  # (B, H, N, N)
    return torch.softmax(s, -1) @ v.double()


def check_relative_bias_fidelity(cls, config=None) -> None:
    """Relative-bias fidelity: a per-head, asymmetric bias (head h favours the key h+1 positions
    back) moves each head's output as exact attention with the dense bias does - within the class's
    ``rel_bias_tolerance`` - and closer to that than to giving every head head 0's bias or none."""
    if PositionMode.RELATIVE_BIAS not in cls.capabilities.positional:
        return
    att, n = make(cls, config), 24
    q, k, v = qkv(n, seed=16, scale=0.3)
    table = torch.zeros(H, 2 * n - 1)
    for h in range(H):
        table[h, n - 1 + h + 1] = 6.0  # i - j = h + 1
    table[:, n - 1 - 2] = -3.0  # asymmetric: penalise j = i + 2 in every head
    bias, head0 = RelativeBias(table, n), RelativeBias(table[:1].expand(H, -1).clone(), n)
    zero = torch.zeros(H, n, n)
    delta = att(q, k, v, rel_bias=bias).double() - att(q, k, v).double()  # (B, H, N, Dh)
    want = _exact(q, k, v, bias.dense()) - _exact(q, k, v, zero)
    wrong = _exact(q, k, v, head0.dense()) - _exact(q, k, v, zero)
    for h in range(H):
        err = ((delta[:, h] - want[:, h]).norm() / want[:, h].norm()).item()
        assert err <= max(cls.rel_bias_tolerance, 1e-4), (
            f"{cls.name}: relative-bias fidelity violated in head {h} (relative error {err:.3g} > "
            f"{cls.rel_bias_tolerance:g})")
        if h > 0:
            err_wrong = ((delta[:, h] - wrong[:, h]).norm() / want[:, h].norm()).item()
            assert err < err_wrong, f"{cls.name}: relative-bias fidelity violated: head {h} follows head 0's bias"
    assert delta.abs().max() > 1e-3, f"{cls.name}: relative-bias fidelity violated: the bias changes nothing"


def check_large_norm_robustness(cls, config=None) -> None:
    """Robustness: a few keys and queries with 20-100x the norm of the rest zero or NaN no output row
    (one 100x key is enough to underflow every other key's features in fp32 when a stabiliser
    leaves out the key's norm)."""
    att, n = make(cls, config), 40
    q, k, v = qkv(n, seed=17, scale=0.3)
    k[:, :, 5] *= 100.0
    k[:, :, 17] *= 20.0
    q[:, :, 9] *= 30.0
    out = att(q, k, v)
    assert torch.isfinite(out).all(), f"{cls.name}: robustness violated: non-finite output with large-norm keys"
    rows = out.abs().sum(-1)  # (B, H, N)
    assert (rows > 1e-6).all(), (f"{cls.name}: robustness violated: {(rows <= 1e-6).float().mean():.0%} of rows "
                                 f"are zero with a few large-norm keys")


def property_checks() -> list:
    return [check_masked_key_invariance, check_padding_length_invariance, check_gradcheck,
            check_relative_bias_fidelity, check_large_norm_robustness]
