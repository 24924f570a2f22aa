"""Fixed sinusoidal position embeddings (Vaswani et al., 2017), added to token embeddings."""
from __future__ import annotations

import math

import attrs
import torch

import effx
from effx.bounds import greater_than

from ._limits import check


@attrs.frozen
class SinConfig:
    base: float = attrs.field(default=10000.0, validator=greater_than(1))


def sinusoid_table(n: int, d: int, base: float, device=None) -> torch.Tensor:
    """``[N, D]``: even columns sin(pos / base^(2i/D)), odd columns cos."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]  # (N, 1)
    inv = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(base) / d))  # (D/2,)
    table = torch.zeros(n, d, device=device)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv)[:, : d // 2]
    return table


class SinusoidalPositional(effx.PositionalEncoding):
    name = "sin"
    Config = SinConfig
    mode = effx.PositionMode.ADDITIVE

    def embed(self, n: int, device) -> torch.Tensor:
        check(self.name, n, self.ctx.max_seq_len)
        return sinusoid_table(n, self.ctx.d_model, self.config.base, device)  # (N, D)
