"""Learned absolute position embeddings (BERT), one vector per position up to max_seq_len."""
from __future__ import annotations

import attrs
import torch
from torch import nn

import effx
from effx import at_least

from ._limits import check


@attrs.frozen
class LearnedConfig:
    init_std: float = attrs.field(default=0.02, validator=at_least(0))


class LearnedPositional(effx.PositionalEncoding):
    name = "learned"
    Config = LearnedConfig
    mode = effx.PositionMode.ADDITIVE

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        self.table = nn.Embedding(ctx.max_seq_len, ctx.d_model)  # (max_len, D)

    def reset_plugin_parameters(self) -> None:
        nn.init.normal_(self.table.weight, 0.0, self.config.init_std)

    def embed(self, n: int, device) -> torch.Tensor:
        check(self.name, n, self.ctx.max_seq_len)
        return self.table.weight[:n]  # (N, D)
