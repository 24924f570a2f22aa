"""The conformance suite catches each class of attention defect it exists for.

Every mutant below is a small, deliberately broken attention next to a healthy twin that differs
from it in the one place that is broken. Each test runs the whole shipped suite
(``effx.testing.attention_checks()``) on the mutant and requires a failure whose message names the
property the defect violates; the twins must pass the whole suite, so a failure is the defect's,
not an artefact of the mutant's construction.
"""
from __future__ import annotations

import math

import pytest
import torch

import effx
from effx.testing import attention_checks

RELATIVE = frozenset({effx.PositionMode.RELATIVE_BIAS})
NO_RELATIVE = frozenset(effx.PositionMode) - RELATIVE


def suite_failures(cls, config=None, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Run every shipped attention check on ``cls``; ``{check name: assertion message}`` of failures."""
    failures = {}
    for check in attention_checks():
        if check.__name__ in skip:
            continue
        try:
            check(cls, config)
        except AssertionError as exc:
            failures[check.__name__] = str(exc)
    return failures


def assert_caught(cls, prop: str, config=None, skip: tuple[str, ...] = ()) -> None:
    failures = suite_failures(cls, config, skip)
    assert any(prop in msg for msg in failures.values()), (
        f"the suite did not report '{prop}' for {cls.name}; failures: {failures}")


# --- exact softmax attention, written out so that mutants can break one term of it -------------------
def _scores(q, k, kpm, attn_mask, bias):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, N, N)
    if bias is not None:
        s = s + bias
    mask = torch.ones_like(s, dtype=torch.bool)
    if kpm is not None:
        mask = mask & kpm[:, None, None, :]
    if attn_mask is not None:
        mask = mask & attn_mask.expand_as(mask) if attn_mask.dim() == 4 else mask & attn_mask
    return s.masked_fill(~mask, -torch.inf), mask


def _softmax_parts(s, mask):
    """Unnormalised weights ``[B, H, N, N]`` (0 where masked) and their row sums ``[B, H, N, 1]``."""
    c = s.amax(-1, keepdim=True).detach().clamp_min(-1e30)  # a stabiliser: cancels in num / den
    e = torch.exp(s - c).masked_fill(~mask, 0.0)
    return e, e.sum(-1, keepdim=True)


def _ratio(num, den):
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, 1.0), 0.0)


class Exact(effx.Attention):
    """Healthy: exact softmax attention with every mask and a per-head relative bias."""

    name = "meta_exact"
    exact = True

    def bias(self, rel_bias):
        return None if rel_bias is None else rel_bias.dense().to(self._dtype)  # (H, N, N)

    def normaliser(self, den):
        return den

    def forward(self, q, k, v, *, key_padding_mask=None, attn_mask=None, rel_bias=None):
        self._dtype, dtype = (q.dtype if q.dtype == torch.float64 else torch.float32), q.dtype
        q, k, v = (t.to(self._dtype) for t in (q, k, v))
        s, mask = _scores(q, k, key_padding_mask, attn_mask, self.bias(rel_bias))
        e, den = _softmax_parts(s, mask)
        return _ratio(e @ v, self.normaliser(den)).to(dtype)  # (B, H, N, Dh)


class HeadZeroBias(Exact):
    """Broken: head 0's relative bias is given to every head."""

    name = "meta_head0_bias"

    def bias(self, rel_bias):
        full = super().bias(rel_bias)
        return None if full is None else full[:1].expand_as(full)


class IgnoresBias(Exact):
    """Broken: accepts a relative bias and ignores it."""

    name = "meta_ignores_bias"

    def bias(self, rel_bias):
        return None


class LooseHeadZeroBias(HeadZeroBias):
    """As HeadZeroBias, declared approximate with the loosest tolerance a plugin may claim."""

    name = "meta_loose_head0_bias"
    exact, rel_bias_tolerance = False, 1.0


class LooseIgnoresBias(IgnoresBias):
    name = "meta_loose_ignores_bias"
    exact, rel_bias_tolerance = False, 1.0


class ConstantNormaliser(Exact):
    """Broken backward: the softmax normaliser (a function of q and k) is treated as a constant."""

    name = "meta_constant_normaliser"

    def normaliser(self, den):
        return den.detach()


class _ScaledGrad(torch.autograd.Function):
    """Identity forward; backward scales the gradient by 1.01."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * 1.01


class ScaledBackward(Exact):
    """Broken backward: a custom autograd Function whose gradient is 1 % too large."""

    name = "meta_scaled_backward"

    def forward(self, q, k, v, **kwargs):
        return _ScaledGrad.apply(super().forward(q, k, v, **kwargs))


class WrongBackwardUnderBias(Exact):
    """Broken backward on one non-default path only: with a relative bias the normaliser is constant."""

    name = "meta_wrong_backward_under_bias"

    def forward(self, q, k, v, *, rel_bias=None, **kwargs):
        self._biased = rel_bias is not None
        return super().forward(q, k, v, rel_bias=rel_bias, **kwargs)

    def normaliser(self, den):
        return den.detach() if self._biased else den


# --- local block attention: the block size must not follow the padded length -------------------------
class Blocks(effx.Attention):
    """Healthy: exact attention inside fixed blocks of 16 positions (an approximation)."""

    name = "meta_blocks"
    capabilities = effx.AttentionCapabilities(attn_mask=False, positional=NO_RELATIVE)

    def block(self, n: int) -> int:
        return 16

    def forward(self, q, k, v, *, key_padding_mask=None, attn_mask=None, rel_bias=None):
        n = q.shape[2]
        blk = torch.arange(n) // self.block(n)  # (N,) block of each position
        same = blk[:, None] == blk[None, :]  # (N, N)
        return Exact.forward(self, q, k, v, key_padding_mask=key_padding_mask, attn_mask=same)

    bias, normaliser = Exact.bias, Exact.normaliser


class BlocksFromLength(Blocks):
    """Broken: a fixed number of blocks, so the block size follows the (padded) sequence length."""

    name = "meta_blocks_from_length"

    def block(self, n: int) -> int:
        return max(1, math.ceil(n / 4))


# --- a Performer-like random-feature attention: where its stabilisers are taken ---------------------
class Favor(effx.Attention):
    """Healthy: positive random features ``(exp(w.x - |x|^2/2) + eps) e^-c`` with the query stabiliser
    per row and the key stabiliser over the VISIBLE keys of a head, both including ``-|x|^2/2``."""

    name = "meta_favor"
    capabilities = effx.AttentionCapabilities(attn_mask=False, positional=NO_RELATIVE)
    eps = 1.0
    features = 64

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randn(self.features, ctx.head_dim, generator=g))  # (M, Dh)

    def logits(self, x):
        x = x * x.shape[-1] ** -0.25
        return x @ self.w.to(x.dtype).t() - 0.5 * x.square().sum(-1, keepdim=True)  # (B, H, N, M)

    def floor(self, c):
        return c.clamp_min(math.log(self.eps)) if self.eps else c  # keeps eps e^-c <= 1

    def key_stabiliser(self, lk, k, visible):
        return self.floor(lk.masked_fill(~visible, -torch.inf).amax((-2, -1), keepdim=True))  # (B, H, 1, 1)

    def query_features(self, lq):
        c = self.floor(lq.amax(-1, keepdim=True).detach())  # (B, H, N, 1)
        return torch.exp(lq - c) + (self.eps * torch.exp(-c) if self.eps else 0.0)

    def key_features(self, lk, c):
        return torch.exp(lk - c) + (self.eps * torch.exp(-c) if self.eps else 0.0)

    def forward(self, q, k, v, *, key_padding_mask=None, attn_mask=None, rel_bias=None):
        dtype = q.dtype
        ct = torch.float64 if dtype == torch.float64 else torch.float32
        q, k, v = q.to(ct), k.to(ct), v.to(ct)
        b, h, n, _ = q.shape
        kpm = key_padding_mask if key_padding_mask is not None else torch.ones(b, n, dtype=torch.bool)
        visible = kpm[:, None, :, None]  # (B, 1, N, 1)
        lq, lk = self.logits(q), self.logits(k)  # (B, H, N, M)
        c = self.key_stabiliser(lk, k, visible).detach()  # (B, H, 1, 1)
        qf = self.query_features(lq)
        kf = self.key_features(lk, c).masked_fill(~visible, 0.0)  # a padded key weighs nothing
        ext = torch.cat([v, torch.ones_like(v[..., :1])], -1).masked_fill(~visible, 0.0)  # (B, H, N, Dh+1)
        out = qf @ (kf.transpose(-2, -1) @ ext)  # (B, H, N, Dh+1)
        num, den = out[..., :-1], out[..., -1:]
        return _ratio(num, torch.where(den > 1e-30, den, 0.0)).to(dtype)


class FavorUnbiased(Favor):
    """Healthy: the same with ``eps = 0`` (the unbiased estimator)."""

    name = "meta_favor_unbiased"
    eps = 0.0


class FavorLeakyStabiliser(Favor):
    """Broken: the key stabiliser is one max over ALL keys, masked ones included, and ``eps`` is added
    after it (so it does not cancel): a masked key changes every query's feature weights."""

    name = "meta_favor_leaky_stabiliser"

    def key_stabiliser(self, lk, k, visible):
        return lk.amax((-2, -1), keepdim=True)

    def key_features(self, lk, c):
        return torch.exp(lk - c) + self.eps


class FavorNoStabiliser(Favor):
    """Broken: no stabiliser, no ``eps``: a large-norm query's features underflow to 0 (a zero row)."""

    name = "meta_favor_no_stabiliser"
    eps = 0.0

    def key_stabiliser(self, lk, k, visible):
        return torch.zeros_like(lk[..., :1, :1])

    def query_features(self, lq):
        return torch.exp(lq)


class FavorKeyStabiliserWithoutNorm(Favor):
    """Broken: ``eps = 0`` and the key stabiliser leaves out ``-|k|^2/2``: one large key sets it and
    every other key's features underflow."""

    name = "meta_favor_key_stabiliser_without_norm"
    eps = 0.0

    def key_stabiliser(self, lk, k, visible):
        lin = lk + 0.5 * (k * k.shape[-1] ** -0.25).square().sum(-1, keepdim=True)  # w . y without the row term
        return lin.masked_fill(~visible, -torch.inf).amax((-2, -1), keepdim=True)


# --- the Reformer itself, with one of its fixes undone ---------------------------------------------
def _reformer():
    from effx_reformer import lsh

    return lsh


def _reformer_buckets_from_length():
    """Broken: the Reformer's bucket count follows the padded length of the batch, not max_seq_len."""
    class Mutant(_reformer().ReformerLSH):
        name = "meta_reformer_buckets_from_length"

        def _sort(self, x, rotations, npad, bs, pad):
            self._length = x.shape[2]
            return super()._sort(x, rotations, npad, bs, pad)

        def n_buckets(self) -> int:
            return self._n_buckets(self._length)

    return Mutant


def _hidden_keys_hashed(monkeypatch):
    """Undo the Reformer's hidden-key fix: keys no query may see are hashed and sorted like the rest."""
    monkeypatch.setattr(_reformer(), "hidden_keys", lambda pad, attn_mask, shape: None)


# --- the tests ---------------------------------------------------------------------------------------
MUTANTS = [  # (mutant, property its defect violates)
    (FavorLeakyStabiliser, "masked-key invariance"),
    (HeadZeroBias, "relative-bias fidelity"),
    (LooseHeadZeroBias, "relative-bias fidelity"),
    (IgnoresBias, "relative-bias fidelity"),
    (LooseIgnoresBias, "relative-bias fidelity"),
    (ConstantNormaliser, "gradient correctness"),
    (ScaledBackward, "gradient correctness"),
    (WrongBackwardUnderBias, "gradient correctness"),
    (BlocksFromLength, "padding invariance"),
    (FavorNoStabiliser, "robustness"),
    (FavorKeyStabiliserWithoutNorm, "robustness"),
]
HEALTHY = [Exact, Blocks, Favor, FavorUnbiased]


@pytest.mark.parametrize("cls,prop", MUTANTS, ids=lambda x: getattr(x, "name", x))
@pytest.mark.slow
def test_suite_catches_the_mutant(cls, prop):
    assert_caught(cls, prop)


@pytest.mark.parametrize("cls", HEALTHY, ids=lambda c: c.name)
def test_the_healthy_twins_pass_the_whole_suite(cls):
    assert suite_failures(cls) == {}


# The Reformer's gradient is plain autograd, untouched by these mutations: gradcheck (the slow part
# of its suite) is left out of these runs.
NO_GRADCHECK = ("check_gradcheck",)


@pytest.mark.slow
def test_suite_catches_reformer_buckets_following_the_padded_length():
    assert_caught(_reformer_buckets_from_length(), "padding invariance", skip=NO_GRADCHECK)


@pytest.mark.slow
def test_suite_catches_reformer_hashing_hidden_keys(monkeypatch):
    cls = _reformer().ReformerLSH
    _hidden_keys_hashed(monkeypatch)
    assert_caught(cls, "masked-key invariance", cls.Config(shared_qk=False), skip=NO_GRADCHECK)


@pytest.mark.slow
def test_reformer_separate_qk_passes_the_whole_suite_without_the_mutation():
    cls = _reformer().ReformerLSH
    assert suite_failures(cls, cls.Config(shared_qk=False), skip=NO_GRADCHECK) == {}
