"""Reformer with balanced bucketing (``reformer_balanced``): a modified Reformer.

What changes. Only the hash. Instead of angular LSH buckets (``argmax`` over random rotations, sorted
by ``(bucket, position)``), every round builds a random-projection tree of depth
``L = ceil(log2(n / bucket_size))`` (``n`` = the sequence's real tokens): the tokens are sorted by their projection on a random unit
direction and cut at the median, each half is sorted by a second direction and cut at its median,
and so on. The final order puts every token in a leaf of about ``n / 2^L <= bucket_size`` tokens
whose members lie on the same side of ``L`` random hyperplanes; consecutive leaves share all but
the last split. Chunking, look one chunk back and forward, duplicate removal, masks, relative bias
and the round mixing are unchanged (:mod:`effx_reformer.chunked`).

Why it should help. LSH buckets have very unequal sizes (more so on real activations, which are
far from uniform on the sphere). With fixed-size chunks a bucket larger than the three-chunk window
is cut and its members miss each other, while chunks holding small buckets are filled with
unrelated neighbours sorted only by position. Balanced clusters make every chunk one group of
mutually close vectors and the neighbouring chunks the nearest sibling groups, so more of the
softmax mass is captured per compared pair; no bucket count has to be chosen. Sorting within a
segment by a continuous projection also orders tokens by similarity where the original orders them
by position.

Citations. Balanced clustering for attention: Daras, Kitaev, Odena & Dimakis, "SMYRF: Efficient
Attention using Asymmetric Clustering", NeurIPS 2020 (equal-size clusters by sorting hashed
values). Random projection trees: Dasgupta & Freund, "Random projection trees and low dimensional
manifolds", STOC 2008. Base method: Kitaev et al., ICLR 2020.

Cost: ``L`` sorts of ``N`` keys per round instead of one, and an ``N x Dh x L`` projection instead of
``N x Dh x n_buckets/2``; the attention itself is identical.
"""
from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
import torch.nn.functional as F

from effx import at_least

from .lsh import ReformerLSH

_positive = at_least(1)


@attrs.frozen
class BalancedConfig:
    bucket_size: int = attrs.field(default=64, validator=_positive)  # chunk size = leaf size bound
    n_hashes: int = attrs.field(default=4, validator=_positive)  # independent trees (rounds)
    shared_qk: bool = True
    rotations: Literal["redraw", "fixed"] = "redraw"
    dedup: bool = True


class ReformerBalanced(ReformerLSH):
    name = "reformer_balanced"
    Config = BalancedConfig

    def _projections(self, n_max: int) -> int:
        return max(1, _depth(n_max, self.config.bucket_size))

    def _sort(self, x: torch.Tensor, rotations: torch.Tensor, npad: int, bs: int, pad) -> torch.Tensor:
        depth = _depth(self.ctx.max_seq_len, self.config.bucket_size)  # the most any sequence needs
        return tree_order(F.normalize(x, dim=-1), rotations, npad, depth, pad, self.config.bucket_size)


def _depth(n: int, bs: int) -> int:
    nc = math.ceil(n / bs)
    return math.ceil(math.log2(nc)) if nc > 1 else 0


def _depths(n_real: torch.Tensor, bs: int) -> torch.Tensor:
    """:func:`_depth` of every sequence: ``n_real (B, H)`` -> ``(B, H)``."""
    nc = torch.ceil(n_real.double() / bs)
    return torch.where(nc > 1, torch.ceil(torch.log2(nc.clamp_min(1))), 0.0).long()


def tree_order(x: torch.Tensor, directions: torch.Tensor, npad: int, depth: int, pad=None,
               bucket_size: int = 64) -> torch.Tensor:
    """``x (B, H, N, Dh)`` unit vectors, ``directions (H, Dh, R, >= depth)`` -> slots ``(B, H, R, Np)``.

    Real tokens first, then level ``l`` splits a sequence's ``n`` real slots into ``2^l`` equal
    segments (the previous level's cells) and sorts each by the projection on direction ``l``; a
    sequence stops splitting at its own depth ``ceil(log2(n / bucket_size))``. Everything depends on
    the real tokens only, so padding (positions ``>= N`` and ``pad (B|1, H|1, N)`` True) stays last
    and changes nothing, whatever its amount or content.
    """
    b, h, n, d = x.shape
    r = directions.shape[2]
    pad = pad if pad is not None else x.new_zeros(1, 1, n, dtype=torch.bool)
    pad = pad[:, None, :] if pad.dim() == 2 else pad  # (B|1, H|1, N)
    pad_full = F.pad(pad, (0, npad - n), value=True).expand(b, h, npad)  # (B, H, Np)
    order = torch.argsort(pad_full.to(torch.int8), dim=-1, stable=True)  # (B, H, Np): real tokens first
    order = order[:, :, None, :].expand(b, h, r, npad).contiguous()  # (B, H, R, Np)
    if depth == 0:
        return order
    n_real = (~pad_full).sum(-1).clamp_min(1)[..., None]  # (B, H, 1)
    dirs = F.normalize(directions[..., :depth].to(x.dtype), dim=1).reshape(h, d, r * depth)  # (H, Dh, R*L)
    proj = (x @ dirs).view(b, h, n, r, depth).permute(0, 1, 3, 4, 2)  # (B, H, R, L, N) in [-1, 1]
    proj = F.pad(proj, (0, npad - n)).double()  # (B, H, R, L, Np)
    slot = torch.arange(npad, device=x.device)
    own_depth = _depths(n_real[..., 0], bucket_size)  # (B, H)
    for level in range(depth):  # tree levels (log2 of the chunk count), each over all tokens at once
        cells = 2**level
        real_slot = slot < n_real  # (B, H, Np)
        seg = torch.where(real_slot, torch.div(slot * cells, n_real, rounding_mode="floor"), cells)
        p = proj[:, :, :, level].gather(-1, order)  # (B, H, R, Np) projection of each slot's token
        still = (level < own_depth)[..., None] & real_slot  # (B, H, Np): slots this level sorts
        p = torch.where(still[:, :, None, :], p, 0.0).add_(seg.double().mul_(4)[:, :, None, :])
        order = order.gather(-1, p.argsort(dim=-1, stable=True))  # sort within each segment
    return order
