"""Reformer with balanced bucketing (``reformer_balanced``): a modified Reformer.

What changes. Only the hash. Instead of angular LSH buckets (``argmax`` over random rotations, sorted
by ``(bucket, position)``), every round builds a random-projection tree of depth
``L = ceil(log2(N / bucket_size))``: the tokens are sorted by their projection on a random unit
direction and cut at the median, each half is sorted by a second direction and cut at its median,
and so on. The final order puts every token in a leaf of exactly ``N / 2^L <= bucket_size`` tokens
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

from effx.bounds import at_least

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
        return max(1, _depth(n_max, min(self.config.bucket_size, n_max)))

    def _sort(self, x: torch.Tensor, rotations: torch.Tensor, npad: int, bs: int, pad) -> torch.Tensor:
        return tree_order(F.normalize(x, dim=-1), rotations, npad, _depth(npad, bs), pad)


def _depth(n: int, bs: int) -> int:
    nc = math.ceil(n / bs)
    return math.ceil(math.log2(nc)) if nc > 1 else 0


def tree_order(x: torch.Tensor, directions: torch.Tensor, npad: int, depth: int, pad=None) -> torch.Tensor:
    """``x (B, H, N, Dh)`` unit vectors, ``directions (H, Dh, R, >= depth)`` -> slots ``(B, H, R, Np)``.

    Level ``l`` splits the slots into ``2^l`` equal segments (the previous level's cells) and sorts
    each by the projection on direction ``l``. Padding (positions ``>= N`` and ``pad (B, N)`` True)
    projects to 2, past every unit vector, so it stays last whatever its content.
    """
    b, h, n, d = x.shape
    r = directions.shape[2]
    slot = torch.arange(npad, device=x.device)
    order = slot.expand(b, h, r, npad)
    if depth == 0:
        return order.contiguous()
    dirs = F.normalize(directions[..., :depth].to(x.dtype), dim=1).reshape(h, d, r * depth)  # (H, Dh, R*L)
    proj = (x @ dirs).view(b, h, n, r, depth).permute(0, 1, 3, 4, 2)  # (B, H, R, L, N) in [-1, 1]
    if pad is not None:
        proj = proj.masked_fill(pad[:, None, None, None, :], 2.0)
    proj = F.pad(proj, (0, npad - n), value=2.0).double()  # (B, H, R, L, Np)
    levels = torch.arange(depth, device=x.device).view(depth, 1)
    seg = torch.div(slot * 2**levels, npad, rounding_mode="floor").double().mul_(4)  # (L, Np): 4 x segment
    for level in range(depth):  # tree levels (log2 of the chunk count), each over all tokens at once
        p = proj[:, :, :, level].gather(-1, order)  # (B, H, R, Np) projection of each slot's token
        order = order.gather(-1, p.add_(seg[level]).argsort(-1))  # sort within each segment
    return order
