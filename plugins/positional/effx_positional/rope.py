"""Rotary position embedding (Su et al., 2021, RoFormer): rotate channel pairs of q and k by a
position-dependent angle so that q_i . k_j depends only on i - j. Applied by the core to q and k
before the attention plugin runs (so LSH buckets and random features see position)."""
from __future__ import annotations

import attrs
import torch

import effx
from effx import ConfigError, greater_than

from ._limits import check


@attrs.frozen
class RopeConfig:
    base: float = attrs.field(default=10000.0, validator=greater_than(1))


class RotaryPositional(effx.PositionalEncoding):
    name = "rope"
    Config = RopeConfig
    mode = effx.PositionMode.ROTARY

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        if ctx.head_dim % 2:
            raise ConfigError(f"model.positional: rope needs an even head size, got d_model/n_heads={ctx.head_dim}")
        self._cache: dict = {}

    def _cos_sin(self, n: int, device, dtype):
        key = (n, device, dtype)
        if key not in self._cache:
            half = self.ctx.head_dim // 2
            inv = self.config.base ** (-torch.arange(half, device=device, dtype=torch.float32) / half)  # (Dh/2,)
            ang = torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv  # (N, Dh/2)
            self._cache = {key: (ang.cos().to(dtype), ang.sin().to(dtype))}
        return self._cache[key]

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, H, N, Dh]`` -> rotated ``[B, H, N, Dh]`` (half-split pairing)."""
        n = x.shape[-2]
        check(self.name, n, self.ctx.max_seq_len)
        cos, sin = self._cos_sin(n, x.device, x.dtype)  # (N, Dh/2) each
        x1, x2 = x.chunk(2, dim=-1)  # (B, H, N, Dh/2) each
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
