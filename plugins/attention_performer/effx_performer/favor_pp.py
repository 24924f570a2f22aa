"""Performer with FAVOR++ / optimal positive random features (OPRF) - the modified variant
``performer_favor_pp``.

Citation: Likhosherstov, Choromanski, Dubey, Liu, Sarlos, Weller, "Chefs' Random Tables:
Non-Trigonometric Random Features", NeurIPS 2022 (FAVOR++).

What changes. FAVOR+ uses ``f(w, x) = exp(w . x - |x|^2/2)``. OPRF widens this to the family

    f(w, x) = D exp(A |w|^2 + B w . x - |x|^2 / 2),   B = sqrt(1 - 4A),  D = (1 - 4A)^(d/4),  A < 1/8

which is still unbiased (``E[f(w,x) f(w,y)] = exp(x . y)`` for every such A; A = 0 is FAVOR+) and
still positive. Its second moment is ``D^4 (1-8A)^(-d/2) exp(2(1-4A) s / (1-8A) - |x|^2 - |y|^2)``
with ``s = |x + y|^2``; minimising over A gives the closed form

    A* = ((2d - 4s) - sqrt((4s - 2d)^2 + 64 d s)) / (32 d)   (<= 0)

with ``s`` replaced by its mean over all (query, key) pairs of the head, computed in linear time as
``mean|x|^2 + mean|y|^2 + 2 mean(x) . mean(y)`` over real (non-padded) tokens. Here ``D`` cancels
in the attention ratio only at ``feature_eps: 0``, ``B`` rescales the inputs and ``A |w_m|^2 + log D``
enters the same projection matmul as two input columns ``[A, log D]`` against the shared columns
``[|w_m|^2, 1]``, so the cost equals FAVOR+ and the projection stays one ``[M, Dh+2]`` matrix for
every head: the gradient of ``A`` (and of ``B``) is the sum over tokens of the input gradient's
entries in those columns (and of ``q . dL/d(Bq)``), O(N Dh), with no weight-gradient matmul.

Why it should help. FAVOR+'s variance grows like ``exp(2 s)``, dominated by features with large
``|w|``; A* < 0 damps exactly those features (``exp(A |w|^2)``) and the paper proves the resulting
variance is the minimum over the family - largest gains when query/key norms are large, which is
where FAVOR+ fails (peaked attention). ``A`` is a function of the data and the gradient flows
through it (the backward is the derivative of this forward); the estimator is unbiased for any fixed A.

Feature ``eps``. As in ``performer_favor`` (see :mod:`effx_performer.features`), ``feature_eps``
(default 1.0) is an absolute floor added to every textbook OPRF feature
``D exp(A |w|^2 + B w . x - |x|^2/2)`` (mean 1 over ``w``; ``log D`` and ``A |w|^2`` are the
per-feature logit offset), so with A = 0 the features are exactly FAVOR+'s. ``feature_eps: 0``
gives the unbiased OPRF estimator.

Dense ``attn_mask``: a statistic over all tokens would let a masked key influence queries that may
not see it, so under a dense mask the variant uses A = 0 (plain FAVOR+ features) and stays exact
about which keys each query sees.
"""
from __future__ import annotations

import attrs
import torch

from effx import at_least

from .favor import PerformerAttention
from .features import DEFAULT_FEATURE_EPS, key_operands, query_operands


@attrs.frozen
class PerformerPlusPlusConfig:
    nb_features: int = attrs.field(default=256, validator=at_least(1))
    redraw_interval: int = attrs.field(default=1000, validator=at_least(0))
    # same role as in performer_favor: added to every stabilised feature; 0 = unbiased estimator
    feature_eps: float = attrs.field(default=DEFAULT_FEATURE_EPS, validator=at_least(0.0))

    @property
    def kernel(self) -> str:
        return "softmax"  # OPRF is defined for the softmax kernel only


def mean_pair_sq_distance(x: torch.Tensor, y: torch.Tensor, kpm: torch.Tensor | None) -> torch.Tensor:
    """``mean_{i,j} |x_i + y_j|^2`` over real tokens in O(N d): ``x, y [B, H, N, d]`` -> ``[B, H]``."""
    n = x.shape[2]
    if kpm is None:
        wts = x.new_full((1, 1, n), 1.0 / n)  # (1, 1, N)
    else:
        real = kpm[:, None, :].to(x.dtype)  # (B, 1, N)
        wts = real / real.sum(-1, keepdim=True).clamp_min(1.0)
    sq = torch.linalg.vector_norm(x, dim=-1).square() + torch.linalg.vector_norm(y, dim=-1).square()  # (B, H, N)
    mx = (wts[..., None, :] @ x).squeeze(-2)  # (B, H, d) mean query
    my = (wts[..., None, :] @ y).squeeze(-2)  # (B, H, d) mean key
    return (sq * wts).sum(-1) + 2.0 * (mx * my).sum(-1)  # (B, H)


def optimal_a(s: torch.Tensor, d: int) -> torch.Tensor:
    """Variance-minimising ``A*`` for mean squared pair norm ``s`` (>= 0) in dimension ``d``."""
    s = s.clamp_min(0.0)
    return ((2 * d - 4 * s) - torch.sqrt((4 * s - 2 * d) ** 2 + 64 * d * s)) / (32 * d)


class PerformerPlusPlusAttention(PerformerAttention):
    name = "performer_favor_pp"
    Config = PerformerPlusPlusConfig

    def operands(self, q, k, kpm, dense: bool, fold_padding: bool = True):
        """Operands of ``B w_m . x + A |w_m|^2 + log D`` with the projection shared by all heads:
        ``x' = [B q, A, log D]`` ``[B, H, N, Dh+2]`` against ``w' = [w Dh^(-1/4), |w|^2, 1]``
        ``[M, Dh+2]``. Every per-head factor sits in ``x'`` (O(N Dh)), so the backward assembles the
        gradient of ``A`` from the input gradient's per-token entries - no weight-gradient matmul.
        Statistics use the scaled inputs ``x = q Dh^(-1/4)``, ``y = k Dh^(-1/4)``; the row terms
        ``-|x|^2/2`` stay those of the raw inputs (``B`` multiplies ``w . x`` only)."""
        if dense:  # see module docstring: A = 0 under a dense attn_mask
            return super().operands(q, k, kpm, dense, fold_padding)
        (xq, yk, w), _ = self._operands(q, k, kpm)
        return query_operands(xq, w), key_operands(yk, w, kpm if fold_padding else None)

    def fast_operands(self, q, k, kpm):
        """The fused path's operands: ``x'`` carries ``B q`` in its first ``Dh`` columns, so the row
        terms (``-|q|^2/2`` of the raw inputs) are scaled by ``1 / B^2``."""
        (xq, yk, w), coef = self._operands(q, k, kpm)
        return (xq, w), (yk, w), coef.square().reciprocal()[..., 0]  # (B, H, 1)

    def _operands(self, q, k, kpm):
        """``(x' [B, H, N, Dh+2], y', w' [M, Dh+2])`` and ``B [B, H, 1, 1]``."""
        b, h, n, d = q.shape
        s = mean_pair_sq_distance(q, k, kpm) / d**0.5  # (B, H): |x + y|^2 = |q + k|^2 / sqrt(d)
        a = optimal_a(s, d)  # (B, H)
        coef = torch.sqrt(1.0 - 4.0 * a)[..., None, None]  # (B, H, 1, 1)
        log_d = 0.25 * d * torch.log1p(-4.0 * a)  # (B, H): log D, D = (1 - 4A)^(d/4)
        head = torch.stack([a, log_d], -1)[:, :, None, :].expand(b, h, n, 2)  # (B, H, N, 2)
        proj = self.projection.to(q.dtype)  # (M, Dh)
        w = torch.cat([proj * d**-0.25, proj.square().sum(-1, keepdim=True), proj.new_ones(proj.shape[0], 1)], -1)
        return (torch.cat([q * coef, head], -1), torch.cat([k * coef, head], -1), w), coef  # (B, H, N, Dh+2)
