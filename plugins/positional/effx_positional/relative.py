"""T5-style relative position bias (Raffel et al., 2020): a learned scalar per head for each
bucket of the distance i - j (exact for small distances, log-spaced up to ``max_distance``).

The bias is handed to attention as a ``[H, 2N-1]`` table over distances (an
:class:`effx.RelativeBias`), never as an N x N matrix, so sub-quadratic attentions can use it.
"""
from __future__ import annotations

import math

import attrs
import torch
from torch import nn

import effx
from effx import at_least


@attrs.frozen
class RelativeConfig:
    num_buckets: int = attrs.field(default=32, validator=at_least(2))
    max_distance: int = attrs.field(default=128, validator=at_least(1))
    bidirectional: bool = True


def bucket(rel: torch.Tensor, num_buckets: int, max_distance: int, bidirectional: bool) -> torch.Tensor:
    """Map distances ``rel = j - i`` (key minus query) to bucket ids in ``[0, num_buckets)``."""
    out = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        out = out + (rel > 0).long() * num_buckets
        rel = rel.abs()
    else:
        rel = (-rel).clamp(min=0)
    exact = num_buckets // 2
    is_small = rel < exact
    large = exact + (
        torch.log(rel.float().clamp(min=1) / exact) / math.log(max_distance / exact) * (num_buckets - exact)
    ).long()
    large = large.clamp(max=num_buckets - 1)
    return out + torch.where(is_small, rel, large)


class RelativePositional(effx.PositionalEncoding):
    name = "relative"
    default_rank = 0  # first choice of a config that names no positional encoding
    Config = RelativeConfig
    mode = effx.PositionMode.RELATIVE_BIAS

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        self.bias = nn.Embedding(config.num_buckets, ctx.n_heads)  # (buckets, H)

    def relative_bias(self, n: int) -> effx.RelativeBias:
        offsets = torch.arange(-(n - 1), n, device=self.bias.weight.device)  # i - j, (2N-1,)
        ids = bucket(-offsets, self.config.num_buckets, self.config.max_distance, self.config.bidirectional)
        return effx.RelativeBias(self.bias(ids).t(), n)  # (H, 2N-1)
