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
in the attention ratio, ``B`` rescales the inputs and ``A |w_m|^2`` is a per-feature logit offset
folded into the same projection matmul, so the cost equals FAVOR+.

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
from .features import DEFAULT_FEATURE_EPS


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

    def feature_offset(self, q: torch.Tensor, k: torch.Tensor, w: torch.Tensor, kpm, dense: bool):
        """``(B, offset)``: input scale ``[B, H, 1]`` and per-feature logit ``A |w|^2`` ``[B, H, M]``.

        ``w [M, Dh]`` is the projection already scaled by ``Dh^(-1/4)``; statistics use the
        scaled inputs ``x = q Dh^(-1/4)``, ``y = k Dh^(-1/4)``.
        """
        if dense:
            return None, None  # see module docstring: A = 0 under a dense attn_mask
        d = q.shape[-1]
        s = mean_pair_sq_distance(q, k, kpm) / d**0.5  # (B, H): |x + y|^2 = |q + k|^2 / sqrt(d)
        a = optimal_a(s, d)  # (B, H)
        coef = torch.sqrt(1.0 - 4.0 * a)[..., None]  # (B, H, 1)
        log_d = 0.25 * d * torch.log1p(-4.0 * a)  # (B, H): log D, D = (1 - 4A)^(d/4)
        offset = a[..., None] * self.projection.to(q.dtype).square().sum(-1) + log_d[..., None]  # (B, H, M)
        return coef, offset
