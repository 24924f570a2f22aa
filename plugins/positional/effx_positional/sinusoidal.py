"""Fixed sinusoidal position embeddings (Vaswani et al., 2017), added to token embeddings.

Scale rule: the table is multiplied by ``scale`` so that a position vector has the same expected
norm as a token embedding at initialisation. Token embeddings start as ``N(0, s^2)`` per entry
(``s = ctx.embedding_std``), a row norm of ``s * sqrt(D)``; a sine/cosine row has norm ``sqrt(D / 2)``
(each sin/cos pair has unit norm). ``scale: null`` (the default) therefore uses ``s * sqrt(2)``, which
matches the norms at every ``d_model``. This is the balance BERT (Devlin et al., 2019, whose token and
position embeddings are both initialised from ``N(0, 0.02^2)``) starts from. The unscaled table of
Vaswani et al. (entries +-1) is meant for token embeddings scaled up by ``sqrt(D)`` (their sec. 3.4).
Added to ``N(0, 0.02^2)`` token embeddings it is ``1 / (0.02 * sqrt(2))``, about 35 times, larger,
and after the embedding LayerNorm the token identity is a small perturbation that training must
first recover. ``scale: 1.0`` restores that unscaled table.
"""
from __future__ import annotations

import math
from typing import Optional

import attrs
import torch

import effx
from effx import ConfigError, greater_than

from ._limits import check


@attrs.frozen
class SinConfig:
    base: float = attrs.field(default=10000.0, validator=greater_than(1))
    scale: Optional[float] = None  # null: match the token embeddings' initial norm (see module docstring)


def sinusoid_table(n: int, d: int, base: float, device=None) -> torch.Tensor:
    """``[N, D]``: even columns sin(pos / base^(2i/D)), odd columns cos."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]  # (N, 1)
    inv = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(base) / d))  # (D/2,)
    table = torch.zeros(n, d, device=device)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv)[:, : d // 2]
    return table


def matched_scale(embedding_std: float) -> float:
    """The factor giving a sinusoid row (norm ``sqrt(D/2)``) the norm ``embedding_std * sqrt(D)``."""
    return embedding_std * math.sqrt(2.0)


class SinusoidalPositional(effx.PositionalEncoding):
    name = "sin"
    default_rank = 1  # the default where an attention does not support a relative bias
    Config = SinConfig
    mode = effx.PositionMode.ADDITIVE

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        if config.scale is not None and not config.scale > 0:
            raise ConfigError(f"model.positional.scale must be a positive number or null (match the token "
                              f"embeddings), got {config.scale}")

    @property
    def scale(self) -> float:
        given = self.config.scale
        return matched_scale(self.ctx.embedding_std) if given is None else given

    def embed(self, n: int, device) -> torch.Tensor:
        check(self.name, n, self.ctx.max_seq_len)
        return sinusoid_table(n, self.ctx.d_model, self.config.base, device) * self.scale  # (N, D)
